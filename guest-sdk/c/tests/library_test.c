// Tests of wasmtx.c, the library's pure part, through wasmtx_dispatch: the
// host behind wasmtx_host.h is a test double that records what it is asked
// and answers what each test scripts.
#include <stdlib.h>

#include "check.h"
#include "wasmtx_host.h"

// --- the host double -------------------------------------------------------------

static struct {
  // Scripted answer of the next execute/query.
  bool fail;
  bool has_code;
  const char *code;
  const char *message;
  uint64_t affected;
  const char *const *columns;
  size_t column_count;
  const wasmtx_value *values;  // row after row
  const size_t *row_lens;
  size_t row_count;
  // Recorded.
  int calls;
  char sql[256];
  wasmtx_value params[8];
  char texts[8][64];
  size_t n;
  int live;  // host allocations not yet freed
  wasmtx_level level;
  char line[256];
  size_t line_len;
} host;

static void reset_host(void) {
  memset(&host, 0, sizeof host);
}

static void record(wasmtx_str sql, const wasmtx_value *params, size_t n) {
  host.calls++;
  snprintf(host.sql, sizeof host.sql, "%.*s", (int)sql.len, sql.ptr);
  host.n = n;
  for (size_t i = 0; i < n && i < 8; i++) {
    host.params[i] = params[i];
    if (params[i].kind == WASMTX_VALUE_TEXT) {
      // Copied: the parameter is only borrowed for the call.
      snprintf(host.texts[i], sizeof host.texts[i], "%.*s", (int)params[i].as.text.len, params[i].as.text.ptr);
    }
  }
}

static wasmtx_str dup_str(const char *s) {
  size_t len = strlen(s);
  char *copy = malloc(len + 1);
  memcpy(copy, s, len + 1);
  host.live++;
  return (wasmtx_str){copy, len};
}

static bool fail_with(wasmtx_db_error *err) {
  err->has_code = host.has_code;
  err->code = host.has_code ? dup_str(host.code) : (wasmtx_str){"", 0};
  err->message = dup_str(host.message);
  err->host = &host;
  return false;
}

bool wasmtx_host_execute(wasmtx_str sql, const wasmtx_value *params, size_t n, uint64_t *affected,
                         wasmtx_db_error *err) {
  record(sql, params, n);
  if (host.fail) return fail_with(err);
  *affected = host.affected;
  return true;
}

bool wasmtx_host_query(wasmtx_str sql, const wasmtx_value *params, size_t n, wasmtx_rows *rows,
                       wasmtx_db_error *err) {
  record(sql, params, n);
  if (host.fail) return fail_with(err);
  wasmtx_str *columns = malloc((host.column_count + 1) * sizeof *columns);
  wasmtx_row *list = malloc((host.row_count + 1) * sizeof *list);
  host.live += 2;
  for (size_t i = 0; i < host.column_count; i++) columns[i] = (wasmtx_str){host.columns[i], strlen(host.columns[i])};
  size_t at = 0;
  for (size_t r = 0; r < host.row_count; r++) {
    list[r] = (wasmtx_row){host.values + at, host.row_lens[r]};
    at += host.row_lens[r];
  }
  *rows = (wasmtx_rows){columns, host.column_count, list, host.row_count, &host, NULL};
  return true;
}

void wasmtx_host_free_rows(wasmtx_rows *rows) {
  CHECK(rows->host == &host);
  free((void *)rows->columns);
  free((void *)rows->rows);
  host.live -= 2;
}

void wasmtx_host_free_db_error(wasmtx_db_error *err) {
  CHECK(err->host == &host);
  if (err->has_code) {
    free((void *)err->code.ptr);
    host.live--;
  }
  free((void *)err->message.ptr);
  host.live--;
}

void wasmtx_host_log(wasmtx_level level, wasmtx_str message) {
  host.level = level;
  host.line_len = message.len < sizeof host.line ? message.len : sizeof host.line;
  memcpy(host.line, message.ptr, host.line_len);
}

