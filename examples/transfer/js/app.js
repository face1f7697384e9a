// Transfer example: a bank transfer as saga branches, in JavaScript.
//
// The same functions, SQL and messages as `examples/transfer/rust`, which is the
// spec. Business refusals are `failure` (never retried); database errors are
// `retry` (transient). Whatever goes wrong, `invoke` throws a `branch-error`
// value (`{ tag, val }`), which componentize-js returns as the `err` case; an
// `Error` escaping `invoke` would trap the instance instead.

import { execute as dbExecute, query as dbQuery } from 'wasmtx:runtime/db@0.1.0';
import { log } from 'wasmtx:runtime/log@0.1.0';

/** A business refusal: never retried. */
class Failure extends Error {}
/** A transient error: the host rolls back and calls again later. */
class Retry extends Error {}
/** The payload is not the JSON the function expects. */
class InvalidPayload extends Error {}

// --- payloads ----------------------------------------------------------------

const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

function jsonObject(value, what) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidPayload(`${what} must be a JSON object`);
  }
  return value;
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
/** The largest amount a transfer step accepts, as in the Rust version. */
const MAX_AMOUNT = 10n ** 15n;

// Strings, brackets and the other values (numbers, true, false, null); `,` and `:` are skipped.
const TOKEN = /"(?:[^"\\]|\\.)*"|[{}[\]]|[^\s{}[\],:"]+/g;
// An integer literal, except -0, which serde_json reads as a float (-0.0).
const INTEGER_LITERAL = /^(?:0|-?[1-9]\d*)$/;

/** For every object `parseJson` made: the keys the text gives it more than once. */
const repeatedKeys = new WeakMap();

/**
 * Parses the JSON `text` as serde_json reads it, which JSON.parse alone does not:
 *
 * - an integer literal becomes a BigInt, exactly (an s64 needs more than a
 *   Number's 53 bits), while `30.0`, `1e2` and `-0` stay Numbers, so they are
 *   not integers;
 * - each object remembers its repeated keys (in `repeatedKeys`). Like
 *   JSON.parse, the last value wins; `field` then refuses a repeated key it
 *   reads, as serde refuses a repeated field, and other keys do not matter.
 *
 * JSON.parse checks the syntax first (its SyntaxError says what is wrong), so
 * the loop only meets valid JSON. It does not recurse: nesting costs no stack.
 */
function parseJson(text) {
  JSON.parse(text);
  let result;
  const open = []; // the containers being filled: arrays, and { object, key } for objects
  for (const [token] of text.matchAll(TOKEN)) {
    const top = open.at(-1);
    if (token === '}' || token === ']') {
      open.pop();
      continue;
    }
    if (top !== undefined && !Array.isArray(top) && top.key === undefined) {
      top.key = JSON.parse(token); // a member's key; its value comes next
      continue;
    }
    let value;
    if (token === '{') {
      value = {};
      repeatedKeys.set(value, new Set());
    } else if (token === '[') {
      value = [];
    } else {
      value = INTEGER_LITERAL.test(token) ? BigInt(token) : JSON.parse(token);
    }
    if (top === undefined) {
      result = value;
    } else if (Array.isArray(top)) {
      top.push(value);
    } else {
      if (Object.hasOwn(top.object, top.key)) {
        repeatedKeys.get(top.object).add(top.key);
      }
      // Not `object[key] = value`: a key "__proto__" would set the prototype.
      Object.defineProperty(top.object, top.key, { value, writable: true, enumerable: true, configurable: true });
      top.key = undefined;
    }
    if (token === '{') {
      open.push({ object: value, key: undefined });
    } else if (token === '[') {
      open.push(value);
    }
  }
  return result;
}

const KINDS = { string: 'a string', integer: 'an integer', array: 'an array' };
// With the u flag, a surrogate range matches only surrogates that are not in a pair.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Reads a required field; `kind` is 'string', 'integer' (a BigInt) or 'array'. */
function field(obj, name, kind) {
  if (!Object.hasOwn(obj, name)) {
    throw new InvalidPayload(`missing field \`${name}\``);
  }
  if (repeatedKeys.get(obj).has(name)) {
    throw new InvalidPayload(`duplicate field \`${name}\``);
  }
  const value = obj[name];
  const ok =
    kind === 'integer'
      ? typeof value === 'bigint'
      : kind === 'array'
        ? Array.isArray(value)
        : typeof value === kind;
  if (!ok) {
    throw new InvalidPayload(`field \`${name}\` must be ${KINDS[kind]}`);
  }
  if (kind === 'integer' && (value < I64_MIN || value > I64_MAX)) {
    throw new InvalidPayload(`field \`${name}\` is out of range`);
  }
  if (kind === 'string' && LONE_SURROGATE.test(value)) {
    // JSON.parse accepts "\ud800"; the component model cannot carry it.
    throw new InvalidPayload(`field \`${name}\` has a lone surrogate`);
  }
  return value;
}

function transfer(payload) {
  const obj = jsonObject(payload, 'payload');
  const t = {
    from: field(obj, 'from', 'string'),
    to: field(obj, 'to', 'string'),
    amount: field(obj, 'amount', 'integer'),
  };
  if (t.amount <= 0n) {
    throw new Failure(`amount must be a positive integer, got ${t.amount}`);
  }
  if (t.amount > MAX_AMOUNT) {
    throw new Failure(`amount must be at most ${MAX_AMOUNT}, got ${t.amount}`);
  }
  return t;
}

// --- database ----------------------------------------------------------------

const text = (s) => ({ tag: 'text', val: s });
const int = (n) => ({ tag: 'int', val: n }); // n: BigInt

