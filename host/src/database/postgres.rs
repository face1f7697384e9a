//! Postgres business databases: guest SQL runs as a login role of its own.
//!
//! The URL names the database's owner (who may create the schema `wasmtx` and,
//! the first time, a role). At start the host sets up, in the database:
//!
//! - the schema `wasmtx`, which no guest can read or write: the barrier table
//!   `wasmtx.barrier`, the workflow steps' outputs `wasmtx.step_output`, the
//!   table `wasmtx.host` with a secret key, and (when the store shares the
//!   database) the coordinator's tables;
//! - a role `wasmtx_guest_<database>` that may log in, create and use tables in
//!   `public`, and call the host functions below, nothing else: no superuser, no
//!   CREATEDB/CREATEROLE, no server files or programs (`COPY … PROGRAM`,
//!   `pg_read_file`, `lo_import` are superuser-only), no extensions;
//! - `wasmtx.enter(key, …, progress)`, `SECURITY DEFINER`: writes the
//!   barrier rows and, when the store shares the database, the transaction's
//!   progress (`wasmtx.apply_progress`, store migration 0005), and returns
//!   the backend pid and transaction id. It refuses a wrong key, and the key
//!   only ever travels as a bound parameter, so a guest (which runs as the
//!   same role) can neither call it nor read the key;
//! - `wasmtx.record_output(key, gid, branch, output)`, `SECURITY DEFINER`,
//!   guarded by the key the same way: writes a workflow step's output in the
//!   branch's transaction (see `step_output.rs`);
//! - a deferred constraint trigger on `wasmtx.barrier` that refuses to commit
//!   a branch transaction the host did not seal: the host commits with
//!   `SELECT set_config('wasmtx.sealed', <token>, true); COMMIT`, the token
//!   being a hash of the key and the transaction id, which a guest cannot
//!   compute (and which is worth nothing in any other transaction). A
//!   `COMMIT` slipped past the statement check fails instead of committing
//!   half a branch.
//!
//! Branch transactions run on connections of the guest role, so nothing a
//! guest does (`RESET ROLE`, `SET SESSION AUTHORIZATION`, `set_config`) can
//! raise its privileges: the session user is the guest. Every transaction
//! begins by resetting what an earlier guest may have left on the pooled
//! connection (`RESET ALL`, temporary tables, cursors, listeners, advisory
//! locks) and setting `statement_timeout` and `lock_timeout` from the
//! invocation's deadline; a deadline that passes anyway cancels the backend.
//! A connection on which a host statement failed is closed, never reused.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, Postgres, Statement};

use super::value::{self, DbError, Rows, Value};
use super::{
    BarrierKey, BarrierVerdict, BranchRun, DatabaseError, DbLimits, Decision, LocalTx, RunError, TxInner, TxWork,
    statement,
};
use crate::model::{BranchId, Gid};
use crate::sqlite::GuestLimits;
use crate::store::Progress;

/// Bumped when the objects below change; they are (re)created when the
/// database's `wasmtx.host` row has an older version, so every statement
/// must be safe to run again. Version 3 added `wasmtx.step_output` and
/// `wasmtx.record_output`.
const SETUP_VERSION: i32 = 3;

