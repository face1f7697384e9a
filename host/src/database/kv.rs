//! The `kv` interface's operations and the local transaction they run in on
//! a Redis business database, as pure logic: what one invocation read and
//! wrote, key by key, and the commands that make its final state real.
//!
//! A key is loaded (and watched, by `redis`) the first time the invocation
//! touches it; from then on every operation on it works on the copy here,
//! so reads see the invocation's own writes. Nothing is written to Redis
//! before the commit, where [`KeyState::writes`] turns each changed key into
//! the fewest commands that give it its final state; `redis` sends them in
//! one `MULTI`/`EXEC` with the barrier's keys. This file does no I/O.

use std::collections::BTreeMap;

use super::DbError;

/// Longest guest key, hash field or sorted-set member, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;

/// One operation of the `kv` interface. Keys are the guest's, without the prefix.
#[derive(Debug, Clone, PartialEq)]
pub enum KvOp {
    Get { key: String },
    Set { key: String, value: Vec<u8>, ttl_ms: Option<u64>, condition: SetCondition },
    IncrBy { key: String, delta: i64 },
    Delete { key: String },
    CompareAndSet { key: String, expected: Option<Vec<u8>>, new: Option<Vec<u8>> },
    HGet { key: String, field: String },
    HSet { key: String, field: String, value: Vec<u8> },
    HDel { key: String, field: String },
    HIncrBy { key: String, field: String, delta: i64 },
    HGetAll { key: String },
    ZAdd { key: String, member: String, score: f64 },
    ZScore { key: String, member: String },
    ZRem { key: String, member: String },
    ZRangeByScore { key: String, min: f64, max: f64, limit: u32 },
}

impl KvOp {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            KvOp::Get { key }
            | KvOp::Set { key, .. }
            | KvOp::IncrBy { key, .. }
            | KvOp::Delete { key }
            | KvOp::CompareAndSet { key, .. }
            | KvOp::HGet { key, .. }
            | KvOp::HSet { key, .. }
            | KvOp::HDel { key, .. }
            | KvOp::HIncrBy { key, .. }
            | KvOp::HGetAll { key }
            | KvOp::ZAdd { key, .. }
            | KvOp::ZScore { key, .. }
            | KvOp::ZRem { key, .. }
            | KvOp::ZRangeByScore { key, .. } => key,
        }
    }

    /// Checks names and numbers before anything is loaded.
    pub fn check(&self, max_value_bytes: u64) -> Result<(), DbError> {
        let name = |what: &str, s: &str| {
            if s.len() > MAX_NAME_BYTES {
                Err(kv_error("LIMIT", format!("{what} is {} bytes; at most {MAX_NAME_BYTES} are allowed", s.len())))
            } else {
                Ok(())
            }
        };
        let value = |v: &[u8]| {
            if v.len() as u64 > max_value_bytes {
                Err(kv_error("LIMIT", format!("a value of {} bytes is over the {max_value_bytes}-byte limit", v.len())))
            } else {
                Ok(())
            }
        };
        let score = |s: f64| {
            if s.is_nan() { Err(kv_error("NOTFLOAT", "a score must be a number, not NaN".to_owned())) } else { Ok(()) }
        };
        name("the key", self.key())?;
        match self {
            KvOp::Set { value: v, .. } => value(v),
            KvOp::CompareAndSet { new: Some(v), .. } => value(v),
            KvOp::HSet { field, value: v, .. } => {
                name("the field", field)?;
                value(v)
            }
            KvOp::HGet { field, .. } | KvOp::HDel { field, .. } | KvOp::HIncrBy { field, .. } => {
                name("the field", field)
            }
            KvOp::ZAdd { member, score: s, .. } => {
                name("the member", member)?;
                score(*s)
            }
            KvOp::ZScore { member, .. } | KvOp::ZRem { member, .. } => name("the member", member),
            KvOp::ZRangeByScore { min, max, .. } => {
                score(*min)?;
                score(*max)
            }
            _ => Ok(()),
        }
    }
}

/// When `set` writes (`always`, Redis `NX`, Redis `XX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCondition {
    Always,
    IfAbsent,
    IfPresent,
}

