// Transfer example: a bank transfer as saga branches, in JavaScript, on the
// `wasmtx-guest` SDK (guest-sdk/js).
//
// The same functions, SQL and messages as `examples/transfer/rust`, which is the
// spec. Business refusals are `Failure` (never retried); database errors are
// `DbError`s, which are retries. The SDK parses the payload (integers as exact
// BigInts), reads fields as strictly as serde, and answers `invoke`.
//
// The TCC functions (`try-out`, `confirm-out`, `cancel-out`, `try-in`,
// `confirm-in`, `cancel-in`) freeze the amount in the `frozen` column while the
// transaction is undecided. A cancel runs only if its try committed, and a try
// that arrives after its cancel does nothing (the host's barrier), so the
// cancels need not check.
//
// `flaky` asks to be retried `retries` times, then succeeds; it touches no table.

import { branch, db, fields, log, Failure, Retry } from 'wasmtx-guest';

/**
 * The largest amount a transfer step accepts (10^15): every language computes
 * with amounts exactly, and an amount is far from the ends of BIGINT.
 */
const MAX_AMOUNT = 10n ** 15n;

/** The largest BIGINT (i64). */
const I64_MAX = 2n ** 63n - 1n;

/** The most retries `flaky` accepts, as in the Rust version. */
const MAX_RETRIES = 1000n;

/**
 * Payload of the transfer steps: the action and its compensation (and a TCC's
 * try, confirm and cancel) get the same.
 */
const TRANSFER = { from: 'string', to: 'string', amount: 'integer' };

/** The transfer in `payload`, its amount refused unless positive and at most MAX_AMOUNT. */
function transfer(payload) {
  const t = fields(payload, TRANSFER);
  if (t.amount <= 0n) {
    throw new Failure(`amount must be a positive integer, got ${t.amount}`);
  }
  if (t.amount > MAX_AMOUNT) {
    throw new Failure(`amount must be at most ${MAX_AMOUNT}, got ${t.amount}`);
  }
  return t;
}

/** The WIT kind of a value `db.query` returned, for messages. */
const kindOf = (v) =>
  v === null ? 'null' : v instanceof Uint8Array ? 'bytes' : { bigint: 'int', number: 'float', string: 'text', boolean: 'boolean' }[typeof v];

const missingAccount = (id) => new Failure(`account ${id} does not exist`);
const overflow = (id) => new Failure(`balance of ${id} would overflow`);

/** The balance of `id` as a BigInt, or null if there is no such account. */
function balanceOf(id) {
  const [row] = db.query('SELECT balance FROM accounts WHERE id = $1', id);
  if (row === undefined) {
    return null;
  }
  if (typeof row.balance !== 'bigint') {
    throw new Failure(`column "balance" holds ${kindOf(row.balance)}, expected int`);
  }
  return row.balance;
}

/**
 * Adds `amount` to the balance of `id`; false if there is no such account.
 *
 * The guard keeps the balance within BIGINT: past the s64 maximum, SQLite
 * would store a REAL (and `balanceOf` would then fail), and Postgres and
 * MariaDB would fail with 22003 (a database error: retried for ever). Refused
 * instead.
 */
function credit(id, amount) {
  const credited = db.execute(
    'UPDATE accounts SET balance = balance + $1 WHERE id = $2 AND balance <= 9223372036854775807 - $1',
    amount,
    id,
  );
  if (credited === 0) {
    if (balanceOf(id) === null) {
      return false;
    }
    throw overflow(id);
  }
  return true;
}

function setup(_ctx, payload) {
  const { accounts } = fields(payload, { accounts: 'array' });
  const read = accounts.map((account) => fields(account, { id: 'string', balance: 'integer' }, 'account'));
  db.execute(
    'CREATE TABLE IF NOT EXISTS accounts ' +
      '(id VARCHAR(64) PRIMARY KEY, balance BIGINT NOT NULL, frozen BIGINT NOT NULL DEFAULT 0)',
  );
  for (const { id, balance } of read) {
    // Insert or overwrite without `ON CONFLICT` (MariaDB has none); an
    // existing account keeps what it has frozen.
    const sql =
      balanceOf(id) === null
        ? 'INSERT INTO accounts (id, balance) VALUES ($1, $2)'
        : 'UPDATE accounts SET balance = $2 WHERE id = $1';
    db.execute(sql, id, balance);
  }
  return { accounts: read.length };
}

