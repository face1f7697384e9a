//! MySQL and MariaDB business databases (`mysql://…`, `mariadb://…`): guest
//! SQL runs as an account of its own, checked statement by statement.
//!
//! The URL names an account that may create databases, users and procedures
//! (root on a development server), and the business database (created if
//! missing). At start the host sets up, serialised across processes by
//! `GET_LOCK`:
//!
//! - the database `wasmtx_<db>` (MySQL's schema), which no guest can read or
//!   write: the barrier table `barrier` (DTM's columns and unique key), the
//!   workflow steps' outputs `step_output`, the branch transactions' seal rows
//!   `seal` (see `check` below), and the table `host` with a secret key (the
//!   procedures compare its SHA-256 hash) and the guest's password;
//! - an account `wasmtx_guest_<db>` (a hash instead of `<db>` when the name is
//!   long) with a random password, created at host `'%'` and at the host the
//!   owner's own connection comes from (MariaDB matches the most specific host
//!   first, so an anonymous `''@'localhost'` would otherwise shadow `'%'` for
//!   local connections). It holds SELECT, INSERT, UPDATE, DELETE, CREATE,
//!   DROP, INDEX, ALTER and REFERENCES on `<db>`.*, EXECUTE on the procedures
//!   below, and no global privilege: no FILE (so no `LOAD DATA INFILE`, `INTO
//!   OUTFILE`, `INTO DUMPFILE`), no PROCESS, no SUPER, no CREATE TEMPORARY
//!   TABLES, no CREATE ROUTINE, no TRIGGER;
//! - procedures `enter(key, trans_type, gid, branch_id, op, origin,
//!   barrier_id, seal)`, `record_output(key, gid, branch_id, output)` and
//!   `check(key, seal)`, all `SQL SECURITY DEFINER`, refusing a wrong key
//!   (SQLSTATE 42000). `enter` writes the barrier rows and a row in `seal`
//!   holding a random token of this transaction, and returns the two insert
//!   counts (an insert finding its row taken counts 0: only the duplicate-key
//!   error 1062 is caught) and the connection id; `check` deletes that row
//!   and fails unless it was there, i.e. unless the transaction is still the
//!   one that entered the barrier. The key only ever travels as a bound
//!   parameter, so a guest (which runs as the same account) can neither call
//!   them usefully nor read the key.
//!
//! MySQL commits implicitly before DDL, `LOCK TABLES`, `SET autocommit`,
//! `START TRANSACTION` and more, and has no deferred trigger that could refuse
//! a commit the host did not make. So the statement check is the guard here
//! (see `statement.rs`, [`statement::check_mysql`]): in a branch only
//! statements that keep the transaction run; a direct call ([`MyDb::run_local`])
//! may also run table DDL, which commits what came before it at once, after
//! which the host begins a new transaction. A guest statement is always
//! prepared (sqlx's binary protocol), so a string holding two statements is a
//! syntax error, never two statements. InnoDB itself rolls a whole
//! transaction back on a deadlock (1213), and on a lock wait timeout (1205)
//! when `innodb_rollback_on_timeout` is on; after either error (1205 is taken
//! as the worse case) the transaction refuses further statements and cannot
//! commit. Before a
//! branch commits, `check` proves the transaction is still the one whose
//! barrier rows `enter` wrote, so a transaction ended behind the host's back
//! is never committed as the branch: a transaction rolled back lost its seal
//! row (`check` fails), and one committed early made its seal row visible to
//! other connections, which the host looks for from an owner connection
//! first. (What such an early commit committed stays committed: unlike
//! Postgres, MySQL cannot refuse the guest's own `COMMIT`; the allowlist is
//! what keeps it out.)
//!
//! Branch transactions run on a pool of the guest's connections (as many as
//! `DbLimits::postgres_connections`, the same knob as Postgres), so nothing a
//! guest does can raise its privileges. Every transaction begins by undoing
//! what an earlier guest may have left: `ROLLBACK`, user-level locks
//! (`RELEASE_ALL_LOCKS()`), and a connection holding user variables (`SELECT
//! @x := …` is the one way allowlisted SQL sets session state) is closed and
//! replaced by a fresh one. Then `max_statement_time` (MariaDB; seconds) and
//! `innodb_lock_wait_timeout` are set from the invocation's deadline (and
//! `autocommit` off, so that nothing ever commits statement by statement); a
//! deadline that passes anyway kills the statement (`KILL QUERY` from an
//! owner connection) and closes the connection. A connection on which a host
//! statement failed is closed, never reused. What a guest can still leave on
//! a pooled connection: `LAST_INSERT_ID()`, session status counters and
//! warnings, none of which the host reads.
//!
//! Guests write `?` placeholders (MySQL's own syntax). XA is not offered on
//! MySQL yet.
//!
//! The server must be MariaDB 10.5 or later: `max_statement_time`,
//! `information_schema.USER_VARIABLES` and `RELEASE_ALL_LOCKS()` are
//! MariaDB's. Oracle MySQL is refused at connect, with that reason, until
//! its equivalents (`max_execution_time`, performance_schema) are wired and
//! tested.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Executor, MySql, Statement};

