//! XA transactions through the real server on Postgres: every branch's SQL
//! prepared (`PREPARE TRANSACTION`), then all committed, or all rolled back;
//! `pg_prepared_xacts` empty afterwards; a server SIGKILLed between the
//! decision and its commits carries the decision out after a restart; a
//! branch left prepared by a transaction that will never finish it is rolled
//! back by the host; a SQLite database is refused at submit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;

use crate::harness::{Backend, Extra, Server, example, op_statuses};

async fn bank(extra: Extra) -> Server {
    let server = Server::start_with(Backend::Postgres, extra).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    let setup = json!({ "accounts": [{ "id": "alice", "balance": 100 }, { "id": "bob", "balance": 0 }] });
    assert_eq!(server.call("bank", "setup", setup).await, json!({ "accounts": 2 }));
    server
}

/// An XA moving `amount` from `from` to `to` with the ordinary transfer functions.
fn xa(gid: &str, from: &str, to: &str, amount: i64, wait: bool) -> Value {
    let payload = json!({ "from": from, "to": to, "amount": amount });
    json!({
        "gid": gid,
        "mode": "xa",
        "wait": wait,
        "branches": [
            { "action": { "module": "bank", "function": "trans-out" }, "payload": payload },
            { "action": { "module": "bank", "function": "trans-in" }, "payload": payload },
        ],
    })
}

