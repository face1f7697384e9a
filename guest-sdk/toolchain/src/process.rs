//! Runs child commands for the builders (and for xtask's other commands).
//! Every command is echoed on stderr before it runs, and a failure names the
//! command and its exit code ([`CommandFailed`], which xtask's `main` turns
//! back into its own exit code).

use std::ffi::OsStr;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

/// A child command ran and exited unsuccessfully.
#[derive(Debug)]
pub struct CommandFailed {
    pub command: String,
    /// `None` when it was killed by a signal.
    pub code: Option<i32>,
}

impl fmt::Display for CommandFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "`{}` failed with exit code {code}", self.command),
            None => write!(f, "`{}` was killed by a signal", self.command),
        }
    }
}

impl std::error::Error for CommandFailed {}

/// A command for `program`.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    Command::new(program)
}

/// `cargo`, run in `dir`: the cargo that runs this program when cargo runs it
/// (`$CARGO`, so that every xtask step uses the pinned toolchain), else the
/// `cargo` on the `PATH`.
pub fn cargo(dir: &Path) -> Command {
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo.current_dir(dir);
    cargo
}

/// Runs `cmd` with inherited output; an error unless it exits with 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    eprintln!("$ {shown}");
    let status = cmd.status().with_context(|| format!("cannot run `{shown}`"))?;
    if status.success() { Ok(()) } else { Err(CommandFailed { command: shown, code: status.code() }.into()) }
}

/// Runs `cmd` with its output captured, printing it only if it fails.
pub fn run_quietly(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    let output = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot run `{shown}`"))?;
    if output.status.success() {
        return Ok(());
    }
    let mut stderr = std::io::stderr().lock();
    // Best effort: the error below says what failed either way.
    let _ = stderr.write_all(&output.stdout);
    let _ = stderr.write_all(&output.stderr);
    Err(CommandFailed { command: shown, code: output.status.code() }.into())
}

/// Runs `cmd` and returns its standard output; an error (with its output
/// printed) unless it exits with 0.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = display(cmd);
    let output = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot run `{shown}`"))?;
    if !output.status.success() {
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(&output.stderr);
        return Err(CommandFailed { command: shown, code: output.status.code() }.into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether `cmd` exits with 0, its output discarded; an error only if it
/// cannot be started at all (e.g. the program is not installed).
pub fn succeeds(cmd: &mut Command) -> Result<bool> {
    let shown = display(cmd);
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    Ok(status.success())
}

/// `program arg ...` as a person would type it (the program by file name).
fn display(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program()).file_name().unwrap_or(cmd.get_program()).to_string_lossy().into_owned();
    let mut shown = program;
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        shown.push(' ');
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            shown.push_str(&format!("'{arg}'"));
        } else {
            shown.push_str(&arg);
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_shown_as_typed() {
        let mut cmd = Command::new("/usr/bin/cargo");
        cmd.args(["build", "-p", "x", "--message", "two words"]);
        assert_eq!(display(&cmd), "cargo build -p x --message 'two words'");
    }

    #[test]
    fn a_failing_command_reports_its_exit_code() {
        let e = run_quietly(Command::new("sh").args(["-c", "exit 3"])).unwrap_err();
        let failed = e.downcast_ref::<CommandFailed>().expect("a CommandFailed");
        assert_eq!(failed.code, Some(3));
        assert_eq!(e.to_string(), "`sh -c 'exit 3'` failed with exit code 3");
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_failure() {
        let e = succeeds(&mut Command::new("wasmtx-no-such-program")).unwrap_err();
        assert!(e.to_string().starts_with("cannot run `wasmtx-no-such-program`"), "{e}");
        assert!(succeeds(Command::new("sh").args(["-c", "true"])).unwrap());
        assert!(!succeeds(Command::new("sh").args(["-c", "false"])).unwrap());
    }
}
