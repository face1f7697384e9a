//! The business databases branches run against (SQLite, Postgres or
//! MySQL/MariaDB, bound by name with `--database NAME=URL`), the local transaction a branch's SQL runs
//! in, and the sub-transaction barrier inside that transaction.
//!
//! [`Database::run_branch`] opens a local transaction, enters the barrier,
//! hands the transaction to the caller's work (the guest), and commits only
//! if the work says so, together with the transaction's progress when the
//! store shares the database (co-location). Guest SQL reaches the database
//! only through [`LocalTx::execute`] and [`LocalTx::query`], confined by the
//! database's own machinery: on SQLite the authorizer, limits and a progress
//! handler ([`crate::sqlite::guest`]); on Postgres a login role of its own
//! that holds no privilege beyond the business schema (see `postgres`); on
//! MySQL an account of its own and an allowlist of statements (see `mysql`).
//!
//! This module must not know about guests, Wasm or the coordinator's own
//! tables (co-located progress is written by [`crate::store`]), and must never
//! let guest SQL end the transaction early: the barrier's exactly-once
//! promise rests on the one commit the host makes.
//!
//! # Layout
//!
//! - `value`: values, rows and errors crossing the guest boundary.
//! - `barrier`: the barrier key and verdict, and the SQLite barrier table.
//! - `statement`: the first-keyword checks on Postgres and MySQL guest SQL.
//! - `step_output`: workflow steps' outputs, kept beside the barrier; the SQLite table.
//! - `sqlite`, `postgres`, `mysql`: each backend's connections and local transaction.
//!
//! # Parameters
//!
//! Guests write `$1, $2, …` on both backends (SQLite also takes `?N` and `?`;
//! do not mix `?` with numbered ones). A reference with no value (or `$0`) is
//! an error on both. Values bind as BOOL, INT8, FLOAT8, TEXT, BYTEA and an
//! untyped NULL; see `value` for the casts a guest may need on Postgres
//! (`$1::uuid`).
//!
//! On MySQL guests write `$1, $2, …` too (`placeholders` makes them MySQL's
//! `?`, in order of use, so one value may be used twice), or `?` themselves,
//! not both in one statement; see `value` for how
//! values bind and decode there.

mod barrier;
mod kv;
mod mysql;
mod placeholders;
mod postgres;
mod redis;
mod sqlite;
mod statement;
mod step_output;
mod value;

#[cfg(test)]
mod redis_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

pub use barrier::{BarrierKey, BarrierVerdict};
pub use kv::{KvAnswer, KvOp, SetCondition};
pub use value::{DbError, Rows, Value};

use crate::model::{BranchId, DatabaseName, Gid};
use crate::store::Progress;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How work inside a local transaction ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<T> {
    Commit(T),
    Rollback(T),
}

impl<T> Decision<T> {
    pub fn into_inner(self) -> T {
        match self {
            Decision::Commit(v) | Decision::Rollback(v) => v,
        }
    }
}

/// Work run inside a local transaction: it gets the transaction and hands it
/// back (or drops it, which rolls back) together with its decision.
pub type TxWork<T> = Box<dyn FnOnce(LocalTx) -> BoxFuture<'static, (Option<LocalTx>, Decision<T>)> + Send>;

/// What [`Database::run_branch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchRun<T> {
    /// The barrier let the op run; the work's decision was carried out.
    Ran(Decision<T>),
    /// The op ran before (or is a null compensation): the work did not run,
    /// and the barrier rows (with any progress) were committed.
    Skipped(BarrierVerdict),
}

/// Why a branch's local transaction did not carry out the work's decision.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    /// The database refused or failed (begin, barrier, commit, deadline): retry later.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The co-located progress was refused: the lease is stale
    /// ([`crate::store::StoreError::Fenced`]) or the gid is taken
    /// ([`crate::store::StoreError::GidTaken`]). Nothing was committed.
    #[error("{0}")]
    Progress(ProgressRefused),
}

/// Which way the co-located progress was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProgressRefused {
    #[error("the transaction's lease is held by another owner; nothing was committed")]
    Fenced,
    #[error("the transaction's gid is taken; nothing was committed")]
    GidTaken,
}