async fn connect(url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// The transactions still prepared in the server's business database.
async fn prepared(server: &Server) -> Vec<String> {
    let mut conn = connect(&server.database_url("default")).await;
    sqlx::query_scalar("SELECT gid FROM pg_prepared_xacts WHERE database = current_database() ORDER BY gid")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

async fn balances(server: &Server) -> BTreeMap<String, i64> {
    let mut conn = connect(&server.database_url("default")).await;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT id, balance FROM accounts").fetch_all(&mut conn).await.unwrap();
    rows.into_iter().collect()
}

async fn wait_until<F: AsyncFnMut() -> bool>(what: &str, within: Duration, mut done: F) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_prepared_branch_commits() {
    let server = bank(Extra::default()).await;
    let (status, body) = server.post("/v1/transactions", &xa("x-ok", "alice", "bob", 30, true)).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    let (_, tx) = server.get("/v1/transactions/x-ok").await;
    assert_eq!(tx["mode"], "xa");
    assert_eq!(tx["options"]["timeout_to_fail"], 35, "an XA's default timeout (its prepared branches hold locks)");
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
    assert_eq!(balances(&server).await, BTreeMap::from([("alice".into(), 70), ("bob".into(), 30)]));
    assert_eq!(prepared(&server).await, Vec::<String>::new(), "nothing left prepared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_branch_rolls_back_every_prepared_one() {
    let server = bank(Extra::default()).await;
    // trans-out prepares (alice's row stays locked), trans-in refuses carol.
    let (status, body) = server.post("/v1/transactions", &xa("x-no", "alice", "carol", 30, true)).await;
    assert_eq!((status, &body["status"]), (200, &json!("failed")), "{body}");
    assert!(body["rollback_reason"].as_str().unwrap().contains("carol"), "{body}");
    let (_, tx) = server.get("/v1/transactions/x-no").await;
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
    assert_eq!(balances(&server).await, BTreeMap::from([("alice".into(), 100), ("bob".into(), 0)]));
    assert_eq!(prepared(&server).await, Vec::<String>::new());
    // The rolled-back rows were released: the same money moves now.
    let (status, body) = server.post("/v1/transactions", &xa("x-again", "alice", "bob", 100, true)).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    assert_eq!(balances(&server).await, BTreeMap::from([("alice".into(), 0), ("bob".into(), 100)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xa_is_refused_where_it_cannot_run_and_in_the_wrong_shape() {
    let server = Server::start(Backend::Sqlite).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.post("/v1/transactions", &xa("x-lite", "alice", "bob", 1, true)).await;
    assert_eq!((status, &body["error"]["code"]), (400, &json!("xa_unsupported")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("database default") && message.contains("SQLite"), "{message}");
    assert_eq!(server.get("/v1/transactions/x-lite").await.0, 404, "nothing was stored");

    let server = bank(Extra::default()).await;
    let mut wrong = xa("x-shape", "alice", "bob", 1, true);
    wrong["branches"][0]["compensate"] = json!({ "module": "bank", "function": "trans-out-compensate" });
    let (status, body) = server.post("/v1/transactions", &wrong).await;
    assert_eq!((status, &body["error"]["code"]), (400, &json!("invalid_branch")), "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("a xa branch has `action`, not `compensate`"),
        "{body}"
    );
}

/// A branch that keeps asking to be retried holds the XA undecided, with
/// branch 1 prepared.
fn stuck(gid: &str) -> Value {
    json!({
        "gid": gid,
        "mode": "xa",
        "branches": [
            { "action": { "module": "bank", "function": "trans-out" }, "payload": { "from": "alice", "to": "bob", "amount": 40 } },
            { "action": { "module": "bank", "function": "flaky" }, "payload": { "retries": 1000 } },
        ],
        "options": { "retry_interval": 1 },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_rolls_back_an_undecided_xa() {
    let server = bank(Extra::default()).await;
    let (status, body) = server.post("/v1/transactions", &stuck("x-abort")).await;
    assert_eq!(status, 202, "{body}");
    wait_until("branch 1 prepared", Duration::from_secs(20), async || prepared(&server).await == ["wasmtx:x-abort:01"])
        .await;
    let (status, body) = server.post("/v1/transactions/x-abort/abort", &json!({ "reason": "test" })).await;
    assert_eq!(status, 200, "{body}");
    let tx = server.wait_final("x-abort", Duration::from_secs(20)).await;
    assert_eq!(tx["status"], "failed", "{tx}");
    assert_eq!(prepared(&server).await, Vec::<String>::new());
    assert_eq!(balances(&server).await["alice"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branches_left_prepared_by_a_transaction_that_never_decides_are_rolled_back() {
    let server = bank(Extra { config: "xa_orphan_secs = 1\n".into(), ..Extra::default() }).await;

    // A force-stopped XA: failed without compensation, its branch 1 still prepared.
    let (status, body) = server.post("/v1/transactions", &stuck("x-stop")).await;
    assert_eq!(status, 202, "{body}");
    wait_until("branch 1 prepared", Duration::from_secs(20), async || prepared(&server).await == ["wasmtx:x-stop:01"])
        .await;
    let (status, body) = server.post("/v1/transactions/x-stop/force-stop", &json!({ "reason": "test" })).await;
    assert_eq!(status, 200, "{body}");

    // A prepared branch of a transaction the store never held, as the guest
    // role would leave it.
    let url = server.database_url("default");
    let mut conn = connect(&url).await;
    let role: String = sqlx::query_scalar("SELECT guest_role FROM wasmtx.host").fetch_one(&mut conn).await.unwrap();
    for sql in [
        format!("SET SESSION AUTHORIZATION {role}"),
        "BEGIN".to_owned(),
        "UPDATE accounts SET balance = balance + 1000 WHERE id = 'bob'".to_owned(),
        "PREPARE TRANSACTION 'wasmtx:x-ghost:01'".to_owned(),
    ] {
        sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    drop(conn);

    wait_until("both rolled back", Duration::from_secs(20), async || prepared(&server).await.is_empty()).await;
    assert_eq!(balances(&server).await, BTreeMap::from([("alice".into(), 100), ("bob".into(), 0)]));
    let (_, tx) = server.get("/v1/transactions/x-stop").await;
    assert_eq!(tx["status"], "failed", "{tx}");
}

/// Clients submit XA transfers one after another (one in five to a missing
/// account, so it rolls back), and the server is SIGKILLed until a kill
/// lands after a decision to commit was stored and before its branches were
/// all committed. After a restart, every stored transaction ends as it
/// decided: balances equal the model of the succeeded ones, and nothing is
/// left prepared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_between_prepare_and_commit_is_finished_from_the_stored_decision() {
    const ACCOUNTS: usize = 64;
    let mut server = Server::start(Backend::Postgres).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    let names: Vec<String> = (0..ACCOUNTS).map(|i| format!("acct{i}")).collect();
    let accounts: Vec<Value> = names.iter().map(|n| json!({ "id": n, "balance": 1_000_000 })).collect();
    server.call("bank", "setup", json!({ "accounts": accounts })).await;
    let store = server.store_url();

    let mut caught = false;
    let mut round = 0u64;
    while !caught {
        round += 1;
        assert!(round <= 10, "no kill landed between a decision and its commits in 10 rounds");
        let clients: Vec<_> = (0..6)
            .map(|c| {
                let (http, base, names) = (server.http.clone(), server.base.clone(), names.clone());
                tokio::spawn(async move {
                    let mut rng = (round * 1000 + c).wrapping_mul(0x9E37_79B9_7F4A_7C15_u64) | 1;
                    for i in 0usize.. {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        // Many accounts: a branch prepared holds its row until
                        // phase 2, so few accounts would mostly measure lock waits.
                        let from = (rng % ACCOUNTS as u64) as usize;
                        let to = (from + 1 + (rng >> 8) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                        let to = if i % 5 == 4 { "nobody".to_owned() } else { names[to].clone() };
                        let gid = format!("k{round}-{c}-{i}");
                        // Waiting: each client has one XA in flight, as a
                        // service's request handlers would.
                        let body = xa(&gid, &names[from], &to, 1 + (i % 7) as i64, true);
                        if http.post(format!("{base}/v1/transactions")).json(&body).send().await.is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(400 + 150 * round)).await;
        server.kill();
        for client in clients {
            let _ = client.await;
        }
        // Decided to commit, but a branch is still prepared: the window.
        let prepared_gids: Vec<String> = prepared(&server)
            .await
            .iter()
            .filter_map(|x| x.strip_prefix("wasmtx:").and_then(|g| g.rsplit_once(':')).map(|(g, _)| g.to_owned()))
            .collect();
        let mut conn = connect(&store).await;
        let decided: i64 =
            sqlx::query_scalar("SELECT count(*) FROM wasmtx.transactions WHERE gid = ANY($1) AND status = 'submitted'")
                .bind(&prepared_gids)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        eprintln!("round {round}: {} branches prepared, {decided} of their transactions decided", prepared_gids.len());
        caught = decided > 0;
        server.restart().await;
    }

    // Every stored transaction ends; the succeeded ones are the model.
    let mut conn = connect(&store).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM wasmtx.transactions WHERE status NOT IN ('succeeded', 'failed')")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} transactions still open after a minute");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(prepared(&server).await, Vec::<String>::new(), "every prepared branch was finished");
    let payloads: Vec<(String, Vec<u8>)> = sqlx::query_as(
        "SELECT t.status, o.payload FROM wasmtx.transactions t JOIN wasmtx.branch_ops o ON o.gid = t.gid \
         WHERE o.branch_id = '01' AND o.op = 'action'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut model: BTreeMap<String, i64> = names.iter().map(|n| (n.clone(), 1_000_000)).collect();
    let mut succeeded = 0;
    for (status, payload) in payloads {
        let p: Value = serde_json::from_slice(&payload).unwrap();
        if status == "succeeded" {
            succeeded += 1;
            *model.get_mut(p["from"].as_str().unwrap()).unwrap() -= p["amount"].as_i64().unwrap();
            *model.get_mut(p["to"].as_str().unwrap()).unwrap() += p["amount"].as_i64().unwrap();
        } else {
            assert_eq!(status, "failed");
        }
    }
    assert!(succeeded > 0);
    assert_eq!(balances(&server).await, model, "every succeeded XA applied once, every failed one not at all");
}
