//! Two-phase messages through the real server, on SQLite and on Postgres:
//! the local function commits, then every branch is delivered; a branch that
//! fails is retried until it succeeds, visibly; a refusing local function
//! fails the message and no branch runs; a topic fans out to its
//! subscribers; `delay` holds the branches back; the server SIGKILLed after
//! the local commit and before the message is recorded as sent resolves it by
//! the back-check on restart and delivers once.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Backend, Server, example, op_statuses};

on_both_backends!(
    the_local_function_commits_then_every_branch_is_delivered,
    a_failing_branch_is_retried_until_it_succeeds,
    a_refusing_local_function_fails_the_message_and_nothing_is_sent,
    a_topic_fans_out_to_every_subscriber,
    delay_holds_the_branches_back,
    a_sigkill_after_the_local_commit_is_resolved_by_the_back_check,
    messages_of_the_wrong_shape_are_refused,
    a_concurrent_message_delivers_every_branch_at_once,
);

async fn bank(backend: Backend) -> Server {
    let server = Server::start(backend).await;
    server.ready().await;
    for name in ["bank", "misbehave"] {
        let component = if name == "bank" { "transfer-rust" } else { "misbehave-rust" };
        let (status, body) = server.upload(name, example(component)).await;
        assert_eq!(status, 201, "{body}");
    }
    let setup = json!({ "accounts": [{ "id": "alice", "balance": 100 }, { "id": "bob", "balance": 0 }] });
    assert_eq!(server.call("bank", "setup", setup).await, json!({ "accounts": 2 }));
    server
}

/// The classic message transfer: `bank.trans-out` as the local function,
/// then the `branches` (each `[module, function, payload]`).
fn message(gid: &str, amount: i64, branches: &[(&str, &str, Value)], options: Value) -> Value {
    let transfer = json!({ "from": "alice", "to": "bob", "amount": amount });
    let branches: Vec<Value> = branches
        .iter()
        .map(|(module, function, payload)| {
            let payload = if payload.is_null() { transfer.clone() } else { payload.clone() };
            json!({ "action": { "module": module, "function": function }, "payload": payload })
        })
        .collect();
    json!({
        "gid": gid,
        "mode": "msg",
        "local": { "module": "bank", "function": "trans-out", "payload": transfer },
        "branches": branches,
        "options": options,
        "wait": true,
    })
}

async fn balances(server: &Server) -> (i64, i64) {
    (server.balance("bank", "alice").await, server.balance("bank", "bob").await)
}

async fn the_local_function_commits_then_every_branch_is_delivered(backend: Backend) {
    let server = bank(backend).await;
    let branches = [("bank", "trans-in", Value::Null), ("misbehave", "echo", json!({ "note": "sent" }))];
    let (status, body) = server.post("/v1/transactions", &message("m-ok", 30, &branches, json!({}))).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    let (_, tx) = server.get("/v1/transactions/m-ok").await;
    assert_eq!(tx["mode"], "msg");
    assert_eq!(op_statuses(&tx), ["00 msg succeeded", "01 action succeeded", "02 action succeeded"]);
    assert_eq!(balances(&server).await, (70, 30));
}

async fn a_failing_branch_is_retried_until_it_succeeds(backend: Backend) {
    let server = bank(backend).await;
    // carol does not exist yet: trans-in refuses, and is retried, not rolled back.
    let mut request = message("m-retry", 30, &[], json!({ "retry_interval": 1 }));
    request["branches"] = json!([
        { "action": { "module": "bank", "function": "trans-in" }, "payload": { "from": "alice", "to": "carol", "amount": 30 } },
        { "action": { "module": "misbehave", "function": "retry-times" }, "payload": 2 },
    ]);
    request["wait"] = json!(false);
    let (status, body) = server.post("/v1/transactions", &request).await;
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, tx) = server.get("/v1/transactions/m-retry").await;
        if tx["last_error"].as_str().is_some_and(|e| e.contains("delivery refused")) {
            assert_eq!(tx["status"], "submitted", "a message never rolls back: {tx}");
            break;
        }
        assert!(Instant::now() < deadline, "the refusal was never visible: {tx}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.call("bank", "setup", json!({ "accounts": [{ "id": "carol", "balance": 0 }] })).await;
    let tx = server.wait_final("m-retry", Duration::from_secs(30)).await;
    assert_eq!(tx["status"], "succeeded", "{tx}");
    let ops = tx["branches"].as_array().unwrap();
    assert!(ops[1]["attempts"].as_u64().unwrap() >= 2, "retried: {tx}");
    assert_eq!(ops[2]["attempts"], 3, "asked twice to retry, then succeeded: {tx}");
    assert_eq!(server.balance("bank", "carol").await, 30);
    assert_eq!(server.balance("bank", "alice").await, 70);
}

