//! The protocols and the driver that runs them.
//!
//! Each mode's logic is a pure state machine ([`saga`]); [`Engine`] is the one
//! async driver that performs its effects ([`driver`]): it holds a
//! transaction's state in memory under a fenced lease, asks the state machine
//! what to do, runs branch ops through the [`BranchExecutor`] seam, and
//! writes the state only where durability needs it: at creation (folded into
//! the first branch's commit when the client waits and the database is the
//! store's), at the switch to compensation (before any compensation commits),
//! when it sleeps, and at the end (folded into the last branch's commit when
//! co-located). Waiting clients are answered from memory.
//!
//! The engine must not import axum, sqlx or wasmtime, and never reads the wall
//! clock directly: time comes from the injected [`Clock`].

pub mod clock;
pub mod control;
mod driver;
mod history;
pub mod housekeeping;
pub mod msg;
pub mod retry;
pub mod saga;
pub mod tcc;
pub mod workflow;
pub mod xa;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use crate::model::{BranchId, Gid, Millis, Mode, Op, StepAnswer, StepRequest, StepTarget, Target, TransactionState};
use crate::store::{Created, Lease, Progress, Store, StoreError};

pub use clock::{Clock, ManualClock, SystemClock};
pub use housekeeping::{Alerts, Housekeeping};
pub use retry::RetryPolicy;
pub use saga::Outcome;

/// One step of `state`'s mode: the pure transition function the driver runs.
fn step(state: &mut TransactionState, event: saga::Event, now: Millis, policy: &RetryPolicy) -> saga::Effect {
    match state.transaction.mode {
        Mode::Saga => saga::step(state, event, now, policy),
        Mode::Tcc => tcc::step(state, event, now, policy),
        Mode::Xa => xa::step(state, event, now, policy),
        Mode::Msg => msg::step(state, event, now, policy),
        Mode::Workflow => workflow::step(state, event, now, policy),
    }
}

/// The ops of a concurrent transaction that may run now (a concurrent saga's
/// wave, a concurrent message's deliveries).
fn ready(state: &TransactionState) -> Vec<(BranchId, Op, u32)> {
    match state.transaction.mode {
        Mode::Msg => msg::ready(state),
        Mode::Saga | Mode::Tcc | Mode::Xa | Mode::Workflow => saga::ready(state),
    }
}

/// One branch op to run.
#[derive(Debug, Clone)]
pub struct BranchCall {
    pub gid: Gid,
    pub mode: Mode,
    pub branch_id: BranchId,
    pub op: Op,
    pub target: Target,
    pub payload: Vec<u8>,
    /// 1-based.
    pub attempt: u32,
    pub headers: Vec<(String, String)>,
    /// The transaction's `request_timeout`: the invocation's deadline, if
    /// shorter than the executor's own.
    pub timeout: Option<Duration>,
    /// The transaction's progress, to commit together with the op if it
    /// succeeds. Given only for a target [`BranchExecutor::colocated`] with
    /// the store.
    pub progress: Option<Progress>,
}

/// How a branch op ended, and what became of the progress it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchResult {
    pub outcome: Outcome,
    pub progress: Carried,
    /// What the function returned, when it succeeded (a workflow's step
    /// answers with it; also after a crash, when the barrier found the op
    /// done and the output was kept with it).
    pub output: Vec<u8>,
}

/// What became of [`BranchCall::progress`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carried {
    /// None was given, or the op did not commit.
    No,
    /// It committed with the op.
    Written,
    /// The lease is stale: another owner drives the transaction. Nothing committed.
    Fenced,
    /// A [`Progress::Create`] found the gid taken. Nothing committed.
    GidTaken,
}

