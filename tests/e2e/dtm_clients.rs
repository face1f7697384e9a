//! DTM's own Python client, `dtmcli` from PyPI (pinned in
//! `tests/dtm/requirements.txt`), against the server's DTM-compatible API
//! (`/api/dtmsvr`): the `unittest` suites in `tests/dtm` run with the venv
//! that `cargo xtask test` makes (`target/dtm-venv`), `DTM_SERVER` pointing
//! at the server and `WASMTX_SERVER` at its native API. Their branches are
//! HTTP services the suites run themselves, and the example bank uploaded
//! here as `bank` (`wasm://bank/...` steps; accounts `alice` and `bob`).
//! They cover sagas, messages, client-driven TCC (`tcc_global_transaction`,
//! nested branches included) and dtmcli's sub-transaction barrier, which
//! needs MySQL: the local MariaDB at 127.0.0.1:3306 (user root), or where
//! `DTM_MYSQL_HOST`/`DTM_MYSQL_PORT`/`DTM_MYSQL_USER`/`DTM_MYSQL_PASSWORD`
//! (passed through) point; the suites fail, never skip, without it.
//!
//! SQLite only: the DTM routes sit above the store, which the other suites
//! run on both backends.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::json;

use crate::harness::{Backend, Extra, Server, example, target_dir, workspace_root};

/// The venv's interpreter; a clear failure when `cargo xtask test` has not made it.
fn venv_python() -> PathBuf {
    let python = target_dir().join("dtm-venv").join("bin").join("python");
    assert!(
        python.exists(),
        "{} is missing: `cargo xtask test` creates the venv and installs tests/dtm/requirements.txt into it",
        python.display()
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dtmcli_python_client_runs_sagas_and_messages_unchanged() {
    let python = venv_python();
    let extra = Extra { config: "http_allow = [\"127.0.0.1\"]\n".to_owned(), ..Extra::default() };
    let server = Server::start_with(Backend::Sqlite, extra).await;
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "upload: {body}");
    let accounts = json!({ "accounts": [{ "id": "alice", "balance": 1000 }, { "id": "bob", "balance": 0 }] });
    server.call("bank", "setup", accounts).await;

    let output = tokio::process::Command::new(&python)
        .args(["-B", "-m", "unittest", "discover", "-s", "tests/dtm", "-v"])
        .current_dir(workspace_root())
        .env("DTM_SERVER", format!("{}/api/dtmsvr", server.base))
        .env("WASMTX_SERVER", &server.base)
        // The suites talk to 127.0.0.1 only: a proxy from the environment must not intercept.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the dtmcli suites failed ({}):\n{stdout}\n{stderr}", output.status);
    // Every case applies to wasmtx; a skip means a suite lost its setting.
    assert!(!stderr.contains("skipped"), "a dtmcli case was skipped:\n{stdout}\n{stderr}");
}
