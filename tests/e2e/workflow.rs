//! Durable workflows through the real server, on SQLite and on Postgres:
//! the transfer workflow succeeds, and a refusal in step 2 compensates step
//! 1; a crash right after step 1 committed (before its answer was journaled)
//! does not run it again, and the workflow finishes; a changed step order on
//! replay is reported as non-determinism, and an abort then compensates; a
//! sleep survives a SIGKILL and restart; signals sent before and after the
//! wait are both delivered, to the module version the workflow started with.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Backend, Extra, Server, example, op_statuses, scratch_dir};

on_both_backends!(
    the_transfer_workflow_succeeds_and_shows_its_journal,
    a_refusal_in_step_2_compensates_step_1,
    a_crash_after_step_1_committed_does_not_run_it_again,
    a_changed_step_order_on_replay_is_non_determinism,
    a_sleep_survives_a_restart,
    signals_before_and_after_the_wait_are_delivered_to_the_pinned_version,
);

/// A server with the Rust bank as `bank` (alice 100, bob 0), the transfer
/// workflow as `transfer` and the script workflow as `script`.
async fn bank_with(backend: Backend, extra: Extra) -> Server {
    let server = Server::start_with(backend, extra).await;
    server.ready().await;
    for (name, component) in
        [("bank", "transfer-rust"), ("transfer", "transfer-workflow-rust"), ("script", "workflow-script-rust")]
    {
        let (status, body) = server.upload(name, example(component)).await;
        assert_eq!(status, 201, "{name}: {body}");
    }
    let setup = json!({ "accounts": [{ "id": "alice", "balance": 100 }, { "id": "bob", "balance": 0 }] });
    assert_eq!(server.call("bank", "setup", setup).await, json!({ "accounts": 2 }));
    server
}

async fn bank(backend: Backend) -> Server {
    bank_with(backend, Extra::default()).await
}

async fn balances(server: &Server) -> (i64, i64) {
    (server.balance("bank", "alice").await, server.balance("bank", "bob").await)
}

fn workflow(gid: &str, module: &str, input: Value, wait: bool) -> Value {
    json!({ "gid": gid, "mode": "workflow", "workflow": { "module": module }, "input": input, "wait": wait })
}

/// The script workflow's input: `ops` over the bank.
fn script(ops: Value) -> Value {
    json!({ "module": "bank", "script": ops })
}

const OUT: &str = r#"{"call": "trans-out", "compensate": "trans-out-revert", "payload": {"from": "alice", "to": "bob", "amount": 30}}"#;
const IN: &str =
    r#"{"call": "trans-in", "compensate": "trans-in-revert", "payload": {"from": "alice", "to": "bob", "amount": 30}}"#;

fn op(text: &str) -> Value {
    serde_json::from_str(text).expect("valid op")
}

/// The journal's entries as `kind` (with the step's function for a call) and answer kind.
fn journal(tx: &Value) -> Vec<String> {
    tx["journal"]
        .as_array()
        .unwrap_or_else(|| panic!("no journal in {tx}"))
        .iter()
        .map(|e| {
            let call = &e["call"];
            let what = match call["kind"].as_str().unwrap() {
                "call" => format!("call {}", call["action"]["function"].as_str().unwrap()),
                kind => kind.to_owned(),
            };
            format!("{what} {}", e["answer"]["kind"].as_str().unwrap())
        })
        .collect()
}

