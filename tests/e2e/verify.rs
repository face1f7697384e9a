//! The generated-program verifier, CI-sized: random transfer programs of
//! every mode that exists (saga, TCC, message, workflow, and XA on Postgres), some with
//! a misbehaving branch injected (refusing, asking to be retried, trapping
//! until its retry limit, slow), submitted by concurrent clients while
//! instances are SIGKILLed and restarted, or paused past their lease, at
//! seeded moments. Every program's
//! outcome is known in advance, so the check is against an independent
//! model, not against what the server says: every stored transaction ends
//! with the status its program implies, balances equal the model, and money
//! is conserved.
//!
//! `WASMTX_VERIFY_SEED` replays a run (the seed is printed first);
//! `WASMTX_VERIFY_PROGRAMS` (default 120) sizes it, for long runs through
//! `cargo xtask verify`. A failure names the seed and the one program that
//! went wrong.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::harness::{Backend, Server, example};

/// On SQLite (one process by design) the one instance is SIGKILLed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_generated_programs_under_faults_end_as_the_model_says() {
    generated_programs_under_faults_end_as_the_model_says(Backend::Sqlite).await;
}

/// On Postgres two instances share the store; the faults are a SIGKILL of
/// one, a restart of the local Postgres, and a SIGSTOP of the other past its
/// lease. `exclusive_`: it runs alone (the restart cuts every test's
/// connections; see `.config/nextest.toml`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_postgres_generated_programs_under_faults_end_as_the_model_says() {
    generated_programs_under_faults_end_as_the_model_says(Backend::Postgres).await;
}

const ACCOUNTS: usize = 12;
/// Enough that no debit is ever short: programs move at most 9 each.
const START: i64 = 100_000;

/// What an injected branch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Misbehaviour {
    /// Refuses: the transaction rolls back (never injected into a message,
    /// whose deliveries are retried forever).
    Refuse,
    /// Asks to be retried this many times, then succeeds.
    Retry(u32),
    /// Traps on every attempt: `retry_limit` rolls the transaction back.
    Trap,
    /// Computes for a while, then succeeds.
    Slow,
}

#[derive(Debug, Clone)]
struct Program {
    gid: String,
    mode: &'static str,
    from: usize,
    to: usize,
    amount: i64,
    /// The injected branch and where it goes (0: first).
    injected: Option<(usize, Misbehaviour)>,
}

impl Program {
    /// Whether it must succeed: nothing injected that rolls it back.
    fn succeeds(&self) -> bool {
        !matches!(self.injected, Some((_, Misbehaviour::Refuse | Misbehaviour::Trap)))
    }

    fn request(&self, names: &[String], wait: bool) -> Value {
        let payload = json!({ "from": names[self.from], "to": names[self.to], "amount": self.amount });
        let f = |module: &str, function: &str| json!({ "module": module, "function": function });
        let (function, argument) = match self.injected.map(|(_, m)| m) {
            Some(Misbehaviour::Refuse) => ("fail", json!("injected refusal")),
            Some(Misbehaviour::Retry(n)) => ("retry-times", json!(n)),
            Some(Misbehaviour::Trap) => ("trap", Value::Null),
            Some(Misbehaviour::Slow) => ("busy", json!(50)),
            None => ("echo", Value::Null),
        };
        let mut branches: Vec<Value> = match self.mode {
            "saga" => vec![
                json!({ "action": f("bank", "trans-out"), "compensate": f("bank", "trans-out-revert"), "payload": payload }),
                json!({ "action": f("bank", "trans-in"), "compensate": f("bank", "trans-in-revert"), "payload": payload }),
            ],
            "tcc" => ["out", "in"]
                .iter()
                .map(|side| {
                    json!({
                        "try": f("bank", &format!("try-{side}")),
                        "confirm": f("bank", &format!("confirm-{side}")),
                        "cancel": f("bank", &format!("cancel-{side}")),
                        "payload": payload,
                    })
                })
                .collect(),
            "xa" => vec![
                json!({ "action": f("bank", "trans-out"), "payload": payload }),
                json!({ "action": f("bank", "trans-in"), "payload": payload }),
            ],
            "msg" => vec![json!({ "action": f("bank", "trans-in"), "payload": payload })],
            // The script workflow's ops (see tests/guests/workflow-script).
            "workflow" => vec![
                json!({ "call": "trans-out", "compensate": "trans-out-revert", "payload": payload }),
                json!({ "call": "trans-in", "compensate": "trans-in-revert", "payload": payload }),
            ],
            other => unreachable!("mode {other}"),
        };
        if let Some((at, _)) = self.injected {
            let branch = match self.mode {
                "saga" => {
                    json!({ "action": f("misbehave", function), "compensate": f("misbehave", "echo"), "payload": argument })
                }
                "tcc" => json!({
                    "try": f("misbehave", function),
                    "confirm": f("misbehave", "echo"),
                    "cancel": f("misbehave", "echo"),
                    "payload": argument,
                }),
                "workflow" => {
                    json!({ "call": function, "module": "misbehave", "compensate": "echo", "payload": argument })
                }
                _ => json!({ "action": f("misbehave", function), "payload": argument }),
            };
            branches.insert(at.min(branches.len()), branch);
        }
        let mut request = json!({
            "gid": self.gid,
            "mode": self.mode,
            "wait": wait,
            "branches": branches,
            // Only a trapping branch needs a limit to end; without one, errors
            // (a kill, a lock wait) are retried until they pass.
            "options": match (self.injected, self.mode) {
                (Some((_, Misbehaviour::Trap)), _) => json!({ "retry_limit": 2 }),
                // Two XAs can each wait for rows the other's prepared branch
                // holds: the timeout rolls one back (sooner than the default).
                (_, "xa") => json!({ "timeout_to_fail": 10 }),
                _ => json!({}),
            },
        });
        if self.mode == "msg" {
            request["local"] = json!({ "module": "bank", "function": "trans-out", "payload": payload });
        }
        if self.mode == "workflow" {
            let script = request.as_object_mut().expect("an object").remove("branches");
            request["workflow"] = json!({ "module": "script" });
            request["input"] = json!({ "module": "bank", "script": script });
        }
        request
    }
}

/// Restarts the local Postgres cluster (`pg_ctlcluster … restart`).
pub fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a local Postgres cluster under /etc/postgresql")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
        .expect("a cluster version");
    let restarted = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
        .status()
        .expect("pg_ctlcluster");
    assert!(restarted.success(), "restarting Postgres {version}/main");
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn programs(seed: u64, count: usize, backend: Backend) -> Vec<Program> {
    let mut rng = Rng(seed | 1);
    let modes: &[&'static str] = match backend {
        Backend::Postgres => &["saga", "tcc", "msg", "xa", "workflow"],
        Backend::Sqlite => &["saga", "tcc", "msg", "workflow"],
    };
    (0..count)
        .map(|i| {
            let mode = modes[rng.below(modes.len() as u64) as usize];
            let from = rng.below(ACCOUNTS as u64) as usize;
            let to = (from + 1 + rng.below(ACCOUNTS as u64 - 1) as usize) % ACCOUNTS;
            let injected = match rng.below(6) {
                0 if mode != "msg" => Some(Misbehaviour::Refuse),
                1 if mode != "msg" => Some(Misbehaviour::Trap),
                2 => Some(Misbehaviour::Retry(1 + rng.below(2) as u32)),
                3 => Some(Misbehaviour::Slow),
                _ => None,
            }
            .map(|m| (rng.below(3) as usize, m));
            Program { gid: format!("v{seed:x}-{i}"), mode, from, to, amount: 1 + rng.below(9) as i64, injected }
        })
        .collect()
}

async fn generated_programs_under_faults_end_as_the_model_says(backend: Backend) {
    let seed = std::env::var("WASMTX_VERIFY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
    let count = std::env::var("WASMTX_VERIFY_PROGRAMS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    eprintln!("verifier seed {seed} ({count} programs, {backend:?}): WASMTX_VERIFY_SEED={seed} replays it");
    let programs = programs(seed, count, backend);

    // Short leases, so that a paused instance's work is taken over within the test.
    let config = "lease_secs = 3\ndeadline_ms = 2000\n".to_owned();
    let mut server = Server::start_with(backend, crate::harness::Extra { config, ..Default::default() }).await;
    server.ready().await;
    // On Postgres a second instance shares the store: it takes requests too,
    // and is paused past its lease once.
    let second = (backend == Backend::Postgres).then(|| server.another());
    if let Some(second) = &second {
        second.ready().await;
    }
    for (name, component) in
        [("bank", "transfer-rust"), ("misbehave", "misbehave-rust"), ("script", "workflow-script-rust")]
    {
        let (status, body) = server.upload(name, example(component)).await;
        assert_eq!(status, 201, "{body}");
    }
    let names: Vec<String> = (0..ACCOUNTS).map(|i| format!("acct{i}")).collect();
    let accounts: Vec<Value> = names.iter().map(|n| json!({ "id": n, "balance": START })).collect();
    server.call("bank", "setup", json!({ "accounts": accounts })).await;

    // Clients take programs in order, each to an instance in turn, while the
    // first instance is SIGKILLed and restarted, and then (on Postgres) the
    // second paused past its lease, or the first killed again, at seeded
    // points. A request that a fault cut off, or that waited too long, is
    // sent again (same gid, same body), to the next instance.
    let queue = Arc::new(Mutex::new(programs.clone().into_iter().enumerate().rev().collect::<Vec<_>>()));
    let mut bases = vec![server.base.clone()];
    bases.extend(second.iter().map(|s| s.base.clone()));
    let bases = Arc::new(Mutex::new(bases));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (http, bases, queue, names) = (server.http.clone(), bases.clone(), queue.clone(), names.clone());
            tokio::spawn(async move {
                loop {
                    let Some((i, program)) = queue.lock().unwrap().pop() else { return };
                    let request = program.request(&names, i % 2 == 0);
                    for attempt in 0..100 {
                        let url = {
                            let bases = bases.lock().unwrap();
                            format!("{}/v1/transactions", bases[(i + attempt) % bases.len()])
                        };
                        let sent = http.post(url).json(&request).timeout(Duration::from_secs(5)).send().await;
                        match sent {
                            Ok(r) if !r.status().is_server_error() => break,
                            _ => tokio::time::sleep(Duration::from_millis(200)).await,
                        }
                    }
                }
            })
        })
        .collect();
    let mut rng = Rng(seed.rotate_left(17) | 1);
    for quarter in [1, 2, 3] {
        let fault_at = quarter * count / 4 + rng.below(count as u64 / 8 + 1) as usize;
        while count - queue.lock().unwrap().len() < fault_at.min(count) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        match (&second, quarter) {
            (Some(_), 2) => restart_postgres(),
            (Some(second), 3) => {
                second.pause();
                tokio::time::sleep(Duration::from_secs(4)).await;
                second.resume();
            }
            _ => {
                server.kill();
                server.restart().await;
                bases.lock().unwrap()[0] = server.base.clone();
            }
        }
    }
    for client in clients {
        client.await.unwrap();
    }

    let mut expected = [START; ACCOUNTS];
    let (mut stored, mut unsent_messages, mut xa_timeouts) = (0, 0, 0);
    for program in &programs {
        let (status, _) = server.get(&format!("/v1/transactions/{}", program.gid)).await;
        if status == 404 {
            continue;
        }
        stored += 1;
        let tx = server.wait_final(&program.gid, Duration::from_secs(60)).await;
        let want = if program.succeeds() { "succeeded" } else { "failed" };
        // A message whose server died before its local transaction committed
        // fails by design (the back-check writes the rollback row), and then
        // moved nothing: the balances below hold it to that.
        let unsent = program.mode == "msg"
            && tx["status"] == "failed"
            && tx["rollback_reason"].as_str().is_some_and(|r| r.contains("the local transaction did not commit"));
        if unsent {
            unsent_messages += 1;
            continue;
        }
        // An XA that deadlocked with another (each waiting for rows the
        // other's prepared branch holds) is rolled back by its timeout.
        let timed_out = program.mode == "xa"
            && tx["status"] == "failed"
            && tx["rollback_reason"].as_str().is_some_and(|r| r.starts_with("timeout after"));
        if timed_out {
            xa_timeouts += 1;
            continue;
        }
        assert_eq!(tx["status"], want, "seed {seed}: program {program:?} ended wrongly: {tx}");
        if program.succeeds() {
            expected[program.from] -= program.amount;
            expected[program.to] += program.amount;
        }
    }
    assert_eq!(stored, count, "seed {seed}: every program is stored (a cut request is sent again)");
    let mut total = 0;
    for (i, name) in names.iter().enumerate() {
        let balance = server.balance("bank", name).await;
        assert_eq!(balance, expected[i], "seed {seed}: {name} differs from the model");
        total += balance;
    }
    assert_eq!(total, START * ACCOUNTS as i64, "seed {seed}: money is not conserved");
    eprintln!(
        "verifier seed {seed}: {stored} of {count} programs stored, all as the model says \
         ({unsent_messages} messages unsent: a fault came before their local transaction committed; \
         {xa_timeouts} XAs rolled back by their timeout)"
    );
}
