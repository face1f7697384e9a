//! SQLite business databases: the pool, and the local transaction a branch runs in.
//!
//! The transaction is driven with plain `BEGIN IMMEDIATE` / `COMMIT` /
//! `ROLLBACK` statements on a pooled connection, not with `sqlx::Transaction`:
//! sqlx counts transaction depth itself, and once SQLite ends a transaction on
//! its own (a `RAISE(ROLLBACK)` trigger, a full disk, a commit the guest
//! slipped in) that count is wrong for good and the connection — the only one
//! in the pool — refuses every later `begin`. Here the real state is the only
//! state. This file must not decide what a branch does; it only keeps the
//! transaction whole.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Column, Executor, Sqlite, Statement};

use super::value::{self, DbError, Rows, Value};
use super::{ACQUIRE_TIMEOUT, BarrierKey, BarrierVerdict, DatabaseError, barrier, statement};

/// How long SQLite waits for another process's write lock before failing with
/// SQLITE_BUSY. Within one process branches queue on the pool instead.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the pool: one connection (SQLite has one writer and every branch
/// writes its barrier row, so branches queue fairly on the pool rather than
/// polling the file lock; this also keeps a `sqlite::memory:` database alive),
/// WAL, `synchronous=FULL`, file and parent directory created unless the URL
/// sets `mode=` itself.
pub(super) async fn connect(url: &str) -> Result<SqlitePool, DatabaseError> {
    let mut options = SqliteConnectOptions::from_str(url)
        .map_err(|e| DatabaseError::Config(format!("SQLite URL: {e}")))?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT);
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let in_memory = url.contains(":memory:") || query.contains("mode=memory");
    if !query.contains("mode=") {
        options = options.create_if_missing(true);
    }
    if !in_memory
        && let Some(dir) = options.get_filename().parent()
        && !dir.as_os_str().is_empty()
    {
        tokio::fs::create_dir_all(dir).await.map_err(|e| DatabaseError::Unavailable(sqlx::Error::Io(e)))?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .map_err(DatabaseError::Unavailable)?;
    pool.execute(barrier::CREATE_TABLE_SQLITE).await.map_err(DatabaseError::Unavailable)?;
    Ok(pool)
}

/// What the connection's commit and rollback hooks know about this transaction.
#[derive(Default)]
struct HookState {
    /// Set by `commit`/`rollback`; until then the commit hook turns every commit
    /// into a rollback, so guest SQL cannot commit part of the branch.
    host_ending: AtomicBool,
    /// SQLite committed-and-refused or rolled back the transaction before the
    /// host ended it: it no longer holds the barrier row, so it must not commit.
    ended_early: AtomicBool,
}

/// One open SQLite transaction. Dropped without `commit`/`rollback`, it rolls
/// back on a spawned task before the connection goes back to the pool.
pub(super) struct SqliteTx {
    /// `None` only once the transaction has been ended.
    conn: Option<PoolConnection<Sqlite>>,
    hooks: Arc<HookState>,
}

impl SqliteTx {
    pub(super) async fn begin(pool: &SqlitePool) -> Result<SqliteTx, DbError> {
        let hooks = Arc::new(HookState::default());
        // Built before BEGIN so that a cancelled `begin` still rolls back on drop.
        let mut tx = SqliteTx { conn: Some(pool.acquire().await?), hooks: Arc::clone(&hooks) };
        let conn = tx.conn()?;
        // BEGIN IMMEDIATE takes the write lock now, so a branch waits here
        // (busy_timeout) instead of failing with SQLITE_BUSY at its first write.
        if let Err(e) = conn.execute("BEGIN IMMEDIATE").await {
            if !message_contains(&e, "within a transaction") {
                return Err(e.into());
            }
            // Left open by a rollback that failed on a dropped transaction: end it.
            conn.execute("ROLLBACK").await?;
            conn.execute("BEGIN IMMEDIATE").await?;
        }
        // Installed once the transaction is open, replacing the previous
        // transaction's hooks on this connection.
        let mut handle = conn.lock_handle().await?;
        let commit = Arc::clone(&hooks);
        handle.set_commit_hook(move || {
            let allowed = commit.host_ending.load(Ordering::Acquire);
            if !allowed {
                commit.ended_early.store(true, Ordering::Release);
            }
            allowed
        });
        handle.set_rollback_hook(move || {
            if !hooks.host_ending.load(Ordering::Acquire) {
                hooks.ended_early.store(true, Ordering::Release);
            }
        });
        drop(handle);
        Ok(tx)
    }

