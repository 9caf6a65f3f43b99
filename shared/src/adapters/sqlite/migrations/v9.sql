
-- Accounts a channel administrator removed by hand (AccountBars).
CREATE TABLE account_bars (
  telegram_user_id INTEGER PRIMARY KEY,
  reason TEXT NOT NULL,
  by TEXT NOT NULL,
  at TEXT NOT NULL
);
