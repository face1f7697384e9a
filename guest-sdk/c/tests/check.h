// check.h: the assertions of the native test programs of the C guest library.
//
// CHECK(cond) and CHECK_BYTES(ptr, len, "expected") record a failure with its
// line and go on; TEST_MAIN runs the listed tests and exits 1 if any check
// failed, so `make` stops.
#ifndef WASMTX_CHECK_H
#define WASMTX_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                          \
  do {                                                                       \
    check_count++;                                                           \
    if (!(cond)) {                                                           \
      check_failures++;                                                      \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                        \
  } while (0)

// `len` bytes at `ptr` equal the NUL-terminated `expected`.
#define CHECK_BYTES(ptr, len, expected) check_bytes(__FILE__, __LINE__, (const char *)(ptr), (len), (expected))

static inline void check_bytes(const char *file, int line, const char *ptr, size_t len, const char *expected) {
  check_count++;
  size_t want = strlen(expected);
  if (len != want || (len > 0 && memcmp(ptr, expected, len) != 0)) {
    check_failures++;
    fprintf(stderr, "%s:%d: got \"%.*s\" (%zu bytes), expected \"%s\" (%zu bytes)\n", file, line, (int)len,
            ptr ? ptr : "", len, expected, want);
  }
}

typedef struct {
  const char *name;
  void (*run)(void);
} test_case;

#define TEST_MAIN(...)                                                                         \
  int main(void) {                                                                             \
    static const test_case TESTS[] = {__VA_ARGS__};                                            \
    for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++) {                              \
      int before = check_failures;                                                             \
      TESTS[i].run();                                                                          \
      fprintf(stderr, "%s %s\n", check_failures == before ? "ok  " : "FAIL", TESTS[i].name);   \
    }                                                                                          \
    fprintf(stderr, "%s: %d checks, %d failed\n", __FILE__, check_count, check_failures);      \
    return check_failures == 0 ? 0 : 1;                                                        \
  }

#define TEST(fn) {#fn, fn}

#endif
