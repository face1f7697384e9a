//! One SQLite file, shared by everything in the process that uses it (the
//! coordinator store and any business database bound to the same path).
//!
//! - **One writer.** A thread owns the file's only read-write connection.
//!   Every write is a job that runs in a savepoint of its own
//!   (`SAVEPOINT wasmtx_job` … `RELEASE`), so one job's failure or rollback
//!   never touches another's.
//! - **Group commit.** Jobs that queue up while the writer is busy share one
//!   transaction (a batch): each job's savepoint is released into it, and the
//!   batch commits once when the writer runs out of queued jobs (or after
//!   [`MAX_BATCH`]), so a page many jobs touch is written to the log once.
//!   A statement that ends the transaction itself (a guest's
//!   `ON CONFLICT ROLLBACK` from an old schema, a write interrupted at its
//!   deadline) takes the batch's earlier jobs with it: they are told their
//!   commit failed, and may retry. Commits are made without an fsync each
//!   (`synchronous = NORMAL` in WAL mode); the writer hands each committed
//!   batch to the file's syncer thread and goes on with the next jobs. The syncer fsyncs the WAL once
//!   for every batch handed over since its last fsync began, and only then
//!   tells their jobs that they committed. A caller therefore hears
//!   "committed" only once its commit is on disk, exactly as with
//!   `synchronous = FULL`, but at one fsync per batch, and the writer never
//!   waits for the disk. A batch is whatever arrived while the previous one
//!   ran: no waiting at low load. A failed fsync is final for the file (the
//!   kernel may have dropped the pages): every later write fails until the
//!   server restarts and SQLite recovers the file.
//! - **Readers.** Read-only connections on blocking threads; WAL lets them
//!   run beside the writer. They see commits before they are durable.
//! - **Guest mode.** Branch SQL runs on the writer connection under an
//!   authorizer, tighter limits and a deadline checked by a progress handler
//!   ([`guest`]); host statements run in host mode, with nothing denied.
//!
//! Nothing here knows coordinator or business tables: it only runs what it
//! is given, and its own SQL is transaction control and pragmas.

pub mod guest;

use std::collections::HashMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak, mpsc};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::limits::Limit;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, oneshot};

pub use guest::{GuestLimits, GuestOutput, GuestSqlError};

/// How long a connection waits for a lock another process holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Read-only connections per file.
const READERS: usize = 4;
/// At most this many commits share one fsync.
pub const MAX_BATCH: usize = 256;
/// Log pages at which the writer checkpoints itself (8 MB with 4 KiB
/// pages); the checkpointer thread has normally copied most of the log by
/// then, so the writer's checkpoint is short and the log starts over.
const WAL_CHECKPOINT_PAGES: i64 = 2_000;
/// The checkpointer runs at most this often.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);
/// What the log file is truncated to after a checkpoint, at most.
const WAL_KEEP_BYTES: i64 = 64 << 20;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

/// Why an SQLite file could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SqliteError {
    /// The URL is not a SQLite URL this module understands.
    #[error("{0}")]
    Url(String),
    /// The file (or its directory) cannot be created or opened.
    #[error("cannot open {path}: {message}")]
    Open { path: String, message: String },
    /// A statement failed; `code` is SQLite's extended result code.
    #[error("{message}")]
    Sql { code: Option<i32>, message: String },
    /// The commit (or the fsync that makes it durable) failed: the caller
    /// must treat the write as not done, and may retry.
    #[error("commit failed: {0}")]
    Commit(String),
    /// A job panicked; its transaction was rolled back.
    #[error("the database job panicked (a bug); it was rolled back")]
    Panicked,
    /// The writer thread has stopped.
    #[error("the database is closed")]
    Closed,
}

impl From<rusqlite::Error> for SqliteError {
    fn from(e: rusqlite::Error) -> Self {
        let code = match &e {
            rusqlite::Error::SqliteFailure(err, _) => Some(err.extended_code),
            _ => None,
        };
        SqliteError::Sql { code, message: e.to_string() }
    }
}

/// A parsed `sqlite:` URL: `sqlite://PATH`, `sqlite:PATH`, or `sqlite::memory:`
/// (or `?mode=memory`), with `mode=rwc|rw|ro|memory` honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// `None` for an in-memory database (private to this process and handle).
    pub path: Option<PathBuf>,
    /// Create the file (and its directory) when missing.
    pub create: bool,
}

