//! Step outputs: what a workflow step (a branch op whose output the
//! coordinator journals) returned, kept in the business database by the host
//! so that it survives a crash between the branch's commit and the journal.
//!
//! The row is written inside the branch's own local transaction
//! ([`super::LocalTx::record_output`]), so it commits or rolls back with the
//! branch's writes and its barrier row: whenever the barrier later calls the
//! op a duplicate, its output is there to be read
//! ([`super::Database::step_output`]). On SQLite the rows live in
//! `main.wasmtx_step_output`, which the guest authorizer never lets branch
//! SQL reach (the `wasmtx_` prefix); on Postgres in `wasmtx.step_output`,
//! written through the host's `wasmtx.record_output` function (see
//! `postgres.rs`). This file owns the SQLite table; it must not decide when
//! an output is recorded, commit or roll back.

use rusqlite::{Connection, OptionalExtension as _};

use super::{BarrierKey, DbError};

pub(super) const CREATE_TABLE_SQLITE: &str = "\
CREATE TABLE IF NOT EXISTS main.wasmtx_step_output (
    gid         TEXT NOT NULL,
    branch_id   TEXT NOT NULL,
    output      BLOB NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (gid, branch_id)
)";

/// Records `output` for `key`'s branch with a host statement on the writer
/// connection, in the transaction open on it. A row already there (which the
/// barrier never lets happen) is kept.
pub(super) fn record_sqlite(conn: &Connection, key: &BarrierKey, output: &[u8]) -> Result<(), DbError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO main.wasmtx_step_output (gid, branch_id, output) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )
        .map_err(host_error)?;
    stmt.execute((key.gid.as_str(), key.branch_id.as_str(), output)).map_err(host_error)?;
    Ok(())
}

/// The output recorded for a branch, if any.
pub(super) fn read_sqlite(conn: &Connection, gid: &str, branch_id: &str) -> Result<Option<Vec<u8>>, DbError> {
    let mut stmt = conn
        .prepare_cached("SELECT output FROM main.wasmtx_step_output WHERE gid = ?1 AND branch_id = ?2")
        .map_err(host_error)?;
    stmt.query_row((gid, branch_id), |r| r.get(0)).optional().map_err(host_error)
}

fn host_error(e: rusqlite::Error) -> DbError {
    DbError::host(format!("step output: {e}"))
}
