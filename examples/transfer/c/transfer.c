// Transfer example: a bank transfer as saga branches, in C.
//
// The same functions, SQL and messages as `examples/transfer/rust`, which is the
// spec. Business refusals are `failure` (never retried); database errors are
// `retry` (transient). Bad input never crashes: every error path returns the
// `branch-error` variant.
//
// Memory (canonical ABI, wit-bindgen C): `invoke` owns its arguments and frees
// them; what it returns (output bytes, error message) must come from malloc, as
// the generated post-return function frees it. Arguments to imports are only
// borrowed; what imports return is ours to free.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "branch.h"
#include "json.h"

typedef exports_wasmtx_runtime_handler_branch_error_t branch_error;
typedef wasmtx_runtime_db_value_t db_value;

enum { FAILURE = WASMTX_RUNTIME_TYPES_BRANCH_ERROR_FAILURE, RETRY = WASMTX_RUNTIME_TYPES_BRANCH_ERROR_RETRY };

// The largest amount a transfer step accepts, as in the Rust version.
#define MAX_AMOUNT INT64_C(1000000000000000)

// Sets `err` to the formatted message; returns false so callers can
// `return refuse(...)`.
__attribute__((format(printf, 3, 4)))
static bool refuse(branch_error *err, uint8_t tag, const char *format, ...) {
  va_list args;
  va_start(args, format);
  int n = vsnprintf(NULL, 0, format, args);
  va_end(args);
  char *msg = n < 0 ? NULL : malloc((size_t)n + 1);
  if (msg != NULL) {
    va_start(args, format);
    vsnprintf(msg, (size_t)n + 1, format, args);
    va_end(args);
  } else {
    // Out of memory: retry, with an empty message (len 0 is never freed).
    tag = RETRY;
    n = 0;
  }
  branch_string_t message = {(uint8_t *)msg, (size_t)n};
  err->tag = tag;
  if (tag == FAILURE) {
    err->val.failure = message;
  } else {
    err->val.retry = message;
  }
  return false;
}

// --- payloads -----------------------------------------------------------------
// Readers write why a payload is invalid into `why` and return false.

typedef struct {
  char text[160];
} why_t;

static bool field(const json_value *obj, const char *name, json_kind kind, const json_value **out, why_t *why) {
  static const char *const NAMES[] = {
      [JSON_STRING] = "a string", [JSON_INTEGER] = "an integer", [JSON_ARRAY] = "an array", [JSON_OBJECT] = "an object"};
  bool repeated;
  const json_value *v = json_get(obj, name, &repeated);
  if (v == NULL) {
    snprintf(why->text, sizeof why->text, "missing field `%s`", name);
    return false;
  }
  if (repeated) {
    snprintf(why->text, sizeof why->text, "duplicate field `%s`", name);
    return false;
  }
  if (kind == JSON_INTEGER && v->kind == JSON_OTHER_NUMBER && v->as.out_of_range) {
    snprintf(why->text, sizeof why->text, "field `%s` is out of range", name);
    return false;
  }
  if (v->kind != kind) {
    snprintf(why->text, sizeof why->text, "field `%s` must be %s", name, NAMES[kind]);
    return false;
  }
  *out = v;
  return true;
}

static bool object(const json_value *v, const char *what, why_t *why) {
  if (v->kind != JSON_OBJECT) {
    snprintf(why->text, sizeof why->text, "%s must be a JSON object", what);
    return false;
  }
  return true;
}

typedef struct {
  const json_value *from;
  const json_value *to;
  int64_t amount;
} transfer;

static db_value text(const json_value *s) {
  return (db_value){.tag = WASMTX_RUNTIME_DB_VALUE_TEXT, .val.text = {(uint8_t *)s->as.string.ptr, s->as.string.len}};
}

static db_value integer(int64_t n) {
  return (db_value){.tag = WASMTX_RUNTIME_DB_VALUE_INT, .val.int_ = n};
}

