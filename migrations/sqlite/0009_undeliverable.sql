-- Same schema as migrations/postgres/0009_undeliverable.sql (times as INTEGER milliseconds since
-- the Unix epoch).
ALTER TABLE registrants ADD COLUMN undeliverable_at INTEGER;
