//! Who may post: the session (401 with the login form without one) and the form's CSRF token
//! (403), checked before any use case runs.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use restdose_core::SessionContext;

use crate::auth;
use crate::html::page;
use crate::i18n::T;
use crate::portal::forms::{CsrfField, FormResult, form_or_empty};
use crate::portal::replies::{
    Nav, anonymous_token, attempt, csrf_refused, nav, portal_failure, with_cookie,
};
use crate::request_lang::RequestLang;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "portal_login.html")]
pub(crate) struct LoginPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    email: String,
    alert: Option<String>,
}

/// The live session of the request; without one, 401 with the login form.
pub(crate) async fn session_or_login(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
) -> Result<SessionContext, HttpResponse> {
    match auth::current_session(state, req).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(login_required(state, req, lang)),
        Err(e) => Err(portal_failure(state, lang, None, &e)),
    }
}

/// For a POST of a session: the session (401 without), then the form's CSRF token (403 when
/// missing or wrong). Only then may the use case run.
pub(crate) async fn session_post<F: CsrfField + Default>(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
    form: FormResult<F>,
) -> Result<(SessionContext, F), HttpResponse> {
    let session = session_or_login(state, req, lang).await?;
    let form = form_or_empty(form)?;
    if !auth::csrf_ok(&session, form.csrf()) {
        return Err(csrf_refused(state, lang, nav(&session)));
    }
    Ok((session, form))
}

/// For a form shown before login: the double-submit token must match its cookie (403 otherwise).
pub(crate) fn anonymous_post<F: CsrfField + Default>(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
    form: FormResult<F>,
) -> Result<F, HttpResponse> {
    let form = form_or_empty(form)?;
    if !auth::anonymous_csrf_ok(req, form.csrf()) {
        return Err(csrf_refused(state, lang, None));
    }
    Ok(form)
}

pub(crate) fn render_login(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
    status: StatusCode,
    email: &str,
    alert: Option<String>,
) -> HttpResponse {
    let (csrf, cookie) = attempt!(anonymous_token(state, req, lang));
    let rendered = LoginPage {
        t: T::new(lang.lang),
        nav: None,
        csrf,
        email: email.to_owned(),
        alert,
    }
    .render();
    with_cookie(page(state, lang, status, rendered), cookie)
}

/// 401 with the login form; a session cookie that no longer works is removed.
pub(crate) fn login_required(
    state: &AppState,
    req: &HttpRequest,
    lang: &RequestLang,
) -> HttpResponse {
    let t = T::new(lang.lang);
    let response = render_login(
        state,
        req,
        lang,
        StatusCode::UNAUTHORIZED,
        "",
        Some(t.get("portal.login.required").to_owned()),
    );
    let stale = req
        .cookie(auth::SESSION_COOKIE)
        .map(|_| auth::expired_session_cookie(state.options.secure_cookies));
    with_cookie(response, stale)
}
