//! End-to-end tests: the real `wasmtx` binary, real SQLite files and a real
//! Postgres, driven over HTTP. Every scenario runs on both backends (the
//! coordinator store and the business database on the same kind).

/// Declares one async test per backend: `sqlite::<name>` and
/// `postgres::<name>` call `<name>(Backend)`. Defined before the modules, so
/// that every one of them can use it.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Sqlite).await })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Postgres).await })+
        }
    };
}

mod catalog;
mod cli;
mod cluster;
mod concurrent;
mod controls;
mod crash;
mod dtm_api;
mod dtm_clients;
mod faults;
mod harness;
mod http_branches;
mod languages;
mod metrics;
mod msg;
mod mysql;
mod openapi;
mod readme;
mod redis;
mod retries;
mod scaffold;
mod startup;
mod tcc;
mod topics;
mod ui;
mod uploads;
mod verify;
mod workflow;
mod xa;

use std::time::Duration;

use harness::{Backend, Server, example, transfer};
use serde_json::{Value, json};

on_both_backends!(
    transfer_succeeds,
    transfer_to_a_missing_account_rolls_back,
    overdraft_is_refused_and_its_compensation_is_null,
    same_gid_twice_applies_effects_once,
    fifty_sagas_survive_sigkill_and_conserve_money,
    sigterm_stops_the_server_cleanly,
);

/// A server with the Rust bank module uploaded as `bank` and accounts seeded.
async fn bank(backend: Backend, accounts: &[(&str, i64)]) -> Server {
    let server = Server::start(backend).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "upload: {body}");
    let accounts: Vec<Value> = accounts.iter().map(|(id, b)| json!({ "id": id, "balance": b })).collect();
    server.call("bank", "setup", json!({ "accounts": accounts })).await;
    server
}