impl RunError {
    /// A store error from writing the progress: a refusal, or a database error.
    fn from_store(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Fenced { .. } => RunError::Progress(ProgressRefused::Fenced),
            StoreError::GidTaken { .. } => RunError::Progress(ProgressRefused::GidTaken),
            e => RunError::Db(DbError::host(format!("recording the transaction's progress: {e}"))),
        }
    }
}

/// What guest SQL may cost one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbLimits {
    /// Rows all of an invocation's queries may return together.
    pub max_rows: u64,
    /// Bytes of values all of an invocation's queries may return together.
    pub max_bytes: u64,
    /// On SQLite, how long one branch may hold its database's single writer.
    pub sqlite_hold: Duration,
    /// Connections to each Postgres (and each MySQL) business database.
    pub postgres_connections: u32,
}

impl Default for DbLimits {
    fn default() -> Self {
        Self { max_rows: 10_000, max_bytes: 16 << 20, sqlite_hold: Duration::from_secs(1), postgres_connections: 16 }
    }
}

/// Why a business database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The URL is malformed or names an unsupported scheme. Fix the configuration.
    #[error("invalid database URL: {0}")]
    Config(String),
    /// The database cannot be reached, or set up for guests.
    #[error("{0}")]
    Unavailable(String),
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
    pub async fn connect(urls: &BTreeMap<DatabaseName, String>, limits: &DbLimits) -> Result<Databases, DatabaseError> {
        let mut by_name: BTreeMap<DatabaseName, Database> = BTreeMap::new();
        for (name, url) in urls {
            let named = |e| DatabaseError::Named {
                name: name.clone(),
                url: crate::config::redact_url(url),
                source: Box::new(e),
            };
            let db = Database::connect_named(url, Some(name), limits).await.map_err(named)?;
            if let Kind::Redis(redis) = &db.kind {
                let (place, prefix) = redis.keyspace();
                let shared = by_name.iter().find(|(_, other)| match &other.kind {
                    Kind::Redis(o) => {
                        o.keyspace().0 == place
                            && (o.keyspace().1.starts_with(prefix) || prefix.starts_with(o.keyspace().1))
                    }
                    _ => false,
                });
                if let Some((other, _)) = shared {
                    return Err(named(DatabaseError::Config(format!(
                        "its keys (prefix {prefix:?} on {place}) overlap those of database {other}: give each binding \
                         a prefix of its own (?prefix=…)"
                    ))));
                }
            }
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

    /// The bound names with their kinds ([`Database::kind`]), sorted by name.
    pub fn kinds(&self) -> Vec<(DatabaseName, &'static str)> {
        self.by_name.iter().map(|(name, db)| (name.clone(), db.kind())).collect()
    }

    pub async fn close(&self) {
        for db in self.by_name.values() {
            db.close().await;
        }
    }
}

/// One business database. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Sqlite(sqlite::SqliteDb),
    Postgres(postgres::PgDb),
    Mysql(mysql::MyDb),
    Redis(redis::RedisDb),
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").field("kind", &self.kind()).finish_non_exhaustive()
    }
}

impl Database {
    /// Opens `sqlite://…`, `sqlite:path`, `postgres://…`, or `mysql://…` /
    /// `mariadb://…`.
    ///
    /// A SQLite file and its parent directory are created when missing (unless
    /// the URL sets `mode=rw`). On Postgres the URL's user must be able to
    /// create the `wasmtx` schema and, the first time, the guest role (see
    /// `postgres.rs`); the barrier table is created if absent. On MySQL the
    /// URL's account must be able to create databases, users and procedures
    /// (see `mysql.rs`); the business database is created if absent.
    pub async fn connect(url: &str, limits: &DbLimits) -> Result<Database, DatabaseError> {
        Self::connect_named(url, None, limits).await
    }

