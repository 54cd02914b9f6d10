//! Replacing fields of a JSON document, for tests and fuzz targets that feed the library
//! answers with wrong types where it expects something else.

use serde_json::{json, Value};

/// The paths the library reads in an answer (and their parents), where a wrong type or a
/// strange value tests the parser.
pub const RESPONSE_PATHS: [&[&str]; 26] = [
    &["status"],
    &["order_id"],
    &["id"],
    &["txn_uuid"],
    &["payment"],
    &["payment", "authentication"],
    &["payment", "authentication", "method"],
    &["payment", "authentication", "url"],
    &["payment", "authentication", "params"],
    &["payment", "authentication", "params", "id"],
    &["payment", "authentication", "params", "challenge_id"],
    &["payment", "authentication", "params", "auth_type"],
    &["payment", "authentication", "params", "fallback_url"],
    &["payment", "authentication", "params", "submit_otp_allowed"],
    &["payment", "authentication", "params", "resend_otp_allowed"],
    &["payment", "authentication", "params", "times_otp_sent"],
    &["payment", "authentication", "params", "max_otp_send_limit"],
    &["payment", "authentication", "params", "current_attempt"],
    &["payment", "authentication", "params", "max_attempts"],
    &["payment_info"],
    &["payment_info", "card"],
    &["payment_info", "card", "last_four_digits"],
    &["error_code"],
    &["error_info"],
    &["error_info", "code"],
    &["error_message"],
];

/// Sets `path` in `v` to `value`, turning whatever is on the way into objects.
pub fn set(v: &mut Value, path: &[&str], value: Value) {
    let mut cur = v;
    for key in path {
        if !cur.is_object() {
            *cur = json!({});
        }
        cur = cur
            .as_object_mut()
            .expect("just made an object")
            .entry(key.to_string())
            .or_insert(Value::Null);
    }
    *cur = value;
}
