//! The client commands (`wasmtx module …`, `wasmtx tx …`, `wasmtx
//! completions`), run as processes against a real server: uploads, direct
//! calls, sagas submitted from a file and from stdin, show, list with
//! filters, watch, the controls, workflows and signals, tokens, `--json`,
//! and the exit statuses (0 done, 1 a followed transaction failed, 2 usage,
//! server or network error).

use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::harness::{Backend, Extra, Server, binary, example, scratch_dir, transfer};

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts exit status `code`; returns the run for more checks.
    fn exits(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "expected exit {code}: {self:#?}");
        self
    }

    /// Stdout as one JSON document.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// Runs `wasmtx ARGS` against `server` (by `--server`, without the test
/// process's `WASMTX_*` variables), with `stdin` as its standard input.
async fn wasmtx(server: &str, args: &[&str], stdin: Option<&[u8]>) -> Run {
    wasmtx_with(args, &[("WASMTX_SERVER", server)], stdin).await
}

async fn wasmtx_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Run {
    let mut command = tokio::process::Command::new(binary());
    command.args(args).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WASMTX_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("spawn wasmtx");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(bytes).await.expect("write stdin");
        drop(pipe);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("wasmtx {args:?} did not end within a minute"))
        .expect("wait for wasmtx");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The value of `key` in a `key  value` block.
fn field<'a>(stdout: &'a str, key: &str) -> Option<&'a str> {
    stdout.lines().find_map(|l| l.strip_prefix(key).filter(|rest| rest.starts_with("  ")).map(str::trim))
}

/// The cells of a table's line.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write scratch file");
    path.display().to_string()
}

