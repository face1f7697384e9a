//! Postgres business databases: the pool, and the local transaction a branch runs in.
//!
//! Guest SQL reaches Postgres one statement at a time over the extended
//! protocol (a prepared statement cannot hold two), so the check in
//! `statement` is enough to keep the guest from ending the transaction. What
//! Postgres adds is the aborted transaction: after a failed statement every
//! later one fails with 25P02 and COMMIT quietly rolls back, which this file
//! turns into a commit error. It must not decide what a branch does.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Executor, Postgres, Statement, Transaction};

use super::value::{self, DbError, Rows, Value};
use super::{ACQUIRE_TIMEOUT, BarrierKey, BarrierVerdict, DatabaseError, barrier};

pub(super) async fn connect(url: &str) -> Result<PgPool, DatabaseError> {
    let options = PgConnectOptions::from_str(url).map_err(|e| DatabaseError::Config(format!("Postgres URL: {e}")))?;
    let pool = PgPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(DatabaseError::Unavailable)?;
    if let Err(e) = pool.execute(barrier::CREATE_TABLE_POSTGRES).await {
        // Two concurrent `CREATE TABLE IF NOT EXISTS` can both pass the check;
        // the loser fails on a catalog unique index (23505) or sees the table
        // (42P07) once the winner commits. Either way the table now exists.
        let lost_race = e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "23505" || c == "42P07");
        if !lost_race {
            return Err(DatabaseError::Unavailable(e));
        }
        pool.execute(barrier::CREATE_TABLE_POSTGRES).await.map_err(DatabaseError::Unavailable)?;
    }
    Ok(pool)
}

/// One open Postgres transaction (sqlx rolls it back when dropped).
pub(super) struct PgTx {
    tx: Transaction<'static, Postgres>,
    /// A statement failed, so Postgres may have aborted the transaction (unless
    /// the guest rolled back to a savepoint). Checked before committing.
    statement_failed: bool,
}

impl PgTx {
    pub(super) async fn begin(pool: &PgPool) -> Result<PgTx, DbError> {
        Ok(PgTx { tx: pool.begin().await?, statement_failed: false })
    }

    fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Remembers a failed statement before passing its result on.
    fn note<T>(&mut self, result: Result<T, DbError>) -> Result<T, DbError> {
        self.statement_failed |= result.is_err();
        result
    }

    pub(super) async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let text = value::pg_statement_text(sql, params);
        let args = value::pg_arguments(params)?;
        let result = sqlx::query_with(&text, args).execute(self.conn()).await;
        self.note(result.map(|r| r.rows_affected()).map_err(DbError::from))
    }

    pub(super) async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let result = query(self.conn(), sql, params).await;
        self.note(result)
    }

    pub(super) async fn enter_barrier(&mut self, key: &BarrierKey<'_>) -> Result<BarrierVerdict, DbError> {
        let result = barrier::enter_postgres(self.conn(), key).await;
        self.note(result)
    }

    /// Commits; after a failed statement, first checks that the transaction is
    /// not aborted, since COMMIT would then roll back and still "succeed".
    pub(super) async fn commit(mut self) -> Result<(), DbError> {
        if self.statement_failed
            && let Err(e) = self.conn().execute("SELECT 1").await
        {
            let aborted = DbError::from(e);
            let rolled_back = self.tx.rollback().await;
            if aborted.code.as_deref() == Some("25P02") {
                return Err(DbError {
                    code: aborted.code,
                    message: "not committed: an earlier statement failed and aborted the \
                              transaction (roll back to a savepoint to recover from an expected \
                              error); nothing was committed"
                        .to_owned(),
                });
            }
            rolled_back?;
            return Err(aborted);
        }
        Ok(self.tx.commit().await?)
    }

    pub(super) async fn rollback(self) -> Result<(), DbError> {
        Ok(self.tx.rollback().await?)
    }
}

async fn query(conn: &mut PgConnection, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
    let text = value::pg_statement_text(sql, params);
    // Preparing first (a cache hit after the first time) gives the column
    // descriptions, so unsupported types are refused before the statement runs
    // and an empty result still has column names. The query reuses the statement.
    let statement = conn.prepare_with(&text, &value::pg_parameter_types(params)).await?;
    let columns = value::PgColumns::describe(statement.columns())?;
    let args = value::pg_arguments(params)?;
    let rows = sqlx::query_with(&text, args).fetch_all(&mut *conn).await?;
    columns.decode(&rows)
}
