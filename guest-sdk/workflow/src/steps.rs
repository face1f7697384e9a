//! The WIT `steps` import behind a trait: [`Steps`] is what a [`Workflow`](crate::Workflow)
//! calls, [`Host`] is the real import, and the test doubles in
//! [`testing`](crate::testing) stand in for it natively.
//!
//! Nothing here encodes payloads or decides what an answer means: this is the
//! raw contract (bytes in, bytes or a [`BranchError`] out). Every method is a
//! journaled host call, so a workflow must make the same calls in the same
//! order on every replay.

use std::fmt;

use wasmtx_guest::BranchError;

/// A branch function: the module (the name it was uploaded under) and the
/// function in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub module: String,
    pub function: String,
}

impl Target {
    pub fn new(module: impl Into<String>, function: impl Into<String>) -> Self {
        Target { module: module.into(), function: function.into() }
    }
}

/// `bank/trans-out`: how errors and logs name a step.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.module, self.function)
    }
}

/// The durable operations of the WIT `steps` interface, one method each.
///
/// A trait rather than free functions so that a workflow's `run` can be
/// unit-tested natively against [`testing::FakeHost`](crate::testing::FakeHost)
/// and checked for determinism with [`testing::Replay`](crate::testing::Replay).
/// The semantics (journaling, replay, compensation order) are the host's and
/// are documented on the WIT interface and in `docs/writing-workflows.md`.
pub trait Steps {
    /// Runs `action` as a step with `payload`; `compensate` is what the host
    /// runs, with the same payload, if the workflow fails after this step
    /// completed.
    fn call(&self, action: &Target, compensate: Option<&Target>, payload: &[u8]) -> Result<Vec<u8>, BranchError>;

    /// Milliseconds since the Unix epoch, as journaled.
    fn now(&self) -> u64;

    /// A random number, as journaled.
    fn random(&self) -> u64;

    /// Returns once `millis` milliseconds have passed since the first time
    /// this call was made; the host may suspend the workflow meanwhile.
    fn sleep(&self, millis: u64);

    /// The payload of the next signal called `name`; the host may suspend the
    /// workflow until one arrives.
    fn await_signal(&self, name: &str) -> Vec<u8>;
}

/// The WIT `steps` import of the wasmtx host.
///
/// Outside the host (a native build) there is nothing to call: its methods
/// panic with a message pointing at [`testing`](crate::testing). Unlike the
/// branch SDK's `db`, which has an error to return, `now`, `sleep` and
/// `await-signal` have no way to say "no host", and a made-up answer would
/// make a test pass for the wrong reason.
#[derive(Clone, Copy, Debug, Default)]
pub struct Host;

#[cfg(target_arch = "wasm32")]
impl Steps for Host {
    fn call(&self, action: &Target, compensate: Option<&Target>, payload: &[u8]) -> Result<Vec<u8>, BranchError> {
        use crate::bindings::wasmtx::runtime::steps as wit;
        use wasmtx_guest::bindings::wasmtx::runtime::types::BranchError as WitBranchError;

        let to_wit = |t: &Target| wit::Target { module: t.module.clone(), function: t.function.clone() };
        let compensate = compensate.map(to_wit);
        wit::call(&to_wit(action), compensate.as_ref(), payload).map_err(|e| match e {
            WitBranchError::Failure(m) => BranchError::Failure(m),
            WitBranchError::Retry(m) => BranchError::Retry(m),
        })
    }

    fn now(&self) -> u64 {
        crate::bindings::wasmtx::runtime::steps::now()
    }

    fn random(&self) -> u64 {
        crate::bindings::wasmtx::runtime::steps::random()
    }

    fn sleep(&self, millis: u64) {
        crate::bindings::wasmtx::runtime::steps::sleep(millis)
    }

    fn await_signal(&self, name: &str) -> Vec<u8> {
        crate::bindings::wasmtx::runtime::steps::await_signal(name)
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Steps for Host {
    fn call(&self, action: &Target, _: Option<&Target>, _: &[u8]) -> Result<Vec<u8>, BranchError> {
        outside_host(&format!("call({action})"))
    }

    fn now(&self) -> u64 {
        outside_host("now()")
    }

    fn random(&self) -> u64 {
        outside_host("random()")
    }

    fn sleep(&self, millis: u64) {
        outside_host(&format!("sleep({millis})"))
    }

    fn await_signal(&self, name: &str) -> Vec<u8> {
        outside_host(&format!("await-signal({name:?})"))
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn outside_host(what: &str) -> ! {
    panic!(
        "wasmtx_workflow::Host::{what}: the steps interface exists only inside the wasmtx host (a wasm32-wasip2 \
         component); test a workflow natively with wasmtx_workflow::testing::FakeHost"
    )
}