/// What a [`KvOp`] answers, by kind of operation.
#[derive(Debug, Clone, PartialEq)]
pub enum KvAnswer {
    Value(Option<Vec<u8>>),
    Done(bool),
    Int(i64),
    Fields(Vec<(String, Vec<u8>)>),
    Score(Option<f64>),
    Members(Vec<(String, f64)>),
}

/// What a key holds. Sorted sets keep scores by member; ranges sort them.
#[derive(Debug, Clone, PartialEq)]
pub enum Held {
    Absent,
    Str(Vec<u8>),
    Hash(BTreeMap<String, Vec<u8>>),
    Zset(BTreeMap<String, f64>),
}

impl Held {
    fn kind(&self) -> &'static str {
        match self {
            Held::Absent => "nothing",
            Held::Str(_) => "a string",
            Held::Hash(_) => "a hash",
            Held::Zset(_) => "a sorted set",
        }
    }

    /// Bytes of names and values held, for the invocation's read budget.
    pub fn size(&self) -> u64 {
        match self {
            Held::Absent => 0,
            Held::Str(v) => v.len() as u64,
            Held::Hash(m) => m.iter().map(|(f, v)| (f.len() + v.len()) as u64).sum(),
            Held::Zset(m) => m.keys().map(|k| k.len() as u64 + 8).sum(),
        }
    }

    /// Elements held (1 for a string), for the invocation's read budget.
    pub fn elements(&self) -> u64 {
        match self {
            Held::Absent => 0,
            Held::Str(_) => 1,
            Held::Hash(m) => m.len() as u64,
            Held::Zset(m) => m.len() as u64,
        }
    }
}

/// How the key's expiry ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ttl {
    /// As it was (or none, for a key that did not exist).
    Keep,
    /// Expire this many milliseconds after the commit.
    Set(u64),
    /// No expiry.
    Persist,
}

/// One key as the invocation sees it: what it held when loaded, what it
/// holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyState {
    original: Held,
    current: Held,
    ttl: Ttl,
    /// Deleted (or changed kind) during the invocation: the commit deletes
    /// the key before writing its new value, as Redis would have.
    recreated: bool,
}

/// One command of a commit, with the Redis key already prefixed by the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Del,
    /// `SET key value` with `PX ms`, `KEEPTTL`, or neither (no expiry).
    Set {
        value: Vec<u8>,
        px: Option<u64>,
        keep_ttl: bool,
    },
    HSet(Vec<(String, Vec<u8>)>),
    HDel(Vec<String>),
    ZAdd(Vec<(String, f64)>),
    ZRem(Vec<String>),
    /// `PEXPIRE key ms`, after a hash or sorted set was written.
    PExpire(u64),
}

pub(super) fn kv_error(code: &str, message: String) -> DbError {
    DbError { code: Some(code.to_owned()), message }
}

fn wrong_type(key: &str, held: &Held, wanted: &str) -> DbError {
    kv_error("WRONGTYPE", format!("key {key:?} holds {}, not {wanted}", held.kind()))
}

fn parse_int(key: &str, bytes: &[u8]) -> Result<i64, DbError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| kv_error("NOTINT", format!("the value of {key:?} is not an integer")))
}

fn add(key: &str, n: i64, delta: i64) -> Result<i64, DbError> {
    n.checked_add(delta)
        .ok_or_else(|| kv_error("NOTINT", format!("adding {delta} to {n} in {key:?} would overflow 64 bits")))
}

impl KeyState {
    pub fn loaded(held: Held) -> Self {
        KeyState { original: held.clone(), current: held, ttl: Ttl::Keep, recreated: false }
    }