use super::placeholders;
use super::statement::{self, MysqlStatement};
use super::value::{self, DbError, Rows, Value};
use super::{
    BarrierKey, BarrierVerdict, BranchRun, DatabaseError, DbLimits, Decision, LocalTx, RunError, TxInner, TxWork,
};
use crate::model::{BranchId, Gid};
use crate::sqlite::GuestLimits;
use crate::store::Progress;

/// Bumped when the objects below change; they are (re)created when the
/// database's `host` row has an older version, so every statement must be
/// safe to run again.
const SETUP_VERSION: i32 = 1;

/// Objects in `wasmtx_<db>`; `{s}` stands for its quoted name.
const SETUP: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {s}.barrier (
        id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        trans_type  VARCHAR(45)  NOT NULL DEFAULT '',
        gid         VARCHAR(128) NOT NULL,
        branch_id   VARCHAR(128) NOT NULL,
        op          VARCHAR(45)  NOT NULL,
        barrier_id  VARCHAR(45)  NOT NULL,
        reason      VARCHAR(45)  NOT NULL DEFAULT '',
        created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        UNIQUE KEY barrier_uniq (gid, branch_id, op, barrier_id)) ENGINE = InnoDB",
    "CREATE TABLE IF NOT EXISTS {s}.step_output (
        gid         VARCHAR(128) NOT NULL,
        branch_id   VARCHAR(128) NOT NULL,
        output      LONGBLOB     NOT NULL,
        created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        PRIMARY KEY (gid, branch_id)) ENGINE = InnoDB",
    "CREATE TABLE IF NOT EXISTS {s}.seal (
        token       CHAR(64)     NOT NULL PRIMARY KEY,
        created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE = InnoDB",
    "DROP PROCEDURE IF EXISTS {s}.enter",
    "CREATE PROCEDURE {s}.enter(IN p_key VARCHAR(255), IN p_trans_type VARCHAR(45), IN p_gid VARCHAR(128),
            IN p_branch_id VARCHAR(128), IN p_op VARCHAR(45), IN p_origin VARCHAR(45), IN p_barrier_id VARCHAR(45),
            IN p_seal CHAR(64))
        MODIFIES SQL DATA SQL SECURITY DEFINER
    BEGIN
        DECLARE a1 INT DEFAULT 0;
        DECLARE duplicate INT DEFAULT 0;
        DECLARE CONTINUE HANDLER FOR 1062 SET duplicate = 1;
        IF p_key IS NULL OR NOT EXISTS (SELECT 1 FROM {s}.host h WHERE h.id = 1
                AND h.key_hash = UNHEX(SHA2(p_key, 256))) THEN
            SIGNAL SQLSTATE '42000' SET MESSAGE_TEXT = 'wasmtx enter is reserved for the host';
        END IF;
        IF p_origin IS NOT NULL THEN
            INSERT INTO {s}.barrier (trans_type, gid, branch_id, op, barrier_id, reason)
            VALUES (p_trans_type, p_gid, p_branch_id, p_origin, p_barrier_id, p_op);
            SET a1 = 1 - duplicate;
            SET duplicate = 0;
        END IF;
        INSERT INTO {s}.barrier (trans_type, gid, branch_id, op, barrier_id, reason)
        VALUES (p_trans_type, p_gid, p_branch_id, p_op, p_barrier_id, p_op);
        INSERT INTO {s}.seal (token) VALUES (p_seal);
        SELECT a1 AS origin_inserted, 1 - duplicate AS op_inserted, CONNECTION_ID() AS connection;
    END",
    "DROP PROCEDURE IF EXISTS {s}.record_output",
    "CREATE PROCEDURE {s}.record_output(IN p_key VARCHAR(255), IN p_gid VARCHAR(128), IN p_branch_id VARCHAR(128),
            IN p_output LONGBLOB)
        MODIFIES SQL DATA SQL SECURITY DEFINER
    BEGIN
        DECLARE CONTINUE HANDLER FOR 1062 BEGIN END;
        IF p_key IS NULL OR NOT EXISTS (SELECT 1 FROM {s}.host h WHERE h.id = 1
                AND h.key_hash = UNHEX(SHA2(p_key, 256))) THEN
            SIGNAL SQLSTATE '42000' SET MESSAGE_TEXT = 'wasmtx record_output is reserved for the host';
        END IF;
        INSERT INTO {s}.step_output (gid, branch_id, output) VALUES (p_gid, p_branch_id, p_output);
    END",
    "DROP PROCEDURE IF EXISTS {s}.check",
    "CREATE PROCEDURE {s}.check(IN p_key VARCHAR(255), IN p_seal CHAR(64))
        MODIFIES SQL DATA SQL SECURITY DEFINER
    BEGIN
        IF p_key IS NULL OR NOT EXISTS (SELECT 1 FROM {s}.host h WHERE h.id = 1
                AND h.key_hash = UNHEX(SHA2(p_key, 256))) THEN
            SIGNAL SQLSTATE '42000' SET MESSAGE_TEXT = 'wasmtx check is reserved for the host';
        END IF;
        DELETE FROM {s}.seal WHERE token = p_seal;
        IF ROW_COUNT() <> 1 THEN
            SIGNAL SQLSTATE '40000' SET MESSAGE_TEXT =
                'not committed: the branch''s transaction ended early (rolled back by the database); nothing was committed';
        END IF;
    END",
];

