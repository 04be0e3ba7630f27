//! The background workers: matcher waves, invitation expiry, outbox delivery and
//! housekeeping. Each loop calls a `*_once` step of the services until it finds no work, then
//! sleeps for the poll interval; a failing step is logged and retried, never fatal.

use restdose_core::Services;
use std::time::Duration;

/// Which loops to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSet {
    pub matcher: bool,
    pub delivery: bool,
    pub housekeeping: bool,
}

impl WorkerSet {
    pub const ALL: WorkerSet = WorkerSet {
        matcher: true,
        delivery: true,
        housekeeping: true,
    };
    pub const NONE: WorkerSet = WorkerSet {
        matcher: false,
        delivery: false,
        housekeeping: false,
    };
    pub const DELIVERY_ONLY: WorkerSet = WorkerSet {
        matcher: false,
        delivery: true,
        housekeeping: false,
    };
}

/// Spawns the chosen loops on the current runtime. They run until the process ends.
pub fn spawn(services: &Services, set: WorkerSet, poll: Duration) {
    if set.matcher {
        let s = services.clone();
        tokio::spawn(async move {
            loop {
                // Waves until no offer is due, then the expiry of unanswered invitations.
                loop {
                    match s.run_wave_once().await {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::error!(error = %e, "matcher step failed");
                            break;
                        }
                    }
                }
                if let Err(e) = s.expire_invitations_once().await {
                    tracing::error!(error = %e, "invitation expiry failed");
                }
                tokio::time::sleep(poll).await;
            }
        });
    }
    if set.delivery {
        let s = services.clone();
        tokio::spawn(async move {
            loop {
                match s.deliver_outbox_once().await {
                    // A full batch means more may be waiting: go on at once.
                    Ok(report) if report.sent + report.failed >= s.delivery.batch => continue,
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "outbox delivery step failed"),
                }
                tokio::time::sleep(poll).await;
            }
        });
    }
    if set.housekeeping {
        tokio::spawn(crate::run_housekeeping(services.clone()));
    }
}
