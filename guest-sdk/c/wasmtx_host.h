// wasmtx_host.h: the narrow seam between the library's pure part (wasmtx.c)
// and the generated bindings. Not for modules.
//
// wasmtx.c decides everything (dispatch, payload, messages, rows by name) and
// reaches the host only through the wasmtx_host_* functions below.
// wasmtx_component.c implements them over the generated imports and calls
// wasmtx_dispatch from the generated export; the native tests implement them
// with test doubles instead. Nothing here names a generated type.
#ifndef WASMTX_HOST_H
#define WASMTX_HOST_H

#include "wasmtx.h"

typedef enum {
  WASMTX_OUTCOME_OK,
  WASMTX_OUTCOME_FAILURE,
  WASMTX_OUTCOME_RETRY,
} wasmtx_outcome;

/// Runs function `name` of `module` on `payload`. Writes into `out` (empty on
/// entry) the output for WASMTX_OUTCOME_OK, else the message; the caller owns
/// `out->ptr`. Never fails otherwise: out of memory gives a retry whose
/// message may be empty (then `out->oom` is set).
wasmtx_outcome wasmtx_dispatch(const wasmtx_module *module, wasmtx_str name, const wasmtx_context *ctx,
                               const uint8_t *payload, size_t payload_len, wasmtx_buf *out);

/// NULL if `module` can be exported, else what is wrong with it (static text).
const char *wasmtx_module_problem(const wasmtx_module *module);

// Implemented by wasmtx_component.c (and by the tests' doubles).

/// The WIT `db.execute`. On false, `err` is filled; free it with
/// wasmtx_host_free_db_error.
bool wasmtx_host_execute(wasmtx_str sql, const wasmtx_value *params, size_t n, uint64_t *affected,
                         wasmtx_db_error *err);

/// The WIT `db.query`. On true, fills every field of `rows` but `next`; free
/// with wasmtx_host_free_rows. On false, as wasmtx_host_execute.
bool wasmtx_host_query(wasmtx_str sql, const wasmtx_value *params, size_t n, wasmtx_rows *rows,
                       wasmtx_db_error *err);

void wasmtx_host_free_rows(wasmtx_rows *rows);
void wasmtx_host_free_db_error(wasmtx_db_error *err);

/// The WIT `log.log`.
void wasmtx_host_log(wasmtx_level level, wasmtx_str message);

#endif
