-- A store created by wasmtx before schema versions (tables without the
-- `wasmtx_` prefix, tracked by sqlx's `_sqlx_migrations`) becomes version 1:
-- the tables are renamed (SQLite rewrites the foreign keys that name them),
-- and the due-work index is replaced by the partial one.
ALTER TABLE transactions RENAME TO wasmtx_transactions;
ALTER TABLE branch_ops RENAME TO wasmtx_branch_ops;
ALTER TABLE module_blobs RENAME TO wasmtx_module_blobs;
ALTER TABLE module_versions RENAME TO wasmtx_module_versions;
DROP INDEX IF EXISTS transactions_status_next_due;
CREATE INDEX wasmtx_transactions_due ON wasmtx_transactions (next_due) WHERE next_due IS NOT NULL;
DROP TABLE _sqlx_migrations;
