//! The matcher end to end, on both backends: waves of invitations to the longest-waiting people
//! nearby, the invitation and booking pages behind the mailed links, claims, declines, expiry,
//! adaptive overbooking, last calls, pausing the silent, cancellations by people and practices,
//! and the one-booking-per-person rule. Mail is received by a real SMTP server; the matcher does
//! not run in the background here: each test drives `run_wave_once` and
//! `expire_invitations_once` itself and moves the clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, Utc};
use mail_parser::{MessageParser, MessagePart, MimeHeaders};
use restdose_core::matcher::WaveOutcome;
use restdose_core::offers::{NumberInput, OfferInput, TimeInput};
use restdose_core::{Principal, RadiusInput};
use restdose_domain::Clock;
use restdose_store::{InvitationStatus, Offer, PracticeStatus};
use restdose_tests::portal::{
    Practice, approved_practice, approved_practice_at, book, location, registrant_id, vaccine,
};
use restdose_tests::{Backend, CapturedMail, TestApp, on_both_backends, test_start, unique_email};
use uuid::Uuid;

on_both_backends!(
    a_wave_invites_twice_the_doses_longest_waiting_first_within_reach_and_mails_each,
    opening_an_invitation_changes_nothing_and_claiming_books_with_a_code_and_a_calendar_entry,
    claims_beyond_the_doses_see_all_taken_and_keep_their_place_in_line,
    a_claim_on_a_full_offer_answers_all_taken_without_queuing_mail_or_writing_tokens,
    a_person_who_declines_is_invited_again_ahead_of_people_who_signed_up_later,
    unanswered_invitations_expire_and_the_next_wave_goes_to_the_next_people_in_line,
    a_wave_nobody_claimed_makes_the_next_wave_of_the_offer_larger,
    waves_everyone_claimed_make_later_offers_of_the_area_overbook_less_down_towards_one,
    an_offer_starting_within_one_claim_window_sends_a_three_times_larger_last_call,
    three_unanswered_invitations_in_a_row_pause_the_person_until_they_resume,
    a_booking_cancelled_by_the_person_hands_the_dose_to_someone_new_at_once,
    a_practice_cancelling_the_offer_tells_everyone_who_booked_and_keeps_them_on_the_list,
    a_filled_offer_sends_no_more_waves,
    doses_added_to_a_filled_offer_are_offered_to_the_next_people_in_line,
    an_offer_whose_window_ended_sends_no_more_waves,
    a_closed_offer_sends_no_more_waves,
    a_person_with_a_booking_is_not_invited_and_cannot_claim_a_second_dose,
    a_filled_offer_frees_the_people_it_invited_for_the_next_offer_at_once,
    late_clicks_on_one_dose_offers_teach_the_matcher_to_overbook_less,
    after_the_answer_time_the_offer_asks_more_people_and_the_first_keep_their_invitations,
);

// --- arrangement helpers ---------------------------------------------------------------------

const PRACTICE_NAME: &str = "Hausarztpraxis Dr. Beispiel";
const PRACTICE_ADDRESS: &str = "Invalidenstraße 1, 10115 Berlin";
/// The practice of `approved_practice` is here.
const PRACTICE_POSTCODE: &str = "10115";

/// Someone on the waiting list.
struct Person {
    email: String,
    /// The self-service path `/manage/<token>`.
    manage: String,
    id: Uuid,
}

/// Signs a person up and confirms them; then the clock moves a minute, so whoever signs up
/// next stands behind them in line.
async fn person(app: &TestApp, prefix: &str, postcode: &str) -> Person {
    let email = unique_email(prefix);
    let manage = app.sign_up_confirmed(&email, postcode).await;
    let id = registrant_id(app, &manage).await;
    app.clock.advance(Duration::minutes(1));
    Person { email, manage, id }
}

/// A person who chose their own radius on the self-service page.
async fn person_with_radius(app: &TestApp, prefix: &str, postcode: &str, radius: &str) -> Person {
    let p = person(app, prefix, postcode).await;
    let response = app
        .post_form(
            &format!("{}/preferences", p.manage),
            &[("postcode", postcode), ("radius_km", radius)],
        )
        .await;
    assert_eq!(response.status(), 303, "preferences not saved");
    p
}

/// People in this order of sign-up (place in line), all at `postcode`.
async fn people(app: &TestApp, prefix: &str, n: usize, postcode: &str) -> Vec<Person> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(person(app, &format!("{prefix}{i}"), postcode).await);
    }
    out
}

/// What a test offer looks like; times are relative to the clock when it is posted.
struct Spec {
    doses: i64,
    starts_in: Duration,
    lasts: Duration,
    claim_minutes: i64,
    radius_km: i64,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            doses: 1,
            starts_in: Duration::hours(2),
            lasts: Duration::hours(2),
            claim_minutes: 15,
            radius_km: 10,
        }
    }
}

/// From now until 16:00 local time (14:00 UTC) on the test day.
fn until_four_pm(app: &TestApp) -> Duration {
    test_start() + Duration::hours(6) - app.clock.now()
}

fn principal(practice: &Practice) -> Principal {
    Principal::Practice {
        id: practice.id,
        status: PracticeStatus::Approved,
    }
}

async fn post_offer(app: &TestApp, practice: &Practice, spec: Spec) -> Offer {
    let now = app.clock.now();
    let starts = (now + spec.starts_in).to_rfc3339();
    let ends = (now + spec.starts_in + spec.lasts).to_rfc3339();
    let vaccine = vaccine(app);
    app.services
        .post_offer(
            &principal(practice),
            &OfferInput {
                vaccine: &vaccine,
                doses: NumberInput::Number(spec.doses),
                starts_at: TimeInput::Rfc3339(&starts),
                ends_at: TimeInput::Rfc3339(&ends),
                claim_minutes: NumberInput::Number(spec.claim_minutes),
                radius_km: RadiusInput::Number(spec.radius_km),
                note: "Bitte Impfpass mitbringen.",
            },
        )
        .await
        .unwrap()
}

/// Doses of the offer not taken, as the practice's offer page shows them.
async fn remaining(app: &TestApp, practice: &Practice, offer: Uuid) -> i32 {
    app.services
        .offer_view(&principal(practice), offer)
        .await
        .unwrap()
        .remaining
}

// --- the matcher, step by step ---------------------------------------------------------------

/// One wave step, which must find a due offer.
async fn wave(app: &TestApp) -> WaveOutcome {
    app.services
        .run_wave_once()
        .await
        .unwrap()
        .expect("an offer is due")
}

/// A wave step that must invite people to `offer`; returns (wave, invited, last_call,
/// overbooking).
async fn invited_wave(app: &TestApp, offer: Uuid) -> (i32, u32, bool, f64) {
    match wave(app).await {
        WaveOutcome::Invited {
            offer_id,
            wave,
            invited,
            last_call,
            overbooking,
        } if offer_id == offer => (wave, invited, last_call, overbooking),
        other => panic!("expected a wave for {offer}, got {other:?}"),
    }
}

