//! Process wiring: opens the store and databases, builds the sandbox,
//! registry and engine ([`start`]), then serves the API on a listener until
//! `shutdown` resolves and drains the engine ([`Started::serve`]). Tests start
//! it on port 0.
//!
//! Start-up either yields a server that can serve, or one [`StartError`] whose
//! message says what to fix; nothing is announced before that.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::branch::{Branches, HttpBranches, WasmBranches};
use crate::config::{Config, redact_url};
use crate::database::{DatabaseError, Databases};
use crate::engine::{Engine, EngineConfig, EngineError, Housekeeping, SystemClock};
use crate::registry::Registry;
use crate::sandbox::Sandbox;
use crate::store::{Store, StoreError};

/// Why the server could not start; each message names the thing to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path} is not usable: {source} (choose another with --data-dir or WASMTX_DATA_DIR)")]
    DataDir { path: String, source: std::io::Error },
    #[error("coordinator store {url}: {source}")]
    Store { url: String, source: StoreError },
    #[error("business {0}")]
    Database(#[from] DatabaseError),
    #[error("compile cache {path}: {message} (set compile_cache to another directory, or \"off\")")]
    CompileCache { path: String, message: String },
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
}

/// A server whose store, databases, sandbox and engine are up: it can serve.
pub struct Started {
    state: AppState,
    store: Store,
    databases: Arc<Databases>,
    due_loop: tokio::task::JoinHandle<()>,
    eviction: tokio::task::JoinHandle<()>,
    xa_sweep: tokio::task::JoinHandle<()>,
}

/// Opens everything the server needs, in the order a failure is easiest to
/// understand: data directory, store, business databases, sandbox, engine.
pub async fn start(config: Config) -> Result<Started, StartError> {
    let data_dir = &config.data_dir;
    let dir_error = |source| StartError::DataDir { path: data_dir.display().to_string(), source };
    std::fs::create_dir_all(data_dir).map_err(dir_error)?;
    let node = node_id(data_dir).map_err(dir_error)?;

    let store = Store::connect(&config.store)
        .await
        .map_err(|source| StartError::Store { url: redact_url(&config.store), source })?;
    let databases = Arc::new(Databases::connect(&config.databases, &config.db_limits).await?);
    let sandbox = match config.compile_cache.as_deref() {
        Some(dir) => Sandbox::with_cache(config.limits.clone(), Some(dir))
            .map_err(|e| StartError::CompileCache { path: dir.display().to_string(), message: format!("{e:#}") })?,
        None => Sandbox::new(config.limits.clone()).map_err(|e| StartError::Sandbox(format!("{e:#}")))?,
    };
    let registry = Registry::new(
        store.clone(),
        sandbox.clone(),
        databases.kinds(),
        config.registry.clone(),
        config.http_allow.clone(),
    );
    let eviction = registry.spawn_eviction();
    let branches = WasmBranches::new(registry.clone(), sandbox, databases.clone(), &store);
    let engine_config = EngineConfig {
        node: node.clone(),
        lease: config.lease,
        poll: config.poll,
        retry: config.retry,
        max_concurrent: config.max_transactions,
        housekeeping: Housekeeping {
            alerts: config.alerts.clone(),
            retention: config.retention,
            ..Housekeeping::default()
        },
        ..EngineConfig::default()
    };
    let http = HttpBranches::new(config.http_allow.clone().into(), config.limits.deadline);
    let executor = Branches { wasm: branches.clone(), http: http.clone() };
    let engine = Engine::new(store.clone(), Arc::new(executor), Arc::new(SystemClock), engine_config);
    let due_loop = engine.start().await?;
    let xa_sweep = spawn_xa_sweep(branches.clone(), store.clone(), config.xa_orphan_after);

    let databases_shown: Vec<String> =
        config.databases.iter().map(|(name, url)| format!("{name}={}", redact_url(url))).collect();
    tracing::info!(
        %node,
        data_dir = %config.data_dir.display(),
        store = %redact_url(&config.store),
        databases = ?databases_shown,
        compile_cache = %config.compile_cache.as_deref().map_or_else(|| "off".to_owned(), |p| p.display().to_string()),
        "wasmtx started"
    );

    let state = AppState {
        engine,
        registry,
        branches,
        http,
        auth: crate::api::Auth::new(&config.tokens),
        limits: config.api.clone(),
        wait_timeout: config.wait_timeout,
    };
    Ok(Started { state, store, databases, due_loop, eviction, xa_sweep })
}

impl Started {
    /// Serves the API on `listener` until `shutdown` resolves, then stops gracefully.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let Started { state, store, databases, due_loop, eviction, xa_sweep } = self;
        let engine = state.engine.clone();
        let served = axum::serve(listener, api::router(state)).with_graceful_shutdown(shutdown).await;
        tracing::info!("shutting down");
        engine.shutdown(Duration::from_secs(15)).await;
        due_loop.abort();
        eviction.abort();
        xa_sweep.abort();
        store.close().await;
        databases.close().await;
        served.map_err(StartError::Serve)
    }
}

/// Starts and serves until `shutdown` resolves: [`start`] then [`Started::serve`].
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    start(config).await?.serve(listener, shutdown).await
}

/// Every `older_than / 2` (at least every second), finishes XA branches left
/// prepared longer than `older_than` by transactions that will never finish
/// them ([`WasmBranches::sweep_prepared`]).
fn spawn_xa_sweep(branches: WasmBranches, store: Store, older_than: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval((older_than / 2).max(Duration::from_secs(1)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            branches.sweep_prepared(&store, older_than).await;
        }
    })
}

/// This instance's stable identity, kept in the data directory so a restart
/// takes its own leases back at once instead of waiting for them to expire.
fn node_id(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) | Err(_) => {
            let id = format!("node-{}", uuid::Uuid::new_v4().simple());
            std::fs::write(&path, &id)?;
            Ok(id)
        }
    }
}
