//! The Rust bindings that `wit-bindgen` generates from `wit/runtime.wit` (world
//! `branch`, plus `kv`), and nothing else.
//!
//! Hand-written code never lives here: the rest of the SDK wraps these types so
//! users see a small, documented API. This module is `pub` only because the
//! export glue that [`export_branch!`](crate::export_branch) expands to in the
//! user's crate must name it; it is not part of the public API.

// The `branch` world plus `kv`: one SDK for modules over SQL and over
// Redis. A component imports only the interfaces its code calls (the
// component encoder drops the rest), so a module that never calls `kv`
// still fits world `branch`, and one that never calls `db` fits `kv-branch`.
wit_bindgen::generate!({
    inline: "package wasmtx:guest-sdk; world sdk { include wasmtx:runtime/branch@0.1.0; import wasmtx:runtime/kv@0.1.0; }",
    path: "../wit",
    world: "wasmtx:guest-sdk/sdk",
    generate_all,
    // `export_branch!` (in the user's crate) calls this macro through `$crate`.
    pub_export_macro: true,
    export_macro_name: "__export_branch_impl",
    default_bindings_module: "wasmtx_guest::bindings",
    additional_derives: [PartialEq],
});
