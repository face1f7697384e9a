-- Schema version 4: the subscribers of each topic, the module functions a
-- message branch aimed at the topic fans out to. A topic is its rows: it
-- exists while it has subscribers. Rows are read by topic, in subscription
-- order (the primary key's index serves the lookup; a topic has few rows).
CREATE TABLE wasmtx_topic_subscribers (
    topic TEXT NOT NULL,
    module TEXT NOT NULL,
    function TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (topic, module, function)
);
