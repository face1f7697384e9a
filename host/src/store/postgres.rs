//! The coordinator store on Postgres: production, shared by every `wasmtx serve`
//! instance of a deployment. The tables live in the schema `wasmtx`.
//!
//! Concurrency: each call is one statement or one local transaction at READ
//! COMMITTED; compare-and-set `UPDATE … WHERE epoch = … AND lease_owner = …` does the
//! fencing (a concurrent claim waits on the row lock, then the condition is
//! re-checked), and due work is claimed with `FOR UPDATE SKIP LOCKED` so instances
//! never claim the same row. Reads that span two statements use one snapshot.
//! A workflow's signal senders and its parking driver lock its row
//! (`FOR UPDATE`) and so take turns (see `Store::park`).
//!
//! Structurally parallel to `sqlite.rs`; must not be used outside `store`.

use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use super::alerts::{AlertCandidate, AlertCandidateRow, AlertCondition};
use super::instances::{Instance, InstanceRow};
use super::queries::{HISTORY_COLUMNS, ListFilter, Sql};
use super::topics::SubscriberRow;
use super::{
    ClaimedRow, HistoryRow, Lease, ModuleRow, OpRow, Parked, Progress, SignalSent, SignalTargetRow, StoreError,
    Subscriber, TopicName, TransactionRow, db_error, decode_journal, decode_state, functions_json, journal_conflict,
    journal_json, leases_oldest_first, limit_i64, migrate_error, options_json, to_i64,
};
use crate::model::{
    BranchOp, Digest, Gid, HistoryEntry, JournalEntry, Millis, ModuleName, ModuleRecord, Transaction, TransactionState,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQL: LazyLock<Sql> = LazyLock::new(|| Sql::new("wasmtx."));

/// History entries in one statement, their columns as arrays.
static HISTORY_BATCH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO wasmtx.history ({HISTORY_COLUMNS}) SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], \
         $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::bigint[], $10::text[])"
    )
});

const MAX_CONNECTIONS: u32 = 10;
/// How long a call waits for a pooled connection before reporting `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The transaction row a signal or a park decides by, locked until the
/// commit: senders and parkers of one workflow take turns.
static LOCK_SIGNAL_TARGET: LazyLock<String> = LazyLock::new(|| format!("{} FOR UPDATE", SQL.signal_target));

/// Deletes the transactions [`Sql::finished_before`] picks, passing over rows
/// another instance holds (deleting them too, or driving them), returning
/// their gids.
static DELETE_FINISHED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "DELETE FROM wasmtx.transactions WHERE id IN ({} FOR UPDATE SKIP LOCKED) RETURNING gid",
        SQL.finished_before
    )
});

/// Starts a read spanning several statements: they all see the same commits.
const BEGIN_READ_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

#[derive(Clone)]
pub(super) struct PostgresStore {
    pool: PgPool,
    /// Host, port and database: where the store lives.
    place: Arc<(String, u16, Option<String>)>,
}

impl PostgresStore {
    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        // A store transaction is a few statements; one left open (its process
        // paused or stuck) holds its rows, which `FOR UPDATE SKIP LOCKED`
        // claims then skip: Postgres ends such a session after 10 s, so that
        // another instance can take the work over.
        let options = PgConnectOptions::from_str(url)
            .map_err(db_error)?
            .application_name("wasmtx")
            .options([("idle_in_transaction_session_timeout", "10s")]);
        // One connection first, so that a wrong host, password or database name
        // is reported as such (a pool would only time out).
        let first = PgConnection::connect_with(&options).await.map_err(db_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A dead connection fails its statement and is dropped; pinging
            // before every use would cost a round trip each time.
            .test_before_acquire(false)
            .connect_lazy_with(options.clone());
        drop(first);
        // Concurrent instances starting together are serialised by the migrator's advisory lock.
        MIGRATOR.run(&pool).await.map_err(migrate_error)?;
        let place = (options.get_host().to_owned(), options.get_port(), options.get_database().map(str::to_owned));
        Ok(Self { pool, place: Arc::new(place) })
    }

