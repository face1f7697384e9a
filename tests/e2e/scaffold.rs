//! A branch author's loop, in every language, with the real binary: in a
//! directory outside the repository, `wasmtx guest new --lang L demo`, then
//! `wasmtx guest build`, then the scaffold's own test, then a server that runs
//! the component in a one-branch saga and in a direct call.
//!
//! Tools are shared with `cargo xtask examples` (`WASMTX_TOOLS` is
//! `target/tools`, so the componentize-py venv is reused), and Rust scaffolds
//! share one Cargo target directory under `target/`, so that wit-bindgen and
//! serde are built once. Each test starts one server on SQLite and uploads one
//! module: a Python or JavaScript upload compiles an interpreter.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use serde_json::json;

use crate::harness::{Backend, Server, binary, scratch_dir, target_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_scaffold_builds_tests_and_runs() {
    author_loop("rust", &["cargo", "test", "--quiet"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_scaffold_builds_tests_and_runs() {
    author_loop("python", &["python3", "-B", "-m", "unittest"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_scaffold_builds_tests_and_runs() {
    author_loop("js", &["npm", "test"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_scaffold_builds_tests_and_runs() {
    author_loop("c", &["make", "test"]).await;
}

/// `new`, `build`, the scaffold's test `test`, then the component on a server.
async fn author_loop(lang: &str, test: &[&str]) {
    let work = scratch_dir(&format!("wasmtx-scaffold-{lang}"));
    let module = work.join("demo");

    let created = succeed(wasmtx(&work).args(["guest", "new", "--lang", lang, "demo"]));
    assert!(created.starts_with(&format!("created the {lang} module demo in ")), "{created}");
    assert!(module.join("README.md").is_file(), "{created}");

    let started = Instant::now();
    // The last line is the CLI's; the tools may print before it.
    let built = succeed(wasmtx(&module).args(["guest", "build"]));
    let built = built.lines().last().unwrap_or_default();
    eprintln!("built the {lang} scaffold in {:.1} s", started.elapsed().as_secs_f64());
    let component = module.join("demo.wasm");
    let size = std::fs::metadata(&component).expect("demo.wasm").len();
    assert!(built.starts_with(&format!("{} (", component.canonicalize().unwrap().display())), "{built}");
    assert!(built.ends_with(&format!("{size} bytes)")), "{built}");

    let mut test_command = Command::new(test[0]);
    test_command.args(&test[1..]).current_dir(&module).env("CARGO_TARGET_DIR", cargo_target_dir());
    succeed(&mut test_command);

    let server = Server::start(Backend::Sqlite).await;
    server.ready().await;
    let started = Instant::now();
    let (status, body) = server.upload("demo", std::fs::read(&component).unwrap()).await;
    assert_eq!(status, 201, "upload: {body}");
    assert_eq!(body["functions"], json!(["hello"]), "{body}");
    eprintln!("uploaded the {lang} scaffold in {:.1} s", started.elapsed().as_secs_f64());

    let greeting = server.call("demo", "hello", json!({ "name": "Ada" })).await;
    assert_eq!(greeting, json!({ "greeting": "Hello, Ada!" }));
    let (status, body) = server.post("/v1/modules/demo/call/hello", &json!({ "name": "" })).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body, json!({ "error": { "code": "branch_failure", "message": "name must not be empty" } }));

    let saga = json!({
        "mode": "saga",
        "wait": true,
        "branches": [{
            "action": { "module": "demo", "function": "hello" },
            "compensate": { "module": "demo", "function": "hello" },
            "payload": { "name": "Ada" },
        }],
    });
    let (status, body) = server.post("/v1/transactions", &saga).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    let gid = body["gid"].as_str().expect("gid");
    let (status, tx) = server.get(&format!("/v1/transactions/{gid}")).await;
    assert_eq!(status, 200, "{tx}");
    assert_eq!(tx["branches"][0]["op"], "action", "{tx}");
    assert_eq!(tx["branches"][0]["status"], "succeeded", "{tx}");

    drop(server);
    std::fs::remove_dir_all(&work).expect("remove the scaffold");
}

#[test]
fn new_refuses_bad_names_and_occupied_directories() {
    let work = scratch_dir("wasmtx-scaffold-refusals");
    let error = fail(wasmtx(&work).args(["guest", "new", "--lang", "python", "Demo"]));
    assert_eq!(
        error,
        "error: module name \"Demo\" is invalid: use 1 to 64 characters of a-z, 0-9, '-' and '_', starting with a \
         letter or digit\n"
    );
    let error = fail(wasmtx(&work).args(["guest", "new", "--lang", "rust", "1demo"]));
    assert!(error.contains("a Rust module's name must start with a letter"), "{error}");

    std::fs::create_dir(work.join("demo")).unwrap();
    std::fs::write(work.join("demo/notes.txt"), "mine").unwrap();
    let error = fail(wasmtx(&work).args(["guest", "new", "--lang", "c", "demo"]));
    assert!(error.ends_with("demo exists and is not empty: choose another name or directory\n"), "{error}");
    assert_eq!(std::fs::read_dir(work.join("demo")).unwrap().count(), 1, "nothing was written");

    let error = fail(wasmtx(&work).args(["guest", "new", "--lang", "c", "other", "--sdk"]).arg(&work));
    assert!(error.starts_with("error: no wasmtx SDK at "), "{error}");
    assert!(!work.join("other").exists());

    let error = fail(wasmtx(&work.join("demo")).args(["guest", "build"]));
    assert!(error.contains("holds no module: expected Cargo.toml (Rust), app.py (Python)"), "{error}");
    std::fs::remove_dir_all(&work).unwrap();
}

/// The `wasmtx` binary, run in `dir`, without the test process's `WASMTX_*`
/// variables, with the tools of `cargo xtask examples`.
fn wasmtx(dir: &Path) -> Command {
    let mut command = Command::new(binary());
    command.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WASMTX_") {
            command.env_remove(key);
        }
    }
    command.env("WASMTX_TOOLS", target_dir().join("tools")).env("CARGO_TARGET_DIR", cargo_target_dir());
    command
}

/// One Cargo target directory for every Rust scaffold, so that dependencies
/// are built once.
fn cargo_target_dir() -> std::path::PathBuf {
    target_dir().join("scaffold-guests")
}

/// Runs `command`; its stdout, or a panic with both streams unless it succeeded.
fn succeed(command: &mut Command) -> String {
    let output = run(command);
    assert!(output.status.success(), "{command:?} failed: {}", streams(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `command`, which must exit with 1; its stderr.
fn fail(command: &mut Command) -> String {
    let output = run(command);
    assert_eq!(output.status.code(), Some(1), "{command:?}: {}", streams(&output));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn streams(output: &Output) -> String {
    format!(
        "\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
