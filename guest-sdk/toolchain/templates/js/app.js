// The {{name}} module: wasmtx branch functions in JavaScript (see README.md).
import { branch, db, fields, Failure } from 'wasmtx-guest';

// What `hello` decides before it touches the database: the greeting, or a
// refusal (a `Failure` is never retried).
function greetingFor(name) {
  if (name === '') {
    throw new Failure('name must not be empty');
  }
  return `Hello, ${name}!`;
}

// Greets `name` by way of the module's database: {"greeting": "Hello, Ada!"}.
// The function runs inside a database transaction that commits only if it
// returns; the SQL runs unchanged on SQLite and Postgres.
function hello(_ctx, payload) {
  const { name } = fields(payload, { name: 'string' });
  const greeting = greetingFor(name);
  const [row] = db.query('SELECT CAST($1 AS TEXT) AS greeting', greeting);
  return { greeting: row.greeting };
}

// The component's export of the `wasmtx:runtime/handler` interface.
export const handler = branch({ hello });
