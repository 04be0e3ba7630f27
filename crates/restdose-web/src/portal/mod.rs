//! The practice portal: sign-up, e-mail verification, login/logout, password change and reset,
//! the dashboard, the "spare doses" form, the offer page (check-in, no-show, add doses, close,
//! cancel) and API tokens.
//!
//! Only translation lives here: forms become calls on `Services`, results become pages. Who may
//! do what is decided by the use cases (`Principal`); statuses come from `error::status_of`.
//! Every POST of a session checks the session first (401), then its CSRF token (403); forms
//! shown before login use the double-submit cookie from `auth`.

#![allow(
    clippy::result_large_err,
    reason = "the Err is the finished answer (a page), built at most once per request"
)]

mod account;
mod dashboard;
mod forms;
mod offers;
mod replies;
mod session_guard;
#[cfg(test)]
mod tests;
mod tokens;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/portal", web::get().to(dashboard::dashboard))
        .route(
            "/portal/signup",
            web::get().to(account::register::signup_form),
        )
        .route(
            "/portal/signup",
            web::post().to(account::register::signup_submit),
        )
        .route(
            "/portal/verify/{token}",
            web::get().to(account::register::verify_page),
        )
        .route(
            "/portal/verify/{token}",
            web::post().to(account::register::verify_submit),
        )
        .route("/portal/login", web::get().to(account::login::login_form))
        .route(
            "/portal/login",
            web::post().to(account::login::login_submit),
        )
        .route("/portal/logout", web::post().to(account::login::logout))
        .route(
            "/portal/password",
            web::get().to(account::password::password_form),
        )
        .route(
            "/portal/password",
            web::post().to(account::password::password_submit),
        )
        .route(
            "/portal/password/forgot",
            web::get().to(account::password::forgot_form),
        )
        .route(
            "/portal/password/forgot",
            web::post().to(account::password::forgot_submit),
        )
        .route(
            "/portal/password/reset/{token}",
            web::get().to(account::password::reset_form),
        )
        .route(
            "/portal/password/reset/{token}",
            web::post().to(account::password::reset_submit),
        )
        // Before `/portal/offers/{id}`, which would otherwise take "new" as an id.
        .route("/portal/offers/new", web::get().to(offers::offer_form))
        .route("/portal/offers", web::post().to(offers::offer_submit))
        .route("/portal/offers/{id}", web::get().to(offers::offer_page))
        .route(
            "/portal/offers/{id}/checkins",
            web::post().to(offers::offer_check_in),
        )
        .route(
            "/portal/offers/{id}/bookings/{code}/no-show",
            web::post().to(offers::offer_no_show),
        )
        .route(
            "/portal/offers/{id}/doses",
            web::post().to(offers::offer_add_doses),
        )
        .route(
            "/portal/offers/{id}/close",
            web::post().to(offers::offer_close),
        )
        .route(
            "/portal/offers/{id}/cancel",
            web::post().to(offers::offer_cancel),
        )
        .route("/portal/tokens", web::get().to(tokens::tokens_page))
        .route("/portal/tokens", web::post().to(tokens::token_create))
        .route(
            "/portal/tokens/{id}/revoke",
            web::post().to(tokens::token_revoke),
        );
}