// --- running a function ----------------------------------------------------------

typedef struct {
  wasmtx_outcome outcome;
  wasmtx_buf out;
} result;

static const wasmtx_context CONTEXT = {{"g-1", 3}, {"01", 2}, WASMTX_OP_COMPENSATE, 2, NULL, 0};

// Runs `run` registered as "f" on `payload`.
static result call_ctx(wasmtx_handler run, const char *payload, const wasmtx_context *ctx) {
  const wasmtx_function functions[] = {{"f", run}};
  const wasmtx_module module = {functions, 1};
  result r;
  r.outcome = wasmtx_dispatch(&module, (wasmtx_str){"f", 1}, ctx, (const uint8_t *)payload, strlen(payload), &r.out);
  CHECK(host.live == 0);  // everything the host handed over was freed
  return r;
}

static result call(wasmtx_handler run, const char *payload) {
  return call_ctx(run, payload, &CONTEXT);
}

#define CHECK_RESULT(r, expected_outcome, expected_text)   \
  do {                                                     \
    result r_ = (r);                                       \
    CHECK(r_.outcome == (expected_outcome));               \
    CHECK_BYTES(r_.out.ptr, r_.out.len, expected_text);    \
    free(r_.out.ptr);                                      \
  } while (0)

#define OK WASMTX_OUTCOME_OK
#define FAILURE WASMTX_OUTCOME_FAILURE
#define RETRY WASMTX_OUTCOME_RETRY

// --- dispatch --------------------------------------------------------------------

static bool succeed(wasmtx_call *call) {
  (void)call;
  return true;
}

static void unknown_functions_are_refused_with_the_known_names() {
  const wasmtx_function functions[] = {{"trans-out", succeed}, {"balance", succeed}};
  const wasmtx_module module = {functions, 2};
  wasmtx_buf out;
  wasmtx_outcome o = wasmtx_dispatch(&module, (wasmtx_str){"trans\"in", 8}, &CONTEXT, NULL, 0, &out);
  CHECK(o == FAILURE);
  CHECK_BYTES(out.ptr, out.len, "unknown function \"trans\\\"in\" (this module has: trans-out, balance)");
  free(out.ptr);
  // A prefix of a name is not the name.
  o = wasmtx_dispatch(&module, (wasmtx_str){"balancex", 7}, &CONTEXT, NULL, 0, &out);
  CHECK(o == OK);
  free(out.ptr);
}

static void module_tables_are_checked() {
  const wasmtx_function good[] = {{"a", succeed}, {"b", succeed}};
  const wasmtx_function twice[] = {{"a", succeed}, {"b", succeed}, {"a", succeed}};
  const wasmtx_function unnamed[] = {{"", succeed}};
  const wasmtx_function no_code[] = {{"a", NULL}};
  CHECK(wasmtx_module_problem(&(wasmtx_module){good, 2}) == NULL);
  CHECK(strcmp(wasmtx_module_problem(&(wasmtx_module){twice, 3}), "a function name is registered twice") == 0);
  CHECK(strcmp(wasmtx_module_problem(&(wasmtx_module){unnamed, 1}), "a function has no name") == 0);
  CHECK(strcmp(wasmtx_module_problem(&(wasmtx_module){no_code, 1}), "a function has no code (run is NULL)") == 0);
  CHECK(strcmp(wasmtx_module_problem(&(wasmtx_module){good, 0}), "the module exports no function") == 0);
}

static void nothing_written_is_null_and_output_is_passed_as_written() {
  CHECK_RESULT(call(succeed, "{}"), OK, "null");
}

static bool write_object(wasmtx_call *call) {
  wasmtx_out_printf(call, "{\"id\":");
  wasmtx_out_json_string(call, (wasmtx_str){"a\0\"b", 4});
  wasmtx_out_printf(call, ",\"n\":%lld}", (long long)INT64_MIN);
  return true;
}