/// Objects in the schema `wasmtx` (created by the owner; names fully qualified).
const SETUP: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS wasmtx.barrier (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        trans_type  VARCHAR(45)  NOT NULL DEFAULT '',
        gid         VARCHAR(128) NOT NULL,
        branch_id   VARCHAR(128) NOT NULL,
        op          VARCHAR(45)  NOT NULL,
        barrier_id  VARCHAR(45)  NOT NULL,
        reason      VARCHAR(45)  NOT NULL DEFAULT '',
        created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
        CONSTRAINT barrier_uniq UNIQUE (gid, branch_id, op, barrier_id))",
    "CREATE TABLE IF NOT EXISTS wasmtx.step_output (
        gid         VARCHAR(128) NOT NULL,
        branch_id   VARCHAR(128) NOT NULL,
        output      BYTEA        NOT NULL,
        created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
        PRIMARY KEY (gid, branch_id))",
    // Barrier rows of earlier versions (in `public`, reachable by guests) move in.
    "DO $$ BEGIN
        IF to_regclass('public.wasmtx_barrier') IS NOT NULL THEN
            INSERT INTO wasmtx.barrier (trans_type, gid, branch_id, op, barrier_id, reason, created_at)
            SELECT trans_type, gid, branch_id, op, barrier_id, reason, created_at FROM public.wasmtx_barrier
            ON CONFLICT DO NOTHING;
            DROP TABLE public.wasmtx_barrier;
        END IF;
    END $$",
    "REVOKE ALL ON ALL TABLES IN SCHEMA wasmtx FROM PUBLIC",
    // Version 1 had a seven-argument enter and a seal function.
    "DROP FUNCTION IF EXISTS wasmtx.enter(text, text, text, text, text, text, text)",
    "DROP FUNCTION IF EXISTS wasmtx.seal(text, bigint)",
    "CREATE OR REPLACE FUNCTION wasmtx.enter(p_key text, p_trans_type text, p_gid text, p_branch_id text,
            p_op text, p_origin text, p_barrier_id text, p_progress jsonb)
        RETURNS TABLE (origin_inserted int, op_inserted int, backend int, txid bigint)
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DECLARE a1 int := 0; a2 int := 0;
    BEGIN
        IF sha256(convert_to(p_key, 'UTF8')) IS DISTINCT FROM (SELECT h.key_hash FROM wasmtx.host h WHERE h.id = 1) THEN
            RAISE EXCEPTION 'wasmtx.enter is reserved for the host' USING ERRCODE = '42501';
        END IF;
        IF p_origin IS NOT NULL THEN
            INSERT INTO wasmtx.barrier (trans_type, gid, branch_id, op, barrier_id, reason)
            VALUES (p_trans_type, p_gid, p_branch_id, p_origin, p_barrier_id, p_op) ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS a1 = ROW_COUNT;
        END IF;
        INSERT INTO wasmtx.barrier (trans_type, gid, branch_id, op, barrier_id, reason)
        VALUES (p_trans_type, p_gid, p_branch_id, p_op, p_barrier_id, p_op) ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS a2 = ROW_COUNT;
        IF p_progress IS NOT NULL THEN
            PERFORM wasmtx.apply_progress(p_progress);
        END IF;
        RETURN QUERY SELECT a1, a2, pg_backend_pid(), txid_current();
    END $$",
    "CREATE OR REPLACE FUNCTION wasmtx.record_output(p_key text, p_gid text, p_branch_id text, p_output bytea)
        RETURNS void
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    BEGIN
        IF sha256(convert_to(p_key, 'UTF8')) IS DISTINCT FROM (SELECT h.key_hash FROM wasmtx.host h WHERE h.id = 1) THEN
            RAISE EXCEPTION 'wasmtx.record_output is reserved for the host' USING ERRCODE = '42501';
        END IF;
        INSERT INTO wasmtx.step_output (gid, branch_id, output) VALUES (p_gid, p_branch_id, p_output)
        ON CONFLICT DO NOTHING;
    END $$",
    "CREATE OR REPLACE FUNCTION wasmtx.check_sealed() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    BEGIN
        IF current_setting('wasmtx.sealed', true) IS DISTINCT FROM (SELECT encode(sha256(convert_to(
                h.key || ':' || txid_current()::text, 'UTF8')), 'hex') FROM wasmtx.host h WHERE h.id = 1) THEN
            RAISE EXCEPTION 'a branch may not commit its own transaction; nothing was committed'
                USING ERRCODE = '2D000';
        END IF;
        RETURN NULL;
    END $$",
    "DROP TRIGGER IF EXISTS barrier_sealed ON wasmtx.barrier",
    "CREATE CONSTRAINT TRIGGER barrier_sealed AFTER INSERT ON wasmtx.barrier
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wasmtx.check_sealed()",
    "REVOKE ALL ON FUNCTION wasmtx.enter(text, text, text, text, text, text, text, jsonb) FROM PUBLIC",
    "REVOKE ALL ON FUNCTION wasmtx.record_output(text, text, text, bytea) FROM PUBLIC",
    "REVOKE ALL ON FUNCTION wasmtx.check_sealed() FROM PUBLIC",
];

/// How long a host read without a deadline of its own may take.
const HOST_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What an earlier guest may have left on a pooled connection, undone.
const CLEAN: &str = "RESET ALL; DISCARD TEMP; CLOSE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all()";

/// `SET LOCAL` statements that make `deadline` the statement and lock
/// timeouts of the transaction just begun.
fn local_timeouts(deadline: Instant) -> String {
    let ms = deadline.saturating_duration_since(Instant::now()).as_millis().max(1);
    format!(
        "SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {ms}; \
         SET LOCAL idle_in_transaction_session_timeout = {}",
        ms + 5_000
    )
}

/// What the host knows about a database after setting it up.
struct Setup {
    key: String,
    role: String,
    password: String,
}

#[derive(Clone)]
pub(super) struct PgDb {
    /// Connections of the guest role: branch transactions.
    guest: PgPool,
    /// Connections of the owner: cancelling a guest's statement, reading the barrier.
    owner: PgPool,
    /// Connections of the guest role that no guest ever uses: XA's phase 2
    /// (only the role that prepared a transaction may finish it).
    xa: PgPool,
    /// The server's `max_prepared_transactions`, read at start (0: no XA).
    max_prepared: i64,
    key: Arc<str>,
    place: (String, u16, Option<String>),
    limits: DbLimits,
}