// A failure "<before><name><after>". Not printf's "%.*s": a name from JSON may
// contain "\u0000", and the message must keep what follows it.
static bool refuse_about(branch_error *err, const char *before, const json_value *name, const char *after) {
  json_buf msg = {0};
  json_buf_append(&msg, before, strlen(before));
  json_buf_append(&msg, name->as.string.ptr, name->as.string.len);
  json_buf_append(&msg, after, strlen(after));
  if (msg.oom) {
    free(msg.ptr);
    return refuse(err, RETRY, "out of memory");
  }
  err->tag = FAILURE;
  err->val.failure = (branch_string_t){(uint8_t *)msg.ptr, msg.len};
  return false;
}

static bool invalid(branch_error *err, const char *function, const why_t *why) {
  return refuse(err, FAILURE, "invalid payload for %s: %s", function, why->text);
}

static bool read_transfer(const char *function, const json_value *in, transfer *t, branch_error *err) {
  why_t why;
  const json_value *amount;
  if (!object(in, "payload", &why) || !field(in, "from", JSON_STRING, &t->from, &why) ||
      !field(in, "to", JSON_STRING, &t->to, &why) || !field(in, "amount", JSON_INTEGER, &amount, &why)) {
    return invalid(err, function, &why);
  }
  t->amount = amount->as.integer;
  if (t->amount <= 0) {
    return refuse(err, FAILURE, "amount must be a positive integer, got %lld", (long long)t->amount);
  }
  if (t->amount > MAX_AMOUNT) {
    return refuse(err, FAILURE, "amount must be at most %lld, got %lld", (long long)MAX_AMOUNT,
                  (long long)t->amount);
  }
  return true;
}

// --- database -----------------------------------------------------------------

// A database error is transient: the host rolls back and retries.
static bool db_failed(wasmtx_runtime_db_db_error_t *db_err, branch_error *err) {
  const branch_string_t *m = &db_err->message;
  if (db_err->code.is_some) {
    const branch_string_t *c = &db_err->code.val;
    refuse(err, RETRY, "database error %.*s: %.*s", (int)c->len, (const char *)c->ptr, (int)m->len,
           (const char *)m->ptr);
  } else {
    refuse(err, RETRY, "database error: %.*s", (int)m->len, (const char *)m->ptr);
  }
  wasmtx_runtime_db_db_error_free(db_err);
  return false;
}

static bool execute(const char *sql, db_value *params, size_t n, uint64_t *rows, branch_error *err) {
  branch_string_t s;
  branch_string_set(&s, sql);
  wasmtx_runtime_db_list_value_t list = {params, n};
  wasmtx_runtime_db_db_error_t db_err;
  return wasmtx_runtime_db_execute(&s, &list, rows, &db_err) || db_failed(&db_err, err);
}

// Looks up the balance of `account`; `*found` is false if there is no such account.
static bool balance_of(const json_value *account, bool *found, int64_t *balance, branch_error *err) {
  branch_string_t sql;
  branch_string_set(&sql, "SELECT balance FROM accounts WHERE id = $1");
  db_value params[] = {text(account)};
  wasmtx_runtime_db_list_value_t list = {params, 1};
  wasmtx_runtime_db_rows_t rows;
  wasmtx_runtime_db_db_error_t db_err;
  if (!wasmtx_runtime_db_query(&sql, &list, &rows, &db_err)) {
    return db_failed(&db_err, err);
  }
  bool ok = true;
  *found = rows.values.len > 0 && rows.values.ptr[0].len > 0;
  if (*found) {
    const db_value *cell = &rows.values.ptr[0].ptr[0];
    if (cell->tag == WASMTX_RUNTIME_DB_VALUE_INT) {
      *balance = cell->val.int_;
    } else {
      static const char *const KINDS[] = {"null", "boolean", "int", "float", "text", "bytes"};
      ok = refuse(err, FAILURE, "column \"balance\" holds %s, expected int", KINDS[cell->tag % 6]);
    }
  }
  wasmtx_runtime_db_rows_free(&rows);
  return ok;
}

// Adds `amount` to the balance of `account`; `*found` is false if there is no
// such account. The guard keeps the balance within BIGINT: past INT64_MAX,
// SQLite would store a REAL (and `balance` would then fail) and Postgres would
// fail with 22003 (a database error: retried for ever). Refused instead.
static bool credit(const json_value *account, int64_t amount, bool *found, branch_error *err) {
  uint64_t credited;
  db_value params[] = {integer(amount), text(account)};
  if (!execute("UPDATE accounts SET balance = balance + $1 WHERE id = $2 AND balance <= 9223372036854775807 - $1",
               params, 2, &credited, err)) {
    return false;
  }
  *found = true;
  if (credited == 0) {
    int64_t balance;
    if (!balance_of(account, found, &balance, err)) return false;
    if (*found) return refuse_about(err, "balance of ", account, " would overflow");
  }
  return true;
}

