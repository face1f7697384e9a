//! Host side of the WIT `kv` interface: forwards the guest's key-value
//! operations to the branch's open local transaction on a Redis database
//! ([`LocalTx::kv`]), which confines the keys and holds the writes until the
//! host commits.

use tracing::Instrument;

use super::HostState;
use super::bindings::kv_branch::wasmtx::runtime::kv::{Host, KvError, SetCondition, SetOptions};
use crate::database::{self, KvAnswer, KvOp};

impl HostState {
    async fn kv(&mut self, op: KvOp) -> Result<KvAnswer, KvError> {
        let Some(tx) = self.tx.as_mut() else {
            return Err(KvError { code: None, message: "no database is available in this context".to_owned() });
        };
        // The `db_call` span names the command, never keys or values (see `crate::telemetry`).
        let span =
            tracing::debug_span!(target: crate::telemetry::SPANS, "db_call", kind = "kv", operation = command(&op));
        tx.kv(op).instrument(span).await.map_err(|e: database::DbError| KvError { code: e.code, message: e.message })
    }
}

/// The Redis command an operation is (a compare-and-set is a script).
fn command(op: &KvOp) -> &'static str {
    match op {
        KvOp::Get { .. } => "GET",
        KvOp::Set { .. } => "SET",
        KvOp::IncrBy { .. } => "INCRBY",
        KvOp::Delete { .. } => "DEL",
        KvOp::CompareAndSet { .. } => "CAS",
        KvOp::HGet { .. } => "HGET",
        KvOp::HSet { .. } => "HSET",
        KvOp::HDel { .. } => "HDEL",
        KvOp::HIncrBy { .. } => "HINCRBY",
        KvOp::HGetAll { .. } => "HGETALL",
        KvOp::ZAdd { .. } => "ZADD",
        KvOp::ZScore { .. } => "ZSCORE",
        KvOp::ZRem { .. } => "ZREM",
        KvOp::ZRangeByScore { .. } => "ZRANGEBYSCORE",
    }
}

fn unexpected(answer: KvAnswer) -> KvError {
    KvError { code: None, message: format!("internal error: unexpected answer {answer:?}") }
}

macro_rules! answer {
    ($self:ident, $op:expr, $variant:ident) => {
        match $self.kv($op).await? {
            KvAnswer::$variant(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    };
}

impl Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        answer!(self, KvOp::Get { key }, Value)
    }

    async fn set(&mut self, key: String, value: Vec<u8>, options: SetOptions) -> Result<bool, KvError> {
        let condition = match options.condition {
            SetCondition::Always => database::SetCondition::Always,
            SetCondition::IfAbsent => database::SetCondition::IfAbsent,
            SetCondition::IfPresent => database::SetCondition::IfPresent,
        };
        answer!(self, KvOp::Set { key, value, ttl_ms: options.ttl_ms, condition }, Done)
    }

    async fn incr_by(&mut self, key: String, delta: i64) -> Result<i64, KvError> {
        answer!(self, KvOp::IncrBy { key, delta }, Int)
    }

    async fn delete(&mut self, key: String) -> Result<bool, KvError> {
        answer!(self, KvOp::Delete { key }, Done)
    }

    async fn compare_and_set(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, KvError> {
        answer!(self, KvOp::CompareAndSet { key, expected, new }, Done)
    }

    async fn hget(&mut self, key: String, field: String) -> Result<Option<Vec<u8>>, KvError> {
        answer!(self, KvOp::HGet { key, field }, Value)
    }

    async fn hset(&mut self, key: String, field: String, value: Vec<u8>) -> Result<bool, KvError> {
        answer!(self, KvOp::HSet { key, field, value }, Done)
    }

    async fn hdel(&mut self, key: String, field: String) -> Result<bool, KvError> {
        answer!(self, KvOp::HDel { key, field }, Done)
    }

    async fn hincr_by(&mut self, key: String, field: String, delta: i64) -> Result<i64, KvError> {
        answer!(self, KvOp::HIncrBy { key, field, delta }, Int)
    }

    async fn hgetall(&mut self, key: String) -> Result<Vec<(String, Vec<u8>)>, KvError> {
        answer!(self, KvOp::HGetAll { key }, Fields)
    }

    async fn zadd(&mut self, key: String, member: String, score: f64) -> Result<bool, KvError> {
        answer!(self, KvOp::ZAdd { key, member, score }, Done)
    }

    async fn zscore(&mut self, key: String, member: String) -> Result<Option<f64>, KvError> {
        answer!(self, KvOp::ZScore { key, member }, Score)
    }

    async fn zrem(&mut self, key: String, member: String) -> Result<bool, KvError> {
        answer!(self, KvOp::ZRem { key, member }, Done)
    }

    async fn zrange_by_score(
        &mut self,
        key: String,
        min: f64,
        max: f64,
        limit: u32,
    ) -> Result<Vec<(String, f64)>, KvError> {
        answer!(self, KvOp::ZRangeByScore { key, min, max, limit }, Members)
    }
}
