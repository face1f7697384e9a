//! The WebAssembly sandbox: wasmtime engine, linker, limits and the host side
//! of the WIT imports.
//!
//! This is the only module that names wasmtime types; callers see
//! [`Sandbox`], [`Compiled`], [`Invocation`] and the error enums. A guest that
//! traps, loops past its deadline or exhausts its memory fails that one
//! invocation with [`InvokeError::Trap`]; the host and other invocations go on.
//! Guest-visible errors (WIT `result`s) and traps are kept apart: a business
//! refusal is [`InvokeError::Failure`], a transient guest error
//! [`InvokeError::Retry`].

mod bindings;
mod db;
mod log;

impl bindings::wasmtx::runtime::types::Host for HostState {}

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::database::LocalTx;
use crate::model::Op;
use bindings::wasmtx::runtime::types as wit;

/// Resource limits applied to every invocation.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock budget for one invocation (instantiation + call).
    pub deadline: Duration,
    /// Cap on each linear memory of an instance.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { deadline: Duration::from_secs(10), memory_bytes: 256 << 20 }
    }
}

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
    /// The guest trapped, ran past its deadline or out of memory.
    #[error("{0}")]
    Trap(String),
}

/// A validated, compiled module version, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct Compiled {
    pre: bindings::BranchPre<HostState>,
}

/// How a module version is run: a fresh instance per invocation (the
/// default, nothing survives between calls), or instances reused for a bounded
/// number of invocations (opt-in; saves interpreter start-up). Cheap to clone.
#[derive(Clone)]
pub enum Runner {
    Fresh(Compiled),
    Reused(Arc<InstancePool>),
}

/// Idle instances of one module version. A pool belongs to exactly one
/// (module name, digest), so an instance never serves two modules or two
/// versions; an instance that trapped is discarded, never returned.
pub struct InstancePool {
    compiled: Compiled,
    max_uses: u32,
    capacity: usize,
    idle: std::sync::Mutex<Vec<Warm>>,
}

/// An instance between invocations, and how often it has served.
struct Warm {
    store: Store<HostState>,
    instance: bindings::Branch,
    uses: u32,
}

impl InstancePool {
    /// Each instance serves at most `max_uses` invocations; at most `capacity` wait idle.
    pub fn new(compiled: Compiled, max_uses: u32, capacity: usize) -> Self {
        Self { compiled, max_uses: max_uses.max(1), capacity, idle: std::sync::Mutex::new(Vec::new()) }
    }

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
}

/// An instantiated module, ready for one call ([`Sandbox::prepare`]). Cheap
/// to move between threads: a branch on SQLite is called on its database's
/// writer thread.
pub struct Prepared {
    store: Store<HostState>,
    instance: bindings::Branch,
    /// For a reused instance: its pool and the calls it has served.
    pool: Option<(Arc<InstancePool>, u32)>,
    sandbox: Sandbox,
    deadline: Instant,
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
        self.store.data_mut().tx = tx;
        self.store.data_mut().label = call.label();
        self.sandbox.arm_deadline(&mut self.store, self.deadline);
        let result = Sandbox::call_instance(&self.instance, &mut self.store, call).await;
        let tx = self.store.data_mut().tx.take();
        let result = match result {
            Ok(outcome) => {
                if let Some((pool, uses)) = self.pool.take() {
                    let uses = uses + 1;
                    let mut idle = pool.lock();
                    if uses < pool.max_uses && idle.len() < pool.capacity {
                        idle.push(Warm { store: self.store, instance: self.instance, uses });
                    }
                }
                outcome
            }
            // A trapped instance is never entered again.
            Err(e) => Err(self.sandbox.trap(e)),
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
    limits: StoreLimits,
    /// The branch's local transaction; `None` when there is no database (upload inspection).
    tx: Option<LocalTx>,
    /// "module gid/branch op" for log attribution.
    label: String,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
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
    limits: Limits,
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
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::Branch::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;

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
        Ok(Self { inner: Arc::new(Inner { engine, linker, limits, ticker_stop }) })
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
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
        let pre =
            self.inner.linker.instantiate_pre(&component).map_err(|e| CompileError::WorldMismatch(format!("{e:#}")))?;
        let pre = bindings::BranchPre::new(pre).map_err(|e| CompileError::WorldMismatch(format!("{e:#}")))?;
        Ok(Compiled { pre })
    }