/// How long a host read without a deadline of its own may take.
const HOST_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How many pooled connections holding an earlier guest's user variables
/// are replaced before a transaction gives up on finding a clean one.
const CLEAN_ATTEMPTS: usize = 4;

/// What the host knows about a database after setting it up.
struct Setup {
    key: String,
    user: String,
    password: String,
}

#[derive(Clone)]
pub(super) struct MyDb {
    /// Connections of the guest account: branch transactions.
    guest: MySqlPool,
    /// Connections of the URL's account: killing a guest's statement, host reads and writes.
    owner: MySqlPool,
    key: Arc<str>,
    /// `wasmtx_<db>`, quoted.
    schema: Arc<str>,
    limits: DbLimits,
}

impl MyDb {
    pub(super) async fn connect(url: &str, limits: DbLimits) -> Result<MyDb, DatabaseError> {
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_owned(),
        };
        let options =
            MySqlConnectOptions::from_str(&url).map_err(|e| DatabaseError::Config(format!("MySQL URL: {e}")))?;
        let database = options
            .get_database()
            .ok_or_else(|| {
                DatabaseError::Config("a MySQL URL must name the database: mysql://user@host/NAME".to_owned())
            })?
            .to_owned();
        check_database_name(&database)?;
        // The business database may not exist yet: set up from one that always does.
        let mut conn = MySqlConnection::connect_with(&options.clone().database("information_schema"))
            .await
            .map_err(unavailable)?;
        let version: Result<String, _> = sqlx::query_scalar("SELECT VERSION()").fetch_one(&mut conn).await;
        if let Err(e) = version.as_deref().map_err(|e| e.to_string()).and_then(supported_server) {
            let _ = conn.close().await;
            return Err(DatabaseError::Unavailable(e));
        }
        let setup = set_up(&mut conn, &database).await;
        let _ = conn.close().await;
        let setup = setup?;
        let guest_options = options.clone().username(&setup.user).password(&setup.password);
        let probe = MySqlConnection::connect_with(&guest_options)
            .await
            .map_err(|e| DatabaseError::Unavailable(format!("the guest account {} cannot log in: {e}", setup.user)))?;
        let _ = probe.close().await;
        let guest = MySqlPoolOptions::new()
            .max_connections(limits.postgres_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .test_before_acquire(false)
            .connect_lazy_with(guest_options);
        let owner = MySqlPoolOptions::new().max_connections(2).test_before_acquire(false).connect_lazy_with(options);
        Ok(MyDb {
            guest,
            owner,
            key: Arc::from(setup.key),
            schema: Arc::from(format!("`{}`", host_schema(&database))),
            limits,
        })
    }

    pub(super) async fn close(&self) {
        self.guest.close().await;
        self.owner.close().await;
    }

