//! Checks on the text of guest SQL before it reaches a business database.
//!
//! The host owns the local transaction a branch runs in (its barrier row and its
//! commit depend on it), so a guest statement that would end or restart that
//! transaction is refused here with a clear message; on SQLite, parameter
//! references are checked against the values given. This is a light tokenizer,
//! not a parser: it only skips whitespace, comments and quoted text, and it must
//! never rewrite the SQL. The transaction check looks at the first statement
//! only; on SQLite, where one string may hold several statements, the commit
//! and rollback hooks in `sqlite` are the backstop.

use super::DbError;

/// Refuses statements that end or restart the host's transaction:
/// `BEGIN`, `START`, `COMMIT`, `END`, `ABORT`, `ROLLBACK` (but not
/// `ROLLBACK TO [SAVEPOINT]`) and `PREPARE TRANSACTION`.
pub(super) fn refuse_transaction_control(sql: &str) -> Result<(), DbError> {
    let mut words = Words { rest: sql };
    let Some(first) = words.next() else {
        return Ok(());
    };
    let second = words.next();
    let is = |w: &str, expected: &str| w.eq_ignore_ascii_case(expected);
    let refused = ["BEGIN", "START", "COMMIT", "END", "ABORT"].iter().any(|k| is(first, k))
        || (is(first, "ROLLBACK") && !second.is_some_and(|s| is(s, "TO")))
        || (is(first, "PREPARE") && second.is_some_and(|s| is(s, "TRANSACTION")));
    if refused {
        return Err(DbError::host(format!(
            "`{}` is not allowed: the host owns the branch's transaction and commits it when the \
             function returns ok (return an error to roll back; savepoints are allowed)",
            first.to_ascii_uppercase()
        )));
    }
    Ok(())
}

/// Checks SQLite parameter references against the values given: refuses `$0`
/// and a `$N` / `?N` / `?` that has no value, outside quotes and comments.
///
/// Two sqlx-sqlite 0.8 behaviours make this necessary: `$0` makes it index
/// argument `0 - 1`, which panics on the connection's worker thread (the
/// branch then fails with "worker crashed" or hangs); and a reference beyond
/// the values given silently stops binding, leaving it and every later
/// parameter NULL. Postgres refuses both itself.
pub(super) fn check_sqlite_parameters(sql: &str, given: usize) -> Result<(), DbError> {
    let bytes = sql.as_bytes();
    let mut anonymous = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = skip_quoted_or_comment(bytes, i) {
            i = end;
            continue;
        }
        let sigil = bytes[i];
        if sigil != b'$' && sigil != b'?' {
            i += 1;
            continue;
        }
        let digits = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        let number = bytes[i + 1..i + 1 + digits]
            .iter()
            .try_fold(0usize, |n, d| n.checked_mul(10)?.checked_add(usize::from(d - b'0')));
        i += 1 + digits;
        let name = || format!("{}{}", char::from(sigil), &sql[i - digits..i]);
        let number = match (sigil, digits) {
            // `$name` is refused by sqlx itself; `?` alone takes the next value.
            (b'$', 0) => continue,
            (_, 0) => {
                anonymous += 1;
                anonymous
            }
            _ => number.unwrap_or(usize::MAX),
        };
        if number == 0 {
            return Err(DbError::host(format!(
                "parameter `{}` is not allowed: parameters are numbered from $1",
                name()
            )));
        }
        if number > given {
            let name = if digits == 0 { format!("? number {number}") } else { name() };
            return Err(DbError::host(format!("parameter `{name}` has no value: {given} given")));
        }
    }
    Ok(())
}

/// Keywords (runs of ASCII letters) outside comments, in order.
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.rest.as_bytes();
        let mut i = 0;
        loop {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            match skip_comment(bytes, i) {
                Some(end) => i = end,
                None => break,
            }
        }
        let len = bytes[i..].iter().take_while(|b| b.is_ascii_alphabetic()).count();
        if len == 0 {
            self.rest = "";
            return None;
        }
        // Only ASCII bytes were consumed, so both indices are char boundaries.
        let word = &self.rest[i..i + len];
        self.rest = &self.rest[i + len..];
        Some(word)
    }
}

