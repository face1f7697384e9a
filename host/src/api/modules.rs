//! `/v1/modules`: upload, list, inspect, and call one function directly.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorEnvelope;
use super::{ApiError, AppState, body_error, time};
use crate::branch::CallError;
use crate::model::{DatabaseName, ModuleName, ModuleRecord};
use crate::sandbox::InvokeError;
use axum::extract::rejection::BytesRejection;

/// One module version, as uploaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModuleView {
    pub name: String,
    pub digest: String,
    pub world: String,
    pub functions: Vec<String>,
    pub database: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_reuse: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http_hosts: Vec<String>,
    pub size: u64,
    /// RFC 3339.
    pub created_at: String,
}

/// `GET /v1/modules`: the current version of each module.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModuleList {
    pub modules: Vec<ModuleView>,
}

/// Raw bytes: a component's in an upload, a function's output that is not JSON.
/// Only its schema is used.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct RawBytes(Vec<u8>);

impl From<ModuleRecord> for ModuleView {
    fn from(m: ModuleRecord) -> Self {
        Self {
            name: m.name.to_string(),
            digest: m.digest.to_string(),
            world: m.world,
            functions: m.functions,
            database: m.database.to_string(),
            instance_reuse: m.instance_reuse,
            http_hosts: m.http_hosts,
            size: m.size,
            created_at: time::rfc3339(m.created_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The business database it runs on (default `default`).
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    database: Option<String>,
    /// Reuse each instance for up to this many invocations (opt-in).
    reuse: Option<u32>,
    /// Hosts the module's outbound HTTP may reach, comma-separated.
    http: Option<String>,
}

/// Uploads a component: compiled and asked for its functions before it
/// becomes the module's current version.
#[utoipa::path(
    put,
    path = "/v1/modules/{name}",
    operation_id = "upload_module",
    tag = "modules",
    params(("name" = String, Path, description = "The module's name", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$"), UploadParams),
    request_body(content = inline(RawBytes), content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Uploaded: the module's new current version", body = ModuleView),
        (status = 400, description = "`invalid_name`, `invalid_query`, `invalid_database`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 413, description = "`too_large`: over the module size limit", body = ErrorEnvelope),
        (status = 422, description = "Not a usable component: `empty_upload`, `not_wasm`, `core_module`, \
            `invalid_component`, `world_mismatch`, `unknown_database`, `wrong_store`, `invalid_reuse`, \
            `invalid_http_host`, `not_for_workflows`, `compile_timeout`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
)]
pub async fn upload(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: Result<Query<UploadParams>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModuleView>), ApiError> {
    let body = body.map_err(body_error)?;
    let name = ModuleName::parse(&name).map_err(|e| ApiError::bad_request("invalid_name", e.0))?;
    let Query(params) = params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let database = match params.database {
        Some(d) => DatabaseName::parse(&d).map_err(|e| ApiError::bad_request("invalid_database", e.0))?,
        None => DatabaseName::default_name(),
    };
    let now = state.engine.now();
    let http_hosts: Vec<String> = params
        .http
        .as_deref()
        .map(|list| list.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let record = state.registry.upload(name, database, params.reuse, http_hosts, body.to_vec(), now).await?;
    tracing::info!(module = %record.name, digest = %record.digest, functions = ?record.functions, "module uploaded");
    Ok((StatusCode::CREATED, Json(record.into())))
}

#[utoipa::path(
    get,
    path = "/v1/modules",
    operation_id = "list_modules",
    tag = "modules",
    responses(
        (status = 200, description = "The current version of each module", body = ModuleList),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<ModuleList>, ApiError> {
    let modules: Vec<ModuleView> = state.registry.list().await?.into_iter().map(Into::into).collect();
    Ok(Json(ModuleList { modules }))
}

#[utoipa::path(
    get,
    path = "/v1/modules/{name}",
    operation_id = "get_module",
    tag = "modules",
    params(("name" = String, Path, description = "The module's name", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    responses(
        (status = 200, description = "The module's current version", body = ModuleView),
        (status = 400, description = "`invalid_name`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 404, description = "`unknown_module`", body = ErrorEnvelope),
        (status = 500, description = "`internal`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
)]
pub async fn get(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<ModuleView>, ApiError> {
    Ok(Json(current(&state, &name).await?.into()))
}

/// Runs one function once, in its own local transaction, outside any global
/// transaction. Output that is JSON is returned as JSON.
#[utoipa::path(
    post,
    path = "/v1/modules/{name}/call/{function}",
    operation_id = "call_function",
    tag = "modules",
    params(
        ("name" = String, Path, description = "The module's name", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$"),
        ("function" = String, Path, description = "One of the functions it exports"),
    ),
    request_body(
        content = Option<serde_json::Value>,
        content_type = "application/json",
        description = "The payload (none: `null`)",
    ),
    responses(
        (status = 200, description = "What the function returned: JSON, or bytes when it is not JSON", content(
            (serde_json::Value = "application/json"),
            (inline(RawBytes) = "application/octet-stream"),
        )),
        (status = 400, description = "`invalid_name`, `invalid_json`, `invalid_body`", body = ErrorEnvelope),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 404, description = "`unknown_module`, `unknown_function`", body = ErrorEnvelope),
        (status = 413, description = "`too_large`, `payload_too_large`", body = ErrorEnvelope),
        (status = 422, description = "`branch_failure` (the guest refused), `guest_trap` (a trap or a limit)",
            body = ErrorEnvelope),
        (status = 500, description = "`internal`, `unknown_database`", body = ErrorEnvelope),
        (status = 503, description = "`branch_retry` (the guest asked to be retried), `unavailable`, \
            `store_unavailable`", body = ErrorEnvelope),
    ),
)]
pub async fn call(
    State(state): State<AppState>,
    Path((name, function)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let module = current(&state, &name).await?;
    if !module.functions.iter().any(|f| f == &function) {
        return Err(ApiError::not_found(
            "unknown_function",
            format!("module {name} has no function {function:?}; it exports: {}", module.functions.join(", ")),
        ));
    }
    if body.len() > state.limits.max_payload_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the payload is {} bytes; at most {} (max_payload_kb)", body.len(), state.limits.max_payload_bytes),
        ));
    }
    let payload = if body.is_empty() {
        b"null".to_vec()
    } else {
        serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("the payload is not JSON: {e}")))?;
        body.to_vec()
    };
    let output = state
        .branches
        .call(&module.name, &module.digest, &module.database, &function, payload)
        .await
        .map_err(call_error)?;
    if output.is_empty() {
        return Ok(Json(serde_json::Value::Null).into_response());
    }
    match serde_json::from_slice::<serde_json::Value>(&output) {
        Ok(v) => Ok(Json(v).into_response()),
        Err(_) => Ok(([(header::CONTENT_TYPE, "application/octet-stream")], output).into_response()),
    }
}

async fn current(state: &AppState, name: &str) -> Result<ModuleRecord, ApiError> {
    let parsed = ModuleName::parse(name).map_err(|e| ApiError::bad_request("invalid_name", e.0))?;
    state.registry.current(&parsed).await?.ok_or_else(|| {
        ApiError::not_found(
            "unknown_module",
            format!("no module named {name:?}; upload it with PUT /v1/modules/{name}"),
        )
    })
}

fn call_error(e: CallError) -> ApiError {
    match e {
        CallError::Guest(InvokeError::Failure(m)) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "branch_failure", m)
        }
        CallError::Guest(InvokeError::Retry(m)) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "branch_retry", m),
        // The guest's doing, not the server's: a client error, naming the cause.
        CallError::Guest(InvokeError::Trap(m)) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "guest_trap", m),
        e @ CallError::UnknownDatabase(_) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unknown_database", e.to_string())
        }
        e @ (CallError::Database(_) | CallError::Module(_)) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string())
        }
    }
}
