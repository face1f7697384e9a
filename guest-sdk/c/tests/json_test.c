// Tests of wasmtx_json: the strict reader (read as serde_json reads) and the
// buffer writer with its printf.
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "wasmtx_json.h"

// Parses `text` (NUL-terminated) and expects success.
static bool parse(const char *text, wasmtx_json *out) {
  char why[96];
  bool ok = wasmtx_json_parse((const uint8_t *)text, strlen(text), out, why, sizeof why);
  if (!ok) fprintf(stderr, "  unexpected error for %s: %s\n", text, why);
  return ok;
}

// Parses `len` bytes and expects the error `expected`.
static void refused_n(const char *text, size_t len, const char *expected, int line) {
  wasmtx_json v;
  char why[96] = "";
  check_count++;
  if (wasmtx_json_parse((const uint8_t *)text, len, &v, why, sizeof why)) {
    check_failures++;
    fprintf(stderr, "%s:%d: %.*s was accepted, expected \"%s\"\n", __FILE__, line, (int)len, text, expected);
    wasmtx_json_free(&v);
  } else if (strcmp(why, expected) != 0) {
    check_failures++;
    fprintf(stderr, "%s:%d: %.*s: got \"%s\", expected \"%s\"\n", __FILE__, line, (int)len, text, why, expected);
  }
}
#define REFUSED(text, expected) refused_n(text, strlen(text), expected, __LINE__)
#define REFUSED_N(text, len, expected) refused_n(text, len, expected, __LINE__)

static void objects_arrays_and_literals_are_read() {
  wasmtx_json v;
  CHECK(parse(" {\"a\": [true, false, null, \"x\", {}], \"b\": {\"c\": 1}} \n", &v));
  CHECK(v.kind == WASMTX_JSON_OBJECT && v.as.object.len == 2);
  bool repeated;
  const wasmtx_json *a = wasmtx_json_get(&v, "a", &repeated);
  CHECK(a != NULL && !repeated && a->kind == WASMTX_JSON_ARRAY && a->as.array.len == 5);
  CHECK(a->as.array.items[0].kind == WASMTX_JSON_BOOL && a->as.array.items[0].as.boolean);
  CHECK(a->as.array.items[1].kind == WASMTX_JSON_BOOL && !a->as.array.items[1].as.boolean);
  CHECK(a->as.array.items[2].kind == WASMTX_JSON_NULL);
  CHECK_BYTES(a->as.array.items[3].as.string.ptr, a->as.array.items[3].as.string.len, "x");
  CHECK(a->as.array.items[4].kind == WASMTX_JSON_OBJECT && a->as.array.items[4].as.object.len == 0);
  const wasmtx_json *b = wasmtx_json_get(&v, "b", &repeated);
  const wasmtx_json *c = wasmtx_json_get(b, "c", &repeated);
  CHECK(c != NULL && c->kind == WASMTX_JSON_INTEGER && c->as.integer == 1);
  CHECK(wasmtx_json_get(&v, "missing", &repeated) == NULL);
  CHECK(wasmtx_json_get(a, "a", &repeated) == NULL);  // not an object
  wasmtx_json_free(&v);
  CHECK(v.kind == WASMTX_JSON_NULL);
}

static void repeated_keys_are_reported_with_the_first_value() {
  wasmtx_json v;
  CHECK(parse("{\"id\":\"alice\",\"note\":1,\"id\":\"bob\"}", &v));
  bool repeated = false;
  const wasmtx_json *id = wasmtx_json_get(&v, "id", &repeated);
  CHECK(repeated);
  CHECK_BYTES(id->as.string.ptr, id->as.string.len, "alice");
  wasmtx_json_get(&v, "note", &repeated);
  CHECK(!repeated);
  wasmtx_json_free(&v);
}

