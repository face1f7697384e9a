-- Schema version 3: each transaction's history (status changes, op attempts,
-- operators' controls), written beside the driver's writes, not in them; and
-- an index behind each filter of the transaction list.
CREATE TABLE wasmtx_history (
    id INTEGER PRIMARY KEY,
    gid TEXT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    branch_id TEXT,
    op TEXT,
    attempt BIGINT,
    outcome TEXT,
    detail TEXT,
    duration_ms BIGINT,
    actor TEXT
);
CREATE INDEX wasmtx_history_gid ON wasmtx_history (gid, id);
CREATE INDEX wasmtx_transactions_status ON wasmtx_transactions (status, id);
CREATE INDEX wasmtx_transactions_mode ON wasmtx_transactions (mode, id);
CREATE INDEX wasmtx_branch_ops_module ON wasmtx_branch_ops (module, gid) WHERE op IN ('action', 'try');
