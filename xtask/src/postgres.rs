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
    let url = admin_url();
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

/// Prepared transactions the test server allows when it allows none
/// (Postgres's default): XA tests prepare several at once, in parallel.
const PREPARED_TRANSACTIONS: u32 = 64;

/// XA tests need prepared transactions: when the test server has
/// `max_prepared_transactions = 0`, sets it (`ALTER SYSTEM`) and restarts the
/// local cluster, which is the only way Postgres takes that setting.
pub fn ensure_prepared_transactions() -> Result<()> {
    let url = admin_url();
    let current = || -> Result<u32> {
        let shown = process::output(process::command("psql").args([
            "--no-psqlrc",
            "-At",
            "-d",
            &url,
            "-c",
            "SHOW max_prepared_transactions",
        ]))?;
        shown.trim().parse().with_context(|| format!("max_prepared_transactions is {shown:?}"))
    };
    let now = current()?;
    if now > 0 {
        eprintln!("postgres allows {now} prepared transactions");
        return Ok(());
    }
    eprintln!(
        "postgres allows no prepared transactions (XA tests need them): setting {PREPARED_TRANSACTIONS} and restarting it"
    );
    let set = format!("ALTER SYSTEM SET max_prepared_transactions = {PREPARED_TRANSACTIONS}");
    process::run_quietly(process::command("psql").args(["--no-psqlrc", "-q", "-d", &url, "-c", &set]))
        .context("enabling prepared transactions needs a superuser in WASMTX_TEST_POSTGRES")?;
    let version = cluster_version(Path::new(CLUSTERS))?;
    process::run(process::command("pg_ctlcluster").args(["--skip-systemctl-redirect", &version, "main", "restart"]))
        .context("restarting the local Postgres cluster so that max_prepared_transactions takes effect")?;
    ensure_running()?;
    match current()? {
        0 => bail!(
            "max_prepared_transactions is still 0 at {url} after a restart of cluster {version}/main: is that \
             the server WASMTX_TEST_POSTGRES names? Set it there and restart that server"
        ),
        n => {
            eprintln!("postgres allows {n} prepared transactions");
            Ok(())
        }
    }
}

/// The admin URL of the test (and bench) Postgres.
pub fn admin_url() -> String {
    std::env::var("WASMTX_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Drops the databases earlier test runs created (`wasmtx_t_*`, `wasmtx_e2e_*`,
/// one per test, and `wasmtx_bench*`), and the guest roles wasmtx made for
/// them, so they do not pile up on a developer's server.
pub fn drop_test_databases() -> Result<()> {
    let url = admin_url();
    let list = r"SELECT datname FROM pg_database WHERE datname LIKE 'wasmtx\_t\_%' OR datname LIKE 'wasmtx\_e2e\_%' OR datname LIKE 'wasmtx\_bench%'";
    let names = process::output(process::command("psql").args(["--no-psqlrc", "-At", "-d", &url, "-c", list]))
        .context("psql is needed to clean up test databases (Debian: postgresql-client)")?;
    let names: Vec<&str> = names.lines().map(str::trim).filter(|n| !n.is_empty()).collect();
    for name in &names {
        drop_database(name)?;
    }
    let roles = r"SELECT rolname FROM pg_roles WHERE rolname LIKE 'wasmtx\_guest\_wasmtx\_t\_%' OR rolname LIKE 'wasmtx\_guest\_wasmtx\_e2e\_%' OR rolname LIKE 'wasmtx\_guest\_wasmtx\_bench%'";
    let roles = process::output(process::command("psql").args(["--no-psqlrc", "-At", "-d", &url, "-c", roles]))?;
    for role in roles.lines().map(str::trim).filter(|n| !n.is_empty()) {
        let drop = format!("DROP ROLE IF EXISTS \"{role}\"");
        process::run_quietly(process::command("psql").args(["--no-psqlrc", "-q", "-d", &url, "-c", &drop]))?;
    }
    if !names.is_empty() {
        eprintln!("dropped {} test databases left by earlier runs", names.len());
    }
    Ok(())
}

/// Creates an empty database named `<prefix>_<pid>_<n>`; returns its URL and name.
pub fn create_database(prefix: &str) -> Result<(String, String)> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{prefix}_{}_{n}", std::process::id());
    let admin = admin_url();
    let create = format!("CREATE DATABASE \"{name}\"");
    process::run_quietly(process::command("psql").args(["--no-psqlrc", "-q", "-d", &admin, "-c", &create]))?;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Ok((format!("{base}/{name}"), name))
}

/// Drops a database, even with connections left open to it or transactions
/// left prepared in it (an XA test killed midway), which are rolled back first.
pub fn drop_database(name: &str) -> Result<()> {
    let admin = admin_url();
    let prepared = format!("SELECT gid FROM pg_prepared_xacts WHERE database = '{}'", name.replace('\'', "''"));
    let xids = process::output(process::command("psql").args(["--no-psqlrc", "-At", "-d", &admin, "-c", &prepared]))?;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    for xid in xids.lines().map(str::trim).filter(|x| !x.is_empty()) {
        // Only from inside its own database, and by a superuser.
        let rollback = format!("ROLLBACK PREPARED '{}'", xid.replace('\'', "''"));
        let db = format!("{base}/{name}");
        process::run_quietly(process::command("psql").args(["--no-psqlrc", "-q", "-d", &db, "-c", &rollback]))?;
    }
    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    process::run_quietly(process::command("psql").args(["--no-psqlrc", "-q", "-d", &admin_url(), "-c", &drop]))
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
