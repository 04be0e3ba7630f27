//! The benchmark's database: created fresh through the admin URL, migrated with the real
//! `PgStore`, bulk-loaded with synthetic people, offers, invitations and bookings by binary
//! `COPY`, vacuumed and analysed; dropped at the end.
//!
//! The data is fake but well-formed: random bytes where the app stores ciphertext and blind
//! indexes (unique like the real ones), people spread uniformly over all German postcodes,
//! signed up at an even rate over 60 days (so the heap is in sign-up order, as in production).

use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::copy::{CopyEncoder, copy_in};
use crate::rng::Rng;

/// Who holds what, per thousand people. Open invitations and live bookings exclude a person
/// through the query's NOT EXISTS filters; recent answers exclude them through the throttle.
const OPEN_INVITATION_PER_MILLE: u64 = 10;
const LIVE_BOOKING_PER_MILLE: u64 = 5;
const PAST_INVITATION_PER_MILLE: u64 = 60;
const RECENTLY_DECLINED_PER_MILLE: u64 = 10;

/// Offers the invitations and bookings belong to (never the offer a pick is made for).
const DUMMY_OFFERS: usize = 200;

/// How far back sign-ups go.
const SIGN_UP_DAYS: i64 = 60;

/// The matcher's default throttle (`matcher_throttle_minutes`).
pub const THROTTLE_MINUTES: i64 = 30;

/// A database of its own on the admin URL's server.
pub struct BenchDb {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl BenchDb {
    pub async fn create(admin_url: &str) -> anyhow::Result<BenchDb> {
        let admin = url::Url::parse(admin_url)
            .context("RESTDOSE_BENCH_POSTGRES_URL / --postgres-url is not a URL")?;
        let name = format!("restdose_bench_{}", Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(admin.as_str()).await.with_context(|| {
            format!(
                "cannot connect to PostgreSQL at {} (scripts/bench starts a server if none runs)",
                redact(&admin)
            )
        })?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .context("creating the benchmark database")?;
        conn.close().await.ok();
        let mut url = admin.clone();
        url.set_path(&format!("/{name}"));
        Ok(BenchDb {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        })
    }

    /// Drops the database, disconnecting whoever is still connected.
    pub async fn drop(self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&self.admin_url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await
        .with_context(|| format!("dropping database {}", self.name))?;
        conn.close().await.ok();
        Ok(())
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &url::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        url.set_password(Some("***")).ok();
    }
    url.to_string()
}

/// What to load.
pub struct Population<'a> {
    pub people: u32,
    pub seed: u64,
    pub now: DateTime<Utc>,
    /// Every postcode people may live at (sorted, so a seed means the same people everywhere).
    pub postcodes: &'a [&'a str],
}

#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    pub people: u64,
    pub offers: u64,
    pub open_invitations: u64,
    pub past_invitations: u64,
    pub live_bookings: u64,
    pub copy_registrants_s: f64,
    pub copy_others_s: f64,
    pub vacuum_analyze_s: f64,
    pub registrants_table_mb: f64,
    pub registrants_indexes_mb: f64,
    pub waiting_index_mb: f64,
}

/// Someone with an invitation on a dummy offer.
struct Invited {
    registrant: Uuid,
    at: DateTime<Utc>,
    status: &'static str,
}

