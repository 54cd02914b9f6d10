//! The three response shapes the flow reads, each parsed by one borrowed, single-pass serde
//! struct, and the one place where error codes are classified.
//!
//! * the transaction shape: start (`POST /txns`), resend and submit all answer with a
//!   transaction carrying `status` and `payment.authentication`;
//! * the order shape: `GET /orders/{order_id}`;
//! * the error envelope: `{status, error_code, error_message, error_info}`.
//!
//! Only the fields the flow needs are read; everything else is skipped without being built.

use serde::Deserialize;

use crate::error::{ApiError, ForeignAnswer, Malformed, ResponseError};
use crate::lenient::{Count, Flag, NumberText, Text};
use crate::status::Status;

/// The transaction shape.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TxnBody<'a> {
    #[serde(default, borrow)]
    pub id: Text<'a>,
    #[serde(default, borrow)]
    pub order_id: Text<'a>,
    #[serde(default, borrow)]
    pub txn_uuid: Text<'a>,
    #[serde(default, borrow)]
    pub status: Text<'a>,
    #[serde(default, borrow)]
    pub payment: Option<Payment<'a>>,
    #[serde(default, borrow)]
    pub payment_info: Option<PaymentInfo<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Payment<'a> {
    #[serde(default, borrow)]
    pub authentication: Option<Authentication<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Authentication<'a> {
    #[serde(default, borrow)]
    pub method: Text<'a>,
    #[serde(default, borrow)]
    pub url: Text<'a>,
    #[serde(default, borrow)]
    pub params: Option<Params<'a>>,
}

/// `payment.authentication.params`: every key optional (the docs call it dynamic).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params<'a> {
    #[serde(default, borrow)]
    pub id: Text<'a>,
    #[serde(default, borrow)]
    pub challenge_id: Text<'a>,
    #[serde(default, borrow)]
    pub auth_type: Text<'a>,
    #[serde(default, borrow)]
    pub auth_method: Text<'a>,
    #[serde(default, borrow)]
    pub card_isin: Text<'a>,
    #[serde(default, borrow)]
    pub card_issuer_bank_name: Text<'a>,
    #[serde(default, borrow)]
    pub card_brand: Text<'a>,
    #[serde(default, borrow)]
    pub fallback_url: Text<'a>,
    #[serde(default)]
    pub submit_otp_allowed: Flag,
    #[serde(default)]
    pub resend_otp_allowed: Flag,
    #[serde(default)]
    pub times_otp_sent: Count,
    #[serde(default)]
    pub max_otp_send_limit: Count,
    #[serde(default)]
    pub current_attempt: Count,
    #[serde(default)]
    pub max_attempts: Count,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PaymentInfo<'a> {
    #[serde(default, borrow)]
    pub card: Option<CardInfo<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CardInfo<'a> {
    #[serde(default, borrow)]
    pub last_four_digits: Text<'a>,
    #[serde(default, borrow)]
    pub card_isin: Text<'a>,
    #[serde(default, borrow)]
    pub card_brand: Text<'a>,
    #[serde(default, borrow)]
    pub card_issuer: Text<'a>,
}

impl<'a> TxnBody<'a> {
    pub(crate) fn authentication(&self) -> Option<&Authentication<'a>> {
        self.payment.as_ref()?.authentication.as_ref()
    }

    pub(crate) fn params(&self) -> Option<&Params<'a>> {
        self.authentication()?.params.as_ref()
    }

    pub(crate) fn card(&self) -> Option<&CardInfo<'a>> {
        self.payment_info.as_ref()?.card.as_ref()
    }
}

impl Params<'_> {
    /// `auth_type`, or `auth_method` as the resend page calls it.
    pub(crate) fn auth_type(&self) -> Option<&str> {
        self.auth_type.non_empty().or(self.auth_method.non_empty())
    }
}

