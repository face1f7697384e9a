//! TCC transactions through the real server, on SQLite and on Postgres: every
//! try then every confirm; a refused try cancels what was tried, last to first;
//! a cancel whose try never committed is a null cancel; branches of the wrong
//! shape are refused before anything runs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Backend, Server, example};

async fn bank(backend: Backend) -> Server {
    let server = Server::start(backend).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    let setup = json!({ "accounts": [{ "id": "alice", "balance": 100 }, { "id": "bob", "balance": 0 }] });
    assert_eq!(server.call("bank", "setup", setup).await, json!({ "accounts": 2 }));
    server
}

/// A TCC moving `amount` from `from` to `to`, waited for.
fn tcc(gid: &str, from: &str, to: &str, amount: i64) -> Value {
    let payload = json!({ "from": from, "to": to, "amount": amount });
    let branch = |side: &str| {
        json!({
            "try": { "module": "bank", "function": format!("try-{side}") },
            "confirm": { "module": "bank", "function": format!("confirm-{side}") },
            "cancel": { "module": "bank", "function": format!("cancel-{side}") },
            "payload": payload,
        })
    };
    json!({ "gid": gid, "mode": "tcc", "wait": true, "branches": [branch("out"), branch("in")] })
}

/// Every account as `id balance frozen`, read from the business database.
async fn accounts(server: &Server, backend: Backend) -> Vec<String> {
    let url = server.database_url("default");
    let sql = "SELECT id, balance, frozen FROM accounts ORDER BY id";
    let rows: Vec<(String, i64, i64)> = match backend {
        Backend::Sqlite => {
            let path = url.trim_start_matches("sqlite://").split('?').next().unwrap().to_owned();
            let conn =
                rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
            let mut stmt = conn.prepare(sql).unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
        }
    };
    rows.into_iter().map(|(id, balance, frozen)| format!("{id} {balance} {frozen}")).collect()
}

/// The transaction's ops as `branch op status attempts`.
async fn ops(server: &Server, gid: &str) -> Vec<String> {
    let (status, tx) = server.get(&format!("/v1/transactions/{gid}")).await;
    assert_eq!(status, 200, "{tx}");
    tx["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "{} {} {} {}",
                b["branch_id"].as_str().unwrap(),
                b["op"].as_str().unwrap(),
                b["status"].as_str().unwrap(),
                b["attempts"]
            )
        })
        .collect()
}

async fn confirms_every_branch(backend: Backend) {
    let server = bank(backend).await;
    let (status, body) = server.post("/v1/transactions", &tcc("tcc-1", "alice", "bob", 30)).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    assert_eq!(accounts(&server, backend).await, ["alice 70 0", "bob 30 0"]);
    assert_eq!(
        ops(&server, "tcc-1").await,
        [
            "01 try succeeded 1",
            "01 confirm succeeded 1",
            "01 cancel prepared 0",
            "02 try succeeded 1",
            "02 confirm succeeded 1",
            "02 cancel prepared 0",
        ]
    );
}

async fn a_refused_try_cancels_what_was_tried(backend: Backend) {
    let server = bank(backend).await;
    let (status, body) = server.post("/v1/transactions", &tcc("tcc-2", "alice", "carol", 30)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["rollback_reason"], "account carol does not exist");
    assert_eq!(accounts(&server, backend).await, ["alice 100 0", "bob 0 0"], "the frozen 30 went back");
    assert_eq!(
        ops(&server, "tcc-2").await,
        [
            "01 try succeeded 1",
            "01 confirm prepared 0",
            "01 cancel succeeded 1",
            "02 try failed 1",
            "02 confirm prepared 0",
            "02 cancel succeeded 1",
        ]
    );
}

