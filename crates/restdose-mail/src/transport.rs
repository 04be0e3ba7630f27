//! Getting a mail out of the process.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use restdose_domain::Email;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::MailContent;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail configuration is invalid: {0}")]
    Config(String),
    #[error("mail could not be built: {0}")]
    Build(String),
    /// Worth another try later: a 4xx reply, no connection, a timeout, TLS, a file that could
    /// not be written.
    #[error("mail could not be delivered (temporary): {0}")]
    Temporary(String),
    /// Refused for good: the SMTP server answered 5xx (e.g. `550 5.1.1` unknown recipient).
    /// Sending the same mail again cannot succeed. (5xx replies about our own session rather
    /// than the mail — authentication, command syntax — are `Temporary`: see
    /// `is_refused_for_good`.)
    #[error("mail was refused (permanent): {0}")]
    Permanent(String),
}

/// One mail to one person. `message_id` is stable per mail so that a retried delivery can be
/// recognised as a duplicate by the receiver.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OutgoingMail {
    pub to: Email,
    pub message_id: String,
    pub content: MailContent,
}

#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError>;

    /// How many sent mails this transport keeps (the `.eml` files of `FileMailer`) that were
    /// written before `before`. Transports that keep nothing: 0.
    async fn count_kept_before(&self, _before: DateTime<Utc>) -> Result<u64, MailError> {
        Ok(0)
    }

    /// Deletes the kept mails written before `before` (the purge); returns how many.
    async fn delete_kept_before(&self, _before: DateTime<Utc>) -> Result<u64, MailError> {
        Ok(0)
    }
}

fn build_message(from: &Mailbox, mail: &OutgoingMail) -> Result<Message, MailError> {
    let to: Mailbox = mail
        .to
        .as_str()
        .parse()
        .map_err(|e: lettre::address::AddressError| MailError::Build(e.to_string()))?;
    let alternative =
        MultiPart::alternative_plain_html(mail.content.text.clone(), mail.content.html.clone());
    let body = if mail.content.attachments.is_empty() {
        alternative
    } else {
        let mut mixed = MultiPart::mixed().multipart(alternative);
        for file in &mail.content.attachments {
            let content_type = ContentType::parse(&file.content_type)
                .map_err(|e| MailError::Build(format!("attachment type: {e}")))?;
            mixed = mixed.singlepart(
                lettre::message::Attachment::new(file.filename.clone())
                    .body(file.body.clone(), content_type),
            );
        }
        mixed
    };
    let mut message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.content.subject.clone())
        .message_id(Some(mail.message_id.clone()))
        .multipart(body)
        .map_err(|e| MailError::Build(e.to_string()))?;
    if let Some(url) = &mail.content.unsubscribe_url {
        // RFC 8058: a mail client may unsubscribe with one POST, without opening a page.
        let headers = message.headers_mut();
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            format!("<{url}>"),
        ));
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".to_owned(),
        ));
    }
    Ok(message)
}

fn parse_from(from: &str) -> Result<Mailbox, MailError> {
    from.parse().map_err(|e: lettre::address::AddressError| {
        MailError::Config(format!("sender address: {e}"))
    })
}

/// Pooled SMTP: connections are kept open between mails, which matters under load.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// `url` as lettre understands it: `smtp://host:port` (plain, for loopback or a relay on
    /// the same host), `smtp://host:587?tls=required`, `smtps://user:pass@host:465`.
    pub fn new(url: &str, from: &str, max_connections: u32) -> Result<SmtpMailer, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::Config(format!("SMTP URL: {e}")))?
            .timeout(Some(Duration::from_secs(10)))
            .pool_config(PoolConfig::new().max_size(max_connections.max(1)))
            .build();
        Ok(SmtpMailer {
            transport,
            from: parse_from(from)?,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    #[tracing::instrument(skip_all, fields(message_id = %mail.message_id))]
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let message = build_message(&self.from, mail)?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| {
            let description = describe_smtp_error(&e);
            if is_refused_for_good(&e) {
                MailError::Permanent(description)
            } else {
                MailError::Temporary(description)
            }
        })
    }
}

