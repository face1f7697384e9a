// The double of the WIT import `wasmtx:runtime/db@0.1.0`: checks what the SDK
// passes as the ComponentizeJS bindings would, records it in `host`, and
// answers with `host.execute` / `host.query`.

import { ComponentError, host } from '../host.js';

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

const VALUE = {
  null: () => true,
  boolean: (v) => typeof v === 'boolean',
  int: (v) => typeof v === 'bigint' && v >= I64_MIN && v <= I64_MAX,
  float: (v) => typeof v === 'number',
  text: (v) => typeof v === 'string',
  bytes: (v) => v instanceof Uint8Array,
};

function check(sql, params) {
  if (typeof sql !== 'string') {
    throw new TypeError(`expected a string, received [${typeof sql}]`);
  }
  if (!Array.isArray(params)) {
    throw new TypeError('params must be a list');
  }
  for (const p of params) {
    if (!Object.hasOwn(VALUE, p?.tag) || !VALUE[p.tag](p.val)) {
      throw new TypeError(`invalid value for WIT \`value\`: ${JSON.stringify(p, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))}`);
    }
  }
}

function answer(call, sql, params) {
  check(sql, params);
  host.statements.push({ call, sql, params });
  const respond = host[call];
  if (respond === null) {
    throw new ComponentError({ code: undefined, message: `no answer for db.${call} in this test (set host.${call})` });
  }
  return respond(sql, params);
}

export function execute(sql, params) {
  const n = answer('execute', sql, params);
  if (typeof n !== 'bigint' || n < 0n) {
    throw new TypeError(`host.execute must return a u64 as a BigInt, not ${n}`);
  }
  return n;
}

export function query(sql, params) {
  const rows = answer('query', sql, params);
  if (!Array.isArray(rows?.columns) || !Array.isArray(rows?.values)) {
    throw new TypeError('host.query must return { columns, values }');
  }
  return rows;
}