/// The offer a wave step looked at.
fn offer_of(outcome: &WaveOutcome) -> Option<Uuid> {
    match outcome {
        WaveOutcome::Invited { offer_id, .. }
        | WaveOutcome::Filled { offer_id }
        | WaveOutcome::NoCandidates { offer_id } => Some(*offer_id),
        _ => None,
    }
}

/// Every wave step until no offer is due.
async fn all_due_waves(app: &TestApp) -> Vec<WaveOutcome> {
    let mut outcomes = Vec::new();
    while let Some(outcome) = app.services.run_wave_once().await.unwrap() {
        outcomes.push(outcome);
        assert!(
            outcomes.len() < 100,
            "the matcher never rests: {outcomes:?}"
        );
    }
    outcomes
}

/// Waits until every mail in the outbox was accepted by the SMTP server, so that a person
/// without a mail really got none.
async fn settle(app: &TestApp) {
    for _ in 0..500 {
        if app.services.store.outbox_depth().await.unwrap().0 == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the outbox did not drain");
}

// --- mails and pages -------------------------------------------------------------------------

fn is_invitation(mail: &CapturedMail) -> bool {
    mail.subject().contains("Impfdosis")
}

fn invitations(app: &TestApp, p: &Person) -> Vec<CapturedMail> {
    app.smtp
        .mails_for(&p.email)
        .into_iter()
        .filter(is_invitation)
        .collect()
}

/// The `n`th invitation mail of a person (1-based), waiting up to 10 s for it.
async fn nth_invitation(app: &TestApp, p: &Person, n: usize) -> CapturedMail {
    for _ in 0..500 {
        let mails = invitations(app, p);
        if mails.len() >= n {
            return mails[n - 1].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "expected invitation {n}, got {} invitation(s)",
        invitations(app, p).len()
    );
}

/// How many invitations each person got (call `settle` first).
fn invitation_counts(app: &TestApp, people: &[&Person]) -> Vec<usize> {
    people.iter().map(|p| invitations(app, p).len()).collect()
}

/// The path `/invitations/<token>` of the `n`th invitation of a person.
async fn invitation_link(app: &TestApp, p: &Person, n: usize) -> String {
    nth_invitation(app, p, n).await.link_path("/invitations/")
}

/// The newest mail of a person whose subject contains `marker`.
async fn mail_about(app: &TestApp, p: &Person, marker: &str) -> CapturedMail {
    app.smtp
        .wait_for_matching(&p.email, |m| m.subject().contains(marker))
        .await
}

/// Presses "Yes, I will come" on an invitation page.
async fn claim(app: &TestApp, invitation: &str) -> reqwest::Response {
    app.post_form(&format!("{invitation}/claim"), &[]).await
}

/// Claims and follows the redirect to the booking; returns the booking path (no query).
async fn claim_booked(app: &TestApp, invitation: &str) -> String {
    let response = claim(app, invitation).await;
    assert_eq!(response.status(), 303, "claim did not book");
    let to = location(&response);
    let path = to.split('?').next().unwrap().to_owned();
    assert!(path.starts_with("/bookings/"), "redirected to {to}");
    path
}

async fn page(app: &TestApp, path: &str) -> (u16, String) {
    let response = app.get(path).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The value of the first `attr="…"` in a page.
fn attribute(html: &str, attr: &str) -> Option<String> {
    let marker = format!("{attr}=\"");
    let start = html.find(&marker)? + marker.len();
    html[start..].split('"').next().map(str::to_owned)
}

/// The booking code on a booking page.
fn booking_code(html: &str) -> String {
    let marker = "id=\"booking-code\">";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no booking code on the page: {html}"))
        + marker.len();
    html[start..].split('<').next().unwrap().trim().to_owned()
}

/// XXXX-XXXX-XXXX in Crockford base32.
fn is_displayed_code(code: &str) -> bool {
    let groups: Vec<&str> = code.split('-').collect();
    groups.len() == 3
        && groups.iter().all(|g| {
            g.len() == 4
                && g.chars()
                    .all(|c| (c.is_ascii_digit() || c.is_ascii_uppercase()) && !"ILOU".contains(c))
        })
}

async fn manage_status(app: &TestApp, p: &Person) -> String {
    let (status, html) = page(app, &p.manage).await;
    assert_eq!(status, 200);
    let marker = "id=\"status\" data-status=\"";
    let start = html.find(marker).expect("no status on the page") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn local(app: &TestApp, t: DateTime<Utc>) -> String {
    t.with_timezone(&app.services.policy.timezone)
        .format("%d.%m.%Y %H:%M")
        .to_string()
}

fn content_type(part: &MessagePart<'_>) -> String {
    part.content_type()
        .map(|ct| {
            format!(
                "{}/{}",
                ct.c_type.to_ascii_lowercase(),
                ct.c_subtype
                    .as_deref()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            )
        })
        .unwrap_or_default()
}

/// RFC 5545 unfolding: a line break followed by a space continues the line.
fn unfold(ics: &str) -> String {
    ics.replace("\r\n ", "")
        .replace("\r\n\t", "")
        .replace("\n ", "")
        .replace("\n\t", "")
}

// --- the tests -------------------------------------------------------------------------------

async fn a_wave_invites_twice_the_doses_longest_waiting_first_within_reach_and_mails_each(
    backend: Backend,
) {
    // Arrange: the people first in line cannot be invited, each for another reason.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "wave").await;
    let neighbours = &app.services.neighbours;
    assert!(neighbours.distance_km(PRACTICE_POSTCODE, "20095").is_none());
    let d10243 = neighbours.distance_km(PRACTICE_POSTCODE, "10243").unwrap();
    assert!(d10243 > 1.0 && d10243 < 5.0, "10243 is {d10243} km away");
    let d12043 = neighbours.distance_km(PRACTICE_POSTCODE, "12043").unwrap();
    assert!(d12043 > 5.0 && d12043 < 10.0, "12043 is {d12043} km away");

    let hamburg = person_with_radius(&app, "hamburg", "20095", "50").await;
    let own_radius_too_small = person_with_radius(&app, "radius1", "10243", "1").await;
    let beyond_offer_radius = person_with_radius(&app, "beyond", "12043", "50").await;
    let paused = person(&app, "paused", "10115").await;
    assert_eq!(
        app.post_form(&format!("{}/pause", paused.manage), &[])
            .await
            .status(),
        303
    );
    let pending = unique_email("pending");
    app.sign_up(&pending, "10115").await;
    app.clock.advance(Duration::minutes(1));
    let mut line = Vec::new();
    for (i, postcode) in [
        "10178", "10243", "10115", "10119", "10117", "10115", "10115", "10117",
    ]
    .into_iter()
    .enumerate()
    {
        line.push(person(&app, &format!("inline{i}"), postcode).await);
    }

    // Act: the practice posts 3 doses by form, within 5 km; one wave step.
    let vaccine = vaccine(&app);
    let response = practice
        .browser
        .submit(
            "/portal/offers/new",
            "/portal/offers",
            &[
                ("vaccine", &vaccine),
                ("doses", "3"),
                ("starts_at", "2026-05-04T16:00"),
                ("ends_at", "2026-05-04T18:00"),
                ("claim_minutes", "15"),
                ("radius_km", "5"),
                ("note", "Bitte Impfpass mitbringen."),
            ],
        )
        .await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    let offer =
        Uuid::parse_str(location(&response).strip_prefix("/portal/offers/").unwrap()).unwrap();
    let waved_at = app.clock.now();
    let outcome = wave(&app).await;
    settle(&app).await;

    // Assert: ceil(3 × 2) = 6 invitations, to the six longest waiting who qualify.
    assert_eq!(
        outcome,
        WaveOutcome::Invited {
            offer_id: offer,
            wave: 1,
            invited: 6,
            last_call: false,
            overbooking: 2.0,
        }
    );
    let in_line: Vec<&Person> = line.iter().collect();
    assert_eq!(
        invitation_counts(&app, &in_line),
        vec![1, 1, 1, 1, 1, 1, 0, 0],
        "the six longest waiting, whatever their distance"
    );
    assert_eq!(
        invitation_counts(
            &app,
            &[
                &hamburg,
                &own_radius_too_small,
                &beyond_offer_radius,
                &paused
            ]
        ),
        vec![0, 0, 0, 0]
    );
    assert!(
        !app.smtp.mails_for(&pending).iter().any(is_invitation),
        "an unconfirmed sign-up is not invited"
    );

    let answer_by = local(&app, waved_at + Duration::minutes(15));
    let mut links = Vec::new();
    for p in &line[..6] {
        let mail = nth_invitation(&app, p, 1).await;
        let postcode = app
            .services
            .view(p.manage.trim_start_matches("/manage/"))
            .await
            .unwrap()
            .postcode;
        let distance = format!(
            "etwa {:.0} km",
            neighbours
                .distance_km(PRACTICE_POSTCODE, postcode.as_str())
                .unwrap()
        );
        assert_eq!(
            mail.subject(),
            format!("Impfdosis frei bei {PRACTICE_NAME}")
        );
        let text = mail.text();
        let html = mail.html();
        for expected in [
            PRACTICE_NAME,
            PRACTICE_ADDRESS,
            distance.as_str(),
            "04.05.2026 16:00–18:00",
            answer_by.as_str(),
            vaccine.as_str(),
            "Bitte Impfpass mitbringen.",
        ] {
            assert!(text.contains(expected), "text lacks {expected:?}: {text}");
            assert!(html.contains(expected), "HTML lacks {expected:?}: {html}");
        }
        let invitation = mail
            .links()
            .into_iter()
            .find(|l| l.contains("/invitations/"))
            .expect("an invitation link");
        assert!(invitation.starts_with(&format!("{}/invitations/", app.base)));
        assert!(
            html.contains(&format!("href=\"{invitation}\"")),
            "the button"
        );
        let manage = mail
            .links()
            .into_iter()
            .find(|l| l.contains("/manage/"))
            .expect("a self-service link");
        assert!(html.contains(&format!("href=\"{manage}\"")));
        let unsubscribe = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
        assert!(
            unsubscribe.starts_with(&format!("<{}/unsubscribe/", app.base))
                && unsubscribe.ends_with('>'),
            "{unsubscribe}"
        );
        assert!(!mail.message_id().is_empty());
        links.push(invitation);
    }
    links.sort();
    links.dedup();
    assert_eq!(links.len(), 6, "every invitation has its own link");
    app.stop().await;
}

async fn opening_an_invitation_changes_nothing_and_claiming_books_with_a_code_and_a_calendar_entry(
    backend: Backend,
) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "claim").await;
    let anna = person(&app, "anna", "10117").await;
    let offer = post_offer(
        &app,
        &practice,
        Spec {
            starts_in: until_four_pm(&app),
            ..Spec::default()
        },
    )
    .await;
    invited_wave(&app, offer.id).await;
    let invitation = invitation_link(&app, &anna, 1).await;
    let token = invitation.trim_start_matches("/invitations/");

    // Act: open the link twice, as a person and a mail scanner would.
    let (status, first) = page(&app, &invitation).await;
    let (_, second) = page(&app, &invitation).await;

    // Assert: the page offers the choice and nothing changed.
    assert_eq!(status, 200);
    assert_eq!(first, second);
    assert!(first.contains(&format!(
        "<form method=\"post\" action=\"{invitation}/claim\">"
    )));
    assert!(first.contains(&format!(
        "<form method=\"post\" action=\"{invitation}/decline\">"
    )));
    assert!(first.contains("id=\"remaining\">1<"));
    assert!(first.contains(PRACTICE_NAME) && first.contains(PRACTICE_ADDRESS));
    let view = app.services.invitation_view(token).await.unwrap();
    assert_eq!(view.invitation.status, InvitationStatus::Open);
    assert!(view.invitation.answered_at.is_none());
    assert_eq!(remaining(&app, &practice, offer.id).await, 1);

    // Act: claim.
    let response = claim(&app, &invitation).await;

    // Assert: 303 to the booking page, which shows the code.
    assert_eq!(response.status(), 303);
    let to = location(&response);
    assert!(to.starts_with("/bookings/"), "{to}");
    let booking = to.split('?').next().unwrap().to_owned();
    let (status, html) = page(&app, &to).await;
    assert_eq!(status, 200);
    let code = booking_code(&html);
    assert!(is_displayed_code(&code), "code {code:?}");
    assert!(html.contains(&format!("action=\"{booking}/cancel\"")));
    assert_eq!(remaining(&app, &practice, offer.id).await, 0);
    let (_, html) = page(&app, &invitation).await;
    assert_eq!(
        attribute(&html, "data-state").as_deref(),
        Some("claimed"),
        "{html}"
    );
    let decline = app.post_form(&format!("{invitation}/decline"), &[]).await;
    assert_eq!(decline.status(), 303);
    assert_eq!(
        location(&decline),
        invitation,
        "no 'declined' notice for a claimed invitation"
    );
    assert_eq!(
        remaining(&app, &practice, offer.id).await,
        0,
        "still booked"
    );

    // Assert: the confirmation mail.
    let mail = mail_about(&app, &anna, "Ihr Impftermin").await;
    assert_eq!(mail.subject(), "Ihr Impftermin: 04.05.2026 16:00–18:00");
    let parsed = MessageParser::default().parse(&mail.raw).unwrap();
    let root = parsed.root_part();
    assert_eq!(content_type(root), "multipart/mixed");
    let children: Vec<&MessagePart<'_>> = root
        .sub_parts()
        .expect("mixed has parts")
        .iter()
        .map(|id| parsed.part(*id).unwrap())
        .collect();
    assert_eq!(children.len(), 2, "the alternative and the calendar entry");
    assert_eq!(content_type(children[0]), "multipart/alternative");
    let alternatives: Vec<String> = children[0]
        .sub_parts()
        .unwrap()
        .iter()
        .map(|id| content_type(parsed.part(*id).unwrap()))
        .collect();
    assert_eq!(alternatives, vec!["text/plain", "text/html"]);
    let calendar = children[1];
    assert_eq!(content_type(calendar), "text/calendar");
    assert_eq!(calendar.attachment_name(), Some("termin.ics"));
    let text = mail.text();
    let html = mail.html();
    for expected in [
        code.as_str(),
        PRACTICE_NAME,
        PRACTICE_ADDRESS,
        "04.05.2026 16:00–18:00",
    ] {
        assert!(text.contains(expected), "text lacks {expected:?}: {text}");
        assert!(html.contains(expected), "HTML lacks {expected:?}");
    }
    assert_eq!(mail.link_path("/bookings/"), booking);
    assert!(mail.links().iter().any(|l| l.contains("/manage/")));
    assert!(mail.header("List-Unsubscribe").is_some());
    let message_id = mail.message_id();
    assert!(!message_id.is_empty(), "Message-ID");

    let ics = unfold(calendar.text_contents().expect("a text calendar"));
    let lines: Vec<&str> = ics.lines().map(str::trim_end).collect();
    assert_eq!(lines.first(), Some(&"BEGIN:VCALENDAR"));
    assert_eq!(
        lines.iter().rev().find(|l| !l.is_empty()),
        Some(&"END:VCALENDAR")
    );
    assert!(lines.contains(&"BEGIN:VEVENT") && lines.contains(&"END:VEVENT"));
    assert!(lines.contains(&"VERSION:2.0"), "{ics}");
    assert!(
        lines.contains(&"DTSTART:20260504T140000Z"),
        "start in UTC: {ics}"
    );
    assert!(
        lines.contains(&"DTEND:20260504T160000Z"),
        "end in UTC: {ics}"
    );
    let uid = lines
        .iter()
        .find_map(|l| l.strip_prefix("UID:"))
        .expect("a UID");
    assert_eq!(uid, message_id, "one id per booking for mail and calendar");
    assert!(
        lines.contains(&"LOCATION:Invalidenstraße 1\\, 10115 Berlin"),
        "{ics}"
    );
    assert!(ics.contains(&code), "the code in the description");

    // Assert: the mailed booking link works.
    let (status, html) = page(&app, &booking).await;
    assert_eq!(status, 200);
    assert_eq!(booking_code(&html), code);
    app.stop().await;
}

async fn claims_beyond_the_doses_see_all_taken_and_keep_their_place_in_line(backend: Backend) {
    // Arrange: one dose, two people invited.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "missed").await;
    let line = people(&app, "p", 5, "10115").await;
    let [first, second, third, fourth, fifth] = &line[..] else {
        unreachable!()
    };
    let offer = post_offer(&app, &practice, Spec::default()).await;
    let (_, invited, _, _) = invited_wave(&app, offer.id).await;
    assert_eq!(invited, 2);
    let first_link = invitation_link(&app, first, 1).await;
    let second_link = invitation_link(&app, second, 1).await;

    // Act: both click.
    claim_booked(&app, &first_link).await;
    let late = claim(&app, &second_link).await;

    // Assert: the later one reads that every dose is taken, and the dose count holds.
    assert_eq!(late.status(), 200);
    let html = late.text().await.unwrap();
    assert_eq!(attribute(&html, "data-state").as_deref(), Some("missed"));
    assert!(html.contains("Alle Dosen sind vergeben"), "{html}");
    assert!(!html.contains("/claim\""), "no claim button any more");
    let (_, html) = page(&app, &second_link).await;
    assert_eq!(attribute(&html, "data-state").as_deref(), Some("missed"));
    assert_eq!(remaining(&app, &practice, offer.id).await, 0);
    assert_eq!(
        app.services
            .offer_view(&principal(&practice), offer.id)
            .await
            .unwrap()
            .bookings
            .len(),
        1
    );
    assert_eq!(manage_status(&app, second).await, "active");

    // Act: a later offer (after the 30-minute throttle).
    app.clock.advance(Duration::minutes(31));
    let next = post_offer(&app, &practice, Spec::default()).await;
    let (_, invited, _, _) = invited_wave(&app, next.id).await;
    settle(&app).await;

    // Assert: the one who missed out is invited first, in their old place.
    assert_eq!(invited, 2);
    assert_eq!(
        invitation_counts(&app, &[first, second, third, fourth, fifth]),
        vec![1, 2, 1, 0, 0],
        "the booked person is skipped; the one who missed out comes before later sign-ups"
    );
    app.stop().await;
}

async fn a_claim_on_a_full_offer_answers_all_taken_without_queuing_mail_or_writing_tokens(
    backend: Backend,
) {
    // Arrange: one dose, two people invited, the first has booked it.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "storm").await;
    let line = people(&app, "s", 2, "10115").await;
    let offer = post_offer(&app, &practice, Spec::default()).await;
    let (_, invited, _, _) = invited_wave(&app, offer.id).await;
    assert_eq!(invited, 2);
    let first_link = invitation_link(&app, &line[0], 1).await;
    let second_link = invitation_link(&app, &line[1], 1).await;
    claim_booked(&app, &first_link).await;
    settle(&app).await;
    let outbox = app.db.count("outbox").await;
    let tokens = app.db.count("registrant_tokens").await;
    let mails = app.smtp.count_for(&line[1].email);

    // Act: the late one claims (twice, as a storm would).
    let token = second_link.trim_start_matches("/invitations/");
    let (outcome, booking) = app.services.claim(token).await.unwrap();
    let again = claim(&app, &second_link).await;

    // Assert: all taken, the invitation answered as missed, nothing queued or written.
    assert_eq!(outcome, restdose_store::ClaimOutcome::AllTaken);
    assert!(booking.is_none());
    assert_eq!(again.status(), 200);
    let html = again.text().await.unwrap();
    assert_eq!(attribute(&html, "data-state").as_deref(), Some("missed"));
    assert_eq!(app.db.count("outbox").await, outbox, "no mail queued");
    assert_eq!(
        app.db.count("registrant_tokens").await,
        tokens,
        "no token written"
    );
    settle(&app).await;
    assert_eq!(app.smtp.count_for(&line[1].email), mails);
    assert_eq!(remaining(&app, &practice, offer.id).await, 0);
    app.stop().await;
}

async fn a_person_who_declines_is_invited_again_ahead_of_people_who_signed_up_later(
    backend: Backend,
) {
    // Arrange: one dose; the first two in line are invited.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "decline").await;
    let line = people(&app, "p", 5, "10117").await;
    let [decliner, taker, third, fourth, fifth] = &line[..] else {
        unreachable!()
    };
    let offer = post_offer(&app, &practice, Spec::default()).await;
    invited_wave(&app, offer.id).await;
    let declined = invitation_link(&app, decliner, 1).await;

    // Act: the first declines, the second takes the dose.
    let response = app.post_form(&format!("{declined}/decline"), &[]).await;
    claim_booked(&app, &invitation_link(&app, taker, 1).await).await;

    // Assert: the page says so; claiming afterwards does not book.
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{declined}?notice=declined"));
    let (_, html) = page(&app, &location(&response)).await;
    assert_eq!(attribute(&html, "data-state").as_deref(), Some("declined"));
    assert!(html.contains("Sie haben abgesagt"));
    let again = claim(&app, &declined).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        attribute(&again.text().await.unwrap(), "data-state").as_deref(),
        Some("declined")
    );
    assert_eq!(manage_status(&app, decliner).await, "active");

    // Act: a later offer, once the throttle has passed.
    app.clock.advance(Duration::minutes(31));
    let next = post_offer(&app, &practice, Spec::default()).await;
    let (_, invited, _, _) = invited_wave(&app, next.id).await;
    settle(&app).await;

    // Assert: the decliner is invited again, before anyone who signed up after them.
    assert_eq!(invited, 2);
    assert_eq!(
        invitation_counts(&app, &[decliner, taker, third, fourth, fifth]),
        vec![2, 1, 1, 0, 0]
    );
    app.stop().await;
}

async fn unanswered_invitations_expire_and_the_next_wave_goes_to_the_next_people_in_line(
    backend: Backend,
) {
    // Arrange: one dose; a first wave nobody answers.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "expiry").await;
    let line = people(&app, "p", 7, "10119").await;
    let offer = post_offer(&app, &practice, Spec::default()).await;
    let (_, first_wave, _, _) = invited_wave(&app, offer.id).await;
    assert_eq!(first_wave, 2);
    let first_link = invitation_link(&app, &line[0], 1).await;

    // Assert: within the answer time (2/3 of the 15-minute claim window) the offer waits.
    app.clock.advance(Duration::minutes(9));
    assert_eq!(
        app.services
            .expire_invitations_once()
            .await
            .unwrap()
            .expired,
        0
    );
    assert_eq!(app.services.run_wave_once().await.unwrap(), None);

    // Act: the claim window passes.
    app.clock.advance(Duration::minutes(7));
    let report = app.services.expire_invitations_once().await.unwrap();
    let (wave_number, second_wave, _, _) = invited_wave(&app, offer.id).await;
    settle(&app).await;

    // Assert: both expired; wave 2 goes to the next people, not again to the first two.
    assert_eq!(report.expired, 2);
    assert_eq!(report.paused, 0);
    assert_eq!(wave_number, 2);
    assert!(second_wave >= 2, "{second_wave}");
    let second_wave = second_wave as usize;
    let everyone: Vec<&Person> = line.iter().collect();
    let mut expected = vec![1, 1];
    expected.extend(std::iter::repeat_n(1, second_wave));
    expected.extend(std::iter::repeat_n(0, line.len() - 2 - second_wave));
    assert_eq!(invitation_counts(&app, &everyone), expected);

    let (_, html) = page(&app, &first_link).await;
    assert_eq!(attribute(&html, "data-state").as_deref(), Some("expired"));
    let late = claim(&app, &first_link).await;
    assert_eq!(late.status(), 200);
    assert_eq!(
        attribute(&late.text().await.unwrap(), "data-state").as_deref(),
        Some("expired")
    );
    assert_eq!(remaining(&app, &practice, offer.id).await, 1);
    app.stop().await;
}

async fn a_wave_nobody_claimed_makes_the_next_wave_of_the_offer_larger(backend: Backend) {
    // Arrange
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "grow").await;
    people(&app, "p", 8, "10115").await;
    let offer = post_offer(&app, &practice, Spec::default()).await;
    let (_, first, _, first_overbooking) = invited_wave(&app, offer.id).await;

    // Act: nobody answers; the window passes.
    app.clock.advance(Duration::minutes(16));
    app.services.expire_invitations_once().await.unwrap();
    let (_, second, _, second_overbooking) = invited_wave(&app, offer.id).await;

    // Assert: the factor learnt that people do not answer; the same one dose gets more people.
    assert_eq!(first_overbooking, 2.0);
    assert_eq!(first, 2);
    assert!(
        second_overbooking > first_overbooking && second_overbooking <= 10.0,
        "{second_overbooking}"
    );
    assert_eq!(
        second,
        second_overbooking.ceil() as u32,
        "ceil(1 × overbooking)"
    );
    assert!(second > first);
    app.stop().await;
}

