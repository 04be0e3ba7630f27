//! HTML pages. Every page works without JavaScript; every state change is a POST (mail
//! scanners follow GET links); forms re-render with messages beside the fields and keep input.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use restdose_core::registration::RegistrantView;
use restdose_core::{FieldError, RadiusInput, ServiceError, validate_sign_up};
use restdose_store::RegistrantStatus;
use serde::Deserialize;

use crate::AppState;
use crate::error::{RETRY_AFTER_SECS, log_failure, status_of};
use crate::i18n::T;
use crate::request_lang::{RequestLang, lang_cookie, request_lang};

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage<'a> {
    t: T,
    email: &'a str,
    postcode: &'a str,
    radius_km: &'a str,
    email_error: Option<&'static str>,
    postcode_error: Option<&'static str>,
    radius_error: Option<&'static str>,
    has_errors: bool,
    notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    t: T,
    title: &'static str,
    body: String,
    link: Option<(String, &'static str)>,
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage<'a> {
    t: T,
    token: &'a str,
}

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
    odds: Option<crate::statistics::OddsView>,
    waiting: bool,
    /// Why they are paused, when mail to them was refused for good (the date filled in).
    undeliverable: Option<String>,
}

#[derive(Deserialize)]
pub struct SignUpForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    postcode: String,
    #[serde(default)]
    radius_km: String,
}

#[derive(Deserialize)]
pub struct PreferencesForm {
    #[serde(default)]
    postcode: String,
    #[serde(default)]
    radius_km: String,
}

/// Renders a page; remembers an explicitly chosen language in a cookie.
pub(crate) fn page(
    state: &AppState,
    lang: &RequestLang,
    status: StatusCode,
    rendered: askama::Result<String>,
) -> HttpResponse {
    let body = match rendered {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            return HttpResponse::InternalServerError()
                .content_type("text/plain")
                .body("internal error");
        }
    };
    let mut response = HttpResponse::build(status);
    response
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if lang.chosen {
        response.cookie(lang_cookie(lang.lang, state.options.secure_cookies));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
    }
    response.body(body)
}

pub(crate) fn message(
    state: &AppState,
    lang: &RequestLang,
    status: StatusCode,
    title: &'static str,
    body: &'static str,
    link: Option<(String, &'static str)>,
) -> HttpResponse {
    let t = T::new(lang.lang);
    let policy = &state.services.policy;
    let body = t.fill(
        body,
        &[
            ("hours", policy.confirm_link_ttl.num_hours()),
            ("minutes", policy.resend_interval.num_minutes()),
        ],
    );
    page(
        state,
        lang,
        status,
        MessagePage {
            t,
            title,
            body,
            link,
        }
        .render(),
    )
}

/// A request turned away by admission control, as a page saying when to come back (the status
/// and `Retry-After` come from `error::rejection_response`).
pub(crate) fn retry_later_page(
    state: &AppState,
    lang: &RequestLang,
    status: StatusCode,
    body: &'static str,
    seconds: u32,
) -> HttpResponse {
    let t = T::new(lang.lang);
    let body = t.fill(body, &[("seconds", i64::from(seconds))]);
    page(
        state,
        lang,
        status,
        MessagePage {
            t,
            title: "error.title",
            body,
            link: Some(("/".to_owned(), "error.home")),
        }
        .render(),
    )
}

/// A failed use case as a page; the status comes from the one mapping in `error.rs`.
pub(crate) fn failure(state: &AppState, lang: &RequestLang, e: &ServiceError) -> HttpResponse {
    log_failure(e);
    let status = status_of(e);
    let (title, body) = match status {
        StatusCode::NOT_FOUND => ("link.title", "link.body"),
        StatusCode::SERVICE_UNAVAILABLE => ("error.title", "error.busy"),
        _ => ("error.title", "error.internal"),
    };
    message(
        state,
        lang,
        status,
        title,
        body,
        Some(("/".to_owned(), "error.home")),
    )
}

/// The message key for the error of `field`, if it has one (`field.<code>` in the tables).
pub(crate) fn field_message(errors: &[FieldError], field: &str) -> Option<&'static str> {
    errors
        .iter()
        .find(|e| e.field == field)
        .map(|e| crate::i18n::field_key(e.code))
}

