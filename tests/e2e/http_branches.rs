//! HTTP branch targets (`{"url"}`) next to Wasm ones, called as DTM calls its
//! branches, against a small HTTP service run by the test: the query string
//! (`gid`, `trans_type`, `branch_id`, `op`), the JSON body and the branch
//! headers; answers read as DTM reads them (`409`/`FAILURE` refuses,
//! `425`/`ONGOING` is called again, anything but `200` backs off); URLs
//! checked against the operator's `http_allow`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Backend, Extra, Server, example, op_statuses};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

on_both_backends!(
    a_saga_mixing_wasm_and_http_branches_succeeds,
    an_http_refusal_compensates_both_kinds,
    ongoing_and_errors_are_called_again_until_the_branch_succeeds,
    a_tcc_confirms_its_http_branch_and_a_message_delivers_to_one,
);

/// One request the service received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: String,
    /// The client's address: one per TCP connection.
    pub peer: std::net::SocketAddr,
}

/// Scripted answers (status, body) by path.
type Script = HashMap<String, VecDeque<(u16, String)>>;

/// A business service: records every request, answers each path from its
/// script (status, body), then `200 {}`.
#[derive(Clone, Default)]
pub struct Service {
    pub received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
}

impl Service {
    pub async fn start() -> (Service, String) {
        let service = Service::default();
        let app = axum::Router::new().route("/{*path}", axum::routing::any(answer)).with_state(service.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        (service, base)
    }

    pub fn script(&self, path: &str, answers: &[(u16, &str)]) {
        let answers = answers.iter().map(|(s, b)| (*s, (*b).to_owned())).collect();
        self.script.lock().unwrap().insert(format!("/{path}"), answers);
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.received.lock().unwrap().iter().filter(|r| r.path == format!("/{path}")).cloned().collect()
    }
}

async fn answer(
    State(service): State<Service>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    method: Method,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let path = format!("/{path}");
    // Bodies that are not text (an OTLP export's protobuf) are kept lossily.
    let body = String::from_utf8_lossy(&body).into_owned();
    service.received.lock().unwrap().push(Received { method, path: path.clone(), query, headers, body, peer });
    let next = service.script.lock().unwrap().get_mut(&path).and_then(VecDeque::pop_front);
    let (status, body) = next.unwrap_or((200, "{}".to_owned()));
    (StatusCode::from_u16(status).expect("a status"), body)
}

/// A server allowed to call 127.0.0.1, with the bank (alice 100, bob 0).
pub async fn bank(backend: Backend) -> Server {
    let extra = Extra { config: "http_allow = [\"127.0.0.1\"]\n".to_owned(), ..Extra::default() };
    let server = Server::start_with(backend, extra).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    let setup = json!({ "accounts": [{ "id": "alice", "balance": 100 }, { "id": "bob", "balance": 0 }] });
    assert_eq!(server.call("bank", "setup", setup).await, json!({ "accounts": 2 }));
    server
}

/// A saga: `bank.trans-out` from alice, then the HTTP credit at `base`.
fn saga(gid: &str, base: &str, options: Value) -> Value {
    let payload = json!({ "from": "alice", "to": "bob", "amount": 30 });
    json!({
        "gid": gid, "mode": "saga", "wait": true, "options": options,
        "branches": [
            { "action": { "module": "bank", "function": "trans-out" },
              "compensate": { "module": "bank", "function": "trans-out-revert" }, "payload": payload },
            { "action": { "url": format!("{base}/credit") },
              "compensate": { "url": format!("{base}/credit-revert") }, "payload": payload },
        ],
    })
}

async fn a_saga_mixing_wasm_and_http_branches_succeeds(backend: Backend) {
    let server = bank(backend).await;
    let (service, base) = Service::start().await;
    let options = json!({ "branch_headers": [["x-tenant", "acme"]] });
    let (status, body) = server.post("/v1/transactions", &saga("h-ok", &base, options)).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    assert_eq!(server.balance("bank", "alice").await, 70);
    let calls = service.received("credit");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(call.method, Method::POST);
    let query: Vec<(&str, &str)> =
        ["gid", "trans_type", "branch_id", "op"].iter().map(|k| (*k, call.query[*k].as_str())).collect();
    assert_eq!(query, [("gid", "h-ok"), ("trans_type", "saga"), ("branch_id", "02"), ("op", "action")]);
    assert_eq!(call.headers["content-type"], "application/json");
    assert_eq!(call.headers["x-tenant"], "acme");
    assert_eq!(
        serde_json::from_str::<Value>(&call.body).unwrap(),
        json!({ "from": "alice", "to": "bob", "amount": 30 })
    );
    assert!(service.received("credit-revert").is_empty());
    let (_, tx) = server.get("/v1/transactions/h-ok").await;
    assert_eq!(tx["branches"][2]["url"], format!("{base}/credit"), "{tx}");
    assert!(tx["branches"][2].get("module").is_none(), "{tx}");
    assert_eq!(tx["branches"][0]["module"], "bank", "{tx}");
}

async fn an_http_refusal_compensates_both_kinds(backend: Backend) {
    let server = bank(backend).await;
    let (service, base) = Service::start().await;
    service.script("credit", &[(409, "no such account")]);
    let (status, body) = server.post("/v1/transactions", &saga("h-refused", &base, json!({}))).await;
    assert_eq!((status, &body["status"]), (200, &json!("failed")), "{body}");
    assert_eq!(body["rollback_reason"], "HTTP 409: no such account", "{body}");
    assert_eq!(server.balance("bank", "alice").await, 100, "the Wasm branch was compensated");
    // The refused branch is compensated too, as DTM does (its own barrier makes that a no-op).
    let reverts = service.received("credit-revert");
    assert_eq!(reverts.len(), 1, "{reverts:?}");
    assert_eq!(reverts[0].query["op"], "compensate");
    // A body saying FAILURE refuses as well, whatever the status.
    service.script("credit", &[(200, r#"{"dtm_result":"FAILURE"}"#)]);
    let (_, body) = server.post("/v1/transactions", &saga("h-failure-body", &base, json!({}))).await;
    assert_eq!(body["status"], "failed", "{body}");
}

async fn ongoing_and_errors_are_called_again_until_the_branch_succeeds(backend: Backend) {
    let server = bank(backend).await;
    let (service, base) = Service::start().await;
    service.script("credit", &[(425, ""), (503, "busy"), (200, r#"{"dtm_result":"ONGOING"}"#), (200, "{}")]);
    let mut request = saga("h-retry", &base, json!({ "retry_interval": 1 }));
    request["wait"] = json!(false);
    let (status, body) = server.post("/v1/transactions", &request).await;
    assert_eq!(status, 202, "{body}");
    let tx = server.wait_final("h-retry", Duration::from_secs(30)).await;
    assert_eq!(tx["status"], "succeeded", "{tx}");
    let calls = service.received("credit");
    assert_eq!(calls.len(), 4);
    let mut peers: Vec<_> = calls.iter().map(|c| c.peer).collect();
    peers.dedup();
    assert_eq!(peers.len(), 1, "one kept-alive connection served every call: {peers:?}");
    assert_eq!(op_statuses(&tx)[2], "02 action succeeded");
    assert_eq!(tx["branches"][2]["attempts"], 4, "{tx}");
    let tx = crate::harness::history_settled(&server, "h-retry").await;
    let outcomes: Vec<String> = tx["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "attempt" && e["branch_id"] == "02")
        .map(|e| e["outcome"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(outcomes, ["retry", "error", "retry", "succeeded"], "{tx}");
}

async fn a_tcc_confirms_its_http_branch_and_a_message_delivers_to_one(backend: Backend) {
    let server = bank(backend).await;
    let (service, base) = Service::start().await;
    let payload = json!({ "from": "alice", "to": "bob", "amount": 10 });
    let url = |p: &str| json!({ "url": format!("{base}/{p}") });
    let f = |name: &str| json!({ "module": "bank", "function": name });
    let tcc = json!({
        "gid": "h-tcc", "mode": "tcc", "wait": true,
        "branches": [
            { "try": f("try-out"), "confirm": f("confirm-out"), "cancel": f("cancel-out"), "payload": payload },
            { "try": url("try"), "confirm": url("confirm"), "cancel": url("cancel"), "payload": payload },
        ],
    });
    let (status, body) = server.post("/v1/transactions", &tcc).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    let ops: Vec<String> = ["try", "confirm", "cancel"]
        .iter()
        .flat_map(|p| service.received(p))
        .map(|r| format!("{} {}", r.query["trans_type"], r.query["op"]))
        .collect();
    assert_eq!(ops, ["tcc try", "tcc confirm"]);

    let message = json!({
        "gid": "h-msg", "mode": "msg", "wait": true,
        "local": { "module": "bank", "function": "trans-out", "payload": payload },
        "branches": [{ "action": url("deliver"), "payload": payload }],
    });
    let (status, body) = server.post("/v1/transactions", &message).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    let delivered = service.received("deliver");
    assert_eq!(delivered.len(), 1);
    assert_eq!((delivered[0].query["trans_type"].as_str(), delivered[0].query["op"].as_str()), ("msg", "action"));
    assert_eq!(server.balance("bank", "alice").await, 80);
}

#[tokio::test]
async fn urls_are_checked_against_the_allow_list_and_the_mode() {
    // No http_allow: no URL may be called.
    let server = Server::start(Backend::Sqlite).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    let refused = async |request: Value, code: &str, says: &str| {
        let (status, body) = server.post("/v1/transactions", &request).await;
        assert_eq!((status, body["error"]["code"].as_str().unwrap_or_default()), (400, code), "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    };
    refused(saga("u1", "http://127.0.0.1:9", json!({})), "url_not_allowed", "http_allow").await;
    refused(saga("u2", "https://127.0.0.1:9", json!({})), "url_not_allowed", "https").await;
    let mut both = saga("u3", "http://127.0.0.1:9", json!({}));
    both["branches"][1]["action"]["module"] = json!("bank");
    refused(both, "invalid_branch", "not both").await;
    let xa = json!({ "gid": "u4", "mode": "xa", "branches": [{ "action": { "url": "http://127.0.0.1:9/x" }, "payload": 1 }] });
    refused(xa, "invalid_branch", "XA").await;
    let (_, list) = server.get("/v1/transactions").await;
    assert_eq!(list["transactions"], json!([]), "nothing stored: {list}");
}

/// Submits a saga whose one branch is the HTTP service at `base`, with a
/// `traceparent` header; the `traceparent` the branch was called with.
async fn traced_call(server: &Server, service: &Service, base: &str, gid: &str) -> String {
    let request = json!({
        "gid": gid, "mode": "saga", "wait": true,
        "branches": [{ "action": { "url": format!("{base}/traced/{gid}") },
                       "compensate": { "url": format!("{base}/revert") }, "payload": { "n": 1 } }],
    });
    let url = format!("{}/v1/transactions", server.base);
    let response = server.http.post(url).header("traceparent", TRACEPARENT).json(&request).send().await.expect("POST");
    let (status, body) = (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null));
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    let calls = service.received(&format!("traced/{gid}"));
    assert_eq!(calls.len(), 1, "{calls:?}");
    calls[0].headers["traceparent"].to_str().expect("text").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_reaches_http_branches_as_given_or_as_their_op_s_span() {
    let (service, base) = Service::start().await;
    let allow = "http_allow = [\"127.0.0.1\"]\n";

    // Traces off: the traceparent goes to the branch as it was given.
    let plain = Server::start_with(Backend::Sqlite, Extra { config: allow.to_owned(), ..Extra::default() }).await;
    plain.ready().await;
    assert_eq!(traced_call(&plain, &service, &base, "tp-off").await, TRACEPARENT);

    // Traces on (the test service is the collector): the branch op's span, in the caller's trace.
    let config = format!("{allow}otlp_endpoint = \"{base}\"\n");
    let mut traced = Server::start_with(Backend::Sqlite, Extra { config, ..Extra::default() }).await;
    traced.ready().await;
    let handed = traced_call(&traced, &service, &base, "tp-on").await;
    let (caller_trace, caller_span) = (&TRACEPARENT[3..35], &TRACEPARENT[36..52]);
    let fields: Vec<&str> = handed.split('-').collect();
    assert_eq!(fields.len(), 4, "{handed}");
    assert_eq!((fields[0], fields[1], fields[3]), ("00", caller_trace, "01"), "{handed}");
    assert_ne!(fields[2], caller_span, "the branch op's own span: {handed}");

    // The spans are exported by the time the server has stopped.
    assert!(traced.terminate().success());
    let exports = service.received("v1/traces");
    assert!(!exports.is_empty(), "no OTLP export received");
    assert_eq!(exports[0].method, Method::POST);
    assert_eq!(exports[0].headers["content-type"], "application/x-protobuf");
    let exported: String = exports.iter().map(|e| e.body.as_str()).collect();
    for name in ["wasmtx", "transaction", "branch_op", "tp-on"] {
        assert!(exported.contains(name), "{name:?} not in the export");
    }
}
