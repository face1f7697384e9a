//! Faults around the server: a business database that goes away holds only
//! its own sagas, which say why they wait and finish once it is back.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;

use crate::harness::{Backend, Extra, Server, example, transfer};

async fn admin() -> sqlx::PgConnection {
    let url = std::env::var("WASMTX_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    sqlx::PgConnection::connect(&url).await.expect("admin connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_database_that_goes_away_holds_only_its_sagas_until_it_returns() {
    let server = Server::start_with(Backend::Postgres, Extra { databases: vec!["shop"], ..Extra::default() }).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    let r = server
        .http
        .put(format!("{}/v1/modules/shop?database=shop", server.base))
        .body(example("transfer-rust"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let accounts = json!({ "accounts": [{ "id": "alice", "balance": 100 }, { "id": "bob", "balance": 0 }] });
    server.call("bank", "setup", accounts.clone()).await;
    server.call("shop", "setup", accounts).await;

    // The shop database goes away: no new connections, the open ones cut.
    let shop = server.database_url("shop");
    let name = shop.rsplit('/').next().unwrap().to_owned();
    let mut admin = admin().await;
    sqlx::raw_sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).execute(&mut admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap();

    for i in 0..3 {
        let (status, body) = server
            .post("/v1/transactions", &transfer("shop", Some(&format!("s-{i}")), "alice", "bob", 10, false))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    // Other databases' work goes on meanwhile.
    let (status, body) =
        server.post("/v1/transactions", &transfer("bank", Some("b-1"), "alice", "bob", 10, true)).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");

    // The shop's sagas wait, and say why.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, tx) = server.get("/v1/transactions/s-0").await;
        let why = tx["last_error"].as_str().unwrap_or_default();
        if why.contains("database shop") {
            assert_eq!(tx["status"], "submitted", "{tx}");
            break;
        }
        assert!(Instant::now() < deadline, "no visible reason: {tx}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    sqlx::raw_sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).execute(&mut admin).await.unwrap();
    for i in 0..3 {
        let tx = server.wait_final(&format!("s-{i}"), Duration::from_secs(60)).await;
        assert_eq!(tx["status"], "succeeded", "{tx}");
    }
    assert_eq!(server.balance("shop", "alice").await, 70);
    assert_eq!(server.balance("shop", "bob").await, 30);
    assert_eq!(server.balance("bank", "alice").await, 90);
}

const ACCOUNTS: usize = 8;

/// A Postgres server with the bank module and `ACCOUNTS` accounts of 1,000.
async fn loaded_bank() -> (Server, Vec<String>) {
    let server = Server::start(Backend::Postgres).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    let names: Vec<String> = (0..ACCOUNTS).map(|i| format!("acct{i}")).collect();
    let accounts: Vec<serde_json::Value> = names.iter().map(|n| json!({ "id": n, "balance": 1_000 })).collect();
    server.call("bank", "setup", json!({ "accounts": accounts })).await;
    (server, names)
}

/// Four clients submit transfers of 1 (spread over `servers`), each waiting
/// for its answer (which must come within its timeout), until `fault` has
/// run; returns what each sent as (gid, from, to).
async fn transfers_through(
    servers: &[&Server],
    names: &[String],
    fault: impl Future<Output = ()>,
) -> Vec<(String, usize, usize)> {
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let server = servers[c % servers.len()];
            let (http, base, names, stop) = (server.http.clone(), server.base.clone(), names.to_vec(), stop.clone());
            tokio::spawn(async move {
                let mut sent = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (from, to) = ((c + i) % ACCOUNTS, (c + i + 1 + i % 3) % ACCOUNTS);
                    let gid = format!("load-{c}-{i}");
                    let body = transfer("bank", Some(&gid), &names[from], &names[to], 1, true);
                    let started = Instant::now();
                    let answer = http
                        .post(format!("{base}/v1/transactions"))
                        .json(&body)
                        .timeout(Duration::from_secs(90))
                        .send()
                        .await;
                    assert!(answer.is_ok(), "{gid}: no answer within 90 s: {answer:?}");
                    assert!(started.elapsed() < Duration::from_secs(70), "{gid} hung for {:?}", started.elapsed());
                    if answer.is_ok_and(|r| r.status().is_server_error()) {
                        // The store was unreachable: give it a moment.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    sent.push((gid, from, to));
                    i += 1;
                }
                sent
            })
        })
        .collect();
    fault.await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    for client in clients {
        sent.extend(client.await.unwrap());
    }
    sent
}

/// Every stored transfer succeeds within `within` (one refused at submit was
/// never stored), and the balances show each applied once.
async fn settled(server: &Server, names: &[String], sent: &[(String, usize, usize)], within: Duration) {
    let settled_by = Instant::now() + within;
    let mut expected = [1_000i64; ACCOUNTS];
    let mut succeeded = 0;
    for (gid, from, to) in sent {
        let (status, _) = server.get(&format!("/v1/transactions/{gid}")).await;
        if status == 404 {
            continue;
        }
        let left = settled_by.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let tx = server.wait_final(gid, left).await;
        assert_eq!(tx["status"], "succeeded", "{tx}");
        expected[*from] -= 1;
        expected[*to] += 1;
        succeeded += 1;
    }
    assert!(succeeded > 10, "the load did too little: {succeeded}");
    for (i, name) in names.iter().enumerate() {
        assert_eq!(server.balance("bank", name).await, expected[i], "{name}: each effect once");
    }
}

/// The store's and the business database's connections are cut again and
/// again under load (what a Postgres restart does to them): requests answer
/// within their timeout, every saga ends soon after (not a lease later), and
/// every effect applies once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_database_connections_under_load_lose_nothing() {
    let (server, names) = loaded_bank().await;
    let databases: Vec<String> = [server.store_url(), server.database_url("default")]
        .iter()
        .map(|u| u.rsplit('/').next().unwrap().to_owned())
        .collect();
    let cut = async {
        let mut admin = admin().await;
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            sqlx::query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = ANY($1)")
                .bind(&databases)
                .execute(&mut admin)
                .await
                .unwrap();
        }
    };
    let sent = transfers_through(&[&server], &names, cut).await;
    // Well within the 30 s lease: a driver the store failed takes its own
    // transaction back as soon as the store answers, not when its lease lapses.
    settled(&server, &names, &sent, Duration::from_secs(15)).await;
}

/// The local Postgres cluster (store and business database) is restarted
/// while clients submit sagas to two instances: both reconnect, requests
/// answer, and every stored saga ends with each effect applied once. `exclusive_`: it
/// runs alone (see `.config/nextest.toml`), since the restart cuts every
/// test's connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_a_postgres_restart_mid_run_loses_nothing() {
    let (server, names) = loaded_bank().await;
    let second = server.another();
    second.ready().await;
    let restart = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        crate::verify::restart_postgres();
        tokio::time::sleep(Duration::from_millis(1500)).await;
    };
    let sent = transfers_through(&[&server, &second], &names, restart).await;
    settled(&server, &names, &sent, Duration::from_secs(20)).await;
    let (_, cluster) = second.get("/v1/cluster").await;
    assert_eq!(cluster["instances"].as_array().map(Vec::len), Some(2), "both back: {cluster}");
}