/// A server with the bank module pushed and two accounts, both through the CLI.
async fn bank(dir: &Path) -> Server {
    let server = Server::start(Backend::Sqlite).await;
    server.ready().await;
    let wasm = write(dir, "bank.wasm", &example("transfer-rust"));
    let pushed = wasmtx(&server.base, &["module", "push", "bank", &wasm], None).await.exits(0);
    assert_eq!(field(&pushed.stdout, "name"), Some("bank"), "{pushed:#?}");
    assert!(field(&pushed.stdout, "digest").is_some_and(|d| d.starts_with("sha256:")), "{pushed:#?}");
    assert!(field(&pushed.stdout, "functions").is_some_and(|f| f.contains("trans-out-revert")), "{pushed:#?}");
    let accounts = r#"{"accounts":[{"id":"alice","balance":100},{"id":"bob","balance":0}]}"#;
    let setup = wasmtx(&server.base, &["module", "call", "bank", "setup", accounts], None).await.exits(0);
    assert_eq!(setup.json(), json!({ "accounts": 2 }));
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_are_submitted_shown_listed_and_watched_with_exit_statuses() {
    let dir = scratch_dir("wasmtx-cli");
    let server = bank(&dir).await;
    let base = server.base.as_str();

    let list = wasmtx(base, &["module", "list", "--json"], None).await.exits(0).json();
    assert_eq!(list["modules"][0]["name"], "bank", "{list}");
    let table = wasmtx(base, &["module", "list"], None).await.exits(0).stdout;
    assert!(table.starts_with("NAME  WORLD   DATABASE  DIGEST"), "{table}");
    let shown = wasmtx(base, &["module", "show", "bank", "--json"], None).await.exits(0).json();
    assert_eq!(shown["world"], "branch");
    let balance = wasmtx(base, &["module", "call", "bank", "balance", "-"], Some(br#"{"id":"alice"}"#)).await;
    assert_eq!(balance.exits(0).json(), json!({ "id": "alice", "balance": 100 }));

    // From a file, not waiting: the gid and a running status, exit 0; then watched to its end.
    let file =
        write(&dir, "saga.json", transfer("bank", Some("cli-1"), "alice", "bob", 30, false).to_string().as_bytes());
    let submitted = wasmtx(base, &["tx", "submit", &file], None).await.exits(0);
    assert_eq!(field(&submitted.stdout, "gid"), Some("cli-1"), "{submitted:#?}");
    assert!(field(&submitted.stdout, "status").is_some(), "{submitted:#?}");
    let watched = wasmtx(base, &["tx", "watch", "cli-1", "--interval", "50"], None).await.exits(0);
    assert!(watched.stdout.ends_with("transaction succeeded\n"), "{watched:#?}");
    assert!(watched.stdout.contains("02 action succeeded (attempts 1)\n"), "{watched:#?}");

    // From stdin, waiting, as JSON.
    let request = transfer("bank", Some("cli-2"), "alice", "bob", 5, true).to_string();
    let answer = wasmtx(base, &["--json", "tx", "submit", "-"], Some(request.as_bytes())).await.exits(0).json();
    assert_eq!(answer, json!({ "gid": "cli-2", "status": "succeeded" }));
    assert_eq!(server.balance("bank", "bob").await, 35);

    // A failing saga: exit 1 when followed, its reason shown; show itself exits 0.
    let file =
        write(&dir, "fail.json", transfer("bank", Some("cli-3"), "alice", "carol", 1, false).to_string().as_bytes());
    let failed = wasmtx(base, &["tx", "submit", &file, "--wait"], None).await.exits(1);
    assert_eq!(field(&failed.stdout, "status"), Some("failed"), "{failed:#?}");
    assert!(field(&failed.stdout, "rollback reason").is_some_and(|r| r.contains("carol")), "{failed:#?}");
    let watched = wasmtx(base, &["tx", "watch", "cli-3"], None).await.exits(1);
    assert!(watched.stdout.starts_with("01 action succeeded"), "{watched:#?}");
    assert!(watched.stdout.lines().last().unwrap().starts_with("transaction failed: "), "{watched:#?}");
    let shown = wasmtx(base, &["tx", "show", "cli-3"], None).await.exits(0).stdout;
    let ops: Vec<&str> = shown.lines().skip_while(|l| !l.starts_with("BRANCH")).collect();
    assert_eq!(cells(ops[0]), ["BRANCH", "OP", "TARGET", "STATUS", "ATTEMPTS", "LAST ERROR"], "{shown}");
    assert_eq!(cells(ops[1]), ["01", "action", "bank.trans-out", "succeeded", "1"], "{shown}");
    assert_eq!(cells(ops[3])[..5], ["02", "action", "bank.trans-in", "failed", "1"], "{shown}");
    assert!(cells(ops[3])[5].contains("carol"), "{shown}");
    let column = |line: &str, cell: &str| line.find(cell).unwrap();
    assert_eq!(column(ops[0], "STATUS"), column(ops[3], "failed"), "aligned: {shown}");
    let shown = wasmtx(base, &["tx", "show", "cli-3", "--json"], None).await.exits(0).json();
    assert_eq!(
        crate::harness::op_statuses(&shown),
        ["01 action succeeded", "01 compensate succeeded", "02 action failed", "02 compensate succeeded"]
    );

    // The list, filtered by the server.
    let page =
        wasmtx(base, &["tx", "list", "--status", "failed", "--mode", "saga", "--json"], None).await.exits(0).json();
    let gids: Vec<&str> = page["transactions"].as_array().unwrap().iter().map(|t| t["gid"].as_str().unwrap()).collect();
    assert_eq!(gids, ["cli-3"], "{page}");
    let listed = wasmtx(base, &["tx", "list", "--status", "succeeded", "--limit", "1"], None).await.exits(0);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one row: {listed:#?}");
    assert!(lines[0].starts_with("GID    MODE  STATUS     ATTEMPTS  CREATED"), "{listed:#?}");
    assert!(lines[1].starts_with("cli-2  saga  succeeded  "), "newest first: {listed:#?}");
    assert!(listed.stderr.contains("--cursor cli-2"), "a full page points to the next: {listed:#?}");
    let next = wasmtx(base, &["tx", "list", "--status", "succeeded", "--cursor", "cli-2", "--json"], None).await;
    assert_eq!(next.exits(0).json()["transactions"][0]["gid"], "cli-1");

    // The server's errors: exit 2, its code and message on stderr.
    let refused = wasmtx(base, &["tx", "list", "--status", "done"], None).await.exits(2);
    assert!(refused.stderr.starts_with("error: status must be prepared"), "{refused:#?}");
    assert!(refused.stderr.contains("(invalid_query, HTTP 400)"), "{refused:#?}");
    let unknown = wasmtx(base, &["tx", "show", "nope"], None).await.exits(2);
    assert!(unknown.stderr.contains("(unknown_transaction, HTTP 404)"), "{unknown:#?}");
    let missing = wasmtx(base, &["tx", "submit", "/nonexistent/saga.json"], None).await.exits(2);
    assert!(missing.stderr.starts_with("error: cannot read /nonexistent/saga.json"), "{missing:#?}");
    std::fs::remove_dir_all(&dir).expect("remove scratch dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_start_and_signals_reach_the_server() {
    let dir = scratch_dir("wasmtx-cli");
    let server = bank(&dir).await;
    let base = server.base.as_str();
    let wasm = write(&dir, "transfer.wasm", &example("transfer-workflow-rust"));
    wasmtx(base, &["module", "push", "transfer", &wasm], None).await.exits(0);

    let input = r#"{"from":"alice","to":"bob","amount":5}"#;
    let args = ["tx", "start-workflow", "transfer", "--gid", "wf-1", "--input", input, "--wait", "--json"];
    let answer = wasmtx(base, &args, None).await.exits(0).json();
    assert_eq!(answer, json!({ "gid": "wf-1", "status": "succeeded", "output": { "moved": 5 } }));
    let started =
        wasmtx(base, &["tx", "start-workflow", "transfer", "--gid", "wf-2", "--input", "-"], Some(input.as_bytes()));
    assert!(started.await.exits(0).stdout.starts_with("gid     wf-2\n"));
    let tx = server.wait_final("wf-2", std::time::Duration::from_secs(30)).await;
    assert_eq!(tx["status"], "succeeded");
    assert_eq!(server.balance("bank", "alice").await, 90);

    // The signal's route and its refusals: wf-1 has ended, cli input must be JSON.
    let refused = wasmtx(base, &["tx", "signal", "wf-1", "approve", r#"{"ok":true}"#], None).await.exits(2);
    assert!(refused.stderr.contains("(finished, HTTP 409)"), "{refused:#?}");
    let bad = wasmtx(base, &["tx", "start-workflow", "transfer", "--input", "{not json"], None).await.exits(2);
    assert!(bad.stderr.starts_with("error: --input is not JSON"), "{bad:#?}");
    std::fs::remove_dir_all(&dir).expect("remove scratch dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_and_force_stop_end_stuck_sagas() {
    let dir = scratch_dir("wasmtx-cli");
    let server = Server::start(Backend::Sqlite).await;
    server.ready().await;
    let base = server.base.as_str();
    let wasm = write(&dir, "misbehave.wasm", &example("misbehave-rust"));
    wasmtx(base, &["module", "push", "misbehave", &wasm], None).await.exits(0);
    let stuck = |gid: &str| {
        json!({
            "gid": gid, "mode": "saga", "options": { "retry_interval": 3600 },
            "branches": [
                { "action": { "module": "misbehave", "function": "echo" },
                  "compensate": { "module": "misbehave", "function": "echo" }, "payload": 1 },
                { "action": { "module": "misbehave", "function": "retry" },
                  "compensate": { "module": "misbehave", "function": "echo" }, "payload": "later" },
            ],
        })
        .to_string()
    };
    for gid in ["stuck-1", "stuck-2"] {
        let answer = wasmtx(base, &["--json", "tx", "submit", "-"], Some(stuck(gid).as_bytes())).await.exits(0).json();
        assert_eq!(answer["status"], "submitted", "{answer}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while !server.get(&format!("/v1/transactions/{gid}")).await.1["next_retry_at"].is_string() {
            assert!(std::time::Instant::now() < deadline, "{gid} never got stuck");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let shown = wasmtx(base, &["tx", "show", "stuck-1"], None).await.exits(0).stdout;
    assert!(field(&shown, "next retry").is_some(), "{shown}");

    let aborted = wasmtx(base, &["tx", "abort", "stuck-1", "--reason", "wrong amount"], None).await.exits(0);
    assert_eq!(field(&aborted.stdout, "status"), Some("aborting"), "{aborted:#?}");
    let watched = wasmtx(base, &["tx", "watch", "stuck-1", "--interval", "50"], None).await.exits(1);
    assert!(watched.stdout.ends_with("transaction failed: aborted by local: wrong amount\n"), "{watched:#?}");
    let again = wasmtx(base, &["tx", "abort", "stuck-1"], None).await.exits(2);
    assert!(again.stderr.contains("(not_applicable, HTTP 409)"), "{again:#?}");

    let stopped = wasmtx(base, &["--json", "tx", "force-stop", "stuck-2"], None).await.exits(0).json();
    assert_eq!(stopped["status"], "failed", "{stopped}");
    assert_eq!(crate::harness::op_statuses(&stopped)[3], "02 compensate prepared", "nothing compensated");
    std::fs::remove_dir_all(&dir).expect("remove scratch dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_comes_from_the_flag_or_the_environment() {
    let extra = Extra { config: "token = \"s3cret\"".into(), ..Extra::default() };
    let server = Server::start_with(Backend::Sqlite, extra).await;
    server.ready().await;
    let base = server.base.as_str();
    let refused = wasmtx(base, &["tx", "list"], None).await.exits(2);
    assert!(refused.stderr.contains("(unauthorized, HTTP 401)"), "{refused:#?}");
    let listed = wasmtx(base, &["tx", "list", "--token", "s3cret", "--json"], None).await.exits(0).json();
    assert_eq!(listed["transactions"], json!([]));
    let env = [("WASMTX_SERVER", base), ("WASMTX_TOKEN", "s3cret")];
    wasmtx_with(&["module", "list"], &env, None).await.exits(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_and_bad_arguments_exit_2() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = format!("http://127.0.0.1:{port}");
    let down = wasmtx(&server, &["tx", "list"], None).await.exits(2);
    assert!(down.stderr.starts_with(&format!("error: cannot reach the server at {server}/: ")), "{down:#?}");
    let not_url = wasmtx_with(&["tx", "list", "--server", "localhost"], &[], None).await.exits(2);
    assert!(not_url.stderr.starts_with("error: --server \"localhost\" is not an http:// URL"), "{not_url:#?}");
    for args in
        [&["tx", "show"][..], &["tx", "frobnicate", "x"], &["module", "push", "bank"], &["tx", "list", "--limit", "x"]]
    {
        let run = wasmtx(&server, args, None).await.exits(2);
        assert!(run.stderr.starts_with("error: "), "{args:?}: {run:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_are_scripts_for_each_shell() {
    let bash = wasmtx_with(&["completions", "bash"], &[], None).await.exits(0).stdout;
    assert!(bash.contains("_wasmtx()") && bash.contains("start-workflow") && bash.contains("complete "), "{bash}");
    for shell in ["zsh", "fish"] {
        let script = wasmtx_with(&["completions", shell], &[], None).await.exits(0).stdout;
        assert!(script.contains("force-stop"), "{shell}: {script}");
    }
    wasmtx_with(&["completions", "tcsh"], &[], None).await.exits(2);
}
