//! The coordinator's SQL, written once for both backends. Both take `$N`
//! placeholders (SQLite binds them by number through
//! [`crate::sqlite::bind_numbered`]); only the table names differ: tables
//! live in the schema `wasmtx` on Postgres (`wasmtx.transactions`) and carry
//! the prefix `wasmtx_` on SQLite (`wasmtx_transactions`), the names guest
//! SQL can never reach on either.

use super::alerts::AlertCondition;

/// Every statement, with the backend's table prefix filled in.
pub(super) struct Sql {
    pub insert_blob: String,
    pub insert_version: String,
    pub module: String,
    pub module_version: String,
    pub modules: String,
    pub module_bytes: String,
    pub insert_op: String,
    pub upsert_op: String,
    pub insert_transaction: String,
    pub select_transaction: String,
    pub select_ops: String,
    pub list: String,
    pub claim: String,
    pub update_state: String,
    pub release: String,
    pub release_all: String,
    pub unfinished: String,
    /// Whether anything is due now (a read, before claiming on the writer).
    pub any_due: String,
    pub insert_history: String,
    pub select_history: String,
    /// `ON CONFLICT DO NOTHING`: one row affected if added, none if it was there.
    pub insert_subscriber: String,
    pub delete_subscriber: String,
    /// One topic's subscribers, in subscription order.
    pub subscribers: String,
    /// Every subscriber, by topic then in subscription order.
    pub all_subscribers: String,
    /// Insert or refresh an instance's row.
    pub upsert_instance: String,
    /// Instances heard from since `$1`, by node.
    pub instances: String,
    pub delete_instance: String,
    /// A journal entry, unless its (gid, seq) is stored already (one row
    /// affected if added, none if it was there).
    pub insert_journal: String,
    /// The stored text of one journal entry.
    pub journal_entry: String,
    /// A workflow's journal, in seq order.
    pub select_journal: String,
    pub insert_signal: String,
    /// The payloads of one signal name, in arrival order.
    pub select_signals: String,
    pub count_signals: String,
    /// What a signal or a park decides by (Postgres appends `FOR UPDATE`).
    pub signal_target: String,
    /// Makes a transaction due by `$2` at the latest (a signal's wake-up).
    pub wake: String,
    /// Unfinished transactions with more than `$1` attempts (theirs or an
    /// op's) and no `retries` alert, oldest first, at most `$2`.
    pub alert_retries: String,
    /// Unfinished transactions created before `$1` with no `unfinished`
    /// alert, oldest first, at most `$2`.
    pub alert_unfinished: String,
    /// Claims alert `$2` of `$1` at `$3`: one row affected if added, none if
    /// it was claimed already or the transaction is gone.
    pub claim_alert: String,
    pub unclaim_alert: String,
    /// The ids of at most `$2` transactions finished before `$1`, finished
    /// longest ago first (each backend deletes them in its own way).
    pub finished_before: String,
    /// One transaction's history (SQLite; Postgres deletes many at once).
    pub delete_history: String,
    /// Table names, for statements built per call ([`Sql::list_filtered`]).
    transactions: String,
    ops: String,
}

/// Which transactions a list shows: newest first, after `cursor` (the gid of
/// the last one of the previous page), at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub status: Option<String>,
    pub mode: Option<String>,
    /// Transactions with a forward op (`action`, `try`) of this module.
    pub module: Option<String>,
    pub cursor: Option<String>,
    pub limit: u32,
}

/// The statuses of unfinished transactions, as SQL (see
/// [`Sql::alert_retries`]): the complement of `succeeded` and `failed`.
pub(super) const UNFINISHED_STATUSES: &str = "'prepared', 'submitted', 'aborting'";

/// Columns of `history` after its id, in the order row decoding expects.
pub(super) const HISTORY_COLUMNS: &str = "gid, at, kind, branch_id, op, attempt, outcome, detail, duration_ms, actor";

