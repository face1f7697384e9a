//! The sub-transaction barrier (DTM's `BranchBarrier.Call`), run inside the
//! branch's own local transaction so that the barrier row and the business
//! writes commit or roll back together.
//!
//! This file owns the `wasmtx_barrier` table: its DDL and the two guarded
//! inserts. It must not run business code, commit or roll back: the caller
//! acts on the [`BarrierVerdict`] and ends the transaction.

use sqlx::postgres::PgConnection;
use sqlx::query::Query;
use sqlx::sqlite::SqliteConnection;

use super::DbError;
use crate::model::{BranchId, Gid, Op};

/// Identifies one barrier row: which op of which branch of which transaction.
#[derive(Debug, Clone, Copy)]
pub struct BarrierKey<'a> {
    /// The transaction's mode ("saga", "tcc", ...); stored for operators, not part of the key.
    pub trans_type: &'a str,
    pub gid: &'a Gid,
    pub branch_id: &'a BranchId,
    pub op: Op,
    /// DTM's per-call counter, "01" for the first barrier call of a branch op.
    pub barrier_id: &'a str,
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
    fn decide(origin_inserted: Option<u64>, op_inserted: u64) -> BarrierVerdict {
        if origin_inserted.is_some_and(|a1| a1 > 0) {
            BarrierVerdict::NullCompensation
        } else if op_inserted == 0 {
            BarrierVerdict::Duplicate
        } else {
            BarrierVerdict::Proceed
        }
    }
}

pub(super) const CREATE_TABLE_POSTGRES: &str = "\
CREATE TABLE IF NOT EXISTS wasmtx_barrier (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trans_type  VARCHAR(45)  NOT NULL DEFAULT '',
    gid         VARCHAR(128) NOT NULL,
    branch_id   VARCHAR(128) NOT NULL,
    op          VARCHAR(45)  NOT NULL,
    barrier_id  VARCHAR(45)  NOT NULL,
    reason      VARCHAR(45)  NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT wasmtx_barrier_uniq UNIQUE (gid, branch_id, op, barrier_id)
)";

pub(super) const CREATE_TABLE_SQLITE: &str = "\
CREATE TABLE IF NOT EXISTS wasmtx_barrier (
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

/// Both inserts in one round trip: a1 (the origin row, reason = op) and a2 (the
/// op's own row). The two keys differ, so their order inside the statement does
/// not matter; a concurrent transaction holding either key makes this wait for
/// its outcome, as two separate inserts would.
const INSERT_WITH_ORIGIN_POSTGRES: &str = "\
WITH origin AS (
    INSERT INTO wasmtx_barrier (trans_type, gid, branch_id, op, barrier_id, reason)
    VALUES ($1, $2, $3, $4, $6, $5) ON CONFLICT DO NOTHING RETURNING 1
), this AS (
    INSERT INTO wasmtx_barrier (trans_type, gid, branch_id, op, barrier_id, reason)
    VALUES ($1, $2, $3, $5, $6, $5) ON CONFLICT DO NOTHING RETURNING 1
)
SELECT (SELECT count(*) FROM origin) AS a1, (SELECT count(*) FROM this) AS a2";

/// One insert, bound as `(trans_type, gid, branch_id, op, barrier_id, reason)`.
/// `ON CONFLICT DO NOTHING` (rather than SQLite's `INSERT OR IGNORE`) ignores
/// only the uniqueness conflict, on both backends.
const INSERT_ONE: &str = "\
INSERT INTO wasmtx_barrier (trans_type, gid, branch_id, op, barrier_id, reason)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";

pub(super) async fn enter_postgres(conn: &mut PgConnection, key: &BarrierKey<'_>) -> Result<BarrierVerdict, DbError> {
    let op = key.op.as_str();
    match key.op.origin() {
        Some(origin) => {
            let (a1, a2): (i64, i64) = sqlx::query_as(INSERT_WITH_ORIGIN_POSTGRES)
                .bind(key.trans_type)
                .bind(key.gid.as_str())
                .bind(key.branch_id.as_str())
                .bind(origin.as_str())
                .bind(op)
                .bind(key.barrier_id)
                .fetch_one(&mut *conn)
                .await?;
            Ok(BarrierVerdict::decide(Some(a1.unsigned_abs()), a2.unsigned_abs()))
        }
        None => {
            let a2 = bind_row(sqlx::query(INSERT_ONE), key, op).execute(&mut *conn).await?.rows_affected();
            Ok(BarrierVerdict::decide(None, a2))
        }
    }
}

pub(super) async fn enter_sqlite(conn: &mut SqliteConnection, key: &BarrierKey<'_>) -> Result<BarrierVerdict, DbError> {
    let a1 = match key.op.origin() {
        Some(origin) => {
            Some(bind_row(sqlx::query(INSERT_ONE), key, origin.as_str()).execute(&mut *conn).await?.rows_affected())
        }
        None => None,
    };
    let a2 = bind_row(sqlx::query(INSERT_ONE), key, key.op.as_str()).execute(&mut *conn).await?.rows_affected();
    Ok(BarrierVerdict::decide(a1, a2))
}

/// Binds [`INSERT_ONE`] for the row of `row_op`, with reason = the key's op.
fn bind_row<'q, DB>(
    query: Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    key: &BarrierKey<'q>,
    row_op: &'q str,
) -> Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(key.trans_type)
        .bind(key.gid.as_str())
        .bind(key.branch_id.as_str())
        .bind(row_op)
        .bind(key.barrier_id)
        .bind(key.op.as_str())
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
