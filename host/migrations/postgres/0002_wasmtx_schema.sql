-- The coordinator's tables move into their own schema, `wasmtx`, which guest
-- roles are never granted: branch SQL runs as a role that may create tables
-- in `public` and must not reach these. The due-work index becomes partial
-- (final transactions have no next_due), so it grows with unfinished work,
-- not with history.
CREATE SCHEMA IF NOT EXISTS wasmtx;
REVOKE ALL ON SCHEMA wasmtx FROM PUBLIC;
ALTER TABLE transactions SET SCHEMA wasmtx;
ALTER TABLE branch_ops SET SCHEMA wasmtx;
ALTER TABLE module_blobs SET SCHEMA wasmtx;
ALTER TABLE module_versions SET SCHEMA wasmtx;
DROP INDEX wasmtx.transactions_status_next_due;
CREATE INDEX transactions_due ON wasmtx.transactions (next_due) WHERE next_due IS NOT NULL;