    /// Asks the module which functions it exports (`handler.functions`).
    pub async fn functions(&self, compiled: &Compiled) -> Result<Vec<String>, InvokeError> {
        let mut store = self.store(None, "upload inspection".into());
        let deadline = Instant::now() + self.inner.limits.deadline;
        self.arm_deadline(&mut store, deadline);
        let instance = compiled.pre.instantiate_async(&mut store).await.map_err(|e| self.trap(e))?;
        instance.wasmtx_runtime_handler().call_functions(&mut store).await.map_err(|e| self.trap(e))
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
        self.run(&Runner::Fresh(compiled.clone()), call, tx).await
    }

    /// An instance ready to be called, made before the caller takes a
    /// database connection (instantiation can cost milliseconds for
    /// interpreter guests): a fresh one, or an idle one from the pool of a
    /// module uploaded with reuse. Everything it does counts against `deadline`.
    pub async fn prepare(&self, runner: &Runner, deadline: Instant) -> Result<Prepared, InvokeError> {
        let (compiled, pool) = match runner {
            Runner::Fresh(compiled) => (compiled, None),
            Runner::Reused(pool) => {
                let warm = pool.lock().pop();
                if let Some(warm) = warm {
                    return Ok(Prepared {
                        store: warm.store,
                        instance: warm.instance,
                        pool: Some((pool.clone(), warm.uses)),
                        sandbox: self.clone(),
                        deadline,
                    });
                }
                (&pool.compiled, Some((pool.clone(), 0)))
            }
        };
        let mut store = self.store(None, String::new());
        self.arm_deadline(&mut store, deadline);
        let instance = compiled.pre.instantiate_async(&mut store).await.map_err(|e| self.trap(e))?;
        Ok(Prepared { store, instance, pool, sandbox: self.clone(), deadline })
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

    fn store(&self, tx: Option<LocalTx>, label: String) -> Store<HostState> {
        let limits =
            StoreLimitsBuilder::new().memory_size(self.inner.limits.memory_bytes).trap_on_grow_failure(true).build();
        let state = HostState { wasi: WasiCtxBuilder::new().build(), table: ResourceTable::new(), limits, tx, label };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limits);
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

    /// Describes a trap in words a module author can act on.
    fn trap(&self, error: wasmtime::Error) -> InvokeError {
        let limits = &self.inner.limits;
        let message = match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => {
                format!("deadline exceeded: the guest ran longer than {:?}", limits.deadline)
            }
            _ => {
                let text = format!("{error:#}");
                if text.contains("forcing trap when growing memory") {
                    format!("memory limit exceeded: the guest tried to grow past {} MiB", limits.memory_bytes >> 20)
                } else {
                    format!("guest trapped: {text}")
                }
            }
        };
        InvokeError::Trap(message)
    }
}

fn engine_config(limits: &Limits, pooling: bool) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_core_instances(4096)
            .total_memories(512)
            .total_tables(4096)
            .total_stacks(256)
            .max_memory_size(limits.memory_bytes);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

fn wit_op(op: Op) -> wit::Op {
    match op {
        Op::Action => wit::Op::Action,
        Op::Compensate => wit::Op::Compensate,
        Op::Try => wit::Op::Try,
        Op::Confirm => wit::Op::Confirm,
        Op::Cancel => wit::Op::Cancel,
        Op::Commit => wit::Op::Commit,
        Op::Rollback => wit::Op::Rollback,
        Op::Call => wit::Op::Call,
    }
}

#[cfg(test)]
mod tests;