    fn conn(&mut self) -> Result<&mut SqliteConnection, DbError> {
        self.check_open()?;
        self.conn.as_deref_mut().ok_or_else(|| DbError::host("the transaction has already ended".to_owned()))
    }

    fn check_open(&self) -> Result<(), DbError> {
        if self.hooks.ended_early.load(Ordering::Acquire) {
            return Err(DbError::host(ENDED_EARLY.to_owned()));
        }
        Ok(())
    }

    pub(super) async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        statement::check_sqlite_parameters(sql, params.len())?;
        let args = value::sqlite_arguments(params)?;
        let conn = self.conn()?;
        Ok(sqlx::query_with(sql, args).execute(conn).await?.rows_affected())
    }

    pub(super) async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        statement::check_sqlite_parameters(sql, params.len())?;
        let args = value::sqlite_arguments(params)?;
        let conn = self.conn()?;
        let rows = sqlx::query_with(sql, args).fetch_all(&mut *conn).await?;
        let mut out = value::sqlite_rows(&rows)?;
        if rows.is_empty() {
            // The column names of an empty result come from the (cached)
            // prepared statement; not worth failing the query over.
            if let Ok(statement) = conn.prepare(sql).await {
                out.columns = statement.columns().iter().map(|c| c.name().to_owned()).collect();
            }
        }
        Ok(out)
    }

    pub(super) async fn enter_barrier(&mut self, key: &BarrierKey<'_>) -> Result<BarrierVerdict, DbError> {
        barrier::enter_sqlite(self.conn()?, key).await
    }

    pub(super) async fn commit(mut self) -> Result<(), DbError> {
        if let Err(ended) = self.check_open() {
            self.end_with_rollback().await;
            return Err(ended);
        }
        self.hooks.host_ending.store(true, Ordering::Release);
        let Some(mut conn) = self.conn.take() else {
            return Err(DbError::host("the transaction has already ended".to_owned()));
        };
        match conn.execute("COMMIT").await {
            Ok(_) => Ok(()),
            Err(e) => {
                // The transaction may still be open (SQLITE_BUSY, a deferred
                // foreign key): roll back before the connection is reused.
                self.conn = Some(conn);
                self.end_with_rollback().await;
                Err(e.into())
            }
        }
    }

    pub(super) async fn rollback(mut self) -> Result<(), DbError> {
        self.hooks.host_ending.store(true, Ordering::Release);
        let Some(mut conn) = self.conn.take() else {
            return Ok(());
        };
        rollback_or_close(&mut conn).await
    }

    /// Rolls back whatever is open, ignoring "no transaction is active".
    async fn end_with_rollback(&mut self) {
        self.hooks.host_ending.store(true, Ordering::Release);
        if let Some(mut conn) = self.conn.take() {
            // The error the caller reports is the one that made us roll back.
            let _ = rollback_or_close(&mut conn).await;
        }
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        self.hooks.host_ending.store(true, Ordering::Release);
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            // The connection returns to the pool only once the task drops it,
            // after the rollback, so the next branch finds no open transaction.
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _ = rollback_or_close(&mut conn).await;
                });
            }
            // No runtime to roll back on: closing the connection rolls back.
            Err(_) => conn.close_on_drop(),
        }
    }
}

/// `ROLLBACK`; "no transaction is active" counts as done. On any other
/// failure the connection is closed rather than returned to the pool with a
/// transaction possibly still open.
async fn rollback_or_close(conn: &mut PoolConnection<Sqlite>) -> Result<(), DbError> {
    match conn.execute("ROLLBACK").await {
        Ok(_) => Ok(()),
        Err(e) if message_contains(&e, "no transaction is active") => Ok(()),
        Err(e) => {
            conn.close_on_drop();
            Err(e.into())
        }
    }
}

fn message_contains(e: &sqlx::Error, needle: &str) -> bool {
    e.as_database_error().is_some_and(|d| d.message().contains(needle))
}

const ENDED_EARLY: &str = "not committed: the transaction ended before the host committed it \
    (a statement rolled it back, or the SQL tried to commit it); nothing was committed";
