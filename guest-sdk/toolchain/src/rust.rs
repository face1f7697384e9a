//! Builds a Rust module: the Cargo package in the module's directory, a
//! `cdylib` that cargo builds straight into a component for `wasm32-wasip2`.
//!
//! The package may stand alone (a scaffold has an empty `[workspace]` table) or
//! be a member of a workspace (the examples): `cargo metadata` says which
//! package the directory holds, what its library is called and where Cargo
//! puts it, so nothing here guesses a path. The profile and target directory
//! come from the [`Toolchain`] (xtask: the workspace's `guest` profile in
//! `target/guests`, so guests never wait for the main build's lock; the CLI:
//! the package's own `release` profile and target directory).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{Toolchain, process};

pub const TARGET: &str = "wasm32-wasip2";

/// Builds the package in `dir` into the component `out`.
pub fn build(dir: &Path, out: &Path, toolchain: &Toolchain) -> Result<()> {
    let package = package(dir)?;
    ensure_target(dir)?;
    let mut cargo = process::cargo(dir);
    cargo.args(["build", "--package", &package.name, "--target", TARGET, "--profile", &toolchain.cargo_profile]);
    if let Some(target_dir) = &toolchain.cargo_target_dir {
        cargo.arg("--target-dir").arg(target_dir);
    }
    process::run(&mut cargo)?;
    let target_dir = toolchain.cargo_target_dir.clone().unwrap_or(package.target_dir);
    // Cargo names the artifact after the library (`-` already `_` in its name).
    let profile_dir = if toolchain.cargo_profile == "dev" { "debug" } else { toolchain.cargo_profile.as_str() };
    let artifact = target_dir.join(TARGET).join(profile_dir).join(format!("{}.wasm", package.library));
    fs::copy(&artifact, out).with_context(|| format!("cannot copy {} to {}", artifact.display(), out.display()))?;
    Ok(())
}

/// What `cargo metadata` says about the package whose manifest is `dir/Cargo.toml`.
#[derive(Debug)]
struct Package {
    name: String,
    /// The `cdylib` target's name.
    library: String,
    /// Cargo's target directory for it, unless the toolchain names one.
    target_dir: PathBuf,
}

fn package(dir: &Path) -> Result<Package> {
    let manifest = dir.join("Cargo.toml");
    let manifest = manifest.canonicalize().with_context(|| format!("cannot find {}", manifest.display()))?;
    let mut metadata = process::cargo(dir);
    metadata.args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"]).arg(&manifest);
    let text = process::output(&mut metadata)
        .with_context(|| format!("cannot read the Cargo package in {} (is Rust installed?)", dir.display()))?;
    let metadata: Value = serde_json::from_str(&text).context("cargo metadata printed no JSON")?;
    package_in(&metadata, &manifest)
}

/// The package of `manifest` in the output of `cargo metadata`.
fn package_in(metadata: &Value, manifest: &Path) -> Result<Package> {
    let packages = metadata["packages"].as_array().context("cargo metadata lists no packages")?;
    let package = packages
        .iter()
        .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(manifest))
        .with_context(|| format!("cargo metadata does not list {}", manifest.display()))?;
    let name = package["name"].as_str().context("a package without a name")?.to_owned();
    let targets = package["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
    let is_cdylib = |t: &&Value| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib"));
    let Some(library) = targets.iter().find(is_cdylib).and_then(|t| t["name"].as_str()) else {
        bail!("{} builds no component: add `[lib] crate-type = [\"cdylib\"]`", manifest.display());
    };
    let target_dir = metadata["target_directory"].as_str().context("cargo metadata names no target directory")?;
    Ok(Package { name, library: library.to_owned(), target_dir: PathBuf::from(target_dir) })
}

/// `rustup target add wasm32-wasip2` in `dir` (for the toolchain that applies
/// there), once per process. A `rust-toolchain.toml` may list the target, but
/// with `RUSTUP_AUTO_INSTALL=0` rustup does not fetch it by itself; when it is
/// installed already this is a quick no-op.
pub fn ensure_target(dir: &Path) -> Result<()> {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut rustup = process::command("rustup");
    rustup.args(["target", "add", TARGET]).current_dir(dir);
    process::run_quietly(&mut rustup).with_context(|| {
        format!("cannot install the Rust target {TARGET} (Rust modules need rustup: `rustup target add {TARGET}`)")
    })?;
    DONE.store(true, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_package_and_its_library_come_from_cargo_metadata() {
        let metadata = json!({
            "target_directory": "/w/target",
            "packages": [
                { "name": "other", "manifest_path": "/w/other/Cargo.toml",
                  "targets": [{ "name": "other", "kind": ["cdylib"] }] },
                { "name": "bank-v2", "manifest_path": "/w/bank/Cargo.toml",
                  "targets": [{ "name": "build-script-build", "kind": ["custom-build"] },
                              { "name": "bank_v2", "kind": ["cdylib"] }] },
            ],
        });
        let package = package_in(&metadata, Path::new("/w/bank/Cargo.toml")).unwrap();
        assert_eq!((package.name.as_str(), package.library.as_str()), ("bank-v2", "bank_v2"));
        assert_eq!(package.target_dir, Path::new("/w/target"));
        let e = package_in(&metadata, Path::new("/w/none/Cargo.toml")).unwrap_err().to_string();
        assert_eq!(e, "cargo metadata does not list /w/none/Cargo.toml");
    }

    #[test]
    fn a_package_without_a_cdylib_is_refused() {
        let metadata = json!({
            "target_directory": "/w/target",
            "packages": [{ "name": "lib", "manifest_path": "/w/Cargo.toml",
                           "targets": [{ "name": "lib", "kind": ["lib"] }] }],
        });
        let e = package_in(&metadata, Path::new("/w/Cargo.toml")).unwrap_err().to_string();
        assert_eq!(e, "/w/Cargo.toml builds no component: add `[lib] crate-type = [\"cdylib\"]`");
    }
}
