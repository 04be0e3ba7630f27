//! Logging in and out.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use restdose_core::ServiceError;
use restdose_store::Role;

use crate::auth;
use crate::error::status_of;
use crate::i18n::T;
use crate::portal::forms::{CsrfForm, FormResult, LoginForm};
use crate::portal::replies::{
    attempt, failure_alert, nav, portal_failure, retry_after, see_other, with_cookie,
};
use crate::portal::session_guard::{anonymous_post, render_login, session_post};
use crate::request_lang::request_lang;
use crate::state::AppState;

pub async fn login_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    render_login(&state, &req, &lang, StatusCode::OK, "", None)
}

pub async fn login_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: FormResult<LoginForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let t = T::new(lang.lang);
    let form = attempt!(anonymous_post(&state, &req, &lang, form));
    let ip = auth::client_ip(&req);
    let device = req.cookie(auth::DEVICE_COOKIE);
    match state
        .services
        .log_in(
            &form.email,
            &form.password,
            ip.as_deref(),
            device.as_ref().map(|c| c.value()),
        )
        .await
    {
        Ok(login) => {
            let target = match login.role {
                Role::Admin => "/admin",
                Role::Practice => "/portal",
            };
            let secure = state.options.secure_cookies;
            let cookie = auth::session_cookie(login.cookie.expose(), secure);
            let device = auth::device_cookie(&login.device, secure);
            with_cookie(with_cookie(see_other(target), Some(cookie)), Some(device))
        }
        Err(ServiceError::Unauthenticated) => render_login(
            &state,
            &req,
            &lang,
            StatusCode::UNAUTHORIZED,
            &form.email,
            Some(t.get("portal.login.failed").to_owned()),
        ),
        Err(e @ ServiceError::Throttled { retry_after_secs }) => {
            let minutes = (retry_after_secs + 59) / 60;
            let response = render_login(
                &state,
                &req,
                &lang,
                status_of(&e),
                &form.email,
                Some(t.fill("portal.login.throttled", &[("minutes", minutes)])),
            );
            retry_after(response, retry_after_secs)
        }
        Err(e @ ServiceError::EmailNotVerified) => portal_failure(&state, &lang, None, &e),
        Err(e) => render_login(
            &state,
            &req,
            &lang,
            status_of(&e),
            &form.email,
            Some(t.get(failure_alert(&e)).to_owned()),
        ),
    }
}

pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: FormResult<CsrfForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, _) = attempt!(session_post(&state, &req, &lang, form).await);
    match state.services.log_out(&session).await {
        Ok(()) => with_cookie(
            see_other("/portal/login"),
            Some(auth::expired_session_cookie(state.options.secure_cookies)),
        ),
        Err(e) => portal_failure(&state, &lang, nav(&session), &e),
    }
}
