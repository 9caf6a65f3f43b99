CREATE INDEX memberships_by_ended ON memberships(ended_at) WHERE ended_at IS NOT NULL;
