-- Same schema as migrations/postgres/0002_practices_offers.sql (UUIDs as 16-byte BLOBs, times as
-- INTEGER milliseconds since the Unix epoch, UTC).
-- Practice portal: accounts (admins and practices), sessions, login throttling, one-time
-- account links, API tokens, offers of spare doses, and the bookings made on them.

-- Everyone who logs in. The login address of a practice is a business contact, stored in the
-- clear (lower-cased) so that login can find it; it is never shown to registrants.
CREATE TABLE accounts (
    id                BLOB        PRIMARY KEY NOT NULL,
    role              TEXT        NOT NULL CHECK (role IN ('admin', 'practice')),
    email             TEXT        NOT NULL UNIQUE,
    password_hash     TEXT        NOT NULL,
    email_verified_at INTEGER,
    created_at        INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL
) STRICT;

CREATE TABLE practices (
    account_id BLOB        PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       TEXT        NOT NULL,
    street     TEXT        NOT NULL,
    postcode   TEXT        NOT NULL,
    city       TEXT        NOT NULL,
    phone      TEXT        NOT NULL,
    status     TEXT        NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'suspended')),
    created_at INTEGER NOT NULL,
    decided_at INTEGER
) STRICT;
CREATE INDEX practices_by_status ON practices (status, created_at);

-- Only the SHA-256 of the cookie value is stored.
CREATE TABLE sessions (
    id_hash      BLOB       PRIMARY KEY NOT NULL,
    account_id   BLOB        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf_token   TEXT        NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_by_account ON sessions (account_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- E-mail verification and password-reset links (SHA-256 of the secret).
CREATE TABLE account_tokens (
    token_hash BLOB       PRIMARY KEY NOT NULL,
    account_id BLOB        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    purpose    TEXT        NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX account_tokens_by_account ON account_tokens (account_id);
CREATE INDEX account_tokens_by_expiry ON account_tokens (expires_at);

-- Failed logins per key ("account:<sha256 of address>" or "ip:<address>"), for back-off.
CREATE TABLE login_throttle (
    throttle_key    TEXT        PRIMARY KEY NOT NULL,
    failures        INTEGER     NOT NULL,
    last_failure_at INTEGER NOT NULL,
    locked_until    INTEGER
) STRICT;

-- Personal API tokens of practices for practice software (SHA-256 of the secret).
CREATE TABLE api_tokens (
    id           BLOB        PRIMARY KEY NOT NULL,
    practice_id  BLOB        NOT NULL REFERENCES practices (account_id) ON DELETE CASCADE,
    name         TEXT        NOT NULL,
    token_hash   BLOB       NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;
CREATE INDEX api_tokens_by_practice ON api_tokens (practice_id);

-- Spare doses a practice offers. Location is the practice's postcode at posting time.
CREATE TABLE offers (
    id            BLOB        PRIMARY KEY NOT NULL,
    practice_id   BLOB        NOT NULL REFERENCES practices (account_id) ON DELETE CASCADE,
    vaccine       TEXT        NOT NULL,
    doses         INTEGER     NOT NULL CHECK (doses BETWEEN 1 AND 1000),
    starts_at     INTEGER NOT NULL,
    ends_at       INTEGER NOT NULL,
    claim_minutes INTEGER     NOT NULL CHECK (claim_minutes BETWEEN 5 AND 120),
    radius_km     INTEGER    NOT NULL CHECK (radius_km BETWEEN 1 AND 50),
    note          TEXT        NOT NULL,
    postcode      TEXT        NOT NULL,
    status        TEXT        NOT NULL CHECK (status IN ('open', 'closed', 'cancelled')),
    created_at    INTEGER NOT NULL,
    closed_at     INTEGER,
    CHECK (ends_at > starts_at)
) STRICT;
CREATE INDEX offers_by_practice ON offers (practice_id, created_at);
CREATE INDEX offers_by_status_and_end ON offers (status, ends_at);

-- A claimed dose. The practice sees only the code; the registrant link is for mails.
CREATE TABLE bookings (
    id            BLOB        PRIMARY KEY NOT NULL,
    offer_id      BLOB        NOT NULL REFERENCES offers (id) ON DELETE CASCADE,
    registrant_id BLOB        REFERENCES registrants (id) ON DELETE SET NULL,
    code          TEXT        NOT NULL UNIQUE,
    status        TEXT        NOT NULL CHECK (status IN ('booked', 'checked_in', 'no_show', 'cancelled')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX bookings_by_offer ON bookings (offer_id);
-- A person holds at most one live booking.
CREATE UNIQUE INDEX bookings_one_live_per_person ON bookings (registrant_id) WHERE status = 'booked';
