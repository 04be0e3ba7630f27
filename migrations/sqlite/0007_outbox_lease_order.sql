-- The outbox lease takes the due mails in (next_attempt_at, created_at, id) order. With an index
-- on next_attempt_at alone every lease sorted all due rows, and a wave's mails share one
-- next_attempt_at: at 100,000 queued mails a lease of 200 took ~90 ms of database CPU on
-- PostgreSQL (docs/performance.md, S5). An index in the lease's order reads just the first rows;
-- it also serves everything the old one did, which goes.
CREATE INDEX outbox_due_in_order ON outbox (next_attempt_at, created_at, id);
DROP INDEX outbox_due;
