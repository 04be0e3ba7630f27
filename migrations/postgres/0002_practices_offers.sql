-- Practice portal: accounts (admins and practices), sessions, login throttling, one-time
-- account links, API tokens, offers of spare doses, and the bookings made on them.

-- Everyone who logs in. The login address of a practice is a business contact, stored in the
-- clear (lower-cased) so that login can find it; it is never shown to registrants.
CREATE TABLE accounts (
    id                UUID        PRIMARY KEY,
    role              TEXT        NOT NULL CHECK (role IN ('admin', 'practice')),
    email             TEXT        NOT NULL UNIQUE,
    password_hash     TEXT        NOT NULL,
    email_verified_at TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    password_changed_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE practices (
    account_id UUID        PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    name       TEXT        NOT NULL,
    street     TEXT        NOT NULL,
    postcode   TEXT        NOT NULL,
    city       TEXT        NOT NULL,
    phone      TEXT        NOT NULL,
    status     TEXT        NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'suspended')),
    created_at TIMESTAMPTZ NOT NULL,
    decided_at TIMESTAMPTZ
);
CREATE INDEX practices_by_status ON practices (status, created_at);

-- Only the SHA-256 of the cookie value is stored.
CREATE TABLE sessions (
    id_hash      BYTEA       PRIMARY KEY,
    account_id   UUID        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf_token   TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_by_account ON sessions (account_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- E-mail verification and password-reset links (SHA-256 of the secret).
CREATE TABLE account_tokens (
    token_hash BYTEA       PRIMARY KEY,
    account_id UUID        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    purpose    TEXT        NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX account_tokens_by_account ON account_tokens (account_id);
CREATE INDEX account_tokens_by_expiry ON account_tokens (expires_at);

-- Failed logins per key ("account:<sha256 of address>" or "ip:<address>"), for back-off.
CREATE TABLE login_throttle (
    throttle_key    TEXT        PRIMARY KEY,
    failures        INTEGER     NOT NULL,
    last_failure_at TIMESTAMPTZ NOT NULL,
    locked_until    TIMESTAMPTZ
);

-- Personal API tokens of practices for practice software (SHA-256 of the secret).
CREATE TABLE api_tokens (
    id           UUID        PRIMARY KEY,
    practice_id  UUID        NOT NULL REFERENCES practices (account_id) ON DELETE CASCADE,
    name         TEXT        NOT NULL,
    token_hash   BYTEA       NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_tokens_by_practice ON api_tokens (practice_id);

-- Spare doses a practice offers. Location is the practice's postcode at posting time.
CREATE TABLE offers (
    id            UUID        PRIMARY KEY,
    practice_id   UUID        NOT NULL REFERENCES practices (account_id) ON DELETE CASCADE,
    vaccine       TEXT        NOT NULL,
    doses         INTEGER     NOT NULL CHECK (doses BETWEEN 1 AND 1000),
    starts_at     TIMESTAMPTZ NOT NULL,
    ends_at       TIMESTAMPTZ NOT NULL,
    claim_minutes INTEGER     NOT NULL CHECK (claim_minutes BETWEEN 5 AND 120),
    radius_km     SMALLINT    NOT NULL CHECK (radius_km BETWEEN 1 AND 50),
    note          TEXT        NOT NULL,
    postcode      TEXT        NOT NULL,
    status        TEXT        NOT NULL CHECK (status IN ('open', 'closed', 'cancelled')),
    created_at    TIMESTAMPTZ NOT NULL,
    closed_at     TIMESTAMPTZ,
    CHECK (ends_at > starts_at)
);
CREATE INDEX offers_by_practice ON offers (practice_id, created_at);
CREATE INDEX offers_by_status_and_end ON offers (status, ends_at);

-- A claimed dose. The practice sees only the code; the registrant link is for mails.
CREATE TABLE bookings (
    id            UUID        PRIMARY KEY,
    offer_id      UUID        NOT NULL REFERENCES offers (id) ON DELETE CASCADE,
    registrant_id UUID        REFERENCES registrants (id) ON DELETE SET NULL,
    code          TEXT        NOT NULL UNIQUE,
    status        TEXT        NOT NULL CHECK (status IN ('booked', 'checked_in', 'no_show', 'cancelled')),
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX bookings_by_offer ON bookings (offer_id);
-- A person holds at most one live booking.
CREATE UNIQUE INDEX bookings_one_live_per_person ON bookings (registrant_id) WHERE status = 'booked';
