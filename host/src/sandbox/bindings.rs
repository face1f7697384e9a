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

/// The `kv-branch` world: only its `kv` import is used (added to the branch
/// linker beside `db`); its export is the `branch` world's `handler`.
pub mod kv_branch {
    wasmtime::component::bindgen!({
        world: "kv-branch",
        path: "../wit",
        with: {
            "wasmtx:runtime/types": super::wasmtx::runtime::types,
            "wasmtx:runtime/log": super::wasmtx::runtime::log,
            "wasmtx:runtime/handler": super::exports::wasmtx::runtime::handler,
        },
        imports: { default: async },
        exports: { default: async },
    });
}

/// The `workflow` world: `steps` is new here; `types` and `log` are the
/// `branch` world's bindings, so one host `log` serves both.
pub mod workflow {
    wasmtime::component::bindgen!({
        world: "workflow",
        path: "../wit",
        with: {
            "wasmtx:runtime/types": super::wasmtx::runtime::types,
            "wasmtx:runtime/log": super::wasmtx::runtime::log,
        },
        // Every `steps` call may trap: the host drops an instance that
        // waits (a sleep, a signal) or diverged from its journal.
        imports: { default: async | trappable },
        exports: { default: async },
    });
}
