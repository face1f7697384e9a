//! The admin UI (`/ui`) in a real browser: `tests/ui/test_ui.py` drives
//! Debian's headless Chromium with Selenium, from the venv `cargo xtask test`
//! makes (`target/ui-venv`, `tests/ui/requirements.txt`), against a server
//! prepared here with one saga that failed (a credit to the missing account
//! `carol`) and one that sleeps an hour between retries. The script checks
//! what the pages show and presses retry-now; this test then checks through
//! the API that the press reached the server, and that the screenshots
//! (`target/ui-screenshots/list.png`, `detail.png`) were written. A second
//! server has a token: the page asks for it and sends what is pasted.
//!
//! SQLite only: the page sits above the store, which other suites run on
//! both backends.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Backend, Extra, Server, example, target_dir, transfer, workspace_root};

/// The venv's interpreter; a clear failure when `cargo xtask test` has not made it.
fn venv_python() -> PathBuf {
    let python = target_dir().join("ui-venv").join("bin").join("python");
    assert!(
        python.exists(),
        "{} is missing: `cargo xtask test` creates the venv and installs tests/ui/requirements.txt into it",
        python.display()
    );
    python
}

/// The transaction once `ready` holds for it (within 10 s).
async fn transaction_when(server: &Server, gid: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, tx) = server.get(&format!("/v1/transactions/{gid}")).await;
        assert_eq!(status, 200, "{tx}");
        if ready(&tx) {
            return tx;
        }
        assert!(Instant::now() < deadline, "{gid} never got there: {tx}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_ui_shows_a_rollback_and_retries_a_sleeping_saga_in_chromium() {
    let python = venv_python();
    let server = Server::start(Backend::Sqlite).await;
    server.ready().await;

    // The page is static, served without auth, under a strict policy.
    let page = server.http.get(format!("{}/ui", server.base)).send().await.expect("GET /ui");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(page.text().await.unwrap().contains("/ui/app.js"));

    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "upload: {body}");
    let accounts = json!({ "accounts": [{ "id": "alice", "balance": 100 }, { "id": "bob", "balance": 0 }] });
    server.call("bank", "setup", accounts).await;

    let (status, failed) =
        server.post("/v1/transactions", &transfer("bank", Some("ui-failed"), "alice", "carol", 30, true)).await;
    assert_eq!((status, &failed["status"]), (200, &json!("failed")), "{failed}");
    // A branch that asks to be retried 1,000 times, an hour apart: it sleeps
    // after its first attempt until someone presses retry-now.
    let flaky = json!({ "module": "bank", "function": "flaky" });
    let retrying = json!({
        "gid": "ui-retrying",
        "mode": "saga",
        "branches": [{ "action": flaky, "compensate": flaky, "payload": { "retries": 1000 } }],
        "options": { "retry_interval": 3600 },
    });
    let (status, body) = server.post("/v1/transactions", &retrying).await;
    assert_eq!(status, 202, "{body}");
    let asleep = transaction_when(&server, "ui-retrying", |tx| tx["next_retry_at"].is_string()).await;
    let first = asleep["branches"][0]["attempts"].as_u64().expect("attempts");

    // A second server, with a token: the page must ask for it, then send it.
    let extra = Extra { config: "token = \"ui-secret\"".into(), ..Extra::default() };
    let guarded = Server::start_with(Backend::Sqlite, extra).await;
    guarded.ready().await;

    let shots = target_dir().join("ui-screenshots");
    for name in ["list.png", "detail.png", "failure.png"] {
        // Only this run's screenshots count.
        let _ = std::fs::remove_file(shots.join(name));
    }
    let run = tokio::process::Command::new(&python)
        .arg("-B")
        .arg(workspace_root().join("tests/ui/test_ui.py"))
        .args(["--server", &server.base, "--failed", "ui-failed", "--retrying", "ui-retrying", "--screenshots"])
        .arg(&shots)
        .args(["--token-server", &guarded.base, "--token", "ui-secret"])
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the UI script ran for three minutes")
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the UI checks failed ({}); see {}:\n{stdout}\n{stderr}",
        output.status,
        shots.join("failure.png").display()
    );

    // The browser's retry-now reached the server and ran the next attempt.
    let tx = transaction_when(&server, "ui-retrying", |tx| tx["branches"][0]["attempts"].as_u64() > Some(first)).await;
    let pressed = tx["history"].as_array().expect("history").iter().any(|e| e["kind"] == "retry-now");
    assert!(pressed, "retry-now is in the history: {tx}");
    assert_eq!(tx["status"], "submitted", "it sleeps again, nothing else changed: {tx}");
    for name in ["list.png", "detail.png"] {
        let png = std::fs::read(shots.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "{name} is a real screenshot");
    }
}
