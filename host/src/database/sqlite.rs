//! SQLite business databases: a branch runs as one job on its file's writer
//! thread ([`SqliteFile`]), in a transaction of its own: the barrier rows,
//! then the guest (its host calls run synchronously on that thread, in guest
//! mode), then — if the guest said so — the co-located progress and the
//! commit, acknowledged once the batch's fsync made it durable.
//!
//! A branch holds the file's single writer while it runs, so it gets at most
//! [`DbLimits::sqlite_hold`] of it: a slow or stuck guest costs the other
//! branches on the same file that long, then fails with a deadline error.
//! This file must not decide what a branch does; it only keeps the
//! transaction whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::value::{self, DbError, Rows, Value};
use super::{
    BarrierKey, BarrierVerdict, BranchRun, DatabaseError, DbLimits, Decision, LocalTx, RunError, TxInner, TxWork,
    barrier, step_output,
};
use crate::model::{BranchId, Gid};
use crate::sqlite::{GuestLimits, GuestOutput, GuestSqlError, SqliteError, SqliteFile, Writer};
use crate::store::Progress;

#[derive(Clone)]
pub(super) struct SqliteDb {
    file: SqliteFile,
    limits: DbLimits,
}

/// Why a job rolled back: the work's own decision, or an error.
enum Undo<T> {
    Decided(T),
    Failed(RunError),
}

impl SqliteDb {
    /// Opens the file (creating it when missing), its barrier table and its
    /// step-output table.
    pub(super) async fn connect(url: &str, limits: DbLimits) -> Result<SqliteDb, DatabaseError> {
        let file = SqliteFile::open(url).map_err(open_error)?;
        file.write(|w: &Arc<Writer>| {
            let conn = w.conn();
            conn.execute_batch(barrier::CREATE_TABLE_SQLITE)?;
            conn.execute_batch(step_output::CREATE_TABLE_SQLITE)
        })
        .await
        .map_err(open_error)?
        .map_err(|e| DatabaseError::Unavailable(format!("cannot create the barrier and step-output tables: {e}")))?;
        Ok(SqliteDb { file, limits })
    }

    pub(super) fn file(&self) -> &SqliteFile {
        &self.file
    }

    pub(super) async fn run_branch<T: Send + 'static>(
        &self,
        key: BarrierKey,
        deadline: Instant,
        progress: Option<Progress>,
        work: TxWork<T>,
    ) -> Result<BranchRun<T>, RunError> {
        let limits = self.limits.clone();
        let outcome = self
            .file
            .write(move |w: &Arc<Writer>| {
                let verdict = barrier::enter_sqlite(&w.conn(), &key).map_err(|e| Undo::Failed(e.into()))?;
                if verdict != BarrierVerdict::Proceed {
                    write_progress(w, progress.as_ref()).map_err(Undo::Failed)?;
                    return Ok(BranchRun::Skipped(verdict));
                }
                match run_work(w, deadline, &limits, work).map_err(|e| Undo::Failed(e.into()))? {
                    Decision::Commit(value) => {
                        write_progress(w, progress.as_ref()).map_err(Undo::Failed)?;
                        Ok(BranchRun::Ran(Decision::Commit(value)))
                    }
                    Decision::Rollback(value) => Err(Undo::Decided(value)),
                }
            })
            .await
            .map_err(commit_error)?;
        match outcome {
            Ok(run) => Ok(run),
            Err(Undo::Decided(value)) => Ok(BranchRun::Ran(Decision::Rollback(value))),
            Err(Undo::Failed(e)) => Err(e),
        }
    }

    pub(super) async fn query_prepared(&self, key: BarrierKey, _deadline: Instant) -> Result<bool, DbError> {
        // One short host job on the writer: it queues behind a local
        // transaction still running, which holds the writer until it ends.
        self.file
            .write(move |w: &Arc<Writer>| barrier::query_prepared_sqlite(&w.conn(), &key))
            .await
            .map_err(|e| DbError::host(format!("back-check: {e}")))?
    }

    /// A step's committed output, read by a host job on the writer (like the
    /// back-check): answered once the batch it read from is durable.
    pub(super) async fn step_output(&self, gid: &Gid, branch_id: &BranchId) -> Result<Option<Vec<u8>>, DbError> {
        let (gid, branch_id) = (gid.as_str().to_owned(), branch_id.as_str().to_owned());
        self.file
            .write(move |w: &Arc<Writer>| step_output::read_sqlite(&w.conn(), &gid, &branch_id))
            .await
            .map_err(|e| DbError::host(format!("reading a step's output: {e}")))?
    }

    pub(super) async fn run_local<T: Send + 'static>(
        &self,
        deadline: Instant,
        work: TxWork<T>,
    ) -> Result<Decision<T>, DbError> {
        let limits = self.limits.clone();
        let outcome = self
            .file
            .write(move |w: &Arc<Writer>| {
                match run_work(w, deadline, &limits, work).map_err(|e| Undo::Failed(e.into()))? {
                    Decision::Commit(value) => Ok(value),
                    Decision::Rollback(value) => Err(Undo::Decided(value)),
                }
            })
            .await
            .map_err(commit_error)?;
        match outcome {
            Ok(value) => Ok(Decision::Commit(value)),
            Err(Undo::Decided(value)) => Ok(Decision::Rollback(value)),
            Err(Undo::Failed(RunError::Db(e))) => Err(e),
            Err(Undo::Failed(e)) => Err(DbError::host(e.to_string())),
        }
    }
}

