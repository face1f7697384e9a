//! Guests write numbered parameters (`$1, $2, …`) on every backend; MySQL
//! takes only positional `?`. [`positional`] rewrites a statement's `$N` to
//! `?` and lists the values in the order the `?` now stand, so `$1` used
//! twice binds twice. Quoted text (`'…'`, `"…"`, `` `…` ``) and comments
//! (`-- …`, `# …`, `/* … */`) are left alone. A statement already written
//! with `?` passes through unchanged; one that mixes both is refused.

use super::value::{DbError, Value};

/// `sql` with every `$N` outside quotes and comments made `?`, and the values
/// for those `?` in order; `sql` and `params` unchanged when it has no `$N`.
pub(super) fn positional(sql: &str, params: &[Value]) -> Result<(String, Vec<Value>), DbError> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut order: Vec<usize> = Vec::new();
    let mut question_marks = false;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\\' && quote != b'`' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == quote {
                        // A doubled quote is an escaped one.
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = line_end(bytes, i),
            b'#' => i = line_end(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'?' => {
                question_marks = true;
                i += 1;
            }
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let start = i + 1;
                let mut end = start;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
                let n: usize = sql[start..end]
                    .parse()
                    .map_err(|_| refusal(format!("parameter ${} is too large", &sql[start..end])))?;
                if n == 0 || n > params.len() {
                    return Err(refusal(format!(
                        "parameter ${n} has no value ({} given; parameters are numbered from $1)",
                        params.len()
                    )));
                }
                out.push_str(&sql[copied..i]);
                out.push('?');
                order.push(n - 1);
                i = end;
                copied = end;
            }
            _ => i += 1,
        }
    }
    if order.is_empty() {
        return Ok((sql.to_owned(), params.to_vec()));
    }
    if question_marks {
        return Err(refusal("a statement uses either $1, $2, … or ?, not both".to_owned()));
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    Ok((out, order.into_iter().map(|n| params[n].clone()).collect()))
}

fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| from + p)
}

fn refusal(message: String) -> DbError {
    DbError { code: None, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(sql: &str, params: &[Value]) -> (String, Vec<Value>) {
        positional(sql, params).expect("rewritten")
    }

    #[test]
    fn numbered_parameters_become_positional_in_order_of_use() {
        let params = [Value::Int(5), Value::Text("alice".into())];
        let (sql, values) = rewrite("UPDATE a SET b = b - $1 WHERE id = $2 AND b >= $1", &params);
        assert_eq!(sql, "UPDATE a SET b = b - ? WHERE id = ? AND b >= ?");
        assert_eq!(values, [Value::Int(5), Value::Text("alice".into()), Value::Int(5)]);
    }

    #[test]
    fn quotes_and_comments_are_left_alone() {
        let params = [Value::Int(1)];
        let (sql, values) = rewrite("SELECT '$1', \"$1\", `$1`, 'it''s $1' -- $1\n, $1 /* $1 */ # $1", &params);
        assert_eq!(sql, "SELECT '$1', \"$1\", `$1`, 'it''s $1' -- $1\n, ? /* $1 */ # $1");
        assert_eq!(values, [Value::Int(1)]);
        let (sql, _) = rewrite(r"SELECT 'a\'$1', $1", &params);
        assert_eq!(sql, r"SELECT 'a\'$1', ?");
    }

    #[test]
    fn question_marks_pass_through_and_mixing_is_refused() {
        let params = [Value::Int(1), Value::Int(2)];
        assert_eq!(rewrite("SELECT ?, ?", &params), ("SELECT ?, ?".to_owned(), params.to_vec()));
        assert!(positional("SELECT ?, $2", &params).unwrap_err().message.contains("not both"));
        assert!(positional("SELECT $3", &params).unwrap_err().message.contains("$3 has no value"));
        assert!(positional("SELECT $0", &params).is_err());
        // A dollar not followed by a digit is not a parameter.
        assert_eq!(rewrite("SELECT 'x' AS $a", &[]).0, "SELECT 'x' AS $a");
    }
}
