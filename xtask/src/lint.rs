//! `cargo xtask lint`: formatting and clippy over the whole workspace, as CI
//! would judge them. Both run, so one pass reports every problem.

use std::path::Path;

use anyhow::Result;

use crate::process;

pub fn run(root: &Path) -> Result<()> {
    let fmt = process::run(process::cargo(root).args(["fmt", "--all", "--", "--check"]));
    let clippy =
        process::run(process::cargo(root).args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]));
    fmt?;
    clippy
}
