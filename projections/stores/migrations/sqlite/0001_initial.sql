-- Read models of the embedded engine, and its event log (the dedup record).
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE event_log (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    incident_id TEXT NOT NULL,
    type TEXT NOT NULL,
    occurred_us INTEGER NOT NULL,
    raw BLOB NOT NULL
);
-- No index on incident_id: it cut ingest throughput by two thirds; `dispatch incident`
-- scans the log instead (see README, Performance).

CREATE TABLE incidents (
    incident_id TEXT PRIMARY KEY,
    t0 INTEGER, t1 INTEGER, t2 INTEGER, t3 INTEGER, t4 INTEGER, t5 INTEGER, t6 INTEGER,
    grid TEXT, area TEXT, priority TEXT, customers INTEGER,
    dispatched_at INTEGER, dispatched_crew TEXT, arrived_crew TEXT,
    rejected_at INTEGER, merged_at INTEGER, merged_into TEXT, closed_at INTEGER
) WITHOUT ROWID;

CREATE TABLE calls (
    event_id TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    occurred_us INTEGER NOT NULL,
    grid TEXT,
    area TEXT
);

CREATE TABLE totals (
    dimension TEXT NOT NULL, member TEXT NOT NULL, duty_date TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    incidents INTEGER NOT NULL DEFAULT 0,
    restored INTEGER NOT NULL DEFAULT 0,
    open_at_handover INTEGER NOT NULL DEFAULT 0,
    closed INTEGER NOT NULL DEFAULT 0,
    anomalies INTEGER NOT NULL DEFAULT 0,
    restoration_count INTEGER NOT NULL DEFAULT 0,
    restoration_sum_us INTEGER NOT NULL DEFAULT 0,
    restoration_anomalies INTEGER NOT NULL DEFAULT 0,
    arrival_count INTEGER NOT NULL DEFAULT 0,
    arrival_sum_us INTEGER NOT NULL DEFAULT 0,
    after_arrival_count INTEGER NOT NULL DEFAULT 0,
    after_arrival_sum_us INTEGER NOT NULL DEFAULT 0,
    verify_count INTEGER NOT NULL DEFAULT 0, verify_sum_us INTEGER NOT NULL DEFAULT 0,
    depart_count INTEGER NOT NULL DEFAULT 0, depart_sum_us INTEGER NOT NULL DEFAULT 0,
    arrive_count INTEGER NOT NULL DEFAULT 0, arrive_sum_us INTEGER NOT NULL DEFAULT 0,
    diagnose_count INTEGER NOT NULL DEFAULT 0, diagnose_sum_us INTEGER NOT NULL DEFAULT 0,
    repair_count INTEGER NOT NULL DEFAULT 0, repair_sum_us INTEGER NOT NULL DEFAULT 0,
    restore_count INTEGER NOT NULL DEFAULT 0, restore_sum_us INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dimension, member, duty_date)
) WITHOUT ROWID;

CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;

CREATE TABLE positions (
    consumer TEXT NOT NULL, source TEXT NOT NULL, partition INTEGER NOT NULL,
    next_position INTEGER NOT NULL,
    PRIMARY KEY (consumer, source, partition)
) WITHOUT ROWID;
