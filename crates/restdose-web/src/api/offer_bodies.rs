//! The bodies of the practice API: what it reads (each request type is also its schema in the
//! OpenAPI document) and what it answers.

use actix_web::http::StatusCode;
use restdose_core::RadiusInput;
use restdose_core::offers::{
    MAX_CLAIM_MINUTES, MAX_DOSES, MAX_NOTE_CHARS, MIN_CLAIM_MINUTES, NumberInput, OfferInput,
    OfferView, TimeInput,
};
use restdose_domain::BookingCode;
use restdose_store::Offer;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{KnownFormat, SchemaFormat};
use uuid::Uuid;

use crate::api::json_body::{JsonRequest, number, optional_string, radius, radius_km_schema};
use crate::error::ApiError;

/// A new offer of spare doses at the practice's address.
// `deny_unknown_fields` only documents `additionalProperties: false` (see `RegistrationRequest`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OfferRequest {
    /// One of the vaccines the service is configured with.
    vaccine: String,
    #[schema(value_type = i64, schema_with = doses_schema)]
    doses: NumberInput<'static>,
    /// Start of the appointment window (RFC 3339), in the future.
    #[schema(value_type = String, format = DateTime)]
    starts_at: JsonTime,
    /// End of the appointment window (RFC 3339), after `starts_at`.
    #[schema(value_type = String, format = DateTime)]
    ends_at: JsonTime,
    #[schema(value_type = Option<i64>, schema_with = claim_minutes_schema)]
    claim_minutes: NumberInput<'static>,
    #[schema(value_type = Option<i64>, schema_with = radius_schema)]
    radius_km: RadiusInput<'static>,
    #[schema(value_type = Option<String>, schema_with = note_schema)]
    note: String,
}

/// A point in time as the JSON carried it; the use case reads the text.
enum JsonTime {
    Missing,
    Rfc3339(String),
    Invalid,
}

impl JsonTime {
    fn read(body: &Map<String, Value>, field: &str) -> JsonTime {
        match body.get(field) {
            None | Some(Value::Null) => JsonTime::Missing,
            Some(Value::String(s)) => JsonTime::Rfc3339(s.clone()),
            Some(_) => JsonTime::Invalid,
        }
    }

    fn input(&self) -> TimeInput<'_> {
        match self {
            JsonTime::Missing => TimeInput::Missing,
            JsonTime::Rfc3339(text) => TimeInput::Rfc3339(text),
            JsonTime::Invalid => TimeInput::Invalid,
        }
    }
}

impl JsonRequest for OfferRequest {
    const FIELDS: &'static [&'static str] = &[
        "vaccine",
        "doses",
        "starts_at",
        "ends_at",
        "claim_minutes",
        "radius_km",
        "note",
    ];

    fn from_fields(body: &Map<String, Value>) -> Result<Self, ApiError> {
        Ok(OfferRequest {
            vaccine: optional_string(body, "vaccine")?,
            doses: number(body, "doses"),
            starts_at: JsonTime::read(body, "starts_at"),
            ends_at: JsonTime::read(body, "ends_at"),
            claim_minutes: number(body, "claim_minutes"),
            radius_km: radius(body, "radius_km"),
            note: optional_string(body, "note")?,
        })
    }
}

impl OfferRequest {
    /// The use case's input; it judges every value.
    pub(crate) fn input(&self) -> OfferInput<'_> {
        OfferInput {
            vaccine: &self.vaccine,
            doses: self.doses.clone(),
            starts_at: self.starts_at.input(),
            ends_at: self.ends_at.input(),
            claim_minutes: self.claim_minutes.clone(),
            radius_km: self.radius_km.clone(),
            note: &self.note,
        }
    }
}

fn integer(nullable: bool) -> ObjectBuilder {
    let types = if nullable {
        SchemaType::from_iter([Type::Integer, Type::Null])
    } else {
        SchemaType::Type(Type::Integer)
    };
    ObjectBuilder::new()
        .schema_type(types)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
}

/// `doses`, from the rule itself (`offers::MAX_DOSES`).
fn doses_schema() -> ObjectBuilder {
    integer(false)
        .minimum(Some(1))
        .maximum(Some(MAX_DOSES))
        .description(Some(format!("Doses on offer (1–{MAX_DOSES}).")))
}

