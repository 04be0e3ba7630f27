//! Turning what a person typed into domain values, with one error per broken field.

use restdose_domain::geo::Gazetteer;
use restdose_domain::{Email, EmailError, Lang, Postcode, PostcodeError, RadiusKm};
use serde::Serialize;

/// A broken rule, named so that both the JSON API (`code`, `field`) and the HTML forms
/// (a localised message beside the field) can report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub code: &'static str,
}

/// The radius as it arrived: forms send text, JSON sends a number (or something else).
#[derive(Debug, Clone, PartialEq)]
pub enum RadiusInput<'a> {
    Missing,
    Number(i64),
    Text(&'a str),
    Invalid,
}

#[derive(Debug, Clone)]
pub struct SignUpRequest {
    pub email: Email,
    pub postcode: Postcode,
    pub radius: RadiusKm,
    pub lang: Lang,
}

pub fn validate_sign_up(
    email: &str,
    postcode: &str,
    radius: RadiusInput<'_>,
    lang: Lang,
    gazetteer: &Gazetteer,
) -> Result<SignUpRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let email = Email::parse(email)
        .map_err(|e| errors.push(email_error(&e)))
        .ok();
    let prefs = validate_preferences(postcode, radius, gazetteer);
    match (email, prefs) {
        (Some(email), Ok((postcode, radius))) if errors.is_empty() => Ok(SignUpRequest {
            email,
            postcode,
            radius,
            lang,
        }),
        (_, prefs) => {
            if let Err(mut more) = prefs {
                errors.append(&mut more);
            }
            Err(errors)
        }
    }
}

/// Postcode and radius, as on sign-up and on the self-service page.
pub fn validate_preferences(
    postcode: &str,
    radius: RadiusInput<'_>,
    gazetteer: &Gazetteer,
) -> Result<(Postcode, RadiusKm), Vec<FieldError>> {
    let mut errors = Vec::new();
    let postcode = Postcode::parse(postcode, gazetteer)
        .map_err(|e| {
            errors.push(FieldError {
                field: "postcode",
                code: match e {
                    PostcodeError::Empty => "required",
                    PostcodeError::Invalid => "invalid_postcode",
                    PostcodeError::Unknown => "unknown_postcode",
                },
            })
        })
        .ok();
    let radius = match radius {
        RadiusInput::Missing => Ok(RadiusKm::DEFAULT),
        RadiusInput::Number(n) => RadiusKm::new(n),
        RadiusInput::Text(t) => RadiusKm::parse(t),
        RadiusInput::Invalid => Err(restdose_domain::RadiusError),
    }
    .map_err(|_| {
        errors.push(FieldError {
            field: "radius_km",
            code: "invalid_radius",
        })
    })
    .ok();
    match (postcode, radius) {
        (Some(p), Some(r)) => Ok((p, r)),
        _ => Err(errors),
    }
}

fn email_error(e: &EmailError) -> FieldError {
    FieldError {
        field: "email",
        code: match e {
            EmailError::Empty => "required",
            EmailError::TooLong => "email_too_long",
            EmailError::LocalTooLong => "email_local_too_long",
            EmailError::Invalid => "invalid_email",
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use restdose_domain::geo::builtin_germany;

    #[test]
    fn collects_one_error_per_broken_field_in_form_order() {
        let errors = validate_sign_up(
            "nope",
            "1234",
            RadiusInput::Number(0),
            Lang::De,
            builtin_germany(),
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| (e.field, e.code)).collect();
        assert_eq!(
            fields,
            vec![
                ("email", "invalid_email"),
                ("postcode", "invalid_postcode"),
                ("radius_km", "invalid_radius")
            ]
        );
    }

    #[test]
    fn a_good_request_passes_with_default_radius() {
        let ok = validate_sign_up(
            " a@b.de ",
            " 10115 ",
            RadiusInput::Missing,
            Lang::En,
            builtin_germany(),
        )
        .unwrap();
        assert_eq!(ok.postcode.as_str(), "10115");
        assert_eq!(ok.radius.km(), 10);
    }
}
