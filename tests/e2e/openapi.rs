//! The server against its own OpenAPI document: Schemathesis (PyPI, pinned
//! in `tests/openapi/requirements.txt`, installed by `cargo xtask test` into
//! `target/openapi-venv`) reads `GET /v1/openapi.json` and sends every
//! operation examples, boundary values and fuzzed input, valid and invalid,
//! checking that no answer is a 5xx, that every status is one the document
//! lists for the operation, and that every body matches its schema (errors:
//! the envelope). The test fails, never skips, without the venv.
//!
//! Every operation is fuzzed; none needs excluding. Uploads of random bytes
//! are refused before anything is stored (not a component), calls and
//! controls name random modules and gids, which do not exist, and whatever
//! a fuzzed request does happens on this test's own server and store.
//!
//! SQLite only: the API sits above the store, which the other suites run on
//! both backends.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::harness::{Backend, Server, example, scratch_dir, target_dir, transfer};

/// The venv's `schemathesis`; a clear failure when `cargo xtask test` has not made it.
fn schemathesis() -> PathBuf {
    let program = target_dir().join("openapi-venv").join("bin").join("schemathesis");
    assert!(
        program.exists(),
        "{} is missing: `cargo xtask test` creates the venv and installs tests/openapi/requirements.txt into it",
        program.display()
    );
    program
}

/// The whole run's bound: Schemathesis has no overall limit short of
/// `--max-time`, which would keep fuzzing until it is spent.
const RUN_TIMEOUT: Duration = Duration::from_secs(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_the_api_true_to_its_openapi_document() {
    let schemathesis = schemathesis();
    let server = Server::start(Backend::Sqlite).await;
    server.ready().await;
    // Data, so that lists and views answer with more than empty arrays.
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "upload: {body}");
    let accounts = json!({ "accounts": [{ "id": "alice", "balance": 100 }, { "id": "bob", "balance": 0 }] });
    server.call("bank", "setup", accounts).await;
    let (status, body) = server.post("/v1/transactions", &transfer("bank", None, "alice", "bob", 30, true)).await;
    assert_eq!((status, &body["status"]), (200, &json!("succeeded")), "{body}");
    let subscriber = json!({ "module": "bank", "function": "trans-in" });
    let (status, body) = server.put("/v1/topics/orders/subscribers", &subscriber).await;
    assert_eq!(status, 201, "subscribe: {body}");

    let (status, document) = server.get("/v1/openapi.json").await;
    assert_eq!(status, 200, "{document}");
    let operations: usize =
        document["paths"].as_object().expect("paths").values().map(|p| p.as_object().map_or(0, |o| o.len())).sum();

    // Schemathesis writes nothing of its own into the workspace.
    let scratch = scratch_dir("wasmtx-schemathesis");
    let run = tokio::process::Command::new(&schemathesis)
        .arg("run")
        .arg(format!("{}/v1/openapi.json", server.base))
        .args(["--checks", "not_a_server_error,status_code_conformance,response_schema_conformance"])
        // One worker: with more, Hypothesis's caches (not thread-safe) now and
        // then fail a run with an error of its own.
        .args(["--max-examples", "20", "--request-timeout", "10", "--workers", "1"])
        .args(["--generation-database", "none", "--no-color"])
        .current_dir(&scratch)
        // The server is on 127.0.0.1: a proxy from the environment must not intercept.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran longer than {RUN_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", schemathesis.display()));
    let _ = std::fs::remove_dir_all(&scratch);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "schemathesis found problems ({}):\n{stdout}\n{stderr}", output.status);
    // Every operation was exercised, but for `GET /v1/openapi.json`, which
    // Schemathesis leaves out as the document's own.
    let summary = |label: &str| {
        let line = stdout.lines().find_map(|l| l.trim().strip_prefix(label)).map(str::trim);
        line.unwrap_or_else(|| panic!("no {label:?} in the summary:\n{stdout}")).to_owned()
    };
    let expected = operations - 1;
    assert!(expected >= 16, "the document has {operations} operations");
    assert_eq!(summary("Selected:"), format!("{expected}/{expected}"), "{stdout}");
    assert_eq!(summary("Tested:"), expected.to_string(), "{stdout}");
}