/// Columns of `instances`, in the order row decoding expects.
pub(super) const INSTANCE_COLUMNS: &str = "node, version, started_at, heartbeat_at, in_flight";

/// Columns of `topic_subscribers`, in the order row decoding expects.
pub(super) const SUBSCRIBER_COLUMNS: &str = "topic, module, function, created_at";

/// Columns of `transactions`, in the order row decoding expects.
pub(super) const TRANSACTION_COLUMNS: &str = "gid, mode, status, options, next_due, attempts, last_error, \
     rollback_reason, created_at, updated_at, finished_at, lease_owner, lease_expires, epoch";

/// Columns of `branch_ops`, in the order row decoding expects.
pub(super) const OP_COLUMNS: &str =
    "branch_id, op, module, digest, database, function, payload, status, attempts, last_error, updated_at";

/// Columns of `module_versions`, in the order row decoding expects.
pub(super) const MODULE_COLUMNS: &str =
    "name, digest, world, functions, database, instance_reuse, size, created_at, http_hosts";

/// The condition for a transaction whose lease may be taken at `$now`
/// (free, without expiry, or expired).
macro_rules! lease_free {
    ($now:literal) => {
        concat!("(lease_owner IS NULL OR lease_expires IS NULL OR lease_expires < ", $now, ")")
    };
}