    /// Where the store lives: host, port and database, for co-location checks.
    /// The pool's (idle, busy) connections.
    pub(super) fn connections(&self) -> (u64, u64) {
        let idle = self.pool.num_idle() as u64;
        (idle, u64::from(self.pool.size()).saturating_sub(idle))
    }

    pub(super) fn place(&self) -> (String, u16, Option<String>) {
        (*self.place).clone()
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
        let tx = sqlx::query_as::<_, TransactionRow>(&SQL.select_transaction)
            .bind(gid.as_str())
            .fetch_optional(&mut *db)
            .await
            .map_err(db_error)?;
        let state = match tx {
            None => None,
            Some(tx) => {
                let ops = sqlx::query_as::<_, OpRow>(&SQL.select_ops)
                    .bind(gid.as_str())
                    .fetch_all(&mut *db)
                    .await
                    .map_err(db_error)?;
                Some(decode_state(tx, ops)?)
            }
        };
        db.commit().await.map_err(db_error)?;
        Ok(state)
    }

    pub(super) async fn list(&self, limit: u32) -> Result<Vec<Transaction>, StoreError> {
        sqlx::query_as::<_, TransactionRow>(&SQL.list)
            .bind(limit_i64(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(TransactionRow::decode)
            .collect()
    }

    pub(super) async fn list_filtered(&self, filter: &ListFilter) -> Result<Vec<Transaction>, StoreError> {
        let (sql, params) = SQL.list_filtered(filter);
        let mut query = sqlx::query_as::<_, TransactionRow>(&sql);
        for p in params {
            query = query.bind(p);
        }
        query
            .bind(limit_i64(filter.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(TransactionRow::decode)
            .collect()
    }

    /// One statement (one round trip, one commit) for the whole batch: the
    /// columns travel as arrays.
    pub(super) async fn append_history(&self, entries: &[HistoryEntry]) -> Result<(), StoreError> {
        let rows: Vec<HistoryRow> = entries.iter().map(HistoryRow::encode).collect();
        let column = |f: fn(&HistoryRow) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
        let number = |f: fn(&HistoryRow) -> Option<i64>| rows.iter().map(f).collect::<Vec<_>>();
        sqlx::query(&HISTORY_BATCH)
            .bind(column(|r| Some(r.gid.clone())))
            .bind(number(|r| Some(r.at)))
            .bind(column(|r| Some(r.kind.clone())))
            .bind(column(|r| r.branch_id.clone()))
            .bind(column(|r| r.op.clone()))
            .bind(number(|r| r.attempt))
            .bind(column(|r| r.outcome.clone()))
            .bind(column(|r| r.detail.clone()))
            .bind(number(|r| r.duration_ms))
            .bind(column(|r| r.actor.clone()))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub(super) async fn history(&self, gid: &Gid, limit: u32) -> Result<Vec<HistoryEntry>, StoreError> {
        sqlx::query_as::<_, HistoryRow>(&SQL.select_history)
            .bind(gid.as_str())
            .bind(limit_i64(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(HistoryRow::decode)
            .collect()
    }

    pub(super) async fn claim(
        &self,
        gid: &Gid,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Option<Lease>, StoreError> {
        let epoch = sqlx::query_scalar::<_, i64>(&SQL.claim)
            .bind(gid.as_str())
            .bind(owner)
            .bind(now.0)
            .bind(lease_until.0)
            .fetch_optional(&self.pool)
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
        // One statement, so one local transaction: the due rows are locked as they are
        // picked, rows another instance is claiming right now are skipped, and a row
        // claimed and committed meanwhile is re-checked against the lease condition.
        let rows = sqlx::query_as::<_, ClaimedRow>(
            "WITH due AS ( \
                 SELECT id FROM wasmtx.transactions \
                 WHERE next_due <= $2 AND status NOT IN ('succeeded', 'failed') \
                   AND (lease_owner IS NULL OR lease_expires IS NULL OR lease_expires < $2) \
                 ORDER BY next_due, id \
                 LIMIT $4 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE wasmtx.transactions AS t SET lease_owner = $1, lease_expires = $3, epoch = t.epoch + 1 \
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

    /// A [`Progress::Save`] in a transaction of its own.
    pub(super) async fn write_save(&self, progress: &Progress) -> Result<(), StoreError> {
        let mut db = self.pool.begin().await.map_err(db_error)?;
        match write_progress(&mut db, progress).await {
            Ok(()) => db.commit().await.map_err(db_error),
            Err(e) => {
                db.rollback().await.map_err(db_error)?;
                Err(e)
            }
        }
    }

    pub(super) async fn journal(&self, gid: &Gid) -> Result<Vec<JournalEntry>, StoreError> {
        sqlx::query_as::<_, (i64, String)>(&SQL.select_journal)
            .bind(gid.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|(seq, text)| decode_journal(gid, seq, &text))
            .collect()
    }

    pub(super) async fn send_signal(
        &self,
        gid: &Gid,
        name: &str,
        payload: &[u8],
        now: Millis,
    ) -> Result<SignalSent, StoreError> {
        let mut db = self.pool.begin().await.map_err(db_error)?;
        let result = async {
            let Some(row) = sqlx::query_as::<_, SignalTargetRow>(&LOCK_SIGNAL_TARGET)
                .bind(gid.as_str())
                .fetch_optional(&mut *db)
                .await
                .map_err(db_error)?
            else {
                return Ok(SignalSent::UnknownGid);
            };
            let verdict = row.signal_verdict(now)?;
            if let SignalSent::Sent { wake } = verdict {
                let kept = sqlx::query(&SQL.insert_signal)
                    .bind(gid.as_str())
                    .bind(name)
                    .bind(payload)
                    .bind(now.0)
                    .bind(super::MAX_SIGNALS)
                    .execute(&mut *db)
                    .await
                    .map_err(db_error)?
                    .rows_affected();
                if kept == 0 {
                    return Ok(SignalSent::TooMany);
                }
                if wake {
                    sqlx::query(&SQL.wake).bind(gid.as_str()).bind(now.0).execute(&mut *db).await.map_err(db_error)?;
                }
            }
            Ok(verdict)
        }
        .await;
        match result {
            Ok(sent @ SignalSent::Sent { .. }) => {
                db.commit().await.map_err(db_error)?;
                Ok(sent)
            }
            other => {
                db.rollback().await.map_err(db_error)?;
                other
            }
        }
    }

    pub(super) async fn signals(&self, gid: &Gid, name: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        sqlx::query_scalar::<_, Vec<u8>>(&SQL.select_signals)
            .bind(gid.as_str())
            .bind(name)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    pub(super) async fn park(&self, progress: &Progress, name: &str, seen: u32) -> Result<Parked, StoreError> {
        let Progress::Save { lease, .. } = progress else {
            return Err(StoreError::Config(format!("park is for a save, not the create of {}", progress.gid())));
        };
        let mut db = self.pool.begin().await.map_err(db_error)?;
        let result = async {
            let row = sqlx::query_as::<_, SignalTargetRow>(&LOCK_SIGNAL_TARGET)
                .bind(lease.gid.as_str())
                .fetch_optional(&mut *db)
                .await
                .map_err(db_error)?;
            if !row.is_some_and(|row| row.held_by(lease)) {
                return Err(StoreError::Fenced { gid: lease.gid.clone() });
            }
            // A statement of its own, begun with the lock held: at READ
            // COMMITTED it sees every signal of a sender that locked first.
            let count = sqlx::query_scalar::<_, i64>(&SQL.count_signals)
                .bind(lease.gid.as_str())
                .bind(name)
                .fetch_one(&mut *db)
                .await
                .map_err(db_error)?;
            if count > i64::from(seen) {
                return Ok(Parked::SignalWaiting);
            }
            write_progress(&mut db, progress).await?;
            Ok(Parked::Parked)
        }
        .await;
        match result {
            Ok(Parked::Parked) => {
                db.commit().await.map_err(db_error)?;
                Ok(Parked::Parked)
            }
            other => {
                db.rollback().await.map_err(db_error)?;
                other
            }
        }
    }

    pub(super) async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        sqlx::query(&SQL.release)
            .bind(lease.gid.as_str())
            .bind(lease.epoch)
            .bind(lease.owner.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub(super) async fn release_all(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(&SQL.release_all).bind(owner).execute(&self.pool).await.map_err(db_error)?;
        Ok(done.rows_affected())
    }

    pub(super) async fn unfinished(&self, limit: u32) -> Result<Vec<Gid>, StoreError> {
        let gids = sqlx::query_scalar::<_, String>(&SQL.unfinished)
            .bind(limit_i64(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(gids.into_iter().map(Gid::from_trusted).collect())
    }

    pub(super) async fn alert_candidates(
        &self,
        retries: u32,
        unfinished_before: Millis,
        limit: u32,
    ) -> Result<Vec<AlertCandidate>, StoreError> {
        let mut candidates = Vec::new();
        for (condition, sql, bound) in [
            (AlertCondition::Retries, &SQL.alert_retries, i64::from(retries)),
            (AlertCondition::Unfinished, &SQL.alert_unfinished, unfinished_before.0),
        ] {
            let rows = sqlx::query_as::<_, AlertCandidateRow>(sql)
                .bind(bound)
                .bind(limit_i64(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
            for row in rows {
                candidates.push(row.decode(condition)?);
            }
        }
        Ok(candidates)
    }

    pub(super) async fn claim_alert(
        &self,
        gid: &Gid,
        condition: AlertCondition,
        at: Millis,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&SQL.claim_alert)
            .bind(gid.as_str())
            .bind(condition.as_str())
            .bind(at.0)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn unclaim_alert(&self, gid: &Gid, condition: AlertCondition) -> Result<(), StoreError> {
        sqlx::query(&SQL.unclaim_alert)
            .bind(gid.as_str())
            .bind(condition.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// One local transaction: the cascade takes ops, journal, signals and
    /// alerts; history has no foreign key and goes in one statement.
    pub(super) async fn delete_finished_before(&self, cutoff: Millis, limit: u32) -> Result<u64, StoreError> {
        let mut db = self.pool.begin().await.map_err(db_error)?;
        let gids = sqlx::query_scalar::<_, String>(&DELETE_FINISHED)
            .bind(cutoff.0)
            .bind(limit_i64(limit))
            .fetch_all(&mut *db)
            .await
            .map_err(db_error)?;
        if !gids.is_empty() {
            sqlx::query("DELETE FROM wasmtx.history WHERE gid = ANY($1)")
                .bind(&gids)
                .execute(&mut *db)
                .await
                .map_err(db_error)?;
        }
        db.commit().await.map_err(db_error)?;
        Ok(gids.len() as u64)
    }

    pub(super) async fn put_module(&self, record: &ModuleRecord, bytes: &[u8]) -> Result<(), StoreError> {
        let mut db = self.pool.begin().await.map_err(db_error)?;
        sqlx::query(&SQL.insert_blob)
            .bind(record.digest.as_str())
            .bind(bytes)
            .bind(to_i64(bytes.len() as u64))
            .bind(record.created_at.0)
            .execute(&mut *db)
            .await
            .map_err(db_error)?;
        sqlx::query(&SQL.insert_version)
            .bind(record.name.as_str())
            .bind(record.digest.as_str())
            .bind(record.world.as_str())
            .bind(functions_json(&record.functions)?)
            .bind(record.database.as_str())
            .bind(record.instance_reuse.map(i64::from))
            .bind(to_i64(record.size))
            .bind(record.created_at.0)
            .bind(functions_json(&record.http_hosts)?)
            .execute(&mut *db)
            .await
            .map_err(db_error)?;
        db.commit().await.map_err(db_error)
    }

    pub(super) async fn module(&self, name: &ModuleName) -> Result<Option<ModuleRecord>, StoreError> {
        sqlx::query_as::<_, ModuleRow>(&SQL.module)
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(ModuleRow::decode)
            .transpose()
    }

    pub(super) async fn module_version(
        &self,
        name: &ModuleName,
        digest: &Digest,
    ) -> Result<Option<ModuleRecord>, StoreError> {
        sqlx::query_as::<_, ModuleRow>(&SQL.module_version)
            .bind(name.as_str())
            .bind(digest.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(ModuleRow::decode)
            .transpose()
    }

    pub(super) async fn modules(&self) -> Result<Vec<ModuleRecord>, StoreError> {
        sqlx::query_as::<_, ModuleRow>(&SQL.modules)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(ModuleRow::decode)
            .collect()
    }

    pub(super) async fn module_bytes(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar::<_, Vec<u8>>(&SQL.module_bytes)
            .bind(digest.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)
    }

    pub(super) async fn add_subscriber(
        &self,
        topic: &TopicName,
        module: &ModuleName,
        function: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&SQL.insert_subscriber)
            .bind(topic.as_str())
            .bind(module.as_str())
            .bind(function)
            .bind(now.0)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn remove_subscriber(
        &self,
        topic: &TopicName,
        module: &ModuleName,
        function: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&SQL.delete_subscriber)
            .bind(topic.as_str())
            .bind(module.as_str())
            .bind(function)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn heartbeat(&self, i: &Instance) -> Result<(), StoreError> {
        sqlx::query(&SQL.upsert_instance)
            .bind(&i.node)
            .bind(&i.version)
            .bind(i.started_at.0)
            .bind(i.heartbeat_at.0)
            .bind(i64::try_from(i.in_flight).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub(super) async fn instances(&self, since: Millis) -> Result<Vec<Instance>, StoreError> {
        let rows = sqlx::query_as::<_, InstanceRow>(&SQL.instances)
            .bind(since.0)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(InstanceRow::decode).collect())
    }

    pub(super) async fn forget_instance(&self, node: &str) -> Result<(), StoreError> {
        sqlx::query(&SQL.delete_instance).bind(node).execute(&self.pool).await.map_err(db_error)?;
        Ok(())
    }

    pub(super) async fn subscribers(&self, topic: &TopicName) -> Result<Vec<Subscriber>, StoreError> {
        let rows = sqlx::query_as::<_, SubscriberRow>(&SQL.subscribers)
            .bind(topic.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(SubscriberRow::decode).collect())
    }

    pub(super) async fn topics(&self) -> Result<Vec<Subscriber>, StoreError> {
        let rows =
            sqlx::query_as::<_, SubscriberRow>(&SQL.all_subscribers).fetch_all(&self.pool).await.map_err(db_error)?;
        Ok(rows.into_iter().map(SubscriberRow::decode).collect())
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

/// `progress` as the JSON `wasmtx.apply_progress` takes (migration 0005):
/// how a co-located branch transaction on a guest connection carries it
/// (through `wasmtx.enter`, which the business database's setup creates).
/// A save with journal entries is refused ([`StoreError::Config`]): the
/// function knows no journal, and a workflow's journal is written by its
/// driver, never in a branch commit.
pub(crate) fn progress_json(progress: &Progress) -> Result<String, StoreError> {
    use serde_json::json;
    let op = |o: &BranchOp| {
        json!({
            "branch_id": o.branch_id.as_str(), "op": o.op.as_str(), "module": o.target.module.as_str(),
            "digest": o.target.digest.as_str(), "database": o.target.database.as_str(),
            "function": o.target.function, "payload": hex::encode(&o.payload), "status": o.status.as_str(),
            "attempts": o.attempts, "last_error": o.last_error, "updated_at": o.updated_at.0,
        })
    };
    let value = match progress {
        Progress::Create(state) => {
            let t = &state.transaction;
            json!({ "create": {
                "gid": t.gid.as_str(), "mode": t.mode.as_str(), "status": t.status.as_str(),
                "options": options_json(&t.options)?, "next_due": t.next_due.map(|m| m.0), "attempts": t.attempts,
                "last_error": t.last_error, "rollback_reason": t.rollback_reason, "created_at": t.created_at.0,
                "updated_at": t.updated_at.0, "finished_at": t.finished_at.map(|m| m.0),
                "lease_owner": t.lease_owner, "lease_expires": t.lease_expires.map(|m| m.0), "epoch": t.epoch,
                "ops": state.ops.iter().map(op).collect::<Vec<_>>(),
            }})
        }
        Progress::Save { lease, journal, .. } if !journal.is_empty() => {
            return Err(StoreError::Config(format!(
                "a save of {} carries {} journal entries: a workflow's journal is written by its driver, never in a \
                 branch commit",
                lease.gid,
                journal.len()
            )));
        }
        Progress::Save { lease, transaction: t, ops, release, journal: _ } => json!({ "save": {
            "gid": lease.gid.as_str(), "epoch": lease.epoch, "owner": lease.owner, "status": t.status.as_str(),
            "next_due": t.next_due.map(|m| m.0), "attempts": t.attempts, "last_error": t.last_error,
            "rollback_reason": t.rollback_reason, "updated_at": t.updated_at.0,
            "finished_at": t.finished_at.map(|m| m.0), "lease_expires": t.lease_expires.map(|m| m.0),
            "release": release, "ops": ops.iter().map(op).collect::<Vec<_>>(),
        }}),
    };
    Ok(value.to_string())
}

/// What `wasmtx.apply_progress` refusing a write means to the store's callers.
pub(crate) fn progress_refusal(sqlstate: &str, gid: &Gid) -> Option<StoreError> {
    match sqlstate {
        "WXFEN" => Some(StoreError::Fenced { gid: gid.clone() }),
        "WXGID" => Some(StoreError::GidTaken { gid: gid.clone() }),
        _ => None,
    }
}

/// Writes `progress` inside the caller's transaction on `db`. Fenced: a stale
/// lease writes nothing and is [`StoreError::Fenced`].
async fn write_progress(db: &mut PgConnection, progress: &Progress) -> Result<(), StoreError> {
    match progress {
        Progress::Create(state) => {
            if insert_state(db, state).await? {
                Ok(())
            } else {
                Err(StoreError::GidTaken { gid: state.transaction.gid.clone() })
            }
        }
        Progress::Save { lease, transaction: tx, ops, release, journal } => {
            let updated = sqlx::query(&SQL.update_state)
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
                .bind(*release)
                .execute(&mut *db)
                .await
                .map_err(db_error)?
                .rows_affected();
            if updated == 0 {
                return Err(StoreError::Fenced { gid: lease.gid.clone() });
            }
            for op in ops {
                insert_op(db, &lease.gid, op, true).await?;
            }
            for entry in journal {
                append_journal(db, &lease.gid, entry).await?;
            }
            Ok(())
        }
    }
}

/// Appends one journal entry; an entry stored already must be the same text.
async fn append_journal(db: &mut PgConnection, gid: &Gid, entry: &JournalEntry) -> Result<(), StoreError> {
    let text = journal_json(entry)?;
    let inserted = sqlx::query(&SQL.insert_journal)
        .bind(gid.as_str())
        .bind(i64::from(entry.seq))
        .bind(text.as_str())
        .execute(&mut *db)
        .await
        .map_err(db_error)?
        .rows_affected();
    if inserted > 0 {
        return Ok(());
    }
    let stored = sqlx::query_scalar::<_, String>(&SQL.journal_entry)
        .bind(gid.as_str())
        .bind(i64::from(entry.seq))
        .fetch_optional(&mut *db)
        .await
        .map_err(db_error)?;
    journal_conflict(gid, entry, &text, stored.as_deref())
}

/// Inserts a new transaction and its ops; `false` (nothing written) if the gid exists.
async fn insert_state(db: &mut PgConnection, state: &TransactionState) -> Result<bool, StoreError> {
    let t = &state.transaction;
    let inserted = sqlx::query(&SQL.insert_transaction)
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
        return Ok(false);
    }
    for op in &state.ops {
        insert_op(db, &t.gid, op, false).await?;
    }
    Ok(true)
}

async fn insert_op(db: &mut PgConnection, gid: &Gid, op: &BranchOp, upsert: bool) -> Result<(), StoreError> {
    sqlx::query(if upsert { &SQL.upsert_op } else { &SQL.insert_op })
        .bind(gid.as_str())
        .bind(op.branch_id.as_str())
        .bind(op.op.as_str())
        .bind(op.target.module.as_str())
        .bind(op.target.digest.as_str())
        .bind(op.target.database.as_str())
        .bind(op.target.function.as_str())
        .bind(op.payload.as_slice())
        .bind(op.status.as_str())
        .bind(i64::from(op.attempts))
        .bind(op.last_error.as_deref())
        .bind(op.updated_at.0)
        .execute(&mut *db)
        .await
        .map_err(db_error)?;
    Ok(())
}