    /// Runs `op` (on this key) against the invocation's copy.
    pub fn apply(&mut self, op: &KvOp) -> Result<KvAnswer, DbError> {
        let key = op.key();
        match op {
            KvOp::Get { .. } => match &self.current {
                Held::Absent => Ok(KvAnswer::Value(None)),
                Held::Str(v) => Ok(KvAnswer::Value(Some(v.clone()))),
                other => Err(wrong_type(key, other, "a string")),
            },
            KvOp::Set { value, ttl_ms, condition, .. } => {
                let exists = self.current != Held::Absent;
                let write = match condition {
                    SetCondition::Always => true,
                    SetCondition::IfAbsent => !exists,
                    SetCondition::IfPresent => exists,
                };
                if write {
                    self.replace(Held::Str(value.clone()));
                    self.ttl = match ttl_ms {
                        Some(ms) => Ttl::Set((*ms).max(1)),
                        None => Ttl::Persist,
                    };
                }
                Ok(KvAnswer::Done(write))
            }
            KvOp::IncrBy { delta, .. } => {
                let n = match &self.current {
                    Held::Absent => 0,
                    Held::Str(v) => parse_int(key, v)?,
                    other => return Err(wrong_type(key, other, "an integer")),
                };
                let n = add(key, n, *delta)?;
                self.current = Held::Str(n.to_string().into_bytes());
                Ok(KvAnswer::Int(n))
            }
            KvOp::Delete { .. } => {
                let existed = self.current != Held::Absent;
                if existed {
                    self.replace(Held::Absent);
                }
                Ok(KvAnswer::Done(existed))
            }
            KvOp::CompareAndSet { expected, new, .. } => {
                let now = match &self.current {
                    Held::Absent => None,
                    Held::Str(v) => Some(v),
                    other => return Err(wrong_type(key, other, "a string")),
                };
                if now != expected.as_ref() {
                    return Ok(KvAnswer::Done(false));
                }
                match new {
                    Some(v) if self.current != Held::Absent => self.current = Held::Str(v.clone()),
                    Some(v) => self.replace(Held::Str(v.clone())),
                    None => self.replace(Held::Absent),
                }
                Ok(KvAnswer::Done(true))
            }
            KvOp::HGet { field, .. } => Ok(KvAnswer::Value(self.hash(key)?.and_then(|h| h.get(field).cloned()))),
            KvOp::HGetAll { .. } => {
                Ok(KvAnswer::Fields(self.hash(key)?.map(|h| h.clone().into_iter().collect()).unwrap_or_default()))
            }
            KvOp::HSet { field, value, .. } => {
                let new = self.hash_mut(key)?.insert(field.clone(), value.clone()).is_none();
                Ok(KvAnswer::Done(new))
            }
            KvOp::HDel { field, .. } => {
                let removed = match &mut self.current {
                    Held::Hash(h) => h.remove(field).is_some(),
                    Held::Absent => false,
                    other => return Err(wrong_type(key, other, "a hash")),
                };
                self.drop_if_empty();
                Ok(KvAnswer::Done(removed))
            }
            KvOp::HIncrBy { field, delta, .. } => {
                let hash = self.hash_mut(key)?;
                let n = match hash.get(field) {
                    None => 0,
                    Some(v) => parse_int(key, v)?,
                };
                let n = add(key, n, *delta)?;
                hash.insert(field.clone(), n.to_string().into_bytes());
                Ok(KvAnswer::Int(n))
            }
            KvOp::ZAdd { member, score, .. } => {
                let new = self.zset_mut(key)?.insert(member.clone(), *score).is_none();
                Ok(KvAnswer::Done(new))
            }
            KvOp::ZScore { member, .. } => Ok(KvAnswer::Score(self.zset(key)?.and_then(|z| z.get(member).copied()))),
            KvOp::ZRem { member, .. } => {
                let removed = match &mut self.current {
                    Held::Zset(z) => z.remove(member).is_some(),
                    Held::Absent => false,
                    other => return Err(wrong_type(key, other, "a sorted set")),
                };
                self.drop_if_empty();
                Ok(KvAnswer::Done(removed))
            }
            KvOp::ZRangeByScore { min, max, limit, .. } => {
                let mut members: Vec<(String, f64)> = self
                    .zset(key)?
                    .map(|z| {
                        z.iter().filter(|(_, s)| **s >= *min && **s <= *max).map(|(m, s)| (m.clone(), *s)).collect()
                    })
                    .unwrap_or_default();
                members.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
                members.truncate(*limit as usize);
                Ok(KvAnswer::Members(members))
            }
        }
    }

    /// A whole new value (or none): Redis would delete the key first, so the
    /// commit does too, and any expiry goes with it.
    fn replace(&mut self, held: Held) {
        self.current = held;
        self.recreated = true;
        self.ttl = Ttl::Persist;
    }

