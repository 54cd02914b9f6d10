//! The wire forms of what the drivers (and their step machine) finish with: a step done, the
//! bank page, a settlement, a swept payment; and the settlement hint a wrapper hands in.
//! The payment crosses as its own stored JSON (`record`), which `wire::record` reads back.

use std::error::Error as StdError;

use serde::Deserialize;
use serde_json::{json, Value};

use super::input::{parse, Secret};
use super::{coded, nest, ToWire, WireError};
use crate::driver::{BankPage, Done, DriveError, Settled, Swept};
use crate::payment::{Payment, Settlement};
use crate::settle::{ResponseKey, ReturnParams, WebhookCredentials};

/// The payment as a store keeps it.
fn record(payment: &Payment) -> Value {
    serde_json::to_value(payment).unwrap_or(Value::Null)
}

/// The transport's error, for logs: its code when it is this crate's, `transport_other`
/// otherwise (a wrapper's own error never crosses).
fn transport_error(e: Option<&(dyn StdError + Send + Sync + 'static)>) -> Value {
    match e {
        None => Value::Null,
        Some(e) => own_transport_error(e)
            .unwrap_or_else(|| json!({"code": "transport_other", "may_have_been_sent": true})),
    }
}

#[cfg(feature = "http")]
fn own_transport_error(e: &(dyn StdError + Send + Sync + 'static)) -> Option<Value> {
    e.downcast_ref::<crate::transport::TransportError>()
        .map(ToWire::to_wire)
}

#[cfg(not(feature = "http"))]
fn own_transport_error(_: &(dyn StdError + Send + Sync + 'static)) -> Option<Value> {
    None
}

impl ToWire for Done {
    /// `{"record": <the payment as stored>, "outcome": <outcome>, "transport_error": <error>
    /// | null}`.
    fn to_wire(&self) -> Value {
        json!({
            "record": record(&self.payment),
            "outcome": self.outcome.to_wire(),
            "transport_error": transport_error(self.transport_error.as_deref()),
        })
    }
}

impl ToWire for BankPage {
    /// `{"url": "...", "record": <the payment as stored>}`.
    fn to_wire(&self) -> Value {
        json!({"url": self.url, "record": record(&self.payment)})
    }
}

impl ToWire for Settled {
    /// `{"record", "outcome": <settle outcome>, "check": {"outcome": <outcome>} |
    /// {"error": <drive error>} | null, "transport_error"}`.
    fn to_wire(&self) -> Value {
        let check = match &self.check {
            None => Value::Null,
            Some(Ok(outcome)) => json!({"outcome": outcome.to_wire()}),
            Some(Err(e)) => json!({"error": e.to_wire()}),
        };
        json!({
            "record": record(&self.payment),
            "outcome": self.outcome.to_wire(),
            "check": check,
            "transport_error": transport_error(self.transport_error.as_deref()),
        })
    }
}

impl ToWire for Swept {
    /// `{"code": "recovered", "key", "outcome", "check": <done> | {"error"} | null}`,
    /// `{"code": "moved", "key"}`, or `{"code": "sweep_failed", "key", ...the error}`.
    fn to_wire(&self) -> Value {
        match self {
            Swept::Recovered {
                key,
                outcome,
                check,
            } => {
                let check = match check {
                    None => Value::Null,
                    Some(Ok(done)) => done.to_wire(),
                    Some(Err(e)) => json!({"error": e.to_wire()}),
                };
                json!({"code": "recovered", "key": key, "outcome": outcome.to_wire(),
                       "check": check})
            }
            Swept::Moved { key } => json!({"code": "moved", "key": key}),
            Swept::Failed { key, error } => {
                let mut m = coded("sweep_failed");
                m.insert("key".into(), key.as_str().into());
                nest(&mut m, error.to_wire());
                Value::Object(m)
            }
        }
    }
}

impl ToWire for Result<Done, DriveError> {
    /// The step's form, or `{"error": <drive error>}`.
    fn to_wire(&self) -> Value {
        match self {
            Ok(done) => done.to_wire(),
            Err(e) => json!({"error": e.to_wire()}),
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum SettlementForm {
    ReturnUrl {
        query: String,
        response_key: Secret,
    },
    Webhook {
        #[serde(default)]
        authorization: Option<Secret>,
        body: String,
        username: Secret,
        password: Secret,
    },
}

/// A settlement hint, verified here: `{"kind": "return_url", "query": "order_id=...&
/// signature=...", "response_key": "..."}` (the return URL's query string or POST form
/// body, as received) or `{"kind": "webhook", "authorization": "Basic ...", "body": "...",
/// "username": "...", "password": "..."}` (the webhook's `Authorization` header and body,
/// and your webhook credentials). A signature or credentials that do not check out is the
/// verification's own coded error (`return_*`, `webhook_*`); the secrets are wiped and never
/// repeated.
pub fn settlement(json: &[u8]) -> Result<Settlement, WireError> {
    Ok(match parse::<SettlementForm>(json)? {
        SettlementForm::ReturnUrl {
            query,
            response_key,
        } => {
            let key = ResponseKey::new(&response_key.0)?;
            Settlement::ReturnUrl(ReturnParams::from_query(&query)?.verify(&key)?)
        }
        SettlementForm::Webhook {
            authorization,
            body,
            username,
            password,
        } => {
            let credentials = WebhookCredentials::new(&username.0, &password.0)?;
            let authorization = authorization.as_ref().map(|a| a.0.as_str());
            Settlement::Webhook(credentials.verify(authorization, body.as_bytes())?)
        }
    })
}
