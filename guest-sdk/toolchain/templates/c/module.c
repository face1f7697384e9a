// The {{name}} module: wasmtx branch functions in C (see README.md).
#include <stdlib.h>
#include <string.h>

#include "wasmtx.h"

// hello: {"name": "Ada"} -> {"greeting": "Hello, Ada!"}, by way of the
// module's database. The function runs inside a database transaction that
// commits only if it succeeds; the SQL runs unchanged on SQLite and Postgres.
static bool hello(wasmtx_call *call) {
  const wasmtx_json *in = wasmtx_payload(call);
  wasmtx_str name;
  if (!wasmtx_object(call, in, "payload") || !wasmtx_get_str(call, in, "name", &name)) return false;
  // A refusal: a failure is never retried.
  if (name.len == 0) return wasmtx_failure(call, "name must not be empty");

  static const char prefix[] = "Hello, ";
  size_t len = sizeof prefix - 1 + name.len + 1;
  char *text = malloc(len);
  if (text == NULL) return wasmtx_retry(call, "out of memory");
  memcpy(text, prefix, sizeof prefix - 1);
  memcpy(text + sizeof prefix - 1, name.ptr, name.len);
  text[len - 1] = '!';

  const wasmtx_rows *rows;
  bool ok = wasmtx_db_query(call, "SELECT CAST($1 AS TEXT) AS greeting",
                            WASMTX_PARAMS(wasmtx_text((wasmtx_str){text, len})), &rows);
  free(text);
  wasmtx_str greeting;
  if (!ok || !wasmtx_rows_str(call, rows, 0, "greeting", &greeting)) return false;
  wasmtx_out_printf(call, "{\"greeting\":");
  wasmtx_out_json_string(call, greeting);
  wasmtx_out_printf(call, "}");
  return true;
}

static const wasmtx_function FUNCTIONS[] = {
    {"hello", hello},
};

WASMTX_EXPORT(FUNCTIONS);
