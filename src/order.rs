//! Checking an order's status on its own, without a challenge.

use crate::config::Config;
use crate::error::{IdError, ResponseError};
use crate::id::{HeaderValue, PathId};
use crate::request::{self, Request};
use crate::response;
use crate::status::Status;

/// `GET /orders/{order_id}` outside a challenge: after a 3DS redirect
/// ([`Started::Redirect`](crate::Started::Redirect)), when the answer to the start request
/// was lost (never send `POST /txns` again: it starts a second transaction), or when a
/// stored challenge could not be loaded. A [`Challenge`](crate::Challenge) checks its own
/// order with [`check_status`](crate::Challenge::check_status).
///
/// ```
/// use direct_otp::{Config, OrderStatusCheck, Status};
///
/// let config = Config::sandbox("my_api_key")?;
/// let check = OrderStatusCheck::new("ord_1", "customer_1122")?;
/// let request = check.request(&config);
/// assert_eq!(request.url(), "https://sandbox.juspay.in/orders/ord_1");
/// // ... send it, then read the answer:
/// let status = check.handle_response(200, br#"{"order_id":"ord_1","status":"CHARGED"}"#)?;
/// assert_eq!(status, Status::Charged);
/// assert!(status.is_final() && status.is_success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderStatusCheck {
    order_id: PathId,
    routing_id: HeaderValue,
}

impl OrderStatusCheck {
    /// The order to check, and the customer's `x-routing-id` (the one its start sent).
    pub fn new(order_id: &str, routing_id: &str) -> Result<Self, IdError> {
        Ok(OrderStatusCheck {
            order_id: PathId::new("order_id", order_id)?,
            routing_id: HeaderValue::new("x-routing-id", routing_id)?,
        })
    }

    pub(crate) fn from_parts(order_id: PathId, routing_id: HeaderValue) -> Self {
        OrderStatusCheck {
            order_id,
            routing_id,
        }
    }

    /// The request, with `x-merchantid` and `version` when configured. It changes nothing
    /// on the server: safe to send again.
    pub fn request(&self, config: &Config) -> Request {
        request::order_status(config, self.order_id.as_str(), self.routing_id.shared())
    }

    /// Reads the answer: the order's status (its latest transaction's). A final status
    /// ([`Status::is_final`]) settles the payment; any other means "not yet": check again
    /// later. An error envelope, another HTTP status, a body without a status, or an answer
    /// that names another order ([`ResponseError::Foreign`]) is an error.
    pub fn handle_response(&self, http_status: u16, body: &[u8]) -> Result<Status, ResponseError> {
        response::order_status(self.order_id.as_str(), None, http_status, body)
    }
}
