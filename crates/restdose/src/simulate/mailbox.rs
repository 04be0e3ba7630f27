//! The simulation's mailer: it sends nothing, records every mail (recipient, subject, text with
//! its links) for the simulated people to read, and refuses mail to dead addresses the way a
//! receiving server does (SMTP 550).

use async_trait::async_trait;
use restdose_mail::{MailError, Mailer, OutgoingMail};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::log::MailKind;

/// The error for a mail the receiving server refused for good (SMTP 550).
fn permanent_bounce() -> MailError {
    MailError::Permanent("SMTP permanent rejection (550)".into())
}

/// One mail as the simulated recipient sees it.
#[derive(Debug, Clone)]
pub struct Received {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// The server refused it (dead address); the person never sees it.
    pub bounced: bool,
}

impl Received {
    /// What the mail is, from its links (and, for the pause notice, its subject).
    pub fn kind(&self) -> MailKind {
        if self.link("/invitations/").is_some() {
            MailKind::Invitation
        } else if self.link("/bookings/").is_some() {
            MailKind::BookingConfirmation
        } else if self.link("/confirm/").is_some() {
            MailKind::SignUpConfirmation
        } else if self.subject.contains("paused your offers")
            || self.subject.contains("Angebote pausiert")
        {
            MailKind::Paused
        } else {
            MailKind::Other
        }
    }

    /// The token of the first link whose path contains `marker` (e.g. "/invitations/").
    pub fn link(&self, marker: &str) -> Option<String> {
        link_token(&self.text, marker)
    }
}

/// The token after `marker` in a text: the characters up to the next one that cannot be part of
/// a token.
pub fn link_token(text: &str, marker: &str) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!token.is_empty()).then_some(token)
}

#[derive(Default)]
struct Inner {
    inbox: Vec<Received>,
    dead: HashSet<String>,
}

#[derive(Clone, Default)]
pub struct RecordingMailer(Arc<Mutex<Inner>>);

impl RecordingMailer {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// From now on, mail to this address bounces.
    pub fn kill(&self, address: &str) {
        self.inner().dead.insert(address.to_owned());
    }

    /// Every mail since the last call, in the order they were handed over.
    pub fn take(&self) -> Vec<Received> {
        std::mem::take(&mut self.inner().inbox)
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let to = mail.to.as_str().to_owned();
        let mut inner = self.inner();
        let bounced = inner.dead.contains(&to);
        inner.inbox.push(Received {
            to,
            subject: mail.content.subject.clone(),
            text: mail.content.text.clone(),
            bounced,
        });
        if bounced {
            Err(permanent_bounce())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_taken_from_the_links_in_the_text() {
        let text = "Claim: https://r.example/invitations/AbC-12_x?x=1\nManage: https://r.example/manage/zz";
        assert_eq!(link_token(text, "/invitations/").unwrap(), "AbC-12_x");
        assert_eq!(link_token(text, "/manage/").unwrap(), "zz");
        assert_eq!(link_token(text, "/bookings/"), None);
    }
}
