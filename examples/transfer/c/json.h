// A small JSON reader and writer for branch payloads.
//
// It parses one UTF-8 JSON text into a tree of `json_value`s and refuses
// anything malformed (bad UTF-8, lone surrogates, trailing bytes, nesting deeper
// than JSON_MAX_DEPTH) with a message instead of crashing. It keeps only what a
// branch needs: numbers are integers (fitting in int64_t) or "other numbers".
#ifndef WASMTX_EXAMPLE_JSON_H
#define WASMTX_EXAMPLE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 128  // as serde_json

typedef enum {
  JSON_NULL,
  JSON_BOOL,
  JSON_INTEGER,
  /// A number that is not an integer in int64_t range (1.5, 1e3, 2^63), or -0.
  JSON_OTHER_NUMBER,
  JSON_STRING,
  JSON_ARRAY,
  JSON_OBJECT,
} json_kind;

typedef struct json_value json_value;
typedef struct json_member json_member;

struct json_value {
  json_kind kind;
  union {
    bool boolean;
    int64_t integer;
    /// For JSON_OTHER_NUMBER: true if it is an integer literal outside int64_t.
    bool out_of_range;
    /// Decoded UTF-8, not NUL-terminated (it may contain "\u0000").
    struct { char *ptr; size_t len; } string;
    struct { json_value *items; size_t len; } array;
    struct { json_member *members; size_t len; } object;
  } as;
};

struct json_member {
  char *key;
  size_t key_len;
  json_value value;
};

/// Parses `len` bytes at `text` into `out`, which the caller frees with
/// `json_free`. On error returns false, leaves nothing to free, and writes a
/// message to `why`.
bool json_parse(const uint8_t *text, size_t len, json_value *out, char *why, size_t why_len);

void json_free(json_value *value);

/// The value of member `key` of an object, or NULL. If the key is there more
/// than once, sets `*repeated` (the value returned is then the first).
const json_value *json_get(const json_value *object, const char *key, bool *repeated);

/// A growable output buffer. Allocation failure is sticky: once `oom` is set,
/// writes are ignored and the caller checks `oom` once at the end.
typedef struct {
  char *ptr;
  size_t len;
  size_t cap;
  bool oom;
} json_buf;

void json_buf_append(json_buf *buf, const char *s, size_t len);
void json_buf_printf(json_buf *buf, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/// Appends `len` bytes at `s` as a JSON string literal.
void json_buf_string(json_buf *buf, const char *s, size_t len);

#endif
