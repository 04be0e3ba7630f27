//! The whole service in a real browser (Debian's headless Chromium through chromedriver), on
//! SQLite: a person signs up on the page, the mail arrives, its link opens in the browser, they
//! confirm; a practice signs up, an admin approves it, the practice posts doses through the form;
//! invitations arrive, people claim, decline, cancel and unsubscribe in the browser, and the
//! practice checks the booking code in. Sign-up and claim are also done by keyboard only and
//! with JavaScript disabled.
//!
//! Every page visited goes through `Tab::check`: axe-core (WCAG 2.1 A/AA, contrast included)
//! without serious or critical violations, body text ≥ 18 px, field errors tied to their fields,
//! no sideways scrolling at 360 px and 200 % zoom, no script, and screenshots at 360 px and
//! 1280 px (target/screens/, or docs/screens/ with RESTDOSE_TEST_UPDATE_SCREENS=1). The pages are
//! then revisited in English after switching with the page's own language link.
//!
//! Needs chromium, chromedriver and axe-core: scripts/test installs them (scripts/lib/browser.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fantoccini::Locator;
use fantoccini::key::Key;
use restdose_domain::Lang;
use restdose_tests::browser::{Driver, Tab, Tools, msg, wait_until};
use restdose_tests::portal::{PASSWORD, account_id};
use restdose_tests::{Backend, TestApp, unique_email};

const DE: Lang = Lang::De;
const EN: Lang = Lang::En;

/// Waits for the browser to leave `from` (a form was submitted).
async fn left(tab: &Tab, from: &str) {
    wait_until(&format!("navigation away from {from}"), || async {
        tab.path().await != from
    })
    .await;
}

/// Clicks a submit button and waits for the next page.
async fn submit(tab: &Tab, button: &str) {
    let marker = tab.client.find(Locator::Css("html")).await.unwrap();
    tab.click_button(button).await;
    replaced(marker, button).await;
}

/// Waits until the document `marker` belongs to is gone (a POST may land on the same URL, so
/// the URL is no sign).
async fn replaced(marker: fantoccini::elements::Element, what: &str) {
    wait_until(&format!("the page after {what:?}"), || async {
        marker.tag_name().await.is_err()
    })
    .await;
}

