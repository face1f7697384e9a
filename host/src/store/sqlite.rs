//! The coordinator store on SQLite: the embedded default, one file, zero setup.
//!
//! Every write is a job on the file's single writer thread ([`SqliteFile`]):
//! its own transaction, acknowledged only once the batch's fsync made it
//! durable. Reads use the file's read-only connections and see the last
//! commit. When a business database is bound to the same file, branch
//! transactions run on the same writer, and [`write_progress`] lets a branch
//! commit carry the transaction's progress (co-location).
//!
//! Tables carry the prefix `wasmtx_`, which the guest authorizer never lets
//! branch SQL reach. The schema version is `PRAGMA user_version`.
//!
//! Structurally parallel to `postgres.rs`; must not be used outside `store`.

use std::sync::LazyLock;

use rusqlite::types::ToSql;
use rusqlite::{CachedStatement, Connection, Row};

use super::alerts::{AlertCandidate, AlertCandidateRow, AlertCondition};
use super::instances::{Instance, InstanceRow};
use super::queries::{ListFilter, Sql};
use super::topics::SubscriberRow;
use super::{
    ClaimedRow, HistoryRow, Lease, ModuleRow, OpRow, Parked, Progress, SignalSent, SignalTargetRow, StoreError,
    Subscriber, TopicName, TransactionRow, decode_journal, decode_state, functions_json, journal_conflict,
    journal_json, leases_oldest_first, limit_i64, options_json, to_i64,
};
use crate::model::{
    BranchOp, Digest, Gid, HistoryEntry, JournalEntry, Millis, ModuleName, ModuleRecord, Transaction, TransactionState,
};
use crate::sqlite::{SqliteError, SqliteFile, Writer, bind_numbered};

static SQL: LazyLock<Sql> = LazyLock::new(|| Sql::new("main.wasmtx_"));

/// Deletes the transactions [`Sql::finished_before`] picks, returning their gids.
static DELETE_FINISHED: LazyLock<String> = LazyLock::new(|| {
    format!("DELETE FROM main.wasmtx_transactions WHERE id IN ({}) RETURNING gid", SQL.finished_before)
});

/// The schema this code reads and writes, and the steps to each version.
const SCHEMA_VERSION: i64 = 7;
const SCHEMA_V1: &str = include_str!("../../migrations/sqlite/0001_coordinator.sql");
const UPGRADE_FROM_SQLX: &str = include_str!("../../migrations/sqlite/upgrade_from_sqlx.sql");
const SCHEMA_V2: &str = include_str!("../../migrations/sqlite/0002_http_hosts.sql");
const SCHEMA_V3: &str = include_str!("../../migrations/sqlite/0003_history.sql");
const SCHEMA_V4: &str = include_str!("../../migrations/sqlite/0004_topics.sql");
const SCHEMA_V5: &str = include_str!("../../migrations/sqlite/0005_instances.sql");
const SCHEMA_V6: &str = include_str!("../../migrations/sqlite/0006_workflows.sql");
const SCHEMA_V7: &str = include_str!("../../migrations/sqlite/0007_alerts.sql");

#[derive(Clone)]
pub(super) struct SqliteStore {
    file: SqliteFile,
}

