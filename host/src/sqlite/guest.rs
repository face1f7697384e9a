//! What guest SQL may do on SQLite, decided by SQLite's own parser: the
//! authorizer is asked about every table, column, function, pragma and
//! transaction step of a statement while it is prepared, and [`authorize`]
//! answers. Guest statements also run under tighter limits
//! ([`apply_limits`]) and a deadline (the writer's progress handler).
//!
//! A guest may read and write the tables of its database, create and drop
//! its own tables, indexes, views and triggers, use savepoints, and call
//! SQLite's ordinary functions. It may not: touch `wasmtx_*` tables (the
//! barrier, the workflow steps' outputs and, when the store shares the file,
//! the coordinator's tables) or
//! `sqlite_*` internals; attach or detach files (so no `ATTACH` or
//! `VACUUM INTO`); begin, commit or roll back the host's transaction; create
//! temporary objects (which could shadow host tables) or virtual tables;
//! change any pragma (only a few read-only ones are allowed); call functions
//! outside [`ALLOWED_FUNCTIONS`] (so no `fts3_tokenizer`, `load_extension`).

use std::time::Duration;

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, TransactionOperation};
use rusqlite::limits::Limit;
use rusqlite::types::{Value, ValueRef};

/// Table-name prefix reserved for the host.
pub const RESERVED_PREFIX: &str = "wasmtx_";

