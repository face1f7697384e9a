// Payload bytes to a JavaScript value, and an output value to JSON bytes, read
// and written as serde_json does in the Rust SDK, so that a module accepts and
// refuses the same payloads whatever its language. Reading fields out of the
// value is `payload.js`; this module only parses and writes.

import { InvalidPayload } from './errors.js';

/**
 * serde_json's recursion limit: it refuses the 128th nested array or object
 * (the outermost one counts).
 */
export const MAX_DEPTH = 127;

// `ignoreBOM`: keep a byte order mark, so that JSON.parse refuses it as serde_json does.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

// Strings, brackets and the other values (numbers, true, false, null); `,` and `:` are skipped.
const TOKEN = /"(?:[^"\\]|\\.)*"|[{}[\]]|[^\s{}[\],:"]+/g;
// An integer literal, except -0, which serde_json reads as a float (-0.0).
const INTEGER_LITERAL = /^(?:0|-?[1-9]\d*)$/;

/** For every object `parseJson` made: the keys its text gives more than once. */
const repeated = new WeakMap();

/** The keys given more than once in the text of `object`, if `parseJson` made it. */
export function repeatedKeys(object) {
  return repeated.get(object);
}

/** True for the bytes the Rust SDK reads as an empty payload (ASCII whitespace only). */
function isBlank(bytes) {
  return bytes.every((b) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0c || b === 0x0d);
}

/**
 * The payload `bytes` as a value: an empty (or blank) payload is `null`,
 * anything else must be UTF-8 JSON (see `parseJson`). Throws `InvalidPayload`.
 */
export function decodePayload(bytes) {
  if (isBlank(bytes)) {
    return null;
  }
  let text;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new InvalidPayload('the payload is not valid UTF-8');
  }
  return parseJson(text);
}

/**
 * Parses the JSON `text` as serde_json reads it, which JSON.parse alone does not:
 *
 * - an integer literal becomes a BigInt, exactly (an s64 needs more than a
 *   Number's 53 bits), while `30.0`, `1e2` and `-0` stay Numbers, so they are
 *   not integers;
 * - a number too large for a double (`1e400`) is refused, not Infinity;
 * - nesting deeper than `MAX_DEPTH` is refused;
 * - each object remembers its repeated keys (`repeatedKeys`). Like JSON.parse,
 *   the last value wins; `field` then refuses a repeated key it reads, as
 *   serde refuses a repeated field, and other keys do not matter.
 *
 * JSON.parse checks the syntax first (its SyntaxError says what is wrong), so
 * the loop only meets valid JSON. It does not recurse: nesting costs no stack.
 * Throws `InvalidPayload`.
 */
export function parseJson(text) {
  try {
    JSON.parse(text);
  } catch (e) {
    throw new InvalidPayload(e.message);
  }
  let result;
  const open = []; // the containers being filled: arrays, and { object, key } for objects
  for (const [token] of text.matchAll(TOKEN)) {
    const top = open.at(-1);
    if (token === '}' || token === ']') {
      open.pop();
      continue;
    }
    if (top !== undefined && !Array.isArray(top) && top.key === undefined) {
      top.key = JSON.parse(token); // a member's key; its value comes next
      continue;
    }
    let value;
    if (token === '{') {
      value = {};
      repeated.set(value, new Set());
    } else if (token === '[') {
      value = [];
    } else if (INTEGER_LITERAL.test(token)) {
      value = BigInt(token);
    } else {
      value = JSON.parse(token);
      if (typeof value === 'number' && !Number.isFinite(value)) {
        throw new InvalidPayload(`number out of range: ${token}`);
      }
    }
    if (top === undefined) {
      result = value;
    } else if (Array.isArray(top)) {
      top.push(value);
    } else {
      if (Object.hasOwn(top.object, top.key)) {
        repeated.get(top.object).add(top.key);
      }
      // Not `object[key] = value`: a key "__proto__" would set the prototype.
      Object.defineProperty(top.object, top.key, { value, writable: true, enumerable: true, configurable: true });
      top.key = undefined;
    }
    if (token === '{' || token === '[') {
      if (open.length === MAX_DEPTH) {
        throw new InvalidPayload(`nesting deeper than ${MAX_DEPTH} levels`);
      }
      open.push(token === '{' ? { object: value, key: undefined } : value);
    }
  }
  return result;
}

/**
 * The output `value` as JSON bytes, as JSON.stringify writes it except that a
 * BigInt is written as its integer literal (JSON.stringify refuses BigInts),
 * a Uint8Array as an array of numbers, and `undefined` as `null` (a function
 * that returns nothing answers `null`, as a Rust `()` does). Throws a
 * TypeError for a cyclic value.
 */
export function encodeOutput(value) {
  const out = [];
  if (!write(value, '', out, new Set())) {
    out.push('null');
  }
  return encoder.encode(out.join(''));
}

/**
 * Appends the JSON of `value` (the member `key` of its container) to `out`;
 * false, writing nothing, for what JSON has no text for (undefined, functions,
 * symbols), which JSON.stringify leaves out of objects and writes as null in arrays.
 */
function write(value, key, out, seen) {
  if (typeof value === 'object' && value !== null && typeof value.toJSON === 'function') {
    value = value.toJSON(key);
  }
  if (value instanceof Number || value instanceof String || value instanceof Boolean || value instanceof BigInt) {
    value = value.valueOf();
  }
  if (value instanceof Uint8Array) {
    // Bytes (a `bytes` column) as serde writes a Vec<u8>, not as {"0":1,...}.
    value = Array.from(value);
  }
  switch (typeof value) {
    case 'bigint':
      out.push(value.toString());
      return true;
    case 'number':
      out.push(Number.isFinite(value) ? JSON.stringify(value) : 'null');
      return true;
    case 'string':
    case 'boolean':
      out.push(JSON.stringify(value));
      return true;
    case 'undefined':
    case 'function':
    case 'symbol':
      return false;
  }
  if (value === null) {
    out.push('null');
    return true;
  }
  if (seen.has(value)) {
    throw new TypeError('the output is cyclic');
  }
  seen.add(value);
  if (Array.isArray(value)) {
    out.push('[');
    value.forEach((item, i) => {
      if (i > 0) {
        out.push(',');
      }
      if (!write(item, String(i), out, seen)) {
        out.push('null');
      }
    });
    out.push(']');
  } else {
    out.push('{');
    let first = true;
    for (const name of Object.keys(value)) {
      const mark = out.length;
      out.push(first ? '' : ',', JSON.stringify(name), ':');
      if (write(value[name], name, out, seen)) {
        first = false;
      } else {
        out.length = mark;
      }
    }
    out.push('}');
  }
  seen.delete(value);
  return true;
}
