
-- Effects that must not be lost, written with the state change that decided them (EffectOutbox).
CREATE TABLE intents (
  key TEXT PRIMARY KEY,
  body TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX intents_by_age ON intents(created_at);
