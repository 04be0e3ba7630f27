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

/// Whether a character shows nothing or changes how the text around it is shown: controls
/// (Cc), format characters (Cf: the bidi embeddings, overrides, isolates and marks, zero-width
/// space and joiners, the word joiner, the byte-order mark, the Arabic letter mark), line and
/// paragraph separators (Zl, Zp) and private-use characters (Co). Text that other people see
/// (a practice's name and address, an offer's note) must not carry them: they reorder or hide
/// what an admin or a registrant reads, and they break lines in the command line's tables.
pub fn is_hidden_character(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
    )
}

/// A single-line text shown to others (name, street, city): `required`, `too_long` (more than
/// `max` characters) or `invalid_characters` (see `is_hidden_character`). Returns it trimmed.
pub fn text_field(
    value: &str,
    field: &'static str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> String {
    let trimmed = value.trim();
    let code = if trimmed.is_empty() {
        Some("required")
    } else if trimmed.chars().any(is_hidden_character) {
        Some("invalid_characters")
    } else if trimmed.chars().count() > max {
        Some("too_long")
    } else {
        None
    };
    if let Some(code) = code {
        errors.push(FieldError { field, code });
    }
    trimmed.to_owned()
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
    fn names_refuse_hidden_and_reordering_characters() {
        let refused = [
            ('\u{202A}', "left-to-right embedding"),
            ('\u{202B}', "right-to-left embedding"),
            ('\u{202C}', "pop directional formatting"),
            ('\u{202D}', "left-to-right override"),
            ('\u{202E}', "right-to-left override"),
            ('\u{2066}', "left-to-right isolate"),
            ('\u{2067}', "right-to-left isolate"),
            ('\u{2068}', "first strong isolate"),
            ('\u{2069}', "pop directional isolate"),
            ('\u{200E}', "left-to-right mark"),
            ('\u{200F}', "right-to-left mark"),
            ('\u{061C}', "Arabic letter mark"),
            ('\u{200B}', "zero-width space"),
            ('\u{200C}', "zero-width non-joiner"),
            ('\u{200D}', "zero-width joiner"),
            ('\u{2060}', "word joiner"),
            ('\u{FEFF}', "byte-order mark"),
            ('\u{2028}', "line separator"),
            ('\u{2029}', "paragraph separator"),
            ('\u{00AD}', "soft hyphen"),
            ('\n', "line feed"),
            ('\r', "carriage return"),
            ('\t', "tab"),
            ('\u{0085}', "next line"),
            ('\u{001B}', "escape"),
            ('\u{E000}', "private use"),
        ];
        for (c, what) in refused {
            assert!(is_hidden_character(c), "{what} U+{:04X}", c as u32);
            let mut errors = Vec::new();
            text_field(&format!("Praxis{c}Dr. Muster"), "name", 200, &mut errors);
            assert_eq!(
                errors,
                vec![FieldError {
                    field: "name",
                    code: "invalid_characters"
                }],
                "{what}"
            );
        }
        for name in [
            "Praxis Dr. Müller-Lüdenscheidt",
            "Hausarztpraxis Am Markt (2. OG)",
            "Zahnarzt & Ärztehaus \"Süd\"",
            "Praxis Dr. Çelik, Şahin",
            "Dr. Ñúñez / Dr. Øster",
            "Gemeinschaftspraxis 3",
            "Praxis\u{00A0}Nord",
            "מרפאה",
            "عيادة",
            "Praxis am See \u{2695}\u{FE0F}",
        ] {
            let mut errors = Vec::new();
            assert_eq!(text_field(name, "name", 200, &mut errors), name);
            assert!(errors.is_empty(), "{name}: {errors:?}");
        }
    }

    #[test]
    fn text_field_reports_required_and_too_long() {
        let mut errors = Vec::new();
        assert_eq!(text_field("  x  ", "city", 1, &mut errors), "x");
        text_field("   ", "name", 200, &mut errors);
        text_field("abc", "city", 2, &mut errors);
        assert_eq!(
            errors,
            vec![
                FieldError {
                    field: "name",
                    code: "required"
                },
                FieldError {
                    field: "city",
                    code: "too_long"
                }
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