/// The order shape (`GET /orders/{order_id}`, and `content.order` of a webhook): its order
/// id and status, and what settlement checks them against (the amount as exact text, the
/// currency, the transaction).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct OrderBody<'a> {
    #[serde(default, borrow)]
    pub order_id: Text<'a>,
    #[serde(default, borrow)]
    pub status: Text<'a>,
    #[serde(default, borrow)]
    pub amount: NumberText<'a>,
    #[serde(default, borrow)]
    pub currency: Text<'a>,
    #[serde(default, borrow)]
    pub txn_id: Text<'a>,
}

/// What the status reader needs of the order shape: its id and status only, so reading a
/// status skips the rest without building it (the settlement sources read the whole
/// [`OrderBody`] when they need the amount).
#[derive(Debug, Default, Deserialize)]
struct OrderStatusBody<'a> {
    #[serde(default, borrow)]
    order_id: Text<'a>,
    #[serde(default, borrow)]
    status: Text<'a>,
    #[serde(default, borrow)]
    txn_id: Text<'a>,
}

/// Refuses an answer that names another order than `expected` (an answer without an order
/// id is taken as being about the order asked).
pub(crate) fn same_order(named: &Text<'_>, expected: &str) -> Result<(), ForeignAnswer> {
    match named.non_empty() {
        Some(id) if id != expected => Err(ForeignAnswer { field: "order_id" }),
        _ => Ok(()),
    }
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody<'a> {
    #[serde(default, borrow)]
    status: Text<'a>,
    #[serde(default, borrow)]
    error_code: Text<'a>,
    #[serde(default, borrow)]
    error_message: Text<'a>,
    #[serde(default, borrow)]
    error_info: Option<ErrorInfo<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorInfo<'a> {
    #[serde(default, borrow)]
    code: Text<'a>,
    #[serde(default, borrow)]
    category: Text<'a>,
    #[serde(default, borrow)]
    request_id: Text<'a>,
}

/// Parses `body` as `T`; the error says where the body went wrong without quoting it.
pub(crate) fn parse<'a, T: Deserialize<'a>>(
    http_status: u16,
    body: &'a [u8],
) -> Result<T, ResponseError> {
    serde_json::from_slice(body).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        let problem = match e.classify() {
            serde_json::error::Category::Data => Malformed::Shape { line, column },
            _ => Malformed::Syntax { line, column },
        };
        ResponseError::Malformed {
            http_status,
            problem,
        }
    })
}

/// Reads the answer to `GET /orders/{order_id}` for `order_id`: the status, or why there is
/// none. An answer about another order is refused.
/// The order status answer's status, for order `order_id` and, when known, transaction
/// `txn_id`: an answer naming another order, or another transaction of the order, is
/// [`ResponseError::Foreign`] (see [`ForeignAnswer::is_other_transaction`]).
pub(crate) fn order_status(
    order_id: &str,
    txn_id: Option<&str>,
    http_status: u16,
    body: &[u8],
) -> Result<Status, ResponseError> {
    if !(200..=299).contains(&http_status) {
        return Err(status_error(http_status, body));
    }
    let order = parse::<OrderStatusBody>(http_status, body)?;
    same_order(&order.order_id, order_id)?;
    if let (Some(named), Some(ours)) = (order.txn_id.non_empty(), txn_id) {
        if named != ours {
            return Err(ForeignAnswer::OTHER_TRANSACTION.into());
        }
    }
    order
        .status
        .non_empty()
        .map(Status::parse)
        .ok_or(ResponseError::Malformed {
            http_status,
            problem: Malformed::Missing("status"),
        })
}

/// An error envelope, borrowed from the body of a non-2xx answer. Classifying it with
/// [`meaning`](Self::meaning) allocates nothing; the owned [`ApiError`] is built by
/// [`error`](Self::error) only for the outcomes that carry it.
pub(crate) struct Envelope<'a> {
    http_status: u16,
    body: ErrorBody<'a>,
}

impl<'a> Envelope<'a> {
    /// Reads the envelope. An unreadable body gives an empty envelope (the HTTP status stays).
    pub(crate) fn parse(http_status: u16, body: &'a [u8]) -> Self {
        Envelope {
            http_status,
            body: parse(http_status, body).unwrap_or_default(),
        }
    }