    /// [`Database::connect`] for the binding `name`; `redis://…` takes its
    /// default key prefixes from the name (see `redis.rs`).
    pub async fn connect_named(
        url: &str,
        name: Option<&DatabaseName>,
        limits: &DbLimits,
    ) -> Result<Database, DatabaseError> {
        let kind = if url.starts_with("sqlite:") {
            Kind::Sqlite(sqlite::SqliteDb::connect(url, limits.clone()).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Kind::Postgres(postgres::PgDb::connect(url, limits.clone()).await?)
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Kind::Mysql(mysql::MyDb::connect(url, limits.clone()).await?)
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            Kind::Redis(redis::RedisDb::connect(url, name.map(DatabaseName::as_str), limits.clone()).await?)
        } else {
            let scheme = url.split_once(':').map_or("(none)", |(s, _)| s);
            return Err(DatabaseError::Config(format!(
                "unsupported scheme {scheme:?}: use sqlite:PATH, sqlite://PATH, postgres://…, mysql://… or redis://…"
            )));
        };
        Ok(Database { kind })
    }

    /// "sqlite", "postgres", "mysql" or "redis".
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Sqlite(_) => "sqlite",
            Kind::Postgres(_) => "postgres",
            Kind::Mysql(_) => "mysql",
            Kind::Redis(_) => "redis",
        }
    }

    /// The WIT interface guests reach a database of `kind` through: `kv`
    /// for Redis, `db` (SQL) for the others.
    pub fn interface_of(kind: &str) -> &'static str {
        if kind == "redis" { "kv" } else { "db" }
    }

    /// Runs one branch op in its own local transaction: enters the barrier for
    /// `key`, then, if the op is to run, `work` with the transaction. A
    /// [`Decision::Commit`] commits the business writes, the barrier rows and
    /// `progress` together; a skipped op commits its barrier rows and
    /// `progress`. Everything happens by `deadline`, or the transaction is
    /// rolled back and the error says so.
    ///
    /// `progress` may only be given for a database that shares the store's
    /// file or database ([`Database::colocated_with`]).
    pub async fn run_branch<T: Send + 'static>(
        &self,
        key: BarrierKey,
        deadline: Instant,
        progress: Option<Progress>,
        work: TxWork<T>,
    ) -> Result<BranchRun<T>, RunError> {
        match &self.kind {
            Kind::Sqlite(db) => db.run_branch(key, deadline, progress, work).await,
            Kind::Postgres(db) => db.run_branch(key, deadline, progress, work).await,
            Kind::Mysql(db) => db.run_branch(key, deadline, progress, work).await,
            Kind::Redis(db) => db.run_branch(key, deadline, progress, work).await,
        }
    }

    /// Why this database cannot run XA branches (SQLite; Postgres with
    /// `max_prepared_transactions = 0`; MySQL whose URL's account cannot run
    /// `XA RECOVER`), or `None` when it can.
    pub fn xa_refusal(&self) -> Option<String> {
        match &self.kind {
            Kind::Sqlite(_) => Some(
                "it is SQLite, which cannot keep a transaction prepared across connections and restarts; XA \
                 branches need a Postgres business database"
                    .to_owned(),
            ),
            Kind::Postgres(db) => db.xa_refusal(),
            Kind::Mysql(db) => db.xa_refusal(),
            Kind::Redis(_) => Some(
                "it is Redis, which cannot prepare a transaction; use saga, TCC or messages with a Redis database"
                    .to_owned(),
            ),
        }
    }

    /// An XA action: like [`Database::run_branch`] (no progress), but a
    /// [`Decision::Commit`] ends the local transaction with `PREPARE
    /// TRANSACTION` (MySQL: `XA PREPARE`) under the branch's xid ([`xid`];
    /// on MySQL see `mysql::Xid`), to be finished by
    /// [`Database::finish_prepared`]. An action found already prepared is
    /// [`BranchRun::Skipped`] as a duplicate.
    pub async fn run_branch_prepared<T: Send + 'static>(
        &self,
        key: BarrierKey,
        deadline: Instant,
        work: TxWork<T>,
    ) -> Result<BranchRun<T>, RunError> {
        match &self.kind {
            Kind::Postgres(db) => db.run_branch_prepared(key, deadline, work).await,
            Kind::Mysql(db) => db.run_branch_prepared(key, deadline, work).await,
            Kind::Sqlite(_) | Kind::Redis(_) => Err(DbError::host(self.xa_refusal().unwrap_or_default()).into()),
        }
    }

    /// XA's phase 2 for `key`'s branch: its op is `commit` (`COMMIT
    /// PREPARED`; MySQL: `XA COMMIT`) or `rollback` (`ROLLBACK PREPARED`;
    /// MySQL: `XA ROLLBACK`; then the barrier's rollback row so that a late
    /// action does nothing). Safe to repeat.
    pub async fn finish_prepared(&self, key: BarrierKey, deadline: Instant) -> Result<(), DbError> {
        match &self.kind {
            Kind::Postgres(db) => db.finish_prepared(key, deadline).await,
            Kind::Mysql(db) => db.finish_prepared(key, deadline).await,
            Kind::Sqlite(_) | Kind::Redis(_) => Err(DbError::host(self.xa_refusal().unwrap_or_default())),
        }
    }

    /// The XA branches prepared in this database more than `older_than` ago
    /// and still prepared, as (gid, branch id). MySQL keeps no prepare time:
    /// see `mysql::MyDb::prepared_branches` for the age it takes instead
    /// (never more than the real one).
    pub async fn prepared_branches(&self, older_than: Duration) -> Result<Vec<(Gid, BranchId)>, DbError> {
        match &self.kind {
            Kind::Postgres(db) => {
                Ok(db.prepared_branches(older_than).await?.iter().filter_map(|x| parse_xid(x)).collect())
            }
            Kind::Mysql(db) => db.prepared_branches(older_than).await,
            Kind::Sqlite(_) | Kind::Redis(_) => Ok(Vec::new()),
        }
    }

    /// Commits or rolls back the prepared transaction of an XA branch that
    /// no driver will finish (see `branch::sweep_prepared`); false if it
    /// was no longer prepared.
    pub async fn resolve_prepared(&self, gid: &Gid, branch_id: &BranchId, commit: bool) -> Result<bool, DbError> {
        match &self.kind {
            Kind::Postgres(db) => {
                db.end_prepared(&xid(gid, branch_id), commit, Instant::now() + Duration::from_secs(30)).await
            }
            Kind::Mysql(db) => db.resolve_prepared(gid, branch_id, commit).await,
            Kind::Sqlite(_) | Kind::Redis(_) => Ok(false),
        }
    }

    /// A message's back-check (DTM's query-prepared) for `key` (op `msg`):
    /// writes the barrier row `(gid, branch, msg)` with reason `rollback`
    /// unless the local transaction's own row is there, and says which it
    /// found. `true`: the local transaction committed. `false`: it did not,
    /// and now never will (its barrier insert would find the row taken).
    /// Waits for a local transaction still running on that row.
    pub async fn query_prepared(&self, key: BarrierKey, deadline: Instant) -> Result<bool, DbError> {
        match &self.kind {
            Kind::Sqlite(db) => db.query_prepared(key, deadline).await,
            Kind::Postgres(db) => db.query_prepared(key, deadline).await,
            Kind::Mysql(db) => db.query_prepared(key, deadline).await,
            Kind::Redis(db) => db.query_prepared(key, deadline).await,
        }
    }

    /// The output recorded for a branch by [`LocalTx::record_output`] in a
    /// local transaction that committed, read as the host; `None` when no
    /// committed transaction recorded one. On SQLite the read is a job on
    /// the file's writer (like [`Database::query_prepared`]): it waits for a
    /// local transaction in flight, and answers once what it read is durable.
    pub async fn step_output(&self, gid: &Gid, branch_id: &BranchId) -> Result<Option<Vec<u8>>, DbError> {
        match &self.kind {
            Kind::Sqlite(db) => db.step_output(gid, branch_id).await,
            Kind::Postgres(db) => db.step_output(gid, branch_id).await,
            Kind::Mysql(db) => db.step_output(gid, branch_id).await,
            Kind::Redis(db) => db.step_output(gid, branch_id).await,
        }
    }

    /// Runs `work` in a local transaction of its own, without barrier (a
    /// direct call); commits only on [`Decision::Commit`].
    pub async fn run_local<T: Send + 'static>(
        &self,
        deadline: Instant,
        work: TxWork<T>,
    ) -> Result<Decision<T>, DbError> {
        match &self.kind {
            Kind::Sqlite(db) => db.run_local(deadline, work).await,
            Kind::Postgres(db) => db.run_local(deadline, work).await,
            Kind::Mysql(db) => db.run_local(deadline, work).await,
            Kind::Redis(db) => db.run_local(deadline, work).await,
        }
    }

    /// An interactive local transaction (statements sent one at a time until
    /// [`LocalTx::commit`] or [`LocalTx::rollback`]), for tools and tests. On
    /// SQLite it holds the file's writer until it ends (at most a minute).
    pub async fn begin(&self) -> Result<LocalTx, DbError> {
        match self.interactive(None).await? {
            (Some(tx), _) => Ok(tx),
            (None, _) => Err(DbError::host("the transaction did not start".to_owned())),
        }
    }

    /// [`Database::begin`] behind the barrier of `key`: the transaction when the
    /// op is to run, or the verdict that skipped it (its rows committed).
    pub async fn begin_branch(&self, key: BarrierKey) -> Result<(Option<LocalTx>, BarrierVerdict), DbError> {
        self.interactive(Some(key)).await
    }

    async fn interactive(&self, key: Option<BarrierKey>) -> Result<(Option<LocalTx>, BarrierVerdict), DbError> {
        const INTERACTIVE_DEADLINE: Duration = Duration::from_secs(60);
        let deadline = Instant::now() + INTERACTIVE_DEADLINE;
        let (commands, mut queue) = mpsc::channel::<Command>(1);
        let (outcome_tx, outcome) = oneshot::channel();
        let (started_tx, started) = oneshot::channel::<()>();
        let work: TxWork<()> = Box::new(move |mut tx: LocalTx| {
            Box::pin(async move {
                let _ = started_tx.send(());
                while let Some(command) = queue.recv().await {
                    match command {
                        Command::Execute(sql, params, reply) => {
                            let _ = reply.send(tx.execute(&sql, &params).await);
                        }
                        Command::Query(sql, params, reply) => {
                            let _ = reply.send(tx.query(&sql, &params).await);
                        }
                        Command::RecordOutput(key, output, reply) => {
                            let _ = reply.send(tx.record_output(&key, &output).await);
                        }
                        Command::Kv(op, reply) => {
                            let _ = reply.send(tx.kv(op).await);
                        }
                        Command::End(true) => return (Some(tx), Decision::Commit(())),
                        Command::End(false) => break,
                    }
                }
                (Some(tx), Decision::Rollback(()))
            })
        });
        let db = self.clone();
        let (skipped_tx, skipped) = oneshot::channel::<Result<BarrierVerdict, DbError>>();
        tokio::spawn(async move {
            let result = match key {
                None => db.run_local(deadline, work).await,
                Some(key) => match db.run_branch(key, deadline, None, work).await {
                    Ok(BranchRun::Ran(decision)) => Ok(decision),
                    Ok(BranchRun::Skipped(verdict)) => {
                        let _ = skipped_tx.send(Ok(verdict));
                        return;
                    }
                    Err(e) => Err(DbError::host(e.to_string())),
                },
            };
            let _ = outcome_tx.send(result);
        });
        let mut outcome = outcome;
        tokio::select! {
            biased;
            Ok(()) = started => {
                let tx = LocalTx::new(TxInner::Remote(RemoteTx { commands, outcome: Some(outcome) }), &DbLimits::default());
                Ok((Some(tx), BarrierVerdict::Proceed))
            }
            Ok(verdict) = skipped => Ok((None, verdict?)),
            Ok(result) = &mut outcome => match result {
                Err(e) => Err(e),
                Ok(_) => Err(DbError::host("the transaction ended before it started".to_owned())),
            },
            else => Err(DbError::host("the transaction could not start".to_owned())),
        }
    }

    /// Whether the database lives where the store does, so that a branch
    /// commit can carry the transaction's progress.
    pub fn colocated_with(&self, store: &crate::store::Store) -> bool {
        match &self.kind {
            Kind::Sqlite(db) => store.sqlite_file().is_some_and(|f| f.same_file(db.file())),
            Kind::Postgres(db) => store.postgres_place().is_some_and(|p| p == db.place()),
            // The store has no MySQL or Redis backend.
            Kind::Mysql(_) | Kind::Redis(_) => false,
        }
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        match &self.kind {
            Kind::Sqlite(_) => {}
            Kind::Postgres(db) => db.close().await,
            Kind::Mysql(db) => db.close().await,
            Kind::Redis(db) => db.close().await,
        }
    }
}

