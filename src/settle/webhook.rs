//! Juspay's webhooks: HTTP Basic credentials the merchant set in the dashboard, and an
//! event envelope `{id, event_name, date_created, content: {order: {...}}}` whose order has
//! the order status API's shape (read by the same [`OrderBody`]).
//!
//! A webhook may come more than once (same `id`), out of order, and while the browser is
//! returning: parsing is pure, so the same body always gives the same [`WebhookEvent`];
//! deduplicating by [`id`](WebhookEvent::id) and keeping a final status final is the
//! caller's (or the payment record's) job.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::ct;
use super::error::{SecretError, WebhookError};
use super::snapshot::{At, OrderSnapshot};
use crate::error::{Malformed, ResponseError};
use crate::lenient::Text;
use crate::response::{self, OrderBody};

/// Largest webhook body accepted.
pub const MAX_WEBHOOK_BODY: usize = 256 * 1024;
/// Longest event id accepted, in bytes.
pub(crate) const MAX_EVENT_ID: usize = 256;
/// Longest `Authorization` header looked at.
const MAX_AUTHORIZATION: usize = 4 * 1024;

/// The HTTP Basic credentials Juspay sends with every webhook (set in the dashboard).
/// A secret: redacted in `Debug`, never serialized; only a digest of the expected
/// `Authorization` value is kept.
///
/// ```
/// use direct_otp::{WebhookCredentials, WebhookError, EventName, Status};
///
/// let credentials = WebhookCredentials::new("acme_hooks", "s3cret")?;
/// let body = br#"{"id":"evt_1","event_name":"ORDER_SUCCEEDED","date_created":"2026-11-25T10:00:00Z",
///                 "content":{"order":{"order_id":"ord_1","status":"CHARGED","amount":1499.0,"currency":"INR"}}}"#;
/// // "acme_hooks:s3cret" in base64, as Juspay sends it.
/// let event = credentials.verify(Some("Basic YWNtZV9ob29rczpzM2NyZXQ="), body)?;
/// assert_eq!(event.event_name, EventName::OrderSucceeded);
/// assert_eq!(event.order.status, Status::Charged);
///
/// assert_eq!(credentials.verify(None, body).unwrap_err(), WebhookError::MissingAuthorization);
/// assert_eq!(
///     credentials.verify(Some("Basic YWNtZV9ob29rczp3cm9uZw=="), body).unwrap_err(),
///     WebhookError::BadCredentials
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct WebhookCredentials {
    /// SHA-256 of the base64 of `username:password`.
    digest: [u8; 32],
}

impl WebhookCredentials {
    /// The user name (non-empty, no `:`) and password (non-empty) set in the dashboard;
    /// neither may hold control characters.
    pub fn new(username: &str, password: &str) -> Result<Self, SecretError> {
        const USER: &str = "webhook user name";
        const PASSWORD: &str = "webhook password";
        for (what, value) in [(USER, username), (PASSWORD, password)] {
            if value.is_empty() {
                return Err(SecretError::Empty { what });
            }
            if value.chars().any(char::is_control) {
                return Err(SecretError::Forbidden {
                    what,
                    reason: "control characters",
                });
            }
        }
        if username.contains(':') {
            return Err(SecretError::Forbidden {
                what: USER,
                reason: "':'",
            });
        }
        let mut token = String::new();
        crate::config::base64_into(format!("{username}:{password}").as_bytes(), &mut token);
        Ok(WebhookCredentials {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Checks an `Authorization` header value (`Basic <base64>`; the scheme in any case),
    /// comparing in constant time.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), WebhookError> {
        let value = authorization
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(WebhookError::MissingAuthorization)?;
        let (scheme, token) = value
            .split_once([' ', '\t'])
            .ok_or(WebhookError::NotBasic)?;
        if !scheme.eq_ignore_ascii_case("Basic") {
            return Err(WebhookError::NotBasic);
        }
        let token = token.trim();
        if token.len() > MAX_AUTHORIZATION {
            return Err(WebhookError::BadCredentials);
        }
        let got: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if ct::eq_digest(&self.digest, &got) {
            Ok(())
        } else {
            Err(WebhookError::BadCredentials)
        }
    }

    /// [`check`](Self::check)s the credentials, then [parses](WebhookEvent::parse) the
    /// body: the one call a webhook handler makes.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookEvent, WebhookError> {
        self.check(authorization)?;
        WebhookEvent::parse(body)
    }
}

impl fmt::Debug for WebhookCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookCredentials([redacted])")
    }
}

