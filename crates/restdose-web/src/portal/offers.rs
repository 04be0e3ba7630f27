//! Offers of spare doses: the "spare doses" form, and the offer page with check-in, no-show,
//! adding doses, closing and cancelling.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use restdose_core::offers::{DEFAULT_CLAIM_MINUTES, OfferInput};
use restdose_core::{FieldError, ServiceError, SessionContext};
use restdose_domain::{BookingCode, RadiusKm};
use restdose_store::{BookingStatus, CheckInOutcome, OfferStatus};
use uuid::Uuid;

use crate::error::status_of;
use crate::html::{field_message, page};
use crate::i18n::T;
use crate::portal::forms::{
    CheckInForm, CsrfForm, DosesForm, FormResult, NoticeQuery, OfferForm, local_time, number,
    parse_id, radius,
};
use crate::portal::replies::{
    Nav, attempt, booking_status, nav, offer_status, portal_failure, see_other,
};
use crate::portal::session_guard::{session_or_login, session_post};
use crate::request_lang::{RequestLang, request_lang};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "portal_offer_new.html")]
struct OfferFormPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    vaccines: Vec<VaccineOption>,
    doses: String,
    starts_at: String,
    ends_at: String,
    claim_minutes: String,
    radius_km: String,
    note: String,
    vaccine_error: Option<&'static str>,
    doses_error: Option<&'static str>,
    starts_at_error: Option<&'static str>,
    ends_at_error: Option<&'static str>,
    claim_minutes_error: Option<&'static str>,
    radius_km_error: Option<&'static str>,
    note_error: Option<&'static str>,
    has_errors: bool,
}

struct VaccineOption {
    name: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "portal_offer.html")]
struct OfferPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    id: Uuid,
    vaccine: String,
    window: String,
    status: &'static str,
    status_key: &'static str,
    open: bool,
    cancelled: bool,
    doses: i32,
    claimed: i32,
    checked_in: i32,
    remaining: i32,
    time_left: String,
    claim_minutes: i32,
    radius_km: u16,
    note: String,
    bookings: Vec<BookingRow>,
    notice: Option<&'static str>,
    alert: Option<&'static str>,
    code: String,
    more_doses: String,
    doses_error: Option<&'static str>,
}

struct BookingRow {
    /// As stored (no separators), for URLs and hidden fields.
    code: String,
    /// XXXX-XXXX-XXXX.
    shown: String,
    status: &'static str,
    status_key: &'static str,
    booked: bool,
}

// --- posting an offer ----------------------------------------------------------------------

fn render_offer_form(
    state: &AppState,
    lang: &RequestLang,
    session: &SessionContext,
    status: StatusCode,
    form: &OfferForm,
    errors: &[FieldError],
) -> HttpResponse {
    let vaccines = state
        .services
        .policy
        .vaccines
        .iter()
        .map(|name| VaccineOption {
            name: name.clone(),
            selected: *name == form.vaccine,
        })
        .collect();
    let rendered = OfferFormPage {
        t: T::new(lang.lang),
        nav: nav(session),
        csrf: session.csrf_token.clone(),
        vaccines,
        doses: form.doses.clone(),
        starts_at: form.starts_at.clone(),
        ends_at: form.ends_at.clone(),
        claim_minutes: form.claim_minutes.clone(),
        radius_km: form.radius_km.clone(),
        note: form.note.clone(),
        vaccine_error: field_message(errors, "vaccine"),
        doses_error: field_message(errors, "doses"),
        starts_at_error: field_message(errors, "starts_at"),
        ends_at_error: field_message(errors, "ends_at"),
        claim_minutes_error: field_message(errors, "claim_minutes"),
        radius_km_error: field_message(errors, "radius_km"),
        note_error: field_message(errors, "note"),
        has_errors: !errors.is_empty(),
    }
    .render();
    page(state, lang, status, rendered)
}