#[cfg(test)]
impl Database {
    /// The barrier rows of a branch as `(op, reason)`, sorted by op, read as the host.
    pub(crate) async fn barrier_rows(&self, gid: &str, branch: &str) -> Vec<(String, String)> {
        match &self.kind {
            Kind::Sqlite(db) => db.barrier_rows(gid, branch).await,
            Kind::Postgres(db) => db.barrier_rows(gid, branch).await,
            Kind::Mysql(db) => db.barrier_rows(gid, branch).await,
            Kind::Redis(db) => db.barrier_rows(gid, branch).await,
        }
    }
}

/// The name an XA branch's local transaction is prepared under:
/// `wasmtx:<gid>:<branch id>` (at most 7 + 128 + 1 + 3 bytes, under
/// Postgres's 200; gids are `[A-Za-z0-9_.:-]`, so it needs no quoting).
pub fn xid(gid: &Gid, branch_id: &BranchId) -> String {
    format!("wasmtx:{gid}:{branch_id}")
}

/// The gid and branch id of an xid made by [`xid`].
pub fn parse_xid(xid: &str) -> Option<(Gid, BranchId)> {
    let (gid, branch) = xid.strip_prefix("wasmtx:")?.rsplit_once(':')?;
    let index = branch.parse::<usize>().ok()?.checked_sub(1)?;
    let branch_id = BranchId::from_index(index);
    (branch_id.as_str() == branch).then_some(())?;
    Some((Gid::parse(gid).ok()?, branch_id))
}