/// The kind of a webhook event, keyed on its string. An event this library doesn't know is
/// kept, with its text, as [`EventName::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventName {
    /// `ORDER_SUCCEEDED`: the order is paid.
    OrderSucceeded,
    /// `ORDER_FAILED`: the order's latest transaction failed (a new one may still pay it).
    OrderFailed,
    /// `ORDER_REFUNDED`.
    OrderRefunded,
    /// `ORDER_REFUND_FAILED`.
    OrderRefundFailed,
    /// `TXN_CREATED`: a transaction started.
    TxnCreated,
    /// `REFUND_MANUAL_REVIEW_NEEDED`.
    RefundManualReviewNeeded,
    /// `AUTO_REFUND_SUCCEEDED`.
    AutoRefundSucceeded,
    /// `AUTO_REFUND_FAILED`.
    AutoRefundFailed,
    /// `TXN_CHARGED` (seen in integrators' code only).
    TxnCharged,
    /// `TXN_FAILED` (seen in integrators' code only).
    TxnFailed,
    /// Any other name, kept as sent.
    Other(String),
}

impl EventName {
    /// Parses an event name (case-sensitive, as Juspay sends it).
    pub fn parse(s: &str) -> EventName {
        match s {
            "ORDER_SUCCEEDED" => EventName::OrderSucceeded,
            "ORDER_FAILED" => EventName::OrderFailed,
            "ORDER_REFUNDED" => EventName::OrderRefunded,
            "ORDER_REFUND_FAILED" => EventName::OrderRefundFailed,
            "TXN_CREATED" => EventName::TxnCreated,
            "REFUND_MANUAL_REVIEW_NEEDED" => EventName::RefundManualReviewNeeded,
            "AUTO_REFUND_SUCCEEDED" => EventName::AutoRefundSucceeded,
            "AUTO_REFUND_FAILED" => EventName::AutoRefundFailed,
            "TXN_CHARGED" => EventName::TxnCharged,
            "TXN_FAILED" => EventName::TxnFailed,
            other => EventName::Other(other.to_owned()),
        }
    }

    /// The event name.
    pub fn as_str(&self) -> &str {
        match self {
            EventName::OrderSucceeded => "ORDER_SUCCEEDED",
            EventName::OrderFailed => "ORDER_FAILED",
            EventName::OrderRefunded => "ORDER_REFUNDED",
            EventName::OrderRefundFailed => "ORDER_REFUND_FAILED",
            EventName::TxnCreated => "TXN_CREATED",
            EventName::RefundManualReviewNeeded => "REFUND_MANUAL_REVIEW_NEEDED",
            EventName::AutoRefundSucceeded => "AUTO_REFUND_SUCCEEDED",
            EventName::AutoRefundFailed => "AUTO_REFUND_FAILED",
            EventName::TxnCharged => "TXN_CHARGED",
            EventName::TxnFailed => "TXN_FAILED",
            EventName::Other(s) => s,
        }
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(EventName::parse(&s))
    }
}

/// One webhook, read: owned plain data. The same body always gives the same event, so a
/// replay (same [`id`](Self::id)) is recognised by comparing ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookEvent {
    /// The event id: the key to deduplicate on.
    pub id: String,
    /// What happened.
    pub event_name: EventName,
    /// `date_created` (RFC 3339, or `YYYY-MM-DD HH:MM:SS` read as UTC); `None` when absent
    /// or unreadable. Serialized as Unix milliseconds, as the crate keeps every instant.
    #[serde(with = "unix_ms")]
    pub created_at: Option<OffsetDateTime>,
    /// `content.order`: the order as Juspay saw it when it sent the event.
    pub order: OrderSnapshot,
}

#[derive(Debug, Default, Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    id: Text<'a>,
    #[serde(default, borrow)]
    event_name: Text<'a>,
    #[serde(default, borrow)]
    date_created: Text<'a>,
    #[serde(default, borrow)]
    content: Option<Content<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct Content<'a> {
    #[serde(default, borrow)]
    order: Option<OrderBody<'a>>,
}

