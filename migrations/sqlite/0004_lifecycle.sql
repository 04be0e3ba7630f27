-- Same schema as migrations/postgres/0004_lifecycle.sql (UUIDs as 16-byte BLOBs, times as
-- INTEGER milliseconds since the Unix epoch, days as TEXT 'YYYY-MM-DD').

ALTER TABLE outbox ADD COLUMN registrant_id BLOB REFERENCES registrants (id) ON DELETE CASCADE;
ALTER TABLE outbox ADD COLUMN offer_id BLOB REFERENCES offers (id) ON DELETE CASCADE;
CREATE INDEX outbox_by_registrant ON outbox (registrant_id);
CREATE INDEX outbox_by_offer ON outbox (offer_id);

ALTER TABLE registrants ADD COLUMN inactivity_warned_at INTEGER;
CREATE INDEX registrants_paused_by_age ON registrants (paused_at) WHERE status = 'paused';

CREATE TABLE daily_stats (
    day    TEXT    NOT NULL,
    area   TEXT    NOT NULL,
    metric TEXT    NOT NULL,
    value  INTEGER NOT NULL,
    PRIMARY KEY (day, area, metric)
) STRICT;
