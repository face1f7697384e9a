// wasmtx.h: write wasmtx branch functions in C.
//
// A module is its business functions plus a table that names them:
//
//     static bool trans_out(wasmtx_call *call) { ... }
//     static const wasmtx_function FUNCTIONS[] = {{"trans-out", trans_out}, ...};
//     WASMTX_EXPORT(FUNCTIONS);
//
// The library implements the component's `wasmtx:runtime/handler` export once
// (wasmtx_component.c, the only file that sees the generated bindings): it
// parses the JSON payload, runs the function named by the host, and turns
// what the function left in its `wasmtx_call` (output, or an error) into the
// WIT result. All memory the generated bindings hand over is freed by the
// library; what a function gets from it (payload strings, rows, database
// errors) lives until the function returns.
//
// A function returns true on success, or false after setting an error. Every
// fallible helper below follows that rule (it sets the error and returns
// false), so a function propagates with `if (!helper(...)) return false;`,
// C's spelling of Rust's `?`. See guest-sdk/c/README.md.
#ifndef WASMTX_H
#define WASMTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wasmtx_json.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WASMTX_PRINTF(format_index, first_arg) __attribute__((format(printf, format_index, first_arg)))

// --- registration --------------------------------------------------------------

/// One invocation: payload, context, output and error. Owned by the library.
typedef struct wasmtx_call wasmtx_call;

/// A branch function: true on success (the output is what it wrote with
/// wasmtx_out_*, or `null` if it wrote nothing), false after setting an error.
typedef bool (*wasmtx_handler)(wasmtx_call *call);

typedef struct {
  const char *name;
  wasmtx_handler run;
} wasmtx_function;

/// The module's functions; defined by WASMTX_EXPORT.
typedef struct {
  const wasmtx_function *functions;
  size_t count;
} wasmtx_module;

extern const wasmtx_module wasmtx_exported_module;

/// Exports the functions of the array `table`, once per module. Names must be
/// non-empty and distinct; a table that breaks this traps at upload (the
/// host's `functions()` call), so the module is refused before it runs.
#define WASMTX_EXPORT(table)                                                                     \
  _Static_assert(!__builtin_types_compatible_p(__typeof__(table), __typeof__(&(table)[0])),     \
                 "WASMTX_EXPORT takes the array of wasmtx_function itself, not a pointer");     \
  const wasmtx_module wasmtx_exported_module = {(table), sizeof(table) / sizeof((table)[0])}

// --- context -------------------------------------------------------------------

/// Which step of the protocol the host runs (the WIT `op`, in its order).
typedef enum {
  WASMTX_OP_ACTION,
  WASMTX_OP_COMPENSATE,
  WASMTX_OP_TRY,
  WASMTX_OP_CONFIRM,
  WASMTX_OP_CANCEL,
  WASMTX_OP_COMMIT,
  WASMTX_OP_ROLLBACK,
  /// A direct call outside any global transaction.
  WASMTX_OP_CALL,
} wasmtx_op;

typedef struct {
  wasmtx_str name;
  wasmtx_str value;
} wasmtx_header;

/// What the host says about the invocation.
typedef struct {
  /// Global transaction id; empty for a direct call.
  wasmtx_str gid;
  /// "01", "02", ...; empty for a direct call.
  wasmtx_str branch_id;
  wasmtx_op op;
  /// 1 on the first attempt, incremented on every retry of the same op.
  uint32_t attempt;
  const wasmtx_header *headers;
  size_t header_count;
} wasmtx_context;

const wasmtx_context *wasmtx_context_of(const wasmtx_call *call);

/// The function's registered name ("trans-out").
const char *wasmtx_function_name(const wasmtx_call *call);

/// The first header called `name`, ignoring ASCII case; false if there is none.
bool wasmtx_header_value(const wasmtx_call *call, const char *name, wasmtx_str *value);

/// "action", "compensate", ...; "unknown" for a value outside the enum.
const char *wasmtx_op_name(wasmtx_op op);

