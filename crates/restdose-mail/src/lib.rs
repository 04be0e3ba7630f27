//! restdose mail: what each mail says (`content`, plain Rust, no I/O) and how it leaves the
//! process (`transport`: pooled SMTP, or `.eml` files when no SMTP server is configured).

pub mod content;
mod transport;

pub use content::{MailContent, Template, render};
pub use transport::{FileMailer, MailError, Mailer, OutgoingMail, SmtpMailer};