// --- functions ----------------------------------------------------------------
// Each reads its JSON input and appends its JSON output to `out`.

typedef bool (*branch_fn)(const char *name, const json_value *in, json_buf *out, branch_error *err);

static bool setup(const char *name, const json_value *in, json_buf *out, branch_error *err) {
  why_t why;
  const json_value *accounts;
  if (!object(in, "payload", &why) || !field(in, "accounts", JSON_ARRAY, &accounts, &why)) {
    return invalid(err, name, &why);
  }
  // Check every account before the first statement, as the Rust version does.
  for (size_t i = 0; i < accounts->as.array.len; i++) {
    const json_value *account = &accounts->as.array.items[i], *ignored;
    if (!object(account, "account", &why) || !field(account, "id", JSON_STRING, &ignored, &why) ||
        !field(account, "balance", JSON_INTEGER, &ignored, &why)) {
      return invalid(err, name, &why);
    }
  }
  uint64_t rows;
  if (!execute("CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)", NULL, 0,
               &rows, err)) {
    return false;
  }
  for (size_t i = 0; i < accounts->as.array.len; i++) {
    const json_value *account = &accounts->as.array.items[i], *id, *initial;
    field(account, "id", JSON_STRING, &id, &why);  // checked above
    field(account, "balance", JSON_INTEGER, &initial, &why);
    db_value params[] = {text(id), integer(initial->as.integer)};
    if (!execute("INSERT INTO accounts (id, balance) VALUES ($1, $2) "
                 "ON CONFLICT (id) DO UPDATE SET balance = excluded.balance",
                 params, 2, &rows, err)) {
      return false;
    }
  }
  json_buf_printf(out, "{\"accounts\":%zu}", accounts->as.array.len);
  return true;
}

static bool trans_out(const char *name, const json_value *in, json_buf *out, branch_error *err) {
  transfer t;
  uint64_t debited;
  if (!read_transfer(name, in, &t, err)) return false;
  db_value params[] = {integer(t.amount), text(t.from)};
  if (!execute("UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1", params, 2, &debited,
               err)) {
    return false;
  }
  if (debited == 0) {
    bool found;
    int64_t balance;
    if (!balance_of(t.from, &found, &balance, err)) return false;
    if (!found) return refuse_about(err, "account ", t.from, " does not exist");
    return refuse_about(err, "insufficient funds in ", t.from, "");
  }
  // The host tags the line with the module, gid and branch.
  json_buf line = {0};
  json_buf_printf(&line, "debited %lld from ", (long long)t.amount);
  json_buf_append(&line, t.from->as.string.ptr, t.from->as.string.len);
  if (!line.oom) {
    branch_string_t message = {(uint8_t *)line.ptr, line.len};
    wasmtx_runtime_log_log(WASMTX_RUNTIME_LOG_LEVEL_INFO, &message);
  }
  free(line.ptr);
  json_buf_append(out, "null", 4);
  return true;
}

static bool trans_out_revert(const char *name, const json_value *in, json_buf *out, branch_error *err) {
  transfer t;
  bool found;
  if (!read_transfer(name, in, &t, err)) return false;
  // This gives back what trans-out took: it overflows only if the balance
  // grew since (other credits, `setup`), and is then refused rather than
  // corrupted. An account that is gone has nothing to give back to.
  if (!credit(t.from, t.amount, &found, err)) return false;
  json_buf_append(out, "null", 4);
  return true;
}

static bool trans_in(const char *name, const json_value *in, json_buf *out, branch_error *err) {
  transfer t;
  bool found;
  if (!read_transfer(name, in, &t, err)) return false;
  if (!credit(t.to, t.amount, &found, err)) return false;
  if (!found) return refuse_about(err, "account ", t.to, " does not exist");
  json_buf_append(out, "null", 4);
  return true;
}