// --- payload -------------------------------------------------------------------
// The payload is parsed once, before the function runs; an empty (or blank)
// payload reads as `null`. A payload that is not JSON never reaches the
// function: the call fails with "invalid payload for <function>: <why>".
//
// The getters read a required member of an object and fail the call with
// "invalid payload for <function>: " followed by
//   missing field `<name>`            the member is absent
//   duplicate field `<name>`          the member is given twice
//   field `<name>` must be <a type>   "a string", "an integer", "a boolean",
//                                     "an array", "an object"
//   field `<name>` is out of range    an integer literal outside int64_t
//   field `<name>` must be from <min> to <max>, got <n>   (wasmtx_get_i64_in)
//   <what> must be a JSON object      (wasmtx_object)
// Members the function does not read are ignored, repeated or not. -0, 1.0
// and 1e2 are not integers (serde_json reads them as floats).

/// The parsed payload (a `null` value for an empty payload).
const wasmtx_json *wasmtx_payload(const wasmtx_call *call);

/// Checks that `value` is an object; else fails with "<what> must be a JSON
/// object" ("payload", "account").
bool wasmtx_object(wasmtx_call *call, const wasmtx_json *value, const char *what);

/// Member `field` of `object` as a string (valid UTF-8, may contain NULs),
/// borrowed from the payload.
bool wasmtx_get_str(wasmtx_call *call, const wasmtx_json *object, const char *field, wasmtx_str *out);

/// Member `field` as an integer in int64_t.
bool wasmtx_get_i64(wasmtx_call *call, const wasmtx_json *object, const char *field, int64_t *out);

/// Member `field` as an integer from `min` to `max`, both included.
bool wasmtx_get_i64_in(wasmtx_call *call, const wasmtx_json *object, const char *field, int64_t min, int64_t max,
                       int64_t *out);

bool wasmtx_get_bool(wasmtx_call *call, const wasmtx_json *object, const char *field, bool *out);

/// Member `field` as an object (read its members with the getters).
bool wasmtx_get_object(wasmtx_call *call, const wasmtx_json *object, const char *field, const wasmtx_json **out);

/// Member `field` as an array: `(*out)->as.array.items[i]`, `i < (*out)->as.array.len`.
bool wasmtx_get_array(wasmtx_call *call, const wasmtx_json *object, const char *field, const wasmtx_json **out);

/// Fails with "invalid payload for <function>: <formatted>", for checks of
/// your own that are about the payload's shape.
bool wasmtx_invalid_payload(wasmtx_call *call, const char *format, ...) WASMTX_PRINTF(2, 3);

// --- results -------------------------------------------------------------------
// The formatting functions are printf with one addition: "%.*s" with
// WASMTX_STR_ARG(s) writes a wasmtx_str whole, NUL bytes included.

/// A business refusal: never retried; a saga action that fails rolls the
/// transaction back. Returns false, for `return wasmtx_failure(...);`.
bool wasmtx_failure(wasmtx_call *call, const char *format, ...) WASMTX_PRINTF(2, 3);

/// A transient problem: the host rolls the local transaction back and calls
/// again later. Returns false.
bool wasmtx_retry(wasmtx_call *call, const char *format, ...) WASMTX_PRINTF(2, 3);

/// Forgets the error set so far (say, a unique violation the function handles
/// itself). An error still set when the function returns fails the call, even
/// if the function returns true.
void wasmtx_clear_error(wasmtx_call *call);

/// Appends to the output, which must be one JSON value when the function
/// returns true. Nothing written means `null`.
void wasmtx_out_printf(wasmtx_call *call, const char *format, ...) WASMTX_PRINTF(2, 3);

/// Appends `s` to the output as a JSON string literal.
void wasmtx_out_json_string(wasmtx_call *call, wasmtx_str s);

