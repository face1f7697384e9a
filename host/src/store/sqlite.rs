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
    ClaimedRow, Created, Lease, ModuleRow, OpRow, StoreError, TransactionRow, db_error, decode_state, functions_json,
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

    pub(super) async fn create_transaction(&self, state: &TransactionState) -> Result<Created, StoreError> {
        let t = &state.transaction;
        let mut db = self.writer.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let inserted = sqlx::query(
            "INSERT INTO transactions (gid, mode, status, options, next_due, attempts, last_error, \
             rollback_reason, created_at, updated_at, finished_at, lease_owner, lease_expires, epoch) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (gid) DO NOTHING",
        )
        .bind(t.gid.as_str())
        .bind(t.mode.as_str())
        .bind(t.status.as_str())
        .bind(options_json(&t.options)?)
        .bind(t.next_due.map(|m| m.0))
        .bind(i64::from(t.attempts))
        .bind(t.last_error.as_deref())
        .bind(t.rollback_reason.as_deref())
        .bind(t.created_at.0)
        .bind(t.updated_at.0)
        .bind(t.finished_at.map(|m| m.0))
        .bind(t.lease_owner.as_deref())
        .bind(t.lease_expires.map(|m| m.0))
        .bind(t.epoch)
        .execute(&mut *db)
        .await
        .map_err(db_error)?
        .rows_affected();
        if inserted == 0 {
            db.rollback().await.map_err(db_error)?;
            return match self.load(&t.gid).await? {
                Some(existing) => Ok(Created::Existing(existing)),
                None => Err(StoreError::Corrupt(format!("transaction {} conflicted but is not stored", t.gid))),
            };
        }
        for op in &state.ops {
            insert_op(&mut db, &t.gid, op, false).await?;
        }
        db.commit().await.map_err(db_error)?;
        Ok(Created::New)
    }

    pub(super) async fn load(&self, gid: &Gid) -> Result<Option<TransactionState>, StoreError> {
        // One read transaction: the row and its ops come from the same commit.
        let mut db = self.reader.begin().await.map_err(db_error)?;
        let tx = sqlx::query_as::<_, TransactionRow>(concat!(
            "SELECT ",
            transaction_columns!(),
            " FROM transactions WHERE gid = $1"
        ))
        .bind(gid.as_str())
        .fetch_optional(&mut *db)
        .await
        .map_err(db_error)?;
        let Some(tx) = tx else { return Ok(None) };
        let ops = sqlx::query_as::<_, OpRow>(concat!(
            "SELECT ",
            op_columns!(),
            " FROM branch_ops WHERE gid = $1 ORDER BY id"
        ))
        .bind(gid.as_str())
        .fetch_all(&mut *db)
        .await
        .map_err(db_error)?;
        db.commit().await.map_err(db_error)?;
        decode_state(tx, ops).map(Some)
    }

    pub(super) async fn list(&self, limit: u32) -> Result<Vec<Transaction>, StoreError> {
        sqlx::query_as::<_, TransactionRow>(concat!(
            "SELECT ",
            transaction_columns!(),
            " FROM transactions ORDER BY created_at DESC, id DESC LIMIT $1"
        ))
        .bind(limit_i64(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(TransactionRow::decode)
        .collect()
    }

    pub(super) async fn claim(
        &self,
        gid: &Gid,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Option<Lease>, StoreError> {
        let epoch = sqlx::query_scalar::<_, i64>(
            "UPDATE transactions SET lease_owner = $2, lease_expires = $4, epoch = epoch + 1 \
             WHERE gid = $1 \
               AND status NOT IN ('succeeded', 'failed') \
               AND (lease_owner IS NULL OR lease_owner = $2 OR lease_expires IS NULL OR lease_expires < $3) \
             RETURNING epoch",
        )
        .bind(gid.as_str())
        .bind(owner)
        .bind(now.0)
        .bind(lease_until.0)
        .fetch_optional(&self.writer)
        .await
        .map_err(db_error)?;
        Ok(epoch.map(|epoch| Lease { gid: gid.clone(), owner: owner.to_owned(), epoch }))
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

    pub(super) async fn save(&self, lease: &Lease, tx: &Transaction, ops: &[BranchOp]) -> Result<(), StoreError> {
        let mut db = self.writer.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let updated = sqlx::query(
            "UPDATE transactions SET status = $4, next_due = $5, attempts = $6, last_error = $7, \
             rollback_reason = $8, updated_at = $9, finished_at = $10, lease_expires = $11 \
             WHERE gid = $1 AND epoch = $2 AND lease_owner = $3",
        )
        .bind(lease.gid.as_str())
        .bind(lease.epoch)
        .bind(lease.owner.as_str())
        .bind(tx.status.as_str())
        .bind(tx.next_due.map(|m| m.0))
        .bind(i64::from(tx.attempts))
        .bind(tx.last_error.as_deref())
        .bind(tx.rollback_reason.as_deref())
        .bind(tx.updated_at.0)
        .bind(tx.finished_at.map(|m| m.0))
        .bind(tx.lease_expires.map(|m| m.0))
        .execute(&mut *db)
        .await
        .map_err(db_error)?
        .rows_affected();
        if updated == 0 {
            db.rollback().await.map_err(db_error)?;
            return Err(StoreError::Fenced { gid: lease.gid.clone() });
        }
        for op in ops {
            insert_op(&mut db, &lease.gid, op, true).await?;
        }
        db.commit().await.map_err(db_error)
    }

    pub(super) async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE transactions SET lease_owner = NULL, lease_expires = NULL \
             WHERE gid = $1 AND epoch = $2 AND lease_owner = $3",
        )
        .bind(lease.gid.as_str())
        .bind(lease.epoch)
        .bind(lease.owner.as_str())
        .execute(&self.writer)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    pub(super) async fn release_all(&self, owner: &str) -> Result<u64, StoreError> {
        let released = sqlx::query(
            "UPDATE transactions SET lease_owner = NULL, lease_expires = NULL, epoch = epoch + 1 \
             WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.writer)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(released)
    }

    pub(super) async fn unfinished(&self, limit: u32) -> Result<Vec<Gid>, StoreError> {
        let gids = sqlx::query_scalar::<_, String>(
            "SELECT gid FROM transactions WHERE status NOT IN ('succeeded', 'failed') ORDER BY id LIMIT $1",
        )
        .bind(limit_i64(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        Ok(gids.into_iter().map(Gid::from_trusted).collect())
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