/// One open local transaction on a business database, as a guest sees it
/// (through the sandbox's `db` import). Dropping it rolls back.
pub struct LocalTx {
    inner: TxInner,
    /// What the invocation's queries may still return.
    budget: crate::sqlite::GuestLimits,
}

enum TxInner {
    Sqlite(sqlite::SqliteTx),
    Postgres(postgres::PgTx),
    Mysql(mysql::MyTx),
    Redis(redis::RedisTx),
    /// Statements forwarded to a transaction held by a task (see [`Database::begin`]).
    Remote(RemoteTx),
}

struct RemoteTx {
    commands: mpsc::Sender<Command>,
    outcome: Option<oneshot::Receiver<Result<Decision<()>, DbError>>>,
}

enum Command {
    Execute(String, Vec<Value>, oneshot::Sender<Result<u64, DbError>>),
    Query(String, Vec<Value>, oneshot::Sender<Result<Rows, DbError>>),
    RecordOutput(BarrierKey, Vec<u8>, oneshot::Sender<Result<(), DbError>>),
    Kv(KvOp, oneshot::Sender<Result<KvAnswer, DbError>>),
    End(bool),
}

impl fmt::Debug for LocalTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner {
            TxInner::Sqlite(_) => "sqlite",
            TxInner::Postgres(_) => "postgres",
            TxInner::Mysql(_) => "mysql",
            TxInner::Redis(_) => "redis",
            TxInner::Remote(_) => "remote",
        };
        f.debug_struct("LocalTx").field("kind", &kind).finish_non_exhaustive()
    }
}

