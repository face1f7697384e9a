//! Redis business databases through the real server: the Redis transfer
//! module (world `kv-branch`) bound to a Redis database runs saga and TCC
//! branches behind the barrier kept in Redis; a transfer whose debit lives
//! in MariaDB and whose credit lives in Redis is one saga, and rolls back
//! when the credit is refused; a saga over Postgres, MariaDB and Redis
//! commits and compensates across all three; an upload whose store import
//! does not fit its database is refused.

use serde_json::{Value, json};

use crate::harness::{Backend, Extra, Server, example, fresh_mariadb, fresh_redis, op_statuses};

async fn upload_to(server: &Server, name: &str, component: &str, database: &str) -> (u16, Value) {
    let r = server
        .http
        .put(format!("{}/v1/modules/{name}?database={database}", server.base))
        .body(example(component))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A server (store on `backend`) with `shop` on a fresh MariaDB database and
/// `wallet` on Redis; the SQL transfer module is `shop` (on MariaDB) and
/// `bank` (on the default database), the Redis one `wallet`.
async fn three_stores(backend: Backend) -> Server {
    let extra = Extra {
        database_urls: vec![("shop".to_owned(), fresh_mariadb().await), ("wallet".to_owned(), fresh_redis())],
        ..Extra::default()
    };
    let server = Server::start_with(backend, extra).await;
    server.ready().await;
    for (name, component, database) in [
        ("shop", "transfer-rust", "shop"),
        ("wallet", "transfer-redis-rust", "wallet"),
        ("bank", "transfer-rust", "default"),
    ] {
        let (status, body) = upload_to(&server, name, component, database).await;
        assert_eq!(status, 201, "{name}: {body}");
    }
    let accounts = json!({ "accounts": [{ "id": "alice", "balance": 100 }, { "id": "bob", "balance": 0 }] });
    for module in ["shop", "wallet", "bank"] {
        server.call(module, "setup", accounts.clone()).await;
    }
    server
}

fn leg(module: &str, out: bool, from: &str, to: &str, amount: i64) -> Value {
    let (action, compensate) = if out { ("trans-out", "trans-out-revert") } else { ("trans-in", "trans-in-revert") };
    json!({
        "action": { "module": module, "function": action },
        "compensate": { "module": module, "function": compensate },
        "payload": { "from": from, "to": to, "amount": amount },
    })
}

fn saga(gid: &str, branches: Vec<Value>) -> Value {
    json!({ "gid": gid, "mode": "saga", "wait": true, "branches": branches })
}

async fn balances(server: &Server, module: &str) -> (i64, i64) {
    (server.balance(module, "alice").await, server.balance(module, "bob").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debit_in_mariadb_and_a_credit_in_redis_are_one_saga_that_rolls_back_when_the_credit_is_refused() {
    let server = three_stores(Backend::Sqlite).await;
    let transfer = |gid: &str, to: &str| {
        saga(gid, vec![leg("shop", true, "alice", to, 30), leg("wallet", false, "alice", to, 30)])
    };
    let (status, body) = server.post("/v1/transactions", &transfer("mr-1", "bob")).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    assert_eq!(server.balance("shop", "alice").await, 70, "debited in MariaDB");
    assert_eq!(server.balance("wallet", "bob").await, 30, "credited in Redis");
    // The same gid again runs nothing twice.
    let (status, body) = server.post("/v1/transactions", &transfer("mr-1", "bob")).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    assert_eq!((server.balance("shop", "alice").await, server.balance("wallet", "bob").await), (70, 30));
    // carol has no account in Redis: the credit is refused, the debit compensated.
    let (status, body) = server.post("/v1/transactions", &transfer("mr-2", "carol")).await;
    assert_eq!((status, &body["status"]), (200, &json!("failed")), "{body}");
    assert!(body["rollback_reason"].as_str().unwrap_or_default().contains("account carol does not exist"), "{body}");
    assert_eq!(server.balance("shop", "alice").await, 70, "the debit was given back");
    assert_eq!(server.balance("wallet", "bob").await, 30);
    let (_, tx) = server.get("/v1/transactions/mr-2").await;
    let ops = op_statuses(&tx);
    for expected in ["01 action succeeded", "02 action failed", "01 compensate succeeded"] {
        assert!(ops.iter().any(|o| o == expected), "{expected}: {ops:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_over_postgres_mariadb_and_redis_commits_and_compensates_across_all_three() {
    let server = three_stores(Backend::Postgres).await;
    let order = |gid: &str, last: &str| {
        saga(
            gid,
            vec![
                leg("bank", true, "alice", "bob", 30),
                leg("shop", false, "alice", "bob", 20),
                leg("wallet", false, "alice", last, 10),
            ],
        )
    };
    let (status, body) = server.post("/v1/transactions", &order("three-1", "bob")).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    assert_eq!(balances(&server, "bank").await, (70, 0), "Postgres");
    assert_eq!(balances(&server, "shop").await, (100, 20), "MariaDB");
    assert_eq!(balances(&server, "wallet").await, (100, 10), "Redis");
    let (status, body) = server.post("/v1/transactions", &order("three-2", "carol")).await;
    assert_eq!((status, &body["status"]), (200, &json!("failed")), "{body}");
    assert_eq!(balances(&server, "bank").await, (70, 0), "Postgres: the debit was given back");
    assert_eq!(balances(&server, "shop").await, (100, 20), "MariaDB: the credit was taken back");
    assert_eq!(balances(&server, "wallet").await, (100, 10), "Redis: nothing happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcc_transfer_over_redis_confirms_and_a_refused_try_cancels() {
    let server = three_stores(Backend::Sqlite).await;
    let tcc = |gid: &str, to: &str, amount: i64| {
        let step = |kind: &str| {
            json!({
                "try": { "module": "wallet", "function": format!("try-{kind}") },
                "confirm": { "module": "wallet", "function": format!("confirm-{kind}") },
                "cancel": { "module": "wallet", "function": format!("cancel-{kind}") },
                "payload": { "from": "alice", "to": to, "amount": amount },
            })
        };
        json!({ "gid": gid, "mode": "tcc", "wait": true, "branches": [step("out"), step("in")] })
    };
    let (status, body) = server.post("/v1/transactions", &tcc("rt-1", "bob", 40)).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    let alice = server.call("wallet", "balance", json!({ "id": "alice" })).await;
    assert_eq!((alice["balance"].as_i64(), alice["frozen"].as_i64()), (Some(60), Some(0)), "{alice}");
    assert_eq!(server.balance("wallet", "bob").await, 40);
    let (status, body) = server.post("/v1/transactions", &tcc("rt-2", "carol", 40)).await;
    assert_eq!((status, &body["status"]), (200, &json!("failed")), "{body}");
    let alice = server.call("wallet", "balance", json!({ "id": "alice" })).await;
    assert_eq!((alice["balance"].as_i64(), alice["frozen"].as_i64()), (Some(60), Some(0)), "cancelled: {alice}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_store_import_does_not_fit_its_database_is_refused() {
    let extra = Extra { database_urls: vec![("wallet".to_owned(), fresh_redis())], ..Extra::default() };
    let server = Server::start_with(Backend::Sqlite, extra).await;
    server.ready().await;
    let (status, body) = upload_to(&server, "w", "transfer-redis-rust", "default").await;
    assert_eq!((status, &body["error"]["code"]), (422, &json!("wrong_store")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("wasmtx:runtime/kv") && message.contains("sqlite"), "{message}");
    let (status, body) = upload_to(&server, "b", "transfer-rust", "wallet").await;
    assert_eq!((status, &body["error"]["code"]), (422, &json!("wrong_store")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("kv-branch"), "{body}");
    let (status, body) = upload_to(&server, "w", "transfer-redis-rust", "wallet").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["database"], json!("wallet"), "{body}");
}
