//! The wire forms of results: outcomes, refusals, settle outcomes, next steps, timer
//! events, the view.

use serde_json::{json, Map, Value};

use super::{coded, ms, nest, ToWire};
use crate::outcome::{Outcome, Refusal, TimerEvent, Uncertainty};
use crate::payment::SettleOutcome;
use crate::settle::{Disagreement, IntegrityError};
use crate::status::Status;
use crate::view::{NextStep, PaymentView};

fn with_status(code: &str, status: &Status) -> Value {
    let mut m = coded(code);
    m.insert("status".into(), status.as_str().into());
    Value::Object(m)
}

fn integrity(code: &str, e: &IntegrityError) -> Value {
    let mut m = coded(code);
    m.insert(
        "expected_amount".into(),
        e.expected.amount().to_string().into(),
    );
    m.insert("expected_currency".into(), e.expected.currency().into());
    m.insert(
        "found_amount".into(),
        json!(e.found_amount.as_ref().map(ToString::to_string)),
    );
    m.insert("found_currency".into(), json!(e.found_currency));
    Value::Object(m)
}

fn disagreement(code: &str, d: &Disagreement) -> Value {
    let mut m = coded(code);
    m.insert("source".into(), d.source.code().into());
    m.insert("said".into(), d.said.as_str().into());
    m.insert("status".into(), d.status.as_str().into());
    m.insert("was_paid".into(), d.was_paid.into());
    m.insert("paid".into(), d.paid.into());
    Value::Object(m)
}

impl ToWire for Outcome {
    /// The code ([`Outcome::code`]) and its fields: `sends_left`, `attempts_left`,
    /// `status`, the refused answer flattened (`reason` and its fields) for `rejected`,
    /// the bank's texts for `unauthorized`, `why` for `check_status`, the amounts for
    /// `integrity_failure`, the sources for `disagreement`.
    fn to_wire(&self) -> Value {
        let code = self.code();
        match self {
            Outcome::OtpSent { sends_left } => json!({"code": code, "sends_left": sends_left}),
            Outcome::WrongOtp { attempts_left } => {
                json!({"code": code, "attempts_left": attempts_left})
            }
            Outcome::Approved(s)
            | Outcome::Declined(s)
            | Outcome::Pending(s)
            | Outcome::Confirmed(s) => with_status(code, s),
            Outcome::Rejected(e) => {
                let mut m = coded(code);
                nest(&mut m, e.to_wire());
                Value::Object(m)
            }
            Outcome::Unauthorized(e) => {
                let mut m = coded(code);
                nest(&mut m, e.to_wire());
                Value::Object(m)
            }
            Outcome::CheckStatus(why) => {
                let mut m = coded(code);
                m.insert("why".into(), why.code().into());
                match why {
                    Uncertainty::Response(e) | Uncertainty::Stale(e) => nest(&mut m, e.to_wire()),
                    Uncertainty::AmountUnchecked(s) => {
                        m.insert("status".into(), s.as_str().into());
                    }
                    Uncertainty::MaybeSent => {}
                }
                Value::Object(m)
            }
            Outcome::IntegrityFailed(e) => integrity(code, e),
            Outcome::Disagreement(d) => disagreement(code, d),
            Outcome::SendLimitReached
            | Outcome::AttemptLimitReached
            | Outcome::BankPageRequired
            | Outcome::NotDelivered => json!({ "code": code }),
        }
    }
}

impl ToWire for Refusal {
    /// The code ([`Refusal::code`]) and its fields: `token` (in flight), `status`
    /// (already final), `limit`, `until_ms` (cooldown).
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        match self {
            Refusal::InFlight(t) => {
                m.insert("token".into(), t.to_string().into());
            }
            Refusal::AlreadyFinal(s) => {
                m.insert("status".into(), s.as_str().into());
            }
            Refusal::SendLimitReached { limit } | Refusal::AttemptLimitReached { limit } => {
                m.insert("limit".into(), json!(limit));
            }
            Refusal::Cooldown { until } => {
                m.insert("until_ms".into(), json!(ms(*until)));
            }
            _ => {}
        }
        Value::Object(m)
    }
}

impl ToWire for SettleOutcome {
    /// The code ([`SettleOutcome::code`]) and its fields: `status`, the amounts of an
    /// integrity failure, the sources of a conflict.
    fn to_wire(&self) -> Value {
        let code = self.code();
        match self {
            SettleOutcome::Approved(s)
            | SettleOutcome::Declined(s)
            | SettleOutcome::Confirming(s)
            | SettleOutcome::Agrees(s)
            | SettleOutcome::CheckStatus(s)
            | SettleOutcome::NotFinal(s) => with_status(code, s),
            SettleOutcome::IntegrityFailed(e) => integrity(code, e),
            SettleOutcome::Conflict(d) => disagreement(code, d),
            SettleOutcome::InFlight
            | SettleOutcome::Duplicate
            | SettleOutcome::Stale
            | SettleOutcome::OtherTransaction => json!({ "code": code }),
        }
    }
}

impl ToWire for NextStep {
    /// The code ([`NextStep::code`]) and `token` (wait), `url` (bank page) or `status`
    /// (finished).
    fn to_wire(&self) -> Value {
        let mut m = coded(self.code());
        match self {
            NextStep::Wait(t) => {
                m.insert("token".into(), t.to_string().into());
            }
            NextStep::BankPage(url) => {
                m.insert("url".into(), url.as_str().into());
            }
            NextStep::Finished(s) => {
                m.insert("status".into(), s.as_str().into());
            }
            _ => {}
        }
        Value::Object(m)
    }
}

impl ToWire for TimerEvent {
    fn to_wire(&self) -> Value {
        json!({ "code": self.code() })
    }
}

impl ToWire for PaymentView {
    /// The view as it serializes (its `next` is the next step's code).
    fn to_wire(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Map::new()))
    }
}
