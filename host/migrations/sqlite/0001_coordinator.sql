-- Coordinator store, SQLite flavour (schema version 1). Keep in step with
-- ../postgres: same tables, columns and meaning; only the types differ, and
-- here the tables carry the prefix `wasmtx_` (on Postgres they live in the
-- schema `wasmtx`), which guest SQL can never reach.
-- Applied by store/sqlite.rs (PRAGMA user_version), not by sqlx.
-- Times are milliseconds since the Unix epoch; status, op and mode are the model's texts.

-- One row per global transaction.
CREATE TABLE wasmtx_transactions (
    id              INTEGER PRIMARY KEY,        -- insertion order
    gid             TEXT    NOT NULL UNIQUE,
    mode            TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    options         TEXT    NOT NULL,           -- JSON of model::Options
    next_due        INTEGER,                    -- NULL once final
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    rollback_reason TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    lease_owner     TEXT,
    lease_expires   INTEGER,
    epoch           INTEGER NOT NULL DEFAULT 0  -- fencing epoch, bumped by every claim
);
-- Due work only: final transactions have no next_due, so this grows with
-- unfinished work, not with history.
CREATE INDEX wasmtx_transactions_due ON wasmtx_transactions (next_due) WHERE next_due IS NOT NULL;
CREATE INDEX wasmtx_transactions_created_at ON wasmtx_transactions (created_at, id);
CREATE INDEX wasmtx_transactions_lease_owner ON wasmtx_transactions (lease_owner) WHERE lease_owner IS NOT NULL;

-- One row per op of a branch (a saga branch has an action and a compensate op).
CREATE TABLE wasmtx_branch_ops (
    id         INTEGER PRIMARY KEY,             -- insertion order
    gid        TEXT    NOT NULL REFERENCES wasmtx_transactions (gid) ON DELETE CASCADE,
    branch_id  TEXT    NOT NULL,
    op         TEXT    NOT NULL,
    module     TEXT    NOT NULL,
    digest     TEXT    NOT NULL,                -- pinned module version
    database   TEXT    NOT NULL,                -- business database the version is bound to
    function   TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    status     TEXT    NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at INTEGER NOT NULL,
    UNIQUE (gid, branch_id, op)
);

-- Module bytes, stored once per digest.
CREATE TABLE wasmtx_module_blobs (
    digest     TEXT    PRIMARY KEY,             -- sha256:<hex>
    bytes      BLOB    NOT NULL,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- Every upload appends a version; the current version of a name is its newest row.
CREATE TABLE wasmtx_module_versions (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL,
    digest         TEXT    NOT NULL REFERENCES wasmtx_module_blobs (digest),
    world          TEXT    NOT NULL,
    functions      TEXT    NOT NULL,            -- JSON array of function names
    database       TEXT    NOT NULL,
    instance_reuse INTEGER,                     -- max invocations per instance; NULL = fresh each time
    size           INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX wasmtx_module_versions_name ON wasmtx_module_versions (name, id);
CREATE INDEX wasmtx_module_versions_digest ON wasmtx_module_versions (digest, id);