pub async fn offer_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    let session = attempt!(session_or_login(&state, &req, &lang).await);
    if let Err(e) = session.principal.approved_practice() {
        return portal_failure(&state, &lang, nav(&session), &e);
    }
    let form = OfferForm {
        claim_minutes: DEFAULT_CLAIM_MINUTES.to_string(),
        radius_km: RadiusKm::DEFAULT.km().to_string(),
        ..OfferForm::default()
    };
    render_offer_form(&state, &lang, &session, StatusCode::OK, &form, &[])
}

pub async fn offer_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: FormResult<OfferForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, form) = attempt!(session_post(&state, &req, &lang, form).await);
    let input = OfferInput {
        vaccine: &form.vaccine,
        doses: number(&form.doses),
        starts_at: local_time(&form.starts_at),
        ends_at: local_time(&form.ends_at),
        claim_minutes: number(&form.claim_minutes),
        radius_km: radius(&form.radius_km),
        note: &form.note,
    };
    match state.services.post_offer(&session.principal, &input).await {
        Ok(offer) => see_other(&format!("/portal/offers/{}", offer.id)),
        Err(ServiceError::Validation(errors)) => render_offer_form(
            &state,
            &lang,
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            &errors,
        ),
        Err(e) => portal_failure(&state, &lang, nav(&session), &e),
    }
}

// --- the offer page ------------------------------------------------------------------------

/// What a re-rendered offer page adds to the stored state.
#[derive(Default)]
struct OfferExtras {
    notice: Option<&'static str>,
    alert: Option<&'static str>,
    code: String,
    more_doses: String,
    doses_error: Option<&'static str>,
}

async fn render_offer(
    state: &AppState,
    lang: &RequestLang,
    session: &SessionContext,
    id: Uuid,
    status: StatusCode,
    extras: OfferExtras,
) -> HttpResponse {
    let view = match state.services.offer_view(&session.principal, id).await {
        Ok(view) => view,
        Err(e) => return portal_failure(state, lang, nav(session), &e),
    };
    let t = T::new(lang.lang);
    let minutes = view.time_left.num_minutes();
    let (offer_status_name, offer_status_key) = offer_status(view.offer.status);
    let bookings = view
        .bookings
        .iter()
        .map(|booking| {
            let (status, status_key) = booking_status(booking.status);
            BookingRow {
                code: booking.code.clone(),
                shown: BookingCode::parse(&booking.code)
                    .map_or_else(|_| booking.code.clone(), |c| c.display()),
                status,
                status_key,
                booked: booking.status == BookingStatus::Booked,
            }
        })
        .collect();
    let rendered = OfferPage {
        t,
        nav: nav(session),
        csrf: session.csrf_token.clone(),
        id: view.offer.id,
        window: state
            .services
            .format_window(view.offer.starts_at, view.offer.ends_at),
        vaccine: view.offer.vaccine.clone(),
        status: offer_status_name,
        status_key: offer_status_key,
        open: view.offer.status == OfferStatus::Open,
        cancelled: view.offer.status == OfferStatus::Cancelled,
        doses: view.offer.doses,
        claimed: view.claimed,
        checked_in: view.checked_in,
        remaining: view.remaining,
        time_left: t.fill(
            "portal.offer.time_left_value",
            &[("hours", minutes / 60), ("minutes", minutes % 60)],
        ),
        claim_minutes: view.offer.claim_minutes,
        radius_km: view.offer.radius_km,
        note: view.offer.note.clone(),
        bookings,
        notice: extras.notice,
        alert: extras.alert,
        code: extras.code,
        more_doses: extras.more_doses,
        doses_error: extras.doses_error,
    }
    .render();
    page(state, lang, status, rendered)
}

fn see_offer(id: Uuid, notice: &str) -> HttpResponse {
    see_other(&format!("/portal/offers/{id}?notice={notice}"))
}

pub async fn offer_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let session = attempt!(session_or_login(&state, &req, &lang).await);
    let (notice, alert) = match query.notice.as_deref() {
        Some("no_show") => (Some("portal.offer.no_show_done"), None),
        Some("no_show_refused") => (None, Some("portal.offer.no_show_refused")),
        Some("doses_added") => (Some("portal.offer.doses_added"), None),
        Some("closed") => (Some("portal.offer.closed"), None),
        Some("cancelled") => (Some("portal.offer.cancelled"), None),
        _ => (None, None),
    };
    let extras = OfferExtras {
        notice,
        alert,
        ..OfferExtras::default()
    };
    render_offer(
        &state,
        &lang,
        &session,
        parse_id(&id),
        StatusCode::OK,
        extras,
    )
    .await
}