impl Location {
    pub fn parse(url: &str) -> Result<Location, SqliteError> {
        let rest = url
            .strip_prefix("sqlite:")
            .ok_or_else(|| SqliteError::Url(format!("not a SQLite URL: {url:?} (use sqlite://PATH)")))?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mode = query.split('&').find_map(|kv| kv.strip_prefix("mode=")).unwrap_or("rwc");
        if path.is_empty() || path == ":memory:" || mode == "memory" {
            return Ok(Location { path: None, create: true });
        }
        let create = match mode {
            "rwc" => true,
            "rw" => false,
            other => {
                return Err(SqliteError::Url(format!("SQLite URL mode {other:?} is not supported: use rwc or rw")));
            }
        };
        let path = Path::new(path);
        let path = if path.is_absolute() {
            path.to_owned()
        } else {
            std::env::current_dir().map(|d| d.join(path)).map_err(|e| SqliteError::Url(e.to_string()))?
        };
        Ok(Location { path: Some(path), create })
    }
}

/// One SQLite file: its writer thread and readers. Cheap to clone; handles on
/// the same canonical path share one writer.
#[derive(Clone)]
pub struct SqliteFile {
    inner: Arc<Inner>,
}

struct Inner {
    /// Canonical path; `None` in memory.
    path: Option<PathBuf>,
    jobs: mpsc::Sender<Message>,
    readers: Option<Readers>,
}

impl std::fmt::Debug for SqliteFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteFile").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

/// Open files by canonical path, so the store and a database on one file share its writer.
static FILES: LazyLock<Mutex<HashMap<PathBuf, Weak<Inner>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