/// Pragmas a guest may read (with a table or index argument, never a value to set).
const ALLOWED_PRAGMAS: &[&str] =
    &["table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "foreign_key_list"];

/// SQLite's built-in scalar, aggregate, window, date, math and JSON functions
/// that only compute on their arguments.
pub const ALLOWED_FUNCTIONS: &[&str] = &[
    // core scalar
    "abs",
    "changes",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "format",
    "glob",
    "hex",
    "ifnull",
    "iif",
    "if",
    "instr",
    "last_insert_rowid",
    "length",
    "like",
    "likelihood",
    "likely",
    "lower",
    "ltrim",
    "max",
    "min",
    "nullif",
    "octet_length",
    "printf",
    "quote",
    "random",
    "randomblob",
    "replace",
    "round",
    "rtrim",
    "sign",
    "soundex",
    "substr",
    "substring",
    "total_changes",
    "trim",
    "typeof",
    "unhex",
    "unicode",
    "unistr",
    "unistr_quote",
    "unlikely",
    "upper",
    "zeroblob",
    "sqlite_version",
    // aggregate
    "avg",
    "count",
    "group_concat",
    "string_agg",
    "sum",
    "total",
    "median",
    "percentile",
    "percentile_cont",
    "percentile_disc",
    // window
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // date and time
    "date",
    "time",
    "datetime",
    "julianday",
    "unixepoch",
    "strftime",
    "timediff",
    "current_date",
    "current_time",
    "current_timestamp",
    // math
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "ceil",
    "ceiling",
    "cos",
    "cosh",
    "degrees",
    "exp",
    "floor",
    "ln",
    "log",
    "log10",
    "log2",
    "mod",
    "pi",
    "pow",
    "power",
    "radians",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "trunc",
    // JSON
    "json",
    "jsonb",
    "json_array",
    "jsonb_array",
    "json_array_length",
    "json_error_position",
    "json_extract",
    "jsonb_extract",
    "->",
    "->>",
    "json_insert",
    "jsonb_insert",
    "json_object",
    "jsonb_object",
    "json_patch",
    "jsonb_patch",
    "json_pretty",
    "json_remove",
    "jsonb_remove",
    "json_replace",
    "jsonb_replace",
    "json_set",
    "jsonb_set",
    "json_type",
    "json_valid",
    "json_quote",
    "json_group_array",
    "jsonb_group_array",
    "json_group_object",
    "jsonb_group_object",
    "json_each",
    "json_tree",
];

/// The authorizer's answer for a guest statement: `Err` says why not.
pub fn authorize(ctx: &AuthContext<'_>) -> Result<(), String> {
    let temporary = matches!(
        ctx.action,
        AuthAction::CreateTempIndex { .. }
            | AuthAction::CreateTempTable { .. }
            | AuthAction::CreateTempTrigger { .. }
            | AuthAction::CreateTempView { .. }
            | AuthAction::DropTempIndex { .. }
            | AuthAction::DropTempTable { .. }
            | AuthAction::DropTempTrigger { .. }
            | AuthAction::DropTempView { .. }
    );
    let schema = ctx.database_name.unwrap_or("main");
    if temporary || schema == "temp" {
        return Err("temporary tables, views, indexes and triggers are not allowed (the temp schema could shadow \
                    the host's tables)"
            .into());
    }
    if schema != "main" {
        return Err(format!("only the main database is reachable, not {schema:?}"));
    }
    match ctx.action {
        AuthAction::Select | AuthAction::Recursive => Ok(()),
        AuthAction::Read { table_name, .. } => readable(table_name),
        AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name } => writable(table_name),
        AuthAction::CreateTable { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::AlterTable { table_name, .. } => guest_table(table_name),
        AuthAction::CreateIndex { index_name, table_name } | AuthAction::DropIndex { index_name, table_name } => {
            // SQLite names the indexes behind UNIQUE and PRIMARY KEY itself (no
            // statement may use the `sqlite_` prefix for its own objects).
            let automatic = index_name.to_ascii_lowercase().starts_with("sqlite_autoindex_");
            (if automatic { Ok(()) } else { guest_table(index_name) }).and_then(|()| guest_table(table_name))
        }
        AuthAction::CreateTrigger { trigger_name, table_name }
        | AuthAction::DropTrigger { trigger_name, table_name } => {
            guest_table(trigger_name).and_then(|()| guest_table(table_name))
        }
        AuthAction::CreateView { view_name } | AuthAction::DropView { view_name } => guest_table(view_name),
        AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. }
        | AuthAction::DropTempIndex { .. }
        | AuthAction::DropTempTable { .. }
        | AuthAction::DropTempTrigger { .. }
        | AuthAction::DropTempView { .. } => {
            Err("temporary tables, views, indexes and triggers are not allowed".into())
        }
        AuthAction::Transaction { operation } => Err(format!(
            "{} is not allowed: the host owns the branch's transaction and commits it when the function returns ok \
             (return an error to roll back; savepoints are allowed)",
            transaction_word(operation)
        )),
        AuthAction::Savepoint { savepoint_name, .. } => {
            if savepoint_name.to_ascii_lowercase().starts_with("wasmtx") {
                Err(format!("savepoint {savepoint_name} is not allowed: names starting with wasmtx are the host's"))
            } else {
                Ok(())
            }
        }
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => {
            Err("ATTACH, DETACH and VACUUM INTO are not allowed: a branch reaches only its own database".into())
        }
        AuthAction::Pragma { pragma_name, pragma_value } => {
            let name = pragma_name.to_ascii_lowercase();
            if ALLOWED_PRAGMAS.contains(&name.as_str()) && pragma_value.is_none_or(|t| readable(t).is_ok()) {
                Ok(())
            } else {
                Err(format!("PRAGMA {pragma_name} is not allowed (allowed: {})", ALLOWED_PRAGMAS.join(", ")))
            }
        }
        AuthAction::Function { function_name } => {
            if ALLOWED_FUNCTIONS.iter().any(|f| f.eq_ignore_ascii_case(function_name)) {
                Ok(())
            } else {
                Err(format!("function {function_name}() is not allowed"))
            }
        }
        AuthAction::CreateVtable { .. } | AuthAction::DropVtable { .. } => Err("virtual tables are not allowed".into()),
        AuthAction::Analyze { .. } | AuthAction::Reindex { .. } => Err("ANALYZE and REINDEX are not allowed".into()),
        _ => Err(format!("{:?} is not allowed", ctx.action)),
    }
}

