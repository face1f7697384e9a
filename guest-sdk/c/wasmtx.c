// wasmtx.c: the pure part of the wasmtx C guest library (see wasmtx.h).
//
// Dispatch, payload getters, messages, rows by column name and the lifetime of
// everything a call borrows. It reaches the host only through wasmtx_host.h,
// and never names a generated type, so the native tests run all of it with
// test doubles. Nothing here may crash on bad input: every problem becomes
// the call's error.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasmtx_host.h"

struct wasmtx_call {
  const char *name;
  const wasmtx_context *ctx;
  wasmtx_json payload;
  wasmtx_buf out;
  /// Set by wasmtx_failure / wasmtx_retry and the helpers that fail.
  bool failed;
  wasmtx_outcome error_kind;
  wasmtx_buf message;
  /// Every wasmtx_rows not yet freed.
  wasmtx_rows *rows;
  bool has_db_error;
  wasmtx_db_error db_error;
};

// --- errors --------------------------------------------------------------------

static void forget_error(wasmtx_call *call) {
  free(call->message.ptr);
  call->message = (wasmtx_buf){0};
  call->failed = false;
}

static bool set_error(wasmtx_call *call, wasmtx_outcome kind, const char *prefix, const char *format,
                      va_list args) {
  forget_error(call);
  call->failed = true;
  call->error_kind = kind;
  if (prefix != NULL) {
    wasmtx_buf_printf(&call->message, "invalid payload for %s: ", prefix);
  }
  wasmtx_buf_vprintf(&call->message, format, args);
  if (call->message.oom) {
    // Out of memory: a retry, with what little text can still be had.
    free(call->message.ptr);
    call->message = (wasmtx_buf){0};
    call->error_kind = WASMTX_OUTCOME_RETRY;
    wasmtx_buf_append(&call->message, "out of memory", 13);
  }
  return false;
}

bool wasmtx_failure(wasmtx_call *call, const char *format, ...) {
  va_list args;
  va_start(args, format);
  set_error(call, WASMTX_OUTCOME_FAILURE, NULL, format, args);
  va_end(args);
  return false;
}

bool wasmtx_retry(wasmtx_call *call, const char *format, ...) {
  va_list args;
  va_start(args, format);
  set_error(call, WASMTX_OUTCOME_RETRY, NULL, format, args);
  va_end(args);
  return false;
}

bool wasmtx_invalid_payload(wasmtx_call *call, const char *format, ...) {
  va_list args;
  va_start(args, format);
  set_error(call, WASMTX_OUTCOME_FAILURE, call->name, format, args);
  va_end(args);
  return false;
}

void wasmtx_clear_error(wasmtx_call *call) {
  forget_error(call);
}

// --- context -------------------------------------------------------------------

const wasmtx_context *wasmtx_context_of(const wasmtx_call *call) {
  return call->ctx;
}

const char *wasmtx_function_name(const wasmtx_call *call) {
  return call->name;
}

