ALTER TABLE memberships ADD COLUMN ended_at TEXT;
ALTER TABLE memberships ADD COLUMN end_reason TEXT;
CREATE INDEX tokens_by_status_end ON tokens(status, expires_at);
CREATE INDEX tokens_by_user ON tokens(user_id, status);
CREATE INDEX notifications_by_age ON notifications(read, created_at);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE warnings (
  membership_id TEXT NOT NULL,
  threshold INTEGER NOT NULL,
  period_end TEXT NOT NULL,
  PRIMARY KEY (membership_id, threshold, period_end)
);
CREATE TABLE job_runs (job TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE audit (
  id TEXT PRIMARY KEY,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  user_id TEXT,
  telegram_user_id INTEGER,
  details TEXT NOT NULL
);
CREATE INDEX audit_by_user ON audit(user_id, id);
