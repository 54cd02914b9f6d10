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