impl BranchResult {
    pub fn of(outcome: Outcome) -> Self {
        Self { outcome, progress: Carried::No, output: Vec::new() }
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The seam between the engine and whatever runs branch code (Wasm today,
/// HTTP later). Implementations never fail: every problem is an [`Outcome`].
pub trait BranchExecutor: Send + Sync + 'static {
    fn execute(&self, call: BranchCall) -> BoxFuture<'_, BranchResult>;

    /// Whether an op on `target` commits where the store lives, so that the
    /// transaction's progress can ride in its commit.
    fn colocated(&self, _target: &Target) -> bool {
        false
    }

    /// Starts a workflow's `run(input)` in a fresh instance of the pinned
    /// workflow module `target`, for the transaction `gid`.
    fn start_workflow(
        &self,
        _target: &Target,
        _gid: &Gid,
        _input: Vec<u8>,
    ) -> BoxFuture<'_, Result<Box<dyn WorkflowRun>, String>> {
        Box::pin(async { Err("this executor does not run workflows".to_owned()) })
    }

    /// The current version of the branch function a workflow step names,
    /// pinned; `Err` says why it cannot be a step (unknown module or
    /// function, a workflow module).
    fn resolve(&self, step: &StepTarget) -> BoxFuture<'_, Result<Target, String>> {
        let message = format!("module {:?} is unknown to this executor", step.module);
        Box::pin(async move { Err(message) })
    }
}

/// A workflow's `run`, running in its instance: the engine answers its
/// `steps` calls one by one, or drops it.
pub trait WorkflowRun: Send {
    /// The instance's next `steps` call; `None` once `run` has ended.
    fn next(&mut self) -> BoxFuture<'_, Option<StepQuestion>>;
    /// How `run` ended (call once [`WorkflowRun::next`] gave `None`).
    fn end(&mut self) -> BoxFuture<'_, RunEnd>;
}

/// One `steps` call waiting for its answer. Dropping it unanswered ends
/// the instance at this call.
pub struct StepQuestion {
    pub request: StepRequest,
    pub answer: Box<dyn FnOnce(StepAnswer) + Send>,
}

/// How a workflow instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// `run` returned: its output, or its error.
    Returned(Result<Vec<u8>, String>),
    /// The instance trapped or hit a limit: not the workflow's decision.
    Trapped(String),
}

/// Tunables of the driver.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This instance's identity; leases it holds carry it.
    pub node: String,
    /// How long a claim is valid without a write; a crashed owner's work is
    /// taken over by others after this.
    pub lease: Duration,
    /// How often due work (retries, orphans) is looked for.
    pub poll: Duration,
    /// Transactions driven at once by this instance.
    pub max_concurrent: usize,
    /// Branch ops one concurrent saga runs at once, at most.
    pub max_parallel_ops: usize,
    pub retry: RetryPolicy,
    /// Alerts and retention (off unless configured).
    pub housekeeping: Housekeeping,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            node: format!("node-{}", uuid::Uuid::new_v4().simple()),
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(200),
            max_concurrent: 512,
            max_parallel_ops: 8,
            retry: RetryPolicy::default(),
            housekeeping: Housekeeping::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the engine is shutting down")]
    ShuttingDown,
}

/// What a waiting client sees of a transaction this engine drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    /// Being driven; the latest state (not necessarily durable yet), and
    /// whether the transaction is stored at all (its create may still be
    /// riding in the first branch's commit).
    Running { state: TransactionState, stored: bool },
    /// Final, and durable.
    Final(TransactionState),
    /// The gid turned out to be taken by a stored transaction (a resubmission
    /// whose create rode in the first branch): this is the stored one.
    Existing(TransactionState),
    /// The driver stopped without an end (fenced, store trouble, shutdown):
    /// ask the store.
    Stopped,
}

/// [`Engine::submit`]'s answer.
#[derive(Debug)]
pub struct Submitted {
    /// As created, or as stored when the gid was taken.
    pub state: TransactionState,
    /// Whether this call created it.
    pub created: bool,
    /// Updates from the driver, when this engine drives it.
    pub live: Option<watch::Receiver<Live>>,
}

/// The async driver. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    executor: Arc<dyn BranchExecutor>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    /// Transactions driven here now, with their latest state.
    live: Mutex<HashMap<Gid, watch::Sender<Live>>>,
    /// One permit per transaction being driven.
    permits: Arc<Semaphore>,
    shutdown: watch::Sender<bool>,
    history: history::History,
    /// Controls waiting for the driver of their transaction to apply them at
    /// its next step boundary, each with where to answer.
    controls: Mutex<HashMap<Gid, Vec<PendingControl>>>,
}

type PendingControl = (control::Request, tokio::sync::oneshot::Sender<Result<TransactionState, String>>);