impl SqliteStore {
    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        let file = SqliteFile::open(url).map_err(file_error)?;
        file.write(|w| migrate(w)).await.map_err(file_error)??;
        Ok(Self { file })
    }

    pub(super) fn file(&self) -> &SqliteFile {
        &self.file
    }

    /// Connections close when the last handle on the file is dropped.
    pub(super) async fn close(&self) {}

    /// Inserts the transaction and its ops; `false` (nothing written) if the gid exists.
    pub(super) async fn insert_transaction(&self, state: &TransactionState) -> Result<bool, StoreError> {
        let state = state.clone();
        let inserted = self
            .file
            .write(move |w| match insert_state(&w.conn(), &state) {
                Ok(true) => Ok(()),
                Ok(false) => Err(None),
                Err(e) => Err(Some(e)),
            })
            .await
            .map_err(file_error)?;
        match inserted {
            Ok(()) => Ok(true),
            Err(None) => Ok(false),
            Err(Some(e)) => Err(e),
        }
    }

    pub(super) async fn load(&self, gid: &Gid) -> Result<Option<TransactionState>, StoreError> {
        let gid = gid.clone();
        self.file
            .read(move |conn| {
                // One read transaction: the row and its ops come from the same commit.
                conn.execute_batch("BEGIN").map_err(sql_error)?;
                let state = select_state(conn, &gid);
                let _ = conn.execute_batch("COMMIT");
                state
            })
            .await
            .map_err(file_error)?
    }

    pub(super) async fn list(&self, limit: u32) -> Result<Vec<Transaction>, StoreError> {
        self.file
            .read(move |conn| {
                query(conn, &SQL.list, &[&limit_i64(limit)], TransactionRow::from_sqlite)?
                    .into_iter()
                    .map(TransactionRow::decode)
                    .collect()
            })
            .await
            .map_err(file_error)?
    }

    pub(super) async fn list_filtered(&self, filter: &ListFilter) -> Result<Vec<Transaction>, StoreError> {
        let (sql, params) = SQL.list_filtered(filter);
        let limit = limit_i64(filter.limit);
        self.file
            .read(move |conn| {
                let mut bound: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
                bound.push(&limit);
                query(conn, &sql, &bound, TransactionRow::from_sqlite)?
                    .into_iter()
                    .map(TransactionRow::decode)
                    .collect()
            })
            .await
            .map_err(file_error)?
    }

    pub(super) async fn append_history(&self, entries: &[HistoryEntry]) -> Result<(), StoreError> {
        let rows: Vec<HistoryRow> = entries.iter().map(HistoryRow::encode).collect();
        self.write(move |conn| {
            for r in &rows {
                execute(
                    conn,
                    &SQL.insert_history,
                    &[
                        &r.gid,
                        &r.at,
                        &r.kind,
                        &r.branch_id,
                        &r.op,
                        &r.attempt,
                        &r.outcome,
                        &r.detail,
                        &r.duration_ms,
                        &r.actor,
                    ],
                )?;
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn history(&self, gid: &Gid, limit: u32) -> Result<Vec<HistoryEntry>, StoreError> {
        let gid = gid.clone();
        self.file
            .read(move |conn| {
                query(conn, &SQL.select_history, &[&gid.as_str(), &limit_i64(limit)], |r| {
                    Ok(HistoryRow {
                        gid: r.get(0)?,
                        at: r.get(1)?,
                        kind: r.get(2)?,
                        branch_id: r.get(3)?,
                        op: r.get(4)?,
                        attempt: r.get(5)?,
                        outcome: r.get(6)?,
                        detail: r.get(7)?,
                        duration_ms: r.get(8)?,
                        actor: r.get(9)?,
                    })
                })?
                .into_iter()
                .map(HistoryRow::decode)
                .collect()
            })
            .await
            .map_err(file_error)?
    }

    pub(super) async fn claim(
        &self,
        gid: &Gid,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Option<Lease>, StoreError> {
        let (gid, owner) = (gid.clone(), owner.to_owned());
        self.write(move |conn| {
            let epoch =
                query_optional(conn, &SQL.claim, &[&gid.as_str(), &owner.as_str(), &now.0, &lease_until.0], |r| {
                    r.get::<_, i64>(0)
                })?;
            Ok(epoch.map(|epoch| Lease { gid, owner, epoch }))
        })
        .await
    }

    pub(super) async fn claim_due(
        &self,
        owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> Result<Vec<Lease>, StoreError> {
        // A read first: polling finds nothing most of the time, and must not
        // take the writer (and an fsync) for that.
        let any = self
            .file
            .read(move |conn| query_optional(conn, &SQL.any_due, &[&now.0], |r| r.get::<_, bool>(0)))
            .await
            .map_err(file_error)??;
        if any != Some(true) {
            return Ok(Vec::new());
        }
        let owner = owner.to_owned();
        self.write(move |conn| {
            // One statement on the single writer: no other claim can interleave.
            let rows = query(
                conn,
                "UPDATE main.wasmtx_transactions SET lease_owner = $1, lease_expires = $3, epoch = epoch + 1 \
                 WHERE id IN ( \
                     SELECT id FROM main.wasmtx_transactions \
                     WHERE next_due <= $2 AND status NOT IN ('succeeded', 'failed') \
                       AND (lease_owner IS NULL OR lease_expires IS NULL OR lease_expires < $2) \
                     ORDER BY next_due, id \
                     LIMIT $4) \
                 RETURNING id, gid, epoch, next_due",
                &[&owner.as_str(), &now.0, &lease_until.0, &limit_i64(limit)],
                |r| Ok(ClaimedRow { id: r.get(0)?, gid: r.get(1)?, epoch: r.get(2)?, next_due: r.get(3)? }),
            )?;
            Ok(leases_oldest_first(rows, &owner))
        })
        .await
    }

    /// A [`Progress::Save`] in a write job of its own.
    pub(super) async fn write_save(&self, progress: &Progress) -> Result<(), StoreError> {
        let progress = progress.clone();
        self.write(move |conn| write_progress_on(conn, &progress)).await
    }

    pub(super) async fn journal(&self, gid: &Gid) -> Result<Vec<JournalEntry>, StoreError> {
        let gid = gid.clone();
        self.file
            .read(move |conn| {
                query(conn, &SQL.select_journal, &[&gid.as_str()], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })?
                .into_iter()
                .map(|(seq, text)| decode_journal(&gid, seq, &text))
                .collect()
            })
            .await
            .map_err(file_error)?
    }

    /// One write job: the single writer is the row lock.
    pub(super) async fn send_signal(
        &self,
        gid: &Gid,
        name: &str,
        payload: &[u8],
        now: Millis,
    ) -> Result<SignalSent, StoreError> {
        let (gid, name, payload) = (gid.clone(), name.to_owned(), payload.to_vec());
        self.write(move |conn| {
            let Some(row) = query_optional(conn, &SQL.signal_target, &[&gid.as_str()], SignalTargetRow::from_sqlite)?
            else {
                return Ok(SignalSent::UnknownGid);
            };
            let verdict = row.signal_verdict(now)?;
            if let SignalSent::Sent { wake } = verdict {
                let max = super::MAX_SIGNALS;
                let kept = execute(
                    conn,
                    &SQL.insert_signal,
                    &[&gid.as_str(), &name.as_str(), &payload.as_slice(), &now.0, &max],
                )?;
                if kept == 0 {
                    return Ok(SignalSent::TooMany);
                }
                if wake {
                    execute(conn, &SQL.wake, &[&gid.as_str(), &now.0])?;
                }
            }
            Ok(verdict)
        })
        .await
    }

    pub(super) async fn signals(&self, gid: &Gid, name: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let (gid, name) = (gid.clone(), name.to_owned());
        self.file
            .read(move |conn| {
                query(conn, &SQL.select_signals, &[&gid.as_str(), &name.as_str()], |r| r.get::<_, Vec<u8>>(0))
            })
            .await
            .map_err(file_error)?
    }

    /// One write job: the single writer is the row lock.
    pub(super) async fn park(&self, progress: &Progress, name: &str, seen: u32) -> Result<Parked, StoreError> {
        let Progress::Save { lease, .. } = progress else {
            return Err(StoreError::Config(format!("park is for a save, not the create of {}", progress.gid())));
        };
        let (lease, progress, name) = (lease.clone(), progress.clone(), name.to_owned());
        self.write(move |conn| {
            let row = query_optional(conn, &SQL.signal_target, &[&lease.gid.as_str()], SignalTargetRow::from_sqlite)?;
            if !row.is_some_and(|row| row.held_by(&lease)) {
                return Err(StoreError::Fenced { gid: lease.gid.clone() });
            }
            let count = query_optional(conn, &SQL.count_signals, &[&lease.gid.as_str(), &name.as_str()], |r| {
                r.get::<_, i64>(0)
            })?
            .unwrap_or(0);
            if count > i64::from(seen) {
                return Ok(Parked::SignalWaiting);
            }
            write_progress_on(conn, &progress)?;
            Ok(Parked::Parked)
        })
        .await
    }

    pub(super) async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.write(move |conn| {
            execute(conn, &SQL.release, &[&lease.gid.as_str(), &lease.epoch, &lease.owner.as_str()])?;
            Ok(())
        })
        .await
    }

    pub(super) async fn release_all(&self, owner: &str) -> Result<u64, StoreError> {
        let owner = owner.to_owned();
        self.write(move |conn| Ok(execute(conn, &SQL.release_all, &[&owner.as_str()])? as u64)).await
    }

    pub(super) async fn unfinished(&self, limit: u32) -> Result<Vec<Gid>, StoreError> {
        self.file
            .read(move |conn| {
                let gids = query(conn, &SQL.unfinished, &[&limit_i64(limit)], |r| r.get::<_, String>(0))?;
                Ok(gids.into_iter().map(Gid::from_trusted).collect())
            })
            .await
            .map_err(file_error)?
    }

    pub(super) async fn alert_candidates(
        &self,
        retries: u32,
        unfinished_before: Millis,
        limit: u32,
    ) -> Result<Vec<AlertCandidate>, StoreError> {
        self.file
            .read(move |conn| {
                let limit = limit_i64(limit);
                let mut candidates = Vec::new();
                for (condition, sql, bound) in [
                    (AlertCondition::Retries, &SQL.alert_retries, i64::from(retries)),
                    (AlertCondition::Unfinished, &SQL.alert_unfinished, unfinished_before.0),
                ] {
                    for row in query(conn, sql, &[&bound, &limit], AlertCandidateRow::from_sqlite)? {
                        candidates.push(row.decode(condition)?);
                    }
                }
                Ok(candidates)
            })
            .await
            .map_err(file_error)?
    }

    pub(super) async fn claim_alert(
        &self,
        gid: &Gid,
        condition: AlertCondition,
        at: Millis,
    ) -> Result<bool, StoreError> {
        let gid = gid.clone();
        self.write(move |conn| Ok(execute(conn, &SQL.claim_alert, &[&gid.as_str(), &condition.as_str(), &at.0])? > 0))
            .await
    }

    pub(super) async fn unclaim_alert(&self, gid: &Gid, condition: AlertCondition) -> Result<(), StoreError> {
        let gid = gid.clone();
        self.write(move |conn| execute(conn, &SQL.unclaim_alert, &[&gid.as_str(), &condition.as_str()]).map(|_| ()))
            .await
    }

    /// One write job: the cascade takes ops, journal, signals and alerts;
    /// history has no foreign key and goes gid by gid.
    pub(super) async fn delete_finished_before(&self, cutoff: Millis, limit: u32) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let gids = query(conn, &DELETE_FINISHED, &[&cutoff.0, &limit_i64(limit)], |r| r.get::<_, String>(0))?;
            for gid in &gids {
                execute(conn, &SQL.delete_history, &[&gid.as_str()])?;
            }
            Ok(gids.len() as u64)
        })
        .await
    }

    pub(super) async fn put_module(&self, record: &ModuleRecord, bytes: &[u8]) -> Result<(), StoreError> {
        let (record, bytes) = (record.clone(), bytes.to_vec());
        self.write(move |conn| {
            execute(
                conn,
                &SQL.insert_blob,
                &[&record.digest.as_str(), &bytes.as_slice(), &to_i64(bytes.len() as u64), &record.created_at.0],
            )?;
            execute(
                conn,
                &SQL.insert_version,
                &[
                    &record.name.as_str(),
                    &record.digest.as_str(),
                    &record.world.as_str(),
                    &functions_json(&record.functions)?,
                    &record.database.as_str(),
                    &record.instance_reuse.map(i64::from),
                    &to_i64(record.size),
                    &record.created_at.0,
                    &functions_json(&record.http_hosts)?,
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn module(&self, name: &ModuleName) -> Result<Option<ModuleRecord>, StoreError> {
        let name = name.clone();
        self.read_module(move |conn| query_optional(conn, &SQL.module, &[&name.as_str()], ModuleRow::from_sqlite)).await
    }

    pub(super) async fn module_version(
        &self,
        name: &ModuleName,
        digest: &Digest,
    ) -> Result<Option<ModuleRecord>, StoreError> {
        let (name, digest) = (name.clone(), digest.clone());
        self.read_module(move |conn| {
            query_optional(conn, &SQL.module_version, &[&name.as_str(), &digest.as_str()], ModuleRow::from_sqlite)
        })
        .await
    }

    pub(super) async fn modules(&self) -> Result<Vec<ModuleRecord>, StoreError> {
        self.file
            .read(|conn| {
                query(conn, &SQL.modules, &[], ModuleRow::from_sqlite)?.into_iter().map(ModuleRow::decode).collect()
            })
            .await
            .map_err(file_error)?
    }

    pub(super) async fn module_bytes(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let digest = digest.clone();
        self.file
            .read(move |conn| query_optional(conn, &SQL.module_bytes, &[&digest.as_str()], |r| r.get::<_, Vec<u8>>(0)))
            .await
            .map_err(file_error)?
    }

    pub(super) async fn add_subscriber(
        &self,
        topic: &TopicName,
        module: &ModuleName,
        function: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let (topic, module, function) = (topic.clone(), module.clone(), function.to_owned());
        self.write(move |conn| {
            let added = execute(
                conn,
                &SQL.insert_subscriber,
                &[&topic.as_str(), &module.as_str(), &function.as_str(), &now.0],
            )?;
            Ok(added > 0)
        })
        .await
    }

    pub(super) async fn remove_subscriber(
        &self,
        topic: &TopicName,
        module: &ModuleName,
        function: &str,
    ) -> Result<bool, StoreError> {
        let (topic, module, function) = (topic.clone(), module.clone(), function.to_owned());
        self.write(move |conn| {
            let removed =
                execute(conn, &SQL.delete_subscriber, &[&topic.as_str(), &module.as_str(), &function.as_str()])?;
            Ok(removed > 0)
        })
        .await
    }

    pub(super) async fn heartbeat(&self, i: &Instance) -> Result<(), StoreError> {
        let i = i.clone();
        self.write(move |conn| {
            let in_flight = i64::try_from(i.in_flight).unwrap_or(i64::MAX);
            execute(
                conn,
                &SQL.upsert_instance,
                &[&i.node.as_str(), &i.version.as_str(), &i.started_at.0, &i.heartbeat_at.0, &in_flight],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn instances(&self, since: Millis) -> Result<Vec<Instance>, StoreError> {
        self.file
            .read(move |conn| query(conn, &SQL.instances, &[&since.0], InstanceRow::from_sqlite))
            .await
            .map_err(file_error)?
            .map(|rows| rows.into_iter().map(InstanceRow::decode).collect())
    }

    pub(super) async fn forget_instance(&self, node: &str) -> Result<(), StoreError> {
        let node = node.to_owned();
        self.write(move |conn| execute(conn, &SQL.delete_instance, &[&node.as_str()]).map(|_| ())).await
    }

    pub(super) async fn subscribers(&self, topic: &TopicName) -> Result<Vec<Subscriber>, StoreError> {
        let topic = topic.clone();
        self.file
            .read(move |conn| query(conn, &SQL.subscribers, &[&topic.as_str()], SubscriberRow::from_sqlite))
            .await
            .map_err(file_error)?
            .map(|rows| rows.into_iter().map(SubscriberRow::decode).collect())
    }

    pub(super) async fn topics(&self) -> Result<Vec<Subscriber>, StoreError> {
        self.file
            .read(|conn| query(conn, &SQL.all_subscribers, &[], SubscriberRow::from_sqlite))
            .await
            .map_err(file_error)?
            .map(|rows| rows.into_iter().map(SubscriberRow::decode).collect())
    }

    async fn read_module(
        &self,
        work: impl FnOnce(&Connection) -> Result<Option<ModuleRow>, StoreError> + Send + 'static,
    ) -> Result<Option<ModuleRecord>, StoreError> {
        self.file.read(work).await.map_err(file_error)??.map(ModuleRow::decode).transpose()
    }

    /// A write job in host mode on the file's writer.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.file.write(move |w| work(&w.conn())).await.map_err(file_error)?
    }

    #[cfg(test)]
    pub(super) async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        let sql = sql.to_owned();
        self.write(move |conn| conn.execute(&sql, []).map(|n| n as u64).map_err(sql_error)).await
    }

    #[cfg(test)]
    pub(super) async fn scalar_raw(&self, sql: &str) -> Result<i64, StoreError> {
        let sql = sql.to_owned();
        self.write(move |conn| conn.query_row(&sql, [], |r| r.get(0)).map_err(sql_error)).await
    }
}

/// Brings the file to [`SCHEMA_VERSION`], in the job's transaction.
fn migrate(w: &Writer) -> Result<(), StoreError> {
    let conn = w.conn();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sql_error)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Config(format!(
            "the store has schema version {version}; this wasmtx knows only up to {SCHEMA_VERSION} (a newer wasmtx \
             wrote it)"
        )));
    }
    let table_exists = |name: &str| -> Result<bool, StoreError> {
        conn.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)", [name], |r| {
            r.get(0)
        })
        .map_err(sql_error)
    };
    for next in (version + 1)..=SCHEMA_VERSION {
        let step = match next {
            1 if table_exists("_sqlx_migrations")? && table_exists("transactions")? => UPGRADE_FROM_SQLX,
            1 => SCHEMA_V1,
            2 => SCHEMA_V2,
            3 => SCHEMA_V3,
            4 => SCHEMA_V4,
            5 => SCHEMA_V5,
            6 => SCHEMA_V6,
            _ => SCHEMA_V7,
        };
        conn.execute_batch(step).map_err(|e| StoreError::Config(format!("applying schema version {next}: {e}")))?;
        conn.pragma_update(None, "user_version", next).map_err(sql_error)?;
    }
    Ok(())
}

/// Writes `progress` with the host's statements on `conn`, inside the
/// caller's transaction: the store's own saves, and a co-located branch's
/// commit. Fenced: a stale lease writes nothing and is [`StoreError::Fenced`].
pub(crate) fn write_progress(conn: &Connection, progress: &Progress) -> Result<(), StoreError> {
    write_progress_on(conn, progress)
}

fn write_progress_on(conn: &Connection, progress: &Progress) -> Result<(), StoreError> {
    match progress {
        Progress::Create(state) => {
            if insert_state(conn, state)? {
                Ok(())
            } else {
                Err(StoreError::GidTaken { gid: state.transaction.gid.clone() })
            }
        }
        Progress::Save { lease, transaction: tx, ops, release, journal } => {
            let updated = execute(
                conn,
                &SQL.update_state,
                &[
                    &lease.gid.as_str(),
                    &lease.epoch,
                    &lease.owner.as_str(),
                    &tx.status.as_str(),
                    &tx.next_due.map(|m| m.0),
                    &i64::from(tx.attempts),
                    &tx.last_error.as_deref(),
                    &tx.rollback_reason.as_deref(),
                    &tx.updated_at.0,
                    &tx.finished_at.map(|m| m.0),
                    &tx.lease_expires.map(|m| m.0),
                    release,
                ],
            )?;
            if updated == 0 {
                return Err(StoreError::Fenced { gid: lease.gid.clone() });
            }
            for op in ops {
                insert_op(conn, &lease.gid, op, true)?;
            }
            for entry in journal {
                append_journal(conn, &lease.gid, entry)?;
            }
            Ok(())
        }
    }
}

/// Appends one journal entry; an entry stored already must be the same text.
fn append_journal(conn: &Connection, gid: &Gid, entry: &JournalEntry) -> Result<(), StoreError> {
    let text = journal_json(entry)?;
    let seq = i64::from(entry.seq);
    if execute(conn, &SQL.insert_journal, &[&gid.as_str(), &seq, &text.as_str()])? > 0 {
        return Ok(());
    }
    let stored = query_optional(conn, &SQL.journal_entry, &[&gid.as_str(), &seq], |r| r.get::<_, String>(0))?;
    journal_conflict(gid, entry, &text, stored.as_deref())
}

/// Inserts a new transaction and its ops; `false` (nothing written) if the gid exists.
fn insert_state(conn: &Connection, state: &TransactionState) -> Result<bool, StoreError> {
    let t = &state.transaction;
    let inserted = execute(
        conn,
        &SQL.insert_transaction,
        &[
            &t.gid.as_str(),
            &t.mode.as_str(),
            &t.status.as_str(),
            &options_json(&t.options)?,
            &t.next_due.map(|m| m.0),
            &i64::from(t.attempts),
            &t.last_error.as_deref(),
            &t.rollback_reason.as_deref(),
            &t.created_at.0,
            &t.updated_at.0,
            &t.finished_at.map(|m| m.0),
            &t.lease_owner.as_deref(),
            &t.lease_expires.map(|m| m.0),
            &t.epoch,
        ],
    )?;
    if inserted == 0 {
        return Ok(false);
    }
    for op in &state.ops {
        insert_op(conn, &t.gid, op, false)?;
    }
    Ok(true)
}

fn insert_op(conn: &Connection, gid: &Gid, op: &BranchOp, upsert: bool) -> Result<(), StoreError> {
    execute(
        conn,
        if upsert { &SQL.upsert_op } else { &SQL.insert_op },
        &[
            &gid.as_str(),
            &op.branch_id.as_str(),
            &op.op.as_str(),
            &op.target.module.as_str(),
            &op.target.digest.as_str(),
            &op.target.database.as_str(),
            &op.target.function.as_str(),
            &op.payload.as_slice(),
            &op.status.as_str(),
            &i64::from(op.attempts),
            &op.last_error.as_deref(),
            &op.updated_at.0,
        ],
    )?;
    Ok(())
}

fn select_state(conn: &Connection, gid: &Gid) -> Result<Option<TransactionState>, StoreError> {
    let Some(tx) = query_optional(conn, &SQL.select_transaction, &[&gid.as_str()], TransactionRow::from_sqlite)? else {
        return Ok(None);
    };
    let ops = query(conn, &SQL.select_ops, &[&gid.as_str()], OpRow::from_sqlite)?;
    decode_state(tx, ops).map(Some)
}

// ---------------------------------------------------------------- plumbing

/// A cached statement with `params` bound to its `$N` placeholders.
fn statement<'c>(conn: &'c Connection, sql: &str, params: &[&dyn ToSql]) -> Result<CachedStatement<'c>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
    bind_numbered(&mut stmt, params.len(), |stmt, index, number| stmt.raw_bind_parameter(index, params[number - 1]))
        .map_err(StoreError::Corrupt)?;
    Ok(stmt)
}

