// The calls into the wasmtx host: the only module that names the WIT imports.
//
// Inside a component, ComponentizeJS links these specifiers to the world's
// imports. Outside one (Node), nothing resolves them unless a loader maps them
// to test doubles: `testing/register.js` does. Nothing else belongs here, so
// that a test double has only these three functions to provide.

export { execute, query } from 'wasmtx:runtime/db@0.1.0';
export { log } from 'wasmtx:runtime/log@0.1.0';
