//! Makes sure the Postgres the tests use answers, starting the machine's
//! cluster if it does not. Tests never skip for want of a database, so this
//! fails loudly instead.

use std::fs;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process;

/// What the tests use when `WASMTX_TEST_POSTGRES` is not set.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const CLUSTERS: &str = "/etc/postgresql";
const WAIT: Duration = Duration::from_secs(30);

/// Returns once `pg_isready` accepts the test server, starting the local
/// cluster (`pg_ctlcluster <version> main start`) and waiting up to 30 s if
/// needed.
pub fn ensure_running() -> Result<()> {
    let url = std::env::var("WASMTX_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    if ready(&url)? {
        eprintln!("postgres is ready at {url}");
        return Ok(());
    }
    let version = cluster_version(Path::new(CLUSTERS))?;
    eprintln!("postgres is not answering at {url}; starting cluster {version}/main");
    let mut start = process::command("pg_ctlcluster");
    start.args(["--skip-systemctl-redirect", &version, "main", "start"]);
    // It may be starting up already ("already running"); readiness decides.
    let started = process::run(&mut start);
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if ready(&url)? {
            eprintln!("postgres is ready at {url}");
            return Ok(());
        }
        sleep(Duration::from_millis(500));
    }
    let why = match started {
        Ok(()) => "the cluster started".to_owned(),
        Err(e) => format!("{e:#}"),
    };
    bail!("postgres is still not ready at {url} after {} s ({why})", WAIT.as_secs())
}

/// Drops the databases earlier test runs created (`wasmtx_t_*`, `wasmtx_e2e_*`,
/// one per test), so they do not pile up on a developer's server.
pub fn drop_test_databases() -> Result<()> {
    let url = std::env::var("WASMTX_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let list = r"SELECT datname FROM pg_database WHERE datname LIKE 'wasmtx\_t\_%' OR datname LIKE 'wasmtx\_e2e\_%'";
    let names = process::output(process::command("psql").args(["--no-psqlrc", "-At", "-d", &url, "-c", list]))
        .context("psql is needed to clean up test databases (Debian: postgresql-client)")?;
    let names: Vec<&str> = names.lines().map(str::trim).filter(|n| !n.is_empty()).collect();
    for name in &names {
        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        process::run_quietly(process::command("psql").args(["--no-psqlrc", "-q", "-d", &url, "-c", &drop]))?;
    }
    if !names.is_empty() {
        eprintln!("dropped {} test databases left by earlier runs", names.len());
    }
    Ok(())
}

fn ready(url: &str) -> Result<bool> {
    process::succeeds(process::command("pg_isready").args(["--quiet", "--dbname", url]))
        .context("pg_isready is needed to check the test Postgres (Debian: postgresql-client)")
}

/// The newest cluster version under `dir` (`/etc/postgresql/<version>/main`).
fn cluster_version(dir: &Path) -> Result<String> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("no PostgreSQL installed: cannot read {}", dir.display()))?;
    let mut versions: Vec<(Vec<u32>, String)> = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let parts: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
        if let Some(parts) = parts {
            versions.push((parts, name));
        }
    }
    versions.sort();
    match versions.pop() {
        Some((_, name)) => Ok(name),
        None => bail!("no PostgreSQL cluster version under {}", dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_numeric_cluster_version_wins() {
        let dir = std::env::temp_dir().join(format!("xtask-pg-{}", std::process::id()));
        for name in ["9.6", "15", "13", "not-a-version"] {
            fs::create_dir_all(dir.join(name)).unwrap();
        }
        assert_eq!(cluster_version(&dir).unwrap(), "15");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_cluster_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("xtask-pg-empty-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let e = cluster_version(&dir).unwrap_err().to_string();
        assert!(e.starts_with("no PostgreSQL cluster version under"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