static bool write_garbage(wasmtx_call *call) {
  wasmtx_out_printf(call, "{\"unfinished\":");
  return true;
}

static void output_is_checked_to_be_one_json_value() {
  CHECK_RESULT(call(write_object, ""), OK, "{\"id\":\"a\\u0000\\\"b\",\"n\":-9223372036854775808}");
  CHECK_RESULT(call(write_garbage, ""), FAILURE, "cannot encode the output of f: unexpected end of input at byte 14");
}

// --- payload ---------------------------------------------------------------------

static bool read_object(wasmtx_call *call) {
  return wasmtx_object(call, wasmtx_payload(call), "payload");
}

static void payloads_that_are_not_json_are_refused_before_the_function_runs() {
  CHECK_RESULT(call(succeed, "{} x"), FAILURE, "invalid payload for f: trailing characters at byte 3");
  CHECK_RESULT(call(succeed, "\"\\ud800\""), FAILURE, "invalid payload for f: lone leading surrogate at byte 7");
  CHECK_RESULT(call(succeed, "\"\xff\""), FAILURE, "invalid payload for f: invalid UTF-8 at byte 1");
}

static void blank_payload_reads_as_null() {
  CHECK_RESULT(call(succeed, ""), OK, "null");
  CHECK_RESULT(call(read_object, " \t\r\n\f"), FAILURE, "invalid payload for f: payload must be a JSON object");
}

static void only_an_object_is_a_payload() {
  const char *const NOT_OBJECTS[] = {"[\"alice\",\"bob\",30]", "null", "\"alice\"", "30", "true", "-0", "1.5"};
  for (size_t i = 0; i < sizeof NOT_OBJECTS / sizeof NOT_OBJECTS[0]; i++) {
    CHECK_RESULT(call(read_object, NOT_OBJECTS[i]), FAILURE, "invalid payload for f: payload must be a JSON object");
  }
  CHECK_RESULT(call(read_object, "{}"), OK, "null");
}

// Reads {"s": string, "n": i64, "b": bool, "o": object, "a": array} and
// writes them back, to show each getter's result.
static bool read_all(wasmtx_call *call) {
  const wasmtx_json *in = wasmtx_payload(call), *o, *a;
  wasmtx_str s;
  int64_t n;
  bool b;
  if (!wasmtx_get_str(call, in, "s", &s) || !wasmtx_get_i64(call, in, "n", &n) ||
      !wasmtx_get_bool(call, in, "b", &b) || !wasmtx_get_object(call, in, "o", &o) ||
      !wasmtx_get_array(call, in, "a", &a)) {
    return false;
  }
  wasmtx_out_printf(call, "[");
  wasmtx_out_json_string(call, s);
  wasmtx_out_printf(call, ",%lld,%s,%zu,%zu]", (long long)n, b ? "true" : "false", o->as.object.len, a->as.array.len);
  return true;
}

#define GOOD "\"s\":\"x\",\"n\":-9223372036854775808,\"b\":false,\"o\":{\"k\":1},\"a\":[1,2,3]"

static void getters_read_typed_fields() {
  CHECK_RESULT(call(read_all, "{" GOOD "}"), OK, "[\"x\",-9223372036854775808,false,1,3]");
  // Members the function does not read are ignored, even repeated.
  CHECK_RESULT(call(read_all, "{\"z\":1," GOOD ",\"z\":[2]}"), OK, "[\"x\",-9223372036854775808,false,1,3]");
}