async fn waves_everyone_claimed_make_later_offers_of_the_area_overbook_less_down_towards_one(
    backend: Backend,
) {
    // Arrange: people in Berlin and in Hamburg, a practice in each.
    let app = TestApp::spawn(backend).await;
    let berlin = approved_practice(&app, "berlin").await;
    let hamburg =
        approved_practice_at(&app, "hamburg", "Mönckebergstraße 1", "20095", "Hamburg").await;
    let berliners = people(&app, "b", 8, "10115").await;
    let hamburgers = people(&app, "h", 3, "20095").await;

    // Act: three Berlin offers of one dose in turn; everyone invited claims (the practice adds
    // a dose for each invited person beyond the first before anyone answers).
    let mut factors = Vec::new();
    let mut next = berliners.iter();
    for _ in 0..3 {
        let offer = post_offer(&app, &berlin, Spec::default()).await;
        let (_, invited, _, overbooking) = invited_wave(&app, offer.id).await;
        factors.push(overbooking);
        assert_eq!(invited, overbooking.ceil() as u32);
        if invited > 1 {
            app.services
                .add_doses(
                    &principal(&berlin),
                    offer.id,
                    NumberInput::Number(i64::from(invited) - 1),
                )
                .await
                .unwrap();
        }
        for _ in 0..invited {
            let p = next.next().expect("enough people");
            claim_booked(&app, &invitation_link(&app, p, 1).await).await;
        }
    }
    let hamburg_offer = post_offer(&app, &hamburg, Spec::default()).await;
    let (_, hamburg_invited, _, hamburg_factor) = invited_wave(&app, hamburg_offer.id).await;

    // Assert: each offer overbooks less than the one before, never below 1; another area is
    // not affected.
    assert_eq!(factors[0], 2.0);
    assert!(
        factors[0] > factors[1] && factors[1] > factors[2] && factors[2] >= 1.0,
        "{factors:?}"
    );
    assert_eq!(hamburg_factor, 2.0);
    assert_eq!(hamburg_invited, 2);
    settle(&app).await;
    assert_eq!(
        invitation_counts(&app, &hamburgers.iter().collect::<Vec<_>>()),
        vec![1, 1, 0]
    );
    app.stop().await;
}

