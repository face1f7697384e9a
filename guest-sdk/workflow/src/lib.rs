//! Write wasmtx durable workflows in Rust.
//!
//! A workflow module is a WebAssembly component of the WIT world `workflow`:
//! its `run` function is a transaction's logic, and it calls branch functions
//! (of modules of the world `branch`) as steps. The host journals every step's
//! outcome; after a crash it runs `run` again and answers the journaled steps
//! from the journal, so `run` must be deterministic. With this crate `run` is
//! plain Rust over serde types:
//!
//! ```standalone_crate
//! use serde::{Deserialize, Serialize};
//! use wasmtx_workflow::{StepError, Workflow, log};
//!
//! #[derive(Deserialize, Serialize)]
//! struct Transfer {
//!     from: String,
//!     to: String,
//!     amount: i64,
//! }
//!
//! #[derive(Serialize)]
//! struct Moved {
//!     moved: i64,
//! }
//!
//! fn transfer(wf: &Workflow, t: Transfer) -> Result<Moved, StepError> {
//!     wf.step("trans-out").compensate_with("trans-out-revert").call::<()>(&t)?;
//!     wf.step("trans-in").compensate_with("trans-in-revert").call::<()>(&t)?;
//!     log::info!("moved {} from {} to {}", t.amount, t.from, t.to);
//!     Ok(Moved { moved: t.amount })
//! }
//!
//! // Steps run in the module uploaded as `bank` unless they say `.on_module(..)`.
//! wasmtx_workflow::export_workflow!(transfer, default_module = "bank");
//! # fn main() {}
//! ```
//!
//! If `trans-in` refuses, `?` returns its [`StepError`], `run` fails with
//! `bank/trans-in failed: ...`, and the host runs `trans-out-revert`. The
//! rules (what `run` may do, replay, compensation order, timers and signals)
//! are in `docs/writing-workflows.md`; `examples/transfer-workflow/rust` is a
//! whole module.
//!
//! # Why a crate of its own, not a feature of `wasmtx-guest`
//!
//! A component imports what its code calls, and Cargo unifies the features of
//! a dependency across every package built together. With a `workflow`
//! feature of `wasmtx-guest`, one `cargo build --workspace` would compile the
//! workflow bindings into every branch module too, and whether a branch
//! component still imported only `db` and `log` would rest on the
//! componentization step dropping imports that no code calls. As a separate crate, a branch module never compiles them.
//! The other way round, this crate offers no `db`: the world `workflow` has
//! none (a workflow changes data only through steps), and a `db` call here
//! would make a component the host cannot link. What the two worlds share,
//! `log` and the `branch-error` type, is the branch SDK's, re-exported.
//!
//! # Layout
//!
//! - [`export_workflow!`]: exports the function as the component's `run`;
//!   [`run`] is the adapter it expands to.
//! - [`Workflow`], [`Step`]: steps, clock, random numbers, timers, signals,
//!   with JSON payloads.
//! - [`StepError`]: a step refused, was given up on, or answered the wrong shape.
//! - [`Steps`], [`Target`], [`Host`]: the WIT `steps` import behind a trait.
//! - [`testing`]: [`FakeHost`](testing::FakeHost) and [`Replay`](testing::Replay)
//!   to unit-test a workflow natively, determinism included.
//! - [`log`]: log lines through the host (the branch SDK's).
//!
//! The bindings that `wit-bindgen` generates live in one hidden module and
//! never appear in this API.

// `#[allow(unsafe_code)]` exactly here: generated bindings are `unsafe` FFI glue
// (the crate denies `unsafe_code` everywhere else; see Cargo.toml).
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod bindings;

mod export;
mod step_error;
mod steps;
pub mod testing;
mod workflow;

pub use export::run;
pub use step_error::StepError;
pub use steps::{Host, Steps, Target};
pub use wasmtx_guest::{BranchError, log};
pub use workflow::{Step, Workflow};

/// What `export_workflow!` expands to refers to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::Guest;
}
