//! `GET /metrics` through the real server: the Prometheus text parses, and
//! its counters move with a saga (started, finished by status, branch op
//! durations by module and function), with no gid in any label.

use std::collections::BTreeMap;

use serde_json::json;

use crate::harness::{Backend, Server, example, transfer};

/// Every sample of the exposition, by series (`name{labels}`); panics on a
/// line that is neither a comment nor `series value`.
async fn scrape(server: &Server) -> BTreeMap<String, f64> {
    let r = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let text = r.text().await.unwrap();
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number in {line:?}"));
        assert!(series.starts_with("wasmtx_"), "{line}");
        samples.insert(series.to_owned(), value);
    }
    samples
}

fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, series: &str) -> f64 {
    after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_a_saga_and_no_label_names_a_gid() {
    let server = Server::start(Backend::Sqlite).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    server
        .call(
            "bank",
            "setup",
            json!({ "accounts": [{ "id": "alice", "balance": 100 }, { "id": "bob", "balance": 0 }] }),
        )
        .await;
    let before = scrape(&server).await;
    let (status, body) =
        server.post("/v1/transactions", &transfer("bank", Some("metrics-1"), "alice", "bob", 10, true)).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    let (status, body) =
        server.post("/v1/transactions", &transfer("bank", Some("metrics-2"), "alice", "carol", 10, true)).await;
    assert_eq!((status, &body["status"]), (200, &json!("failed")), "{body}");
    let after = scrape(&server).await;

    assert_eq!(delta(&before, &after, r#"wasmtx_transactions_started_total{mode="saga"}"#), 2.0, "{after:#?}");
    assert_eq!(delta(&before, &after, r#"wasmtx_transactions_finished_total{mode="saga",status="succeeded"}"#), 1.0);
    assert_eq!(delta(&before, &after, r#"wasmtx_transactions_finished_total{mode="saga",status="failed"}"#), 1.0);
    let op = |function: &str, op: &str, outcome: &str| {
        format!(
            r#"wasmtx_branch_op_seconds_count{{module="bank",function="{function}",op="{op}",outcome="{outcome}"}}"#
        )
    };
    assert_eq!(delta(&before, &after, &op("trans-out", "action", "succeeded")), 2.0);
    assert_eq!(delta(&before, &after, &op("trans-in", "action", "succeeded")), 1.0);
    assert_eq!(delta(&before, &after, &op("trans-in", "action", "failed")), 1.0);
    assert_eq!(delta(&before, &after, &op("trans-out-revert", "compensate", "succeeded")), 1.0);
    // Cumulative buckets end in +Inf, which equals the count.
    let inf = r#"wasmtx_branch_op_seconds_bucket{module="bank",function="trans-out",op="action",outcome="succeeded",le="+Inf"}"#;
    assert_eq!(after[inf], after[&op("trans-out", "action", "succeeded")]);
    assert!(delta(&before, &after, r#"wasmtx_business_db_seconds_count{kind="sqlite"}"#) >= 4.0);
    assert!(after.contains_key("wasmtx_transactions_in_flight"));
    assert!(after["wasmtx_compiled_modules"] >= 1.0);
    assert!(after.keys().all(|series| !series.contains("metrics-1") && !series.contains("gid")), "{after:#?}");
}
