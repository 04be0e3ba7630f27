//! Changing the password, and resetting a forgotten one by mail.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use restdose_core::{FieldError, ServiceError};

use crate::auth;
use crate::error::status_of;
use crate::html::{field_message, page};
use crate::i18n::T;
use crate::portal::forms::{ForgotForm, FormResult, PasswordForm, ResetForm};
use crate::portal::replies::{
    Nav, anonymous_token, attempt, failure_alert, nav, portal_failure, retry_after, say,
    with_cookie,
};
use crate::portal::session_guard::{anonymous_post, session_or_login, session_post};
use crate::request_lang::{RequestLang, request_lang};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "portal_password.html")]
struct PasswordPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    current_error: Option<&'static str>,
    new_error: Option<&'static str>,
    notice: Option<&'static str>,
    alert: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "portal_forgot.html")]
struct ForgotPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    email: String,
    email_error: Option<&'static str>,
    alert: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "portal_reset.html")]
struct ResetPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    token: String,
    password_error: Option<&'static str>,
    alert: Option<&'static str>,
}

fn render_password(
    state: &AppState,
    lang: &RequestLang,
    nav: Option<Nav>,
    status: StatusCode,
    errors: &[FieldError],
    notice: Option<&'static str>,
    alert: Option<&'static str>,
) -> HttpResponse {
    let rendered = PasswordPage {
        t: T::new(lang.lang),
        csrf: nav.as_ref().map(|n| n.csrf.clone()).unwrap_or_default(),
        nav,
        current_error: field_message(errors, "current_password"),
        new_error: field_message(errors, "new_password"),
        notice,
        alert,
    }
    .render();
    page(state, lang, status, rendered)
}

pub async fn password_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    let session = attempt!(session_or_login(&state, &req, &lang).await);
    render_password(
        &state,
        &lang,
        nav(&session),
        StatusCode::OK,
        &[],
        None,
        None,
    )
}

pub async fn password_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: FormResult<PasswordForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, form) = attempt!(session_post(&state, &req, &lang, form).await);
    match state
        .services
        .change_password(&session, &form.current_password, &form.new_password)
        .await
    {
        Ok(login) => {
            // Every session ended, this one too; the page's forms need the new one's token.
            let fresh = match state.services.session(login.cookie.expose()).await {
                Ok(Some(fresh)) => fresh,
                Ok(None) => {
                    return portal_failure(
                        &state,
                        &lang,
                        None,
                        &ServiceError::Internal("new session missing".to_owned()),
                    );
                }
                Err(e) => return portal_failure(&state, &lang, None, &e),
            };
            let cookie = auth::session_cookie(login.cookie.expose(), state.options.secure_cookies);
            let response = render_password(
                &state,
                &lang,
                nav(&fresh),
                StatusCode::OK,
                &[],
                Some("portal.password.changed"),
                None,
            );
            with_cookie(response, Some(cookie))
        }
        Err(ServiceError::Validation(errors)) => render_password(
            &state,
            &lang,
            nav(&session),
            StatusCode::UNPROCESSABLE_ENTITY,
            &errors,
            None,
            None,
        ),
        Err(e) => render_password(
            &state,
            &lang,
            nav(&session),
            status_of(&e),
            &[],
            None,
            Some(failure_alert(&e)),
        ),
    }
}

fn render_forgot(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
    status: StatusCode,
    email: &str,
    errors: &[FieldError],
    alert: Option<&'static str>,
) -> HttpResponse {
    let (csrf, cookie) = attempt!(anonymous_token(state, req, lang));
    let rendered = ForgotPage {
        t: T::new(lang.lang),
        nav: None,
        csrf,
        email: email.to_owned(),
        email_error: field_message(errors, "email"),
        alert,
    }
    .render();
    with_cookie(page(state, lang, status, rendered), cookie)
}

pub async fn forgot_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    render_forgot(&state, &req, &lang, StatusCode::OK, "", &[], None)
}

pub async fn forgot_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: FormResult<ForgotForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let form = attempt!(anonymous_post(&state, &req, &lang, form));
    match state
        .services
        .request_password_reset(&form.email, lang.lang, auth::client_ip(&req).as_deref())
        .await
    {
        // The same answer whether or not the address has an account.
        Ok(()) => say(
            &state,
            &lang,
            None,
            StatusCode::OK,
            "portal.forgot.sent_title",
            "portal.forgot.sent_body",
            Some(("/portal/login".to_owned(), "portal.login.title")),
        ),
        Err(ServiceError::Validation(errors)) => render_forgot(
            &state,
            &req,
            &lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form.email,
            &errors,
            None,
        ),
        Err(e) => {
            let response = render_forgot(
                &state,
                &req,
                &lang,
                status_of(&e),
                &form.email,
                &[],
                Some(failure_alert(&e)),
            );
            match e {
                ServiceError::Throttled { retry_after_secs } => {
                    retry_after(response, retry_after_secs)
                }
                _ => response,
            }
        }
    }
}

fn render_reset(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
    status: StatusCode,
    token: String,
    errors: &[FieldError],
    alert: Option<&'static str>,
) -> HttpResponse {
    let (csrf, cookie) = attempt!(anonymous_token(state, req, lang));
    let rendered = ResetPage {
        t: T::new(lang.lang),
        nav: None,
        csrf,
        token,
        password_error: field_message(errors, "password"),
        alert,
    }
    .render();
    with_cookie(page(state, lang, status, rendered), cookie)
}

/// Shows the form; whether the link works is known only when it is used (there is no use case
/// that checks a reset link without consuming it).
pub async fn reset_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    let lang = request_lang(&req);
    render_reset(
        &state,
        &req,
        &lang,
        StatusCode::OK,
        token.into_inner(),
        &[],
        None,
    )
}

pub async fn reset_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    form: FormResult<ResetForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let form = attempt!(anonymous_post(&state, &req, &lang, form));
    let token = token.into_inner();
    match state
        .services
        .reset_password(&token, &form.new_password)
        .await
    {
        Ok(()) => say(
            &state,
            &lang,
            None,
            StatusCode::OK,
            "portal.reset.done_title",
            "portal.reset.done_body",
            Some(("/portal/login".to_owned(), "portal.login.title")),
        ),
        Err(ServiceError::Validation(errors)) => render_reset(
            &state,
            &req,
            &lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            token,
            &errors,
            None,
        ),
        Err(e @ ServiceError::InvalidLink) => portal_failure(&state, &lang, None, &e),
        Err(e) => render_reset(
            &state,
            &req,
            &lang,
            status_of(&e),
            token,
            &[],
            Some(failure_alert(&e)),
        ),
    }
}
