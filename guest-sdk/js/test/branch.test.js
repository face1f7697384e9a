// The `handler` export built by `branch` (src/branch.js), called as
// ComponentizeJS calls it: every outcome is a WIT `result`, never a throw.

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import '../testing/register.js';
import { dbError, host } from '../testing/host.js';

const { branch, Context, db, Failure, InvalidPayload, log, Retry, field, fields } = await import('../index.js');

beforeEach(() => host.reset());

const CTX = { gid: 'g-1', branchId: '01', op: 'action', attempt: 2, headers: [['X-Tenant', 't1']] };
const bytes = (s) => new TextEncoder().encode(s);

/** Calls `name` on `handler` with a JSON text; the result with the output as text. */
async function call(handler, name, payload = '', ctx = CTX) {
  const result = await handler.invoke(name, ctx, bytes(payload));
  assert.ok(result.tag === 'ok' || result.tag === 'err', `a WIT result: ${JSON.stringify(result)}`);
  return result.tag === 'ok' ? { tag: 'ok', val: new TextDecoder().decode(result.val) } : result;
}

const failure = (val) => ({ tag: 'err', val: { tag: 'failure', val } });
const retry = (val) => ({ tag: 'err', val: { tag: 'retry', val } });

test('functions lists the names in the order given', () => {
  const handler = branch({ 'trans-out': () => {}, balance: () => {}, setup: () => {} });
  assert.deepEqual(handler.functions(), ['trans-out', 'balance', 'setup']);
  const fromMap = branch(new Map([['b', () => {}], ['a', () => {}]]));
  assert.deepEqual(fromMap.functions(), ['b', 'a']);
});

test('the payload is parsed and the output written as JSON', async () => {
  const handler = branch({
    echo: (_ctx, payload) => ({ got: payload, balance: 2n ** 63n - 1n }),
    nothing: () => {},
  });
  assert.deepEqual(await call(handler, 'echo', '{"amount":30}'), { tag: 'ok', val: '{"got":{"amount":30},"balance":9223372036854775807}' });
  assert.deepEqual(await call(handler, 'nothing', '{}'), { tag: 'ok', val: 'null' });
  assert.deepEqual(await call(handler, 'echo', ''), { tag: 'ok', val: '{"got":null,"balance":9223372036854775807}' });
});

test('async functions are awaited, their rejections mapped like throws', async () => {
  const handler = branch({
    later: async (_ctx, payload) => {
      await Promise.resolve();
      return { twice: field(payload, 'n', 'integer') * 2n };
    },
    refuse: async () => {
      await null;
      throw new Failure('no');
    },
  });
  assert.deepEqual(await call(handler, 'later', '{"n":21}'), { tag: 'ok', val: '{"twice":42}' });
  assert.deepEqual(await call(handler, 'refuse', '{}'), failure('no'));
});

test('the function gets the context of the invocation', async () => {
  let seen;
  const handler = branch({ look: (ctx) => (seen = ctx) && null });
  await call(handler, 'look');
  assert.ok(seen instanceof Context);
  assert.equal(seen.gid, 'g-1');
  assert.equal(seen.branchId, '01');
  assert.equal(seen.op, 'action');
  assert.equal(seen.attempt, 2);
  assert.deepEqual(seen.headers, [['X-Tenant', 't1']]);
  assert.equal(seen.header('x-TENANT'), 't1');
  assert.equal(seen.header('missing'), undefined);
  assert.equal(seen.isUndo, false);
  assert.ok(Object.isFrozen(seen));
  assert.equal(new Context({ op: 'compensate' }).isUndo, true);
  assert.deepEqual({ ...new Context() }, { gid: '', branchId: '', op: 'call', attempt: 1, headers: [] });
  assert.throws(() => new Context({ op: 'launch' }), /unknown op "launch"/);
});

test('an unknown function is a failure listing the known ones', async () => {
  const handler = branch({ 'trans-out': () => {}, balance: () => {} });
  assert.deepEqual(await call(handler, 'trans-in', '{}'), failure('unknown function "trans-in" (this module has: trans-out, balance)'));
});

