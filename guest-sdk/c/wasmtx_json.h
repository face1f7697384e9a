// wasmtx_json: the strict JSON reader and the output buffer of the wasmtx C
// guest library.
//
// The reader parses one UTF-8 JSON text into a tree of `wasmtx_json` values and
// refuses anything malformed (bad UTF-8, lone surrogates, trailing bytes,
// nesting deeper than WASMTX_JSON_MAX_DEPTH) with a message, never a crash. It
// reads numbers as serde_json does: an integer literal in int64_t range is an
// integer; everything else (1.5, 1e3, 2^63, -0) is "another number".
//
// The buffer collects output bytes and messages; `wasmtx_buf_printf` is printf
// except that `%.*s` writes exactly the given number of bytes, NULs included
// (see below).
//
// Pure C99 plus libc: no host calls, no generated bindings, so it is unit
// tested natively (guest-sdk/c/tests).
#ifndef WASMTX_JSON_H
#define WASMTX_JSON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A UTF-8 string given by pointer and length: not NUL-terminated, and it may
/// contain NUL bytes ("\u0000" in JSON). Print it with "%.*s" and
/// WASMTX_STR_ARG(s) through the wasmtx formatting functions.
typedef struct {
  const char *ptr;
  size_t len;
} wasmtx_str;

/// The two arguments "%.*s" takes, for a wasmtx_str.
#define WASMTX_STR_ARG(s) (int)(s).len, (s).ptr

/// Nesting limit of arrays and objects, as serde_json's.
#define WASMTX_JSON_MAX_DEPTH 128

typedef enum {
  WASMTX_JSON_NULL,
  WASMTX_JSON_BOOL,
  /// An integer literal that fits in int64_t.
  WASMTX_JSON_INTEGER,
  /// Any other number: 1.5, 1e3, an integer outside int64_t, or -0 (a float
  /// for serde_json).
  WASMTX_JSON_OTHER_NUMBER,
  WASMTX_JSON_STRING,
  WASMTX_JSON_ARRAY,
  WASMTX_JSON_OBJECT,
} wasmtx_json_kind;

typedef struct wasmtx_json wasmtx_json;
typedef struct wasmtx_json_member wasmtx_json_member;

struct wasmtx_json {
  wasmtx_json_kind kind;
  union {
    bool boolean;
    int64_t integer;
    /// For WASMTX_JSON_OTHER_NUMBER: true if it is an integer literal outside
    /// int64_t (a getter of an integer then says "out of range").
    bool out_of_range;
    /// Decoded UTF-8.
    wasmtx_str string;
    struct {
      wasmtx_json *items;
      size_t len;
    } array;
    struct {
      wasmtx_json_member *members;
      size_t len;
    } object;
  } as;
};

struct wasmtx_json_member {
  wasmtx_str key;
  wasmtx_json value;
};

/// Parses `len` bytes at `text` into `out`, which the caller frees with
/// `wasmtx_json_free`. On error returns false, leaves nothing to free, and
/// writes a NUL-terminated message ("invalid UTF-8 at byte 7") into `why`.
bool wasmtx_json_parse(const uint8_t *text, size_t len, wasmtx_json *out, char *why, size_t why_len);

/// Frees what `wasmtx_json_parse` allocated; `value` becomes null.
void wasmtx_json_free(wasmtx_json *value);

/// The value of member `key` of an object, or NULL (also when `object` is not
/// an object). If the key is there more than once, sets `*repeated` (the
/// value returned is then the first).
const wasmtx_json *wasmtx_json_get(const wasmtx_json *object, const char *key, bool *repeated);

/// A growable byte buffer. Allocation failure is sticky: once `oom` is set,
/// writes are ignored, and the owner checks `oom` once at the end. The bytes
/// are not NUL-terminated. Start with `wasmtx_buf b = {0};`, free `b.ptr`.
typedef struct {
  char *ptr;
  size_t len;
  size_t cap;
  bool oom;
} wasmtx_buf;

void wasmtx_buf_append(wasmtx_buf *buf, const char *bytes, size_t len);

/// Appends like printf, with one difference: "%.*s" writes exactly the given
/// number of bytes, NULs included, so that a wasmtx_str (WASMTX_STR_ARG) is
/// written whole. (printf stops at the first NUL.) "%n" is not supported and
/// writes nothing.
void wasmtx_buf_printf(wasmtx_buf *buf, const char *format, ...) __attribute__((format(printf, 2, 3)));
void wasmtx_buf_vprintf(wasmtx_buf *buf, const char *format, va_list args) __attribute__((format(printf, 2, 0)));

/// Appends `len` bytes at `s` as a JSON string literal (quotes and escapes
/// added). The bytes are expected to be UTF-8; they are copied as they are.
void wasmtx_buf_json_string(wasmtx_buf *buf, const char *s, size_t len);

#ifdef __cplusplus
}
#endif

#endif
