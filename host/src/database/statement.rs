//! The one check on the text of guest SQL for Postgres: which statement it is.
//!
//! Postgres itself guarantees that a guest statement is one statement (the
//! extended protocol refuses a second), and the guest role's privileges decide
//! what it may touch. What privileges cannot stop is a statement that ends the
//! host's transaction (`COMMIT`, `ROLLBACK`, …) or upsets the connection the
//! host shares with the pool (`DEALLOCATE`, `COPY`, `LISTEN`). Such statements
//! are recognised by their first keyword, which in Postgres's grammar is the
//! first token after whitespace, comments and empty statements (`;`) — the
//! only lexical rules needed here, taken from Postgres's scanner (`scan.l`):
//! whitespace is `[ \t\n\r\f\v]`, `--` runs to the end of the line, and `/* */`
//! comments nest. A commit that slipped past anyway is refused at commit time
//! by the database (see `postgres.rs`: the seal), so this check is the clear
//! error, not the only guard.
//!
//! SQLite needs no text check: its authorizer sees every statement as parsed.
//!
//! MySQL ([`check_mysql`]) needs a stricter check: it commits implicitly before
//! (and after) DDL, `LOCK TABLES`, `SET autocommit`, `START TRANSACTION` and
//! more, and has no hook that could refuse such a commit at commit time. So a
//! guest statement there is judged by an allowlist of first keywords, with
//! MySQL's lexical rules: `#` and `-- ` (dash dash space) comments, `/* */`
//! comments that do not nest, and executable comments (`/*! … */`,
//! `/*M! … */`, hints `/*+ … */`), which MySQL runs as code and which are
//! therefore refused wherever they appear.

use super::DbError;

/// Refuses a guest statement that would end or restart the host's
/// transaction, or change the shared connection's protocol state.
pub(super) fn check_postgres(sql: &str) -> Result<(), DbError> {
    let mut words = Words { rest: sql.as_bytes() };
    let Some(first) = words.next() else { return Ok(()) };
    let first = first.to_ascii_uppercase();
    let second = words.next().map(|w| w.to_ascii_uppercase());
    let ends_transaction = matches!(first.as_str(), "BEGIN" | "START" | "COMMIT" | "END" | "ABORT")
        || (first == "ROLLBACK" && second.as_deref() != Some("TO"))
        || (first == "PREPARE" && second.as_deref() == Some("TRANSACTION"));
    if ends_transaction {
        return Err(DbError::host(format!(
            "`{first}` is not allowed: the host owns the branch's transaction and commits it when the function \
             returns ok (return an error to roll back; savepoints are allowed)"
        )));
    }
    if matches!(first.as_str(), "PREPARE" | "EXECUTE" | "DEALLOCATE" | "DISCARD" | "COPY" | "LISTEN" | "UNLISTEN") {
        return Err(DbError::host(format!(
            "`{first}` is not allowed in a branch: it would change the connection the host shares between branches"
        )));
    }
    Ok(())
}

/// What kind of MySQL guest statement [`check_mysql`] let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MysqlStatement {
    /// Runs inside the transaction (DML, savepoints).
    InTransaction,
    /// DDL in a direct call: MySQL commits the transaction before (and after)
    /// it, so the host begins a new one once it ran.
    CommitsImplicitly,
}