static bool trans_in_revert(const char *name, const json_value *in, json_buf *out, branch_error *err) {
  transfer t;
  uint64_t debited;
  if (!read_transfer(name, in, &t, err)) return false;
  // The guard of `credit` at the other end of BIGINT: balance - $1 >= INT64_MIN.
  db_value params[] = {integer(t.amount), text(t.to)};
  if (!execute("UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1 - 9223372036854775807 - 1",
               params, 2, &debited, err)) {
    return false;
  }
  if (debited == 0) {
    bool found;
    int64_t balance;
    if (!balance_of(t.to, &found, &balance, err)) return false;
    if (found) return refuse_about(err, "balance of ", t.to, " would overflow");
  }
  json_buf_append(out, "null", 4);
  return true;
}

static bool balance(const char *name, const json_value *in, json_buf *out, branch_error *err) {
  why_t why;
  const json_value *id;
  if (!object(in, "payload", &why) || !field(in, "id", JSON_STRING, &id, &why)) return invalid(err, name, &why);
  bool found;
  int64_t amount;
  if (!balance_of(id, &found, &amount, err)) return false;
  if (!found) return refuse_about(err, "account ", id, " does not exist");
  json_buf_append(out, "{\"id\":", 6);
  json_buf_string(out, id->as.string.ptr, id->as.string.len);
  json_buf_printf(out, ",\"balance\":%lld}", (long long)amount);
  return true;
}

static const struct {
  const char *name;
  branch_fn run;
} FUNCTIONS[] = {
    {"setup", setup},
    {"trans-out", trans_out},
    {"trans-out-revert", trans_out_revert},
    {"trans-in", trans_in},
    {"trans-in-revert", trans_in_revert},
    {"balance", balance},
};
#define FUNCTION_COUNT (sizeof FUNCTIONS / sizeof FUNCTIONS[0])

// --- the exported `handler` interface ------------------------------------------

void exports_wasmtx_runtime_handler_functions(branch_list_string_t *ret) {
  // Freed by the post-return function: every string must be malloc'd.
  ret->ptr = malloc(FUNCTION_COUNT * sizeof *ret->ptr);
  ret->len = ret->ptr ? FUNCTION_COUNT : 0;
  for (size_t i = 0; i < ret->len; i++) {
    branch_string_dup(&ret->ptr[i], FUNCTIONS[i].name);
  }
}

static bool run(const branch_string_t *function, const branch_list_u8_t *payload, branch_list_u8_t *ret,
                branch_error *err) {
  for (size_t i = 0; i < FUNCTION_COUNT; i++) {
    const char *name = FUNCTIONS[i].name;
    if (strlen(name) != function->len || memcmp(name, function->ptr, function->len) != 0) continue;

    json_value in;
    why_t why;
    if (!json_parse(payload->ptr, payload->len, &in, why.text, sizeof why.text)) return invalid(err, name, &why);
    json_buf out = {0};
    bool ok = FUNCTIONS[i].run(name, &in, &out, err);
    json_free(&in);
    if (ok && out.oom) {
      ok = refuse(err, RETRY, "out of memory");
    }
    if (!ok) {
      free(out.ptr);
      return false;
    }
    *ret = (branch_list_u8_t){(uint8_t *)out.ptr, out.len};
    return true;
  }
  json_buf names = {0};
  json_buf_string(&names, (const char *)function->ptr, function->len);
  for (size_t i = 0; i < FUNCTION_COUNT; i++) {
    json_buf_printf(&names, "%s%s", i ? ", " : " (this module has: ", FUNCTIONS[i].name);
  }
  refuse(err, FAILURE, "unknown function %.*s)", (int)names.len, names.ptr ? names.ptr : "");
  free(names.ptr);
  return false;
}

bool exports_wasmtx_runtime_handler_invoke(branch_string_t *function, exports_wasmtx_runtime_handler_branch_context_t *ctx,
                                           branch_list_u8_t *payload, branch_list_u8_t *ret, branch_error *err) {
  bool ok = run(function, payload, ret, err);
  branch_string_free(function);
  exports_wasmtx_runtime_handler_branch_context_free(ctx);
  branch_list_u8_free(payload);
  return ok;
}
