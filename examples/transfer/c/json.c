// A small JSON reader and writer for branch payloads (see json.h).
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// --- reader -------------------------------------------------------------------

typedef struct {
  const uint8_t *start;
  const uint8_t *p;
  const uint8_t *end;
  int depth;
  char *why;
  size_t why_len;
} parser;

static bool parse_value(parser *ps, json_value *out);

static bool error(parser *ps, const char *what) {
  snprintf(ps->why, ps->why_len, "%s at byte %zu", what, (size_t)(ps->p - ps->start));
  return false;
}

static void skip_whitespace(parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) {
    ps->p++;
  }
}

static bool literal(parser *ps, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
    return error(ps, "invalid literal");
  }
  ps->p += n;
  return true;
}

static bool is_digit(parser *ps) {
  return ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9';
}

static bool parse_number(parser *ps, json_value *out) {
  bool negative = ps->p < ps->end && *ps->p == '-';
  if (negative) {
    ps->p++;
  }
  if (!is_digit(ps)) {
    return error(ps, "invalid number");
  }
  // Accumulate as a negative number so that INT64_MIN fits.
  int64_t value = 0;
  bool fits = true;
  if (*ps->p == '0') {
    ps->p++;
  } else {
    while (is_digit(ps)) {
      int digit = *ps->p++ - '0';
      if (value < (INT64_MIN + digit) / 10) {
        fits = false;
      } else {
        value = value * 10 - digit;
      }
    }
  }
  bool integral = true;
  if (ps->p < ps->end && *ps->p == '.') {
    ps->p++;
    if (!is_digit(ps)) {
      return error(ps, "invalid number");
    }
    while (is_digit(ps)) {
      ps->p++;
    }
    integral = false;
  }
  if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
    ps->p++;
    if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) {
      ps->p++;
    }
    if (!is_digit(ps)) {
      return error(ps, "invalid number");
    }
    while (is_digit(ps)) {
      ps->p++;
    }
    integral = false;
  }
  if (!negative && value == INT64_MIN) {
    fits = false;
  }
  if (negative && value == 0) {
    integral = false;  // -0 is a float (-0.0) for serde_json
  }
  if (integral && fits) {
    out->kind = JSON_INTEGER;
    out->as.integer = negative ? value : -value;
  } else {
    out->kind = JSON_OTHER_NUMBER;
    out->as.out_of_range = integral;
  }
  return true;
}

static int hex_digit(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads the 4 hex digits after "\u".
static bool hex4(parser *ps, uint32_t *unit) {
  if (ps->end - ps->p < 4) {
    return error(ps, "invalid \\u escape");
  }
  *unit = 0;
  for (int i = 0; i < 4; i++) {
    int d = hex_digit(ps->p[i]);
    if (d < 0) {
      return error(ps, "invalid \\u escape");
    }
    *unit = *unit * 16 + (uint32_t)d;
  }
  ps->p += 4;
  return true;
}

// Length of the valid UTF-8 sequence at p (at most `avail` bytes), or 0.
static size_t utf8_sequence(const uint8_t *p, size_t avail) {
  uint8_t c = p[0];
  size_t n;
  uint8_t lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c < 0x80) return 1;
  else if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if (c == 0xED) n = 3, hi = 0x9F;  // no surrogates
  else if (c >= 0xE1 && c <= 0xEF) n = 3;
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else if (c == 0xF4) n = 4, hi = 0x8F;
  else return 0;
  if (avail < n || p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < n; i++) {
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  }
  return n;
}

static size_t utf8_encode(uint32_t cp, char *out) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  } else if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  } else if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