/// Polls the transaction until `ready` holds, for at most `within`.
async fn until(server: &Server, gid: &str, within: Duration, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, tx) = server.get(&format!("/v1/transactions/{gid}")).await;
        if status == 200 && ready(&tx) {
            return tx;
        }
        assert!(Instant::now() < deadline, "{gid} never got there: {tx}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn the_transfer_workflow_succeeds_and_shows_its_journal(backend: Backend) {
    let server = bank(backend).await;
    let input = json!({ "from": "alice", "to": "bob", "amount": 30 });
    let (status, body) = server.post("/v1/transactions", &workflow("wf-ok", "transfer", input, true)).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    assert_eq!(body["output"], json!({ "moved": 30 }), "{body}");
    assert_eq!(balances(&server).await, (70, 30));
    let (_, tx) = server.get("/v1/transactions/wf-ok").await;
    assert_eq!(tx["mode"], "workflow");
    assert_eq!(tx["output"], json!({ "moved": 30 }));
    assert_eq!(journal(&tx), ["call trans-out ok", "call trans-in ok", "end ok"]);
    assert_eq!(tx["journal"][0]["call"]["branch_id"], "01");
    assert_eq!(tx["journal"][0]["call"]["payload"], json!({ "from": "alice", "to": "bob", "amount": 30 }));
    assert_eq!(
        op_statuses(&tx),
        [
            "00 run succeeded",
            "01 action succeeded",
            "01 compensate prepared",
            "02 action succeeded",
            "02 compensate prepared"
        ]
    );
    // Each step is pinned to the bank's version, the run to the workflow's.
    let (_, bank) = server.get("/v1/modules/bank").await;
    assert_eq!(tx["branches"][1]["digest"], bank["digest"], "{tx}");
    let (_, module) = server.get("/v1/modules/transfer").await;
    assert_eq!(module["world"], "workflow", "{module}");
    assert_eq!(tx["branches"][0]["digest"], module["digest"], "{tx}");
}

