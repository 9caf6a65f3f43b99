-- One invoice per sale and language (Telegram shows its description in the payment form). Invoices
-- made before keep their sale key without a language: never found by sale again, their payloads
-- still buy what they sold.
ALTER TABLE invoices ADD COLUMN lang TEXT NOT NULL DEFAULT 'fr';
