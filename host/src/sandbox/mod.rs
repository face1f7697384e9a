//! The WebAssembly sandbox: wasmtime engine, linker, limits and the host side
//! of the WIT imports.
//!
//! This is the only module that names wasmtime types; callers see
//! [`Sandbox`], [`Compiled`], [`Prepared`], [`Invocation`] and the error
//! enums. A guest that traps, loops past its deadline, exhausts its memory or
//! writes more than it may fails that one invocation with
//! [`InvokeError::Trap`] naming the limit; the host and other invocations go
//! on. Guest-visible errors (WIT `result`s) and traps are kept apart: a
//! business refusal is [`InvokeError::Failure`], a transient guest error
//! [`InvokeError::Retry`].
//!
//! What a guest may reach: its `db` (the transaction the caller hands in),
//! `log`, WASI without files, environment, sockets or sleep (the monotonic
//! clock refuses to wait, see `clocks`), and outbound HTTP to the hosts both
//! the operator and its upload allow (see `http`).
//!
//! # Layout
//!
//! - `bindings`: the generated WIT bindings (nothing else names them).
//! - `limits`: [`Limits`], the memory limiter and the engine's allocator.
//! - `clocks`, `db`, `http`, `log`: one host file per interface.

mod bindings;
mod clocks;
mod db;
mod http;
mod kv;
mod limits;
mod log;
mod workflow;

impl bindings::wasmtx::runtime::types::Host for HostState {}

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::clocks::WasiClocksCtxView;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::database::LocalTx;
use crate::model::Op;
use bindings::wasmtx::runtime::types as wit;
pub use http::{HostRule, HttpGrant, operator_allows};
pub use limits::Limits;
use limits::{InstanceLimiter, engine_config};
pub use workflow::{DROPPED, StepAsk, WorkflowInstance};

/// Why an upload cannot become a module.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("not a WebAssembly binary (it does not start with \\0asm)")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component: build it as a component (e.g. `cargo build --target wasm32-wasip2`, or `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error("the component does not implement the `wasmtx:runtime/branch` world: {0}")]
    WorldMismatch(String),
    /// It imports both `db` and `kv`: a module is bound to one database.
    #[error(
        "the component imports both `wasmtx:runtime/db` and `wasmtx:runtime/kv`; a module is bound to one database, \
         so build it against world `branch` (SQL databases) or `kv-branch` (Redis)"
    )]
    BothStores,
    /// It imports `steps` but does not fit the `workflow` world.
    #[error(
        "the component imports `wasmtx:runtime/steps` but does not implement the `wasmtx:runtime/workflow` world: {0}"
    )]
    WorkflowMismatch(String),
}

/// Why an invocation did not return `ok`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// The guest refused (WIT `branch-error.failure`): final, never retried.
    #[error("{0}")]
    Failure(String),
    /// The guest asked to be called again later (WIT `branch-error.retry`).
    #[error("{0}")]
    Retry(String),
    /// The guest trapped, or hit a limit (deadline, memory, output, log).
    #[error("{0}")]
    Trap(String),
}

/// A validated, compiled module version, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct Compiled {
    kind: Kind,
    /// The store interface it imports: `db`, `kv`, or neither.
    store: Option<&'static str>,
}

#[derive(Clone)]
enum Kind {
    Branch(bindings::BranchPre<HostState>),
    Workflow(bindings::workflow::WorkflowPre<HostState>),
}

impl Compiled {
    /// The store interface it imports (`db` or `kv`), if any; a module
    /// may run only against a database reached through it.
    pub fn store_interface(&self) -> Option<&'static str> {
        self.store
    }

    /// The WIT world it implements: `branch` or `workflow`.
    pub fn world(&self) -> &'static str {
        match self.kind {
            Kind::Branch(_) => "branch",
            Kind::Workflow(_) => "workflow",
        }
    }

    fn branch(&self) -> Result<&bindings::BranchPre<HostState>, InvokeError> {
        match &self.kind {
            Kind::Branch(pre) => Ok(pre),
            Kind::Workflow(_) => Err(InvokeError::Trap(
                "this is a workflow module (world `wasmtx:runtime/workflow`): it has no branch functions to call"
                    .to_owned(),
            )),
        }
    }
}

