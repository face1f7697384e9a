//! The HTTP API: routes, JSON DTOs and [`ApiError`]. Handlers validate input,
//! call the registry, the engine or the branch runner, and render the result;
//! they hold no protocol logic and no SQL.
//!
//! Native routes live under `/v1`; `GET /healthz` answers without auth.

mod error;
mod modules;
mod time;
mod transactions;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::branch::WasmBranches;
use crate::engine::Engine;
use crate::registry::Registry;

pub use error::ApiError;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub registry: Registry,
    pub branches: WasmBranches,
    /// Required as `Authorization: Bearer <token>` when set.
    pub token: Option<Arc<str>>,
    /// How long `"wait": true` waits before answering 202.
    pub wait_timeout: Duration,
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/modules", get(modules::list))
        .route("/modules/{name}", get(modules::get).put(modules::upload))
        .route("/modules/{name}/call/{function}", post(modules::call))
        .route("/transactions", get(transactions::list).post(transactions::submit))
        .route("/transactions/{gid}", get(transactions::get))
        .layer(axum::extract::DefaultBodyLimit::max(state.registry.max_size()))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
        .nest("/v1", v1)
        .fallback(|| async { ApiError::not_found("not_found", "no such route") })
        .with_state(state)
}

/// A request body that could not be read (too large, connection broken) as an [`ApiError`].
fn body_error(e: axum::extract::rejection::BytesRejection) -> ApiError {
    let status = e.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "invalid_body" };
    ApiError::new(status, code, e.body_text())
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(token) = state.token.as_deref() else { return next.run(request).await };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented == Some(token) {
        next.run(request).await
    } else {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong bearer token").into_response()
    }
}

#[cfg(test)]
mod tests;
