-- The refund's state machine (validated → refund_requested → refunded | refund_failed): why it
-- was asked for, or why Telegram refused it. Existing payments keep their status.
ALTER TABLE payments ADD COLUMN refund_note TEXT;