impl SqliteFile {
    /// Opens the file `url` names (or returns the handle already open on it).
    /// Must be called inside a Tokio runtime: jobs may block on futures.
    pub fn open(url: &str) -> Result<SqliteFile, SqliteError> {
        let location = Location::parse(url)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| SqliteError::Url("SQLite files are opened inside the async runtime".to_owned()))?;
        let Some(path) = location.path else {
            let conn = open_writer(None, true)?;
            return Ok(Self::start(None, conn, runtime));
        };
        let mut files = FILES.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(inner) = canonical(&path).and_then(|c| files.get(&c)).and_then(Weak::upgrade) {
            return Ok(SqliteFile { inner });
        }
        if location.create
            && let Some(dir) = path.parent()
        {
            std::fs::create_dir_all(dir).map_err(|e| SqliteError::Open {
                path: dir.display().to_string(),
                message: format!("cannot create the directory: {e}"),
            })?;
        }
        let conn = open_writer(Some(&path), location.create)?;
        let canonical = canonical(&path).unwrap_or(path);
        let file = Self::start(Some(canonical.clone()), conn, runtime);
        files.retain(|_, weak| weak.strong_count() > 0);
        files.insert(canonical, Arc::downgrade(&file.inner));
        Ok(file)
    }

    fn start(path: Option<PathBuf>, conn: Connection, runtime: tokio::runtime::Handle) -> SqliteFile {
        let (jobs, queue) = mpsc::channel();
        let writer = Arc::new(Writer::new(conn, runtime));
        let name = path.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
        let name = name.as_deref().unwrap_or(":memory:");
        let syncer = path.as_ref().map(|p| {
            let (batches, handed) = mpsc::channel();
            let (wal, poisoned) = (WalSync::new(p), writer.poisoned.clone());
            let checkpoints = start_checkpointer(p, name);
            let spawned = std::thread::Builder::new()
                .name(format!("sqlite-sync {name}"))
                .spawn(move || syncer_loop(wal, handed, &poisoned, checkpoints.as_ref()));
            if let Err(e) = spawned {
                // Handing a batch over then fails, and so do its jobs.
                tracing::error!(error = %e, "cannot start the SQLite syncer thread");
            }
            batches
        });
        let spawned = std::thread::Builder::new()
            .name(format!("sqlite-writer {name}"))
            .spawn(move || writer_loop(writer, queue, syncer));
        if let Err(e) = spawned {
            // Without a writer every job fails with `Closed`; say why once.
            tracing::error!(error = %e, "cannot start the SQLite writer thread");
        }
        let readers = path.clone().map(Readers::new);
        SqliteFile { inner: Arc::new(Inner { path, jobs, readers }) }
    }

    /// The canonical path (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Whether both handles are the same file (and so the same writer).
    pub fn same_file(&self, other: &SqliteFile) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Runs `work` on the writer thread in a savepoint of its own (inside the
    /// current batch's transaction). `Ok` keeps its writes, and resolves once
    /// the batch's commit is durable; `Err` rolls back to the savepoint and
    /// resolves at once. The outer error is the commit's (or the writer's).
    pub async fn write<T, E>(
        &self,
        work: impl FnOnce(&Arc<Writer>) -> Result<T, E> + Send + 'static,
    ) -> Result<Result<T, E>, SqliteError>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<Result<T, E>, SqliteError>>();
        let job: Job = Box::new(move |writer: &Arc<Writer>, started: Result<(), SqliteError>| {
            if let Err(e) = started {
                let _ = reply.send(Err(e));
                return Finish::Nothing;
            }
            match catch_unwind(AssertUnwindSafe(|| work(writer))) {
                Ok(Ok(value)) => Finish::Commit(Box::new(move |durable: Result<(), SqliteError>| {
                    let _ = reply.send(durable.map(|()| Ok(value)));
                })),
                Ok(Err(e)) => {
                    let _ = reply.send(Ok(Err(e)));
                    Finish::Rollback
                }
                Err(_) => {
                    let _ = reply.send(Err(SqliteError::Panicked));
                    Finish::Rollback
                }
            }
        });
        self.inner.jobs.send(Message::Write(job)).map_err(|_| SqliteError::Closed)?;
        answer.await.map_err(|_| SqliteError::Closed)?
    }

    /// Runs `work` on a read-only connection (the writer's, in memory). It
    /// sees every commit made so far, durable or not; wrap several statements
    /// in `BEGIN … COMMIT` for one snapshot.
    pub async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> T + Send + 'static,
    ) -> Result<T, SqliteError> {
        match &self.inner.readers {
            Some(readers) => readers.read(work).await,
            None => {
                let (reply, answer) = oneshot::channel();
                let job: ReadJob = Box::new(move |conn: &Connection| {
                    let _ = reply.send(work(conn));
                });
                self.inner.jobs.send(Message::Read(job)).map_err(|_| SqliteError::Closed)?;
                answer.await.map_err(|_| SqliteError::Closed)
            }
        }
    }
}

fn canonical(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}

fn open_error(path: Option<&Path>, e: rusqlite::Error) -> SqliteError {
    SqliteError::Open {
        path: path.map_or_else(|| ":memory:".to_owned(), |p| p.display().to_string()),
        message: e.to_string(),
    }
}

/// The read-write connection: WAL, `synchronous = NORMAL` (the writer
/// fsyncs the WAL itself before acknowledging), defensive, no attachments.
fn open_writer(path: Option<&Path>, create: bool) -> Result<Connection, SqliteError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = match path {
        Some(p) => Connection::open_with_flags(p, flags),
        None => Connection::open_in_memory(),
    }
    .map_err(|e| open_error(path, e))?;
    let setup = || -> rusqlite::Result<()> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if path.is_some() {
            let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(rusqlite::Error::InvalidParameterName(format!(
                    "journal_mode is {mode}: the file cannot use a write-ahead log"
                )));
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // The checkpointer thread copies the log into the file; the writer
        // does it only as a backstop (see start_checkpointer).
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", WAL_KEEP_BYTES)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        harden(&conn)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(())
    };
    setup().map_err(|e| open_error(path, e))?;
    Ok(conn)
}

/// Settings every connection gets, host or guest: SQLite's defensive mode,
/// no trust in functions named by the schema, no attached databases.
fn harden(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, false)?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0);
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection, SqliteError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(Some(path), e))?;
    let setup = || -> rusqlite::Result<()> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        harden(&conn)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(())
    };
    setup().map_err(|e| open_error(Some(path), e))?;
    Ok(conn)
}

