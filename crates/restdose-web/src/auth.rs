//! Cookies and CSRF for the portal. The session cookie is HttpOnly and SameSite=Strict (Secure
//! when the public URL is https); its value is a 256-bit secret whose SHA-256 is the session id.
//! Every form of a session carries the session's CSRF token; forms shown before login (sign-up,
//! login, password reset) use a double-submit cookie instead.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use restdose_core::{ServiceError, SessionContext};
use restdose_crypto::SecretToken;

use crate::state::AppState;

pub const SESSION_COOKIE: &str = "restdose_session";
pub const CSRF_COOKIE: &str = "restdose_csrf";
/// Proof of an earlier successful login to an account from this browser: the login throttle
/// judges its holder by its own failures only (`Services::log_in`). Sent only to the login.
pub const DEVICE_COOKIE: &str = "restdose_device";

pub fn session_cookie(value: &str, secure: bool) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, value.to_owned())
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .finish()
}

/// The device cookie, kept for 180 days.
pub fn device_cookie(value: &str, secure: bool) -> Cookie<'static> {
    Cookie::build(DEVICE_COOKIE, value.to_owned())
        .path("/portal/login")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::days(180))
        .finish()
}

/// A cookie that deletes the session cookie in the browser.
pub fn expired_session_cookie(secure: bool) -> Cookie<'static> {
    let mut cookie = session_cookie("", secure);
    cookie.make_removal();
    cookie
}

/// The live session of this request, if any.
pub async fn current_session(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<SessionContext>, ServiceError> {
    match req.cookie(SESSION_COOKIE) {
        Some(cookie) => state.services.session(cookie.value()).await,
        None => Ok(None),
    }
}

/// Compares in constant time, so the token cannot be guessed byte by byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// True when the form's token is the session's.
pub fn csrf_ok(session: &SessionContext, form_token: &str) -> bool {
    !form_token.is_empty() && same(&session.csrf_token, form_token)
}

/// The double-submit token for a form shown before login: the existing cookie's value, or a
/// new one (then the response must set the returned cookie).
pub fn anonymous_csrf(
    req: &HttpRequest,
    secure: bool,
) -> Result<(String, Option<Cookie<'static>>), ServiceError> {
    if let Some(existing) = req
        .cookie(CSRF_COOKIE)
        .filter(|c| SecretToken::parse(c.value()).is_ok())
    {
        return Ok((existing.value().to_owned(), None));
    }
    let token = SecretToken::generate()?;
    let cookie = Cookie::build(CSRF_COOKIE, token.expose().to_owned())
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .finish();
    Ok((token.expose().to_owned(), Some(cookie)))
}

/// True when the form's token matches the double-submit cookie.
pub fn anonymous_csrf_ok(req: &HttpRequest, form_token: &str) -> bool {
    req.cookie(CSRF_COOKIE)
        .is_some_and(|c| !form_token.is_empty() && same(c.value(), form_token))
}

/// The client address for login throttling: the same rule as the sign-up rate limit
/// (`admission::client_addr`: `X-Forwarded-For` only from a configured trusted proxy).
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    let trusted = req
        .app_data::<actix_web::web::Data<AppState>>()
        .map(|state| state.options.admission.trusted_proxies.as_slice())
        .unwrap_or_default();
    crate::admission::client_addr::client_addr_of(req, trusted).map(|ip| ip.to_string())
}
