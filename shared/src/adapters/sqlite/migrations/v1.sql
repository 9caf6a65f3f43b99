CREATE TABLE payments (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  email TEXT,
  offer_id TEXT NOT NULL,
  transaction_id TEXT NOT NULL UNIQUE,
  user_info TEXT,
  status TEXT NOT NULL,
  admin_notes TEXT,
  reject_reason TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  reviewed_by TEXT,
  lang TEXT NOT NULL
);
CREATE INDEX payments_by_user ON payments(user_id, id);
CREATE INDEX payments_by_status ON payments(status, id);

CREATE TABLE tokens (
  hash TEXT PRIMARY KEY,
  payment_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  offer_name TEXT NOT NULL,
  days INTEGER NOT NULL,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  telegram_user_id INTEGER,
  membership_id TEXT,
  used_at TEXT
);
CREATE INDEX tokens_by_payment ON tokens(payment_id, status);
CREATE INDEX tokens_by_membership ON tokens(membership_id);

CREATE TABLE memberships (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  telegram_user_id INTEGER NOT NULL,
  telegram_username TEXT,
  payment_id TEXT NOT NULL,
  offer_name TEXT NOT NULL,
  pending_days INTEGER NOT NULL,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL,
  joined_at TEXT,
  expires_at TEXT,
  in_channel INTEGER NOT NULL,
  left_at TEXT,
  invite_link TEXT,
  invite_expires_at TEXT
);
CREATE INDEX memberships_by_account ON memberships(telegram_user_id, status, id);
CREATE INDEX memberships_by_user ON memberships(user_id, id);
CREATE UNIQUE INDEX memberships_by_invite ON memberships(invite_link) WHERE invite_link IS NOT NULL;
CREATE INDEX memberships_by_end ON memberships(status, expires_at);

CREATE TABLE notifications (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  title TEXT NOT NULL,
  message TEXT NOT NULL,
  action_url TEXT,
  created_at TEXT NOT NULL,
  read INTEGER NOT NULL
);
CREATE INDEX notifications_by_user ON notifications(user_id, id);

CREATE TABLE processed_updates (
  update_id INTEGER PRIMARY KEY,
  at TEXT NOT NULL
);