impl PgDb {
    pub(super) async fn connect(url: &str, limits: DbLimits) -> Result<PgDb, DatabaseError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| DatabaseError::Config(format!("Postgres URL: {e}")))?
            .application_name("wasmtx");
        // One connection first, so that a wrong host, password or database name
        // is reported as such.
        let mut conn = PgConnection::connect_with(&options).await.map_err(unavailable)?;
        let setup = set_up(&mut conn).await?;
        let max_prepared: i64 = sqlx::query_scalar("SELECT current_setting('max_prepared_transactions')::int8")
            .fetch_one(&mut conn)
            .await
            .map_err(unavailable)?;
        let _ = conn.close().await;
        let guest_options =
            options.clone().username(&setup.role).password(&setup.password).application_name("wasmtx-guest");
        let probe = PgConnection::connect_with(&guest_options).await.map_err(|e| {
            DatabaseError::Unavailable(format!(
                "the guest role {} cannot log in ({e}); allow it in pg_hba.conf like the owner",
                setup.role
            ))
        })?;
        let _ = probe.close().await;
        let guest = PgPoolOptions::new()
            .max_connections(limits.postgres_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .test_before_acquire(false)
            .connect_lazy_with(guest_options.clone());
        let xa = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(30))
            .test_before_acquire(false)
            .connect_lazy_with(guest_options.application_name("wasmtx-xa"));
        let owner =
            PgPoolOptions::new().max_connections(2).test_before_acquire(false).connect_lazy_with(options.clone());
        let place = (options.get_host().to_owned(), options.get_port(), options.get_database().map(str::to_owned));
        Ok(PgDb { guest, owner, xa, max_prepared, key: Arc::from(setup.key), place, limits })
    }

    pub(super) fn place(&self) -> (String, u16, Option<String>) {
        self.place.clone()
    }

    pub(super) async fn close(&self) {
        self.guest.close().await;
        self.owner.close().await;
        self.xa.close().await;
    }

    /// Why this database cannot run XA branches, if it cannot.
    pub(super) fn xa_refusal(&self) -> Option<String> {
        (self.max_prepared <= 0).then(|| {
            "its Postgres server has max_prepared_transactions = 0, so it cannot prepare transactions; set it \
             (in postgresql.conf, or ALTER SYSTEM) to at least the number of XA branches that may be prepared \
             at once, restart Postgres, then restart wasmtx"
                .to_owned()
        })
    }

    pub(super) async fn run_branch<T: Send + 'static>(
        &self,
        key: BarrierKey,
        deadline: Instant,
        progress: Option<Progress>,
        work: TxWork<T>,
    ) -> Result<BranchRun<T>, RunError> {
        self.branch(key, deadline, progress, work, None).await
    }

    /// An XA action: [`PgDb::run_branch`] ended by `PREPARE TRANSACTION`
    /// instead of a commit. An action that prepared before (its answer lost
    /// to a crash) is found prepared and not run again.
    pub(super) async fn run_branch_prepared<T: Send + 'static>(
        &self,
        key: BarrierKey,
        deadline: Instant,
        work: TxWork<T>,
    ) -> Result<BranchRun<T>, RunError> {
        let xid = super::xid(&key.gid, &key.branch_id);
        self.branch(key, deadline, None, work, Some(xid)).await
    }

    /// A message's back-check (see [`super::Database::query_prepared`]), as
    /// the owner, sealed like a branch commit; it waits (within `deadline`)
    /// for a local transaction still holding the row.
    pub(super) async fn query_prepared(&self, key: BarrierKey, deadline: Instant) -> Result<bool, DbError> {
        let check = async {
            let mut tx = self.owner.begin().await?;
            let ms = deadline.saturating_duration_since(Instant::now()).as_millis().max(1);
            tx.execute(format!("SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {ms}").as_str()).await?;
            sqlx::query(
                "INSERT INTO wasmtx.barrier (trans_type, gid, branch_id, op, barrier_id, reason) \
                 VALUES ($1, $2, $3, $4, $5, 'rollback') ON CONFLICT DO NOTHING",
            )
            .bind(&key.trans_type)
            .bind(key.gid.as_str())
            .bind(key.branch_id.as_str())
            .bind(key.op.as_str())
            .bind(&key.barrier_id)
            .execute(&mut *tx)
            .await?;
            let (reason, txid): (String, i64) = sqlx::query_as(
                "SELECT reason::text, txid_current() FROM wasmtx.barrier \
                 WHERE gid = $1 AND branch_id = $2 AND op = $3 AND barrier_id = $4",
            )
            .bind(key.gid.as_str())
            .bind(key.branch_id.as_str())
            .bind(key.op.as_str())
            .bind(&key.barrier_id)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("SELECT set_config('wasmtx.sealed', $1, true)")
                .bind(seal_token(&self.key, txid))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(reason != "rollback")
        };
        match tokio::time::timeout_at(deadline.into(), check).await {
            Ok(found) => Ok(found?),
            Err(_) => Err(DbError::host("deadline exceeded during a message's back-check".to_owned())),
        }
    }

    /// XA's phase 2 for the branch of `key` (op `commit` or `rollback`):
    /// `COMMIT PREPARED` or `ROLLBACK PREPARED`. Idempotent: a commit finds
    /// an earlier commit by the action's barrier row; a rollback then enters
    /// the barrier, so that an action arriving late (a stale owner's) does
    /// nothing.
    pub(super) async fn finish_prepared(&self, key: BarrierKey, deadline: Instant) -> Result<(), DbError> {
        let commit = match key.op {
            crate::model::Op::Commit => true,
            crate::model::Op::Rollback => false,
            op => return Err(DbError::host(format!("{op} is not a phase-2 op"))),
        };
        let xid = super::xid(&key.gid, &key.branch_id);
        let finished = self.end_prepared(&xid, commit, deadline).await?;
        if commit {
            if !finished && !self.action_committed(&key, deadline).await? {
                return Err(DbError::host(format!(
                    "branch {} prepared, but its prepared transaction {xid} is gone and was never committed (rolled \
                     back by hand?); it cannot be committed",
                    key.branch_id
                )));
            }
            return Ok(());
        }
        let noop: TxWork<()> = Box::new(|tx| Box::pin(async move { (Some(tx), Decision::Commit(())) }));
        match self.branch(key, deadline, None, noop, None).await {
            Ok(_) => Ok(()),
            Err(RunError::Db(e)) => Err(e),
            Err(e) => Err(DbError::host(e.to_string())),
        }
    }

    /// The XA branches (their xids) prepared in this database more than
    /// `older_than` ago and still prepared.
    pub(super) async fn prepared_branches(&self, older_than: Duration) -> Result<Vec<String>, DbError> {
        let xids: Vec<String> = sqlx::query_scalar(
            "SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE database = current_database() \
             AND gid LIKE 'wasmtx:%' AND prepared < now() - make_interval(secs => $1) ORDER BY prepared",
        )
        .bind(older_than.as_secs_f64())
        .fetch_all(&self.xa)
        .await?;
        Ok(xids)
    }

    /// `COMMIT PREPARED` or `ROLLBACK PREPARED` of `xid`; false when no
    /// such prepared transaction exists (finished before).
    pub(super) async fn end_prepared(&self, xid: &str, commit: bool, deadline: Instant) -> Result<bool, DbError> {
        let verb = if commit { "COMMIT" } else { "ROLLBACK" };
        // The xid is made of a gid and a branch id ([A-Za-z0-9_.:-]): safe to inline.
        debug_assert!(xid.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b)));
        let sql = format!("{verb} PREPARED '{xid}'");
        let run = async {
            let mut conn = self.xa.acquire().await?;
            conn.execute(sql.as_str()).await
        };
        match tokio::time::timeout_at(deadline.into(), run).await {
            Err(_) => Err(DbError::host(format!("deadline exceeded during {verb} PREPARED"))),
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) => {
                let e = DbError::from(e);
                // undefined_object: no prepared transaction of that name.
                if e.code.as_deref() == Some("42704") { Ok(false) } else { Err(e) }
            }
        }
    }

    /// Whether the action of `key`'s branch committed (its barrier row is there).
    async fn action_committed(&self, key: &BarrierKey, deadline: Instant) -> Result<bool, DbError> {
        let query = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM wasmtx.barrier WHERE gid = $1 AND branch_id = $2 AND op = 'action')",
        )
        .bind(key.gid.as_str())
        .bind(key.branch_id.as_str())
        .fetch_one(&self.owner);
        match tokio::time::timeout_at(deadline.into(), query).await {
            Ok(found) => Ok(found?),
            Err(_) => Err(DbError::host("deadline exceeded reading the barrier".to_owned())),
        }
    }

    /// A step's committed output, read as the owner.
    pub(super) async fn step_output(&self, gid: &Gid, branch_id: &BranchId) -> Result<Option<Vec<u8>>, DbError> {
        let query = sqlx::query_scalar("SELECT output FROM wasmtx.step_output WHERE gid = $1 AND branch_id = $2")
            .bind(gid.as_str())
            .bind(branch_id.as_str())
            .fetch_optional(&self.owner);
        match tokio::time::timeout(HOST_READ_TIMEOUT, query).await {
            Ok(found) => Ok(found?),
            Err(_) => Err(DbError::host(format!("reading a step's output took more than {HOST_READ_TIMEOUT:?}"))),
        }
    }

    /// A branch op's local transaction: the barrier, then the work, ended by
    /// a commit, or by `PREPARE TRANSACTION prepare` when given.
    async fn branch<T: Send + 'static>(
        &self,
        key: BarrierKey,
        deadline: Instant,
        progress: Option<Progress>,
        work: TxWork<T>,
        prepare: Option<String>,
    ) -> Result<BranchRun<T>, RunError> {
        // The progress is written before the guest runs, as if the branch
        // succeeds: the branch commits exactly when it does, and a rollback
        // takes it with the branch's writes.
        let json = progress
            .as_ref()
            .map(crate::store::progress_json_postgres)
            .transpose()
            .map_err(|e| DbError::host(format!("encoding the transaction's progress: {e}")))?;
        let mut tx = match &prepare {
            Some(xid) => match self.begin_prepared(deadline, xid).await? {
                Some(tx) => tx,
                // Prepared before (its answer lost to a crash): not again.
                None => return Ok(BranchRun::Skipped(BarrierVerdict::Duplicate)),
            },
            None => self.begin(deadline).await?,
        };
        let entered = tx.enter(&self.key, &key, json).await;
        let (a1, a2, pid, txid) = entered.map_err(|e| {
            match e
                .code
                .as_deref()
                .zip(progress.as_ref())
                .and_then(|(c, p)| crate::store::progress_refusal_postgres(c, p.gid()))
            {
                Some(refusal) => RunError::from_store(refusal),
                None => e.into(),
            }
        })?;
        let origin = key.op.origin().map(|_| u64::try_from(a1).unwrap_or(0));
        let verdict = BarrierVerdict::decide(origin, u64::try_from(a2).unwrap_or(0));
        tx.pid = pid;
        tx.seal = Some(seal_token(&self.key, txid));
        if verdict != BarrierVerdict::Proceed {
            tx.commit().await?;
            return Ok(BranchRun::Skipped(verdict));
        }
        Ok(BranchRun::Ran(self.run_work(tx, deadline, work, prepare).await?))
    }

    pub(super) async fn run_local<T: Send + 'static>(
        &self,
        deadline: Instant,
        work: TxWork<T>,
    ) -> Result<Decision<T>, DbError> {
        let mut tx = self.begin(deadline).await?;
        tx.pid = tx.backend_pid().await?;
        self.run_work(tx, deadline, work, None).await.map_err(|e| match e {
            RunError::Db(e) => e,
            e => DbError::host(e.to_string()),
        })
    }

    /// Hands `tx` to the work and ends it as the work decides, by `deadline`;
    /// a commit is `PREPARE TRANSACTION prepare` instead when given.
    async fn run_work<T: Send + 'static>(
        &self,
        tx: PgTx,
        deadline: Instant,
        work: TxWork<T>,
        prepare: Option<String>,
    ) -> Result<Decision<T>, RunError> {
        let pid = tx.pid;
        let local = LocalTx::new(TxInner::Postgres(tx), &self.limits);
        let finished = tokio::time::timeout_at(deadline.into(), work(local)).await;
        let Ok((local, decision)) = finished else {
            // The work, and with it the connection, is gone; stop its statement.
            self.cancel(pid);
            return Err(DbError::host("deadline exceeded: the branch ran past its deadline".to_owned()).into());
        };
        let Some(LocalTx { inner: TxInner::Postgres(tx), .. }) = local else {
            return Err(DbError::host("the transaction was lost; nothing was committed".to_owned()).into());
        };
        match decision {
            Decision::Commit(value) => {
                match prepare {
                    Some(xid) => tx.end(&format!("PREPARE TRANSACTION '{xid}'")).await?,
                    None => tx.commit().await?,
                }
                Ok(Decision::Commit(value))
            }
            Decision::Rollback(value) => {
                tx.rollback().await;
                Ok(Decision::Rollback(value))
            }
        }
    }

    /// A guest connection in a fresh transaction whose timeouts end by `deadline`.
    async fn begin(&self, deadline: Instant) -> Result<PgTx, DbError> {
        let mut tx = self.acquire(deadline).await?;
        let begin = format!("BEGIN; {CLEAN}; {}", local_timeouts(deadline));
        tx.host(|conn| Box::pin(async move { conn.execute(begin.as_str()).await.map(|_| ()) })).await?;
        Ok(tx)
    }

    /// [`PgDb::begin`] for an XA action, whose transaction will end in
    /// `PREPARE TRANSACTION xid`; `None` when `xid` is prepared already.
    /// Postgres refuses to prepare a transaction that touched temporary
    /// objects, and `DISCARD TEMP` inside it would: the connection is cleaned
    /// in the round trip that looks for `xid`, before the transaction begins.
    async fn begin_prepared(&self, deadline: Instant, xid: &str) -> Result<Option<PgTx>, DbError> {
        use sqlx::Row as _;
        let mut tx = self.acquire(deadline).await?;
        // The xid is made of a gid and a branch id ([A-Za-z0-9_.:-]): safe to inline.
        let look = format!("{CLEAN}; SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_xacts WHERE gid = '{xid}')");
        let rows = tx.host(|conn| Box::pin(async move { conn.fetch_all(look.as_str()).await })).await?;
        let prepared = match rows.last() {
            Some(row) => row.try_get::<bool, _>(0)?,
            None => return Err(DbError::host("looking for a prepared transaction returned nothing".to_owned())),
        };
        if prepared {
            // Not in a transaction: the connection goes back to the pool.
            drop(tx.conn.take());
            return Ok(None);
        }
        let begin = format!("BEGIN; {}", local_timeouts(deadline));
        tx.host(|conn| Box::pin(async move { conn.execute(begin.as_str()).await.map(|_| ()) })).await?;
        Ok(Some(tx))
    }

    /// A guest connection from the pool, within `deadline`.
    async fn acquire(&self, deadline: Instant) -> Result<PgTx, DbError> {
        let acquired = tokio::time::timeout_at(deadline.into(), self.guest.acquire()).await;
        let conn = acquired
            .map_err(|_| DbError::host("deadline exceeded while waiting for a database connection".to_owned()))??;
        Ok(PgTx { conn: Some(conn), statement_failed: false, pid: 0, seal: None, key: self.key.clone() })
    }

    /// Cancels the statement a guest connection runs (it is closed anyway).
    fn cancel(&self, pid: i32) {
        if pid == 0 {
            return;
        }
        let owner = self.owner.clone();
        tokio::spawn(async move {
            if let Err(e) = sqlx::query("SELECT pg_cancel_backend($1)").bind(pid).execute(&owner).await {
                tracing::warn!(pid, error = %e, "could not cancel a branch's statement after its deadline");
            }
        });
    }
}

