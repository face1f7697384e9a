// Reading the fields of a parsed payload as strictly as serde reads a struct in
// the Rust SDK: a required field must be there, once, with the right JSON
// type; fields nobody reads are ignored. Every refusal is an `InvalidPayload`,
// which the SDK answers with `failure("invalid payload for <function>: ...")`.

import { InvalidPayload } from './errors.js';
import { repeatedKeys } from './json.js';

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

// With the u flag, a surrogate range matches only surrogates that are not in a pair.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** True for a JSON object (not an array, not null). */
function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** What each kind accepts, and how a refusal names it. */
const KINDS = {
  string: { accepts: (v) => typeof v === 'string', noun: 'a string' },
  integer: { accepts: (v) => typeof v === 'bigint', noun: 'an integer' },
  number: { accepts: (v) => typeof v === 'number' || typeof v === 'bigint', noun: 'a number' },
  boolean: { accepts: (v) => typeof v === 'boolean', noun: 'a boolean' },
  array: { accepts: Array.isArray, noun: 'an array' },
  object: { accepts: isObject, noun: 'a JSON object' },
  any: { accepts: () => true, noun: 'any value' },
};

/** `kind` split into its name and whether a trailing `?` makes it optional. */
function parseKind(kind) {
  const optional = typeof kind === 'string' && kind.endsWith('?');
  const name = optional ? kind.slice(0, -1) : kind;
  if (!Object.hasOwn(KINDS, name)) {
    throw new TypeError(`unknown field kind ${JSON.stringify(kind)} (kinds: ${Object.keys(KINDS).join(', ')}, each with an optional "?")`);
  }
  return { name, optional };
}

/**
 * `value` if it is a JSON object; else `InvalidPayload("<what> must be a JSON object")`.
 */
export function object(value, what = 'payload') {
  if (!isObject(value)) {
    throw new InvalidPayload(`${what} must be a JSON object`);
  }
  return value;
}

/**
 * Reads the field `name` of the JSON object `obj` as `kind`:
 *
 * - `'string'` (lone surrogates refused: the component model cannot carry them),
 * - `'integer'` (a BigInt in the i64 range; `30.0` and `-0` are not integers),
 * - `'number'` (any JSON number, as a Number),
 * - `'boolean'`, `'array'`, `'object'` (a JSON object), `'any'` (any JSON value).
 *
 * A kind ending in `?` is optional: a missing field or `null` reads as
 * `undefined`, as serde reads an `Option`. A field the payload gives twice is
 * refused. Throws `InvalidPayload`; an unknown kind is a TypeError (a bug).
 */
export function field(obj, name, kind) {
  const { name: kindName, optional } = parseKind(kind);
  if (!Object.hasOwn(obj, name)) {
    if (optional) {
      return undefined;
    }
    throw new InvalidPayload(`missing field \`${name}\``);
  }
  if (repeatedKeys(obj)?.has(name)) {
    throw new InvalidPayload(`duplicate field \`${name}\``);
  }
  const value = obj[name];
  if (optional && value === null) {
    return undefined;
  }
  const { accepts, noun } = KINDS[kindName];
  if (!accepts(value)) {
    throw new InvalidPayload(`field \`${name}\` must be ${noun}`);
  }
  if (kindName === 'integer' && (value < I64_MIN || value > I64_MAX)) {
    throw new InvalidPayload(`field \`${name}\` is out of range`);
  }
  if (kindName === 'number') {
    return Number(value);
  }
  if (kindName === 'string' && LONE_SURROGATE.test(value)) {
    // JSON.parse accepts "\ud800"; the component model cannot carry it.
    throw new InvalidPayload(`field \`${name}\` has a lone surrogate`);
  }
  return value;
}

/**
 * Reads `value` as a JSON object with the fields of `shape`
 * (`{ from: 'string', amount: 'integer', note: 'string?' }`, kinds as for
 * `field`), in the order of `shape`; returns a new object with just those
 * fields. `what` names the value in the refusal if it is not an object.
 */
export function fields(value, shape, what = 'payload') {
  const obj = object(value, what);
  const read = {};
  for (const [name, kind] of Object.entries(shape)) {
    Object.defineProperty(read, name, {
      value: field(obj, name, kind),
      writable: true,
      enumerable: true,
      configurable: true,
    });
  }
  return read;
}
