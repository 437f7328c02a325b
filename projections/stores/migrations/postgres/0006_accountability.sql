-- Duty accountability: incident callback facts and arrived crews, shift starts, and the
-- accountability counts of each duty period. Stores created before this migration keep
-- their history without them: re-ingest the events to fill them in.
-- (The owner of an incident, its first-contact agent, is the column added with the SLA tables.)
ALTER TABLE incidents ADD COLUMN call_event_id TEXT;
ALTER TABLE incidents ADD COLUMN callbacks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN arrived_crews TEXT;
ALTER TABLE incidents ADD COLUMN handover_end BIGINT;

CREATE TABLE shifts (
    event_id TEXT NOT NULL,
    occurred_us BIGINT NOT NULL,
    team TEXT NOT NULL,
    leader TEXT NOT NULL,
    members TEXT
);

ALTER TABLE totals ADD COLUMN callback_called BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN callback_reached BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN callback_satisfied BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN callback_dissatisfied BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN first_visit_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN first_visit_fixed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_arrival_ok BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_arrival_warning BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_arrival_breach BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_arrival_met BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_arrival_late BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_arrival_anomaly BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_restoration_ok BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_restoration_warning BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_restoration_breach BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_restoration_met BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_restoration_late BIGINT NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_restoration_anomaly BIGINT NOT NULL DEFAULT 0;
