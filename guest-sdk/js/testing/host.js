// A stand-in for the wasmtx host, so that branch functions run in Node
// (unit tests) without a component. `register.js` points the WIT imports of
// the SDK at `imports/`, which record every call here and answer with the
// functions a test sets. The doubles check their arguments as the
// ComponentizeJS bindings do, so a value the real bindings would refuse fails
// the test instead of passing silently.

/** The error ComponentizeJS throws for an import's `err` case: `payload` is the WIT error. */
export class ComponentError extends Error {
  constructor(payload) {
    super(`${String(payload?.message ?? payload)} (see error.payload)`);
    Object.defineProperty(this, 'payload', { value: payload, enumerable: true });
  }
}

/** What a database refusal looks like to the SDK: `dbError('23505', 'duplicate key')`. */
export function dbError(code, message) {
  return new ComponentError({ code, message });
}

export const host = {
  /** Every `db` call, in order: `{ call: 'execute' | 'query', sql, params }` (params in WIT form). */
  statements: [],
  /** Every log line, in order: `{ level, message }`. */
  lines: [],
  /** Answers `db.execute`: `(sql, params) => bigint`, or throws `dbError(...)`. */
  execute: null,
  /** Answers `db.query`: `(sql, params) => ({ columns, values })` in WIT form. */
  query: null,

  /** Forgets every call and answer. */
  reset() {
    this.statements = [];
    this.lines = [];
    this.execute = null;
    this.query = null;
  },
};