/// `radius_km` of an offer, from the rule itself (`RadiusKm`).
fn radius_schema() -> ObjectBuilder {
    radius_km_schema("How far around the practice people are invited")
}

/// `claim_minutes`, from the rule itself (`offers::MIN_CLAIM_MINUTES`…`MAX_CLAIM_MINUTES`).
fn claim_minutes_schema() -> ObjectBuilder {
    integer(true)
        .minimum(Some(MIN_CLAIM_MINUTES))
        .maximum(Some(MAX_CLAIM_MINUTES))
        .description(Some(format!(
            "Minutes an invited person has to claim ({MIN_CLAIM_MINUTES}–{MAX_CLAIM_MINUTES}; \
             default {}).",
            restdose_core::offers::DEFAULT_CLAIM_MINUTES
        )))
}

/// `note`, from the rule itself (`offers::MAX_NOTE_CHARS`).
fn note_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .max_length(Some(MAX_NOTE_CHARS))
        .description(Some(format!(
            "A note shown to the people who book (optional, at most {MAX_NOTE_CHARS} characters)."
        )))
}

/// Check a person in by their booking code.
// `deny_unknown_fields` only documents `additionalProperties: false` (see `RegistrationRequest`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckInRequest {
    /// The booking code from the person's confirmation (12 characters), with or without dashes.
    #[schema(example = "7K3M-Q9ZT-2W4H")]
    pub(crate) code: String,
}

impl JsonRequest for CheckInRequest {
    const FIELDS: &'static [&'static str] = &["code"];

    fn from_fields(body: &Map<String, Value>) -> Result<Self, ApiError> {
        match body.get("code") {
            Some(Value::String(s)) if !s.trim().is_empty() => {
                Ok(CheckInRequest { code: s.clone() })
            }
            Some(Value::String(_)) | None | Some(Value::Null) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "required",
                "The field \"code\" is required.",
            )
            .with_field("code")),
            Some(_) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_type",
                "The field \"code\" must be a string.",
            )
            .with_field("code")),
        }
    }
}

/// A booking of the offer: its code and status (`booked`, `checked_in`, `no_show`,
/// `cancelled`); never who booked.
#[derive(Serialize, ToSchema)]
pub(crate) struct BookingJson {
    code: String,
    status: &'static str,
}

/// An offer as the practice API shows it. `status` is `open`, `closed` or `cancelled`.
#[derive(Serialize, ToSchema)]
pub(crate) struct OfferJson {
    id: Uuid,
    status: &'static str,
    vaccine: String,
    doses: i32,
    claimed: i32,
    checked_in: i32,
    remaining: i32,
    #[schema(format = DateTime)]
    starts_at: String,
    #[schema(format = DateTime)]
    ends_at: String,
    claim_minutes: i32,
    radius_km: u16,
    note: String,
    postcode: String,
    bookings: Vec<BookingJson>,
}

pub(crate) fn offer_json(view: OfferView) -> OfferJson {
    let Offer {
        id,
        status,
        vaccine,
        doses,
        starts_at,
        ends_at,
        claim_minutes,
        radius_km,
        note,
        postcode,
        ..
    } = view.offer;
    OfferJson {
        id,
        status: status.as_str(),
        vaccine,
        doses,
        claimed: view.claimed,
        checked_in: view.checked_in,
        remaining: view.remaining,
        starts_at: starts_at.to_rfc3339(),
        ends_at: ends_at.to_rfc3339(),
        claim_minutes,
        radius_km,
        note,
        postcode: postcode.as_str().to_owned(),
        bookings: view
            .bookings
            .into_iter()
            .map(|b| BookingJson {
                code: BookingCode::parse(&b.code)
                    .map(|c| c.display())
                    .unwrap_or(b.code),
                status: b.status.as_str(),
            })
            .collect(),
    }
}

/// The result of a check-in.
#[derive(Serialize, ToSchema)]
pub struct CheckInResult {
    /// `checked_in`, `already_used` (this code was checked in before) or `unknown`.
    #[schema(example = "checked_in")]
    pub result: &'static str,
}
