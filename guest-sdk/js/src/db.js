// `db`: the branch's local transaction, over the WIT `db` import. Converts
// JavaScript values to the WIT `value` variant and back, and turns the host's
// `db-error` into a `DbError`.
//
// Every statement joins the one transaction the host opened for the
// invocation; it commits only if the function returns. There is no
// BEGIN/COMMIT to write, and none may be issued.
//
// This module does not decide what a database error means for the branch: a
// `DbError` is a `Retry`, right for transient errors only. Catch it (check
// `isUniqueViolation()` and friends) where an error carries business meaning.

import { Failure, Retry } from './errors.js';
import { execute as hostExecute, query as hostQuery } from './host.js';

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const TAGS = new Set(['null', 'boolean', 'int', 'float', 'text', 'bytes']);

/**
 * A statement the database refused (constraint violated, syntax error,
 * serialization conflict, connection lost, ...). A `Retry`: uncaught, the
 * host rolls back and calls again. The message is `database error <code>: <message>`.
 */
export class DbError extends Retry {
  constructor({ code, message }) {
    super(code === undefined || code === null ? `database error: ${message}` : `database error ${code}: ${message}`);
    this.name = 'DbError';
    /**
     * The SQLSTATE on Postgres ("23505", "40001"), the extended result code on
     * SQLite ("2067"); null when the error did not come from the database.
     */
    this.code = code ?? null;
    /** The database's own message. */
    this.detail = message;
  }

  /** A UNIQUE or PRIMARY KEY constraint was violated (Postgres 23505, SQLite 2067 or 1555). */
  isUniqueViolation() {
    return ['23505', '2067', '1555'].includes(this.code);
  }

  /** A FOREIGN KEY constraint was violated (Postgres 23503, SQLite 787). */
  isForeignKeyViolation() {
    return ['23503', '787'].includes(this.code);
  }
}

/** The type of a value, for messages: "symbol", "null", "Object", "Date", "Uint16Array". */
function typeName(value) {
  if (value === null) {
    return 'null';
  }
  if (typeof value !== 'object') {
    return typeof value;
  }
  return Object.getPrototypeOf(value)?.constructor?.name || 'Object';
}

/** An `int` of the WIT value, or a Failure if `n` does not fit an s64. */
function int(n, where) {
  if (n < I64_MIN || n > I64_MAX) {
    throw new Failure(`${where}: ${n} is out of the i64 range`);
  }
  return { tag: 'int', val: n };
}

function text(s, where) {
  if (LONE_SURROGATE.test(s)) {
    throw new Failure(`${where}: the string has a lone surrogate`);
  }
  return { tag: 'text', val: s };
}

/**
 * `value` as the WIT `value` variant. `where` names it in a refusal
 * ("db.execute parameter $2"). A value with no SQL type is a Failure: the
 * code and the statement disagree, and no retry fixes that.
 */
export function toValue(value, where) {
  switch (typeof value) {
    case 'undefined':
      return { tag: 'null' };
    case 'boolean':
      return { tag: 'boolean', val: value };
    case 'number':
      return Number.isSafeInteger(value) ? { tag: 'int', val: BigInt(value) } : { tag: 'float', val: value };
    case 'bigint':
      return int(value, where);
    case 'string':
      return text(value, where);
  }
  if (value === null) {
    return { tag: 'null' };
  }
  if (value instanceof Uint8Array) {
    return { tag: 'bytes', val: value };
  }
  if (typeof value === 'object' && TAGS.has(value.tag)) {
    return tagged(value, where);
  }
  throw new Failure(`${where} (${typeName(value)}) has no SQL type`);
}

/** A value already in the WIT form (`{ tag: 'float', val: 30 }`), checked. */
function tagged({ tag, val }, where) {
  const ok = {
    null: () => true,
    boolean: () => typeof val === 'boolean',
    int: () => typeof val === 'bigint' || Number.isSafeInteger(val),
    float: () => typeof val === 'number',
    text: () => typeof val === 'string',
    bytes: () => val instanceof Uint8Array,
  }[tag]();
  if (!ok) {
    throw new Failure(`${where}: { tag: '${tag}' } cannot hold a value of type ${typeName(val)}`);
  }
  switch (tag) {
    case 'null':
      return { tag };
    case 'int':
      return int(BigInt(val), where);
    case 'text':
      return text(val, where);
    default:
      return { tag, val };
  }
}

/** A WIT `value` as JavaScript: int a BigInt, float a Number, bytes a Uint8Array. */
export function fromValue({ tag, val }) {
  switch (tag) {
    case 'null':
      return null;
    case 'int':
      return BigInt(val);
    case 'bytes':
      return val instanceof Uint8Array ? val : Uint8Array.from(val);
    default:
      return val;
  }
}

/** Runs `call` on the host; its `db-error` becomes a DbError. */
function onHost(call) {
  try {
    return call();
  } catch (e) {
    // ComponentizeJS throws an import's `err` case as an Error whose `payload`
    // is the `db-error` record (`code` undefined when none).
    const error = e?.payload;
    if (error === undefined || typeof error.message !== 'string') {
      throw e;
    }
    throw new DbError(error);
  }
}

function checkSql(sql, what) {
  if (typeof sql !== 'string') {
    throw new Failure(`${what}: the SQL is of type ${typeName(sql)}, not a string`);
  }
}

const bind = (what, params) => params.map((p, i) => toValue(p, `${what} parameter $${i + 1}`));

/**
 * Runs a statement (INSERT, UPDATE, DELETE, DDL) and returns the number of
 * rows it affected, as a Number. Parameters are `$1, $2, ...` in the SQL.
 * Throws a DbError if the database refuses it.
 */
export function execute(sql, ...params) {
  checkSql(sql, 'db.execute');
  const values = bind('db.execute', params);
  return Number(onHost(() => hostExecute(sql, values)));
}

/**
 * Runs a query and returns every row, as an array of objects keyed by column
 * name (the first column of a name wins; `rows.columns` lists them all, in
 * order). Throws a DbError if the database refuses it.
 */
export function query(sql, ...params) {
  checkSql(sql, 'db.query');
  const values = bind('db.query', params);
  const { columns, values: table } = onHost(() => hostQuery(sql, values));
  const rows = table.map((cells) => {
    const row = {};
    columns.forEach((column, i) => {
      if (!Object.hasOwn(row, column)) {
        // Not `row[column] = ...`: a column "__proto__" would set the prototype.
        Object.defineProperty(row, column, { value: fromValue(cells[i]), writable: true, enumerable: true, configurable: true });
      }
    });
    return row;
  });
  Object.defineProperty(rows, 'columns', { value: Object.freeze([...columns]) });
  return rows;
}

/** `value` as a float parameter even if it is an integer (`db.float(30)`). */
export function float(value) {
  if (typeof value !== 'number') {
    throw new Failure(`db.float takes a number, not a value of type ${typeName(value)}`);
  }
  return { tag: 'float', val: value };
}
