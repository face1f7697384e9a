//! Redis business databases (`--database NAME=redis://host:port/DB`): the
//! `kv` interface's local transaction and the barrier, kept in Redis.
//!
//! A branch's local transaction is Redis's optimistic one. The host `WATCH`es
//! the barrier keys of the op and reads them: a key already there means the
//! op ran (a duplicate); a compensation whose origin key is missing is a null
//! compensation. Otherwise the guest's operations run on copies of the keys
//! it touches, each loaded and `WATCH`ed at its first touch (`kv`); nothing
//! reaches Redis until the work says commit, when one `MULTI`/`EXEC` writes
//! every changed key together with the op's barrier key (and a workflow
//! step's output). If anything watched changed meanwhile, `EXEC` does
//! nothing and the op fails with a serialization failure (code `40001`),
//! which the engine retries like any other; its next run finds the barrier
//! key if a duplicate won. So the barrier's exactly-once promise holds as on
//! SQL databases: the barrier key is written exactly when the writes are.
//!
//! Confinement: guests never send Redis commands; they name keys, which the
//! host prefixes with the binding's data prefix (`?prefix=`, by default the
//! binding's name and a colon). The host's own keys (barrier, step
//! outputs) live under `wasmtx:<data prefix>`; no data prefix may start
//! with `wasmtx:` or be a start of it, so no guest key is ever a host key,
//! of its own binding or another's.
//! Barrier keys expire after `?barrier_ttl=` seconds (7 days by default),
//! which bounds how late a duplicate may arrive and still be caught.
//!
//! Connections: at most `postgres_connections` per binding, each used by one
//! branch at a time (a `WATCH` belongs to its connection), returned only
//! when known clean; every command ends by the branch's deadline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{Cmd, Pipeline, Value as RValue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::kv::{Held, KeyState, KvAnswer, KvOp, Write, kv_error};
use super::{
    BarrierKey, BarrierVerdict, BranchRun, DatabaseError, DbError, DbLimits, Decision, LocalTx, RunError, TxInner,
    TxWork,
};
use crate::model::{BranchId, Gid, Op};
use crate::store::Progress;

/// Where the host's keys live, on every binding: `wasmtx:<data prefix>`.
const HOST_SPACE: &str = "wasmtx:";
/// How long barrier keys (and step outputs) live, unless `?barrier_ttl=` says otherwise.
const DEFAULT_BARRIER_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a host read outside a branch (a step's output) may take.
const HOST_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads one key whole, with its kind, in one round trip (after its `WATCH`):
/// `{kind}`, `{kind, value}` or `{kind, 'big'}` when it holds more than
/// ARGV[1] elements or ARGV[2] bytes of string.
const LOAD: &str = r#"
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'string' then
  if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[2]) then return {t, 'big'} end
  return {t, redis.call('GET', KEYS[1])}
elseif t == 'hash' then
  if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[1]) then return {t, 'big'} end
  return {t, redis.call('HGETALL', KEYS[1])}
