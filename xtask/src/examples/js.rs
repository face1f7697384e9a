//! Builds a JavaScript example with ComponentizeJS (SpiderMonkey).
//!
//! The CLI is `@bytecodealliance/componentize-js`, pinned by the example's
//! `package.json` and `package-lock.json` and installed with `npm ci` when
//! `node_modules` is missing or older than the lock file. The entry module is
//! `app.js`; ComponentizeJS makes its bindings from `wit/` at build time.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::process;

/// Builds `examples/<example>/js/app.js` into the component `out`.
pub fn build(root: &Path, example: &str, out: &Path) -> Result<()> {
    let dir = root.join("examples").join(example).join("js");
    install_packages(&dir)?;
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
        .current_dir(&dir);
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