    /// Redis deletes a hash or sorted set with its last element.
    fn drop_if_empty(&mut self) {
        let empty = match &self.current {
            Held::Hash(h) => h.is_empty(),
            Held::Zset(z) => z.is_empty(),
            _ => false,
        };
        if empty {
            self.replace(Held::Absent);
        }
    }

    fn hash(&self, key: &str) -> Result<Option<&BTreeMap<String, Vec<u8>>>, DbError> {
        match &self.current {
            Held::Absent => Ok(None),
            Held::Hash(h) => Ok(Some(h)),
            other => Err(wrong_type(key, other, "a hash")),
        }
    }

    fn hash_mut(&mut self, key: &str) -> Result<&mut BTreeMap<String, Vec<u8>>, DbError> {
        if self.current == Held::Absent {
            self.replace(Held::Hash(BTreeMap::new()));
        }
        match &mut self.current {
            Held::Hash(h) => Ok(h),
            other => Err(wrong_type(key, other, "a hash")),
        }
    }

    fn zset(&self, key: &str) -> Result<Option<&BTreeMap<String, f64>>, DbError> {
        match &self.current {
            Held::Absent => Ok(None),
            Held::Zset(z) => Ok(Some(z)),
            other => Err(wrong_type(key, other, "a sorted set")),
        }
    }

    fn zset_mut(&mut self, key: &str) -> Result<&mut BTreeMap<String, f64>, DbError> {
        if self.current == Held::Absent {
            self.replace(Held::Zset(BTreeMap::new()));
        }
        match &mut self.current {
            Held::Zset(z) => Ok(z),
            other => Err(wrong_type(key, other, "a sorted set")),
        }
    }

