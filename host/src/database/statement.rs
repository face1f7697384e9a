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
