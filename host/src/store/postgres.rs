//! The coordinator store on Postgres: production, shared by every `wasmtx serve`
//! instance of a deployment.
//!
//! Concurrency: each call is one statement or one local transaction at READ
//! COMMITTED; compare-and-set `UPDATE … WHERE epoch = … AND lease_owner = …` does the
//! fencing (a concurrent claim waits on the row lock, then the condition is
//! re-checked), and due work is claimed with `FOR UPDATE SKIP LOCKED` so instances
//! never claim the same row. Reads that span two statements use one snapshot.
//!
//! Structurally parallel to `sqlite.rs`; must not be used outside `store`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{
    ClaimedRow, Lease, ModuleRow, OpRow, StoreError, TransactionRow, db_error, decode_state, functions_json,
    leases_oldest_first, limit_i64, migrate_error, module_columns, op_columns, options_json, to_i64,
    transaction_columns,
};
use crate::model::{BranchOp, Digest, Gid, Millis, ModuleName, ModuleRecord, Transaction, TransactionState};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const MAX_CONNECTIONS: u32 = 10;
/// How long a call waits for a pooled connection before reporting `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts a read spanning several statements: they all see the same commits.
const BEGIN_READ_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

#[derive(Clone)]
pub(super) struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(db_error)?.application_name("wasmtx");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        // Concurrent instances starting together are serialised by the migrator's advisory lock.
        MIGRATOR.run(&pool).await.map_err(migrate_error)?;
        Ok(Self { pool })
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    /// Inserts the transaction and its ops; `false` (nothing written) if the gid exists.
    pub(super) async fn insert_transaction(&self, state: &TransactionState) -> Result<bool, StoreError> {
        let mut db = self.pool.begin().await.map_err(db_error)?;
        if insert_state(&mut db, state).await? {
            db.commit().await.map_err(db_error)?;
            Ok(true)
        } else {
            db.rollback().await.map_err(db_error)?;
            Ok(false)
        }
    }

    pub(super) async fn load(&self, gid: &Gid) -> Result<Option<TransactionState>, StoreError> {
        // One snapshot: the row and its ops come from the same commit.
        let mut db = self.pool.begin_with(BEGIN_READ_SNAPSHOT).await.map_err(db_error)?;
        let state = select_state(&mut db, gid).await?;
        db.commit().await.map_err(db_error)?;
        Ok(state)
    }

    pub(super) async fn list(&self, limit: u32) -> Result<Vec<Transaction>, StoreError> {
        list(&self.pool, limit).await
    }

    pub(super) async fn claim(
        &self,
        gid: &Gid,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Option<Lease>, StoreError> {
        claim(&self.pool, gid, owner, now, lease_until).await
    }

    pub(super) async fn claim_due(
        &self,
        owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> Result<Vec<Lease>, StoreError> {
        // One statement, so one local transaction: the due rows are locked as they are
        // picked, rows another instance is claiming right now are skipped, and a row
        // claimed and committed meanwhile is re-checked against the lease condition.
        let rows = sqlx::query_as::<_, ClaimedRow>(
            "WITH due AS ( \
                 SELECT id FROM transactions \
                 WHERE status NOT IN ('succeeded', 'failed') \
                   AND next_due <= $2 \
                   AND (lease_owner IS NULL OR lease_expires IS NULL OR lease_expires < $2) \
                 ORDER BY next_due, id \
                 LIMIT $4 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE transactions AS t SET lease_owner = $1, lease_expires = $3, epoch = t.epoch + 1 \
             FROM due WHERE t.id = due.id \
             RETURNING t.id, t.gid, t.epoch, t.next_due",
        )
        .bind(owner)
        .bind(now.0)
        .bind(lease_until.0)
        .bind(limit_i64(limit))
        .fetch_all(&self.pool)
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
        let mut db = self.pool.begin().await.map_err(db_error)?;
        match update_state(&mut db, lease, tx, ops, release).await {
            Ok(()) => db.commit().await.map_err(db_error),
            Err(e) => {
                db.rollback().await.map_err(db_error)?;
                Err(e)
            }
        }
    }

    pub(super) async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        release(&self.pool, lease).await
    }

    pub(super) async fn release_all(&self, owner: &str) -> Result<u64, StoreError> {
        release_all(&self.pool, owner).await
    }

    pub(super) async fn unfinished(&self, limit: u32) -> Result<Vec<Gid>, StoreError> {
        unfinished(&self.pool, limit).await
    }

    pub(super) async fn put_module(&self, record: &ModuleRecord, bytes: &[u8]) -> Result<(), StoreError> {
        let mut db = self.pool.begin().await.map_err(db_error)?;
        insert_module(&mut db, record, bytes).await?;
        db.commit().await.map_err(db_error)
    }

    pub(super) async fn module(&self, name: &ModuleName) -> Result<Option<ModuleRecord>, StoreError> {
        module(&self.pool, name).await
    }

    pub(super) async fn module_version(
        &self,
        name: &ModuleName,
        digest: &Digest,
    ) -> Result<Option<ModuleRecord>, StoreError> {
        module_version(&self.pool, name, digest).await
    }

    pub(super) async fn modules(&self) -> Result<Vec<ModuleRecord>, StoreError> {
        modules(&self.pool).await
    }

    pub(super) async fn module_bytes(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        module_bytes(&self.pool, digest).await
    }

    #[cfg(test)]
    pub(super) async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(sql).execute(&self.pool).await.map_err(db_error)?;
        Ok(done.rows_affected())
    }

    #[cfg(test)]
    pub(super) async fn scalar_raw(&self, sql: &str) -> Result<i64, StoreError> {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.map_err(db_error)
    }
}

super::queries::shared_queries!(sqlx::Postgres);
