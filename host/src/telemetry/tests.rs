//! The spans of sagas submitted through the router and driven by the engine
//! with a real Wasm branch (`tests/guests/misbehave`, built by `cargo xtask
//! examples`), exported to an in-memory exporter; and the pieces that name
//! and link them.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::json;
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::api::{ApiLimits, AppState, Auth, router};
use crate::branch::{Branches, HttpBranches, WasmBranches};
use crate::database::Databases;
use crate::engine::{Engine, EngineConfig, RetryPolicy, SystemClock};
use crate::model::DatabaseName;
use crate::registry::{Registry, RegistryLimits};
use crate::sandbox::{Limits, Sandbox};
use crate::store::Store;
use crate::test_db::fresh_sqlite;

/// The process's exporter. The subscriber is the global one: SQLite runs a
/// guest (and so its database calls) on its writer thread.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    &EXPORTER
        .get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
            let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test")).with_filter(exported());
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .expect("no other global subscriber in this test process");
            (exporter, provider)
        })
        .0
}

fn guest(name: &str) -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or(root.join("target"));
    let path = target.join("examples").join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; build the test guests with `cargo xtask examples`", path.display()))
}

/// The API on a fresh SQLite store and `default` database, the engine
/// running (retries after 20 ms), `misbehave` uploaded.
async fn app() -> Router {
    exporter();
    let store = Store::connect(&fresh_sqlite()).await.expect("store");
    let urls = BTreeMap::from([(DatabaseName::default_name(), fresh_sqlite())]);
    let databases = Arc::new(Databases::connect(&urls, &Default::default()).await.expect("databases"));
    let sandbox = Sandbox::new(Limits::default()).expect("sandbox");
    let registry =
        Registry::new(store.clone(), sandbox.clone(), databases.kinds(), RegistryLimits::default(), Vec::new());
    let wasm = WasmBranches::new(registry.clone(), sandbox, databases, &store);
    let http = HttpBranches::new(Vec::new().into(), Duration::from_secs(3));
    let executor = Branches { wasm: wasm.clone(), http: http.clone() };
    let config = EngineConfig {
        poll: Duration::from_millis(20),
        retry: RetryPolicy { base_ms: 20, cap_ms: 20 },
        ..EngineConfig::default()
    };
    let engine = Engine::new(store, Arc::new(executor), Arc::new(SystemClock), config);
    engine.start().await.expect("engine");
    let app = router(AppState {
        engine,
        registry,
        branches: wasm,
        http,
        auth: Auth::new(&[]),
        limits: ApiLimits::default(),
        wait_timeout: Duration::from_secs(20),
    });
    let upload = Request::put("/v1/modules/misbehave").body(Body::from(guest("misbehave-rust"))).unwrap();
    let (status, body) = send(&app, upload).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

fn submit(request: &serde_json::Value, traceparent: Option<&str>) -> Request<Body> {
    let mut builder = Request::post("/v1/transactions").header("content-type", "application/json");
    if let Some(value) = traceparent {
        builder = builder.header("traceparent", value);
    }
    builder.body(Body::from(request.to_string())).unwrap()
}

/// The spans of trace `trace_id` once `expected` branch ops and the last
/// driver run have ended.
async fn trace(trace_id: TraceId, expected: usize) -> Vec<SpanData> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let spans: Vec<SpanData> = exporter()
            .get_finished_spans()
            .expect("spans")
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace_id)
            .collect();
        let ops = named(&spans, "branch_op").len();
        let finished = named(&spans, "transaction").iter().any(|s| attribute(s, "status").is_some_and(is_final));
        if ops >= expected && finished {
            return spans;
        }
        assert!(Instant::now() < until, "trace {trace_id}: {ops} branch ops after 10 s: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_final(status: String) -> bool {
    status == "succeeded" || status == "failed"
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned())
}

fn ids(spans: &[&SpanData]) -> HashSet<SpanId> {
    spans.iter().map(|s| s.span_context.span_id()).collect()
}

