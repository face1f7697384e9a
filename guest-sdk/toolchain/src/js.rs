//! Builds a JavaScript module (`app.js`) with esbuild and ComponentizeJS
//! (SpiderMonkey).
//!
//! Both CLIs come from npm, pinned by the module's `package.json` (and its
//! `package-lock.json`, when it has one), and are installed with `npm ci` (or
//! `npm install` without a lock file) when `node_modules` is missing or older
//! than the lock file (or `package.json`). The module imports the SDK
//! (`wasmtx-guest`, a `file:` dependency on `guest-sdk/js`) by its bare name,
//! which ComponentizeJS does not resolve: it loads one module and the relative
//! imports under its directory. So esbuild first bundles `app.js` and the SDK
//! into one module in the toolchain's work directory, leaving the WIT imports
//! (`wasmtx:*`) for ComponentizeJS, which makes their bindings from the WIT
//! package at build time. Nothing is written into the module's directory but
//! `node_modules` (and the lock file `npm install` writes).

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use crate::{Toolchain, process};

/// Bundles `dir/app.js` and builds the bundle into the component `out`.
pub fn build(dir: &Path, out: &Path, toolchain: &Toolchain) -> Result<()> {
    install_packages(dir)?;
    let work = &toolchain.work;
    fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    let bundle = work.join("app.js");
    for (tool, package) in [("esbuild", "esbuild"), ("componentize-js", "@bytecodealliance/componentize-js")] {
        if !dir.join("node_modules/.bin").join(tool).exists() {
            bail!("{} has no {tool}: package.json must pin {package} (see guest-sdk/js/README.md)", dir.display());
        }
    }

    let mut esbuild = process::command(dir.join("node_modules/.bin/esbuild"));
    esbuild
        .args(["app.js", "--bundle", "--format=esm", "--platform=neutral", "--log-level=warning"])
        // The WIT imports stay imports: ComponentizeJS links them.
        .arg("--external:wasmtx:*")
        .arg(format!("--outfile={}", bundle.display()))
        .current_dir(dir);
    process::run(&mut esbuild)?;

    let mut componentize = process::command(dir.join("node_modules/.bin/componentize-js"));
    componentize
        .arg("app.js")
        .arg("--wit")
        .arg(toolchain.wit())
        .args(["-n", "branch"])
        // The host links no wasi:http; the rest of WASI 0.2 is there.
        .args(["-d", "http", "fetch-event"])
        .arg("-o")
        .arg(std::path::absolute(out)?)
        // ComponentizeJS reads the module from, and only from, its working directory.
        .current_dir(work);
    process::run(&mut componentize)
}

/// Runs `npm ci` (`npm install` without a lock file) unless `node_modules` was
/// installed from the current lock file (or `package.json`).
fn install_packages(dir: &Path) -> Result<()> {
    let lock = dir.join("package-lock.json");
    let locked = lock.exists();
    let manifest = if locked { lock } else { dir.join("package.json") };
    let changed = modified(&manifest).with_context(|| format!("cannot read {}", manifest.display()))?;
    // npm writes this copy of the lock file on every install.
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    if installed.is_ok_and(|installed| installed >= changed) {
        return Ok(());
    }
    let mut npm = process::command("npm");
    npm.args([if locked { "ci" } else { "install" }, "--no-audit", "--no-fund"]).current_dir(dir);
    process::run(&mut npm).context("JavaScript modules need Node.js 20.6 or newer, with npm")
}

fn modified(path: &Path) -> Result<SystemTime> {
    Ok(fs::metadata(path)?.modified()?)
}
