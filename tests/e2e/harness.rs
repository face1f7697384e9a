//! Starts the real `wasmtx` binary on port 0 with its own data directory and,
//! for the Postgres variant, fresh Postgres databases for the coordinator
//! store and the business database; talks to it over HTTP.
//!
//! Needs `target/debug/wasmtx` and `target/examples/transfer-rust.wasm`:
//! `cargo xtask test` builds both before running the tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sqlx::Connection;

/// Where coordinator state and the business database live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}

/// Cargo's target directory (honours CARGO_TARGET_DIR).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

/// A built guest component, e.g. `example("transfer-rust")`.
pub fn example(name: &str) -> Vec<u8> {
    let path = target_dir().join("examples").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; build the example components first with `cargo xtask examples`", path.display())
    })
}

pub fn binary() -> PathBuf {
    let path = target_dir().join("debug").join("wasmtx");
    assert!(path.exists(), "{} is missing: run `cargo build -p wasmtx` (cargo xtask test does)", path.display());
    path
}

/// Creates an empty database on the local MariaDB (127.0.0.1:3306, root;
/// `cargo xtask test` starts it) and returns its URL.
pub async fn fresh_mariadb() -> String {
    use sqlx::Connection;
    let admin = "mysql://root@127.0.0.1:3306/mysql";
    let name = format!("wasmtx_e2e_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::MySqlConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("MySQL tests need MariaDB at {admin}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
    format!("mysql://root@127.0.0.1:3306/{name}")
}

/// A Redis business database URL on the local Redis (127.0.0.1:6379, db 0;
/// `cargo xtask test` starts it) with a key prefix of its own, so that
/// tests running at once never share keys (nor barrier keys).
pub fn fresh_redis() -> String {
    let base = std::env::var("WASMTX_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    format!("{base}?prefix=e2e-{}:", uuid::Uuid::new_v4().simple())
}

/// Creates an empty Postgres database and returns its URL.
pub async fn fresh_postgres() -> String {
    let admin = std::env::var("WASMTX_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("wasmtx_e2e_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("end-to-end tests need Postgres at {admin}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// How to start a server process: in which directory, with which arguments
/// and environment. `WASMTX_*` variables of the test process are never passed on.
#[derive(Debug, Clone)]
pub struct Launch {
    pub cwd: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where the server's stderr (its log) goes; inherited when `None`.
    pub log: Option<PathBuf>,
}

/// One running server process.
pub struct Server {
    child: Option<Child>,
    launch: Launch,
    pub base: String,
    pub http: reqwest::Client,
    /// Removed when the server is dropped.
    scratch: PathBuf,
}

/// What a test server gets beyond the defaults of [`Server::start`].
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// Lines added to the config file.
    pub config: String,
    /// More business databases, by name, of the server's backend (fresh ones).
    pub databases: Vec<&'static str>,
    /// On Postgres, the store and the `default` database in one database (on
    /// SQLite they always share the data dir's file).
    pub colocated: bool,
    /// Environment variables of the server process (beyond `WASMTX_LOG`).
    pub env: Vec<(String, String)>,
    /// More business databases given by URL (e.g. MariaDB), by name.
    pub database_urls: Vec<(String, String)>,
}

impl Server {
    /// A server with a fresh data dir; for Postgres, fresh store and business databases.
    pub async fn start(backend: Backend) -> Server {
        Server::start_with(backend, Extra::default()).await
    }

    /// [`Server::start`] with more config and databases.
    pub async fn start_with(backend: Backend, extra: Extra) -> Server {
        let data_dir = std::env::temp_dir().join(format!("wasmtx-e2e-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        // Short retry intervals keep recovery tests quick; one compile cache
        // for every test server saves compiling the same component again.
        let config = data_dir.join("test.toml");
        let cache = target_dir().join("test-compile-cache");
        std::fs::write(
            &config,
            format!(
                "retry_base_ms = 100\nretry_cap_ms = 1000\ncompile_cache = {:?}\n{}\n",
                cache.display().to_string(),
                extra.config
            ),
        )
        .expect("write test config");
        let mut args = vec!["serve".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
        args.extend(["--data-dir".to_owned(), data_dir.display().to_string()]);
        args.extend(["--config".to_owned(), config.display().to_string()]);
        if backend == Backend::Postgres {
            let store = fresh_postgres().await;
            let default = if extra.colocated { store.clone() } else { fresh_postgres().await };
            args.extend(["--store".to_owned(), store, "--database".to_owned(), format!("default={default}")]);
        }
        for name in extra.databases {
            let url = match backend {
                Backend::Postgres => fresh_postgres().await,
                Backend::Sqlite => format!("sqlite://{}", data_dir.join(format!("{name}.sqlite")).display()),
            };
            args.extend(["--database".to_owned(), format!("{name}={url}")]);
        }
        for (name, url) in extra.database_urls {
            args.extend(["--database".to_owned(), format!("{name}={url}")]);
        }
        let mut env = vec![("WASMTX_LOG".into(), "wasmtx=debug,info".into())];
        env.extend(extra.env);
        let launch = Launch { cwd: data_dir.clone(), args, env, log: None };
        Server::launch(launch, data_dir).expect("start wasmtx")
    }

    /// Another instance on the same store and business databases (Postgres),
    /// with its own data dir (so its own node id) and the same config.
    pub fn another(&self) -> Server {
        let data_dir = scratch_dir("wasmtx-e2e");
        let config = data_dir.join("test.toml");
        let ours = self.flag("--config").expect("started with --config");
        std::fs::copy(&ours, &config).expect("copy the config");
        let mut launch = self.launch.clone();
        for i in 1..launch.args.len() {
            match launch.args[i - 1].as_str() {
                "--data-dir" => launch.args[i] = data_dir.display().to_string(),
                "--config" => launch.args[i] = config.display().to_string(),
                _ => {}
            }
        }
        launch.cwd = data_dir.clone();
        launch.log = Some(data_dir.join("server.log"));
        Server::launch(launch, data_dir).expect("start another wasmtx")
    }

    /// What the server logged so far, when started with a log file ([`Server::another`]).
    pub fn log(&self) -> String {
        self.launch.log.as_ref().map(|p| std::fs::read_to_string(p).unwrap_or_default()).unwrap_or_default()
    }

    /// SIGSTOP: the process stops where it is, holding what it holds.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Server::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill").arg(signal).arg(child.id().to_string()).status().expect("kill");
        assert!(status.success(), "kill {signal}");
    }

    /// Starts the binary as `launch` says and waits for its "listening" line.
    /// `scratch` is removed when the server is dropped.
    pub fn launch(launch: Launch, scratch: PathBuf) -> Result<Server> {
        let mut server = Server { child: None, launch, base: String::new(), http: reqwest::Client::new(), scratch };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<()> {
        let stderr = match &self.launch.log {
            Some(path) => Stdio::from(std::fs::File::create(path).context("create log file")?),
            None => Stdio::inherit(),
        };
        let mut child = command(&self.launch).stdout(Stdio::piped()).stderr(stderr).spawn().context("spawn wasmtx")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("wasmtx listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("unexpected first line from wasmtx: {line:?}");
        };
        self.base = addr.to_owned();
        self.child = Some(child);
        Ok(())
    }

    /// The `--data-dir` the server was started with.
    pub fn data_dir(&self) -> PathBuf {
        self.flag("--data-dir").map(PathBuf::from).expect("started with --data-dir")
    }

    /// The URL of business database `name`: from `--database name=URL`, or
    /// the default SQLite file in the data dir.
    pub fn database_url(&self, name: &str) -> String {
        let prefix = format!("{name}=");
        let given =
            self.launch.args.windows(2).filter(|w| w[0] == "--database").find_map(|w| w[1].strip_prefix(&prefix));
        match given {
            Some(url) => url.to_owned(),
            None => format!("sqlite://{}", self.data_dir().join("wasmtx.sqlite").display()),
        }
    }

    /// The `--store` URL a Postgres server was started with.
    pub fn store_url(&self) -> String {
        self.flag("--store").expect("started with --store")
    }

    /// The value after `flag` on the server's command line.
    fn flag(&self, flag: &str) -> Option<String> {
        self.launch.args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone())
    }

    /// Waits until the server answers (the store is open once it listens,
    /// but the health check proves the API is up).
    pub async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "server did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no graceful anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill wasmtx");
            child.wait().expect("reap wasmtx");
        }
    }

    /// Starts the process again with the same data dir, store and databases.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().expect("restart wasmtx");
        self.ready().await;
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill -TERM");
        assert!(status.success());
        let status = child.wait().expect("wait");
        self.child = None;
        status
    }

    pub async fn upload(&self, name: &str, bytes: Vec<u8>) -> (u16, Value) {
        let r = self.http.put(format!("{}/v1/modules/{name}", self.base)).body(bytes).send().await.expect("PUT");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.http.post(format!("{}{path}", self.base)).json(body).send().await.expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.http.put(format!("{}{path}", self.base)).json(body).send().await.expect("PUT");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.http.delete(format!("{}{path}", self.base)).json(body).send().await.expect("DELETE");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Calls a module function directly and expects success.
    pub async fn call(&self, module: &str, function: &str, payload: Value) -> Value {
        let (status, body) = self.post(&format!("/v1/modules/{module}/call/{function}"), &payload).await;
        assert_eq!(status, 200, "{module}.{function}({payload}) → {body}");
        body
    }

    pub async fn balance(&self, module: &str, id: &str) -> i64 {
        let body = self.call(module, "balance", json!({ "id": id })).await;
        body["balance"].as_i64().unwrap_or_else(|| panic!("balance of {id}: {body}"))
    }

    /// Polls until the transaction is final; returns it.
    pub async fn wait_final(&self, gid: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self.get(&format!("/v1/transactions/{gid}")).await;
            if status == 200 && matches!(body["status"].as_str(), Some("succeeded" | "failed")) {
                return body;
            }
            assert!(Instant::now() < deadline, "transaction {gid} not final after {within:?}: {status} {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A transaction view's ops as `branch op status` lines, in stored order.
pub fn op_statuses(tx: &Value) -> Vec<String> {
    tx["branches"]
        .as_array()
        .expect("a transaction view with its branches")
        .iter()
        .map(|b| {
            let text = |key: &str| b[key].as_str().unwrap_or_default().to_owned();
            format!("{} {} {}", text("branch_id"), text("op"), text("status"))
        })
        .collect()
}

/// The final transaction `gid` once its history holds the change to its final
/// status (history is written a moment after the transaction).
pub async fn history_settled(server: &Server, gid: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tx = server.wait_final(gid, Duration::from_secs(10)).await;
        let settled = tx["history"]
            .as_array()
            .is_some_and(|h| h.iter().any(|e| e["kind"] == "status" && e["outcome"] == tx["status"]));
        if settled {
            return tx;
        }
        assert!(Instant::now() < deadline, "the history of {gid} never showed its end: {tx}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// The server command for `launch`, without the test process's `WASMTX_*` variables.
pub fn command(launch: &Launch) -> Command {
    let mut command = Command::new(binary());
    command.args(&launch.args).current_dir(&launch.cwd);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WASMTX_") {
            command.env_remove(key);
        }
    }
    command.envs(launch.env.iter().map(|(k, v)| (k, v)));
    command
}

/// A new empty directory under the system's temporary directory.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A transfer saga over the bank module: debit `from`, credit `to`.
pub fn transfer(module: &str, gid: Option<&str>, from: &str, to: &str, amount: i64, wait: bool) -> Value {
    let payload = json!({ "from": from, "to": to, "amount": amount });
    let mut body = json!({
        "mode": "saga",
        "wait": wait,
        "branches": [
            { "action": { "module": module, "function": "trans-out" },
              "compensate": { "module": module, "function": "trans-out-revert" },
              "payload": payload },
            { "action": { "module": module, "function": "trans-in" },
              "compensate": { "module": module, "function": "trans-in-revert" },
              "payload": payload },
        ],
    });
    if let Some(gid) = gid {
        body["gid"] = json!(gid);
    }
    body
}

/// Parses the API's RFC 3339 UTC timestamps (`2026-11-26T05:40:07.123Z`).
pub fn parse_time(text: &str) -> std::time::SystemTime {
    let num = |range: std::ops::Range<usize>| -> i64 {
        text.get(range).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad timestamp {text:?}"))
    };
    let (y, mo, d) = (num(0..4), num(5..7), num(8..10));
    let (h, mi, s, ms) = (num(11..13), num(14..16), num(17..19), num(20..23));
    // Days from civil (Howard Hinnant).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let millis = ((days * 86_400 + h * 3600 + mi * 60 + s) * 1000 + ms) as u64;
    std::time::UNIX_EPOCH + Duration::from_millis(millis)
}

#[test]
fn timestamps_parse_back() {
    let t = parse_time("2026-11-26T05:40:07.123Z");
    assert_eq!(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis(), 1_795_671_607_123);
    let t = parse_time("2000-02-29T00:00:00.000Z");
    assert_eq!(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis(), 951_782_400_000);
}
