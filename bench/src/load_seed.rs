//! Seeding for the load scenarios of `scripts/bench-load` that need state a client cannot
//! create over HTTP fast enough: S4 (invited people who all click "claim" at once) and S5 (a full
//! outbox). Each subcommand reads the service's own configuration (`restdose.toml` and
//! `RESTDOSE_*`, exactly as `restdose serve` does), so the rows are encrypted under the keys of
//! the process that will serve or send them.

use anyhow::{Context, bail};
use chrono::{Duration as TimeSpan, Utc};
use clap::Args;
use restdose::config::Config;
use restdose_core::Services;
use restdose_crypto::SecretToken;
use restdose_domain::{Email, Lang, SystemClock};
use restdose_mail::{BookingTemplate, FileMailer, Mailer, OutgoingMail, render_booking};
use restdose_store::{
    AccountTokenPurpose, NewAccount, NewAccountToken, NewInvitation, NewOffer, NewPractice,
    NewRegistrant, NewToken, NewWave, PracticeStatus, Role, StoredEmail, TokenPurpose,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;

const POSTCODE: &str = "10115";
/// Rows written per store call when filling the outbox.
const OUTBOX_CHUNK: usize = 1_000;

#[derive(Debug, Args)]
pub struct ClaimSeedArgs {
    /// People invited to the one offer (one invitation link each).
    #[arg(long, default_value_t = 10_000)]
    pub people: usize,
    /// Doses of the offer.
    #[arg(long, default_value_t = 50)]
    pub doses: i32,
    /// Where to write the invitation secrets, one per line (the claim URLs' last segment).
    #[arg(long)]
    pub tokens: PathBuf,
}

#[derive(Debug, Args)]
pub struct ClaimCountArgs {
    /// The offer `claim-seed` printed.
    #[arg(long)]
    pub offer: Uuid,
}

#[derive(Debug, Args)]
pub struct MailSeedArgs {
    /// Invitation mails to put into the outbox, all due now.
    #[arg(long, default_value_t = 100_000)]
    pub mails: usize,
    /// Also write one such mail as an `.eml` file into this folder, formatted as the service
    /// sends it (for the size of the SMTP ceiling's messages).
    #[arg(long)]
    pub sample_eml: Option<PathBuf>,
}

async fn services() -> anyhow::Result<Services> {
    let config = Config::load(Path::new("restdose.toml"), false)?;
    restdose::build_services(&config, Arc::new(SystemClock)).await
}

/// An approved practice, one offer of `doses` in an hour at 10115, `people` confirmed people
/// there and one wave inviting all of them (their mails wait in the outbox). Prints the offer id.
pub async fn claim_seed(args: ClaimSeedArgs) -> anyhow::Result<()> {
    if args.people == 0 || args.doses < 1 {
        bail!("--people and --doses must be at least 1");
    }
    let services = services().await?;
    let store = &services.store;
    let now = Utc::now();

    let account_id = Uuid::new_v4();
    let verify = SecretToken::generate()?;
    store
        .insert_practice(
            &NewAccount {
                id: account_id,
                role: Role::Practice,
                email: format!("practice-{}@example.org", account_id.simple()),
                password_hash: restdose_core::password::hash("bench practice password").await?,
                created_at: now,
                email_verified_at: None,
                language: restdose_domain::Lang::De,
            },
            &NewPractice {
                account_id,
                name: "Benchmark practice".to_owned(),
                street: "Invalidenstraße 1".to_owned(),
                postcode: restdose_domain::Postcode::from_trusted(POSTCODE.to_owned()),
                city: "Berlin".to_owned(),
                phone: "030 1234567".to_owned(),
                created_at: now,
            },
            &NewAccountToken {
                hash: verify.hash(),
                account_id,
                purpose: AccountTokenPurpose::VerifyEmail,
                created_at: now,
                expires_at: now + TimeSpan::hours(48),
            },
        )
        .await?;
    services.verify_practice_email(verify.expose()).await?;
    store
        .set_practice_status(account_id, PracticeStatus::Approved, now)
        .await?;

    let offer_id = Uuid::new_v4();
    let vaccine = services
        .policy
        .vaccines
        .first()
        .context("the configuration lists no vaccine")?
        .clone();
    store
        .insert_offer(&NewOffer {
            id: offer_id,
            practice_id: account_id,
            vaccine,
            doses: args.doses,
            starts_at: now + TimeSpan::hours(1),
            ends_at: now + TimeSpan::hours(3),
            claim_minutes: 60,
            radius_km: 10,
            note: String::new(),
            postcode: restdose_domain::Postcode::from_trusted(POSTCODE.to_owned()),
            created_at: now,
        })
        .await?;

    // Sign-up and double opt-in as the store sees them, IN_FLIGHT at once: all 10,000 at once
    // would wait for a pooled connection longer than the pool's acquire time-out.
    const IN_FLIGHT: usize = 32;
    let mut sign_ups = tokio::task::JoinSet::new();
    let mut people = Vec::with_capacity(args.people);
    for i in 0..args.people {
        if sign_ups.len() >= IN_FLIGHT
            && let Some(joined) = sign_ups.join_next().await
        {
            people.push(joined??);
        }
        let services = services.clone();
        let people = args.people;
        sign_ups.spawn(async move {
            let id = Uuid::new_v4();
            let address = Email::from_trusted(format!("claim{i}.{}@example.org", id.simple()));
            let (key_id, ciphertext) = services
                .keys
                .encrypt(address.as_str().as_bytes(), id.as_bytes())?;
            let confirm = SecretToken::generate()?;
            services
                .store
                .insert_registrant(
                    &NewRegistrant {
                        id,
                        email: StoredEmail {
                            key_id,
                            ciphertext,
                            index: services.keys.blind_index(&address.normalised()),
                        },
                        postcode: restdose_domain::Postcode::from_trusted(POSTCODE.to_owned()),
                        radius_km: 10,
                        language: restdose_domain::Lang::De,
                        created_at: now - TimeSpan::seconds((people - i) as i64),
                        last_mail_at: Some(now),
                    },
                    &[NewToken {
                        hash: confirm.hash(),
                        registrant_id: id,
                        purpose: TokenPurpose::Confirm,
                        created_at: now,
                        expires_at: now + TimeSpan::hours(1),
                    }],
                )
                .await?;
            services
                .store
                .confirm_registrant(&confirm.hash(), now)
                .await?
                .context("a seeded sign-up could not be confirmed")?;
            anyhow::Ok((id, address))
        });
    }
    while let Some(joined) = sign_ups.join_next().await {
        people.push(joined??);
    }

    let expires_at = now + TimeSpan::minutes(60);
    let mut invitations = Vec::with_capacity(people.len());
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&args.tokens)
            .with_context(|| format!("cannot write {}", args.tokens.display()))?,
    );
    for (registrant_id, address) in people {
        let secret = SecretToken::generate()?;
        let invitation_id = Uuid::new_v4();
        let mail = invitation_mail(&services, address, invitation_id, &secret);
        invitations.push((
            NewInvitation {
                id: invitation_id,
                registrant_id,
                token_hash: secret.hash(),
                distance_km: 0.0,
                expires_at,
            },
            services.outbox_row_about(&mail, now, Some(registrant_id), Some(offer_id))?,
        ));
        writeln!(out, "{}", secret.expose())?;
    }
    out.flush()?;
    let recorded = store
        .record_wave(&NewWave {
            offer_id,
            wave: 1,
            last_call: false,
            created_at: now,
            next_wave_at: expires_at,
            claimed_seen: 0,
            invitations,
        })
        .await?;
    if recorded as usize != args.people {
        bail!("only {recorded} of {} invitations were stored", args.people);
    }
    println!("{offer_id}");
    Ok(())
}