static void getters_name_the_missing_repeated_or_mistyped_field() {
  static const struct {
    const char *payload;
    const char *message;
  } CASES[] = {
      {"{\"n\":1}", "missing field `s`"},
      {"{\"s\":\"x\",\"s\":\"y\"}", "duplicate field `s`"},
      {"{\"s\":1}", "field `s` must be a string"},
      {"{\"s\":\"x\",\"n\":\"1\"}", "field `n` must be an integer"},
      {"{\"s\":\"x\",\"n\":1.0}", "field `n` must be an integer"},
      {"{\"s\":\"x\",\"n\":1e2}", "field `n` must be an integer"},
      {"{\"s\":\"x\",\"n\":-0}", "field `n` must be an integer"},
      {"{\"s\":\"x\",\"n\":9223372036854775808}", "field `n` is out of range"},
      {"{\"s\":\"x\",\"n\":-9223372036854775809}", "field `n` is out of range"},
      {"{\"s\":\"x\",\"n\":1,\"b\":1}", "field `b` must be a boolean"},
      {"{\"s\":\"x\",\"n\":1,\"b\":true,\"o\":[]}", "field `o` must be an object"},
      {"{\"s\":\"x\",\"n\":1,\"b\":true,\"o\":{},\"a\":{}}", "field `a` must be an array"},
      {"{\"s\":\"x\",\"n\":1,\"b\":true,\"o\":{},\"a\":null}", "field `a` must be an array"},
      {"[1]", "expected a JSON object with field `s`"},
  };
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
    char message[128];
    snprintf(message, sizeof message, "invalid payload for f: %s", CASES[i].message);
    CHECK_RESULT(call(read_all, CASES[i].payload), FAILURE, message);
  }
}

static bool read_ranged(wasmtx_call *call) {
  int64_t n;
  if (!wasmtx_get_i64_in(call, wasmtx_payload(call), "n", -5, 10, &n)) return false;
  wasmtx_out_printf(call, "%lld", (long long)n);
  return true;
}

static void ranged_integers_include_both_ends() {
  CHECK_RESULT(call(read_ranged, "{\"n\":-5}"), OK, "-5");
  CHECK_RESULT(call(read_ranged, "{\"n\":10}"), OK, "10");
  CHECK_RESULT(call(read_ranged, "{\"n\":11}"), FAILURE, "invalid payload for f: field `n` must be from -5 to 10, got 11");
  CHECK_RESULT(call(read_ranged, "{\"n\":-6}"), FAILURE, "invalid payload for f: field `n` must be from -5 to 10, got -6");
  CHECK_RESULT(call(read_ranged, "{\"n\":2.5}"), FAILURE, "invalid payload for f: field `n` must be an integer");
}

static bool read_string_with_nul(wasmtx_call *call) {
  wasmtx_str id;
  if (!wasmtx_get_str(call, wasmtx_payload(call), "id", &id)) return false;
  return wasmtx_failure(call, "account %.*s does not exist", WASMTX_STR_ARG(id));
}

static void strings_keep_nul_bytes_into_messages() {
  result r = call(read_string_with_nul, "{\"id\":\"a\\u0000b\"}");
  CHECK(r.outcome == FAILURE);
  static const char expected[] = "account a\0b does not exist";
  CHECK(r.out.len == sizeof expected - 1 && memcmp(r.out.ptr, expected, sizeof expected - 1) == 0);
  free(r.out.ptr);
}

// --- results ---------------------------------------------------------------------

static bool refuse(wasmtx_call *call) {
  return wasmtx_failure(call, "insufficient funds in %s", "alice");
}

static bool ask_again(wasmtx_call *call) {
  return wasmtx_retry(call, "locked, attempt %u", wasmtx_context_of(call)->attempt);
}

static bool last_error_wins(wasmtx_call *call) {
  wasmtx_failure(call, "first");
  return wasmtx_retry(call, "second");
}

static bool forgets_its_error(wasmtx_call *call) {
  wasmtx_retry(call, "handled");
  wasmtx_clear_error(call);
  wasmtx_out_printf(call, "1");
  return true;
}

static bool false_without_error(wasmtx_call *call) {
  (void)call;
  return false;
}

