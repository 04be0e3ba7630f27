//! `restdose admin …`: create administrator accounts and decide on practices from the command
//! line. The operator at the console is trusted, so decisions go through the operator's use case;
//! every failure is a one-line message and a non-zero exit.

use anyhow::{Context, anyhow, bail};
use clap::{Subcommand, ValueEnum};
use restdose::Config;
use restdose_core::{Decision, FieldError, ServiceError, Services};
use restdose_domain::SystemClock;
use restdose_store::{Practice, PracticeStatus};
use std::io::{BufRead, IsTerminal};
use std::sync::Arc;
use uuid::Uuid;

/// Where `create-admin` reads the password from (never from the command line, where it would
/// end up in the shell history and the process list).
pub const PASSWORD_ENV: &str = "RESTDOSE_ADMIN_PASSWORD";

#[derive(Subcommand)]
pub enum AdminAction {
    /// Create an administrator account (password from RESTDOSE_ADMIN_PASSWORD or standard input).
    ///
    /// Admins log in at /portal/login and decide on practices at /admin.
    /// The password (at least 12 characters) is read from the environment variable
    /// RESTDOSE_ADMIN_PASSWORD if it is set, else from the first line of standard input, e.g.
    /// `printf '%s\n' "$PASSWORD" | restdose admin create-admin --email admin@example.org`.
    #[command(verbatim_doc_comment)]
    CreateAdmin {
        /// Login e-mail address of the new admin.
        #[arg(long, value_name = "ADDRESS")]
        email: String,
    },
    /// List practices and approve, reject or suspend them.
    Practices {
        #[command(subcommand)]
        action: PracticesAction,
    },
    /// Close one open offer for good: no more invitations or bookings, and everyone who booked
    /// is told by e-mail that the appointment is off (as when the practice cancels it).
    CloseOffer {
        /// The offer id (shown in the admin page and the practice's portal).
        #[arg(value_parser = parse_offer_id)]
        id: Uuid,
    },
}

#[derive(Subcommand)]
pub enum PracticesAction {
    /// Print the practices as a table: id, status, verified, name, postcode, city, login e-mail.
    List {
        /// Only practices with this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
    },
    /// Approve a practice (its login address must be verified) and tell it by e-mail.
    Approve {
        /// The practice id, as shown by `restdose admin practices list`.
        #[arg(value_parser = parse_id)]
        id: Uuid,
    },
    /// Reject a practice and tell it by e-mail (open offers of its own are closed as on
    /// suspension).
    Reject {
        /// The practice id, as shown by `restdose admin practices list`.
        #[arg(value_parser = parse_id)]
        id: Uuid,
    },
    /// Suspend a practice (it can no longer offer doses) and tell it by e-mail; its open offers
    /// are closed and everyone who booked is told.
    Suspend {
        /// The practice id, as shown by `restdose admin practices list`.
        #[arg(value_parser = parse_id)]
        id: Uuid,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Pending,
    Approved,
    Rejected,
    Suspended,
}

impl From<StatusArg> for PracticeStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Pending => PracticeStatus::Pending,
            StatusArg::Approved => PracticeStatus::Approved,
            StatusArg::Rejected => PracticeStatus::Rejected,
            StatusArg::Suspended => PracticeStatus::Suspended,
        }
    }
}

fn parse_id(s: &str) -> Result<Uuid, String> {
    Uuid::parse_str(s.trim()).map_err(|_| {
        "not a practice id: expected a UUID as shown by `restdose admin practices list`".to_owned()
    })
}

fn parse_offer_id(s: &str) -> Result<Uuid, String> {
    Uuid::parse_str(s.trim()).map_err(|_| "not an offer id: expected a UUID".to_owned())
}

/// The password for `create-admin`: the environment variable, else the first line of standard
/// input. Read before anything else happens, so a missing password fails fast.
pub fn read_password() -> anyhow::Result<String> {
    // Set but empty counts as not set.
    if let Some(password) = std::env::var_os(PASSWORD_ENV).filter(|p| !p.is_empty()) {
        return password
            .into_string()
            .map_err(|_| anyhow!("{PASSWORD_ENV} is not valid UTF-8"));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // Typing would show the password on screen.
        bail!(
            "no password given: set {PASSWORD_ENV} or pipe the password on standard input, e.g. \
             `read -rs P && printf '%s\\n' \"$P\" | restdose admin create-admin --email …`"
        );
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!(
            "no password given: set {PASSWORD_ENV} or write the password as the first line of standard input"
        );
    }
    Ok(password)
}

pub async fn run(config: &Config, action: AdminAction) -> anyhow::Result<()> {
    let password = match action {
        AdminAction::CreateAdmin { .. } => Some(read_password()?),
        AdminAction::Practices { .. } | AdminAction::CloseOffer { .. } => None,
    };
    let services = restdose::build_services(config, Arc::new(SystemClock)).await?;
    let services = &services;
    match action {
        AdminAction::CreateAdmin { email } => {
            let password = password.ok_or_else(|| anyhow!("no password given"))?;
            let id = services
                .create_admin(&email, &password)
                .await
                .map_err(|e| explain_create_admin(e, &email))?;
            println!(
                "admin {} created (id {id}); log in at {}",
                email.trim(),
                services.links.portal("/portal/login")
            );
            Ok(())
        }
        AdminAction::Practices {
            action: PracticesAction::List { status },
        } => {
            let practices = services
                .store
                .practices(status.map(Into::into))
                .await
                .context("cannot read the practices")?;
            print!("{}", table(&practices));
            Ok(())
        }
        AdminAction::Practices {
            action: PracticesAction::Approve { id },
        } => decide(services, id, Decision::Approve).await,
        AdminAction::Practices {
            action: PracticesAction::Reject { id },
        } => decide(services, id, Decision::Reject).await,
        AdminAction::Practices {
            action: PracticesAction::Suspend { id },
        } => decide(services, id, Decision::Suspend).await,
        AdminAction::CloseOffer { id } => close_offer(services, id).await,
    }
}

