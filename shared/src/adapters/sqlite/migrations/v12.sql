-- The job runs an admin asked for, read back by their id; kept 30 days (REQUESTED_RUN_DAYS).
CREATE TABLE requested_runs (
  run_id TEXT PRIMARY KEY,
  requested_at TEXT NOT NULL,
  body TEXT NOT NULL
);