async fn a_refusal_in_step_2_compensates_step_1(backend: Backend) {
    let server = bank(backend).await;
    // Step 2 (trans-in) refuses: carol has no account.
    let input = json!({ "from": "alice", "to": "carol", "amount": 30 });
    let (status, body) = server.post("/v1/transactions", &workflow("wf-undo", "transfer", input, true)).await;
    assert_eq!((status, &body["status"]), (200, &json!("failed")), "{body}");
    let reason = body["rollback_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("trans-in") && reason.contains("carol"), "{body}");
    assert_eq!(balances(&server).await, (100, 0), "step 1 was compensated");
    let (_, tx) = server.get("/v1/transactions/wf-undo").await;
    assert_eq!(journal(&tx), ["call trans-out ok", "call trans-in failure", "end failure"]);
    assert_eq!(
        op_statuses(&tx),
        [
            "00 run failed",
            "01 action succeeded",
            "01 compensate succeeded",
            "02 action failed",
            // A step that did not complete is not compensated.
            "02 compensate prepared"
        ]
    );
    assert!(tx.get("output").is_none(), "{tx}");
}

async fn a_crash_after_step_1_committed_does_not_run_it_again(backend: Backend) {
    let marker = scratch_dir("wasmtx-crash").join("crashed");
    let env = vec![("WASMTX_TEST_CRASH_AFTER_STEP".to_owned(), format!("01:{}", marker.display()))];
    let mut server = bank_with(backend, Extra { env, ..Extra::default() }).await;
    let request = workflow("wf-crash", "script", script(json!([op(OUT), op(IN)])), false);
    let (status, body) = server.post("/v1/transactions", &request).await;
    assert_eq!(status, 202, "{body}");
    // The server aborts right after step 1 committed, before its answer was journaled.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !marker.exists() || server.http.get(format!("{}/healthz", server.base)).send().await.is_ok() {
        assert!(Instant::now() < deadline, "the server did not crash after step 1");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.restart().await;
    let tx = server.wait_final("wf-crash", Duration::from_secs(30)).await;
    assert_eq!(tx["status"], "succeeded", "{tx}");
    // alice was debited once: step 1 was answered from its kept output, not run again.
    assert_eq!(balances(&server).await, (70, 30));
    assert_eq!(journal(&tx), ["call trans-out ok", "call trans-in ok", "end ok"]);
    assert_eq!(tx["output"], json!([null, null]), "{tx}");
    let tx = crate::harness::history_settled(&server, "wf-crash").await;
    let step1: Vec<&Value> = tx["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "attempt" && e["branch_id"] == "01" && e["op"] == "action")
        .collect();
    // The first attempt's entry may be lost with the crash; the replay's is there.
    assert!(!step1.is_empty(), "{tx}");
}

async fn a_changed_step_order_on_replay_is_non_determinism(backend: Backend) {
    let server = bank(backend).await;
    let ops = json!([op(OUT), { "signal": "go" }, op(IN)]);
    let request = workflow("wf-nd", "script", script(ops), false);
    let (status, body) = server.post("/v1/transactions", &request).await;
    assert_eq!(status, 202, "{body}");
    let tx = until(&server, "wf-nd", Duration::from_secs(20), |tx| journal(tx) == ["call trans-out ok"]).await;
    assert_eq!(tx["status"], "submitted");
    // The code changes under the running workflow: step 1 is now trans-in.
    set_stored_input(&server, backend, "wf-nd", &script(json!([op(IN), { "signal": "go" }, op(OUT)]))).await;
    let (status, body) = server.post("/v1/transactions/wf-nd/signals/go", &json!(true)).await;
    assert_eq!(status, 202, "{body}");
    let tx = until(&server, "wf-nd", Duration::from_secs(20), |tx| {
        tx["last_error"].as_str().is_some_and(|e| e.contains("non-determinism"))
    })
    .await;
    let error = tx["last_error"].as_str().unwrap();
    assert!(error.contains("call bank.trans-in") && error.contains("call bank.trans-out"), "{error}");
    assert_eq!(tx["status"], "submitted", "not silently failed: {tx}");
    assert_eq!(journal(&tx), ["call trans-out ok"], "the journal is kept as it was");
    assert_eq!(balances(&server).await, (70, 0), "nothing ran past the divergence");
    // The operator decides: an abort compensates the completed step.
    let (status, body) = server.post("/v1/transactions/wf-nd/abort", &json!({ "reason": "code changed" })).await;
    assert_eq!(status, 200, "{body}");
    let tx = server.wait_final("wf-nd", Duration::from_secs(20)).await;
    assert_eq!(tx["status"], "failed", "{tx}");
    assert_eq!(balances(&server).await, (100, 0));
}

/// Replaces a workflow's stored input (its `00 run` payload) behind the
/// server's back, as a changed deployment would.
async fn set_stored_input(server: &Server, backend: Backend, gid: &str, input: &Value) {
    let bytes = serde_json::to_vec(input).unwrap();
    match backend {
        Backend::Sqlite => {
            let url = server.database_url("default");
            let path = url.trim_start_matches("sqlite://").split('?').next().unwrap().to_owned();
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            let n = conn
                .execute("UPDATE wasmtx_branch_ops SET payload = ?1 WHERE gid = ?2 AND branch_id = '00'", (bytes, gid))
                .unwrap();
            assert_eq!(n, 1);
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&server.store_url()).await.unwrap();
            let done = sqlx::query("UPDATE wasmtx.branch_ops SET payload = $1 WHERE gid = $2 AND branch_id = '00'")
                .bind(bytes)
                .bind(gid)
                .execute(&mut conn)
                .await
                .unwrap();
            assert_eq!(done.rows_affected(), 1);
        }
    }
}

async fn a_sleep_survives_a_restart(backend: Backend) {
    let mut server = bank(backend).await;
    let ops = json!([op(OUT), { "sleep": 3000 }, op(IN)]);
    let started = Instant::now();
    let (status, body) = server.post("/v1/transactions", &workflow("wf-sleep", "script", script(ops), false)).await;
    assert_eq!(status, 202, "{body}");
    let tx =
        until(&server, "wf-sleep", Duration::from_secs(20), |tx| journal(tx) == ["call trans-out ok", "sleep until"])
            .await;
    assert_eq!(tx["status"], "submitted");
    server.kill();
    assert!(started.elapsed() < Duration::from_secs(3), "killed while it slept");
    server.restart().await;
    let tx = server.wait_final("wf-sleep", Duration::from_secs(30)).await;
    assert_eq!(tx["status"], "succeeded", "{tx}");
    assert!(started.elapsed() >= Duration::from_secs(3), "it slept its time");
    let woke = crate::harness::parse_time(tx["journal"][2]["at"].as_str().unwrap());
    let deadline = crate::harness::parse_time(tx["journal"][1]["answer"]["deadline"].as_str().unwrap());
    assert!(woke >= deadline, "step 2 ran after the deadline: {tx}");
    assert_eq!(journal(&tx), ["call trans-out ok", "sleep until", "call trans-in ok", "end ok"]);
    assert_eq!(balances(&server).await, (70, 30));
}

async fn signals_before_and_after_the_wait_are_delivered_to_the_pinned_version(backend: Backend) {
    let server = bank(backend).await;
    let ops = json!([{ "sleep": 1500 }, { "signal": "approve" }, { "signal": "approve" }, op(OUT)]);
    let (status, body) = server.post("/v1/transactions", &workflow("wf-sig", "script", script(ops), false)).await;
    assert_eq!(status, 202, "{body}");
    // Sent while the workflow sleeps, before it waits for it: kept.
    let (status, body) = server.post("/v1/transactions/wf-sig/signals/approve", &json!({ "by": "ann" })).await;
    assert_eq!(status, 202, "{body}");
    // The first is taken; it waits for the second.
    let tx = until(&server, "wf-sig", Duration::from_secs(20), |tx| {
        journal(tx) == ["sleep until", "signal signal"] && tx["status"] == "submitted"
    })
    .await;
    assert_eq!(tx["journal"][1]["answer"]["payload"], json!({ "by": "ann" }));
    // A new version of the workflow module meanwhile: the running workflow keeps its own.
    let (status, body) = server.upload("script", example("transfer-workflow-rust")).await;
    assert_eq!(status, 201, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, tx) = server.get("/v1/transactions/wf-sig").await;
    assert_eq!(journal(&tx), ["sleep until", "signal signal"], "still waiting: {tx}");
    let (status, body) = server.post("/v1/transactions/wf-sig/signals/approve", &json!({ "by": "bo" })).await;
    assert_eq!(status, 202, "{body}");
    let tx = server.wait_final("wf-sig", Duration::from_secs(20)).await;
    assert_eq!(tx["status"], "succeeded", "{tx}");
    assert_eq!(tx["output"], json!([null, { "by": "ann" }, { "by": "bo" }, null]), "{tx}");
    assert_eq!(balances(&server).await, (70, 0));

    // Signals that cannot be kept are refused.
    let (status, body) = server.post("/v1/transactions/wf-sig/signals/approve", &json!(1)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("finished")), "{body}");
    let (status, body) = server.post("/v1/transactions/nobody/signals/approve", &json!(1)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("unknown_transaction")), "{body}");
    let saga = crate::harness::transfer("bank", Some("a-saga"), "alice", "bob", 1, true);
    let (status, body) = server.post("/v1/transactions", &saga).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.post("/v1/transactions/a-saga/signals/approve", &json!(1)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("not_a_workflow")), "{body}");
}

