//! Starting authentication: the `POST /txns` request, and reading its answer into either a
//! [`Challenge`] (Direct OTP) or a redirect (3DS failover).

use time::OffsetDateTime;
use zeroize::Zeroize;

use crate::card::PaymentSource;
use crate::challenge::{Challenge, Seed};
use crate::config::Config;
use crate::error::{IdError, Malformed, ResponseError, StartError};
use crate::id::{FormValue, HeaderValue, PathId};
use crate::order::OrderStatusCheck;
use crate::policy::Policy;
use crate::request::{self, Form, Request};
use crate::response::{self, TxnBody};
use crate::settle::ExpectedAmount;
use crate::status::Status;

/// What starting authentication gave.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Started {
    /// Direct OTP: the bank sent an OTP; drive the OTP page with this challenge.
    Challenge(Box<Challenge>),
    /// 3DS failover: no OTP page. Send the browser to `url` (exactly as given) with
    /// `method`, then check the order status ([`OrderStatusCheck`]).
    Redirect {
        /// Where to send the browser.
        url: String,
        /// `GET` or `POST`, as given.
        method: String,
    },
    /// The transaction was already final (declined at start, say).
    Finished(Status),
}

impl Started {
    /// Reads the answer to a `POST /txns` you sent yourself (with `auth_type=OTP` and
    /// `format=json`). `routing_id` is the `x-routing-id` you sent; every later call of this
    /// challenge sends the same. The body must hold `order_id`.
    ///
    /// Direct OTP is recognised by `payment.authentication.params.challenge_id` (with
    /// `auth_type`/`auth_method` absent or `OTP`); otherwise an authentication `url` means
    /// 3DS failover.
    pub fn from_response(
        routing_id: &str,
        policy: Policy,
        http_status: u16,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Started, StartError> {
        let routing = HeaderValue::new("x-routing-id", routing_id)?;
        read_start(routing, None, policy, http_status, body, now)
    }
}

/// A `POST /txns` request for Direct OTP: builds the request and reads its answer.
///
/// Card data is redacted in `Debug`, never reaches the challenge, and is wiped ([`zeroize`])
/// when the `StartRequest` is dropped, as is the body of each [`request`](Self::request).
///
/// ```
/// use direct_otp::{Config, PaymentSource, StartRequest};
///
/// let config = Config::sandbox("my_api_key")?;
/// let start = StartRequest::new(
///     "ord_1",
///     "acme",
///     "customer_1122",
///     PaymentSource::Token { card_token: "tok_123".into(), cvv: None },
/// )?;
/// let request = start.request(&config);
/// assert_eq!(request.url(), "https://sandbox.juspay.in/txns");
/// assert_eq!(
///     request.body(),
///     b"order_id=ord_1&merchant_id=acme&payment_method_type=CARD&card_token=tok_123&auth_type=OTP&format=json"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct StartRequest {
    order_id: PathId,
    merchant_id: FormValue,
    routing_id: HeaderValue,
    source: PaymentSource,
    payment_method: Option<FormValue>,
    save_to_locker: Option<bool>,
    gateway_id: Option<FormValue>,
    policy: Policy,
    expected: Option<ExpectedAmount>,
}

impl StartRequest {
    /// `order_id` of an order created beforehand, your `merchant_id`, the customer's
    /// `x-routing-id`, and the card.
    ///
    /// Each value is checked by the rule of where it goes: `order_id` later goes in a URL
    /// path (letters, digits, `-_.~:@`, not `.` or `..`, at most
    /// [`MAX_ID_LEN`](crate::MAX_ID_LEN) bytes), `routing_id` in a header (visible ASCII and
    /// inner spaces, at most 256 bytes), `merchant_id` in the form body (not empty, no
    /// control character, no surrounding whitespace, at most 256 bytes).
    pub fn new(
        order_id: &str,
        merchant_id: &str,
        routing_id: &str,
        source: PaymentSource,
    ) -> Result<Self, IdError> {
        Ok(StartRequest {
            order_id: PathId::new("order_id", order_id)?,
            merchant_id: FormValue::new("merchant_id", merchant_id)?,
            routing_id: HeaderValue::new("x-routing-id", routing_id)?,
            source,
            payment_method: None,
            save_to_locker: None,
            gateway_id: None,
            policy: Policy::default(),
            expected: None,
        })
    }

