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
    app_with(&tokens(token)).await
}

async fn app_with(tokens: &[crate::api::auth::TokenSpec]) -> Router {
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
        auth: crate::api::Auth::new(tokens),
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

#[tokio::test]
async fn metrics_need_the_metrics_right_when_tokens_are_configured_and_loopback_otherwise() {
    use crate::api::auth::{Right, TokenSpec};
    let app = app(None).await;
    let response = app.clone().oneshot(get("/metrics")).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains("# TYPE wasmtx_transactions_in_flight gauge"), "{text}");
    let remote = Request::get("/metrics").header("host", "metrics.example:36789").body(Body::empty()).unwrap();
    assert_eq!(send(&app, remote).await.0, StatusCode::FORBIDDEN, "off beyond loopback without tokens");

    let app = app_with(&[
        TokenSpec { name: "reader".into(), token: "r".into(), rights: vec![Right::Read] },
        TokenSpec { name: "scraper".into(), token: "m".into(), rights: vec![Right::Metrics] },
    ])
    .await;
    let with = |token: &str| {
        Request::get("/metrics").header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap()
    };
    assert_eq!(send(&app, get("/metrics")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&app, with("r")).await.0, StatusCode::FORBIDDEN, "read is not enough");
    assert_eq!(app.clone().oneshot(with("m")).await.unwrap().status(), StatusCode::OK);
    // The metrics right reads nothing else.
    let modules = Request::get("/v1/modules").header("authorization", "Bearer m").body(Body::empty()).unwrap();
    assert_eq!(send(&app, modules).await.0, StatusCode::FORBIDDEN);
}

/// Every `.route("PATH", ...)` written in `mod.rs`, with the methods its
/// method router names (`get(…).put(…)`), in source order.
fn written_routes(source: &str) -> Vec<(String, Vec<&'static str>)> {
    let mut routes = Vec::new();
    for (at, _) in source.match_indices(".route(") {
        let args = &source[at + ".route(".len()..];
        let mut depth = 1;
        let end = args
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(args.len(), |(i, _)| i);
        let args = &args[..end];
        let Some(path) = args.split('"').nth(1) else { continue };
        let methods = ["get", "post", "put", "delete", "patch"]
            .into_iter()
            .filter(|m| {
                args.match_indices(&format!("{m}(")).any(|(i, _)| {
                    !args[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':' || c == '.')
                        || args[..i].ends_with(").")
                })
            })
            .collect();
        routes.push((path.to_owned(), methods));
    }
    routes
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_every_v1_route_of_the_router() {
    let app = app(None).await;
    let (status, document) = send(&app, get("/v1/openapi.json")).await;
    assert_eq!(status, StatusCode::OK, "{document}");
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1"), "openapi is {version:?}");
    let paths = document["paths"].as_object().expect("paths");
    let documented: std::collections::BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, operations)| {
            let operations = operations.as_object().expect("path item");
            operations.keys().map(move |method| (path.clone(), method.clone()))
        })
        .collect();

    // The routes written in `router` that the router serves under `/v1`
    // (`/healthz` and the like are written too, but nested nowhere there).
    let mut served = std::collections::BTreeSet::new();
    let written = written_routes(include_str!("mod.rs"));
    assert!(written.len() >= 10, "mod.rs has its routes: {written:?}");
    for (path, methods) in written {
        assert!(!methods.is_empty(), "route {path}: no method found in its method router");
        let path = format!("/v1{path}");
        let concrete = path.replace("{name}", "some-name").replace("{gid}", "some-gid").replace("{function}", "f");
        for method in methods {
            let request = Request::builder().method(method.to_uppercase().as_str()).uri(&concrete);
            let (status, body) = send(&app, request.body(Body::empty()).unwrap()).await;
            let fallback = status == StatusCode::NOT_FOUND && body["error"]["message"] == "no such route";
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {concrete}: {body}");
            if !fallback {
                served.insert((path.clone(), method.to_owned()));
            }
        }
    }
    assert!(served.contains(&("/v1/transactions".to_owned(), "post".to_owned())), "{served:?}");
    assert_eq!(documented, served, "the document's operations are the router's /v1 routes");

    let ids: std::collections::BTreeSet<&str> = paths
        .values()
        .flat_map(|operations| operations.as_object().expect("path item").values())
        .map(|operation| operation["operationId"].as_str().expect("an operationId"))
        .collect();
    assert_eq!(ids.len(), documented.len(), "operationIds are unique: {ids:?}");

    // Every error answer is the envelope.
    let envelope = serde_json::json!({ "$ref": "#/components/schemas/ErrorEnvelope" });
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().expect("path item") {
            let responses = operation["responses"].as_object().expect("responses");
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no success answer");
            for (status, response) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
                let schema = &response["content"]["application/json"]["schema"];
                assert_eq!(schema, &envelope, "{method} {path} {status}");
            }
        }
    }
}