// Parses a string literal (p at the opening quote) into a malloc'd buffer.
static bool parse_string(parser *ps, char **ptr, size_t *len) {
  ps->p++;  // opening quote
  // The decoded string is never longer than the literal.
  const uint8_t *close = ps->p;
  while (close < ps->end && *close != '"') {
    close += (*close == '\\' && close + 1 < ps->end) ? 2 : 1;
  }
  char *buf = malloc((size_t)(close - ps->p) + 1);
  if (buf == NULL) {
    return error(ps, "out of memory");
  }
  size_t n = 0;
  for (;;) {
    if (ps->p >= ps->end) {
      free(buf);
      return error(ps, "unterminated string");
    }
    uint8_t c = *ps->p;
    if (c == '"') {
      ps->p++;
      break;
    }
    if (c < 0x20) {
      free(buf);
      return error(ps, "control character in string");
    }
    if (c != '\\') {
      size_t seq = utf8_sequence(ps->p, (size_t)(ps->end - ps->p));
      if (seq == 0) {
        free(buf);
        return error(ps, "invalid UTF-8");
      }
      memcpy(buf + n, ps->p, seq);
      n += seq;
      ps->p += seq;
      continue;
    }
    ps->p++;  // backslash
    if (ps->p >= ps->end) {
      free(buf);
      return error(ps, "unterminated string");
    }
    char e = (char)*ps->p++;
    switch (e) {
      case '"': buf[n++] = '"'; break;
      case '\\': buf[n++] = '\\'; break;
      case '/': buf[n++] = '/'; break;
      case 'b': buf[n++] = '\b'; break;
      case 'f': buf[n++] = '\f'; break;
      case 'n': buf[n++] = '\n'; break;
      case 'r': buf[n++] = '\r'; break;
      case 't': buf[n++] = '\t'; break;
      case 'u': {
        uint32_t cp;
        if (!hex4(ps, &cp)) {
          free(buf);
          return false;
        }
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
          free(buf);
          return error(ps, "lone trailing surrogate");
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t low;
          if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
            free(buf);
            return error(ps, "lone leading surrogate");
          }
          ps->p += 2;
          if (!hex4(ps, &low)) {
            free(buf);
            return false;
          }
          if (low < 0xDC00 || low > 0xDFFF) {
            free(buf);
            return error(ps, "lone leading surrogate");
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        // "\uXXXX" (6 bytes, 12 for a pair) never decodes to more bytes.
        n += utf8_encode(cp, buf + n);
        break;
      }
      default:
        free(buf);
        return error(ps, "invalid escape");
    }
  }
  *ptr = buf;
  *len = n;
  return true;
}

static bool parse_array(parser *ps, json_value *out) {
  ps->p++;  // '['
  json_value *items = NULL;
  size_t len = 0, cap = 0;
  skip_whitespace(ps);
  if (ps->p < ps->end && *ps->p == ']') {
    ps->p++;
  } else {
    for (;;) {
      if (len == cap) {
        size_t new_cap = cap ? cap * 2 : 4;
        json_value *grown = realloc(items, new_cap * sizeof *items);
        if (grown == NULL) {
          error(ps, "out of memory");
          goto fail;
        }
        items = grown;
        cap = new_cap;
      }
      if (!parse_value(ps, &items[len])) goto fail;
      len++;
      skip_whitespace(ps);
      if (ps->p < ps->end && *ps->p == ',') {
        ps->p++;
      } else if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        break;
      } else {
        error(ps, "expected `,` or `]`");
        goto fail;
      }
    }
  }
  out->kind = JSON_ARRAY;
  out->as.array.items = items;
  out->as.array.len = len;
  return true;
fail:
  for (size_t i = 0; i < len; i++) json_free(&items[i]);
  free(items);
  return false;
}

static bool parse_object(parser *ps, json_value *out) {
  ps->p++;  // '{'
  json_member *members = NULL;
  size_t len = 0, cap = 0;
  skip_whitespace(ps);
  if (ps->p < ps->end && *ps->p == '}') {
    ps->p++;
  } else {
    for (;;) {
      if (len == cap) {
        size_t new_cap = cap ? cap * 2 : 4;
        json_member *grown = realloc(members, new_cap * sizeof *members);
        if (grown == NULL) {
          error(ps, "out of memory");
          goto fail;
        }
        members = grown;
        cap = new_cap;
      }
      json_member *m = &members[len];
      skip_whitespace(ps);
      if (ps->p >= ps->end || *ps->p != '"') {
        error(ps, "expected a string key");
        goto fail;
      }
      if (!parse_string(ps, &m->key, &m->key_len)) goto fail;
      skip_whitespace(ps);
      if (ps->p >= ps->end || *ps->p != ':') {
        free(m->key);
        error(ps, "expected `:`");
        goto fail;
      }
      ps->p++;
      if (!parse_value(ps, &m->value)) {
        free(m->key);
        goto fail;
      }
      len++;
      skip_whitespace(ps);
      if (ps->p < ps->end && *ps->p == ',') {
        ps->p++;
      } else if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        break;
      } else {
        error(ps, "expected `,` or `}`");
        goto fail;
      }
    }
  }
  out->kind = JSON_OBJECT;
  out->as.object.members = members;
  out->as.object.len = len;
  return true;
fail:
  for (size_t i = 0; i < len; i++) {
    free(members[i].key);
    json_free(&members[i].value);
  }
  free(members);
  return false;
}

