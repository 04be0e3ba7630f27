//! Open statistics end to end, on both backends (docs/statistics.md): a scenario is seeded
//! through the real app (sign-ups in two areas, a practice, an offer, claims, check-ins, a
//! no-show, an unused dose), purged 24 hours after the appointment, and then the public page,
//! the CSV, the JSON, a person's odds and the practice's figures show exactly the expected
//! numbers — from the anonymous counters alone, with counts under 10 suppressed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Duration;
use restdose_core::matcher::WaveOutcome;
use restdose_domain::Clock;
use restdose_tests::portal::{
    PASSWORD, approved_practice, location, logged_in, post_offer, registrant_id,
};
use restdose_tests::{Backend, TestApp, on_both_backends, unique_email};
use uuid::Uuid;

on_both_backends!(statistics_survive_the_purge_and_suppress_small_cells,);

struct Person {
    email: String,
    manage: String,
    id: Uuid,
}

async fn person(app: &TestApp, postcode: &str) -> Person {
    let email = unique_email("stats");
    let before = app.smtp.count_for(&email);
    let response = app
        .post_json(
            "/api/v1/registrations",
            &serde_json::json!({ "email": email, "postcode": postcode }),
        )
        .await;
    assert_eq!(response.status(), 202);
    let mail = app.smtp.wait_for(&email, before + 1).await.pop().unwrap();
    let response = app
        .client
        .post(app.url(&mail.link_path("/confirm/")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let manage = mail.link_path("/manage/");
    let id = registrant_id(app, &manage).await;
    app.clock.advance(Duration::minutes(1));
    Person { email, manage, id }
}

async fn text(app: &TestApp, path: &str) -> String {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

/// The text of the element with this id (up to the next tag).
fn by_id(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {html}"))
        + marker.len();
    html[start..].split('<').next().unwrap().trim().to_owned()
}

async fn statistics_survive_the_purge_and_suppress_small_cells(backend: Backend) {
    // Arrange: 21 people in Berlin (area 10, next to the practice), 3 in Munich (area 80).
    let app = TestApp::spawn(backend).await;
    let practice = approved_practice(&app, "stats").await;
    let mut berlin = Vec::new();
    for i in 0..21 {
        let code = ["10115", "10117", "10119"][i % 3];
        berlin.push(person(&app, code).await);
    }
    for _ in 0..3 {
        person(&app, "80331").await;
    }
    // Before any purge: waiting is live, the counters are empty.
    let json: serde_json::Value = app.get("/api/v1/statistics").await.json().await.unwrap();
    let rows = json["rows"].as_array().unwrap_or_else(|| panic!("{json}"));
    assert!(
        rows.iter()
            .any(|r| r["series"] == "waiting_by_area" && r["key"] == "10" && r["value"] == 21),
        "{json}"
    );

    // Act: an offer of 10 doses; the invited people claim until it is full.
    let posted_at = app.clock.now();
    let offer = post_offer(&app, &practice.browser).await;
    let mut invited_per_wave: Vec<(i32, u64)> = Vec::new();
    let mut claimed: Vec<(usize, String)> = Vec::new();
    let mut last_claim_at = posted_at;
    while claimed.len() < 10 {
        let outcome = app.services.run_wave_once().await.unwrap();
        if let Some(WaveOutcome::Invited { invited, wave, .. }) = outcome {
            invited_per_wave.push((wave, u64::from(invited)));
        }
        for (i, p) in berlin.iter().enumerate() {
            if claimed.len() == 10 || claimed.iter().any(|(j, _)| *j == i) {
                continue;
            }
            let mails = app.smtp.mails_for(&p.email);
            let Some(mail) = mails.iter().find(|m| m.subject().contains("Impfdosis")) else {
                continue;
            };
            let invitation = mail.link_path("/invitations/");
            let response = app.post_form(&format!("{invitation}/claim"), &[]).await;
            assert_eq!(response.status(), 303);
            let booking = location(&response).split('?').next().unwrap().to_owned();
            let html = text(&app, &booking).await;
            claimed.push((i, by_id(&html, "booking-code")));
            last_claim_at = app.clock.now();
        }
        if claimed.len() < 10 {
            // Let the mails arrive, then the next wave is due.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            app.clock.advance(Duration::minutes(5));
        }
    }
    let fill_minutes = (last_claim_at - posted_at).num_minutes();
    // Nine come, one does not.
    let offer_page = format!("/portal/offers/{offer}");
    let ends_at = app
        .services
        .store
        .offer(offer)
        .await
        .unwrap()
        .unwrap()
        .ends_at;
    let starts_at = app
        .services
        .store
        .offer(offer)
        .await
        .unwrap()
        .unwrap()
        .starts_at;
    for (_, code) in &claimed[..9] {
        let response = practice
            .browser
            .submit(
                &offer_page,
                &format!("{offer_page}/checkins"),
                &[("code", code)],
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    let no_show = &claimed[9].1;
    let response = practice
        .browser
        .submit(
            &offer_page,
            &format!("{offer_page}/bookings/{no_show}/no-show"),
            &[],
        )
        .await;
    assert!(response.status().is_success() || response.status() == 303);

    // Purge 24 hours after the appointment.
    app.clock
        .set(ends_at + Duration::hours(24) + Duration::minutes(1));
    let report = app.services.purge_once().await.unwrap();
    assert_eq!(report.offers, 1);
    assert_eq!(report.people_of_offers, 10);

    // Assert: no personal data of the offer remains.
    assert!(app.services.store.offer(offer).await.unwrap().is_none());
    for (i, _) in &claimed {
        assert!(
            app.services
                .store
                .registrant(berlin[*i].id)
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(app.db.count("bookings").await, 0);
    assert_eq!(app.db.count("invitations").await, 0);
    assert_eq!(app.db.count("offers").await, 0);

    // The expected figures: 11 wait in Berlin, 3 in Munich (suppressed); 10 offered, 9 placed
    // and 1 unused (both suppressed); one filled offer (its median suppressed); per wave
    // the invitations seen and the claims.
    let day = starts_at.date_naive().to_string();
    let json: serde_json::Value = app.get("/api/v1/statistics").await.json().await.unwrap();
    assert_eq!(json["suppressed_below"], 10);
    let rows = json["rows"].as_array().unwrap();
    let find = |series: &str, key: &str| {
        rows.iter()
            .find(|r| r["series"] == series && r["key"] == key)
            .unwrap_or_else(|| panic!("no {series}/{key} in {json}"))
            .clone()
    };
    assert_eq!(find("waiting_by_area", "10")["value"], 11);
    assert_eq!(find("waiting_by_area", "10")["suppressed"], false);
    assert_eq!(
        find("waiting_by_area", "80")["value"],
        serde_json::Value::Null
    );
    assert_eq!(find("waiting_by_area", "80")["suppressed"], true);
    assert_eq!(find("doses_offered", &day)["value"], 10);
    assert_eq!(find("doses_offered", "total")["value"], 10);
    assert_eq!(find("doses_placed", &day)["suppressed"], true);
    assert_eq!(find("doses_placed", &day)["value"], serde_json::Value::Null);
    assert_eq!(find("doses_unused", &day)["suppressed"], true);
    assert_eq!(find("median_fill_minutes", "total")["suppressed"], true);
    let claims_per_wave = 10u64;
    let total_invited: u64 = invited_per_wave.iter().map(|(_, n)| n).sum();
    assert!(total_invited >= claims_per_wave);
    if invited_per_wave.len() == 1 {
        let (wave, invited) = invited_per_wave[0];
        let key = wave.to_string();
        assert_eq!(find("wave_invited", &key)["value"], invited);
        assert_eq!(find("wave_claimed", &key)["value"], 10);
        let share = find("wave_share_claimed", &key)["value"].as_f64().unwrap();
        assert!((share - 10.0 / invited as f64).abs() < 1e-4, "{share}");
    }

    let csv = text(&app, "/statistics.csv").await;
    assert!(csv.starts_with("series,key,value,suppressed\n"), "{csv}");
    assert!(csv.contains("waiting_by_area,10,11,false\n"), "{csv}");
    assert!(csv.contains("waiting_by_area,80,,true\n"), "{csv}");
    assert!(
        csv.contains(&format!("doses_offered,{day},10,false\n")),
        "{csv}"
    );
    assert!(
        csv.contains(&format!("doses_placed,{day},,true\n")),
        "{csv}"
    );
    assert!(csv.contains("median_fill_minutes,total,,true\n"), "{csv}");

    let html = text(&app, "/statistics?lang=en").await;
    // For a look in a browser: RESTDOSE_TEST_STATISTICS_DUMP=<file> keeps the page.
    if let Ok(path) = std::env::var("RESTDOSE_TEST_STATISTICS_DUMP") {
        std::fs::write(format!("{path}.{backend:?}"), &html).unwrap();
    }
    assert!(html.contains("<svg"), "charts are inline SVG");
    assert!(!html.contains("<script"));
    assert!(!html.contains("style=\""));
    assert_eq!(by_id(&html, "total-offered"), "10");
    assert_eq!(by_id(&html, "total-placed"), "&#60;10");
    assert_eq!(by_id(&html, "total-unused"), "&#60;10");
    assert!(html.contains("<tr data-area=\"10\"><th scope=\"row\">10</th><td>11</td></tr>"));
    assert!(html.contains("<tr data-area=\"80\"><th scope=\"row\">80</th><td>&#60;10</td></tr>"));

    // A person still waiting: the last Berlin sign-up not booked stands last of 11.
    let waiting: Vec<&Person> = berlin
        .iter()
        .enumerate()
        .filter(|(i, _)| !claimed.iter().any(|(j, _)| j == i))
        .map(|(_, p)| p)
        .collect();
    assert_eq!(waiting.len(), 11);
    let last = waiting.last().unwrap();
    let html = text(&app, &format!("{}?lang=en", last.manage)).await;
    assert_eq!(by_id(&html, "odds-position"), "11 of 11");
    assert_eq!(by_id(&html, "odds-offered-7"), "10");
    assert_eq!(by_id(&html, "odds-offered-30"), "10");
    assert_eq!(
        by_id(&html, "odds-wait"),
        "Not enough doses were placed near you in the last 30 days to estimate."
    );
    // Nothing about anyone else: no other address on the page.
    for other in waiting.iter().filter(|p| p.id != last.id) {
        assert!(!html.contains(&other.email));
    }
    let first = waiting.first().unwrap();
    let html = text(&app, &format!("{}?lang=en", first.manage)).await;
    assert_eq!(by_id(&html, "odds-position"), "1 of 11");

    // The practice's own figures.
    // A fresh login: the session from before the purge has run out.
    let browser = logged_in(&app, &practice.email, PASSWORD).await;
    let response = browser.get("/portal?lang=en").await;
    let html = response.text().await.unwrap();
    let figure = |key: &str| {
        let marker = format!("<tr data-figure=\"{key}\">");
        let start = html
            .find(&marker)
            .unwrap_or_else(|| panic!("{key}: {html}"));
        let row = &html[start..];
        let row = &row[..row.find("</tr>").unwrap()];
        row.split("<td>")
            .skip(1)
            .map(|c| c.split('<').next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(figure("practice_stats.placed"), ["9", "9"]);
    assert_eq!(figure("practice_stats.no_show"), ["10 %", "10 %"]);
    let minutes = format!("{fill_minutes} min");
    assert_eq!(figure("practice_stats.fill"), [minutes.clone(), minutes]);
}
