// Node module resolution hooks (see `register.js`): the WIT import specifiers
// resolve to the doubles in `imports/`; any other `wasmtx:` import is an error
// naming it; everything else resolves as usual.

const DOUBLES = {
  'wasmtx:runtime/db@0.1.0': './imports/db.js',
  'wasmtx:runtime/log@0.1.0': './imports/log.js',
};

export async function resolve(specifier, context, nextResolve) {
  if (Object.hasOwn(DOUBLES, specifier)) {
    return { url: new URL(DOUBLES[specifier], import.meta.url).href, shortCircuit: true };
  }
  if (specifier.startsWith('wasmtx:')) {
    throw new Error(`wasmtx-guest/testing has no double for the import ${specifier}`);
  }
  return nextResolve(specifier, context);
}
