-- Each transaction's history (status changes, op attempts, operators'
-- controls), written beside the driver's writes, not in them; and an index
-- behind each filter of the transaction list.
CREATE TABLE wasmtx.history (
    id BIGSERIAL PRIMARY KEY,
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
CREATE INDEX history_gid ON wasmtx.history (gid, id);
CREATE INDEX transactions_status_id ON wasmtx.transactions (status, id);
CREATE INDEX transactions_mode_id ON wasmtx.transactions (mode, id);
CREATE INDEX branch_ops_module ON wasmtx.branch_ops (module, gid) WHERE op IN ('action', 'try');
