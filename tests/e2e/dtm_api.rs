//! DTM's HTTP API (`/api/dtmsvr/…`) spoken directly, as DTM's clients speak
//! it: the envelope and status names, sagas with HTTP and `wasm://` steps,
//! `wait_result`, two-phase messages (prepare, submit, abort, and the
//! back-check of a prepared message that times out), the codes DTM gives
//! for wrong transitions and malformed bodies, and transactions seen by
//! both APIs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Backend, Server};
use crate::http_branches::{Service, bank};

async fn dtm(server: &Server, route: &str, body: &Value) -> (u16, Value) {
    server.post(&format!("/api/dtmsvr/{route}"), body).await
}

fn transfer(amount: i64) -> String {
    json!({ "from": "alice", "to": "bob", "amount": amount }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_and_queries_speak_dtm() {
    let server = bank(Backend::Sqlite).await;
    let (service, base) = Service::start().await;
    let (status, body) = server.get("/api/ping").await;
    assert_eq!((status, &body), (200, &json!({ "msg": "pong" })));
    let (status, body) = server.get("/api/dtmsvr/newGid").await;
    assert_eq!((status, &body["dtm_result"]), (200, &json!("SUCCESS")), "{body}");
    assert!(body["gid"].as_str().is_some_and(|g| !g.is_empty()));
    let (_, body) = server.get("/api/dtmsvr/version").await;
    assert!(body["version"].as_str().unwrap_or_default().starts_with("wasmtx"), "{body}");

    // A saga with a Wasm step and an HTTP step, the way DTM's clients send it.
    let saga = json!({
        "gid": "d-saga", "trans_type": "saga", "wait_result": true,
        "steps": [
            { "action": "wasm://bank/trans-out", "compensate": "wasm://bank/trans-out-revert" },
            { "action": format!("{base}/credit"), "compensate": format!("{base}/credit-revert") },
        ],
        "payloads": [transfer(30), transfer(30)],
        "custom_data": null, "query_prepared": null, "protocol": null, "passthrough_headers": null,
    });
    let (status, body) = dtm(&server, "submit", &saga).await;
    assert_eq!((status, &body), (200, &json!({ "dtm_result": "SUCCESS" })));
    assert_eq!(server.balance("bank", "alice").await, 70);
    let credit = service.received("credit");
    assert_eq!((credit[0].query["trans_type"].as_str(), credit[0].query["op"].as_str()), ("saga", "action"));
    let (status, q) = server.get("/api/dtmsvr/query?gid=d-saga").await;
    assert_eq!(status, 200);
    assert_eq!(q["transaction"]["status"], "succeed", "{q}");
    assert_eq!(q["transaction"]["trans_type"], "saga");
    let urls: Vec<&str> = q["branches"].as_array().unwrap().iter().map(|b| b["url"].as_str().unwrap()).collect();
    // DTM's row order: each step's compensate row, then its action row.
    assert_eq!(urls[0], "wasm://bank/trans-out-revert");
    assert_eq!(urls[1], "wasm://bank/trans-out");
    assert_eq!(urls[3], format!("{base}/credit"));
    // The same transaction through the native API.
    let (_, native) = server.get("/v1/transactions/d-saga").await;
    assert_eq!(native["status"], "succeeded", "{native}");
    // And a native one through DTM's.
    let native = crate::harness::transfer("bank", Some("n-saga"), "alice", "bob", 1, true);
    let (status, body) = server.post("/v1/transactions", &native).await;
    assert_eq!(status, 200, "{body}");
    let (_, q) = server.get("/api/dtmsvr/query?gid=n-saga").await;
    assert_eq!(q["transaction"]["status"], "succeed", "{q}");
    assert_eq!(server.balance("bank", "alice").await, 69);
    // Submitting it again after it succeeded is DTM's 409.
    let (status, body) = dtm(&server, "submit", &saga).await;
    assert_eq!((status, &body["dtm_result"]), (409, &json!("FAILURE")), "{body}");

    // A refused step with wait_result: 409 with the reason; compensated.
    service.script("credit", &[(409, "no such account")]);
    let mut failing = saga.clone();
    failing["gid"] = json!("d-saga-2");
    let (status, body) = dtm(&server, "submit", &failing).await;
    assert_eq!((status, &body["dtm_result"]), (409, &json!("FAILURE")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("no such account"), "{body}");
    assert_eq!(server.balance("bank", "alice").await, 69);
    let (_, q) = server.get("/api/dtmsvr/query?gid=d-saga-2").await;
    assert_eq!(q["transaction"]["status"], "failed", "{q}");

    let (_, list) = server.get("/api/dtmsvr/all?transType=saga&status=succeed").await;
    let gids: Vec<&str> = list["transactions"].as_array().unwrap().iter().map(|t| t["gid"].as_str().unwrap()).collect();
    assert_eq!(gids, ["n-saga", "d-saga"], "newest first: {list}");
    assert_eq!(list["next_position"], "");

    // DTM's answers to bad calls.
    let (status, q) = server.get("/api/dtmsvr/query?gid=nobody").await;
    assert_eq!((status, &q), (200, &json!({ "transaction": null, "branches": [] })));
    let (status, body) = server.get("/api/dtmsvr/query?gid=").await;
    assert_eq!(status, 500, "{body}");
    assert!(body["message"].as_str().is_some(), "{body}");
    let r = server.http.post(format!("{}/api/dtmsvr/submit", server.base)).body("{not json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("invalid request body"), "{body}");
    let (status, _) = dtm(&server, "forceStop", &json!({ "gid": "nobody" })).await;
    assert_eq!(status, 500);
    let (status, body) = dtm(&server, "registerBranch", &json!({ "gid": "d-saga", "branch_id": "01" })).await;
    assert_eq!((status, &body["dtm_result"]), (409, &json!("FAILURE")), "{body}");
    let (status, body) = dtm(&server, "abort", &json!({ "gid": "d-saga", "trans_type": "saga" })).await;
    assert_eq!((status, &body["dtm_result"]), (409, &json!("FAILURE")), "a saga is not aborted by its client: {body}");
    let (status, body) = dtm(&server, "forceStop", &json!({ "gid": "d-saga" })).await;
    assert_eq!((status, &body["dtm_result"]), (409, &json!("FAILURE")), "a finished one: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_messages_follow_dtm() {
    let server = bank(Backend::Sqlite).await;
    let (service, base) = Service::start().await;
    let message = |gid: &str, timeout: i64| {
        json!({
            "gid": gid, "trans_type": "msg",
            "steps": [{ "action": format!("{base}/deliver") }],
            "payloads": [transfer(5)],
            "query_prepared": format!("{base}/query-prepared"),
            "timeout_to_fail": timeout,
        })
    };
    // prepare, then submit: delivered once.
    let (status, body) = dtm(&server, "prepare", &message("d-msg", 60)).await;
    assert_eq!((status, &body["dtm_result"]), (200, &json!("SUCCESS")), "{body}");
    let (status, _) = dtm(&server, "prepare", &message("d-msg", 60)).await;
    assert_eq!(status, 200, "preparing a prepared message again is fine");
    let (_, q) = server.get("/api/dtmsvr/query?gid=d-msg").await;
    assert_eq!(q["transaction"]["status"], "prepared", "{q}");
    let (status, body) = dtm(&server, "submit", &json!({ "gid": "d-msg", "trans_type": "msg" })).await;
    assert_eq!(status, 200, "{body}");
    let tx = server.wait_final("d-msg", Duration::from_secs(20)).await;
    assert_eq!(tx["status"], "succeeded", "{tx}");
    assert_eq!(service.received("deliver").len(), 1);
    assert!(service.received("query-prepared").is_empty(), "no back-check for a submitted message");
    let (status, body) = dtm(&server, "prepare", &message("d-msg", 60)).await;
    assert_eq!((status, &body["dtm_result"]), (409, &json!("FAILURE")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("cannot prepare"), "{body}");

    // prepare, then abort (the client's local transaction failed): nothing sent.
    dtm(&server, "prepare", &message("d-msg-abort", 60)).await;
    let (status, body) = dtm(&server, "abort", &json!({ "gid": "d-msg-abort", "trans_type": "msg" })).await;
    assert_eq!(status, 200, "{body}");
    let (_, q) = server.get("/api/dtmsvr/query?gid=d-msg-abort").await;
    assert_eq!(q["transaction"]["status"], "failed", "{q}");
    assert_eq!(service.received("deliver").len(), 1, "the aborted message was not delivered");

    // Prepared only: after its timeout the host back-checks query_prepared (GET, op msg).
    let (status, _) = dtm(&server, "prepare", &message("d-msg-check", 1)).await;
    assert_eq!(status, 200);
    let tx = server.wait_final("d-msg-check", Duration::from_secs(20)).await;
    assert_eq!(tx["status"], "succeeded", "{tx}");
    let checks = service.received("query-prepared");
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0].method, axum::http::Method::GET);
    let query: Vec<&str> = ["trans_type", "branch_id", "op"].iter().map(|k| checks[0].query[*k].as_str()).collect();
    assert_eq!(query, ["msg", "00", "msg"]);
    assert_eq!(service.received("deliver").len(), 2);

    // custom_data's delay holds the deliveries back.
    let mut delayed = message("d-msg-delay", 60);
    delayed["custom_data"] = json!(json!({ "delay": 2 }).to_string());
    let started = std::time::Instant::now();
    let (status, body) = dtm(&server, "submit", &delayed).await;
    assert_eq!(status, 200, "{body}");
    let tx = server.wait_final("d-msg-delay", Duration::from_secs(20)).await;
    assert_eq!(tx["status"], "succeeded", "{tx}");
    assert!(started.elapsed() >= Duration::from_secs(2), "delivered after the delay");
    assert_eq!(service.received("deliver").len(), 3);
    assert_eq!(tx["options"]["delay"], 2, "{tx}");

    // A back-check that says FAILURE fails the message.
    service.script("query-prepared", &[(409, "FAILURE")]);
    dtm(&server, "prepare", &message("d-msg-fail", 1)).await;
    let tx = server.wait_final("d-msg-fail", Duration::from_secs(20)).await;
    assert_eq!(tx["status"], "failed", "{tx}");
    assert_eq!(service.received("deliver").len(), 3, "nothing more was delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_driven_tcc_and_xa_follow_dtm() {
    let server = bank(Backend::Sqlite).await;
    let (service, base) = Service::start().await;
    let register = |gid: &str, branch: &str| {
        json!({
            "gid": gid, "trans_type": "tcc", "branch_id": branch, "data": transfer(1),
            "confirm": format!("{base}/confirm-{branch}"), "cancel": format!("{base}/cancel-{branch}"),
        })
    };
    // In the order the service received them.
    let ops = |service: &Service, paths: &[&str]| -> Vec<String> {
        let received = service.received.lock().unwrap();
        let wanted = |r: &&crate::http_branches::Received| paths.iter().any(|p| r.path == format!("/{p}"));
        received.iter().filter(wanted).map(|r| format!("{} {}", r.path, r.query["op"])).collect()
    };

    // prepare, register two branches (the client runs the tries), submit: both confirmed.
    let (status, body) = dtm(&server, "prepare", &json!({ "gid": "d-tcc", "trans_type": "tcc" })).await;
    assert_eq!(status, 200, "{body}");
    for branch in ["01", "02"] {
        let (status, body) = dtm(&server, "registerTccBranch", &register("d-tcc", branch)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) =
        dtm(&server, "submit", &json!({ "gid": "d-tcc", "trans_type": "tcc", "wait_result": true })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ops(&service, &["confirm-01", "confirm-02", "cancel-01", "cancel-02"]),
        ["/confirm-02 confirm", "/confirm-01 confirm"]
    );
    let (status, body) = dtm(&server, "registerBranch", &register("d-tcc", "03")).await;
    assert_eq!((status, &body["dtm_result"]), (409, &json!("FAILURE")), "not prepared any more: {body}");
    assert!(body["message"].as_str().unwrap().contains("status: prepared found"), "{body}");

    // prepare, register, abort: every registered branch cancelled, last first.
    dtm(&server, "prepare", &json!({ "gid": "d-tcc-abort", "trans_type": "tcc" })).await;
    for branch in ["11", "12"] {
        let (status, body) = dtm(&server, "registerBranch", &register("d-tcc-abort", branch)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = dtm(&server, "abort", &json!({ "gid": "d-tcc-abort", "trans_type": "tcc" })).await;
    assert_eq!(status, 200, "{body}");
    let tx = server.wait_final("d-tcc-abort", Duration::from_secs(20)).await;
    assert_eq!(tx["status"], "failed", "{tx}");
    let cancels: Vec<String> = service
        .received
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path.starts_with("/cancel-1"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(cancels, ["/cancel-12", "/cancel-11"]);
    assert!(service.received("confirm-11").is_empty());

    // Never submitted: rolled back after its timeout.
    dtm(&server, "prepare", &json!({ "gid": "d-tcc-late", "trans_type": "tcc", "timeout_to_fail": 1 })).await;
    dtm(&server, "registerBranch", &register("d-tcc-late", "21")).await;
    let tx = server.wait_final("d-tcc-late", Duration::from_secs(20)).await;
    assert_eq!(tx["status"], "failed", "{tx}");
    assert!(tx["rollback_reason"].as_str().unwrap().contains("timeout"), "{tx}");
    assert_eq!(service.received("cancel-21").len(), 1);

    // XA: the client prepares in its service and registers the URL; the host commits it.
    dtm(&server, "prepare", &json!({ "gid": "d-xa", "trans_type": "xa" })).await;
    let xa = json!({ "gid": "d-xa", "trans_type": "xa", "branch_id": "01", "url": format!("{base}/xa") });
    let (status, body) = dtm(&server, "registerXaBranch", &xa).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        dtm(&server, "submit", &json!({ "gid": "d-xa", "trans_type": "xa", "wait_result": true })).await;
    assert_eq!(status, 200, "{body}");
    let calls = service.received("xa");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!((calls[0].method.as_str(), calls[0].query["op"].as_str()), ("POST", "commit"));
    let (_, q) = server.get("/api/dtmsvr/query?gid=d-xa").await;
    assert_eq!(q["transaction"]["status"], "succeed", "{q}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_of_urls_and_functions_fan_a_message_out() {
    let server = bank(Backend::Sqlite).await;
    let (service, base) = Service::start().await;
    let subscribe = |topic: &str, url: &str| format!("/api/dtmsvr/subscribe?topic={topic}&url={url}&remark=test");
    let (status, body) = server.get(&subscribe("credit", &format!("{base}/audit"))).await;
    assert_eq!(status, 200, "{body}");
    // Subscribers are listed by subscription time (then by module and
    // function): a later millisecond makes the order certain.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, body) = server.get(&subscribe("credit", "wasm://bank/trans-in")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server.get(&subscribe("credit", &format!("{base}/audit"))).await;
    assert_eq!(status, 500, "a repeated subscription is DTM's 500");
    // The native API lists both kinds.
    let (_, topic) = server.get("/v1/topics/credit").await;
    assert_eq!(
        topic["subscribers"],
        json!([{ "url": format!("{base}/audit") }, { "module": "bank", "function": "trans-in" }]),
        "{topic}"
    );
    let message = json!({
        "gid": "d-topic", "trans_type": "msg", "wait_result": true,
        "steps": [{ "action": "topic://credit" }],
        "payloads": [transfer(7)],
    });
    let (status, body) = dtm(&server, "submit", &message).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(service.received("audit").len(), 1);
    assert_eq!(server.balance("bank", "bob").await, 7, "the Wasm subscriber got it too");
    let (_, q) = server.get("/api/dtmsvr/query?gid=d-topic").await;
    assert_eq!(q["branches"].as_array().unwrap().len(), 2, "one row per subscriber: {q}");

    let (status, _) = server.get(&format!("/api/dtmsvr/unsubscribe?topic=credit&url={base}/audit")).await;
    assert_eq!(status, 200);
    let (status, _) = server.get(&format!("/api/dtmsvr/unsubscribe?topic=credit&url={base}/audit")).await;
    assert_eq!(status, 500, "not subscribed any more");
    let r = server.http.delete(format!("{}/api/dtmsvr/topic/credit", server.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = server.http.delete(format!("{}/api/dtmsvr/topic/credit", server.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 500, "an unknown topic is DTM's 500");
    let mut again = message.clone();
    again["gid"] = json!("d-topic-2");
    let (status, body) = dtm(&server, "submit", &again).await;
    assert_eq!(status, 500, "{body}");
    assert!(body["message"].as_str().unwrap().contains("not found"), "{body}");
}
