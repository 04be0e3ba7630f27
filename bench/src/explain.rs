//! `EXPLAIN (ANALYZE, BUFFERS)` of the statement the store really sends, with its real
//! parameters and plan-cache state: `auto_explain` on a connection of our own reports every
//! plan as a NOTICE, which sqlx hands to `tracing`, where a layer collects it.

use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// sqlx's target for server notices.
const NOTICE_TARGET: &str = "sqlx::postgres::notice";

/// Session settings of the explaining connection (`LOAD` needs a superuser).
pub const AUTO_EXPLAIN: &str = "LOAD 'auto_explain'; \
     SET auto_explain.log_min_duration = 0; \
     SET auto_explain.log_analyze = on; \
     SET auto_explain.log_buffers = on; \
     SET auto_explain.log_timing = on; \
     SET auto_explain.log_level = notice; \
     SET client_min_messages = notice;";

static NOTICES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Collects server notices from now on. Only sqlx's notice events are enabled, so every other
/// `tracing` call site (the store's spans, sqlx's statement log) stays switched off and costs
/// the timed calls nothing.
pub fn install() {
    let only_notices = Targets::new().with_target(NOTICE_TARGET, Level::TRACE);
    tracing_subscriber::registry()
        .with(NoticeLayer.with_filter(only_notices))
        .try_init()
        .ok();
}

/// The notices collected since the last call.
pub fn take() -> Vec<String> {
    match NOTICES.lock() {
        Ok(mut notices) => std::mem::take(&mut *notices),
        Err(_) => Vec::new(),
    }
}

/// The plan of an `auto_explain` notice without the query text (which may span many lines):
/// the "duration" line, then everything from the top plan node (the first line with a cost).
pub fn plan_of(notice: &str) -> String {
    let mut lines = notice.lines();
    let duration = lines.next().unwrap_or_default();
    let plan: Vec<&str> = lines
        .skip_while(|line| !line.contains("  (cost="))
        .collect();
    format!("{duration}\n{}", plan.join("\n"))
}

struct NoticeLayer;

impl<S: Subscriber> Layer<S> for NoticeLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut message = Message(None);
        event.record(&mut message);
        if let (Some(text), Ok(mut notices)) = (message.0, NOTICES.lock()) {
            notices.push(text);
        }
    }
}

struct Message(Option<String>);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && self.0.is_none() {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_kept_without_the_query_text() {
        let notice = "duration: 1.0 ms  plan:\nQuery Text: -- a comment\nSELECT 1\n\
                      Result  (cost=0.00..0.01 rows=1 width=4) (actual time=0.001..0.001 rows=1 loops=1)";
        assert_eq!(
            plan_of(notice),
            "duration: 1.0 ms  plan:\n\
             Result  (cost=0.00..0.01 rows=1 width=4) (actual time=0.001..0.001 rows=1 loops=1)"
        );
    }
}