async fn transfer_succeeds(backend: Backend) {
    let server = bank(backend, &[("alice", 100), ("bob", 20)]).await;
    let (status, body) = server.post("/v1/transactions", &transfer("bank", None, "alice", "bob", 30, true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded");
    assert_eq!(server.balance("bank", "alice").await, 70);
    assert_eq!(server.balance("bank", "bob").await, 50);

    let gid = body["gid"].as_str().expect("gid");
    let (status, tx) = server.get(&format!("/v1/transactions/{gid}")).await;
    assert_eq!(status, 200);
    assert_eq!(tx["status"], "succeeded");
    let ops: Vec<(String, String)> = tx["branches"]
        .as_array()
        .expect("branches")
        .iter()
        .map(|b| {
            (
                format!("{} {}", b["branch_id"].as_str().unwrap(), b["op"].as_str().unwrap()),
                b["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("01 action".to_owned(), "succeeded".to_owned()),
            ("01 compensate".to_owned(), "prepared".to_owned()),
            ("02 action".to_owned(), "succeeded".to_owned()),
            ("02 compensate".to_owned(), "prepared".to_owned()),
        ]
    );
    assert!(tx["branches"][0]["digest"].as_str().unwrap().starts_with("sha256:"), "ops are pinned to a digest");
}

async fn transfer_to_a_missing_account_rolls_back(backend: Backend) {
    let server = bank(backend, &[("alice", 100)]).await;
    let (status, body) = server.post("/v1/transactions", &transfer("bank", None, "alice", "carol", 30, true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed");
    let reason = body["rollback_reason"].as_str().expect("rollback_reason");
    assert!(reason.contains("carol"), "reason names the missing account: {reason}");
    assert_eq!(server.balance("bank", "alice").await, 100, "the debit was compensated");

    let gid = body["gid"].as_str().unwrap();
    let (_, tx) = server.get(&format!("/v1/transactions/{gid}")).await;
    let status_of = |i: usize| tx["branches"][i]["status"].as_str().unwrap().to_owned();
    assert_eq!(
        [status_of(0), status_of(1), status_of(2), status_of(3)],
        ["succeeded", "succeeded", "failed", "succeeded"]
    );
}

async fn overdraft_is_refused_and_its_compensation_is_null(backend: Backend) {
    let server = bank(backend, &[("alice", 10), ("bob", 0)]).await;
    let (status, body) = server.post("/v1/transactions", &transfer("bank", None, "alice", "bob", 30, true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed");
    assert!(body["rollback_reason"].as_str().unwrap().contains("insufficient"), "{body}");
    // trans-out-revert ran as a null compensation: no credit for a debit that never happened.
    assert_eq!(server.balance("bank", "alice").await, 10);
    assert_eq!(server.balance("bank", "bob").await, 0);
    let gid = body["gid"].as_str().unwrap();
    let (_, tx) = server.get(&format!("/v1/transactions/{gid}")).await;
    assert_eq!(tx["branches"][0]["status"], "failed");
    assert_eq!(tx["branches"][1]["status"], "succeeded", "compensation recorded as done");
    assert_eq!(tx["branches"][2]["status"], "prepared", "second action never ran");
    assert_eq!(tx["branches"][3]["status"], "prepared", "and is not compensated");
}

async fn same_gid_twice_applies_effects_once(backend: Backend) {
    let server = bank(backend, &[("alice", 100), ("bob", 0)]).await;
    let request = transfer("bank", Some("order-42"), "alice", "bob", 30, true);
    let (s1, b1) = server.post("/v1/transactions", &request).await;
    let (s2, b2) = server.post("/v1/transactions", &request).await;
    assert_eq!((s1, s2), (200, 200), "{b1} {b2}");
    assert_eq!(b1["status"], "succeeded");
    assert_eq!(b2["status"], "succeeded");
    assert_eq!(b2["gid"], "order-42");
    assert_eq!(server.balance("bank", "alice").await, 70);
    assert_eq!(server.balance("bank", "bob").await, 30);

    // The same gid with a different body is a conflict, not a silent success.
    let (status, body) =
        server.post("/v1/transactions", &transfer("bank", Some("order-42"), "alice", "bob", 31, true)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "gid_conflict");
    assert_eq!(server.balance("bank", "alice").await, 70);
}

async fn fifty_sagas_survive_sigkill_and_conserve_money(backend: Backend) {
    const ACCOUNTS: usize = 10;
    const START: i64 = 1_000;
    let names: Vec<String> = (0..ACCOUNTS).map(|i| format!("acct{i}")).collect();
    let seed: Vec<(&str, i64)> = names.iter().map(|n| (n.as_str(), START)).collect();
    let mut server = bank(backend, &seed).await;

    // Saga i moves i+1 from account i%10 to account (i+1)%10; every fifth
    // saga targets a missing account and must be rolled back. All 50 are
    // submitted at once and the server is killed as soon as they are accepted,
    // so most are still in flight.
    let mut expected: Vec<i64> = vec![START; ACCOUNTS];
    let mut gids = Vec::new();
    let mut submissions = tokio::task::JoinSet::new();
    for i in 0..50usize {
        let gid = format!("crash-{i}");
        let amount = i64::try_from(i).unwrap() + 1;
        let from = i % ACCOUNTS;
        let succeeds = i % 5 != 4;
        let to = if succeeds { names[(i + 1) % ACCOUNTS].clone() } else { "nobody".to_owned() };
        let request = transfer("bank", Some(&gid), &names[from], &to, amount, false);
        let (http, url) = (server.http.clone(), format!("{}/v1/transactions", server.base));
        submissions.spawn(async move { http.post(url).json(&request).send().await.map(|r| r.status().as_u16()) });
        if succeeds {
            expected[from] -= amount;
            expected[(i + 1) % ACCOUNTS] += amount;
        }
        gids.push((gid, succeeds));
    }
    while let Some(status) = submissions.join_next().await {
        assert_eq!(status.expect("task").expect("POST"), 202);
    }
    server.kill();
    let restarted_at = std::time::SystemTime::now();
    server.restart().await;

    let mut finished_after_restart = 0;
    for (gid, succeeds) in &gids {
        let tx = server.wait_final(gid, Duration::from_secs(120)).await;
        let want = if *succeeds { "succeeded" } else { "failed" };
        assert_eq!(tx["status"], want, "{gid}: {tx}");
        if harness::parse_time(tx["finished_at"].as_str().expect("finished_at")) > restarted_at {
            finished_after_restart += 1;
        }
    }
    eprintln!("{finished_after_restart} of 50 sagas finished after the restart");
    assert!(finished_after_restart > 0, "the kill interrupted no saga: the test proves nothing");
    let mut total = 0;
    for (i, name) in names.iter().enumerate() {
        let balance = server.balance("bank", name).await;
        assert_eq!(balance, expected[i], "{name}: every effect applied exactly once");
        total += balance;
    }
    assert_eq!(total, START * i64::try_from(ACCOUNTS).unwrap(), "money is conserved");
}

async fn sigterm_stops_the_server_cleanly(backend: Backend) {
    let mut server = bank(backend, &[("alice", 5)]).await;
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
}