/// What the writer thread is asked to do.
enum Message {
    Write(Job),
    Read(ReadJob),
}

/// A write job: runs inside the savepoint the loop began (or is told why
/// none could begin), and says how it ends.
type Job = Box<dyn FnOnce(&Arc<Writer>, Result<(), SqliteError>) -> Finish + Send>;
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;
/// Told whether the job's commit is durable.
type Done = Box<dyn FnOnce(Result<(), SqliteError>) + Send>;

enum Finish {
    /// Keep the job's writes, then tell `Done` once the batch is durable.
    Commit(Done),
    /// Roll back to the job's savepoint (the job has answered already).
    Rollback,
    /// No transaction was opened.
    Nothing,
}

/// The writer connection and its guest-mode switches, handed to write jobs.
pub struct Writer {
    conn: Mutex<Connection>,
    guard: Arc<Guard>,
    runtime: tokio::runtime::Handle,
    /// Guest SQL texts already known to hold exactly one statement.
    verified: Mutex<guest::Verified>,
    /// Set when an fsync of the WAL failed: no write is accepted after it.
    poisoned: Arc<AtomicBool>,
}

/// Shared with the connection's callbacks (authorizer, progress handler,
/// commit hook), which cannot borrow the writer.
struct Guard {
    /// Statements being prepared or run now are a guest's.
    guest: AtomicBool,
    /// While guest, interrupt once this many nanoseconds since `origin` have passed (0: none).
    deadline_nanos: AtomicU64,
    origin: Instant,
    /// The host itself is committing; every other commit is turned into a rollback.
    host_commit: AtomicBool,
    /// Why the authorizer last refused a guest statement.
    denied: Mutex<Option<String>>,
}

impl Guard {
    fn deadline_passed(&self) -> bool {
        let deadline = self.deadline_nanos.load(Ordering::Acquire);
        deadline != 0 && u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX) >= deadline
    }
}

