// Maps the WIT imports of the SDK (`wasmtx:runtime/db@0.1.0`, ...) to the
// test doubles of `host.js`, for Node:
//
//   node --import wasmtx-guest/testing/register --test
//
// or import this module first and the SDK afterwards with a dynamic `import()`.
import { register } from 'node:module';

register('./hooks.js', import.meta.url);