#[cfg(test)]
impl PgDb {
    pub(super) async fn barrier_rows(&self, gid: &str, branch: &str) -> Vec<(String, String)> {
        sqlx::query_as(
            "SELECT op::text, reason::text FROM wasmtx.barrier WHERE gid = $1 AND branch_id = $2 ORDER BY op",
        )
        .bind(gid)
        .bind(branch)
        .fetch_all(&self.owner)
        .await
        .expect("read barrier rows")
    }
}

#[cfg(test)]
impl PgTx {
    /// Runs `sql` as the host would, bypassing the statement check: what a
    /// hole in that check would let a guest do.
    pub(super) async fn unchecked(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn()?.execute(sql).await.map(|_| ()).map_err(DbError::from)
    }
}

/// Creates or refreshes the schema, functions and guest role, in one
/// transaction serialised across processes by an advisory lock.
async fn set_up(conn: &mut PgConnection) -> Result<Setup, DatabaseError> {
    let fail = |what: &str, e: sqlx::Error| {
        DatabaseError::Unavailable(format!("setting up the database for guests: {what}: {e}"))
    };
    let mut tx = conn.begin().await.map_err(|e| fail("begin", e))?;
    sqlx::query("SELECT pg_advisory_xact_lock(7426930001)").execute(&mut *tx).await.map_err(|e| fail("lock", e))?;
    let (database, is_super, can_create_roles): (String, bool, bool) = sqlx::query_as(
        "SELECT current_database()::text, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| fail("reading the owner's rights", e))?;
    tx.execute("CREATE SCHEMA IF NOT EXISTS wasmtx").await.map_err(|e| fail("creating the schema wasmtx", e))?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS wasmtx.host (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL, \
         key text NOT NULL, key_hash bytea NOT NULL, guest_role text NOT NULL, guest_password text NOT NULL)",
    )
    .await
    .map_err(|e| fail("creating wasmtx.host", e))?;
    let key = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let password = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO wasmtx.host VALUES (1, 0, $1, sha256(convert_to($1, 'UTF8')), $2, $3) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&key)
    .bind(guest_role_name(&database))
    .bind(&password)
    .execute(&mut *tx)
    .await
    .map_err(|e| fail("recording the host key", e))?;
    let (version, key, role, password): (i32, String, String, String) =
        sqlx::query_as("SELECT version, key, guest_role, guest_password FROM wasmtx.host WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| fail("reading the host key", e))?;
    if version < SETUP_VERSION {
        for sql in SETUP {
            tx.execute(*sql).await.map_err(|e| fail("creating the barrier and host functions", e))?;
        }
        sqlx::query("UPDATE wasmtx.host SET version = $1")
            .bind(SETUP_VERSION)
            .execute(&mut *tx)
            .await
            .map_err(|e| fail("recording the setup version", e))?;
    }

    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(&role)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| fail("looking up the guest role", e))?;
    // `role` is [a-z0-9_] (see guest_role_name) and the password hex: safe to inline.
    let attributes =
        format!("LOGIN PASSWORD '{password}' NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS");
    match (exists, is_super || can_create_roles) {
        (false, true) => {
            tx.execute(format!("CREATE ROLE {role} {attributes}").as_str())
                .await
                .map_err(|e| fail("creating the guest role", e))?;
        }
        (true, true) => {
            tx.execute(format!("ALTER ROLE {role} {attributes}").as_str())
                .await
                .map_err(|e| fail("refreshing the guest role", e))?;
        }
        (false, false) => {
            return Err(DatabaseError::Unavailable(format!(
                "the guest role {role} does not exist and the URL's user may not create it: connect once as a \
                 user with CREATEROLE (or create the role: CREATE ROLE {role} LOGIN ...), see the README's \
                 security model"
            )));
        }
        (true, false) => {}
    }
    for grant in [
        format!("GRANT CONNECT ON DATABASE \"{}\" TO {role}", database.replace('"', "\"\"")),
        format!("GRANT USAGE, CREATE ON SCHEMA public TO {role}"),
        format!("GRANT USAGE ON SCHEMA wasmtx TO {role}"),
        format!("GRANT EXECUTE ON FUNCTION wasmtx.enter(text, text, text, text, text, text, text, jsonb) TO {role}"),
        format!("GRANT EXECUTE ON FUNCTION wasmtx.record_output(text, text, text, bytea) TO {role}"),
    ] {
        tx.execute(grant.as_str()).await.map_err(|e| fail("granting the guest role its rights", e))?;
    }
    if !is_super {
        // To cancel a guest's statement after its deadline.
        tx.execute(format!("GRANT {role} TO CURRENT_USER").as_str())
            .await
            .map_err(|e| fail("joining the guest role", e))?;
    }
    tx.commit().await.map_err(|e| fail("commit", e))?;
    Ok(Setup { key, role, password })
}

