// How a branch function says it did not succeed, shaped by what the host does
// next. `branch.js` turns these into the WIT `branch-error`; this module knows
// nothing of the WIT.

/**
 * A business refusal ("insufficient funds"): never retried. A saga action
 * that fails rolls the global transaction back.
 */
export class Failure extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'Failure';
  }
}

/**
 * A transient problem (a lock conflict, a lost connection): the host rolls the
 * local transaction back and calls the same op again later.
 */
export class Retry extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'Retry';
  }
}

/**
 * The payload is not what the function reads: a failure whose message the SDK
 * prefixes with `invalid payload for <function>: `.
 */
export class InvalidPayload extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'InvalidPayload';
  }
}
