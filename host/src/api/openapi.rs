//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of `/v1`, derived at
//! compile time (utoipa) from the handlers' `#[utoipa::path]` annotations and
//! the request and response types' `ToSchema` derives. Nothing here is
//! written by hand but the list of operations; a route missing from it fails
//! the router test that compares the two.

use std::sync::LazyLock;

use axum::Json;
use utoipa::OpenApi;

use super::error::{ErrorDetail, ErrorEnvelope};
use super::{cluster, modules, topics, transactions};
use crate::model::{Mode, Op, OpStatus, Options, Status};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wasmtx",
        description = "A distributed-transaction coordinator whose branches run as sandboxed WebAssembly \
            components: the native HTTP API. Errors are `{\"error\":{\"code\",\"message\"}}` with a 4xx for \
            bad input and a 5xx for server trouble. With tokens configured every request needs \
            `Authorization: Bearer <token>` carrying the route's right (`read`, `submit` or `admin`).",
    ),
    paths(
        modules::list,
        modules::get,
        modules::upload,
        modules::call,
        transactions::list,
        transactions::submit,
        transactions::get,
        transactions::abort,
        transactions::force_stop,
        transactions::retry_now,
        transactions::signal,
        cluster::get,
        topics::list,
        topics::get,
        topics::subscribe,
        topics::unsubscribe,
        document,
    ),
    components(schemas(ErrorEnvelope, ErrorDetail, Mode, Status, Op, OpStatus, Options)),
    tags(
        (name = "modules", description = "Upload, list, inspect, and call one function directly"),
        (name = "transactions", description = "Submit, read, list and control transactions"),
        (name = "topics", description = "Who subscribes to each message topic"),
        (name = "cluster", description = "The instances serving this store"),
        (name = "openapi", description = "This document"),
    ),
)]
pub struct ApiDoc;

/// The document, built once.
static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "get_openapi_document",
    tag = "openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of `/v1`", body = serde_json::Value),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
    ),
)]
pub async fn document() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(&*DOCUMENT)
}
