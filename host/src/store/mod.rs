//! The coordinator store: transactions, their branch ops, leases, modules and
//! topic subscribers, persisted on SQLite (embedded default) or Postgres
//! (production, scale-out) behind one concrete [`Store`].
//!
//! This is the only module that holds coordinator SQL. Nothing sqlx-typed leaves
//! it except as the `source` of [`StoreError::Unavailable`]; callers see model
//! types and an error shaped by what they do next (stop, fix config, retry,
//! report a bug). It knows no protocol rules: it never decides a status, it only
//! stores what the engine decided, under the engine's lease.
//!
//! # Leases and fencing
//!
//! A transaction is driven by whoever holds its lease (`lease_owner`,
//! `lease_expires`). Every claim bumps the row's `epoch`; [`Store::save`] writes
//! only if the row still carries the caller's owner and epoch, so a zombie that
//! lost its lease can never overwrite the new owner's progress.
//!
//! # Workflows
//!
//! A workflow's journal (what its `run` asked through `steps` and the host's
//! answers) is appended in the driver's fenced saves ([`Progress::Save`]'s
//! `journal`), so it is exactly as durable as the progress it explains.
//! Signals are stored as they arrive ([`Store::send_signal`]); a workflow that
//! waits for one gives its lease up with [`Store::park`], which never parks it
//! past a signal it has not seen.
//!
//! # Layout
//!
//! - `mod.rs`: the public API, errors, row decoding shared by both backends.
//! - `queries.rs`: the SQL, written once for both.
//! - `topics.rs`: [`TopicName`] and [`Subscriber`], and their row decoding.
//! - `alerts.rs`: [`AlertCondition`] and [`AlertCandidate`], and their row decoding.
//! - `sqlite.rs` (rusqlite, on the file's single writer), `postgres.rs` (sqlx):
//!   binding, pools, locking, claiming due work.
//! - `../../migrations/{sqlite,postgres}`: the schema, same tables and meaning on
//!   both; Postgres keeps them in the schema `wasmtx`, SQLite prefixes them `wasmtx_`.

use std::fmt;

use crate::model::{
    BranchId, BranchOp, DatabaseName, Digest, Gid, HistoryEntry, JournalEntry, Millis, Mode, ModuleName, ModuleRecord,
    Op, OpStatus, Options, Status, Target, Transaction, TransactionState,
};

mod alerts;
mod instances;
mod postgres;
mod queries;
mod sqlite;
mod topics;

pub use alerts::{AlertCandidate, AlertCondition};
pub use instances::Instance;
pub(crate) use postgres::{progress_json as progress_json_postgres, progress_refusal as progress_refusal_postgres};
pub use queries::ListFilter;
pub(crate) use sqlite::write_progress as write_progress_sqlite;
pub use topics::{Subscriber, TopicName};

#[cfg(test)]
mod tests;

/// A lease on one transaction: proof that `owner` may drive it, valid for writes
/// as long as the stored epoch still equals `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub gid: Gid,
    pub owner: String,
    pub epoch: i64,
}

/// Outcome of [`Store::create_transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "returned once per create and matched at once; a Box would only burden callers"
)]
pub enum Created {
    /// The transaction and its ops were inserted.
    New,
    /// The gid was already taken; nothing was written. Holds what is stored.
    Existing(TransactionState),
}

/// A store write that can also ride in a branch's own local transaction
/// when the branch's database is the store's (co-location): the branch's
/// business writes, its barrier row and this commit together.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per write and consumed at once; a Box would only burden callers"
)]
pub enum Progress {
    /// Insert a new transaction and its ops (already leased to the writer).
    Create(TransactionState),
    /// The fenced save of [`Store::save`] (and [`Store::save_and_release`] with `release`).
    /// `journal` holds the workflow journal entries to append in the same
    /// write (empty for every other mode). An entry whose seq is stored
    /// already must carry the same text (a retried save); another text is
    /// [`StoreError::Corrupt`] and nothing is written.
    Save { lease: Lease, transaction: Transaction, ops: Vec<BranchOp>, release: bool, journal: Vec<JournalEntry> },
}

impl Progress {
    /// A [`Progress::Save`] without journal entries.
    fn save(lease: &Lease, tx: &Transaction, ops: &[BranchOp], release: bool) -> Self {
        Progress::Save {
            lease: lease.clone(),
            transaction: tx.clone(),
            ops: ops.to_vec(),
            release,
            journal: Vec::new(),
        }
    }

