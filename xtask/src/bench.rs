//! `cargo xtask bench`: sagas per second, latency, commits, CPU and memory
//! of the release server, on the embedded default (SQLite) and on Postgres
//! (store and business database in one database), with the Postgres commit
//! ceiling measured by pgbench in the same run.
//!
//! Per store: a fresh server, the Rust transfer module, 1,000 accounts; a
//! warm-up; a closed loop of two-branch transfer sagas (`wait: true`) between
//! random accounts for `--duration` seconds at `--concurrency` clients (the
//! peak); then an open loop at half that rate (the latency figures a user
//! sees below saturation). With `--history N`, load continues until N sagas
//! have finished and the peak is measured again, to show throughput as
//! history grows. The load generator is plain blocking HTTP/1.1 on threads.
//!
//! Also: pgbench's single-row insert ceiling at the same concurrency and at
//! 32 clients, and one Rust branch invocation (fresh instance, call, drop)
//! from the guests benchmark. Prints a table and one JSON line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{examples, postgres, process};

/// Bench settings (`cargo xtask bench --duration 20 --concurrency 16 --history 0`).
#[derive(Debug, Clone)]
struct Settings {
    duration: Duration,
    concurrency: usize,
    warmup: Duration,
    history: u64,
    stores: Vec<String>,
    mode: Mode,
    /// The transfer workflow module, for `--mode workflow`.
    workflow: Option<Vec<u8>>,
}

/// Which transaction the clients submit: the transfer as a saga (the
/// default), a TCC, an XA (Postgres only), a message or a workflow (the
/// transfer workflow example over the same bank).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Saga,
    Tcc,
    Xa,
    Msg,
    Workflow,
}

const ACCOUNTS: usize = 1_000;

