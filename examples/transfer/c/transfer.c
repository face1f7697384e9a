// Transfer example: a bank transfer as saga branches, in C.
//
// The same functions, SQL and messages as `examples/transfer/rust`, which is the
// spec. Written on the wasmtx C guest library (guest-sdk/c): it parses the
// payload, frees what the host hands over, and turns each function's result
// into the WIT one. Business refusals are failures (never retried); database
// errors are retries.
//
// The TCC functions (`try-out`, `confirm-out`, `cancel-out`, `try-in`,
// `confirm-in`, `cancel-in`) freeze the amount in the `frozen` column while the
// transaction is undecided. A cancel runs only if its try committed, and a try
// that arrives after its cancel does nothing (the host's barrier), so the
// cancels need not check.
//
// `flaky` asks to be retried `retries` times, then succeeds; it touches no table.
#include "wasmtx.h"

// The largest amount a transfer step accepts, as in the Rust version.
#define MAX_AMOUNT INT64_C(1000000000000000)

// The most retries `flaky` accepts, as in the Rust version.
#define MAX_RETRIES INT64_C(1000)

/// Payload of the transfer steps: the action and its compensation (and a TCC's
/// try, confirm and cancel) get the same payload.
typedef struct {
  wasmtx_str from;
  wasmtx_str to;
  int64_t amount;
} transfer;

static bool read_transfer(wasmtx_call *call, transfer *t) {
  const wasmtx_json *in = wasmtx_payload(call);
  if (!wasmtx_object(call, in, "payload") || !wasmtx_get_str(call, in, "from", &t->from) ||
      !wasmtx_get_str(call, in, "to", &t->to) || !wasmtx_get_i64(call, in, "amount", &t->amount)) {
    return false;
  }
  if (t->amount <= 0) {
    return wasmtx_failure(call, "amount must be a positive integer, got %lld", (long long)t->amount);
  }
  if (t->amount > MAX_AMOUNT) {
    return wasmtx_failure(call, "amount must be at most %lld, got %lld", (long long)MAX_AMOUNT,
                          (long long)t->amount);
  }
  return true;
}

static bool missing_account(wasmtx_call *call, wasmtx_str id) {
  return wasmtx_failure(call, "account %.*s does not exist", WASMTX_STR_ARG(id));
}

static bool overflow(wasmtx_call *call, wasmtx_str id) {
  return wasmtx_failure(call, "balance of %.*s would overflow", WASMTX_STR_ARG(id));
}

// The balance of `id`; `*found` is false if there is no such account.
static bool balance_of(wasmtx_call *call, wasmtx_str id, bool *found, int64_t *balance) {
  const wasmtx_rows *rows;
  if (!wasmtx_db_query(call, "SELECT balance FROM accounts WHERE id = $1", WASMTX_PARAMS(wasmtx_text(id)), &rows)) {
    return false;
  }
  *found = rows->len > 0;
  return !*found || wasmtx_rows_i64(call, rows, 0, "balance", balance);
}

// Adds `amount` to the balance of `id`; `*found` is false if there is no such
// account. The guard keeps the balance within BIGINT: past INT64_MAX, SQLite
// would store a REAL (and `balance` would then fail), and Postgres and MariaDB
// would fail with 22003 (a database error: retried for ever). Refused instead.
static bool credit(wasmtx_call *call, wasmtx_str id, int64_t amount, bool *found) {
  uint64_t credited;
  int64_t balance;
  if (!wasmtx_db_execute(call,
                         "UPDATE accounts SET balance = balance + $1 WHERE id = $2 AND balance <= 9223372036854775807 - $1",
                         WASMTX_PARAMS(wasmtx_int(amount), wasmtx_text(id)), &credited)) {
    return false;
  }
  *found = true;
  if (credited == 0) {
    if (!balance_of(call, id, found, &balance)) return false;
    if (*found) return overflow(call, id);
  }
  return true;
}