    /// The transaction it writes.
    pub fn gid(&self) -> &Gid {
        match self {
            Progress::Create(state) => &state.transaction.gid,
            Progress::Save { lease, .. } => &lease.gid,
        }
    }
}

/// The most signals one workflow keeps (taken or not): a client cannot fill
/// the store through one workflow.
pub const MAX_SIGNALS: i64 = 1000;

/// Outcome of [`Store::send_signal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalSent {
    /// The signal is stored. `wake`: the workflow is `submitted` and no live
    /// lease drives it, so it was made due for a poller to claim. Without
    /// `wake`, a live owner drives it (and sees the signal before it parks,
    /// see [`Store::park`]), or it is not `submitted` (not running `run`).
    Sent { wake: bool },
    /// No transaction has this gid; nothing was stored.
    UnknownGid,
    /// The workflow holds [`MAX_SIGNALS`] signals already; nothing was stored.
    TooMany,
    /// The transaction is not a workflow (here is its mode); nothing was stored.
    NotWorkflow(Mode),
    /// The workflow is final (here is its status); nothing was stored.
    Finished(Status),
}

/// Outcome of [`Store::park`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parked {
    /// The progress is written (and the lease given up, as it asked).
    Parked,
    /// A signal of the awaited name arrived beyond the ones already seen;
    /// nothing was written and the caller still holds its lease.
    SignalWaiting,
}

/// Why a store call failed, shaped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write was made under an older epoch: another owner has claimed the transaction. Stop driving it.
    #[error("transaction {gid} is leased by another owner; this lease is fenced")]
    Fenced { gid: Gid },
    /// A [`Progress::Create`] found the gid taken; nothing was written.
    #[error("transaction {gid} exists already")]
    GidTaken { gid: Gid },
    /// Invalid URL / unsupported scheme / migration failed: fix configuration.
    #[error("coordinator store configuration: {0}")]
    Config(String),
    /// Database unreachable, timeout, pool closed, serialization failure, a
    /// commit that could not be made durable…: try again later.
    #[error("coordinator store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded (unknown status text, bad JSON): a bug or a newer schema.
    #[error("coordinator store holds data it cannot decode: {0}")]
    Corrupt(String),
}

/// The coordinator store. Cheap to clone: each backend is a handle on its pools.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend()).finish_non_exhaustive()
    }
}

/// Runs the same call on whichever backend the store holds.
macro_rules! dispatch {
    ($self:ident, $backend:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sqlite($backend) => $call,
            Backend::Postgres($backend) => $call,
        }
    };
}

