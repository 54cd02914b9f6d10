//! What settlement needs from an order-shaped body (the order status API's answer, or
//! `content.order` of a webhook), read by one [`OrderBody`] (the status reader reads only the id and status of the same shape).

use serde::{Deserialize, Serialize};

use super::amount::Amount;
use crate::error::{Malformed, ResponseError};
use crate::id::check_path_id;
use crate::response::{self, OrderBody};
use crate::status::Status;

/// Longest `txn_id` kept, in bytes.
const MAX_TXN_ID: usize = 256;

/// Where an order body was found, for the field names in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum At {
    /// The body of `GET /orders/{order_id}`.
    Top,
    /// `content.order` of a webhook.
    Webhook,
}

impl At {
    fn name(self, top: &'static str, webhook: &'static str) -> &'static str {
        match self {
            At::Top => top,
            At::Webhook => webhook,
        }
    }
}

/// An order as one source of truth saw it: owned plain data, for comparing sources and for
/// the [amount check](crate::ExpectedAmount::check).
///
/// ```
/// use direct_otp::{OrderSnapshot, Status};
///
/// let body = br#"{"order_id":"ord_1","status":"CHARGED","amount":"1499.00","currency":"INR",
///                 "txn_id":"acme-ord_1-1","status_id":21}"#;
/// let order = OrderSnapshot::from_order_status(200, body)?;
/// assert_eq!((order.order_id.as_str(), &order.status), ("ord_1", &Status::Charged));
/// assert_eq!(order.amount.as_ref().map(|a| a.as_str()), Some("1499"));
/// # Ok::<(), direct_otp::ResponseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OrderSnapshot {
    /// `order_id` (checked: safe to use in `GET /orders/{order_id}`).
    pub order_id: String,
    /// `status`: the order's status (its latest transaction's).
    pub status: Status,
    /// `amount`, exact; `None` when absent or not a non-negative decimal.
    pub amount: Option<Amount>,
    /// `currency` as sent (`INR`); `None` when absent or not a short alphanumeric code.
    pub currency: Option<String>,
    /// `txn_id` of the latest transaction; `None` when absent.
    pub txn_id: Option<String>,
}

impl OrderSnapshot {
    /// Reads the answer to `GET /orders/{order_id}` (see
    /// [`OrderStatusCheck`](crate::OrderStatusCheck)): the order with its amount, or why
    /// there is none. The order status API is the authoritative source.
    pub fn from_order_status(http_status: u16, body: &[u8]) -> Result<Self, ResponseError> {
        if !(200..=299).contains(&http_status) {
            return Err(response::status_error(http_status, body));
        }
        let order = response::parse::<OrderBody>(http_status, body)?;
        OrderSnapshot::from_body(&order, At::Top).map_err(|problem| ResponseError::Malformed {
            http_status,
            problem,
        })
    }

    /// Builds a snapshot from a parsed order body.
    pub(crate) fn from_body(order: &OrderBody<'_>, at: At) -> Result<Self, Malformed> {
        let order_id = order.order_id.non_empty().ok_or(Malformed::Missing(
            at.name("order_id", "content.order.order_id"),
        ))?;
        check_path_id("order_id", order_id)
            .map_err(|_| Malformed::BadId(at.name("order_id", "content.order.order_id")))?;
        let status = order
            .status
            .non_empty()
            .map(Status::parse)
            .ok_or(Malformed::Missing(
                at.name("status", "content.order.status"),
            ))?;
        let txn_id = match order.txn_id.non_empty() {
            Some(t) if t.len() > MAX_TXN_ID || t.chars().any(char::is_control) => {
                return Err(Malformed::BadId(at.name("txn_id", "content.order.txn_id")));
            }
            t => t.map(str::to_owned),
        };
        let currency = order
            .currency
            .non_empty()
            .map(str::trim)
            .filter(|c| (1..=16).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric()))
            .map(str::to_owned);
        Ok(OrderSnapshot {
            order_id: order_id.to_owned(),
            status,
            amount: order.amount.as_deref().and_then(|a| Amount::parse(a).ok()),
            currency,
            txn_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Result<OrderSnapshot, ResponseError> {
        OrderSnapshot::from_order_status(200, body.as_bytes())
    }

    #[test]
    fn reads_the_documented_order_body() {
        let body = include_str!("../../tests/fixtures/order_status_charged.json");
        let o = read(body).unwrap();
        assert_eq!(o.order_id, "ord_dotp_1001");
        assert_eq!(o.status, Status::Charged);
        assert_eq!(o.amount, Some(Amount::parse("1499").unwrap()));
        assert_eq!(o.currency.as_deref(), Some("INR"));
        assert_eq!(o.txn_id.as_deref(), Some("acme-ord_dotp_1001-1"));
    }

    #[test]
    fn odd_fields_read_as_absent() {
        let o =
            read(r#"{"order_id":"o","status":"NEW","amount":"12,5","currency":"€","txn_id":7}"#)
                .unwrap();
        assert_eq!(
            (o.amount, o.currency, o.txn_id.as_deref()),
            (None, None, Some("7"))
        );
        let o = read(r#"{"order_id":"o","status":"NEW","amount":-5,"currency":{"x":1}}"#).unwrap();
        assert_eq!((o.amount, o.currency), (None, None));
        let o = read(r#"{"order_id":12,"status":"X","amount":0.1000000000000000000001}"#).unwrap();
        assert_eq!(o.order_id, "12");
        assert_eq!(o.status, Status::Other("X".into()));
        assert_eq!(o.amount.unwrap().as_str(), "0.1000000000000000000001");
    }

    #[test]
    fn refuses_what_settlement_cannot_use() {
        let problem = |body: &str| match read(body) {
            Err(ResponseError::Malformed { problem, .. }) => problem,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            problem(r#"{"status":"CHARGED"}"#),
            Malformed::Missing("order_id")
        );
        assert_eq!(problem(r#"{"order_id":"o"}"#), Malformed::Missing("status"));
        assert_eq!(
            problem(r#"{"order_id":"a/b","status":"NEW"}"#),
            Malformed::BadId("order_id")
        );
        let long = "t".repeat(MAX_TXN_ID + 1);
        let body = format!(r#"{{"order_id":"o","status":"NEW","txn_id":"{long}"}}"#);
        assert_eq!(problem(&body), Malformed::BadId("txn_id"));
        assert!(matches!(problem(r#""x""#), Malformed::Shape { .. }));
        let not_found = include_bytes!("../../tests/fixtures/order_not_found.json");
        assert!(matches!(
            OrderSnapshot::from_order_status(400, not_found),
            Err(ResponseError::Api(e)) if e.code() == Some("RESOURCE_NOT_FOUND")
        ));
    }
}