    /// What the envelope means for the flow: the single place error codes are classified.
    pub(crate) fn meaning(&self) -> ErrorMeaning {
        let info_code = self
            .body
            .error_info
            .as_ref()
            .and_then(|i| i.code.non_empty());
        let codes = [self.body.error_code.non_empty(), info_code];
        match classify(codes) {
            // Only a refusal with no more specific code can be a stale copy's: the message
            // is read only then.
            ErrorMeaning::Refused
                if self
                    .body
                    .error_message
                    .non_empty()
                    .is_some_and(|m| contains_ignore_case(m, "already processed")) =>
            {
                ErrorMeaning::Stale
            }
            meaning => meaning,
        }
    }

    /// The owned error, its texts made safe to log.
    pub(crate) fn error(&self) -> ApiError {
        let b = &self.body;
        let none = ErrorInfo::default();
        let info = b.error_info.as_ref().unwrap_or(&none);
        ApiError::new(
            self.http_status,
            [
                b.status.non_empty(),
                b.error_code.non_empty(),
                b.error_message.non_empty(),
                info.code.non_empty(),
                info.category.non_empty(),
                info.request_id.non_empty(),
            ],
        )
    }
}

/// The error envelope of a non-2xx answer. An unreadable body still gives an [`ApiError`]
/// with the HTTP status.
pub(crate) fn api_error(http_status: u16, body: &[u8]) -> ApiError {
    Envelope::parse(http_status, body).error()
}

/// The error for an answer whose HTTP status the call can't use: the error envelope of a
/// 4xx/5xx, or the bare status of anything else (a redirect, say).
pub(crate) fn status_error(http_status: u16, body: &[u8]) -> ResponseError {
    match http_status {
        400..=599 => api_error(http_status, body).into(),
        _ => ResponseError::UnexpectedStatus(http_status),
    }
}

/// What an error envelope means for the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorMeaning {
    /// `max_limit_exceeded`: no more OTP sends (on resend) or tries (on submit).
    LimitExceeded,
    /// The OTP was wrong (not documented for cards; wallets use codes like
    /// `LP_INCORRECT_OTP`).
    WrongOtp,
    /// `DUPLICATE_REQUEST`: another request on this transaction is still being processed.
    Duplicate,
    /// `INVALID_ACTION` ("transaction already processed"): the transaction no longer waits
    /// for an OTP, so the copy that asked is stale; only the order status says what happened.
    Stale,
    /// Anything else: the request was refused and changed nothing.
    Refused,
}

/// Classifies the codes of an error envelope (`error_code`, `error_info.code`), ignoring
/// ASCII case. Allocates nothing.
fn classify(codes: [Option<&str>; 2]) -> ErrorMeaning {
    let any = |f: &dyn Fn(&str) -> bool| codes.iter().flatten().any(|c| f(c));
    if any(&|c| c.eq_ignore_ascii_case("INVALID_ACTION")) {
        ErrorMeaning::Stale
    } else if any(&|c| c.eq_ignore_ascii_case("DUPLICATE_REQUEST")) {
        ErrorMeaning::Duplicate
    } else if any(&|c| contains_ignore_case(c, "LIMIT_EXCEEDED")) {
        ErrorMeaning::LimitExceeded
    } else if any(&|c| {
        contains_ignore_case(c, "OTP")
            && ["INCORRECT", "INVALID", "WRONG", "MISMATCH"]
                .iter()
                .any(|w| contains_ignore_case(c, w))
    }) {
        ErrorMeaning::WrongOtp
    } else {
        ErrorMeaning::Refused
    }
}

