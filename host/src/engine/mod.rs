//! The protocols and the driver that runs them.
//!
//! Each mode's logic is a pure state machine ([`saga`]); [`Engine`] is the one
//! async driver that performs its effects: it claims a transaction under a
//! fenced lease, asks the state machine what to do, runs branch ops through
//! the [`BranchExecutor`] seam, and persists the state after every step.
//!
//! The engine must not import axum, sqlx or wasmtime, and never reads the wall
//! clock directly: time comes from the injected [`Clock`].

pub mod clock;
pub mod retry;
pub mod saga;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};

use crate::model::{BranchId, BranchOp, Gid, Millis, Mode, Op, Target, TransactionState};
use crate::store::{Created, Lease, Store, StoreError};

pub use clock::{Clock, ManualClock, SystemClock};
pub use retry::RetryPolicy;
pub use saga::Outcome;
use saga::{Effect, Event};

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
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The seam between the engine and whatever runs branch code (Wasm today,
/// HTTP later). Implementations never fail: every problem is an [`Outcome`].
pub trait BranchExecutor: Send + Sync + 'static {
    fn execute(&self, call: BranchCall) -> BoxFuture<'_, Outcome>;
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
    pub retry: RetryPolicy,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            node: format!("node-{}", uuid::Uuid::new_v4().simple()),
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(200),
            max_concurrent: 64,
            retry: RetryPolicy::default(),
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
    /// Callers waiting for a transaction to become final.
    waiters: Mutex<HashMap<Gid, Arc<Notify>>>,
    /// One permit per transaction being driven.
    permits: Arc<Semaphore>,
    shutdown: watch::Sender<bool>,
}

