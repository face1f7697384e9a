//! `cargo xtask test`: the one test command, for a fresh machine as much as for
//! a developer's (it is what `.ci/run` calls).
//!
//! 1. the `wasm32-wasip2` Rust target;
//! 2. Postgres answering (started if needed) with prepared transactions
//!    enabled for the XA tests (set and restarted once if they were off),
//!    MariaDB and Redis answering (started, Redis installed, if needed; what
//!    earlier runs left on them dropped), and curl for the README's quick start;
//! 3. the example components (the end-to-end tests upload them);
//! 4. the venv `target/dtm-venv` with the real DTM Python client
//!    (`tests/dtm/requirements.txt`), which an end-to-end test runs against
//!    the server's DTM-compatible API; and `target/ui-venv` with Selenium
//!    (`tests/ui/requirements.txt`), with which an end-to-end test drives the
//!    admin UI in Debian's headless Chromium (installed in step 2); and
//!    `target/openapi-venv` with Schemathesis (`tests/openapi/requirements.txt`),
//!    which an end-to-end test runs against `GET /v1/openapi.json`;
//! 5. every test binary and the server binary `target/debug/wasmtx` (the
//!    end-to-end tests start it), built once with the feature set the test
//!    run uses, so that wasmtime is compiled once, not twice;
//! 6. every test of the workspace (nextest if installed, else `cargo test`;
//!    tests named `exclusive_*` restart the local Postgres and run alone,
//!    see `.config/nextest.toml`),
//!    then the doc tests (which nextest does not run), then the guest SDKs'
//!    own suites: Python (the machine's python3), JavaScript (`node --test`)
//!    and C (gcc with the address and undefined-behaviour sanitizers; its
//!    component test needs the bindings step 3 generated).
//!
//! `WASMTX_TEST_POSTGRES` passes through to the tests unchanged.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::examples::{self, rust};
use crate::{apt, mariadb, postgres, process, redis};

pub fn run(root: &Path) -> Result<()> {
    step(1, "Rust target wasm32-wasip2");
    rust::ensure_target()?;

    step(2, "Postgres (with prepared transactions), MariaDB, Redis and curl");
    postgres::ensure_running()?;
    mariadb::ensure_running()?;
    mariadb::drop_test_databases()?;
    redis::ensure_running()?;
    redis::drop_test_keys()?;
    postgres::ensure_prepared_transactions()?;
    postgres::drop_test_databases()?;
    apt::ensure("the README quick-start test", &["curl"], || apt::runs("curl"))?;
    apt::ensure("the admin UI's browser test", &["chromium", "chromium-driver"], || {
        apt::runs("chromium") && apt::runs("chromedriver")
    })?;
    apt::ensure("the C guest library's tests", &["gcc", "make"], || apt::runs("gcc") && apt::runs("make"))?;

    step(3, "example components");
    examples::build(root, &[])?;

    step(4, "Python venvs: the DTM client, selenium, schemathesis");
    dtm_venv(root)?;
    ui_venv(root)?;
    openapi_venv(root)?;

    step(5, "server and test binaries");
    let nextest = process::succeeds(process::cargo(root).args(["nextest", "--version"]))?;
    // `--workspace` with test targets unifies features as the test run does;
    // `cargo build -p wasmtx` alone would resolve them differently and
    // compile wasmtime a second time.
    process::run(process::cargo(root).args(["build", "--workspace", "--bins", "--tests"]))?;

    step(6, "tests");
    let tests = if nextest {
        process::run(process::cargo(root).args(["nextest", "run", "--workspace", "--no-fail-fast"]))
    } else {
        eprintln!("cargo-nextest is not installed; using cargo test");
        // Tests named `exclusive_*` restart shared services: after the rest, alone.
        let rest = process::run(process::cargo(root).args([
            "test",
            "--workspace",
            "--no-fail-fast",
            "--",
            "--skip",
            "exclusive_",
        ]));
        let exclusive = process::run(process::cargo(root).args([
            "test",
            "--workspace",
            "--no-fail-fast",
            "--",
            "exclusive_",
            "--test-threads=1",
        ]));
        rest.and(exclusive)
    };
    // The rest run even when a test failed, so that one run reports everything.
    let doc_tests = process::run(process::cargo(root).args(["test", "--workspace", "--doc"]));
    let sdks = sdk_suites(root);
    tests?;
    doc_tests?;
    sdks
}