impl Store {
    /// `sqlite://path?mode=rwc` (or `sqlite:path`) or `postgres://…`/`postgresql://…`;
    /// creates the SQLite file and parent dir if missing; applies embedded migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::SqliteStore::connect(url).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::PostgresStore::connect(url).await?)
        } else {
            // Only the scheme is echoed: the rest may hold a password.
            let scheme = url.split_once(':').map_or("", |(s, _)| s);
            return Err(StoreError::Config(format!(
                "unsupported store URL scheme {scheme:?}: use sqlite://PATH or postgres://…"
            )));
        };
        Ok(Store { backend })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The SQLite file the store lives in (`None` on Postgres). A business
    /// database on the same file shares its writer, and its branch commits
    /// can carry the transactions' progress.
    pub fn sqlite_file(&self) -> Option<&crate::sqlite::SqliteFile> {
        match &self.backend {
            Backend::Sqlite(b) => Some(b.file()),
            Backend::Postgres(_) => None,
        }
    }

    /// Host, port and database name of a Postgres store (`None` on SQLite).
    /// The Postgres pool's (idle, busy) connections; none on SQLite (one
    /// writer thread and its readers, not a pool).
    pub fn pool_connections(&self) -> Option<(u64, u64)> {
        match &self.backend {
            Backend::Postgres(b) => Some(b.connections()),
            Backend::Sqlite(_) => None,
        }
    }

    pub fn postgres_place(&self) -> Option<(String, u16, Option<String>)> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(b) => Some(b.place()),
        }
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        dispatch!(self, b => b.close().await)
    }

    /// Inserts the transaction row and all its ops in one local transaction. If the
    /// gid exists, inserts nothing and returns the stored state.
    ///
    /// Every field is stored as given, lease and epoch included, so the instance that
    /// receives new work can create it already leased to itself in the same commit.
    pub async fn create_transaction(&self, state: &TransactionState) -> Result<Created, StoreError> {
        let started = std::time::Instant::now();
        let inserted = dispatch!(self, b => b.insert_transaction(state).await);
        crate::metrics::store_write("create", started.elapsed());
        if inserted? {
            return Ok(Created::New);
        }
        let gid = &state.transaction.gid;
        match self.load(gid).await? {
            Some(existing) => Ok(Created::Existing(existing)),
            None => Err(StoreError::Corrupt(format!("transaction {gid} conflicted but is not stored"))),
        }
    }

    /// The transaction and its ops (in insertion order), read from one snapshot.
    pub async fn load(&self, gid: &Gid) -> Result<Option<TransactionState>, StoreError> {
        dispatch!(self, b => b.load(gid).await)
    }

    /// Newest first (by created_at then insertion id), at most `limit`.
    pub async fn list(&self, limit: u32) -> Result<Vec<Transaction>, StoreError> {
        dispatch!(self, b => b.list(limit).await)
    }

    /// Takes the lease on one non-final transaction if it is free, expired
    /// (`lease_expires < now`, or no expiry) or already ours: sets
    /// lease_owner=owner, lease_expires=lease_until, epoch=epoch+1. `None` if final,
    /// unknown, or leased by another live owner.
    pub async fn claim(
        &self,
        gid: &Gid,
        owner: &str,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Option<Lease>, StoreError> {
        dispatch!(self, b => b.claim(gid, owner, now, lease_until).await)
    }

    /// Like [`Store::claim`], for up to `limit` non-final transactions whose
    /// `next_due <= now`, oldest `next_due` first, with one difference: only free or
    /// expired leases are taken, never a live lease of `owner` itself. Such a lease
    /// belongs to a driver of this instance that is still running; re-claiming it
    /// would fence that driver and start a second one. (A previous life's leases are
    /// freed by [`Store::release_all`] at start-up.)
    ///
    /// Concurrent callers never claim the same row: Postgres picks rows with
    /// `FOR UPDATE SKIP LOCKED` inside the claiming statement; SQLite has one writer.
    pub async fn claim_due(
        &self,
        owner: &str,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> Result<Vec<Lease>, StoreError> {
        dispatch!(self, b => b.claim_due(owner, now, lease_until, limit).await)
    }

    /// Writes every mutable field of `tx` (status, next_due, attempts, last_error,
    /// rollback_reason, updated_at, finished_at, lease_expires) and of each op in
    /// `ops` (status, attempts, last_error, updated_at; matched by (gid, branch_id,
    /// op)) in one local transaction, only if the row's epoch and lease owner are the
    /// lease's; otherwise nothing is written and the result is [`StoreError::Fenced`].
    ///
    /// The row is the one named by `lease.gid` (`tx.gid` must be the same). An op not
    /// stored yet is inserted whole, so modes that add branches while running (TCC,
    /// workflow) can use the same call.
    pub async fn save(&self, lease: &Lease, tx: &Transaction, ops: &[BranchOp]) -> Result<(), StoreError> {
        self.write(&Progress::save(lease, tx, ops, false)).await
    }

    /// [`Store::save`] and [`Store::release`] in one write: for a driver that
    /// stops here (the transaction is final, or waits for a retry), one commit
    /// instead of two.
    pub async fn save_and_release(&self, lease: &Lease, tx: &Transaction, ops: &[BranchOp]) -> Result<(), StoreError> {
        self.write(&Progress::save(lease, tx, ops, true)).await
    }

    /// Writes `progress` in a transaction of its own: a [`Progress::Create`]
    /// inserts (or fails with [`StoreError::GidTaken`], writing nothing), a
    /// [`Progress::Save`] is [`Store::save`] or [`Store::save_and_release`].
    pub async fn write(&self, progress: &Progress) -> Result<(), StoreError> {
        match progress {
            Progress::Create(state) => match self.create_transaction(state).await? {
                Created::New => Ok(()),
                Created::Existing(_) => Err(StoreError::GidTaken { gid: state.transaction.gid.clone() }),
            },
            Progress::Save { lease, transaction, .. } => {
                debug_assert_eq!(lease.gid, transaction.gid, "save: lease and transaction name different gids");
                let started = std::time::Instant::now();
                let saved = dispatch!(self, b => b.write_save(progress).await);
                crate::metrics::store_write("save", started.elapsed());
                saved
            }
        }
    }

    /// A workflow's journal, in seq order (empty for an unknown gid or a
    /// transaction of another mode). An entry that does not decode is
    /// [`StoreError::Corrupt`].
    pub async fn journal(&self, gid: &Gid) -> Result<Vec<JournalEntry>, StoreError> {
        dispatch!(self, b => b.journal(gid).await)
    }

    /// Stores signal `name` with `payload` for the workflow `gid`, in one
    /// local transaction that holds the transaction's row (locked on
    /// Postgres; SQLite has one writer) from the first read to the commit.
    ///
    /// Refused, with nothing stored, when `gid` is unknown, not a workflow,
    /// or final. Otherwise the signal is stored and, if the workflow is
    /// `submitted` and no live lease drives it (no owner, no expiry, or
    /// expired before `now`, as [`Store::claim`] sees it), it is made due
    /// at `now` (or kept due earlier) so that a poller claims it and its
    /// `run` takes the signal: [`SignalSent::Sent`] with `wake`. A workflow
    /// with a live owner is left alone: its owner looks for signals under
    /// the same row lock before it parks ([`Store::park`]).
    pub async fn send_signal(
        &self,
        gid: &Gid,
        name: &str,
        payload: &[u8],
        now: Millis,
    ) -> Result<SignalSent, StoreError> {
        dispatch!(self, b => b.send_signal(gid, name, payload, now).await)
    }

    /// The payloads of the signals `name` sent to `gid`, in arrival order.
    pub async fn signals(&self, gid: &Gid, name: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        dispatch!(self, b => b.signals(gid, name).await)
    }

    /// Parks a workflow that awaits signal `name` and has seen `seen` of
    /// them: writes `progress` (a [`Progress::Save`], normally with
    /// `release`, its journal maybe not empty) exactly as [`Store::write`]
    /// would, unless a signal it has not seen has arrived.
    ///
    /// In one local transaction: the transaction's row is locked (Postgres
    /// `FOR UPDATE`; SQLite has one writer) and checked against the lease
    /// ([`StoreError::Fenced`] if it is not the caller's any more); then
    /// the signals of `name` are counted, by a statement that starts after
    /// the lock is held; if there are more than `seen`, nothing is written
    /// and the result is [`Parked::SignalWaiting`] (the caller still holds
    /// its lease, and takes the signal); otherwise the fenced write is made
    /// and the result is [`Parked::Parked`].
    ///
    /// Why no signal is lost between a workflow's last look and its
    /// parking: [`Store::send_signal`] stores a signal while holding the
    /// same row lock, and decides whether to wake the workflow from the
    /// lease it reads under that lock. Either the sender locked the row
    /// first: its signal is committed before this count starts (on
    /// Postgres, READ COMMITTED gives each statement a snapshot taken as it
    /// starts; SQLite runs one write at a time), so the workflow does not
    /// park. Or this park locked it first: the sender then reads the row
    /// as this park left it, its lease given up, and makes it due (`wake`).
    ///
    /// A [`Progress::Create`] is a caller's bug: [`StoreError::Config`],
    /// nothing written.
    pub async fn park(&self, progress: &Progress, name: &str, seen: u32) -> Result<Parked, StoreError> {
        let Progress::Save { lease, transaction, .. } = progress else {
            return Err(StoreError::Config(format!(
                "park is for a running workflow's save, not the create of {}",
                progress.gid()
            )));
        };
        debug_assert_eq!(lease.gid, transaction.gid, "park: lease and transaction name different gids");
        dispatch!(self, b => b.park(progress, name, seen).await)
    }

    /// Clears lease_owner/lease_expires if still held under this lease (no error
    /// when fenced: then there is nothing of ours to release).
    pub async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        dispatch!(self, b => b.release(lease).await)
    }

    /// At start-up: every lease held by `owner` (this node id, from an earlier life
    /// of the process) is cleared and its epoch bumped so a zombie's writes are
    /// fenced. Returns how many.
    pub async fn release_all(&self, owner: &str) -> Result<u64, StoreError> {
        dispatch!(self, b => b.release_all(owner).await)
    }

    /// Gids of non-final transactions, oldest first, at most `limit`.
    pub async fn unfinished(&self, limit: u32) -> Result<Vec<Gid>, StoreError> {
        dispatch!(self, b => b.unfinished(limit).await)
    }

    /// Unfinished transactions that meet an alert's condition and hold no
    /// claim of it ([`Store::claim_alert`]), oldest first, at most `limit`
    /// of each condition: [`AlertCondition::Retries`] when the transaction
    /// or one of its ops has more than `retries` attempts,
    /// [`AlertCondition::Unfinished`] when it was created before
    /// `unfinished_before`. Retries candidates come first.
    pub async fn alert_candidates(
        &self,
        retries: u32,
        unfinished_before: Millis,
        limit: u32,
    ) -> Result<Vec<AlertCandidate>, StoreError> {
        dispatch!(self, b => b.alert_candidates(retries, unfinished_before, limit).await)
    }

    /// Claims the alert `condition` of `gid` at `at`, if nobody has: `true`
    /// if this call added the claim (the caller sends the alert), `false` if
    /// it was claimed already (by this or another instance, in this or an
    /// earlier life) or the transaction is not stored. One insert-if-absent
    /// on the `(gid, condition)` key: of concurrent claimers, one wins.
    pub async fn claim_alert(&self, gid: &Gid, condition: AlertCondition, at: Millis) -> Result<bool, StoreError> {
        dispatch!(self, b => b.claim_alert(gid, condition, at).await)
    }

    /// Gives a claim back (its alert could not be sent), so that the alert
    /// is a candidate again.
    pub async fn unclaim_alert(&self, gid: &Gid, condition: AlertCondition) -> Result<(), StoreError> {
        dispatch!(self, b => b.unclaim_alert(gid, condition).await)
    }

    /// Deletes up to `limit` transactions finished before `cutoff` (those
    /// finished longest ago first) with everything stored about them (ops,
    /// history, journal, signals, alerts), in one local transaction; returns
    /// how many. Rows another instance is deleting at the same time are
    /// skipped (Postgres `SKIP LOCKED`; SQLite has one writer).
    pub async fn delete_finished_before(&self, cutoff: Millis, limit: u32) -> Result<u64, StoreError> {
        dispatch!(self, b => b.delete_finished_before(cutoff, limit).await)
    }

    /// Content-addressed: the bytes are stored once per digest (inserted if absent)
    /// and a version row is appended. The current version of a name is its newest
    /// version row. `record.digest` must be `Digest::of(bytes)`.
    pub async fn put_module(&self, record: &ModuleRecord, bytes: &[u8]) -> Result<(), StoreError> {
        debug_assert_eq!(record.digest, Digest::of(bytes), "put_module: digest does not match bytes");
        dispatch!(self, b => b.put_module(record, bytes).await)
    }

    /// The current (newest) version of a module name.
    pub async fn module(&self, name: &ModuleName) -> Result<Option<ModuleRecord>, StoreError> {
        dispatch!(self, b => b.module(name).await)
    }

    /// The newest version row of `name` with that digest (what a transaction pinned).
    pub async fn module_version(&self, name: &ModuleName, digest: &Digest) -> Result<Option<ModuleRecord>, StoreError> {
        dispatch!(self, b => b.module_version(name, digest).await)
    }

    /// The current version of each module name, ordered by name.
    pub async fn modules(&self) -> Result<Vec<ModuleRecord>, StoreError> {
        dispatch!(self, b => b.modules().await)
    }

    /// Appends history entries (of any transactions), in order.
    pub async fn append_history(&self, entries: &[HistoryEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        dispatch!(self, b => b.append_history(entries).await)
    }

    /// The first `limit` history entries of `gid`, oldest first.
    pub async fn history(&self, gid: &Gid, limit: u32) -> Result<Vec<HistoryEntry>, StoreError> {
        dispatch!(self, b => b.history(gid, limit).await)
    }

    /// Transactions as `filter` says, newest first.
    pub async fn list_filtered(&self, filter: &ListFilter) -> Result<Vec<Transaction>, StoreError> {
        dispatch!(self, b => b.list_filtered(filter).await)
    }

    /// The bytes stored under a digest.
    pub async fn module_bytes(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, b => b.module_bytes(digest).await)
    }

    /// Subscribes `module`'s `function` to `topic`: `true` if added, `false`
    /// if it was subscribed already (its `created_at`, hence its place in the
    /// list, is kept). Whether the module exports the function is the
    /// caller's to check.
    /// Records this instance's heartbeat (inserting its row the first time).
    pub async fn heartbeat(&self, instance: &Instance) -> Result<(), StoreError> {
        dispatch!(self, b => b.heartbeat(instance).await)
    }

    /// The instances whose last heartbeat is at or after `since`, by node id.
    pub async fn instances(&self, since: Millis) -> Result<Vec<Instance>, StoreError> {
        dispatch!(self, b => b.instances(since).await)
    }

    /// Removes `node`'s row (a graceful stop).
    pub async fn forget_instance(&self, node: &str) -> Result<(), StoreError> {
        dispatch!(self, b => b.forget_instance(node).await)
    }

    pub async fn add_subscriber(
        &self,
        topic: &TopicName,
        module: &ModuleName,
        function: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        dispatch!(self, b => b.add_subscriber(topic, module, function, now).await)
    }

    /// Unsubscribes `module`'s `function` from `topic`: `true` if it was
    /// subscribed, `false` if there was nothing to remove.
    pub async fn remove_subscriber(
        &self,
        topic: &TopicName,
        module: &ModuleName,
        function: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(self, b => b.remove_subscriber(topic, module, function).await)
    }

    /// The subscribers of `topic`, oldest subscription first (then by module
    /// and function); empty if the topic has none (an unknown topic has none).
    pub async fn subscribers(&self, topic: &TopicName) -> Result<Vec<Subscriber>, StoreError> {
        dispatch!(self, b => b.subscribers(topic).await)
    }

    /// Every subscriber of every topic, by topic name, then as [`Store::subscribers`].
    pub async fn topics(&self) -> Result<Vec<Subscriber>, StoreError> {
        dispatch!(self, b => b.topics().await)
    }

    /// Test hook: runs one statement of raw SQL (for planting corrupt rows).
    #[cfg(test)]
    async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        dispatch!(self, b => b.execute_raw(sql).await)
    }

    /// Test hook: runs a query returning one integer (counting rows, reading pragmas),
    /// on the connection that writes.
    #[cfg(test)]
    async fn scalar_raw(&self, sql: &str) -> Result<i64, StoreError> {
        dispatch!(self, b => b.scalar_raw(sql).await)
    }
}