static bool setup(wasmtx_call *call) {
  const wasmtx_json *in = wasmtx_payload(call), *accounts;
  if (!wasmtx_object(call, in, "payload") || !wasmtx_get_array(call, in, "accounts", &accounts)) return false;
  // Check every account before the first statement, as the Rust version does.
  for (size_t i = 0; i < accounts->as.array.len; i++) {
    const wasmtx_json *account = &accounts->as.array.items[i];
    wasmtx_str id;
    int64_t balance;
    if (!wasmtx_object(call, account, "account") || !wasmtx_get_str(call, account, "id", &id) ||
        !wasmtx_get_i64(call, account, "balance", &balance)) {
      return false;
    }
  }
  if (!wasmtx_db_execute(call,
                         "CREATE TABLE IF NOT EXISTS accounts "
                         "(id VARCHAR(64) PRIMARY KEY, balance BIGINT NOT NULL, frozen BIGINT NOT NULL DEFAULT 0)",
                         NULL, 0, NULL)) {
    return false;
  }
  for (size_t i = 0; i < accounts->as.array.len; i++) {
    const wasmtx_json *account = &accounts->as.array.items[i];
    wasmtx_str id;
    int64_t balance, old;
    bool found;
    // Insert or overwrite without `ON CONFLICT` (MariaDB has none); an
    // existing account keeps what it has frozen.
    if (!wasmtx_get_str(call, account, "id", &id) || !wasmtx_get_i64(call, account, "balance", &balance) ||
        !balance_of(call, id, &found, &old) ||
        !wasmtx_db_execute(call,
                           found ? "UPDATE accounts SET balance = $2 WHERE id = $1"
                                 : "INSERT INTO accounts (id, balance) VALUES ($1, $2)",
                           WASMTX_PARAMS(wasmtx_text(id), wasmtx_int(balance)), NULL)) {
      return false;
    }
  }
  wasmtx_out_printf(call, "{\"accounts\":%zu}", accounts->as.array.len);
  return true;
}

static bool trans_out(wasmtx_call *call) {
  transfer t;
  uint64_t debited;
  bool found;
  int64_t balance;
  if (!read_transfer(call, &t) ||
      !wasmtx_db_execute(call, "UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1",
                         WASMTX_PARAMS(wasmtx_int(t.amount), wasmtx_text(t.from)), &debited)) {
    return false;
  }
  if (debited == 0) {
    if (!balance_of(call, t.from, &found, &balance)) return false;
    if (!found) return missing_account(call, t.from);
    return wasmtx_failure(call, "insufficient funds in %.*s", WASMTX_STR_ARG(t.from));
  }
  // The host tags the line with the module, gid and branch.
  wasmtx_log_info("debited %lld from %.*s", (long long)t.amount, WASMTX_STR_ARG(t.from));
  return true;
}

static bool trans_out_revert(wasmtx_call *call) {
  transfer t;
  bool found;
  // This gives back what trans-out took: it overflows only if the balance
  // grew since (other credits, `setup`), and is then refused rather than
  // corrupted. An account that is gone has nothing to give back to.
  return read_transfer(call, &t) && credit(call, t.from, t.amount, &found);
}

static bool trans_in(wasmtx_call *call) {
  transfer t;
  bool found;
  if (!read_transfer(call, &t) || !credit(call, t.to, t.amount, &found)) return false;
  return found || missing_account(call, t.to);
}

static bool trans_in_revert(wasmtx_call *call) {
  transfer t;
  uint64_t debited;
  bool found;
  int64_t balance;
  // The guard of `credit` at the other end of BIGINT: balance - $1 >= INT64_MIN.
  if (!read_transfer(call, &t) ||
      !wasmtx_db_execute(call,
                         "UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1 - 9223372036854775807 - 1",
                         WASMTX_PARAMS(wasmtx_int(t.amount), wasmtx_text(t.to)), &debited)) {
    return false;
  }
  if (debited == 0) {
    if (!balance_of(call, t.to, &found, &balance)) return false;
    if (found) return overflow(call, t.to);
  }
  return true;
}

static bool try_out(wasmtx_call *call) {
  transfer t;
  uint64_t frozen;
  bool found;
  int64_t balance;
  if (!read_transfer(call, &t) ||
      !wasmtx_db_execute(call,
                         "UPDATE accounts SET balance = balance - $1, frozen = frozen + $1 WHERE id = $2 AND balance >= $1",
                         WASMTX_PARAMS(wasmtx_int(t.amount), wasmtx_text(t.from)), &frozen)) {
    return false;
  }
  if (frozen == 0) {
    if (!balance_of(call, t.from, &found, &balance)) return false;
    if (!found) return missing_account(call, t.from);
    return wasmtx_failure(call, "insufficient funds in %.*s", WASMTX_STR_ARG(t.from));
  }
  wasmtx_log_info("froze %lld of %.*s", (long long)t.amount, WASMTX_STR_ARG(t.from));
  return true;
}

