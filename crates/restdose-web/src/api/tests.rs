//! The OpenAPI document against the parsers and the rules: each request body's schema has
//! exactly the fields its parser takes, and the limits the use cases enforce.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use restdose_core::RadiusInput;
use restdose_core::offers::{
    MAX_CLAIM_MINUTES, MAX_DOSES, MAX_NOTE_CHARS, MIN_CLAIM_MINUTES, NumberInput,
};
use restdose_domain::booking_code::CODE_LEN;
use restdose_domain::{BookingCode, RadiusKm};
use serde_json::{Map, Value, json};

use crate::api::json_body::JsonRequest;
use crate::api::offer_bodies::{CheckInRequest, OfferRequest};
use crate::api::openapi::document;
use crate::api::registrations::RegistrationRequest;

/// The schema of a component of the served document.
fn schema(name: &str) -> Value {
    let doc = serde_json::to_value(document()).unwrap();
    doc["components"]["schemas"][name].clone()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// The schema's properties are the parser's fields, and unknown fields are documented as refused.
fn fields_match<R: JsonRequest>(name: &str) {
    let schema = schema(name);
    let documented: BTreeSet<&str> = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{name} has no properties"))
        .keys()
        .map(String::as_str)
        .collect();
    let parsed: BTreeSet<&str> = R::FIELDS.iter().copied().collect();
    assert_eq!(documented, parsed, "{name}: documented vs parsed fields");
    assert_eq!(schema["additionalProperties"], json!(false), "{name}");
}

fn range(schema: &Value) -> (i64, i64) {
    (
        schema["minimum"].as_i64().unwrap(),
        schema["maximum"].as_i64().unwrap(),
    )
}

fn required(name: &str) -> BTreeSet<String> {
    schema(name)["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_request_body_documents_exactly_the_fields_its_parser_takes() {
    fields_match::<RegistrationRequest>("RegistrationRequest");
    fields_match::<OfferRequest>("OfferRequest");
    fields_match::<CheckInRequest>("CheckInRequest");
}

#[test]
fn the_radius_is_documented_with_the_rule_of_radius_km() {
    let (min, max) = (i64::from(RadiusKm::MIN), i64::from(RadiusKm::MAX));
    for name in ["RegistrationRequest", "OfferRequest"] {
        let radius = &schema(name)["properties"]["radius_km"];
        assert_eq!(range(radius), (min, max), "{name}.radius_km");
        assert!(!required(name).contains("radius_km"), "{name}: optional");
    }
    // The parser's answer at the edges, judged by the same rule.
    for (km, ok) in [(min - 1, false), (min, true), (max, true), (max + 1, false)] {
        let body = object(json!({"email": "a@example.org", "postcode": "10115", "radius_km": km}));
        let request = RegistrationRequest::from_fields(&body).unwrap();
        assert_eq!(request.radius_km, RadiusInput::Number(km));
        assert_eq!(RadiusKm::new(km).is_ok(), ok, "{km} km");
    }
}

#[test]
fn the_sign_up_body_requires_what_its_parser_requires() {
    assert_eq!(
        required("RegistrationRequest"),
        BTreeSet::from(["email".to_owned(), "postcode".to_owned()])
    );
    for field in ["email", "postcode"] {
        let mut body = object(json!({"email": "a@example.org", "postcode": "10115"}));
        body.remove(field);
        let error = RegistrationRequest::from_fields(&body).err().unwrap();
        assert_eq!(
            (error.code, error.field.as_deref()),
            ("required", Some(field))
        );
    }
    let body = object(json!({"email": "a@example.org", "postcode": "10115"}));
    let request = RegistrationRequest::from_fields(&body).unwrap();
    assert_eq!(request.radius_km, RadiusInput::Missing);
    let example = schema("RegistrationRequest")["properties"]["radius_km"]["examples"][0]
        .as_i64()
        .unwrap();
    assert!(RadiusKm::new(example).is_ok(), "example {example} km");
}

#[test]
fn the_offer_body_is_documented_with_the_offer_rules() {
    let offer = schema("OfferRequest");
    let properties = &offer["properties"];
    assert_eq!(range(&properties["doses"]), (1, MAX_DOSES));
    assert_eq!(
        range(&properties["claim_minutes"]),
        (MIN_CLAIM_MINUTES, MAX_CLAIM_MINUTES)
    );
    assert_eq!(
        properties["note"]["maxLength"].as_u64(),
        Some(MAX_NOTE_CHARS as u64)
    );
    assert_eq!(
        required("OfferRequest"),
        ["vaccine", "doses", "starts_at", "ends_at"]
            .map(str::to_owned)
            .into()
    );
    let body = object(json!({"doses": 3, "radius_km": 7, "starts_at": 1}));
    let request = OfferRequest::from_fields(&body).unwrap();
    let input = request.input();
    assert_eq!(input.doses, NumberInput::Number(3));
    assert_eq!(input.radius_km, RadiusInput::Number(7));
    assert_eq!(input.claim_minutes, NumberInput::Missing);
    assert_eq!(input.starts_at, restdose_core::offers::TimeInput::Invalid);
}

#[test]
fn the_check_in_example_is_a_booking_code() {
    let example = schema("CheckInRequest")["properties"]["code"]["example"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = BookingCode::parse(&example).expect("the example parses as a booking code");
    assert_eq!(code.as_str().len(), CODE_LEN);
    let body = object(json!({ "code": example }));
    assert!(CheckInRequest::from_fields(&body).is_ok());
    let blank = object(json!({"code": "  "}));
    assert_eq!(
        CheckInRequest::from_fields(&blank).err().unwrap().code,
        "required"
    );
}

#[test]
fn the_error_schema_is_the_shape_the_errors_are_written_in() {
    let body = schema("ErrorBody");
    assert_eq!(
        body["properties"]["error"]["$ref"],
        json!("#/components/schemas/ErrorDetail")
    );
    let detail = schema("ErrorDetail");
    let documented: BTreeSet<&str> = detail["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let error = crate::error::ApiError::new(
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
        "required",
        "x",
    )
    .with_field("email");
    let written = serde_json::to_value(crate::error::ErrorBody { error }).unwrap();
    let written: BTreeSet<&str> = written["error"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(documented, written);
}
