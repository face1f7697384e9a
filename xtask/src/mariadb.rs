//! Makes sure the local MariaDB the DTM client tests use answers
//! (127.0.0.1:3306; dtmcli's barrier helper speaks MySQL), starting the
//! machine's server if it does not. Tests never skip for want of a database,
//! so this fails loudly instead.

use std::time::Duration;

use anyhow::Result;

use crate::{process, service};

const ADDRESS: &str = "127.0.0.1:3306";
const SERVER: &str = "/usr/sbin/mariadbd";
const WAIT: Duration = Duration::from_secs(30);

/// Returns once MariaDB accepts connections on 127.0.0.1:3306, starting
/// `mariadbd` in the background and waiting up to 30 s if needed.
pub fn ensure_running() -> Result<()> {
    if service::answers(ADDRESS) {
        eprintln!("mariadb is ready at {ADDRESS}");
        return Ok(());
    }
    eprintln!("mariadb is not answering at {ADDRESS}; starting {SERVER}");
    let mut start = process::command("start-stop-daemon");
    start.args(["--start", "--oknodo", "--background", "--exec", SERVER]);
    service::wait_until_it_answers("mariadb", ADDRESS, process::run(&mut start), WAIT)
}

/// The test server, as the `mariadb` client reaches it.
fn client() -> std::process::Command {
    let mut c = process::command("mariadb");
    c.args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-N", "-B"]);
    c
}

/// Drops what earlier test runs left on MariaDB: their databases
/// (`wasmtx_e2e_*`, `wasmtx_t_*`), the host schemas wasmtx made beside them
/// (`wasmtx_<database>`) and their guest accounts.
pub fn drop_test_databases() -> Result<()> {
    use anyhow::Context as _;
    // Guest accounts first, while their databases still name them: wasmtx
    // names one `wasmtx_guest_` and the first 16 hex digits of the SHA-256 of
    // a long database name (`database/mysql.rs`).
    let ours = r"schema_name LIKE 'wasmtx\_e2e\_%' OR schema_name LIKE 'wasmtx\_t\_%'";
    let users = format!(
        "SELECT CONCAT(user, '@', host) FROM mysql.user WHERE user IN (SELECT CONCAT('wasmtx_guest_', \
         LEFT(SHA2(schema_name, 256), 16)) FROM information_schema.schemata WHERE {ours}) OR user IN (SELECT \
         CONCAT('wasmtx_guest_', schema_name) FROM information_schema.schemata WHERE {ours})"
    );
    let users = process::output(client().args(["-e", &users]))
        .context("the mariadb client is needed to clean up test databases (Debian: mariadb-client)")?;
    for user in users.lines().map(str::trim).filter(|n| !n.is_empty()) {
        let Some((name, host)) = user.split_once('@') else { continue };
        process::run_quietly(client().args(["-e", &format!("DROP USER IF EXISTS '{name}'@'{host}'")]))?;
    }
    let list = format!(
        "SELECT schema_name FROM information_schema.schemata WHERE {ours} OR schema_name LIKE \
         'wasmtx\\_wasmtx\\_e2e\\_%' OR schema_name LIKE 'wasmtx\\_wasmtx\\_t\\_%'"
    );
    let names = process::output(client().args(["-e", &list]))?;
    let names: Vec<&str> = names.lines().map(str::trim).filter(|n| !n.is_empty()).collect();
    for name in &names {
        process::run_quietly(client().args(["-e", &format!("DROP DATABASE IF EXISTS `{name}`")]))?;
    }
    if !names.is_empty() {
        eprintln!("dropped {} MariaDB test databases left by earlier runs", names.len());
    }
    Ok(())
}
