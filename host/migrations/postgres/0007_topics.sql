-- The subscribers of each topic, the module functions a message branch aimed
-- at the topic fans out to. A topic is its rows: it exists while it has
-- subscribers. Rows are read by topic, in subscription order (the primary
-- key's index serves the lookup; a topic has few rows). The names compare
-- byte by byte (COLLATE "C"), as on SQLite, so lists come out in the same
-- order on both whatever the database's locale.
CREATE TABLE wasmtx.topic_subscribers (
    topic TEXT COLLATE "C" NOT NULL,
    module TEXT COLLATE "C" NOT NULL,
    function TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (topic, module, function)
);