static bool parse_value(parser *ps, json_value *out) {
  skip_whitespace(ps);
  if (ps->p >= ps->end) {
    return error(ps, "unexpected end of input");
  }
  switch (*ps->p) {
    case 'n':
      out->kind = JSON_NULL;
      return literal(ps, "null");
    case 't':
      out->kind = JSON_BOOL;
      out->as.boolean = true;
      return literal(ps, "true");
    case 'f':
      out->kind = JSON_BOOL;
      out->as.boolean = false;
      return literal(ps, "false");
    case '"':
      out->kind = JSON_STRING;
      return parse_string(ps, &out->as.string.ptr, &out->as.string.len);
    case '[':
    case '{': {
      if (ps->depth == JSON_MAX_DEPTH) {
        return error(ps, "nesting too deep");
      }
      ps->depth++;
      bool ok = *ps->p == '[' ? parse_array(ps, out) : parse_object(ps, out);
      ps->depth--;
      return ok;
    }
    default:
      if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) {
        return parse_number(ps, out);
      }
      return error(ps, "expected a value");
  }
}

bool json_parse(const uint8_t *text, size_t len, json_value *out, char *why, size_t why_len) {
  parser ps = {text, text, text + len, 0, why, why_len};
  if (!parse_value(&ps, out)) {
    return false;
  }
  skip_whitespace(&ps);
  if (ps.p != ps.end) {
    json_free(out);
    return error(&ps, "trailing characters");
  }
  return true;
}

void json_free(json_value *value) {
  switch (value->kind) {
    case JSON_STRING:
      free(value->as.string.ptr);
      break;
    case JSON_ARRAY:
      for (size_t i = 0; i < value->as.array.len; i++) json_free(&value->as.array.items[i]);
      free(value->as.array.items);
      break;
    case JSON_OBJECT:
      for (size_t i = 0; i < value->as.object.len; i++) {
        free(value->as.object.members[i].key);
        json_free(&value->as.object.members[i].value);
      }
      free(value->as.object.members);
      break;
    default:
      break;
  }
  value->kind = JSON_NULL;
}

const json_value *json_get(const json_value *object, const char *key, bool *repeated) {
  *repeated = false;
  if (object->kind != JSON_OBJECT) {
    return NULL;
  }
  const json_value *found = NULL;
  size_t key_len = strlen(key);
  for (size_t i = 0; i < object->as.object.len; i++) {
    const json_member *m = &object->as.object.members[i];
    if (m->key_len == key_len && memcmp(m->key, key, key_len) == 0) {
      if (found != NULL) {
        *repeated = true;
        break;
      }
      found = &m->value;
    }
  }
  return found;
}

// --- writer -------------------------------------------------------------------

static bool reserve(json_buf *buf, size_t more) {
  if (buf->oom) {
    return false;
  }
  if (buf->cap - buf->len > more) {  // keeps room for vsnprintf's NUL
    return true;
  }
  size_t cap = buf->cap ? buf->cap : 64;
  while (cap - buf->len <= more) {
    cap *= 2;
  }
  char *grown = realloc(buf->ptr, cap);
  if (grown == NULL) {
    buf->oom = true;
    return false;
  }
  buf->ptr = grown;
  buf->cap = cap;
  return true;
}

void json_buf_append(json_buf *buf, const char *s, size_t len) {
  if (reserve(buf, len)) {
    memcpy(buf->ptr + buf->len, s, len);
    buf->len += len;
  }
}

void json_buf_printf(json_buf *buf, const char *format, ...) {
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  int n = vsnprintf(NULL, 0, format, args);
  if (n < 0) {
    buf->oom = true;
  } else if (reserve(buf, (size_t)n)) {
    vsnprintf(buf->ptr + buf->len, (size_t)n + 1, format, again);
    buf->len += (size_t)n;
  }
  va_end(again);
  va_end(args);
}

void json_buf_string(json_buf *buf, const char *s, size_t len) {
  json_buf_append(buf, "\"", 1);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
      case '"': json_buf_append(buf, "\\\"", 2); break;
      case '\\': json_buf_append(buf, "\\\\", 2); break;
      case '\b': json_buf_append(buf, "\\b", 2); break;
      case '\f': json_buf_append(buf, "\\f", 2); break;
      case '\n': json_buf_append(buf, "\\n", 2); break;
      case '\r': json_buf_append(buf, "\\r", 2); break;
      case '\t': json_buf_append(buf, "\\t", 2); break;
      default:
        if (c < 0x20) {
          json_buf_printf(buf, "\\u%04x", c);
        } else {
          json_buf_append(buf, (const char *)&c, 1);
        }
    }
  }
  json_buf_append(buf, "\"", 1);
}
