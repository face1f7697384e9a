//! Several `wasmtx serve` processes on one Postgres store: they share the
//! work, one SIGKILLed mid-run is taken over within its lease, and one
//! SIGSTOPped past its lease is fenced when it wakes. Balances prove that no
//! branch effect applied twice, and money is conserved.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Backend, Extra, Server, example, transfer};

/// Short leases so that takeovers happen within a test; the invocation
/// deadline must stay below the lease.
const CONFIG: &str = "lease_secs = 3\ndeadline_ms = 2000\n";
const LEASE: Duration = Duration::from_secs(3);
const START: i64 = 1_000_000;

async fn first_instance() -> Server {
    let server = Server::start_with(Backend::Postgres, Extra { config: CONFIG.into(), ..Extra::default() }).await;
    server.ready().await;
    server
}

async fn seed(server: &Server, accounts: &[String]) {
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "{body}");
    let accounts: Vec<Value> = accounts.iter().map(|n| json!({ "id": n, "balance": START })).collect();
    server.call("bank", "setup", json!({ "accounts": accounts })).await;
}

/// One submitted transfer and what it should do.
#[derive(Debug, Clone)]
struct Sent {
    gid: String,
    from: usize,
    /// `None`: to a missing account, so it rolls back.
    to: Option<usize>,
    amount: i64,
}

/// Waits for every stored transfer to end (read through `server`) and
/// checks the balances against the model of the succeeded ones.
async fn check(server: &Server, names: &[String], sent: &[Sent], within: Duration) -> (usize, usize) {
    let mut expected = vec![START; names.len()];
    let (mut succeeded, mut absent) = (0, 0);
    let deadline = Instant::now() + within;
    for s in sent {
        let (status, _) = server.get(&format!("/v1/transactions/{}", s.gid)).await;
        if status == 404 {
            absent += 1;
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let tx = server.wait_final(&s.gid, left).await;
        match (tx["status"].as_str(), s.to) {
            (Some("succeeded"), Some(to)) => {
                expected[s.from] -= s.amount;
                expected[to] += s.amount;
                succeeded += 1;
            }
            (Some("failed"), None) => {}
            (status, to) => panic!("{}: {status:?} (to {to:?}): {tx}", s.gid),
        }
    }
    let mut total = 0;
    for (i, name) in names.iter().enumerate() {
        let balance = server.balance("bank", name).await;
        assert_eq!(balance, expected[i], "{name}: every effect applied exactly once");
        total += balance;
    }
    assert_eq!(total, START * names.len() as i64, "money is conserved");
    (succeeded, absent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_work_and_take_over_a_killed_one() {
    const SAGAS: usize = 1_000;
    let a = first_instance().await;
    let mut b = a.another();
    let c = a.another();
    b.ready().await;
    c.ready().await;
    let names: Vec<String> = (0..16).map(|i| format!("acct{i}")).collect();
    seed(&a, &names).await;
    // Each instance's heartbeat is there, whichever instance answers.
    let (status, cluster) = c.get("/v1/cluster").await;
    assert_eq!(status, 200, "{cluster}");
    let nodes = |view: &Value| -> Vec<String> {
        let mut nodes: Vec<String> =
            view["instances"].as_array().unwrap().iter().map(|i| i["node"].as_str().unwrap().to_owned()).collect();
        nodes.sort();
        nodes
    };
    assert_eq!(nodes(&cluster).len(), 3, "{cluster}");
    let b_node = b.get("/v1/cluster").await.1["node"].as_str().unwrap().to_owned();
    assert!(nodes(&cluster).contains(&b_node), "{cluster}");
    // Uploaded through one instance, served by every one.
    for other in [&b, &c] {
        let (status, body) = other.get("/v1/modules/bank").await;
        assert_eq!(status, 200, "{body}");
    }

    let bases = [a.base.clone(), b.base.clone(), c.base.clone()];
    let alive = Arc::new([AtomicBool::new(true), AtomicBool::new(true), AtomicBool::new(true)]);
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..6)
        .map(|k| {
            let (http, bases, alive, next, names) =
                (a.http.clone(), bases.clone(), alive.clone(), next.clone(), names.clone());
            tokio::spawn(async move {
                let mut sent = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= SAGAS {
                        return sent;
                    }
                    let from = (i * 7 + k) % names.len();
                    let to = (i % 5 != 4).then_some((from + 1 + i % 15) % names.len());
                    let target = to.map_or("nobody".to_owned(), |t| names[t].clone());
                    let gid = format!("c-{i}");
                    let amount = 1 + (i % 9) as i64;
                    let body = transfer("bank", Some(&gid), &names[from], &target, amount, i % 3 == 0);
                    // Round-robin over the live instances.
                    let mut instance = i % 3;
                    while !alive[instance].load(Ordering::Relaxed) {
                        instance = (instance + 1) % 3;
                    }
                    let _ = http.post(format!("{}/v1/transactions", bases[instance])).json(&body).send().await;
                    // Sent (whatever the answer: a request cut by the kill may
                    // have been stored); the end result decides.
                    sent.push(Sent { gid, from, to, amount });
                }
            })
        })
        .collect();
    while next.load(Ordering::Relaxed) < SAGAS / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    alive[1].store(false, Ordering::Relaxed);
    b.kill();
    let killed = Instant::now();
    let mut sent = Vec::new();
    for client in clients {
        sent.extend(client.await.unwrap());
    }
    // Every stored transfer ends: B's within its lease plus the scan and the
    // work itself.
    let (succeeded, absent) = check(&a, &names, &sent, LEASE + Duration::from_secs(30)).await;
    eprintln!(
        "{} sent, {succeeded} succeeded, {absent} never stored; all final {:?} after the kill",
        sent.len(),
        killed.elapsed()
    );
    assert_eq!(sent.len(), SAGAS);
    // The barrier rows tell the same story: each op's row at most once; a
    // saga that succeeded has both actions and no compensation; one that
    // rolled back never committed its credit to the missing account (its
    // null compensation wrote that action's row, with reason `compensate`).
    let mut business = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&a.database_url("default")).await.unwrap()
    };
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT gid::text, branch_id::text, op::text, count(*) FROM wasmtx.barrier WHERE reason = op GROUP BY 1, 2, 3",
    )
    .fetch_all(&mut business)
    .await
    .unwrap();
    let row = |gid: &str, branch: &str, op: &str| {
        rows.iter().find(|r| r.0 == gid && r.1 == branch && r.2 == op).map_or(0, |r| r.3)
    };
    assert!(rows.iter().all(|r| r.3 == 1), "an op's barrier row twice: {:?}", rows.iter().find(|r| r.3 > 1));
    for s in &sent {
        let (status, tx) = a.get(&format!("/v1/transactions/{}", s.gid)).await;
        if status == 404 {
            continue;
        }
        match tx["status"].as_str() {
            Some("succeeded") => {
                assert_eq!((row(&s.gid, "01", "action"), row(&s.gid, "02", "action")), (1, 1), "{}", s.gid);
                assert_eq!(row(&s.gid, "01", "compensate") + row(&s.gid, "02", "compensate"), 0, "{}", s.gid);
            }
            _ => assert_eq!(row(&s.gid, "02", "action"), 0, "{}: the missing account was never credited", s.gid),
        }
    }
    // The killed instance has dropped out of the list (no heartbeat for three periods).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, view) = a.get("/v1/cluster").await;
        if !nodes(&view).contains(&b_node) {
            assert_eq!(nodes(&view).len(), 2, "{view}");
            break;
        }
        assert!(Instant::now() < deadline, "the dead instance is still listed: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(succeeded > SAGAS / 2, "the load did too little: {succeeded}");
    assert!(absent < 10, "at most the requests the kill cut off are missing: {absent}");
}

