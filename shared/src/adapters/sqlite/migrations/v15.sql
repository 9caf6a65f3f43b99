-- The invoice links telegate created, one per sale (offer, price, period, kind): a Star payment
-- buys access only when its payload is one of these.
CREATE TABLE invoices (
  payload TEXT PRIMARY KEY,
  sale TEXT NOT NULL UNIQUE,
  offer_id TEXT NOT NULL,
  stars INTEGER NOT NULL,
  days INTEGER NOT NULL,
  renewing INTEGER NOT NULL,
  link TEXT NOT NULL,
  created_at TEXT NOT NULL
);
