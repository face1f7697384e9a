//! Alerts: transactions that need a person's attention, and the claims that
//! make each alert go out once. The store finds the candidates and records
//! the claims; what is sent, where and when is the engine's business.

use super::{StoreError, parse_text, to_u32};
use crate::model::{Gid, Millis, Mode, Status};

/// Why a transaction is alerted on. Each is sent at most once per
/// transaction (see [`super::Store::claim_alert`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertCondition {
    /// The transaction, or one of its ops, was attempted more often than allowed.
    Retries,
    /// The transaction is still unfinished long after it was created.
    Unfinished,
}

impl AlertCondition {
    /// The text stored in `alerts.condition` and sent in the alert.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertCondition::Retries => "retries",
            AlertCondition::Unfinished => "unfinished",
        }
    }
}

impl std::fmt::Display for AlertCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unfinished transaction that meets an alert's condition and has no
/// claim for it yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertCandidate {
    pub condition: AlertCondition,
    pub gid: Gid,
    pub mode: Mode,
    pub status: Status,
    /// The most attempts of the transaction or of any of its ops.
    pub attempts: u32,
    pub created_at: Millis,
    /// The transaction's last error, or else that of its op tried most.
    pub last_error: Option<String>,
}

/// A candidate row as read (columns in the order of the candidate queries
/// in [`super::queries::Sql`]).
#[derive(sqlx::FromRow)]
pub(super) struct AlertCandidateRow {
    pub gid: String,
    pub mode: String,
    pub status: String,
    pub attempts: i64,
    pub op_attempts: Option<i64>,
    pub created_at: i64,
    pub last_error: Option<String>,
    pub op_error: Option<String>,
}

impl AlertCandidateRow {
    pub(super) fn decode(self, condition: AlertCondition) -> Result<AlertCandidate, StoreError> {
        Ok(AlertCandidate {
            condition,
            mode: parse_text("mode", &self.mode, Mode::parse)?,
            status: parse_text("status", &self.status, Status::parse)?,
            attempts: to_u32("attempts", self.attempts.max(self.op_attempts.unwrap_or(0)))?,
            created_at: Millis(self.created_at),
            last_error: self.last_error.or(self.op_error),
            gid: Gid::from_trusted(self.gid),
        })
    }
}
