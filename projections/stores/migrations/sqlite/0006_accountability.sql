-- Duty accountability: incident callback facts and arrived crews, shift starts, and the
-- accountability counts of each duty period. Stores created before this migration keep
-- their history without them: re-ingest the events to fill them in.
-- (The owner of an incident, its first-contact agent, is the column added with the SLA tables.)
ALTER TABLE incidents ADD COLUMN call_event_id TEXT;
ALTER TABLE incidents ADD COLUMN callbacks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN arrived_crews TEXT;
ALTER TABLE incidents ADD COLUMN handover_end INTEGER;

CREATE TABLE shifts (
    event_id TEXT NOT NULL,
    occurred_us INTEGER NOT NULL,
    team TEXT NOT NULL,
    leader TEXT NOT NULL,
    members TEXT
);

ALTER TABLE totals ADD COLUMN callback_called INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN callback_reached INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN callback_satisfied INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN callback_dissatisfied INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN first_visit_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN first_visit_fixed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_arrival_ok INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_arrival_warning INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_arrival_breach INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_arrival_met INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_arrival_late INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_arrival_anomaly INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_restoration_ok INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_restoration_warning INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_restoration_breach INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_restoration_met INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_restoration_late INTEGER NOT NULL DEFAULT 0;
ALTER TABLE totals ADD COLUMN sla_restoration_anomaly INTEGER NOT NULL DEFAULT 0;
