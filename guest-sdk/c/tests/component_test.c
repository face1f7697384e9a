// Tests of wasmtx_component.c, the glue to the generated bindings, compiled
// natively with the generated branch.c. The test plays the host at the
// canonical ABI: it allocates the arguments of the exported `invoke` with
// malloc (as the host's lifting does through cabi_realloc), reads the result
// from the return area and calls the post-return function; its doubles of the
// imports write their results as the host would. AddressSanitizer and
// LeakSanitizer then check that every byte changes hands exactly once.
//
// Build: see the Makefile (branch.c needs its wasm-only attributes defined away).
#include <stdlib.h>

#include "branch.h"
#include "check.h"
#include "wasmtx.h"

// The generated exports (defined in branch.c, declared nowhere).
uint8_t *__wasm_export_exports_wasmtx_runtime_handler_functions(void);
void __wasm_export_exports_wasmtx_runtime_handler_functions_post_return(uint8_t *ret);
uint8_t *__wasm_export_exports_wasmtx_runtime_handler_invoke(uint8_t *name, size_t name_len, uint8_t *gid,
                                                             size_t gid_len, uint8_t *branch, size_t branch_len,
                                                             int32_t op, int32_t attempt, uint8_t *headers,
                                                             size_t header_count, uint8_t *payload, size_t payload_len);
void __wasm_export_exports_wasmtx_runtime_handler_invoke_post_return(uint8_t *ret);

#define P sizeof(void *)
#define AT(base, offset, type) (*(type *)((base) + (offset)))

// --- the host's side of the imports ----------------------------------------------------

static struct {
  bool fail;
  char sql[128];
  size_t param_count;
  char first_text[64];
  int64_t first_int;
  char log[128];
  int log_level;
} host;

// A list of `len` bytes as the host lifts it: nothing is allocated for an
// empty one, whose pointer may be anything.
static uint8_t *copy(const char *s, size_t len) {
  if (len == 0) return (uint8_t *)1;
  uint8_t *p = malloc(len);
  memcpy(p, s, len);
  return p;
}

static void record(uint8_t *sql, size_t sql_len, uint8_t *params, size_t n) {
  snprintf(host.sql, sizeof host.sql, "%.*s", (int)sql_len, (const char *)sql);
  host.param_count = n;
  const wasmtx_runtime_db_value_t *values = (const wasmtx_runtime_db_value_t *)params;
  host.first_text[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (values[i].tag == WASMTX_RUNTIME_DB_VALUE_TEXT && host.first_text[0] == '\0') {
      snprintf(host.first_text, sizeof host.first_text, "%.*s", (int)values[i].val.text.len,
               (const char *)values[i].val.text.ptr);
    }
    if (values[i].tag == WASMTX_RUNTIME_DB_VALUE_INT) host.first_int = values[i].val.int_;
  }
}

// A db-error at `base` (its option<string> code first), as the host writes it.
static void write_db_error(uint8_t *base) {
  AT(base, 0, uint8_t) = 1;
  AT(base, P, uint8_t *) = copy("23505", 5);
  AT(base, 2 * P, size_t) = 5;
  AT(base, 3 * P, uint8_t *) = copy("duplicate key", 13);
  AT(base, 4 * P, size_t) = 13;
}

void __wasm_import_wasmtx_runtime_db_execute(uint8_t *sql, size_t sql_len, uint8_t *params, size_t n, uint8_t *ret) {
  record(sql, sql_len, params, n);
  AT(ret, 0, uint8_t) = host.fail;
  if (host.fail) {
    write_db_error(ret + 8);
  } else {
    AT(ret, 8, int64_t) = 1;
  }
}

static branch_string_t string(const char *s) {
  return (branch_string_t){copy(s, strlen(s)), strlen(s)};
}