elseif t == 'zset' then
  if redis.call('ZCARD', KEYS[1]) > tonumber(ARGV[1]) then return {t, 'big'} end
  return {t, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')}
end
return {t}
"#;

/// The message back-check: the barrier key with `rollback` unless there, then its value.
const QUERY_PREPARED: &str = r#"
redis.call('SET', KEYS[1], 'rollback', 'NX', 'EX', ARGV[1])
return redis.call('GET', KEYS[1])
"#;

#[derive(Clone)]
pub(super) struct RedisDb {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    idle: Mutex<Vec<MultiplexedConnection>>,
    slots: Arc<Semaphore>,
    /// Prepended to every guest key.
    data_prefix: String,
    /// Prepended to the host's keys; never overlapping `data_prefix`.
    host_prefix: String,
    barrier_ttl: Duration,
    limits: DbLimits,
    /// `host:port/db`, to tell bindings of one Redis apart.
    place: String,
}

/// What a Redis URL says beyond what the client takes.
#[derive(Debug, PartialEq)]
struct Settings {
    client_url: String,
    data_prefix: String,
    host_prefix: String,
    barrier_ttl: Duration,
    place: String,
}

fn settings(url: &str, name: Option<&str>) -> Result<Settings, DatabaseError> {
    let config = |m: String| DatabaseError::Config(m);
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut prefix = None;
    let mut ttl = DEFAULT_BARRIER_TTL;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "prefix" => prefix = Some(v.to_owned()),
            "barrier_ttl" => {
                let secs: u64 = v.parse().ok().filter(|s| *s >= 60).ok_or_else(|| {
                    config(format!(
                        "barrier_ttl={v:?}: give whole seconds, at least 60 (the default is 604800, 7 days)"
                    ))
                })?;
                ttl = Duration::from_secs(secs);
            }
            other => {
                return Err(config(format!(
                    "unknown Redis URL parameter {other:?}: the host takes prefix and barrier_ttl"
                )));
            }
        }
    }
    let data_prefix = match (prefix, name) {
        (Some(p), _) => p,
        (None, Some(name)) => format!("{name}:"),
        (None, None) => return Err(config("a Redis URL not bound by name needs ?prefix=… for its keys".to_owned())),
    };
    // Guest keys never start with `wasmtx:`, where every binding's host keys
    // live: the data prefix may neither start with it nor be a start of it.
    if data_prefix.is_empty() || data_prefix.starts_with(HOST_SPACE) || HOST_SPACE.starts_with(&data_prefix) {
        return Err(config(format!(
            "prefix={data_prefix:?} overlaps the host's keys ({HOST_SPACE:?}…): choose a non-empty prefix that \
             neither starts with {HOST_SPACE:?} nor is the start of it"
        )));
    }
    let host_prefix = format!("{HOST_SPACE}{data_prefix}");
    if data_prefix.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'%') {
        return Err(config(format!("prefix={data_prefix:?}: no spaces, control characters or escapes")));
    }
    let rest = base
        .strip_prefix("redis://")
        .ok_or_else(|| config("a Redis URL starts with redis:// (TLS, rediss://, is not supported yet)".to_owned()))?;
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let place = if host.contains('/') { host.to_owned() } else { format!("{host}/0") };
    Ok(Settings { client_url: base.to_owned(), data_prefix, host_prefix, barrier_ttl: ttl, place })
}

impl RedisDb {
    /// Connects (and pings) Redis 6.2 or later; `name` is the binding's
    /// name, which the default prefixes derive from.
    pub(super) async fn connect(url: &str, name: Option<&str>, limits: DbLimits) -> Result<RedisDb, DatabaseError> {
        let s = settings(url, name)?;
        let client =
            redis::Client::open(s.client_url.as_str()).map_err(|e| DatabaseError::Config(format!("Redis URL: {e}")))?;
        let db = RedisDb {
            inner: Arc::new(Inner {
                client,
                idle: Mutex::new(Vec::new()),
                slots: Arc::new(Semaphore::new(limits.postgres_connections.max(1) as usize)),
                data_prefix: s.data_prefix,
                host_prefix: s.host_prefix,
                barrier_ttl: s.barrier_ttl,
                limits,
                place: s.place,
            }),
        };
        let unavailable = |e: DbError| DatabaseError::Unavailable(format!("Redis: {}", e.message));
        let mut conn = db.acquire(Instant::now() + Duration::from_secs(10)).await.map_err(unavailable)?;
        let info: String = conn.send(redis::cmd("INFO").arg("server")).await.map_err(unavailable)?;
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .map(|v| v.trim().split('.').filter_map(|p| p.parse::<u32>().ok()).collect::<Vec<_>>())
            .unwrap_or_default();
        if version.as_slice() < [6, 2].as_slice() {
            return Err(DatabaseError::Unavailable(format!(
                "Redis {} is too old: the host needs 6.2 or later (SET with KEEPTTL, Lua scripts)",
                version.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
            )));
        }
        conn.release();
        Ok(db)
    }

    /// `host:port/db` and the data prefix, to refuse two bindings that share keys.
    pub(super) fn keyspace(&self) -> (&str, &str) {
        (&self.inner.place, &self.inner.data_prefix)
    }

    pub(super) async fn close(&self) {
        self.inner.idle.lock().expect("idle connections").clear();
        self.inner.slots.close();
    }