// ---------------------------------------------------------------------------
// Shared by both backends: error mapping, row decoding. The SQL itself is in
// `queries`; each backend reads rows into the structs below.
// ---------------------------------------------------------------------------

/// Maps a sqlx error to what the caller does next. Database errors (constraint,
/// serialization failure, deadlock, disk full, shutdown…) are all `Unavailable`:
/// retrying is the only safe reaction the engine has, and the message says why.
fn db_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Configuration(_) => StoreError::Config(e.to_string()),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
        e => StoreError::Unavailable(e.to_string()),
    }
}

fn migrate_error(e: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Config(format!("applying migrations: {e}"))
}

fn options_json(options: &Options) -> Result<String, StoreError> {
    serde_json::to_string(options).map_err(|e| StoreError::Corrupt(format!("encoding options: {e}")))
}

fn functions_json(functions: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(functions).map_err(|e| StoreError::Corrupt(format!("encoding functions: {e}")))
}

/// Counts and sizes are `u32`/`u64` in the model and BIGINT in the schema.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn limit_i64(limit: u32) -> i64 {
    i64::from(limit)
}

fn parse_text<T>(column: &str, text: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T, StoreError> {
    parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown {column} {text:?}")))
}

fn to_u32(column: &str, n: i64) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("{column} out of range: {n}")))
}

