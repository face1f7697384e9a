//! The business databases branches run against (SQLite or Postgres, bound by
//! name with `--database NAME=URL`), the local transaction a branch's SQL runs
//! in, and the sub-transaction barrier inside that transaction.
//!
//! The host opens a [`LocalTx`], enters the barrier, lets the guest run its SQL
//! through [`LocalTx::execute`] and [`LocalTx::query`], and commits only if the
//! guest returned `ok`. This module must not know about guests, Wasm or the
//! coordinator's own store, and must never let guest SQL end the transaction
//! early: the barrier's exactly-once promise rests on that one commit.
//!
//! # Layout
//!
//! - `value`: values, rows and errors crossing the guest boundary; binding and decoding.
//! - `barrier`: the `wasmtx_barrier` table and DTM's barrier `Call`.
//! - `statement`: checks on guest SQL text (transaction control; SQLite parameter numbers).
//! - `sqlite`, `postgres`: each backend's pool and local transaction.
//!
//! # Parameters
//!
//! Guests write `$1, $2, …` on both backends (SQLite also takes `?N` and `?`;
//! do not mix `?` with numbered ones). sqlx-sqlite binds `$N` and `?N` by
//! number, so `$2, $1` and a repeated `$1` work as on Postgres. A reference
//! with no value (or `$0`) is an error on both: Postgres refuses it, and on
//! SQLite `statement` does, because sqlx would bind NULL (or panic on `$0`).
//! Values bind as BOOL, INT8, FLOAT8, TEXT, BYTEA and an untyped NULL; see
//! `value` for the casts a guest may need on Postgres (`$1::uuid`).

mod barrier;
mod postgres;
mod sqlite;
mod statement;
mod value;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

pub use barrier::{BarrierKey, BarrierVerdict};
pub use value::{DbError, Rows, Value};

use crate::model::DatabaseName;

/// How long `begin` waits for a free connection before failing (retryable).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a business database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The URL is malformed or names an unsupported scheme. Fix the configuration.
    #[error("invalid database URL: {0}")]
    Config(String),
    /// The database cannot be reached, or the barrier table cannot be created.
    #[error("business database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// One of the databases bound by name failed to open (see [`Databases::connect`]).
    #[error("database {name} ({url}): {source}")]
    Named {
        name: DatabaseName,
        /// With any password redacted.
        url: String,
        #[source]
        source: Box<DatabaseError>,
    },
}

/// Every business database bound on this server, by name (`--database NAME=URL`).
#[derive(Debug, Clone, Default)]
pub struct Databases {
    by_name: BTreeMap<DatabaseName, Database>,
}

impl Databases {
    /// Connects to each database in turn; the first failure names its database.
    pub async fn connect(urls: &BTreeMap<DatabaseName, String>) -> Result<Databases, DatabaseError> {
        let mut by_name = BTreeMap::new();
        for (name, url) in urls {
            let db = Database::connect(url).await.map_err(|e| DatabaseError::Named {
                name: name.clone(),
                url: crate::config::redact_url(url),
                source: Box::new(e),
            })?;
            by_name.insert(name.clone(), db);
        }
        Ok(Databases { by_name })
    }

    pub fn get(&self, name: &DatabaseName) -> Option<&Database> {
        self.by_name.get(name)
    }

    /// The bound names, sorted.
    pub fn names(&self) -> Vec<DatabaseName> {
        self.by_name.keys().cloned().collect()
    }

    pub async fn close(&self) {
        for db in self.by_name.values() {
            db.close().await;
        }
    }
}

/// A connection pool to one business database. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").field("kind", &self.kind()).finish_non_exhaustive()
    }
}

