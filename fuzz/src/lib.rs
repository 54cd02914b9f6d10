//! Shared by the fuzz targets: the challenge invariants of `tests/it/invariants/mod.rs` (the
//! same file the property tests use) and arbitrary JSON values to patch into documents.

use arbitrary::Arbitrary;
use serde_json::{json, Value};

#[path = "../../tests/it/invariants/mod.rs"]
pub mod invariants;
pub use invariants::patch::set;

/// Words the library gives meaning to, so patched values hit real cases.
const WORDS: [&str; 24] = [
    "resting",
    "in_flight",
    "final",
    "open",
    "check_status",
    "bank_page",
    "expired",
    "resend",
    "submit",
    "order_status",
    "PENDING_VBV",
    "CHARGED",
    "AUTHORIZED",
    "AUTHORIZING",
    "JUSPAY_DECLINED",
    "true",
    "false",
    "OTP",
    "POST",
    "max_limit_exceeded",
    "DUPLICATE_REQUEST",
    "LP_INCORRECT_OTP",
    "txn_1",
    "../x",
];

/// An arbitrary JSON value, biased towards the edges: huge and negative numbers, numbers
/// as text, meaningful words, containers where a scalar belongs.
#[derive(Debug, Arbitrary)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Small(u8),
    Float(f64),
    Text(String),
    Word(u8),
    NumberText(u32),
    Array(Vec<u8>),
    Object(Vec<(String, u8)>),
}

impl Scalar {
    /// The value as JSON (a non-finite float becomes `null`, as serde_json writes it).
    pub fn json(&self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => json!(b),
            Scalar::Int(i) => json!(i),
            Scalar::UInt(u) => json!(u),
            Scalar::Small(n) => json!(n),
            Scalar::Float(f) => json!(f),
            Scalar::Text(s) => json!(s),
            Scalar::Word(i) => json!(WORDS[usize::from(*i) % WORDS.len()]),
            Scalar::NumberText(n) => json!(format!(" {n} ")),
            Scalar::Array(a) => json!(a),
            Scalar::Object(kv) => {
                Value::Object(kv.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
            }
        }
    }
}

/// Whether `body` says `status`: one of its JSON strings (at any depth, escapes decoded)
/// is exactly the status text, or, for a body that is not JSON, the text appears in it.
/// A final status the library reports must pass this: nothing is reported that the answer
/// did not say.
pub fn says(body: &[u8], status: &str) -> bool {
    fn any_string(v: &Value, status: &str) -> bool {
        match v {
            Value::String(s) => s == status,
            Value::Array(a) => a.iter().any(|v| any_string(v, status)),
            Value::Object(o) => o.values().any(|v| any_string(v, status)),
            _ => false,
        }
    }
    let raw = !status.is_empty() && body.windows(status.len()).any(|w| w == status.as_bytes());
    raw || serde_json::from_slice::<Value>(body).is_ok_and(|v| any_string(&v, status))
}

/// `value` serialized to JSON and read back: must succeed and give an equal value (every
/// record the library writes loads again). Returns the reloaded copy.
pub fn round_trip<T>(value: &T, context: &str) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string(value)
        .unwrap_or_else(|e| panic!("{context}: the record does not serialize: {e}"));
    let back: T = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{context}: the record written does not load: {e}\n{json}"));
    assert_eq!(&back, value, "{context}: the record loads as another");
    back
}

/// HTTP statuses an answer may come with (and any other, through [`Http::Raw`]).
pub const STATUSES: [u16; 14] = [
    200, 201, 204, 302, 400, 401, 403, 404, 409, 429, 500, 502, 503, 504,
];

/// An answer's body: a fixture, a fixture with values patched in at the paths the library
/// reads, or raw bytes.
#[derive(Debug, Arbitrary)]
pub enum Body {
    Fixture(u8),
    Patched(u8, Vec<(u8, Scalar)>),
    Raw(Vec<u8>),
}

impl Body {
    /// The bytes, from the target's `fixtures` (valid JSON, every one).
    pub fn bytes(&self, fixtures: &[&[u8]]) -> Vec<u8> {
        let fixture = |i: &u8| fixtures[usize::from(*i) % fixtures.len()];
        match self {
            Body::Fixture(i) => fixture(i).to_vec(),
            Body::Patched(i, patches) => {
                let mut v: Value = serde_json::from_slice(fixture(i)).expect("fixtures are JSON");
                let paths = invariants::patch::RESPONSE_PATHS;
                for (path, value) in patches {
                    set(
                        &mut v,
                        paths[usize::from(*path) % paths.len()],
                        value.json(),
                    );
                }
                v.to_string().into_bytes()
            }
            Body::Raw(b) => b.clone(),
        }
    }
}

/// An answer's HTTP status: one of [`STATUSES`], or any.
#[derive(Debug, Arbitrary)]
pub enum Http {
    Known(u8),
    Raw(u16),
}

impl Http {
    pub fn code(&self) -> u16 {
        match self {
            Http::Known(i) => STATUSES[usize::from(*i) % STATUSES.len()],
            Http::Raw(c) => *c,
        }
    }
}

/// The API key the targets configure (a secret: checked never to leak).
pub const KEY: &str = "sk_test_SECRETKEY";
/// The OTP the targets submit (a secret: checked never to leak).
pub const OTP: &str = "86420975";
/// 2026-11-25 10:00:00 UTC.
pub const T0_MS: i64 = 1_795_600_800_000;

macro_rules! fixtures {
    ($($name:literal),* $(,)?) => {
        [$(include_bytes!(concat!("../../tests/fixtures/", $name, ".json")).as_slice()),*]
    };
}

/// The answers of `tests/fixtures/` the targets start from (the first: a Direct OTP start).
pub const FIXTURES: [&[u8]; 22] = fixtures![
    "start_direct_otp",
    "start_3ds_failover",
    "resend_seed",
    "resend_counters",
    "submit_pending_wrong_otp",
    "submit_pending_exhausted",
    "submit_charged",
    "submit_authorized",
    "submit_authentication_failed",
    "submit_juspay_declined",
    "submit_authorizing",
    "order_status_charged",
    "order_status_pending",
    "resend_limit_exceeded",
    "submit_wrong_otp_400",
    "error_duplicate_request",
    "error_internal_500",
    "error_access_denied_401",
    "error_forbidden_403",
    "error_not_found_404",
    "order_not_found",
    "error_missing_routing_id",
];
