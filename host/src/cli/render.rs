//! How the client commands show the server's JSON to a person: aligned
//! plain-text tables and `key  value` blocks, and the lines `tx watch`
//! prints for each change. Pure functions of the JSON; no I/O.

use std::collections::HashMap;

use serde_json::Value;

/// Columns separated by two spaces, each as wide as its widest cell, left
/// aligned; no trailing spaces. A header row comes first.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `key  value` lines with the values aligned; empty values are left out.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.push_str(&format!("{key:<width$}  {value}\n"));
    }
    out
}

/// A field as text: a string as it is, `null` or missing as nothing, any
/// other JSON compact; line breaks flattened so a cell stays on one line.
pub fn text(v: &Value, key: &str) -> String {
    let text = match v.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if text.contains(['\n', '\r']) {
        text.split(['\n', '\r']).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
    } else {
        text
    }
}

/// The answer to a submit: gid, status, why it rolled back, a workflow's output.
pub fn submitted(answer: &Value) -> String {
    fields(&[
        ("gid", text(answer, "gid")),
        ("status", text(answer, "status")),
        ("rollback reason", text(answer, "rollback_reason")),
        ("output", text(answer, "output")),
    ])
}

/// One transaction: its state, then a table of its ops.
pub fn transaction(tx: &Value) -> String {
    let mut out = fields(&[
        ("gid", text(tx, "gid")),
        ("mode", text(tx, "mode")),
        ("status", text(tx, "status")),
        ("rollback reason", text(tx, "rollback_reason")),
        ("last error", text(tx, "last_error")),
        ("attempts", text(tx, "attempts")),
        ("next retry", text(tx, "next_retry_at")),
        ("created", text(tx, "created_at")),
        ("updated", text(tx, "updated_at")),
        ("finished", text(tx, "finished_at")),
        ("output", text(tx, "output")),
    ]);
    let ops = tx["branches"].as_array().map(Vec::as_slice).unwrap_or_default();
    if !ops.is_empty() {
        let rows: Vec<Vec<String>> = ops
            .iter()
            .map(|op| {
                vec![
                    text(op, "branch_id"),
                    text(op, "op"),
                    target(op),
                    text(op, "status"),
                    text(op, "attempts"),
                    text(op, "last_error"),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["BRANCH", "OP", "TARGET", "STATUS", "ATTEMPTS", "LAST ERROR"], &rows));
    }
    out
}

/// What an op calls: `module.function`, or an HTTP target's URL.
fn target(op: &Value) -> String {
    match (op["module"].as_str(), op["function"].as_str(), op["url"].as_str()) {
        (Some(module), Some(function), _) => format!("{module}.{function}"),
        (_, _, Some(url)) => url.to_owned(),
        _ => String::new(),
    }
}

/// A page of `GET /v1/transactions`.
pub fn transactions(page: &Value) -> String {
    let list = page["transactions"].as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|tx| {
            let reason = match text(tx, "rollback_reason") {
                r if r.is_empty() => text(tx, "last_error"),
                r => r,
            };
            vec![
                text(tx, "gid"),
                text(tx, "mode"),
                text(tx, "status"),
                text(tx, "attempts"),
                text(tx, "created_at"),
                reason,
            ]
        })
        .collect();
    table(&["GID", "MODE", "STATUS", "ATTEMPTS", "CREATED", "REASON"], &rows)
}

/// One module, as uploaded or current.
pub fn module(m: &Value) -> String {
    fields(&[
        ("name", text(m, "name")),
        ("digest", text(m, "digest")),
        ("world", text(m, "world")),
        ("database", text(m, "database")),
        ("functions", joined(m, "functions")),
        ("instance reuse", text(m, "instance_reuse")),
        ("http hosts", joined(m, "http_hosts")),
        ("size", text(m, "size")),
        ("created", text(m, "created_at")),
    ])
}

/// `GET /v1/modules`.
pub fn modules(list: &Value) -> String {
    let modules = list["modules"].as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = modules
        .iter()
        .map(|m| {
            let digest = text(m, "digest");
            let short = digest.strip_prefix("sha256:").unwrap_or(&digest).chars().take(12).collect();
            vec![
                text(m, "name"),
                text(m, "world"),
                text(m, "database"),
                short,
                text(m, "created_at"),
                joined(m, "functions"),
            ]
        })
        .collect();
    table(&["NAME", "WORLD", "DATABASE", "DIGEST", "CREATED", "FUNCTIONS"], &rows)
}

/// An array of strings, comma-separated.
fn joined(v: &Value, key: &str) -> String {
    let items = v[key].as_array().map(Vec::as_slice).unwrap_or_default();
    items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
}

/// What `tx watch` has seen of one transaction, to print only what changed.
#[derive(Debug, Default)]
pub struct Watch {
    status: Option<String>,
    /// By (branch, op): its status and attempts when last seen.
    ops: HashMap<(String, String), (String, String)>,
}