impl Database {
    /// Opens `sqlite://…?mode=rwc`, `sqlite:path` or `postgres://…`.
    ///
    /// A SQLite file and its parent directory are created when missing (unless
    /// the URL sets `mode=` itself); SQLite runs in WAL mode with
    /// `synchronous=FULL` on a single pooled connection. The barrier table is
    /// created if absent; two processes doing so at once on Postgres is harmless.
    pub async fn connect(url: &str) -> Result<Database, DatabaseError> {
        let pool = if url.starts_with("sqlite:") {
            Pool::Sqlite(sqlite::connect(url).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(postgres::connect(url).await?)
        } else {
            let scheme = url.split_once(':').map_or("(none)", |(s, _)| s);
            return Err(DatabaseError::Config(format!(
                "unsupported scheme {scheme:?}: use sqlite:PATH, sqlite://PATH?mode=rwc or postgres://…"
            )));
        };
        Ok(Database { pool })
    }

    /// "sqlite" or "postgres".
    pub fn kind(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Opens a local transaction. On SQLite this takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so concurrent branches queue instead of failing
    /// with SQLITE_BUSY at their first write.
    pub async fn begin(&self) -> Result<LocalTx, DbError> {
        let inner = match &self.pool {
            Pool::Sqlite(pool) => Inner::Sqlite(sqlite::SqliteTx::begin(pool).await?),
            Pool::Postgres(pool) => Inner::Postgres(postgres::PgTx::begin(pool).await?),
        };
        Ok(LocalTx { inner })
    }

    /// Closes every connection; later `begin` calls fail.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// One open local transaction on a business database. Dropping it without
/// [`commit`](LocalTx::commit) rolls back.
///
/// Guest SQL cannot end it early: `BEGIN`, `COMMIT`, `ROLLBACK` (but not
/// `ROLLBACK TO`) and the like are refused, and on SQLite a commit hidden in a
/// multi-statement string is turned into a rollback that makes `commit` fail.
pub struct LocalTx {
    inner: Inner,
}

enum Inner {
    Sqlite(sqlite::SqliteTx),
    Postgres(postgres::PgTx),
}

impl fmt::Debug for LocalTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner {
            Inner::Sqlite(_) => "sqlite",
            Inner::Postgres(_) => "postgres",
        };
        f.debug_struct("LocalTx").field("kind", &kind).finish_non_exhaustive()
    }
}

impl LocalTx {
    /// Runs one statement with positional parameters; returns the rows affected.
    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        statement::refuse_transaction_control(sql)?;
        match &mut self.inner {
            Inner::Sqlite(tx) => tx.execute(sql, params).await,
            Inner::Postgres(tx) => tx.execute(sql, params).await,
        }
    }

    /// Runs a query with positional parameters; returns every row.
    pub async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        statement::refuse_transaction_control(sql)?;
        match &mut self.inner {
            Inner::Sqlite(tx) => tx.query(sql, params).await,
            Inner::Postgres(tx) => tx.query(sql, params).await,
        }
    }

    /// Commits. Fails, having rolled everything back, when the transaction
    /// cannot commit as a whole: on Postgres after a failed statement the guest
    /// did not recover from with a savepoint (25P02); on SQLite when the
    /// transaction ended before this call.
    pub async fn commit(self) -> Result<(), DbError> {
        match self.inner {
            Inner::Sqlite(tx) => tx.commit().await,
            Inner::Postgres(tx) => tx.commit().await,
        }
    }

    /// Rolls back now (dropping the transaction does the same, a moment later).
    pub async fn rollback(self) -> Result<(), DbError> {
        match self.inner {
            Inner::Sqlite(tx) => tx.rollback().await,
            Inner::Postgres(tx) => tx.rollback().await,
        }
    }

    /// Enters the sub-transaction barrier inside this transaction (DTM's
    /// `Call`): writes the origin row for a compensating op, then the op's own
    /// row, and says whether the business code should run. Whatever the
    /// verdict, commit afterwards: a [`BarrierVerdict::NullCompensation`]
    /// wrote the origin row that must block the late origin op.
    pub async fn enter_barrier(&mut self, key: &BarrierKey<'_>) -> Result<BarrierVerdict, DbError> {
        match &mut self.inner {
            Inner::Sqlite(tx) => tx.enter_barrier(key).await,
            Inner::Postgres(tx) => tx.enter_barrier(key).await,
        }
    }
}