static bool true_with_error(wasmtx_call *call) {
  wasmtx_failure(call, "ignored by mistake");
  return true;
}

static void errors_map_to_failure_or_retry() {
  CHECK_RESULT(call(refuse, ""), FAILURE, "insufficient funds in alice");
  CHECK_RESULT(call(ask_again, ""), RETRY, "locked, attempt 2");
  CHECK_RESULT(call(last_error_wins, ""), RETRY, "second");
  CHECK_RESULT(call(forgets_its_error, ""), OK, "1");
  CHECK_RESULT(call(false_without_error, ""), FAILURE, "f returned false without setting an error");
  CHECK_RESULT(call(true_with_error, ""), FAILURE, "ignored by mistake");
}

// --- context ---------------------------------------------------------------------

static bool describe(wasmtx_call *call) {
  const wasmtx_context *ctx = wasmtx_context_of(call);
  wasmtx_str tenant = {"", 0};
  bool has = wasmtx_header_value(call, "TENANT", &tenant);
  bool missing = wasmtx_header_value(call, "absent", &tenant) == false;
  wasmtx_out_printf(call, "\"%s %.*s %.*s %s %u %d %.*s %d\"", wasmtx_function_name(call), WASMTX_STR_ARG(ctx->gid),
                    WASMTX_STR_ARG(ctx->branch_id), wasmtx_op_name(ctx->op), ctx->attempt, has,
                    WASMTX_STR_ARG(tenant), missing);
  return true;
}

static void context_is_read_with_headers_ignoring_case() {
  const wasmtx_header headers[] = {{{"x-a", 3}, {"1", 1}}, {{"Tenant", 6}, {"t1", 2}}, {{"tenant", 6}, {"t2", 2}}};
  const wasmtx_context ctx = {{"g", 1}, {"02", 2}, WASMTX_OP_TRY, 1, headers, 3};
  CHECK_RESULT(call_ctx(describe, "", &ctx), OK, "\"f g 02 try 1 1 t1 1\"");
  CHECK(strcmp(wasmtx_op_name(WASMTX_OP_CALL), "call") == 0);
  CHECK(strcmp(wasmtx_op_name((wasmtx_op)8), "unknown") == 0);
}

// --- database --------------------------------------------------------------------

static bool insert(wasmtx_call *call) {
  uint64_t affected = 99;
  const uint8_t blob[] = {0, 1, 2};
  char id[] = "alice";
  if (!wasmtx_db_execute(call, "INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7)",
                         WASMTX_PARAMS(wasmtx_text(id), wasmtx_int(-7), wasmtx_float(2.5), wasmtx_bool(true),
                                       wasmtx_null(), wasmtx_blob(blob, 3), wasmtx_text((wasmtx_str){"a\0b", 3})),
                         &affected)) {
    return false;
  }
  wasmtx_out_printf(call, "%llu", (unsigned long long)affected);
  return true;
}

static void statements_get_their_parameters_and_count() {
  reset_host();
  host.affected = 1;
  CHECK_RESULT(call(insert, ""), OK, "1");
  CHECK(host.calls == 1 && strcmp(host.sql, "INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7)") == 0);
  CHECK(host.n == 7);
  CHECK(host.params[0].kind == WASMTX_VALUE_TEXT && strcmp(host.texts[0], "alice") == 0);
  CHECK(host.params[1].kind == WASMTX_VALUE_INT && host.params[1].as.integer == -7);
  CHECK(host.params[2].kind == WASMTX_VALUE_FLOAT && host.params[2].as.real == 2.5);
  CHECK(host.params[3].kind == WASMTX_VALUE_BOOLEAN && host.params[3].as.boolean);
  CHECK(host.params[4].kind == WASMTX_VALUE_NULL);
  CHECK(host.params[5].kind == WASMTX_VALUE_BYTES && host.params[5].as.bytes.len == 3);
  CHECK(host.params[6].kind == WASMTX_VALUE_TEXT && host.params[6].as.text.len == 3);
  CHECK(wasmtx_text((const char *)NULL).kind == WASMTX_VALUE_NULL);
}