fn to_u64(column: &str, n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{column} out of range: {n}")))
}

/// A `history` row as stored (columns in the order of [`queries::HISTORY_COLUMNS`]).
#[derive(sqlx::FromRow)]
struct HistoryRow {
    gid: String,
    at: i64,
    kind: String,
    branch_id: Option<String>,
    op: Option<String>,
    attempt: Option<i64>,
    outcome: Option<String>,
    detail: Option<String>,
    duration_ms: Option<i64>,
    actor: Option<String>,
}

impl HistoryRow {
    fn encode(e: &HistoryEntry) -> Self {
        Self {
            gid: e.gid.to_string(),
            at: e.at.0,
            kind: e.kind.clone(),
            branch_id: e.branch_id.as_ref().map(ToString::to_string),
            op: e.op.map(|op| op.as_str().to_owned()),
            attempt: e.attempt.map(i64::from),
            outcome: e.outcome.clone(),
            detail: e.detail.clone(),
            duration_ms: e.duration_ms.map(|d| i64::try_from(d).unwrap_or(i64::MAX)),
            actor: e.actor.clone(),
        }
    }

    fn decode(self) -> Result<HistoryEntry, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("history of {}: {what}", self.gid));
        Ok(HistoryEntry {
            gid: Gid::parse(&self.gid).map_err(|e| corrupt(&e.0))?,
            at: Millis(self.at),
            kind: self.kind.clone(),
            branch_id: self.branch_id.clone().map(BranchId::from_trusted),
            op: match &self.op {
                Some(op) => Some(parse_text("op", op, Op::parse)?),
                None => None,
            },
            attempt: self.attempt.map(|a| u32::try_from(a).unwrap_or(u32::MAX)),
            outcome: self.outcome.clone(),
            detail: self.detail.clone(),
            duration_ms: self.duration_ms.map(|d| u64::try_from(d).unwrap_or_default()),
            actor: self.actor.clone(),
        })
    }
}

