//! `cargo xtask verify [--programs N] [--minutes M] [--seed S]`: the
//! generated-program verifier (`tests/e2e/verify.rs`) run long: again and
//! again, each run with a new seed, for `--minutes` (default 10), on SQLite
//! and Postgres, `--programs` per run (default 500); or once with `--seed`.
//! It stops at the first failure; the test prints the seed that replays it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{examples, postgres, process};

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let (mut programs, mut minutes, mut seed) = (500u64, 10u64, None::<u64>);
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--programs" => programs = value.parse().context("--programs N")?,
            "--minutes" => minutes = value.parse().context("--minutes M")?,
            "--seed" => seed = Some(value.parse().context("--seed S")?),
            other => bail!("unknown verify flag {other} (flags: --programs, --minutes, --seed)"),
        }
    }
    if programs == 0 {
        bail!("--programs must be at least 1");
    }
    postgres::ensure_running()?;
    postgres::ensure_prepared_transactions()?;
    examples::build(
        root,
        &["transfer-rust".to_owned(), "misbehave-rust".to_owned(), "workflow-script-rust".to_owned()],
    )?;
    process::run(process::cargo(root).args(["build", "--workspace", "--bins", "--tests"]))?;
    let until = Instant::now() + Duration::from_secs(minutes * 60);
    let mut runs = 0;
    loop {
        runs += 1;
        let mut command = process::cargo(root);
        command
            .args(["nextest", "run", "-p", "wasmtx-tests", "--test", "e2e", "--no-capture", "-E", "test(verify::)"])
            .env("WASMTX_VERIFY_PROGRAMS", programs.to_string());
        if let Some(seed) = seed {
            command.env("WASMTX_VERIFY_SEED", seed.to_string());
        }
        process::run(&mut command).with_context(|| format!("verifier run {runs} failed: its seed is printed above"))?;
        if seed.is_some() || Instant::now() >= until {
            eprintln!("verify: {runs} runs of {programs} programs on each store passed");
            return Ok(());
        }
    }
}