fn transaction_word(operation: TransactionOperation) -> &'static str {
    match operation {
        TransactionOperation::Begin => "BEGIN",
        TransactionOperation::Release => "COMMIT",
        TransactionOperation::Rollback => "ROLLBACK",
        // SQLite reports COMMIT and END as "COMMIT", which rusqlite does not name.
        _ => "COMMIT",
    }
}

/// Tables a guest may read: its own, and the schema catalogue.
fn readable(table: &str) -> Result<(), String> {
    let lower = table.to_ascii_lowercase();
    if lower == "sqlite_master" || lower == "sqlite_schema" || lower == "sqlite_sequence" {
        return Ok(());
    }
    guest_table(table)
}

/// Tables a guest statement may change. DDL writes the schema table, which
/// SQLite itself refuses to let plain DML touch; `sqlite_sequence` and other
/// internals stay off limits.
fn writable(table: &str) -> Result<(), String> {
    let lower = table.to_ascii_lowercase();
    if lower == "sqlite_master" || lower == "sqlite_schema" {
        return Ok(());
    }
    guest_table(table)
}

/// Names a guest may create, write or drop: not the host's, not SQLite's.
fn guest_table(name: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with(RESERVED_PREFIX) {
        Err(format!("{name} belongs to the host: tables named {RESERVED_PREFIX}* are not reachable from a branch"))
    } else if lower.starts_with("sqlite_") {
        Err(format!("{name} is internal to SQLite"))
    } else {
        Ok(())
    }
}

/// Bounds on what one invocation's SQL may return, counted over all its statements.
#[derive(Debug, Clone)]
pub struct GuestLimits {
    /// Rows left to return.
    pub rows: u64,
    /// Bytes of values left to return.
    pub bytes: u64,
}

/// What a guest statement produced.
#[derive(Debug, Clone, PartialEq)]
pub enum GuestOutput {
    /// Rows changed (for `execute`).
    Changed(u64),
    /// The result set (for `query`) and how many bytes its values take.
    Rows { columns: Vec<String>, rows: Vec<Vec<Value>>, bytes: u64 },
}

/// Why a guest statement failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestSqlError {
    /// SQLite's extended result code, where SQLite gave one.
    pub code: Option<i32>,
    pub message: String,
}

const SQLITE_AUTH: i32 = 23;
const SQLITE_INTERRUPT: i32 = 9;

impl GuestSqlError {
    fn host(message: String) -> Self {
        GuestSqlError { code: None, message }
    }

    /// Replaces SQLite's terse "not authorized" / "interrupted" by the reason.
    pub(super) fn explain(self, denied: Option<String>, budget: Duration) -> Self {
        match (self.code.map(|c| c & 0xff), denied) {
            // Whatever SQLite's wording ("not authorized", "not authorized to
            // use function: …"), the authorizer refused this statement.
            // (A host error of our own, such as "one statement per call", stands.)
            (Some(_), Some(why)) => {
                GuestSqlError { code: Some(SQLITE_AUTH), message: format!("not authorized: {why}") }
            }
            (Some(SQLITE_INTERRUPT), _) => GuestSqlError {
                code: self.code,
                message: format!("deadline exceeded: the statement was stopped after {budget:?}"),
            },
            _ => self,
        }
    }
}

impl From<rusqlite::Error> for GuestSqlError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(err, message) => {
                GuestSqlError { code: Some(err.extended_code), message: message.unwrap_or_else(|| err.to_string()) }
            }
            // A statement that failed to prepare, with where.
            rusqlite::Error::SqlInputError { error, msg, .. } => {
                GuestSqlError { code: Some(error.extended_code), message: msg }
            }
            rusqlite::Error::MultipleStatement => {
                GuestSqlError::host("one statement per call: the SQL holds more than one".to_owned())
            }
            other => GuestSqlError::host(other.to_string()),
        }
    }
}