    pub(super) async fn run_branch<T: Send + 'static>(
        &self,
        key: BarrierKey,
        deadline: Instant,
        progress: Option<Progress>,
        work: TxWork<T>,
    ) -> Result<BranchRun<T>, RunError> {
        if progress.is_some() {
            return Err(
                DbError::host("a MySQL business database never shares the store: no progress".to_owned()).into()
            );
        }
        let mut tx = self.begin(deadline, false).await?;
        let seal = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let (a1, a2) = tx.enter(&key, &seal).await?;
        let origin = key.op.origin().map(|_| u64::try_from(a1).unwrap_or(0));
        let verdict = BarrierVerdict::decide(origin, u64::try_from(a2).unwrap_or(0));
        tx.seal = Some(seal);
        if verdict != BarrierVerdict::Proceed {
            tx.commit().await?;
            return Ok(BranchRun::Skipped(verdict));
        }
        Ok(BranchRun::Ran(self.run_work(tx, deadline, work).await?))
    }

    pub(super) async fn run_local<T: Send + 'static>(
        &self,
        deadline: Instant,
        work: TxWork<T>,
    ) -> Result<Decision<T>, DbError> {
        let tx = self.begin(deadline, true).await?;
        self.run_work(tx, deadline, work).await.map_err(|e| match e {
            RunError::Db(e) => e,
            e => DbError::host(e.to_string()),
        })
    }

    /// A message's back-check (see [`super::Database::query_prepared`]), as
    /// the owner; it waits (within `deadline`) for a local transaction still
    /// holding the row.
    pub(super) async fn query_prepared(&self, key: BarrierKey, deadline: Instant) -> Result<bool, DbError> {
        let s = &self.schema;
        let check = async {
            let mut conn = self.owner.acquire().await?;
            let secs = deadline.saturating_duration_since(Instant::now()).as_secs().max(1);
            conn.execute(format!("SET SESSION innodb_lock_wait_timeout = {secs}").as_str()).await?;
            let mut tx = conn.begin().await?;
            sqlx::query(&format!(
                "INSERT INTO {s}.barrier (trans_type, gid, branch_id, op, barrier_id, reason) \
                 VALUES (?, ?, ?, ?, ?, 'rollback') ON DUPLICATE KEY UPDATE id = id"
            ))
            .bind(&key.trans_type)
            .bind(key.gid.as_str())
            .bind(key.branch_id.as_str())
            .bind(key.op.as_str())
            .bind(&key.barrier_id)
            .execute(&mut *tx)
            .await?;
            let reason: String = sqlx::query_scalar(&format!(
                "SELECT reason FROM {s}.barrier WHERE gid = ? AND branch_id = ? AND op = ? AND barrier_id = ?"
            ))
            .bind(key.gid.as_str())
            .bind(key.branch_id.as_str())
            .bind(key.op.as_str())
            .bind(&key.barrier_id)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(reason != "rollback")
        };
        match tokio::time::timeout_at(deadline.into(), check).await {
            Ok(found) => Ok(found?),
            Err(_) => Err(DbError::host("deadline exceeded during a message's back-check".to_owned())),
        }
    }

    /// A step's committed output, read as the owner.
    pub(super) async fn step_output(&self, gid: &Gid, branch_id: &BranchId) -> Result<Option<Vec<u8>>, DbError> {
        let sql = format!("SELECT output FROM {}.step_output WHERE gid = ? AND branch_id = ?", self.schema);
        let query = sqlx::query_scalar(&sql).bind(gid.as_str()).bind(branch_id.as_str()).fetch_optional(&self.owner);
        match tokio::time::timeout(HOST_READ_TIMEOUT, query).await {
            Ok(found) => Ok(found?),
            Err(_) => Err(DbError::host(format!("reading a step's output took more than {HOST_READ_TIMEOUT:?}"))),
        }
    }

    /// Hands `tx` to the work and ends it as the work decides, by `deadline`.
    async fn run_work<T: Send + 'static>(
        &self,
        tx: MyTx,
        deadline: Instant,
        work: TxWork<T>,
    ) -> Result<Decision<T>, RunError> {
        let connection = tx.connection;
        let local = LocalTx::new(TxInner::Mysql(tx), &self.limits);
        let finished = tokio::time::timeout_at(deadline.into(), work(local)).await;
        let Ok((local, decision)) = finished else {
            // The work, and with it the connection, is gone; stop its statement.
            self.kill(connection);
            return Err(DbError::host("deadline exceeded: the branch ran past its deadline".to_owned()).into());
        };
        let Some(LocalTx { inner: TxInner::Mysql(tx), .. }) = local else {
            return Err(DbError::host("the transaction was lost; nothing was committed".to_owned()).into());
        };
        match decision {
            Decision::Commit(value) => {
                tx.commit().await?;
                Ok(Decision::Commit(value))
            }
            Decision::Rollback(value) => {
                tx.rollback().await;
                Ok(Decision::Rollback(value))
            }
        }
    }

    /// A clean guest connection in a fresh transaction whose timeouts end by `deadline`.
    async fn begin(&self, deadline: Instant, direct: bool) -> Result<MyTx, DbError> {
        use sqlx::Row as _;
        let left = deadline.saturating_duration_since(Instant::now());
        let session = session_timeouts(left);
        for _ in 0..CLEAN_ATTEMPTS {
            let mut tx = self.acquire(deadline, direct).await?;
            let clean = format!(
                "ROLLBACK; {session}; SELECT CONNECTION_ID(), RELEASE_ALL_LOCKS(), \
                 (SELECT COUNT(*) FROM information_schema.USER_VARIABLES)"
            );
            let rows = tx.host(|conn| Box::pin(async move { conn.fetch_all(clean.as_str()).await })).await?;
            let row = rows.last().ok_or_else(|| DbError::host("cleaning a connection returned nothing".to_owned()))?;
            tx.connection = row.try_get::<u64, _>(0)?;
            if row.try_get::<i64, _>(2)? > 0 {
                // An earlier guest left user variables: a fresh session instead.
                if let Some(mut conn) = tx.conn.take() {
                    conn.close_on_drop();
                }
                continue;
            }
            tx.host(|conn| Box::pin(async move { conn.execute("START TRANSACTION").await.map(|_| ()) })).await?;
            return Ok(tx);
        }
        Err(DbError::host("could not find a clean connection to the business database".to_owned()))
    }

    /// A guest connection from the pool, within `deadline`.
    async fn acquire(&self, deadline: Instant, direct: bool) -> Result<MyTx, DbError> {
        let acquired = tokio::time::timeout_at(deadline.into(), self.guest.acquire()).await;
        let conn = acquired
            .map_err(|_| DbError::host("deadline exceeded while waiting for a database connection".to_owned()))??;
        Ok(MyTx {
            conn: Some(conn),
            connection: 0,
            direct,
            rolled_back: None,
            seal: None,
            key: self.key.clone(),
            schema: self.schema.clone(),
            owner: self.owner.clone(),
        })
    }

    /// Kills the statement a guest connection runs (it is closed anyway).
    fn kill(&self, connection: u64) {
        if connection == 0 {
            return;
        }
        let owner = self.owner.clone();
        tokio::spawn(async move {
            if let Err(e) = owner.execute(format!("KILL QUERY {connection}").as_str()).await {
                tracing::warn!(connection, error = %e, "could not kill a branch's statement after its deadline");
            }
        });
    }
}