    async fn acquire(&self, deadline: Instant) -> Result<Conn, DbError> {
        let permit = tokio::time::timeout_at(deadline.into(), self.inner.slots.clone().acquire_owned())
            .await
            .map_err(|_| {
                kv_error(
                    "UNAVAILABLE",
                    "timed out waiting for a connection to the Redis business database (are other branches holding \
                     them all?)"
                        .to_owned(),
                )
            })?
            .map_err(|_| kv_error("UNAVAILABLE", "the Redis business database is closed".to_owned()))?;
        let idle = self.inner.idle.lock().expect("idle connections").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => tokio::time::timeout_at(deadline.into(), self.inner.client.get_multiplexed_async_connection())
                .await
                .map_err(|_| kv_error("UNAVAILABLE", "timed out connecting to Redis".to_owned()))?
                .map_err(redis_error)?,
        };
        Ok(Conn { conn: Some(conn), deadline, _permit: permit, db: self.inner.clone() })
    }

    fn barrier_key(&self, key: &BarrierKey, op: Op) -> String {
        format!("{}b:{}:{}:{}:{}", self.inner.host_prefix, key.gid, key.branch_id, op.as_str(), key.barrier_id)
    }

    fn output_key(&self, gid: &Gid, branch_id: &BranchId) -> String {
        format!("{}o:{gid}:{branch_id}", self.inner.host_prefix)
    }

    fn ttl_secs(&self) -> u64 {
        self.inner.barrier_ttl.as_secs()
    }

    pub(super) async fn run_branch<T: Send + 'static>(
        &self,
        key: BarrierKey,
        deadline: Instant,
        progress: Option<Progress>,
        work: TxWork<T>,
    ) -> Result<BranchRun<T>, RunError> {
        if progress.is_some() {
            return Err(DbError::host("a Redis business database never shares the store".to_owned()).into());
        }
        let mut conn = self.acquire(deadline).await?;
        let op_key = self.barrier_key(&key, key.op);
        let origin_key = key.op.origin().map(|origin| self.barrier_key(&key, origin));
        let mut look = redis::pipe();
        look.cmd("WATCH").arg(&op_key).arg(origin_key.as_deref().unwrap_or(&op_key)).ignore();
        look.cmd("MGET").arg(&op_key).arg(origin_key.as_deref().unwrap_or(&op_key));
        let (op_row, origin_row): (Option<Vec<u8>>, Option<Vec<u8>>) =
            conn.send_pipe::<(Vec<Option<Vec<u8>>>,)>(&look).await.map(|(rows,)| {
                let mut rows = rows.into_iter();
                (rows.next().flatten(), rows.next().flatten())
            })?;
        let reason = key.op.as_str().as_bytes().to_vec();
        let ttl = self.ttl_secs();
        if op_row.is_some() {
            conn.unwatch().await?;
            return Ok(BranchRun::Skipped(BarrierVerdict::Duplicate));
        }
        if let Some(origin_key) = origin_key.filter(|_| origin_row.is_none()) {
            // A null compensation: its origin key now blocks the late origin op.
            let host = vec![(origin_key, reason.clone()), (op_key, reason)];
            conn.exec(&host, &[], ttl).await?;
            return Ok(BranchRun::Skipped(BarrierVerdict::NullCompensation));
        }
        let tx = RedisTx::new(self.clone(), conn, vec![(op_key, reason)]);
        Ok(BranchRun::Ran(self.run_work(tx, deadline, work).await?))
    }

    pub(super) async fn run_local<T: Send + 'static>(
        &self,
        deadline: Instant,
        work: TxWork<T>,
    ) -> Result<Decision<T>, DbError> {
        let conn = self.acquire(deadline).await?;
        self.run_work(RedisTx::new(self.clone(), conn, Vec::new()), deadline, work).await
    }

    async fn run_work<T: Send + 'static>(
        &self,
        tx: RedisTx,
        deadline: Instant,
        work: TxWork<T>,
    ) -> Result<Decision<T>, DbError> {
        let local = LocalTx::new(TxInner::Redis(tx), &self.inner.limits);
        let Ok((local, decision)) = tokio::time::timeout_at(deadline.into(), work(local)).await else {
            return Err(DbError::host("deadline exceeded: the branch ran past its deadline".to_owned()));
        };
        let Some(LocalTx { inner: TxInner::Redis(tx), .. }) = local else {
            return Err(DbError::host("the transaction was lost; nothing was committed".to_owned()));
        };
        match decision {
            Decision::Commit(value) => {
                tx.commit().await?;
                Ok(Decision::Commit(value))
            }
            Decision::Rollback(value) => {
                tx.rollback().await;
                Ok(Decision::Rollback(value))
            }
        }
    }

    pub(super) async fn query_prepared(&self, key: BarrierKey, deadline: Instant) -> Result<bool, DbError> {
        let mut conn = self.acquire(deadline).await?;
        let mut check = redis::cmd("EVAL");
        check.arg(QUERY_PREPARED).arg(1).arg(self.barrier_key(&key, key.op)).arg(self.ttl_secs());
        let reason: Vec<u8> = conn.send(&check).await?;
        conn.release();
        Ok(reason != b"rollback")
    }

    pub(super) async fn step_output(&self, gid: &Gid, branch_id: &BranchId) -> Result<Option<Vec<u8>>, DbError> {
        let mut conn = self.acquire(Instant::now() + HOST_READ_TIMEOUT).await?;
        let output: Option<Vec<u8>> = conn.send(redis::cmd("GET").arg(self.output_key(gid, branch_id))).await?;
        conn.release();
        Ok(output)
    }
}