#[tokio::test]
async fn a_saga_is_one_trace_of_its_driver_runs_branch_ops_and_database_calls() {
    let app = app().await;
    let gid = "traced-saga-1";
    let script = json!({
        "steps": [
            {"sql": "CREATE TABLE IF NOT EXISTS traced_accounts (id INTEGER)"},
            {"sql": "  -- a comment\n insert into traced_accounts VALUES (1)"},
        ],
        "undo": [{"sql": "DELETE FROM traced_accounts WHERE id = 1"}],
        "then": "ok",
    });
    let misbehave = |function: &str| json!({"module": "misbehave", "function": function});
    let request = json!({
        "gid": gid,
        "mode": "saga",
        "wait": true,
        "branches": [
            {"action": misbehave("script"), "compensate": misbehave("script"), "payload": script},
            {"action": misbehave("fail"), "compensate": misbehave("echo"), "payload": "no funds"},
        ],
    });
    let (status, body) = send(&app, submit(&request, None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "failed", "{body}");

    // No traceparent: the trace id is the gid's.
    let root = gid_parent(&Gid::from_trusted(gid));
    let spans = trace(root.trace_id(), 4).await;
    let transactions = named(&spans, "transaction");
    assert!(!transactions.is_empty());
    for t in &transactions {
        assert_eq!(t.parent_span_id, root.span_id(), "every driver run hangs off the gid's root");
        assert_eq!(attribute(t, "gid").as_deref(), Some(gid));
        assert_eq!(attribute(t, "mode").as_deref(), Some("saga"));
    }

    let ops = named(&spans, "branch_op");
    let runs = ids(&transactions);
    for op in &ops {
        assert!(runs.contains(&op.parent_span_id), "a branch op outside its transaction: {op:#?}");
        assert_eq!(attribute(op, "module").as_deref(), Some("misbehave"));
        assert_eq!(attribute(op, "attempt").as_deref(), Some("1"));
    }
    let op = |branch: &str, op: &str| {
        let found: Vec<&&SpanData> = ops
            .iter()
            .filter(|s| {
                attribute(s, "branch_id").as_deref() == Some(branch) && attribute(s, "op").as_deref() == Some(op)
            })
            .collect();
        assert_eq!(found.len(), 1, "branch {branch} {op}: {ops:#?}");
        *found[0]
    };
    assert_eq!(attribute(op("01", "action"), "outcome").as_deref(), Some("succeeded"));
    assert_eq!(attribute(op("01", "action"), "function").as_deref(), Some("script"));
    assert_eq!(attribute(op("02", "action"), "outcome").as_deref(), Some("failed"));
    assert_eq!(attribute(op("01", "compensate"), "outcome").as_deref(), Some("succeeded"));

    // The guest's statements, each under the op that ran it, by first keyword only.
    let calls = named(&spans, "db_call");
    let under = |parent: &SpanData| {
        let mut found: Vec<String> = calls
            .iter()
            .filter(|c| c.parent_span_id == parent.span_context.span_id())
            .map(|c| {
                format!(
                    "{} {}",
                    attribute(c, "kind").unwrap_or_default(),
                    attribute(c, "operation").unwrap_or_default()
                )
            })
            .collect();
        found.sort();
        found
    };
    assert_eq!(under(op("01", "action")), ["execute CREATE", "execute INSERT"]);
    assert_eq!(under(op("01", "compensate")), ["execute DELETE"]);
    assert_eq!(calls.len(), 3, "{calls:#?}");
    for span in &spans {
        for kv in &span.attributes {
            assert!(!kv.value.as_str().contains("traced_accounts"), "SQL text in a span: {span:#?}");
        }
    }
}

#[tokio::test]
async fn a_given_traceparent_is_the_trace_and_branches_get_their_op_s_context() {
    let app = app().await;
    let (trace_id, parent_id) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let traceparent = format!("00-{trace_id}-{parent_id}-01");
    // `retry-times` asks to be retried once, saying the headers it was given.
    let request = json!({
        "gid": "traced-saga-2",
        "mode": "saga",
        "wait": true,
        "branches": [{
            "action": {"module": "misbehave", "function": "retry-times"},
            "compensate": {"module": "misbehave", "function": "echo"},
            "payload": 1,
        }],
        "options": {"branch_headers": [["x-tenant", "blue"]]},
    });
    let (status, body) = send(&app, submit(&request, Some(&traceparent))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");

    let spans = trace(TraceId::from_hex(trace_id).unwrap(), 2).await;
    let transactions = named(&spans, "transaction");
    for t in &transactions {
        assert_eq!(t.parent_span_id, SpanId::from_hex(parent_id).unwrap(), "the caller's span is the parent");
    }
    let ops = named(&spans, "branch_op");
    let first = ops.iter().find(|s| attribute(s, "attempt").as_deref() == Some("1")).expect("attempt 1");
    assert_eq!(attribute(first, "outcome").as_deref(), Some("retry"));
    assert!(ids(&transactions).contains(&first.parent_span_id));

    // The guest's first attempt was handed the op's span as its traceparent,
    // with the transaction's other headers.
    let (_, view) = send(&app, Request::get("/v1/transactions/traced-saga-2").body(Body::empty()).unwrap()).await;
    let view = view.to_string();
    let handed = format!("00-{trace_id}-{}-01", first.span_context.span_id());
    assert!(
        view.contains(&format!(r#"attempt 1 headers [(\"x-tenant\", \"blue\"), (\"traceparent\", \"{handed}\")]"#)),
        "{view}"
    );
}

#[test]
fn traceparents_follow_the_w3c_format() {
    let valid = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
    assert_eq!(valid.trace_id(), TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap());
    assert_eq!(valid.span_id(), SpanId::from_hex("00f067aa0ba902b7").unwrap());
    assert!(valid.is_sampled() && valid.is_remote());
    assert!(!parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap().is_sampled());
    // A later version may carry more fields.
    assert!(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra").is_some());
    for invalid in [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    ] {
        assert!(parse_traceparent(invalid).is_none(), "{invalid:?}");
    }
}

#[test]
fn a_gid_s_trace_id_is_the_start_of_its_sha_256() {
    let root = gid_parent(&Gid::from_trusted("abc"));
    // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223 b00361a396177a9c b410ff61f20015ad
    assert_eq!(root.trace_id(), TraceId::from_hex("ba7816bf8f01cfea414140de5dae2223").unwrap());
    assert_eq!(root.span_id(), SpanId::from_hex("b00361a396177a9c").unwrap());
    assert!(root.is_sampled());
}

#[test]
fn only_a_statement_s_first_keyword_is_kept() {
    assert_eq!(sql_keyword("select * from t where secret = 'x'"), "SELECT");
    assert_eq!(sql_keyword("  -- note\n /* block */ UPDATE t SET a = 1"), "UPDATE");
    assert_eq!(sql_keyword("WITH x AS (SELECT 1) SELECT * FROM x"), "WITH");
    assert_eq!(sql_keyword("'; DROP TABLE t"), "?");
    assert_eq!(sql_keyword("/* unterminated"), "?");
}

#[test]
fn headers_are_set_case_insensitively() {
    let mut headers = vec![("TraceParent".to_owned(), "old".to_owned()), ("x".to_owned(), "1".to_owned())];
    set_header(&mut headers, TRACEPARENT, "new".to_owned());
    assert_eq!(headers, [("TraceParent".to_owned(), "new".to_owned()), ("x".to_owned(), "1".to_owned())]);
    assert_eq!(header(&headers, "traceparent"), Some("new"));
    set_header(&mut headers, "y", "2".to_owned());
    assert_eq!(headers.len(), 3);
}