impl WebhookEvent {
    /// Reads a webhook body (at most 256 KiB). Lenient where the API is (numbers as
    /// strings, unknown fields and event names kept or ignored, an unreadable date or
    /// amount read as absent); an envelope without `id`, `event_name`, `content.order` or
    /// the order's `order_id`/`status` is [`WebhookError::Malformed`].
    pub fn parse(body: &[u8]) -> Result<WebhookEvent, WebhookError> {
        if body.len() > MAX_WEBHOOK_BODY {
            return Err(WebhookError::TooLarge {
                max: MAX_WEBHOOK_BODY,
            });
        }
        let envelope = response::parse::<Envelope>(200, body).map_err(|e| match e {
            ResponseError::Malformed { problem, .. } => WebhookError::Malformed(problem),
            _ => WebhookError::Malformed(Malformed::Shape { line: 0, column: 0 }),
        })?;
        let malformed = |p| WebhookError::Malformed(p);
        let id = envelope
            .id
            .non_empty()
            .ok_or(malformed(Malformed::Missing("id")))?;
        if id.len() > MAX_EVENT_ID || id.chars().any(char::is_control) {
            return Err(malformed(Malformed::BadId("id")));
        }
        let event_name = envelope
            .event_name
            .non_empty()
            .map(EventName::parse)
            .ok_or(malformed(Malformed::Missing("event_name")))?;
        let order = envelope
            .content
            .as_ref()
            .and_then(|c| c.order.as_ref())
            .ok_or(malformed(Malformed::Missing("content.order")))?;
        Ok(WebhookEvent {
            id: id.to_owned(),
            event_name,
            created_at: envelope.date_created.non_empty().and_then(parse_date),
            order: OrderSnapshot::from_body(order, At::Webhook).map_err(malformed)?,
        })
    }
}

/// An optional instant as whole Unix milliseconds.
mod unix_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&crate::clock::Stamp::from_time(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Ok(Option::<crate::clock::Stamp>::deserialize(d)?.map(crate::clock::Stamp::to_time))
    }
}

/// RFC 3339, or a date and time without offset (`T` or space between them), read as UTC.
fn parse_date(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let naive = format_description!(
        "[year]-[month]-[day][first [T][ ]][hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    PrimitiveDateTime::parse(s, naive)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dates_in_the_shapes_seen() {
        for (s, want) in [
            (
                "2026-11-25T10:00:00Z",
                Some(datetime!(2026-11-25 10:00 UTC)),
            ),
            (
                "2026-11-25T15:30:00+05:30",
                Some(datetime!(2026-11-25 10:00 UTC)),
            ),
            ("2026-11-25 10:00:00", Some(datetime!(2026-11-25 10:00 UTC))),
            (
                "2026-11-25T10:00:00.250",
                Some(datetime!(2026-11-25 10:00:00.25 UTC)),
            ),
            ("25/11/2026", None),
            ("", None),
        ] {
            assert_eq!(parse_date(s), want, "{s}");
        }
    }

    #[test]
    fn event_names_round_trip() {
        for s in [
            "ORDER_SUCCEEDED",
            "ORDER_FAILED",
            "ORDER_REFUNDED",
            "ORDER_REFUND_FAILED",
            "TXN_CREATED",
            "REFUND_MANUAL_REVIEW_NEEDED",
            "AUTO_REFUND_SUCCEEDED",
            "AUTO_REFUND_FAILED",
            "TXN_CHARGED",
            "TXN_FAILED",
            "MANDATE_CREATED",
        ] {
            let e = EventName::parse(s);
            assert_eq!(e.as_str(), s);
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<EventName>(&json).unwrap(), e);
        }
        assert_eq!(
            EventName::parse("order_succeeded"),
            EventName::Other("order_succeeded".into())
        );
    }

    #[test]
    fn credentials_are_checked() {
        let ok = WebhookCredentials::new("u", "p").unwrap();
        // base64("u:p") = "dTpw"
        for header in ["Basic dTpw", "basic dTpw", "BASIC   dTpw  ", " Basic\tdTpw"] {
            assert_eq!(ok.check(Some(header)), Ok(()), "{header:?}");
        }
        for (header, want) in [
            (None, WebhookError::MissingAuthorization),
            (Some("   "), WebhookError::MissingAuthorization),
            (Some("Basic"), WebhookError::NotBasic),
            (Some("Bearer dTpw"), WebhookError::NotBasic),
            (Some("Basic dTpx"), WebhookError::BadCredentials),
            (Some("Basic dTpw=="), WebhookError::BadCredentials),
            (Some("Basic  "), WebhookError::NotBasic),
        ] {
            assert_eq!(ok.check(header), Err(want), "{header:?}");
        }
        let long = format!("Basic {}", "A".repeat(MAX_AUTHORIZATION + 1));
        assert_eq!(ok.check(Some(&long)), Err(WebhookError::BadCredentials));
        for (user, pass) in [("", "p"), ("u", ""), ("a:b", "p"), ("u", "p\n")] {
            assert!(
                WebhookCredentials::new(user, pass).is_err(),
                "{user:?} {pass:?}"
            );
        }
        assert_eq!(format!("{ok:?}"), "WebhookCredentials([redacted])");
    }
}
