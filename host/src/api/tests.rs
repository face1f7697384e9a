//! The API through the router (`oneshot`), on a real SQLite store: auth, error
//! shape, and routing. End-to-end behaviour is covered by `tests/e2e`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::api::ApiLimits;
use crate::database::Databases;
use crate::engine::{EngineConfig, SystemClock};
use crate::model::DatabaseName;
use crate::sandbox::{Limits, Sandbox};
use crate::store::Store;
use crate::test_db::fresh_sqlite;

fn tokens(token: Option<&str>) -> Vec<crate::api::auth::TokenSpec> {
    token
        .map(|t| crate::api::auth::TokenSpec {
            name: "test".into(),
            token: t.into(),
            rights: crate::api::auth::Right::ALL.to_vec(),
        })
        .into_iter()
        .collect()
}

async fn app(token: Option<&str>) -> Router {
    let store = Store::connect(&fresh_sqlite()).await.expect("store");
    let urls = BTreeMap::from([(DatabaseName::default_name(), fresh_sqlite())]);
    let databases = Arc::new(Databases::connect(&urls, &Default::default()).await.expect("databases"));
    let sandbox = Sandbox::new(Limits::default()).expect("sandbox");
    let registry = Registry::new(
        store.clone(),
        sandbox.clone(),
        databases.kinds(),
        crate::registry::RegistryLimits { max_size: 1 << 20, ..Default::default() },
        Vec::new(),
    );
    let branches = WasmBranches::new(registry.clone(), sandbox, databases, &store);
    let engine = Engine::new(store, Arc::new(branches.clone()), Arc::new(SystemClock), EngineConfig::default());
    router(AppState {
        engine,
        registry,
        branches,
        http: crate::branch::HttpBranches::new(Vec::new().into(), Duration::from_secs(3)),
        auth: crate::api::Auth::new(&tokens(token)),
        limits: ApiLimits { max_request_bytes: 4096, ..ApiLimits::default() },
        wait_timeout: Duration::from_secs(5),
    })
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
async fn without_a_token_the_api_is_open_to_loopback_hosts_and_closed_to_web_pages() {
    let app = app(None).await;
    assert_eq!(send(&app, get("/v1/transactions")).await.0, StatusCode::OK);
    let local = Request::get("/v1/transactions").header("host", "localhost:36789").body(Body::empty()).unwrap();
    assert_eq!(send(&app, local).await.0, StatusCode::OK);
    let rebound = Request::get("/v1/transactions").header("host", "evil.example:36789").body(Body::empty()).unwrap();
    assert_eq!(send(&app, rebound).await.0, StatusCode::FORBIDDEN);
    let page = Request::put("/v1/modules/bank")
        .header("host", "127.0.0.1:36789")
        .header("origin", "https://evil.example")
        .body(Body::from("\0asm"))
        .unwrap();
    let (status, body) = send(&app, page).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
}

#[tokio::test]
async fn json_bodies_have_their_own_small_limit() {
    let app = app(None).await;
    let big = format!("{{\"mode\":\"saga\",\"branches\":[],\"gid\":\"{}\"}}", "x".repeat(5000));
    let (status, body) = send(&app, Request::post("/v1/transactions").body(Body::from(big)).unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "too_large");
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
