-- Same change as migrations/sqlite/0008_withdrawn_invitations.sql.
--
-- An invitation the offer itself ended (every dose taken, or the practice closed or cancelled
-- the offer) is 'withdrawn': the person did nothing wrong, so it is no strike towards a pause,
-- no refusal in the overbooking estimate, and no throttle on the next invitation. Until now such
-- invitations stayed open until their claim window ran out (fills) or became 'expired' (close,
-- cancel), and both counted against the person.
ALTER TABLE invitations DROP CONSTRAINT invitations_status_check;
ALTER TABLE invitations ADD CONSTRAINT invitations_status_check
    CHECK (status IN ('open', 'claimed', 'declined', 'expired', 'missed', 'withdrawn'));

-- The matcher caps how many invitations one person gets in 24 hours (freeing people at once
-- must not flood anyone); the wave pick counts a candidate's recent invitations through this.
CREATE INDEX invitations_by_registrant_and_time ON invitations (registrant_id, created_at);
