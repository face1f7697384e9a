-- One row per server instance on this store, refreshed by its heartbeat, for
-- GET /v1/cluster. A row whose heartbeat is old is a stopped or dead
-- instance; a graceful stop deletes its own row.
CREATE TABLE wasmtx.instances (
    node TEXT COLLATE "C" PRIMARY KEY,
    version TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    in_flight BIGINT NOT NULL
);