/// How a module version is run: a fresh instance per invocation (the
/// default, nothing survives between calls), or instances reused for a bounded
/// number of invocations (opt-in; saves interpreter start-up); and what it is
/// granted beyond `db` and `log`. Cheap to clone.
#[derive(Clone)]
pub struct Runner {
    instances: Instances,
    http: HttpGrant,
}

#[derive(Clone)]
enum Instances {
    Fresh(Compiled),
    Reused(Arc<InstancePool>),
}

impl Runner {
    /// A fresh instance for every invocation, no outbound HTTP.
    pub fn fresh(compiled: Compiled) -> Runner {
        Runner { instances: Instances::Fresh(compiled), http: HttpGrant::default() }
    }

    /// Instances from `pool`, no outbound HTTP.
    pub fn reused(pool: Arc<InstancePool>) -> Runner {
        Runner { instances: Instances::Reused(pool), http: HttpGrant::default() }
    }

    /// The same, with outbound HTTP to the hosts `grant` allows.
    pub fn with_http(self, http: HttpGrant) -> Runner {
        Runner { http, ..self }
    }
}

/// Idle instances of one module version. A pool belongs to exactly one
/// (module name, digest), so an instance never serves two modules or two
/// versions; an instance that trapped is discarded, never returned. All
/// pools together keep at most [`Limits::max_idle_instances`] idle.
pub struct InstancePool {
    compiled: Compiled,
    max_uses: u32,
    capacity: usize,
    idle: std::sync::Mutex<Vec<Warm>>,
    /// Idle instances of every pool of the sandbox.
    idle_total: Arc<AtomicUsize>,
    max_idle_total: usize,
}

/// An instance between invocations, and how often it has served.
struct Warm {
    store: Store<HostState>,
    instance: bindings::Branch,
    uses: u32,
}

impl InstancePool {
    pub fn max_uses(&self) -> u32 {
        self.max_uses
    }

    /// Instances waiting to be reused.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Warm>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Option<Warm> {
        let warm = self.lock().pop();
        if warm.is_some() {
            self.idle_total.fetch_sub(1, Ordering::AcqRel);
        }
        warm
    }

    /// Keeps `warm` for a later call if it may serve again and there is room.
    fn put(&self, warm: Warm) {
        if warm.uses >= self.max_uses {
            return;
        }
        let mut idle = self.lock();
        if idle.len() >= self.capacity {
            return;
        }
        let reserved = self
            .idle_total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max_idle_total).then_some(n + 1));
        if reserved.is_ok() {
            idle.push(warm);
        }
    }
}

impl Drop for InstancePool {
    fn drop(&mut self) {
        let idle = self.lock().len();
        self.idle_total.fetch_sub(idle, Ordering::AcqRel);
    }
}

/// An instantiated module, ready for one call ([`Sandbox::prepare`]), holding
/// one of the sandbox's invocation slots. Can move between threads: a branch
/// on SQLite is called on its database's writer thread.
pub struct Prepared {
    store: Store<HostState>,
    instance: bindings::Branch,
    /// For a reused instance: its pool and the calls it has served.
    pool: Option<(Arc<InstancePool>, u32)>,
    sandbox: Sandbox,
    deadline: Instant,
    /// The time the invocation was given, for the message when it runs out.
    budget: Duration,
    http: HttpGrant,
    _slot: OwnedSemaphorePermit,
}

impl Prepared {
    /// Calls `handler.invoke` once. `tx` is the local transaction the guest's
    /// `db` calls run in; it is handed back (still open) so the caller decides
    /// between commit and rollback. A reused instance goes back to its pool
    /// unless it trapped or has served its share.
    pub async fn call(
        mut self,
        call: Invocation,
        tx: Option<LocalTx>,
    ) -> (Result<Vec<u8>, InvokeError>, Option<LocalTx>) {
        let state = self.store.data_mut();
        state.tx = tx;
        state.http = self.http.clone();
        state.label = call.label();
        state.log = LogBudget::new(&self.sandbox.inner.limits);
        self.sandbox.arm_deadline(&mut self.store, self.deadline);
        let result = Sandbox::call_instance(&self.instance, &mut self.store, call).await;
        let tx = self.store.data_mut().tx.take();
        let result = match result {
            Ok(outcome) => {
                if let Some((pool, uses)) = self.pool.take() {
                    pool.put(Warm { store: self.store, instance: self.instance, uses: uses + 1 });
                }
                self.sandbox.check_sizes(outcome)
            }
            // A trapped instance is never entered again.
            Err(e) => Err(self.sandbox.trap(e, self.budget)),
        };
        (result, tx)
    }
}