static void database_errors_are_retries_with_the_database_words() {
  reset_host();
  host.fail = true;
  host.has_code = true;
  host.code = "40001";
  host.message = "could not serialize access";
  CHECK_RESULT(call(insert, ""), RETRY, "database error 40001: could not serialize access");
  host.has_code = false;
  host.message = "connection lost";
  CHECK_RESULT(call(insert, ""), RETRY, "database error: connection lost");
}

static bool insert_unless_duplicate(wasmtx_call *call) {
  if (wasmtx_db_execute(call, "INSERT", NULL, 0, NULL)) return true;
  const wasmtx_db_error *e = wasmtx_db_error_of(call);
  if (wasmtx_is_unique_violation(e)) {
    return wasmtx_failure(call, "exists (%.*s)", WASMTX_STR_ARG(e->code));
  }
  CHECK(!wasmtx_is_foreign_key_violation(e) || strncmp(e->code.ptr, "23503", 5) == 0 || strncmp(e->code.ptr, "787", 3) == 0);
  return false;
}

static void database_errors_with_business_meaning_can_be_told_apart() {
  static const struct {
    const char *code;
    wasmtx_outcome outcome;
    const char *message;
  } CASES[] = {
      {"23505", FAILURE, "exists (23505)"},
      {"2067", FAILURE, "exists (2067)"},
      {"1555", FAILURE, "exists (1555)"},
      {"23503", RETRY, "database error 23503: boom"},
      {"2306", RETRY, "database error 2306: boom"},
  };
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
    reset_host();
    host.fail = true;
    host.has_code = true;
    host.code = CASES[i].code;
    host.message = "boom";
    CHECK_RESULT(call(insert_unless_duplicate, ""), CASES[i].outcome, CASES[i].message);
  }
  wasmtx_db_error fk = {true, {"787", 3}, {"", 0}, NULL};
  CHECK(wasmtx_is_foreign_key_violation(&fk) && !wasmtx_is_unique_violation(&fk));
  wasmtx_db_error none = {false, {"", 0}, {"", 0}, NULL};
  CHECK(!wasmtx_is_unique_violation(&none) && !wasmtx_is_unique_violation(NULL));
  // No statement failed: no error to inspect.
  reset_host();
  CHECK_RESULT(call(insert_unless_duplicate, ""), OK, "null");
}

static bool bad_parameter(wasmtx_call *call) {
  wasmtx_value odd = {(wasmtx_value_kind)9, {.integer = 0}};
  return wasmtx_db_execute(call, "SELECT $1", WASMTX_PARAMS(wasmtx_int(1), odd), NULL);
}

static void parameters_of_no_known_kind_never_reach_the_host() {
  reset_host();
  CHECK_RESULT(call(bad_parameter, ""), FAILURE, "parameter $2 has no valid kind (9)");
  CHECK(host.calls == 0);
}

static const char *const ACCOUNT_COLUMNS[] = {"id", "Balance", "note", "ok", "data"};
static const uint8_t DATA[] = {7, 8};
#define TEXT(s) {WASMTX_VALUE_TEXT, {.text = {s, sizeof s - 1}}}
#define INT(n) {WASMTX_VALUE_INT, {.integer = n}}
#define NULL_VALUE {WASMTX_VALUE_NULL, {.integer = 0}}
#define BYTES {WASMTX_VALUE_BYTES, {.bytes = {DATA, 2}}}
static const wasmtx_value ACCOUNT_VALUES[] = {
    TEXT("alice"), INT(70), NULL_VALUE, INT(1), BYTES,
    TEXT("bob"), INT(130), TEXT("vip"), INT(2), BYTES,
    TEXT("short"),  // a row with one value
};
static const size_t ACCOUNT_ROW_LENS[] = {5, 5, 1};