/// Limits for the duration of a guest statement; returns the host's, to restore.
pub(super) fn apply_limits(conn: &Connection) -> [(Limit, i32); 7] {
    let guest = [
        (Limit::SQLITE_LIMIT_LENGTH, 16 << 20),
        (Limit::SQLITE_LIMIT_SQL_LENGTH, 1 << 20),
        (Limit::SQLITE_LIMIT_COLUMN, 2000),
        (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 100),
        (Limit::SQLITE_LIMIT_FUNCTION_ARG, 100),
        (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 1000),
        (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 10),
    ];
    guest.map(|(limit, value)| (limit, conn.set_limit(limit, value)))
}

pub(super) fn restore_limits(conn: &Connection, host: [(Limit, i32); 7]) {
    for (limit, value) in host {
        conn.set_limit(limit, value);
    }
}

/// Guest SQL texts already checked to hold exactly one statement (bounded:
/// forgotten all at once when full, then checked again).
#[derive(Default)]
pub(super) struct Verified(std::collections::HashSet<String>);

const VERIFIED_CAPACITY: usize = 1024;

impl Verified {
    /// Refuses SQL holding more than one statement (SQLite would silently run
    /// only the first): SQLite's own tokenizer finds the statements.
    fn check(&mut self, conn: &Connection, sql: &str) -> Result<(), GuestSqlError> {
        if self.0.contains(sql) {
            return Ok(());
        }
        let mut batch = rusqlite::Batch::new(conn, sql);
        let first = batch.next()?;
        // A second statement, valid or not, is refused before anything runs.
        if first.is_some() && !matches!(batch.next(), Ok(None)) {
            return Err(GuestSqlError::host("one statement per call: the SQL holds more than one".to_owned()));
        }
        if let Some(offset) = rollback_clause(sql) {
            return Err(GuestSqlError::host(format!(
                "ROLLBACK at byte {offset} is not allowed: ON CONFLICT ROLLBACK, OR ROLLBACK and RAISE(ROLLBACK) \
                 would end the host's transaction (use ABORT or FAIL, or a savepoint)"
            )));
        }
        if self.0.len() >= VERIFIED_CAPACITY {
            self.0.clear();
        }
        self.0.insert(sql.to_owned());
        Ok(())
    }
}

/// Where `sql` uses the keyword ROLLBACK other than in `ROLLBACK [TRANSACTION]
/// TO` (a savepoint, which the authorizer judges): a conflict clause or
/// `RAISE(ROLLBACK)`, which would end the whole transaction, and with it
/// other branches' work in the same batch. Strings, quoted names and
/// comments are skipped as SQLite's tokenizer does.
fn rollback_clause(sql: &str) -> Option<usize> {
    let bytes = sql.as_bytes();
    let mut words: Vec<(usize, &str)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' | b'"' | b'`' => {
                // Quoted: a doubled quote is part of it.
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == c {
                        if bytes.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'[' => {
                while i < bytes.len() && bytes[i] != b']' {
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'$') || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                words.push((start, &sql[start..i]));
            }
            _ => i += 1,
        }
    }
    words.iter().enumerate().find_map(|(n, (offset, word))| {
        if !word.eq_ignore_ascii_case("rollback") {
            return None;
        }
        let next = |k: usize| words.get(n + k).map(|(_, w)| *w);
        let to_savepoint = next(1).is_some_and(|w| w.eq_ignore_ascii_case("to"))
            || (next(1).is_some_and(|w| w.eq_ignore_ascii_case("transaction"))
                && next(2).is_some_and(|w| w.eq_ignore_ascii_case("to")));
        (!to_savepoint).then_some(*offset)
    })
}

