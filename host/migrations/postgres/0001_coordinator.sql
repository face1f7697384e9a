-- Coordinator store, Postgres flavour. Keep in step with ../sqlite/0001_coordinator.sql:
-- same tables, columns and meaning; only the types differ.
-- Times are milliseconds since the Unix epoch; status, op and mode are the model's texts.

-- One row per global transaction.
CREATE TABLE transactions (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gid             TEXT   NOT NULL UNIQUE,
    mode            TEXT   NOT NULL,
    status          TEXT   NOT NULL,
    options         TEXT   NOT NULL,            -- JSON of model::Options
    next_due        BIGINT,                     -- NULL once final
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    rollback_reason TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    finished_at     BIGINT,
    lease_owner     TEXT,
    lease_expires   BIGINT,
    epoch           BIGINT NOT NULL DEFAULT 0   -- fencing epoch, bumped by every claim
);
CREATE INDEX transactions_status_next_due ON transactions (status, next_due);
CREATE INDEX transactions_created_at ON transactions (created_at, id);
CREATE INDEX transactions_lease_owner ON transactions (lease_owner) WHERE lease_owner IS NOT NULL;

-- One row per op of a branch (a saga branch has an action and a compensate op).
CREATE TABLE branch_ops (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- insertion order
    gid        TEXT   NOT NULL REFERENCES transactions (gid) ON DELETE CASCADE,
    branch_id  TEXT   NOT NULL,
    op         TEXT   NOT NULL,
    module     TEXT   NOT NULL,
    digest     TEXT   NOT NULL,                 -- pinned module version
    database   TEXT   NOT NULL,                 -- business database the version is bound to
    function   TEXT   NOT NULL,
    payload    BYTEA  NOT NULL,
    status     TEXT   NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at BIGINT NOT NULL,
    UNIQUE (gid, branch_id, op)
);

-- Module bytes, stored once per digest.
CREATE TABLE module_blobs (
    digest     TEXT   PRIMARY KEY,              -- sha256:<hex>
    bytes      BYTEA  NOT NULL,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Every upload appends a version; the current version of a name is its newest row.
CREATE TABLE module_versions (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT   NOT NULL,
    digest     TEXT   NOT NULL REFERENCES module_blobs (digest),
    world      TEXT   NOT NULL,
    functions  TEXT   NOT NULL,                 -- JSON array of function names
    database   TEXT   NOT NULL,
    instance_reuse BIGINT,                          -- max invocations per instance; NULL = fresh each time
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX module_versions_name ON module_versions (name, id);
CREATE INDEX module_versions_digest ON module_versions (digest, id);