/// A permanent (5xx) reply that concerns this mail. 5xx replies that say our session is wrong —
/// 500–504 (syntax, command, sequence) and 530/534/535/538 (authentication or encryption
/// required, credentials rejected) — would refuse every mail alike: they are a configuration
/// problem for the operator, not a reason to give up on a person's address, so they count as
/// temporary (retried, and dropped as expired if nobody fixes them in time).
fn is_refused_for_good(e: &lettre::transport::smtp::Error) -> bool {
    e.is_permanent() && !e.status().map(u16::from).is_some_and(is_session_error)
}

fn is_session_error(code: u16) -> bool {
    matches!(code, 500..=504 | 530 | 534 | 535 | 538)
}

/// What went wrong, without the server's text: SMTP replies often quote the recipient's
/// address, and these descriptions end up in logs and the outbox.
fn describe_smtp_error(e: &lettre::transport::smtp::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_tls() {
        "TLS failure"
    } else if e.is_permanent() {
        "permanent rejection"
    } else if e.is_transient() {
        "temporary rejection"
    } else if e.is_client() {
        "client error"
    } else {
        "connection failure"
    };
    match e.status() {
        Some(code) => format!("SMTP {kind} ({code})"),
        None => format!("SMTP {kind}"),
    }
}

/// Writes each mail as an `.eml` file: the zero-configuration default, so a developer can open
/// the confirmation link without any mail server. The files hold addresses and live links:
/// the folder is created (or tightened) to 0700 and each file is created 0600, whatever the
/// umask; the purge deletes them (`delete_kept_before`).
pub struct FileMailer {
    dir: PathBuf,
    from: Mailbox,
}

impl FileMailer {
    pub fn new(dir: &Path, from: &str) -> Result<FileMailer, MailError> {
        let from = parse_from(from)?;
        create_private_dir(dir).map_err(|e| {
            MailError::Config(format!("cannot create outbox {}: {e}", dir.display()))
        })?;
        Ok(FileMailer {
            dir: dir.to_owned(),
            from,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `.eml` files last modified before `before`.
    async fn files_before(&self, before: DateTime<Utc>) -> Result<Vec<PathBuf>, MailError> {
        let unreadable =
            |e: std::io::Error| MailError::Temporary(format!("cannot read the outbox: {e}"));
        let mut found = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir).await.map_err(unreadable)?;
        while let Some(entry) = entries.next_entry().await.map_err(unreadable)? {
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "eml") {
                continue;
            }
            let metadata = match entry.metadata().await {
                Ok(metadata) => metadata,
                // Deleted meanwhile (another process's purge).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(unreadable(e)),
            };
            if !metadata.is_file() {
                continue;
            }
            let written: DateTime<Utc> = metadata.modified().map_err(unreadable)?.into();
            if written < before {
                found.push(path);
            }
        }
        Ok(found)
    }
}

/// Creates `dir` (and missing parents) readable by this user only. An existing folder is
/// tightened to 0700: it is the outbox's own.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder.create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    builder.create(dir)
}

