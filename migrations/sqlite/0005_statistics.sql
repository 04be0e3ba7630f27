-- Same schema as migrations/postgres/0005_statistics.sql (UUIDs as 16-byte BLOBs, days as
-- TEXT 'YYYY-MM-DD').

CREATE TABLE wave_stats (
    day     TEXT    NOT NULL,
    wave    INTEGER NOT NULL,
    invited INTEGER NOT NULL,
    claimed INTEGER NOT NULL,
    PRIMARY KEY (day, wave)
) STRICT;

CREATE TABLE fill_times (
    day         TEXT    NOT NULL,
    area        TEXT    NOT NULL,
    practice_id BLOB    NOT NULL,
    minutes     INTEGER NOT NULL,
    offers      INTEGER NOT NULL,
    PRIMARY KEY (day, area, practice_id, minutes)
) STRICT;

CREATE TABLE practice_stats (
    day         TEXT    NOT NULL,
    practice_id BLOB    NOT NULL,
    metric      TEXT    NOT NULL,
    value       INTEGER NOT NULL,
    PRIMARY KEY (practice_id, day, metric)
) STRICT;
