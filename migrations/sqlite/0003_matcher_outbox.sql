-- Same schema as migrations/postgres/0003_matcher_outbox.sql (UUIDs as 16-byte BLOBs, times as
-- INTEGER milliseconds since the Unix epoch, booleans as 0/1).
-- The matcher: invitations in waves, the claim counter on offers, invitation throttling and
-- the "three unanswered in a row" rule on registrants, and the durable mail outbox.

-- When the person was last invited (throttle window) and how many invitations in a row went
-- unanswered (three pause the person).
ALTER TABLE registrants ADD COLUMN last_invited_at INTEGER;
ALTER TABLE registrants ADD COLUMN unanswered_in_a_row INTEGER NOT NULL DEFAULT 0;

-- `claimed` counts bookings holding a dose (not cancelled); a claim succeeds only while
-- claimed < doses, in one UPDATE, which is what makes claims atomic on every backend.
ALTER TABLE offers ADD COLUMN claimed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE offers ADD COLUMN invited INTEGER NOT NULL DEFAULT 0;
ALTER TABLE offers ADD COLUMN waves INTEGER NOT NULL DEFAULT 0;
-- When the matcher looks at the offer next (the current wave's answers are due).
ALTER TABLE offers ADD COLUMN next_wave_at INTEGER;
ALTER TABLE offers ADD COLUMN last_call_sent INTEGER NOT NULL DEFAULT 0;
CREATE INDEX offers_due ON offers (next_wave_at) WHERE status = 'open';

CREATE TABLE invitations (
    id            BLOB        PRIMARY KEY NOT NULL,
    offer_id      BLOB        NOT NULL REFERENCES offers (id) ON DELETE CASCADE,
    registrant_id BLOB        NOT NULL REFERENCES registrants (id) ON DELETE CASCADE,
    -- SHA-256 of the secret in the invitation link.
    token_hash    BLOB       NOT NULL UNIQUE,
    wave          INTEGER     NOT NULL,
    last_call     INTEGER     NOT NULL,
    distance_km   REAL        NOT NULL,
    status        TEXT        NOT NULL CHECK (status IN ('open', 'claimed', 'declined', 'expired', 'missed')),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    answered_at   INTEGER
) STRICT;
-- Nobody is invited twice to the same offer.
CREATE UNIQUE INDEX invitations_once_per_offer ON invitations (offer_id, registrant_id);
CREATE INDEX invitations_open_by_expiry ON invitations (expires_at) WHERE status = 'open';
-- A person holds at most one open invitation ("not invited right now"); racing waves of
-- different offers cannot both invite the same person.
CREATE UNIQUE INDEX invitations_one_open_per_person ON invitations (registrant_id) WHERE status = 'open';

-- The link in the confirmation mail (view, cancel).
ALTER TABLE bookings ADD COLUMN token_hash BLOB;
CREATE UNIQUE INDEX bookings_by_token ON bookings (token_hash);
ALTER TABLE bookings ADD COLUMN invitation_id BLOB REFERENCES invitations (id) ON DELETE SET NULL;
-- "Holds a live booking" is asked for every candidate; without this index the wave pick reads
-- every waiting person of a postcode.
CREATE INDEX bookings_live_by_registrant ON bookings (registrant_id) WHERE status IN ('booked', 'checked_in');

-- Mails waiting to be sent. The payload (recipient, texts, links) is AES-256-GCM encrypted
-- under `key_id` with the row id as associated data; rows are deleted once sent.
CREATE TABLE outbox (
    id              BLOB        PRIMARY KEY NOT NULL,
    key_id          INTEGER     NOT NULL,
    payload         BLOB       NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    -- A worker holds the row until then; after a crash another worker takes it over.
    locked_until    INTEGER,
    last_error      TEXT
) STRICT;
CREATE INDEX outbox_due ON outbox (next_attempt_at);