/// Prints the number of live bookings of an offer.
pub async fn claim_count(args: ClaimCountArgs) -> anyhow::Result<()> {
    let services = services().await?;
    let bookings = services.store.bookings_of(args.offer).await?;
    println!("{}", bookings.len());
    Ok(())
}

/// Puts `mails` rendered invitation mails (to distinct addresses, all due now) into the outbox.
pub async fn mail_seed(args: MailSeedArgs) -> anyhow::Result<()> {
    let services = services().await?;
    let now = Utc::now();
    if let Some(dir) = &args.sample_eml {
        let secret = SecretToken::generate()?;
        let address = Email::from_trusted("sample@example.org".to_owned());
        let mail = invitation_mail(&services, address, Uuid::new_v4(), &secret);
        let from = Config::load(Path::new("restdose.toml"), false)?.mail_from;
        FileMailer::new(dir, &from)?.send(&mail).await?;
    }
    let mut rows = Vec::with_capacity(OUTBOX_CHUNK);
    for i in 0..args.mails {
        let secret = SecretToken::generate()?;
        let address = Email::from_trusted(format!("mail{i}@example.org"));
        let mail = invitation_mail(&services, address, Uuid::new_v4(), &secret);
        rows.push(services.outbox_row(&mail, now)?);
        if rows.len() == OUTBOX_CHUNK || i + 1 == args.mails {
            services.store.enqueue_mails(&rows).await?;
            rows.clear();
        }
    }
    Ok(())
}

/// The invitation mail the matcher sends, with the real template, so sizes are realistic.
fn invitation_mail(
    services: &Services,
    to: Email,
    invitation_id: Uuid,
    secret: &SecretToken,
) -> OutgoingMail {
    let content = render_booking(
        Lang::default(),
        &BookingTemplate::Invitation {
            practice: "Benchmark practice",
            address: "Invalidenstraße 1, 10115 Berlin",
            distance_km: 2.5,
            window: "Mittwoch, 2. Dezember 2026, 14:00–16:00 Uhr",
            vaccine: "Comirnaty",
            note: "Bitte Impfpass mitbringen.",
            answer_by: "14:15 Uhr",
            offer_url: &services
                .links
                .portal(&format!("/invitations/{}", secret.expose())),
            last_call: false,
            manage_url: &services.links.portal("/manage/bench"),
            unsubscribe_url: &services.links.portal("/unsubscribe/bench"),
        },
    );
    OutgoingMail {
        to,
        message_id: services.links.message_id(invitation_id),
        content,
    }
}
