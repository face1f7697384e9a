//! The branch's key-value store, for a module bound to a Redis database:
//! strings, counters, hashes and sorted sets over the WIT `kv` import.
//!
//! Every call is part of the invocation's local transaction: reads see the
//! store as it was when the key was first touched plus this invocation's
//! own writes; the writes land all together, with the barrier's record of
//! the op, only if the branch function returns `Ok`. If another writer
//! changed a key this invocation read, nothing lands and the host runs the
//! op again later, so read-modify-write code needs no locks.
//!
//! Keys are the module's own: the host puts them under the binding's
//! prefix, and nothing outside it can be named.
//!
//! As with [`db`](crate::db), `?` on a [`KvError`] gives
//! [`BranchError::Retry`](crate::BranchError): check errors with business
//! meaning first.
//!
//! ```no_run
//! use wasmtx_guest::{kv, BranchError};
//!
//! fn debit(account: &str, amount: i64) -> Result<(), BranchError> {
//!     let balance = kv::get_i64(account)?.ok_or_else(|| BranchError::failure(format!("no account {account}")))?;
//!     if balance < amount {
//!         return Err(BranchError::failure(format!("insufficient funds in {account}")));
//!     }
//!     kv::incr_by(account, -amount)?;
//!     Ok(())
//! }
//! ```

use std::fmt;

/// A `kv` call that failed. `code` tells kinds apart: "WRONGTYPE" (the key
/// holds another kind of value), "NOTINT" (not an integer, or an overflow),
/// "NOTFLOAT", "LIMIT" (past a size limit), "UNAVAILABLE" (the store failed:
/// transient).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvError {
    pub code: Option<String>,
    pub message: String,
}

impl KvError {
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The key holds another kind of value than the call works on.
    pub fn is_wrong_type(&self) -> bool {
        self.code() == Some("WRONGTYPE")
    }

    /// The value is not an integer, or the arithmetic would overflow.
    pub fn is_not_an_integer(&self) -> bool {
        self.code() == Some("NOTINT")
    }
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "kv error {code}: {}", self.message),
            None => write!(f, "kv error: {}", self.message),
        }
    }
}

impl std::error::Error for KvError {}

/// When [`set_with`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Condition {
    /// Always.
    #[default]
    Always,
    /// Only if the key does not exist.
    IfAbsent,
    /// Only if the key exists.
    IfPresent,
}

/// Options of [`set_with`]: an expiry and a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SetOptions {
    /// Expire after this many milliseconds; `None` removes any expiry.
    pub ttl_ms: Option<u64>,
    pub condition: Condition,
}

/// The string value of `key`.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    host::get(key)
}

/// The value of `key` read as a decimal integer (as `incr_by` writes them).
pub fn get_i64(key: &str) -> Result<Option<i64>, KvError> {
    match get(key)? {
        None => Ok(None),
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| KvError { code: Some("NOTINT".into()), message: format!("{key:?} holds no integer") }),
    }
}

/// Sets `key` (no expiry).
pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), KvError> {
    host::set(key, value.as_ref(), SetOptions::default()).map(|_| ())
}

/// Sets `key` with options; false when the condition kept it from being written.
pub fn set_with(key: &str, value: impl AsRef<[u8]>, options: SetOptions) -> Result<bool, KvError> {
    host::set(key, value.as_ref(), options)
}

/// Adds `delta` to the integer in `key` (absent counts as 0); the new value.
pub fn incr_by(key: &str, delta: i64) -> Result<i64, KvError> {
    host::incr_by(key, delta)
}

/// Deletes `key`; false if it did not exist.
pub fn delete(key: &str) -> Result<bool, KvError> {
    host::delete(key)
}