async fn a_refusing_local_function_fails_the_message_and_nothing_is_sent(backend: Backend) {
    let server = bank(backend).await;
    let (status, body) =
        server.post("/v1/transactions", &message("m-no", 500, &[("bank", "trans-in", Value::Null)], json!({}))).await;
    assert_eq!((status, &body["status"]), (200, &json!("failed")), "{body}");
    assert!(body["rollback_reason"].as_str().unwrap().contains("insufficient"), "{body}");
    let (_, tx) = server.get("/v1/transactions/m-no").await;
    assert_eq!(op_statuses(&tx), ["00 msg failed", "01 action prepared"]);
    assert_eq!(tx["branches"][1]["attempts"], 0, "no branch ran");
    assert_eq!(balances(&server).await, (100, 0));
}

async fn a_topic_fans_out_to_every_subscriber(backend: Backend) {
    let server = bank(backend).await;
    let (status, body) = server.upload("bank2", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    for module in ["bank", "bank2"] {
        let subscriber = json!({ "module": module, "function": "trans-in" });
        let r = server.http.put(format!("{}/v1/topics/credit/subscribers", server.base)).json(&subscriber).send().await;
        assert_eq!(r.unwrap().status().as_u16(), 201);
    }
    let mut request = message("m-topic", 10, &[], json!({}));
    request["branches"] =
        json!([{ "action": { "topic": "credit" }, "payload": { "from": "alice", "to": "bob", "amount": 10 } }]);
    let (status, body) = server.post("/v1/transactions", &request).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    let (_, tx) = server.get("/v1/transactions/m-topic").await;
    let targets: Vec<String> = tx["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "{} {}.{}",
                b["branch_id"].as_str().unwrap(),
                b["module"].as_str().unwrap(),
                b["function"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(targets, ["00 bank.trans-out", "01 bank.trans-in", "02 bank2.trans-in"]);
    // Both modules share the database: bob is credited once by each subscriber.
    assert_eq!(balances(&server).await, (90, 20));

    request["gid"] = json!("m-nobody");
    request["branches"][0]["action"] = json!({ "topic": "nobody-listens" });
    let (status, body) = server.post("/v1/transactions", &request).await;
    assert_eq!((status, &body["error"]["code"]), (400, &json!("unknown_topic")), "{body}");
}

async fn delay_holds_the_branches_back(backend: Backend) {
    let server = bank(backend).await;
    let mut request = message("m-later", 30, &[("bank", "trans-in", Value::Null)], json!({ "delay": 2 }));
    request["wait"] = json!(false);
    let started = Instant::now();
    let (status, body) = server.post("/v1/transactions", &request).await;
    assert_eq!(status, 202, "{body}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, tx) = server.get("/v1/transactions/m-later").await;
    assert_eq!(tx["status"], "submitted", "the local transaction committed: {tx}");
    assert_eq!(balances(&server).await, (70, 0), "debited, not yet delivered");
    let tx = server.wait_final("m-later", Duration::from_secs(20)).await;
    assert_eq!(tx["status"], "succeeded");
    assert!(started.elapsed() >= Duration::from_secs(2), "delivered after {:?}", started.elapsed());
    assert_eq!(balances(&server).await, (70, 30));
}

async fn a_sigkill_after_the_local_commit_is_resolved_by_the_back_check(backend: Backend) {
    let mut server = bank(backend).await;
    // A slow first branch: the server dies after the local commit, while it
    // runs (on SQLite within the writer's hold limit of a second).
    let (busy, kill_after) = match backend {
        Backend::Postgres => (2500, 1000),
        Backend::Sqlite => (700, 300),
    };
    let branches = [("misbehave", "busy", json!(busy)), ("bank", "trans-in", Value::Null)];
    let mut request = message("m-kill", 30, &branches, json!({}));
    request["wait"] = json!(false);
    let (status, body) = server.post("/v1/transactions", &request).await;
    assert_eq!(status, 202, "{body}");
    tokio::time::sleep(Duration::from_millis(kill_after)).await;
    server.kill();
    assert_eq!(server_balance_after_kill(&server, backend).await, 70, "the local transaction committed");
    let stored = stored_status(&server, backend, "m-kill").await;
    match backend {
        // The store is not the business database: nothing recorded the
        // local commit, the message is still `prepared` in the store.
        Backend::Postgres => assert_eq!(stored, "prepared"),
        // Co-located: the local commit carried the switch to `submitted`.
        Backend::Sqlite => assert_eq!(stored, "submitted"),
    }
    server.restart().await;
    let tx = server.wait_final("m-kill", Duration::from_secs(30)).await;
    assert_eq!(tx["status"], "succeeded", "{tx}");
    assert_eq!(balances(&server).await, (70, 30), "debited once, credited once");
    if backend == Backend::Postgres {
        assert_eq!(tx["branches"][0]["attempts"], 2, "one run, then the back-check: {tx}");
    }
}

/// alice's balance read straight from the business database (the server is down).
async fn server_balance_after_kill(server: &Server, backend: Backend) -> i64 {
    let sql = "SELECT balance FROM accounts WHERE id = 'alice'";
    match backend {
        Backend::Sqlite => {
            let url = server.database_url("default");
            let path = url.trim_start_matches("sqlite://").split('?').next().unwrap().to_owned();
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.query_row(sql, [], |r| r.get(0)).unwrap()
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&server.database_url("default")).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    }
}

async fn stored_status(server: &Server, backend: Backend, gid: &str) -> String {
    match backend {
        Backend::Sqlite => {
            let url = server.database_url("default");
            let path = url.trim_start_matches("sqlite://").split('?').next().unwrap().to_owned();
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.query_row("SELECT status FROM wasmtx_transactions WHERE gid = ?1", [gid], |r| r.get(0)).unwrap()
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&server.store_url()).await.unwrap();
            sqlx::query_scalar("SELECT status FROM wasmtx.transactions WHERE gid = $1")
                .bind(gid)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
    }
}

async fn messages_of_the_wrong_shape_are_refused(backend: Backend) {
    let server = bank(backend).await;
    let refused = async |request: Value, code: &str, says: &str| {
        let (status, body) = server.post("/v1/transactions", &request).await;
        assert_eq!((status, body["error"]["code"].as_str().unwrap_or_default()), (400, code), "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    };
    let good = message("m-shape", 1, &[("bank", "trans-in", Value::Null)], json!({}));
    let mut no_local = good.clone();
    no_local.as_object_mut().unwrap().remove("local");
    refused(no_local, "invalid_branch", "needs `local`").await;
    let mut saga_with_local = good.clone();
    saga_with_local["mode"] = json!("saga");
    refused(saga_with_local, "invalid_branch", "`local` is for msg").await;
    let mut timeout = good.clone();
    timeout["options"] = json!({ "timeout_to_fail": 5 });
    refused(timeout, "invalid_options", "do not apply to a message").await;
    let mut delayed_saga = good.clone();
    delayed_saga.as_object_mut().unwrap().remove("local");
    delayed_saga["mode"] = json!("saga");
    delayed_saga["options"] = json!({ "delay": 5 });
    delayed_saga["branches"][0]["compensate"] = json!({ "module": "bank", "function": "trans-in-revert" });
    refused(delayed_saga, "invalid_options", "delay applies to messages").await;
    let mut topic_in_saga = good.clone();
    topic_in_saga.as_object_mut().unwrap().remove("local");
    topic_in_saga["mode"] = json!("saga");
    topic_in_saga["branches"][0]["action"] = json!({ "topic": "credit" });
    topic_in_saga["branches"][0]["compensate"] = json!({ "module": "bank", "function": "trans-in-revert" });
    refused(topic_in_saga, "invalid_branch", "a topic is a target for a message's branch only").await;
    assert_eq!(server.get("/v1/transactions/m-shape").await.0, 404, "nothing was stored");
}

async fn a_concurrent_message_delivers_every_branch_at_once(backend: Backend) {
    let server = bank(backend).await;
    let branches =
        [("misbehave", "busy", json!(300)), ("bank", "trans-in", Value::Null), ("misbehave", "retry-times", json!(1))];
    let request = message("m-wave", 30, &branches, json!({ "concurrent": true, "retry_interval": 1 }));
    let (status, body) = server.post("/v1/transactions", &request).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    let (_, tx) = server.get("/v1/transactions/m-wave").await;
    assert_eq!(
        op_statuses(&tx),
        ["00 msg succeeded", "01 action succeeded", "02 action succeeded", "03 action succeeded"]
    );
    assert_eq!(tx["branches"][3]["attempts"], 2, "retried on its own: {tx}");
    assert_eq!(balances(&server).await, (70, 30));
    let mut bad = request.clone();
    bad["gid"] = json!("m-orders");
    bad["options"] = json!({ "concurrent": true, "orders": { "1": [0] } });
    let (status, body) = server.post("/v1/transactions", &bad).await;
    assert_eq!((status, &body["error"]["code"]), (400, &json!("invalid_options")), "{body}");
}