#[cfg(test)]
impl SqliteDb {
    pub(super) async fn barrier_rows(&self, gid: &str, branch: &str) -> Vec<(String, String)> {
        let (gid, branch) = (gid.to_owned(), branch.to_owned());
        self.file
            .read(move |conn| {
                let mut stmt = conn
                    .prepare("SELECT op, reason FROM main.wasmtx_barrier WHERE gid = ?1 AND branch_id = ?2 ORDER BY op")
                    .expect("prepare");
                let rows = stmt.query_map([gid, branch], |r| Ok((r.get(0)?, r.get(1)?))).expect("query");
                rows.collect::<Result<Vec<_>, _>>().expect("rows")
            })
            .await
            .expect("read barrier rows")
    }
}

/// Runs the work on this (the writer's) thread with a transaction whose
/// statements run here in guest mode, within the invocation's deadline and
/// the writer-hold budget.
fn run_work<T: Send + 'static>(
    w: &Arc<Writer>,
    deadline: Instant,
    limits: &DbLimits,
    work: TxWork<T>,
) -> Result<Decision<T>, DbError> {
    let deadline = deadline.min(Instant::now() + limits.sqlite_hold);
    let live = Arc::new(AtomicBool::new(true));
    let tx = SqliteTx { writer: w.clone(), deadline, live: live.clone(), ended_early: false };
    let tx = LocalTx::new(TxInner::Sqlite(tx), limits);
    let remaining = deadline.saturating_duration_since(Instant::now());
    let finished = w.block_on(async { tokio::time::timeout(remaining, work(tx)).await });
    // Whatever kept the transaction handle can no longer use it.
    live.store(false, Ordering::Release);
    let (tx, decision) = finished.map_err(|_| {
        DbError::host(format!(
            "deadline exceeded: the branch held its SQLite database for {:?} (sqlite_hold) or ran past its \
             deadline",
            limits.sqlite_hold.min(remaining)
        ))
    })?;
    if let Decision::Commit(_) = decision {
        let ended = tx.as_ref().is_none_or(|tx| matches!(&tx.inner, TxInner::Sqlite(t) if t.ended_early));
        if ended || !w.in_transaction() {
            return Err(DbError::host(ENDED_EARLY.to_owned()));
        }
    }
    Ok(decision)
}

fn write_progress(w: &Writer, progress: Option<&Progress>) -> Result<(), RunError> {
    match progress {
        Some(progress) => crate::store::write_progress_sqlite(&w.conn(), progress).map_err(RunError::from_store),
        None => Ok(()),
    }
}

/// The transaction a guest's SQL runs in, valid while its job runs.
pub(super) struct SqliteTx {
    writer: Arc<Writer>,
    deadline: Instant,
    /// Cleared when the job ends.
    live: Arc<AtomicBool>,
    /// A statement ended the transaction (`ON CONFLICT ROLLBACK`, `RAISE(ROLLBACK)`).
    ended_early: bool,
}

impl SqliteTx {
    fn check(&self) -> Result<(), DbError> {
        if !self.live.load(Ordering::Acquire) {
            return Err(DbError::host("the transaction has ended".to_owned()));
        }
        if self.ended_early {
            return Err(DbError::host(ENDED_EARLY.to_owned()));
        }
        Ok(())
    }

    fn run(&mut self, sql: &str, params: &[Value], budget: &GuestLimits, rows: bool) -> Result<GuestOutput, DbError> {
        self.check()?;
        let params: Vec<rusqlite::types::Value> = params.iter().map(value::to_sqlite).collect();
        let result = self.writer.guest_statement(sql, &params, self.deadline, budget, rows);
        if !self.writer.in_transaction() {
            self.ended_early = true;
        }
        result.map_err(guest_error)
    }

    /// A host statement in the guest's transaction, between its statements
    /// (the authorizer judges only guest mode). Refused once the transaction
    /// ended, where the insert would commit on its own.
    pub(super) fn record_output(&mut self, key: &BarrierKey, output: &[u8]) -> Result<(), DbError> {
        self.check()?;
        if !self.writer.in_transaction() {
            self.ended_early = true;
            return Err(DbError::host(ENDED_EARLY.to_owned()));
        }
        step_output::record_sqlite(&self.writer.conn(), key, output)
    }

    pub(super) fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let unlimited = GuestLimits { rows: u64::MAX, bytes: u64::MAX };
        match self.run(sql, params, &unlimited, false)? {
            GuestOutput::Changed(n) => Ok(n),
            GuestOutput::Rows { .. } => Ok(0),
        }
    }

    pub(super) fn query(&mut self, sql: &str, params: &[Value], budget: &GuestLimits) -> Result<Rows, DbError> {
        match self.run(sql, params, budget, true)? {
            GuestOutput::Rows { columns, rows, .. } => Ok(Rows {
                columns,
                values: rows.into_iter().map(|r| r.into_iter().map(value::from_sqlite).collect()).collect(),
            }),
            GuestOutput::Changed(_) => Ok(Rows::default()),
        }
    }
}

fn guest_error(e: GuestSqlError) -> DbError {
    DbError { code: e.code.map(|c| c.to_string()), message: e.message }
}

fn open_error(e: SqliteError) -> DatabaseError {
    match e {
        SqliteError::Url(m) => DatabaseError::Config(m),
        e => DatabaseError::Unavailable(e.to_string()),
    }
}

fn commit_error(e: SqliteError) -> DbError {
    DbError::host(match e {
        SqliteError::Commit(m) => format!("not committed: {m}"),
        e => e.to_string(),
    })
}

const ENDED_EARLY: &str = "not committed: the transaction ended before the host committed it (a statement with \
    ON CONFLICT ROLLBACK or RAISE(ROLLBACK) rolled it back); nothing was committed";
