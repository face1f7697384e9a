// `db` (src/db.js) against the host double: JavaScript values to WIT values
// and back, and database errors.

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import '../testing/register.js';
import { ComponentError, dbError, host } from '../testing/host.js';

const { db, DbError, Failure, Retry } = await import('../index.js');

beforeEach(() => host.reset());

/** The WIT values `db.execute` passes to the host for `params`. */
function bound(...params) {
  host.execute = () => 0n;
  db.execute('SELECT 1', ...params);
  return host.statements.at(-1).params;
}

const refusedWith = (message) => (e) => {
  assert.ok(e instanceof Failure, `${e}`);
  assert.equal(e.message, message);
  return true;
};

test('JavaScript values bind as WIT values', () => {
  const bytes = new Uint8Array([1, 2, 3]);
  assert.deepEqual(bound(null, undefined, true, false, 'é', bytes), [
    { tag: 'null' },
    { tag: 'null' },
    { tag: 'boolean', val: true },
    { tag: 'boolean', val: false },
    { tag: 'text', val: 'é' },
    { tag: 'bytes', val: bytes },
  ]);
});

test('numbers bind as int when they are safe integers, else as float', () => {
  assert.deepEqual(bound(30, -7, 0, Number.MAX_SAFE_INTEGER, 2 ** 53, 1.5, NaN, Infinity), [
    { tag: 'int', val: 30n },
    { tag: 'int', val: -7n },
    { tag: 'int', val: 0n },
    { tag: 'int', val: 9007199254740991n },
    { tag: 'float', val: 2 ** 53 },
    { tag: 'float', val: 1.5 },
    { tag: 'float', val: NaN },
    { tag: 'float', val: Infinity },
  ]);
  assert.deepEqual(bound(db.float(30)), [{ tag: 'float', val: 30 }]);
});

test('BigInts bind as int within the i64 range and are refused outside it', () => {
  assert.deepEqual(bound(2n ** 63n - 1n, -(2n ** 63n)), [
    { tag: 'int', val: 9223372036854775807n },
    { tag: 'int', val: -9223372036854775808n },
  ]);
  assert.throws(() => bound(1n, 2n ** 63n), refusedWith('db.execute parameter $2: 9223372036854775808 is out of the i64 range'));
  assert.throws(() => bound(-(2n ** 63n) - 1n), refusedWith('db.execute parameter $1: -9223372036854775809 is out of the i64 range'));
});

test('values in WIT form pass, checked', () => {
  assert.deepEqual(bound({ tag: 'int', val: 5 }, { tag: 'text', val: 'x' }, { tag: 'null' }), [
    { tag: 'int', val: 5n },
    { tag: 'text', val: 'x' },
    { tag: 'null' },
  ]);
  assert.throws(() => bound({ tag: 'int', val: 'five' }), refusedWith("db.execute parameter $1: { tag: 'int' } cannot hold a value of type string"));
  assert.throws(() => bound({ tag: 'float', val: null }), refusedWith("db.execute parameter $1: { tag: 'float' } cannot hold a value of type null"));
  assert.throws(() => db.float('1'), Failure);
});

test('values without an SQL type are refused, naming the parameter', () => {
  host.query = () => ({ columns: [], values: [] });
  assert.throws(() => bound(Symbol('s')), refusedWith('db.execute parameter $1 (symbol) has no SQL type'));
  assert.throws(() => bound(1, { id: 1 }), refusedWith('db.execute parameter $2 (Object) has no SQL type'));
  assert.throws(() => bound(new Date(0)), refusedWith('db.execute parameter $1 (Date) has no SQL type'));
  assert.throws(() => bound([1]), refusedWith('db.execute parameter $1 (Array) has no SQL type'));
  assert.throws(() => bound(new Uint16Array(1)), refusedWith('db.execute parameter $1 (Uint16Array) has no SQL type'));
  assert.throws(() => db.query('SELECT $1', 'a\udc00'), refusedWith('db.query parameter $1: the string has a lone surrogate'));
  assert.throws(() => db.execute(42), refusedWith('db.execute: the SQL is of type number, not a string'));
  assert.equal(host.statements.length, 0, 'nothing reached the host');
});

