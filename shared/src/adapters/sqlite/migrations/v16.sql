-- A membership a Stars subscription renews is held past its end until Telegram's renewal can no
-- longer arrive (NULL: not held).
ALTER TABLE memberships ADD COLUMN renews_until TEXT;