#[tokio::test]
async fn workflows_of_the_wrong_shape_are_refused() {
    let server = bank(Backend::Sqlite).await;
    let refused = async |request: Value, code: &str, says: &str| {
        let (status, body) = server.post("/v1/transactions", &request).await;
        assert_eq!((status, body["error"]["code"].as_str().unwrap_or_default()), (400, code), "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    };
    let input = json!({ "from": "alice", "to": "bob", "amount": 1 });
    refused(workflow("w1", "bank", input.clone(), true), "not_a_workflow", "branch module").await;
    refused(workflow("w2", "nope", input.clone(), true), "unknown_module", "nope").await;
    let mut with_branches = workflow("w3", "transfer", input.clone(), true);
    with_branches["branches"] = json!([{ "action": { "module": "bank", "function": "trans-in" } }]);
    refused(with_branches, "invalid_request", "no `branches`").await;
    let mut no_module = workflow("w4", "transfer", input.clone(), true);
    no_module.as_object_mut().unwrap().remove("workflow");
    refused(no_module, "invalid_request", "needs `workflow`").await;
    let mut concurrent = workflow("w5", "transfer", input.clone(), true);
    concurrent["options"] = json!({ "concurrent": true });
    refused(concurrent, "invalid_options", "concurrent").await;
    // A workflow module is not a branch.
    let mut saga = crate::harness::transfer("bank", Some("w6"), "alice", "bob", 1, true);
    saga["branches"][0]["action"]["module"] = json!("transfer");
    saga["branches"][0]["action"]["function"] = json!("run");
    refused(saga, "not_a_branch_module", "workflow module").await;
    // Only branch modules take reuse and outbound hosts.
    let r = server
        .http
        .put(format!("{}/v1/modules/wf2?reuse=4", server.base))
        .body(example("transfer-workflow-rust"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_for_workflows", "{body}");
    let (status, _) = server.get("/v1/modules/wf2").await;
    assert_eq!(status, 404, "nothing stored");
    let (_, list) = server.get("/v1/transactions").await;
    assert_eq!(list["transactions"], json!([]), "nothing stored: {list}");
}
