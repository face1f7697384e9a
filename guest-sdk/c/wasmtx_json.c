// wasmtx_json: the strict JSON reader and the output buffer (see wasmtx_json.h).
#include "wasmtx_json.h"

#include <limits.h>
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

static bool parse_value(parser *ps, wasmtx_json *out);

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

static bool parse_number(parser *ps, wasmtx_json *out) {
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
    out->kind = WASMTX_JSON_INTEGER;
    out->as.integer = negative ? value : -value;
  } else {
    out->kind = WASMTX_JSON_OTHER_NUMBER;
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
static bool parse_string(parser *ps, wasmtx_str *out) {
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
  out->ptr = buf;
  out->len = n;
  return true;
}

static bool parse_array(parser *ps, wasmtx_json *out) {
  ps->p++;  // '['
  wasmtx_json *items = NULL;
  size_t len = 0, cap = 0;
  skip_whitespace(ps);
  if (ps->p < ps->end && *ps->p == ']') {
    ps->p++;
  } else {
    for (;;) {
      if (len == cap) {
        size_t new_cap = cap ? cap * 2 : 4;
        wasmtx_json *grown = realloc(items, new_cap * sizeof *items);
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
  out->kind = WASMTX_JSON_ARRAY;
  out->as.array.items = items;
  out->as.array.len = len;
  return true;
fail:
  for (size_t i = 0; i < len; i++) wasmtx_json_free(&items[i]);
  free(items);
  return false;
}

static bool parse_object(parser *ps, wasmtx_json *out) {
  ps->p++;  // '{'
  wasmtx_json_member *members = NULL;
  size_t len = 0, cap = 0;
  skip_whitespace(ps);
  if (ps->p < ps->end && *ps->p == '}') {
    ps->p++;
  } else {
    for (;;) {
      if (len == cap) {
        size_t new_cap = cap ? cap * 2 : 4;
        wasmtx_json_member *grown = realloc(members, new_cap * sizeof *members);
        if (grown == NULL) {
          error(ps, "out of memory");
          goto fail;
        }
        members = grown;
        cap = new_cap;
      }
      wasmtx_json_member *m = &members[len];
      skip_whitespace(ps);
      if (ps->p >= ps->end || *ps->p != '"') {
        error(ps, "expected a string key");
        goto fail;
      }
      if (!parse_string(ps, &m->key)) goto fail;
      skip_whitespace(ps);
      if (ps->p >= ps->end || *ps->p != ':') {
        free((char *)m->key.ptr);
        error(ps, "expected `:`");
        goto fail;
      }
      ps->p++;
      if (!parse_value(ps, &m->value)) {
        free((char *)m->key.ptr);
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
  out->kind = WASMTX_JSON_OBJECT;
  out->as.object.members = members;
  out->as.object.len = len;
  return true;
fail:
  for (size_t i = 0; i < len; i++) {
    free((char *)members[i].key.ptr);
    wasmtx_json_free(&members[i].value);
  }
  free(members);
  return false;
}

static bool parse_value(parser *ps, wasmtx_json *out) {
  skip_whitespace(ps);
  if (ps->p >= ps->end) {
    return error(ps, "unexpected end of input");
  }
  switch (*ps->p) {
    case 'n':
      out->kind = WASMTX_JSON_NULL;
      return literal(ps, "null");
    case 't':
      out->kind = WASMTX_JSON_BOOL;
      out->as.boolean = true;
      return literal(ps, "true");
    case 'f':
      out->kind = WASMTX_JSON_BOOL;
      out->as.boolean = false;
      return literal(ps, "false");
    case '"':
      out->kind = WASMTX_JSON_STRING;
      return parse_string(ps, &out->as.string);
    case '[':
    case '{': {
      if (ps->depth == WASMTX_JSON_MAX_DEPTH) {
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

bool wasmtx_json_parse(const uint8_t *text, size_t len, wasmtx_json *out, char *why, size_t why_len) {
  parser ps = {text, text, text + len, 0, why, why_len};
  if (!parse_value(&ps, out)) {
    return false;
  }
  skip_whitespace(&ps);
  if (ps.p != ps.end) {
    wasmtx_json_free(out);
    return error(&ps, "trailing characters");
  }
  return true;
}

void wasmtx_json_free(wasmtx_json *value) {
  switch (value->kind) {
    case WASMTX_JSON_STRING:
      free((char *)value->as.string.ptr);
      break;
    case WASMTX_JSON_ARRAY:
      for (size_t i = 0; i < value->as.array.len; i++) wasmtx_json_free(&value->as.array.items[i]);
      free(value->as.array.items);
      break;
    case WASMTX_JSON_OBJECT:
      for (size_t i = 0; i < value->as.object.len; i++) {
        free((char *)value->as.object.members[i].key.ptr);
        wasmtx_json_free(&value->as.object.members[i].value);
      }
      free(value->as.object.members);
      break;
    default:
      break;
  }
  value->kind = WASMTX_JSON_NULL;
}

const wasmtx_json *wasmtx_json_get(const wasmtx_json *object, const char *key, bool *repeated) {
  *repeated = false;
  if (object->kind != WASMTX_JSON_OBJECT) {
    return NULL;
  }
  const wasmtx_json *found = NULL;
  size_t key_len = strlen(key);
  for (size_t i = 0; i < object->as.object.len; i++) {
    const wasmtx_json_member *m = &object->as.object.members[i];
    if (m->key.len == key_len && memcmp(m->key.ptr, key, key_len) == 0) {
      if (found != NULL) {
        *repeated = true;
        break;
      }
      found = &m->value;
    }
  }
  return found;
}

// --- buffer -------------------------------------------------------------------

// Makes room for `more` bytes and a NUL (for vsnprintf); false once out of memory.
static bool reserve(wasmtx_buf *buf, size_t more) {
  if (buf->oom) {
    return false;
  }
  if (buf->cap - buf->len > more) {
    return true;
  }
  if (more >= SIZE_MAX / 2 - buf->len) {
    buf->oom = true;
    return false;
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

void wasmtx_buf_append(wasmtx_buf *buf, const char *bytes, size_t len) {
  if (len > 0 && reserve(buf, len)) {
    memcpy(buf->ptr + buf->len, bytes, len);
    buf->len += len;
  }
}

static void pad(wasmtx_buf *buf, size_t n) {
  if (n > 0 && reserve(buf, n)) {
    memset(buf->ptr + buf->len, ' ', n);
    buf->len += n;
  }
}

// Reads the decimal digits at *p (saturating at INT_MAX).
static int digits(const char **p) {
  int n = 0;
  for (; **p >= '0' && **p <= '9'; (*p)++) {
    int d = **p - '0';
    n = n > (INT_MAX - d) / 10 ? INT_MAX : n * 10 + d;
  }
  return n;
}

typedef enum { LEN_NONE, LEN_HH, LEN_H, LEN_L, LEN_LL, LEN_J, LEN_Z, LEN_T, LEN_BIG_L } length_modifier;

// Appends the next argument, of `type`, formatted by `spec` (one complete
// printf conversion).
#define APPEND_ONE(buf, spec, ap, type)                                     \
  do {                                                                      \
    type value = va_arg(ap, type);                                          \
    int n_ = snprintf(NULL, 0, spec, value);                                \
    if (n_ < 0) {                                                           \
      (buf)->oom = true;                                                    \
    } else if (reserve(buf, (size_t)n_)) {                                  \
      snprintf((buf)->ptr + (buf)->len, (size_t)n_ + 1, spec, value);       \
      (buf)->len += (size_t)n_;                                             \
    }                                                                       \
  } while (0)

// printf, one conversion at a time: every conversion but "%s" goes to
// snprintf with its width and precision resolved; "%s" is written here so
// that "%.*s" can write NUL bytes.
void wasmtx_buf_vprintf(wasmtx_buf *buf, const char *format, va_list args) {
  va_list ap;
  va_copy(ap, args);
  const char *p = format;
  while (*p != '\0') {
    if (*p != '%') {
      const char *next = strchr(p, '%');
      size_t n = next ? (size_t)(next - p) : strlen(p);
      wasmtx_buf_append(buf, p, n);
      p += n;
      continue;
    }
    const char *start = p++;
    char spec[64];
    size_t n = 0;
    spec[n++] = '%';
    bool left = false;
    for (; *p != '\0' && strchr("-+ #0", *p) != NULL; p++) {
      left |= *p == '-';
      if (n < 8) spec[n++] = *p;  // a flag repeated more is the same flag
    }
    int width = -1;
    if (*p == '*') {
      p++;
      width = va_arg(ap, int);
      if (width < 0) {
        left = true;
        width = width == INT_MIN ? INT_MAX : -width;
        spec[n++] = '-';
      }
    } else if (*p >= '1' && *p <= '9') {
      width = digits(&p);
    }
    int precision = -1;
    bool precision_from_argument = false;
    if (*p == '.') {
      p++;
      if (*p == '*') {
        p++;
        precision = va_arg(ap, int);
        precision_from_argument = precision >= 0;
        if (precision < 0) precision = -1;  // as if not given
      } else {
        precision = digits(&p);
      }
    }
    length_modifier length = LEN_NONE;
    switch (*p) {
      case 'h': length = p[1] == 'h' ? LEN_HH : LEN_H; break;
      case 'l': length = p[1] == 'l' ? LEN_LL : LEN_L; break;
      case 'j': length = LEN_J; break;
      case 'z': length = LEN_Z; break;
      case 't': length = LEN_T; break;
      case 'L': length = LEN_BIG_L; break;
      default: break;
    }
    if (length != LEN_NONE) {
      p += (length == LEN_HH || length == LEN_LL) ? 2 : 1;
    }
    char conversion = *p;
    if (conversion == '\0') {
      break;  // an incomplete conversion at the end writes nothing
    }
    p++;
    if (conversion == '%') {
      wasmtx_buf_append(buf, "%", 1);
      continue;
    }
    if (conversion == 's') {
      const char *s = va_arg(ap, const char *);
      size_t len;
      if (s == NULL) {
        s = "(null)";
        len = 6;
      } else if (precision_from_argument) {
        len = (size_t)precision;  // exactly: a wasmtx_str may hold NULs
      } else if (precision >= 0) {
        len = strnlen(s, (size_t)precision);
      } else {
        len = strlen(s);
      }
      size_t fill = width > 0 && (size_t)width > len ? (size_t)width - len : 0;
      if (!left) pad(buf, fill);
      wasmtx_buf_append(buf, s, len);
      if (left) pad(buf, fill);
      continue;
    }
    // Rebuild the conversion with numbers for '*': "%-08.3lld".
    if (width >= 0) n += (size_t)snprintf(spec + n, sizeof spec - n, "%d", width);
    if (precision >= 0) n += (size_t)snprintf(spec + n, sizeof spec - n, ".%d", precision);
    static const char *const MODIFIERS[] = {"", "hh", "h", "l", "ll", "j", "z", "t", "L"};
    n += (size_t)snprintf(spec + n, sizeof spec - n, "%s%c", MODIFIERS[length], conversion);
    switch (conversion) {
      case 'd':
      case 'i':
        switch (length) {
          case LEN_L: APPEND_ONE(buf, spec, ap, long); break;
          case LEN_LL: APPEND_ONE(buf, spec, ap, long long); break;
          case LEN_J: APPEND_ONE(buf, spec, ap, intmax_t); break;
          case LEN_Z:
          case LEN_T: APPEND_ONE(buf, spec, ap, ptrdiff_t); break;
          default: APPEND_ONE(buf, spec, ap, int); break;
        }
        break;
      case 'u':
      case 'o':
      case 'x':
      case 'X':
        switch (length) {
          case LEN_L: APPEND_ONE(buf, spec, ap, unsigned long); break;
          case LEN_LL: APPEND_ONE(buf, spec, ap, unsigned long long); break;
          case LEN_J: APPEND_ONE(buf, spec, ap, uintmax_t); break;
          case LEN_Z: APPEND_ONE(buf, spec, ap, size_t); break;
          case LEN_T: APPEND_ONE(buf, spec, ap, ptrdiff_t); break;
          default: APPEND_ONE(buf, spec, ap, unsigned int); break;
        }
        break;
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G':
      case 'a':
      case 'A':
        if (length == LEN_BIG_L) {
          APPEND_ONE(buf, spec, ap, long double);
        } else {
          APPEND_ONE(buf, spec, ap, double);
        }
        break;
      case 'c':
        APPEND_ONE(buf, spec, ap, int);
        break;
      case 'p':
        APPEND_ONE(buf, spec, ap, void *);
        break;
      case 'n':
        (void)va_arg(ap, void *);  // not supported: nothing is stored
        break;
      default:
        wasmtx_buf_append(buf, start, (size_t)(p - start));  // unknown: written as is
        break;
    }
  }
  va_end(ap);
}

void wasmtx_buf_printf(wasmtx_buf *buf, const char *format, ...) {
  va_list args;
  va_start(args, format);
  wasmtx_buf_vprintf(buf, format, args);
  va_end(args);
}

void wasmtx_buf_json_string(wasmtx_buf *buf, const char *s, size_t len) {
  static const char HEX[] = "0123456789abcdef";
  wasmtx_buf_append(buf, "\"", 1);
  size_t run = 0;  // bytes at s that need no escape, not yet appended
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *escape = NULL;
    char unicode[6];
    switch (c) {
      case '"': escape = "\\\""; break;
      case '\\': escape = "\\\\"; break;
      case '\b': escape = "\\b"; break;
      case '\f': escape = "\\f"; break;
      case '\n': escape = "\\n"; break;
      case '\r': escape = "\\r"; break;
      case '\t': escape = "\\t"; break;
      default:
        if (c < 0x20) {
          memcpy(unicode, "\\u00", 4);
          unicode[4] = HEX[c >> 4];
          unicode[5] = HEX[c & 0xF];
        }
        break;
    }
    if (escape == NULL && c >= 0x20) {
      run++;
      continue;
    }
    wasmtx_buf_append(buf, s + i - run, run);
    run = 0;
    if (escape != NULL) {
      wasmtx_buf_append(buf, escape, strlen(escape));
    } else {
      wasmtx_buf_append(buf, unicode, sizeof unicode);
    }
  }
  wasmtx_buf_append(buf, s + len - run, run);
  wasmtx_buf_append(buf, "\"", 1);
}
