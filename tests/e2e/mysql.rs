//! MySQL/MariaDB business databases through the real server: a module bound
//! to a MariaDB database (`--database shop=mysql://…`) runs saga branches
//! behind the barrier next to one on the server's own database; a refused
//! branch elsewhere compensates the MariaDB debit; the same gid twice debits
//! once; guest SQL cannot end the host's transaction nor reach the barrier.

use serde_json::{Value, json};

use crate::harness::{Backend, Extra, Server, example, fresh_mariadb};

/// A server whose `shop` database is a fresh MariaDB database, with
/// `misbehave` bound to it (its `script` runs SQL) and the bank on the default.
async fn shop() -> Server {
    let url = fresh_mariadb().await;
    let extra = Extra { database_urls: vec![("shop".to_owned(), url)], ..Extra::default() };
    let server = Server::start_with(Backend::Sqlite, extra).await;
    server.ready().await;
    let r = server
        .http
        .put(format!("{}/v1/modules/shop?database=shop", server.base))
        .body(example("misbehave-rust"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    let setup = json!({ "accounts": [{ "id": "alice", "balance": 100 }, { "id": "bob", "balance": 0 }] });
    server.call("bank", "setup", setup).await;
    let out = script(
        &server,
        &[
            ("CREATE TABLE stock (sku VARCHAR(32) PRIMARY KEY, units BIGINT NOT NULL)", json!([])),
            ("INSERT INTO stock (sku, units) VALUES ($1, $2)", json!(["apple", 10])),
        ],
    )
    .await;
    assert!(out["results"].as_array().unwrap().iter().all(|r| r.get("error").is_none()), "{out}");
    server
}

/// Runs `steps` as a direct call of the shop's `script`.
async fn script(server: &Server, steps: &[(&str, Value)]) -> Value {
    let steps: Vec<Value> = steps.iter().map(|(sql, params)| json!({ "sql": sql, "params": params })).collect();
    let out = server.call("shop", "script", json!({ "steps": steps })).await;
    serde_json::from_str(out.as_str().unwrap_or_default()).unwrap_or(out)
}

async fn units(server: &Server) -> i64 {
    let steps =
        json!({ "steps": [{ "sql": "SELECT units FROM stock WHERE sku = $1", "params": ["apple"], "query": true }] });
    let out = server.call("shop", "script", steps).await;
    let out: Value = serde_json::from_str(out.as_str().unwrap_or_default()).unwrap_or(out);
    out["results"][0]["rows"][0][0].as_i64().unwrap_or_else(|| panic!("{out}"))
}

/// A saga: take `n` apples in MariaDB, then move money in the bank (to `to`).
fn order(gid: &str, n: i64, to: &str) -> Value {
    // One payload for both ops: the compensation runs the `undo` steps.
    let take = json!({
        "steps": [{ "sql": "UPDATE stock SET units = units - $1 WHERE sku = $2 AND units >= $1", "params": [n, "apple"] }],
        "undo": [{ "sql": "UPDATE stock SET units = units + $1 WHERE sku = $2", "params": [n, "apple"] }],
    });
    let pay = json!({ "from": "alice", "to": to, "amount": 10 });
    json!({
        "gid": gid, "mode": "saga", "wait": true,
        "branches": [
            { "action": { "module": "shop", "function": "script" }, "compensate": { "module": "shop", "function": "script" }, "payload": take },
            { "action": { "module": "bank", "function": "trans-in" }, "compensate": { "module": "bank", "function": "trans-in-revert" }, "payload": pay },
        ],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_spans_mariadb_and_the_default_database() {
    let server = shop().await;
    let (status, body) = server.post("/v1/transactions", &order("m-1", 3, "bob")).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    assert_eq!(units(&server).await, 7);
    // The same gid again: nothing runs twice.
    let (status, body) = server.post("/v1/transactions", &order("m-1", 3, "bob")).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    assert_eq!(units(&server).await, 7);
    // carol has no account: the bank refuses, the MariaDB debit is compensated.
    let (status, body) = server.post("/v1/transactions", &order("m-2", 3, "carol")).await;
    assert_eq!((status, &body["status"]), (200, &json!("failed")), "{body}");
    assert_eq!(units(&server).await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_sql_on_mariadb_cannot_end_the_transaction_nor_reach_the_barrier() {
    let server = shop().await;
    let attacks = [
        "COMMIT",
        "START TRANSACTION",
        "SET autocommit = 1",
        "CREATE TABLE sneaky (id INT)",
        "SELECT * FROM wasmtx_shop.barrier",
        "SELECT 1 INTO OUTFILE '/tmp/wasmtx-leak'",
        "LOAD DATA INFILE '/etc/passwd' INTO TABLE stock",
    ];
    for sql in attacks {
        let take = json!({ "steps": [
            { "sql": "UPDATE stock SET units = units - 1 WHERE sku = 'apple'" },
            { "sql": sql },
        ], "then": "fail" });
        let saga = json!({
            "mode": "saga", "wait": true,
            "branches": [{ "action": { "module": "shop", "function": "script" }, "compensate": { "module": "shop", "function": "echo" }, "payload": take }],
        });
        let (status, body) = server.post("/v1/transactions", &saga).await;
        assert_eq!((status, &body["status"]), (200, &json!("failed")), "{sql}: {body}");
        let reason = body["rollback_reason"].as_str().unwrap_or_default();
        assert!(reason.contains("\"error\""), "{sql} must be refused: {reason}");
        assert_eq!(units(&server).await, 10, "{sql}: the refused branch changed nothing");
    }
}
