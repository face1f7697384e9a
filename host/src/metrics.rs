//! Prometheus metrics, served as text at `GET /metrics` (right `metrics`).
//!
//! Counters and histograms live in one process-wide registry that the
//! engine, the branch executor, the sandbox and the store record into as
//! things happen; gauges (in-flight transactions, compiled modules, idle
//! instances, connections) are read from their owners at scrape time and
//! passed to [`render`]. No label is unbounded: modes, statuses, ops and
//! outcomes are closed sets; modules and functions are the uploaded ones
//! (an HTTP branch is module `~http`, never its URL); no gid ever appears.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations at or under each bucket's bound (not cumulative).
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
struct Registry {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Default::default);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn add(name: &'static str, labels: Labels, n: u64) {
    *registry().counters.entry((name, labels)).or_default() += n;
}

fn observe(name: &'static str, labels: Labels, took: Duration) {
    registry().histograms.entry((name, labels)).or_default().observe(took.as_secs_f64());
}

/// What each metric is, for `# HELP` and `# TYPE`.
const DESCRIPTIONS: &[(&str, &str, &str)] = &[
    ("wasmtx_transactions_started_total", "counter", "Transactions created, by mode."),
    ("wasmtx_transactions_finished_total", "counter", "Transactions that reached a final status, by mode and status."),
    ("wasmtx_branch_op_seconds", "histogram", "Branch op attempts, by module, function, op and outcome."),
    (
        "wasmtx_branch_retries_total",
        "counter",
        "Branch op attempts that will be retried (retry answers, errors, traps), by op.",
    ),
    ("wasmtx_guest_traps_total", "counter", "Guest invocations that trapped, by kind (trap or a limit)."),
    ("wasmtx_store_seconds", "histogram", "Coordinator store writes, by operation."),
    ("wasmtx_business_db_seconds", "histogram", "A branch's local transaction on its business database, by kind."),
    ("wasmtx_transactions_in_flight", "gauge", "Transactions this instance is driving now."),
    ("wasmtx_compiled_modules", "gauge", "Module versions compiled and held in memory."),
    ("wasmtx_idle_instances", "gauge", "Reusable guest instances waiting idle."),
    ("wasmtx_store_connections", "gauge", "Connections of the coordinator store's pool, by state."),
];

/// A transaction was created.
pub fn transaction_started(mode: &str) {
    add("wasmtx_transactions_started_total", vec![("mode", mode.to_owned())], 1);
}

/// A transaction reached a final status.
pub fn transaction_finished(mode: &str, status: &str) {
    add("wasmtx_transactions_finished_total", vec![("mode", mode.to_owned()), ("status", status.to_owned())], 1);
}

/// One attempt of a branch op ended with `outcome` (`succeeded`, `failed`,
/// `retry`, `error`) after `took`.
pub fn branch_op(module: &str, function: &str, op: &str, outcome: &str, took: Duration) {
    let labels = vec![
        ("module", module.to_owned()),
        ("function", function.to_owned()),
        ("op", op.to_owned()),
        ("outcome", outcome.to_owned()),
    ];
    observe("wasmtx_branch_op_seconds", labels, took);
    if matches!(outcome, "retry" | "error") {
        add("wasmtx_branch_retries_total", vec![("op", op.to_owned())], 1);
    }
}

/// A guest trapped; `kind` is `trap` or the limit it hit (`deadline`, `memory`, ...).
pub fn guest_trap(kind: &'static str) {
    add("wasmtx_guest_traps_total", vec![("kind", kind.to_owned())], 1);
}

/// A store write (`create`, `save`, `write`, ...) took `took`.
pub fn store_write(op: &'static str, took: Duration) {
    observe("wasmtx_store_seconds", vec![("op", op.to_owned())], took);
}

/// A branch's local transaction on a business database of `kind` took `took`.
pub fn business_db(kind: &'static str, took: Duration) {
    observe("wasmtx_business_db_seconds", vec![("kind", kind.to_owned())], took);
}

/// Gauges read at scrape time.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    pub in_flight: u64,
    pub compiled_modules: u64,
    pub idle_instances: u64,
    /// (state, connections): `idle`, `busy` (none on SQLite).
    pub store_connections: Vec<(&'static str, u64)>,
}

