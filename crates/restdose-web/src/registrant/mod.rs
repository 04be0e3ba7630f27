//! The registrant's pages: signing up, confirming, and managing or leaving the waitlist.

mod manage;
mod signup;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(signup::signup_form))
        .route("/", web::post().to(signup::signup_submit))
        .route("/confirm/{token}", web::get().to(signup::confirm_page))
        .route("/confirm/{token}", web::post().to(signup::confirm_submit))
        .route("/manage/{token}", web::get().to(manage::manage_page))
        .route(
            "/manage/{token}/preferences",
            web::post().to(manage::manage_preferences),
        )
        .route(
            "/manage/{token}/pause",
            web::post().to(manage::manage_pause),
        )
        .route(
            "/manage/{token}/resume",
            web::post().to(manage::manage_resume),
        )
        .route(
            "/manage/{token}/delete",
            web::post().to(manage::manage_delete),
        )
        .route(
            "/unsubscribe/{token}",
            web::get().to(manage::unsubscribe_page),
        )
        .route(
            "/unsubscribe/{token}",
            web::post().to(manage::unsubscribe_submit),
        );
}
