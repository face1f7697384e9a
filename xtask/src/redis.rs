//! Makes sure the local Redis the Redis business-database tests use answers
//! (127.0.0.1:6379), installing Debian's `redis-server` if it is missing and
//! starting it (no persistence: the tests' keys are scratch) if it does not
//! answer; then deletes the keys earlier test runs left. Tests never skip for
//! want of a database, so this fails loudly instead.

use std::time::Duration;

use anyhow::Result;

use crate::{apt, process, service};

const ADDRESS: &str = "127.0.0.1:6379";
const WAIT: Duration = Duration::from_secs(30);

/// Returns once Redis accepts connections on 127.0.0.1:6379.
pub fn ensure_running() -> Result<()> {
    if service::answers(ADDRESS) {
        eprintln!("redis is ready at {ADDRESS}");
        return Ok(());
    }
    apt::ensure("the Redis tests", &["redis-server", "redis-tools"], || {
        apt::runs("redis-server") && apt::runs("redis-cli")
    })?;
    eprintln!("redis is not answering at {ADDRESS}; starting redis-server");
    let log_dir = std::env::temp_dir().join("wasmtx-redis");
    std::fs::create_dir_all(&log_dir)?;
    let mut start = process::command("redis-server");
    start.args(["--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"]);
    start.arg("--dir").arg(&log_dir).arg("--logfile").arg(log_dir.join("redis.log"));
    service::wait_until_it_answers("redis", ADDRESS, process::run(&mut start), WAIT)
}

/// Deletes the keys earlier test runs left: those of the end-to-end tests'
/// bindings (prefix `e2e-<uuid>:`) and of the database tests' (`t<12 hex>:`),
/// with the host's keys beside them (`wasmtx:` and the same).
pub fn drop_test_keys() -> Result<()> {
    let patterns = ["e2e-*", "wasmtx:e2e-*", "t????????????:*", "wasmtx:t????????????:*"];
    let mut dropped = 0;
    for pattern in patterns {
        let keys =
            process::output(process::command("redis-cli").args(["-h", "127.0.0.1", "--scan", "--pattern", pattern]))?;
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        for chunk in keys.chunks(500) {
            process::output(process::command("redis-cli").args(["-h", "127.0.0.1", "DEL"]).args(chunk))?;
            dropped += chunk.len();
        }
    }
    eprintln!("redis: dropped {dropped} keys of earlier test runs");
    Ok(())
}
