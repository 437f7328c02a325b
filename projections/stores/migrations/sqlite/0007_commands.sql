-- The write side: answers kept under an Idempotency-Key, and the outbox of events
-- written by commands, published to Kafka after the commit (same transaction).
CREATE TABLE command_answers (
    idempotency_key TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    body BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    kafka_key TEXT NOT NULL,
    raw BLOB NOT NULL,
    published_us INTEGER
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_us IS NULL;
