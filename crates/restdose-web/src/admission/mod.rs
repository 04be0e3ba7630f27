//! Admission control: what the service does when more people arrive than it can serve.
//!
//! Every route belongs to a *budget* (`Budget::of`): public pages and the registration API,
//! claims (`/invitations…`, `/bookings…`), the practice portal and API, the admin pages, and
//! ops endpoints (`/healthz`, `/readyz`, `/metrics`), which are never limited. Each budget but
//! ops holds a bounded number of requests in flight (a semaphore) and a bounded queue in front
//! of it: a request that finds the queue full is answered at once with `503` and
//! `Retry-After`, and one that waits in the queue longer than `queue_wait` gets the same.
//! Under a sustained overload the queue stays full, so the surplus is turned away in well under
//! a millisecond while short bursts are still absorbed. Separate budgets mean a rush of sign-ups
//! can fill only its own slots: claims and practices keep theirs.
//!
//! Per-client and per-address abuse limits are not here: they live in the use cases
//! (`restdose_core::limits`), in the database, so that every process shares them and they
//! apply to the matched route, whatever the spelling of the raw path. The client address they
//! use is the peer's, or — only when the peer is a configured trusted proxy — taken from
//! `X-Forwarded-For` (`client_addr`).
//!
//! Rejections are counted in `restdose_admission_rejected_total{budget}`; the responses
//! themselves come from `rejection::rejection_response`.

pub mod client_addr;
pub mod rejection;
#[cfg(test)]
mod tests;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

// The paths the rest of the workspace uses (`restdose_web::admission::…`).
pub use crate::options::AdmissionOptions;
pub use client_addr::{client_addr, parse_trusted_proxies};

use rejection::{Rejection, rejection_response};

/// The budget a route draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Public,
    Claims,
    Practice,
    Admin,
    /// Health and metrics: never limited, so that a loaded instance is not taken for a dead one.
    Ops,
}

impl Budget {
    /// Classifies a request path (the path only: no query, no secrets are logged from it).
    pub fn of(path: &str) -> Budget {
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        match first {
            "healthz" | "readyz" | "metrics" => Budget::Ops,
            "invitations" | "bookings" => Budget::Claims,
            "portal" => Budget::Practice,
            "admin" => Budget::Admin,
            "api" if path.starts_with("/api/v1/offers") => Budget::Practice,
            _ => Budget::Public,
        }
    }

    /// The label in `restdose_admission_rejected_total{budget}`.
    pub fn name(self) -> &'static str {
        match self {
            Budget::Public => "public",
            Budget::Claims => "claims",
            Budget::Practice => "practice",
            Budget::Admin => "admin",
            Budget::Ops => "ops",
        }
    }
}

/// The slots of one budget and the queue in front of them.
struct Gate {
    slots: Semaphore,
    queued: AtomicUsize,
}

impl Gate {
    fn new(slots: usize) -> Gate {
        Gate {
            slots: Semaphore::new(slots.max(1)),
            queued: AtomicUsize::new(0),
        }
    }

    /// A slot: at once if one is free, else after waiting in the queue; `None` when the queue
    /// is full or the wait is over.
    async fn enter(&self, max_queued: usize, wait: Duration) -> Option<SemaphorePermit<'_>> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Some(permit);
        }
        let _place = QueuePlace::take(&self.queued, max_queued)?;
        match tokio::time::timeout(wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Some(permit),
            // Timed out, or (never: the semaphore is not closed) closed.
            Ok(Err(_)) | Err(_) => None,
        }
    }
}

/// A place in a gate's queue, given back when dropped (also when the client goes away while
/// waiting and actix drops the request).
struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    fn take(queued: &'a AtomicUsize, max: usize) -> Option<QueuePlace<'a>> {
        queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| QueuePlace(queued))
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Shared by all workers of one server.
pub(crate) struct Admission {
    options: AdmissionOptions,
    public: Gate,
    claims: Gate,
    practice: Gate,
    admin: Gate,
}

impl Admission {
    pub(crate) fn new(options: AdmissionOptions) -> Admission {
        Admission {
            public: Gate::new(options.public_concurrency),
            claims: Gate::new(options.claims_concurrency),
            practice: Gate::new(options.practice_concurrency),
            admin: Gate::new(options.admin_concurrency),
            options,
        }
    }

    fn gate(&self, budget: Budget) -> Option<&Gate> {
        match budget {
            Budget::Public => Some(&self.public),
            Budget::Claims => Some(&self.claims),
            Budget::Practice => Some(&self.practice),
            Budget::Admin => Some(&self.admin),
            Budget::Ops => None,
        }
    }
}

/// The path as the router matches it (percent-encoded letters decoded), not the raw one, so
/// `/%70ortal/…` draws from the practice budget like `/portal/…`.
fn routed_path(req: &ServiceRequest) -> &str {
    req.match_info().as_str()
}

/// The middleware: a slot in the route's budget.
pub(crate) async fn admit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(admission) = req.app_data::<web::Data<Admission>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let budget = Budget::of(routed_path(&req));
    if budget == Budget::Ops {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let retry_after = admission.options.retry_after_secs;

    let Some(gate) = admission.gate(budget) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let options = &admission.options;
    let permit = match gate.enter(options.max_queued, options.queue_wait).await {
        Some(permit) => permit,
        None => {
            metrics::counter!("restdose_admission_rejected_total", "budget" => budget.name())
                .increment(1);
            let response = rejection_response(req.request(), Rejection::Busy, retry_after);
            return Ok(req.into_response(response).map_into_right_body());
        }
    };
    let mut response = next.call(req).await?;
    drop(permit);
    // Every 503 inside a budget (a saturated database pool included) carries the configured
    // Retry-After.
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
    Ok(response.map_into_left_body())
}