fn settings(args: &[String]) -> Result<Settings> {
    let mut s = Settings {
        duration: Duration::from_secs(20),
        concurrency: 16,
        warmup: Duration::from_secs(3),
        history: 0,
        stores: vec!["sqlite".into(), "postgres".into()],
        mode: Mode::Saga,
        workflow: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--duration" => s.duration = Duration::from_secs(value.parse().context("--duration SECONDS")?),
            "--concurrency" => s.concurrency = value.parse().context("--concurrency N")?,
            "--warmup" => s.warmup = Duration::from_secs(value.parse().context("--warmup SECONDS")?),
            "--history" => s.history = value.parse().context("--history N")?,
            "--stores" => s.stores = value.split(',').map(str::to_owned).collect(),
            "--mode" => {
                s.mode = match value.as_str() {
                    "saga" => Mode::Saga,
                    "tcc" => Mode::Tcc,
                    "xa" => Mode::Xa,
                    "msg" => Mode::Msg,
                    "workflow" => Mode::Workflow,
                    other => bail!("--mode {other}: saga, tcc, xa, msg or workflow"),
                }
            }
            other => {
                bail!(
                    "unknown bench flag {other} (flags: --duration, --concurrency, --warmup, --history, --stores, --mode)"
                )
            }
        }
    }
    if s.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if s.mode == Mode::Xa && s.stores.iter().any(|st| st != "postgres") {
        bail!("--mode xa needs --stores postgres: SQLite cannot prepare transactions");
    }
    Ok(s)
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut s = settings(args)?;
    examples::build(root, &["transfer-rust".to_owned(), "transfer-workflow-rust".to_owned()])?;
    if s.mode == Mode::Workflow {
        s.workflow = Some(std::fs::read(target_dir(root).join("examples").join("transfer-workflow-rust.wasm"))?);
    }
    process::run(process::cargo(root).args(["build", "--release", "--package", "wasmtx", "--bin", "wasmtx"]))?;
    postgres::ensure_running()?;
    if s.mode == Mode::Xa {
        postgres::ensure_prepared_transactions()?;
    }
    let binary = target_dir(root).join("release").join("wasmtx");
    let module = std::fs::read(target_dir(root).join("examples").join("transfer-rust.wasm"))?;
    eprintln!(
        "bench: {:?} transfers, {} s peak at {} clients, {} s at half rate, {} s warm-up, per store; {} cores",
        s.mode,
        s.duration.as_secs(),
        s.concurrency,
        (s.duration / 2).as_secs(),
        s.warmup.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let mut reports = Vec::new();
    for store in &s.stores {
        reports.push(bench_store(&binary, &module, store, &s)?);
    }
    let ceiling_same = pgbench(s.concurrency)?;
    let ceiling_32 = pgbench(32)?;
    let invoke_us = wasm_invoke_us(root)?;

    println!();
    println!(
        "{:<9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "store",
        "tx/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "commits/s.",
        "cpu ms/s.",
        "idle MB",
        "peak MB",
        "½ p50 ms",
        "½ p99 ms"
    );
    for r in &reports {
        let commits = r.commits_per_saga.map_or_else(|| "n/a".to_owned(), |c| format!("{c:.2}"));
        println!(
            "{:<9} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>10} {:>9.3} {:>9.1} {:>9.1} {:>10.2} {:>10.2}",
            r.store,
            r.peak.rate,
            r.peak.p(0.50),
            r.peak.p(0.90),
            r.peak.p(0.99),
            r.peak.max(),
            commits,
            r.cpu_ms_per_saga,
            r.idle_rss_mb,
            r.peak_rss_mb,
            r.half.p(0.50),
            r.half.p(0.99)
        );
        if let Some((later, finished)) = &r.history {
            println!(
                "{:<9} after {finished} finished sagas: {:.0} sagas/s ({:+.1}% against the first measure)",
                "",
                later.rate,
                (later.rate / r.peak.rate - 1.0) * 100.0
            );
        }
    }
    println!(
        "pgbench single-row inserts: {ceiling_same:.0} tps at {} clients, {ceiling_32:.0} tps at 32",
        s.concurrency
    );
    let pg = reports.iter().find(|r| r.store == "postgres");
    let ratio = pg.and_then(|r| r.commits_per_saga.map(|c| r.peak.rate / (ceiling_same / c)));
    if let (Some(pg), Some(ratio)) = (pg, ratio) {
        println!(
            "postgres: {:.0} sagas/s against a ceiling of {:.0} sagas/s at {:.2} commits per saga: {ratio:.2}x",
            pg.peak.rate,
            ceiling_same / pg.commits_per_saga.unwrap_or(1.0),
            pg.commits_per_saga.unwrap_or(0.0)
        );
    }
    println!("one Rust branch invocation (fresh instance, call, drop): {invoke_us:.1} µs p50");

    let sqlite = reports.iter().find(|r| r.store == "sqlite");
    let mut json = vec![
        format!("\"bench\":\"sagas\""),
        format!("\"mode\":\"{}\"", format!("{:?}", s.mode).to_lowercase()),
        format!("\"concurrency\":{}", s.concurrency),
    ];
    if let Some(pg) = pg {
        json.push(format!("\"sagas_per_sec\":{:.1}", pg.peak.rate));
        json.push(format!("\"p50_ms\":{:.3}", pg.peak.p(0.50)));
        json.push(format!("\"p99_ms\":{:.3}", pg.peak.p(0.99)));
        json.push(format!("\"half_rate_p50_ms\":{:.3}", pg.half.p(0.50)));
        json.push(format!("\"half_rate_p99_ms\":{:.3}", pg.half.p(0.99)));
        json.push(format!("\"commits_per_saga\":{:.3}", pg.commits_per_saga.unwrap_or(f64::NAN)));
        json.push(format!("\"cpu_ms_per_saga\":{:.3}", pg.cpu_ms_per_saga));
        json.push(format!("\"idle_rss_mb\":{:.1}", pg.idle_rss_mb));
        json.push(format!("\"peak_rss_mb\":{:.1}", pg.peak_rss_mb));
        json.push(format!("\"ceiling_ratio\":{:.3}", ratio.unwrap_or(f64::NAN)));
    }
    json.push(format!("\"pg_ceiling_tps\":{ceiling_same:.1}"));
    json.push(format!("\"pg_ceiling_tps_32\":{ceiling_32:.1}"));
    json.push(format!("\"wasm_invoke_us\":{invoke_us:.2}"));
    if let Some(sq) = sqlite {
        json.push(format!("\"sqlite_sagas_per_sec\":{:.1}", sq.peak.rate));
        json.push(format!("\"sqlite_p50_ms\":{:.3}", sq.peak.p(0.50)));
        json.push(format!("\"sqlite_p99_ms\":{:.3}", sq.peak.p(0.99)));
        json.push(format!("\"sqlite_half_rate_p50_ms\":{:.3}", sq.half.p(0.50)));
        json.push(format!("\"sqlite_half_rate_p99_ms\":{:.3}", sq.half.p(0.99)));
        json.push(format!("\"sqlite_idle_rss_mb\":{:.1}", sq.idle_rss_mb));
    }
    for r in &reports {
        if let Some((later, finished)) = &r.history {
            json.push(format!("\"{}_after_{finished}_sagas_per_sec\":{:.1}", r.store, later.rate));
        }
    }
    println!("{{{}}}", json.join(","));
    Ok(())
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

/// What one store measured.
struct Report {
    store: String,
    peak: Latencies,
    half: Latencies,
    commits_per_saga: Option<f64>,
    cpu_ms_per_saga: f64,
    idle_rss_mb: f64,
    peak_rss_mb: f64,
    /// The peak measured again after this many finished sagas.
    history: Option<(Latencies, u64)>,
}

fn bench_store(binary: &Path, module: &[u8], store: &str, s: &Settings) -> Result<Report> {
    eprintln!("==> bench: {store}");
    let data_dir = std::env::temp_dir().join(format!("wasmtx-bench-{}-{}", store, std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir)?;
    let mut args: Vec<String> = vec!["serve".into(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(["--data-dir".into(), data_dir.display().to_string()]);
    let database = match store {
        "sqlite" => None,
        "postgres" => {
            let (url, name) = postgres::create_database("wasmtx_bench")?;
            args.extend(["--store".into(), url.clone(), "--database".into(), format!("default={url}")]);
            Some((url, name))
        }
        other => bail!("unknown store {other:?} (sqlite, postgres)"),
    };
    let server = Server::start(binary, &args)?;
    let result = measure(&server, module, s, database.as_ref().map(|(_, name)| name.as_str()));
    drop(server);
    if let Some((_, name)) = database {
        postgres::drop_database(&name)?;
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut report = result?;
    report.store = store.to_owned();
    Ok(report)
}

fn measure(server: &Server, module: &[u8], s: &Settings, pg_database: Option<&str>) -> Result<Report> {
    let (status, body) = server.request("PUT", "/v1/modules/bank", module)?;
    if status != 201 {
        bail!("upload failed: {status} {}", String::from_utf8_lossy(&body));
    }
    if let Some(workflow) = &s.workflow {
        let (status, body) = server.request("PUT", "/v1/modules/transfer", workflow)?;
        if status != 201 {
            bail!("workflow upload failed: {status} {}", String::from_utf8_lossy(&body));
        }
    }
    let accounts: Vec<String> = (0..ACCOUNTS).map(|i| format!("{{\"id\":\"a{i}\",\"balance\":1000000000}}")).collect();
    let setup = format!("{{\"accounts\":[{}]}}", accounts.join(","));
    let (status, body) = server.request("POST", "/v1/modules/bank/call/setup", setup.as_bytes())?;
    if status != 200 {
        bail!("setup failed: {status} {}", String::from_utf8_lossy(&body));
    }
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss_mb = server.status_kb("VmRSS")? as f64 / 1024.0;

    load(server, s.mode, s.concurrency, s.warmup)?;
    let commits_before = pg_database.map(xact_commit).transpose()?;
    let cpu_before = server.cpu_ms()?;
    let peak = load(server, s.mode, s.concurrency, s.duration)?;
    let cpu_after = server.cpu_ms()?;
    // Postgres publishes backend statistics within a second or so.
    std::thread::sleep(Duration::from_millis(1500));
    let commits_after = pg_database.map(xact_commit).transpose()?;
    let sagas = peak.samples.len() as f64;
    let commits_per_saga = commits_before.zip(commits_after).map(|(b, a)| (a - b) as f64 / sagas);
    let cpu_ms_per_saga = (cpu_after - cpu_before) / sagas;

    let half = paced(server, s.mode, s.concurrency, peak.rate / 2.0, s.duration / 2)?;
    let peak_rss_mb = server.status_kb("VmHWM")? as f64 / 1024.0;

    let history = if s.history > 0 {
        let finished = Arc::new(AtomicU64::new(0));
        eprintln!("bench: loading until {} sagas have finished", s.history);
        while finished.load(Ordering::Relaxed) < s.history {
            let round = load(server, s.mode, s.concurrency, Duration::from_secs(10))?;
            finished.fetch_add(round.samples.len() as u64, Ordering::Relaxed);
        }
        let later = load(server, s.mode, s.concurrency, s.duration)?;
        Some((later, finished.load(Ordering::Relaxed)))
    } else {
        None
    };
    Ok(Report {
        store: String::new(),
        peak,
        half,
        commits_per_saga,
        cpu_ms_per_saga,
        idle_rss_mb,
        peak_rss_mb,
        history,
    })
}

/// Latencies of finished sagas, and the rate they finished at.
struct Latencies {
    samples: Vec<Duration>,
    rate: f64,
}

impl Latencies {
    fn new(mut samples: Vec<Duration>, elapsed: Duration) -> Latencies {
        samples.sort();
        let rate = samples.len() as f64 / elapsed.as_secs_f64();
        Latencies { samples, rate }
    }

    /// The `q` quantile, in milliseconds.
    fn p(&self, q: f64) -> f64 {
        if self.samples.is_empty() {
            return f64::NAN;
        }
        let i = ((self.samples.len() as f64 - 1.0) * q).round() as usize;
        self.samples[i].as_secs_f64() * 1000.0
    }

    fn max(&self) -> f64 {
        self.samples.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    }
}

/// A transfer between two different random accounts, as a transaction of `mode`.
fn body(mode: Mode, rng: &mut u64) -> String {
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        (*rng % ACCOUNTS as u64) as usize
    };
    let from = next();
    let to = (from + 1 + next() % (ACCOUNTS - 1)) % ACCOUNTS;
    let payload = format!("{{\"from\":\"a{from}\",\"to\":\"a{to}\",\"amount\":1}}");
    let f = |name: &str| format!("{{\"module\":\"bank\",\"function\":\"{name}\"}}");
    match mode {
        Mode::Saga => {}
        Mode::Tcc => {
            let branch = |side: &str| {
                format!(
                    "{{\"try\":{},\"confirm\":{},\"cancel\":{},\"payload\":{payload}}}",
                    f(&format!("try-{side}")),
                    f(&format!("confirm-{side}")),
                    f(&format!("cancel-{side}"))
                )
            };
            return format!("{{\"mode\":\"tcc\",\"wait\":true,\"branches\":[{},{}]}}", branch("out"), branch("in"));
        }
        Mode::Xa => {
            return format!(
                "{{\"mode\":\"xa\",\"wait\":true,\"branches\":[{{\"action\":{},\"payload\":{payload}}},{{\"action\":{},\"payload\":{payload}}}]}}",
                f("trans-out"),
                f("trans-in")
            );
        }
        Mode::Workflow => {
            return format!(
                "{{\"mode\":\"workflow\",\"wait\":true,\"workflow\":{{\"module\":\"transfer\"}},\"input\":{payload}}}"
            );
        }
        Mode::Msg => {
            return format!(
                "{{\"mode\":\"msg\",\"wait\":true,\"local\":{{\"module\":\"bank\",\"function\":\"trans-out\",\"payload\":{payload}}},\"branches\":[{{\"action\":{},\"payload\":{payload}}}]}}",
                f("trans-in")
            );
        }
    }
    format!(
        "{{\"mode\":\"saga\",\"wait\":true,\"branches\":[\
         {{\"action\":{{\"module\":\"bank\",\"function\":\"trans-out\"}},\"compensate\":{{\"module\":\"bank\",\"function\":\"trans-out-revert\"}},\"payload\":{payload}}},\
         {{\"action\":{{\"module\":\"bank\",\"function\":\"trans-in\"}},\"compensate\":{{\"module\":\"bank\",\"function\":\"trans-in-revert\"}},\"payload\":{payload}}}]}}"
    )
}

/// Closed loop: `clients` threads, each submitting one saga after another.
fn load(server: &Server, mode: Mode, clients: usize, duration: Duration) -> Result<Latencies> {
    run_clients(server, mode, clients, duration, None)
}

/// Open loop at `rate` sagas/s spread over `clients` threads; latency is
/// measured from each saga's scheduled start, so a stall is not hidden.
fn paced(server: &Server, mode: Mode, clients: usize, rate: f64, duration: Duration) -> Result<Latencies> {
    let interval = Duration::from_secs_f64(clients as f64 / rate.max(1.0));
    run_clients(server, mode, clients, duration, Some(interval))
}

fn run_clients(
    server: &Server,
    mode: Mode,
    clients: usize,
    duration: Duration,
    interval: Option<Duration>,
) -> Result<Latencies> {
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (addr, stop, samples, failures) =
                (server.addr.clone(), stop.clone(), samples.clone(), failures.clone());
            std::thread::spawn(move || {
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
                let mut conn = None;
                let mut mine = Vec::new();
                let first =
                    Instant::now() + interval.map_or(Duration::ZERO, |iv| iv.mul_f64(i as f64 / clients as f64));
                let mut due = first;
                while !stop.load(Ordering::Relaxed) {
                    if interval.is_some() {
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                    }
                    let begun = if interval.is_some() { due } else { Instant::now() };
                    let body = body(mode, &mut rng);
                    match post(&mut conn, &addr, "/v1/transactions", body.as_bytes()) {
                        Ok((200, reply)) if contains(&reply, b"\"succeeded\"") => mine.push(begun.elapsed()),
                        Ok((status, reply)) => {
                            failures.lock().unwrap().push(format!("{status} {}", String::from_utf8_lossy(&reply)))
                        }
                        Err(e) => failures.lock().unwrap().push(format!("{e:#}")),
                    }
                    if let Some(iv) = interval {
                        due += iv;
                    }
                }
                samples.lock().unwrap().extend(mine);
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut panicked = 0;
    for t in threads {
        panicked += usize::from(t.join().is_err());
    }
    let elapsed = started.elapsed();
    if panicked > 0 {
        bail!("{panicked} load threads panicked");
    }
    let failures = failures.lock().unwrap();
    if !failures.is_empty() {
        bail!("{} sagas did not succeed; first: {}", failures.len(), failures[0]);
    }
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    Ok(Latencies::new(samples, elapsed))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One HTTP/1.1 POST on a kept-alive connection. Not retried: a POST that
/// failed half-way may have started a saga, so a failure is reported and the
/// next request opens a new connection.
fn post(conn: &mut Option<BufReader<TcpStream>>, addr: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
    if conn.is_none() {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        *conn = Some(BufReader::new(stream));
    }
    let c = conn.as_mut().context("connection")?;
    let answer = exchange(c, addr, "POST", path, body);
    if answer.is_err() {
        *conn = None;
    }
    answer
}

fn exchange(c: &mut BufReader<TcpStream>, addr: &str, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    c.get_mut().write_all(&request)?;
    let mut line = String::new();
    if c.read_line(&mut line)? == 0 {
        bail!("connection closed");
    }
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("status line")?;
    let mut length = 0usize;
    loop {
        line.clear();
        c.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    let mut reply = vec![0u8; length];
    c.read_exact(&mut reply)?;
    Ok((status, reply))
}

/// The release server, started for one store.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(binary: &Path, args: &[String]) -> Result<Server> {
        let mut child = Command::new(binary)
            .args(args)
            .env("WASMTX_LOG", "warn")
            .env_remove("WASMTX_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("wasmtx listening on http://") else {
            let _ = child.kill();
            bail!("the server did not start: {line:?}");
        };
        Ok(Server { addr: addr.to_owned(), child })
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let stream = TcpStream::connect(&self.addr)?;
        let mut c = BufReader::new(stream);
        exchange(&mut c, &self.addr, method, path, body)
    }

    /// User + system CPU time of the server so far, in milliseconds.
    fn cpu_ms(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the command name (which is in parentheses).
        let rest = stat.rsplit_once(')').context("stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        Ok(ticks * 1000.0 / clock_ticks())
    }

    /// A `kB` field of `/proc/<pid>/status` (VmRSS, VmHWM).
    fn status_kb(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status.lines().find(|l| l.starts_with(field)).with_context(|| format!("no {field}"))?;
        Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

fn clock_ticks() -> f64 {
    process::output(process::command("getconf").arg("CLK_TCK"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Committed transactions of a database so far (`pg_stat_database`).
fn xact_commit(database: &str) -> Result<i64> {
    let sql = format!("SELECT xact_commit FROM pg_stat_database WHERE datname = '{database}'");
    let out = process::output(process::command("psql").args([
        "--no-psqlrc",
        "-At",
        "-d",
        &postgres::admin_url(),
        "-c",
        &sql,
    ]))?;
    Ok(out.trim().parse()?)
}

/// pgbench's single-row insert rate at `clients` clients (10 s), in a database of its own.
fn pgbench(clients: usize) -> Result<f64> {
    let (url, name) = postgres::create_database("wasmtx_bench_pgbench")?;
    let script = std::env::temp_dir().join(format!("wasmtx-pgbench-{}.sql", std::process::id()));
    std::fs::write(&script, "INSERT INTO t (v) VALUES (1);\n")?;
    process::run_quietly(process::command("psql").args([
        "--no-psqlrc",
        "-q",
        "-d",
        &url,
        "-c",
        "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v INT)",
    ]))?;
    let threads = clients.min(std::thread::available_parallelism().map_or(2, |n| n.get()));
    let out = process::output(process::command("pgbench").args([
        "-n",
        "-M",
        "prepared",
        "-T",
        "10",
        "-c",
        &clients.to_string(),
        "-j",
        &threads.to_string(),
        "-f",
        &script.display().to_string(),
        &url,
    ]));
    postgres::drop_database(&name)?;
    let out = out.context("pgbench (Debian: postgresql-contrib or postgresql-client)")?;
    let tps = out
        .lines()
        .find(|l| l.starts_with("tps ="))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no tps in pgbench's output:\n{out}"))?;
    Ok(tps)
}

/// p50 of one Rust branch invocation on a fresh instance, from the guests benchmark.
fn wasm_invoke_us(root: &Path) -> Result<f64> {
    let out = process::output(
        process::cargo(root)
            .args(["bench", "--package", "wasmtx", "--bench", "guests"])
            .env("BENCH_LANGUAGES", "rust")
            .env("BENCH_MODES", "fresh-nodb")
            .env("BENCH_N_COMPILED", "20000"),
    )?;
    let json =
        out.lines().find(|l| l.starts_with("{\"bench\":\"guests\"")).context("no JSON line from the guests bench")?;
    let at = json.find("\"p50_us\":").context("no p50 in the guests bench")? + "\"p50_us\":".len();
    let value: String = json[at..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    Ok(value.parse()?)
}
