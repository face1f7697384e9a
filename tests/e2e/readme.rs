//! The newcomer's path, read from README.md itself so that the two cannot
//! drift apart: the first of the README's two commands (the server, with no
//! flags at all) is started in an empty working directory, then the quick
//! start is run verbatim with bash and curl, and every output it shows is
//! checked.
//!
//! Conventions the README follows (and this test relies on):
//! - in "## Two commands", the first line of the first `sh` block starts the
//!   server as `cargo run -p wasmtx -- ARGS`;
//! - in "## Quick start", the first `sh` block builds the examples and starts
//!   the server (the `cargo run` line is the server already started here),
//!   the second is a script of `wasmtx` CLI (and curl) commands against
//!   `127.0.0.1:36789`, with `target/debug` (the server's binary) on `PATH`;
//! - a line `# {…}` right after a command is the JSON it prints; a run of
//!   lines `#> …` right after a command is the text it prints, line by line;
//!   `…` stands for any text.

use std::path::Path;
use std::process::Command;

use super::harness::{Launch, Server, scratch_dir, target_dir, workspace_root};

/// The port the README shows; replaced by the test server's own.
const README_ADDR: &str = "127.0.0.1:36789";
/// What stands for "any text" in an expected output.
const ANY: &str = "…";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quick_start_works_verbatim_on_the_default_server() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let serve_args = serve_command(&section_blocks(&readme, "## Two commands")[0]);
    assert_eq!(serve_args, ["serve"], "the README's first command is the server with no flags at all");

    // An empty working directory, nothing but a free port from the environment.
    let cwd = scratch_dir("wasmtx-readme");
    let env = vec![("WASMTX_LISTEN".into(), "127.0.0.1:0".into())];
    let launch = Launch { cwd: cwd.clone(), args: serve_args, env, log: None };
    let server = Server::launch(launch, cwd.clone()).expect("the README's first command starts the server");
    server.ready().await;

    let quick_start = section_blocks(&readme, "## Quick start");
    assert_eq!(quick_start.len(), 2, "the quick start has a build-and-serve block and a client block");
    for line in command_lines(&quick_start[0]) {
        if line.starts_with("cargo run -p wasmtx --") {
            assert_eq!(serve_command(&line), ["serve"], "the quick start serves the same way");
            continue;
        }
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &line])
            .current_dir(workspace_root())
            .output()
            .expect("bash");
        assert!(output.status.success(), "`{line}` failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    let addr = server.base.trim_start_matches("http://").to_owned();
    let (script, expected) = client_script(&quick_start[1], &addr);
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(workspace_root())
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the quick start script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Tables pad their columns: compare lines without trailing spaces.
    let actual: Vec<String> =
        stdout.split(MARK).map(|out| out.trim().lines().map(str::trim_end).collect::<Vec<_>>().join("\n")).collect();
    assert_eq!(actual.len(), expected.len() + 1, "one output per `# …` line:\n{stdout}");
    for (shown, got) in expected.iter().zip(&actual) {
        assert!(matches(shown, got), "README shows\n  {shown}\nbut the server answered\n  {got}");
    }

    // Everything the server wrote is in ./wasmtx-data of its working directory.
    let created: Vec<String> = std::fs::read_dir(&cwd)
        .expect("cwd")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(created, ["wasmtx-data"], "the server writes only ./wasmtx-data");
    for file in ["node-id", "wasmtx.sqlite", "compile-cache"] {
        assert!(cwd.join("wasmtx-data").join(file).exists(), "{file} is in the data dir");
    }
}

/// The arguments after `cargo run -p wasmtx --` on `line` (a trailing comment is ignored).
fn serve_command(line: &str) -> Vec<String> {
    let line = line.lines().next().unwrap_or_default();
    let code = line.split(" #").next().unwrap_or_default().trim();
    let args = code
        .strip_prefix("cargo run -p wasmtx --")
        .unwrap_or_else(|| panic!("expected `cargo run -p wasmtx -- …`, found {code:?}"));
    args.split_whitespace().map(str::to_owned).collect()
}

