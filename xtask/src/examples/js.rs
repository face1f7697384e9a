//! Builds a JavaScript example with esbuild and ComponentizeJS (SpiderMonkey).
//!
//! Both CLIs come from npm, pinned by the example's `package.json` and
//! `package-lock.json`, and are installed with `npm ci` when `node_modules` is
//! missing or older than the lock file. The example imports the SDK
//! (`wasmtx-guest`, a `file:` dependency on `guest-sdk/js`) by its bare name,
//! which ComponentizeJS does not resolve: it loads one module and the relative
//! imports under its directory. So esbuild first bundles `app.js` and the SDK
//! into one module under `target/guests/js/<example>/`, leaving the WIT
//! imports (`wasmtx:*`) for ComponentizeJS, which makes their bindings from
//! `wit/` at build time. Nothing is written into the source tree but
//! `node_modules`.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::process;

/// Bundles `examples/<example>/js/app.js` and builds the bundle into the component `out`.
pub fn build(root: &Path, example: &str, out: &Path) -> Result<()> {
    let dir = root.join("examples").join(example).join("js");
    install_packages(&dir)?;
    let work = root.join("target/guests/js").join(example);
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let bundle = work.join("app.js");

    let mut esbuild = process::command(dir.join("node_modules/.bin/esbuild"));
    esbuild
        .args(["app.js", "--bundle", "--format=esm", "--platform=neutral", "--log-level=warning"])
        // The WIT imports stay imports: ComponentizeJS links them.
        .arg("--external:wasmtx:*")
        .arg(format!("--outfile={}", bundle.display()))
        .current_dir(&dir);
    process::run(&mut esbuild)?;

    let mut componentize = process::command(dir.join("node_modules/.bin/componentize-js"));
    componentize
        .arg("app.js")
        .arg("--wit")
        .arg(root.join("wit"))
        .args(["-n", "branch"])
        // The host links no wasi:http; the rest of WASI 0.2 is there.
        .args(["-d", "http", "fetch-event"])
        .arg("-o")
        .arg(out)
        // ComponentizeJS reads the module from, and only from, its working directory.
        .current_dir(&work);
    process::run(&mut componentize)
}

/// Runs `npm ci` unless `node_modules` was installed from the current lock file.
fn install_packages(dir: &Path) -> Result<()> {
    let locked = modified(&dir.join("package-lock.json"))
        .with_context(|| format!("{} has no package-lock.json", dir.display()))?;
    // npm writes this copy of the lock file on every install.
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    if installed.is_ok_and(|installed| installed >= locked) {
        return Ok(());
    }
    let mut npm = process::command("npm");
    npm.args(["ci", "--no-audit", "--no-fund"]).current_dir(dir);
    process::run(&mut npm).context("JavaScript examples need Node.js 18 or newer, with npm")
}

fn modified(path: &Path) -> Result<SystemTime> {
    Ok(fs::metadata(path)?.modified()?)
}
