//! Process wiring: opens the store and databases, builds the sandbox,
//! registry and engine, serves the API on a listener until `shutdown`
//! resolves, then drains the engine. Tests start it on port 0.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::branch::WasmBranches;
use crate::config::Config;
use crate::database::{DatabaseError, Databases};
use crate::engine::{Engine, EngineConfig, EngineError, SystemClock};
use crate::registry::Registry;
use crate::sandbox::Sandbox;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("coordinator store: {0}")]
    Store(#[from] StoreError),
    #[error("business database: {0}")]
    Database(#[from] DatabaseError),
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
}

/// Runs the server until `shutdown` resolves, then stops gracefully.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let data_dir = &config.data_dir;
    let dir_error = |source| StartError::DataDir { path: data_dir.display().to_string(), source };
    std::fs::create_dir_all(data_dir).map_err(dir_error)?;
    let node = node_id(data_dir).map_err(dir_error)?;

    let store = Store::connect(&config.store).await?;
    let databases = Arc::new(Databases::connect(&config.databases).await?);
    let sandbox = Sandbox::with_cache(config.limits.clone(), config.compile_cache.as_deref())
        .map_err(|e| StartError::Sandbox(format!("{e:#}")))?;
    let registry = Registry::new(store.clone(), sandbox.clone(), databases.names(), config.max_module_bytes);
    let branches = WasmBranches::new(registry.clone(), sandbox, databases.clone());
    let engine_config =
        EngineConfig { node: node.clone(), lease: config.lease, retry: config.retry, ..EngineConfig::default() };
    let engine = Engine::new(store.clone(), Arc::new(branches.clone()), Arc::new(SystemClock), engine_config);
    let due_loop = engine.start().await?;
    tracing::info!(%node, store = store.backend(), databases = ?databases.names(), "wasmtx started");

    let state = AppState {
        engine: engine.clone(),
        registry,
        branches,
        token: config.token.as_deref().map(Arc::from),
        wait_timeout: config.wait_timeout,
    };
    let served = axum::serve(listener, api::router(state)).with_graceful_shutdown(shutdown).await;
    tracing::info!("shutting down");
    engine.shutdown(Duration::from_secs(15)).await;
    due_loop.abort();
    store.close().await;
    databases.close().await;
    served.map_err(StartError::Serve)
}

/// This instance's stable identity, kept in the data directory so a restart
/// takes its own leases back at once instead of waiting for them to expire.
fn node_id(data_dir: &std::path::Path) -> std::io::Result<String> {
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
