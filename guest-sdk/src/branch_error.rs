//! [`BranchError`]: how a branch function says it did not succeed, shaped by
//! what the host does next (give up and roll back, or call again).

use std::fmt;

use crate::bindings::wasmtx::runtime::types as wit;
use crate::db::{ColumnError, DbError};
use crate::kv::KvError;

/// Why a branch function did not succeed; the host acts on the variant.
///
/// Whatever the variant, the host rolls back the branch's local database
/// transaction: nothing a failed call wrote survives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BranchError {
    /// A business refusal ("insufficient funds"). Never retried: a saga action
    /// that fails rolls the global transaction back.
    Failure(String),
    /// A transient problem (lock conflict, lost connection). The host calls the
    /// same op again later, with [`Context::attempt`](crate::Context::attempt)
    /// incremented.
    Retry(String),
}

impl BranchError {
    /// A business refusal; see [`BranchError::Failure`].
    pub fn failure(message: impl Into<String>) -> Self {
        BranchError::Failure(message.into())
    }

    /// A transient problem; see [`BranchError::Retry`].
    pub fn retry(message: impl Into<String>) -> Self {
        BranchError::Retry(message.into())
    }

    /// The message, whatever the variant.
    pub fn message(&self) -> &str {
        match self {
            BranchError::Failure(m) | BranchError::Retry(m) => m,
        }
    }

    /// `true` for [`BranchError::Retry`].
    pub fn is_retry(&self) -> bool {
        matches!(self, BranchError::Retry(_))
    }
}

impl fmt::Display for BranchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BranchError::Failure(m) => write!(f, "failure: {m}"),
            BranchError::Retry(m) => write!(f, "retry: {m}"),
        }
    }
}

impl std::error::Error for BranchError {}

/// A database error is taken to be transient: `Retry`.
///
/// Errors with business meaning (a duplicate key: [`DbError::is_unique_violation`])
/// must be checked before `?`, or the branch is retried for ever.
impl From<DbError> for BranchError {
    fn from(e: DbError) -> Self {
        BranchError::Retry(e.to_string())
    }
}

/// A key-value error is taken to be transient too: `Retry`. Check
/// [`KvError::is_wrong_type`] and friends first where it means a refusal.
impl From<KvError> for BranchError {
    fn from(e: KvError) -> Self {
        BranchError::Retry(e.to_string())
    }
}

/// Reading a column the query did not produce is a bug that no retry fixes: `Failure`.
impl From<ColumnError> for BranchError {
    fn from(e: ColumnError) -> Self {
        BranchError::Failure(e.to_string())
    }
}

impl From<BranchError> for wit::BranchError {
    fn from(e: BranchError) -> Self {
        match e {
            BranchError::Failure(m) => wit::BranchError::Failure(m),
            BranchError::Retry(m) => wit::BranchError::Retry(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_become_retries_with_their_code() {
        let e = BranchError::from(DbError { code: Some("40001".into()), message: "could not serialize access".into() });
        assert_eq!(e, BranchError::retry("database error 40001: could not serialize access"));
        assert!(e.is_retry());
    }

    #[test]
    fn column_errors_become_failures() {
        let e = BranchError::from(ColumnError::NoRow { index: 0, len: 0 });
        assert!(matches!(e, BranchError::Failure(_)));
        assert_eq!(e.message(), "no row 0: the query returned 0 row(s)");
    }

    #[test]
    fn variants_map_to_the_wit_variants() {
        assert_eq!(wit::BranchError::from(BranchError::failure("no")), wit::BranchError::Failure("no".into()));
        assert_eq!(wit::BranchError::from(BranchError::retry("later")), wit::BranchError::Retry("later".into()));
        assert_eq!(BranchError::failure("no").to_string(), "failure: no");
    }
}