static void integers_are_exactly_those_in_int64_range() {
  static const struct {
    const char *text;
    wasmtx_json_kind kind;
    int64_t integer;
    bool out_of_range;
  } CASES[] = {
      {"0", WASMTX_JSON_INTEGER, 0, false},
      {"-5", WASMTX_JSON_INTEGER, -5, false},
      {"9223372036854775807", WASMTX_JSON_INTEGER, INT64_MAX, false},
      {"-9223372036854775808", WASMTX_JSON_INTEGER, INT64_MIN, false},
      {"9223372036854775808", WASMTX_JSON_OTHER_NUMBER, 0, true},
      {"-9223372036854775809", WASMTX_JSON_OTHER_NUMBER, 0, true},
      {"123456789012345678901234567890", WASMTX_JSON_OTHER_NUMBER, 0, true},
      // serde_json reads these as floats.
      {"-0", WASMTX_JSON_OTHER_NUMBER, 0, false},
      {"-0.0", WASMTX_JSON_OTHER_NUMBER, 0, false},
      {"1.0", WASMTX_JSON_OTHER_NUMBER, 0, false},
      {"1e2", WASMTX_JSON_OTHER_NUMBER, 0, false},
      {"1E+2", WASMTX_JSON_OTHER_NUMBER, 0, false},
      {"5e-1", WASMTX_JSON_OTHER_NUMBER, 0, false},
      {"1e400", WASMTX_JSON_OTHER_NUMBER, 0, false},
  };
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
    wasmtx_json v;
    CHECK(parse(CASES[i].text, &v));
    if (v.kind != CASES[i].kind) fprintf(stderr, "  %s\n", CASES[i].text);
    CHECK(v.kind == CASES[i].kind);
    if (v.kind == WASMTX_JSON_INTEGER) CHECK(v.as.integer == CASES[i].integer);
    if (v.kind == WASMTX_JSON_OTHER_NUMBER) CHECK(v.as.out_of_range == CASES[i].out_of_range);
  }
}

static void malformed_numbers_are_refused() {
  REFUSED("-", "invalid number at byte 1");
  REFUSED("1.", "invalid number at byte 2");
  REFUSED("1e", "invalid number at byte 2");
  REFUSED("1e+", "invalid number at byte 3");
  REFUSED(".5", "expected a value at byte 0");
  REFUSED("+1", "expected a value at byte 0");
  REFUSED("01", "trailing characters at byte 1");
  REFUSED("-a", "invalid number at byte 1");
}

static void malformed_texts_are_refused_with_the_position() {
  REFUSED("", "unexpected end of input at byte 0");
  REFUSED("   ", "unexpected end of input at byte 3");
  REFUSED("{} x", "trailing characters at byte 3");
  REFUSED("nul", "invalid literal at byte 0");
  REFUSED("tru", "invalid literal at byte 0");
  REFUSED("[1,]", "expected a value at byte 3");
  REFUSED("[1 2]", "expected `,` or `]` at byte 3");
  REFUSED("{\"a\" 1}", "expected `:` at byte 5");
  REFUSED("{\"a\":1,}", "expected a string key at byte 7");
  REFUSED("{a:1}", "expected a string key at byte 1");
  REFUSED("{\"a\":1 \"b\":2}", "expected `,` or `}` at byte 7");
  REFUSED("\"abc", "unterminated string at byte 4");
  REFUSED("\"a\\", "unterminated string at byte 3");
  REFUSED("\"a\tb\"", "control character in string at byte 2");
  REFUSED("\"\\x\"", "invalid escape at byte 3");
  REFUSED("\"\\u12\"", "invalid \\u escape at byte 3");
  REFUSED("\"\\u12g4\"", "invalid \\u escape at byte 3");
  // A failure deep inside frees what was built (LeakSanitizer checks it).
  REFUSED("[{\"a\":[\"b\",{\"c\":\"d\"}]}, \"e\", x]", "expected a value at byte 29");
  REFUSED("{\"a\":\"b\",\"c\":[1,2,\"x\"", "expected `,` or `]` at byte 21");
}

static void nesting_is_limited_to_128_levels() {
  char text[2 * 130 + 1];
  for (int depth = 127; depth <= 129; depth++) {
    size_t n = 0;
    for (int i = 0; i < depth; i++) text[n++] = '[';
    for (int i = 0; i < depth; i++) text[n++] = ']';
    text[n] = '\0';
    wasmtx_json v;
    char why[96];
    bool ok = wasmtx_json_parse((const uint8_t *)text, n, &v, why, sizeof why);
    if (depth <= WASMTX_JSON_MAX_DEPTH) {
      CHECK(ok);
      if (ok) wasmtx_json_free(&v);
    } else {
      CHECK(!ok && strcmp(why, "nesting too deep at byte 128") == 0);
    }
  }
  // Objects count too, mixed with arrays.
  char mixed[6 * 129 + 1];
  size_t n = 0;
  for (int i = 0; i < 129; i++) {
    memcpy(mixed + n, i % 2 ? "[" : "{\"k\":", i % 2 ? 1 : 5);
    n += i % 2 ? 1 : 5;
  }
  mixed[n] = '\0';
  wasmtx_json v;
  char why[96];
  CHECK(!wasmtx_json_parse((const uint8_t *)mixed, n, &v, why, sizeof why));
  CHECK(strstr(why, "nesting too deep") == why);
}

