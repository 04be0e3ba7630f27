-- Same schema as migrations/postgres/0001_registrants.sql. SQLite differences: UUIDs are 16-byte
-- BLOBs, times are INTEGER milliseconds since the Unix epoch (UTC) so that comparisons are
-- numeric and exact.
CREATE TABLE registrants (
    id               BLOB    PRIMARY KEY NOT NULL,
    email_key_id     INTEGER NOT NULL,
    email_ciphertext BLOB    NOT NULL,
    email_index      BLOB    NOT NULL UNIQUE,
    postcode         TEXT    NOT NULL,
    radius_km        INTEGER NOT NULL CHECK (radius_km BETWEEN 1 AND 50),
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'active', 'paused')),
    language         TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    confirmed_at     INTEGER,
    paused_at        INTEGER,
    last_mail_at     INTEGER
) STRICT;

CREATE INDEX registrants_waiting_by_postcode ON registrants (postcode, created_at) WHERE status = 'active';
CREATE INDEX registrants_pending_by_age ON registrants (created_at) WHERE status = 'pending';

CREATE TABLE registrant_tokens (
    token_hash    BLOB    PRIMARY KEY NOT NULL,
    registrant_id BLOB    NOT NULL REFERENCES registrants (id) ON DELETE CASCADE,
    purpose       TEXT    NOT NULL CHECK (purpose IN ('confirm', 'manage')),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX registrant_tokens_by_registrant ON registrant_tokens (registrant_id);
CREATE INDEX registrant_tokens_by_expiry ON registrant_tokens (expires_at);

CREATE TABLE geo_postcodes (
    country  TEXT NOT NULL,
    postcode TEXT NOT NULL,
    lat      REAL NOT NULL,
    lon      REAL NOT NULL,
    PRIMARY KEY (country, postcode)
) STRICT;