/// The guest SDKs' unit suites, each against test doubles of the host; every
/// suite runs, and the first failure is reported.
fn sdk_suites(root: &Path) -> Result<()> {
    let python = process::run(process::command("python3").current_dir(root).args([
        "-B",
        "-m",
        "unittest",
        "discover",
        "-s",
        "guest-sdk/python/tests",
        "-t",
        "guest-sdk/python/tests",
    ]));
    // Node 20 takes a directory; later versions read the arguments as globs.
    let js = process::run(process::command("node").current_dir(root).args(["--test", "guest-sdk/js/test/"]));
    let c = process::run(process::command("make").arg("-C").arg(root.join("guest-sdk/c/tests")));
    python?;
    js?;
    c
}

/// Makes `target/dtm-venv` (under `CARGO_TARGET_DIR` if set) with
/// `tests/dtm/requirements.txt` installed, for `tests/e2e/dtm_clients.rs`.
/// A copy of the requirements kept in the venv after a successful install
/// tells a warm run that pip has nothing to do.
fn dtm_venv(root: &Path) -> Result<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let venv = target.join("dtm-venv");
    let python = venv.join("bin/python");
    let requirements = root.join("tests/dtm/requirements.txt");
    let wanted =
        std::fs::read_to_string(&requirements).with_context(|| format!("cannot read {}", requirements.display()))?;
    let installed = venv.join("requirements.installed");
    let imports = || process::succeeds(process::command(&python).args(["-c", "import dtmcli"])).unwrap_or(false);
    if std::fs::read_to_string(&installed).is_ok_and(|text| text == wanted) && imports() {
        return Ok(());
    }
    if !python.exists() {
        // `--clear`: whatever a broken venv left there goes.
        process::run(process::command("python3").args(["-m", "venv", "--clear"]).arg(&venv))
            .context("the DTM client tests need python3 with the venv module (on Debian: python3-venv)")?;
    }
    process::run(
        process::command(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )
    .context("cannot install the DTM client tests' requirements from PyPI")?;
    std::fs::write(&installed, wanted).with_context(|| format!("cannot write {}", installed.display()))
}

/// Makes `target/ui-venv` with `tests/ui/requirements.txt` (Selenium)
/// installed, for `tests/e2e/ui.rs`.
fn ui_venv(root: &Path) -> Result<()> {
    python_venv(root, "ui-venv", "tests/ui/requirements.txt", "selenium", "the admin UI's browser test")
}

/// Makes `target/openapi-venv` with `tests/openapi/requirements.txt`
/// (Schemathesis) installed, for `tests/e2e/openapi.rs`.
fn openapi_venv(root: &Path) -> Result<()> {
    python_venv(root, "openapi-venv", "tests/openapi/requirements.txt", "schemathesis", "the OpenAPI conformance test")
}

/// Makes `target/<name>` (under `CARGO_TARGET_DIR` if set) with the
/// `requirements` file installed, as [`dtm_venv`] does; `module` must import
/// from it; `what` names the tests that need it, for errors.
fn python_venv(root: &Path, name: &str, requirements: &str, module: &str, what: &str) -> Result<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let venv = target.join(name);
    let python = venv.join("bin/python");
    let requirements = root.join(requirements);
    let wanted =
        std::fs::read_to_string(&requirements).with_context(|| format!("cannot read {}", requirements.display()))?;
    let installed = venv.join("requirements.installed");
    let imports =
        || process::succeeds(process::command(&python).args(["-c", &format!("import {module}")])).unwrap_or(false);
    if std::fs::read_to_string(&installed).is_ok_and(|text| text == wanted) && imports() {
        return Ok(());
    }
    if !python.exists() {
        // `--clear`: whatever a broken venv left there goes.
        process::run(process::command("python3").args(["-m", "venv", "--clear"]).arg(&venv))
            .with_context(|| format!("{what} needs python3 with the venv module (on Debian: python3-venv)"))?;
    }
    process::run(
        process::command(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )
    .with_context(|| format!("cannot install the requirements of {what} from PyPI"))?;
    std::fs::write(&installed, wanted).with_context(|| format!("cannot write {}", installed.display()))
}

fn step(n: u8, what: &str) {
    eprintln!("==> [{n}/6] {what}");
}
