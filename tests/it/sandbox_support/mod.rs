//! Shared by `tests/it/sandbox.rs` and `tests/it/sandbox_http.rs`: which fixture documents each
//! sandbox answer, the shape comparison, and the check that the library reads a sandbox
//! answer and its fixture the same way. Together they keep the sandbox, the fixtures and
//! the library from drifting apart.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::mem::discriminant;

use direct_otp::{Challenge, Outcome, Policy, RequestKind, Started, Token};
use serde_json::Value;
use time::OffsetDateTime;

use crate::common::{fixture, fixture_json};

/// Differences between `actual` and the fixture's shape: every key the fixture has must be
/// present with the same JSON type (a `null` in the fixture allows any value; numbers are
/// one type; array elements are compared with the fixture's first element). Keys the
/// fixture lacks are allowed.
pub fn shape_errors(fixture: &Value, actual: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    compare(fixture, actual, "$", &mut errors);
    errors
}

fn compare(fixture: &Value, actual: &Value, path: &str, errors: &mut Vec<String>) {
    match (fixture, actual) {
        (Value::Null, _) => {}
        (Value::Object(want), Value::Object(got)) => {
            for (key, want) in want {
                let path = format!("{path}.{key}");
                match got.get(key) {
                    Some(got) => compare(want, got, &path, errors),
                    None => errors.push(format!("{path}: missing")),
                }
            }
        }
        (Value::Array(want), Value::Array(got)) => {
            if let Some(first) = want.first() {
                for (i, got) in got.iter().enumerate() {
                    compare(first, got, &format!("{path}[{i}]"), errors);
                }
            }
        }
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        (want, got) => errors.push(format!(
            "{path}: fixture has {}, sandbox sent {}",
            type_name(want),
            type_name(got)
        )),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The fixtures documenting a sandbox answer to a request of `kind`.
pub fn fixtures_for(kind: RequestKind, http_status: u16, body: &Value) -> Vec<&'static str> {
    let status = body["status"].as_str().unwrap_or_default();
    let code = body["error_info"]["code"]
        .as_str()
        .or(body["error_code"].as_str())
        .unwrap_or_default();
    let params = &body["payment"]["authentication"]["params"];
    let counters = params.get("times_otp_sent").is_some();
    match (kind, http_status) {
        (RequestKind::Start, 200) if params.get("challenge_id").is_some() => {
            vec!["start_direct_otp"]
        }
        (RequestKind::Start, 200) => vec!["start_3ds_failover"],
        (RequestKind::Resend, 200) if counters => vec!["resend_counters", "resend_seed"],
        (RequestKind::Resend, 200) => vec!["resend_seed"],
        (RequestKind::Submit, 200) => vec![match status {
            "CHARGED" => "submit_charged",
            "AUTHORIZED" => "submit_authorized",
            "AUTHORIZING" => "submit_authorizing",
            "JUSPAY_DECLINED" => "submit_juspay_declined",
            "AUTHENTICATION_FAILED" | "AUTHORIZATION_FAILED" => "submit_authentication_failed",
            "PENDING_VBV" if !counters => "submit_authorizing",
            "PENDING_VBV" if params["submit_otp_allowed"] == Value::Bool(false) => {
                "submit_pending_exhausted"
            }
            "PENDING_VBV" => "submit_pending_wrong_otp",
            other => panic!("no fixture for a submit answer with status {other}"),
        }],
        (RequestKind::OrderStatus, 200) if status == "PENDING_VBV" || status == "AUTHORIZING" => {
            vec!["order_status_pending"]
        }
        (RequestKind::OrderStatus, 200) => vec!["order_status_charged"],
        (_, 401) => vec!["error_access_denied_401"],
        (_, 404) => vec!["error_not_found_404"],
        (_, 500) => vec!["error_internal_500"],
        (_, 400) => vec![match code {
            "max_limit_exceeded" => "resend_limit_exceeded",
            "LP_INCORRECT_OTP" => "submit_wrong_otp_400",
            "MISSING_MANDATORY_PARAMETER" => "error_missing_routing_id",
            "DUPLICATE_REQUEST" => "error_duplicate_request",
            "RESOURCE_NOT_FOUND" => "order_not_found",
            // INVALID_INPUT / INVALID_ACTION: the generic envelope with error_info.
            _ => "error_not_found_404",
        }],
        (kind, status) => panic!("no fixture for a {kind:?} answer with HTTP {status}"),
    }
}

/// Checks a sandbox answer against its fixtures; returns the fixture names checked.
pub fn check_shape(kind: RequestKind, http_status: u16, body: &[u8]) -> Vec<&'static str> {
    let actual: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{kind:?} HTTP {http_status}: body is not JSON: {e}"));
    let names = fixtures_for(kind, http_status, &actual);
    for name in &names {
        let errors = shape_errors(&fixture_json(name), &actual);
        assert!(
            errors.is_empty(),
            "sandbox {kind:?} answer (HTTP {http_status}) drifted from {name}.json:\n  {}\nbody: {actual}",
            errors.join("\n  ")
        );
    }
    names
}

