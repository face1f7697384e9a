//! The one error type of the HTTP API: a status, a stable machine-readable
//! code and a message for humans, rendered as
//! `{"error":{"code":"...","message":"..."}}`. Store and database details are
//! logged, not sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::engine::{ControlError, EngineError};
use crate::registry::UploadError;
use crate::sandbox::CompileError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
}

/// The body of every error answer (the OpenAPI document's `ErrorEnvelope`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable, e.g. `invalid_gid`, `unknown_module`.
    code: String,
    /// For humans: what was wrong and, where it helps, what to do.
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope { error: ErrorDetail { code: self.code.to_owned(), message: self.message } };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store is unavailable; try again",
                )
            }
            e => {
                tracing::error!(error = %e, "store error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error (see the server log)")
            }
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(e) => e.into(),
            EngineError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down")
            }
        }
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotFound(gid) => {
                ApiError::not_found("unknown_transaction", format!("no transaction with gid {:?}", gid.as_str()))
            }
            ControlError::Refused(m) => ApiError::new(StatusCode::CONFLICT, "not_applicable", m),
            ControlError::Busy(m) => ApiError::new(StatusCode::CONFLICT, "busy", m),
            ControlError::Engine(e) => e.into(),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        let code = match &e {
            UploadError::Store(_) | UploadError::TooLarge { .. } => "",
            UploadError::Empty => "empty_upload",
            UploadError::UnknownDatabase(_) => "unknown_database",
            UploadError::WrongStore { .. } => "wrong_store",
            UploadError::Compile(CompileError::NotWasm) => "not_wasm",
            UploadError::Compile(CompileError::CoreModule) => "core_module",
            UploadError::Compile(CompileError::Invalid(_)) => "invalid_component",
            UploadError::Compile(
                CompileError::WorldMismatch(_) | CompileError::WorkflowMismatch(_) | CompileError::BothStores,
            ) => "world_mismatch",
            UploadError::Inspect(_) | UploadError::NoFunctions | UploadError::BadFunctionName(_) => "world_mismatch",
            UploadError::CompileTimeout(_) => "compile_timeout",
            UploadError::InvalidReuse { .. } => "invalid_reuse",
            UploadError::InvalidHttpHost(_) => "invalid_http_host",
            UploadError::NotForWorkflows(_) => "not_for_workflows",
        };
        match e {
            UploadError::Store(s) => s.into(),
            e @ UploadError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            e => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string()),
        }
    }
}