/// The bodies of the ```sh blocks in the section headed `heading`.
fn section_blocks(readme: &str, heading: &str) -> Vec<String> {
    let start = readme.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("README has no {heading:?} section"));
    let body = &readme[start + heading.len() + 2..];
    let section = body.find("\n## ").map_or(body, |end| &body[..end]);
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let after = &rest[open + 6..];
        let close = after.find("```").expect("unclosed code block");
        blocks.push(after[..close].to_owned());
        rest = &after[close + 3..];
    }
    assert!(!blocks.is_empty(), "{heading} has no sh block");
    blocks
}

/// Non-empty lines that are not comments.
fn command_lines(block: &str) -> Vec<String> {
    block.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

/// Printed between outputs, so the script's stdout splits into one output per command.
const MARK: &str = "@@wasmtx-readme-output@@";

/// The client block as a bash script against `addr`, and the outputs it
/// shows, in order. Each `# {…}` line, and each run of `#>` lines, becomes
/// a marker in the output.
fn client_script(block: &str, addr: &str) -> (String, Vec<String>) {
    let examples = target_dir().join("examples");
    let binaries = target_dir().join("debug");
    let mut script = String::new();
    let mut expected = Vec::new();
    let mut table: Vec<&str> = Vec::new();
    let end_table = |table: &mut Vec<&str>, script: &mut String, expected: &mut Vec<String>| {
        if !table.is_empty() {
            expected.push(table.join("\n"));
            table.clear();
            script.push_str(&format!("echo; echo '{MARK}'\n"));
        }
    };
    for line in block.lines() {
        let trimmed = line.trim();
        if let Some(shown) = trimmed.strip_prefix("#>") {
            table.push(shown.strip_prefix(' ').unwrap_or(shown));
            continue;
        }
        end_table(&mut table, &mut script, &mut expected);
        if let Some(shown) = trimmed.strip_prefix("# ").filter(|s| s.starts_with('{') || s.starts_with('[')) {
            expected.push(shown.to_owned());
            script.push_str(&format!("echo; echo '{MARK}'\n"));
        } else {
            let line = line.replace(README_ADDR, addr);
            // The README builds into ./target; the tests may use another target dir.
            let line = line.replace("@target/examples/", &format!("@{}/", examples.display()));
            let line = line.replace(" target/examples/", &format!(" {}/", examples.display()));
            let line = line.replace("$PWD/target/debug", &binaries.display().to_string());
            script.push_str(&line);
            script.push('\n');
        }
    }
    end_table(&mut table, &mut script, &mut expected);
    assert!(!expected.is_empty(), "the quick start shows no outputs to check");
    (script, expected)
}

/// Whether `actual` is `shown` with each `…` standing for any text.
fn matches(shown: &str, actual: &str) -> bool {
    let parts: Vec<&str> = shown.split(ANY).collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return shown == actual;
    }
    if !actual.starts_with(first) || !actual.ends_with(last) || actual.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &actual[first.len()..actual.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn ellipses_in_shown_output_stand_for_any_text() {
    assert!(matches("{\"a\":1}", "{\"a\":1}"));
    assert!(!matches("{\"a\":1}", "{\"a\":2}"));
    assert!(matches("{\"gid\":\"…\",\"status\":\"ok\"}", "{\"gid\":\"x1\",\"status\":\"ok\"}"));
    assert!(!matches("{\"gid\":\"…\",\"status\":\"ok\"}", "{\"gid\":\"x1\",\"status\":\"failed\"}"));
    assert!(matches("{\"a\":[1,…],\"b\":2,…}", "{\"a\":[1,2,3],\"b\":2,\"c\":3}"));
    assert!(!matches("ab…ba", "aba"), "prefix and suffix may not overlap");
}

#[test]
fn the_readme_sections_this_test_reads_exist() {
    let readme = std::fs::read_to_string(Path::new(&workspace_root()).join("README.md")).expect("README.md");
    assert_eq!(serve_command(&section_blocks(&readme, "## Two commands")[0]), ["serve"]);
    let (_, expected) = client_script(&section_blocks(&readme, "## Quick start")[1], "127.0.0.1:1");
    assert!(expected.len() >= 5, "upload, setup, two sagas, balance and the transaction view are checked");
    assert!(
        expected.iter().any(|e| e.contains("\nBRANCH  OP")),
        "a table of several lines is one output: {expected:?}"
    );
}
