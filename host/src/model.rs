//! The domain vocabulary shared by `api`, `engine`, `store` and `branch`:
//! ids, statuses, transactions and branch ops as plain data.
//!
//! Nothing here does I/O or reads the clock; time is always passed in as
//! [`Millis`] (milliseconds since the Unix epoch).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch. The engine never reads the wall clock;
/// it is handed a `Millis` by its injected clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl Millis {
    pub fn plus_ms(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a value already known to be valid (read back from the store).
            pub fn from_trusted(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// Global transaction id: 1–128 characters of `[A-Za-z0-9_.:-]`.
    Gid
);
string_id!(
    /// Branch id inside a transaction: "01", "02", ...
    BranchId
);
string_id!(
    /// Name a module is uploaded under: 1–64 characters of `[a-z0-9_-]`, starting with a letter or digit.
    ModuleName
);
string_id!(
    /// `sha256:<64 hex>` of a module's bytes; a module version is immutable.
    Digest
);
string_id!(
    /// Name of a business database bound with `--database NAME=URL`.
    DatabaseName
);

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub String);

impl Gid {
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        if s.is_empty() || s.len() > 128 {
            return Err(InvalidId(format!("gid must be 1 to 128 characters, got {}", s.len())));
        }
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.:-".contains(*c))) {
            return Err(InvalidId(format!("gid may contain only letters, digits and _ . : - (found {c:?})")));
        }
        Ok(Self(s.to_owned()))
    }

    /// A fresh random gid.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }
}

impl ModuleName {
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let ok_len = !s.is_empty() && s.len() <= 64;
        let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_chars = s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok_len && ok_first && ok_chars {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId(format!(
                "module name {s:?} is invalid: use 1 to 64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
            )))
        }
    }
}

impl DatabaseName {
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let ok = !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId(format!(
                "database name {s:?} is invalid: use 1 to 64 characters of letters, digits, '-' and '_'"
            )))
        }
    }

    pub fn default_name() -> Self {
        Self("default".to_owned())
    }
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))))
    }
}

impl BranchId {
    /// A branch id a client chose (DTM's `registerBranch`): 1 to 32 characters
    /// of `[A-Za-z0-9_-]` (DTM's are digits, two per nesting level).
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let ok = !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId(format!(
                "branch id {s:?} is invalid: use 1 to 32 characters of letters, digits, '-' and '_'"
            )))
        }
    }

    /// "00": a message's local transaction (DTM's branch of op `msg`), a
    /// workflow's `run`.
    pub fn local() -> Self {
        Self("00".to_owned())
    }

    /// "01" for index 0, "02" for index 1, ...
    pub fn from_index(index: usize) -> Self {
        Self(format!("{:02}", index + 1))
    }
}

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Transaction mode: how the host drives a transaction's branches.
    Mode { Saga => "saga", Tcc => "tcc", Xa => "xa", Msg => "msg", Workflow => "workflow" }
);

impl Mode {
    /// The status a new transaction starts in: a saga is `submitted` (its
    /// decision to go forward is taken), a TCC `prepared` until its tries are
    /// done, an XA `prepared` until every branch has prepared, a message
    /// `prepared` until its local transaction committed.
    pub fn initial_status(self) -> Status {
        match self {
            Mode::Saga | Mode::Workflow => Status::Submitted,
            Mode::Tcc | Mode::Xa | Mode::Msg => Status::Prepared,
        }
    }

    /// Whether a branch op's local commit may carry the transaction's progress
    /// (co-location). Not in XA: an action ends in `PREPARE TRANSACTION`, so
    /// anything written in it would stay invisible until phase 2. Not in a
    /// workflow: its progress includes the journal, which is written by the
    /// driver alone.
    pub fn carries_progress(self) -> bool {
        !matches!(self, Mode::Xa | Mode::Workflow)
    }
}

string_enum!(
    /// Global transaction status (DTM's lifecycle, with `succeeded` for DTM's `succeed`).
    Status {
        Prepared => "prepared",
        Submitted => "submitted",
        Aborting => "aborting",
        Succeeded => "succeeded",
        Failed => "failed",
    }
);

impl Status {
    pub fn is_final(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed)
    }
}

string_enum!(
    /// Which step of a branch an op is (mirrors the WIT `op` enum, but for
    /// `msg`: a message's local function, which guests see as `action`; and
    /// `run`: a workflow's `run`, which is not a branch function).
    Op {
        Action => "action",
        Compensate => "compensate",
        Try => "try",
        Confirm => "confirm",
        Cancel => "cancel",
        Commit => "commit",
        Rollback => "rollback",
        Call => "call",
        Msg => "msg",
        Run => "run",
    }
);

