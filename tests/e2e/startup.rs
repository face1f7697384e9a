//! The documented entry points other than the README's defaults: a config
//! file with relative paths in it, relative SQLite URLs in flags, and
//! start-up failures that must end with one clear line and a non-zero exit.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::json;

use super::harness::{Launch, Server, command, example, fresh_postgres, scratch_dir, target_dir, transfer};

/// Uploads the bank module, seeds two accounts and moves money once.
async fn transfer_works(server: &Server) {
    server.ready().await;
    let (status, body) = server.upload("bank", example("transfer-rust")).await;
    assert_eq!(status, 201, "upload: {body}");
    server
        .call("bank", "setup", json!({ "accounts": [{ "id": "a", "balance": 10 }, { "id": "b", "balance": 0 }] }))
        .await;
    let (status, body) = server.post("/v1/transactions", &transfer("bank", None, "a", "b", 4, true)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("succeeded")), "{body}");
    assert_eq!(server.balance("bank", "b").await, 4);
}

/// The test servers share one compile cache (absolute) to avoid recompiling.
fn shared_cache() -> String {
    target_dir().join("test-compile-cache").display().to_string()
}

fn listen_anywhere() -> Vec<(String, String)> {
    vec![("WASMTX_LISTEN".into(), "127.0.0.1:0".into())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_with_relative_paths_resolves_them_against_its_own_folder() {
    let root = scratch_dir("wasmtx-config");
    let conf = root.join("conf");
    let cwd = root.join("elsewhere");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::write(
        conf.join("wasmtx.toml"),
        format!(
            "data_dir = \"state\"\nstore = \"sqlite://db/store.sqlite?mode=rwc\"\ncompile_cache = {:?}\n\
             [databases]\ndefault = \"sqlite:biz.sqlite\"\n",
            shared_cache()
        ),
    )
    .unwrap();
    let log = root.join("server.log");
    // The config path itself is relative to the working directory.
    let args = vec!["serve".into(), "--config".into(), "../conf/wasmtx.toml".into()];
    let launch = Launch { cwd: cwd.clone(), args, env: listen_anywhere(), log: Some(log.clone()) };
    let server = Server::launch(launch, root.clone()).expect("start with a config file");
    transfer_works(&server).await;

    assert!(conf.join("state/node-id").is_file(), "data_dir is relative to the config file");
    assert!(conf.join("db/store.sqlite").is_file(), "the store URL is relative to the config file");
    assert!(conf.join("biz.sqlite").is_file(), "database URLs are relative to the config file");
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0, "nothing is written to the working directory");
    let log = std::fs::read_to_string(&log).unwrap();
    let started = log.lines().find(|l| l.contains("wasmtx started")).expect("start-up log line");
    for path in ["conf/state", "conf/db/store.sqlite", "conf/biz.sqlite"] {
        let absolute = root.join(path).display().to_string();
        assert!(started.contains(&absolute), "the start-up line shows {absolute}: {started}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_sqlite_urls_in_flags_resolve_against_the_working_directory() {
    let cwd = scratch_dir("wasmtx-flags");
    let config = cwd.join("cache.toml");
    std::fs::write(&config, format!("compile_cache = {:?}\n", shared_cache())).unwrap();
    let args: Vec<String> = [
        "serve",
        "--config",
        "cache.toml",
        "--data-dir",
        "d",
        "--store",
        "sqlite://s/store.sqlite",
        "--database",
        "default=sqlite:b/biz.sqlite",
    ]
    .map(String::from)
    .to_vec();
    let launch = Launch { cwd: cwd.clone(), args, env: listen_anywhere(), log: None };
    let server = Server::launch(launch, cwd.clone()).expect("start with relative URLs");
    transfer_works(&server).await;
    assert!(cwd.join("d/node-id").is_file());
    assert!(cwd.join("s/store.sqlite").is_file());
    assert!(cwd.join("b/biz.sqlite").is_file());
}

/// Runs the server expecting it to fail at start-up; returns its output.
fn start_fails(cwd: &Path, args: &[&str], backtrace: bool) -> Output {
    let launch =
        Launch { cwd: cwd.to_owned(), args: args.iter().map(|a| a.to_string()).collect(), env: Vec::new(), log: None };
    let mut cmd: Command = command(&launch);
    cmd.env_remove("RUST_BACKTRACE").env_remove("RUST_LIB_BACKTRACE");
    if backtrace {
        cmd.env("RUST_BACKTRACE", "1");
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        assert!(std::time::Instant::now() < deadline, "the server did not exit: {args:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// The one `error:` line of a failed start; asserts the shape of the failure.
fn one_clear_line(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "exit status; stderr:\n{stderr}");
    assert!(!stdout.contains("listening"), "a failed start never says it listens: {stdout}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line:\n{stderr}");
    assert!(!stderr.contains("backtrace") && !stderr.contains("panicked"), "no backtrace unless asked:\n{stderr}");
    errors[0].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_failures_exit_non_zero_with_one_line_saying_what_to_fix() {
    let cwd = scratch_dir("wasmtx-fail");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line = one_clear_line(&start_fails(&cwd, &["serve", "--listen", &addr], false));
    assert!(line.contains(&format!("cannot listen on {addr}")) && line.contains("--listen"), "{line}");

    std::fs::write(cwd.join("a-file"), "not a directory").unwrap();
    let line = one_clear_line(&start_fails(&cwd, &["serve", "--listen", "127.0.0.1:0", "--data-dir", "a-file"], false));
    assert!(line.contains("data directory") && line.contains("a-file") && line.contains("--data-dir"), "{line}");

    std::fs::write(cwd.join("garbage.sqlite"), vec![0x42u8; 8192]).unwrap();
    let args = ["serve", "--listen", "127.0.0.1:0", "--data-dir", "d", "--store", "sqlite:garbage.sqlite"];
    let line = one_clear_line(&start_fails(&cwd, &args, false));
    assert!(line.contains("coordinator store") && line.contains("garbage.sqlite"), "{line}");

    let missing = format!("{}_missing", fresh_postgres().await);
    let database = format!("default={missing}");
    let args = ["serve", "--listen", "127.0.0.1:0", "--data-dir", "d", "--database", database.as_str()];
    let line = one_clear_line(&start_fails(&cwd, &args, false));
    assert!(line.contains("database default") && line.contains("does not exist"), "{line}");

    std::fs::write(cwd.join("typo.toml"), "listn = \"127.0.0.1:1\"\n").unwrap();
    let line = one_clear_line(&start_fails(&cwd, &["serve", "--config", "typo.toml"], false));
    assert!(line.contains("typo.toml") && line.contains("listn"), "{line}");

    // Asked for, the causes and a backtrace follow the same first line.
    let output = start_fails(&cwd, &["serve", "--listen", &addr], true);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.lines().next().unwrap_or_default().starts_with("error: cannot listen on"), "{stderr}");
    assert!(stderr.lines().count() > 3, "a backtrace follows when RUST_BACKTRACE is set:\n{stderr}");
    drop(taken);
    let _ = std::fs::remove_dir_all(&cwd);
}