fn execute(conn: &Connection, sql: &str, params: &[&dyn ToSql]) -> Result<usize, StoreError> {
    statement(conn, sql, params)?.raw_execute().map_err(sql_error)
}

fn query<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    mut read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = statement(conn, sql, params)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        out.push(read(row).map_err(sql_error)?);
    }
    Ok(out)
}

fn query_optional<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    let mut stmt = statement(conn, sql, params)?;
    let mut rows = stmt.raw_query();
    rows.next().map_err(sql_error)?.map(read).transpose().map_err(sql_error)
}

/// Decoding problems are corruption; everything else is worth retrying.
fn sql_error(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnIndex(_)
        | rusqlite::Error::InvalidColumnName(_) => StoreError::Corrupt(e.to_string()),
        e => StoreError::Unavailable(e.to_string()),
    }
}

fn file_error(e: SqliteError) -> StoreError {
    match e {
        SqliteError::Url(m) => StoreError::Config(m),
        e @ SqliteError::Open { .. } => StoreError::Config(e.to_string()),
        e => StoreError::Unavailable(e.to_string()),
    }
}

impl TransactionRow {
    fn from_sqlite(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            gid: r.get(0)?,
            mode: r.get(1)?,
            status: r.get(2)?,
            options: r.get(3)?,
            next_due: r.get(4)?,
            attempts: r.get(5)?,
            last_error: r.get(6)?,
            rollback_reason: r.get(7)?,
            created_at: r.get(8)?,
            updated_at: r.get(9)?,
            finished_at: r.get(10)?,
            lease_owner: r.get(11)?,
            lease_expires: r.get(12)?,
            epoch: r.get(13)?,
        })
    }
}