    /// `payment_method` (card brand: VISA, MASTERCARD, RUPAY, ...), checked by the form
    /// body rule of [`new`](Self::new).
    pub fn with_payment_method(mut self, method: &str) -> Result<Self, IdError> {
        self.payment_method = Some(FormValue::new("payment_method", method)?);
        Ok(self)
    }

    /// `save_to_locker`.
    pub fn with_save_to_locker(mut self, save: bool) -> Self {
        self.save_to_locker = Some(save);
        self
    }

    /// `gateway_id`, to pin a gateway, checked by the form body rule of [`new`](Self::new).
    pub fn with_gateway_id(mut self, gateway_id: &str) -> Result<Self, IdError> {
        self.gateway_id = Some(FormValue::new("gateway_id", gateway_id)?);
        Ok(self)
    }

    /// The client-side limits of the challenge this start creates.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The amount and currency this payment is for: a success then counts as paid only when
    /// an order body shows them ([`Payment::with_expected_amount`](crate::Payment::with_expected_amount)
    /// says how). Not sent to the bank. [`Driver::start`](crate::driver::Driver::start) and
    /// [`AsyncDriver::start`](crate::driver::AsyncDriver::start) set it on the payment they
    /// store, before its start is written ahead; driving a [`Payment`](crate::Payment) by
    /// hand, pass it to `Payment::with_expected_amount` yourself.
    ///
    /// ```
    /// use direct_otp::{Amount, ExpectedAmount, PaymentSource, StartRequest};
    /// let card = PaymentSource::Token { card_token: "tok_123".into(), cvv: None };
    /// let expected = ExpectedAmount::new(Amount::parse("1499.00")?, "INR")?;
    /// let start = StartRequest::new("ord_1", "acme", "customer_1", card)?
    ///     .with_expected_amount(expected.clone());
    /// assert_eq!(start.expected_amount(), Some(&expected));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_expected_amount(mut self, expected: ExpectedAmount) -> Self {
        self.expected = Some(expected);
        self
    }

    /// The amount and currency this payment is for, if set
    /// ([`with_expected_amount`](Self::with_expected_amount)).
    pub fn expected_amount(&self) -> Option<&ExpectedAmount> {
        self.expected.as_ref()
    }

    /// What a payment keeps of this start to build it again with only the card
    /// ([`Payment::start_with`](crate::Payment::start_with)): the merchant id and the optional
    /// form fields. Nothing secret: never the card data or the CVV.
    pub(crate) fn terms(&self) -> StartTerms {
        StartTerms {
            merchant_id: self.merchant_id.as_str().to_owned(),
            payment_method: self.payment_method.as_ref().map(|v| v.as_str().to_owned()),
            save_to_locker: self.save_to_locker,
            gateway_id: self.gateway_id.as_ref().map(|v| v.as_str().to_owned()),
        }
    }

    /// The `POST /txns` request. Sending it twice starts two transactions (and two SMS):
    /// if its answer is lost, use [`order_status_check`](Self::order_status_check).
    pub fn request(&self, config: &Config) -> Request {
        let mut form = Form::with_capacity(256);
        form.field("order_id", self.order_id.as_str());
        form.field("merchant_id", self.merchant_id.as_str());
        form.field("payment_method_type", "CARD");
        if let Some(m) = &self.payment_method {
            form.field("payment_method", m.as_str());
        }
        match &self.source {
            PaymentSource::Token { card_token, cvv } => {
                form.field("card_token", card_token);
                if let Some(cvv) = cvv {
                    form.field("card_security_code", cvv);
                }
            }
            PaymentSource::Card(card) => {
                form.field("card_number", &card.number);
                form.field("card_exp_month", &card.expiry_month);
                form.field("card_exp_year", &card.expiry_year);
                form.field("card_security_code", &card.cvv);
                if let Some(name) = &card.name_on_card {
                    form.field("name_on_card", name);
                }
            }
        }
        if let Some(save) = self.save_to_locker {
            form.field("save_to_locker", if save { "true" } else { "false" });
        }
        if let Some(g) = &self.gateway_id {
            form.field("gateway_id", g.as_str());
        }
        form.field("auth_type", "OTP");
        form.field("format", "json");
        request::start(config, self.routing_id.shared(), form)
    }

    pub(crate) fn order_id(&self) -> &PathId {
        &self.order_id
    }

    pub(crate) fn routing_id(&self) -> &HeaderValue {
        &self.routing_id
    }

    /// What the start request holds that is no secret, for its wire form: the ids, the
    /// source's kind (`token` or `card`), and the options. Never the card data, the token
    /// or the CVV.
    pub(crate) fn public_fields(&self) -> serde_json::Value {
        let source = match &self.source {
            PaymentSource::Token { .. } => "token",
            PaymentSource::Card(_) => "card",
        };
        serde_json::json!({
            "order_id": self.order_id.as_str(),
            "merchant_id": self.merchant_id.as_str(),
            "routing_id": &**self.routing_id.shared(),
            "source": {"type": source},
            "payment_method": self.payment_method.as_ref().map(|v| v.as_str()),
            "save_to_locker": self.save_to_locker,
            "gateway_id": self.gateway_id.as_ref().map(|v| v.as_str()),
        })
    }

    pub(crate) fn policy(&self) -> Policy {
        self.policy
    }

    /// The order status check of this start's order: what to send when the start answer
    /// was lost, or after a 3DS redirect.
    pub fn order_status_check(&self) -> OrderStatusCheck {
        OrderStatusCheck::from_parts(self.order_id.clone(), self.routing_id.clone())
    }

    /// Reads the answer to [`request`](Self::request).
    pub fn handle_response(
        &self,
        http_status: u16,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Started, StartError> {
        read_start(
            self.routing_id.clone(),
            Some(&self.order_id),
            self.policy,
            http_status,
            body,
            now,
        )
    }
}

