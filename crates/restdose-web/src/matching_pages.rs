//! The pages behind the links in invitation and confirmation mails. Opening a link (GET) only
//! shows; claiming, declining and cancelling are POSTs, because mail scanners follow links.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use restdose_store::{BookingStatus, ClaimOutcome, InvitationStatus, OfferStatus};
use serde::Deserialize;

use crate::html::{failure, page};
use crate::i18n::T;
use crate::request_lang::request_lang;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/invitations/{token}", web::get().to(invitation_page))
        .route("/invitations/{token}/claim", web::post().to(claim))
        .route("/invitations/{token}/decline", web::post().to(decline))
        .route("/bookings/{token}", web::get().to(booking_page))
        .route("/bookings/{token}/cancel", web::post().to(cancel));
}

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage<'a> {
    t: T,
    token: &'a str,
    notice: Option<&'static str>,
    practice: &'a str,
    address: String,
    distance: String,
    window: String,
    vaccine: &'a str,
    note: &'a str,
    remaining: i32,
    answer_by: String,
    open: bool,
    state: &'static str,
    state_key: &'static str,
}

#[derive(Template)]
#[template(path = "booking.html")]
struct BookingPage<'a> {
    t: T,
    token: &'a str,
    notice: Option<&'static str>,
    code: String,
    status: &'static str,
    status_key: &'static str,
    practice: &'a str,
    address: String,
    window: String,
    vaccine: &'a str,
    note: &'a str,
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// Renders the invitation page; `state` overrides what the stored invitation says (e.g. right
/// after a claim that found every dose taken).
async fn render_invitation(
    state: &AppState,
    req: &HttpRequest,
    token: &str,
    notice: Option<&'static str>,
    forced: Option<(&'static str, &'static str)>,
) -> HttpResponse {
    let lang = request_lang(req);
    let services = &state.services;
    let view = match services.invitation_view(token).await {
        Ok(view) => view,
        Err(e) => return failure(state, &lang, &e),
    };
    let open = services.invitation_open(&view) && forced.is_none();
    let (state_name, state_key) = forced.unwrap_or(match view.invitation.status {
        InvitationStatus::Open if open => ("open", "invite.state.expired"),
        InvitationStatus::Open | InvitationStatus::Expired => ("expired", "invite.state.expired"),
        InvitationStatus::Claimed => ("claimed", "invite.state.claimed"),
        InvitationStatus::Declined => ("declined", "invite.state.declined"),
        InvitationStatus::Missed => ("missed", "invite.state.missed"),
        // Ended by the offer before the person answered: filled while it still runs, or
        // closed or cancelled by the practice.
        InvitationStatus::Withdrawn if view.offer.status == OfferStatus::Open => {
            ("missed", "invite.state.missed")
        }
        InvitationStatus::Withdrawn => ("ended", "invite.state.ended"),
    });
    let body = InvitationPage {
        t: T::new(lang.lang),
        token,
        notice,
        practice: &view.practice.name,
        address: format!(
            "{}, {} {}",
            view.practice.street, view.practice.postcode, view.practice.city
        ),
        distance: format!("{:.0}", view.invitation.distance_km),
        window: services.format_window(view.offer.starts_at, view.offer.ends_at),
        vaccine: &view.offer.vaccine,
        note: &view.offer.note,
        remaining: view.remaining,
        answer_by: view
            .invitation
            .expires_at
            .with_timezone(&services.policy.timezone)
            .format("%d.%m.%Y %H:%M")
            .to_string(),
        open,
        state: state_name,
        state_key,
    }
    .render();
    page(state, &lang, StatusCode::OK, body)
}

async fn invitation_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let notice = match query.notice.as_deref() {
        Some("declined") => Some("invite.declined"),
        _ => None,
    };
    render_invitation(&state, &req, &token, notice, None).await
}

async fn claim(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    match state.services.claim(&token).await {
        Ok((ClaimOutcome::Booked, Some(booking))) => HttpResponse::SeeOther()
            .insert_header((
                header::LOCATION,
                format!("/bookings/{}?notice=booked", booking.expose()),
            ))
            .finish(),
        Ok((outcome, _)) => {
            let forced = match outcome {
                ClaimOutcome::AllTaken => ("missed", "invite.state.missed"),
                ClaimOutcome::AlreadyBooked => {
                    ("booked_elsewhere", "invite.state.booked_elsewhere")
                }
                ClaimOutcome::AlreadyAnswered(InvitationStatus::Claimed) => {
                    ("claimed", "invite.state.claimed")
                }
                ClaimOutcome::AlreadyAnswered(InvitationStatus::Declined) => {
                    ("declined", "invite.state.declined")
                }
                ClaimOutcome::AlreadyAnswered(InvitationStatus::Missed) => {
                    ("missed", "invite.state.missed")
                }
                // Expired or ended by the practice: the stored state tells which.
                _ => return render_invitation(&state, &req, &token, None, None).await,
            };
            render_invitation(&state, &req, &token, None, Some(forced)).await
        }
        Err(e) => failure(&state, &request_lang(&req), &e),
    }
}

async fn decline(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    match state.services.decline(&token).await {
        Ok(declined) => {
            // Only say "declined" when it was; otherwise the page shows the real state.
            let notice = if declined { "?notice=declined" } else { "" };
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("/invitations/{token}{notice}")))
                .finish()
        }
        Err(e) => failure(&state, &request_lang(&req), &e),
    }
}

async fn render_booking(
    state: &AppState,
    req: &HttpRequest,
    token: &str,
    notice: Option<&'static str>,
) -> HttpResponse {
    let lang = request_lang(req);
    let services = &state.services;
    let view = match services.booking_view(token).await {
        Ok(view) => view,
        Err(e) => return failure(state, &lang, &e),
    };
    let (status, status_key) = match view.booking.status {
        BookingStatus::Booked => ("booked", "booking.booked"),
        BookingStatus::CheckedIn => ("checked_in", "booking.booked"),
        BookingStatus::NoShow => ("no_show", "booking.status.no_show"),
        BookingStatus::Cancelled => ("cancelled", "booking.status.cancelled"),
    };
    let body = BookingPage {
        t: T::new(lang.lang),
        token,
        notice,
        code: view.code.display(),
        status,
        status_key,
        practice: &view.practice.name,
        address: format!(
            "{}, {} {}",
            view.practice.street, view.practice.postcode, view.practice.city
        ),
        window: services.format_window(view.offer.starts_at, view.offer.ends_at),
        vaccine: &view.offer.vaccine,
        note: &view.offer.note,
    }
    .render();
    page(state, &lang, StatusCode::OK, body)
}

async fn booking_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let notice = match query.notice.as_deref() {
        Some("booked") => Some("booking.booked"),
        Some("cancelled") => Some("booking.cancelled"),
        _ => None,
    };
    render_booking(&state, &req, &token, notice).await
}

async fn cancel(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    match state.services.cancel_booking(&token).await {
        Ok(cancelled) => {
            let notice = if cancelled { "?notice=cancelled" } else { "" };
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("/bookings/{token}{notice}")))
                .finish()
        }
        Err(e) => failure(&state, &request_lang(&req), &e),
    }
}
