//! Joining the waitlist: the sign-up form and the confirmation link (double opt-in).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use restdose_core::{FieldError, RadiusInput, ServiceError, validate_sign_up};
use serde::Deserialize;

use crate::admission::rejection::{Rejection, rejection_response};
use crate::auth;
use crate::error::{log_failure, status_of};
use crate::html::{failure, field_message, message, page};
use crate::i18n::T;
use crate::request_lang::request_lang;
use crate::state::AppState;

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
#[template(path = "confirm.html")]
struct ConfirmPage<'a> {
    t: T,
    token: &'a str,
    postcode: &'a str,
    radius_km: u16,
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
    let client = auth::client_ip(&req);
    match state.services.sign_up(request, client.as_deref()).await {
        Ok(()) => message(
            &state,
            &lang,
            StatusCode::OK,
            "done.title",
            "done.body",
            None,
        ),
        // The same page as other refusals of too many requests, with `Retry-After`.
        Err(ServiceError::Throttled { retry_after_secs }) => rejection_response(
            &req,
            Rejection::RateLimited,
            u32::try_from(retry_after_secs).unwrap_or(u32::MAX),
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
        Ok(view) => {
            let body = ConfirmPage {
                t: T::new(lang.lang),
                token: &token,
                postcode: view.postcode.as_str(),
                radius_km: view.radius.km(),
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
