//! restdose mail: what each mail says (`content`, plain Rust, no I/O) and how it leaves the
//! process (`transport`: pooled SMTP, or `.eml` files when no SMTP server is configured).

pub mod calendar;
pub mod content;
mod transport;

pub use content::{
    AccountTemplate, Attachment, BookingTemplate, MailContent, Template, render, render_account,
    render_booking,
};
pub use transport::{FileMailer, MailError, Mailer, OutgoingMail, SmtpMailer};