/// Uploads the test guest through `a`, then submits `count` transfers of 5 to
/// `b` without waiting, each starting with `slow` branches that compute for
/// 300 ms.
async fn slow_transfers(
    a: &Server,
    b: &Server,
    names: &[String],
    prefix: &str,
    count: usize,
    slow: usize,
) -> Vec<Sent> {
    let (status, body) = a.upload("misbehave", example("misbehave-rust")).await;
    assert_eq!(status, 201, "{body}");
    let busy = json!({
        "action": { "module": "misbehave", "function": "busy" },
        "compensate": { "module": "misbehave", "function": "echo" },
        "payload": 300,
    });
    let mut sent = Vec::new();
    for i in 0..count {
        let (from, to) = (i % names.len(), (i + 3) % names.len());
        let gid = format!("{prefix}-{i}");
        let mut body = transfer("bank", Some(&gid), &names[from], &names[to], 5, false);
        for _ in 0..slow {
            body["branches"].as_array_mut().unwrap().insert(0, busy.clone());
        }
        let (status, answer) = b.post("/v1/transactions", &body).await;
        assert_eq!(status, 202, "{answer}");
        sent.push(Sent { gid, from, to: Some(to), amount: 5 });
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_paused_past_its_lease_is_taken_over_and_fenced_when_it_wakes() {
    let a = first_instance().await;
    let b = a.another();
    b.ready().await;
    let names: Vec<String> = (0..8).map(|i| format!("acct{i}")).collect();
    seed(&a, &names).await;
    // Each saga first computes for 300 ms on B, then moves the money.
    let sent = slow_transfers(&a, &b, &names, "p", 20, 1).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    b.pause();
    // A takes every one over once B's leases lapse, while B sleeps. (Should
    // this fail, dropping B still ends it: SIGKILL stops a stopped process.)
    let (succeeded, _) = check(&a, &names, &sent, LEASE + Duration::from_secs(30)).await;
    b.resume();
    assert_eq!(succeeded, sent.len(), "all finished by A while B was paused");
    // B wakes with drivers that lost their leases: their writes are fenced,
    // and whatever they run again is a barrier no-op.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (again, _) = check(&a, &names, &sent, Duration::from_secs(10)).await;
    assert_eq!(again, sent.len());
    let log = b.log();
    assert!(log.contains("another owner took the transaction over; stopping here"), "B's log: {log}");
    for s in &sent {
        let (_, tx) = b.get(&format!("/v1/transactions/{}", s.gid)).await;
        assert_eq!(tx["status"], "succeeded", "B sees the same end: {tx}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_instance_hands_its_work_back_at_once() {
    // The default lease (30 s): only a handover finishes the work sooner.
    let a = Server::start(Backend::Postgres).await;
    a.ready().await;
    let mut b = a.another();
    b.ready().await;
    let names: Vec<String> = (0..8).map(|i| format!("acct{i}")).collect();
    seed(&a, &names).await;
    // Each saga first computes for 3 × 300 ms on B, then moves the money.
    let sent = slow_transfers(&a, &b, &names, "t", 10, 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = b.terminate();
    assert!(status.success(), "SIGTERM ends it cleanly: {status:?}");
    let stopped = Instant::now();
    let (succeeded, _) = check(&a, &names, &sent, Duration::from_secs(15)).await;
    assert_eq!(succeeded, sent.len());
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "taken over long before the 30 s lease: {:?}",
        stopped.elapsed()
    );
}