/// What the commit of transaction `txid` sets `wasmtx.sealed` to, and the
/// barrier's commit trigger expects: hex SHA-256 of `key:txid`.
fn seal_token(key: &str, txid: i64) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(format!("{key}:{txid}").as_bytes()))
}

/// `wasmtx_guest_<database>`, or with a hash of the name when it is long or
/// not plain `[a-z0-9_]` (role names are cluster-wide, at most 63 bytes).
fn guest_role_name(database: &str) -> String {
    let plain =
        database.len() <= 48 && database.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        format!("wasmtx_guest_{database}")
    } else {
        let digest = crate::model::Digest::of(database.as_bytes());
        let hex = digest.as_str().trim_start_matches("sha256:");
        format!("wasmtx_guest_{}", &hex[..16])
    }
}

fn unavailable(e: sqlx::Error) -> DatabaseError {
    DatabaseError::Unavailable(match e.as_database_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    })
}

/// One open branch transaction on a guest connection (closed, not pooled,
/// when dropped before it ended).
pub(super) struct PgTx {
    conn: Option<PoolConnection<Postgres>>,
    /// A statement failed, so Postgres may have aborted the transaction (unless
    /// the guest rolled back to a savepoint). Checked before committing.
    statement_failed: bool,
    pid: i32,
    /// Set once the barrier was entered: what the commit seals with.
    seal: Option<String>,
    /// The host key, for host functions called in the transaction.
    key: Arc<str>,
}

