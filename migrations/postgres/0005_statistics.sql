-- Open statistics (docs/statistics.md): more anonymous counters, written in the same
-- transaction that purges an offer, so they survive the deletion of personal data. No row
-- names a person or an offer; times are kept as days and durations only.

-- Invitations sent and claimed per wave number, by the day the offer's appointment started.
CREATE TABLE wave_stats (
    day     DATE    NOT NULL,
    wave    INTEGER NOT NULL,
    invited BIGINT  NOT NULL,
    claimed BIGINT  NOT NULL,
    PRIMARY KEY (day, wave)
);

-- Time from posting an offer to its last dose placed, for offers that were filled: a
-- histogram of whole minutes per day, area and practice (practices are accounts, not people).
CREATE TABLE fill_times (
    day         DATE    NOT NULL,
    area        TEXT    NOT NULL,
    practice_id UUID    NOT NULL,
    minutes     INTEGER NOT NULL,
    offers      BIGINT  NOT NULL,
    PRIMARY KEY (day, area, practice_id, minutes)
);

-- Per-practice daily counters: doses_placed, checked_in, no_show.
CREATE TABLE practice_stats (
    day         DATE   NOT NULL,
    practice_id UUID   NOT NULL,
    metric      TEXT   NOT NULL,
    value       BIGINT NOT NULL,
    PRIMARY KEY (practice_id, day, metric)
);
