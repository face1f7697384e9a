//! Crash recovery on the fast path: clients submit transfer sagas without
//! pause (most waiting for the outcome, so the create rides in the first
//! branch's commit; some not), the server is killed with SIGKILL at random
//! moments and restarted, three times. Afterwards every saga that was
//! acknowledged, or that the store holds, ends; balances equal the model
//! exactly (every effect applied once); money is conserved. On SQLite (store
//! and business database in one file) and on Postgres (in one database).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::harness::{Backend, Extra, Server, example, transfer};

const ACCOUNTS: usize = 8;
const START: i64 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sagas_under_load_survive_random_sigkills_exactly_once() {
    sigkills_under_load(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sagas_under_load_survive_random_sigkills_exactly_once() {
    sigkills_under_load(Backend::Postgres).await;
}

/// One submitted saga: what it moves, and whether it was meant to fail.
#[derive(Debug, Clone)]
struct Sent {
    gid: String,
    from: usize,
    to: usize,
    amount: i64,
    acknowledged: bool,
}

async fn sigkills_under_load(backend: Backend) {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = seed;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };

    let mut server = Server::start_with(backend, Extra { colocated: true, ..Extra::default() }).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    let names: Vec<String> = (0..ACCOUNTS).map(|i| format!("acct{i}")).collect();
    let accounts: Vec<Value> = names.iter().map(|n| json!({ "id": n, "balance": START })).collect();
    server.call("bank", "setup", json!({ "accounts": accounts })).await;

    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    for round in 0..3 {
        // Load for a random 150–650 ms, then SIGKILL in the middle of it.
        let load_for = Duration::from_millis(150 + next(500));
        let clients: Vec<_> = (0..6)
            .map(|c| {
                let (http, base, sent, names) = (server.http.clone(), server.base.clone(), sent.clone(), names.clone());
                let first = round * 1_000_000 + c * 100_000;
                let mut local = seed.wrapping_add(first as u64) | 1;
                tokio::spawn(async move {
                    let mut i = first;
                    loop {
                        local ^= local << 13;
                        local ^= local >> 7;
                        local ^= local << 17;
                        let from = (local % ACCOUNTS as u64) as usize;
                        let to = (from + 1 + (local >> 8) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                        let amount = 1 + (local >> 16) as i64 % 50;
                        // One in five goes to a missing account and rolls back.
                        let doomed = (local >> 24).is_multiple_of(5);
                        let gid = format!("r{round}-c{c}-{i}");
                        let target = if doomed { "nobody".to_owned() } else { names[to].clone() };
                        let wait = !(local >> 32).is_multiple_of(4);
                        let request = transfer("bank", Some(&gid), &names[from], &target, amount, wait);
                        let answer = http.post(format!("{base}/v1/transactions")).json(&request).send().await;
                        let acknowledged = answer.is_ok_and(|r| r.status().is_success());
                        let to = if doomed { usize::MAX } else { to };
                        sent.lock().unwrap().push(Sent { gid, from, to, amount, acknowledged });
                        if !acknowledged {
                            return;
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        tokio::time::sleep(load_for).await;
        server.kill();
        for client in clients {
            client.await.unwrap();
        }
        server.restart().await;
        eprintln!("round {round}: killed after {load_for:?}, {} sagas sent so far", sent.lock().unwrap().len());
    }

    // Every saga the store holds ends; an acknowledged one must be there.
    let sent = sent.lock().unwrap().clone();
    let mut expected = [START; ACCOUNTS];
    let (mut succeeded, mut failed, mut absent) = (0, 0, 0);
    for s in &sent {
        let (status, _) = server.get(&format!("/v1/transactions/{}", s.gid)).await;
        if status == 404 {
            assert!(!s.acknowledged, "{} was acknowledged but is not stored", s.gid);
            absent += 1;
            continue;
        }
        let tx = server.wait_final(&s.gid, Duration::from_secs(120)).await;
        match tx["status"].as_str() {
            Some("succeeded") => {
                assert_ne!(s.to, usize::MAX, "{} targeted a missing account yet succeeded", s.gid);
                expected[s.from] -= s.amount;
                expected[s.to] += s.amount;
                succeeded += 1;
            }
            Some("failed") => {
                assert_eq!(s.to, usize::MAX, "{} should have succeeded: {tx}", s.gid);
                failed += 1;
            }
            other => panic!("{}: {other:?}", s.gid),
        }
    }
    eprintln!("{} sagas: {succeeded} succeeded, {failed} rolled back, {absent} never stored", sent.len());
    assert!(succeeded > 20, "the load did too little to prove anything: {succeeded}");
    let mut total = 0;
    for (i, name) in names.iter().enumerate() {
        let balance = server.balance("bank", name).await;
        assert_eq!(balance, expected[i], "{name}: every effect applied exactly once (seed {seed})");
        total += balance;
    }
    assert_eq!(total, START * ACCOUNTS as i64, "money is conserved");
}