pub async fn offer_check_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: FormResult<CheckInForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, form) = attempt!(session_post(&state, &req, &lang, form).await);
    let id = parse_id(&id);
    let extras = match state
        .services
        .check_in(&session.principal, id, &form.code)
        .await
    {
        Ok(CheckInOutcome::CheckedIn) => OfferExtras {
            notice: Some("portal.checkin.done"),
            ..OfferExtras::default()
        },
        Ok(CheckInOutcome::AlreadyUsed) => OfferExtras {
            alert: Some("portal.checkin.used"),
            ..OfferExtras::default()
        },
        // Kept, so a mistyped code can be corrected.
        Ok(CheckInOutcome::Unknown) => OfferExtras {
            alert: Some("portal.checkin.unknown"),
            code: form.code,
            ..OfferExtras::default()
        },
        Err(e) => return portal_failure(&state, &lang, nav(&session), &e),
    };
    render_offer(&state, &lang, &session, id, StatusCode::OK, extras).await
}

pub async fn offer_no_show(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: FormResult<CsrfForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, _) = attempt!(session_post(&state, &req, &lang, form).await);
    let (id, code) = path.into_inner();
    let id = parse_id(&id);
    match state
        .services
        .mark_no_show(&session.principal, id, &code)
        .await
    {
        Ok(true) => see_offer(id, "no_show"),
        Ok(false) => see_offer(id, "no_show_refused"),
        Err(e) => portal_failure(&state, &lang, nav(&session), &e),
    }
}

pub async fn offer_add_doses(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: FormResult<DosesForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, form) = attempt!(session_post(&state, &req, &lang, form).await);
    let id = parse_id(&id);
    match state
        .services
        .add_doses(&session.principal, id, number(&form.doses))
        .await
    {
        Ok(_) => see_offer(id, "doses_added"),
        Err(ref e @ ServiceError::Validation(ref errors)) => {
            let extras = OfferExtras {
                doses_error: field_message(errors, "doses"),
                more_doses: form.doses,
                ..OfferExtras::default()
            };
            render_offer(&state, &lang, &session, id, status_of(e), extras).await
        }
        Err(e @ ServiceError::Conflict(_)) => {
            let extras = OfferExtras {
                alert: Some("portal.offer.doses_refused"),
                more_doses: form.doses,
                ..OfferExtras::default()
            };
            render_offer(&state, &lang, &session, id, status_of(&e), extras).await
        }
        Err(e) => portal_failure(&state, &lang, nav(&session), &e),
    }
}

pub async fn offer_close(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: FormResult<CsrfForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, _) = attempt!(session_post(&state, &req, &lang, form).await);
    let id = parse_id(&id);
    match state.services.close_offer(&session.principal, id).await {
        Ok(()) => see_offer(id, "closed"),
        Err(e) => offer_action_failed(&state, &lang, &session, id, &e).await,
    }
}

pub async fn offer_cancel(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: FormResult<CsrfForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, _) = attempt!(session_post(&state, &req, &lang, form).await);
    let id = parse_id(&id);
    match state.services.cancel_offer(&session.principal, id).await {
        Ok(_) => see_offer(id, "cancelled"),
        Err(e) => offer_action_failed(&state, &lang, &session, id, &e).await,
    }
}

/// A refused close or cancel shows the offer as it is (409); other failures get their page.
async fn offer_action_failed(
    state: &AppState,
    lang: &RequestLang,
    session: &SessionContext,
    id: Uuid,
    e: &ServiceError,
) -> HttpResponse {
    match e {
        ServiceError::Conflict(_) => {
            let extras = OfferExtras {
                alert: Some("portal.offer.not_open"),
                ..OfferExtras::default()
            };
            render_offer(state, lang, session, id, status_of(e), extras).await
        }
        _ => portal_failure(state, lang, nav(session), e),
    }
}
