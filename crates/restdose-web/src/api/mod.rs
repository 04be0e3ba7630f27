//! The JSON APIs: sign-ups (public), offers and check-ins (practice software, bearer token), and
//! their OpenAPI document, generated from the very types the handlers parse.

mod json_body;
pub(crate) mod offer_bodies;
pub(crate) mod offers;
pub mod openapi;
pub(crate) mod registrations;
#[cfg(test)]
mod tests;

use actix_web::web;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/v1/registrations",
        web::post().to(registrations::create_registration),
    )
    .configure(offers::routes);
}