static char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool equal_ignoring_ascii_case(wasmtx_str a, const char *b, size_t b_len) {
  if (a.len != b_len) return false;
  for (size_t i = 0; i < b_len; i++) {
    if (ascii_lower(a.ptr[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool wasmtx_header_value(const wasmtx_call *call, const char *name, wasmtx_str *value) {
  size_t len = strlen(name);
  for (size_t i = 0; i < call->ctx->header_count; i++) {
    if (equal_ignoring_ascii_case(call->ctx->headers[i].name, name, len)) {
      *value = call->ctx->headers[i].value;
      return true;
    }
  }
  return false;
}

const char *wasmtx_op_name(wasmtx_op op) {
  static const char *const NAMES[] = {"action", "compensate", "try", "confirm",
                                      "cancel", "commit",     "rollback", "call"};
  return (unsigned)op < sizeof NAMES / sizeof NAMES[0] ? NAMES[op] : "unknown";
}

// --- payload -------------------------------------------------------------------

const wasmtx_json *wasmtx_payload(const wasmtx_call *call) {
  return &call->payload;
}

bool wasmtx_object(wasmtx_call *call, const wasmtx_json *value, const char *what) {
  if (value == NULL || value->kind != WASMTX_JSON_OBJECT) {
    return wasmtx_invalid_payload(call, "%s must be a JSON object", what);
  }
  return true;
}

// Member `field` of `object` if it is there exactly once and of `kind`; else
// fails the call and returns NULL.
static const wasmtx_json *member(wasmtx_call *call, const wasmtx_json *object, const char *field,
                                 wasmtx_json_kind kind) {
  static const char *const NAMES[] = {
      [WASMTX_JSON_NULL] = "null",          [WASMTX_JSON_BOOL] = "a boolean", [WASMTX_JSON_INTEGER] = "an integer",
      [WASMTX_JSON_OTHER_NUMBER] = "a number", [WASMTX_JSON_STRING] = "a string", [WASMTX_JSON_ARRAY] = "an array",
      [WASMTX_JSON_OBJECT] = "an object"};
  if (object == NULL || object->kind != WASMTX_JSON_OBJECT) {
    wasmtx_invalid_payload(call, "expected a JSON object with field `%s`", field);
    return NULL;
  }
  bool repeated;
  const wasmtx_json *v = wasmtx_json_get(object, field, &repeated);
  if (v == NULL) {
    wasmtx_invalid_payload(call, "missing field `%s`", field);
    return NULL;
  }
  if (repeated) {
    wasmtx_invalid_payload(call, "duplicate field `%s`", field);
    return NULL;
  }
  if (kind == WASMTX_JSON_INTEGER && v->kind == WASMTX_JSON_OTHER_NUMBER && v->as.out_of_range) {
    wasmtx_invalid_payload(call, "field `%s` is out of range", field);
    return NULL;
  }
  if (v->kind != kind) {
    wasmtx_invalid_payload(call, "field `%s` must be %s", field, NAMES[kind]);
    return NULL;
  }
  return v;
}

bool wasmtx_get_str(wasmtx_call *call, const wasmtx_json *object, const char *field, wasmtx_str *out) {
  const wasmtx_json *v = member(call, object, field, WASMTX_JSON_STRING);
  if (v == NULL) return false;
  *out = v->as.string;
  return true;
}

bool wasmtx_get_i64(wasmtx_call *call, const wasmtx_json *object, const char *field, int64_t *out) {
  const wasmtx_json *v = member(call, object, field, WASMTX_JSON_INTEGER);
  if (v == NULL) return false;
  *out = v->as.integer;
  return true;
}

bool wasmtx_get_i64_in(wasmtx_call *call, const wasmtx_json *object, const char *field, int64_t min, int64_t max,
                       int64_t *out) {
  int64_t n;
  if (!wasmtx_get_i64(call, object, field, &n)) return false;
  if (n < min || n > max) {
    return wasmtx_invalid_payload(call, "field `%s` must be from %lld to %lld, got %lld", field, (long long)min,
                                  (long long)max, (long long)n);
  }
  *out = n;
  return true;
}

bool wasmtx_get_bool(wasmtx_call *call, const wasmtx_json *object, const char *field, bool *out) {
  const wasmtx_json *v = member(call, object, field, WASMTX_JSON_BOOL);
  if (v == NULL) return false;
  *out = v->as.boolean;
  return true;
}

bool wasmtx_get_object(wasmtx_call *call, const wasmtx_json *object, const char *field, const wasmtx_json **out) {
  *out = member(call, object, field, WASMTX_JSON_OBJECT);
  return *out != NULL;
}

bool wasmtx_get_array(wasmtx_call *call, const wasmtx_json *object, const char *field, const wasmtx_json **out) {
  *out = member(call, object, field, WASMTX_JSON_ARRAY);
  return *out != NULL;
}

// --- output --------------------------------------------------------------------

void wasmtx_out_printf(wasmtx_call *call, const char *format, ...) {
  va_list args;
  va_start(args, format);
  wasmtx_buf_vprintf(&call->out, format, args);
  va_end(args);
}

void wasmtx_out_json_string(wasmtx_call *call, wasmtx_str s) {
  wasmtx_buf_json_string(&call->out, s.ptr, s.len);
}

// --- database ------------------------------------------------------------------

const char *wasmtx_value_kind_name(wasmtx_value_kind kind) {
  static const char *const NAMES[] = {"null", "boolean", "int", "float", "text", "bytes"};
  return (unsigned)kind < sizeof NAMES / sizeof NAMES[0] ? NAMES[kind] : "unknown";
}

static void forget_db_error(wasmtx_call *call) {
  if (call->has_db_error) {
    wasmtx_host_free_db_error(&call->db_error);
    call->has_db_error = false;
  }
}

// A database error is taken to be transient: retry, with the database's words.
static bool db_failed(wasmtx_call *call) {
  call->has_db_error = true;
  const wasmtx_db_error *e = &call->db_error;
  if (e->has_code) {
    return wasmtx_retry(call, "database error %.*s: %.*s", WASMTX_STR_ARG(e->code), WASMTX_STR_ARG(e->message));
  }
  return wasmtx_retry(call, "database error: %.*s", WASMTX_STR_ARG(e->message));
}

static wasmtx_str str_of(const char *s) {
  return (wasmtx_str){s, strlen(s)};
}

// A parameter of no known kind is a bug in the module: a failure, before the
// host sees it.
static bool valid_params(wasmtx_call *call, const wasmtx_value *params, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if ((unsigned)params[i].kind > WASMTX_VALUE_BYTES) {
      return wasmtx_failure(call, "parameter $%zu has no valid kind (%d)", i + 1, (int)params[i].kind);
    }
  }
  return true;
}

bool wasmtx_db_execute(wasmtx_call *call, const char *sql, const wasmtx_value *params, size_t n,
                       uint64_t *affected) {
  forget_db_error(call);
  if (!valid_params(call, params, n)) return false;
  uint64_t count;
  call->db_error = (wasmtx_db_error){0};
  if (!wasmtx_host_execute(str_of(sql), params, n, &count, &call->db_error)) {
    return db_failed(call);
  }
  if (affected != NULL) *affected = count;
  return true;
}

bool wasmtx_db_query(wasmtx_call *call, const char *sql, const wasmtx_value *params, size_t n,
                     const wasmtx_rows **rows) {
  forget_db_error(call);
  *rows = NULL;
  if (!valid_params(call, params, n)) return false;
  wasmtx_rows *kept = malloc(sizeof *kept);
  if (kept == NULL) return wasmtx_retry(call, "out of memory");
  *kept = (wasmtx_rows){0};
  call->db_error = (wasmtx_db_error){0};
  if (!wasmtx_host_query(str_of(sql), params, n, kept, &call->db_error)) {
    free(kept);
    return db_failed(call);
  }
  kept->next = call->rows;
  call->rows = kept;
  *rows = kept;
  return true;
}

void wasmtx_rows_free(wasmtx_call *call, const wasmtx_rows *rows) {
  for (wasmtx_rows **link = &call->rows; *link != NULL; link = &(*link)->next) {
    if (*link == rows) {
      wasmtx_rows *gone = *link;
      *link = gone->next;
      wasmtx_host_free_rows(gone);
      free(gone);
      return;
    }
  }
}

const wasmtx_db_error *wasmtx_db_error_of(const wasmtx_call *call) {
  return call->has_db_error ? &call->db_error : NULL;
}

static bool code_is(const wasmtx_db_error *err, const char *const *codes) {
  if (err == NULL || !err->has_code) return false;
  for (; *codes != NULL; codes++) {
    if (err->code.len == strlen(*codes) && memcmp(err->code.ptr, *codes, err->code.len) == 0) return true;
  }
  return false;
}

bool wasmtx_is_unique_violation(const wasmtx_db_error *err) {
  static const char *const CODES[] = {"23505", "2067", "1555", NULL};
  return code_is(err, CODES);
}

bool wasmtx_is_foreign_key_violation(const wasmtx_db_error *err) {
  static const char *const CODES[] = {"23503", "787", NULL};
  return code_is(err, CODES);
}

// --- rows ----------------------------------------------------------------------

// The index of `column`: an exact match first, then one ignoring ASCII case.
static bool column_index(const wasmtx_rows *rows, const char *column, size_t *index) {
  size_t len = strlen(column);
  for (size_t i = 0; i < rows->column_count; i++) {
    if (rows->columns[i].len == len && memcmp(rows->columns[i].ptr, column, len) == 0) {
      *index = i;
      return true;
    }
  }
  for (size_t i = 0; i < rows->column_count; i++) {
    if (equal_ignoring_ascii_case(rows->columns[i], column, len)) {
      *index = i;
      return true;
    }
  }
  return false;
}

const wasmtx_value *wasmtx_rows_value(const wasmtx_rows *rows, size_t row, const char *column) {
  size_t index;
  if (row >= rows->len || !column_index(rows, column, &index) || index >= rows->rows[row].len) return NULL;
  return &rows->rows[row].values[index];
}

// The value at (row, column), or NULL after failing the call.
static const wasmtx_value *cell(wasmtx_call *call, const wasmtx_rows *rows, size_t row, const char *column) {
  if (row >= rows->len) {
    wasmtx_failure(call, "no row %zu: the query returned %zu row(s)", row, rows->len);
    return NULL;
  }
  const wasmtx_value *v = wasmtx_rows_value(rows, row, column);
  if (v == NULL) {
    wasmtx_buf names = {0};
    for (size_t i = 0; i < rows->column_count; i++) {
      wasmtx_buf_printf(&names, "%s%.*s", i ? ", " : "", WASMTX_STR_ARG(rows->columns[i]));
    }
    wasmtx_failure(call, "no column \"%s\" in the result (columns: %.*s)", column, (int)names.len,
                   names.ptr ? names.ptr : "");
    free(names.ptr);
    if (names.oom) wasmtx_retry(call, "out of memory");
  }
  return v;
}

static bool wrong_type(wasmtx_call *call, const char *column, const wasmtx_value *v, const char *expected) {
  return wasmtx_failure(call, "column \"%s\" holds %s, expected %s", column, wasmtx_value_kind_name(v->kind),
                        expected);
}

bool wasmtx_rows_i64(wasmtx_call *call, const wasmtx_rows *rows, size_t row, const char *column, int64_t *out) {
  const wasmtx_value *v = cell(call, rows, row, column);
  if (v == NULL) return false;
  if (v->kind != WASMTX_VALUE_INT) return wrong_type(call, column, v, "int");
  *out = v->as.integer;
  return true;
}

bool wasmtx_rows_f64(wasmtx_call *call, const wasmtx_rows *rows, size_t row, const char *column, double *out) {
  const wasmtx_value *v = cell(call, rows, row, column);
  if (v == NULL) return false;
  if (v->kind == WASMTX_VALUE_FLOAT) {
    *out = v->as.real;
  } else if (v->kind == WASMTX_VALUE_INT) {
    *out = (double)v->as.integer;
  } else {
    return wrong_type(call, column, v, "float or int");
  }
  return true;
}

bool wasmtx_rows_bool(wasmtx_call *call, const wasmtx_rows *rows, size_t row, const char *column, bool *out) {
  const wasmtx_value *v = cell(call, rows, row, column);
  if (v == NULL) return false;
  if (v->kind == WASMTX_VALUE_BOOLEAN) {
    *out = v->as.boolean;
  } else if (v->kind == WASMTX_VALUE_INT && (v->as.integer == 0 || v->as.integer == 1)) {
    *out = v->as.integer == 1;
  } else {
    return wrong_type(call, column, v, "boolean or int 0/1");
  }
  return true;
}

bool wasmtx_rows_str(wasmtx_call *call, const wasmtx_rows *rows, size_t row, const char *column, wasmtx_str *out) {
  const wasmtx_value *v = cell(call, rows, row, column);
  if (v == NULL) return false;
  if (v->kind != WASMTX_VALUE_TEXT) return wrong_type(call, column, v, "text");
  *out = v->as.text;
  return true;
}

bool wasmtx_rows_bytes(wasmtx_call *call, const wasmtx_rows *rows, size_t row, const char *column,
                       wasmtx_bytes *out) {
  const wasmtx_value *v = cell(call, rows, row, column);
  if (v == NULL) return false;
  if (v->kind != WASMTX_VALUE_BYTES) return wrong_type(call, column, v, "bytes");
  *out = v->as.bytes;
  return true;
}

bool wasmtx_rows_is_null(wasmtx_call *call, const wasmtx_rows *rows, size_t row, const char *column, bool *out) {
  const wasmtx_value *v = cell(call, rows, row, column);
  if (v == NULL) return false;
  *out = v->kind == WASMTX_VALUE_NULL;
  return true;
}

// --- log -----------------------------------------------------------------------

void wasmtx_log(wasmtx_level level, const char *format, ...) {
  wasmtx_buf line = {0};
  va_list args;
  va_start(args, format);
  wasmtx_buf_vprintf(&line, format, args);
  va_end(args);
  if (!line.oom) {
    wasmtx_host_log(level, (wasmtx_str){line.ptr ? line.ptr : "", line.len});
  }
  free(line.ptr);
}

// --- dispatch ------------------------------------------------------------------

const char *wasmtx_module_problem(const wasmtx_module *module) {
  if (module->count == 0) return "the module exports no function";
  for (size_t i = 0; i < module->count; i++) {
    const wasmtx_function *f = &module->functions[i];
    if (f->name == NULL || f->name[0] == '\0') return "a function has no name";
    if (f->run == NULL) return "a function has no code (run is NULL)";
    for (size_t j = 0; j < i; j++) {
      if (strcmp(module->functions[j].name, f->name) == 0) return "a function name is registered twice";
    }
  }
  return NULL;
}

static const wasmtx_function *find(const wasmtx_module *module, wasmtx_str name) {
  for (size_t i = 0; i < module->count; i++) {
    const char *candidate = module->functions[i].name;
    if (strlen(candidate) == name.len && memcmp(candidate, name.ptr, name.len) == 0) {
      return &module->functions[i];
    }
  }
  return NULL;
}

// Blank means null, as in the Rust SDK (its test: u8::is_ascii_whitespace).
static bool blank(const uint8_t *payload, size_t len) {
  for (size_t i = 0; i < len; i++) {
    uint8_t c = payload[i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f') return false;
  }
  return true;
}

// Moves the call's result into `out`: the output, or the message.
static wasmtx_outcome finish(wasmtx_call *call, bool ok, wasmtx_buf *out) {
  if (!call->failed && !ok) {
    wasmtx_failure(call, "%s returned false without setting an error", call->name);
  }
  if (!call->failed && call->out.oom) {
    wasmtx_retry(call, "out of memory");
  }
  if (!call->failed && call->out.len == 0) {
    wasmtx_buf_append(&call->out, "null", 4);
    if (call->out.oom) wasmtx_retry(call, "out of memory");
  }
  if (!call->failed) {
    // The output must be one JSON value, as serde would have written it.
    wasmtx_json check;
    char why[96];
    if (wasmtx_json_parse((const uint8_t *)call->out.ptr, call->out.len, &check, why, sizeof why)) {
      wasmtx_json_free(&check);
    } else {
      wasmtx_failure(call, "cannot encode the output of %s: %s", call->name, why);
    }
  }
  if (call->failed) {
    *out = call->message;
    call->message = (wasmtx_buf){0};
    return call->error_kind;
  }
  *out = call->out;
  call->out = (wasmtx_buf){0};
  return WASMTX_OUTCOME_OK;
}

wasmtx_outcome wasmtx_dispatch(const wasmtx_module *module, wasmtx_str name, const wasmtx_context *ctx,
                               const uint8_t *payload, size_t payload_len, wasmtx_buf *out) {
  *out = (wasmtx_buf){0};
  const wasmtx_function *function = find(module, name);
  if (function == NULL) {
    wasmtx_buf_append(out, "unknown function ", 17);
    wasmtx_buf_json_string(out, name.ptr, name.len);
    for (size_t i = 0; i < module->count; i++) {
      wasmtx_buf_printf(out, "%s%s", i ? ", " : " (this module has: ", module->functions[i].name);
    }
    wasmtx_buf_append(out, ")", 1);
    if (out->oom) {
      free(out->ptr);
      *out = (wasmtx_buf){.oom = true};
      return WASMTX_OUTCOME_RETRY;
    }
    return WASMTX_OUTCOME_FAILURE;
  }

  wasmtx_call call = {.name = function->name, .ctx = ctx};
  bool ok = false;
  char why[96];
  if (blank(payload, payload_len)) {
    call.payload.kind = WASMTX_JSON_NULL;
    ok = function->run(&call);
  } else if (wasmtx_json_parse(payload, payload_len, &call.payload, why, sizeof why)) {
    ok = function->run(&call);
  } else {
    wasmtx_invalid_payload(&call, "%s", why);
  }
  wasmtx_outcome outcome = finish(&call, ok, out);

  wasmtx_json_free(&call.payload);
  free(call.out.ptr);
  free(call.message.ptr);
  while (call.rows != NULL) {
    wasmtx_rows_free(&call, call.rows);
  }
  forget_db_error(&call);
  return outcome;
}
