-- Same schema as migrations/postgres/0010_rate_limits.sql (times as INTEGER milliseconds since
-- the Unix epoch).
CREATE TABLE rate_counters (
    counter_key  BLOB    NOT NULL,
    window_start INTEGER NOT NULL,
    hits         INTEGER NOT NULL,
    PRIMARY KEY (counter_key, window_start)
) STRICT;
CREATE INDEX rate_counters_by_window ON rate_counters (window_start);