/// Prepares (under the authorizer, cached apart from host statements) and
/// runs one guest statement.
pub(super) fn run(
    conn: &Connection,
    verified: &mut Verified,
    sql: &str,
    params: &[Value],
    limits: &GuestLimits,
    want_rows: bool,
) -> Result<GuestOutput, GuestSqlError> {
    // The prefix keeps guest statements out of the host's cache entries: a
    // statement is authorized when prepared, so a guest must never reuse one
    // prepared in host mode.
    verified.check(conn, sql)?;
    let mut stmt = conn.prepare_cached(&format!("/*guest*/{sql}"))?;
    super::bind_numbered(&mut stmt, params.len(), |stmt, index, number| {
        stmt.raw_bind_parameter(index, &params[number - 1])
    })
    .map_err(GuestSqlError::host)?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    let mut bytes = 0u64;
    while let Some(row) = rows.next()? {
        if !want_rows {
            continue;
        }
        if out.len() as u64 >= limits.rows {
            return Err(GuestSqlError::host(format!(
                "query results exceed the limit of rows one invocation may read ({} left)",
                limits.rows
            )));
        }
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            let value = row.get_ref(i)?;
            bytes += value_size(value);
            if bytes > limits.bytes {
                return Err(GuestSqlError::host(format!(
                    "query results exceed the limit of bytes one invocation may read ({} left)",
                    limits.bytes
                )));
            }
            values.push(Value::from(value));
        }
        out.push(values);
    }
    drop(rows);
    if want_rows {
        Ok(GuestOutput::Rows { columns, rows: out, bytes })
    } else {
        Ok(GuestOutput::Changed(conn.changes()))
    }
}

