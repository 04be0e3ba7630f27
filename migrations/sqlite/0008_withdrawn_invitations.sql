-- no-transaction
-- Same change as migrations/postgres/0008_withdrawn_invitations.sql.
--
-- An invitation the offer itself ended (every dose taken, or the practice closed or cancelled
-- the offer) is 'withdrawn': the person did nothing wrong, so it is no strike towards a pause,
-- no refusal in the overbooking estimate, and no throttle on the next invitation.
--
-- SQLite cannot alter a CHECK constraint: the table is rebuilt (SQLite's documented 12-step
-- procedure). Foreign keys must be off while the old table is dropped, or the drop's implicit
-- DELETE would set bookings.invitation_id to NULL; a pragma cannot change inside a transaction,
-- hence `no-transaction` above and the explicit transaction below.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE invitations_rebuilt (
    id            BLOB        PRIMARY KEY NOT NULL,
    offer_id      BLOB        NOT NULL REFERENCES offers (id) ON DELETE CASCADE,
    registrant_id BLOB        NOT NULL REFERENCES registrants (id) ON DELETE CASCADE,
    -- SHA-256 of the secret in the invitation link.
    token_hash    BLOB       NOT NULL UNIQUE,
    wave          INTEGER     NOT NULL,
    last_call     INTEGER     NOT NULL,
    distance_km   REAL        NOT NULL,
    status        TEXT        NOT NULL CHECK (status IN ('open', 'claimed', 'declined', 'expired', 'missed', 'withdrawn')),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    answered_at   INTEGER
) STRICT;
INSERT INTO invitations_rebuilt (id, offer_id, registrant_id, token_hash, wave, last_call,
        distance_km, status, created_at, expires_at, answered_at)
    SELECT id, offer_id, registrant_id, token_hash, wave, last_call, distance_km, status,
        created_at, expires_at, answered_at
    FROM invitations;
DROP TABLE invitations;
ALTER TABLE invitations_rebuilt RENAME TO invitations;
CREATE UNIQUE INDEX invitations_once_per_offer ON invitations (offer_id, registrant_id);
CREATE INDEX invitations_open_by_expiry ON invitations (expires_at) WHERE status = 'open';
CREATE UNIQUE INDEX invitations_one_open_per_person ON invitations (registrant_id) WHERE status = 'open';
-- The matcher caps how many invitations one person gets in 24 hours (freeing people at once
-- must not flood anyone); the wave pick counts a candidate's recent invitations through this.
CREATE INDEX invitations_by_registrant_and_time ON invitations (registrant_id, created_at);
COMMIT;
PRAGMA foreign_keys = ON;