async fn close_offer(services: &Services, id: Uuid) -> anyhow::Result<()> {
    let told = services
        .close_offer_as_operator(id)
        .await
        .map_err(|e| match e {
            ServiceError::NotFound => anyhow!("no offer with id {id}"),
            ServiceError::Conflict(why) => anyhow!("cannot close offer {id}: {why}"),
            other => anyhow::Error::new(other).context("closing the offer failed"),
        })?;
    let delivered = services.deliver_outbox_once().await?;
    let queued = if delivered.failed == 0 {
        "sent or queued for the delivery worker"
    } else {
        "queued; delivery failed just now and the worker retries"
    };
    println!("offer {id} is closed; {told} people who had booked are told (mails {queued})");
    Ok(())
}

async fn decide(services: &Services, id: Uuid, decision: Decision) -> anyhow::Result<()> {
    let practice = services
        .decide_practice_as_operator(id, decision)
        .await
        .map_err(|e| match e {
            ServiceError::NotFound => {
                anyhow!("no practice with id {id}; see `restdose admin practices list`")
            }
            ServiceError::Conflict(_) if decision == Decision::Approve => anyhow!(
                "cannot approve practice {id}: it has not verified its login e-mail address yet \
                 (it gets a new link when it logs in)"
            ),
            other => anyhow::Error::new(other).context("the decision failed"),
        })?;
    // The mail waits in the outbox; send it now rather than at the next start of a worker.
    let delivered = services.deliver_outbox_once().await?;
    let told = if delivered.failed == 0 {
        "the mail to the practice is sent or queued for the delivery worker"
    } else {
        "the mail to the practice is queued; delivery failed just now and the worker retries"
    };
    println!(
        "{} is now {}; {told} ({})",
        practice.name,
        practice.status.as_str(),
        practice.email
    );
    if decision != Decision::Approve {
        println!(
            "its open offers are closed; everyone who had booked is told by e-mail (same queue)"
        );
    }
    Ok(())
}

fn explain_create_admin(e: ServiceError, email: &str) -> anyhow::Error {
    match e {
        ServiceError::Validation(errors) => {
            let lines: Vec<String> = errors.iter().map(field_error).collect();
            anyhow!("{}", lines.join("; "))
        }
        ServiceError::Conflict(_) => anyhow!(
            "an account with the address {} exists already",
            email.trim()
        ),
        other => anyhow::Error::new(other).context("the admin could not be created"),
    }
}

fn field_error(e: &FieldError) -> String {
    let what = match e.field {
        "email" => "--email",
        _ => "password",
    };
    let why = match e.code {
        "required" => "is missing".to_owned(),
        "invalid_email" => "is not a valid e-mail address".to_owned(),
        "email_too_long" | "email_local_too_long" => "is too long for an e-mail address".to_owned(),
        "password_too_short" => format!(
            "is too short: it needs at least {} characters",
            restdose_core::password::MIN_LEN
        ),
        "password_too_long" => format!(
            "is too long: at most {} characters",
            restdose_core::password::MAX_LEN
        ),
        "password_is_email" => "must not be the e-mail address".to_owned(),
        other => format!("is not accepted ({other})"),
    };
    format!("{what} {why}")
}

/// A plain-text table with columns padded to their widest cell.
/// A stored text as one visible table cell: characters that would hide, reorder or break it
/// (stored before names refused them) are shown as escapes such as `\u{202e}`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if restdose_core::is_hidden_character(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn table(practices: &[Practice]) -> String {
    if practices.is_empty() {
        return "no practices\n".to_owned();
    }
    let header = [
        "ID",
        "STATUS",
        "VERIFIED",
        "NAME",
        "POSTCODE",
        "CITY",
        "LOGIN E-MAIL",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 7]> = practices
        .iter()
        .map(|p| {
            [
                p.id.to_string(),
                p.status.as_str().to_owned(),
                if p.email_verified { "yes" } else { "no" }.to_owned(),
                printable(&p.name),
                p.postcode.as_str().to_owned(),
                printable(&p.city),
                printable(&p.email),
            ]
        })
        .collect();
    let mut widths = [0usize; 7];
    for r in std::iter::once(&header).chain(rows.iter()) {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - cell.chars().count())))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bad_ids_are_refused_with_a_hint() {
        assert!(
            parse_id("not-a-uuid")
                .unwrap_err()
                .contains("practices list")
        );
        assert!(parse_id("67e55044-10b1-426f-9247-bb680e5fe0c8").is_ok());
    }

    #[test]
    fn hidden_characters_in_stored_names_cannot_break_or_reorder_a_table_line() {
        assert_eq!(printable("Praxis Süd"), "Praxis Süd");
        assert_eq!(
            printable("Praxis \u{202E}dnaL\u{2028}X\u{200B}"),
            "Praxis \\u{202e}dnaL\\u{2028}X\\u{200b}"
        );
        assert_eq!(printable("a\nb\u{1b}[31m"), "a\\u{a}b\\u{1b}[31m");
    }

    #[test]
    fn short_password_message_names_the_minimum() {
        let e = FieldError {
            field: "password",
            code: "password_too_short",
        };
        assert_eq!(
            field_error(&e),
            "password is too short: it needs at least 12 characters"
        );
    }
}
