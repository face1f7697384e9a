// Native tests of module.c (`make test`): the C guest library's pure part runs
// the functions through wasmtx_dispatch, and the host behind wasmtx_host.h is
// a test double that records each statement and answers what a test scripts.
// check.h (CHECK, TEST_MAIN) comes from the library's own tests.
#include <stdlib.h>

#include "check.h"
#include "wasmtx_host.h"

// --- the host double -------------------------------------------------------------

static struct {
  // Scripted: the text the next query returns in its one column "greeting".
  const char *greeting;
  // Recorded.
  int queries;
  char sql[128];
  char param[64];
  int live;  // host allocations not yet freed
} host;

bool wasmtx_host_execute(wasmtx_str sql, const wasmtx_value *params, size_t n, uint64_t *affected,
                         wasmtx_db_error *err) {
  (void)sql, (void)params, (void)n, (void)affected, (void)err;
  CHECK(!"hello runs no statement");
  return true;
}

bool wasmtx_host_query(wasmtx_str sql, const wasmtx_value *params, size_t n, wasmtx_rows *rows,
                       wasmtx_db_error *err) {
  (void)err;
  host.queries++;
  snprintf(host.sql, sizeof host.sql, "%.*s", (int)sql.len, sql.ptr);
  CHECK(n == 1 && params[0].kind == WASMTX_VALUE_TEXT);
  snprintf(host.param, sizeof host.param, "%.*s", (int)params[0].as.text.len, params[0].as.text.ptr);
  wasmtx_str *columns = malloc(sizeof *columns);
  wasmtx_value *values = malloc(sizeof *values);
  wasmtx_row *list = malloc(sizeof *list);
  host.live += 3;
  columns[0] = (wasmtx_str){"greeting", 8};
  values[0] = wasmtx_text(host.greeting);
  list[0] = (wasmtx_row){values, 1};
  *rows = (wasmtx_rows){columns, 1, list, 1, &host, NULL};
  return true;
}

void wasmtx_host_free_rows(wasmtx_rows *rows) {
  CHECK(rows->host == &host);
  free((void *)rows->rows[0].values);
  free((void *)rows->rows);
  free((void *)rows->columns);
  host.live -= 3;
}

void wasmtx_host_free_db_error(wasmtx_db_error *err) {
  (void)err;
}

void wasmtx_host_log(wasmtx_level level, wasmtx_str message) {
  (void)level, (void)message;
}

// --- calling the module as the host would ----------------------------------------

static const wasmtx_context CONTEXT = {{"g-1", 3}, {"01", 2}, WASMTX_OP_ACTION, 1, NULL, 0};

static wasmtx_outcome call(const char *name, const char *payload, wasmtx_buf *out) {
  wasmtx_outcome outcome = wasmtx_dispatch(&wasmtx_exported_module, (wasmtx_str){name, strlen(name)}, &CONTEXT,
                                           (const uint8_t *)payload, strlen(payload), out);
  CHECK(host.live == 0);  // everything the host handed over was freed
  return outcome;
}

static void a_name_is_greeted_by_way_of_the_database(void) {
  memset(&host, 0, sizeof host);
  host.greeting = "Hello, Ada!";
  wasmtx_buf out;
  CHECK(call("hello", "{\"name\":\"Ada\"}", &out) == WASMTX_OUTCOME_OK);
  CHECK_BYTES(out.ptr, out.len, "{\"greeting\":\"Hello, Ada!\"}");
  free(out.ptr);
  CHECK(host.queries == 1);
  CHECK(strcmp(host.sql, "SELECT CAST($1 AS TEXT) AS greeting") == 0);
  CHECK(strcmp(host.param, "Hello, Ada!") == 0);
}

static void an_empty_name_is_refused_before_the_database(void) {
  memset(&host, 0, sizeof host);
  wasmtx_buf out;
  CHECK(call("hello", "{\"name\":\"\"}", &out) == WASMTX_OUTCOME_FAILURE);
  CHECK_BYTES(out.ptr, out.len, "name must not be empty");
  free(out.ptr);
  CHECK(host.queries == 0);
}

TEST_MAIN(TEST(a_name_is_greeted_by_way_of_the_database), TEST(an_empty_name_is_refused_before_the_database))
