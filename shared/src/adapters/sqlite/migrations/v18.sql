-- The console's audit filters: entries of one kind, newest first, on a key.
CREATE INDEX audit_by_action ON audit(action, id);
