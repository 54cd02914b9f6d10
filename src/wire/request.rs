//! A request's wire form: what the wrapper's HTTP client sends.

use serde::Serialize;
use serde_json::Value;

use super::{base64, ToWire};
use crate::request::{Outgoing, Request};

#[derive(Serialize)]
struct HeaderForm<'a> {
    name: &'a str,
    value: &'a str,
    sensitive: bool,
}

/// Written straight from the request's fields (no intermediate `Value`).
#[derive(Serialize)]
struct RequestForm<'a> {
    token: String,
    kind: &'static str,
    method: &'static str,
    url: &'a str,
    headers: Vec<HeaderForm<'a>>,
    body_sensitive: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
}

fn form(o: &Outgoing) -> RequestForm<'_> {
    let r = &o.request;
    let text = std::str::from_utf8(r.body()).ok();
    RequestForm {
        token: o.token.to_string(),
        kind: r.kind().code(),
        method: r.method().as_str(),
        url: r.url(),
        headers: r
            .headers()
            .map(|(name, value)| HeaderForm {
                name,
                value,
                sensitive: Request::is_sensitive_header(name),
            })
            .collect(),
        body_sensitive: r.body_is_secret(),
        body: text,
        body_base64: text.is_none().then(|| base64::encode(r.body())),
    }
}

impl ToWire for Outgoing {
    /// `{"token", "kind", "method", "url", "headers": [{"name", "value", "sensitive"}],
    /// "body_sensitive", "body"}` (`body_base64` for a body that is not UTF-8). The one form
    /// that carries secrets, because they must be sent: the `Authorization` header
    /// (`sensitive: true`) and, for a start or a submit, card data or the OTP in the body
    /// (`body_sensitive: true`). Never log it; hand `token` back with the reply.
    fn to_wire(&self) -> Value {
        serde_json::to_value(form(self)).unwrap_or(Value::Null)
    }

    fn to_wire_string(&self) -> String {
        serde_json::to_string(&form(self)).unwrap_or_default()
    }
}
