//! MySQL/MariaDB business databases through the real server: a module bound
//! to a MariaDB database (`--database shop=mysql://…`) runs saga branches
//! behind the barrier next to one on the server's own database; a refused
//! branch elsewhere compensates the MariaDB debit; the same gid twice debits
//! once; guest SQL cannot end the host's transaction nor reach the barrier.
//! An XA transaction of two MariaDB branches prepares both (`XA PREPARE`),
//! then commits both, or a refused branch rolls the prepared one back,
//! leaving nothing prepared.

use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::harness::{Backend, Extra, Server, example, fresh_mariadb, op_statuses};

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

/// An XA of two MariaDB branches: take `n` apples, and record the sale as
/// the row `sold:<gid>` (another row: the first branch's stays locked while
/// it is prepared); the second refuses after its insert when `refuse`.
fn xa_order(gid: &str, n: i64, refuse: bool) -> Value {
    let take = json!({
        "steps": [{ "sql": "UPDATE stock SET units = units - $1 WHERE sku = $2 AND units >= $1", "params": [n, "apple"] }],
    });
    let sell = json!({
        "steps": [{ "sql": "INSERT INTO stock (sku, units) VALUES ($1, $2)", "params": [format!("sold:{gid}"), n] }],
        "then": if refuse { "fail" } else { "ok" },
    });
    json!({
        "gid": gid, "mode": "xa", "wait": true,
        "branches": [
            { "action": { "module": "shop", "function": "script" }, "payload": take },
            { "action": { "module": "shop", "function": "script" }, "payload": sell },
        ],
    })
}

/// The sale rows (`sold:<gid>`), as (sku, units).
async fn sales(server: &Server) -> Vec<(String, i64)> {
    let steps = json!({ "steps": [{
        "sql": "SELECT sku, units FROM stock WHERE sku LIKE 'sold:%' ORDER BY sku", "query": true,
    }] });
    let out = server.call("shop", "script", steps).await;
    let out: Value = serde_json::from_str(out.as_str().unwrap_or_default()).unwrap_or(out);
    let rows = out["results"][0]["rows"].as_array().unwrap_or_else(|| panic!("{out}"));
    rows.iter().map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_i64().unwrap())).collect()
}

/// The gtrids of the XA transactions still prepared in the shop's MariaDB
/// database (`XA RECOVER` lists the server's; the branch qualifier is the
/// database's name).
async fn prepared_in_shop(server: &Server) -> Vec<String> {
    let url = server.database_url("shop");
    let name = url.rsplit('/').next().unwrap().to_owned();
    let mut conn = sqlx::MySqlConnection::connect(&url).await.unwrap_or_else(|e| panic!("connect {url}: {e}"));
    let rows: Vec<(i64, i64, i64, Vec<u8>)> = sqlx::query_as("XA RECOVER").fetch_all(&mut conn).await.unwrap();
    let _ = conn.close().await;
    rows.into_iter()
        .filter_map(|(_, gtrid_length, _, data)| {
            let (gtrid, bqual) = data.split_at(usize::try_from(gtrid_length).unwrap());
            (bqual == name.as_bytes()).then(|| String::from_utf8_lossy(gtrid).into_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xa_on_mariadb_commits_every_prepared_branch() {
    let server = shop().await;
    let (status, body) = server.post("/v1/transactions", &xa_order("mx-ok", 3, false)).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    let (_, tx) = server.get("/v1/transactions/mx-ok").await;
    assert_eq!(
        op_statuses(&tx),
        [
            "01 action succeeded",
            "01 commit succeeded",
            "01 rollback prepared",
            "02 action succeeded",
            "02 commit succeeded",
            "02 rollback prepared"
        ]
    );
    assert_eq!(units(&server).await, 7);
    assert_eq!(sales(&server).await, [("sold:mx-ok".to_owned(), 3)]);
    assert_eq!(prepared_in_shop(&server).await, Vec::<String>::new(), "nothing left prepared");
    // The same gid again: nothing runs twice.
    let (status, body) = server.post("/v1/transactions", &xa_order("mx-ok", 3, false)).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    assert_eq!(units(&server).await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_branch_rolls_back_the_prepared_mariadb_branch() {
    let server = shop().await;
    // The first branch prepares (the apple row stays locked), the second refuses.
    let (status, body) = server.post("/v1/transactions", &xa_order("mx-no", 3, true)).await;
    assert_eq!((status, &body["status"]), (200, &json!("failed")), "{body}");
    let (_, tx) = server.get("/v1/transactions/mx-no").await;
    assert_eq!(
        op_statuses(&tx),
        [
            "01 action succeeded",
            "01 commit prepared",
            "01 rollback succeeded",
            "02 action failed",
            "02 commit prepared",
            "02 rollback succeeded"
        ]
    );
    assert_eq!(units(&server).await, 10);
    assert_eq!(sales(&server).await, [], "the refusing branch's insert rolled back");
    assert_eq!(prepared_in_shop(&server).await, Vec::<String>::new());
    // The rolled-back row was released: every apple moves now.
    let (status, body) = server.post("/v1/transactions", &xa_order("mx-again", 10, false)).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    assert_eq!(units(&server).await, 0);
}
