//! Write wasmtx branch functions in Rust.
//!
//! A branch module is a WebAssembly component that exports named functions for
//! the wasmtx coordinator to run as saga actions, compensations, TCC steps, or
//! direct calls. With this crate a function is plain Rust over serde types:
//!
//! ```standalone_crate
//! use serde::{Deserialize, Serialize};
//! use wasmtx_guest::{db, log, BranchError, Context};
//!
//! #[derive(Deserialize)]
//! struct Transfer {
//!     from: String,
//!     to: String,
//!     amount: i64,
//! }
//!
//! #[derive(Deserialize)]
//! struct Account {
//!     id: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Balance {
//!     id: String,
//!     balance: i64,
//! }
//!
//! fn trans_out(ctx: &Context, t: Transfer) -> Result<(), BranchError> {
//!     let n = db::execute(
//!         "UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1",
//!         &[t.amount.into(), t.from.as_str().into()],
//!     )?;
//!     if n == 0 {
//!         return Err(BranchError::failure(format!("insufficient funds in {}", t.from)));
//!     }
//!     log::info!("{}: moved {} from {} towards {}", ctx.gid(), t.amount, t.from, t.to);
//!     Ok(())
//! }
//!
//! fn balance(_ctx: &Context, a: Account) -> Result<Balance, BranchError> {
//!     let rows = db::query("SELECT balance FROM accounts WHERE id = $1", &[a.id.as_str().into()])?;
//!     let row = rows
//!         .first()
//!         .ok_or_else(|| BranchError::failure(format!("no account {}", a.id)))?;
//!     Ok(Balance { balance: row.get_i64("balance")?, id: a.id })
//! }
//!
//! wasmtx_guest::export_branch! {
//!     "trans-out" => trans_out,
//!     "balance" => balance,
//! }
//! # fn main() {}
//! ```
//!
//! The crate is a `cdylib` built for `wasm32-wasip2`
//! (`cargo build --target wasm32-wasip2 --profile guest`); the `.wasm` file is
//! the component to upload. See `examples/transfer/rust` for a whole module.
//!
//! # What the host guarantees, what the function must do
//!
//! - Every call runs inside one local database transaction that commits only if
//!   the function returns `Ok`. On any error, or a trap, nothing it wrote stays.
//! - [`BranchError::Failure`] is a business refusal and is never retried;
//!   [`BranchError::Retry`] makes the host call again later. `?` on a
//!   [`db::DbError`] gives `Retry`: check errors with business meaning
//!   ([`db::DbError::is_unique_violation`]) before using `?`.
//! - A panic aborts the instance (a trap), which the host treats as a bug in
//!   the module, not as a refusal: return errors instead.
//! - Compensations (`Op::Compensate`, `Op::Cancel`) must succeed eventually:
//!   write them so that they do not refuse.
//!
//! # Layout
//!
//! - [`export_branch!`]: registers functions by name; generates the component
//!   export (`functions` and `invoke` of the WIT `handler` interface).
//! - [`Context`], [`Op`]: what the host says about the invocation.
//! - [`BranchError`]: failure or retry.
//! - [`db`]: `execute` and `query`, [`db::Value`] parameters, [`db::Rows`].
//! - [`kv`]: the key-value store of a module bound to a Redis database.
//! - [`log`]: log lines through the host.
//!
//! The bindings that `wit-bindgen` generates from `wit/runtime.wit` live in one
//! hidden module and never appear in this API.
//!
//! Outside the host (a native `cargo test` of a guest crate) the [`db`] calls
//! return an error and [`log`] writes to stderr, so the pure parts of branch
//! functions can be unit-tested with a [`Context::new`].

// `#[allow(unsafe_code)]` exactly here: generated bindings are `unsafe` FFI glue
// (the crate denies `unsafe_code` everywhere else; see Cargo.toml).
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod bindings;

mod branch_error;
mod context;
pub mod db;
mod export;
pub mod kv;
pub mod log;

pub use branch_error::BranchError;
pub use context::{Context, Op};

/// What `export_branch!` expands to refers to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::exports::wasmtx::runtime::handler::{BranchContext, BranchError as WitBranchError, Guest};
    pub use crate::export::{Function, dispatch, has_duplicates, invoke, names, run};
}