static void escapes_decode_to_utf8() {
  wasmtx_json v;
  CHECK(parse("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"", &v));
  CHECK_BYTES(v.as.string.ptr, v.as.string.len, "\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  wasmtx_json_free(&v);
  // "\u0000" is a character like any other: the length keeps it.
  CHECK(parse("\"a\\u0000b\"", &v));
  CHECK(v.as.string.len == 3 && memcmp(v.as.string.ptr, "a\0b", 3) == 0);
  wasmtx_json_free(&v);
  CHECK(parse("\"\"", &v));
  CHECK(v.kind == WASMTX_JSON_STRING && v.as.string.len == 0);
  wasmtx_json_free(&v);
}

static void lone_surrogates_are_refused() {
  REFUSED("\"\\ud800\"", "lone leading surrogate at byte 7");
  REFUSED("\"\\ud800x\"", "lone leading surrogate at byte 7");
  REFUSED("\"\\ud800\\u0041\"", "lone leading surrogate at byte 13");
  REFUSED("\"\\ud800\\ud800\"", "lone leading surrogate at byte 13");
  REFUSED("\"\\udc00\"", "lone trailing surrogate at byte 7");
  REFUSED("\"\\udfff\\ud800\"", "lone trailing surrogate at byte 7");
  REFUSED("{\"\\ud800\":1}", "lone leading surrogate at byte 8");
}

static void bad_utf8_is_refused() {
  REFUSED("\"\xff\"", "invalid UTF-8 at byte 1");
  REFUSED("\"\xc0\xaf\"", "invalid UTF-8 at byte 1");          // overlong '/'
  REFUSED("\"\xe0\x80\xaf\"", "invalid UTF-8 at byte 1");      // overlong, 3 bytes
  REFUSED("\"\xed\xa0\x80\"", "invalid UTF-8 at byte 1");      // an encoded surrogate
  REFUSED("\"\xf4\x90\x80\x80\"", "invalid UTF-8 at byte 1");  // above U+10FFFF
  REFUSED("\"ab\xe2\x82\"", "invalid UTF-8 at byte 3");        // cut short
  REFUSED_N("\"\xe2\x82", 3, "invalid UTF-8 at byte 1");       // cut at the end of input
  REFUSED("\"\x80\"", "invalid UTF-8 at byte 1");              // a lone continuation byte
  wasmtx_json v;
  CHECK(parse("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"", &v));
  CHECK(v.as.string.len == 13);
  wasmtx_json_free(&v);
}

static void strings_are_written_as_json_literals() {
  wasmtx_buf b = {0};
  wasmtx_buf_json_string(&b, "a\"b\\c\b\f\n\r\t\x01\x1f\0\xc3\xa9/", 16);
  CHECK_BYTES(b.ptr, b.len, "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f\\u0000\xc3\xa9/\"");
  b.len = 0;
  wasmtx_buf_json_string(&b, "", 0);
  CHECK_BYTES(b.ptr, b.len, "\"\"");
  // What is written reads back as the same bytes.
  b.len = 0;
  const char original[] = "x\0y\"\x7f\xe2\x82\xac";
  wasmtx_buf_json_string(&b, original, sizeof original - 1);
  wasmtx_json v;
  char why[96];
  CHECK(wasmtx_json_parse((const uint8_t *)b.ptr, b.len, &v, why, sizeof why));
  CHECK(v.as.string.len == sizeof original - 1 && memcmp(v.as.string.ptr, original, v.as.string.len) == 0);
  wasmtx_json_free(&v);
  free(b.ptr);
}

// wasmtx_buf_printf writes what snprintf writes, for every format without "%.*s".
#define SAME_AS_SNPRINTF(...)                                     \
  do {                                                            \
    char want[256];                                               \
    snprintf(want, sizeof want, __VA_ARGS__);                     \
    wasmtx_buf b = {0};                                           \
    wasmtx_buf_printf(&b, __VA_ARGS__);                           \
    CHECK_BYTES(b.ptr, b.len, want);                              \
    free(b.ptr);                                                  \
  } while (0)

static void printf_matches_snprintf() {
  int x = 42;
  SAME_AS_SNPRINTF("plain text");
  SAME_AS_SNPRINTF("%d|%i|%5d|%-5d|%05d|%+d|% d", -7, 8, 9, 10, 11, 12, 13);
  SAME_AS_SNPRINTF("%lld %lld %llu", (long long)INT64_MIN, (long long)INT64_MAX, (unsigned long long)UINT64_MAX);
  SAME_AS_SNPRINTF("%ld %lu %zu %zd %jd %td", -1L, 2UL, (size_t)3, (ptrdiff_t)-4, (intmax_t)5, (ptrdiff_t)6);
  SAME_AS_SNPRINTF("%hhd %hd %hhu %hu", 300, 70000, 300, 70000);
  SAME_AS_SNPRINTF("%x %X %#x %o %#o %08x", 255u, 255u, 255u, 8u, 8u, 0xbeefu);
  SAME_AS_SNPRINTF("%f %.2f %10.3f %-10.1f| %e %g %G %a", 1.5, 3.14159, -2.5, 7.25, 12345.678, 0.0001, 1e20, 1.0);
  SAME_AS_SNPRINTF("%Lf", (long double)2.5);
  SAME_AS_SNPRINTF("%c%c%3c%-3c|", 'a', 'b', 'c', 'd');
  SAME_AS_SNPRINTF("%s|%10s|%-10s|%.2s|%5.1s|", "abc", "right", "left", "truncate", "xyz");
  SAME_AS_SNPRINTF("%*d|%-*d|%*d|%.*d|%.*d", 6, 1, 6, 2, -6, 3, 4, 5, -1, 6);
  SAME_AS_SNPRINTF("100%% %%d %s", "sure");
  SAME_AS_SNPRINTF("%p", (void *)&x);
  SAME_AS_SNPRINTF("%" PRId64 " %" PRIu64, INT64_MIN, UINT64_MAX);
}

static void precision_argument_writes_exactly_that_many_bytes() {
  wasmtx_buf b = {0};
  wasmtx_str s = {"a\0b", 3};
  wasmtx_buf_printf(&b, "[%.*s]", WASMTX_STR_ARG(s));
  CHECK(b.len == 5 && memcmp(b.ptr, "[a\0b]", 5) == 0);
  b.len = 0;
  wasmtx_buf_printf(&b, "[%6.*s|%-6.*s]", 3, "xyz", 2, "xy");
  CHECK_BYTES(b.ptr, b.len, "[   xyz|xy    ]");
  // NULL prints as glibc prints it (the compiler must not see it is NULL).
  const char *volatile nothing = NULL;
  b.len = 0;
  wasmtx_buf_printf(&b, "[%s|%.*s]", nothing, 3, nothing);
  CHECK_BYTES(b.ptr, b.len, "[(null)|(null)]");
  free(b.ptr);
}

static void printf_appends_and_handles_odd_formats() {
  wasmtx_buf b = {0};
  wasmtx_buf_printf(&b, "a");
  wasmtx_buf_printf(&b, "%s", "b");
  wasmtx_buf_append(&b, "c", 1);
  CHECK_BYTES(b.ptr, b.len, "abc");
  b.len = 0;
  int stored = -1;
  wasmtx_buf_printf(&b, "x%ny", &stored);
  CHECK_BYTES(b.ptr, b.len, "xy");
  CHECK(stored == -1);  // %n stores nothing
  free(b.ptr);
}

static void allocation_failure_is_sticky() {
  wasmtx_buf b = {0};
  wasmtx_buf_append(&b, "ok", 2);
  wasmtx_buf_append(&b, "huge", SIZE_MAX / 2);
  CHECK(b.oom);
  wasmtx_buf_append(&b, "more", 4);
  wasmtx_buf_printf(&b, "%d", 5);
  CHECK_BYTES(b.ptr, b.len, "ok");
  free(b.ptr);
}

static void long_output_grows_the_buffer() {
  wasmtx_buf b = {0};
  for (int i = 0; i < 1000; i++) wasmtx_buf_printf(&b, "%04d,", i);
  CHECK(b.len == 5000 && memcmp(b.ptr + 4995, "0999,", 5) == 0 && !b.oom);
  free(b.ptr);
}

TEST_MAIN(TEST(objects_arrays_and_literals_are_read), TEST(repeated_keys_are_reported_with_the_first_value),
          TEST(integers_are_exactly_those_in_int64_range), TEST(malformed_numbers_are_refused),
          TEST(malformed_texts_are_refused_with_the_position), TEST(nesting_is_limited_to_128_levels),
          TEST(escapes_decode_to_utf8), TEST(lone_surrogates_are_refused), TEST(bad_utf8_is_refused),
          TEST(strings_are_written_as_json_literals), TEST(printf_matches_snprintf),
          TEST(precision_argument_writes_exactly_that_many_bytes), TEST(printf_appends_and_handles_odd_formats),
          TEST(allocation_failure_is_sticky), TEST(long_output_grows_the_buffer))
