//! Which language a page is shown in: `?lang=` (remembered in a cookie), then the cookie, then
//! `Accept-Language`, then German.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use restdose_domain::Lang;

pub const LANG_COOKIE: &str = "lang";

pub struct RequestLang {
    pub lang: Lang,
    /// Set when the visitor chose a language explicitly; the response remembers it.
    pub chosen: bool,
}

pub fn request_lang(req: &HttpRequest) -> RequestLang {
    let from_query = req
        .query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix("lang=").and_then(Lang::from_code));
    if let Some(lang) = from_query {
        return RequestLang { lang, chosen: true };
    }
    let lang = req
        .cookie(LANG_COOKIE)
        .and_then(|c| Lang::from_code(c.value()))
        .or_else(|| {
            req.headers()
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::from_accept_language)
        })
        .unwrap_or_default();
    RequestLang {
        lang,
        chosen: false,
    }
}

pub fn lang_cookie(lang: Lang, secure: bool) -> Cookie<'static> {
    Cookie::build(LANG_COOKIE, lang.code())
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::days(365))
        .finish()
}