test('execute returns the rows affected as a Number', () => {
  host.execute = (sql, params) => {
    assert.equal(sql, 'UPDATE accounts SET balance = $1');
    assert.deepEqual(params, [{ tag: 'int', val: 1n }]);
    return 3n;
  };
  assert.equal(db.execute('UPDATE accounts SET balance = $1', 1), 3);
});

test('query returns rows as objects by column name, WIT values converted', () => {
  const bytes = new Uint8Array([9]);
  host.query = () => ({
    columns: ['id', 'balance', 'rate', 'blob', 'note', 'ok', '__proto__', 'id'],
    values: [
      [
        { tag: 'text', val: 'alice' },
        { tag: 'int', val: 9223372036854775807n },
        { tag: 'float', val: 0.5 },
        { tag: 'bytes', val: bytes },
        { tag: 'null' },
        { tag: 'boolean', val: true },
        { tag: 'text', val: 'p' },
        { tag: 'text', val: 'second id' },
      ],
    ],
  });
  const rows = db.query('SELECT ...');
  assert.equal(rows.length, 1);
  const [row] = rows;
  assert.equal(row.id, 'alice', 'the first column of a name wins');
  assert.equal(row.balance, 9223372036854775807n);
  assert.equal(row.rate, 0.5);
  assert.deepEqual(row.blob, bytes);
  assert.equal(row.note, null);
  assert.equal(row.ok, true);
  assert.equal(Object.getPrototypeOf(row), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(row, '__proto__').value, 'p');
  assert.deepEqual(rows.columns, ['id', 'balance', 'rate', 'blob', 'note', 'ok', '__proto__', 'id']);
  assert.deepEqual(Object.keys(rows), ['0'], 'columns is not enumerable');
});

test('an empty result is an empty array with its columns', () => {
  host.query = () => ({ columns: ['balance'], values: [] });
  const rows = db.query('SELECT balance FROM accounts WHERE id = $1', 'carol');
  assert.deepEqual([...rows], []);
  assert.deepEqual(rows.columns, ['balance']);
  assert.deepEqual(host.statements, [
    { call: 'query', sql: 'SELECT balance FROM accounts WHERE id = $1', params: [{ tag: 'text', val: 'carol' }] },
  ]);
});

test('a database refusal is a DbError, which is a Retry', () => {
  host.execute = () => {
    throw dbError('40001', 'could not serialize access');
  };
  assert.throws(
    () => db.execute('UPDATE t SET x = 1'),
    (e) => {
      assert.ok(e instanceof DbError && e instanceof Retry);
      assert.equal(e.message, 'database error 40001: could not serialize access');
      assert.equal(e.code, '40001');
      assert.equal(e.detail, 'could not serialize access');
      assert.ok(!e.isUniqueViolation());
      return true;
    },
  );
  host.query = () => {
    throw dbError(undefined, 'connection lost');
  };
  assert.throws(() => db.query('SELECT 1'), { name: 'DbError', message: 'database error: connection lost', code: null });
});

test('unique and foreign key violations are recognised on both backends', () => {
  const codes = { '23505': 'unique', '2067': 'unique', '1555': 'unique', '23503': 'fk', '787': 'fk', '40001': null };
  for (const [code, kind] of Object.entries(codes)) {
    const e = new DbError({ code, message: 'x' });
    assert.equal(e.isUniqueViolation(), kind === 'unique', code);
    assert.equal(e.isForeignKeyViolation(), kind === 'fk', code);
  }
});

test('other errors of the host pass through unchanged', () => {
  const bug = new TypeError('not a db-error');
  host.execute = () => {
    throw bug;
  };
  assert.throws(() => db.execute('SELECT 1'), (e) => e === bug);
  host.execute = () => {
    throw new ComponentError('a string payload');
  };
  assert.throws(() => db.execute('SELECT 1'), (e) => e instanceof ComponentError);
});
