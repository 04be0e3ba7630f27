//! Registering a practice and verifying its login address.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use restdose_core::{FieldError, PracticeSignUp, ServiceError};

use crate::auth;
use crate::error::status_of;
use crate::html::{field_message, page};
use crate::i18n::T;
use crate::portal::forms::{FormResult, SignupForm};
use crate::portal::replies::{
    Nav, anonymous_token, attempt, failure_alert, portal_failure, retry_after, say, with_cookie,
};
use crate::portal::session_guard::anonymous_post;
use crate::request_lang::{RequestLang, request_lang};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "portal_signup.html")]
struct SignupPage {
    t: T,
    nav: Option<Nav>,
    csrf: String,
    name: String,
    street: String,
    postcode: String,
    city: String,
    phone: String,
    email: String,
    name_error: Option<&'static str>,
    street_error: Option<&'static str>,
    postcode_error: Option<&'static str>,
    city_error: Option<&'static str>,
    phone_error: Option<&'static str>,
    email_error: Option<&'static str>,
    password_error: Option<&'static str>,
    has_errors: bool,
    alert: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "portal_verify.html")]
struct VerifyPage {
    t: T,
    nav: Option<Nav>,
    token: String,
}

// --- sign-up and verification --------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn render_signup(
    state: &AppState,
    lang: &RequestLang,
    status: StatusCode,
    csrf: String,
    form: &SignupForm,
    errors: &[FieldError],
    alert: Option<&'static str>,
) -> HttpResponse {
    let rendered = SignupPage {
        t: T::new(lang.lang),
        nav: None,
        csrf,
        name: form.name.clone(),
        street: form.street.clone(),
        postcode: form.postcode.clone(),
        city: form.city.clone(),
        phone: form.phone.clone(),
        email: form.email.clone(),
        name_error: field_message(errors, "name"),
        street_error: field_message(errors, "street"),
        postcode_error: field_message(errors, "postcode"),
        city_error: field_message(errors, "city"),
        phone_error: field_message(errors, "phone"),
        email_error: field_message(errors, "email"),
        password_error: field_message(errors, "password"),
        has_errors: !errors.is_empty(),
        alert,
    }
    .render();
    page(state, lang, status, rendered)
}

pub async fn signup_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    let (csrf, cookie) = attempt!(anonymous_token(&state, &req, &lang));
    let response = render_signup(
        &state,
        &lang,
        StatusCode::OK,
        csrf,
        &SignupForm::default(),
        &[],
        None,
    );
    with_cookie(response, cookie)
}

pub async fn signup_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: FormResult<SignupForm>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let form = attempt!(anonymous_post(&state, &req, &lang, form));
    let input = PracticeSignUp {
        name: form.name.clone(),
        street: form.street.clone(),
        postcode: form.postcode.clone(),
        city: form.city.clone(),
        phone: form.phone.clone(),
        email: form.email.clone(),
        password: form.password.clone(),
    };
    let client = auth::client_ip(&req);
    let result = state
        .services
        .sign_up_practice(&input, lang.lang, client.as_deref())
        .await;
    let (csrf, cookie) = attempt!(anonymous_token(&state, &req, &lang));
    let response = match result {
        Ok(()) => say(
            &state,
            &lang,
            None,
            StatusCode::OK,
            "portal.signup.done_title",
            "portal.signup.done_body",
            None,
        ),
        Err(ServiceError::Validation(errors)) => render_signup(
            &state,
            &lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            csrf,
            &form,
            &errors,
            None,
        ),
        Err(e) => {
            let response = render_signup(
                &state,
                &lang,
                status_of(&e),
                csrf,
                &form,
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
    };
    with_cookie(response, cookie)
}

/// The link from the verification mail opens a page with a button; mail scanners follow GET
/// links, so only the POST verifies.
pub async fn verify_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    let lang = request_lang(&req);
    let rendered = VerifyPage {
        t: T::new(lang.lang),
        nav: None,
        token: token.into_inner(),
    }
    .render();
    page(&state, &lang, StatusCode::OK, rendered)
}

pub async fn verify_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> HttpResponse {
    let lang = request_lang(&req);
    match state.services.verify_practice_email(&token).await {
        Ok(()) => say(
            &state,
            &lang,
            None,
            StatusCode::OK,
            "portal.verified.title",
            "portal.verified.body",
            Some(("/portal/login".to_owned(), "portal.login.title")),
        ),
        Err(e) => portal_failure(&state, &lang, None, &e),
    }
}
