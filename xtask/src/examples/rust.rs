//! Builds a Rust example: the Cargo package `<example>-rust` in
//! `examples/<example>/rust`, a `cdylib` that cargo builds straight into a
//! component for `wasm32-wasip2`.
//!
//! Guests build in their own target directory, `target/guests`, so that they
//! never wait for the lock of the main build (and the two never evict each
//! other's artifacts), with the workspace's `guest` profile (size-optimised,
//! LTO, `panic = "abort"`).

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

use crate::process;

pub const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";
const TARGET_DIR: &str = "target/guests";

/// Builds `examples/<example>/rust` (package `<example>-rust`) into the component `out`.
pub fn build(root: &Path, example: &str, out: &Path) -> Result<()> {
    build_package(root, &format!("{example}-rust"), out)
}

/// Builds the test guest `tests/guests/<name>` (package `<name>`) into `out`.
pub fn build_test_guest(root: &Path, name: &str, out: &Path) -> Result<()> {
    build_package(root, name, out)
}

fn build_package(root: &Path, package: &str, out: &Path) -> Result<()> {
    ensure_target()?;
    let mut cargo = process::cargo(root);
    cargo.args(["build", "--package", package, "--target", TARGET, "--profile", PROFILE]);
    cargo.args(["--target-dir", TARGET_DIR]);
    process::run(&mut cargo)?;
    // Cargo names the artifact after the library: dashes become underscores.
    let artifact = root.join(TARGET_DIR).join(TARGET).join(PROFILE).join(format!("{}.wasm", package.replace('-', "_")));
    fs::copy(&artifact, out).with_context(|| format!("cannot copy {} to {}", artifact.display(), out.display()))?;
    Ok(())
}

/// `rustup target add wasm32-wasip2`, once per xtask run. `rust-toolchain.toml`
/// lists the target, but with `RUSTUP_AUTO_INSTALL=0` rustup does not fetch it
/// by itself; when it is installed already this is a quick no-op.
pub fn ensure_target() -> Result<()> {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut rustup = process::command("rustup");
    rustup.args(["target", "add", TARGET]).current_dir(crate::project_root());
    process::run_quietly(&mut rustup).with_context(|| format!("cannot install the Rust target {TARGET}"))?;
    DONE.store(true, Ordering::Relaxed);
    Ok(())
}
