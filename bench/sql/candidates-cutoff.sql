-- A proposed rewrite of the store's candidate query (restdose-store-sql, postgres.rs,
-- `candidates`), for `restdose-bench wave-pick --alt-sql bench/sql/candidates-cutoff.sql`.
-- Same binds ($1 offer, $2 postcodes, $3 their distances, $4 invited_before, $5 limit), same
-- columns, same result; no new index.
--
-- The store's query takes the `limit` oldest candidates of *every* postcode in the area and
-- keeps the oldest `limit` of them: postcodes × limit rows read (13,000 for 434 postcodes at
-- limit 30), each a heap fetch plus three anti-join probes. This version first finds a cut-off
-- time and then reads only what lies before it:
--
--   1. heads: each postcode's m = ceil(limit / postcodes) oldest candidates (usually m = 1).
--   2. cutoff: the limit-th oldest head. At least `limit` candidates are that old or older, so
--      the wave lies entirely at or before it. (Fewer heads than `limit`: no cut-off, and the
--      second step is the store's query.)
--   3. Only postcodes whose oldest candidate is at or before the cut-off can contribute; from
--      each, candidates up to the cut-off (an index range on (postcode, created_at)), oldest
--      `limit` overall.
--
-- "Not invited to this offer before" is a NOT IN over the offer's invitations (registrant_id
-- is NOT NULL, so it means the same as the NOT EXISTS): PostgreSQL hashes that short list once
-- instead of probing invitations_once_per_offer for every row read.
WITH p AS MATERIALIZED (
    SELECT * FROM UNNEST($2::text[], $3::real[]) AS p (postcode, distance_km)
),
heads AS MATERIALIZED (
    SELECT p.postcode, p.distance_km, h.created_at
    FROM p CROSS JOIN LATERAL (
        SELECT r.created_at
        FROM registrants r
        WHERE r.postcode = p.postcode AND r.status = 'active'
          AND r.radius_km >= p.distance_km
          AND (r.last_invited_at IS NULL OR r.last_invited_at <= $4)
          AND NOT EXISTS (SELECT 1 FROM invitations i
              WHERE i.registrant_id = r.id AND i.status = 'open')
          AND NOT EXISTS (SELECT 1 FROM bookings b
              WHERE b.registrant_id = r.id AND b.status IN ('booked', 'checked_in'))
          AND r.id NOT IN (SELECT i.registrant_id FROM invitations i WHERE i.offer_id = $1)
        ORDER BY r.created_at
        LIMIT ($5 + GREATEST(cardinality($2), 1) - 1) / GREATEST(cardinality($2), 1)
    ) h
),
cutoff AS (
    SELECT created_at FROM heads ORDER BY created_at OFFSET $5 - 1 LIMIT 1
),
near AS (
    SELECT postcode, min(distance_km) AS distance_km
    FROM heads
    WHERE created_at <= COALESCE((SELECT created_at FROM cutoff), 'infinity')
    GROUP BY postcode
)
SELECT c.id AS registrant_id, c.postcode, p.distance_km, c.created_at, c.language,
    c.email_key_id, c.email_ciphertext, c.email_index
FROM near p CROSS JOIN LATERAL (
    SELECT r.id, r.postcode, r.created_at, r.language, r.email_key_id,
        r.email_ciphertext, r.email_index
    FROM registrants r
    WHERE r.postcode = p.postcode AND r.status = 'active'
      AND r.created_at <= COALESCE((SELECT created_at FROM cutoff), 'infinity')
      AND r.radius_km >= p.distance_km
      AND (r.last_invited_at IS NULL OR r.last_invited_at <= $4)
      AND NOT EXISTS (SELECT 1 FROM invitations i
          WHERE i.registrant_id = r.id AND i.status = 'open')
      AND NOT EXISTS (SELECT 1 FROM bookings b
          WHERE b.registrant_id = r.id AND b.status IN ('booked', 'checked_in'))
      AND r.id NOT IN (SELECT i.registrant_id FROM invitations i WHERE i.offer_id = $1)
    ORDER BY r.created_at, r.id
    LIMIT $5
) c
ORDER BY c.created_at, c.id
LIMIT $5
