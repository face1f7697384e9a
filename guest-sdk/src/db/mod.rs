//! The branch's local transaction: [`execute`] and [`query`] over the WIT `db`
//! import.
//!
//! Every call runs inside the one database transaction the host opened for this
//! invocation; it commits only if the branch function returns `Ok`. There is no
//! `BEGIN`/`COMMIT` to write, and none may be issued.
//!
//! # Portable SQL
//!
//! A module may be bound to SQLite or to Postgres. Statements that run unchanged
//! on both:
//!
//! - Use `$1, $2, ...` placeholders. Both backends bind `$N` by number, so
//!   `$2` may come before `$1` and a number may repeat.
//! - Use `BIGINT` for integer columns (an `i64` on both sides) and `TEXT` for
//!   strings; upsert with `INSERT ... ON CONFLICT (key) DO UPDATE SET col = excluded.col`.
//! - Lower-case column names; lookups by name fall back to a case-insensitive
//!   match because Postgres folds unquoted identifiers to lower case.
//!
//! This module does not decide what an error means for the transaction: the
//! `?` operator turns a [`DbError`] into [`BranchError::Retry`](crate::BranchError),
//! which is right for transient errors only. Check [`DbError::is_unique_violation`]
//! and friends first where an error carries business meaning.

mod rows;
mod value;

use std::fmt;

pub use rows::{ColumnError, Iter, Row, Rows};
pub use value::{FromValue, Value};

/// Runs a statement (`INSERT`, `UPDATE`, `DELETE`, DDL) and returns the number
/// of rows it affected.
///
/// ```no_run
/// use wasmtx_guest::db;
///
/// # fn f() -> Result<(), db::DbError> {
/// let changed = db::execute(
///     "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
///     &[30.into(), "alice".into()],
/// )?;
/// assert!(changed <= 1);
/// # Ok(()) }
/// ```
pub fn execute(sql: &str, params: &[Value]) -> Result<u64, DbError> {
    host::execute(sql, params)
}

/// Runs a query and returns every row it produced.
///
/// ```no_run
/// use wasmtx_guest::db;
///
/// # fn f() -> Result<(), wasmtx_guest::BranchError> {
/// let rows = db::query("SELECT id, balance FROM accounts ORDER BY id", &[])?;
/// for row in &rows {
///     let id = row.get_str("id")?;
///     let balance = row.get_i64("balance")?;
///     wasmtx_guest::log::info!("{id}: {balance}");
/// }
/// # Ok(()) }
/// ```
pub fn query(sql: &str, params: &[Value]) -> Result<Rows, DbError> {
    host::query(sql, params)
}

/// A statement the database refused (constraint violated, syntax error,
/// serialization conflict, connection lost, ...).
///
/// Converting it into a [`BranchError`](crate::BranchError) with `?` gives
/// `Retry`: most database errors are transient, and the host rolls the local
/// transaction back before it calls again. An error with business meaning,
/// such as a duplicate key, should be checked before `?` and answered with
/// [`BranchError::failure`](crate::BranchError::failure) (or handled), or the
/// branch is retried for ever:
///
/// ```no_run
/// use wasmtx_guest::{db, BranchError};
///
/// fn open_account(id: &str) -> Result<(), BranchError> {
///     match db::execute("INSERT INTO accounts (id, balance) VALUES ($1, 0)", &[id.into()]) {
///         Ok(_) => Ok(()),
///         Err(e) if e.is_unique_violation() => Err(BranchError::failure(format!("account {id} exists"))),
///         Err(e) => Err(e.into()),
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbError {
    /// The SQLSTATE on Postgres (e.g. `"23505"`, `"40001"`), the extended
    /// result code on SQLite (e.g. `"2067"`); `None` when the error did not
    /// come from the database server (e.g. a connection failure).
    pub code: Option<String>,
    /// The database's own message.
    pub message: String,
}

impl DbError {
    /// The error code, if the database gave one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// A `UNIQUE` or `PRIMARY KEY` constraint was violated: Postgres `23505`,
    /// SQLite `2067` (`SQLITE_CONSTRAINT_UNIQUE`) or `1555`
    /// (`SQLITE_CONSTRAINT_PRIMARYKEY`).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self.code(), Some("23505" | "2067" | "1555"))
    }

    /// A `FOREIGN KEY` constraint was violated: Postgres `23503`, SQLite `787`
    /// (`SQLITE_CONSTRAINT_FOREIGNKEY`).
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(self.code(), Some("23503" | "787"))
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "database error {code}: {}", self.message),
            None => write!(f, "database error: {}", self.message),
        }
    }
}

impl std::error::Error for DbError {}

/// The calls into the host. On `wasm32` they are the WIT imports; elsewhere
/// (native unit tests of a guest crate) there is no host, and every call
/// returns an error saying so instead of aborting the test process.
#[cfg(target_arch = "wasm32")]
mod host {
    use super::{DbError, Rows, Value};
    use crate::bindings::wasmtx::runtime::db as wit;

    pub(super) fn execute(sql: &str, params: &[Value]) -> Result<u64, DbError> {
        wit::execute(sql, params).map_err(from_wit)
    }

    pub(super) fn query(sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        wit::query(sql, params).map(|rows| Rows::new(rows.columns, rows.values)).map_err(from_wit)
    }

    fn from_wit(e: wit::DbError) -> DbError {
        DbError { code: e.code, message: e.message }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod host {
    use super::{DbError, Rows, Value};

    pub(super) fn execute(_sql: &str, _params: &[Value]) -> Result<u64, DbError> {
        Err(outside_host())
    }

    pub(super) fn query(_sql: &str, _params: &[Value]) -> Result<Rows, DbError> {
        Err(outside_host())
    }

    fn outside_host() -> DbError {
        DbError {
            code: None,
            message: "wasmtx_guest::db works only inside the wasmtx host (a wasm32-wasip2 component)".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: &str) -> DbError {
        DbError { code: Some(code.to_owned()), message: "boom".to_owned() }
    }

    #[test]
    fn unique_violation_is_recognised_on_both_backends() {
        assert!(error("23505").is_unique_violation());
        assert!(error("2067").is_unique_violation());
        assert!(error("1555").is_unique_violation());
        assert!(!error("40001").is_unique_violation());
        assert!(!DbError { code: None, message: String::new() }.is_unique_violation());
    }

    #[test]
    fn foreign_key_violation_is_recognised_on_both_backends() {
        assert!(error("23503").is_foreign_key_violation());
        assert!(error("787").is_foreign_key_violation());
        assert!(!error("23505").is_foreign_key_violation());
    }

    #[test]
    fn display_shows_code_and_message() {
        assert_eq!(error("23505").to_string(), "database error 23505: boom");
        let no_code = DbError { code: None, message: "gone".to_owned() };
        assert_eq!(no_code.to_string(), "database error: gone");
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn calls_outside_the_host_fail_instead_of_aborting() {
        let e = execute("SELECT 1", &[]).unwrap_err();
        assert!(e.message.contains("only inside the wasmtx host"), "{e}");
        assert!(query("SELECT 1", &[]).is_err());
    }
}