/// A `transactions` row as stored, before decoding into the model (columns
/// in the order of [`queries::TRANSACTION_COLUMNS`]).
#[derive(sqlx::FromRow)]
struct TransactionRow {
    gid: String,
    mode: String,
    status: String,
    options: String,
    next_due: Option<i64>,
    attempts: i64,
    last_error: Option<String>,
    rollback_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
    lease_owner: Option<String>,
    lease_expires: Option<i64>,
    epoch: i64,
}

impl TransactionRow {
    fn decode(self) -> Result<Transaction, StoreError> {
        let options = serde_json::from_str::<Options>(&self.options)
            .map_err(|e| StoreError::Corrupt(format!("options of {}: {e}", self.gid)))?;
        Ok(Transaction {
            mode: parse_text("mode", &self.mode, Mode::parse)?,
            status: parse_text("status", &self.status, Status::parse)?,
            options,
            next_due: self.next_due.map(Millis),
            attempts: to_u32("attempts", self.attempts)?,
            last_error: self.last_error,
            rollback_reason: self.rollback_reason,
            created_at: Millis(self.created_at),
            updated_at: Millis(self.updated_at),
            finished_at: self.finished_at.map(Millis),
            lease_owner: self.lease_owner,
            lease_expires: self.lease_expires.map(Millis),
            epoch: self.epoch,
            gid: Gid::from_trusted(self.gid),
        })
    }
}