/// Loads the population; returns what was loaded and the ids of the offers holding the
/// invitations and bookings.
pub async fn seed(pool: &PgPool, pop: &Population<'_>) -> anyhow::Result<(SeedReport, Vec<Uuid>)> {
    anyhow::ensure!(pop.people > 0, "--people must be at least 1");
    anyhow::ensure!(
        !pop.postcodes.is_empty(),
        "no postcodes to spread people over"
    );
    let mut rng = Rng::new(pop.seed);
    let now = pop.now;

    let offers = insert_offers(pool, &mut rng, pop).await?;

    // People, in sign-up order.
    let started = Instant::now();
    let mut invited: Vec<Invited> = Vec::new();
    let mut booked: Vec<(Uuid, DateTime<Utc>)> = Vec::new();
    let step_us = (SIGN_UP_DAYS * 86_400_000_000 / i64::from(pop.people)).max(1);
    let first = now - Duration::days(SIGN_UP_DAYS);
    let mut next: u32 = 0;
    let people = copy_in(
        pool,
        "COPY registrants (id, email_key_id, email_ciphertext, email_index, postcode, radius_km, \
         status, language, created_at, confirmed_at, last_mail_at, last_invited_at, \
         unanswered_in_a_row) FROM STDIN (FORMAT binary)",
        |enc: &mut CopyEncoder| {
            for _ in 0..4096 {
                if next == pop.people {
                    return false;
                }
                let id = rng.uuid();
                let postcode = pop.postcodes[rng.below(pop.postcodes.len() as u64) as usize];
                let radius = rng.between(5, 50) as i16;
                let created_at = first
                    + Duration::microseconds(
                        i64::from(next) * step_us + rng.below(step_us as u64) as i64,
                    );
                let confirmed_at = created_at + Duration::seconds(rng.between(30, 3600));
                let language = if rng.below(100) < 85 { "de" } else { "en" };
                // Nonce, ciphertext of a typical address and tag; a 32-byte HMAC.
                let mut ciphertext = [0u8; 64];
                let ciphertext_len = rng.between(44, 64) as usize;
                rng.fill(&mut ciphertext[..ciphertext_len]);
                let mut index = [0u8; 32];
                rng.fill(&mut index);

                let role = rng.below(1000);
                let mut last_invited_at = None;
                let mut unanswered = 0;
                let mut ago =
                    |lo_s: i64, hi_s: i64| now - Duration::seconds(rng.between(lo_s, hi_s));
                if role < OPEN_INVITATION_PER_MILLE {
                    let at = ago(0, 14 * 60);
                    last_invited_at = Some(at);
                    invited.push(Invited {
                        registrant: id,
                        at,
                        status: "open",
                    });
                } else if role < OPEN_INVITATION_PER_MILLE + LIVE_BOOKING_PER_MILLE {
                    let at = ago(3600, 3 * 86_400);
                    last_invited_at = Some(at);
                    booked.push((id, at));
                } else if role
                    < OPEN_INVITATION_PER_MILLE + LIVE_BOOKING_PER_MILLE + PAST_INVITATION_PER_MILLE
                {
                    let at = ago(3600, 14 * 86_400);
                    let expired = role % 10 < 7;
                    last_invited_at = Some(at);
                    unanswered = i32::from(expired);
                    let status = if expired { "expired" } else { "declined" };
                    invited.push(Invited {
                        registrant: id,
                        at,
                        status,
                    });
                } else if role
                    < OPEN_INVITATION_PER_MILLE
                        + LIVE_BOOKING_PER_MILLE
                        + PAST_INVITATION_PER_MILLE
                        + RECENTLY_DECLINED_PER_MILLE
                {
                    let at = ago(60, THROTTLE_MINUTES * 60 - 60);
                    last_invited_at = Some(at);
                    invited.push(Invited {
                        registrant: id,
                        at,
                        status: "declined",
                    });
                }

                enc.row(13)
                    .uuid(id)
                    .int4(1)
                    .bytea(&ciphertext[..ciphertext_len])
                    .bytea(&index)
                    .text(postcode)
                    .int2(radius)
                    .text("active")
                    .text(language)
                    .timestamptz(created_at)
                    .timestamptz(confirmed_at)
                    .timestamptz(confirmed_at)
                    .opt_timestamptz(last_invited_at)
                    .int4(unanswered);
                next += 1;
            }
            true
        },
    )
    .await?;
    let copy_registrants_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut rows = invited.iter();
    copy_in(
        pool,
        "COPY invitations (id, offer_id, registrant_id, token_hash, wave, last_call, distance_km, \
         status, created_at, expires_at, answered_at) FROM STDIN (FORMAT binary)",
        |enc: &mut CopyEncoder| {
            for inv in rows.by_ref().take(4096) {
                let mut token_hash = [0u8; 32];
                rng.fill(&mut token_hash);
                let answered_at = (inv.status == "declined").then(|| inv.at + Duration::minutes(2));
                enc.row(11)
                    .uuid(rng.uuid())
                    .uuid(offers[rng.below(offers.len() as u64) as usize])
                    .uuid(inv.registrant)
                    .bytea(&token_hash)
                    .int4(1)
                    .bool(false)
                    .float4(rng.between(0, 30) as f32)
                    .text(inv.status)
                    .timestamptz(inv.at)
                    .timestamptz(inv.at + Duration::minutes(15))
                    .opt_timestamptz(answered_at);
            }
            rows.len() > 0
        },
    )
    .await?;
    let mut rows = booked.iter().enumerate();
    copy_in(
        pool,
        "COPY bookings (id, offer_id, registrant_id, code, status, created_at, updated_at, \
         token_hash) FROM STDIN (FORMAT binary)",
        |enc: &mut CopyEncoder| {
            for (n, (registrant, at)) in rows.by_ref().take(4096) {
                let mut token_hash = [0u8; 32];
                rng.fill(&mut token_hash);
                let status = if n % 20 == 0 { "checked_in" } else { "booked" };
                enc.row(8)
                    .uuid(rng.uuid())
                    .uuid(offers[rng.below(offers.len() as u64) as usize])
                    .uuid(*registrant)
                    .text(&format!("BENCH{n:07}"))
                    .text(status)
                    .timestamptz(*at)
                    .timestamptz(*at)
                    .bytea(&token_hash);
            }
            rows.len() > 0
        },
    )
    .await?;
    let copy_others_s = started.elapsed().as_secs_f64();

    // What autovacuum would have done by now on a live system: statistics for the planner,
    // hint bits and the visibility map.
    let started = Instant::now();
    sqlx::raw_sql("VACUUM (ANALYZE)")
        .execute(pool)
        .await
        .context("VACUUM (ANALYZE)")?;
    let vacuum_analyze_s = started.elapsed().as_secs_f64();

    let (table, indexes, waiting): (i64, i64, i64) = sqlx::query_as(
        "SELECT pg_relation_size('registrants'), pg_indexes_size('registrants'), \
             pg_relation_size('registrants_waiting_by_postcode')",
    )
    .fetch_one(pool)
    .await?;
    let mb = |bytes: i64| bytes as f64 / (1024.0 * 1024.0);
    let report = SeedReport {
        people,
        offers: offers.len() as u64,
        open_invitations: invited.iter().filter(|i| i.status == "open").count() as u64,
        past_invitations: invited.iter().filter(|i| i.status != "open").count() as u64,
        live_bookings: booked.len() as u64,
        copy_registrants_s,
        copy_others_s,
        vacuum_analyze_s,
        registrants_table_mb: mb(table),
        registrants_indexes_mb: mb(indexes),
        waiting_index_mb: mb(waiting),
    };
    Ok((report, offers))
}

