//! Workflow instances: `run` in a fresh instance of a `workflow` module,
//! whose every `steps` call is handed to the caller as a [`StepAsk`] and
//! waits for its answer.
//!
//! The caller (the engine's workflow driver, through `branch`) decides what
//! each call means: an answer from the journal, a step run for real, or the
//! end of this instance. Dropping an ask's reply, or the
//! [`WorkflowInstance`], traps the instance at that call: that is how a
//! sleeping or waiting workflow is dropped, to be replayed later.
//!
//! Determinism: the instance gets WASI without files, sockets, environment
//! or HTTP, a wall clock and a monotonic clock frozen at zero, and random
//! numbers from a fixed sequence, so only `steps.now` and `steps.random`
//! (journaled) vary between runs. Its deadline counts the time it computes,
//! not the time it waits for an answer: it is re-armed after every answer.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::WasiCtxBuilder;

use super::bindings::wasmtx::runtime::types::BranchError;
use super::bindings::workflow::WorkflowPre;
use super::bindings::workflow::wasmtx::runtime::steps::{Host, Target};
use super::limits::InstanceLimiter;
use super::{HostState, InvokeError, LogBudget, Sandbox};
use crate::model::{StepAnswer, StepRequest, StepTarget};

/// What a trapped instance's message says when the host dropped it on
/// purpose (it waits, or the driver stopped).
pub const DROPPED: &str = "the workflow instance was dropped by the host";

/// One `steps` call of a running instance, waiting for its answer.
#[derive(Debug)]
pub struct StepAsk {
    pub request: StepRequest,
    /// Dropping it unanswered traps the instance at this call.
    pub reply: oneshot::Sender<StepAnswer>,
}

/// A running `run`. Dropping it stops the instance.
pub struct WorkflowInstance {
    /// The instance's `steps` calls, one at a time; closed once `run` has ended.
    pub asks: mpsc::Receiver<StepAsk>,
    task: tokio::task::JoinHandle<Result<Result<Vec<u8>, String>, InvokeError>>,
}

impl WorkflowInstance {
    /// How `run` ended: its own result (`ok(output)` or `err(message)`), or
    /// the trap that ended it. Call once [`WorkflowInstance::asks`] is closed.
    pub async fn end(&mut self) -> Result<Result<Vec<u8>, String>, InvokeError> {
        match (&mut self.task).await {
            Ok(end) => end,
            Err(e) => Err(InvokeError::Trap(format!("the workflow instance's task ended abnormally: {e}"))),
        }
    }
}

impl Drop for WorkflowInstance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The link from a workflow instance's `steps` to its caller.
pub(super) struct StepsLink {
    asks: mpsc::Sender<StepAsk>,
    /// When the instance's current stretch of computing must end.
    pub(super) deadline: Instant,
    budget: Duration,
    /// A step's payload may be as large as a branch's output.
    max_payload: usize,
}

impl Sandbox {
    /// Starts `run(input)` in a fresh instance of the workflow module
    /// `compiled`. `label` names it in log lines. Workflow instances take no
    /// invocation slot: they spend most of their life waiting for steps,
    /// which need the slots; their number is bounded by the engine's.
    pub fn start_workflow(
        &self,
        compiled: &super::Compiled,
        input: Vec<u8>,
        label: String,
    ) -> Result<WorkflowInstance, InvokeError> {
        let pre: WorkflowPre<HostState> = match &compiled.kind {
            super::Kind::Workflow(pre) => pre.clone(),
            super::Kind::Branch(_) => {
                return Err(InvokeError::Trap(
                    "this is a branch module (world `wasmtx:runtime/branch`), not a workflow".to_owned(),
                ));
            }
        };
        let (sender, asks) = mpsc::channel(1);
        let sandbox = self.clone();
        let task = tokio::spawn(async move {
            let budget = sandbox.inner.limits.deadline;
            let mut store = sandbox.workflow_store(label, sender);
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(|ctx| {
                let deadline = ctx.data().steps.as_ref().map_or_else(Instant::now, |s| s.deadline);
                if Instant::now() >= deadline {
                    Ok(wasmtime::UpdateDeadline::Interrupt)
                } else {
                    Ok(wasmtime::UpdateDeadline::Yield(1))
                }
            });
            let instance = pre.instantiate_async(&mut store).await.map_err(|e| sandbox.trap(e, budget))?;
            let result = instance.call_run(&mut store, &input).await.map_err(|e| sandbox.trap(e, budget))?;
            let limits = &sandbox.inner.limits;
            match result {
                Ok(output) if output.len() > limits.max_output_bytes => Err(InvokeError::Trap(format!(
                    "output limit exceeded: run returned {} bytes, above {} (max_output_kb)",
                    output.len(),
                    limits.max_output_bytes
                ))),
                Err(message) if message.len() > limits.max_error_bytes => Err(InvokeError::Trap(format!(
                    "error message limit exceeded: run's error is {} bytes, above {} (max_error_kb)",
                    message.len(),
                    limits.max_error_bytes
                ))),
                result => Ok(result),
            }
        });
        Ok(WorkflowInstance { asks, task })
    }