async fn a_cancel_whose_try_never_committed_is_null(backend: Backend) {
    let server = bank(backend).await;
    // try-out is refused and rolled back: its cancel-out must not give back
    // money that was never frozen (it would find too little frozen and be
    // retried for ever, so the transaction would not end).
    let (status, body) = server.post("/v1/transactions", &tcc("tcc-3", "alice", "bob", 500)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["rollback_reason"], "insufficient funds in alice");
    assert_eq!(accounts(&server, backend).await, ["alice 100 0", "bob 0 0"]);
    assert_eq!(
        ops(&server, "tcc-3").await,
        [
            "01 try failed 1",
            "01 confirm prepared 0",
            "01 cancel succeeded 1",
            "02 try prepared 0",
            "02 confirm prepared 0",
            "02 cancel prepared 0",
        ],
        "branch 2 never tried, so it is neither confirmed nor cancelled"
    );

    // Later TCCs on the same accounts are unaffected.
    let (status, body) = server.post("/v1/transactions", &tcc("tcc-4", "alice", "bob", 100)).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    assert_eq!(accounts(&server, backend).await, ["alice 0 0", "bob 100 0"]);
}

async fn branches_of_the_wrong_shape_are_refused(backend: Backend) {
    let server = bank(backend).await;
    let mut missing_cancel = tcc("tcc-5", "alice", "bob", 1);
    missing_cancel["branches"][1].as_object_mut().unwrap().remove("cancel");
    let (status, body) = server.post("/v1/transactions", &missing_cancel).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_branch");
    assert_eq!(
        body["error"]["message"],
        "branch 02: a tcc branch needs `try`, `confirm`, `cancel`; `cancel` is missing"
    );

    let mut saga_with_try = crate::harness::transfer("bank", Some("tcc-6"), "alice", "bob", 1, true);
    saga_with_try["branches"][0]["try"] = json!({ "module": "bank", "function": "try-out" });
    let (status, body) = server.post("/v1/transactions", &saga_with_try).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["message"], "branch 01: a saga branch has `action`, `compensate`, not `try`");

    let mut unknown_function = tcc("tcc-7", "alice", "bob", 1);
    unknown_function["branches"][0]["confirm"]["function"] = json!("confirm-everything");
    let (status, body) = server.post("/v1/transactions", &unknown_function).await;
    assert_eq!(status, 400, "{body}");

    for gid in ["tcc-5", "tcc-6", "tcc-7"] {
        let (status, _) = server.get(&format!("/v1/transactions/{gid}")).await;
        assert_eq!(status, 404, "{gid}: a refused request stores nothing");
    }
    assert_eq!(accounts(&server, backend).await, ["alice 100 0", "bob 0 0"]);
}

async fn an_undecided_tcc_is_prepared_and_times_out_into_cancels(backend: Backend) {
    let server = bank(backend).await;
    server.upload("misbehave", example("misbehave-rust")).await;
    // Branch 1 freezes 30; branch 2's try asks to be retried until
    // timeout_to_fail rolls the whole TCC back.
    let mut body = tcc("tcc-8", "alice", "bob", 30);
    body["wait"] = json!(false);
    body["options"] = json!({ "timeout_to_fail": 2, "retry_interval": 1 });
    body["branches"][1] = json!({
        "try": { "module": "misbehave", "function": "retry" },
        "confirm": { "module": "misbehave", "function": "echo" },
        "cancel": { "module": "misbehave", "function": "echo" },
        "payload": "not yet",
    });
    let (status, created) = server.post("/v1/transactions", &body).await;
    assert_eq!(status, 202, "{created}");
    let (_, tx) = server.get("/v1/transactions/tcc-8").await;
    assert_eq!(tx["status"], "prepared", "undecided while tries run: {tx}");
    let tx = server.wait_final("tcc-8", Duration::from_secs(30)).await;
    assert_eq!(tx["status"], "failed", "{tx}");
    assert_eq!(tx["rollback_reason"], "timeout after 2 seconds");
    assert_eq!(accounts(&server, backend).await, ["alice 100 0", "bob 0 0"]);
}

on_both_backends!(
    confirms_every_branch,
    a_refused_try_cancels_what_was_tried,
    a_cancel_whose_try_never_committed_is_null,
    branches_of_the_wrong_shape_are_refused,
    an_undecided_tcc_is_prepared_and_times_out_into_cancels,
);