// --- database ------------------------------------------------------------------
// Every statement runs inside the one transaction the host opened for this
// invocation; it commits only if the call succeeds. A failed statement fails
// the call with retry("database error <code>: <message>"); check
// wasmtx_db_error_of() and replace the error when a database error has a
// business meaning (a unique violation).

typedef enum {
  WASMTX_VALUE_NULL,
  WASMTX_VALUE_BOOLEAN,
  WASMTX_VALUE_INT,
  WASMTX_VALUE_FLOAT,
  WASMTX_VALUE_TEXT,
  WASMTX_VALUE_BYTES,
} wasmtx_value_kind;

typedef struct {
  const uint8_t *ptr;
  size_t len;
} wasmtx_bytes;

/// A parameter or a column value (the WIT `db.value`). Parameters only borrow
/// their strings and bytes.
typedef struct {
  wasmtx_value_kind kind;
  union {
    bool boolean;
    int64_t integer;
    double real;
    wasmtx_str text;
    wasmtx_bytes bytes;
  } as;
} wasmtx_value;

static inline wasmtx_value wasmtx_null(void) {
  wasmtx_value v = {WASMTX_VALUE_NULL, {.integer = 0}};
  return v;
}
static inline wasmtx_value wasmtx_bool(bool b) {
  wasmtx_value v = {WASMTX_VALUE_BOOLEAN, {.boolean = b}};
  return v;
}
static inline wasmtx_value wasmtx_int(int64_t n) {
  wasmtx_value v = {WASMTX_VALUE_INT, {.integer = n}};
  return v;
}
static inline wasmtx_value wasmtx_float(double x) {
  wasmtx_value v = {WASMTX_VALUE_FLOAT, {.real = x}};
  return v;
}
static inline wasmtx_value wasmtx_text_str(wasmtx_str s) {
  wasmtx_value v = {WASMTX_VALUE_TEXT, {.text = s}};
  return v;
}
/// Text from a NUL-terminated string; NULL is SQL NULL.
static inline wasmtx_value wasmtx_text_cstr(const char *s) {
  size_t len = 0;
  if (s == NULL) return wasmtx_null();
  while (s[len] != '\0') len++;
  wasmtx_value v = {WASMTX_VALUE_TEXT, {.text = {s, len}}};
  return v;
}
static inline wasmtx_value wasmtx_blob(const void *ptr, size_t len) {
  wasmtx_value v = {WASMTX_VALUE_BYTES, {.bytes = {(const uint8_t *)ptr, len}}};
  return v;
}

/// Text from a wasmtx_str or a NUL-terminated string.
/// (Variadic so that a compound literal with commas can be given.)
#define wasmtx_text(...) \
  _Generic((__VA_ARGS__), wasmtx_str: wasmtx_text_str, default: wasmtx_text_cstr)(__VA_ARGS__)

/// `params, n` for wasmtx_db_execute and wasmtx_db_query:
/// `WASMTX_PARAMS(wasmtx_int(30), wasmtx_text(id))`.
#define WASMTX_PARAMS(...)                 \
  ((const wasmtx_value[]){__VA_ARGS__}), \
      (sizeof((const wasmtx_value[]){__VA_ARGS__}) / sizeof(wasmtx_value))

/// "null", "boolean", "int", "float", "text", "bytes".
const char *wasmtx_value_kind_name(wasmtx_value_kind kind);

/// A database error: `code` is the SQLSTATE on Postgres ("23505") and the
/// extended result code on SQLite ("2067").
typedef struct {
  bool has_code;
  wasmtx_str code;
  wasmtx_str message;
  void *host;  // the library's
} wasmtx_db_error;

/// Runs a statement with `$1, $2, ...` parameters; `*affected` (if not NULL)
/// is the number of rows it changed.
bool wasmtx_db_execute(wasmtx_call *call, const char *sql, const wasmtx_value *params, size_t n,
                       uint64_t *affected);

typedef struct {
  const wasmtx_value *values;
  size_t len;
} wasmtx_row;