static void script_accounts(void) {
  reset_host();
  host.columns = ACCOUNT_COLUMNS;
  host.column_count = 5;
  host.values = ACCOUNT_VALUES;
  host.row_lens = ACCOUNT_ROW_LENS;
  host.row_count = 3;
}

static bool read_rows(wasmtx_call *call) {
  const wasmtx_rows *rows;
  if (!wasmtx_db_query(call, "SELECT", WASMTX_PARAMS(wasmtx_text("x")), &rows)) return false;
  int64_t balance;
  double real;
  bool ok, null;
  wasmtx_str id, note;
  wasmtx_bytes data;
  if (!wasmtx_rows_str(call, rows, 1, "id", &id) || !wasmtx_rows_i64(call, rows, 1, "balance", &balance) ||
      !wasmtx_rows_f64(call, rows, 0, "BALANCE", &real) || !wasmtx_rows_bool(call, rows, 0, "ok", &ok) ||
      !wasmtx_rows_is_null(call, rows, 0, "note", &null) || !wasmtx_rows_str(call, rows, 1, "note", &note) ||
      !wasmtx_rows_bytes(call, rows, 0, "data", &data)) {
    return false;
  }
  wasmtx_out_printf(call, "\"%zu %.*s %lld %.1f %d %d %.*s %u\"", rows->len, WASMTX_STR_ARG(id), (long long)balance,
                    real, ok, null, WASMTX_STR_ARG(note), data.ptr[0] + data.ptr[1]);
  return true;
}

static void rows_are_read_by_column_name() {
  script_accounts();
  CHECK_RESULT(call(read_rows, ""), OK, "\"3 bob 130 70.0 1 1 vip 15\"");
  CHECK(host.n == 1 && strcmp(host.texts[0], "x") == 0);
}

// Reads `READ_COLUMN` of row `READ_ROW` with the getter `READ_AS`.
static size_t read_row;
static const char *read_column;
static int read_as;

static bool read_one(wasmtx_call *call) {
  const wasmtx_rows *rows;
  if (!wasmtx_db_query(call, "SELECT", NULL, 0, &rows)) return false;
  int64_t i;
  double d;
  bool b;
  wasmtx_str s;
  wasmtx_bytes bytes;
  switch (read_as) {
    case 0: return wasmtx_rows_i64(call, rows, read_row, read_column, &i);
    case 1: return wasmtx_rows_f64(call, rows, read_row, read_column, &d);
    case 2: return wasmtx_rows_bool(call, rows, read_row, read_column, &b);
    case 3: return wasmtx_rows_str(call, rows, read_row, read_column, &s);
    case 4: return wasmtx_rows_bytes(call, rows, read_row, read_column, &bytes);
    default: return wasmtx_rows_is_null(call, rows, read_row, read_column, &b);
  }
}

static void column_errors_are_failures_that_say_what_disagrees() {
  static const struct {
    size_t row;
    const char *column;
    int as;
    const char *message;
  } CASES[] = {
      {5, "id", 0, "no row 5: the query returned 3 row(s)"},
      {0, "amount", 0, "no column \"amount\" in the result (columns: id, Balance, note, ok, data)"},
      {2, "balance", 0, "no column \"balance\" in the result (columns: id, Balance, note, ok, data)"},
      {0, "id", 0, "column \"id\" holds text, expected int"},
      {0, "note", 0, "column \"note\" holds null, expected int"},
      {0, "data", 1, "column \"data\" holds bytes, expected float or int"},
      {1, "ok", 2, "column \"ok\" holds int, expected boolean or int 0/1"},
      {0, "balance", 3, "column \"balance\" holds int, expected text"},
      {0, "id", 4, "column \"id\" holds text, expected bytes"},
      {9, "id", 5, "no row 9: the query returned 3 row(s)"},
  };
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
    script_accounts();
    read_row = CASES[i].row;
    read_column = CASES[i].column;
    read_as = CASES[i].as;
    CHECK_RESULT(call(read_one, ""), FAILURE, CASES[i].message);
  }
  script_accounts();
  read_row = 0, read_column = "ok", read_as = 2;
  CHECK_RESULT(call(read_one, ""), OK, "null");
}

