-- Where a job that walks an outside list got to (reconcile-stars: Telegram's Star transactions).
CREATE TABLE job_cursors (job TEXT PRIMARY KEY, cursor TEXT NOT NULL);