void __wasm_import_wasmtx_runtime_db_query(uint8_t *sql, size_t sql_len, uint8_t *params, size_t n, uint8_t *ret) {
  record(sql, sql_len, params, n);
  AT(ret, 0, uint8_t) = host.fail;
  if (host.fail) {
    write_db_error(ret + P);
    return;
  }
  // columns (id, balance, note); rows (alice, 70, NULL) and (bob, 130, "vip")
  branch_string_t *columns = malloc(3 * sizeof *columns);
  columns[0] = string("id");
  columns[1] = string("balance");
  columns[2] = string("note");
  wasmtx_runtime_db_list_value_t *rows = malloc(2 * sizeof *rows);
  for (int r = 0; r < 2; r++) {
    wasmtx_runtime_db_value_t *v = malloc(3 * sizeof *v);
    v[0] = (wasmtx_runtime_db_value_t){.tag = WASMTX_RUNTIME_DB_VALUE_TEXT, .val.text = string(r ? "bob" : "alice")};
    v[1] = (wasmtx_runtime_db_value_t){.tag = WASMTX_RUNTIME_DB_VALUE_INT, .val.int_ = r ? 130 : 70};
    v[2] = r ? (wasmtx_runtime_db_value_t){.tag = WASMTX_RUNTIME_DB_VALUE_TEXT, .val.text = string("vip")}
             : (wasmtx_runtime_db_value_t){.tag = WASMTX_RUNTIME_DB_VALUE_NULL};
    rows[r] = (wasmtx_runtime_db_list_value_t){v, 3};
  }
  AT(ret, P, branch_string_t *) = columns;
  AT(ret, 2 * P, size_t) = 3;
  AT(ret, 3 * P, wasmtx_runtime_db_list_value_t *) = rows;
  AT(ret, 4 * P, size_t) = 2;
}

void __wasm_import_wasmtx_runtime_log_log(int32_t level, uint8_t *message, size_t len) {
  host.log_level = level;
  snprintf(host.log, sizeof host.log, "%.*s", (int)len, (const char *)message);
}

void __component_type_object_force_link_branch(void) {}

// --- the module ------------------------------------------------------------------------

static bool list_accounts(wasmtx_call *call) {
  wasmtx_str who;
  const wasmtx_rows *rows;
  if (!wasmtx_get_str(call, wasmtx_payload(call), "who", &who) ||
      !wasmtx_db_query(call, "SELECT id, balance, note FROM accounts WHERE id <> $1",
                       WASMTX_PARAMS(wasmtx_text(who), wasmtx_int(5)), &rows)) {
    return false;
  }
  wasmtx_out_printf(call, "[");
  for (size_t r = 0; r < rows->len; r++) {
    wasmtx_str id;
    int64_t balance;
    bool null;
    if (!wasmtx_rows_str(call, rows, r, "id", &id) || !wasmtx_rows_i64(call, rows, r, "balance", &balance) ||
        !wasmtx_rows_is_null(call, rows, r, "note", &null)) {
      return false;
    }
    wasmtx_out_printf(call, "%s[", r ? "," : "");
    wasmtx_out_json_string(call, id);
    wasmtx_out_printf(call, ",%lld,%s]", (long long)balance, null ? "null" : "\"note\"");
  }
  wasmtx_out_printf(call, "]");
  wasmtx_log_warn("listed %zu for %.*s", rows->len, WASMTX_STR_ARG(who));
  return true;
}

static bool insert(wasmtx_call *call) {
  return wasmtx_db_execute(call, "INSERT INTO accounts (id) VALUES ($1)", WASMTX_PARAMS(wasmtx_text("carol")), NULL);
}

static bool describe(wasmtx_call *call) {
  const wasmtx_context *ctx = wasmtx_context_of(call);
  wasmtx_str tenant = {"-", 1};
  wasmtx_header_value(call, "tenant", &tenant);
  wasmtx_out_printf(call, "\"%.*s/%.*s/%s/%u/%.*s\"", WASMTX_STR_ARG(ctx->gid), WASMTX_STR_ARG(ctx->branch_id),
                    wasmtx_op_name(ctx->op), ctx->attempt, WASMTX_STR_ARG(tenant));
  return true;
}

static bool refuse_empty(wasmtx_call *call) {
  return wasmtx_failure(call, "%s", "");
}

static const wasmtx_function FUNCTIONS[] = {
    {"list-accounts", list_accounts},
    {"insert", insert},
    {"describe", describe},
    {"refuse-empty", refuse_empty},
};

WASMTX_EXPORT(FUNCTIONS);

// --- the host's side of the export -------------------------------------------------------

typedef struct {
  bool ok;
  int error_tag;  // 0 failure, 1 retry
  char text[256];
  size_t len;
} answer;

