// wasmtx-guest: write wasmtx branch functions in JavaScript.
//
// A branch module is a WebAssembly component, built with ComponentizeJS, that
// exports the WIT interface `wasmtx:runtime/handler`. With this package it is
// a table of plain (or async) functions:
//
//   import { branch, db, Failure } from 'wasmtx-guest';
//
//   export const handler = branch({
//     'trans-out': (ctx, payload) => { ... },
//   });
//
// Layout (each file says what it must not do):
//   src/branch.js   the `handler` export: dispatch, payload in, output out, errors
//   src/json.js     payload bytes to a value and output to bytes, as serde_json reads them
//   src/payload.js  `object`, `field`, `fields`: reading a payload as strictly as serde
//   src/context.js  `Context`
//   src/errors.js   `Failure`, `Retry`, `InvalidPayload`
//   src/db.js       `db.execute`, `db.query`, value conversion, `DbError`
//   src/log.js      `log.info(...)` and the other levels
//   src/host.js     the WIT imports, and nothing else (tests replace it)

import * as db from './src/db.js';

export { branch } from './src/branch.js';
export { Context } from './src/context.js';
export { Failure, InvalidPayload, Retry } from './src/errors.js';
export { DbError } from './src/db.js';
export { log } from './src/log.js';
export { field, fields, object } from './src/payload.js';

/** `db.execute(sql, ...params)`, `db.query(sql, ...params)`, `db.float(n)`. */
const dbApi = Object.freeze({ execute: db.execute, query: db.query, float: db.float });
export { dbApi as db };
