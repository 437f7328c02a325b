-- When each accepted event was recorded (µs since the epoch): the earliest recorded_at
-- among its copies, or the time it was ingested when it carries none. Known-at reports
-- ("what did the control room know at T") filter on it. NULL only for rows written
-- before this migration: readers then fall back to the event's own recorded_at.
ALTER TABLE event_log ADD COLUMN recorded_us BIGINT;
