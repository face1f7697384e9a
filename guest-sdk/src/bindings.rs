//! The Rust bindings that `wit-bindgen` generates from `wit/runtime.wit` (world
//! `branch`), and nothing else.
//!
//! Hand-written code never lives here: the rest of the SDK wraps these types so
//! users see a small, documented API. This module is `pub` only because the
//! export glue that [`export_branch!`](crate::export_branch) expands to in the
//! user's crate must name it; it is not part of the public API.

wit_bindgen::generate!({
    path: "../wit",
    world: "branch",
    // `export_branch!` (in the user's crate) calls this macro through `$crate`.
    pub_export_macro: true,
    export_macro_name: "__export_branch_impl",
    default_bindings_module: "wasmtx_guest::bindings",
    additional_derives: [PartialEq],
});
