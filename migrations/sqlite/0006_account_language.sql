-- The language a practice (or admin) account chose when it was created, so mails that reach it
-- later without a request to read the language from (an admin's decision, a new verification
-- link at login) are written in it. Existing accounts get German, the service's default.
ALTER TABLE accounts ADD COLUMN language TEXT NOT NULL DEFAULT 'de';
