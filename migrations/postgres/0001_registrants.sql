-- People waiting for a dose. The address is stored only encrypted (AES-256-GCM, nonce first)
-- plus an HMAC-SHA256 blind index for uniqueness and look-up.
CREATE TABLE registrants (
    id               UUID PRIMARY KEY,
    email_key_id     INTEGER     NOT NULL,
    email_ciphertext BYTEA       NOT NULL,
    email_index      BYTEA       NOT NULL UNIQUE,
    postcode         TEXT        NOT NULL,
    radius_km        SMALLINT    NOT NULL CHECK (radius_km BETWEEN 1 AND 50),
    status           TEXT        NOT NULL CHECK (status IN ('pending', 'active', 'paused')),
    language         TEXT        NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    confirmed_at     TIMESTAMPTZ,
    paused_at        TIMESTAMPTZ,
    last_mail_at     TIMESTAMPTZ
);

-- The matcher walks waiting people per postcode in order of their place in line.
CREATE INDEX registrants_waiting_by_postcode ON registrants (postcode, created_at) WHERE status = 'active';
-- Unconfirmed sign-ups expire.
CREATE INDEX registrants_pending_by_age ON registrants (created_at) WHERE status = 'pending';

-- Confirmation and self-service links. Only the SHA-256 of the mailed secret is kept.
CREATE TABLE registrant_tokens (
    token_hash    BYTEA       PRIMARY KEY,
    registrant_id UUID        NOT NULL REFERENCES registrants (id) ON DELETE CASCADE,
    purpose       TEXT        NOT NULL CHECK (purpose IN ('confirm', 'manage')),
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX registrant_tokens_by_registrant ON registrant_tokens (registrant_id);
CREATE INDEX registrant_tokens_by_expiry ON registrant_tokens (expires_at);

-- Postcode centroids imported for countries other than the built-in Germany (`restdose geo import`).
CREATE TABLE geo_postcodes (
    country  TEXT             NOT NULL,
    postcode TEXT             NOT NULL,
    lat      DOUBLE PRECISION NOT NULL,
    lon      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (country, postcode)
);
