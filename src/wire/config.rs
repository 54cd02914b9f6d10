//! The configuration and the start request: read with their secrets (the API key, card
//! data, the CVV), written without them.

use serde::Deserialize;
use serde_json::{json, Value};

use super::input::{parse, Secret};
use super::{ToWire, WireError};
use crate::card::{CardDetails, PaymentSource};
use crate::config::Config;
use crate::policy::Policy;
use crate::settle::{Amount, ExpectedAmount};
use crate::start::StartRequest;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigForm {
    base_url: String,
    api_key: Secret,
    #[serde(default)]
    merchant_id: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    auto_capture: Option<bool>,
}

/// A configuration: `{"base_url": "https://api.juspay.in", "api_key": "...",
/// "merchant_id"?, "version"?, "auto_capture"?}`. Its wire form out never holds the key.
pub fn config(json: &[u8]) -> Result<Config, WireError> {
    let form: ConfigForm = parse(json)?;
    let mut config = Config::new(&form.base_url, &form.api_key.0)?;
    if let Some(m) = &form.merchant_id {
        config = config.with_merchant_id(m)?;
    }
    if let Some(v) = &form.version {
        config = config.with_version(v)?;
    }
    Ok(config.with_auto_capture(form.auto_capture))
}

impl ToWire for Config {
    /// `base_url`, `merchant_id`, `version`, `auto_capture`: never the API key.
    fn to_wire(&self) -> Value {
        json!({
            "base_url": self.base_url(),
            "merchant_id": self.merchant_id().map(|v| &**v),
            "version": self.version().map(|v| &**v),
            "auto_capture": self.auto_capture(),
        })
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum SourceForm {
    Token {
        card_token: Secret,
        #[serde(default)]
        cvv: Option<Secret>,
    },
    Card {
        number: Secret,
        expiry_month: Secret,
        expiry_year: Secret,
        cvv: Secret,
        #[serde(default)]
        name_on_card: Option<Secret>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyForm {
    max_sends: u32,
    max_attempts: u32,
    resend_cooldown_ms: u64,
    lifetime_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedForm {
    amount: String,
    currency: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartForm {
    order_id: String,
    merchant_id: String,
    routing_id: String,
    source: SourceForm,
    #[serde(default)]
    payment_method: Option<String>,
    #[serde(default)]
    save_to_locker: Option<bool>,
    #[serde(default)]
    gateway_id: Option<String>,
    #[serde(default)]
    policy: Option<PolicyForm>,
    #[serde(default)]
    expected_amount: Option<ExpectedForm>,
}

impl SourceForm {
    /// The payment source read (the card data stays in memory only).
    pub(super) fn into_source(self) -> PaymentSource {
        match self {
            SourceForm::Token { card_token, cvv } => PaymentSource::Token {
                card_token: card_token.0.to_string(),
                cvv: cvv.map(|c| c.0.to_string()),
            },
            SourceForm::Card {
                number,
                expiry_month,
                expiry_year,
                cvv,
                name_on_card,
            } => PaymentSource::Card(CardDetails {
                number: number.0.to_string(),
                expiry_month: expiry_month.0.to_string(),
                expiry_year: expiry_year.0.to_string(),
                cvv: cvv.0.to_string(),
                name_on_card: name_on_card.map(|n| n.0.to_string()),
            }),
        }
    }
}

/// A start request: `{"order_id", "merchant_id", "routing_id", "source": {"type": "token",
/// "card_token", "cvv"?} | {"type": "card", "number", "expiry_month", "expiry_year",
/// "cvv", "name_on_card"?}, "payment_method"?, "save_to_locker"?, "gateway_id"?,
/// "policy"?: {"max_sends", "max_attempts", "resend_cooldown_ms", "lifetime_ms"},
/// "expected_amount"?: {"amount": "1499.00", "currency": "INR"}}`. Its wire form out never
/// holds the card data, the token or the CVV.
pub fn start_request(json: &[u8]) -> Result<StartRequest, WireError> {
    let form: StartForm = parse(json)?;
    let source = form.source.into_source();
    let mut start = StartRequest::new(&form.order_id, &form.merchant_id, &form.routing_id, source)?;
    if let Some(m) = &form.payment_method {
        start = start.with_payment_method(m)?;
    }
    if let Some(save) = form.save_to_locker {
        start = start.with_save_to_locker(save);
    }
    if let Some(g) = &form.gateway_id {
        start = start.with_gateway_id(g)?;
    }
    if let Some(p) = form.policy {
        let policy = Policy {
            max_sends: p.max_sends,
            max_attempts: p.max_attempts,
            resend_cooldown: std::time::Duration::from_millis(p.resend_cooldown_ms),
            lifetime: std::time::Duration::from_millis(p.lifetime_ms),
        };
        start = start.with_policy(policy);
    }
    if let Some(e) = form.expected_amount {
        let amount = ExpectedAmount::new(Amount::parse(&e.amount)?, &e.currency)?;
        start = start.with_expected_amount(amount);
    }
    Ok(start)
}

impl ToWire for StartRequest {
    /// The ids, `source` (`{"type": "token"}` or `{"type": "card"}` only), the options,
    /// `policy` and `expected_amount`: never the card data, the token or the CVV.
    fn to_wire(&self) -> Value {
        let mut v = self.public_fields();
        let p = self.policy();
        v["policy"] = json!({
            "max_sends": p.max_sends,
            "max_attempts": p.max_attempts,
            "resend_cooldown_ms": u64::try_from(p.resend_cooldown.as_millis()).unwrap_or(u64::MAX),
            "lifetime_ms": u64::try_from(p.lifetime.as_millis()).unwrap_or(u64::MAX),
        });
        v["expected_amount"] = match self.expected_amount() {
            Some(e) => json!({"amount": e.amount().to_string(), "currency": e.currency()}),
            None => Value::Null,
        };
        v
    }
}
