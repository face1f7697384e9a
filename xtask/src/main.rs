//! `cargo xtask <command>`: the project's automation, in Rust instead of shell
//! scripts (the alias lives in `.cargo/config.toml`).
//!
//! - `examples [NAME|LANG ...]`: builds the example components into
//!   `target/examples/<name>.wasm` (all of them, or those named).
//! - `test`: the one test command for a fresh machine (what `.ci/run` calls):
//!   wasm target, Postgres, examples, the server binary, then every test.
//! - `lint`: `cargo fmt --check` and `cargo clippy -D warnings` on the workspace.
//! - `bench`: sagas per second, latency, commits, CPU and memory of the release
//!   server on SQLite and Postgres, against pgbench's ceiling.
//! - `bench-guests`: per-invocation cost of each guest language, fresh and reused.
//!
//! # Layout
//!
//! - [`process`]: runs a child command; a failure names the command and its exit code.
//! - [`apt`]: installs missing Debian packages a step needs.
//! - [`examples`]: the list of example components; the builders, one per
//!   language, are the `wasmtx-toolchain` crate's, shared with `wasmtx guest build`.
//! - [`postgres`]: makes sure the test Postgres answers.
//! - [`test`], [`lint`]: the commands of the same names.
//!
//! xtask never edits sources; it only builds, checks and runs.

mod bench;
mod examples;
mod lint;
mod mariadb;
mod postgres;
mod redis;
mod service;
mod test;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use wasmtx_toolchain::{apt, process};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  examples [NAME|LANG ...]  build the example components into target/examples/
  test                      wasm target, Postgres, examples, server binary, all tests
  lint                      cargo fmt --check, cargo clippy -D warnings
  bench [--duration S] [--concurrency N] [--history N] [--stores sqlite,postgres] [--mode saga|tcc|xa|msg]
                            sagas/s, latency, commits, CPU and memory of the release server (see README)
  bench-guests              per-invocation cost of each guest language, fresh and reused (release build)
  verify [--programs N] [--minutes M] [--seed S]
                            the generated-program verifier under SIGKILLs, run long (CI runs 120 programs once)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            // A failed child command passes its own exit code on.
            let code = e
                .downcast_ref::<process::CommandFailed>()
                .and_then(|f| f.code)
                .and_then(|c| u8::try_from(c).ok())
                .filter(|&c| c != 0)
                .unwrap_or(1);
            ExitCode::from(code)
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let root = project_root();
    match args.first().map(String::as_str) {
        Some("examples") => examples::build(&root, &args[1..]),
        Some("test") if args.len() == 1 => test::run(&root),
        Some("lint") if args.len() == 1 => lint::run(&root),
        Some("bench") => bench::run(&root, &args[1..]),
        Some("verify") => verify::run(&root, &args[1..]),
        Some("bench-guests") if args.len() == 1 => {
            examples::build(&root, &["transfer".to_owned()])?;
            process::run(process::cargo(&root).args(["bench", "--package", "wasmtx", "--bench", "guests"]))
        }
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(_) => bail!("unknown command or arguments: {}\n\n{USAGE}", args.join(" ")),
        None => bail!("no command given\n\n{USAGE}"),
    }
}

/// The workspace root: the parent of this crate's directory.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}
