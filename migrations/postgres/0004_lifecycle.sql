-- Data lifecycle: outbox mails hang off the person and the offer they concern (so purging
-- either removes its unsent mails), paused people can be warned before their inactivity purge,
-- and anonymous daily counters per 2-digit postcode area survive every purge.

ALTER TABLE outbox ADD COLUMN registrant_id UUID REFERENCES registrants (id) ON DELETE CASCADE;
ALTER TABLE outbox ADD COLUMN offer_id UUID REFERENCES offers (id) ON DELETE CASCADE;
CREATE INDEX outbox_by_registrant ON outbox (registrant_id);
CREATE INDEX outbox_by_offer ON outbox (offer_id);

-- Set when a paused person was warned that their data goes after long inactivity; cleared
-- when they resume.
ALTER TABLE registrants ADD COLUMN inactivity_warned_at TIMESTAMPTZ;
CREATE INDEX registrants_paused_by_age ON registrants (paused_at) WHERE status = 'paused';

-- Anonymous counters: no row names a person, an offer or a practice.
-- metric: signups, offers, doses_offered, doses_placed, doses_unused, invitations, claims.
CREATE TABLE daily_stats (
    day    DATE   NOT NULL,
    area   TEXT   NOT NULL,
    metric TEXT   NOT NULL,
    value  BIGINT NOT NULL,
    PRIMARY KEY (day, area, metric)
);