/// The fixture as the twin reads it: for a 200, with the sandbox's `status` and ids put in,
/// so the twin sees the fixture's structure with the same status, about the same order.
fn twin_body(name: &str, http_status: u16, actual: &[u8]) -> Vec<u8> {
    if http_status != 200 {
        return fixture(name);
    }
    let mut fixture = fixture_json(name);
    let actual: Value = serde_json::from_slice(actual).unwrap_or_default();
    for path in [
        &["status"][..],
        &["order_id"],
        &["payment", "authentication", "params", "id"],
    ] {
        let (Some(value), Some(slot)) = (
            actual.pointer(&pointer(path)),
            fixture.pointer_mut(&pointer(path)),
        ) else {
            continue;
        };
        *slot = value.clone();
    }
    fixture.to_string().into_bytes()
}

fn pointer(path: &[&str]) -> String {
    path.iter().map(|k| format!("/{k}")).collect()
}

/// Hands a sandbox answer to the challenge, after checking its shape and that a twin of the
/// challenge reading the matching fixture reaches the same kind of outcome.
pub fn deliver(
    checked: &mut BTreeSet<&'static str>,
    challenge: &mut Challenge,
    kind: RequestKind,
    token: Token,
    http_status: u16,
    body: &[u8],
    now: OffsetDateTime,
) -> Outcome {
    let names = check_shape(kind, http_status, body);
    checked.extend(names.iter().copied());
    let mut twin = challenge.clone();
    let from_fixture = twin
        .handle_response(
            token,
            http_status,
            &twin_body(names[0], http_status, body),
            now,
        )
        .unwrap();
    let outcome = challenge
        .handle_response(token, http_status, body, now)
        .unwrap();
    assert_eq!(
        discriminant(&outcome),
        discriminant(&from_fixture),
        "the library reads the sandbox's {kind:?} answer as {outcome:?} but {}.json as {from_fixture:?}",
        names[0]
    );
    outcome
}

/// Reads a start answer, checking it as [`deliver`] does.
pub fn read_start(
    checked: &mut BTreeSet<&'static str>,
    routing_id: &str,
    http_status: u16,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Started, direct_otp::StartError> {
    let names = check_shape(RequestKind::Start, http_status, body);
    checked.extend(names.iter().copied());
    let read =
        |b: &[u8]| Started::from_response(routing_id, Policy::default(), http_status, b, now);
    let real = read(body);
    let from_fixture = read(&twin_body(names[0], http_status, body));
    let same = match (&real, &from_fixture) {
        (Ok(a), Ok(b)) => discriminant(a) == discriminant(b),
        (Err(a), Err(b)) => discriminant(a) == discriminant(b),
        _ => false,
    };
    assert!(
        same,
        "the library reads the sandbox's start answer as {real:?} but {}.json as {from_fixture:?}",
        names[0]
    );
    real
}
