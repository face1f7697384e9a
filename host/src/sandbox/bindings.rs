//! Generated bindings for the `wasmtx:runtime` WIT package, isolated here so
//! the rest of the sandbox refers to them by path and no generated name leaks
//! further.

wasmtime::component::bindgen!({
    world: "branch",
    path: "../wit",
    // `log` may trap: a guest past its log allowance fails its invocation.
    imports: { "wasmtx:runtime/log.log": async | trappable, default: async },
    exports: { default: async },
});
