//! The registrant's own page behind the link in every mail: preferences, pause and resume,
//! deletion, and the unsubscribe link (leaving the list deletes the data).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use restdose_core::registration::RegistrantView;
use restdose_core::{FieldError, RadiusInput, ServiceError};
use restdose_store::RegistrantStatus;
use serde::Deserialize;

use crate::error::log_failure;
use crate::html::{failure, field_message, message, page};
use crate::i18n::T;
use crate::request_lang::{RequestLang, request_lang};
use crate::state::AppState;
use crate::statistics::figures::{OddsView, odds_view};

#[derive(Template)]
#[template(path = "unsubscribe.html")]
struct UnsubscribePage<'a> {
    t: T,
    token: &'a str,
}

#[derive(Template)]
#[template(path = "manage.html")]
struct ManagePage<'a> {
    t: T,
    token: &'a str,
    notice: Option<&'static str>,
    email: &'a str,
    stored_postcode: &'a str,
    stored_radius: u16,
    status: &'static str,
    status_key: &'static str,
    signed_up: String,
    language: &'static str,
    postcode: &'a str,
    radius_km: &'a str,
    postcode_error: Option<&'static str>,
    radius_error: Option<&'static str>,
    /// The person's odds (docs/statistics.md); None when not shown.
    odds: Option<OddsView>,
    waiting: bool,
    /// Why they are paused, when mail to them was refused for good (the date filled in).
    undeliverable: Option<String>,
}

#[derive(Deserialize)]
pub struct PreferencesForm {
    #[serde(default)]
    postcode: String,
    #[serde(default)]
    radius_km: String,
}

#[derive(Deserialize)]
pub struct ManageQuery {
    notice: Option<String>,
}

pub async fn manage_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    query: web::Query<ManageQuery>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let notice = match query.notice.as_deref() {
        Some("saved") => Some("manage.saved"),
        Some("paused") => Some("manage.paused"),
        Some("resumed") => Some("manage.resumed"),
        _ => None,
    };
    match state.services.view(&token).await {
        Ok(view) => {
            let postcode = view.postcode.as_str().to_owned();
            let radius = view.radius.km().to_string();
            let t = T::new(lang.lang);
            let odds = match state.services.personal_odds(&token).await {
                Ok(odds) => odds.map(|odds| odds_view(&t, odds)),
                Err(e) => {
                    log_failure(&e);
                    None
                }
            };
            render_manage(
                &state,
                &lang,
                StatusCode::OK,
                &token,
                &view,
                notice,
                &postcode,
                &radius,
                &[],
                odds,
            )
        }
        Err(e) => failure(&state, &lang, &e),
    }
}

#[allow(clippy::too_many_arguments)]
fn render_manage(
    state: &AppState,
    lang: &RequestLang,
    status: StatusCode,
    token: &str,
    view: &RegistrantView,
    notice: Option<&'static str>,
    postcode: &str,
    radius_km: &str,
    errors: &[FieldError],
    odds: Option<OddsView>,
) -> HttpResponse {
    let (status_name, status_key) = match view.status {
        RegistrantStatus::Pending => ("pending", "status.pending"),
        RegistrantStatus::Active => ("active", "status.active"),
        RegistrantStatus::Paused => ("paused", "status.paused"),
    };
    let t = T::new(lang.lang);
    let undeliverable = view.undeliverable_at.map(|at| {
        t.get("manage.undeliverable")
            .replace("{date}", &at.format("%Y-%m-%d").to_string())
    });
    let body = ManagePage {
        t,
        token,
        notice,
        email: view.email.as_str(),
        stored_postcode: view.postcode.as_str(),
        stored_radius: view.radius.km(),
        status: status_name,
        status_key,
        signed_up: view.signed_up_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        language: match view.language {
            restdose_domain::Lang::De => "Deutsch",
            restdose_domain::Lang::En => "English",
        },
        postcode,
        radius_km,
        postcode_error: field_message(errors, "postcode"),
        radius_error: field_message(errors, "radius_km"),
        odds,
        waiting: view.status == RegistrantStatus::Active,
        undeliverable,
    }
    .render();
    page(state, lang, status, body)
}

fn see_manage(token: &str, notice: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/manage/{token}?notice={notice}")))
        .finish()
}

pub async fn manage_preferences(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    form: web::Form<PreferencesForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let radius = if form.radius_km.trim().is_empty() {
        RadiusInput::Missing
    } else {
        RadiusInput::Text(&form.radius_km)
    };
    match state
        .services
        .update_preferences(&token, &form.postcode, radius)
        .await
    {
        Ok(()) => see_manage(&token, "saved"),
        Err(ServiceError::Validation(errors)) => match state.services.view(&token).await {
            Ok(view) => render_manage(
                &state,
                &lang,
                StatusCode::UNPROCESSABLE_ENTITY,
                &token,
                &view,
                None,
                &form.postcode,
                &form.radius_km,
                &errors,
                None,
            ),
            Err(e) => failure(&state, &lang, &e),
        },
        Err(e) => failure(&state, &lang, &e),
    }
}

pub async fn manage_pause(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    toggle_pause(&state, &req, &token, true).await
}

pub async fn manage_resume(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    toggle_pause(&state, &req, &token, false).await
}

async fn toggle_pause(
    state: &AppState,
    req: &HttpRequest,
    token: &str,
    pause: bool,
) -> HttpResponse {
    match state.services.set_paused(token, pause).await {
        Ok(RegistrantStatus::Paused) => see_manage(token, "paused"),
        Ok(RegistrantStatus::Active) => see_manage(token, "resumed"),
        Ok(RegistrantStatus::Pending) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/manage/{token}")))
            .finish(),
        Err(e) => failure(state, &request_lang(req), &e),
    }
}

pub async fn manage_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    delete_and_say_so(&state, &req, &token).await
}

pub async fn unsubscribe_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    let lang = request_lang(&req);
    // Only show the button for a link that works; the GET itself changes nothing.
    match state.services.view(&token).await {
        Ok(_) => {
            let body = UnsubscribePage {
                t: T::new(lang.lang),
                token: &token,
            }
            .render();
            page(&state, &lang, StatusCode::OK, body)
        }
        Err(e) => failure(&state, &lang, &e),
    }
}

/// RFC 8058 one-click unsubscribe (`List-Unsubscribe=One-Click` in the body) and the page's
/// button both land here; leaving the list means deleting the data.
pub async fn unsubscribe_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    delete_and_say_so(&state, &req, &token).await
}

async fn delete_and_say_so(state: &AppState, req: &HttpRequest, token: &str) -> HttpResponse {
    let lang = request_lang(req);
    match state.services.delete(token).await {
        Ok(()) => message(
            state,
            &lang,
            StatusCode::OK,
            "deleted.title",
            "deleted.body",
            Some(("/".to_owned(), "deleted.again")),
        ),
        Err(e) => failure(state, &lang, &e),
    }
}