/// A `branch_ops` row as stored (columns in the order of [`queries::OP_COLUMNS`]).
#[derive(sqlx::FromRow)]
struct OpRow {
    branch_id: String,
    op: String,
    module: String,
    digest: String,
    database: String,
    function: String,
    payload: Vec<u8>,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    updated_at: i64,
}

impl OpRow {
    fn decode(self) -> Result<BranchOp, StoreError> {
        Ok(BranchOp {
            op: parse_text("op", &self.op, Op::parse)?,
            status: parse_text("op status", &self.status, OpStatus::parse)?,
            attempts: to_u32("op attempts", self.attempts)?,
            branch_id: BranchId::from_trusted(self.branch_id),
            target: Target {
                module: ModuleName::from_trusted(self.module),
                digest: Digest::from_trusted(self.digest),
                database: DatabaseName::from_trusted(self.database),
                function: self.function,
            },
            payload: self.payload,
            last_error: self.last_error,
            updated_at: Millis(self.updated_at),
        })
    }
}

/// A `module_versions` row as stored (columns in the order of [`queries::MODULE_COLUMNS`]).
#[derive(sqlx::FromRow)]
struct ModuleRow {
    name: String,
    digest: String,
    world: String,
    functions: String,
    database: String,
    instance_reuse: Option<i64>,
    size: i64,
    created_at: i64,
    http_hosts: String,
}

impl ModuleRow {
    fn decode(self) -> Result<ModuleRecord, StoreError> {
        let functions = serde_json::from_str::<Vec<String>>(&self.functions)
            .map_err(|e| StoreError::Corrupt(format!("functions of module {}: {e}", self.name)))?;
        let http_hosts = serde_json::from_str::<Vec<String>>(&self.http_hosts)
            .map_err(|e| StoreError::Corrupt(format!("http_hosts of module {}: {e}", self.name)))?;
        Ok(ModuleRecord {
            size: to_u64("module size", self.size)?,
            name: ModuleName::from_trusted(self.name),
            digest: Digest::from_trusted(self.digest),
            world: self.world,
            functions,
            database: DatabaseName::from_trusted(self.database),
            instance_reuse: self
                .instance_reuse
                .map(|n| u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("instance_reuse {n} out of range"))))
                .transpose()?,
            created_at: Millis(self.created_at),
            http_hosts,
        })
    }
}

