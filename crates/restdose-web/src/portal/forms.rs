//! The portal's form bodies, each with its CSRF token, and form text as the use cases take it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use restdose_core::RadiusInput;
use restdose_core::offers::{NumberInput, TimeInput};
use serde::Deserialize;
use uuid::Uuid;

/// Every form carries `csrf`; the other fields default to empty so that a form missing them
/// still reaches the CSRF check and the use case (which name the missing fields).
pub(crate) trait CsrfField {
    fn csrf(&self) -> &str;
}

macro_rules! forms {
    ($($name:ident { $($field:ident),* $(,)? })*) => {
        $(
            // No `Debug`: some carry passwords.
            #[derive(Deserialize, Default)]
            #[serde(default)]
            pub struct $name {
                pub(crate) csrf: String,
                $(pub(crate) $field: String,)*
            }

            impl CsrfField for $name {
                fn csrf(&self) -> &str {
                    &self.csrf
                }
            }
        )*
    };
}

forms! {
    CsrfForm {}
    SignupForm { name, street, postcode, city, phone, email, password }
    LoginForm { email, password }
    PasswordForm { current_password, new_password }
    ForgotForm { email }
    OfferForm { vaccine, doses, starts_at, ends_at, claim_minutes, radius_km, note }
    CheckInForm { code }
    DosesForm { doses }
    TokenForm { name }
}

/// The reset form's field is `new_password`; `password` is accepted too.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ResetForm {
    pub(crate) csrf: String,
    #[serde(alias = "password")]
    pub(crate) new_password: String,
}

impl CsrfField for ResetForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub(crate) type FormResult<F> = Result<web::Form<F>, actix_web::Error>;

#[derive(Deserialize)]
pub struct NoticeQuery {
    pub(crate) notice: Option<String>,
}

/// The form, or an empty one when the request carried no form at all (a bare POST), so that the
/// session and CSRF checks still give their answers (401/403) instead of 415. A body that is too
/// large or malformed keeps its own page.
pub(crate) fn form_or_empty<F: Default>(form: FormResult<F>) -> Result<F, HttpResponse> {
    match form {
        Ok(form) => Ok(form.into_inner()),
        Err(e) if e.as_response_error().status_code() == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            Ok(F::default())
        }
        Err(e) => Err(e.error_response()),
    }
}

/// An id that cannot exist is asked for as the nil id, so the use case still decides between
/// `Forbidden` (not an approved practice) and `NotFound`.
pub(crate) fn parse_id(id: &str) -> Uuid {
    Uuid::parse_str(id).unwrap_or(Uuid::nil())
}

pub(crate) fn number(text: &str) -> NumberInput<'_> {
    if text.trim().is_empty() {
        NumberInput::Missing
    } else {
        NumberInput::Text(text)
    }
}

pub(crate) fn local_time(text: &str) -> TimeInput<'_> {
    if text.trim().is_empty() {
        TimeInput::Missing
    } else {
        TimeInput::Local(text)
    }
}

pub(crate) fn radius(text: &str) -> RadiusInput<'_> {
    if text.trim().is_empty() {
        RadiusInput::Missing
    } else {
        RadiusInput::Text(text)
    }
}