test('a payload that does not parse or read is a failure naming the function', async () => {
  const handler = branch({ 'trans-out': (_ctx, p) => fields(p, { from: 'string', amount: 'integer' }) && null });
  const answer = async (payload) => {
    const result = await call(handler, 'trans-out', payload);
    assert.equal(result.val.tag, 'failure', JSON.stringify(result));
    return result.val.val;
  };
  assert.equal(await answer('["alice",30]'), 'invalid payload for trans-out: payload must be a JSON object');
  assert.equal(await answer('null'), 'invalid payload for trans-out: payload must be a JSON object');
  assert.equal(await answer(''), 'invalid payload for trans-out: payload must be a JSON object');
  assert.equal(await answer('{"from":"alice"}'), 'invalid payload for trans-out: missing field `amount`');
  assert.equal(await answer('{"from":"a","amount":-0}'), 'invalid payload for trans-out: field `amount` must be an integer');
  assert.equal(await answer('{"from":"a","from":"b","amount":1}'), 'invalid payload for trans-out: duplicate field `from`');
  assert.match(await answer('{"from":'), /^invalid payload for trans-out: \S/);
  const raw = await handler.invoke('trans-out', CTX, new Uint8Array([0xc3, 0x28]));
  assert.deepEqual(raw, failure('invalid payload for trans-out: the payload is not valid UTF-8'));
  const thrown = branch({ f: () => { throw new InvalidPayload('amount is odd'); } });
  assert.deepEqual(await call(thrown, 'f'), failure('invalid payload for f: amount is odd'));
});

test('Failure and Retry become the WIT variants with their messages', async () => {
  const handler = branch({
    refuse: () => {
      throw new Failure('insufficient funds in alice');
    },
    later: () => {
      throw new Retry('locked');
    },
  });
  assert.deepEqual(await call(handler, 'refuse'), failure('insufficient funds in alice'));
  assert.deepEqual(await call(handler, 'later'), retry('locked'));
});

test('a database error that escapes is a retry with the database message', async () => {
  host.execute = () => {
    throw dbError('40001', 'could not serialize access');
  };
  const handler = branch({ debit: () => db.execute('UPDATE accounts SET balance = balance - 1') });
  assert.deepEqual(await call(handler, 'debit'), retry('database error 40001: could not serialize access'));
});

test('a database error can be caught and refused instead', async () => {
  host.execute = () => {
    throw dbError('2067', 'UNIQUE constraint failed: accounts.id');
  };
  const handler = branch({
    open: (_ctx, p) => {
      const { id } = fields(p, { id: 'string' });
      try {
        db.execute('INSERT INTO accounts (id, balance) VALUES ($1, 0)', id);
      } catch (e) {
        if (e.isUniqueViolation?.()) {
          throw new Failure(`account ${id} exists`);
        }
        throw e;
      }
    },
  });
  assert.deepEqual(await call(handler, 'open', '{"id":"alice"}'), failure('account alice exists'));
});

test('any other error is a retry naming the function, never a throw', async () => {
  const handler = branch({
    bug: (_ctx, p) => p.missing.field,
    text: () => {
      throw 'plain text';
    },
    odd: () => {
      throw Object.create(null);
    },
    nothing: () => {
      throw undefined;
    },
    rejects: () => Promise.reject(new RangeError('too far')),
  });
  const bug = await call(handler, 'bug', '{}');
  assert.equal(bug.val.tag, 'retry');
  assert.match(bug.val.val, /^bug failed: TypeError: /);
  assert.deepEqual(await call(handler, 'text'), retry('text failed: plain text'));
  assert.deepEqual(await call(handler, 'odd'), retry('odd failed: [object Object]'));
  assert.deepEqual(await call(handler, 'nothing'), retry('nothing failed: undefined'));
  assert.deepEqual(await call(handler, 'rejects'), retry('rejects failed: RangeError: too far'));
});

test('an output that cannot be written is a failure', async () => {
  const handler = branch({
    cyclic: () => {
      const o = {};
      o.self = o;
      return o;
    },
  });
  assert.deepEqual(await call(handler, 'cyclic'), failure('cannot encode the output of cyclic: the output is cyclic'));
});

test('log lines go through the host at their level', async () => {
  const handler = branch({
    talk: () => {
      log.trace('t');
      log.debug('d', 1);
      log.info('debited', 30n, 'from', 'alice');
      log.warn({ toString: () => 'w' });
      log.error();
    },
  });
  assert.deepEqual(await call(handler, 'talk'), { tag: 'ok', val: 'null' });
  assert.deepEqual(host.lines, [
    { level: 'trace', message: 't' },
    { level: 'debug', message: 'd 1' },
    { level: 'info', message: 'debited 30 from alice' },
    { level: 'warn', message: 'w' },
    { level: 'error', message: '' },
  ]);
});

test('bad arguments to branch are TypeErrors at module load', () => {
  assert.throws(() => branch(), /takes an object/);
  assert.throws(() => branch({}), /at least one function/);
  assert.throws(() => branch({ f: 'not a function' }), /"f" is not a function/);
  assert.throws(() => branch(new Map([['', () => {}]])), /non-empty string/);
  assert.throws(() => branch(new Map([[1, () => {}]])), /non-empty string/);
});