/// A journal entry as stored: its JSON text.
fn journal_json(entry: &JournalEntry) -> Result<String, StoreError> {
    serde_json::to_string(entry).map_err(|e| StoreError::Corrupt(format!("encoding journal entry {}: {e}", entry.seq)))
}

/// A `journal` row (seq, entry) decoded; its seq must be the entry's own.
fn decode_journal(gid: &Gid, seq: i64, text: &str) -> Result<JournalEntry, StoreError> {
    let entry = serde_json::from_str::<JournalEntry>(text)
        .map_err(|e| StoreError::Corrupt(format!("journal entry {seq} of {gid}: {e}")))?;
    if i64::from(entry.seq) != seq {
        return Err(StoreError::Corrupt(format!("journal entry {seq} of {gid} says it is entry {}", entry.seq)));
    }
    Ok(entry)
}

/// What a journal entry about to be appended found at its (gid, seq): the
/// same text is a retried save, another one a bug that must not pass.
fn journal_conflict(gid: &Gid, entry: &JournalEntry, ours: &str, stored: Option<&str>) -> Result<(), StoreError> {
    match stored {
        Some(stored) if stored == ours => Ok(()),
        // Not the texts themselves: they hold payloads, and may be large.
        Some(_) => Err(StoreError::Corrupt(format!(
            "journal entry {} of {gid} is stored already with other content: its run did not replay the same calls",
            entry.seq
        ))),
        None => Err(StoreError::Corrupt(format!("journal entry {} of {gid} conflicted but is not stored", entry.seq))),
    }
}

/// The transaction row as [`Store::send_signal`] and [`Store::park`] read it
/// under its lock (columns of [`queries::Sql::signal_target`]).
#[derive(sqlx::FromRow)]
struct SignalTargetRow {
    mode: String,
    status: String,
    lease_owner: Option<String>,
    lease_expires: Option<i64>,
    epoch: i64,
}

impl SignalTargetRow {
    /// Whether a signal is stored for this transaction at `now`: a refusal,
    /// or [`SignalSent::Sent`] saying whether to wake it.
    fn signal_verdict(&self, now: Millis) -> Result<SignalSent, StoreError> {
        let mode = parse_text("mode", &self.mode, Mode::parse)?;
        let status = parse_text("status", &self.status, Status::parse)?;
        if mode != Mode::Workflow {
            return Ok(SignalSent::NotWorkflow(mode));
        }
        if status.is_final() {
            return Ok(SignalSent::Finished(status));
        }
        // As `claim` sees a lease it may take.
        let unleased = self.lease_owner.is_none() || self.lease_expires.is_none_or(|expires| expires < now.0);
        Ok(SignalSent::Sent { wake: status == Status::Submitted && unleased })
    }

    /// Whether `lease` still holds the row (the condition of the fenced update).
    fn held_by(&self, lease: &Lease) -> bool {
        self.epoch == lease.epoch && self.lease_owner.as_deref() == Some(lease.owner.as_str())
    }
}

/// Decodes a loaded transaction and its ops.
fn decode_state(tx: TransactionRow, ops: Vec<OpRow>) -> Result<TransactionState, StoreError> {
    Ok(TransactionState {
        transaction: tx.decode()?,
        ops: ops.into_iter().map(OpRow::decode).collect::<Result<_, _>>()?,
    })
}

/// A claimed row as returned by the claiming statement, before sorting.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: i64,
    gid: String,
    epoch: i64,
    next_due: Option<i64>,
}

/// Leases for claimed rows, oldest `next_due` first (RETURNING has no order).
fn leases_oldest_first(mut rows: Vec<ClaimedRow>, owner: &str) -> Vec<Lease> {
    rows.sort_by_key(|r| (r.next_due, r.id));
    rows.into_iter().map(|r| Lease { gid: Gid::from_trusted(r.gid), owner: owner.to_owned(), epoch: r.epoch }).collect()
}
