// `branch`: turns a table of named functions into the component's export of
// the WIT `handler` interface (`functions` and `invoke`).
//
// Nothing here may throw out of `invoke`: ComponentizeJS traps the instance
// on an Error that leaves an export. Every outcome is returned as a WIT
// `result` value, `{ tag: 'ok', val: bytes }` or `{ tag: 'err', val: branch-error }`.

import { Context } from './context.js';
import { Failure, InvalidPayload, Retry } from './errors.js';
import { decodePayload, encodeOutput } from './json.js';

/** Something thrown, as text that cannot itself throw. */
function describe(thrown) {
  try {
    return thrown instanceof Error ? `${thrown.name}: ${thrown.message}` : String(thrown);
  } catch {
    return Object.prototype.toString.call(thrown);
  }
}

/** Whatever `name` threw, as a WIT `branch-error`. */
export function branchError(name, thrown) {
  if (thrown instanceof InvalidPayload) {
    return { tag: 'failure', val: `invalid payload for ${name}: ${thrown.message}` };
  }
  if (thrown instanceof Failure) {
    return { tag: 'failure', val: thrown.message };
  }
  if (thrown instanceof Retry) {
    return { tag: 'retry', val: thrown.message };
  }
  // A bug, or an error of a library: retried, as a Rust panic (a trap) is, but
  // without trapping the instance, and with the error's own words.
  return { tag: 'retry', val: `${name} failed: ${describe(thrown)}` };
}

/** The `[name, function]` pairs of `functions`, checked. */
function entries(functions) {
  const pairs = functions instanceof Map ? [...functions] : functions !== null && typeof functions === 'object' ? Object.entries(functions) : null;
  if (pairs === null) {
    throw new TypeError('branch() takes an object (or a Map) of functions by name');
  }
  if (pairs.length === 0) {
    throw new TypeError('branch() needs at least one function: the host refuses a module without any');
  }
  for (const [name, run] of pairs) {
    if (typeof name !== 'string' || name === '') {
      throw new TypeError(`branch(): a function name must be a non-empty string, not ${JSON.stringify(String(name))}`);
    }
    if (typeof run !== 'function') {
      throw new TypeError(`branch(): ${JSON.stringify(name)} is not a function`);
    }
  }
  return pairs;
}

/**
 * The export of the `handler` interface for `functions`, an object (or Map)
 * of branch functions by name: `export const handler = branch({ 'trans-out': transOut })`.
 *
 * A branch function is `(ctx, payload) => output`, or an async function: its
 * promise is awaited. `ctx` is a `Context`; `payload` the parsed JSON (`null`
 * when empty); the output is written as JSON (`undefined` as `null`).
 * Throw `Failure` to refuse, `Retry` to be called again; a `DbError` is a
 * `Retry`, an `InvalidPayload` a failure naming the function, and any other
 * error a retry. Bad arguments are a TypeError, at module load.
 */
export function branch(functions) {
  const table = new Map(entries(functions));
  const names = Object.freeze([...table.keys()]);

  async function run(name, ctx, bytes) {
    const fn = table.get(name);
    if (fn === undefined) {
      throw new Failure(`unknown function ${JSON.stringify(name)} (this module has: ${names.join(', ')})`);
    }
    const payload = decodePayload(bytes);
    const output = await fn(new Context(ctx), payload);
    try {
      return encodeOutput(output);
    } catch (e) {
      throw new Failure(`cannot encode the output of ${name}: ${e.message}`);
    }
  }

  return Object.freeze({
    /** The names `invoke` accepts, in the order given. */
    functions() {
      return [...names];
    },

    /** Runs the function `name`; never throws. */
    async invoke(name, ctx, payload) {
      try {
        return { tag: 'ok', val: await run(name, ctx, payload) };
      } catch (e) {
        return { tag: 'err', val: branchError(name, e) };
      }
    },
  });
}