function transOut(_ctx, payload) {
  const { from, amount } = transfer(payload);
  const debited = db.execute(
    'UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1',
    amount,
    from,
  );
  if (debited === 0) {
    throw balanceOf(from) === null ? missingAccount(from) : new Failure(`insufficient funds in ${from}`);
  }
  // The host tags the line with the module, gid and branch.
  log.info(`debited ${amount} from ${from}`);
}

function transOutRevert(_ctx, payload) {
  const { from, amount } = transfer(payload);
  // This gives back what trans-out took: it overflows only if the balance
  // grew since (other credits, `setup`), and is then refused rather than
  // corrupted. An account that is gone has nothing to give back to.
  credit(from, amount);
}

function transIn(_ctx, payload) {
  const { to, amount } = transfer(payload);
  if (!credit(to, amount)) {
    throw missingAccount(to);
  }
}

function transInRevert(_ctx, payload) {
  const { to, amount } = transfer(payload);
  // The guard of `credit` at the other end of BIGINT: balance - $1 >= i64 min.
  const debited = db.execute(
    'UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1 - 9223372036854775807 - 1',
    amount,
    to,
  );
  if (debited === 0 && balanceOf(to) !== null) {
    throw overflow(to);
  }
}

function tryOut(_ctx, payload) {
  const { from, amount } = transfer(payload);
  const frozen = db.execute(
    'UPDATE accounts SET balance = balance - $1, frozen = frozen + $1 WHERE id = $2 AND balance >= $1',
    amount,
    from,
  );
  if (frozen === 0) {
    throw balanceOf(from) === null ? missingAccount(from) : new Failure(`insufficient funds in ${from}`);
  }
  log.info(`froze ${amount} of ${from}`);
}

function confirmOut(_ctx, payload) {
  const { from, amount } = transfer(payload);
  unfreeze(from, amount, 'frozen = frozen - $1');
}

function cancelOut(_ctx, payload) {
  const { from, amount } = transfer(payload);
  unfreeze(from, amount, 'balance = balance + $1, frozen = frozen - $1');
}

/**
 * Releases `amount` of what `try-out` froze on `id`, as `set` says. Less
 * frozen than that means the try never committed here, which the barrier
 * rules out: refused (and so retried, and visible) rather than made up.
 */
function unfreeze(id, amount, set) {
  if (db.execute(`UPDATE accounts SET ${set} WHERE id = $2 AND frozen >= $1`, amount, id) === 0) {
    throw balanceOf(id) === null ? missingAccount(id) : new Failure(`account ${id} has less than ${amount} frozen`);
  }
}

function tryIn(_ctx, payload) {
  const { to, amount } = transfer(payload);
  const balance = balanceOf(to);
  if (balance === null) {
    throw missingAccount(to);
  }
  if (balance > I64_MAX - amount) {
    throw overflow(to);
  }
}

function confirmIn(_ctx, payload) {
  const { to, amount } = transfer(payload);
  if (!credit(to, amount)) {
    throw missingAccount(to);
  }
}

function cancelIn(_ctx, payload) {
  // try-in changed nothing; the payload is still checked like the others'.
  transfer(payload);
}

function balance(_ctx, payload) {
  const { id } = fields(payload, { id: 'string' });
  const amount = balanceOf(id);
  if (amount === null) {
    throw missingAccount(id);
  }
  return { id, balance: amount };
}

/** Answers `retry` on the first `retries` attempts and succeeds on the next. */
function flaky(ctx, payload) {
  const { retries } = fields(payload, { retries: 'integer' });
  if (retries < 0n || retries > MAX_RETRIES) {
    throw new Failure(`retries must be between 0 and ${MAX_RETRIES}, got ${retries}`);
  }
  const attempt = BigInt(ctx.attempt);
  if (attempt <= retries) {
    throw new Retry(`attempt ${attempt} of ${retries + 1n}`);
  }
  return { attempts: attempt };
}

export const handler = branch({
  setup,
  'trans-out': transOut,
  'trans-out-revert': transOutRevert,
  'trans-in': transIn,
  'trans-in-revert': transInRevert,
  balance,
  'try-out': tryOut,
  'confirm-out': confirmOut,
  'cancel-out': cancelOut,
  'try-in': tryIn,
  'confirm-in': confirmIn,
  'cancel-in': cancelIn,
  flaky,
});