/// The newest mail to `to` whose subject contains `subject`.
async fn mail(app: &TestApp, to: &str, subject: &str) -> restdose_tests::CapturedMail {
    app.smtp
        .wait_for_matching(to, |m| m.subject().contains(subject))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_works_in_chromium_is_accessible_and_speaks_german_and_english() {
    let Some(tools) = Tools::find() else { return };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut driver = Driver::start(tools).await;
    let axe = driver.axe_source();
    let mut tab = Tab::new(driver.session(true).await, &app.base, Some(axe));
    let mut nojs = Tab::new(driver.session(false).await, &app.base, None);

    // JavaScript really is off in the second session, and on in the first.
    let probe = "data:text/html,<title>off</title><body><script>document.title='on'</script>";
    nojs.goto(probe).await;
    assert_eq!(nojs.client.title().await.unwrap(), "off", "scripts ran");
    tab.goto(probe).await;
    assert_eq!(tab.client.title().await.unwrap(), "on");

    // --- a person signs up: German by default, errors shown and tied to their fields ----------
    tab.goto("/").await;
    assert_eq!(tab.html_lang().await, "de");
    tab.check("signup").await;
    tab.fill(msg(DE, "signup.email"), "kein-at-zeichen").await;
    tab.fill(msg(DE, "signup.postcode"), "123").await;
    submit(&tab, msg(DE, "signup.submit")).await;
    let email_field = tab.field(msg(DE, "signup.email")).await;
    assert_eq!(
        email_field.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    assert_eq!(
        email_field
            .attr("aria-describedby")
            .await
            .unwrap()
            .as_deref(),
        Some("email-error")
    );
    // What was typed is kept.
    assert_eq!(
        email_field.prop("value").await.unwrap().as_deref(),
        Some("kein-at-zeichen")
    );
    tab.check("signup-errors").await;

    // Keyboard only: Tab to the field, type, Tab on, Enter on the button.
    let anna = unique_email("anna");
    tab.goto("/").await;
    tab.tab_to("email").await;
    tab.type_text(&anna).await;
    tab.press(Key::Tab).await;
    assert_eq!(tab.focused().await, "postcode");
    tab.type_text("10115").await;
    tab.tab_to(msg(DE, "signup.submit")).await;
    let marker = tab.client.find(Locator::Css("html")).await.unwrap();
    tab.press(Key::Enter).await;
    replaced(marker, "Enter on the sign-up button").await;
    tab.check("signup-done").await;

    // The mail arrives; its link opens in the browser; confirm.
    let confirm_mail = mail(&app, &anna, "").await;
    let confirm = confirm_mail.link_path("/confirm/");
    tab.goto(&confirm).await;
    tab.check("confirm").await;
    submit(&tab, msg(DE, "confirm.submit")).await;
    tab.check("confirmed").await;

    // The self-service page from the mail, with a validation error.
    let manage = confirm_mail.link_path("/manage/");
    tab.goto(&manage).await;
    tab.check("manage").await;
    tab.fill(msg(DE, "signup.postcode"), "99999x").await;
    submit(&tab, msg(DE, "manage.save")).await;
    tab.check("manage-errors").await;

    // --- without JavaScript: sign-up and confirm -----------------------------------------------
    let ben = unique_email("ben");
    nojs.goto("/").await;
    nojs.fill(msg(DE, "signup.email"), &ben).await;
    nojs.fill(msg(DE, "signup.postcode"), "10115").await;
    submit(&nojs, msg(DE, "signup.submit")).await;
    let ben_mail = mail(&app, &ben, "").await;
    nojs.goto(&ben_mail.link_path("/confirm/")).await;
    submit(&nojs, msg(DE, "confirm.submit")).await;
    nojs.check("nojs-confirmed").await;

    // Two more people for decline and cancel/unsubscribe (sign-up itself is covered above).
    let carla = unique_email("carla");
    let dora = unique_email("dora");
    app.sign_up_confirmed(&carla, "10115").await;
    app.sign_up_confirmed(&dora, "10115").await;

    // --- a practice signs up (errors first), verifies its address -------------------------------
    let practice = unique_email("praxis");
    tab.goto("/portal/signup").await;
    tab.check("portal-signup").await;
    submit(&tab, msg(DE, "portal.signup.submit")).await;
    tab.check("portal-signup-errors").await;
    tab.fill(
        msg(DE, "portal.field.practice_name"),
        "Hausarztpraxis Dr. Beispiel",
    )
    .await;
    tab.fill(msg(DE, "portal.field.street"), "Invalidenstraße 1")
        .await;
    tab.fill(msg(DE, "signup.postcode"), "10115").await;
    tab.fill(msg(DE, "portal.field.city"), "Berlin").await;
    tab.fill(msg(DE, "portal.field.phone"), "030 1234567").await;
    tab.fill(msg(DE, "portal.field.email"), &practice).await;
    tab.fill(msg(DE, "portal.field.password"), PASSWORD).await;
    submit(&tab, msg(DE, "portal.signup.submit")).await;
    tab.check("portal-signup-done").await;
    let verify = mail(&app, &practice, "").await.link_path("/portal/verify/");
    tab.goto(&verify).await;
    tab.check("portal-verify").await;
    submit(&tab, msg(DE, "portal.verify.submit")).await;
    tab.check("portal-verified").await;

    // --- an admin approves it ----------------------------------------------------------------
    let admin = unique_email("admin");
    app.services.create_admin(&admin, PASSWORD).await.unwrap();
    tab.goto("/portal/login").await;
    tab.check("portal-login").await;
    tab.fill(msg(DE, "portal.field.email"), &admin).await;
    tab.fill(msg(DE, "portal.field.password"), "falsches passwort")
        .await;
    submit(&tab, msg(DE, "portal.login.submit")).await;
    tab.check("portal-login-error").await;
    tab.fill(msg(DE, "portal.field.password"), PASSWORD).await;
    submit(&tab, msg(DE, "portal.login.submit")).await;
    assert!(
        tab.path().await.starts_with("/admin"),
        "{}",
        tab.path().await
    );
    tab.check("admin-practices").await;
    let practice_id = account_id(&app, &practice).await;
    tab.client
        .find(Locator::Css(&format!(
            "#practice-{practice_id} form[action$='/approve'] button"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until("the approval", || async {
        tab.source().await.contains("data-status=\"approved\"")
    })
    .await;
    tab.check("admin-practices-approved").await;
    submit(&tab, msg(DE, "admin.logout")).await;

    // --- the practice logs in and posts doses through the form --------------------------------
    mail(&app, &practice, "freigeschaltet").await;
    tab.goto("/portal/login").await;
    tab.fill(msg(DE, "portal.field.email"), &practice).await;
    tab.fill(msg(DE, "portal.field.password"), PASSWORD).await;
    submit(&tab, msg(DE, "portal.login.submit")).await;
    assert_eq!(tab.path().await, "/portal");
    tab.check("portal-dashboard").await;
    tab.click_link(msg(DE, "portal.nav.new_offer")).await;
    left(&tab, "/portal").await;
    tab.check("portal-offer-new").await;
    submit(&tab, msg(DE, "portal.offer_new.submit")).await;
    tab.check("portal-offer-new-errors").await;
    let vaccine = app.services.policy.vaccines[0].clone();
    tab.field(msg(DE, "portal.field.vaccine"))
        .await
        .select_by_label(&vaccine)
        .await
        .unwrap();
    tab.fill(msg(DE, "portal.field.doses"), "10").await;
    // datetime-local controls take keyboard input in the browser's locale format; set the
    // value the control itself would produce.
    for (label, value) in [
        ("portal.field.starts_at", "2026-05-04T16:00"),
        ("portal.field.ends_at", "2026-05-04T18:00"),
    ] {
        let field = tab.field(msg(DE, label)).await;
        tab.client
            .execute(
                "arguments[0].value = arguments[1];",
                vec![serde_json::to_value(&field).unwrap(), value.into()],
            )
            .await
            .unwrap();
    }
    tab.fill(msg(DE, "portal.field.note"), "Bitte Impfpass mitbringen.")
        .await;
    submit(&tab, msg(DE, "portal.offer_new.submit")).await;
    let offer_path = tab.path().await;
    assert!(offer_path.starts_with("/portal/offers/"), "{offer_path}");
    tab.check("portal-offer").await;

    // --- invitations go out; claim (keyboard only), decline, cancel, no-JS claim -------------
    app.services
        .run_wave_once()
        .await
        .unwrap()
        .expect("an offer is due");
    let invitation = |who: String| {
        let app = &app;
        async move {
            mail(app, &who, "Impfdosis")
                .await
                .link_path("/invitations/")
        }
    };
    let anna_invite = invitation(anna.clone()).await;
    tab.goto(&anna_invite).await;
    tab.check("invitation").await;
    tab.tab_to(msg(DE, "invite.claim")).await;
    let marker = tab.client.find(Locator::Css("html")).await.unwrap();
    tab.press(Key::Space).await;
    replaced(marker, "Space on the claim button").await;
    assert!(tab.path().await.starts_with("/bookings/"));
    let code = tab.text_of("#booking-code").await;
    assert_eq!(code.len(), 14, "booking code {code:?}");
    tab.check("booking").await;
    let anna_booking = tab.path().await;

    let ben_invite = invitation(ben.clone()).await;
    nojs.goto(&ben_invite).await;
    submit(&nojs, msg(DE, "invite.claim")).await;
    assert!(nojs.path().await.starts_with("/bookings/"));
    assert_eq!(nojs.text_of("#booking-code").await.len(), 14);

    let carla_invite = invitation(carla.clone()).await;
    tab.goto(&carla_invite).await;
    submit(&tab, msg(DE, "invite.decline")).await;
    tab.check("invitation-declined").await;

    let dora_invite_mail = mail(&app, &dora, "Impfdosis").await;
    tab.goto(&dora_invite_mail.link_path("/invitations/")).await;
    submit(&tab, msg(DE, "invite.claim")).await;
    submit(&tab, msg(DE, "booking.cancel")).await;
    tab.check("booking-cancelled").await;

    // --- the practice checks the code in -------------------------------------------------------
    tab.goto(&offer_path).await;
    tab.fill(msg(DE, "portal.checkin.code"), &code).await;
    submit(&tab, msg(DE, "portal.checkin.submit")).await;
    tab.goto(&offer_path).await;
    assert!(
        tab.source().await.contains("data-status=\"checked_in\""),
        "the booking was not checked in"
    );
    tab.check("portal-offer-checked-in").await;
    tab.goto(&anna_booking).await;
    tab.check("booking-checked-in").await;

    // --- the rest of the portal: tokens, password, forgotten password ------------------------
    tab.goto("/portal/tokens").await;
    tab.check("portal-tokens").await;
    tab.fill(msg(DE, "portal.tokens.name"), "Praxissoftware")
        .await;
    submit(&tab, msg(DE, "portal.tokens.create")).await;
    tab.check("portal-tokens-created").await;
    tab.goto("/portal/password").await;
    tab.check("portal-password").await;
    submit(&tab, msg(DE, "portal.password.submit")).await;
    tab.check("portal-password-errors").await;
    submit(&tab, msg(DE, "portal.nav.logout")).await;
    tab.goto("/portal/password/forgot").await;
    tab.check("portal-forgot").await;
    tab.fill(msg(DE, "portal.field.email"), &practice).await;
    submit(&tab, msg(DE, "portal.forgot.submit")).await;
    tab.check("portal-forgot-sent").await;
    let reset = app
        .smtp
        .wait_for_matching(&practice, |m| {
            m.links()
                .iter()
                .any(|l| l.contains("/portal/password/reset/"))
        })
        .await
        .link_path("/portal/password/reset/");
    tab.goto(&reset).await;
    tab.check("portal-reset").await;

    // --- unsubscribe from a mail's link; 404 ----------------------------------------------------
    // Every mail to a person names its unsubscribe link in `List-Unsubscribe` (RFC 8058).
    let header = dora_invite_mail
        .header("List-Unsubscribe")
        .expect("a List-Unsubscribe header");
    let link = header
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap();
    let unsubscribe = url::Url::parse(link).unwrap().path().to_owned();
    assert!(unsubscribe.starts_with("/unsubscribe/"), "{header}");
    tab.goto(&unsubscribe).await;
    tab.check("unsubscribe").await;
    submit(&tab, msg(DE, "unsubscribe.submit")).await;
    tab.check("unsubscribed").await;
    tab.goto("/gibt-es-nicht").await;
    tab.check("not-found").await;
    tab.goto("/statistics").await;
    tab.check("statistics").await;

    // --- English: switched with the page's own link, remembered on every page -----------------
    tab.goto("/").await;
    tab.click_link(msg(DE, "site.switch")).await;
    wait_until("English", || async { tab.html_lang().await == "en" }).await;
    tab.check("signup-en").await;
    let german_pages = tab.visited.clone();
    for (name, path, _) in german_pages
        .iter()
        .filter(|(name, _, _)| !name.ends_with("-en") && !name.starts_with("nojs"))
    {
        let path = path.split('?').next().unwrap();
        // Pages behind a POST (done, confirmed, …) have no URL of their own to revisit.
        tab.goto(path).await;
        assert_eq!(
            tab.html_lang().await,
            "en",
            "{name} at {path} is not English"
        );
        let source = tab.source().await;
        assert!(
            !source.contains(msg(DE, "site.switch")) || source.contains(msg(EN, "site.switch")),
            "{name}: still German"
        );
    }
    tab.goto("/portal/login").await;
    tab.check("portal-login-en").await;
    tab.goto(&manage).await;
    tab.check("manage-en").await;
    tab.goto(&anna_booking).await;
    tab.check("booking-en").await;

    restdose_tests::browser::write_screens_index(
        &[tab.visited.clone(), nojs.visited.clone()].concat(),
    );
    tab.client.clone().close().await.ok();
    nojs.client.clone().close().await.ok();
    app.stop().await;
}
