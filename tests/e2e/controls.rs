//! An operator's controls and views, through the real server: abort,
//! force-stop and retry-now on stuck transactions, each leaving its mark in
//! the transaction's history; refusals where a control does not apply; the
//! transaction list filtered by status, mode and module, paged with a cursor
//! across 1,000 transactions.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Backend, Server, example};

async fn server(backend: Backend) -> Server {
    let server = Server::start(backend).await;
    server.ready().await;
    let (status, body) = server.upload("misbehave", example("misbehave-rust")).await;
    assert_eq!(status, 201, "{body}");
    server
}

/// A saga whose first branch succeeds and whose second runs `function`.
fn saga(gid: &str, function: &str, payload: Value, options: Value) -> Value {
    json!({
        "gid": gid,
        "mode": "saga",
        "branches": [
            { "action": { "module": "misbehave", "function": "echo" },
              "compensate": { "module": "misbehave", "function": "echo" }, "payload": 1 },
            { "action": { "module": "misbehave", "function": function },
              "compensate": { "module": "misbehave", "function": "echo" }, "payload": payload },
        ],
        "options": options,
    })
}

/// Submits `body` and waits until branch 02's action has been attempted and
/// the transaction sleeps until its next retry.
async fn stuck(server: &Server, body: &Value) -> String {
    let (status, created) = server.post("/v1/transactions", body).await;
    assert_eq!(status, 202, "{created}");
    let gid = created["gid"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, tx) = server.get(&format!("/v1/transactions/{gid}")).await;
        if tx["next_retry_at"].is_string() {
            return gid;
        }
        assert!(Instant::now() < deadline, "never got stuck: {tx}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The history of `gid` as `kind outcome [branch op] [by actor][: detail]`
/// lines, once a line contains `needle` (history is written beside the
/// transaction, a moment later).
async fn history_until(server: &Server, gid: &str, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, tx) = server.get(&format!("/v1/transactions/{gid}")).await;
        let lines: Vec<String> = tx["history"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| {
                let mut line = format!("{} {}", e["kind"].as_str().unwrap(), e["outcome"].as_str().unwrap_or("-"));
                if let (Some(b), Some(op)) = (e["branch_id"].as_str(), e["op"].as_str()) {
                    line += &format!(" {b} {op}");
                }
                if let Some(actor) = e["actor"].as_str() {
                    line += &format!(" by {actor}");
                }
                if let Some(detail) = e["detail"].as_str() {
                    line += &format!(": {detail}");
                }
                line
            })
            .collect();
        if lines.iter().any(|l| l.contains(needle)) {
            return lines;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in the history of {gid}: {lines:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn abort_rolls_back_a_stuck_saga_and_says_who_asked(backend: Backend) {
    let server = server(backend).await;
    let gid = stuck(&server, &saga("stuck-1", "retry", json!("later"), json!({ "retry_interval": 3600 }))).await;
    let (status, tx) =
        server.post(&format!("/v1/transactions/{gid}/abort"), &json!({ "reason": "wrong amount" })).await;
    assert_eq!(status, 200, "{tx}");
    assert_eq!(tx["status"], "aborting", "{tx}");
    let tx = server.wait_final(&gid, Duration::from_secs(15)).await;
    assert_eq!(tx["status"], "failed", "{tx}");
    assert_eq!(tx["rollback_reason"], "aborted by local: wrong amount");
    let ops: Vec<String> = crate::harness::op_statuses(&tx);
    assert_eq!(
        ops,
        ["01 action succeeded", "01 compensate succeeded", "02 action prepared", "02 compensate succeeded"]
    );
    let lines = history_until(&server, &gid, "aborting -> failed").await;
    assert_eq!(
        lines,
        [
            "created submitted: mode saga",
            "attempt succeeded 01 action",
            "attempt retry 02 action: \"later\"",
            "abort aborting by local: wrong amount",
            "status aborting: submitted -> aborting: aborted by local: wrong amount",
            "attempt succeeded 02 compensate",
            "attempt succeeded 01 compensate",
            "status failed: aborting -> failed: aborted by local: wrong amount",
        ],
        "{lines:#?}"
    );
}

async fn force_stop_ends_a_stuck_saga_without_compensating(backend: Backend) {
    let server = server(backend).await;
    let gid = stuck(&server, &saga("stuck-2", "trap", json!(null), json!({ "retry_interval": 3600 }))).await;
    let (status, tx) =
        server.post(&format!("/v1/transactions/{gid}/force-stop"), &json!({ "reason": "poison data" })).await;
    assert_eq!(status, 200, "{tx}");
    assert_eq!(tx["status"], "failed", "{tx}");
    let tx = server.wait_final(&gid, Duration::from_secs(5)).await;
    assert_eq!(tx["rollback_reason"], "force-stopped by local: poison data (nothing was compensated)");
    assert_eq!(tx["branches"][1]["status"], "prepared", "01's compensation never ran: {tx}");
    let lines = history_until(&server, &gid, "force-stop").await;
    assert!(lines.contains(&"force-stop failed by local: poison data".to_owned()), "{lines:#?}");
    // Stored as final: a restart leaves it alone.
    let (status, again) = server.post(&format!("/v1/transactions/{gid}/retry-now"), &json!({})).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"]["code"], "not_applicable");
}

async fn retry_now_runs_the_next_attempt_at_once(backend: Backend) {
    let server = server(backend).await;
    // The second attempt succeeds, but only after an hour unless retried now.
    let gid = stuck(&server, &saga("stuck-3", "retry-times", json!(1), json!({ "retry_interval": 3600 }))).await;
    let (status, tx) = server.post(&format!("/v1/transactions/{gid}/retry-now"), &Value::Null).await;
    assert_eq!(status, 200, "{tx}");
    let tx = server.wait_final(&gid, Duration::from_secs(10)).await;
    assert_eq!(tx["status"], "succeeded", "{tx}");
    assert_eq!(tx["branches"][2]["attempts"], 2);
    let lines = history_until(&server, &gid, "submitted -> succeeded").await;
    assert!(lines.contains(&"retry-now submitted by local".to_owned()), "{lines:#?}");
}

async fn controls_are_refused_where_they_do_not_apply(backend: Backend) {
    let server = server(backend).await;
    let mut done = saga("done-1", "echo", json!(2), json!({}));
    done["wait"] = json!(true);
    let (status, tx) = server.post("/v1/transactions", &done).await;
    assert_eq!((status, &tx["status"]), (200, &json!("succeeded")), "{tx}");
    let (status, refused) = server.post("/v1/transactions/done-1/abort", &json!({})).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["message"], "transaction done-1 has already succeeded");

    // A TCC whose tries succeeded has decided to confirm: it only goes forward.
    let tcc = json!({
        "gid": "decided-1", "mode": "tcc", "options": { "retry_interval": 3600 },
        "branches": [{
            "try": { "module": "misbehave", "function": "echo" },
            "confirm": { "module": "misbehave", "function": "retry" },
            "cancel": { "module": "misbehave", "function": "echo" },
            "payload": "ledger closed",
        }],
    });
    stuck(&server, &tcc).await;
    let (status, refused) = server.post("/v1/transactions/decided-1/abort", &json!({})).await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("decided to confirm"), "{refused}");
    let (_, tx) = server.get("/v1/transactions/decided-1").await;
    assert_eq!(tx["status"], "submitted", "a refused control changes nothing: {tx}");

    let (status, missing) = server.post("/v1/transactions/no-such-gid/force-stop", &json!({})).await;
    assert_eq!(status, 404, "{missing}");
    let (status, bad) = server.post("/v1/transactions/decided-1/abort", &json!({ "why": "typo" })).await;
    assert_eq!(status, 400, "{bad}");
}

async fn the_list_filters_and_pages_across_a_thousand_transactions(backend: Backend) {
    let server = server(backend).await;
    let (status, body) = server.upload("other", example("misbehave-rust")).await;
    assert_eq!(status, 201, "{body}");
    // 1,000 transactions: every 4th fails; every 10th uses the module `other`;
    // every 25th is a TCC.
    let mut failed = Vec::new();
    let mut other = Vec::new();
    let mut tccs = Vec::new();
    for i in 0..1000 {
        let gid = format!("list-{i:04}");
        let module = if i % 10 == 0 { "other" } else { "misbehave" };
        let action = if i % 4 == 0 { "fail" } else { "echo" };
        let body = if i % 25 == 0 {
            json!({ "gid": gid, "mode": "tcc", "wait": true, "branches": [{
                "try": { "module": module, "function": action },
                "confirm": { "module": module, "function": "echo" },
                "cancel": { "module": module, "function": "echo" }, "payload": i }] })
        } else {
            json!({ "gid": gid, "mode": "saga", "wait": true, "branches": [{
                "action": { "module": module, "function": action },
                "compensate": { "module": module, "function": "echo" }, "payload": i }] })
        };
        let (status, tx) = server.post("/v1/transactions", &body).await;
        assert_eq!(status, 200, "{tx}");
        if i % 4 == 0 {
            failed.push(gid.clone());
        }
        if i % 10 == 0 {
            other.push(gid.clone());
        }
        if i % 25 == 0 {
            tccs.push(gid);
        }
    }
    for (query, mut expected) in [
        ("status=failed", failed),
        ("module=other", other),
        ("mode=tcc", tccs),
        (
            "status=succeeded&mode=tcc",
            (0..1000).filter(|i| i % 25 == 0 && i % 4 != 0).map(|i| format!("list-{i:04}")).collect(),
        ),
        ("", (0..1000).map(|i| format!("list-{i:04}")).collect()),
    ] {
        // Newest first, every one exactly once, in pages of 70.
        expected.reverse();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/transactions?limit=70&{query}");
            if let Some(c) = &cursor {
                path += &format!("&cursor={c}");
            }
            let (status, page) = server.get(&path).await;
            assert_eq!(status, 200, "{page}");
            let gids: Vec<String> = page["transactions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["gid"].as_str().unwrap().to_owned())
                .collect();
            assert!(gids.len() <= 70);
            seen.extend(gids);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{query}");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len(), "{query}: no transaction twice");
    }
    for (query, message) in [
        ("status=done", "status must be prepared, submitted, aborting, succeeded or failed, got \"done\""),
        ("limit=0", "limit must be between 1 and 1000, got 0"),
        ("cursor=list-9999", "cursor \"list-9999\" names no transaction"),
    ] {
        let (status, body) = server.get(&format!("/v1/transactions?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["message"], message, "{query}");
    }
}

on_both_backends!(
    abort_rolls_back_a_stuck_saga_and_says_who_asked,
    force_stop_ends_a_stuck_saga_without_compensating,
    retry_now_runs_the_next_attempt_at_once,
    controls_are_refused_where_they_do_not_apply,
    the_list_filters_and_pages_across_a_thousand_transactions,
);
