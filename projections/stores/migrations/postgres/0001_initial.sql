-- Read models in PostgreSQL, and the accepted-event log (the dedup record).
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE event_log (
    seq BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    incident_id TEXT NOT NULL,
    type TEXT NOT NULL,
    occurred_us BIGINT NOT NULL,
    raw BYTEA NOT NULL
);
CREATE INDEX event_log_incident ON event_log (incident_id);

CREATE TABLE incidents (
    incident_id TEXT PRIMARY KEY,
    t0 BIGINT, t1 BIGINT, t2 BIGINT, t3 BIGINT, t4 BIGINT, t5 BIGINT, t6 BIGINT,
    grid TEXT, area TEXT, priority TEXT, customers BIGINT,
    dispatched_at BIGINT, dispatched_crew TEXT, arrived_crew TEXT,
    rejected_at BIGINT, merged_at BIGINT, merged_into TEXT, closed_at BIGINT
);

CREATE TABLE calls (
    event_id TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    occurred_us BIGINT NOT NULL,
    grid TEXT,
    area TEXT
);

CREATE TABLE totals (
    dimension TEXT NOT NULL, member TEXT NOT NULL, duty_date TEXT NOT NULL,
    calls BIGINT NOT NULL DEFAULT 0,
    incidents BIGINT NOT NULL DEFAULT 0,
    restored BIGINT NOT NULL DEFAULT 0,
    open_at_handover BIGINT NOT NULL DEFAULT 0,
    closed BIGINT NOT NULL DEFAULT 0,
    anomalies BIGINT NOT NULL DEFAULT 0,
    restoration_count BIGINT NOT NULL DEFAULT 0,
    restoration_sum_us BIGINT NOT NULL DEFAULT 0,
    restoration_anomalies BIGINT NOT NULL DEFAULT 0,
    arrival_count BIGINT NOT NULL DEFAULT 0,
    arrival_sum_us BIGINT NOT NULL DEFAULT 0,
    after_arrival_count BIGINT NOT NULL DEFAULT 0,
    after_arrival_sum_us BIGINT NOT NULL DEFAULT 0,
    verify_count BIGINT NOT NULL DEFAULT 0, verify_sum_us BIGINT NOT NULL DEFAULT 0,
    depart_count BIGINT NOT NULL DEFAULT 0, depart_sum_us BIGINT NOT NULL DEFAULT 0,
    arrive_count BIGINT NOT NULL DEFAULT 0, arrive_sum_us BIGINT NOT NULL DEFAULT 0,
    diagnose_count BIGINT NOT NULL DEFAULT 0, diagnose_sum_us BIGINT NOT NULL DEFAULT 0,
    repair_count BIGINT NOT NULL DEFAULT 0, repair_sum_us BIGINT NOT NULL DEFAULT 0,
    restore_count BIGINT NOT NULL DEFAULT 0, restore_sum_us BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (dimension, member, duty_date)
);

CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);

CREATE TABLE positions (
    consumer TEXT NOT NULL, source TEXT NOT NULL, partition INTEGER NOT NULL,
    next_position BIGINT NOT NULL,
    PRIMARY KEY (consumer, source, partition)
);
