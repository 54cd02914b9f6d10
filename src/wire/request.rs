//! A request's wire form: what the wrapper's HTTP client sends.

use serde_json::{json, Value};

use super::{base64, ToWire};
use crate::request::{Outgoing, Request};

impl ToWire for Outgoing {
    /// `{"token", "kind", "method", "url", "headers": [{"name", "value", "sensitive"}],
    /// "body"}` (`body_base64` for a body that is not UTF-8). The one form that carries
    /// secrets, because they must be sent: the `Authorization` header (`sensitive: true`)
    /// and, for a start or a submit, card data or the OTP in the body
    /// (`body_sensitive: true`). Never log it; hand `token` back with the reply.
    fn to_wire(&self) -> Value {
        let r = &self.request;
        let headers: Vec<Value> = r
            .headers()
            .map(|(name, value)| {
                json!({"name": name, "value": value, "sensitive": Request::is_sensitive_header(name)})
            })
            .collect();
        let mut v = json!({
            "token": self.token.to_string(),
            "kind": r.kind().code(),
            "method": r.method().as_str(),
            "url": r.url(),
            "headers": headers,
            "body_sensitive": r.body_is_secret(),
        });
        match std::str::from_utf8(r.body()) {
            Ok(text) => v["body"] = text.into(),
            Err(_) => v["body_base64"] = base64::encode(r.body()).into(),
        }
        v
    }
}