impl Op {
    /// A forward op: its `failure` (or exhausting `retry_limit`) rolls the
    /// transaction back.
    pub fn is_forward(self) -> bool {
        matches!(self, Op::Action | Op::Try | Op::Msg | Op::Run)
    }

    /// For an op that carries out a decision already taken (undo, confirm,
    /// cancel, ...), what it is called in messages; such an op is retried
    /// until it succeeds, never refused for good.
    pub fn settles(self) -> Option<&'static str> {
        match self {
            Op::Compensate => Some("compensation"),
            Op::Confirm => Some("confirm"),
            Op::Cancel => Some("cancel"),
            Op::Commit => Some("commit"),
            Op::Rollback => Some("rollback"),
            Op::Action | Op::Try | Op::Call | Op::Msg | Op::Run => None,
        }
    }

    /// The op whose barrier row a compensating op writes first (DTM's "origin"):
    /// compensate → action, cancel → try, rollback → action.
    pub fn origin(self) -> Option<Op> {
        match self {
            Op::Compensate | Op::Rollback => Some(Op::Action),
            Op::Cancel => Some(Op::Try),
            _ => None,
        }
    }
}

string_enum!(
    /// Status of one branch op.
    OpStatus {
        Prepared => "prepared",
        Succeeded => "succeeded",
        Failed => "failed",
    }
);

/// What a branch op calls: one function of one pinned module version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub module: ModuleName,
    /// The version pinned when the transaction was created.
    pub digest: Digest,
    /// The business database the module version was bound to at upload.
    pub database: DatabaseName,
    pub function: String,
}

/// What marks a [`Target`] as an HTTP endpoint: not a valid module name,
/// digest or database name, so no Wasm target can be mistaken for one.
const HTTP_TARGET: &str = "~http";

impl Target {
    /// An HTTP endpoint (DTM's kind of branch): the op is a request to `url`.
    /// Stored in the same columns as a Wasm target: the module, digest and
    /// database are a marker no Wasm target can hold, the function is the URL.
    pub fn http(url: impl Into<String>) -> Target {
        Target {
            module: ModuleName::from_trusted(HTTP_TARGET),
            digest: Digest::from_trusted(HTTP_TARGET),
            database: DatabaseName::from_trusted(HTTP_TARGET),
            function: url.into(),
        }
    }

    /// The URL of an HTTP target; `None` for a Wasm function.
    pub fn url(&self) -> Option<&str> {
        (self.module.as_str() == HTTP_TARGET).then_some(self.function.as_str())
    }
}

impl ModuleName {
    /// What stands in the module's place for an HTTP endpoint (a
    /// [`Target::http`], a topic's URL subscriber): no module can have it.
    pub fn http_marker() -> ModuleName {
        ModuleName::from_trusted(HTTP_TARGET)
    }

    /// Whether this is [`ModuleName::http_marker`].
    pub fn is_http_marker(&self) -> bool {
        self.as_str() == HTTP_TARGET
    }
}

/// Per-transaction options (all optional in the API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Abort (and compensate) a saga still running this many seconds after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_to_fail: Option<u64>,
    /// Give up on an action after this many failed attempts and roll back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_limit: Option<u32>,
    /// Base retry interval in seconds (default 1). Backoff doubles it up to the cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<u64>,
    /// The longest wait between two attempts of an op, in seconds (default:
    /// the server's `retry_cap_ms`; never below `retry_interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_interval: Option<u64>,
    /// The deadline of one branch invocation, in seconds, within the server's
    /// `deadline_ms` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<u64>,
    /// Headers handed to every branch in its context, as `[name, value]` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Vec<String>>)]
    pub branch_headers: Vec<(String, String)>,
    /// A saga whose actions run at once as soon as their prerequisites
    /// (`orders`) have succeeded, and whose compensations run in reverse
    /// dependency order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub concurrent: bool,
    /// For a concurrent saga: branch index (as text, as DTM writes it) → the
    /// indices of the branches that must succeed before it runs.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub orders: std::collections::BTreeMap<String, Vec<usize>>,
    /// For a message: seconds after creation before its branches run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<u64>,
}

