// wasmtx_component.c: the only file of the library that sees the generated
// bindings (branch.h, from wit-bindgen-c for the WIT world `branch`).
//
// It implements the exported `handler` interface by handing the call to
// wasmtx_dispatch, and the wasmtx_host_* seam over the imported `db` and `log`
// interfaces. It converts between generated and library types and owns the
// generated memory rules, and decides nothing else:
// - `invoke` owns its arguments and frees them; what it returns (output,
//   message, the names `functions` returns) is malloc'd, because the generated
//   post-return function frees it (and only when its length is not 0).
// - Arguments to imports are borrowed; what imports return (rows, db-error)
//   is ours, kept until the library calls wasmtx_host_free_*.
#include <stdlib.h>
#include <string.h>

#include "branch.h"
#include "wasmtx_host.h"

// The library's enums mirror the WIT ones; these keep them in step.
_Static_assert(WASMTX_OP_ACTION == WASMTX_RUNTIME_TYPES_OP_ACTION && WASMTX_OP_CALL == WASMTX_RUNTIME_TYPES_OP_CALL &&
                   WASMTX_OP_ROLLBACK == WASMTX_RUNTIME_TYPES_OP_ROLLBACK,
               "wasmtx_op follows the WIT op");
_Static_assert(WASMTX_LOG_TRACE == WASMTX_RUNTIME_LOG_LEVEL_TRACE && WASMTX_LOG_ERROR == WASMTX_RUNTIME_LOG_LEVEL_ERROR,
               "wasmtx_level follows the WIT level");

static wasmtx_str view(const branch_string_t *s) {
  return (wasmtx_str){(const char *)s->ptr, s->len};
}

// --- the exported `handler` interface --------------------------------------------

void exports_wasmtx_runtime_handler_functions(branch_list_string_t *ret) {
  const wasmtx_module *module = &wasmtx_exported_module;
  const char *problem = wasmtx_module_problem(module);
  if (problem != NULL) {
    // A table that cannot be exported is a bug in the module: trap, so that
    // the upload is refused. The log line says why.
    wasmtx_host_log(WASMTX_LOG_ERROR, (wasmtx_str){problem, strlen(problem)});
    __builtin_trap();
  }
  ret->ptr = malloc(module->count * sizeof *ret->ptr);
  ret->len = ret->ptr != NULL ? module->count : 0;
  for (size_t i = 0; i < ret->len; i++) {
    branch_string_dup(&ret->ptr[i], module->functions[i].name);
  }
}

bool exports_wasmtx_runtime_handler_invoke(branch_string_t *function, exports_wasmtx_runtime_handler_branch_context_t *ctx,
                                           branch_list_u8_t *payload, branch_list_u8_t *ret,
                                           exports_wasmtx_runtime_handler_branch_error_t *err) {
  // Out of memory for the headers leaves this: a retry with an empty message.
  wasmtx_buf out = {0};
  wasmtx_outcome outcome = WASMTX_OUTCOME_RETRY;
  size_t header_count = ctx->headers.len;
  wasmtx_header *headers = header_count ? malloc(header_count * sizeof *headers) : NULL;
  if (header_count == 0 || headers != NULL) {
    for (size_t i = 0; i < header_count; i++) {
      headers[i] = (wasmtx_header){view(&ctx->headers.ptr[i].f0), view(&ctx->headers.ptr[i].f1)};
    }
    wasmtx_context context = {
        .gid = view(&ctx->gid),
        .branch_id = view(&ctx->branch_id),
        .op = (wasmtx_op)ctx->op,
        .attempt = ctx->attempt,
        .headers = headers,
        .header_count = header_count,
    };
    outcome = wasmtx_dispatch(&wasmtx_exported_module, view(function), &context, payload->ptr, payload->len, &out);
  }
  free(headers);
  branch_string_free(function);
  exports_wasmtx_runtime_handler_branch_context_free(ctx);
  branch_list_u8_free(payload);

  if (out.len == 0) {
    free(out.ptr);  // the post-return function frees nothing of length 0
    out.ptr = NULL;
  }
  if (outcome == WASMTX_OUTCOME_OK) {
    *ret = (branch_list_u8_t){(uint8_t *)out.ptr, out.len};
    return true;
  }
  branch_string_t message = {(uint8_t *)out.ptr, out.len};
  if (outcome == WASMTX_OUTCOME_FAILURE) {
    err->tag = WASMTX_RUNTIME_TYPES_BRANCH_ERROR_FAILURE;
    err->val.failure = message;
  } else {
    err->tag = WASMTX_RUNTIME_TYPES_BRANCH_ERROR_RETRY;
    err->val.retry = message;
  }
  return false;
}