async fn an_offer_starting_within_one_claim_window_sends_a_three_times_larger_last_call(
    backend: Backend,
) {
    // Arrange: an opened vial, the appointment in 10 minutes, claims take 15.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "lastcall").await;
    let line = people(&app, "p", 8, "10178").await;
    let offer = post_offer(
        &app,
        &practice,
        Spec {
            starts_in: Duration::minutes(10),
            ..Spec::default()
        },
    )
    .await;

    // Act
    let (wave_number, invited, last_call, overbooking) = invited_wave(&app, offer.id).await;
    settle(&app).await;

    // Assert: ceil(1 × 2 × 3) = 6 people, told it is a last call.
    assert_eq!(wave_number, 1);
    assert!(last_call);
    assert_eq!(overbooking, 2.0);
    assert_eq!(invited, 6);
    assert_eq!(
        invitation_counts(&app, &line.iter().collect::<Vec<_>>()),
        vec![1, 1, 1, 1, 1, 1, 0, 0]
    );
    let mail = nth_invitation(&app, &line[0], 1).await;
    assert_eq!(
        mail.subject(),
        format!("Letzter Aufruf: Impfdosis heute bei {PRACTICE_NAME}")
    );
    app.stop().await;
}

async fn three_unanswered_invitations_in_a_row_pause_the_person_until_they_resume(
    backend: Backend,
) {
    // Arrange: someone who never answers, invited to three offers in a row.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "silence").await;
    let silent = person(&app, "silent", "10115").await;
    let mut reports = Vec::new();
    for n in 1..=3 {
        let offer = post_offer(&app, &practice, Spec::default()).await;
        let outcomes = all_due_waves(&app).await;
        assert!(
            outcomes.iter().any(|o| matches!(o,
                WaveOutcome::Invited { offer_id, invited: 1, .. } if *offer_id == offer.id)),
            "{outcomes:?}"
        );
        nth_invitation(&app, &silent, n).await;
        // Act: the claim window passes unanswered; later the throttle too.
        app.clock.advance(Duration::minutes(16));
        reports.push(app.services.expire_invitations_once().await.unwrap());
        app.clock.advance(Duration::minutes(15));
    }

    // Assert: paused after the third, and told so with a link back.
    assert_eq!(
        reports
            .iter()
            .map(|r| (r.expired, r.paused))
            .collect::<Vec<_>>(),
        vec![(1, 0), (1, 0), (1, 1)]
    );
    assert_eq!(manage_status(&app, &silent).await, "paused");
    let mail = mail_about(&app, &silent, "pausiert").await;
    assert_eq!(mail.subject(), "Wir haben Ihre Angebote pausiert");
    assert!(mail.text().contains("drei Angebote"));
    assert!(mail.header("List-Unsubscribe").is_some());
    let manage = mail.link_path("/manage/");
    assert!(mail.html().contains(&format!("{}{manage}", app.base)));

    // Act: a fourth offer.
    let fourth = post_offer(&app, &practice, Spec::default()).await;
    let outcomes = all_due_waves(&app).await;

    // Assert: nobody to invite.
    assert!(
        outcomes.contains(&WaveOutcome::NoCandidates {
            offer_id: fourth.id
        }),
        "{outcomes:?}"
    );
    settle(&app).await;
    assert_eq!(invitations(&app, &silent).len(), 3);

    // Act: they resume on the self-service page from the pause mail.
    let response = app.post_form(&format!("{manage}/resume"), &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{manage}?notice=resumed"));
    app.clock.advance(Duration::minutes(5));
    let outcomes = all_due_waves(&app).await;

    // Assert: invited again.
    assert!(
        outcomes.iter().any(|o| matches!(o,
            WaveOutcome::Invited { offer_id, invited: 1, .. } if *offer_id == fourth.id)),
        "{outcomes:?}"
    );
    nth_invitation(&app, &silent, 4).await;
    assert_eq!(manage_status(&app, &silent).await, "active");
    app.stop().await;
}

async fn a_booking_cancelled_by_the_person_hands_the_dose_to_someone_new_at_once(backend: Backend) {
    // Arrange: one dose, booked by the first in line.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "handback").await;
    let line = people(&app, "p", 6, "10115").await;
    let offer = post_offer(&app, &practice, Spec::default()).await;
    invited_wave(&app, offer.id).await;
    let booking = claim_booked(&app, &invitation_link(&app, &line[0], 1).await).await;
    assert_eq!(remaining(&app, &practice, offer.id).await, 0);
    assert_eq!(
        app.services.run_wave_once().await.unwrap(),
        None,
        "the wave's time is not up"
    );

    // Act: the person cancels on the booking page.
    let response = app.post_form(&format!("{booking}/cancel"), &[]).await;

    // Assert: the page says so and the dose is free again.
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{booking}?notice=cancelled"));
    let (_, html) = page(&app, &location(&response)).await;
    assert_eq!(
        attribute(&html, "data-status").as_deref(),
        Some("cancelled")
    );
    assert!(!html.contains("/cancel\""), "nothing left to cancel");
    assert_eq!(remaining(&app, &practice, offer.id).await, 1);
    let again = app.post_form(&format!("{booking}/cancel"), &[]).await;
    assert_eq!(again.status(), 303);
    assert_eq!(location(&again), booking, "no second 'cancelled' notice");
    assert_eq!(
        remaining(&app, &practice, offer.id).await,
        1,
        "a second cancel frees nothing"
    );

    // Act: the matcher, at the same moment.
    let (wave_number, invited, _, _) = invited_wave(&app, offer.id).await;
    settle(&app).await;

    // Assert: the next people in line are invited right away; the canceller is not again.
    assert_eq!(wave_number, 2);
    let everyone: Vec<&Person> = line.iter().collect();
    let mut expected = vec![1, 1];
    expected.extend(std::iter::repeat_n(1, invited as usize));
    expected.extend(std::iter::repeat_n(0, line.len() - 2 - invited as usize));
    assert_eq!(invitation_counts(&app, &everyone), expected);
    claim_booked(&app, &invitation_link(&app, &line[2], 1).await).await;
    assert_eq!(remaining(&app, &practice, offer.id).await, 0);
    app.stop().await;
}

async fn a_practice_cancelling_the_offer_tells_everyone_who_booked_and_keeps_them_on_the_list(
    backend: Backend,
) {
    // Arrange: two doses booked, two invitations still open.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "called-off").await;
    let line = people(&app, "p", 4, "10117").await;
    let offer = post_offer(
        &app,
        &practice,
        Spec {
            doses: 2,
            starts_in: until_four_pm(&app),
            ..Spec::default()
        },
    )
    .await;
    let (_, invited, _, _) = invited_wave(&app, offer.id).await;
    assert_eq!(invited, 4);
    let first = claim_booked(&app, &invitation_link(&app, &line[0], 1).await).await;
    let second = claim_booked(&app, &invitation_link(&app, &line[1], 1).await).await;
    let open = invitation_link(&app, &line[2], 1).await;

    // Act: the practice calls the offer off on its offer page.
    let page_path = format!("/portal/offers/{}", offer.id);
    let response = practice
        .browser
        .submit(&page_path, &format!("{page_path}/cancel"), &[])
        .await;

    // Assert: both who booked are told; their booking pages say cancelled.
    assert_eq!(response.status(), 303);
    for (p, booking) in [(&line[0], &first), (&line[1], &second)] {
        let mail = mail_about(&app, p, "Abgesagt").await;
        assert_eq!(mail.subject(), "Abgesagt: Ihr Impftermin");
        assert!(mail.text().contains("04.05.2026 16:00–18:00"));
        assert!(mail.text().contains(PRACTICE_NAME));
        assert!(mail.links().iter().any(|l| l.contains("/manage/")));
        let (status, html) = page(&app, booking).await;
        assert_eq!(status, 200);
        assert_eq!(
            attribute(&html, "data-status").as_deref(),
            Some("cancelled")
        );
        assert!(!html.contains("id=\"booking-code\""));
        assert_eq!(manage_status(&app, p).await, "active");
    }
    // The open invitation says the practice ended the offer.
    let (_, html) = page(&app, &open).await;
    assert_eq!(attribute(&html, "data-state").as_deref(), Some("ended"));
    assert!(
        !html.contains("/claim\""),
        "no claim button for a cancelled offer"
    );
    let late = claim(&app, &open).await;
    assert_eq!(late.status(), 200);
    assert_eq!(
        attribute(&late.text().await.unwrap(), "data-state").as_deref(),
        Some("ended")
    );
    settle(&app).await;
    assert!(
        app.smtp
            .mails_for(&line[2].email)
            .iter()
            .all(|m| !m.subject().contains("Abgesagt")),
        "only those who booked are told"
    );

    // Act: later, the cancelled offer and a new one.
    app.clock.advance(Duration::minutes(31));
    app.services.expire_invitations_once().await.unwrap();
    let next = post_offer(
        &app,
        &practice,
        Spec {
            doses: 2,
            ..Spec::default()
        },
    )
    .await;
    let outcomes = all_due_waves(&app).await;
    settle(&app).await;

    // Assert: the cancelled offer sends nothing; both are invited by the new one.
    assert!(
        !outcomes.is_empty() && outcomes.iter().all(|o| offer_of(o) == Some(next.id)),
        "{outcomes:?}"
    );
    assert_eq!(invitations(&app, &line[0]).len(), 2);
    assert_eq!(invitations(&app, &line[1]).len(), 2);
    app.stop().await;
}

async fn a_filled_offer_sends_no_more_waves(backend: Backend) {
    // Arrange: the one dose is taken; more people are waiting.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "filled").await;
    let line = people(&app, "p", 5, "10115").await;
    let offer = post_offer(&app, &practice, Spec::default()).await;
    invited_wave(&app, offer.id).await;
    claim_booked(&app, &invitation_link(&app, &line[1], 1).await).await;

    // Act: the wave's time is up.
    app.clock.advance(Duration::minutes(16));
    app.services.expire_invitations_once().await.unwrap();
    let outcome = app.services.run_wave_once().await.unwrap();
    app.clock.advance(Duration::minutes(16));
    let later = app.services.run_wave_once().await.unwrap();
    settle(&app).await;

    // Assert
    assert_eq!(outcome, Some(WaveOutcome::Filled { offer_id: offer.id }));
    assert_eq!(later, None);
    assert_eq!(
        invitation_counts(&app, &line.iter().collect::<Vec<_>>()),
        vec![1, 1, 0, 0, 0]
    );
    app.stop().await;
}

async fn doses_added_to_a_filled_offer_are_offered_to_the_next_people_in_line(backend: Backend) {
    // Arrange: the one dose is taken and the matcher has parked the full offer.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "refill").await;
    let line = people(&app, "p", 6, "10115").await;
    let offer = post_offer(&app, &practice, Spec::default()).await;
    invited_wave(&app, offer.id).await;
    claim_booked(&app, &invitation_link(&app, &line[0], 1).await).await;
    app.clock.advance(Duration::minutes(16));
    app.services.expire_invitations_once().await.unwrap();
    assert_eq!(
        app.services.run_wave_once().await.unwrap(),
        Some(WaveOutcome::Filled { offer_id: offer.id })
    );

    // Act: the practice adds a dose on its offer page.
    let page_path = format!("/portal/offers/{}", offer.id);
    let response = practice
        .browser
        .submit(&page_path, &format!("{page_path}/doses"), &[("doses", "1")])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(remaining(&app, &practice, offer.id).await, 1);
    app.clock.advance(Duration::minutes(1));
    let outcome = app.services.run_wave_once().await.unwrap();
    settle(&app).await;

    // Assert: the new dose goes out to the next people in line.
    let Some(WaveOutcome::Invited {
        offer_id,
        wave: 2,
        invited,
        ..
    }) = outcome
    else {
        panic!("the added dose is never offered: {outcome:?}");
    };
    assert_eq!(offer_id, offer.id);
    let mut expected = vec![1, 1];
    expected.extend(std::iter::repeat_n(1, invited as usize));
    expected.extend(std::iter::repeat_n(0, line.len() - 2 - invited as usize));
    assert_eq!(
        invitation_counts(&app, &line.iter().collect::<Vec<_>>()),
        expected
    );
    app.stop().await;
}

async fn an_offer_whose_window_ended_sends_no_more_waves(backend: Backend) {
    // Arrange: a short appointment window; nobody answers the first (last-call) wave.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "ended").await;
    let line = people(&app, "p", 10, "10115").await;
    let offer = post_offer(
        &app,
        &practice,
        Spec {
            starts_in: Duration::minutes(5),
            lasts: Duration::minutes(30),
            ..Spec::default()
        },
    )
    .await;
    let (_, invited, _, _) = invited_wave(&app, offer.id).await;

    // Act: the window ends.
    app.clock.advance(Duration::minutes(36));
    app.services.expire_invitations_once().await.unwrap();
    let outcome = app.services.run_wave_once().await.unwrap();
    settle(&app).await;

    // Assert: no wave, nobody else invited, the dose still free.
    assert_eq!(outcome, None);
    let counts = invitation_counts(&app, &line.iter().collect::<Vec<_>>());
    assert_eq!(counts.iter().sum::<usize>(), invited as usize);
    assert_eq!(counts[line.len() - 1], 0);
    assert_eq!(remaining(&app, &practice, offer.id).await, 1);
    app.stop().await;
}

async fn a_closed_offer_sends_no_more_waves(backend: Backend) {
    // Arrange: a wave for two doses, then the practice closes the offer early.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "closed").await;
    let line = people(&app, "p", 6, "10115").await;
    let offer = post_offer(
        &app,
        &practice,
        Spec {
            doses: 2,
            ..Spec::default()
        },
    )
    .await;
    invited_wave(&app, offer.id).await;
    app.services
        .close_offer(&principal(&practice), offer.id)
        .await
        .unwrap();

    // Act: the wave's time is up.
    app.clock.advance(Duration::minutes(16));
    app.services.expire_invitations_once().await.unwrap();
    let outcome = app.services.run_wave_once().await.unwrap();
    settle(&app).await;

    // Assert
    assert_eq!(outcome, None);
    assert_eq!(
        invitation_counts(&app, &line.iter().collect::<Vec<_>>()),
        vec![1, 1, 1, 1, 0, 0]
    );
    app.stop().await;
}

async fn a_person_with_a_booking_is_not_invited_and_cannot_claim_a_second_dose(backend: Backend) {
    // Arrange: the first in line books a dose.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "onebooking").await;
    let line = people(&app, "p", 5, "10115").await;
    let [booked, second, third, fourth, fifth] = &line[..] else {
        unreachable!()
    };
    let first_offer = post_offer(&app, &practice, Spec::default()).await;
    invited_wave(&app, first_offer.id).await;
    claim_booked(&app, &invitation_link(&app, booked, 1).await).await;

    // Act: another offer, after the throttle.
    app.clock.advance(Duration::minutes(31));
    app.services.expire_invitations_once().await.unwrap();
    let next = post_offer(&app, &practice, Spec::default()).await;
    let (_, invited, _, _) = invited_wave(&app, next.id).await;
    settle(&app).await;

    // Assert: the person with a booking is skipped although first in line.
    assert_eq!(invited, 2);
    assert_eq!(
        invitation_counts(&app, &[booked, second, third, fourth, fifth]),
        vec![1, 2, 1, 0, 0]
    );

    // Arrange: the third holds the new invitation when an appointment elsewhere is booked for
    // them (straight in the store: the matcher never lets one person hold an open invitation
    // and a booking at once, so only a booking made outside it gets here).
    let elsewhere = approved_practice_at(&app, "elsewhere", "Torstraße 1", "10119", "Berlin").await;
    let other_offer = post_offer(&app, &elsewhere, Spec::default()).await;
    book(&app, other_offer.id, Some(third.id)).await;
    let held = invitation_link(&app, third, 1).await;

    // Act
    let response = claim(&app, &held).await;

    // Assert: "you already hold an appointment"; the dose stays free.
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert_eq!(
        attribute(&html, "data-state").as_deref(),
        Some("booked_elsewhere")
    );
    assert!(html.contains("Sie haben bereits einen Termin"), "{html}");
    assert_eq!(remaining(&app, &practice, next.id).await, 1);
    app.stop().await;
}

/// Issue 13, reproduction 1: 24 people near one practice, an offer of 3 doses invites 6 and the
/// first 3 book. The other 3 invitations end at once: their pages say the doses are gone, the
/// next offer posted right after invites them first (not people 7–12), and their silence on the
/// first offer never counts towards a pause.
async fn a_filled_offer_frees_the_people_it_invited_for_the_next_offer_at_once(backend: Backend) {
    // Arrange: 24 in line; an offer of 3 doses, 6 invited; the first 3 book.
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "fill").await;
    let line = people(&app, "p", 24, "10115").await;
    let first = post_offer(
        &app,
        &practice,
        Spec {
            doses: 3,
            ..Spec::default()
        },
    )
    .await;
    let (_, invited, _, _) = invited_wave(&app, first.id).await;
    assert_eq!(invited, 6);
    let mut links = Vec::new();
    for p in &line[..6] {
        links.push(invitation_link(&app, p, 1).await);
    }
    for link in &links[..3] {
        claim_booked(&app, link).await;
    }

    // Assert: the other three invitations say the doses are gone, without an answer button.
    for link in &links[3..] {
        let (status, html) = page(&app, link).await;
        assert_eq!(status, 200);
        assert_eq!(attribute(&html, "data-state").as_deref(), Some("missed"));
        assert!(!html.contains("/claim\""), "no claim button any more");
    }

    // Act: a second offer of 3 doses, posted a minute later (well within the throttle).
    app.clock.advance(Duration::minutes(1));
    let second = post_offer(
        &app,
        &practice,
        Spec {
            doses: 3,
            ..Spec::default()
        },
    )
    .await;
    let (_, invited, _, _) = invited_wave(&app, second.id).await;
    settle(&app).await;

    // Assert: people 4–6 are invited first, then the next in line; nobody further down.
    let counts = invitation_counts(&app, &line.iter().collect::<Vec<_>>());
    let expected: Vec<usize> = (0..24)
        .map(|i| match i {
            0..3 => 1,
            3..6 => 2,
            i if i < 6 + invited as usize - 3 => 1,
            _ => 0,
        })
        .collect();
    assert_eq!(counts, expected, "{invited} invited by the second offer");

    // Act: the second offer's claim window passes unanswered, and a third and fourth offer
    // pass the same way after the throttle.
    for _ in 0..2 {
        app.clock.advance(Duration::minutes(31));
        app.services.expire_invitations_once().await.unwrap();
        let next = post_offer(&app, &practice, Spec::default()).await;
        invited_wave(&app, next.id).await;
    }
    app.clock.advance(Duration::minutes(31));
    app.services.expire_invitations_once().await.unwrap();

    // Assert: person 4 ignored every later offer it got, but the withdrawn first invitation is
    // no strike: whoever was paused had three real silences.
    settle(&app).await;
    for p in &line[3..6] {
        let silences = invitations(&app, p).len() - 1;
        let status = manage_status(&app, p).await;
        assert_eq!(
            status == "paused",
            silences >= 3,
            "{silences} unanswered after the withdrawn one, status {status}"
        );
    }
    app.stop().await;
}

