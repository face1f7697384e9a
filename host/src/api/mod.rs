//! The HTTP API: routes, JSON DTOs and [`ApiError`]. Handlers validate input,
//! call the registry, the engine or the branch runner, and render the result;
//! they hold no protocol logic and no SQL.
//!
//! Native routes live under `/v1`, behind [`auth`], described by the OpenAPI
//! document `GET /v1/openapi.json` ([`openapi`]); `GET /healthz` answers
//! without auth. Request bodies are bounded: module uploads by the module
//! size limit, every JSON body by [`ApiLimits::max_request_bytes`].

pub mod auth;
mod cluster;
mod dtm;
mod error;
mod metrics;
mod modules;
mod openapi;
mod time;
mod topics;
mod transactions;
mod ui;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post, put};

use crate::branch::WasmBranches;
use crate::engine::Engine;
use crate::registry::Registry;

pub use auth::Auth;
pub use error::ApiError;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub registry: Registry,
    pub branches: WasmBranches,
    /// HTTP branch targets: checked at submit against the operator's allow-list.
    pub http: crate::branch::HttpBranches,
    /// Tokens and their rights (none: loopback development).
    pub auth: Auth,
    pub limits: ApiLimits,
    /// How long `"wait": true` waits before answering 202.
    pub wait_timeout: Duration,
}

/// What one request may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiLimits {
    /// JSON request bodies (uploads have the module size limit instead).
    pub max_request_bytes: usize,
    /// One branch's payload (or a direct call's), as JSON.
    pub max_payload_bytes: usize,
    /// Branches per transaction.
    pub max_branches: usize,
    /// `branch_headers` entries, and the bytes of each name and value.
    pub max_headers: usize,
    pub max_header_bytes: usize,
    /// The longest `request_timeout` a transaction may ask for: the
    /// sandbox's invocation deadline.
    pub max_request_timeout: std::time::Duration,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_request_bytes: 1 << 20,
            max_payload_bytes: 64 << 10,
            max_branches: 256,
            max_headers: 32,
            max_header_bytes: 4096,
            max_request_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    use axum::extract::DefaultBodyLimit;
    let upload = Router::new()
        .route("/modules/{name}", get(modules::get).put(modules::upload))
        .layer(DefaultBodyLimit::max(state.registry.max_size()));
    let json = Router::new()
        .route("/modules", get(modules::list))
        .route("/modules/{name}/call/{function}", post(modules::call))
        .route("/transactions", get(transactions::list).post(transactions::submit))
        .route("/transactions/{gid}", get(transactions::get))
        .route("/transactions/{gid}/abort", post(transactions::abort))
        .route("/transactions/{gid}/force-stop", post(transactions::force_stop))
        .route("/transactions/{gid}/retry-now", post(transactions::retry_now))
        .route("/transactions/{gid}/signals/{name}", post(transactions::signal))
        .route("/cluster", get(cluster::get))
        .route("/topics", get(topics::list))
        .route("/topics/{name}", get(topics::get))
        .route("/topics/{name}/subscribers", put(topics::subscribe).delete(topics::unsubscribe))
        .route("/openapi.json", get(openapi::document))
        .layer(DefaultBodyLimit::max(state.limits.max_request_bytes));
    let v1 = upload.merge(json).route_layer(middleware::from_fn_with_state(state.clone(), auth::guard));
    let dtm = dtm::routes()
        .layer(DefaultBodyLimit::max(state.limits.max_request_bytes))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::guard));
    Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
        .route("/metrics", get(metrics::get).route_layer(middleware::from_fn_with_state(state.clone(), auth::guard)))
        .nest("/v1", v1)
        .nest("/api", dtm)
        // The admin UI's static files; its data comes through `/v1`.
        .merge(ui::routes())
        .fallback(|| async { ApiError::not_found("not_found", "no such route") })
        .with_state(state)
}

/// A request body that could not be read (too large, connection broken) as an [`ApiError`].
fn body_error(e: axum::extract::rejection::BytesRejection) -> ApiError {
    let status = e.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "invalid_body" };
    ApiError::new(status, code, e.body_text())
}

#[cfg(test)]
mod tests;
