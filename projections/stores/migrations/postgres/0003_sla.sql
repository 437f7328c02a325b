-- SLA (time-limited completion): the incident's owner, the live state of each
-- rule of open incidents, the outbox of alert transitions, the event clock.
ALTER TABLE incidents ADD COLUMN owner TEXT;

CREATE TABLE sla_state (
    incident_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    state TEXT,               -- ok/warning/breach/met/late/anomaly; NULL: not armed yet
    raised TEXT,              -- highest alert level recorded: NULL, warning, breach
    due_us BIGINT,           -- next instant the state may change with no new event
    start_us BIGINT,
    deadline_us BIGINT,
    limit_minutes DOUBLE PRECISION,
    grid TEXT, area TEXT, priority TEXT, owner TEXT,
    PRIMARY KEY (incident_id, rule)
);
CREATE INDEX sla_state_due ON sla_state (due_us) WHERE due_us IS NOT NULL;

CREATE TABLE sla_outbox (
    seq BIGSERIAL PRIMARY KEY,
    alert_id TEXT NOT NULL UNIQUE,  -- incident/rule/level: one row per transition, ever
    incident_id TEXT NOT NULL,
    payload BYTEA NOT NULL,
    sent_us BIGINT                 -- NULL until published
);
CREATE INDEX sla_outbox_unsent ON sla_outbox (seq) WHERE sent_us IS NULL;

CREATE TABLE sla_clock (id INTEGER PRIMARY KEY CHECK (id = 1), event_us BIGINT NOT NULL);
