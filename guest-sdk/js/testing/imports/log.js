// The double of the WIT import `wasmtx:runtime/log@0.1.0`: records lines in `host.lines`.

import { host } from '../host.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

export function log(level, message) {
  if (!LEVELS.includes(level)) {
    throw new TypeError(`"${level}" is not one of the cases of level`);
  }
  if (typeof message !== 'string') {
    throw new TypeError(`expected a string, received [${typeof message}]`);
  }
  host.lines.push({ level, message });
}
