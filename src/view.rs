//! What a UI shows: the next step, and an owned, serializable view of a payment that a web
//! handler can return as it is.
//!
//! Every value here is owned (no lifetimes, no generic parameters), so it can cross an FFI
//! boundary, and carries a stable snake_case code.

use std::fmt;

use serde::Serialize;

use crate::card::CardSummary;
use crate::status::Status;
use crate::token::Token;

/// What the UI should do next, from [`Payment::next_step`](crate::Payment::next_step) or
/// [`Challenge::next_step`](crate::Challenge::next_step).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NextStep {
    /// Nothing was sent yet: start authentication ([`Payment::start`](crate::Payment::start)).
    Start,
    /// Show the OTP input (and "Resend" when it is allowed).
    EnterOtp,
    /// A request is in flight: wait for its answer.
    Wait(Token),
    /// The outcome is unknown (or still being processed): check the order status.
    CheckStatus,
    /// Send the browser to this bank page (the OTP fallback page, or the 3DS page when
    /// Direct OTP is not available), then check the order status when it comes back.
    BankPage(String),
    /// The cardholder is on the bank page: check the order status when they come back.
    AwaitBankPage,
    /// The OTP page expired and no bank page is known: check the order status.
    Expired,
    /// A return URL or webhook said the payment is final: check the order status, which
    /// decides. The OTP page stays usable meanwhile where the payment has one (see the
    /// view's `can_submit`).
    Confirming,
    /// This attempt cannot go on: its start's answer was lost and the bank waits for an OTP
    /// this record cannot take (it never learned the challenge). Start a new attempt on
    /// the order (`Payment::new` with the next attempt number); this one expires at the
    /// bank.
    NewAttempt,
    /// The payment is final.
    Finished(Status),
}

impl NextStep {
    /// A stable snake_case code: `start`, `enter_otp`, `wait`, `check_status`, `bank_page`,
    /// `await_bank_page`, `expired`, `confirming`, `new_attempt`, `finished`. Codes never change meaning; new ones may
    /// be added.
    pub fn code(&self) -> &'static str {
        match self {
            NextStep::Start => "start",
            NextStep::EnterOtp => "enter_otp",
            NextStep::Wait(_) => "wait",
            NextStep::CheckStatus => "check_status",
            NextStep::BankPage(_) => "bank_page",
            NextStep::AwaitBankPage => "await_bank_page",
            NextStep::Expired => "expired",
            NextStep::Confirming => "confirming",
            NextStep::NewAttempt => "new_attempt",
            NextStep::Finished(_) => "finished",
        }
    }
}

impl fmt::Display for NextStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextStep::Start => f.write_str("start the payment"),
            NextStep::EnterOtp => f.write_str("enter the code sent to your phone"),
            NextStep::Wait(_) => f.write_str("please wait"),
            NextStep::CheckStatus => f.write_str("checking the payment with the bank"),
            NextStep::BankPage(_) => f.write_str("continue on your bank's page"),
            NextStep::AwaitBankPage => f.write_str("finish on your bank's page"),
            NextStep::Expired => f.write_str("the code entry has expired"),
            NextStep::Confirming => f.write_str("confirming the payment with the bank"),
            NextStep::NewAttempt => {
                f.write_str("this payment attempt cannot continue; please start a new one")
            }
            NextStep::Finished(s) if s.is_success() => f.write_str("payment complete"),
            NextStep::Finished(_) => f.write_str("payment failed"),
        }
    }
}

/// Everything a payment page shows, owned and serializable: return it from a web handler
/// as JSON, or render it. From [`Payment::view`](crate::Payment::view).
///
/// ```
/// # use direct_otp::{Config, PaymentSource, Payment, StartRequest};
/// # let now = time::macros::datetime!(2026-11-25 10:00 UTC);
/// # let start = StartRequest::new("ord_1", "acme", "cust_1",
/// #     PaymentSource::Token { card_token: "tok".into(), cvv: None })?;
/// let payment = Payment::new(&start, 1, now);
/// let view = payment.view(now);
/// assert_eq!(view.next, "start");
/// let json = serde_json::to_value(&view)?;
/// assert_eq!(json["key"], "ord_1/1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PaymentView {
    /// The record's key: `{order_id}/{attempt}`.
    pub key: String,
    /// The order.
    pub order_id: String,
    /// The attempt number on this order (a new attempt after a decline is a new record).
    pub attempt: u32,
    /// The next step's stable code ([`NextStep::code`]).
    pub next: String,
    /// The next step in words a person can read.
    pub message: String,
    /// The last known status (`PENDING_VBV`, `CHARGED`, ...), as the API spells it.
    pub status: String,
    /// True once the payment is final.
    pub is_final: bool,
    /// True once the payment succeeded (`CHARGED` or `AUTHORIZED`) for the expected amount,
    /// if one is set ([`Payment::is_paid`](crate::Payment::is_paid)).
    pub paid: bool,
    /// Once final: true when the order status API (or the payment's own answer) settled or
    /// confirmed it; false while only a return URL or a webhook says so.
    pub confirmed: bool,
    /// Once final: who settled it (`answer`, `order_status`, `return_url`, `webhook`;
    /// [`SettlementSource::code`](crate::SettlementSource::code)).
    pub settled_by: Option<String>,
    /// A settlement problem to act on, as a stable code: `integrity_failure` (the amount or
    /// currency is not the expected one: not paid, hold for review), `amount_unchecked`
    /// (the bank says paid but no amount was checked yet: check the order status),
    /// `conflict` (a return URL or webhook contradicts the settled status: check the order
    /// status), `disagreement` (the order status API overturned an earlier settlement; its
    /// answer is kept). See `docs/settlement.md`.
    pub settlement_issue: Option<String>,
    /// Whether an OTP can be submitted now.
    pub can_submit: bool,
    /// Whether "Resend" can be used now.
    pub can_resend: bool,
    /// Seconds until "Resend" can be used, while a cooldown runs.
    pub resend_in_seconds: Option<u64>,
    /// OTP sends left, during the OTP challenge.
    pub sends_left: Option<u32>,
    /// OTP tries left, during the OTP challenge.
    pub attempts_left: Option<u32>,
    /// Seconds until the OTP page closes, during the OTP challenge.
    pub expires_in_seconds: Option<u64>,
    /// The bank page to send the browser to, when one is offered.
    pub bank_page_url: Option<String>,
    /// Whether the cardholder can go to the bank's page now instead ("No SMS? Use your
    /// bank's page"): the payment is not final and the OTP challenge gave a `fallback_url`,
    /// or the next step is the bank page. The URL itself comes from
    /// [`Payment::go_to_bank_page`](crate::Payment::go_to_bank_page).
    pub bank_page_available: bool,
    /// The masked card facts, once known.
    pub card: Option<CardSummary>,
}
