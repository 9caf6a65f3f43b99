
-- The local queue's effects (adapters::local_queue): kept across a crash or a restart; a dead
-- letter keeps its last error.
CREATE TABLE local_queue (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  body TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  not_before TEXT NOT NULL,
  dead_error TEXT,
  dead_at TEXT
);
CREATE INDEX local_queue_due ON local_queue(dead_error, not_before);
