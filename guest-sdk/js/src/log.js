// `log`: lines written to the server's log through the host's `log` import,
// which tags them with the module, gid and branch. `console` goes nowhere.

import { log as hostLog } from './host.js';

/** A function writing at `level`; its arguments are joined with spaces, each through String(). */
const at = (level) => (...parts) => hostLog(level, parts.map(String).join(' '));

export const log = Object.freeze({
  trace: at('trace'),
  debug: at('debug'),
  info: at('info'),
  warn: at('warn'),
  error: at('error'),
});