/// Checks one MySQL guest statement. In a branch (`direct` false) only
/// statements that never end the transaction pass: `SELECT`, `INSERT`,
/// `UPDATE`, `DELETE`, `REPLACE`, `WITH`, `VALUES`, `SAVEPOINT`, `RELEASE
/// SAVEPOINT` and `ROLLBACK [WORK] TO`. A direct call (no barrier) may also
/// run `CREATE`, `DROP`, `ALTER` and `TRUNCATE` on tables and indexes, which
/// commit at once. Writing server files (`INTO OUTFILE`, `INTO DUMPFILE`) is
/// refused everywhere (the guest account lacks the FILE privilege too).
pub(super) fn check_mysql(sql: &str, direct: bool) -> Result<MysqlStatement, DbError> {
    let words = mysql_words(sql)?;
    let word = |i: usize| words.get(i).map(String::as_str);
    if let Some(file) = words.iter().find(|w| matches!(w.as_str(), "OUTFILE" | "DUMPFILE")) {
        return Err(DbError::host(format!(
            "`INTO {file}` is not allowed: guest SQL may not write files on the database server"
        )));
    }
    let Some(first) = word(0) else {
        return Err(DbError::host("an empty statement is not allowed".to_owned()));
    };
    let allowed = match first {
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "WITH" | "VALUES" | "SAVEPOINT" => true,
        "RELEASE" => word(1) == Some("SAVEPOINT"),
        "ROLLBACK" => word(1) == Some("TO") || (word(1) == Some("WORK") && word(2) == Some("TO")),
        _ => false,
    };
    if allowed {
        return Ok(MysqlStatement::InTransaction);
    }
    if direct && matches!(first, "CREATE" | "DROP" | "ALTER" | "TRUNCATE") {
        if matches!(word(1), Some("DATABASE" | "SCHEMA")) {
            return Err(DbError::host(format!(
                "`{first} {}` is not allowed: the business database is the host's to create",
                word(1).unwrap_or_default()
            )));
        }
        return Ok(MysqlStatement::CommitsImplicitly);
    }
    let why = match first {
        "BEGIN" | "START" | "COMMIT" | "ROLLBACK" | "XA" | "SET" | "LOCK" | "UNLOCK" => {
            "the host owns the branch's transaction and commits it when the function returns ok (return an error \
             to roll back; savepoints are allowed)"
        }
        "CREATE" | "DROP" | "ALTER" | "TRUNCATE" | "RENAME" => {
            "MySQL commits the transaction before DDL, which would end the branch's transaction early; create \
             tables in a direct call, outside any branch"
        }
        "LOAD" => "guest SQL may not read files",
        _ => "only SELECT, INSERT, UPDATE, DELETE, REPLACE, WITH, VALUES and savepoints may run in a branch",
    };
    Err(DbError::host(format!("`{first}` is not allowed on MySQL: {why}")))
}

/// The upper-cased keywords and identifiers of a MySQL statement, outside
/// string literals, quoted identifiers and comments; leading `;` and `(` are
/// skipped like whitespace. Executable comments are an error.
fn mysql_words(sql: &str) -> Result<Vec<String>, DbError> {
    let bytes = sql.as_bytes();
    if bytes.contains(&0) {
        return Err(DbError::host("a NUL byte is not allowed in guest SQL".to_owned()));
    }
    let mut words = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match b {
            b'#' => i = end_of_line(bytes, i),
            b'-' if next == Some(b'-') && bytes.get(i + 2).is_some_and(|c| *c <= b' ' || *c == 0x7f) => {
                i = end_of_line(bytes, i)
            }
            b'/' if next == Some(b'*') => {
                let rest = &bytes[i + 2..];
                if rest.starts_with(b"!") || rest.starts_with(b"M!") || rest.starts_with(b"+") {
                    return Err(DbError::host(
                        "executable comments (`/*! … */`, `/*M! … */`) and optimizer hints (`/*+ … */`) are not \
                         allowed in guest SQL"
                            .to_owned(),
                    ));
                }
                i = match rest.windows(2).position(|w| w == b"*/") {
                    Some(end) => i + 2 + end + 2,
                    None => bytes.len(),
                };
            }
            b'\'' | b'"' | b'`' => i = end_of_quoted(bytes, i),
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80 => {
                let len = bytes[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'$' || **c >= 0x80)
                    .count();
                words.push(String::from_utf8_lossy(&bytes[i..i + len]).to_ascii_uppercase());
                i += len;
            }
            _ => i += 1,
        }
    }
    Ok(words)
}

/// MySQL's `#` and `-- ` comments run to a line feed (a carriage return does not end them).
fn end_of_line(bytes: &[u8], i: usize) -> usize {
    i + bytes[i..].iter().take_while(|b| **b != b'\n').count()
}

