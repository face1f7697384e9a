-- Schema version 7: alerts and retention. Keep in step with
-- ../postgres/0010_alerts.sql: same tables, columns and meaning.
--
-- One row per alert claimed (and, unless the claim was given back after a
-- failed send, delivered) for a transaction: `condition` is `retries` or
-- `unfinished`. The primary key makes the claim an insert-if-absent, so
-- that instances sharing the store send each alert once, across restarts;
-- it also serves the cascade when the transaction goes.
CREATE TABLE wasmtx_alerts (
    gid TEXT NOT NULL REFERENCES wasmtx_transactions (gid) ON DELETE CASCADE,
    condition TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    PRIMARY KEY (gid, condition)
);

-- Retention deletes the transactions finished longest ago first, a batch
-- at a time: only finished ones have a finished_at.
CREATE INDEX wasmtx_transactions_finished_at ON wasmtx_transactions (finished_at) WHERE finished_at IS NOT NULL;