// The statement that releases what `try-out` froze on an account, as `set` says.
#define UNFREEZE(set) "UPDATE accounts SET " set " WHERE id = $2 AND frozen >= $1"

// Runs `sql` (an UNFREEZE) for `amount` on `id`. Less frozen than that means
// the try never committed here, which the barrier rules out: refused (and so
// retried, and visible) rather than made up.
static bool unfreeze(wasmtx_call *call, wasmtx_str id, int64_t amount, const char *sql) {
  uint64_t released;
  bool found;
  int64_t balance;
  if (!wasmtx_db_execute(call, sql, WASMTX_PARAMS(wasmtx_int(amount), wasmtx_text(id)), &released)) return false;
  if (released == 0) {
    if (!balance_of(call, id, &found, &balance)) return false;
    if (!found) return missing_account(call, id);
    return wasmtx_failure(call, "account %.*s has less than %lld frozen", WASMTX_STR_ARG(id), (long long)amount);
  }
  return true;
}

static bool confirm_out(wasmtx_call *call) {
  transfer t;
  return read_transfer(call, &t) && unfreeze(call, t.from, t.amount, UNFREEZE("frozen = frozen - $1"));
}

static bool cancel_out(wasmtx_call *call) {
  transfer t;
  return read_transfer(call, &t) &&
         unfreeze(call, t.from, t.amount, UNFREEZE("balance = balance + $1, frozen = frozen - $1"));
}

static bool try_in(wasmtx_call *call) {
  transfer t;
  bool found;
  int64_t balance;
  if (!read_transfer(call, &t) || !balance_of(call, t.to, &found, &balance)) return false;
  if (!found) return missing_account(call, t.to);
  // amount is positive, so INT64_MAX - amount does not overflow.
  if (balance > INT64_MAX - t.amount) return overflow(call, t.to);
  return true;
}

static bool confirm_in(wasmtx_call *call) {
  transfer t;
  bool found;
  if (!read_transfer(call, &t) || !credit(call, t.to, t.amount, &found)) return false;
  return found || missing_account(call, t.to);
}

static bool cancel_in(wasmtx_call *call) {
  transfer t;
  // try-in changed nothing; the payload is still checked like the others'.
  return read_transfer(call, &t);
}

static bool balance(wasmtx_call *call) {
  const wasmtx_json *in = wasmtx_payload(call);
  wasmtx_str id;
  bool found;
  int64_t amount;
  if (!wasmtx_object(call, in, "payload") || !wasmtx_get_str(call, in, "id", &id) ||
      !balance_of(call, id, &found, &amount)) {
    return false;
  }
  if (!found) return missing_account(call, id);
  wasmtx_out_printf(call, "{\"id\":");
  wasmtx_out_json_string(call, id);
  wasmtx_out_printf(call, ",\"balance\":%lld}", (long long)amount);
  return true;
}

// Answers `retry` on the first `retries` attempts and succeeds on the next.
static bool flaky(wasmtx_call *call) {
  const wasmtx_json *in = wasmtx_payload(call);
  int64_t retries;
  if (!wasmtx_object(call, in, "payload") || !wasmtx_get_i64(call, in, "retries", &retries)) return false;
  if (retries < 0 || retries > MAX_RETRIES) {
    return wasmtx_failure(call, "retries must be between 0 and %lld, got %lld", (long long)MAX_RETRIES,
                          (long long)retries);
  }
  uint32_t attempt = wasmtx_context_of(call)->attempt;
  if ((int64_t)attempt <= retries) {
    return wasmtx_retry(call, "attempt %lu of %lld", (unsigned long)attempt, (long long)(retries + 1));
  }
  wasmtx_out_printf(call, "{\"attempts\":%lu}", (unsigned long)attempt);
  return true;
}

static const wasmtx_function FUNCTIONS[] = {
    {"setup", setup},
    {"trans-out", trans_out},
    {"trans-out-revert", trans_out_revert},
    {"trans-in", trans_in},
    {"trans-in-revert", trans_in_revert},
    {"balance", balance},
    {"try-out", try_out},
    {"confirm-out", confirm_out},
    {"cancel-out", cancel_out},
    {"try-in", try_in},
    {"confirm-in", confirm_in},
    {"cancel-in", cancel_in},
    {"flaky", flaky},
};

WASMTX_EXPORT(FUNCTIONS);