#[cfg(test)]
impl MyTx {
    /// Runs `sql` as the host would, bypassing the statement check: what a
    /// hole in that check would let a guest do.
    /// Without parameters it goes as text (MySQL prepares neither `LOAD
    /// DATA` nor several statements at once).
    pub(super) async fn unchecked(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let result = if params.is_empty() {
            self.conn()?.execute(sql).await
        } else {
            let args = value::mysql_arguments(params)?;
            sqlx::query_with(sql, args).execute(self.conn()?).await
        };
        result.map(|r| r.rows_affected()).map_err(DbError::from)
    }
}

#[cfg(test)]
impl MyDb {
    pub(super) async fn barrier_rows(&self, gid: &str, branch: &str) -> Vec<(String, String)> {
        let sql = format!("SELECT op, reason FROM {}.barrier WHERE gid = ? AND branch_id = ? ORDER BY op", self.schema);
        sqlx::query_as(&sql).bind(gid).bind(branch).fetch_all(&self.owner).await.expect("read barrier rows")
    }

    /// `wasmtx_<db>`, quoted: where the host's tables and procedures live.
    pub(super) fn schema(&self) -> &str {
        &self.schema
    }
}

/// `SET SESSION` of the statement and lock timeouts for `left`, and
/// `autocommit = 0`: should the transaction end behind the host's back, what
/// runs after it is a new transaction that the host's `check` refuses to
/// commit, not statements that commit one by one.
fn session_timeouts(left: Duration) -> String {
    let statement = left.as_secs_f64().max(0.001);
    let lock = left.as_secs().clamp(1, 1 << 30);
    format!("SET SESSION autocommit = 0, max_statement_time = {statement:.3}, innodb_lock_wait_timeout = {lock}")
}

/// Whether the server `version` (`SELECT VERSION()`) is a MariaDB this
/// backend supports (10.5 or later), and if not, why.
fn supported_server(version: &str) -> Result<(), String> {
    let mut numbers = version.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if version.contains("MariaDB") && (major, minor) >= (10, 5) {
        Ok(())
    } else {
        Err(format!(
            "the server is {version}; MySQL-protocol business databases need MariaDB 10.5 or later for now \
             (max_statement_time, information_schema.USER_VARIABLES, RELEASE_ALL_LOCKS)"
        ))
    }
}

/// Database names wasmtx accepts: `[A-Za-z0-9_]`, at most 57 bytes, so that
/// `wasmtx_<db>` fits MySQL's 64 and no name needs more than backquotes.
fn check_database_name(name: &str) -> Result<(), DatabaseError> {
    let plain = !name.is_empty() && name.len() <= 57 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain {
        Ok(())
    } else {
        Err(DatabaseError::Config(format!("MySQL database name {name:?}: use 1 to 57 letters, digits and underscores")))
    }
}

/// The database holding the host's tables for business database `name`.
fn host_schema(name: &str) -> String {
    format!("wasmtx_{name}")
}

/// `wasmtx_guest_<db>`, or with a hash of the name when that would pass
/// MySQL's 32 characters for user names.
fn guest_user_name(database: &str) -> String {
    if database.len() <= 19 && database.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        format!("wasmtx_guest_{database}")
    } else {
        let digest = crate::model::Digest::of(database.as_bytes());
        let hex = digest.as_str().trim_start_matches("sha256:");
        format!("wasmtx_guest_{}", &hex[..16])
    }
}

/// `'text'` as a MySQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// Creates or refreshes the databases, tables, procedures and guest account,
/// holding a named lock so that hosts starting together take turns.
async fn set_up(conn: &mut MySqlConnection, database: &str) -> Result<Setup, DatabaseError> {
    let fail = |what: &str, e: sqlx::Error| {
        DatabaseError::Unavailable(format!("setting up the database for guests: {what}: {e}"))
    };
    // Lock names are server-wide and at most 64 characters.
    let digest = crate::model::Digest::of(database.as_bytes());
    let lock = format!("wasmtx:{}", &digest.as_str().trim_start_matches("sha256:")[..40]);
    let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 60)")
        .bind(&lock)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| fail("taking the setup lock", e))?;
    if locked != Some(1) {
        return Err(DatabaseError::Unavailable("another host held the setup lock for a minute".to_owned()));
    }
    let result = set_up_locked(conn, database).await;
    let _ = sqlx::query("SELECT RELEASE_LOCK(?)").bind(&lock).execute(&mut *conn).await;
    result.map_err(|(what, e)| fail(what, e))
}