#[cfg(test)]
impl RedisDb {
    /// The barrier keys of a branch as `(op, reason)`, sorted by op, read as the host.
    pub(super) async fn barrier_rows(&self, gid: &str, branch: &str) -> Vec<(String, String)> {
        let mut conn = self.acquire(Instant::now() + Duration::from_secs(5)).await.expect("connection");
        let pattern = format!("{}b:{gid}:{branch}:*", self.inner.host_prefix);
        let keys: Vec<String> = conn.send(redis::cmd("KEYS").arg(&pattern)).await.expect("keys");
        let mut rows = Vec::new();
        for key in keys {
            let reason: String = conn.send(redis::cmd("GET").arg(&key)).await.expect("get");
            let op = key.rsplit(':').nth(1).expect("op").to_owned();
            rows.push((op, reason));
        }
        rows.sort();
        conn.release();
        rows
    }

    /// The Redis key a guest key is stored under.
    pub(super) fn data_key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.data_prefix)
    }

    /// Runs a raw command as the host (tests look behind the guest's back).
    pub(super) async fn raw<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> T {
        let mut conn = self.acquire(Instant::now() + Duration::from_secs(5)).await.expect("connection");
        let answer = conn.send(cmd).await.expect("raw command");
        conn.release();
        answer
    }
}

/// One pooled connection, used by one branch. Dropped (not returned) unless
/// [`Conn::release`]d, so a connection left mid-command or with keys watched
/// never serves another branch.
struct Conn {
    conn: Option<MultiplexedConnection>,
    deadline: Instant,
    _permit: OwnedSemaphorePermit,
    db: Arc<Inner>,
}

