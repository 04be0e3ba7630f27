//! The practice's API tokens for its practice software: create and revoke.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use restdose_core::{ServiceError, SessionContext};
use uuid::Uuid;

use crate::error::status_of;
use crate::html::{field_message, page};
use crate::i18n::T;
use crate::portal::forms::{CsrfForm, FormResult, NoticeQuery, TokenForm, parse_id};
use crate::portal::replies::{Nav, attempt, moment, nav, portal_failure, see_other};
use crate::portal::session_guard::{session_or_login, session_post};
use crate::request_lang::{RequestLang, request_lang};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "portal_tokens.html")]
struct TokensPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    tokens: Vec<TokenRow>,
    secret: Option<String>,
    name: String,
    name_error: Option<&'static str>,
    notice: Option<&'static str>,
}

struct TokenRow {
    id: Uuid,
    name: String,
    created: String,
    last_used: Option<String>,
    revoked: Option<String>,
}

#[derive(Default)]
struct TokenExtras {
    secret: Option<String>,
    name: String,
    name_error: Option<&'static str>,
    notice: Option<&'static str>,
}

async fn render_tokens(
    state: &AppState,
    lang: &RequestLang,
    session: &SessionContext,
    status: StatusCode,
    extras: TokenExtras,
) -> HttpResponse {
    let tokens = match state.services.api_tokens(&session.principal).await {
        Ok(tokens) => tokens,
        Err(e) => return portal_failure(state, lang, nav(session), &e),
    };
    let tokens = tokens
        .into_iter()
        .map(|token| TokenRow {
            id: token.id,
            created: moment(state, token.created_at),
            last_used: token.last_used_at.map(|t| moment(state, t)),
            revoked: token.revoked_at.map(|t| moment(state, t)),
            name: token.name,
        })
        .collect();
    let rendered = TokensPage {
        t: T::new(lang.lang),
        nav: nav(session),
        csrf: session.csrf_token.clone(),
        tokens,
        secret: extras.secret,
        name: extras.name,
        name_error: extras.name_error,
        notice: extras.notice,
    }
    .render();
    page(state, lang, status, rendered)
}

pub async fn tokens_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let session = attempt!(session_or_login(&state, &req, &lang).await);
    let extras = TokenExtras {
        notice: (query.notice.as_deref() == Some("revoked")).then_some("portal.tokens.revoked"),
        ..TokenExtras::default()
    };
    render_tokens(&state, &lang, &session, StatusCode::OK, extras).await
}

pub async fn token_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: FormResult<TokenForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, form) = attempt!(session_post(&state, &req, &lang, form).await);
    match state
        .services
        .create_api_token(&session.principal, &form.name)
        .await
    {
        // Shown this once; only its hash is stored. `page` sends `Cache-Control: no-store`.
        Ok(created) => {
            let extras = TokenExtras {
                secret: Some(created.secret),
                ..TokenExtras::default()
            };
            render_tokens(&state, &lang, &session, StatusCode::OK, extras).await
        }
        Err(ref e @ ServiceError::Validation(ref errors)) => {
            let extras = TokenExtras {
                name_error: field_message(errors, "name"),
                name: form.name,
                ..TokenExtras::default()
            };
            render_tokens(&state, &lang, &session, status_of(e), extras).await
        }
        Err(e) => portal_failure(&state, &lang, nav(&session), &e),
    }
}

pub async fn token_revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: FormResult<CsrfForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let (session, _) = attempt!(session_post(&state, &req, &lang, form).await);
    match state
        .services
        .revoke_api_token(&session.principal, parse_id(&id))
        .await
    {
        Ok(()) => see_other("/portal/tokens?notice=revoked"),
        Err(e) => portal_failure(&state, &lang, nav(&session), &e),
    }
}
