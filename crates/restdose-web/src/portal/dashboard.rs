//! The practice's dashboard: its status, its offers and its own figures.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use restdose_core::{Principal, ServiceError};
use uuid::Uuid;

use crate::html::page;
use crate::i18n::T;
use crate::portal::replies::{
    Nav, attempt, nav, offer_status, portal_failure, practice_status, see_other,
};
use crate::portal::session_guard::session_or_login;
use crate::request_lang::request_lang;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "portal_dashboard.html")]
struct DashboardPage {
    t: T,
    nav: Option<Nav>,
    practice_name: String,
    status: &'static str,
    status_key: &'static str,
    approved: bool,
    offers: Vec<OfferRow>,
    /// The practice's own figures: (label key, last 30 days, all time).
    figures: Vec<(&'static str, String, String)>,
}

struct OfferRow {
    id: Uuid,
    vaccine: String,
    window: String,
    doses: i32,
    status: &'static str,
    status_key: &'static str,
}

pub async fn dashboard(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = request_lang(&req);
    let session = attempt!(session_or_login(&state, &req, &lang).await);
    if let Principal::Admin { .. } = session.principal {
        return see_other("/admin");
    }
    // A practice that is not approved may not list offers; it sees its status instead.
    let (offers, approved) = match state.services.offers(&session.principal).await {
        Ok(offers) => (offers, true),
        Err(ServiceError::Forbidden) => (Vec::new(), false),
        Err(e) => return portal_failure(&state, &lang, nav(&session), &e),
    };
    let (status, status_key) = session
        .practice
        .as_ref()
        .map_or(("pending", "portal.practice_status.pending"), |p| {
            practice_status(p.status)
        });
    let offers = offers
        .into_iter()
        .map(|offer| {
            let (status, status_key) = offer_status(offer.status);
            OfferRow {
                id: offer.id,
                window: state.services.format_window(offer.starts_at, offer.ends_at),
                vaccine: offer.vaccine,
                doses: offer.doses,
                status,
                status_key,
            }
        })
        .collect();
    let t = T::new(lang.lang);
    let figures = if approved {
        match state.services.practice_statistics(&session.principal).await {
            Ok(figures) => crate::statistics::figures::practice_rows(&t, &figures),
            Err(e) => return portal_failure(&state, &lang, nav(&session), &e),
        }
    } else {
        Vec::new()
    };
    let rendered = DashboardPage {
        t,
        nav: nav(&session),
        practice_name: session
            .practice
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default(),
        status,
        status_key,
        approved,
        offers,
        figures,
    }
    .render();
    page(&state, &lang, StatusCode::OK, rendered)
}