/// What a query returned. Freed when the function returns (or earlier with
/// wasmtx_rows_free).
typedef struct wasmtx_rows {
  const wasmtx_str *columns;
  size_t column_count;
  const wasmtx_row *rows;
  /// The number of rows.
  size_t len;
  void *host;                // the library's
  struct wasmtx_rows *next;  // the library's
} wasmtx_rows;

/// Runs a query; `*rows` receives every row.
bool wasmtx_db_query(wasmtx_call *call, const char *sql, const wasmtx_value *params, size_t n,
                     const wasmtx_rows **rows);

/// Frees `rows` now rather than when the function returns.
void wasmtx_rows_free(wasmtx_call *call, const wasmtx_rows *rows);

/// The error of the last failed statement of this call, or NULL (valid until
/// the next statement).
const wasmtx_db_error *wasmtx_db_error_of(const wasmtx_call *call);

/// 23505 on Postgres, 2067 or 1555 on SQLite.
bool wasmtx_is_unique_violation(const wasmtx_db_error *err);

/// 23503 on Postgres, 787 on SQLite.
bool wasmtx_is_foreign_key_violation(const wasmtx_db_error *err);

// Column `column` of row `row`, by name: an exact match or, failing that, one
// ignoring ASCII case (Postgres folds unquoted names to lower case). A read
// the query does not allow fails the call (the code and the query disagree:
// no retry fixes it) with
//   no row <row>: the query returned <len> row(s)
//   no column "<column>" in the result (columns: <a>, <b>)
//   column "<column>" holds <kind>, expected <kind>

/// The raw value, or NULL if there is no such row or column.
const wasmtx_value *wasmtx_rows_value(const wasmtx_rows *rows, size_t row, const char *column);

bool wasmtx_rows_i64(wasmtx_call *call, const wasmtx_rows *rows, size_t row, const char *column, int64_t *out);
/// An int column converts.
bool wasmtx_rows_f64(wasmtx_call *call, const wasmtx_rows *rows, size_t row, const char *column, double *out);
/// An int column holding 0 or 1 converts (SQLite stores booleans so).
bool wasmtx_rows_bool(wasmtx_call *call, const wasmtx_rows *rows, size_t row, const char *column, bool *out);
/// Borrowed from the rows.
bool wasmtx_rows_str(wasmtx_call *call, const wasmtx_rows *rows, size_t row, const char *column, wasmtx_str *out);
/// Borrowed from the rows.
bool wasmtx_rows_bytes(wasmtx_call *call, const wasmtx_rows *rows, size_t row, const char *column,
                       wasmtx_bytes *out);
/// Whether the column is SQL NULL (fails only for a missing row or column).
bool wasmtx_rows_is_null(wasmtx_call *call, const wasmtx_rows *rows, size_t row, const char *column, bool *out);

// --- log -----------------------------------------------------------------------

typedef enum {
  WASMTX_LOG_TRACE,
  WASMTX_LOG_DEBUG,
  WASMTX_LOG_INFO,
  WASMTX_LOG_WARN,
  WASMTX_LOG_ERROR,
} wasmtx_level;

/// A log line through the host, which tags it with the module, gid and branch.
/// A line that cannot be allocated is dropped.
void wasmtx_log(wasmtx_level level, const char *format, ...) WASMTX_PRINTF(2, 3);

#define wasmtx_log_trace(...) wasmtx_log(WASMTX_LOG_TRACE, __VA_ARGS__)
#define wasmtx_log_debug(...) wasmtx_log(WASMTX_LOG_DEBUG, __VA_ARGS__)
#define wasmtx_log_info(...) wasmtx_log(WASMTX_LOG_INFO, __VA_ARGS__)
#define wasmtx_log_warn(...) wasmtx_log(WASMTX_LOG_WARN, __VA_ARGS__)
#define wasmtx_log_error(...) wasmtx_log(WASMTX_LOG_ERROR, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif
