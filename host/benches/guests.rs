//! Per-invocation cost of the transfer guest in each language, on a fresh
//! instance per call and on a reused instance.
//!
//! One invocation = (instantiate, for fresh) + `handler.invoke("balance")`,
//! which makes one `db.query` on an in-memory SQLite transaction, + (drop, for
//! fresh). The `-nodb` modes run the same call without a database: the guest's
//! `db.query` fails at once (and the guest answers `retry`), which leaves the
//! guest's own cost without the SQLite round trip. `instantiate` makes and drops
//! a fresh instance without calling it: what is left of `fresh` is the call
//! in a new instance (its first touches of copy-on-write memory, its lazily
//! initialised function tables). Prints a table and one JSON
//! line. Run it with
//! `cargo xtask bench-guests` (builds the components, then this in release).
//!
//! Environment: `BENCH_N_COMPILED` (iterations for Rust/C, default 5000),
//! `BENCH_N_INTERPRETED` (Python/JS, default 500), `BENCH_LANGUAGES` and
//! `BENCH_MODES` (comma-separated; default all).

use std::time::{Duration, Instant};

use wasmtx::database::{Database, LocalTx};
use wasmtx::model::Op;
use wasmtx::sandbox::{Invocation, InvokeError, Limits, Runner, Sandbox};

const LANGUAGES: &[(&str, bool)] = &[("rust", false), ("c", false), ("python", true), ("js", true)];

fn env_n(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn invocation(function: &str, payload: &str) -> Invocation {
    Invocation {
        function: function.to_owned(),
        gid: "bench".to_owned(),
        branch_id: "01".to_owned(),
        op: Op::Call,
        attempt: 1,
        headers: Vec::new(),
        payload: payload.as_bytes().to_vec(),
        module: "bench".to_owned(),
    }
}

struct Figures {
    lang: &'static str,
    mode: &'static str,
    n: usize,
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
}

/// The same call with no database: the guest's query fails and it answers `retry`.
async fn measure_without_db(sandbox: &Sandbox, runner: &Runner, n: usize) -> (usize, Vec<Duration>) {
    let warmup = (n / 10).max(5);
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let started = Instant::now();
        let (r, _) = sandbox.run(runner, invocation("balance", r#"{"id":"alice"}"#), None).await;
        let took = started.elapsed();
        match r {
            Err(InvokeError::Retry(m)) if m.contains("no database") => {}
            other => panic!("expected the guest's retry for a missing database, got {other:?}"),
        }
        if i >= warmup {
            samples.push(took);
        }
    }
    (n, samples)
}

/// A transaction holding the `setup` of one account, as the guest wrote it.
async fn begin_with_account(sandbox: &Sandbox, db: &Database, runner: &Runner) -> LocalTx {
    let setup = r#"{"accounts":[{"id":"alice","balance":100}]}"#;
    let (r, tx) = sandbox.run(runner, invocation("setup", setup), Some(db.begin().await.expect("begin"))).await;
    r.expect("setup");
    tx.expect("transaction handed back")
}

/// Calls per transaction: a branch may hold SQLite's writer only for
/// `sqlite_hold`, so the transaction is renewed (untimed) every so often.
const CALLS_PER_TRANSACTION: usize = 50;

/// A fresh instance made and dropped, never called: the share of `fresh`
/// that is instantiation (the rest is the call in a new instance).
async fn measure_instantiation(sandbox: &Sandbox, runner: &Runner, n: usize) -> (usize, Vec<Duration>) {
    let warmup = (n / 10).max(5);
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let started = Instant::now();
        let prepared = sandbox.prepare(runner, Instant::now() + sandbox.limits().deadline).await.expect("instantiate");
        drop(prepared);
        if i >= warmup {
            samples.push(started.elapsed());
        }
    }
    (n, samples)
}

async fn measure(sandbox: &Sandbox, db: &Database, runner: &Runner, n: usize) -> (usize, Vec<Duration>) {
    let mut tx: Option<LocalTx> = None;
    // Warm-up: first calls fault in pages and fill caches.
    let warmup = (n / 10).max(5);
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        if i % CALLS_PER_TRANSACTION == 0 {
            if let Some(old) = tx.take() {
                old.rollback().await.expect("rollback");
            }
            tx = Some(begin_with_account(sandbox, db, runner).await);
        }
        let started = Instant::now();
        let (r, back) = sandbox.run(runner, invocation("balance", r#"{"id":"alice"}"#), tx.take()).await;
        let took = started.elapsed();
        let out = r.expect("balance");
        assert!(out.starts_with(b"{"), "unexpected output {:?}", String::from_utf8_lossy(&out));
        tx = back;
        if i >= warmup {
            samples.push(took);
        }
    }
    tx.expect("transaction handed back").rollback().await.expect("rollback");
    (n, samples)
}

fn summarise(lang: &'static str, mode: &'static str, n: usize, mut samples: Vec<Duration>) -> Figures {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| us(samples[((samples.len() as f64 - 1.0) * q).round() as usize]);
    let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64;
    Figures { lang, mode, n, p50_us: at(0.50), p99_us: at(0.99), mean_us: mean }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or(root.join("target"));
        let sandbox = Sandbox::new(Limits::default()).expect("sandbox");
        let db = Database::connect("sqlite::memory:", &Default::default()).await.expect("sqlite");
        let mut results = Vec::new();
        let chosen = |var: &str, name: &str| std::env::var(var).map_or(true, |list| list.split(',').any(|x| x == name));
        for &(lang, interpreted) in LANGUAGES.iter().filter(|(lang, _)| chosen("BENCH_LANGUAGES", lang)) {
            let path = target.join("examples").join(format!("transfer-{lang}.wasm"));
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask examples` first", path.display()));
            let compile_started = Instant::now();
            let compiled = sandbox.compile(&bytes).expect("compile");
            eprintln!("transfer-{lang}: {} bytes, compiled in {:?}", bytes.len(), compile_started.elapsed());
            let n = if interpreted { env_n("BENCH_N_INTERPRETED", 500) } else { env_n("BENCH_N_COMPILED", 5000) };
            let fresh = Runner::fresh(compiled.clone());
            let reused = Runner::reused(std::sync::Arc::new(sandbox.instance_pool(compiled, u32::MAX, 1)));
            if chosen("BENCH_MODES", "fresh") {
                let (n1, s) = measure(&sandbox, &db, &fresh, n).await;
                results.push(summarise(lang, "fresh", n1, s));
            }
            if chosen("BENCH_MODES", "reused") {
                let (n2, s) = measure(&sandbox, &db, &reused, n).await;
                results.push(summarise(lang, "reused", n2, s));
            }
            if chosen("BENCH_MODES", "instantiate") {
                let (n5, s) = measure_instantiation(&sandbox, &fresh, n).await;
                results.push(summarise(lang, "instantiate", n5, s));
            }
            if chosen("BENCH_MODES", "fresh-nodb") {
                let (n3, s) = measure_without_db(&sandbox, &fresh, n).await;
                results.push(summarise(lang, "fresh-nodb", n3, s));
            }
            if chosen("BENCH_MODES", "reused-nodb") {
                let (n4, s) = measure_without_db(&sandbox, &reused, n).await;
                results.push(summarise(lang, "reused-nodb", n4, s));
            }
        }

        println!("{:<8} {:<11} {:>6} {:>10} {:>10} {:>10}", "language", "mode", "n", "p50 µs", "p99 µs", "mean µs");
        for f in &results {
            println!(
                "{:<8} {:<11} {:>6} {:>10.1} {:>10.1} {:>10.1}",
                f.lang, f.mode, f.n, f.p50_us, f.p99_us, f.mean_us
            );
        }
        let json: Vec<String> = results
            .iter()
            .map(|f| {
                format!(
                    r#"{{"language":"{}","mode":"{}","n":{},"p50_us":{:.1},"p99_us":{:.1},"mean_us":{:.1}}}"#,
                    f.lang, f.mode, f.n, f.p50_us, f.p99_us, f.mean_us
                )
            })
            .collect();
        println!(r#"{{"bench":"guests","unit":"microseconds per invocation","results":[{}]}}"#, json.join(","));
    });
}