impl Options {
    /// The prerequisites of branch `index` (none unless `orders` names it).
    pub fn prerequisites(&self, index: usize) -> &[usize] {
        self.orders.get(&index.to_string()).map_or(&[], Vec::as_slice)
    }
}

/// One global transaction as stored (without its branch ops).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub gid: Gid,
    pub mode: Mode,
    pub status: Status,
    pub options: Options,
    /// When the driver should next look at it; `None` once final.
    pub next_due: Option<Millis>,
    /// Attempts of the op the transaction is currently stuck on (0 when progressing).
    pub attempts: u32,
    pub last_error: Option<String>,
    pub rollback_reason: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub finished_at: Option<Millis>,
    /// Instance holding the lease, if any.
    pub lease_owner: Option<String>,
    pub lease_expires: Option<Millis>,
    /// Fencing epoch: bumped by every claim; a write under an older epoch is refused.
    pub epoch: i64,
}

impl Transaction {
    /// A new transaction in `status`, created at `now`, due at `due`, not
    /// leased yet, with no attempt or error.
    pub fn new(gid: Gid, mode: Mode, status: Status, options: Options, now: Millis, due: Millis) -> Self {
        Transaction {
            gid,
            mode,
            status,
            options,
            next_due: Some(due),
            attempts: 0,
            last_error: None,
            rollback_reason: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
            lease_owner: None,
            lease_expires: None,
            epoch: 0,
        }
    }
}

/// One op of one branch (a saga branch has an `action` op and a `compensate` op).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchOp {
    pub branch_id: BranchId,
    pub op: Op,
    pub target: Target,
    /// The payload handed to the function (JSON bytes by convention).
    pub payload: Vec<u8>,
    pub status: OpStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub updated_at: Millis,
}

impl BranchOp {
    /// An op not yet attempted.
    pub fn new(branch_id: BranchId, op: Op, target: Target, payload: Vec<u8>, now: Millis) -> Self {
        BranchOp {
            branch_id,
            op,
            target,
            payload,
            status: OpStatus::Prepared,
            attempts: 0,
            last_error: None,
            updated_at: now,
        }
    }
}

/// A transaction with all its branch ops, ordered by (branch_id, op kind as created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionState {
    pub transaction: Transaction,
    pub ops: Vec<BranchOp>,
}

impl TransactionState {
    pub fn op(&self, branch_id: &BranchId, op: Op) -> Option<&BranchOp> {
        self.ops.iter().find(|o| &o.branch_id == branch_id && o.op == op)
    }

    pub fn op_mut(&mut self, branch_id: &BranchId, op: Op) -> Option<&mut BranchOp> {
        self.ops.iter_mut().find(|o| &o.branch_id == branch_id && o.op == op)
    }

    /// Every distinct module digest the transaction is pinned to.
    pub fn digests(&self) -> Vec<Digest> {
        let mut d: Vec<Digest> = self.ops.iter().map(|o| o.target.digest.clone()).collect();
        d.sort();
        d.dedup();
        d
    }
}

