-- Durable workflows (mode `workflow`). Keep in step with
-- ../sqlite/0006_workflows.sql: same tables, columns and meaning.
--
-- A workflow's journal: the `seq`-th call its `run` made through `steps`
-- and the host's answer, as the JSON of model::JournalEntry. Written by the
-- workflow's driver in its fenced saves, never in a branch commit; a replay
-- of `run` is answered from it. The primary key serves reading it in order.
CREATE TABLE wasmtx.journal (
    gid TEXT NOT NULL REFERENCES wasmtx.transactions (gid) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (gid, seq)
);

-- Signals sent to a workflow, in arrival order (id), whether or not it
-- awaits them yet: its `run` takes the signals of a name one by one.
CREATE TABLE wasmtx.signals (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gid TEXT NOT NULL REFERENCES wasmtx.transactions (gid) ON DELETE CASCADE,
    name TEXT NOT NULL,
    payload BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX signals_gid_name ON wasmtx.signals (gid, name, id);
