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
const INTEGER_LITERAL = /^-?\d+$/;

/**
 * JSON.parse, except that integer literals become BigInts, exactly (an s64 needs
 * more than a Number's 53 bits), and `30.0` stays a Number, so it is not an
 * integer. This relies on the reviver's `context.source` (JSON.parse source
 * text access), which the SpiderMonkey in ComponentizeJS 0.23 has.
 */
function parseJson(text) {
  return JSON.parse(text, (_key, value, context) =>
    typeof value === 'number' && INTEGER_LITERAL.test(context.source) ? BigInt(context.source) : value,
  );
}

const TOKEN = /"(?:[^"\\]|\\.)*"|[{}[\],]/g;

/**
 * Throws if an object in the (valid) JSON `text` has a key twice: JSON.parse
 * keeps the last value silently, serde refuses a repeated field. (Stricter than
 * serde, which only refuses fields it reads.)
 */
function refuseRepeatedKeys(text) {
  const scopes = []; // per open bracket: the keys seen (object) or null (array)
  let atKey = false;
  for (const [token] of text.matchAll(TOKEN)) {
    const scope = scopes.at(-1);
    if (token === '{' || token === '[') {
      scopes.push(token === '{' ? new Set() : null);
      atKey = token === '{';
    } else if (token === '}' || token === ']') {
      scopes.pop();
      atKey = false;
    } else if (token === ',') {
      atKey = scope instanceof Set;
    } else if (atKey) {
      const key = JSON.parse(token);
      if (scope.has(key)) {
        throw new InvalidPayload(`duplicate field \`${key}\``);
      }
      scope.add(key);
      atKey = false;
    }
  }
}

const KINDS = { string: 'a string', integer: 'an integer', array: 'an array' };
// With the u flag, a surrogate range matches only surrogates that are not in a pair.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Reads a required field; `kind` is 'string', 'integer' (a BigInt) or 'array'. */
function field(obj, name, kind) {
  if (!Object.hasOwn(obj, name)) {
    throw new InvalidPayload(`missing field \`${name}\``);
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
  execute('UPDATE accounts SET balance = balance + $1 WHERE id = $2', int(amount), text(from));
  return 'null';
}

function transIn(payload) {
  const { to, amount } = transfer(payload);
  const credited = execute('UPDATE accounts SET balance = balance + $1 WHERE id = $2', int(amount), text(to));
  if (credited === 0n) {
    throw new Failure(`account ${to} does not exist`);
  }
  return 'null';
}

function transInRevert(payload) {
  const { to, amount } = transfer(payload);
  execute('UPDATE accounts SET balance = balance - $1 WHERE id = $2', int(amount), text(to));
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
      const text = utf8.decode(payload);
      input = parseJson(text);
      refuseRepeatedKeys(text);
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
