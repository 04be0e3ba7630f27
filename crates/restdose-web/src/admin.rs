//! Admin pages: the list of practices with their open offers, the approve / reject / suspend
//! decisions, and closing a single offer. Admins log in
//! through the portal's login page. Who may decide is the use case's business: this file only
//! checks that a session exists and that the form carries its CSRF token.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use restdose_core::{Decision, ServiceError};
use restdose_store::{Offer, Practice, PracticeStatus};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{csrf_ok, current_session};
use crate::error::{log_failure, status_of};
use crate::html::{failure, message, page};
use crate::i18n::T;
use crate::request_lang::{RequestLang, request_lang};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(practices_page))
        .route("/admin/practices/{id}/{decision}", web::post().to(decide))
        .route("/admin/offers/{id}/close", web::post().to(close_offer));
}

/// One practice as the table shows it.
struct Row {
    id: String,
    name: String,
    street: String,
    postcode: String,
    city: String,
    phone: String,
    email: String,
    verified: bool,
    /// Machine name, for `data-status`.
    status: &'static str,
    status_key: &'static str,
    signed_up: String,
    can_approve: bool,
    can_reject: bool,
    can_suspend: bool,
    /// Open offers (approved and suspended practices only: others cannot have any).
    offers: Vec<OfferRow>,
}

/// An open offer of a practice, with the admin's "close" button.
struct OfferRow {
    id: String,
    vaccine: String,
    doses: i32,
    window: String,
}

struct FilterLink {
    href: &'static str,
    key: &'static str,
    current: bool,
}

#[derive(Template)]
#[template(path = "admin_practices.html")]
struct PracticesPage<'a> {
    t: T,
    admin_email: &'a str,
    csrf: &'a str,
    /// The status filter in force (`""` for all), carried through the decision forms.
    filter: &'static str,
    filters: Vec<FilterLink>,
    notice: Option<&'static str>,
    rows: Vec<Row>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    /// The list's filter, so the admin comes back to the same view.
    #[serde(default)]
    filter: String,
}

const FILTERS: [(&str, &str, &str); 5] = [
    ("", "/admin", "admin.filter_all"),
    ("pending", "/admin?status=pending", "admin.status_pending"),
    (
        "approved",
        "/admin?status=approved",
        "admin.status_approved",
    ),
    (
        "suspended",
        "/admin?status=suspended",
        "admin.status_suspended",
    ),
    (
        "rejected",
        "/admin?status=rejected",
        "admin.status_rejected",
    ),
];

fn status_key(status: PracticeStatus) -> &'static str {
    match status {
        PracticeStatus::Pending => "admin.status_pending",
        PracticeStatus::Approved => "admin.status_approved",
        PracticeStatus::Rejected => "admin.status_rejected",
        PracticeStatus::Suspended => "admin.status_suspended",
    }
}

/// Work first: practices waiting for a decision, then the active ones.
fn rank(status: PracticeStatus) -> u8 {
    match status {
        PracticeStatus::Pending => 0,
        PracticeStatus::Approved => 1,
        PracticeStatus::Suspended => 2,
        PracticeStatus::Rejected => 3,
    }
}

fn row(state: &AppState, p: Practice, offers: Vec<Offer>) -> Row {
    // Only the decisions that change something are offered; approval needs a verified address
    // (the use case refuses it otherwise, and the page says why instead of offering it).
    let can_approve = p.status != PracticeStatus::Approved && p.email_verified;
    let can_reject = p.status == PracticeStatus::Pending;
    let can_suspend = p.status == PracticeStatus::Approved;
    Row {
        id: p.id.to_string(),
        status: p.status.as_str(),
        status_key: status_key(p.status),
        signed_up: p
            .created_at
            .with_timezone(&state.services.policy.timezone)
            .format("%Y-%m-%d %H:%M")
            .to_string(),
        verified: p.email_verified,
        can_approve,
        can_reject,
        can_suspend,
        offers: offers
            .into_iter()
            .map(|o| OfferRow {
                id: o.id.to_string(),
                window: state.services.format_window(o.starts_at, o.ends_at),
                vaccine: o.vaccine,
                doses: o.doses,
            })
            .collect(),
        name: p.name,
        street: p.street,
        postcode: p.postcode.as_str().to_owned(),
        city: p.city,
        phone: p.phone,
        email: p.email,
    }
}

/// A refused or failed request as a page. The status comes from `status_of`; this only picks
/// the words an admin needs.
fn refused(state: &AppState, lang: &RequestLang, e: &ServiceError) -> HttpResponse {
    let status = status_of(e);
    let (title, body, link) = match status {
        StatusCode::UNAUTHORIZED => (
            "admin.login_title",
            "admin.login_body",
            ("/portal/login", "admin.login_link"),
        ),
        StatusCode::FORBIDDEN => (
            "admin.forbidden_title",
            "admin.forbidden_body",
            ("/portal", "admin.to_portal"),
        ),
        StatusCode::NOT_FOUND => (
            "admin.not_found_title",
            "admin.not_found_body",
            ("/admin", "admin.back"),
        ),
        StatusCode::CONFLICT => (
            "admin.conflict_title",
            "admin.conflict_body",
            ("/admin", "admin.back"),
        ),
        _ => return failure(state, lang, e),
    };
    log_failure(e);
    message(
        state,
        lang,
        status,
        title,
        body,
        Some((link.0.to_owned(), link.1)),
    )
}