impl Watch {
    /// The lines for what changed since the last view: the transaction's
    /// status, and each op whose status or attempts changed. An op seen
    /// first is shown unless it has not run yet (`prepared`, no attempt).
    pub fn changes(&mut self, tx: &Value) -> Vec<String> {
        let mut lines = Vec::new();
        for op in tx["branches"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let key = (text(op, "branch_id"), text(op, "op"));
            let now = (text(op, "status"), text(op, "attempts"));
            let changed = match self.ops.get(&key) {
                Some(before) => before != &now,
                None => !(now.0 == "prepared" && matches!(now.1.as_str(), "" | "0")),
            };
            if changed {
                let mut line = format!("{} {} {}", key.0, key.1, now.0);
                if !matches!(now.1.as_str(), "" | "0") {
                    line.push_str(&format!(" (attempts {})", now.1));
                }
                let error = text(op, "last_error");
                if !error.is_empty() {
                    line.push_str(&format!(": {error}"));
                }
                lines.push(line);
            }
            self.ops.insert(key, now);
        }
        let status = text(tx, "status");
        if self.status.as_deref() != Some(status.as_str()) {
            let mut line = format!("transaction {status}");
            let reason = text(tx, "rollback_reason");
            if !reason.is_empty() {
                line.push_str(&format!(": {reason}"));
            }
            lines.push(line);
            self.status = Some(status);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn table_aligns_columns_on_their_widest_cell_without_trailing_spaces() {
        let rows = vec![
            vec!["01".to_owned(), "compensate".to_owned(), "".to_owned()],
            vec!["02".to_owned(), "action".to_owned(), "boom".to_owned()],
        ];
        assert_eq!(
            table(&["BRANCH", "OP", "LAST ERROR"], &rows),
            "BRANCH  OP          LAST ERROR\n01      compensate\n02      action      boom\n"
        );
    }

    #[test]
    fn table_counts_characters_not_bytes() {
        let rows = vec![vec!["é".to_owned(), "x".to_owned()], vec!["ab".to_owned(), "y".to_owned()]];
        assert_eq!(table(&["A", "B"], &rows), "A   B\né   x\nab  y\n");
    }

    #[test]
    fn table_of_no_rows_is_its_header() {
        assert_eq!(table(&["GID", "STATUS"], &[]), "GID  STATUS\n");
    }

    #[test]
    fn fields_align_values_and_leave_out_empty_ones() {
        let out = fields(&[("gid", "t-1".to_owned()), ("rollback reason", String::new()), ("status", "ok".to_owned())]);
        assert_eq!(out, "gid     t-1\nstatus  ok\n");
    }

    #[test]
    fn text_shows_strings_bare_other_json_compact_and_flattens_lines() {
        let v = json!({ "s": "a\nb", "n": 3, "o": { "k": 1 }, "z": null });
        assert_eq!(text(&v, "s"), "a b");
        assert_eq!(text(&v, "n"), "3");
        assert_eq!(text(&v, "o"), r#"{"k":1}"#);
        assert_eq!(text(&v, "z"), "");
        assert_eq!(text(&v, "missing"), "");
    }

    #[test]
    fn transaction_shows_every_op_with_its_target_and_error() {
        let tx = json!({
            "gid": "t-1", "mode": "saga", "status": "failed", "rollback_reason": "no carol", "attempts": 0,
            "branches": [
                { "branch_id": "01", "op": "action", "module": "bank", "function": "trans-out",
                  "status": "succeeded", "attempts": 1 },
                { "branch_id": "02", "op": "action", "url": "http://svc/in", "status": "failed", "attempts": 1,
                  "last_error": "no carol" },
            ],
        });
        let out = transaction(&tx);
        assert!(out.starts_with("gid              t-1\nmode             saga\nstatus           failed\n"), "{out}");
        assert!(out.contains("rollback reason  no carol\n"), "{out}");
        assert!(
            out.contains(
                "\nBRANCH  OP      TARGET          STATUS     ATTEMPTS  LAST ERROR\n\
             01      action  bank.trans-out  succeeded  1\n\
             02      action  http://svc/in   failed     1         no carol\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn modules_show_a_short_digest() {
        let list = json!({ "modules": [{ "name": "bank", "world": "branch", "database": "default",
            "digest": "sha256:0123456789abcdef", "created_at": "2026-01-01T00:00:00.000Z", "functions": ["a", "b"] }] });
        assert_eq!(
            modules(&list),
            "NAME  WORLD   DATABASE  DIGEST        CREATED                   FUNCTIONS\n\
             bank  branch  default   0123456789ab  2026-01-01T00:00:00.000Z  a,b\n"
        );
    }

    #[test]
    fn watch_prints_only_what_changed() {
        let view = |status: &str, first: (&str, u32), second: (&str, u32)| {
            json!({ "status": status, "branches": [
                { "branch_id": "01", "op": "action", "status": first.0, "attempts": first.1 },
                { "branch_id": "02", "op": "action", "status": second.0, "attempts": second.1,
                  "last_error": if second.1 > 0 { json!("busy") } else { Value::Null } },
            ] })
        };
        let mut watch = Watch::default();
        assert_eq!(
            watch.changes(&view("submitted", ("succeeded", 1), ("prepared", 0))),
            ["01 action succeeded (attempts 1)", "transaction submitted"]
        );
        assert!(watch.changes(&view("submitted", ("succeeded", 1), ("prepared", 0))).is_empty());
        assert_eq!(
            watch.changes(&view("submitted", ("succeeded", 1), ("prepared", 1))),
            ["02 action prepared (attempts 1): busy"]
        );
        assert_eq!(
            watch.changes(&view("succeeded", ("succeeded", 1), ("succeeded", 2))),
            ["02 action succeeded (attempts 2): busy", "transaction succeeded"]
        );
    }
}