/// Issue 13, reproduction 2: overbooking learns both ways. Three one-dose offers in turn, each
/// inviting two people who both click: one books, the other comes too late. Both wanted the
/// dose, so each later offer overbooks less (before, the late click counted as a refusal and
/// the factor could never fall below 2).
async fn late_clicks_on_one_dose_offers_teach_the_matcher_to_overbook_less(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "learn").await;
    let line = people(&app, "l", 12, "10115").await;
    let mut seen = vec![0; line.len()];
    let mut factors = Vec::new();
    for _ in 0..3 {
        let offer = post_offer(&app, &practice, Spec::default()).await;
        let (_, invited, _, overbooking) = invited_wave(&app, offer.id).await;
        factors.push(overbooking);
        settle(&app).await;
        // Those who got a new invitation, in line order (who came too late before is first).
        let mut links = Vec::new();
        for (p, seen) in line.iter().zip(seen.iter_mut()) {
            let now = invitations(&app, p).len();
            if now > *seen {
                *seen = now;
                links.push(invitation_link(&app, p, now).await);
            }
        }
        assert_eq!(links.len(), invited as usize);
        claim_booked(&app, &links[0]).await;
        for late in &links[1..] {
            let response = claim(&app, late).await;
            let html = response.text().await.unwrap();
            assert_eq!(attribute(&html, "data-state").as_deref(), Some("missed"));
        }
        app.clock.advance(Duration::minutes(1));
    }
    assert_eq!(factors[0], 2.0);
    assert!(
        factors[0] > factors[1] && factors[1] > factors[2] && factors[2] >= 1.0,
        "{factors:?}"
    );
    app.stop().await;
}