// Calls `invoke` the way the host does; copies the answer out before the
// post-return function frees it.
static answer invoke_with(const char *function, const char *payload, const char *tenant) {
  branch_tuple2_string_string_t *headers = NULL;
  size_t header_count = 0;
  if (tenant != NULL) {
    headers = malloc(2 * sizeof *headers);
    headers[0] = (branch_tuple2_string_string_t){string("x-other"), string("1")};
    headers[1] = (branch_tuple2_string_string_t){string("Tenant"), string(tenant)};
    header_count = 2;
  }
  size_t payload_len = strlen(payload);
  uint8_t *ret = __wasm_export_exports_wasmtx_runtime_handler_invoke(
      copy(function, strlen(function)), strlen(function), copy("g-7", 3), 3, copy("02", 2), 2,
      WASMTX_RUNTIME_TYPES_OP_CONFIRM, 3, (uint8_t *)headers, header_count,
      copy(payload, payload_len), payload_len);
  answer a = {0};
  a.ok = AT(ret, 0, uint8_t) == 0;
  const uint8_t *text;
  if (a.ok) {
    text = AT(ret, P, uint8_t *);
    a.len = AT(ret, 2 * P, size_t);
  } else {
    a.error_tag = AT(ret, P, uint8_t);
    text = AT(ret, 2 * P, uint8_t *);
    a.len = AT(ret, 3 * P, size_t);
  }
  if (a.len > 0 && a.len < sizeof a.text) memcpy(a.text, text, a.len);
  __wasm_export_exports_wasmtx_runtime_handler_invoke_post_return(ret);
  return a;
}

static answer invoke(const char *function, const char *payload) {
  return invoke_with(function, payload, NULL);
}

// --- tests -------------------------------------------------------------------------------

static void functions_returns_the_registered_names() {
  uint8_t *ret = __wasm_export_exports_wasmtx_runtime_handler_functions();
  const branch_string_t *names = AT(ret, 0, branch_string_t *);
  size_t count = AT(ret, P, size_t);
  CHECK(count == 4);
  if (count == 4) {
    CHECK_BYTES(names[0].ptr, names[0].len, "list-accounts");
    CHECK_BYTES(names[3].ptr, names[3].len, "refuse-empty");
  }
  __wasm_export_exports_wasmtx_runtime_handler_functions_post_return(ret);
}

static void rows_from_the_host_are_read_and_freed() {
  memset(&host, 0, sizeof host);
  answer a = invoke("list-accounts", "{\"who\":\"carol\"}");
  CHECK(a.ok);
  CHECK_BYTES(a.text, a.len, "[[\"alice\",70,null],[\"bob\",130,\"note\"]]");
  CHECK(strcmp(host.sql, "SELECT id, balance, note FROM accounts WHERE id <> $1") == 0);
  CHECK(host.param_count == 2 && strcmp(host.first_text, "carol") == 0 && host.first_int == 5);
  CHECK(host.log_level == WASMTX_RUNTIME_LOG_LEVEL_WARN && strcmp(host.log, "listed 2 for carol") == 0);
}

static void database_errors_from_the_host_become_retries() {
  memset(&host, 0, sizeof host);
  host.fail = true;
  answer a = invoke("insert", "");
  CHECK(!a.ok && a.error_tag == WASMTX_RUNTIME_TYPES_BRANCH_ERROR_RETRY);
  CHECK_BYTES(a.text, a.len, "database error 23505: duplicate key");
  a = invoke("list-accounts", "{\"who\":\"x\"}");
  CHECK(!a.ok && a.error_tag == WASMTX_RUNTIME_TYPES_BRANCH_ERROR_RETRY);
  CHECK_BYTES(a.text, a.len, "database error 23505: duplicate key");
  host.fail = false;
  a = invoke("insert", "");
  CHECK(a.ok);
  CHECK_BYTES(a.text, a.len, "null");
}

static void the_context_reaches_the_function() {
  answer a = invoke_with("describe", "", "t-9");
  CHECK_BYTES(a.text, a.len, "\"g-7/02/confirm/3/t-9\"");
  a = invoke("describe", "  ");
  CHECK_BYTES(a.text, a.len, "\"g-7/02/confirm/3/-\"");
}

static void refusals_are_failures_even_when_empty() {
  answer a = invoke("list-accounts", "{\"who\":1}");
  CHECK(!a.ok && a.error_tag == WASMTX_RUNTIME_TYPES_BRANCH_ERROR_FAILURE);
  CHECK_BYTES(a.text, a.len, "invalid payload for list-accounts: field `who` must be a string");
  a = invoke("refuse-empty", "");
  CHECK(!a.ok && a.error_tag == WASMTX_RUNTIME_TYPES_BRANCH_ERROR_FAILURE && a.len == 0);
  a = invoke("", "");
  CHECK(!a.ok);
  CHECK_BYTES(a.text, a.len,
              "unknown function \"\" (this module has: list-accounts, insert, describe, refuse-empty)");
}

TEST_MAIN(TEST(functions_returns_the_registered_names), TEST(rows_from_the_host_are_read_and_freed),
          TEST(database_errors_from_the_host_become_retries), TEST(the_context_reaches_the_function),
          TEST(refusals_are_failures_even_when_empty))
