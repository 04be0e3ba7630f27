-- Fixed-window request counters shared by every process (docs/configuration.md, "Abuse limits").
-- `counter_key` is an HMAC (the keyring's blind-index key) of the scope, the window length and
-- the limited value (a normalised address or a client IP), so no address is stored in clear.
CREATE TABLE rate_counters (
    counter_key  BYTEA       NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    hits         INTEGER     NOT NULL,
    PRIMARY KEY (counter_key, window_start)
);
CREATE INDEX rate_counters_by_window ON rate_counters (window_start);
