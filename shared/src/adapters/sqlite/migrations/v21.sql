-- What a validation added to the web revenue (the offer's `price_cents` then), so that a refund
-- recorded later takes out exactly that. Payments validated before: none recorded.
ALTER TABLE payments ADD COLUMN revenue_cents INTEGER;