/// One approved practice with open offers for the invitations and bookings to point at.
async fn insert_offers(
    pool: &PgPool,
    rng: &mut Rng,
    pop: &Population<'_>,
) -> anyhow::Result<Vec<Uuid>> {
    let now = pop.now;
    let practice = rng.uuid();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO accounts (id, role, email, password_hash, email_verified_at, created_at, \
             password_changed_at) \
         VALUES ($1, 'practice', 'bench-practice@example.invalid', 'not a hash', $2, $2, $2)",
    )
    .bind(practice)
    .bind(now - Duration::days(90))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO practices (account_id, name, street, postcode, city, phone, status, \
             created_at, decided_at) \
         VALUES ($1, 'Benchmark practice', 'Teststraße 1', '10115', 'Berlin', '+49 30 0000000', \
             'approved', $2, $2)",
    )
    .bind(practice)
    .bind(now - Duration::days(90))
    .execute(&mut *tx)
    .await?;
    let ids: Vec<Uuid> = (0..DUMMY_OFFERS).map(|_| rng.uuid()).collect();
    let postcodes: Vec<String> = (0..DUMMY_OFFERS)
        .map(|_| pop.postcodes[rng.below(pop.postcodes.len() as u64) as usize].to_owned())
        .collect();
    sqlx::query(
        "INSERT INTO offers (id, practice_id, vaccine, doses, starts_at, ends_at, claim_minutes, \
             radius_km, note, postcode, status, created_at, invited, waves, next_wave_at) \
         SELECT o.id, $3, 'Influenza', 10, $4, $5, 15, 30, '', o.postcode, 'open', $6, 50, 1, $5 \
         FROM UNNEST($1::uuid[], $2::text[]) AS o (id, postcode)",
    )
    .bind(&ids)
    .bind(&postcodes)
    .bind(practice)
    .bind(now + Duration::hours(1))
    .bind(now + Duration::hours(3))
    .bind(now - Duration::hours(1))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ids)
}