/// `haystack` contains `needle` (non-empty), ignoring ASCII case.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_fields_and_meaning() {
        let meaning = |body: &[u8]| Envelope::parse(400, body).meaning();
        let body = br#"{"status":"Invalid Request","error_code":"max_limit_exceeded","error_message":"Max OTP send limit exceeded"}"#;
        let e = api_error(400, body);
        assert_eq!(e.error_code(), Some("max_limit_exceeded"));
        assert_eq!(meaning(body), ErrorMeaning::LimitExceeded);
        assert_eq!(
            e.to_string(),
            "HTTP 400 max_limit_exceeded: Max OTP send limit exceeded"
        );

        let body = br#"{"status":"invalid_request_error","error_code":"x","error_info":{"code":"DUPLICATE_REQUEST","category":"USER_ERROR","request_id":"r1"}}"#;
        let e = api_error(400, body);
        assert_eq!(meaning(body), ErrorMeaning::Duplicate);
        assert_eq!(e.code(), Some("DUPLICATE_REQUEST"));
        assert_eq!(e.request_id(), Some("r1"));

        assert_eq!(
            meaning(br#"{"error_code":"LP_INCORRECT_OTP"}"#),
            ErrorMeaning::WrongOtp
        );
        assert_eq!(
            meaning(br#"{"error_code":"Otp_Mismatch"}"#),
            ErrorMeaning::WrongOtp
        );
        assert_eq!(
            meaning(br#"{"error_info":{"code":"duplicate_request"}}"#),
            ErrorMeaning::Duplicate
        );
        assert_eq!(
            meaning(br#"{"status":"error","error_code":"access_denied"}"#),
            ErrorMeaning::Refused
        );
        assert_eq!(meaning(b"<html>"), ErrorMeaning::Refused);
        assert_eq!(
            meaning(br#"{"status":"Bad Request","error_code":"x","error_info":{"code":"INVALID_ACTION"}}"#),
            ErrorMeaning::Stale
        );
        assert_eq!(
            meaning(br#"{"error_message":"Transaction already processed"}"#),
            ErrorMeaning::Stale
        );
    }

    #[test]
    fn unreadable_envelopes_keep_the_status_only() {
        for body in [&b"<html>502</html>"[..], b"", b"[]", b"{\"error_code\":"] {
            let e = api_error(502, body);
            assert_eq!(e, ApiError::new(502, [None; 6]));
            assert_eq!(e.to_string(), "HTTP 502");
        }
    }

    #[test]
    fn server_text_is_made_loggable() {
        let long = "x".repeat(1000);
        let body = format!(r#"{{"error_message":"a\nb\u0007{long}"}}"#);
        let e = api_error(400, body.as_bytes());
        let msg = e.error_message().unwrap();
        assert!(msg.starts_with("abx"));
        assert_eq!(msg.chars().count(), 200);
    }

    #[test]
    fn every_text_reads_back_from_the_shared_allocation() {
        let body = "é".repeat(300);
        let body = format!(
            r#"{{"status":"s\u0001","error_code":"","error_message":"{body}","error_info":{{"code":"\u0007","category":"cat","request_id":"r1"}}}}"#
        );
        let e = api_error(418, body.as_bytes());
        assert_eq!(e.http_status(), 418);
        assert_eq!(e.status(), Some("s"));
        // Empty, or nothing left once control characters go: absent.
        assert_eq!(
            (e.error_code(), e.info_code(), e.code()),
            (None, None, None)
        );
        assert_eq!(e.error_message(), Some("é".repeat(200).as_str()));
        assert_eq!(e.category(), Some("cat"));
        assert_eq!(e.request_id(), Some("r1"));
        let debug = format!("{e:?}");
        assert!(
            debug.starts_with(
                r#"ApiError { http_status: 418, status: Some("s"), error_code: None,"#
            ),
            "{debug}"
        );
        assert!(
            debug.ends_with(r#"category: Some("cat"), request_id: Some("r1") }"#),
            "{debug}"
        );
    }

    #[test]
    fn parse_errors_do_not_quote_the_body() {
        let err = parse::<OrderBody>(200, br#"{"status": "CHARGED", "status": "NEW"}"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("CHARGED") && !err.contains("NEW"), "{err}");
        let err = parse::<OrderBody>(200, b"{\"secret123")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret123"), "{err}");
    }
}
