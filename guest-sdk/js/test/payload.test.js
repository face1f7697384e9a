// Reading fields of a payload (src/payload.js) as strictly as serde reads a struct.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { InvalidPayload } from '../src/errors.js';
import { parseJson } from '../src/json.js';
import { field, fields, object } from '../src/payload.js';

const refused = (fn, message) =>
  assert.throws(fn, (e) => {
    assert.ok(e instanceof InvalidPayload, `${e}`);
    assert.equal(e.message, message);
    return true;
  });

test('only a JSON object is an object', () => {
  for (const text of ['[]', '["alice"]', 'null', '"alice"', '30', 'true']) {
    refused(() => object(parseJson(text)), 'payload must be a JSON object');
    refused(() => object(parseJson(text), 'account'), 'account must be a JSON object');
  }
  const obj = parseJson('{}');
  assert.equal(object(obj), obj);
});

test('a required field must be present, once, of its kind', () => {
  const obj = parseJson('{"s":"x","i":5,"f":30.0,"z":-0,"b":true,"a":[1],"o":{},"n":null,"d":1,"d":2}');
  assert.equal(field(obj, 's', 'string'), 'x');
  assert.equal(field(obj, 'i', 'integer'), 5n);
  assert.deepEqual(field(obj, 'a', 'array'), [1n]);
  assert.deepEqual(field(obj, 'o', 'object'), {});
  assert.equal(field(obj, 'b', 'boolean'), true);
  assert.equal(field(obj, 'n', 'any'), null);
  refused(() => field(obj, 'missing', 'string'), 'missing field `missing`');
  refused(() => field(obj, 'd', 'integer'), 'duplicate field `d`');
  refused(() => field(obj, 'd', 'any'), 'duplicate field `d`');
  refused(() => field(obj, 'i', 'string'), 'field `i` must be a string');
  refused(() => field(obj, 'f', 'integer'), 'field `f` must be an integer');
  refused(() => field(obj, 'z', 'integer'), 'field `z` must be an integer');
  refused(() => field(obj, 's', 'array'), 'field `s` must be an array');
  refused(() => field(obj, 'a', 'object'), 'field `a` must be a JSON object');
  refused(() => field(obj, 'n', 'boolean'), 'field `n` must be a boolean');
  refused(() => field(obj, 's', 'number'), 'field `s` must be a number');
});

test('integers must fit an i64', () => {
  const obj = parseJson('{"max":9223372036854775807,"min":-9223372036854775808,"over":9223372036854775808,"under":-9223372036854775809}');
  assert.equal(field(obj, 'max', 'integer'), 2n ** 63n - 1n);
  assert.equal(field(obj, 'min', 'integer'), -(2n ** 63n));
  refused(() => field(obj, 'over', 'integer'), 'field `over` is out of range');
  refused(() => field(obj, 'under', 'integer'), 'field `under` is out of range');
});

test('numbers read as Numbers, integers included', () => {
  const obj = parseJson('{"f":1.5,"i":7}');
  assert.equal(field(obj, 'f', 'number'), 1.5);
  assert.equal(field(obj, 'i', 'number'), 7);
});

test('strings with a lone surrogate are refused', () => {
  const obj = parseJson('{"lone":"a\\ud800","pair":"\\ud83d\\ude00"}');
  refused(() => field(obj, 'lone', 'string'), 'field `lone` has a lone surrogate');
  assert.equal(field(obj, 'pair', 'string'), '😀');
});

test('an optional field may be missing or null', () => {
  const obj = parseJson('{"n":null,"s":"x","d":1,"d":2}');
  assert.equal(field(obj, 'missing', 'string?'), undefined);
  assert.equal(field(obj, 'n', 'integer?'), undefined);
  assert.equal(field(obj, 's', 'string?'), 'x');
  refused(() => field(obj, 's', 'integer?'), 'field `s` must be an integer');
  refused(() => field(obj, 'd', 'integer?'), 'duplicate field `d`');
});

test('an unknown kind is a TypeError, a bug rather than a bad payload', () => {
  assert.throws(() => field({ a: 1 }, 'a', 'int'), { name: 'TypeError', message: /unknown field kind "int"/ });
});

test('fields reads a shape and ignores what it does not name, repeated or not', () => {
  const t = fields(parseJson('{"from":"alice","to":"bob","amount":30,"note":1,"note":2}'), {
    from: 'string',
    to: 'string',
    amount: 'integer',
    memo: 'string?',
  });
  assert.deepEqual(t, { from: 'alice', to: 'bob', amount: 30n, memo: undefined });
  refused(() => fields(parseJson('[1]'), { a: 'any' }, 'account'), 'account must be a JSON object');
  refused(() => fields(parseJson('{"from":5}'), { from: 'string' }), 'field `from` must be a string');
});

test('objects not made by the parser are read too', () => {
  assert.equal(field({ a: 'x' }, 'a', 'string'), 'x');
  refused(() => field({}, 'a', 'string'), 'missing field `a`');
});