// --- the wasmtx_host_* seam over the imports ---------------------------------------

// Borrowed views of `params` in the generated layout; false if out of memory.
static bool lower(const wasmtx_value *params, size_t n, wasmtx_runtime_db_list_value_t *list) {
  *list = (wasmtx_runtime_db_list_value_t){NULL, 0};
  if (n == 0) return true;
  list->ptr = malloc(n * sizeof *list->ptr);
  if (list->ptr == NULL) return false;
  list->len = n;
  for (size_t i = 0; i < n; i++) {
    const wasmtx_value *p = &params[i];
    wasmtx_runtime_db_value_t *v = &list->ptr[i];
    switch (p->kind) {
      case WASMTX_VALUE_BOOLEAN:
        *v = (wasmtx_runtime_db_value_t){.tag = WASMTX_RUNTIME_DB_VALUE_BOOLEAN, .val.boolean = p->as.boolean};
        break;
      case WASMTX_VALUE_INT:
        *v = (wasmtx_runtime_db_value_t){.tag = WASMTX_RUNTIME_DB_VALUE_INT, .val.int_ = p->as.integer};
        break;
      case WASMTX_VALUE_FLOAT:
        *v = (wasmtx_runtime_db_value_t){.tag = WASMTX_RUNTIME_DB_VALUE_FLOAT, .val.float_ = p->as.real};
        break;
      case WASMTX_VALUE_TEXT:
        *v = (wasmtx_runtime_db_value_t){.tag = WASMTX_RUNTIME_DB_VALUE_TEXT,
                                         .val.text = {(uint8_t *)p->as.text.ptr, p->as.text.len}};
        break;
      case WASMTX_VALUE_BYTES:
        *v = (wasmtx_runtime_db_value_t){.tag = WASMTX_RUNTIME_DB_VALUE_BYTES,
                                         .val.bytes = {(uint8_t *)p->as.bytes.ptr, p->as.bytes.len}};
        break;
      default:  // WASMTX_VALUE_NULL; wasmtx.c refuses other kinds before calling
        *v = (wasmtx_runtime_db_value_t){.tag = WASMTX_RUNTIME_DB_VALUE_NULL};
        break;
    }
  }
  return true;
}

static wasmtx_value raise(const wasmtx_runtime_db_value_t *v) {
  switch (v->tag) {
    case WASMTX_RUNTIME_DB_VALUE_BOOLEAN:
      return wasmtx_bool(v->val.boolean);
    case WASMTX_RUNTIME_DB_VALUE_INT:
      return wasmtx_int(v->val.int_);
    case WASMTX_RUNTIME_DB_VALUE_FLOAT:
      return wasmtx_float(v->val.float_);
    case WASMTX_RUNTIME_DB_VALUE_TEXT:
      return wasmtx_text_str(view(&v->val.text));
    case WASMTX_RUNTIME_DB_VALUE_BYTES:
      return wasmtx_blob(v->val.bytes.ptr, v->val.bytes.len);
    default:
      return wasmtx_null();
  }
}

static const wasmtx_str OUT_OF_MEMORY = {"out of memory", 13};

static void out_of_memory(wasmtx_db_error *err) {
  *err = (wasmtx_db_error){.message = OUT_OF_MEMORY};
}

// Takes the generated `e` into `err`; the library frees it with wasmtx_host_free_db_error.
static void keep_db_error(wasmtx_runtime_db_db_error_t *e, wasmtx_db_error *err) {
  wasmtx_runtime_db_db_error_t *kept = malloc(sizeof *kept);
  if (kept == NULL) {
    wasmtx_runtime_db_db_error_free(e);
    out_of_memory(err);
    return;
  }
  *kept = *e;
  *err = (wasmtx_db_error){
      .has_code = kept->code.is_some,
      .code = kept->code.is_some ? view(&kept->code.val) : (wasmtx_str){"", 0},
      .message = view(&kept->message),
      .host = kept,
  };
}