impl Conn {
    async fn send<T: redis::FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, DbError> {
        let conn = self.conn.as_mut().ok_or_else(|| kv_error("UNAVAILABLE", "the connection was lost".to_owned()))?;
        match tokio::time::timeout_at(self.deadline.into(), cmd.query_async(conn)).await {
            Ok(answer) => answer.map_err(|e| self.failed(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    async fn send_pipe<T: redis::FromRedisValue>(&mut self, pipe: &Pipeline) -> Result<T, DbError> {
        let conn = self.conn.as_mut().ok_or_else(|| kv_error("UNAVAILABLE", "the connection was lost".to_owned()))?;
        match tokio::time::timeout_at(self.deadline.into(), pipe.query_async(conn)).await {
            Ok(answer) => answer.map_err(|e| self.failed(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn failed(&mut self, e: redis::RedisError) -> DbError {
        if e.is_io_error() || e.is_timeout() || e.is_unrecoverable_error() {
            self.conn = None;
        }
        redis_error(e)
    }

    fn timed_out(&mut self) -> DbError {
        self.conn = None;
        kv_error("UNAVAILABLE", "deadline exceeded: Redis did not answer in time".to_owned())
    }

    async fn unwatch(&mut self) -> Result<(), DbError> {
        let () = self.send(&redis::cmd("UNWATCH")).await?;
        self.release();
        Ok(())
    }

    /// Writes `host` keys (`SET … EX ttl`) and `data` commands in one
    /// `MULTI`/`EXEC`; a serialization failure if something watched changed.
    async fn exec(&mut self, host: &[(String, Vec<u8>)], data: &[Cmd], ttl: u64) -> Result<(), DbError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (key, value) in host {
            pipe.cmd("SET").arg(key).arg(value).arg("NX").arg("EX").arg(ttl).ignore();
        }
        for cmd in data {
            pipe.add_command(cmd.clone()).ignore();
        }
        // An atomic pipeline answers nil when `EXEC` did nothing.
        let done: Option<()> = self.send_pipe(&pipe).await?;
        if done.is_none() {
            self.release();
            return Err(DbError {
                code: Some("40001".to_owned()),
                message: "a key this branch read (or its barrier key) changed before it committed; nothing was \
                          written, and the op will run again"
                    .to_owned(),
            });
        }
        self.release();
        Ok(())
    }

    /// Back to the pool: only after a command that leaves nothing watched.
    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.db.idle.lock().expect("idle connections").push(conn);
        }
    }
}

fn redis_error(e: redis::RedisError) -> DbError {
    kv_error("UNAVAILABLE", format!("Redis: {e}"))
}

/// A branch's local transaction on Redis: the keys it touched, as loaded and
/// as they are now (see `kv`).
pub(super) struct RedisTx {
    db: RedisDb,
    conn: Conn,
    keys: std::collections::BTreeMap<String, KeyState>,
    /// Host keys written with the commit: the barrier key, a step's output.
    host: Vec<(String, Vec<u8>)>,
}

impl RedisTx {
    fn new(db: RedisDb, conn: Conn, host: Vec<(String, Vec<u8>)>) -> Self {
        RedisTx { db, conn, keys: Default::default(), host }
    }

    /// Runs one `kv` operation; `budget` is what the invocation may still read.
    pub(super) async fn apply(
        &mut self,
        op: KvOp,
        budget: &mut crate::sqlite::GuestLimits,
    ) -> Result<KvAnswer, DbError> {
        op.check(self.db.inner.limits.max_bytes)?;
        let key = op.key().to_owned();
        if !self.keys.contains_key(&key) {
            if self.keys.len() as u64 >= self.db.inner.limits.max_rows {
                return Err(kv_error(
                    "LIMIT",
                    format!("an invocation may touch at most {} keys", self.db.inner.limits.max_rows),
                ));
            }
            let held = self.load(&key, budget).await?;
            self.keys.insert(key.clone(), KeyState::loaded(held));
        }
        self.keys.get_mut(&key).expect("loaded").apply(&op)
    }

    async fn load(&mut self, key: &str, budget: &mut crate::sqlite::GuestLimits) -> Result<Held, DbError> {
        let full = format!("{}{key}", self.db.inner.data_prefix);
        let mut pipe = redis::pipe();
        pipe.cmd("WATCH").arg(&full).ignore();
        pipe.cmd("EVAL").arg(LOAD).arg(1).arg(&full).arg(budget.rows).arg(budget.bytes);
        let (answer,): (Vec<RValue>,) = self.conn.send_pipe(&pipe).await?;
        let mut parts = answer.into_iter();
        let kind = match parts.next() {
            Some(RValue::BulkString(k)) => String::from_utf8_lossy(&k).into_owned(),
            other => return Err(DbError::host(format!("Redis: unexpected answer loading {key:?}: {other:?}"))),
        };
        let body = parts.next();
        let too_big = || {
            kv_error(
                "LIMIT",
                format!(
                    "key {key:?} holds more than this invocation may still read ({} elements, {} bytes)",
                    budget.rows, budget.bytes
                ),
            )
        };
        if matches!(&body, Some(RValue::BulkString(b)) if b == b"big") && kind != "string" {
            return Err(too_big());
        }
        let held = match (kind.as_str(), body) {
            ("none", _) => Held::Absent,
            ("string", Some(RValue::BulkString(v))) if v == b"big" => return Err(too_big()),
            ("string", Some(RValue::BulkString(v))) => Held::Str(v),
            ("hash", Some(RValue::Array(items))) => {
                let mut map = std::collections::BTreeMap::new();
                for pair in items.chunks(2) {
                    if let [RValue::BulkString(f), RValue::BulkString(v)] = pair {
                        map.insert(String::from_utf8_lossy(f).into_owned(), v.clone());
                    }
                }
                Held::Hash(map)
            }
            ("zset", Some(RValue::Array(items))) => {
                let mut map = std::collections::BTreeMap::new();
                for pair in items.chunks(2) {
                    if let [RValue::BulkString(m), RValue::BulkString(s)] = pair {
                        let score = std::str::from_utf8(s).ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
                        map.insert(String::from_utf8_lossy(m).into_owned(), score);
                    }
                }
                Held::Zset(map)
            }
            (other, _) => {
                return Err(kv_error(
                    "WRONGTYPE",
                    format!("key {key:?} holds a Redis {other}, which the kv interface does not handle"),
                ));
            }
        };
        if held.elements() > budget.rows || held.size() > budget.bytes {
            return Err(too_big());
        }
        budget.rows -= held.elements();
        budget.bytes -= held.size();
        Ok(held)
    }

    /// Records a workflow step's output, written with the commit (kept if one is there).
    pub(super) fn record_output(&mut self, key: &BarrierKey, output: &[u8]) {
        self.host.push((self.db.output_key(&key.gid, &key.branch_id), output.to_vec()));
    }

    async fn commit(mut self) -> Result<(), DbError> {
        let mut data = Vec::new();
        for (key, state) in &self.keys {
            let full = format!("{}{key}", self.db.inner.data_prefix);
            for write in state.writes() {
                data.push(command(&full, write));
            }
        }
        if data.is_empty() && self.host.is_empty() {
            return self.conn.unwatch().await;
        }
        let ttl = self.db.ttl_secs();
        self.conn.exec(&self.host, &data, ttl).await
    }

    async fn rollback(mut self) {
        // Nothing was written; a failed UNWATCH drops the connection instead.
        let _ = self.conn.unwatch().await;
    }
}

fn command(key: &str, write: Write) -> Cmd {
    let mut cmd;
    match write {
        Write::Del => {
            cmd = redis::cmd("DEL");
            cmd.arg(key);
        }
        Write::Set { value, px, keep_ttl } => {
            cmd = redis::cmd("SET");
            cmd.arg(key).arg(value);
            if let Some(ms) = px {
                cmd.arg("PX").arg(ms);
            } else if keep_ttl {
                cmd.arg("KEEPTTL");
            }
        }
        Write::HSet(fields) => {
            cmd = redis::cmd("HSET");
            cmd.arg(key);
            for (f, v) in fields {
                cmd.arg(f).arg(v);
            }
        }
        Write::HDel(fields) => {
            cmd = redis::cmd("HDEL");
            cmd.arg(key).arg(fields);
        }
        Write::ZAdd(members) => {
            cmd = redis::cmd("ZADD");
            cmd.arg(key);
            for (m, s) in members {
                cmd.arg(s).arg(m);
            }
        }
        Write::ZRem(members) => {
            cmd = redis::cmd("ZREM");
            cmd.arg(key).arg(members);
        }
        Write::PExpire(ms) => {
            cmd = redis::cmd("PEXPIRE");
            cmd.arg(key).arg(ms);
        }
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_prefixes_that_never_overlap_the_hosts_keys() {
        let s = settings("redis://127.0.0.1:6379/2", Some("bank")).unwrap();
        assert_eq!(s.data_prefix, "bank:");
        assert_eq!(s.host_prefix, "wasmtx:bank:");
        assert_eq!(s.place, "127.0.0.1:6379/2");
        assert_eq!(s.barrier_ttl, DEFAULT_BARRIER_TTL);
        let s = settings("redis://:secret@127.0.0.1:6379?prefix=shop/&barrier_ttl=3600", Some("bank")).unwrap();
        assert_eq!((s.data_prefix.as_str(), s.client_url.as_str()), ("shop/", "redis://:secret@127.0.0.1:6379"));
        assert_eq!((s.place.as_str(), s.barrier_ttl), ("127.0.0.1:6379/0", Duration::from_secs(3600)));
        assert_eq!(s.host_prefix, "wasmtx:shop/");
        for bad in [
            "?prefix=",
            "?prefix=wasmtx:",
            "?prefix=wasmtx:bank:x",
            "?prefix=was",
            "?prefix=a%20b",
            "?barrier_ttl=5",
            "?db=1",
        ] {
            let e = settings(&format!("redis://127.0.0.1{bad}"), Some("bank")).unwrap_err();
            assert!(matches!(e, DatabaseError::Config(_)), "{bad}: {e}");
        }
        assert!(settings("redis://127.0.0.1", None).is_err(), "no name and no prefix");
        assert!(settings("rediss://127.0.0.1", Some("bank")).is_err());
    }
}
