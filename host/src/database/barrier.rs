//! The sub-transaction barrier (DTM's `BranchBarrier.Call`), run by the host
//! inside the branch's own local transaction, before any guest SQL, so that
//! the barrier rows and the business writes commit or roll back together.
//!
//! On SQLite the rows live in `main.wasmtx_barrier`, which the guest
//! authorizer never lets branch SQL reach; on Postgres in `wasmtx.barrier`,
//! which the guest role has no privilege on, written through the host's
//! `wasmtx.enter` function (see `postgres.rs`). This file owns the SQLite
//! table and the verdict; it must not run business code, commit or roll back.

use rusqlite::Connection;

use super::DbError;
use crate::model::{BranchId, Gid, Op};

/// Identifies one barrier row: which op of which branch of which transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarrierKey {
    /// The transaction's mode ("saga", "tcc", ...); stored for operators, not part of the key.
    pub trans_type: String,
    pub gid: Gid,
    pub branch_id: BranchId,
    pub op: Op,
    /// DTM's per-call counter, "01" for the first barrier call of a branch op.
    pub barrier_id: String,
}

/// What the branch must do after entering the barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierVerdict {
    /// First time this op runs: run the business code in this transaction, commit only if it succeeds.
    Proceed,
    /// This op already ran (its row exists): succeed without running the business code.
    Duplicate,
    /// A compensating op (compensate/cancel/rollback) arrived before its origin op ever ran: it is a
    /// no-op, and the origin row just written blocks the late origin op (no hanging).
    NullCompensation,
}

impl BarrierVerdict {
    /// DTM's decision from the two insert counts: `origin_inserted` is a1
    /// (`None` when the op has no origin), `op_inserted` is a2.
    pub(super) fn decide(origin_inserted: Option<u64>, op_inserted: u64) -> BarrierVerdict {
        if origin_inserted.is_some_and(|a1| a1 > 0) {
            BarrierVerdict::NullCompensation
        } else if op_inserted == 0 {
            BarrierVerdict::Duplicate
        } else {
            BarrierVerdict::Proceed
        }
    }
}

pub(super) const CREATE_TABLE_SQLITE: &str = "\
CREATE TABLE IF NOT EXISTS main.wasmtx_barrier (
    id          INTEGER PRIMARY KEY,
    trans_type  TEXT NOT NULL DEFAULT '',
    gid         TEXT NOT NULL,
    branch_id   TEXT NOT NULL,
    op          TEXT NOT NULL,
    barrier_id  TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT wasmtx_barrier_uniq UNIQUE (gid, branch_id, op, barrier_id)
)";

/// One insert, bound as `(trans_type, gid, branch_id, op, barrier_id, reason)`.
/// `ON CONFLICT DO NOTHING` ignores only the uniqueness conflict.
const INSERT_ONE_SQLITE: &str = "\
INSERT INTO main.wasmtx_barrier (trans_type, gid, branch_id, op, barrier_id, reason)
VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING";

/// Enters the barrier with host statements on the writer connection.
pub(super) fn enter_sqlite(conn: &Connection, key: &BarrierKey) -> Result<BarrierVerdict, DbError> {
    let insert = |row_op: &str| -> Result<u64, DbError> {
        let mut stmt = conn.prepare_cached(INSERT_ONE_SQLITE).map_err(host_error)?;
        let n = stmt
            .execute((
                key.trans_type.as_str(),
                key.gid.as_str(),
                key.branch_id.as_str(),
                row_op,
                key.barrier_id.as_str(),
                key.op.as_str(),
            ))
            .map_err(host_error)?;
        Ok(n as u64)
    };
    let a1 = key.op.origin().map(|origin| insert(origin.as_str())).transpose()?;
    let a2 = insert(key.op.as_str())?;
    Ok(BarrierVerdict::decide(a1, a2))
}

/// The back-check of a message's local transaction on SQLite (see
/// [`super::Database::query_prepared`]), on the writer connection: true if
/// the local transaction's row was there.
pub(super) fn query_prepared_sqlite(conn: &Connection, key: &BarrierKey) -> Result<bool, DbError> {
    let mut stmt = conn.prepare_cached(INSERT_ONE_SQLITE).map_err(host_error)?;
    let (gid, branch, op) = (key.gid.as_str(), key.branch_id.as_str(), key.op.as_str());
    stmt.execute((key.trans_type.as_str(), gid, branch, op, key.barrier_id.as_str(), "rollback"))
        .map_err(host_error)?;
    let reason: String = conn
        .query_row(
            "SELECT reason FROM main.wasmtx_barrier WHERE gid = ?1 AND branch_id = ?2 AND op = ?3 AND barrier_id = ?4",
            (gid, branch, op, key.barrier_id.as_str()),
            |r| r.get(0),
        )
        .map_err(host_error)?;
    Ok(reason != "rollback")
}

fn host_error(e: rusqlite::Error) -> DbError {
    DbError::host(format!("barrier: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_follows_dtm_call() {
        assert_eq!(BarrierVerdict::decide(None, 1), BarrierVerdict::Proceed);
        assert_eq!(BarrierVerdict::decide(None, 0), BarrierVerdict::Duplicate);
        assert_eq!(BarrierVerdict::decide(Some(0), 1), BarrierVerdict::Proceed);
        assert_eq!(BarrierVerdict::decide(Some(0), 0), BarrierVerdict::Duplicate);
        assert_eq!(BarrierVerdict::decide(Some(1), 1), BarrierVerdict::NullCompensation);
    }
}
