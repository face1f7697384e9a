// Payload parsing and output writing (src/json.js), which must read JSON as
// serde_json does in the Rust SDK.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { InvalidPayload } from '../src/errors.js';
import { MAX_DEPTH, decodePayload, encodeOutput, parseJson, repeatedKeys } from '../src/json.js';

const bytes = (s) => new TextEncoder().encode(s);
const text = (b) => new TextDecoder().decode(b);
const refused = (fn, message) => assert.throws(fn, (e) => e instanceof InvalidPayload && message.test(e.message));

test('integer literals become exact BigInts, other numbers stay Numbers', () => {
  const v = parseJson('{"max":9223372036854775807,"min":-9223372036854775808,"big":18446744073709551616,"f":30.0,"e":1e2,"z":-0,"n":-5}');
  assert.equal(v.max, 9223372036854775807n);
  assert.equal(v.min, -9223372036854775808n);
  assert.equal(v.big, 18446744073709551616n);
  assert.equal(typeof v.f, 'number');
  assert.equal(v.e, 100);
  assert.ok(Object.is(v.z, -0), '-0 is a float for serde_json');
  assert.equal(v.n, -5n);
});

test('numbers too large for a double are refused', () => {
  refused(() => parseJson('{"a":1e400}'), /^number out of range: 1e400$/);
  refused(() => parseJson('[-1E+999]'), /^number out of range/);
});

test('repeated keys are remembered per object, and the last value wins', () => {
  const v = parseJson('{"id":"a","id":"b","inner":{"x":1,"y":2},"note":1,"note":[2]}');
  assert.equal(v.id, 'b');
  assert.deepEqual([...repeatedKeys(v)].sort(), ['id', 'note']);
  assert.deepEqual([...repeatedKeys(v.inner)], []);
  assert.deepEqual(v.note, [2n]);
});

test('a key "__proto__" is an ordinary member', () => {
  const v = parseJson('{"__proto__":{"polluted":1}}');
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
  assert.deepEqual(Object.keys(v), ['__proto__']);
  assert.equal({}.polluted, undefined);
});

test('strings holding brackets, quotes and escapes are read whole', () => {
  const v = parseJson('{"s":"a]}[{\\"b\\\\","t":["x,y:z"]}');
  assert.equal(v.s, 'a]}[{"b\\');
  assert.deepEqual(v.t, ['x,y:z']);
});

test('nesting is refused past serde_json limit, strings do not count', () => {
  const deep = (n) => '['.repeat(n) + ']'.repeat(n);
  assert.equal(MAX_DEPTH, 127);
  assert.doesNotThrow(() => parseJson(deep(MAX_DEPTH)));
  refused(() => parseJson(deep(MAX_DEPTH + 1)), /^nesting deeper than 127 levels$/);
  refused(() => parseJson(deep(100000)), /nesting deeper than 127 levels/);
  assert.doesNotThrow(() => parseJson(`{"s":"${'['.repeat(500)}"}`));
});

test('malformed JSON is refused with the parser message', () => {
  for (const bad of ['{"a":', '{a:1}', "{'a':1}", '[1,]', 'NaN', '01', '"\\x"', '{} {}']) {
    refused(() => parseJson(bad), /./);
  }
});

test('a blank payload reads as null, other bytes must be UTF-8 JSON', () => {
  assert.equal(decodePayload(new Uint8Array()), null);
  assert.equal(decodePayload(bytes(' \t\r\n\f')), null);
  assert.deepEqual(decodePayload(bytes(' {"a":"é"} ')), { a: 'é' });
  refused(() => decodePayload(new Uint8Array([0x7b, 0xff, 0x7d])), /^the payload is not valid UTF-8$/);
  // serde_json refuses a byte order mark; TextDecoder would drop it by default.
  refused(() => decodePayload(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])), /./);
});

test('output is JSON with BigInts as integer literals and undefined as null', () => {
  assert.equal(text(encodeOutput(undefined)), 'null');
  assert.equal(text(encodeOutput(null)), 'null');
  assert.equal(text(encodeOutput({ id: 'alice', balance: 9223372036854775807n })), '{"id":"alice","balance":9223372036854775807}');
  assert.equal(text(encodeOutput([1, -2n, 'x', true, null])), '[1,-2,"x",true,null]');
  assert.equal(text(encodeOutput({ b: new Uint8Array([0, 255]) })), '{"b":[0,255]}');
});

test('output follows JSON.stringify for everything without a BigInt', () => {
  const samples = [
    { a: undefined, b: () => 1, c: Symbol('s'), d: [undefined, () => 1], e: NaN, f: -Infinity, g: -0 },
    { date: new Date(0), nested: { deep: [{ x: 'é\u2028"\\' }] }, map: new Map([[1, 2]]) },
    { lone: '\ud800', withToJSON: { toJSON: (key) => `key:${key}` } },
    [new Number(3), new String('s'), new Boolean(false)],
    'plain',
    42.5,
  ];
  for (const sample of samples) {
    assert.equal(text(encodeOutput(sample)), JSON.stringify(sample));
  }
});

test('a cyclic output is a TypeError', () => {
  const cyclic = { a: [] };
  cyclic.a.push(cyclic);
  assert.throws(() => encodeOutput(cyclic), { name: 'TypeError', message: 'the output is cyclic' });
  const shared = { x: 1 };
  assert.equal(text(encodeOutput([shared, shared])), '[{"x":1},{"x":1}]', 'a value seen twice is not a cycle');
});