async fn set_up_locked(conn: &mut MySqlConnection, database: &str) -> Result<Setup, (&'static str, sqlx::Error)> {
    let s = format!("`{}`", host_schema(database));
    let db = format!("`{database}`");
    conn.execute(format!("CREATE DATABASE IF NOT EXISTS {db}").as_str())
        .await
        .map_err(|e| ("creating the business database", e))?;
    // One collation for the host's tables and the procedures' parameters.
    conn.execute(format!("CREATE DATABASE IF NOT EXISTS {s} CHARACTER SET utf8mb4").as_str())
        .await
        .map_err(|e| ("creating the host's database", e))?;
    conn.execute(
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.host (id INT PRIMARY KEY, version INT NOT NULL, `key` VARCHAR(64) NOT \
             NULL, key_hash BINARY(32) NOT NULL, guest_user VARCHAR(32) NOT NULL, guest_password VARCHAR(64) NOT \
             NULL) ENGINE = InnoDB"
        )
        .as_str(),
    )
    .await
    .map_err(|e| ("creating the host table", e))?;
    let key = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let password = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    sqlx::query(&format!(
        "INSERT INTO {s}.host VALUES (1, 0, ?, UNHEX(SHA2(?, 256)), ?, ?) ON DUPLICATE KEY UPDATE id = id"
    ))
    .bind(&key)
    .bind(&key)
    .bind(guest_user_name(database))
    .bind(&password)
    .execute(&mut *conn)
    .await
    .map_err(|e| ("recording the host key", e))?;
    let (version, key, user, password): (i32, String, String, String) =
        sqlx::query_as(&format!("SELECT version, `key`, guest_user, guest_password FROM {s}.host WHERE id = 1"))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| ("reading the host key", e))?;
    if version < SETUP_VERSION {
        for sql in SETUP {
            conn.execute(sql.replace("{s}", &s).as_str())
                .await
                .map_err(|e| ("creating the barrier tables and host procedures", e))?;
        }
        sqlx::query(&format!("UPDATE {s}.host SET version = ?"))
            .bind(SETUP_VERSION)
            .execute(&mut *conn)
            .await
            .map_err(|e| ("recording the setup version", e))?;
    }
    // The owner's own client host, as the server sees it.
    let me: String = sqlx::query_scalar("SELECT SUBSTRING_INDEX(USER(), '@', -1)")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| ("reading the owner's host", e))?;
    let mut hosts = vec!["%".to_owned()];
    if !me.is_empty() && me != "%" {
        hosts.push(me);
    }
    // `user` is [a-z0-9_] (see guest_user_name) and the password hex.
    for host in hosts {
        let account = format!("'{user}'@{}", quote(&host));
        for sql in [
            format!("CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{password}'"),
            format!("ALTER USER {account} IDENTIFIED BY '{password}'"),
            format!("REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account}"),
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, REFERENCES ON {db}.* TO {account}"
            ),
            format!("GRANT EXECUTE ON PROCEDURE {s}.enter TO {account}"),
            format!("GRANT EXECUTE ON PROCEDURE {s}.record_output TO {account}"),
            format!("GRANT EXECUTE ON PROCEDURE {s}.`check` TO {account}"),
        ] {
            conn.execute(sql.as_str()).await.map_err(|e| ("creating the guest account and its rights", e))?;
        }
    }
    Ok(Setup { key, user, password })
}

fn unavailable(e: sqlx::Error) -> DatabaseError {
    DatabaseError::Unavailable(match e.as_database_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    })
}

/// One open transaction on a guest connection (closed, not pooled, when
/// dropped before it ended).
pub(super) struct MyTx {
    conn: Option<PoolConnection<MySql>>,
    /// The server's id of the connection, for `KILL QUERY`.
    connection: u64,
    /// A direct call (no barrier): table DDL is allowed.
    direct: bool,
    /// Set once InnoDB rolled the whole transaction back (deadlock, lock wait
    /// timeout): no statement runs after it and the transaction cannot commit.
    rolled_back: Option<DbError>,
    /// The token of the seal row `enter` wrote, checked before the commit.
    seal: Option<String>,
    /// The host key, for host procedures called in the transaction.
    key: Arc<str>,
    schema: Arc<str>,
    /// The owner's connections, to look for a seal committed early.
    owner: MySqlPool,
}

impl Drop for MyTx {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            // Mid-transaction: MySQL rolls back when the connection closes.
            conn.close_on_drop();
        }
    }
}