/** Runs `call`; a database error is transient, so the host retries. */
function db(call) {
  try {
    return call();
  } catch (e) {
    // An import's `err` case arrives as an Error whose `payload` is the db-error.
    const error = e?.payload;
    if (error === undefined) {
      throw e;
    }
    const code = error.code === undefined ? '' : ` ${error.code}`; // option: undefined when none
    throw new Retry(`database error${code}: ${error.message}`);
  }
}

/** Runs a statement; returns the number of rows affected. */
const execute = (sql, ...params) => db(() => dbExecute(sql, params));

/** The balance of `account` as a BigInt, or null if there is no such account. */
function balanceOf(account) {
  const rows = db(() => dbQuery('SELECT balance FROM accounts WHERE id = $1', [text(account)]));
  if (rows.values.length === 0) {
    return null;
  }
  const cell = rows.values[0][0];
  if (cell.tag !== 'int') {
    throw new Failure(`column "balance" holds ${cell.tag}, expected int`);
  }
  return cell.val;
}

/**
 * Adds `amount` to the balance of `account`; false if there is no such account.
 *
 * The guard keeps the balance within BIGINT: past the s64 maximum, SQLite
 * would store a REAL (and `balance` would then fail) and Postgres would fail
 * with 22003 (a database error: retried for ever). Refused instead.
 */
function credit(account, amount) {
  const credited = execute(
    'UPDATE accounts SET balance = balance + $1 WHERE id = $2 AND balance <= 9223372036854775807 - $1',
    int(amount),
    text(account),
  );
  if (credited === 0n) {
    if (balanceOf(account) === null) {
      return false;
    }
    throw new Failure(`balance of ${account} would overflow`);
  }
  return true;
}

// --- functions ---------------------------------------------------------------
// Each returns the JSON text of its output.

function setup(payload) {
  const accounts = field(jsonObject(payload, 'payload'), 'accounts', 'array').map((a) => {
    const obj = jsonObject(a, 'account');
    return { id: field(obj, 'id', 'string'), balance: field(obj, 'balance', 'integer') };
  });
  execute('CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)');
  for (const { id, balance } of accounts) {
    execute(
      'INSERT INTO accounts (id, balance) VALUES ($1, $2) ' +
        'ON CONFLICT (id) DO UPDATE SET balance = excluded.balance',
      text(id),
      int(balance),
    );
  }
  return JSON.stringify({ accounts: accounts.length });
}

function transOut(payload) {
  const { from, amount } = transfer(payload);
  const debited = execute(
    'UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1',
    int(amount),
    text(from),
  );
  if (debited === 0n) {
    if (balanceOf(from) === null) {
      throw new Failure(`account ${from} does not exist`);
    }
    throw new Failure(`insufficient funds in ${from}`);
  }
  // The host tags the line with the module, gid and branch.
  log('info', `debited ${amount} from ${from}`);
  return 'null';
}

function transOutRevert(payload) {
  const { from, amount } = transfer(payload);
  // This gives back what trans-out took: it overflows only if the balance
  // grew since (other credits, `setup`), and is then refused rather than
  // corrupted. An account that is gone has nothing to give back to.
  credit(from, amount);
  return 'null';
}

function transIn(payload) {
  const { to, amount } = transfer(payload);
  if (!credit(to, amount)) {
    throw new Failure(`account ${to} does not exist`);
  }
  return 'null';
}

function transInRevert(payload) {
  const { to, amount } = transfer(payload);
  // The guard of `credit` at the other end of BIGINT: balance - $1 >= i64 min.
  const debited = execute(
    'UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1 - 9223372036854775807 - 1',
    int(amount),
    text(to),
  );
  if (debited === 0n && balanceOf(to) !== null) {
    throw new Failure(`balance of ${to} would overflow`);
  }
  return 'null';
}

function balance(payload) {
  const id = field(jsonObject(payload, 'payload'), 'id', 'string');
  const amount = balanceOf(id);
  if (amount === null) {
    throw new Failure(`account ${id} does not exist`);
  }
  // The balance is an s64 (BigInt), which JSON.stringify refuses: write it as is.
  return `{"id":${JSON.stringify(id)},"balance":${amount}}`;
}

const FUNCTIONS = new Map([
  ['setup', setup],
  ['trans-out', transOut],
  ['trans-out-revert', transOutRevert],
  ['trans-in', transIn],
  ['trans-in-revert', transInRevert],
  ['balance', balance],
]);

// --- the exported `handler` interface ------------------------------------------

/** Turns anything thrown by a function into a `branch-error` value. */
function branchError(fn, e) {
  if (e instanceof Retry) {
    return { tag: 'retry', val: e.message };
  }
  if (e instanceof Failure) {
    return { tag: 'failure', val: e.message };
  }
  if (e instanceof InvalidPayload) {
    return { tag: 'failure', val: `invalid payload for ${fn}: ${e.message}` };
  }
  // A bug here must not trap the instance; report it as a refusal.
  return { tag: 'failure', val: `${fn} failed: ${e}` };
}

export const handler = {
  functions() {
    return [...FUNCTIONS.keys()];
  },

  invoke(fn, _ctx, payload) {
    const run = FUNCTIONS.get(fn);
    if (run === undefined) {
      const names = [...FUNCTIONS.keys()].join(', ');
      throw { tag: 'failure', val: `unknown function ${JSON.stringify(fn)} (this module has: ${names})` };
    }
    let input;
    try {
      input = parseJson(utf8.decode(payload));
    } catch (e) {
      // SyntaxError: malformed JSON; TypeError: bytes that are not UTF-8.
      throw { tag: 'failure', val: `invalid payload for ${fn}: ${e.message}` };
    }
    try {
      return encoder.encode(run(input));
    } catch (e) {
      throw branchError(fn, e);
    }
  },
};