/// What one invocation is about.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub function: String,
    pub gid: String,
    pub branch_id: String,
    pub op: Op,
    pub attempt: u32,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
    /// Module name (and version) for log lines.
    pub module: String,
}

impl Invocation {
    /// "module gid/branch op", for log lines.
    fn label(&self) -> String {
        format!("{} {}/{} {}", self.module, self.gid, self.branch_id, self.op)
    }
}

/// Per-invocation state the host imports work on.
struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: InstanceLimiter,
    /// The branch's local transaction; `None` when there is no database (upload inspection).
    tx: Option<LocalTx>,
    /// "module gid/branch op" for log attribution.
    label: String,
    log: LogBudget,
    http_ctx: wasmtime_wasi_http::WasiHttpCtx,
    /// Where outbound requests may go.
    http: HttpGrant,
    /// A workflow instance's `steps` (`None` in a branch instance).
    steps: Option<workflow::StepsLink>,
}

/// What is left of an invocation's log allowance.
struct LogBudget {
    bytes: usize,
    lines: u32,
    /// The allowance itself, for the message when it runs out.
    max_bytes: usize,
    max_lines: u32,
}

impl LogBudget {
    fn new(limits: &Limits) -> Self {
        Self {
            bytes: limits.max_log_bytes,
            lines: limits.max_log_lines,
            max_bytes: limits.max_log_bytes,
            max_lines: limits.max_log_lines,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView { ctx: &mut self.http_ctx, table: &mut self.table, hooks: &mut self.http }
    }
}

/// The wasmtime engine, linker and epoch ticker shared by every invocation.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    /// WASI, `log` and `steps`: no `db`, no HTTP.
    workflow_linker: Linker<HostState>,
    limits: Limits,
    /// One permit per invocation allowed at once.
    slots: Arc<Semaphore>,
    idle_instances: Arc<AtomicUsize>,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// How often the epoch advances; deadlines are checked at this granularity.
const TICK: Duration = Duration::from_millis(10);

impl Sandbox {
    /// A sandbox without an on-disk code cache.
    pub fn new(limits: Limits) -> Result<Self, wasmtime::Error> {
        Self::with_cache(limits, None)
    }