type HostCall<'c, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

impl MyTx {
    fn conn(&mut self) -> Result<&mut MySqlConnection, DbError> {
        self.conn.as_deref_mut().ok_or_else(|| DbError::host("the transaction has ended".to_owned()))
    }

    /// A host statement: on failure the connection is not trusted again.
    async fn host<T>(
        &mut self,
        call: impl for<'c> FnOnce(&'c mut MySqlConnection) -> HostCall<'c, T>,
    ) -> Result<T, DbError> {
        let conn = self.conn()?;
        match call(conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                if let Some(mut conn) = self.conn.take() {
                    conn.close_on_drop();
                }
                Err(e.into())
            }
        }
    }

    /// Enters the barrier, writing the seal row `seal`: (origin inserted, op inserted).
    async fn enter(&mut self, barrier: &BarrierKey, seal: &str) -> Result<(i64, i64), DbError> {
        let sql = format!("CALL {}.enter(?, ?, ?, ?, ?, ?, ?, ?)", self.schema);
        let key = self.key.to_string();
        let b = barrier.clone();
        let seal = seal.to_owned();
        let (a1, a2, _connection): (i64, i64, u64) = self
            .host(move |conn| {
                Box::pin(async move {
                    sqlx::query_as(&sql)
                        .bind(key)
                        .bind(b.trans_type)
                        .bind(b.gid.as_str())
                        .bind(b.branch_id.as_str())
                        .bind(b.op.as_str())
                        .bind(b.op.origin().map(|o| o.as_str()))
                        .bind(b.barrier_id)
                        .bind(seal)
                        .fetch_one(conn)
                        .await
                })
            })
            .await?;
        Ok((a1, a2))
    }

    /// Records a step's output through the host's `record_output` procedure.
    pub(super) async fn record_output(&mut self, barrier: &BarrierKey, output: &[u8]) -> Result<(), DbError> {
        self.refuse_if_rolled_back()?;
        let sql = format!("CALL {}.record_output(?, ?, ?, ?)", self.schema);
        let key = self.key.to_string();
        let (gid, branch_id) = (barrier.gid.as_str().to_owned(), barrier.branch_id.as_str().to_owned());
        let output = output.to_vec();
        self.host(move |conn| {
            Box::pin(async move {
                sqlx::query(&sql).bind(key).bind(gid).bind(branch_id).bind(output).execute(conn).await.map(|_| ())
            })
        })
        .await
    }

    fn refuse_if_rolled_back(&self) -> Result<(), DbError> {
        match &self.rolled_back {
            Some(e) => Err(DbError {
                code: e.code.clone(),
                message: format!(
                    "not run: the database rolled the whole transaction back after an earlier statement failed \
                     ({}); nothing will be committed",
                    e.message
                ),
            }),
            None => Ok(()),
        }
    }

    /// Remembers an error after which InnoDB rolled the whole transaction back.
    fn note<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, DbError> {
        result.map_err(|e| {
            let number = e
                .as_database_error()
                .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
                .map(|d| d.number());
            let e = DbError::from(e);
            // 1213: deadlock; 1205: lock wait timeout (a whole-transaction
            // rollback when innodb_rollback_on_timeout is on: assumed).
            if matches!(number, Some(1213 | 1205)) {
                self.rolled_back = Some(e.clone());
            }
            e
        })
    }

    /// After DDL in a direct call (committed implicitly), a new transaction.
    async fn after(&mut self, kind: MysqlStatement) -> Result<(), DbError> {
        if kind == MysqlStatement::CommitsImplicitly {
            self.host(|conn| Box::pin(async move { conn.execute("START TRANSACTION").await.map(|_| ()) })).await?;
        }
        Ok(())
    }

    pub(super) async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let kind = statement::check_mysql(sql, self.direct)?;
        self.refuse_if_rolled_back()?;
        let (sql, params) = placeholders::positional(sql, params)?;
        let args = value::mysql_arguments(&params)?;
        let result = sqlx::query_with(&sql, args).execute(self.conn()?).await;
        let result = self.note(result.map(|r| r.rows_affected()));
        self.after(kind).await?;
        result
    }

    pub(super) async fn query(&mut self, sql: &str, params: &[Value], budget: &GuestLimits) -> Result<Rows, DbError> {
        let kind = statement::check_mysql(sql, self.direct)?;
        self.refuse_if_rolled_back()?;
        let (sql, params) = placeholders::positional(sql, params)?;
        let result = query(self.conn()?, &sql, &params, budget).await;
        let result = match result {
            Ok(rows) => Ok(rows),
            Err(Fetch::Db(e)) => self.note(Err(e)),
            Err(Fetch::Host(e)) => Err(e),
        };
        self.after(kind).await?;
        result
    }

    /// Commits; a branch first proves its transaction is the one that
    /// entered the barrier.
    async fn commit(mut self) -> Result<(), RunError> {
        if let Some(e) = self.rolled_back.clone() {
            self.rollback().await;
            return Err(DbError {
                code: e.code,
                message: format!(
                    "not committed: the database rolled the transaction back after a statement failed ({}); nothing \
                     was committed",
                    e.message
                ),
            }
            .into());
        }
        if let Some(seal) = self.seal.clone() {
            // Committed early: the seal row is visible from another connection.
            let committed = format!("SELECT COUNT(*) FROM {}.seal WHERE token = ?", self.schema);
            let seen = sqlx::query_scalar::<_, i64>(&committed).bind(&seal).fetch_one(&self.owner).await;
            match seen {
                Ok(0) => {}
                Ok(_) => {
                    let owner = self.owner.clone();
                    let forget = format!("DELETE FROM {}.seal WHERE token = ?", self.schema);
                    self.rollback().await;
                    let _ = sqlx::query(&forget).bind(&seal).execute(&owner).await;
                    return Err(DbError {
                        code: Some("40000".to_owned()),
                        message: "not committed: the branch's transaction ended early (committed by a statement \
                                  the host did not make); nothing after that was committed"
                            .to_owned(),
                    }
                    .into());
                }
                Err(e) => {
                    self.rollback().await;
                    return Err(DbError::from(e).into());
                }
            }
            let sql = format!("CALL {}.`check`(?, ?)", self.schema);
            let key = self.key.to_string();
            let checked = self.conn()?.execute(sqlx::query(&sql).bind(key).bind(seal)).await;
            if let Err(e) = checked {
                self.rollback().await;
                return Err(DbError::from(e).into());
            }
        }
        self.host(|conn| Box::pin(async move { conn.execute("COMMIT").await.map(|_| ()) })).await?;
        // Ended cleanly: the connection goes back to the pool.
        drop(self.conn.take());
        Ok(())
    }

    async fn rollback(mut self) {
        if self.host(|conn| Box::pin(async move { conn.execute("ROLLBACK").await.map(|_| ()) })).await.is_ok() {
            drop(self.conn.take());
        }
    }
}