pub async fn signup_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    let t = T::new(lang.lang);
    let page_body = SignupPage {
        t,
        email: "",
        postcode: "",
        radius_km: "10",
        email_error: None,
        postcode_error: None,
        radius_error: None,
        has_errors: false,
        notice: None,
    }
    .render();
    page(&state, &lang, StatusCode::OK, page_body)
}

pub async fn signup_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<SignUpForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let t = T::new(lang.lang);
    let form = form.into_inner();
    let radius = if form.radius_km.trim().is_empty() {
        RadiusInput::Missing
    } else {
        RadiusInput::Text(&form.radius_km)
    };
    let rerender = |status: StatusCode, errors: &[FieldError], notice: Option<&'static str>| {
        let body = SignupPage {
            t,
            email: &form.email,
            postcode: &form.postcode,
            radius_km: &form.radius_km,
            email_error: field_message(errors, "email"),
            postcode_error: field_message(errors, "postcode"),
            radius_error: field_message(errors, "radius_km"),
            has_errors: !errors.is_empty(),
            notice,
        }
        .render();
        page(&state, &lang, status, body)
    };
    let request = match validate_sign_up(
        &form.email,
        &form.postcode,
        radius,
        lang.lang,
        &state.services.gazetteer,
    ) {
        Ok(request) => request,
        Err(errors) => return rerender(StatusCode::UNPROCESSABLE_ENTITY, &errors, None),
    };
    match state.services.sign_up(request).await {
        Ok(()) => message(
            &state,
            &lang,
            StatusCode::OK,
            "done.title",
            "done.body",
            None,
        ),
        Err(e) => {
            log_failure(&e);
            let status = status_of(&e);
            let notice = if status == StatusCode::SERVICE_UNAVAILABLE {
                "error.busy"
            } else {
                "error.internal"
            };
            rerender(status, &[], Some(notice))
        }
    }
}

pub async fn confirm_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    let lang = request_lang(&req);
    match state.services.check_confirm_link(&token).await {
        Ok(()) => {
            let body = ConfirmPage {
                t: T::new(lang.lang),
                token: &token,
            }
            .render();
            page(&state, &lang, StatusCode::OK, body)
        }
        Err(e) => failure(&state, &lang, &e),
    }
}

pub async fn confirm_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    let lang = request_lang(&req);
    match state.services.confirm(&token).await {
        Ok(manage) => {
            let link = format!("/manage/{}", manage.expose());
            message(
                &state,
                &lang,
                StatusCode::OK,
                "confirmed.title",
                "confirmed.body",
                Some((link, "confirmed.manage")),
            )
        }
        Err(e) => failure(&state, &lang, &e),
    }
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
                Ok(odds) => odds.map(|odds| crate::statistics::odds_view(&t, odds)),
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
    odds: Option<crate::statistics::OddsView>,
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

/// A form body that could not be read (wrong type, too large, not URL-encoded): a page, not
/// actix's plain-text error.
pub fn bad_form(err: actix_web::error::UrlencodedError, req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::UrlencodedError;
    let (status, body) = match &err {
        UrlencodedError::Overflow { .. } | UrlencodedError::UnknownLength => {
            (StatusCode::PAYLOAD_TOO_LARGE, "error.too_large")
        }
        UrlencodedError::ContentType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "error.bad_form"),
        _ => (StatusCode::BAD_REQUEST, "error.bad_form"),
    };
    let response = match req.app_data::<web::Data<AppState>>() {
        Some(state) => message(
            state,
            &request_lang(req),
            status,
            "error.title",
            body,
            Some(("/".to_owned(), "error.home")),
        ),
        None => HttpResponse::build(status).finish(),
    };
    actix_web::error::InternalError::from_response(err, response).into()
}

pub async fn not_found(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    message(
        &state,
        &lang,
        StatusCode::NOT_FOUND,
        "error.title",
        "error.not_found",
        Some(("/".to_owned(), "error.home")),
    )
}