fn labels_text(labels: &[(&'static str, String)], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The Prometheus text exposition of every metric (format 0.0.4).
pub fn render(gauges: &Gauges) -> String {
    let registry = registry();
    let mut out = String::new();
    for (name, kind, help) in DESCRIPTIONS {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        match *kind {
            "counter" => {
                for ((n, labels), value) in &registry.counters {
                    if n == name {
                        let _ = writeln!(out, "{name}{} {value}", labels_text(labels, None));
                    }
                }
            }
            "histogram" => {
                for ((n, labels), h) in &registry.histograms {
                    if n != name {
                        continue;
                    }
                    let mut cumulative = 0;
                    for (bound, count) in BUCKETS.iter().zip(h.counts) {
                        cumulative += count;
                        let le = labels_text(labels, Some(("le", bound.to_string())));
                        let _ = writeln!(out, "{name}_bucket{le} {cumulative}");
                    }
                    let inf = labels_text(labels, Some(("le", "+Inf".to_owned())));
                    let _ = writeln!(out, "{name}_bucket{inf} {}", h.count);
                    let _ = writeln!(out, "{name}_sum{} {}", labels_text(labels, None), h.sum);
                    let _ = writeln!(out, "{name}_count{} {}", labels_text(labels, None), h.count);
                }
            }
            _ => {
                let values: Vec<(String, u64)> = match *name {
                    "wasmtx_transactions_in_flight" => vec![(String::new(), gauges.in_flight)],
                    "wasmtx_compiled_modules" => vec![(String::new(), gauges.compiled_modules)],
                    "wasmtx_idle_instances" => vec![(String::new(), gauges.idle_instances)],
                    "wasmtx_store_connections" => gauges
                        .store_connections
                        .iter()
                        .map(|(state, n)| (format!("{{state=\"{state}\"}}"), *n))
                        .collect(),
                    _ => Vec::new(),
                };
                for (labels, value) in values {
                    let _ = writeln!(out, "{name}{labels} {value}");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of one sample line, e.g. `name{mode="saga"}`, or 0.
    fn sample(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0.0, |v| v.parse().unwrap())
    }

    #[test]
    fn counters_and_histograms_render_as_prometheus_text() {
        let before = render(&Gauges::default());
        transaction_started("unit-mode");
        transaction_finished("unit-mode", "failed");
        branch_op("unit-module", "f\"x", "action", "retry", Duration::from_millis(3));
        branch_op("unit-module", "f\"x", "action", "retry", Duration::from_secs(20));
        let text = render(&Gauges { in_flight: 3, store_connections: vec![("idle", 2)], ..Gauges::default() });
        let started = r#"wasmtx_transactions_started_total{mode="unit-mode"}"#;
        assert_eq!(sample(&text, started) - sample(&before, started), 1.0, "{text}");
        assert_eq!(sample(&text, r#"wasmtx_transactions_finished_total{mode="unit-mode",status="failed"}"#), 1.0);
        let series = r#"module="unit-module",function="f\"x",op="action",outcome="retry""#;
        assert_eq!(sample(&text, &format!("wasmtx_branch_op_seconds_bucket{{{series},le=\"0.005\"}}")), 1.0);
        assert_eq!(sample(&text, &format!("wasmtx_branch_op_seconds_bucket{{{series},le=\"10\"}}")), 1.0);
        assert_eq!(sample(&text, &format!("wasmtx_branch_op_seconds_bucket{{{series},le=\"+Inf\"}}")), 2.0);
        assert_eq!(sample(&text, &format!("wasmtx_branch_op_seconds_count{{{series}}}")), 2.0);
        assert!((sample(&text, &format!("wasmtx_branch_op_seconds_sum{{{series}}}")) - 20.003).abs() < 1e-9);
        assert_eq!(sample(&text, "wasmtx_transactions_in_flight"), 3.0);
        assert_eq!(sample(&text, r#"wasmtx_store_connections{state="idle"}"#), 2.0);
        assert!(text.contains("# TYPE wasmtx_branch_op_seconds histogram"));
        assert!(!text.contains("gid"), "no gid label");
    }
}