fn value_size(value: ValueRef<'_>) -> u64 {
    match value {
        ValueRef::Null => 1,
        ValueRef::Integer(_) | ValueRef::Real(_) => 8,
        ValueRef::Text(t) | ValueRef::Blob(t) => t.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(action: AuthAction<'_>) -> AuthContext<'_> {
        AuthContext { action, database_name: Some("main"), accessor: None }
    }

    #[test]
    fn guests_use_their_own_tables_and_ordinary_functions() {
        for action in [
            AuthAction::Select,
            AuthAction::Read { table_name: "accounts", column_name: "balance" },
            AuthAction::Insert { table_name: "accounts" },
            AuthAction::CreateTable { table_name: "accounts" },
            AuthAction::CreateIndex { index_name: "accounts_id", table_name: "accounts" },
            AuthAction::Function { function_name: "json_extract" },
            AuthAction::Function { function_name: "COALESCE" },
            AuthAction::Savepoint { operation: TransactionOperation::Begin, savepoint_name: "s" },
            AuthAction::Pragma { pragma_name: "table_info", pragma_value: Some("accounts") },
            AuthAction::Read { table_name: "sqlite_master", column_name: "name" },
        ] {
            assert_eq!(authorize(&ctx(action)), Ok(()), "{action:?}");
        }
    }

    #[test]
    fn the_host_s_tables_files_transaction_and_settings_are_out_of_reach() {
        for (action, why) in [
            (AuthAction::Read { table_name: "wasmtx_barrier", column_name: "gid" }, "belongs to the host"),
            (AuthAction::Delete { table_name: "WASMTX_BARRIER" }, "belongs to the host"),
            (AuthAction::Insert { table_name: "wasmtx_transactions" }, "belongs to the host"),
            (AuthAction::CreateTrigger { trigger_name: "t", table_name: "wasmtx_barrier" }, "belongs to the host"),
            (AuthAction::CreateTempTable { table_name: "wasmtx_barrier" }, "temporary"),
            (AuthAction::CreateTempTrigger { trigger_name: "t", table_name: "accounts" }, "temporary"),
            (AuthAction::Attach { filename: "/etc/passwd" }, "ATTACH"),
            (AuthAction::Transaction { operation: TransactionOperation::Release }, "COMMIT is not allowed"),
            (AuthAction::Transaction { operation: TransactionOperation::Rollback }, "ROLLBACK is not allowed"),
            (AuthAction::Pragma { pragma_name: "query_only", pragma_value: Some("1") }, "PRAGMA query_only"),
            (AuthAction::Pragma { pragma_name: "hard_heap_limit", pragma_value: Some("1") }, "PRAGMA"),
            (AuthAction::Pragma { pragma_name: "writable_schema", pragma_value: None }, "PRAGMA"),
            (AuthAction::Function { function_name: "fts3_tokenizer" }, "fts3_tokenizer() is not allowed"),
            (AuthAction::Function { function_name: "load_extension" }, "not allowed"),
            (AuthAction::CreateVtable { table_name: "t", module_name: "fts3" }, "virtual tables"),
            (AuthAction::Update { table_name: "sqlite_sequence", column_name: "seq" }, "internal to SQLite"),
        ] {
            let err = authorize(&ctx(action)).expect_err(&format!("{action:?}"));
            assert!(err.contains(why), "{action:?}: {err}");
        }
        let host_savepoint =
            AuthAction::Savepoint { operation: TransactionOperation::Release, savepoint_name: "WASMTX_job" };
        assert!(authorize(&ctx(host_savepoint)).unwrap_err().contains("are the host's"));
        let temp = AuthContext { action: AuthAction::Select, database_name: Some("temp"), accessor: None };
        assert!(authorize(&temp).is_err(), "the temp schema is not reachable");
    }

    /// Workflow steps' outputs sit beside the barrier under the same rule:
    /// a guest may neither read, write, index, trigger on nor drop them.
    #[test]
    fn the_step_output_table_is_the_host_s() {
        for action in [
            AuthAction::Read { table_name: "wasmtx_step_output", column_name: "output" },
            AuthAction::Read { table_name: "WASMTX_STEP_OUTPUT", column_name: "gid" },
            AuthAction::Insert { table_name: "wasmtx_step_output" },
            AuthAction::Update { table_name: "wasmtx_step_output", column_name: "output" },
            AuthAction::Delete { table_name: "wasmtx_step_output" },
            AuthAction::DropTable { table_name: "wasmtx_step_output" },
            AuthAction::AlterTable { database_name: "main", table_name: "wasmtx_step_output" },
            AuthAction::CreateIndex { index_name: "i", table_name: "wasmtx_step_output" },
            AuthAction::CreateTrigger { trigger_name: "t", table_name: "wasmtx_step_output" },
            AuthAction::CreateTable { table_name: "wasmtx_step_output" },
            AuthAction::Pragma { pragma_name: "table_info", pragma_value: Some("wasmtx_step_output") },
        ] {
            let err = authorize(&ctx(action)).expect_err(&format!("{action:?}"));
            assert!(err.contains("belongs to the host") || err.contains("PRAGMA"), "{action:?}: {err}");
        }
    }

    #[test]
    fn rollback_that_would_end_the_transaction_is_found_and_savepoint_rollback_is_not() {
        for sql in [
            "INSERT OR ROLLBACK INTO t VALUES (1)",
            "CREATE TABLE t (id INTEGER PRIMARY KEY ON CONFLICT ROLLBACK)",
            "CREATE TRIGGER x BEFORE INSERT ON t BEGIN SELECT RAISE(ROLLBACK, 'no'); END",
            "update or\trollback t set v = 1",
            "INSERT INTO t VALUES ('it''s') ON CONFLICT DO NOTHING; -- x\n ROLLBACK",
        ] {
            assert!(rollback_clause(sql).is_some(), "{sql}");
        }
        for sql in [
            "ROLLBACK TO sp",
            "rollback transaction to sp",
            "SELECT 'ROLLBACK' AS x",
            "SELECT \"rollback\" FROM t",
            "SELECT [rollback] FROM t /* ROLLBACK */",
            "INSERT OR ABORT INTO t VALUES (1) -- ROLLBACK",
            "SELECT rollbacks FROM t",
        ] {
            assert_eq!(rollback_clause(sql), None, "{sql}");
        }
    }
}
