//! Installs Debian packages a step needs when they are missing (xtask's test
//! command must work on a fresh machine). Needs root; otherwise, or when the
//! caller does not want packages installed, it says which command to run.

use anyhow::{Context, Result, bail};

use crate::process;

/// Makes `ready()` true by installing `packages` with apt if it is not already;
/// `what` names the step that needs them, for error messages.
pub fn ensure(what: &str, packages: &[&str], ready: impl Fn() -> bool) -> Result<()> {
    if ready() {
        return Ok(());
    }
    let command = format!("apt-get install -y {}", packages.join(" "));
    if !is_root() {
        bail!("{what} needs {}; run as root: apt-get update && {command}", packages.join(", "));
    }
    let mut update = process::command("apt-get");
    update.arg("update");
    let mut install = process::command("apt-get");
    install.args(["install", "-y"]).args(packages).env("DEBIAN_FRONTEND", "noninteractive");
    for apt in [&mut update, &mut install] {
        process::run(apt).with_context(|| format!("{what} needs Debian's {}", packages.join(", ")))?;
    }
    if !ready() {
        bail!("{what}: still not usable after `{command}`");
    }
    Ok(())
}

/// An error saying which packages to install unless `ready()` is true; installs
/// nothing (for a command a person runs, which should not call apt by itself).
pub fn require(what: &str, packages: &[&str], ready: impl Fn() -> bool) -> Result<()> {
    if ready() {
        return Ok(());
    }
    bail!("{what} needs {}; install them (on Debian: apt-get install {})", packages.join(", "), packages.join(" "));
}

/// Whether every one of `packages` is installed according to dpkg.
pub fn installed(packages: &[&str]) -> bool {
    let query = process::command("dpkg-query").args(["-W", "-f", "${db:Status-Status}\n"]).args(packages).output();
    let Ok(query) = query else { return false };
    let states = String::from_utf8_lossy(&query.stdout);
    query.status.success() && states.lines().filter(|s| *s == "installed").count() == packages.len()
}

/// Whether `program --version` runs.
pub fn runs(program: &str) -> bool {
    process::succeeds(process::command(program).arg("--version")).unwrap_or(false)
}

fn is_root() -> bool {
    let id = process::command("id").arg("-u").output();
    id.is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
