CREATE TABLE effects (
  key TEXT PRIMARY KEY,
  done INTEGER NOT NULL,
  lease_until TEXT NOT NULL
);
