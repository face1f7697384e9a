//! [`Context`]: what the host tells a branch function about the invocation
//! (transaction, branch, [`Op`], attempt, headers). Read-only for the guest.

use std::fmt;

use crate::bindings::wasmtx::runtime::types as wit;

/// Which step of the protocol the host is asking the branch to run.
///
/// One function usually serves one op (e.g. `trans-out` is registered as a
/// saga action, `trans-out-revert` as its compensation), so most functions
/// never look at it; it is there for logging and for functions shared between
/// ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Saga forward step.
    Action,
    /// Saga undo step.
    Compensate,
    /// TCC phase 1.
    Try,
    /// TCC phase 2, commit.
    Confirm,
    /// TCC phase 2, rollback.
    Cancel,
    /// XA / workflow commit callback.
    Commit,
    /// XA / workflow rollback callback.
    Rollback,
    /// A direct call outside any global transaction (`POST /v1/modules/{name}/call/{function}`).
    Call,
}

impl Op {
    /// The WIT name: `"action"`, `"compensate"`, `"try"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Action => "action",
            Op::Compensate => "compensate",
            Op::Try => "try",
            Op::Confirm => "confirm",
            Op::Cancel => "cancel",
            Op::Commit => "commit",
            Op::Rollback => "rollback",
            Op::Call => "call",
        }
    }

    /// `true` for the ops that undo earlier work (`compensate`, `cancel`,
    /// `rollback`); these must not fail for business reasons.
    pub fn is_undo(self) -> bool {
        matches!(self, Op::Compensate | Op::Cancel | Op::Rollback)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<wit::Op> for Op {
    fn from(op: wit::Op) -> Self {
        match op {
            wit::Op::Action => Op::Action,
            wit::Op::Compensate => Op::Compensate,
            wit::Op::Try => Op::Try,
            wit::Op::Confirm => Op::Confirm,
            wit::Op::Cancel => Op::Cancel,
            wit::Op::Commit => Op::Commit,
            wit::Op::Rollback => Op::Rollback,
            wit::Op::Call => Op::Call,
        }
    }
}

/// The invocation a branch function runs in.
///
/// Built by the SDK from what the host passes; the `new`/`with_*` constructors
/// exist so that a guest crate can unit-test its functions natively.
///
/// ```
/// use wasmtx_guest::{Context, Op};
///
/// let ctx = Context::new(Op::Action).with_gid("g-1").with_branch_id("01").with_header("tenant", "t1");
/// assert_eq!(ctx.header("Tenant"), Some("t1"));
/// assert_eq!(ctx.attempt(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    gid: String,
    branch_id: String,
    op: Op,
    attempt: u32,
    headers: Vec<(String, String)>,
}

impl Context {
    /// A first attempt of `op` outside any transaction (empty gid and branch id).
    pub fn new(op: Op) -> Self {
        Context { gid: String::new(), branch_id: String::new(), op, attempt: 1, headers: Vec::new() }
    }

    /// Sets the global transaction id.
    pub fn with_gid(mut self, gid: impl Into<String>) -> Self {
        self.gid = gid.into();
        self
    }

    /// Sets the branch id.
    pub fn with_branch_id(mut self, branch_id: impl Into<String>) -> Self {
        self.branch_id = branch_id.into();
        self
    }

    /// Sets the attempt number (1 for the first).
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Global transaction id; empty for a direct call.
    pub fn gid(&self) -> &str {
        &self.gid
    }

    /// Branch id inside the transaction (`"01"`, `"02"`, ...); empty for a direct call.
    pub fn branch_id(&self) -> &str {
        &self.branch_id
    }

    /// The protocol step being run.
    pub fn op(&self) -> Op {
        self.op
    }

    /// 1 on the first attempt, incremented on every retry of the same op.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The extra headers given with the transaction, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first header named `name`, ignoring ASCII case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl From<wit::BranchContext> for Context {
    fn from(ctx: wit::BranchContext) -> Self {
        Context {
            gid: ctx.gid,
            branch_id: ctx.branch_id,
            op: ctx.op.into(),
            attempt: ctx.attempt,
            headers: ctx.headers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_context_converts_field_by_field() {
        let ctx = Context::from(wit::BranchContext {
            gid: "g".into(),
            branch_id: "02".into(),
            op: wit::Op::Compensate,
            attempt: 3,
            headers: vec![("x-trace".into(), "abc".into())],
        });
        assert_eq!(ctx.gid(), "g");
        assert_eq!(ctx.branch_id(), "02");
        assert_eq!(ctx.op(), Op::Compensate);
        assert_eq!(ctx.attempt(), 3);
        assert_eq!(ctx.header("X-Trace"), Some("abc"));
        assert_eq!(ctx.header("missing"), None);
    }

    #[test]
    fn every_wit_op_maps_to_the_op_of_the_same_name() {
        let all = [
            (wit::Op::Action, "action"),
            (wit::Op::Compensate, "compensate"),
            (wit::Op::Try, "try"),
            (wit::Op::Confirm, "confirm"),
            (wit::Op::Cancel, "cancel"),
            (wit::Op::Commit, "commit"),
            (wit::Op::Rollback, "rollback"),
            (wit::Op::Call, "call"),
        ];
        for (wit_op, name) in all {
            assert_eq!(Op::from(wit_op).to_string(), name);
        }
        assert!(Op::Compensate.is_undo() && Op::Cancel.is_undo() && Op::Rollback.is_undo());
        assert!(!Op::Action.is_undo() && !Op::Call.is_undo());
    }
}
