//! The coordinator store on SQLite: the embedded default, one file, zero setup.
//!
//! Durability and concurrency: WAL journal, `synchronous = FULL` (a commit that
//! returned survives power loss), foreign keys on, a 10 s busy timeout. All writes
//! go through a writer pool of exactly one connection and open their transactions
//! with `BEGIN IMMEDIATE`, so writers queue in the pool instead of failing with
//! `SQLITE_BUSY`; reads use a separate read-only pool and see the last commit.
//!
//! Structurally parallel to `postgres.rs`; must not be used outside `store`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{
    ClaimedRow, Lease, ModuleRow, OpRow, StoreError, TransactionRow, db_error, decode_state, functions_json,
    leases_oldest_first, limit_i64, migrate_error, module_columns, op_columns, options_json, to_i64,
    transaction_columns,
};
use crate::model::{BranchOp, Digest, Gid, Millis, ModuleName, ModuleRecord, Transaction, TransactionState};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits on a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call waits for the single writer connection.
const WRITER_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
const READERS: u32 = 4;

/// Starts every write transaction: takes the write lock up front, so a
/// transaction never has to upgrade a read lock (which fails without waiting).
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

#[derive(Clone)]
pub(super) struct SqliteStore {
    /// Exactly one connection: all writes, in order.
    writer: SqlitePool,
    /// Read-only connections (the writer itself for an in-memory database).
    reader: SqlitePool,
}

impl SqliteStore {
    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        let base = SqliteConnectOptions::from_str(url).map_err(db_error)?.busy_timeout(BUSY_TIMEOUT).foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            create_parent_dir(base.get_filename())?;
        }
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let mut writer_pool = SqlitePoolOptions::new().max_connections(1).acquire_timeout(WRITER_ACQUIRE_TIMEOUT);
        if in_memory {
            // The database lives as long as its connection: never let it go.
            writer_pool = writer_pool.min_connections(1).idle_timeout(None).max_lifetime(None);
        }
        let writer = writer_pool.connect_with(writer_options).await.map_err(db_error)?;
        MIGRATOR.run(&writer).await.map_err(migrate_error)?;
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READERS)
                .connect_with(base.read_only(true))
                .await
                .map_err(db_error)?
        };
        Ok(Self { writer, reader })
    }

    pub(super) async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Inserts the transaction and its ops; `false` (nothing written) if the gid exists.
    pub(super) async fn insert_transaction(&self, state: &TransactionState) -> Result<bool, StoreError> {
        let mut db = self.writer.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        if insert_state(&mut db, state).await? {
            db.commit().await.map_err(db_error)?;
            Ok(true)
        } else {
            db.rollback().await.map_err(db_error)?;
            Ok(false)
        }
    }

    pub(super) async fn load(&self, gid: &Gid) -> Result<Option<TransactionState>, StoreError> {
        // One read transaction: the row and its ops come from the same commit.
        let mut db = self.reader.begin().await.map_err(db_error)?;
        let state = select_state(&mut db, gid).await?;
        db.commit().await.map_err(db_error)?;
        Ok(state)
    }

    pub(super) async fn list(&self, limit: u32) -> Result<Vec<Transaction>, StoreError> {
        list(&self.reader, limit).await
    }

    pub(super) async fn claim(
        &self,
        gid: &Gid,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Option<Lease>, StoreError> {
        claim(&self.writer, gid, owner, now, lease_until).await
    }

    pub(super) async fn claim_due(
        &self,
        owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> Result<Vec<Lease>, StoreError> {
        // One statement on the single writer: no other claim can interleave.
        let rows = sqlx::query_as::<_, ClaimedRow>(
            "UPDATE transactions SET lease_owner = $1, lease_expires = $3, epoch = epoch + 1 \
             WHERE id IN ( \
                 SELECT id FROM transactions \
                 WHERE status NOT IN ('succeeded', 'failed') \
                   AND next_due <= $2 \
                   AND (lease_owner IS NULL OR lease_expires IS NULL OR lease_expires < $2) \
                 ORDER BY next_due, id \
                 LIMIT $4) \
             RETURNING id, gid, epoch, next_due",
        )
        .bind(owner)
        .bind(now.0)
        .bind(lease_until.0)
        .bind(limit_i64(limit))
        .fetch_all(&self.writer)
        .await
        .map_err(db_error)?;
        Ok(leases_oldest_first(rows, owner))
    }

    pub(super) async fn save(
        &self,
        lease: &Lease,
        tx: &Transaction,
        ops: &[BranchOp],
        release: bool,
    ) -> Result<(), StoreError> {
        let mut db = self.writer.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        match update_state(&mut db, lease, tx, ops, release).await {
            Ok(()) => db.commit().await.map_err(db_error),
            Err(e) => {
                db.rollback().await.map_err(db_error)?;
                Err(e)
            }
        }
    }

    pub(super) async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        release(&self.writer, lease).await
    }

    pub(super) async fn release_all(&self, owner: &str) -> Result<u64, StoreError> {
        release_all(&self.writer, owner).await
    }

    pub(super) async fn unfinished(&self, limit: u32) -> Result<Vec<Gid>, StoreError> {
        unfinished(&self.reader, limit).await
    }

    pub(super) async fn put_module(&self, record: &ModuleRecord, bytes: &[u8]) -> Result<(), StoreError> {
        let mut db = self.writer.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        insert_module(&mut db, record, bytes).await?;
        db.commit().await.map_err(db_error)
    }

    pub(super) async fn module(&self, name: &ModuleName) -> Result<Option<ModuleRecord>, StoreError> {
        module(&self.reader, name).await
    }

    pub(super) async fn module_version(
        &self,
        name: &ModuleName,
        digest: &Digest,
    ) -> Result<Option<ModuleRecord>, StoreError> {
        module_version(&self.reader, name, digest).await
    }

    pub(super) async fn modules(&self) -> Result<Vec<ModuleRecord>, StoreError> {
        modules(&self.reader).await
    }

    pub(super) async fn module_bytes(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        module_bytes(&self.reader, digest).await
    }

    #[cfg(test)]
    pub(super) async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(sql).execute(&self.writer).await.map_err(db_error)?;
        Ok(done.rows_affected())
    }

    #[cfg(test)]
    pub(super) async fn scalar_raw(&self, sql: &str) -> Result<i64, StoreError> {
        sqlx::query_scalar(sql).fetch_one(&self.writer).await.map_err(db_error)
    }
}

super::queries::shared_queries!(sqlx::Sqlite);

/// SQLite creates the file but not its directory.
fn create_parent_dir(file: &Path) -> Result<(), StoreError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Config(format!("creating directory {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}