/// Sets `key` to `new` (or deletes it, for `None`) only if it holds
/// `expected` (`None`: absent); true if it did.
pub fn compare_and_set(key: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, KvError> {
    host::compare_and_set(key, expected, new)
}

/// A hash field's value.
pub fn hget(key: &str, field: &str) -> Result<Option<Vec<u8>>, KvError> {
    host::hget(key, field)
}

/// Sets a hash field; true if the field is new.
pub fn hset(key: &str, field: &str, value: impl AsRef<[u8]>) -> Result<bool, KvError> {
    host::hset(key, field, value.as_ref())
}

/// Deletes a hash field; false if it was not there.
pub fn hdel(key: &str, field: &str) -> Result<bool, KvError> {
    host::hdel(key, field)
}

/// Adds `delta` to the integer in a hash field; the new value.
pub fn hincr_by(key: &str, field: &str, delta: i64) -> Result<i64, KvError> {
    host::hincr_by(key, field, delta)
}

/// Every field of a hash, sorted by field.
pub fn hgetall(key: &str) -> Result<Vec<(String, Vec<u8>)>, KvError> {
    host::hgetall(key)
}

/// Adds or updates a sorted-set member; true if it is new.
pub fn zadd(key: &str, member: &str, score: f64) -> Result<bool, KvError> {
    host::zadd(key, member, score)
}

/// A member's score.
pub fn zscore(key: &str, member: &str) -> Result<Option<f64>, KvError> {
    host::zscore(key, member)
}

/// Removes a member; false if it was not there.
pub fn zrem(key: &str, member: &str) -> Result<bool, KvError> {
    host::zrem(key, member)
}

/// Members with `min <= score <= max`, by score then member, at most `limit`.
pub fn zrange_by_score(key: &str, min: f64, max: f64, limit: u32) -> Result<Vec<(String, f64)>, KvError> {
    host::zrange_by_score(key, min, max, limit)
}

#[cfg(target_arch = "wasm32")]
mod host {
    use super::{Condition, KvError, SetOptions};
    use crate::bindings::wasmtx::runtime::kv as wit;

    fn e(e: wit::KvError) -> KvError {
        KvError { code: e.code, message: e.message }
    }

    pub(super) fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
        wit::get(key).map_err(e)
    }

    pub(super) fn set(key: &str, value: &[u8], options: SetOptions) -> Result<bool, KvError> {
        let condition = match options.condition {
            Condition::Always => wit::SetCondition::Always,
            Condition::IfAbsent => wit::SetCondition::IfAbsent,
            Condition::IfPresent => wit::SetCondition::IfPresent,
        };
        wit::set(key, value, wit::SetOptions { ttl_ms: options.ttl_ms, condition }).map_err(e)
    }

    pub(super) fn incr_by(key: &str, delta: i64) -> Result<i64, KvError> {
        wit::incr_by(key, delta).map_err(e)
    }

    pub(super) fn delete(key: &str) -> Result<bool, KvError> {
        wit::delete(key).map_err(e)
    }

    pub(super) fn compare_and_set(key: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, KvError> {
        wit::compare_and_set(key, expected, new).map_err(e)
    }

    pub(super) fn hget(key: &str, field: &str) -> Result<Option<Vec<u8>>, KvError> {
        wit::hget(key, field).map_err(e)
    }

    pub(super) fn hset(key: &str, field: &str, value: &[u8]) -> Result<bool, KvError> {
        wit::hset(key, field, value).map_err(e)
    }

    pub(super) fn hdel(key: &str, field: &str) -> Result<bool, KvError> {
        wit::hdel(key, field).map_err(e)
    }

    pub(super) fn hincr_by(key: &str, field: &str, delta: i64) -> Result<i64, KvError> {
        wit::hincr_by(key, field, delta).map_err(e)
    }

    pub(super) fn hgetall(key: &str) -> Result<Vec<(String, Vec<u8>)>, KvError> {
        wit::hgetall(key).map_err(e)
    }

    pub(super) fn zadd(key: &str, member: &str, score: f64) -> Result<bool, KvError> {
        wit::zadd(key, member, score).map_err(e)
    }

    pub(super) fn zscore(key: &str, member: &str) -> Result<Option<f64>, KvError> {
        wit::zscore(key, member).map_err(e)
    }

    pub(super) fn zrem(key: &str, member: &str) -> Result<bool, KvError> {
        wit::zrem(key, member).map_err(e)
    }

    pub(super) fn zrange_by_score(key: &str, min: f64, max: f64, limit: u32) -> Result<Vec<(String, f64)>, KvError> {
        wit::zrange_by_score(key, min, max, limit).map_err(e)
    }
}

/// Outside the host (native unit tests of a guest crate) every call fails.
#[cfg(not(target_arch = "wasm32"))]
mod host {
    use super::{KvError, SetOptions};

    fn outside() -> KvError {
        KvError {
            code: None,
            message: "wasmtx_guest::kv works only inside the wasmtx host (a wasm32-wasip2 component)".to_owned(),
        }
    }

    pub(super) fn get(_: &str) -> Result<Option<Vec<u8>>, KvError> {
        Err(outside())
    }
    pub(super) fn set(_: &str, _: &[u8], _: SetOptions) -> Result<bool, KvError> {
        Err(outside())
    }
    pub(super) fn incr_by(_: &str, _: i64) -> Result<i64, KvError> {
        Err(outside())
    }
    pub(super) fn delete(_: &str) -> Result<bool, KvError> {
        Err(outside())
    }
    pub(super) fn compare_and_set(_: &str, _: Option<&[u8]>, _: Option<&[u8]>) -> Result<bool, KvError> {
        Err(outside())
    }
    pub(super) fn hget(_: &str, _: &str) -> Result<Option<Vec<u8>>, KvError> {
        Err(outside())
    }
    pub(super) fn hset(_: &str, _: &str, _: &[u8]) -> Result<bool, KvError> {
        Err(outside())
    }
    pub(super) fn hdel(_: &str, _: &str) -> Result<bool, KvError> {
        Err(outside())
    }
    pub(super) fn hincr_by(_: &str, _: &str, _: i64) -> Result<i64, KvError> {
        Err(outside())
    }
    pub(super) fn hgetall(_: &str) -> Result<Vec<(String, Vec<u8>)>, KvError> {
        Err(outside())
    }
    pub(super) fn zadd(_: &str, _: &str, _: f64) -> Result<bool, KvError> {
        Err(outside())
    }
    pub(super) fn zscore(_: &str, _: &str) -> Result<Option<f64>, KvError> {
        Err(outside())
    }
    pub(super) fn zrem(_: &str, _: &str) -> Result<bool, KvError> {
        Err(outside())
    }
    pub(super) fn zrange_by_score(_: &str, _: f64, _: f64, _: u32) -> Result<Vec<(String, f64)>, KvError> {
        Err(outside())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_told_apart_by_code_and_calls_fail_outside_the_host() {
        let e = KvError { code: Some("WRONGTYPE".into()), message: "key \"a\" holds a hash".into() };
        assert!(e.is_wrong_type() && !e.is_not_an_integer());
        assert_eq!(e.to_string(), "kv error WRONGTYPE: key \"a\" holds a hash");
        let e = get("a").unwrap_err();
        assert!(e.message.contains("only inside the wasmtx host"), "{e}");
        assert_eq!(crate::BranchError::from(e.clone()), crate::BranchError::Retry(e.to_string()));
    }
}