/// Waves come every answer time (2/3 of the claim window by default): people who have not
/// answered by then are unlikely to, so the offer asks more people, while the first keep their
/// invitations until their own window ends (first come, first served).
async fn after_the_answer_time_the_offer_asks_more_people_and_the_first_keep_their_invitations(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "answer-time").await;
    let line = people(&app, "a", 6, "10119").await;
    let offer = post_offer(&app, &practice, Spec::default()).await;
    let (_, first_wave, _, _) = invited_wave(&app, offer.id).await;
    assert_eq!(first_wave, 2);
    let first_link = invitation_link(&app, &line[0], 1).await;

    // Nine minutes on, within the answer time: nothing due.
    app.clock.advance(Duration::minutes(9));
    assert_eq!(app.services.run_wave_once().await.unwrap(), None);

    // Eleven minutes on (past 0.67 × 15 min): a top-up wave to the next people; the first
    // invitations are still open.
    app.clock.advance(Duration::minutes(2));
    let (wave, topped_up, _, _) = invited_wave(&app, offer.id).await;
    assert_eq!(wave, 2);
    assert!(topped_up >= 1, "{topped_up}");
    settle(&app).await;
    let counts = invitation_counts(&app, &line.iter().collect::<Vec<_>>());
    assert_eq!(&counts[..2], &[1, 1]);
    assert_eq!(counts[2..].iter().sum::<usize>(), topped_up as usize);
    let (_, html) = page(&app, &first_link).await;
    assert!(
        html.contains("/claim\""),
        "the first invitation can still be claimed"
    );

    // The first person still gets the dose with their original link.
    claim_booked(&app, &first_link).await;
    assert_eq!(remaining(&app, &practice, offer.id).await, 0);
    app.stop().await;
}
