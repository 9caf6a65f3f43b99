
-- Uniqueness is decided on the transaction id's normalised key (domain::transaction_key); the
-- column is filled for existing rows by SqliteStore::init.
ALTER TABLE payments ADD COLUMN transaction_key TEXT;
CREATE UNIQUE INDEX payments_by_transaction_key ON payments(transaction_key);