/// The index just past the literal or quoted identifier opening at `i`: a
/// doubled quote stands for itself, and in strings (not in backquoted names)
/// a backslash escapes the next byte.
fn end_of_quoted(bytes: &[u8], i: usize) -> usize {
    let quote = bytes[i];
    let mut j = i + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' if quote != b'`' => j += 2,
            b if b == quote => {
                if bytes.get(j + 1) == Some(&quote) {
                    j += 2;
                } else {
                    return j + 1;
                }
            }
            _ => j += 1,
        }
    }
    bytes.len()
}

/// Keywords (runs of identifier characters) after whitespace, comments and
/// semicolons, in order.
struct Words<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Words<'a> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let bytes = self.rest;
        let mut i = 0;
        loop {
            while i < bytes.len() && (is_space(bytes[i]) || bytes[i] == b';') {
                i += 1;
            }
            match skip_comment(bytes, i) {
                Some(end) => i = end,
                None => break,
            }
        }
        let len = bytes[i..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
        if len == 0 {
            self.rest = &[];
            return None;
        }
        let word = String::from_utf8_lossy(&bytes[i..i + len]).into_owned();
        self.rest = &bytes[i + len..];
        Some(word)
    }
}

/// Postgres's `space`: `[ \t\n\r\f\v]`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b)
}

/// If a comment starts at `i`, the index just past it. Block comments nest, as
/// in Postgres; an unclosed one runs to the end.
fn skip_comment(bytes: &[u8], i: usize) -> Option<usize> {
    match bytes.get(i..i + 2) {
        Some(b"--") => {
            let len = bytes[i..].iter().take_while(|b| **b != b'\n' && **b != b'\r').count();
            Some(i + len)
        }
        Some(b"/*") => {
            let mut depth = 0usize;
            let mut j = i;
            while j < bytes.len() {
                match bytes.get(j..j + 2) {
                    Some(b"/*") => {
                        depth += 1;
                        j += 2;
                    }
                    Some(b"*/") => {
                        depth -= 1;
                        j += 2;
                        if depth == 0 {
                            return Some(j);
                        }
                    }
                    _ => j += 1,
                }
            }
            Some(bytes.len())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_that_end_the_transaction_are_refused_however_they_are_dressed() {
        for sql in [
            "COMMIT",
            "commit;",
            ";COMMIT",
            " ; ;\n\tcommit",
            "\x0bCOMMIT",
            "\x0cEND",
            "  -- done\n  End",
            "-- done\rEND",
            "/* a /* nested */ comment */ rollback",
            "/* a /* nested */ still comment COMMIT */ ROLLBACK AND CHAIN",
            "ROLLBACK PREPARED 'x'",
            "BEGIN",
            "start transaction",
            "abort",
            "PREPARE TRANSACTION 'gid'",
            "COMMIT AND CHAIN",
        ] {
            let err = check_postgres(sql).expect_err(sql);
            assert_eq!(err.code, None, "{sql}");
            assert!(err.message.contains("not allowed"), "{sql}: {}", err.message);
        }
    }

    #[test]
    fn statements_that_upset_the_shared_connection_are_refused() {
        for sql in
            ["DEALLOCATE ALL", "prepare q AS SELECT 1", "EXECUTE q", "COPY t FROM STDIN", "LISTEN x", "DISCARD ALL"]
        {
            let err = check_postgres(sql).expect_err(sql);
            assert!(err.message.contains("not allowed in a branch"), "{sql}: {}", err.message);
        }
    }

    #[test]
    fn mysql_branches_run_only_statements_that_keep_the_transaction() {
        for sql in [
            "SELECT 1",
            "  select * from t",
            "(SELECT 1) UNION (SELECT 2)",
            "INSERT INTO t VALUES (?)",
            "update t set v = 1",
            "DELETE FROM t",
            "REPLACE INTO t VALUES (1)",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "VALUES (1, 2)",
            "SAVEPOINT s",
            "RELEASE SAVEPOINT s",
            "ROLLBACK TO s",
            "rollback work to savepoint s",
            "# comment\nSELECT 1",
            "-- comment\nSELECT 1",
            "/* COMMIT */ SELECT 'COMMIT', `commit`, \"outfile\"",
            "SELECT 'it''s', 'a\\'b' FROM t",
            "SELECT @x := 1",
        ] {
            assert_eq!(check_mysql(sql, false), Ok(MysqlStatement::InTransaction), "{sql}");
            assert_eq!(check_mysql(sql, true), Ok(MysqlStatement::InTransaction), "{sql}");
        }
    }

    #[test]
    fn mysql_statements_that_end_or_touch_the_transaction_are_refused_in_a_branch() {
        for sql in [
            "COMMIT",
            "commit work",
            "ROLLBACK",
            "ROLLBACK AND CHAIN",
            "BEGIN",
            "START TRANSACTION",
            "SET autocommit = 1",
            "SET SESSION max_statement_time = 0",
            "LOCK TABLES t WRITE",
            "UNLOCK TABLES",
            "CREATE TABLE t (id INT)",
            "DROP TABLE t",
            "ALTER TABLE t ADD c INT",
            "TRUNCATE t",
            "RENAME TABLE a TO b",
            "CALL p()",
            "DO SLEEP(1)",
            "XA START 'x'",
            "FLUSH TABLES",
            "HANDLER t OPEN",
            "PREPARE s FROM 'COMMIT'",
            "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
            "",
            ";",
            "--COMMIT",
            "/* a /* nested */ COMMIT */",
            "#x\nCOMMIT",
            "#x\rSELECT 1\nCOMMIT",
            "RELEASE",
        ] {
            let err = check_mysql(sql, false).expect_err(sql);
            assert_eq!(err.code, None, "{sql}");
            assert!(err.message.contains("not allowed"), "{sql}: {}", err.message);
        }
    }

    #[test]
    fn mysql_executable_comments_and_file_writes_are_refused_everywhere() {
        for sql in [
            "/*! COMMIT */",
            "/*!99999 SELECT 1 */ COMMIT",
            "/*M!100000 COMMIT */",
            "SELECT /*+ MAX_EXECUTION_TIME(1) */ 1",
            "SELECT 1 /*! INTO OUTFILE '/tmp/x' */",
            "SELECT * FROM t INTO OUTFILE '/tmp/x'",
            "select * into dumpfile '/tmp/x' from t",
        ] {
            assert!(check_mysql(sql, false).is_err(), "{sql}");
            assert!(check_mysql(sql, true).is_err(), "{sql}");
        }
    }

    #[test]
    fn mysql_xa_statements_are_refused_in_branches_and_direct_calls() {
        for sql in [
            "XA START 'wasmtx:g:01', 'shop'",
            "xa begin 'x'",
            "XA END 'x'",
            "XA PREPARE 'x'",
            "XA COMMIT 'wasmtx:g:01', 'shop'",
            "XA COMMIT 'x' ONE PHASE",
            "XA ROLLBACK 'x'",
            "XA RECOVER",
            "/* x */ XA RECOVER FORMAT='SQL'",
            "(XA RECOVER)",
        ] {
            for direct in [false, true] {
                let err = check_mysql(sql, direct).expect_err(sql);
                assert!(err.message.contains("`XA` is not allowed"), "{sql}: {}", err.message);
            }
        }
    }

    #[test]
    fn mysql_direct_calls_may_run_ddl_but_not_on_databases() {
        for sql in ["CREATE TABLE t (id INT)", "drop table t", "ALTER TABLE t ADD c INT", "TRUNCATE TABLE t"] {
            assert_eq!(check_mysql(sql, true), Ok(MysqlStatement::CommitsImplicitly), "{sql}");
        }
        for sql in ["DROP DATABASE shop", "CREATE SCHEMA x", "COMMIT", "SET autocommit = 0", "LOCK TABLES t READ"] {
            assert!(check_mysql(sql, true).is_err(), "{sql}");
        }
    }

    #[test]
    fn ordinary_statements_and_savepoints_pass() {
        for sql in [
            "",
            "   ",
            ";",
            "INSERT INTO t VALUES ($1)",
            "select 'COMMIT'",
            "ROLLBACK TO SAVEPOINT s",
            "rollback to s",
            "SAVEPOINT s",
            "RELEASE SAVEPOINT s",
            "-- COMMIT\nSELECT 1",
            "/* COMMIT */ SELECT 1",
            "UPDATE begin_dates SET x = 1",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "SET LOCAL work_mem = '8MB'",
            "LOCK TABLE accounts",
        ] {
            assert_eq!(check_postgres(sql), Ok(()), "{sql}");
        }
    }
}