impl Drop for PgTx {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            // Mid-transaction: Postgres rolls back when the connection closes.
            conn.close_on_drop();
        }
    }
}

type HostCall<'c, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

impl PgTx {
    fn conn(&mut self) -> Result<&mut PgConnection, DbError> {
        self.conn.as_deref_mut().ok_or_else(|| DbError::host("the transaction has ended".to_owned()))
    }

    /// A host statement: on failure the connection is not trusted again.
    async fn host<T>(
        &mut self,
        call: impl for<'c> FnOnce(&'c mut PgConnection) -> HostCall<'c, T>,
    ) -> Result<T, DbError> {
        let conn = self.conn()?;
        match call(conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                if let Some(mut conn) = self.conn.take() {
                    conn.close_on_drop();
                }
                Err(e.into())
            }
        }
    }

    async fn enter(
        &mut self,
        key: &str,
        barrier: &BarrierKey,
        progress: Option<String>,
    ) -> Result<(i32, i32, i32, i64), DbError> {
        let key = key.to_owned();
        let b = barrier.clone();
        self.host(move |conn| {
            Box::pin(async move {
                sqlx::query_as("SELECT * FROM wasmtx.enter($1, $2, $3, $4, $5, $6, $7, $8::jsonb)")
                    .bind(key)
                    .bind(b.trans_type)
                    .bind(b.gid.as_str())
                    .bind(b.branch_id.as_str())
                    .bind(b.op.as_str())
                    .bind(b.op.origin().map(|o| o.as_str()))
                    .bind(b.barrier_id)
                    .bind(progress)
                    .fetch_one(conn)
                    .await
            })
        })
        .await
    }

    /// Records a step's output through `wasmtx.record_output`.
    pub(super) async fn record_output(&mut self, barrier: &BarrierKey, output: &[u8]) -> Result<(), DbError> {
        let key = self.key.to_string();
        let (gid, branch_id) = (barrier.gid.as_str().to_owned(), barrier.branch_id.as_str().to_owned());
        let output = output.to_vec();
        self.host(move |conn| {
            Box::pin(async move {
                sqlx::query("SELECT wasmtx.record_output($1, $2, $3, $4)")
                    .bind(key)
                    .bind(gid)
                    .bind(branch_id)
                    .bind(output)
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .await
    }

    async fn backend_pid(&mut self) -> Result<i32, DbError> {
        self.host(|conn| Box::pin(async move { sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(conn).await }))
            .await
    }

    /// Remembers a failed statement before passing its result on.
    fn note<T>(&mut self, result: Result<T, DbError>) -> Result<T, DbError> {
        self.statement_failed |= result.is_err();
        result
    }

    pub(super) async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        statement::check_postgres(sql)?;
        let text = value::pg_statement_text(sql, params);
        let args = value::pg_arguments(params)?;
        let result = sqlx::query_with(&text, args).execute(self.conn()?).await;
        self.note(result.map(|r| r.rows_affected()).map_err(DbError::from))
    }

    pub(super) async fn query(&mut self, sql: &str, params: &[Value], budget: &GuestLimits) -> Result<Rows, DbError> {
        statement::check_postgres(sql)?;
        let result = query(self.conn()?, sql, params, budget).await;
        self.note(result)
    }

    async fn commit(self) -> Result<(), RunError> {
        self.end("COMMIT").await
    }

    /// Seals (when the barrier was entered) and ends the transaction with
    /// `last` (`COMMIT`, or `PREPARE TRANSACTION …` for XA) in one round trip;
    /// after a failed statement, first checks that the transaction is not
    /// aborted, since COMMIT would then roll back and still "succeed".
    async fn end(mut self, last: &str) -> Result<(), RunError> {
        if self.statement_failed {
            let check = self.conn()?.execute("SELECT 1").await;
            if let Err(e) = check {
                let aborted = DbError::from(e);
                self.rollback().await;
                if aborted.code.as_deref() == Some("25P02") {
                    return Err(DbError {
                        code: aborted.code,
                        message: "not committed: an earlier statement failed and aborted the transaction (roll \
                                  back to a savepoint to recover from an expected error); nothing was committed"
                            .to_owned(),
                    }
                    .into());
                }
                return Err(aborted.into());
            }
        }
        // The token is hex, so it is safe to inline; it is worth nothing in
        // any other transaction.
        let commit = match self.seal.take() {
            Some(token) => format!("SELECT set_config('wasmtx.sealed', '{token}', true); {last}"),
            None => last.to_owned(),
        };
        self.host(|conn| Box::pin(async move { conn.execute(commit.as_str()).await.map(|_| ()) })).await?;
        // Ended cleanly: the connection goes back to the pool.
        drop(self.conn.take());
        Ok(())
    }

    async fn rollback(mut self) {
        if self.host(|conn| Box::pin(async move { conn.execute("ROLLBACK").await.map(|_| ()) })).await.is_ok() {
            drop(self.conn.take());
        }
    }
}

/// Prepares (for the column descriptions), then streams the rows, stopping
/// at the invocation's result limits.
async fn query(conn: &mut PgConnection, sql: &str, params: &[Value], budget: &GuestLimits) -> Result<Rows, DbError> {
    let text = value::pg_statement_text(sql, params);
    // Preparing first (a cache hit after the first time) gives the column
    // descriptions, so unsupported types are refused before the statement runs
    // and an empty result still has column names. The query reuses the statement.
    let statement = conn.prepare_with(&text, &value::pg_parameter_types(params)).await?;
    let columns = value::PgColumns::describe(statement.columns())?;
    let args = value::pg_arguments(params)?;
    let mut stream = sqlx::query_with(&text, args).fetch(&mut *conn);
    let (mut values, mut bytes) = (Vec::new(), 0u64);
    while let Some(row) = stream.try_next().await? {
        if values.len() as u64 >= budget.rows {
            return Err(DbError::host(format!(
                "query results exceed the limit of rows one invocation may read ({} left)",
                budget.rows
            )));
        }
        let (row, size) = columns.decode_row(&row)?;
        bytes += size;
        if bytes > budget.bytes {
            return Err(DbError::host(format!(
                "query results exceed the limit of bytes one invocation may read ({} left)",
                budget.bytes
            )));
        }
        values.push(row);
    }
    drop(stream);
    Ok(Rows { columns: columns.into_names(), values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_role_names_are_plain_and_short() {
        assert_eq!(guest_role_name("bank"), "wasmtx_guest_bank");
        let long = guest_role_name(&"x".repeat(60));
        assert!(long.starts_with("wasmtx_guest_") && long.len() == 13 + 16, "{long}");
        let odd = guest_role_name("Shop-DB");
        assert!(odd.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{odd}");
    }
}