    fn workflow_store(&self, label: String, asks: mpsc::Sender<StepAsk>) -> wasmtime::Store<HostState> {
        let limits = &self.inner.limits;
        // Fixed, so that a replay sees the same numbers (a workflow's own
        // random numbers come from `steps.random`).
        let sequence = || wasmtime_wasi::Deterministic::new(b"wasmtx workflow: use steps.random".to_vec());
        let wasi = WasiCtxBuilder::new()
            .secure_random(sequence())
            .insecure_random(sequence())
            .insecure_random_seed(0)
            .wall_clock(Frozen)
            .monotonic_clock(Frozen)
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: InstanceLimiter::new(limits.memory_bytes),
            tx: None,
            label,
            log: LogBudget::new(limits),
            http_ctx: wasmtime_wasi_http::WasiHttpCtx::new(),
            http: super::HttpGrant::default(),
            steps: Some(StepsLink {
                asks,
                deadline: Instant::now() + limits.deadline,
                budget: limits.deadline,
                max_payload: limits.max_output_bytes,
            }),
        };
        let mut store = wasmtime::Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
    }
}

/// WASI's clocks in a workflow: always zero.
struct Frozen;

impl wasmtime_wasi::HostWallClock for Frozen {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for Frozen {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl HostState {
    /// Hands `request` to the caller and waits for its answer; the
    /// instance's deadline starts again once it has it.
    async fn ask(&mut self, request: StepRequest) -> wasmtime::Result<StepAnswer> {
        let link = self.steps.as_mut().ok_or_else(|| wasmtime::format_err!("steps are only for workflows"))?;
        check_size(&request, link.max_payload)?;
        let (reply, answer) = oneshot::channel();
        link.asks.send(StepAsk { request, reply }).await.map_err(|_| wasmtime::format_err!("{DROPPED}"))?;
        let answer = answer.await.map_err(|_| wasmtime::format_err!("{DROPPED}"))?;
        link.deadline = Instant::now() + link.budget;
        Ok(answer)
    }
}

/// The longest module, function or signal name a `steps` call may give.
const MAX_NAME_BYTES: usize = 128;

/// A call past its size limits traps, naming the limit.
fn check_size(request: &StepRequest, max_payload: usize) -> wasmtime::Result<()> {
    let names: Vec<&str> = match request {
        StepRequest::Call { action, compensate, payload } => {
            if payload.len() > max_payload {
                return Err(wasmtime::format_err!(
                    "payload limit exceeded: a step's payload is {} bytes, above {max_payload} (max_output_kb)",
                    payload.len()
                ));
            }
            let mut names = vec![action.module.as_str(), action.function.as_str()];
            if let Some(c) = compensate {
                names.extend([c.module.as_str(), c.function.as_str()]);
            }
            names
        }
        StepRequest::Signal { name } => vec![name.as_str()],
        StepRequest::Now | StepRequest::Random | StepRequest::Sleep { .. } => Vec::new(),
    };
    match names.iter().find(|n| n.len() > MAX_NAME_BYTES) {
        Some(long) => Err(wasmtime::format_err!(
            "name limit exceeded: a steps call named something of {} bytes; names are at most {MAX_NAME_BYTES}",
            long.len()
        )),
        None => Ok(()),
    }
}

fn target(t: Target) -> StepTarget {
    StepTarget { module: t.module, function: t.function }
}

fn unexpected(call: &str, answer: &StepAnswer) -> wasmtime::Error {
    wasmtime::format_err!("host error: {call} was answered with {answer:?}")
}

impl Host for HostState {
    async fn call(
        &mut self,
        action: Target,
        compensate: Option<Target>,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, BranchError>> {
        let request = StepRequest::Call { action: target(action), compensate: compensate.map(target), payload };
        match self.ask(request).await? {
            StepAnswer::Ok { output } => Ok(Ok(output)),
            StepAnswer::Failure { message } => Ok(Err(BranchError::Failure(message))),
            StepAnswer::Retry { message } => Ok(Err(BranchError::Retry(message))),
            other => Err(unexpected("steps.call", &other)),
        }
    }

    async fn now(&mut self) -> wasmtime::Result<u64> {
        match self.ask(StepRequest::Now).await? {
            StepAnswer::Value { value } => Ok(value),
            other => Err(unexpected("steps.now", &other)),
        }
    }

    async fn random(&mut self) -> wasmtime::Result<u64> {
        match self.ask(StepRequest::Random).await? {
            StepAnswer::Value { value } => Ok(value),
            other => Err(unexpected("steps.random", &other)),
        }
    }

    async fn sleep(&mut self, millis: u64) -> wasmtime::Result<()> {
        match self.ask(StepRequest::Sleep { millis }).await? {
            StepAnswer::Until { .. } => Ok(()),
            other => Err(unexpected("steps.sleep", &other)),
        }
    }

    async fn await_signal(&mut self, name: String) -> wasmtime::Result<Vec<u8>> {
        match self.ask(StepRequest::Signal { name }).await? {
            StepAnswer::Signal { payload } => Ok(payload),
            other => Err(unexpected("steps.await-signal", &other)),
        }
    }
}