static bool query_many(wasmtx_call *call) {
  for (int i = 0; i < 3; i++) {
    const wasmtx_rows *rows;
    if (!wasmtx_db_query(call, "SELECT", NULL, 0, &rows)) return false;
    if (i == 1) {
      wasmtx_rows_free(call, rows);
      CHECK(host.live == 2);  // the first rows are still there
    }
  }
  CHECK(host.live == 4);
  return true;
}

static void rows_live_until_the_function_returns_or_are_freed_early() {
  script_accounts();
  CHECK_RESULT(call(query_many, ""), OK, "null");
  CHECK(host.live == 0);
}

static bool query_then_fail(wasmtx_call *call) {
  const wasmtx_rows *rows;
  if (!wasmtx_db_query(call, "SELECT", NULL, 0, &rows)) return false;
  host.fail = true;
  host.message = "gone";
  return wasmtx_db_execute(call, "DELETE", NULL, 0, NULL);
}

static void a_failed_call_frees_its_rows_and_error() {
  script_accounts();
  CHECK_RESULT(call(query_then_fail, ""), RETRY, "database error: gone");
  CHECK(host.live == 0);
  CHECK(strcmp(wasmtx_value_kind_name(WASMTX_VALUE_BYTES), "bytes") == 0);
}

// --- log -------------------------------------------------------------------------

static bool log_line(wasmtx_call *call) {
  wasmtx_str from = {"al\0ce", 5};
  wasmtx_log_info("debited %lld from %.*s", 30LL, WASMTX_STR_ARG(from));
  (void)call;
  return true;
}

static void log_lines_are_formatted_and_keep_nul_bytes() {
  reset_host();
  CHECK_RESULT(call(log_line, ""), OK, "null");
  CHECK(host.level == WASMTX_LOG_INFO);
  static const char expected[] = "debited 30 from al\0ce";
  CHECK(host.line_len == sizeof expected - 1 && memcmp(host.line, expected, sizeof expected - 1) == 0);
  wasmtx_log(WASMTX_LOG_WARN, "%s", "");
  CHECK(host.level == WASMTX_LOG_WARN && host.line_len == 0);
}

TEST_MAIN(TEST(unknown_functions_are_refused_with_the_known_names), TEST(module_tables_are_checked),
          TEST(nothing_written_is_null_and_output_is_passed_as_written), TEST(output_is_checked_to_be_one_json_value),
          TEST(payloads_that_are_not_json_are_refused_before_the_function_runs), TEST(blank_payload_reads_as_null),
          TEST(only_an_object_is_a_payload), TEST(getters_read_typed_fields),
          TEST(getters_name_the_missing_repeated_or_mistyped_field), TEST(ranged_integers_include_both_ends),
          TEST(strings_keep_nul_bytes_into_messages), TEST(errors_map_to_failure_or_retry),
          TEST(context_is_read_with_headers_ignoring_case), TEST(statements_get_their_parameters_and_count),
          TEST(database_errors_are_retries_with_the_database_words),
          TEST(database_errors_with_business_meaning_can_be_told_apart),
          TEST(parameters_of_no_known_kind_never_reach_the_host), TEST(rows_are_read_by_column_name),
          TEST(column_errors_are_failures_that_say_what_disagrees),
          TEST(rows_live_until_the_function_returns_or_are_freed_early), TEST(a_failed_call_frees_its_rows_and_error),
          TEST(log_lines_are_formatted_and_keep_nul_bytes))
