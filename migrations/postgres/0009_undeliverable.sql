-- Set when the mail server refused a mail to the person's address for good (SMTP 5xx); the
-- person was paused at the same time if they were waiting. Cleared when they resume or confirm
-- (they read mail again).
ALTER TABLE registrants ADD COLUMN undeliverable_at TIMESTAMPTZ;