impl Engine {
    pub fn new(store: Store, executor: Arc<dyn BranchExecutor>, clock: Arc<dyn Clock>, config: EngineConfig) -> Self {
        let permits = Arc::new(Semaphore::new(config.max_concurrent.max(1)));
        let (shutdown, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                store,
                executor,
                clock,
                config,
                waiters: Mutex::new(HashMap::new()),
                permits,
                shutdown,
            }),
        }
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
    /// [`Engine::shutdown`].
    pub async fn start(&self) -> Result<tokio::task::JoinHandle<()>, EngineError> {
        let released = self.inner.store.release_all(&self.inner.config.node).await?;
        if released > 0 {
            tracing::info!(released, "took back transactions leased by this node before it stopped");
        }
        let engine = self.clone();
        Ok(tokio::spawn(async move { engine.poll_due().await }))
    }

    /// Stores a new transaction and starts driving it. Submitting a gid that
    /// exists stores nothing and answers with the stored transaction
    /// (`created == false`); an unfinished one is nudged to continue.
    pub async fn submit(&self, mut state: TransactionState) -> Result<(TransactionState, bool), EngineError> {
        if *self.inner.shutdown.borrow() {
            return Err(EngineError::ShuttingDown);
        }
        // A new transaction is created already leased to this node, so it
        // starts at once without a separate claim write.
        let now = self.now();
        let tx = &mut state.transaction;
        tx.lease_owner = Some(self.inner.config.node.clone());
        tx.lease_expires = Some(now.plus_ms(duration_ms(self.inner.config.lease)));
        tx.epoch = tx.epoch.max(1);
        let lease = Lease { gid: tx.gid.clone(), owner: self.inner.config.node.clone(), epoch: tx.epoch };
        match self.inner.store.create_transaction(&state).await? {
            Created::New => {
                self.spawn_claimed(lease);
                Ok((state, true))
            }
            Created::Existing(existing) => {
                // Nudge it only if nobody is driving it now: claiming a live
                // lease (even our own) would fence the driver mid-step.
                let t = &existing.transaction;
                let leased = t.lease_owner.is_some() && t.lease_expires.is_some_and(|until| until > now);
                if !t.status.is_final() && !leased {
                    self.spawn_drive(t.gid.clone());
                }
                Ok((existing, false))
            }
        }
    }

    /// Waits until `gid` is final or `timeout` passes; returns its latest state.
    pub async fn wait(&self, gid: &Gid, timeout: Duration) -> Result<Option<TransactionState>, EngineError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let notify = self.waiter(gid);
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let state = self.inner.store.load(gid).await?;
            let done = state.as_ref().is_none_or(|s| s.transaction.status.is_final());
            if done || tokio::time::Instant::now() >= deadline {
                return Ok(state);
            }
            // Another instance may finish it: look again at least every second.
            let slice = deadline.min(tokio::time::Instant::now() + Duration::from_secs(1));
            let _ = tokio::time::timeout_at(slice, notified).await;
        }
    }

    /// Stops claiming work, lets in-flight steps finish (up to `grace`) and
    /// releases their leases.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutdown.send_replace(true);
        let all = u32::try_from(self.inner.config.max_concurrent.max(1)).unwrap_or(u32::MAX);
        match tokio::time::timeout(grace, self.inner.permits.acquire_many(all)).await {
            Ok(_) => tracing::info!("engine stopped cleanly"),
            Err(_) => tracing::warn!(?grace, "engine stopped with steps still in flight; their leases will expire"),
        }
    }

    fn waiter(&self, gid: &Gid) -> Arc<Notify> {
        let mut waiters = self.inner.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters.entry(gid.clone()).or_default().clone()
    }

    fn notify_final(&self, gid: &Gid) {
        let waiter = self.inner.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(gid);
        if let Some(n) = waiter {
            n.notify_waiters();
        }
    }

    fn spawn_drive(&self, gid: Gid) {
        let engine = self.clone();
        tokio::spawn(async move {
            let Ok(_permit) = engine.inner.permits.clone().acquire_owned().await else { return };
            let now = engine.now();
            let until = now.plus_ms(duration_ms(engine.inner.config.lease));
            match engine.inner.store.claim(&gid, &engine.inner.config.node, now, until).await {
                Ok(Some(lease)) => engine.drive(lease).await,
                Ok(None) => {}
                Err(e) => tracing::warn!(%gid, error = %e, "could not claim transaction; it will be retried"),
            }
        });
    }

    fn spawn_claimed(&self, lease: Lease) {
        let engine = self.clone();
        tokio::spawn(async move {
            let Ok(_permit) = engine.inner.permits.clone().acquire_owned().await else { return };
            engine.drive(lease).await;
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
                            self.spawn_claimed(lease);
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

    /// Drives one claimed transaction until it sleeps, finishes, is fenced or
    /// the engine shuts down.
    async fn drive(&self, lease: Lease) {
        let gid = lease.gid.clone();
        if let Err(e) = self.drive_inner(&lease).await {
            match e {
                StoreError::Fenced { .. } => {
                    tracing::info!(%gid, "another owner took the transaction over; stopping here")
                }
                e => tracing::warn!(%gid, error = %e, "store unavailable; the transaction will be resumed later"),
            }
        }
    }

    async fn drive_inner(&self, lease: &Lease) -> Result<(), StoreError> {
        let store = &self.inner.store;
        let Some(mut state) = store.load(&lease.gid).await? else { return Ok(()) };
        let lease_ms = duration_ms(self.inner.config.lease);
        let mut event = Event::Resume;
        loop {
            let now = self.now();
            let status_before = state.transaction.status;
            let touched = match &event {
                Event::Outcome { branch_id, op, .. } => Some((branch_id.clone(), *op)),
                Event::Resume => None,
            };
            let effect = saga::step(&mut state, event, now, &self.inner.config.retry);
            state.transaction.lease_expires = Some(now.plus_ms(lease_ms));

            let changed: Vec<BranchOp> = touched.and_then(|(b, op)| state.op(&b, op).cloned()).into_iter().collect();
            // A driver that stops here gives the lease up in the same write;
            // one that goes on writes only when something changed.
            if matches!(effect, Effect::Sleep { .. } | Effect::Finished { .. }) {
                store.save_and_release(lease, &state.transaction, &changed).await?;
            } else if !changed.is_empty() || state.transaction.status != status_before {
                store.save(lease, &state.transaction, &changed).await?;
            }

            match effect {
                Effect::Invoke { branch_id, op, attempt } => {
                    if *self.inner.shutdown.borrow() {
                        store.release(lease).await?;
                        return Ok(());
                    }
                    let Some(branch_op) = state.op(&branch_id, op) else {
                        return Err(StoreError::Corrupt(format!("{}: no {op} op for branch {branch_id}", lease.gid)));
                    };
                    let call = BranchCall {
                        gid: lease.gid.clone(),
                        mode: state.transaction.mode,
                        branch_id: branch_id.clone(),
                        op,
                        target: branch_op.target.clone(),
                        payload: branch_op.payload.clone(),
                        attempt,
                        headers: state.transaction.options.branch_headers.clone(),
                    };
                    let outcome = self.inner.executor.execute(call).await;
                    if let Outcome::Error(m) | Outcome::Retry(m) = &outcome {
                        tracing::warn!(gid = %lease.gid, %branch_id, %op, attempt, error = %m, "branch op did not succeed");
                    }
                    event = Event::Outcome { branch_id, op, outcome };
                }
                Effect::Sleep { .. } => return Ok(()),
                Effect::Finished { status } => {
                    tracing::info!(gid = %lease.gid, %status, "transaction finished");
                    self.notify_final(&lease.gid);
                    return Ok(());
                }
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
    use crate::model::{
        BranchId, BranchOp, DatabaseName, Digest, Gid, Millis, Mode, ModuleName, Op, OpStatus, Options, Status, Target,
        Transaction, TransactionState,
    };

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
