-- Support finds a member by @username in the console (case-insensitive, as Telegram's are).
CREATE INDEX memberships_by_username ON memberships(telegram_username COLLATE NOCASE, id);