    /// A sandbox whose compiled code is also kept in `cache_dir`, so a restart
    /// (or another process sharing the directory) does not compile a module
    /// again. Entries are keyed by the module bytes and the engine settings.
    pub fn with_cache(limits: Limits, cache_dir: Option<&std::path::Path>) -> Result<Self, wasmtime::Error> {
        let cache = match cache_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let mut config = wasmtime::CacheConfig::new();
                config.with_directory(dir);
                Some(wasmtime::Cache::new(config)?)
            }
            None => None,
        };
        let engine = match Engine::new(engine_config(&limits, true).cache(cache.clone())) {
            Ok(engine) => engine,
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; falling back to on-demand allocation");
                Engine::new(engine_config(&limits, false).cache(cache))?
            }
        };
        let wasi_linker = || -> Result<Linker<HostState>, wasmtime::Error> {
            let mut linker = Linker::<HostState>::new(&engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
            // The monotonic clock again, without sleep (see `clocks`).
            linker.allow_shadowing(true);
            wasmtime_wasi::p2::bindings::clocks::monotonic_clock::add_to_linker::<HostState, clocks::NoSleepClocks>(
                &mut linker,
                |s| clocks::NoSleep(WasiClocksCtxView { ctx: s.wasi.clocks(), table: &mut s.table }),
            )?;
            linker.allow_shadowing(false);
            Ok(linker)
        };
        let mut linker = wasi_linker()?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        bindings::Branch::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        bindings::kv_branch::wasmtx::runtime::kv::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        let mut workflow_linker = wasi_linker()?;
        bindings::workflow::Workflow::add_to_linker::<_, HasSelf<_>>(&mut workflow_linker, |s| s)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let stop = ticker_stop.clone();
        let weak = engine.weak();
        std::thread::Builder::new().name("wasmtx-epoch".into()).spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })?;
        let slots = Arc::new(Semaphore::new(limits.max_invocations.max(1)));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                workflow_linker,
                limits,
                slots,
                idle_instances: Arc::new(AtomicUsize::new(0)),
                ticker_stop,
            }),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// A pool of reusable instances of `compiled`: each serves at most
    /// `max_uses` invocations, at most `capacity` wait idle (and never more
    /// than the sandbox's [`Limits::max_idle_instances`] across all pools).
    pub fn instance_pool(&self, compiled: Compiled, max_uses: u32, capacity: usize) -> InstancePool {
        InstancePool {
            compiled,
            max_uses: max_uses.max(1),
            capacity,
            idle: std::sync::Mutex::new(Vec::new()),
            idle_total: self.inner.idle_instances.clone(),
            max_idle_total: self.inner.limits.max_idle_instances,
        }
    }

    /// Idle reusable instances, all pools together.
    pub fn idle_instances(&self) -> usize {
        self.inner.idle_instances.load(Ordering::Acquire)
    }

    /// Validates and compiles a component. CPU-heavy (seconds for interpreter
    /// guests): call it from a blocking thread.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, CompileError> {
        match bytes.get(..8) {
            Some([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]) => return Err(CompileError::CoreModule),
            Some([0x00, 0x61, 0x73, 0x6d, _, _, _, _]) => {}
            _ => return Err(CompileError::NotWasm),
        }
        let component =
            Component::new(&self.inner.engine, bytes).map_err(|e| CompileError::Invalid(format!("{e:#}")))?;
        let imports: Vec<String> =
            component.component_type().imports(&self.inner.engine).map(|(name, _)| name.to_owned()).collect();
        let imports_interface = |interface: &str| {
            imports.iter().any(|name| {
                name.strip_prefix("wasmtx:runtime/")
                    .is_some_and(|rest| rest == interface || rest.starts_with(&format!("{interface}@")))
            })
        };
        if imports_interface("steps") {
            let mismatch = |e: wasmtime::Error| CompileError::WorkflowMismatch(format!("{e:#}"));
            let pre = self.inner.workflow_linker.instantiate_pre(&component).map_err(mismatch)?;
            let pre = bindings::workflow::WorkflowPre::new(pre).map_err(mismatch)?;
            return Ok(Compiled { kind: Kind::Workflow(pre), store: None });
        }
        let store = match (imports_interface("db"), imports_interface("kv")) {
            (true, true) => return Err(CompileError::BothStores),
            (true, false) => Some("db"),
            (false, true) => Some("kv"),
            (false, false) => None,
        };
        let pre =
            self.inner.linker.instantiate_pre(&component).map_err(|e| CompileError::WorldMismatch(format!("{e:#}")))?;
        let pre = bindings::BranchPre::new(pre).map_err(|e| CompileError::WorldMismatch(format!("{e:#}")))?;
        Ok(Compiled { kind: Kind::Branch(pre), store })
    }

    /// Asks the module which functions it exports (`handler.functions`); a
    /// workflow's one function is `run`.
    pub async fn functions(&self, compiled: &Compiled) -> Result<Vec<String>, InvokeError> {
        let pre = match &compiled.kind {
            Kind::Branch(pre) => pre,
            Kind::Workflow(_) => return Ok(vec!["run".to_owned()]),
        };
        let deadline = Instant::now() + self.inner.limits.deadline;
        let _slot = self.slot(deadline).await?;
        let mut store = self.store(None, "upload inspection".into());
        self.arm_deadline(&mut store, deadline);
        let budget = self.inner.limits.deadline;
        let instance = pre.instantiate_async(&mut store).await.map_err(|e| self.trap(e, budget))?;
        let functions =
            instance.wasmtx_runtime_handler().call_functions(&mut store).await.map_err(|e| self.trap(e, budget))?;
        let size: usize = functions.iter().map(String::len).sum();
        if functions.len() > 10_000 || size > self.inner.limits.max_output_bytes {
            return Err(InvokeError::Trap(format!(
                "output limit exceeded: handler.functions returned {} names ({size} bytes)",
                functions.len()
            )));
        }
        Ok(functions)
    }

    /// Runs one function as `runner` says (fresh or reused instance): [`Sandbox::prepare`] then [`Prepared::call`].
    pub async fn run(
        &self,
        runner: &Runner,
        call: Invocation,
        tx: Option<LocalTx>,
    ) -> (Result<Vec<u8>, InvokeError>, Option<LocalTx>) {
        let deadline = Instant::now() + self.inner.limits.deadline;
        match self.prepare(runner, deadline).await {
            Ok(prepared) => prepared.call(call, tx).await,
            Err(e) => (Err(e), tx),
        }
    }

    /// Runs one function in a fresh instance of `compiled` (see [`Sandbox::run`]).
    pub async fn invoke(
        &self,
        compiled: &Compiled,
        call: Invocation,
        tx: Option<LocalTx>,
    ) -> (Result<Vec<u8>, InvokeError>, Option<LocalTx>) {
        self.run(&Runner::fresh(compiled.clone()), call, tx).await
    }

    /// An instance ready to be called, made before the caller takes a
    /// database connection (instantiation can cost milliseconds for
    /// interpreter guests): a fresh one, or an idle one from the pool of a
    /// module uploaded with reuse. Waits for one of the invocation slots
    /// ([`Limits::max_invocations`]); everything counts against `deadline`.
    pub async fn prepare(&self, runner: &Runner, deadline: Instant) -> Result<Prepared, InvokeError> {
        // What the caller gave, to the nearest 10 ms (it was computed a moment ago).
        let left = deadline.saturating_duration_since(Instant::now()).as_millis();
        let budget = Duration::from_millis(u64::try_from(left.div_ceil(10) * 10).unwrap_or(u64::MAX));
        let slot = self.slot(deadline).await?;
        let http = runner.http.clone();
        let (compiled, pool) = match &runner.instances {
            Instances::Fresh(compiled) => (compiled, None),
            Instances::Reused(pool) => {
                if let Some(warm) = pool.take() {
                    return Ok(Prepared {
                        store: warm.store,
                        instance: warm.instance,
                        pool: Some((pool.clone(), warm.uses)),
                        sandbox: self.clone(),
                        deadline,
                        budget,
                        http,
                        _slot: slot,
                    });
                }
                (&pool.compiled, Some((pool.clone(), 0)))
            }
        };
        let pre = compiled.branch()?;
        let mut store = self.store(None, String::new());
        self.arm_deadline(&mut store, deadline);
        let instance = pre.instantiate_async(&mut store).await.map_err(|e| self.trap(e, budget))?;
        Ok(Prepared { store, instance, pool, sandbox: self.clone(), deadline, budget, http, _slot: slot })
    }

    /// One of the invocation slots, waited for until `deadline`.
    async fn slot(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, InvokeError> {
        let waited = tokio::time::timeout_at(deadline.into(), self.inner.slots.clone().acquire_owned()).await;
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(InvokeError::Trap(format!(
                "invocation limit reached: {} invocations were running until the deadline (max_invocations)",
                self.inner.limits.max_invocations
            ))),
        }
    }

    /// Calls `handler.invoke`; the outer error is a trap, the inner one the guest's answer.
    async fn call_instance(
        instance: &bindings::Branch,
        store: &mut Store<HostState>,
        call: Invocation,
    ) -> Result<Result<Vec<u8>, InvokeError>, wasmtime::Error> {
        let ctx = wit::BranchContext {
            gid: call.gid,
            branch_id: call.branch_id,
            op: wit_op(call.op),
            attempt: call.attempt,
            headers: call.headers,
        };
        let outcome =
            instance.wasmtx_runtime_handler().call_invoke(&mut *store, &call.function, &ctx, &call.payload).await?;
        Ok(outcome.map_err(|e| match e {
            wit::BranchError::Failure(m) => InvokeError::Failure(m),
            wit::BranchError::Retry(m) => InvokeError::Retry(m),
        }))
    }

    /// Output and messages past their limits fail the invocation.
    fn check_sizes(&self, outcome: Result<Vec<u8>, InvokeError>) -> Result<Vec<u8>, InvokeError> {
        let limits = &self.inner.limits;
        match outcome {
            Ok(output) if output.len() > limits.max_output_bytes => Err(InvokeError::Trap(format!(
                "output limit exceeded: the function returned {} bytes, above {} (max_output_kb)",
                output.len(),
                limits.max_output_bytes
            ))),
            Err(InvokeError::Failure(m) | InvokeError::Retry(m)) if m.len() > limits.max_error_bytes => {
                Err(InvokeError::Trap(format!(
                    "error message limit exceeded: the guest's message is {} bytes, above {} (max_error_kb)",
                    m.len(),
                    limits.max_error_bytes
                )))
            }
            outcome => outcome,
        }
    }

    fn store(&self, tx: Option<LocalTx>, label: String) -> Store<HostState> {
        let limits = &self.inner.limits;
        let state = HostState {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limiter: InstanceLimiter::new(limits.memory_bytes),
            tx,
            label,
            log: LogBudget::new(limits),
            http_ctx: wasmtime_wasi_http::WasiHttpCtx::new(),
            http: HttpGrant::default(),
            steps: None,
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
    }

    /// Traps once `deadline` passes; until then yields to the executor at
    /// every tick so a busy guest does not starve other tasks on its thread.
    fn arm_deadline(&self, store: &mut Store<HostState>, deadline: Instant) {
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(wasmtime::UpdateDeadline::Interrupt)
            } else {
                Ok(wasmtime::UpdateDeadline::Yield(1))
            }
        });
    }

    /// Describes a trap in words a module author can act on; a limit the
    /// host enforced names itself. No wasm backtrace: one line.
    /// `budget` is the time the invocation was given.
    fn trap(&self, error: wasmtime::Error, budget: Duration) -> InvokeError {
        let trap = self.trap_message(error, budget);
        let kind = match trap.as_str() {
            m if m.starts_with("deadline exceeded") => "deadline",
            m if m.starts_with("memory limit") || m.starts_with("table limit") => "memory",
            m if m.starts_with("payload limit") || m.starts_with("name limit") => "payload",
            m if m.starts_with("log limit") => "log",
            m if m.starts_with("instance limit") => "instances",
            m if m.starts_with("stack overflow") => "stack",
            _ => "trap",
        };
        crate::metrics::guest_trap(kind);
        InvokeError::Trap(trap)
    }

    fn trap_message(&self, error: wasmtime::Error, budget: Duration) -> String {
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => format!("deadline exceeded: the guest ran longer than {budget:?}"),
            Some(wasmtime::Trap::StackOverflow) => "stack overflow: the guest's call stack ran out".to_owned(),
            Some(trap) => format!("guest trapped: {trap}"),
            None => {
                let text = format!("{:#}", error.root_cause());
                let named = [
                    "payload limit exceeded",
                    "name limit exceeded",
                    "memory limit exceeded",
                    "table limit exceeded",
                    "log limit exceeded",
                    "sleep is not",
                    workflow::DROPPED,
                ];
                match named.iter().find_map(|n| text.find(n)) {
                    Some(at) => text[at..].to_owned(),
                    None if text.contains("maximum concurrent") || text.contains("pooling allocator") => {
                        format!("instance limit reached: {text}")
                    }
                    None => format!("guest trapped: {text}"),
                }
            }
        }
    }
}

fn wit_op(op: Op) -> wit::Op {
    match op {
        // A message's local function is, to the guest, an action.
        Op::Action | Op::Msg => wit::Op::Action,
        Op::Compensate => wit::Op::Compensate,
        Op::Try => wit::Op::Try,
        Op::Confirm => wit::Op::Confirm,
        Op::Cancel => wit::Op::Cancel,
        Op::Commit => wit::Op::Commit,
        Op::Rollback => wit::Op::Rollback,
        Op::Call => wit::Op::Call,
        // Not a branch op: a workflow's `run` is called through its own export.
        Op::Run => wit::Op::Call,
    }
}

#[cfg(test)]
mod tests;