    /// The commands that turn what the key held into what it holds now, in
    /// order; none when nothing changed.
    pub fn writes(&self) -> Vec<Write> {
        if self.current == self.original && self.ttl == Ttl::Keep {
            return Vec::new();
        }
        let mut writes = Vec::new();
        let rewrite = self.recreated || std::mem::discriminant(&self.current) != std::mem::discriminant(&self.original);
        let px = match self.ttl {
            Ttl::Set(ms) => Some(ms),
            Ttl::Keep | Ttl::Persist => None,
        };
        match (&self.original, &self.current) {
            (_, Held::Absent) => writes.push(Write::Del),
            (_, Held::Str(v)) => {
                // `SET` replaces any kind of value; without KEEPTTL it drops the expiry.
                writes.push(Write::Set { value: v.clone(), px, keep_ttl: self.ttl == Ttl::Keep && !rewrite });
            }
            (original, Held::Hash(now)) => {
                let before = match original {
                    Held::Hash(h) if !rewrite => Some(h),
                    _ => None,
                };
                if before.is_none() && *original != Held::Absent {
                    writes.push(Write::Del);
                }
                let removed: Vec<String> =
                    before.map(|b| b.keys().filter(|f| !now.contains_key(*f)).cloned().collect()).unwrap_or_default();
                if !removed.is_empty() {
                    writes.push(Write::HDel(removed));
                }
                let changed: Vec<(String, Vec<u8>)> = now
                    .iter()
                    .filter(|(f, v)| before.and_then(|b| b.get(*f)) != Some(*v))
                    .map(|(f, v)| (f.clone(), v.clone()))
                    .collect();
                if !changed.is_empty() {
                    writes.push(Write::HSet(changed));
                }
                if let Some(ms) = px {
                    writes.push(Write::PExpire(ms));
                }
            }
            (original, Held::Zset(now)) => {
                let before = match original {
                    Held::Zset(z) if !rewrite => Some(z),
                    _ => None,
                };
                if before.is_none() && *original != Held::Absent {
                    writes.push(Write::Del);
                }
                let removed: Vec<String> =
                    before.map(|b| b.keys().filter(|m| !now.contains_key(*m)).cloned().collect()).unwrap_or_default();
                if !removed.is_empty() {
                    writes.push(Write::ZRem(removed));
                }
                let changed: Vec<(String, f64)> = now
                    .iter()
                    .filter(|(m, s)| before.and_then(|b| b.get(*m)).is_none_or(|old| old.to_bits() != s.to_bits()))
                    .map(|(m, s)| (m.clone(), *s))
                    .collect();
                if !changed.is_empty() {
                    writes.push(Write::ZAdd(changed));
                }
                if let Some(ms) = px {
                    writes.push(Write::PExpire(ms));
                }
            }
        }
        writes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(k: &str) -> KvOp {
        KvOp::Get { key: k.into() }
    }

    fn set(k: &str, v: &str) -> KvOp {
        KvOp::Set { key: k.into(), value: v.into(), ttl_ms: None, condition: SetCondition::Always }
    }

    #[test]
    fn reads_see_the_invocations_own_writes_and_nothing_changes_without_writes() {
        let mut s = KeyState::loaded(Held::Str(b"5".to_vec()));
        assert_eq!(s.apply(&get("a")).unwrap(), KvAnswer::Value(Some(b"5".to_vec())));
        assert!(s.writes().is_empty());
        assert_eq!(s.apply(&KvOp::IncrBy { key: "a".into(), delta: -7 }).unwrap(), KvAnswer::Int(-2));
        assert_eq!(s.apply(&get("a")).unwrap(), KvAnswer::Value(Some(b"-2".to_vec())));
        // An increment keeps the key's expiry, as INCRBY does.
        assert_eq!(s.writes(), vec![Write::Set { value: b"-2".to_vec(), px: None, keep_ttl: true }]);
    }

    #[test]
    fn set_conditions_and_expiry_follow_redis() {
        let mut s = KeyState::loaded(Held::Absent);
        let xx = KvOp::Set { key: "a".into(), value: b"1".to_vec(), ttl_ms: None, condition: SetCondition::IfPresent };
        assert_eq!(s.apply(&xx).unwrap(), KvAnswer::Done(false));
        assert!(s.writes().is_empty());
        let nx =
            KvOp::Set { key: "a".into(), value: b"2".to_vec(), ttl_ms: Some(1500), condition: SetCondition::IfAbsent };
        assert_eq!(s.apply(&nx).unwrap(), KvAnswer::Done(true));
        assert_eq!(s.apply(&nx).unwrap(), KvAnswer::Done(false));
        assert_eq!(s.writes(), vec![Write::Set { value: b"2".to_vec(), px: Some(1500), keep_ttl: false }]);
        // A plain SET on an existing key drops its expiry.
        let mut s = KeyState::loaded(Held::Str(b"x".to_vec()));
        s.apply(&set("a", "y")).unwrap();
        assert_eq!(s.writes(), vec![Write::Set { value: b"y".to_vec(), px: None, keep_ttl: false }]);
    }

    #[test]
    fn increments_refuse_non_integers_and_overflow() {
        let mut s = KeyState::loaded(Held::Str(b"abc".to_vec()));
        let e = s.apply(&KvOp::IncrBy { key: "a".into(), delta: 1 }).unwrap_err();
        assert_eq!(e.code.as_deref(), Some("NOTINT"));
        let mut s = KeyState::loaded(Held::Str(i64::MAX.to_string().into_bytes()));
        let e = s.apply(&KvOp::IncrBy { key: "a".into(), delta: 1 }).unwrap_err();
        assert_eq!(e.code.as_deref(), Some("NOTINT"), "{e:?}");
        assert!(s.writes().is_empty(), "a refused increment changes nothing");
    }

    #[test]
    fn compare_and_set_compares_with_the_current_value() {
        let mut s = KeyState::loaded(Held::Str(b"old".to_vec()));
        let cas = |expected: Option<&str>, new: Option<&str>| KvOp::CompareAndSet {
            key: "a".into(),
            expected: expected.map(|e| e.as_bytes().to_vec()),
            new: new.map(|n| n.as_bytes().to_vec()),
        };
        assert_eq!(s.apply(&cas(Some("other"), Some("x"))).unwrap(), KvAnswer::Done(false));
        assert_eq!(s.apply(&cas(Some("old"), Some("new"))).unwrap(), KvAnswer::Done(true));
        assert_eq!(s.apply(&cas(Some("new"), None)).unwrap(), KvAnswer::Done(true));
        assert_eq!(s.apply(&cas(None, Some("again"))).unwrap(), KvAnswer::Done(true));
        // Deleted and created again: the commit deletes first, so no expiry survives.
        assert_eq!(s.writes(), vec![Write::Set { value: b"again".to_vec(), px: None, keep_ttl: false }]);
    }

    #[test]
    fn hashes_commit_only_their_changed_fields() {
        let before: BTreeMap<String, Vec<u8>> =
            [("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec()), ("c".into(), b"3".to_vec())].into();
        let mut s = KeyState::loaded(Held::Hash(before));
        let f = |field: &str| KvOp::HGet { key: "h".into(), field: field.into() };
        assert_eq!(
            s.apply(&KvOp::HSet { key: "h".into(), field: "a".into(), value: b"1".to_vec() }).unwrap(),
            KvAnswer::Done(false)
        );
        assert_eq!(
            s.apply(&KvOp::HIncrBy { key: "h".into(), field: "b".into(), delta: 40 }).unwrap(),
            KvAnswer::Int(42)
        );
        assert_eq!(s.apply(&KvOp::HDel { key: "h".into(), field: "c".into() }).unwrap(), KvAnswer::Done(true));
        assert_eq!(s.apply(&KvOp::HDel { key: "h".into(), field: "c".into() }).unwrap(), KvAnswer::Done(false));
        assert_eq!(s.apply(&f("b")).unwrap(), KvAnswer::Value(Some(b"42".to_vec())));
        assert_eq!(s.writes(), vec![Write::HDel(vec!["c".into()]), Write::HSet(vec![("b".into(), b"42".to_vec())])]);
        let e = s.apply(&get("h")).unwrap_err();
        assert_eq!(e.code.as_deref(), Some("WRONGTYPE"));
    }

    #[test]
    fn a_hash_emptied_is_deleted_and_a_new_kind_replaces_the_old() {
        let mut s = KeyState::loaded(Held::Hash([("a".into(), b"1".to_vec())].into()));
        s.apply(&KvOp::HDel { key: "h".into(), field: "a".into() }).unwrap();
        assert_eq!(s.writes(), vec![Write::Del]);
        s.apply(&KvOp::ZAdd { key: "h".into(), member: "m".into(), score: 2.5 }).unwrap();
        assert_eq!(s.writes(), vec![Write::Del, Write::ZAdd(vec![("m".into(), 2.5)])]);
    }

    #[test]
    fn sorted_sets_range_by_score_then_member() {
        let mut s = KeyState::loaded(Held::Zset([("b".into(), 1.0), ("a".into(), 1.0), ("c".into(), 0.5)].into()));
        assert_eq!(
            s.apply(&KvOp::ZAdd { key: "z".into(), member: "d".into(), score: 9.0 }).unwrap(),
            KvAnswer::Done(true)
        );
        assert_eq!(s.apply(&KvOp::ZRem { key: "z".into(), member: "c".into() }).unwrap(), KvAnswer::Done(true));
        let range = KvOp::ZRangeByScore { key: "z".into(), min: 0.0, max: 5.0, limit: 10 };
        assert_eq!(s.apply(&range).unwrap(), KvAnswer::Members(vec![("a".into(), 1.0), ("b".into(), 1.0)]));
        let one = KvOp::ZRangeByScore { key: "z".into(), min: f64::NEG_INFINITY, max: f64::INFINITY, limit: 1 };
        assert_eq!(s.apply(&one).unwrap(), KvAnswer::Members(vec![("a".into(), 1.0)]));
        assert_eq!(s.apply(&KvOp::ZScore { key: "z".into(), member: "d".into() }).unwrap(), KvAnswer::Score(Some(9.0)));
        assert_eq!(s.writes(), vec![Write::ZRem(vec!["c".into()]), Write::ZAdd(vec![("d".into(), 9.0)])]);
    }

    #[test]
    fn names_values_and_scores_are_checked_before_anything_runs() {
        let long = "k".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(get(&long).check(100).unwrap_err().code.as_deref(), Some("LIMIT"));
        assert_eq!(set("a", &"v".repeat(101)).check(100).unwrap_err().code.as_deref(), Some("LIMIT"));
        let nan = KvOp::ZAdd { key: "z".into(), member: "m".into(), score: f64::NAN };
        assert_eq!(nan.check(100).unwrap_err().code.as_deref(), Some("NOTFLOAT"));
        assert!(set("a", "v").check(100).is_ok());
    }
}