impl Writer {
    fn new(conn: Connection, runtime: tokio::runtime::Handle) -> Writer {
        let guard = Arc::new(Guard {
            guest: AtomicBool::new(false),
            deadline_nanos: AtomicU64::new(0),
            origin: Instant::now(),
            host_commit: AtomicBool::new(false),
            denied: Mutex::new(None),
        });
        let for_auth = guard.clone();
        let for_progress = guard.clone();
        let for_commit = guard.clone();
        conn.authorizer(Some(move |ctx: rusqlite::hooks::AuthContext<'_>| {
            if !for_auth.guest.load(Ordering::Acquire) {
                return rusqlite::hooks::Authorization::Allow;
            }
            match guest::authorize(&ctx) {
                Ok(()) => rusqlite::hooks::Authorization::Allow,
                Err(why) => {
                    *for_auth.denied.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                    rusqlite::hooks::Authorization::Deny
                }
            }
        }));
        conn.progress_handler(
            1000,
            Some(move || for_progress.guest.load(Ordering::Acquire) && for_progress.deadline_passed()),
        );
        // `true` turns the commit into a rollback.
        conn.commit_hook(Some(move || !for_commit.host_commit.load(Ordering::Acquire)));
        Writer {
            conn: Mutex::new(conn),
            guard,
            runtime,
            verified: Mutex::new(guest::Verified::default()),
            poisoned: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The connection, for host statements (nothing is denied).
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a future to completion on this (non-runtime) thread: how a job
    /// runs a guest, whose host calls are synchronous here.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Whether the job's transaction is still open (a guest statement with
    /// `ON CONFLICT ROLLBACK` or `RAISE(ROLLBACK)` can end it).
    pub fn in_transaction(&self) -> bool {
        !self.conn().is_autocommit()
    }

    /// Runs one guest statement under the authorizer and guest limits, with
    /// `deadline` enforced by the progress handler.
    pub fn guest_statement(
        &self,
        sql: &str,
        params: &[rusqlite::types::Value],
        deadline: Instant,
        limits: &GuestLimits,
        want_rows: bool,
    ) -> Result<GuestOutput, GuestSqlError> {
        let conn = self.conn();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let at = self.guard.origin.elapsed() + remaining;
        self.guard.deadline_nanos.store(u64::try_from(at.as_nanos()).unwrap_or(u64::MAX).max(1), Ordering::Release);
        *self.guard.denied.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let host_limits = guest::apply_limits(&conn);
        self.guard.guest.store(true, Ordering::Release);
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        let result = guest::run(&conn, &mut verified, sql, params, limits, want_rows);
        self.guard.guest.store(false, Ordering::Release);
        guest::restore_limits(&conn, host_limits);
        self.guard.deadline_nanos.store(0, Ordering::Release);
        let denied = self.guard.denied.lock().unwrap_or_else(|p| p.into_inner()).take();
        result.map_err(|e| e.explain(denied, remaining))
    }

    /// Opens the job's savepoint, and the batch's transaction first when
    /// none is open.
    fn start_job(&self, batch: &mut Batch) -> Result<(), SqliteError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(SqliteError::Commit(POISONED.to_owned()));
        }
        let conn = self.conn();
        if !batch.open {
            if !conn.is_autocommit() {
                // Left open by something that failed to end it: never build on it.
                let _ = conn.execute_batch("ROLLBACK");
            }
            conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            batch.open = true;
        }
        conn.prepare_cached(SAVEPOINT)?.execute([])?;
        Ok(())
    }

    /// Keeps the job's writes in the batch.
    fn release_job(&self) -> Result<(), SqliteError> {
        let conn = self.conn();
        if conn.is_autocommit() {
            return Err(SqliteError::Commit(ENDED.to_owned()));
        }
        conn.prepare_cached(RELEASE)?.execute([])?;
        Ok(())
    }

    /// Undoes the job's writes (nothing to do when its statement already
    /// ended the transaction).
    fn rollback_job(&self) {
        let conn = self.conn();
        if conn.is_autocommit() {
            return;
        }
        let undone = conn.prepare_cached(ROLLBACK_TO).and_then(|mut s| s.execute([]));
        let released = conn.prepare_cached(RELEASE).and_then(|mut s| s.execute([]));
        if let Err(e) = undone.and(released) {
            tracing::error!(error = %e, "SQLite rollback to a job's savepoint failed");
        }
    }

    /// Commits the batch's transaction (the commit hook lets only this one through).
    fn commit(&self) -> Result<(), SqliteError> {
        let conn = self.conn();
        if conn.is_autocommit() {
            return Err(SqliteError::Commit(ENDED.to_owned()));
        }
        self.guard.host_commit.store(true, Ordering::Release);
        let result = conn.execute_batch("COMMIT");
        self.guard.host_commit.store(false, Ordering::Release);
        result.map_err(|e| {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            SqliteError::Commit(e.to_string())
        })
    }
}

/// The savepoint each job runs in; guests may not name it.
const SAVEPOINT: &str = "SAVEPOINT wasmtx_job";
const RELEASE: &str = "RELEASE wasmtx_job";
const ROLLBACK_TO: &str = "ROLLBACK TO wasmtx_job";
const ENDED: &str = "the transaction ended before the host committed it; nothing was committed";
const LOST: &str = "rolled back with its batch: a later job's statement ended the shared transaction (a write \
                    interrupted at its deadline, or an ON CONFLICT ROLLBACK); nothing was committed, retry";

/// The writer's open transaction and the jobs released into it.
#[derive(Default)]
struct Batch {
    open: bool,
    released: Vec<Done>,
}

impl Batch {
    /// Commits the open transaction and hands its jobs to the syncer.
    fn end(&mut self, writer: &Writer, syncer: Option<&mpsc::Sender<Vec<Done>>>) {
        if !self.open {
            return;
        }
        self.open = false;
        match writer.commit() {
            Ok(()) => hand_over(syncer, &mut self.released),
            Err(e) => {
                for done in self.released.drain(..) {
                    done(Err(e.clone()));
                }
            }
        }
    }

    /// After a job: when its statement ended the transaction, the jobs
    /// released before it are gone too.
    fn check_alive(&mut self, writer: &Writer) {
        if self.open && writer.conn().is_autocommit() {
            self.open = false;
            if !self.released.is_empty() {
                tracing::warn!(jobs = self.released.len(), "a statement ended the SQLite batch; its jobs will retry");
            }
            for done in self.released.drain(..) {
                done(Err(SqliteError::Commit(LOST.to_owned())));
            }
        }
    }
}

