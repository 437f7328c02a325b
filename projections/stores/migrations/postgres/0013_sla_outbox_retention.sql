-- Alert outbox retention: withheld transitions (found past the publication
-- horizon: recorded, never published) and an index for pruning sent entries.
ALTER TABLE sla_outbox ADD COLUMN withheld BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX sla_outbox_sent ON sla_outbox (sent_us) WHERE sent_us IS NOT NULL;