impl OpRow {
    fn from_sqlite(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            branch_id: r.get(0)?,
            op: r.get(1)?,
            module: r.get(2)?,
            digest: r.get(3)?,
            database: r.get(4)?,
            function: r.get(5)?,
            payload: r.get(6)?,
            status: r.get(7)?,
            attempts: r.get(8)?,
            last_error: r.get(9)?,
            updated_at: r.get(10)?,
        })
    }
}

impl ModuleRow {
    fn from_sqlite(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            name: r.get(0)?,
            digest: r.get(1)?,
            world: r.get(2)?,
            functions: r.get(3)?,
            database: r.get(4)?,
            instance_reuse: r.get(5)?,
            size: r.get(6)?,
            created_at: r.get(7)?,
            http_hosts: r.get(8)?,
        })
    }
}

impl SignalTargetRow {
    fn from_sqlite(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            mode: r.get(0)?,
            status: r.get(1)?,
            lease_owner: r.get(2)?,
            lease_expires: r.get(3)?,
            epoch: r.get(4)?,
        })
    }
}

impl AlertCandidateRow {
    fn from_sqlite(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            gid: r.get(0)?,
            mode: r.get(1)?,
            status: r.get(2)?,
            attempts: r.get(3)?,
            op_attempts: r.get(4)?,
            created_at: r.get(5)?,
            last_error: r.get(6)?,
            op_error: r.get(7)?,
        })
    }
}

impl InstanceRow {
    fn from_sqlite(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            node: r.get(0)?,
            version: r.get(1)?,
            started_at: r.get(2)?,
            heartbeat_at: r.get(3)?,
            in_flight: r.get(4)?,
        })
    }
}

impl SubscriberRow {
    fn from_sqlite(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self { topic: r.get(0)?, module: r.get(1)?, function: r.get(2)?, created_at: r.get(3)? })
    }
}