/// The writer thread: runs jobs as they come, each in its savepoint of the
/// open batch; commits the batch when no job is waiting (or it is full) and
/// hands it to the syncer (`None` in memory: nothing to sync).
fn writer_loop(writer: Arc<Writer>, queue: mpsc::Receiver<Message>, syncer: Option<mpsc::Sender<Vec<Done>>>) {
    let mut batch = Batch::default();
    loop {
        let message = match queue.try_recv() {
            Ok(message) => message,
            Err(mpsc::TryRecvError::Empty) => {
                batch.end(&writer, syncer.as_ref());
                match queue.recv() {
                    Ok(message) => message,
                    Err(_) => break,
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        match message {
            Message::Read(job) => {
                // Reads see committed data only.
                batch.end(&writer, syncer.as_ref());
                job(&writer.conn());
            }
            Message::Write(job) => {
                let started = writer.start_job(&mut batch);
                match job(&writer, started) {
                    Finish::Commit(done) => match writer.release_job() {
                        Ok(()) => batch.released.push(done),
                        Err(e) => done(Err(e)),
                    },
                    Finish::Rollback => writer.rollback_job(),
                    Finish::Nothing => {}
                }
                batch.check_alive(&writer);
            }
        }
        if batch.released.len() >= MAX_BATCH {
            batch.end(&writer, syncer.as_ref());
        }
    }
    batch.end(&writer, syncer.as_ref());
}

/// Gives committed jobs to the syncer (after their commit returned, so its
/// next fsync covers them).
fn hand_over(syncer: Option<&mpsc::Sender<Vec<Done>>>, waiting: &mut Vec<Done>) {
    if waiting.is_empty() {
        return;
    }
    let batch = std::mem::take(waiting);
    let Some(syncer) = syncer else {
        for done in batch {
            done(Ok(()));
        }
        return;
    };
    if let Err(mpsc::SendError(batch)) = syncer.send(batch) {
        for done in batch {
            done(Err(SqliteError::Commit("the WAL syncer has stopped; the commit may not be durable".to_owned())));
        }
    }
}

const POISONED: &str = "an fsync of the write-ahead log failed earlier, so this file takes no more writes; restart \
                        the server (SQLite recovers the file on open)";

/// The syncer thread: one fsync for all batches handed over since the last
/// one began, then their answers.
fn syncer_loop(
    mut wal: WalSync,
    batches: mpsc::Receiver<Vec<Done>>,
    poisoned: &AtomicBool,
    checkpoints: Option<&mpsc::SyncSender<()>>,
) {
    while let Ok(mut ready) = batches.recv() {
        while let Ok(more) = batches.try_recv() {
            ready.extend(more);
        }
        let result = if poisoned.load(Ordering::Acquire) {
            Err(SqliteError::Commit(POISONED.to_owned()))
        } else {
            wal.sync().map_err(|(e, fatal)| {
                if fatal {
                    poisoned.store(true, Ordering::Release);
                    tracing::error!(error = %e, "fsync of the SQLite write-ahead log failed; the file takes no more writes");
                }
                e
            })
        };
        for done in ready {
            done(result.clone());
        }
        if let Some(tick) = checkpoints {
            // One waiting tick is enough.
            let _ = tick.try_send(());
        }
    }
}

/// Starts the file's checkpointer: a thread with a connection of its own
/// that copies the log into the database file (`PRAGMA wal_checkpoint(PASSIVE)`,
/// which never blocks the writer) at most every [`CHECKPOINT_EVERY`], after
/// commits. The writer's own automatic checkpoint stays as a backstop at
/// [`WAL_CHECKPOINT_PAGES`]; by then the checkpointer has copied most of the
/// log, so it is short. `None` when the thread or connection cannot start:
/// the backstop then does all checkpoints.
fn start_checkpointer(path: &Path, name: &str) -> Option<mpsc::SyncSender<()>> {
    let (tick, ticks) = mpsc::sync_channel::<()>(1);
    let path = path.to_owned();
    let spawned = std::thread::Builder::new().name(format!("sqlite-checkpoint {name}")).spawn(move || {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match Connection::open_with_flags(&path, flags).and_then(|c| harden(&c).map(|()| c)) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "no SQLite checkpointer; the writer checkpoints on its own");
                return;
            }
        };
        while ticks.recv().is_ok() {
            let started = Instant::now();
            let copied = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(2));
            if let Err(e) = copied {
                tracing::warn!(error = %e, "SQLite checkpoint failed; retrying after the next commit");
            }
            std::thread::sleep(CHECKPOINT_EVERY.saturating_sub(started.elapsed()));
        }
    });
    match spawned {
        Ok(_) => Some(tick),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the SQLite checkpointer thread; the writer checkpoints on its own");
            None
        }
    }
}