fn not_sql() -> DbError {
    DbError::host("this module's database is Redis: reach it through the `kv` interface, not `db`".to_owned())
}

fn ended() -> DbError {
    DbError::host("the transaction has ended".to_owned())
}

impl LocalTx {
    fn new(inner: TxInner, limits: &DbLimits) -> LocalTx {
        LocalTx { inner, budget: crate::sqlite::GuestLimits { rows: limits.max_rows, bytes: limits.max_bytes } }
    }

    /// Runs one statement with positional parameters; returns the rows affected.
    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => tx.execute(sql, params),
            TxInner::Postgres(tx) => tx.execute(sql, params).await,
            TxInner::Mysql(tx) => tx.execute(sql, params).await,
            TxInner::Redis(_) => Err(not_sql()),
            TxInner::Remote(tx) => {
                let (reply, answer) = oneshot::channel();
                let command = Command::Execute(sql.to_owned(), params.to_vec(), reply);
                tx.commands.send(command).await.map_err(|_| ended())?;
                answer.await.map_err(|_| ended())?
            }
        }
    }

    /// Runs a query with positional parameters; returns its rows, counted
    /// against the invocation's result limits.
    pub async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let rows = match &mut self.inner {
            TxInner::Sqlite(tx) => tx.query(sql, params, &self.budget)?,
            TxInner::Postgres(tx) => tx.query(sql, params, &self.budget).await?,
            TxInner::Mysql(tx) => tx.query(sql, params, &self.budget).await?,
            TxInner::Redis(_) => return Err(not_sql()),
            TxInner::Remote(tx) => {
                let (reply, answer) = oneshot::channel();
                let command = Command::Query(sql.to_owned(), params.to_vec(), reply);
                tx.commands.send(command).await.map_err(|_| ended())?;
                answer.await.map_err(|_| ended())??
            }
        };
        self.budget.rows = self.budget.rows.saturating_sub(rows.values.len() as u64);
        let bytes: u64 = rows.values.iter().flatten().map(Value::size).sum();
        self.budget.bytes = self.budget.bytes.saturating_sub(bytes);
        Ok(rows)
    }

    /// Records `output` as the output of `key`'s branch (a workflow step),
    /// in this transaction: it commits or rolls back with the branch's writes
    /// and barrier row, and once committed [`Database::step_output`] reads it.
    /// A host write that guest SQL cannot reach or forge (SQLite: a host
    /// statement the authorizer does not judge; Postgres: the host-keyed
    /// function `wasmtx.record_output`; MySQL: the host-keyed procedure
    /// `wasmtx_<db>.record_output`). Call it at most once per branch, in
    /// the transaction [`Database::run_branch`] began for `key` after the
    /// barrier let the op run; an output already committed for the branch is
    /// kept, not replaced.
    pub async fn record_output(&mut self, key: &BarrierKey, output: &[u8]) -> Result<(), DbError> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => tx.record_output(key, output),
            TxInner::Postgres(tx) => tx.record_output(key, output).await,
            TxInner::Mysql(tx) => tx.record_output(key, output).await,
            TxInner::Redis(tx) => {
                tx.record_output(key, output);
                Ok(())
            }
            TxInner::Remote(tx) => {
                let (reply, answer) = oneshot::channel();
                let command = Command::RecordOutput(key.clone(), output.to_vec(), reply);
                tx.commands.send(command).await.map_err(|_| ended())?;
                answer.await.map_err(|_| ended())?
            }
        }
    }

    /// Runs one operation of the `kv` interface (a Redis database only);
    /// what it reads counts against the invocation's result limits.
    pub async fn kv(&mut self, op: KvOp) -> Result<KvAnswer, DbError> {
        match &mut self.inner {
            TxInner::Redis(tx) => tx.apply(op, &mut self.budget).await,
            TxInner::Remote(tx) => {
                let (reply, answer) = oneshot::channel();
                tx.commands.send(Command::Kv(op, reply)).await.map_err(|_| ended())?;
                answer.await.map_err(|_| ended())?
            }
            TxInner::Sqlite(_) | TxInner::Postgres(_) | TxInner::Mysql(_) => Err(DbError::host(
                "this module's database is an SQL database: reach it through the `db` interface, not `kv`".to_owned(),
            )),
        }
    }

    /// Commits an interactive transaction ([`Database::begin`]) and waits until
    /// the commit is durable. A transaction handed to work by
    /// [`Database::run_branch`] is ended by the work's decision instead.
    pub async fn commit(self) -> Result<(), DbError> {
        self.end(true).await
    }

    /// Rolls an interactive transaction back.
    pub async fn rollback(self) -> Result<(), DbError> {
        self.end(false).await
    }

    async fn end(self, commit: bool) -> Result<(), DbError> {
        let TxInner::Remote(mut tx) = self.inner else {
            return Err(DbError::host("this transaction is ended by the host, not by its user".to_owned()));
        };
        let _ = tx.commands.send(Command::End(commit)).await;
        let outcome = tx.outcome.take().ok_or_else(ended)?.await.map_err(|_| ended())??;
        match (commit, outcome) {
            (true, Decision::Commit(())) | (false, Decision::Rollback(())) => Ok(()),
            (true, Decision::Rollback(())) => Err(DbError::host("the transaction was rolled back".to_owned())),
            (false, Decision::Commit(())) => Err(DbError::host("the transaction was committed".to_owned())),
        }
    }
}