void wasmtx_host_free_db_error(wasmtx_db_error *err) {
  if (err->host != NULL) {
    wasmtx_runtime_db_db_error_free(err->host);
    free(err->host);
  }
  *err = (wasmtx_db_error){0};
}

bool wasmtx_host_execute(wasmtx_str sql, const wasmtx_value *params, size_t n, uint64_t *affected,
                         wasmtx_db_error *err) {
  wasmtx_runtime_db_list_value_t list;
  if (!lower(params, n, &list)) {
    out_of_memory(err);
    return false;
  }
  branch_string_t s = {(uint8_t *)sql.ptr, sql.len};
  wasmtx_runtime_db_db_error_t e;
  bool ok = wasmtx_runtime_db_execute(&s, &list, affected, &e);
  free(list.ptr);
  if (!ok) keep_db_error(&e, err);
  return ok;
}

// What wasmtx_rows.host points to: the generated rows and the views of them.
typedef struct {
  wasmtx_runtime_db_rows_t raw;
  wasmtx_str *columns;
  wasmtx_row *rows;
  wasmtx_value *values;
} rows_holder;

static void free_holder(rows_holder *h) {
  wasmtx_runtime_db_rows_free(&h->raw);
  free(h->columns);
  free(h->rows);
  free(h->values);
  free(h);
}

bool wasmtx_host_query(wasmtx_str sql, const wasmtx_value *params, size_t n, wasmtx_rows *rows,
                       wasmtx_db_error *err) {
  wasmtx_runtime_db_list_value_t list;
  if (!lower(params, n, &list)) {
    out_of_memory(err);
    return false;
  }
  branch_string_t s = {(uint8_t *)sql.ptr, sql.len};
  wasmtx_runtime_db_rows_t raw;
  wasmtx_runtime_db_db_error_t e;
  bool ok = wasmtx_runtime_db_query(&s, &list, &raw, &e);
  free(list.ptr);
  if (!ok) {
    keep_db_error(&e, err);
    return false;
  }

  rows_holder *h = calloc(1, sizeof *h);
  if (h == NULL) {
    wasmtx_runtime_db_rows_free(&raw);
    out_of_memory(err);
    return false;
  }
  h->raw = raw;
  size_t total = 0;
  for (size_t r = 0; r < raw.values.len; r++) total += raw.values.ptr[r].len;
  h->columns = raw.columns.len ? malloc(raw.columns.len * sizeof *h->columns) : NULL;
  h->rows = raw.values.len ? malloc(raw.values.len * sizeof *h->rows) : NULL;
  h->values = total ? malloc(total * sizeof *h->values) : NULL;
  if ((raw.columns.len && !h->columns) || (raw.values.len && !h->rows) || (total && !h->values)) {
    free_holder(h);
    out_of_memory(err);
    return false;
  }
  for (size_t c = 0; c < raw.columns.len; c++) h->columns[c] = view(&raw.columns.ptr[c]);
  size_t at = 0;
  for (size_t r = 0; r < raw.values.len; r++) {
    const wasmtx_runtime_db_list_value_t *row = &raw.values.ptr[r];
    h->rows[r] = (wasmtx_row){h->values + at, row->len};
    for (size_t c = 0; c < row->len; c++) h->values[at++] = raise(&row->ptr[c]);
  }
  *rows = (wasmtx_rows){
      .columns = h->columns,
      .column_count = raw.columns.len,
      .rows = h->rows,
      .len = raw.values.len,
      .host = h,
  };
  return true;
}

void wasmtx_host_free_rows(wasmtx_rows *rows) {
  if (rows->host != NULL) free_holder(rows->host);
  *rows = (wasmtx_rows){0};
}

void wasmtx_host_log(wasmtx_level level, wasmtx_str message) {
  branch_string_t s = {(uint8_t *)message.ptr, message.len};
  wasmtx_runtime_log_log((wasmtx_runtime_log_level_t)level, &s);
}
