-- Accounts kept from the system telegate replaced (`telegate import --keep`): never removed.
CREATE TABLE exempt_accounts (
  telegram_user_id INTEGER PRIMARY KEY,
  note TEXT NOT NULL,
  at TEXT NOT NULL
);