/// A module version as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRecord {
    pub name: ModuleName,
    pub digest: Digest,
    /// The WIT world it implements, e.g. `branch`.
    pub world: String,
    /// What `handler.functions` returned at upload.
    pub functions: Vec<String>,
    pub database: DatabaseName,
    /// Opt-in instance reuse: at most this many invocations per instance
    /// (`None`: a fresh instance for every invocation).
    pub instance_reuse: Option<u32>,
    /// Hosts its outbound HTTP requests may reach (`host`, `host:port`,
    /// `*.domain`), as asked at upload; the operator's list must allow them too.
    pub http_hosts: Vec<String>,
    pub size: u64,
    pub created_at: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gid_rejects_separators_and_long_values() {
        assert!(Gid::parse("order-42:a_b.c").is_ok());
        assert!(Gid::parse("").is_err());
        assert!(Gid::parse("a;b").is_err());
        assert!(Gid::parse("a\nb").is_err());
        assert!(Gid::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn module_names_are_lowercase_words() {
        assert!(ModuleName::parse("bank").is_ok());
        assert!(ModuleName::parse("bank-v2_x").is_ok());
        assert!(ModuleName::parse("Bank").is_err());
        assert!(ModuleName::parse("-bank").is_err());
        assert!(ModuleName::parse("").is_err());
    }

    #[test]
    fn branch_ids_are_two_digit_and_one_based() {
        assert_eq!(BranchId::from_index(0).as_str(), "01");
        assert_eq!(BranchId::from_index(11).as_str(), "12");
    }

    #[test]
    fn digest_is_sha256_hex() {
        let d = Digest::of(b"abc");
        assert_eq!(d.as_str(), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn compensating_ops_name_their_origin() {
        assert_eq!(Op::Compensate.origin(), Some(Op::Action));
        assert_eq!(Op::Cancel.origin(), Some(Op::Try));
        assert_eq!(Op::Action.origin(), None);
        assert_eq!(Op::parse("compensate"), Some(Op::Compensate));
        assert_eq!(Status::Succeeded.as_str(), "succeeded");
    }
}

/// One line of a transaction's history: a status change, one attempt of one
/// op, or an operator's control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub gid: Gid,
    pub at: Millis,
    /// `created`, `status`, `attempt`, `abort`, `force-stop` or `retry-now`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_id: Option<BranchId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Op>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// An attempt's outcome (`succeeded`, `failed`, `retry`, `error`), or the
    /// new status of a status change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// An attempt's error, a status change's reason, a control's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Who asked, for a control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

impl HistoryEntry {
    pub fn new(gid: &Gid, at: Millis, kind: &str) -> Self {
        Self {
            gid: gid.clone(),
            at,
            kind: kind.to_owned(),
            branch_id: None,
            op: None,
            attempt: None,
            outcome: None,
            detail: None,
            duration_ms: None,
            actor: None,
        }
    }
}

/// A branch function as a workflow's `run` names it in `steps.call`: the
/// module's upload name and the function (resolved to a pinned [`Target`]
/// when the step first runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTarget {
    pub module: String,
    pub function: String,
}

/// A call a workflow's `run` makes through `steps`, as the instance makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepRequest {
    Call { action: StepTarget, compensate: Option<StepTarget>, payload: Vec<u8> },
    Now,
    Random,
    Sleep { millis: u64 },
    Signal { name: String },
}

impl StepRequest {
    /// The journal's form of this request; a call becomes step `branch_id`.
    pub fn journaled(self, branch_id: BranchId) -> StepCall {
        match self {
            StepRequest::Call { action, compensate, payload } => {
                StepCall::Call { branch_id, action, compensate, payload }
            }
            StepRequest::Now => StepCall::Now,
            StepRequest::Random => StepCall::Random,
            StepRequest::Sleep { millis } => StepCall::Sleep { millis },
            StepRequest::Signal { name } => StepCall::Signal { name },
        }
    }
}

/// What a workflow's `run` asked of the host through `steps`, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepCall {
    /// `steps.call`: a branch function run as step `branch_id` ("01", "02", ...).
    Call {
        branch_id: BranchId,
        action: StepTarget,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compensate: Option<StepTarget>,
        #[serde(with = "base64_bytes")]
        payload: Vec<u8>,
    },
    Now,
    Random,
    Sleep {
        millis: u64,
    },
    Signal {
        name: String,
    },
    /// Not a call: `run` returned (the journal's last entry).
    End,
}

impl StepCall {
    /// How the call reads in messages: `call bank.trans-out`, `sleep 5000 ms`, ...
    pub fn describe(&self) -> String {
        match self {
            StepCall::Call { action, .. } => format!("call {}.{}", action.module, action.function),
            StepCall::Now => "now".to_owned(),
            StepCall::Random => "random".to_owned(),
            StepCall::Sleep { millis } => format!("sleep {millis} ms"),
            StepCall::Signal { name } => format!("await-signal {name:?}"),
            StepCall::End => "the return of run".to_owned(),
        }
    }
}

/// The host's answer to a [`StepCall`], as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepAnswer {
    /// A step (or `run`) succeeded with this output.
    Ok {
        #[serde(with = "base64_bytes")]
        output: Vec<u8>,
    },
    /// A step's function refused (WIT `failure`), or `run` returned this error.
    Failure { message: String },
    /// The host gave up retrying a step (WIT `retry`).
    Retry { message: String },
    /// `now` and `random`.
    Value { value: u64 },
    /// A sleep's deadline.
    Until { deadline: Millis },
    /// A signal's payload.
    Signal {
        #[serde(with = "base64_bytes")]
        payload: Vec<u8>,
    },
}

/// One entry of a workflow's journal: the `seq`-th (1-based) call `run` made
/// through `steps`, its answer and when it was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalEntry {
    pub seq: u32,
    pub call: StepCall,
    pub answer: StepAnswer,
    pub at: Millis,
}

/// Bytes as a base64 string in JSON (journal entries are stored as JSON).
mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
