// `Context`: what the host tells a branch function about the invocation
// (transaction, branch, op, attempt, headers). Read-only for the function.

/** The WIT `op` cases, in WIT order. */
export const OPS = Object.freeze(['action', 'compensate', 'try', 'confirm', 'cancel', 'commit', 'rollback', 'call']);

/** The ops that undo earlier work; these must not fail for business reasons. */
const UNDO = new Set(['compensate', 'cancel', 'rollback']);

const asciiLower = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

/**
 * The invocation a branch function runs in, built by the SDK from the WIT
 * `branch-context`. Its constructor takes the same record, every field
 * optional, so that tests can build one: `new Context({ op: 'action', attempt: 2 })`.
 */
export class Context {
  constructor({ gid = '', branchId = '', op = 'call', attempt = 1, headers = [] } = {}) {
    if (!OPS.includes(op)) {
      throw new TypeError(`unknown op ${JSON.stringify(op)} (ops: ${OPS.join(', ')})`);
    }
    /** Global transaction id; empty for a direct call. */
    this.gid = gid;
    /** Branch id inside the transaction ("01", "02", ...); empty for a direct call. */
    this.branchId = branchId;
    /** The step being run: "action", "compensate", ..., "call". */
    this.op = op;
    /** 1 on the first attempt, one more on every retry of the same op. */
    this.attempt = attempt;
    /** The transaction's extra headers, in order, as [name, value] pairs. */
    this.headers = Object.freeze(headers.map(([name, value]) => Object.freeze([name, value])));
    Object.freeze(this);
  }

  /** The value of the first header named `name`, ignoring ASCII case; undefined if none. */
  header(name) {
    const wanted = asciiLower(name);
    return this.headers.find(([n]) => asciiLower(n) === wanted)?.[1];
  }

  /** True for the ops that undo earlier work (compensate, cancel, rollback). */
  get isUndo() {
    return UNDO.has(this.op);
  }
}