pub async fn practices_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let session = match current_session(&state, &req).await {
        Ok(Some(session)) => session,
        Ok(None) => return refused(&state, &lang, &ServiceError::Unauthenticated),
        Err(e) => return refused(&state, &lang, &e),
    };
    // An unknown filter shows everything rather than an error: it can only come from a
    // hand-edited address.
    let filter = query
        .status
        .as_deref()
        .and_then(PracticeStatus::parse)
        .map_or("", PracticeStatus::as_str);
    let practices = match state
        .services
        .list_practices(&session.principal, PracticeStatus::parse(filter))
        .await
    {
        Ok(practices) => practices,
        Err(e) => return refused(&state, &lang, &e),
    };
    let mut practices = practices;
    practices.sort_by_key(|p| rank(p.status));
    let notice = match query.notice.as_deref() {
        Some("approved") => Some("admin.notice_approved"),
        Some("rejected") => Some("admin.notice_rejected"),
        Some("suspended") => Some("admin.notice_suspended"),
        Some("offer_closed") => Some("admin.notice_offer_closed"),
        _ => None,
    };
    let mut rows = Vec::with_capacity(practices.len());
    for p in practices {
        let offers = if matches!(
            p.status,
            PracticeStatus::Approved | PracticeStatus::Suspended
        ) {
            match state
                .services
                .open_offers_of_practice(&session.principal, p.id)
                .await
            {
                Ok(offers) => offers,
                Err(e) => return refused(&state, &lang, &e),
            }
        } else {
            Vec::new()
        };
        rows.push(row(&state, p, offers));
    }
    let body = PracticesPage {
        t: T::new(lang.lang),
        admin_email: &session.account.email,
        csrf: &session.csrf_token,
        filter,
        filters: FILTERS
            .iter()
            .map(|(value, href, key)| FilterLink {
                href,
                key,
                current: *value == filter,
            })
            .collect(),
        notice,
        rows,
    }
    .render();
    page(&state, &lang, StatusCode::OK, body)
}

pub async fn decide(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    // A missing or unreadable body is treated like a form without a token (403), so that the
    // session check still comes first.
    form: Option<web::Form<DecisionForm>>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let session = match current_session(&state, &req).await {
        Ok(Some(session)) => session,
        Ok(None) => return refused(&state, &lang, &ServiceError::Unauthenticated),
        Err(e) => return refused(&state, &lang, &e),
    };
    let (csrf, filter) = form.map_or_else(Default::default, |f| {
        let f = f.into_inner();
        (f.csrf, f.filter)
    });
    if !csrf_ok(&session, &csrf) {
        return message(
            &state,
            &lang,
            status_of(&ServiceError::Forbidden),
            "admin.forbidden_title",
            "admin.csrf_body",
            Some(("/admin".to_owned(), "admin.back")),
        );
    }
    let (id, word) = path.into_inner();
    let (Ok(id), Some(decision)) = (Uuid::parse_str(&id), Decision::parse(&word)) else {
        return refused(&state, &lang, &ServiceError::NotFound);
    };
    match state
        .services
        .decide_practice(&session.principal, id, decision)
        .await
    {
        Ok(practice) => back_to_list(&filter, practice.status.as_str()),
        Err(e) => refused(&state, &lang, &e),
    }
}

/// Back to the list the admin came from, with a notice.
fn back_to_list(filter: &str, notice: &str) -> HttpResponse {
    let location = match PracticeStatus::parse(filter) {
        Some(f) => format!("/admin?status={}&notice={notice}", f.as_str()),
        None => format!("/admin?notice={notice}"),
    };
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Closes one offer for good (a POST with the session's CSRF token): no more invitations or
/// bookings, and everyone who booked is told, as when the practice cancels it.
pub async fn close_offer(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: Option<web::Form<DecisionForm>>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let session = match current_session(&state, &req).await {
        Ok(Some(session)) => session,
        Ok(None) => return refused(&state, &lang, &ServiceError::Unauthenticated),
        Err(e) => return refused(&state, &lang, &e),
    };
    let (csrf, filter) = form.map_or_else(Default::default, |f| {
        let f = f.into_inner();
        (f.csrf, f.filter)
    });
    if !csrf_ok(&session, &csrf) {
        return message(
            &state,
            &lang,
            status_of(&ServiceError::Forbidden),
            "admin.forbidden_title",
            "admin.csrf_body",
            Some(("/admin".to_owned(), "admin.back")),
        );
    }
    let Ok(id) = Uuid::parse_str(&path) else {
        return refused(&state, &lang, &ServiceError::NotFound);
    };
    match state
        .services
        .close_offer_as_admin(&session.principal, id)
        .await
    {
        Ok(_) => back_to_list(&filter, "offer_closed"),
        Err(e @ ServiceError::Conflict(_)) => {
            log_failure(&e);
            message(
                &state,
                &lang,
                status_of(&e),
                "admin.conflict_title",
                "admin.offer_not_open_body",
                Some(("/admin".to_owned(), "admin.back")),
            )
        }
        Err(e) => refused(&state, &lang, &e),
    }
}