#[async_trait]
impl Mailer for FileMailer {
    #[tracing::instrument(skip_all, fields(message_id = %mail.message_id))]
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        use tokio::io::AsyncWriteExt;
        let message = build_message(&self.from, mail)?;
        let path = self.dir.join(format!("{}.eml", uuid::Uuid::new_v4()));
        let failed = |e: std::io::Error| {
            MailError::Temporary(format!(
                "cannot write the mail file {}: {e}",
                path.display()
            ))
        };
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&path).await.map_err(failed)?;
        file.write_all(&message.formatted()).await.map_err(failed)?;
        file.flush().await.map_err(failed)?;
        Ok(())
    }

    async fn count_kept_before(&self, before: DateTime<Utc>) -> Result<u64, MailError> {
        Ok(self.files_before(before).await?.len() as u64)
    }

    async fn delete_kept_before(&self, before: DateTime<Utc>) -> Result<u64, MailError> {
        let mut deleted = 0;
        for path in self.files_before(before).await? {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(MailError::Temporary(format!(
                        "cannot delete the mail file {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::content::{Template, render};
    use restdose_domain::Lang;

    #[tokio::test]
    async fn file_mailer_writes_a_multipart_eml_with_unsubscribe_headers() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = FileMailer::new(dir.path(), "restdose <noreply@restdose.example>").unwrap();
        let content = render(
            Lang::De,
            &Template::AlreadyRegistered {
                manage_url: "https://r.example/manage/t",
                unsubscribe_url: "https://r.example/unsubscribe/t",
            },
        );
        let mail = OutgoingMail {
            to: Email::parse("anna@example.de").unwrap(),
            message_id: "<m1@restdose.example>".into(),
            content,
        };
        mailer.send(&mail).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1);
        let path = files[0].as_ref().unwrap().path();
        assert_eq!(path.extension().unwrap(), "eml");
        let raw = std::fs::read_to_string(path).unwrap();
        assert!(raw.contains("List-Unsubscribe: <https://r.example/unsubscribe/t>"));
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("Message-ID: <m1@restdose.example>"));
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn mail(n: u32) -> OutgoingMail {
        OutgoingMail {
            to: Email::parse("anna@example.de").unwrap(),
            message_id: format!("<m{n}@restdose.example>"),
            content: render(
                Lang::En,
                &Template::AlreadyRegistered {
                    manage_url: "https://r.example/manage/t",
                    unsubscribe_url: "https://r.example/unsubscribe/t",
                },
            ),
        }
    }

    /// The files hold an address and live links: only the service's user may read them, and an
    /// outbox folder left open by an older version is closed.
    #[cfg(unix)]
    #[tokio::test]
    async fn the_outbox_folder_and_its_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data/outbox");
        let mailer = FileMailer::new(&dir, "noreply@restdose.example").unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(
            mode(&root.path().join("data")),
            0o700,
            "created parents too"
        );
        mailer.send(&mail(1)).await.unwrap();
        let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap();
        assert_eq!(mode(&file.path()), 0o600);

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        FileMailer::new(&dir, "noreply@restdose.example").unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[tokio::test]
    async fn kept_mails_older_than_the_cut_off_are_counted_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = FileMailer::new(dir.path(), "noreply@restdose.example").unwrap();
        mailer.send(&mail(1)).await.unwrap();
        mailer.send(&mail(2)).await.unwrap();
        let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(48 * 3600);
        let old = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
        // Not a mail: left alone whatever its age.
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, "x").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();

        let cut_off = Utc::now() - chrono::Duration::hours(24);
        assert_eq!(mailer.count_kept_before(cut_off).await.unwrap(), 1);
        assert_eq!(mailer.delete_kept_before(cut_off).await.unwrap(), 1);
        assert!(!old.exists());
        assert!(other.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "the recent mail and the other file stay");
        assert_eq!(mailer.delete_kept_before(cut_off).await.unwrap(), 0);
        // SMTP keeps nothing.
        let smtp = SmtpMailer::new("smtp://127.0.0.1:1", "a@b.de", 1).unwrap();
        assert_eq!(smtp.delete_kept_before(Utc::now()).await.unwrap(), 0);
    }

    #[test]
    fn replies_about_the_session_are_not_refusals_of_the_mail() {
        for code in [500, 501, 502, 503, 504, 530, 534, 535, 538] {
            assert!(is_session_error(code), "{code}");
        }
        for code in [550, 551, 552, 553, 554, 521, 556] {
            assert!(!is_session_error(code), "{code}");
        }
    }

    #[test]
    fn bad_configuration_is_reported() {
        assert!(SmtpMailer::new("ftp://x", "a@b.de", 1).is_err());
        assert!(FileMailer::new(Path::new("/tmp"), "not an address").is_err());
    }
}
