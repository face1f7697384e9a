//! Server instances on one store: each one's heartbeat row, for
//! `GET /v1/cluster`. The rows are for people; leases, not heartbeats, decide
//! who drives a transaction.

use crate::model::Millis;

/// One instance as its last heartbeat left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Its node id (kept in its data directory).
    pub node: String,
    /// The wasmtx version it runs.
    pub version: String,
    pub started_at: Millis,
    pub heartbeat_at: Millis,
    /// Transactions it was driving at its last heartbeat.
    pub in_flight: u64,
}

/// An `instances` row as stored (columns in the order of
/// [`super::queries::INSTANCE_COLUMNS`]).
#[derive(sqlx::FromRow)]
pub(super) struct InstanceRow {
    pub node: String,
    pub version: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub in_flight: i64,
}

impl InstanceRow {
    pub(super) fn decode(self) -> Instance {
        Instance {
            node: self.node,
            version: self.version,
            started_at: Millis(self.started_at),
            heartbeat_at: Millis(self.heartbeat_at),
            in_flight: u64::try_from(self.in_flight).unwrap_or(0),
        }
    }
}