/// Why [`Engine::control`] did not apply.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no transaction {0}")]
    NotFound(Gid),
    /// It does not apply to the transaction as it is (final, decided, ...).
    #[error("{0}")]
    Refused(String),
    /// Another instance drives it right now.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl Engine {
    pub fn new(store: Store, executor: Arc<dyn BranchExecutor>, clock: Arc<dyn Clock>, config: EngineConfig) -> Self {
        let permits = Arc::new(Semaphore::new(config.max_concurrent.max(1)));
        let (shutdown, _) = watch::channel(false);
        let history = history::History::start(store.clone());
        Self {
            inner: Arc::new(Inner {
                history,
                store,
                executor,
                clock,
                config,
                live: Mutex::new(HashMap::new()),
                permits,
                shutdown,
                controls: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Whether an op of a `mode` transaction on `target` may carry the
    /// transaction's progress in its commit.
    fn carries_progress(&self, mode: Mode, target: &Target) -> bool {
        mode.carries_progress() && self.inner.executor.colocated(target)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn now(&self) -> Millis {
        self.inner.clock.now()
    }

    pub fn node(&self) -> &str {
        &self.inner.config.node
    }

    /// Takes back what an earlier life of this node left leased, then keeps
    /// claiming due work (new, retried, or orphaned by a dead instance) until
    /// [`Engine::shutdown`]; alerts and retention run beside it when
    /// configured ([`housekeeping`]).
    pub async fn start(&self) -> Result<tokio::task::JoinHandle<()>, EngineError> {
        let released = self.inner.store.release_all(&self.inner.config.node).await?;
        if released > 0 {
            tracing::info!(released, "took back transactions leased by this node before it stopped");
        }
        let engine = self.clone();
        let heartbeats = self.clone();
        let started_at = self.now();
        tokio::spawn(async move { heartbeats.beat(started_at).await });
        self.spawn_housekeeping();
        Ok(tokio::spawn(async move { engine.poll_due().await }))
    }

    /// How often this instance records its heartbeat: a third of the lease,
    /// between 1 and 10 s.
    fn heartbeat_every(&self) -> Duration {
        (self.inner.config.lease / 3).clamp(Duration::from_secs(1), Duration::from_secs(10))
    }

    /// Transactions this instance is driving now.
    pub fn in_flight(&self) -> u64 {
        self.inner.config.max_concurrent.saturating_sub(self.inner.permits.available_permits()) as u64
    }

    /// Records this instance's heartbeat until shutdown, then removes it.
    async fn beat(&self, started_at: Millis) {
        let mut shutdown = self.inner.shutdown.subscribe();
        loop {
            let instance = crate::store::Instance {
                node: self.inner.config.node.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                started_at,
                heartbeat_at: self.now(),
                in_flight: self.in_flight(),
            };
            if let Err(e) = self.inner.store.heartbeat(&instance).await {
                tracing::debug!(error = %e, "could not record the heartbeat");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.heartbeat_every()) => {}
                _ = shutdown.wait_for(|stopping| *stopping) => break,
            }
        }
        if let Err(e) = self.inner.store.forget_instance(&self.inner.config.node).await {
            tracing::debug!(error = %e, "could not remove this instance's heartbeat");
        }
    }

    /// The instances on this store heard from within three heartbeats, by node id.
    /// Sends the signal `name` to the workflow `gid` (see
    /// [`Store::send_signal`]); a workflow that waits for it, unleased, is
    /// claimed here at once.
    pub async fn signal(&self, gid: &Gid, name: &str, payload: &[u8]) -> Result<crate::store::SignalSent, EngineError> {
        let sent = self.inner.store.send_signal(gid, name, payload, self.now()).await?;
        if let crate::store::SignalSent::Sent { wake: true } = sent {
            self.spawn_claim(gid.clone());
        }
        Ok(sent)
    }

    pub async fn cluster(&self) -> Result<Vec<crate::store::Instance>, StoreError> {
        let window = duration_ms(self.heartbeat_every() * 3);
        self.inner.store.instances(Millis(self.now().0 - i64::try_from(window).unwrap_or(i64::MAX))).await
    }

    /// Starts driving a new transaction. When the client will wait for the
    /// end and the first op's database is the store's, the create is not
    /// written now: it rides in that op's commit (a gid found taken then
    /// comes back as [`Live::Existing`]). Otherwise it is stored first, and a
    /// gid that exists stores nothing and answers with the stored transaction
    /// (`created == false`; an unfinished one is nudged to continue).
    pub async fn submit(&self, mut state: TransactionState, wait: bool) -> Result<Submitted, EngineError> {
        if *self.inner.shutdown.borrow() {
            return Err(EngineError::ShuttingDown);
        }
        let gid = state.transaction.gid.clone();
        if let Some(live) = self.watch(&gid) {
            let current = match &*live.borrow() {
                Live::Running { state: s, .. } | Live::Final(s) | Live::Existing(s) => Some(s.clone()),
                Live::Stopped => None,
            };
            if let Some(current) = current {
                return Ok(Submitted { state: current, created: false, live: Some(live) });
            }
        }
        // Created already leased to this node, so it starts at once without a claim.
        let now = self.now();
        let tx = &mut state.transaction;
        tx.lease_owner = Some(self.inner.config.node.clone());
        tx.lease_expires = Some(now.plus_ms(duration_ms(self.inner.config.lease)));
        tx.epoch = tx.epoch.max(1);
        let lease = Lease { gid: tx.gid.clone(), owner: self.inner.config.node.clone(), epoch: tx.epoch };
        let first = state.ops.first().map(|o| o.target.clone());
        let defer = wait && first.is_some_and(|t| self.carries_progress(tx.mode, &t));
        if !defer {
            match self.inner.store.create_transaction(&state).await? {
                Created::New => {}
                Created::Existing(existing) => {
                    // Nudge it only if nobody is driving it now: claiming a live
                    // lease (even our own) would fence the driver mid-step.
                    let t = &existing.transaction;
                    let leased = t.lease_owner.is_some() && t.lease_expires.is_some_and(|until| until > now);
                    if !t.status.is_final() && !leased {
                        self.spawn_claim(t.gid.clone());
                    }
                    return Ok(Submitted { state: existing, created: false, live: None });
                }
            }
        }
        let (sender, receiver) = watch::channel(Live::Running { state: state.clone(), stored: !defer });
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).insert(gid, sender);
        self.spawn_driver(driver::Driving::new(lease, state.clone(), !defer));
        crate::metrics::transaction_started(state.transaction.mode.as_str());
        Ok(Submitted { state, created: true, live: Some(receiver) })
    }

    /// The latest state of `gid`: from memory while this engine drives it
    /// (ahead of the store), else from the store.
    pub async fn snapshot(&self, gid: &Gid) -> Result<Option<TransactionState>, EngineError> {
        if let Some(live) = self.watch(gid)
            && let Live::Running { state, .. } | Live::Final(state) = &*live.borrow()
        {
            return Ok(Some(state.clone()));
        }
        Ok(self.inner.store.load(gid).await?)
    }

    /// Waits until `gid` is final or `timeout` passes; returns its latest
    /// state. Follows the driver here when there is one; otherwise (another
    /// instance drives it) looks at the store every 100 ms.
    pub async fn wait(
        &self,
        gid: &Gid,
        live: Option<watch::Receiver<Live>>,
        timeout: Duration,
    ) -> Result<Option<TransactionState>, EngineError> {
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(mut live) = live.or_else(|| self.watch(gid)) {
            loop {
                let current = live.borrow_and_update().clone();
                match current {
                    Live::Final(state) | Live::Existing(state) if state.transaction.status.is_final() => {
                        return Ok(Some(state));
                    }
                    Live::Existing(_) | Live::Stopped => break,
                    Live::Running { state, stored } => {
                        // An answer before the end promises the transaction
                        // is stored: past the timeout, wait on for its create
                        // (the first branch's commit carries it, and every
                        // other outcome of that branch writes it).
                        let changed = if stored {
                            tokio::time::timeout_at(deadline, live.changed()).await
                        } else {
                            Ok(live.changed().await)
                        };
                        match changed {
                            Err(_) => return Ok(Some(state)),
                            Ok(Err(_)) => break,
                            Ok(Ok(())) => {}
                        }
                    }
                    Live::Final(state) => return Ok(Some(state)),
                }
            }
        }
        loop {
            let state = self.inner.store.load(gid).await?;
            let done = state.as_ref().is_none_or(|s| s.transaction.status.is_final());
            if done || tokio::time::Instant::now() >= deadline {
                return Ok(state);
            }
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + Duration::from_millis(100))).await;
        }
    }

    /// Stops claiming work, lets in-flight steps finish (up to `grace`) and
    /// releases their leases, then writes the history recorded so far.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutdown.send_replace(true);
        let all = u32::try_from(self.inner.config.max_concurrent.max(1)).unwrap_or(u32::MAX);
        match tokio::time::timeout(grace, self.inner.permits.acquire_many(all)).await {
            Ok(_) => tracing::info!("engine stopped cleanly"),
            Err(_) => tracing::warn!(?grace, "engine stopped with steps still in flight; their leases will expire"),
        }
        self.inner.history.flush(Duration::from_secs(2)).await;
    }

    /// Waits (at most `grace`) until the history recorded so far is written.
    pub async fn flush_history(&self, grace: Duration) {
        self.inner.history.flush(grace).await;
    }

    fn record(&self, entry: crate::model::HistoryEntry) {
        self.inner.history.record(entry);
    }

    /// Applies an operator's control to `gid`. A transaction driven here gets
    /// it at its driver's next step boundary (after the op in flight); an idle
    /// one is claimed (fencing any stale owner), changed and driven on from
    /// there. Answers with the state right after the change.
    pub async fn control(&self, gid: &Gid, request: control::Request) -> Result<TransactionState, ControlError> {
        if self.watch(gid).is_some() {
            let (answer, answered) = tokio::sync::oneshot::channel();
            self.controls().entry(gid.clone()).or_default().push((request.clone(), answer));
            if self.watch(gid).is_some() {
                // The driver answers, or drops the request when it ends
                // without another step: then the store decides below.
                if let Ok(result) = answered.await {
                    return result.map_err(ControlError::Refused);
                }
            } else {
                self.controls().remove(gid);
            }
        }
        let now = self.now();
        let until = now.plus_ms(duration_ms(self.inner.config.lease));
        let Some(lease) =
            self.inner.store.claim(gid, &self.inner.config.node, now, until).await.map_err(EngineError::from)?
        else {
            return match self.inner.store.load(gid).await.map_err(EngineError::from)? {
                None => Err(ControlError::NotFound(gid.clone())),
                Some(s) if s.transaction.status.is_final() => {
                    Err(ControlError::Refused(format!("transaction {gid} has already {}", s.transaction.status)))
                }
                Some(s) => Err(ControlError::Busy(format!(
                    "transaction {gid} is being driven by {}; try again in a moment",
                    s.transaction.lease_owner.as_deref().unwrap_or("another instance")
                ))),
            };
        };
        let Some(state) = self.inner.store.load(gid).await.map_err(EngineError::from)? else {
            return Err(ControlError::NotFound(gid.clone()));
        };
        let before = state.transaction.status;
        let mut driving = driver::Driving::new(lease.clone(), state, true);
        // The ops it changes are written with the state.
        driving.dirty.extend(control::changed_ops(&request));
        match control::apply(&mut driving.state, &request, now) {
            Err(refusal) => {
                if let Err(e) = self.inner.store.release(&lease).await {
                    tracing::warn!(%gid, error = %e, "could not release the lease taken for a refused control");
                }
                Err(ControlError::Refused(refusal))
            }
            Ok(entry) => {
                self.record(entry);
                self.note_status(&driving, before, now);
                let state = driving.state.clone();
                let (sender, _) = watch::channel(Live::Running { state: state.clone(), stored: true });
                self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).insert(gid.clone(), sender);
                self.spawn_driver(driving);
                Ok(state)
            }
        }
    }

    fn controls(&self) -> std::sync::MutexGuard<'_, HashMap<Gid, Vec<PendingControl>>> {
        self.inner.controls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn watch(&self, gid: &Gid) -> Option<watch::Receiver<Live>> {
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).get(gid).map(watch::Sender::subscribe)
    }

    /// Tells waiters about `gid`; an end (anything but `Running`) also drops
    /// it from the live set.
    fn publish(&self, gid: &Gid, update: Live) {
        let mut live = self.inner.live.lock().unwrap_or_else(|p| p.into_inner());
        let end = !matches!(update, Live::Running { .. });
        if let Some(sender) = live.get(gid) {
            sender.send_replace(update);
        }
        if end {
            live.remove(gid);
        }
    }

    /// Claims `gid` (due, resubmitted or orphaned) and drives it from the store.
    fn spawn_claim(&self, gid: Gid) {
        let engine = self.clone();
        tokio::spawn(async move {
            let Ok(permit) = engine.inner.permits.clone().acquire_owned().await else { return };
            let now = engine.now();
            let until = now.plus_ms(duration_ms(engine.inner.config.lease));
            match engine.inner.store.claim(&gid, &engine.inner.config.node, now, until).await {
                Ok(Some(lease)) => engine.resume(lease, permit).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%gid, error = %e, "could not claim transaction; it will be retried");
                    // The claim may have committed without its answer.
                    engine.spawn_reclaim(gid);
                }
            }
        });
    }

    /// Claims `gid` again (its lease is this instance's) once the store
    /// answers, backing off from 100 ms; gives up after a lease's time, when
    /// any instance's poll may take it.
    fn spawn_reclaim(&self, gid: Gid) {
        let engine = self.clone();
        tokio::spawn(async move {
            let lease = engine.inner.config.lease;
            let mut wait = Duration::from_millis(100);
            let mut waited = Duration::ZERO;
            while waited < lease && !*engine.inner.shutdown.borrow() {
                tokio::time::sleep(wait).await;
                waited += wait;
                wait = (wait * 2).min(Duration::from_secs(2));
                let now = engine.now();
                let until = now.plus_ms(duration_ms(lease));
                match engine.inner.store.claim(&gid, &engine.inner.config.node, now, until).await {
                    Ok(Some(claimed)) => {
                        let Ok(permit) = engine.inner.permits.clone().acquire_owned().await else { return };
                        engine.resume(claimed, permit).await;
                        return;
                    }
                    Ok(None) => return,
                    Err(e) => tracing::debug!(%gid, error = %e, "store still unavailable"),
                }
            }
        });
    }

    /// Drives a claimed transaction, loading its state from the store.
    async fn resume(&self, lease: Lease, permit: tokio::sync::OwnedSemaphorePermit) {
        let state = match self.inner.store.load(&lease.gid).await {
            Ok(Some(state)) => state,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(gid = %lease.gid, error = %e, "store unavailable; the transaction will be resumed later");
                // The claim holds the lease: take it back when the store answers.
                self.spawn_reclaim(lease.gid);
                return;
            }
        };
        let (sender, _) = watch::channel(Live::Running { state: state.clone(), stored: true });
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).insert(lease.gid.clone(), sender);
        self.drive(driver::Driving::new(lease, state, true), permit).await;
    }

    fn spawn_driver(&self, driving: driver::Driving) {
        let engine = self.clone();
        tokio::spawn(async move {
            let Ok(permit) = engine.inner.permits.clone().acquire_owned().await else { return };
            engine.drive(driving, permit).await;
        });
    }

    async fn poll_due(&self) {
        let mut shutdown = self.inner.shutdown.subscribe();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let free = self.inner.permits.available_permits();
            if free > 0 {
                let now = self.now();
                let until = now.plus_ms(duration_ms(self.inner.config.lease));
                let limit = u32::try_from(free).unwrap_or(u32::MAX);
                match self.inner.store.claim_due(&self.inner.config.node, now, until, limit).await {
                    Ok(leases) => {
                        for lease in leases {
                            let engine = self.clone();
                            tokio::spawn(async move {
                                let Ok(permit) = engine.inner.permits.clone().acquire_owned().await else { return };
                                engine.resume(lease, permit).await;
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not look for due transactions"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.inner.config.poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;

/// Test data shared by the state-machine and driver tests.
#[cfg(test)]
pub(crate) mod fixture {
    use crate::engine::saga::{Effect, Event, Outcome};

    /// The outcome of branch `index`'s `op`, as the driver reports it.
    pub fn outcome(index: usize, op: Op, outcome: Outcome) -> Event {
        Event::Outcome { branch_id: BranchId::from_index(index), op, outcome }
    }

    /// The effect that runs branch `index`'s `op`.
    pub fn invoke(index: usize, op: Op, attempt: u32) -> Effect {
        Effect::Invoke { branch_id: BranchId::from_index(index), op, attempt }
    }

    use crate::model::{
        BranchId, BranchOp, DatabaseName, Digest, Gid, Millis, Mode, ModuleName, Op, OpStatus, Options, Status, Target,
        Transaction, TransactionState,
    };

    /// A TCC with `branches` branches (`try`, `confirm`, `cancel` each), not started.
    pub fn tcc(gid: &str, branches: usize, at: Millis) -> TransactionState {
        let mut state = saga(gid, branches, at);
        state.transaction.mode = Mode::Tcc;
        state.transaction.status = Status::Prepared;
        let template = state.ops[0].clone();
        state.ops = (0..branches)
            .flat_map(|i| [(i, Op::Try), (i, Op::Confirm), (i, Op::Cancel)])
            .map(|(i, op)| BranchOp {
                branch_id: BranchId::from_index(i),
                op,
                target: Target { function: op.as_str().to_owned(), ..template.target.clone() },
                ..template.clone()
            })
            .collect();
        state
    }

    /// An XA with `branches` branches (`action`, `commit`, `rollback` each), not started.
    pub fn xa(gid: &str, branches: usize, at: Millis) -> TransactionState {
        let mut state = saga(gid, branches, at);
        state.transaction.mode = Mode::Xa;
        state.transaction.status = Status::Prepared;
        let template = state.ops[0].clone();
        state.ops = (0..branches)
            .flat_map(|i| [(i, Op::Action), (i, Op::Commit), (i, Op::Rollback)])
            .map(|(i, op)| BranchOp { branch_id: BranchId::from_index(i), op, ..template.clone() })
            .collect();
        state
    }

    /// A message with its local function (`00 msg`) and `branches` branches (`action` each), not started.
    pub fn msg(gid: &str, branches: usize, at: Millis) -> TransactionState {
        let mut state = saga(gid, branches, at);
        state.transaction.mode = Mode::Msg;
        state.transaction.status = Status::Prepared;
        let template = state.ops[0].clone();
        let local = BranchOp { branch_id: BranchId::local(), op: Op::Msg, ..template.clone() };
        state.ops = std::iter::once(local)
            .chain((0..branches).map(|i| BranchOp { branch_id: BranchId::from_index(i), ..template.clone() }))
            .collect();
        state
    }

    /// A workflow with its `00 run` and no steps yet, not started.
    pub fn workflow(gid: &str, at: Millis) -> TransactionState {
        let mut state = saga(gid, 1, at);
        state.transaction.mode = Mode::Workflow;
        let template = state.ops[0].clone();
        let run = BranchOp {
            branch_id: BranchId::local(),
            op: Op::Run,
            target: Target { function: "run".to_owned(), ..template.target.clone() },
            ..template
        };
        state.ops = vec![run];
        state
    }

    /// A submitted saga of `branches` branches (action + compensate each), created at `at`.
    pub fn saga(gid: &str, branches: usize, at: Millis) -> TransactionState {
        let target = |function: &str| Target {
            module: ModuleName::parse("bank").expect("valid name"),
            digest: Digest::of(b"module"),
            database: DatabaseName::default_name(),
            function: function.to_owned(),
        };
        let ops = (0..branches)
            .flat_map(|i| [(i, Op::Action, "do"), (i, Op::Compensate, "undo")])
            .map(|(i, op, function)| BranchOp {
                branch_id: BranchId::from_index(i),
                op,
                target: target(function),
                payload: b"null".to_vec(),
                status: OpStatus::Prepared,
                attempts: 0,
                last_error: None,
                updated_at: at,
            })
            .collect();
        TransactionState {
            transaction: Transaction {
                gid: Gid::parse(gid).expect("valid gid"),
                mode: Mode::Saga,
                status: Status::Submitted,
                options: Options::default(),
                next_due: Some(at),
                attempts: 0,
                last_error: None,
                rollback_reason: None,
                created_at: at,
                updated_at: at,
                finished_at: None,
                lease_owner: None,
                lease_expires: None,
                epoch: 0,
            },
            ops,
        }
    }
}
