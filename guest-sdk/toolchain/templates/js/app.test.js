// Unit tests of app.js in Node, the host played by the SDK's test doubles:
//   npm test    (node --import wasmtx-guest/testing/register --test)
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { host } from 'wasmtx-guest/testing';

import { handler } from './app.js';

const CTX = { gid: 'g-1', branchId: '01', op: 'action', attempt: 1, headers: [] };

/** Calls `name` as the host would; the answer with the output as text. */
async function call(name, payload) {
  const answer = await handler.invoke(name, CTX, new TextEncoder().encode(payload));
  return answer.tag === 'ok' ? { tag: 'ok', val: new TextDecoder().decode(answer.val) } : answer;
}

beforeEach(() => host.reset());

test('a name is greeted by way of the database', async () => {
  host.query = () => ({ columns: ['greeting'], values: [[{ tag: 'text', val: 'Hello, Ada!' }]] });
  assert.deepEqual(await call('hello', '{"name":"Ada"}'), { tag: 'ok', val: '{"greeting":"Hello, Ada!"}' });
  assert.deepEqual(host.statements, [
    { call: 'query', sql: 'SELECT CAST($1 AS TEXT) AS greeting', params: [{ tag: 'text', val: 'Hello, Ada!' }] },
  ]);
});

test('an empty name is refused before the database', async () => {
  assert.deepEqual(await call('hello', '{"name":""}'), {
    tag: 'err',
    val: { tag: 'failure', val: 'name must not be empty' },
  });
  assert.deepEqual(host.statements, []);
});

test('the module exports hello', () => {
  assert.deepEqual(handler.functions(), ['hello']);
});
