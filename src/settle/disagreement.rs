//! Who settled a payment, and what is reported when sources disagree: plain data shared by
//! the payment record (`src/payment/settle.rs`) and its outcomes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::status::Status;

/// A source that can settle a payment.
///
/// ```
/// use direct_otp::SettlementSource;
///
/// assert_eq!(SettlementSource::Webhook.code(), "webhook");
/// assert!(SettlementSource::OrderStatus.is_authoritative());
/// assert!(!SettlementSource::ReturnUrl.is_authoritative());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SettlementSource {
    /// The payment's own answer: to its start (`POST /txns`), submit or resend, on a call
    /// it made with the API key.
    Answer,
    /// The order status API (`GET /orders/{order_id}`): authoritative.
    OrderStatus,
    /// The browser's return from the bank page, with a verified signature.
    ReturnUrl,
    /// A webhook with verified credentials.
    Webhook,
}

impl SettlementSource {
    /// A stable snake_case code: `answer`, `order_status`, `return_url`, `webhook`.
    pub fn code(self) -> &'static str {
        match self {
            SettlementSource::Answer => "answer",
            SettlementSource::OrderStatus => "order_status",
            SettlementSource::ReturnUrl => "return_url",
            SettlementSource::Webhook => "webhook",
        }
    }

    /// True for the answers of calls the merchant made itself with its API key (the order
    /// status API, the payment's own answers): a settlement from them needs no
    /// confirmation. A return URL or a webhook is a hint until the order status API
    /// confirms it.
    pub fn is_authoritative(self) -> bool {
        matches!(
            self,
            SettlementSource::Answer | SettlementSource::OrderStatus
        )
    }
}

impl fmt::Display for SettlementSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SettlementSource::Answer => "the payment's own answer",
            SettlementSource::OrderStatus => "the order status API",
            SettlementSource::ReturnUrl => "the return URL",
            SettlementSource::Webhook => "a webhook",
        })
    }
}

/// Two sources of one payment said different things: `source` said `said`, and the
/// payment holds `status`.
///
/// * As [`Outcome::Disagreement`](crate::Outcome::Disagreement), the order status API
///   overturned what `source` had settled: the payment now holds the API's `status`. If
///   `was_paid` and not `paid`, stop (or reverse) fulfilment; if `paid` and not
///   `was_paid`, fulfil (or refund).
/// * As [`SettleOutcome::Conflict`](crate::SettleOutcome::Conflict), a return URL or a
///   webhook contradicts the settled `status`: the payment keeps `status` until the order
///   status API decides (`paid == was_paid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Disagreement {
    /// Who said `said`.
    pub source: SettlementSource,
    /// What it said.
    pub said: Status,
    /// The status the payment holds now.
    pub status: Status,
    /// Whether the payment counted as paid before.
    pub was_paid: bool,
    /// Whether it counts as paid now.
    pub paid: bool,
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paid = |p: bool| if p { "paid" } else { "not paid" };
        write!(
            f,
            "{} said {}, the payment holds {} ({}",
            self.source,
            self.said,
            self.status,
            paid(self.paid)
        )?;
        if self.paid != self.was_paid {
            write!(f, "; was {}", paid(self.was_paid))?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_words() {
        for (s, code, json) in [
            (SettlementSource::Answer, "answer", r#""answer""#),
            (
                SettlementSource::OrderStatus,
                "order_status",
                r#""order_status""#,
            ),
            (SettlementSource::ReturnUrl, "return_url", r#""return_url""#),
            (SettlementSource::Webhook, "webhook", r#""webhook""#),
        ] {
            assert_eq!(s.code(), code);
            assert_eq!(serde_json::to_string(&s).unwrap(), json);
            assert_eq!(serde_json::from_str::<SettlementSource>(json).unwrap(), s);
        }
        let d = Disagreement {
            source: SettlementSource::Webhook,
            said: Status::AuthenticationFailed,
            status: Status::Charged,
            was_paid: false,
            paid: true,
        };
        assert_eq!(
            d.to_string(),
            "a webhook said AUTHENTICATION_FAILED, the payment holds CHARGED (paid; was not paid)"
        );
    }
}