/// If a comment starts at `i`, the index just past it. Block comments nest
/// (as on Postgres; SQLite never sees a nested one in valid SQL).
fn skip_comment(bytes: &[u8], i: usize) -> Option<usize> {
    match bytes.get(i..i + 2) {
        Some(b"--") => {
            let len = bytes[i..].iter().take_while(|b| **b != b'\n').count();
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

/// If a comment, a string literal or a quoted identifier starts at `i`, the
/// index just past it (`'…'`, `"…"`, `` `…` `` with doubled-quote escapes, `[…]`).
fn skip_quoted_or_comment(bytes: &[u8], i: usize) -> Option<usize> {
    if let Some(end) = skip_comment(bytes, i) {
        return Some(end);
    }
    let close = match bytes[i] {
        q @ (b'\'' | b'"' | b'`') => q,
        b'[' => b']',
        _ => return None,
    };
    let mut j = i + 1;
    while j < bytes.len() {
        if bytes[j] == close {
            // A doubled quote is an escaped quote, not the end.
            if close != b']' && bytes.get(j + 1) == Some(&close) {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
    Some(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_control_is_refused_case_insensitively_after_comments() {
        for sql in [
            "COMMIT",
            "commit;",
            "  -- done\n  End",
            "/* a /* nested */ comment */ rollback",
            "ROLLBACK PREPARED 'x'",
            "BEGIN",
            "start transaction",
            "abort",
            "PREPARE TRANSACTION 'gid'",
        ] {
            let err = refuse_transaction_control(sql).expect_err(sql);
            assert_eq!(err.code, None, "{sql}");
            assert!(err.message.contains("not allowed"), "{sql}: {}", err.message);
        }
    }

    #[test]
    fn ordinary_statements_and_savepoints_pass() {
        for sql in [
            "",
            "   ",
            "INSERT INTO t VALUES ($1)",
            "select 'COMMIT'",
            "ROLLBACK TO SAVEPOINT s",
            "rollback to s",
            "SAVEPOINT s",
            "RELEASE SAVEPOINT s",
            "PREPARE q AS SELECT 1",
            "-- COMMIT\nSELECT 1",
            "UPDATE begin_dates SET x = 1",
            "WITH x AS (SELECT 1) SELECT * FROM x",
        ] {
            assert_eq!(refuse_transaction_control(sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn parameter_zero_and_parameters_without_a_value_are_refused_outside_quotes_only() {
        for sql in ["SELECT $0", "SELECT $00", "SELECT $1, $0x", "SELECT ($0)", "SELECT ?0"] {
            let err = check_sqlite_parameters(sql, 2).expect_err(sql);
            assert!(err.message.contains("numbered from $1"), "{sql}: {}", err.message);
        }
        for sql in ["SELECT $3", "SELECT $1, $2, $3", "SELECT ?3", "SELECT ?, ?, ?", "SELECT $99999999999999999999999"]
        {
            let err = check_sqlite_parameters(sql, 2).expect_err(sql);
            assert!(err.message.contains("has no value: 2 given"), "{sql}: {}", err.message);
        }
        for sql in [
            "SELECT $1, $2, $2, $1",
            "SELECT ?2, ?1",
            "SELECT ?, ?",
            "SELECT '$0 $3 ?'",
            "SELECT \"$0\" FROM t",
            "SELECT [$3] FROM t",
            "SELECT 1 -- $0 ?\n",
            "SELECT /* $9 */ 1",
            "SELECT 'it''s $0'",
            "SELECT $",
            "SELECT $name",
        ] {
            assert_eq!(check_sqlite_parameters(sql, 2), Ok(()), "{sql}");
        }
    }
}
