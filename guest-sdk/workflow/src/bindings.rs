//! The Rust bindings that `wit-bindgen` generates from `wit/runtime.wit` (world
//! `workflow`), and nothing else.
//!
//! Only `steps` and the `run` export are generated here: the interfaces the
//! world shares with `branch` (`types`, `log`) are the branch SDK's bindings,
//! so a `BranchError` or a log call is one type and one import whichever crate
//! names it. This module is `pub` only because the export glue that
//! [`export_workflow!`](crate::export_workflow) expands to in the user's crate
//! must name it; it is not part of the public API.

wit_bindgen::generate!({
    path: "../../wit",
    world: "workflow",
    with: {
        "wasmtx:runtime/types@0.1.0": wasmtx_guest::bindings::wasmtx::runtime::types,
        "wasmtx:runtime/log@0.1.0": wasmtx_guest::bindings::wasmtx::runtime::log,
    },
    // `export_workflow!` (in the user's crate) calls this macro through `$crate`.
    pub_export_macro: true,
    export_macro_name: "__export_workflow_impl",
    default_bindings_module: "wasmtx_workflow::bindings",
});
