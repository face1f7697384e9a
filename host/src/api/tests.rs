//! The API through the router (`oneshot`), on a real SQLite store: auth, error
//! shape, and routing. End-to-end behaviour is covered by `tests/e2e`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::database::Databases;
use crate::engine::{EngineConfig, SystemClock};
use crate::model::DatabaseName;
use crate::sandbox::{Limits, Sandbox};
use crate::store::Store;
use crate::test_db::fresh_sqlite;

async fn app(token: Option<&str>) -> Router {
    let store = Store::connect(&fresh_sqlite()).await.expect("store");
    let urls = BTreeMap::from([(DatabaseName::default_name(), fresh_sqlite())]);
    let databases = Arc::new(Databases::connect(&urls, &Default::default()).await.expect("databases"));
    let sandbox = Sandbox::new(Limits::default()).expect("sandbox");
    let registry = Registry::new(store.clone(), sandbox.clone(), databases.names(), 1 << 20);
    let branches = WasmBranches::new(registry.clone(), sandbox, databases);
    let engine = Engine::new(store, Arc::new(branches.clone()), Arc::new(SystemClock), EngineConfig::default());
    router(AppState { engine, registry, branches, token: token.map(Arc::from), wait_timeout: Duration::from_secs(5) })
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn with_a_token_configured_v1_needs_it_and_healthz_does_not() {
    let app = app(Some("s3cret")).await;
    let (status, body) = send(&app, get("/v1/modules")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");

    let wrong = Request::get("/v1/modules").header("authorization", "Bearer nope").body(Body::empty()).unwrap();
    assert_eq!(send(&app, wrong).await.0, StatusCode::UNAUTHORIZED);

    let right = Request::get("/v1/modules").header("authorization", "Bearer s3cret").body(Body::empty()).unwrap();
    let (status, body) = send(&app, right).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["modules"], serde_json::json!([]));

    assert_eq!(send(&app, get("/healthz")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn without_a_token_the_api_is_open() {
    let app = app(None).await;
    assert_eq!(send(&app, get("/v1/transactions")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn errors_are_json_with_a_code_and_a_message() {
    let app = app(None).await;
    let (status, body) = send(&app, get("/nowhere")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");

    let (status, body) = send(&app, get("/v1/transactions/unknown-gid")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "unknown_transaction");

    let (status, body) = send(&app, get("/v1/transactions/bad;gid")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_gid");

    let post = Request::post("/v1/transactions").body(Body::from("{\"mode\":")).unwrap();
    let (status, body) = send(&app, post).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().starts_with("invalid transaction request"), "{body}");

    let (status, body) = send(&app, get("/v1/transactions?limit=x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_query");
}

#[tokio::test]
async fn an_upload_over_the_size_limit_is_refused() {
    let app = app(None).await;
    let big = vec![0u8; (1 << 20) + 1];
    let put = Request::put("/v1/modules/big").body(Body::from(big)).unwrap();
    let (status, body) = send(&app, put).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "too_large", "{body}");
    assert_eq!(send(&app, get("/v1/modules/big")).await.0, StatusCode::NOT_FOUND);
}
