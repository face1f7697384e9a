//! Concurrent sagas (`"options": {"concurrent": true, "orders": {...}}`)
//! through the real server, on SQLite and Postgres: actions run as soon as
//! their prerequisites have succeeded, a failure rolls back what ran in
//! reverse dependency order and runs nothing that waited for it, and orders
//! that cannot be followed are refused.

use serde_json::{Value, json};

use crate::harness::{Backend, Server, example};

async fn bank(backend: Backend) -> Server {
    let server = Server::start(backend).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    let accounts = json!({ "accounts": [
        { "id": "alice", "balance": 100 }, { "id": "bob", "balance": 100 }, { "id": "carol", "balance": 0 } ] });
    assert_eq!(server.call("bank", "setup", accounts).await, json!({ "accounts": 3 }));
    server
}

/// A saga branch of the bank module: `side` is `out` or `in`.
fn branch(side: &str, from: &str, to: &str, amount: i64) -> Value {
    json!({
        "action": { "module": "bank", "function": format!("trans-{side}") },
        "compensate": { "module": "bank", "function": format!("trans-{side}-revert") },
        "payload": { "from": from, "to": to, "amount": amount },
    })
}

fn saga(gid: &str, branches: Vec<Value>, orders: Value) -> Value {
    json!({ "gid": gid, "mode": "saga", "wait": true, "branches": branches,
            "options": { "concurrent": true, "orders": orders } })
}

async fn balances(server: &Server) -> Vec<i64> {
    let mut all = Vec::new();
    for id in ["alice", "bob", "carol"] {
        all.push(server.balance("bank", id).await);
    }
    all
}

/// `branch op status` of every op, and the history's attempts in order.
async fn ops_and_attempts(server: &Server, gid: &str) -> (Vec<String>, Vec<String>) {
    let tx = crate::harness::history_settled(server, gid).await;
    let ops = crate::harness::op_statuses(&tx);
    let attempts = tx["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "attempt")
        .map(|e| format!("{} {}", e["branch_id"].as_str().unwrap(), e["op"].as_str().unwrap()))
        .collect();
    (ops, attempts)
}

async fn a_branch_runs_once_its_prerequisites_have_succeeded(backend: Backend) {
    let server = bank(backend).await;
    // 03 credits carol what 01 and 02 debited; it waits for both.
    let body = saga(
        "c-1",
        vec![
            branch("out", "alice", "carol", 30),
            branch("out", "bob", "carol", 20),
            branch("in", "alice", "carol", 50),
        ],
        json!({ "2": [0, 1] }),
    );
    let (status, tx) = server.post("/v1/transactions", &body).await;
    assert_eq!((status, &tx["status"]), (200, &json!("succeeded")), "{tx}");
    assert_eq!(balances(&server).await, [70, 80, 50]);
    let (_, attempts) = ops_and_attempts(&server, "c-1").await;
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert_eq!(attempts[2], "03 action", "03 ran last: {attempts:?}");
}

async fn a_failed_first_branch_runs_nothing_that_waits_for_it(backend: Backend) {
    let server = bank(backend).await;
    let body =
        saga("c-2", vec![branch("out", "alice", "bob", 500), branch("in", "alice", "bob", 500)], json!({ "1": [0] }));
    let (status, tx) = server.post("/v1/transactions", &body).await;
    assert_eq!(status, 200, "{tx}");
    assert_eq!(tx["status"], "failed", "{tx}");
    assert_eq!(tx["rollback_reason"], "insufficient funds in alice");
    assert_eq!(balances(&server).await, [100, 100, 0]);
    let (ops, attempts) = ops_and_attempts(&server, "c-2").await;
    assert_eq!(ops, ["01 action failed", "01 compensate succeeded", "02 action prepared", "02 compensate prepared"]);
    assert_eq!(attempts, ["01 action", "01 compensate"]);
}

async fn a_failure_beside_a_chain_compensates_the_chain_in_reverse(backend: Backend) {
    let server = bank(backend).await;
    // 01 and 03 run at once; 02 waits for 01; 03 fails (no such account).
    let body = saga(
        "c-3",
        vec![branch("out", "alice", "bob", 30), branch("in", "alice", "bob", 30), branch("out", "dave", "bob", 10)],
        json!({ "1": [0] }),
    );
    let (status, tx) = server.post("/v1/transactions", &body).await;
    assert_eq!(status, 200, "{tx}");
    assert_eq!(tx["status"], "failed", "{tx}");
    assert_eq!(tx["rollback_reason"], "account dave does not exist");
    assert_eq!(balances(&server).await, [100, 100, 0], "alice's 30 came back");
    let (ops, attempts) = ops_and_attempts(&server, "c-3").await;
    assert_eq!(
        ops,
        [
            "01 action succeeded",
            "01 compensate succeeded",
            "02 action prepared",
            "02 compensate prepared",
            "03 action failed",
            "03 compensate succeeded"
        ]
    );
    assert_eq!(attempts[..2], ["01 action", "03 action"], "01 and 03 ran in one wave: {attempts:?}");
}

async fn orders_that_cannot_be_followed_are_refused(backend: Backend) {
    let server = bank(backend).await;
    let two = || vec![branch("out", "alice", "bob", 1), branch("in", "alice", "bob", 1)];
    let cases = [
        (
            saga("c-4", two(), json!({ "0": [1], "1": [0] })),
            "orders: branches wait for each other in a cycle (through branch 0)",
        ),
        (saga("c-5", two(), json!({ "2": [0] })), "orders: \"2\" is not a branch index (0 to 1)"),
        (
            json!({ "gid": "c-6", "mode": "saga", "branches": two(), "options": { "orders": { "1": [0] } } }),
            "orders apply to a concurrent saga: add \"concurrent\": true",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = server.post("/v1/transactions", &body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_options");
        assert_eq!(answer["error"]["message"], message);
    }
    assert_eq!(balances(&server).await, [100, 100, 0]);
}

on_both_backends!(
    a_branch_runs_once_its_prerequisites_have_succeeded,
    a_failed_first_branch_runs_nothing_that_waits_for_it,
    a_failure_beside_a_chain_compensates_the_chain_in_reverse,
    orders_that_cannot_be_followed_are_refused,
);