/// Why a query failed: the database (which may have rolled back), or the host.
enum Fetch {
    Db(sqlx::Error),
    Host(DbError),
}

impl From<sqlx::Error> for Fetch {
    fn from(e: sqlx::Error) -> Self {
        Fetch::Db(e)
    }
}

/// Prepares (for the column names, even of an empty result, and to refuse
/// unsupported types before the statement runs), then streams the rows,
/// stopping at the invocation's result limits.
async fn query(conn: &mut MySqlConnection, sql: &str, params: &[Value], budget: &GuestLimits) -> Result<Rows, Fetch> {
    let statement = conn.prepare(sql).await?;
    let columns = value::MyColumns::describe(statement.columns()).map_err(Fetch::Host)?;
    let args = value::mysql_arguments(params).map_err(Fetch::Host)?;
    let mut stream = sqlx::query_with(sql, args).fetch(&mut *conn);
    let (mut values, mut bytes) = (Vec::new(), 0u64);
    while let Some(row) = stream.try_next().await? {
        if values.len() as u64 >= budget.rows {
            return Err(Fetch::Host(DbError::host(format!(
                "query results exceed the limit of rows one invocation may read ({} left)",
                budget.rows
            ))));
        }
        let (row, size) = columns.decode_row(&row).map_err(Fetch::Host)?;
        bytes += size;
        if bytes > budget.bytes {
            return Err(Fetch::Host(DbError::host(format!(
                "query results exceed the limit of bytes one invocation may read ({} left)",
                budget.bytes
            ))));
        }
        values.push(row);
    }
    drop(stream);
    Ok(Rows { columns: columns.into_names(), values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_user_names_fit_mysql_limits() {
        assert_eq!(guest_user_name("shop"), "wasmtx_guest_shop");
        for name in ["x".repeat(57), "Shop".to_owned()] {
            let user = guest_user_name(&name);
            assert!(
                user.len() <= 32 && user.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
        }
    }

    #[test]
    fn only_mariadb_10_5_or_later_is_supported() {
        assert!(supported_server("10.11.19-MariaDB-0+deb12u1").is_ok());
        assert!(supported_server("11.4.2-MariaDB").is_ok());
        assert!(supported_server("10.4.30-MariaDB").is_err());
        assert!(supported_server("8.0.36").unwrap_err().contains("8.0.36"));
    }

    #[test]
    fn only_plain_database_names_are_accepted() {
        assert!(check_database_name("shop_1").is_ok());
        for bad in ["", "a-b", "a`b", "a b", &"x".repeat(58)] {
            assert!(check_database_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn session_timeouts_follow_the_deadline() {
        assert_eq!(
            session_timeouts(Duration::from_millis(500)),
            "SET SESSION autocommit = 0, max_statement_time = 0.500, innodb_lock_wait_timeout = 1"
        );
        assert!(session_timeouts(Duration::ZERO).contains("max_statement_time = 0.001"));
    }
}