impl Sql {
    /// `prefix` is `"wasmtx."` (Postgres) or `"main.wasmtx_"` (SQLite; the
    /// schema named so that nothing temporary could ever stand in for a table).
    pub fn new(prefix: &str) -> Sql {
        let t = |table: &str| format!("{prefix}{table}");
        let (transactions, ops, blobs, versions) =
            (t("transactions"), t("branch_ops"), t("module_blobs"), t("module_versions"));
        let history = t("history");
        let subscribers = t("topic_subscribers");
        let instances = t("instances");
        let (journal, signals) = (t("journal"), t("signals"));
        let alerts = t("alerts");
        // The columns of `AlertCandidateRow`, for the transactions `t` without
        // an alert of the condition; the non-final statuses are named so that
        // the `(status, id)` index serves the scan.
        let alert_candidates = |condition: AlertCondition, when: &str| {
            format!(
                "SELECT t.gid, t.mode, t.status, t.attempts, \
                 (SELECT MAX(o.attempts) FROM {ops} o WHERE o.gid = t.gid) AS op_attempts, \
                 t.created_at, t.last_error, \
                 (SELECT o.last_error FROM {ops} o WHERE o.gid = t.gid AND o.last_error IS NOT NULL \
                  ORDER BY o.attempts DESC, o.id DESC LIMIT 1) AS op_error \
                 FROM {transactions} t WHERE t.status IN ({UNFINISHED_STATUSES}) AND {when} \
                 AND NOT EXISTS (SELECT 1 FROM {alerts} a WHERE a.gid = t.gid AND a.condition = '{condition}') \
                 ORDER BY t.id LIMIT $2"
            )
        };
        let op_insert = format!(
            "INSERT INTO {ops} (gid, branch_id, op, module, digest, database, function, payload, status, attempts, \
             last_error, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        Sql {
            insert_blob: format!(
                "INSERT INTO {blobs} (digest, bytes, size, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (digest) DO NOTHING"
            ),
            insert_version: format!(
                "INSERT INTO {versions} (name, digest, world, functions, database, instance_reuse, size, created_at, \
                 http_hosts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            module: format!("SELECT {MODULE_COLUMNS} FROM {versions} WHERE name = $1 ORDER BY id DESC LIMIT 1"),
            module_version: format!(
                "SELECT {MODULE_COLUMNS} FROM {versions} WHERE name = $1 AND digest = $2 ORDER BY id DESC LIMIT 1"
            ),
            modules: format!(
                "SELECT {MODULE_COLUMNS} FROM {versions} AS v \
                 WHERE v.id = (SELECT MAX(id) FROM {versions} WHERE name = v.name) ORDER BY name"
            ),
            module_bytes: format!("SELECT bytes FROM {blobs} WHERE digest = $1"),
            upsert_op: format!(
                "{op_insert} ON CONFLICT (gid, branch_id, op) DO UPDATE SET status = excluded.status, \
                 attempts = excluded.attempts, last_error = excluded.last_error, updated_at = excluded.updated_at"
            ),
            insert_op: op_insert,
            insert_transaction: format!(
                "INSERT INTO {transactions} (gid, mode, status, options, next_due, attempts, last_error, \
                 rollback_reason, created_at, updated_at, finished_at, lease_owner, lease_expires, epoch) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (gid) DO NOTHING"
            ),
            select_transaction: format!("SELECT {TRANSACTION_COLUMNS} FROM {transactions} WHERE gid = $1"),
            select_ops: format!("SELECT {OP_COLUMNS} FROM {ops} WHERE gid = $1 ORDER BY id"),
            list: format!(
                "SELECT {TRANSACTION_COLUMNS} FROM {transactions} ORDER BY created_at DESC, id DESC LIMIT $1"
            ),
            claim: format!(
                "UPDATE {transactions} SET lease_owner = $2, lease_expires = $4, epoch = epoch + 1 \
                 WHERE gid = $1 AND status NOT IN ('succeeded', 'failed') \
                   AND (lease_owner = $2 OR {}) RETURNING epoch",
                lease_free!("$3")
            ),
            update_state: format!(
                "UPDATE {transactions} SET status = $4, next_due = $5, attempts = $6, last_error = $7, \
                 rollback_reason = $8, updated_at = $9, finished_at = $10, \
                 lease_expires = CASE WHEN $12 THEN NULL ELSE $11 END, \
                 lease_owner = CASE WHEN $12 THEN NULL ELSE lease_owner END \
                 WHERE gid = $1 AND epoch = $2 AND lease_owner = $3"
            ),
            release: format!(
                "UPDATE {transactions} SET lease_owner = NULL, lease_expires = NULL \
                 WHERE gid = $1 AND epoch = $2 AND lease_owner = $3"
            ),
            release_all: format!(
                "UPDATE {transactions} SET lease_owner = NULL, lease_expires = NULL, epoch = epoch + 1 \
                 WHERE lease_owner = $1"
            ),
            unfinished: format!(
                "SELECT gid FROM {transactions} WHERE status NOT IN ('succeeded', 'failed') ORDER BY id LIMIT $1"
            ),
            any_due: format!(
                "SELECT EXISTS (SELECT 1 FROM {transactions} WHERE next_due <= $1 \
                 AND status NOT IN ('succeeded', 'failed') AND {})",
                lease_free!("$1")
            ),
            insert_history: format!(
                "INSERT INTO {history} ({HISTORY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            select_history: format!("SELECT {HISTORY_COLUMNS} FROM {history} WHERE gid = $1 ORDER BY id LIMIT $2"),
            insert_subscriber: format!(
                "INSERT INTO {subscribers} ({SUBSCRIBER_COLUMNS}) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (topic, module, function) DO NOTHING"
            ),
            delete_subscriber: format!("DELETE FROM {subscribers} WHERE topic = $1 AND module = $2 AND function = $3"),
            subscribers: format!(
                "SELECT {SUBSCRIBER_COLUMNS} FROM {subscribers} WHERE topic = $1 \
                 ORDER BY created_at, module, function"
            ),
            all_subscribers: format!(
                "SELECT {SUBSCRIBER_COLUMNS} FROM {subscribers} ORDER BY topic, created_at, module, function"
            ),
            upsert_instance: format!(
                "INSERT INTO {instances} ({INSTANCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (node) DO UPDATE \
                 SET version = excluded.version, started_at = excluded.started_at, \
                 heartbeat_at = excluded.heartbeat_at, in_flight = excluded.in_flight"
            ),
            instances: format!("SELECT {INSTANCE_COLUMNS} FROM {instances} WHERE heartbeat_at >= $1 ORDER BY node"),
            delete_instance: format!("DELETE FROM {instances} WHERE node = $1"),
            insert_journal: format!(
                "INSERT INTO {journal} (gid, seq, entry) VALUES ($1, $2, $3) ON CONFLICT (gid, seq) DO NOTHING"
            ),
            journal_entry: format!("SELECT entry FROM {journal} WHERE gid = $1 AND seq = $2"),
            select_journal: format!("SELECT seq, entry FROM {journal} WHERE gid = $1 ORDER BY seq"),
            // Kept only while the workflow holds fewer than `$5` signals.
            insert_signal: format!(
                "INSERT INTO {signals} (gid, name, payload, created_at) SELECT $1, $2, $3, $4 \
                 WHERE (SELECT count(*) FROM {signals} WHERE gid = $1) < $5"
            ),
            select_signals: format!("SELECT payload FROM {signals} WHERE gid = $1 AND name = $2 ORDER BY id"),
            count_signals: format!("SELECT COUNT(*) FROM {signals} WHERE gid = $1 AND name = $2"),
            signal_target: format!(
                "SELECT mode, status, lease_owner, lease_expires, epoch FROM {transactions} WHERE gid = $1"
            ),
            wake: format!(
                "UPDATE {transactions} SET next_due = CASE WHEN next_due IS NOT NULL AND next_due <= $2 \
                 THEN next_due ELSE $2 END WHERE gid = $1"
            ),
            alert_retries: alert_candidates(
                AlertCondition::Retries,
                &format!("(t.attempts > $1 OR EXISTS (SELECT 1 FROM {ops} o WHERE o.gid = t.gid AND o.attempts > $1))"),
            ),
            alert_unfinished: alert_candidates(AlertCondition::Unfinished, "t.created_at < $1"),
            claim_alert: format!(
                "INSERT INTO {alerts} (gid, condition, sent_at) SELECT $1, $2, $3 \
                 WHERE EXISTS (SELECT 1 FROM {transactions} WHERE gid = $1) ON CONFLICT (gid, condition) DO NOTHING"
            ),
            unclaim_alert: format!("DELETE FROM {alerts} WHERE gid = $1 AND condition = $2"),
            finished_before: format!(
                "SELECT id FROM {transactions} WHERE finished_at IS NOT NULL AND finished_at < $1 \
                 ORDER BY finished_at LIMIT $2"
            ),
            delete_history: format!("DELETE FROM {history} WHERE gid = $1"),
            transactions,
            ops,
        }
    }
}

impl Sql {
    /// The list statement for `filter`, with only the conditions it uses (so
    /// that each is served by its index: `(status, id)`, `(mode, id)`,
    /// `branch_ops (module, gid)`, the primary key for the cursor), and its
    /// text parameters in order; the limit is the last parameter.
    pub fn list_filtered(&self, filter: &ListFilter) -> (String, Vec<String>) {
        let (transactions, ops) = (&self.transactions, &self.ops);
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        let mut param = |value: &str| {
            params.push(value.to_owned());
            format!("${}", params.len())
        };
        if let Some(status) = &filter.status {
            conditions.push(format!("status = {}", param(status)));
        }
        if let Some(mode) = &filter.mode {
            conditions.push(format!("mode = {}", param(mode)));
        }
        if let Some(module) = &filter.module {
            // Forward ops only: their index is half the size (see the migrations).
            conditions.push(format!(
                "gid IN (SELECT gid FROM {ops} WHERE module = {} AND op IN ('action', 'try'))",
                param(module)
            ));
        }
        if let Some(cursor) = &filter.cursor {
            conditions.push(format!("id < (SELECT id FROM {transactions} WHERE gid = {})", param(cursor)));
        }
        let limit = format!("${}", params.len() + 1);
        let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {} ", conditions.join(" AND ")) };
        (format!("SELECT {TRANSACTION_COLUMNS} FROM {transactions} {filter}ORDER BY id DESC LIMIT {limit}"), params)
    }
}
