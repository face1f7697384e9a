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
//!   `seal` (see `check` below), the XA branches' names and prepare times
//!   `xa` (see [`MyDb::prepared_branches`]), and the table `host` with a
//!   secret key (the procedures compare its SHA-256 hash) and the guest's
//!   password;
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
//! Guests write `?` placeholders (MySQL's own syntax).
//!
//! XA branches ([`MyDb::run_branch_prepared`]) run the same local
//! transaction inside `XA START` … `XA END`, ended by `XA PREPARE` (a
//! skipped op commits its barrier rows with `XA COMMIT … ONE PHASE`); the
//! connection that prepared is then closed, since MariaDB (10.5 and later)
//! keeps a prepared XA transaction across disconnects but lets another
//! connection finish it only once its own is gone. Phase 2 (`XA COMMIT`,
//! `XA ROLLBACK`) and `XA RECOVER` run as the owner. No guest can issue XA
//! statements (the allowlist), and inside an XA transaction MariaDB refuses
//! `COMMIT`, `ROLLBACK` and `START TRANSACTION` anyway (XAER_RMFAIL). The
//! xids and the `xa` table that names them and dates their prepare are
//! described at [`Xid`] and [`MyDb::prepared_branches`].
//!
//! The server must be MariaDB 10.5 or later: `max_statement_time`,
//! `information_schema.USER_VARIABLES` and `RELEASE_ALL_LOCKS()` are
//! MariaDB's, and so is keeping prepared XA transactions across
//! disconnects (10.5). Oracle MySQL is refused at connect, with that reason, until
//! its equivalents (`max_execution_time`, performance_schema) are wired and
//! tested.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
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
/// safe to run again. Version 2 added `xa`.
const SETUP_VERSION: i32 = 2;

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
    "CREATE TABLE IF NOT EXISTS {s}.xa (
        gtrid       VARCHAR(64)  NOT NULL PRIMARY KEY,
        gid         VARCHAR(128) NOT NULL,
        branch_id   VARCHAR(128) NOT NULL,
        prepared_at DATETIME(6)  NULL) ENGINE = InnoDB",
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

/// SQLSTATE of XAER_NOTA (1397): no such xid (not prepared, or still
/// attached to the connection that prepared it).
const XAER_NOTA: &str = "XAE04";

/// SQLSTATE of XAER_DUPID (1440): the xid is in use (prepared, or active
/// on another connection).
const XAER_DUPID: &str = "XAE08";

/// An XA branch's xid on MySQL: `'gtrid', 'bqual'`. The gtrid is
/// [`super::xid`] (at most 64 bytes, MySQL's limit, or else `wasmtx:#`
/// and the start of its SHA-256 in hex, named by the `xa` table); the
/// branch qualifier is the business database's name, since `XA RECOVER`
/// lists the prepared transactions of the whole server. Both are
/// `[A-Za-z0-9_.:#-]` (gids are `[A-Za-z0-9_.:-]`, database names
/// `[A-Za-z0-9_]`), quoted anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Xid {
    gtrid: String,
    bqual: String,
}

impl Xid {
    fn of(xid: &str, database: &str) -> Xid {
        let gtrid = if xid.len() <= 64 {
            xid.to_owned()
        } else {
            use sha2::Digest as _;
            let hash = hex::encode(sha2::Sha256::digest(xid.as_bytes()));
            format!("wasmtx:#{}", &hash[..56])
        };
        Xid { gtrid, bqual: database.to_owned() }
    }