impl Drop for StartRequest {
    fn drop(&mut self) {
        wipe_card_data(&mut self.source);
    }
}

fn wipe_card_data(source: &mut PaymentSource) {
    match source {
        PaymentSource::Token { card_token, cvv } => {
            card_token.zeroize();
            cvv.zeroize();
        }
        PaymentSource::Card(card) => {
            card.number.zeroize();
            card.expiry_month.zeroize();
            card.expiry_year.zeroize();
            card.cvv.zeroize();
            card.name_on_card.zeroize();
        }
    }
}

pub(crate) fn read_start(
    routing_id: HeaderValue,
    order_id: Option<&PathId>,
    policy: Policy,
    http_status: u16,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Started, StartError> {
    if !(200..=299).contains(&http_status) {
        return Err(StartError::Response(response::status_error(
            http_status,
            body,
        )));
    }
    let malformed = |problem| ResponseError::Malformed {
        http_status,
        problem,
    };
    let txn: TxnBody = response::parse(http_status, body)?;
    if let Some(asked) = order_id {
        response::same_order(&txn.order_id, asked.as_str()).map_err(ResponseError::from)?;
    }
    let status = Status::parse(
        txn.status
            .non_empty()
            .ok_or(malformed(Malformed::Missing("status")))?,
    );
    if status.is_final() {
        return Ok(Started::Finished(status));
    }
    let auth = txn
        .authentication()
        .ok_or(malformed(Malformed::Missing("payment.authentication")))?;
    let otp_params = auth.params.as_ref().filter(|p| {
        p.challenge_id.non_empty().is_some()
            && p.auth_type().is_none_or(|t| t.eq_ignore_ascii_case("OTP"))
    });
    let Some(params) = otp_params else {
        let url = auth
            .url
            .non_empty()
            .ok_or(malformed(Malformed::Missing("payment.authentication.url")))?;
        if !crate::link::is_browser_safe(url) {
            return Err(malformed(Malformed::BadUrl("payment.authentication.url")).into());
        }
        return Ok(Started::Redirect {
            url: url.to_owned(),
            method: auth.method.non_empty().unwrap_or("GET").to_owned(),
        });
    };
    let id = |field: &'static str, value: Option<&str>| {
        let value = value.ok_or(malformed(Malformed::Missing(field)))?;
        PathId::new(field, value).map_err(|_| malformed(Malformed::BadId(field)))
    };
    let order_id = match txn.order_id.non_empty() {
        Some(o) => id("order_id", Some(o))?,
        None => match order_id {
            Some(o) => o.clone(),
            None => id("order_id", None)?,
        },
    };
    let txn_id = id(
        "payment.authentication.params.id",
        params
            .id
            .non_empty()
            .or(txn.id.non_empty())
            .or(txn.txn_uuid.non_empty()),
    )?;
    let challenge_id = id(
        "payment.authentication.params.challenge_id",
        params.challenge_id.non_empty(),
    )?;
    Ok(Started::Challenge(Box::new(Challenge::new(Seed {
        order_id,
        txn_id,
        challenge_id,
        routing_id,
        body: &txn,
        policy,
        now,
    }))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::CardDetails;

    #[test]
    fn the_wipe_run_on_drop_clears_card_data() {
        let mut card = PaymentSource::Card(CardDetails {
            number: "4111111111111111".into(),
            expiry_month: "12".into(),
            expiry_year: "2030".into(),
            cvv: "987".into(),
            name_on_card: Some("Asha Rao".into()),
        });
        wipe_card_data(&mut card);
        let PaymentSource::Card(c) = &card else {
            unreachable!()
        };
        let texts = [&c.number, &c.expiry_month, &c.expiry_year, &c.cvv];
        assert!(texts.iter().all(|t| t.is_empty()), "{texts:?}");
        assert_eq!(c.name_on_card, None);
        let mut token = PaymentSource::Token {
            card_token: "tok_secret".into(),
            cvv: Some("123".into()),
        };
        wipe_card_data(&mut token);
        assert_eq!(
            token,
            PaymentSource::Token {
                card_token: String::new(),
                cvv: None
            }
        );
    }
}

/// The parts of a [`StartRequest`] a payment keeps (its order, customer, policy and expected
/// amount are kept anyway): enough to start again with only the card. Checked again by the
/// rules of [`StartRequest::new`] when a start is built from them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct StartTerms {
    merchant_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payment_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    save_to_locker: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway_id: Option<String>,
}

impl StartTerms {
    /// The start of `order_id` for `routing_id` with `source`, as first given.
    pub(crate) fn request(
        &self,
        order_id: &str,
        routing_id: &str,
        source: PaymentSource,
        policy: Policy,
    ) -> Result<StartRequest, IdError> {
        let mut start =
            StartRequest::new(order_id, &self.merchant_id, routing_id, source)?.with_policy(policy);
        if let Some(m) = &self.payment_method {
            start = start.with_payment_method(m)?;
        }
        if let Some(save) = self.save_to_locker {
            start = start.with_save_to_locker(save);
        }
        if let Some(g) = &self.gateway_id {
            start = start.with_gateway_id(g)?;
        }
        Ok(start)
    }

    /// Whether the kept terms still pass the rules they were checked by.
    pub(crate) fn is_valid(&self) -> bool {
        let placeholder = PaymentSource::Token {
            card_token: "x".into(),
            cvv: None,
        };
        self.request("o", "r", placeholder, Policy::default())
            .is_ok()
    }
}
