
-- An update's claim is a lease until the update is handled (UpdateLog); rows from before were done.
ALTER TABLE processed_updates ADD COLUMN done INTEGER NOT NULL DEFAULT 1;
ALTER TABLE processed_updates ADD COLUMN lease_until TEXT;
CREATE INDEX processed_updates_by_age ON processed_updates(at);
-- Done effects' keys are kept for EFFECT_RETENTION, as DynamoDB's TTL keeps them.
CREATE INDEX effects_by_done ON effects(done, lease_until);