/// fsyncs the file's write-ahead log (and, the first time, its directory).
struct WalSync {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl WalSync {
    fn new(db: &Path) -> WalSync {
        let mut name = db.as_os_str().to_owned();
        name.push("-wal");
        WalSync { path: PathBuf::from(name), file: None }
    }

    /// `Err((error, fatal))`: `fatal` when the fsync itself failed (the
    /// pages may be gone), not when the file could not be opened.
    fn sync(&mut self) -> Result<(), (SqliteError, bool)> {
        let fail = |what: &str, e: std::io::Error| SqliteError::Commit(format!("{what} {}: {e}", self.path.display()));
        let file = match &self.file {
            Some(file) => file,
            None => {
                let file = std::fs::File::open(&self.path).map_err(|e| (fail("cannot open", e), false))?;
                // The WAL's directory entry must be durable too.
                if let Some(dir) = self.path.parent() {
                    std::fs::File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(|e| (fail("cannot sync the directory of", e), true))?;
                }
                self.file.insert(file)
            }
        };
        file.sync_data().map_err(|e| (fail("cannot fsync", e), true))
    }
}

/// Read-only connections, used on blocking threads.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Readers {
    fn new(path: PathBuf) -> Readers {
        Readers { path, idle: Mutex::new(Vec::new()), permits: Semaphore::new(READERS) }
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> T + Send + 'static,
    ) -> Result<T, SqliteError> {
        let _permit = self.permits.acquire().await.map_err(|_| SqliteError::Closed)?;
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = catch_unwind(AssertUnwindSafe(|| work(&conn)));
            (conn, result)
        })
        .await
        .map_err(|_| SqliteError::Panicked)?;
        let result = result.map_err(|_| SqliteError::Panicked)?;
        if conn.is_autocommit() {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        }
        Ok(result)
    }
}

/// Binds values to the `$N` / `?N` / `?` parameters of `stmt` by number
/// (SQLite numbers `$N` by order of appearance, so binding by index would
/// mix `$2, $1` up). `value(n)` gives the value of parameter `n` (1-based).
pub fn bind_numbered(
    stmt: &mut rusqlite::Statement<'_>,
    given: usize,
    mut bind: impl FnMut(&mut rusqlite::Statement<'_>, usize, usize) -> rusqlite::Result<()>,
) -> Result<(), String> {
    let mut anonymous = 0usize;
    for index in 1..=stmt.parameter_count() {
        let number = match stmt.parameter_name(index) {
            None => {
                anonymous += 1;
                anonymous
            }
            Some(name) => parameter_number(name)?,
        };
        if number == 0 {
            return Err(format!(
                "parameter `{}` is not allowed: parameters are numbered from $1",
                name_of(stmt, index)
            ));
        }
        if number > given {
            return Err(format!("parameter `{}` has no value: {given} given", name_of(stmt, index)));
        }
        bind(stmt, index, number).map_err(|e| format!("cannot bind parameter ${number}: {e}"))?;
    }
    Ok(())
}

fn name_of(stmt: &rusqlite::Statement<'_>, index: usize) -> String {
    stmt.parameter_name(index).map_or_else(|| format!("? number {index}"), str::to_owned)
}

/// `$N` or `?N` → N; named parameters (`:x`, `@x`, `$x`) are refused.
fn parameter_number(name: &str) -> Result<usize, String> {
    let digits = name.strip_prefix('$').or_else(|| name.strip_prefix('?')).unwrap_or("");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("parameter `{name}` is not supported: use numbered parameters $1, $2, …"));
    }
    Ok(digits.parse::<usize>().unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests;