    /// The xid as XA statements take it.
    fn sql(&self) -> String {
        format!("{}, {}", quote(&self.gtrid), quote(&self.bqual))
    }
}

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
    /// The business database's name: the branch qualifier of its XA xids.
    database: Arc<str>,
    /// Why XA branches cannot run here (`XA RECOVER` failed at connect).
    xa_refusal: Option<String>,
    /// When this host first saw each prepared xid (gtrid) that has no
    /// prepare time in `xa`: the age [`MyDb::prepared_branches`] assumes.
    first_seen: Arc<Mutex<HashMap<String, Instant>>>,
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
        // Finishing and listing prepared branches is the owner's (any account
        // may run XA statements on MariaDB; some setups restrict XA RECOVER).
        let xa_refusal = match owner.execute("XA RECOVER").await {
            Ok(_) => None,
            Err(e) => Some(format!("the URL's account cannot list prepared XA transactions (XA RECOVER: {e})")),
        };
        Ok(MyDb {
            guest,
            owner,
            key: Arc::from(setup.key),
            schema: Arc::from(format!("`{}`", host_schema(&database))),
            database: Arc::from(database),
            xa_refusal,
            first_seen: Arc::default(),
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
        self.branch(key, deadline, work, None).await
    }

    /// Why this database cannot run XA branches, if it cannot.
    pub(super) fn xa_refusal(&self) -> Option<String> {
        self.xa_refusal.clone()
    }

    /// An XA action: [`MyDb::run_branch`] in an XA transaction (`XA START`),
    /// ended by `XA END` and `XA PREPARE` instead of a commit. An action
    /// that prepared before (its answer lost to a crash) is found prepared
    /// and not run again.
    ///
    /// Before it starts, the owner records the xid's gid and branch in `xa`
    /// (committed at once, so that a long gid's hashed xid can be named by
    /// [`MyDb::prepared_branches`] whatever happens next) and clears any
    /// earlier stamp; once prepared, the owner stamps the row's
    /// `prepared_at`. The stamp cannot be written in the XA transaction
    /// itself: that write would stay prepared, unseen until phase 2.
    pub(super) async fn run_branch_prepared<T: Send + 'static>(
        &self,
        key: BarrierKey,
        deadline: Instant,
        work: TxWork<T>,
    ) -> Result<BranchRun<T>, RunError> {
        let xid = self.xid(&key.gid, &key.branch_id);
        let s = &self.schema;
        let name = format!(
            "INSERT INTO {s}.xa (gtrid, gid, branch_id) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE prepared_at = NULL"
        );
        let named = sqlx::query(&name)
            .bind(&xid.gtrid)
            .bind(key.gid.as_str())
            .bind(key.branch_id.as_str())
            .execute(&self.owner);
        match tokio::time::timeout_at(deadline.into(), named).await {
            Ok(named) => named.map_err(DbError::from)?,
            Err(_) => return Err(DbError::host("deadline exceeded recording an XA branch".to_owned()).into()),
        };
        let run = self.branch(key, deadline, work, Some(xid.clone())).await?;
        if matches!(run, BranchRun::Ran(Decision::Commit(_))) {
            let stamp = format!("UPDATE {s}.xa SET prepared_at = NOW(6) WHERE gtrid = ?");
            let stamp = sqlx::query(&stamp).bind(&xid.gtrid).execute(&self.owner);
            // Without the stamp the branch's age counts from when a host
            // first lists it: later, never earlier.
            match tokio::time::timeout(HOST_READ_TIMEOUT, stamp).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(xid = %xid.gtrid, error = %e, "could not stamp a prepared XA branch"),
                Err(_) => tracing::warn!(xid = %xid.gtrid, "stamping a prepared XA branch timed out"),
            }
        }
        Ok(run)
    }

    /// XA's phase 2 for the branch of `key` (op `commit` or `rollback`):
    /// `XA COMMIT` or `XA ROLLBACK`. Idempotent: a commit finds an earlier
    /// commit by the action's barrier row; a rollback then enters the
    /// barrier, so that an action arriving late (a stale owner's) does
    /// nothing.
    pub(super) async fn finish_prepared(&self, key: BarrierKey, deadline: Instant) -> Result<(), DbError> {
        let commit = match key.op {
            crate::model::Op::Commit => true,
            crate::model::Op::Rollback => false,
            op => return Err(DbError::host(format!("{op} is not a phase-2 op"))),
        };
        let xid = self.xid(&key.gid, &key.branch_id);
        let finished = self.end_prepared(&xid, commit, deadline).await?;
        if commit {
            if !finished && !self.action_committed(&key, deadline).await? {
                return Err(DbError::host(format!(
                    "branch {} prepared, but its prepared transaction {} is gone and was never committed (rolled \
                     back by hand?); it cannot be committed",
                    key.branch_id,
                    xid.sql()
                )));
            }
            return Ok(());
        }
        let noop: TxWork<()> = Box::new(|tx| Box::pin(async move { (Some(tx), Decision::Commit(())) }));
        match self.branch(key, deadline, noop, None).await {
            Ok(_) => Ok(()),
            Err(RunError::Db(e)) => Err(e),
            Err(e) => Err(DbError::host(e.to_string())),
        }
    }

    /// The XA branches of this database prepared more than `older_than` ago
    /// and still prepared: the xids `XA RECOVER` lists (server-wide) whose
    /// branch qualifier is this database, named by `xa` or by the xid
    /// itself. MariaDB keeps no prepare time: the age is that of the `xa`
    /// row's stamp, written just after the prepare (by the server's clock),
    /// or, for a branch prepared by a host that stopped before stamping it,
    /// the time this host first listed it. Either is at or after the
    /// prepare, so a branch is never taken for older than it is; a restart
    /// only delays such an unstamped branch by `older_than`.
    pub(super) async fn prepared_branches(&self, older_than: Duration) -> Result<Vec<(Gid, BranchId)>, DbError> {
        let list = async {
            let prepared = self.recovered().await?;
            let sql = format!(
                "SELECT gtrid, gid, branch_id, TIMESTAMPDIFF(MICROSECOND, prepared_at, NOW(6)) FROM {}.xa",
                self.schema
            );
            let rows: Vec<(String, String, String, Option<i64>)> = sqlx::query_as(&sql).fetch_all(&self.owner).await?;
            Ok::<_, sqlx::Error>((prepared, rows))
        };
        let (prepared, rows) = match tokio::time::timeout(HOST_READ_TIMEOUT, list).await {
            Ok(listed) => listed?,
            Err(_) => return Err(DbError::host("listing prepared XA branches timed out".to_owned())),
        };
        let rows: HashMap<String, (String, String, Option<i64>)> =
            rows.into_iter().map(|(gtrid, gid, branch, age)| (gtrid, (gid, branch, age))).collect();
        let now = Instant::now();
        let mut first_seen = self.first_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        first_seen.retain(|gtrid, _| prepared.contains(gtrid));
        let mut branches = Vec::new();
        for gtrid in &prepared {
            let row = rows.get(gtrid);
            let name = match row {
                Some((gid, branch, _)) => Gid::parse(gid).ok().zip(BranchId::parse(branch).ok()),
                None => super::parse_xid(gtrid),
            };
            let Some(name) = name else {
                tracing::warn!(xid = %gtrid, "a prepared XA branch that cannot be named is left alone");
                continue;
            };
            let age = match row.and_then(|(_, _, age)| *age) {
                Some(micros) => Duration::from_micros(u64::try_from(micros).unwrap_or(0)),
                None => now.duration_since(*first_seen.entry(gtrid.clone()).or_insert(now)),
            };
            if age >= older_than {
                branches.push(name);
            }
        }
        Ok(branches)
    }

    /// Commits or rolls back the prepared branch of `gid`'s `branch_id`;
    /// false when it was no longer prepared.
    pub(super) async fn resolve_prepared(
        &self,
        gid: &Gid,
        branch_id: &BranchId,
        commit: bool,
    ) -> Result<bool, DbError> {
        let xid = self.xid(gid, branch_id);
        self.end_prepared(&xid, commit, Instant::now() + HOST_READ_TIMEOUT).await
    }

    /// `XA COMMIT` or `XA ROLLBACK` of `xid`, as the owner; false when no
    /// such prepared transaction exists (finished before). MariaDB answers
    /// "unknown xid" (XAER_NOTA) too while the connection that prepared it
    /// is still being closed; so an xid `XA RECOVER` still lists is tried
    /// again until `deadline`. The xid's `xa` row goes once it is finished.
    async fn end_prepared(&self, xid: &Xid, commit: bool, deadline: Instant) -> Result<bool, DbError> {
        let verb = if commit { "COMMIT" } else { "ROLLBACK" };
        let sql = format!("XA {verb} {}", xid.sql());
        let run = async {
            let finished = loop {
                match self.owner.execute(sql.as_str()).await {
                    Ok(_) => break true,
                    Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some(XAER_NOTA) => {
                        if !self.recovered().await?.contains(&xid.gtrid) {
                            break false;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            sqlx::query(&format!("DELETE FROM {}.xa WHERE gtrid = ?", self.schema))
                .bind(&xid.gtrid)
                .execute(&self.owner)
                .await?;
            Ok(finished)
        };
        match tokio::time::timeout_at(deadline.into(), run).await {
            Err(_) => Err(DbError::host(format!("deadline exceeded during XA {verb}"))),
            Ok(finished) => Ok(finished?),
        }
    }

    /// The gtrids of this database's prepared XA transactions (`XA RECOVER`
    /// lists the whole server's).
    async fn recovered(&self) -> Result<Vec<String>, sqlx::Error> {
        use sqlx::Row as _;
        let rows = self.owner.fetch_all("XA RECOVER").await?;
        let mut gtrids = Vec::new();
        for row in rows {
            let gtrid_length = usize::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0);
            let data: Vec<u8> = row.try_get(3)?;
            if gtrid_length > data.len() {
                continue;
            }
            let (gtrid, bqual) = data.split_at(gtrid_length);
            if bqual == self.database.as_bytes() && gtrid.starts_with(b"wasmtx:") {
                gtrids.push(String::from_utf8_lossy(gtrid).into_owned());
            }
        }
        Ok(gtrids)
    }

    /// Whether the action of `key`'s branch committed (its barrier row is there).
    async fn action_committed(&self, key: &BarrierKey, deadline: Instant) -> Result<bool, DbError> {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {}.barrier WHERE gid = ? AND branch_id = ? AND op = 'action')",
            self.schema
        );
        let query = sqlx::query_scalar::<_, i64>(&sql)
            .bind(key.gid.as_str())
            .bind(key.branch_id.as_str())
            .fetch_one(&self.owner);
        match tokio::time::timeout_at(deadline.into(), query).await {
            Ok(found) => Ok(found? != 0),
            Err(_) => Err(DbError::host("deadline exceeded reading the barrier".to_owned())),
        }
    }

    /// The MySQL xid of `gid`'s `branch_id` in this database (see [`Xid`]).
    fn xid(&self, gid: &Gid, branch_id: &BranchId) -> Xid {
        Xid::of(&super::xid(gid, branch_id), &self.database)
    }

    /// A branch op's local transaction: the barrier, then the work, ended by
    /// a commit, or by `XA PREPARE` when `xa` is given.
    async fn branch<T: Send + 'static>(
        &self,
        key: BarrierKey,
        deadline: Instant,
        work: TxWork<T>,
        xa: Option<Xid>,
    ) -> Result<BranchRun<T>, RunError> {
        let mut tx = match &xa {
            None => self.begin(deadline, false).await?,
            Some(xid) => match self.begin_xa(deadline, xid).await? {
                Some(tx) => tx,
                // Prepared before (its answer lost to a crash): not again.
                None => return Ok(BranchRun::Skipped(BarrierVerdict::Duplicate)),
            },
        };
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
                if tx.xa.is_some() {
                    tx.prepare().await?;
                } else {
                    tx.commit().await?;
                }
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
        self.start(deadline, direct, None).await
    }

    /// [`MyDb::begin`] for an XA action: an XA transaction (`XA START xid`),
    /// or `None` when `xid` is prepared already.
    async fn begin_xa(&self, deadline: Instant, xid: &Xid) -> Result<Option<MyTx>, DbError> {
        match self.start(deadline, false, Some(xid)).await {
            Ok(tx) => Ok(Some(tx)),
            Err(e) if e.code.as_deref() == Some(XAER_DUPID) => {
                if self.recovered().await?.contains(&xid.gtrid) {
                    Ok(None)
                } else {
                    Err(DbError::host(format!(
                        "another attempt of this XA action ({}) is still running; nothing was done",
                        xid.sql()
                    )))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// [`MyDb::begin`], beginning an XA transaction when `xa` is given.
    async fn start(&self, deadline: Instant, direct: bool, xa: Option<&Xid>) -> Result<MyTx, DbError> {
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
            let start = match xa {
                Some(xid) => format!("XA START {}", xid.sql()),
                None => "START TRANSACTION".to_owned(),
            };
            tx.host(|conn| Box::pin(async move { conn.execute(start.as_str()).await.map(|_| ()) })).await?;
            tx.xa = xa.cloned();
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
            xa: None,
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
    /// The xid of an XA transaction (`XA START`), which ends with `XA END`
    /// and then `XA PREPARE`, `XA COMMIT … ONE PHASE` or `XA ROLLBACK`.
    xa: Option<Xid>,
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

    /// Commits (an XA transaction in one phase).
    async fn commit(self) -> Result<(), RunError> {
        self.end(false).await
    }

    /// Prepares an XA transaction (`XA END`, `XA PREPARE`), then closes its
    /// connection: MariaDB lets another connection finish a prepared
    /// transaction only once the one that prepared it is gone.
    async fn prepare(self) -> Result<(), RunError> {
        self.end(true).await
    }

    /// Commits, or prepares when `prepare`; a branch first proves its
    /// transaction is the one that entered the barrier.
    async fn end(mut self, prepare: bool) -> Result<(), RunError> {
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
        let last = match (&self.xa, prepare) {
            (None, false) => "COMMIT".to_owned(),
            (Some(xid), false) => format!("XA END {0}; XA COMMIT {0} ONE PHASE", xid.sql()),
            (Some(xid), true) => format!("XA END {0}; XA PREPARE {0}", xid.sql()),
            (None, true) => return Err(DbError::host("only an XA transaction can be prepared".to_owned()).into()),
        };
        self.host(|conn| Box::pin(async move { conn.execute(last.as_str()).await.map(|_| ()) })).await?;
        let conn = self.conn.take();
        if prepare {
            // Prepared: the transaction outlives its connection, which closes now.
            if let Some(conn) = conn {
                let _ = conn.close().await;
            }
        } else {
            // Ended cleanly: the connection goes back to the pool.
            drop(conn);
        }
        Ok(())
    }

    async fn rollback(mut self) {
        let last = match &self.xa {
            Some(xid) => format!("XA END {0}; XA ROLLBACK {0}", xid.sql()),
            None => "ROLLBACK".to_owned(),
        };
        if self.host(|conn| Box::pin(async move { conn.execute(last.as_str()).await.map(|_| ()) })).await.is_ok() {
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
