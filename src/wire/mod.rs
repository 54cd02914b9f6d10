//! The language-neutral wire form: one JSON form for everything that crosses between the
//! core and a wrapper in another language (Python, Node, ...), so no wrapper invents one.
//!
//! * **In** (parsed here, every failure a coded [`WireError`]): a [`command`], a
//!   [`reply`], a [`token`] (the opaque string a request carried), a [`config`], a
//!   [`start_request`], a stored [`record`], and a time ([`time_from_ms`]).
//! * **Out** ([`ToWire`]): requests ([`Outgoing`](crate::Outgoing)), outcomes, refusals,
//!   settle outcomes, next steps, timer events, views, the config and start request
//!   (without their secrets), and every error. A result or error is
//!   `{"code": "<stable snake_case code>", ...fields}`; a nested error flattens into the
//!   outer one: its code becomes the `reason` field and its fields join the outer ones. Times
//!   are Unix milliseconds in fields ending `_ms`.
//!
//! This layer only maps: the core decides. `docs/protocol.md` documents every form,
//! `docs/protocol.schema.json` ([`schema`]) is their JSON Schema and `docs/codes.md`
//! ([`crate::codes`]) lists every code.
//!
//! ```
//! use direct_otp::wire::{self, ToWire};
//!
//! let command = wire::command(br#"{"command":"submit","otp":"123456"}"#).unwrap();
//! assert!(format!("{command:?}").contains("redacted"));
//! let err = wire::command(br#"{"command":"submit","otp":"12x456"}"#).unwrap_err();
//! assert_eq!(err.to_wire(), serde_json::json!({"code": "otp_not_digits"}));
//! ```

mod base64;
mod config;
mod driven;
mod error;
pub mod host;
mod input;
mod request;
mod result;
mod schema;
#[cfg(test)]
mod tests;

pub use config::{config, start_request};
pub use driven::settlement;
pub use error::WireError;
pub use input::{command, record, reply, time_from_ms, token};
pub use schema::schema;

use serde_json::{Map, Value};
use time::OffsetDateTime;

/// A value's one wire form (a JSON value; results and errors are objects with `code`).
pub trait ToWire {
    /// The wire form.
    fn to_wire(&self) -> Value;

    /// The wire form as a JSON string.
    fn to_wire_string(&self) -> String {
        self.to_wire().to_string()
    }
}

impl<T: ToWire + ?Sized> ToWire for Box<T> {
    fn to_wire(&self) -> Value {
        (**self).to_wire()
    }
}

/// A value's wire form as a [`serde::Serialize`] value, to put it inside a structure of
/// your own (a web handler's JSON answer, say); it serializes exactly as
/// [`ToWire::to_wire`].
///
/// ```
/// use direct_otp::{wire::Wire, Refusal};
/// let json = serde_json::json!({"refusal": Wire(&Refusal::CheckStatus)});
/// assert_eq!(json.to_string(), r#"{"refusal":{"code":"check_status"}}"#);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Wire<'a, T: ?Sized>(pub &'a T);

impl<T: ToWire + ?Sized> serde::Serialize for Wire<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.to_wire().serialize(s)
    }
}

/// `{"code": code}`, to add fields to.
pub(crate) fn coded(code: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("code".into(), code.into());
    m
}

/// Flattens a nested error's form into `outer`: its `code` becomes `reason` (and its own
/// `reason`, one level deeper, `cause`), its fields join (an outer field of the same name
/// wins).
pub(crate) fn nest(outer: &mut Map<String, Value>, inner: Value) {
    let Value::Object(inner) = inner else { return };
    for (k, v) in inner {
        let k = match k.as_str() {
            "code" => "reason".to_owned(),
            "reason" => "cause".to_owned(),
            _ => k,
        };
        outer.entry(k).or_insert(v);
    }
}

/// Merges a form's fields into `outer`, keeping `outer`'s code.
pub(crate) fn merge(outer: &mut Map<String, Value>, inner: Value) {
    let Value::Object(inner) = inner else { return };
    for (k, v) in inner {
        if k != "code" {
            outer.entry(k).or_insert(v);
        }
    }
}

/// An instant as Unix milliseconds.
pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}
