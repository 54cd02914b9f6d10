//! One settled status from three sources: the payment's own answers and the order status
//! API, the browser's verified return URL, and authenticated webhooks.
//!
//! The rules (`docs/settlement.md`, "Precedence"):
//!
//! * **One terminal outcome.** Whichever source settles the payment first reports the one
//!   terminal outcome (`Approved`, `Declined` or `IntegrityFailed`); nothing reports a
//!   second one.
//! * **The order status API wins.** A return URL or a webhook that says final settles the
//!   payment *unconfirmed*; `check_status` then confirms it (`Outcome::Confirmed`) or
//!   overturns it (`Outcome::Disagreement`, never a second plain `Approved`).
//! * **Monotonic and idempotent.** A final payment never moves back except through a
//!   reported disagreement; a webhook seen before, an older one, one about another
//!   transaction, or one that says nothing final changes nothing and says so.
//! * **The amount.** With an expected amount, a success counts as paid only when an order
//!   body (the order status API's, or a webhook's) shows that amount and currency; a
//!   mismatch is a terminal `IntegrityFailed` (final, not paid); a success from a source
//!   without an amount (a return URL, the payment's own answer) waits for the order status.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{InFlight, Payment, Stage};
use crate::card::CardSummary;
use crate::clock::Stamp;
use crate::config::Config;
use crate::error::{ForeignAnswer, ResponseError};
use crate::outcome::{Outcome, Refusal, Uncertainty};
use crate::request::{self, Outgoing};
use crate::settle::{
    loggable, Amount, Disagreement, ExpectedAmount, IntegrityError, OrderSnapshot,
    SettlementSource, VerifiedReturn, WebhookEvent, MAX_EVENT_ID,
};
use crate::status::Status;
use crate::token::{RequestKind, Token};
use crate::view::NextStep;

/// How many webhook ids a payment remembers (the most recent ones it applied).
const MAX_WEBHOOK_IDS: usize = 16;

/// Longest transaction id a payment keeps.
const MAX_TXN_ID: usize = 256;

/// A settlement hint for a [`Payment`]: a return URL whose signature checked out, or a
/// webhook whose credentials did. Hand it to [`Payment::settle`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settlement {
    /// The browser's return from the bank page ([`ReturnParams::verify`]).
    ///
    /// [`ReturnParams::verify`]: crate::ReturnParams::verify
    ReturnUrl(VerifiedReturn),
    /// A webhook ([`WebhookCredentials::verify`]).
    ///
    /// [`WebhookCredentials::verify`]: crate::WebhookCredentials::verify
    Webhook(WebhookEvent),
}

impl Settlement {
    /// Where it comes from.
    pub fn source(&self) -> SettlementSource {
        match self {
            Settlement::ReturnUrl(_) => SettlementSource::ReturnUrl,
            Settlement::Webhook(_) => SettlementSource::Webhook,
        }
    }

    /// The order it is about: find the payment record by it.
    pub fn order_id(&self) -> &str {
        match self {
            Settlement::ReturnUrl(r) => &r.order_id,
            Settlement::Webhook(e) => &e.order.order_id,
        }
    }

    /// The status it reports.
    pub fn status(&self) -> &Status {
        match self {
            Settlement::ReturnUrl(r) => &r.status,
            Settlement::Webhook(e) => &e.order.status,
        }
    }
}

impl From<VerifiedReturn> for Settlement {
    fn from(r: VerifiedReturn) -> Self {
        Settlement::ReturnUrl(r)
    }
}

impl From<WebhookEvent> for Settlement {
    fn from(e: WebhookEvent) -> Self {
        Settlement::Webhook(e)
    }
}

/// What a settlement hint did to a payment ([`Payment::settle`]).
///
/// `Approved`, `Declined` and `IntegrityFailed` are terminal: the hint settled the payment
/// (unconfirmed: [`Payment::check_status`] confirms it) and this is the one terminal
/// outcome the payment reports. Every other outcome changed nothing, except `Conflict`
/// the first time it is seen.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettleOutcome {
    /// Settled: paid (for the expected amount, if one is set). Terminal.
    Approved(Status),
    /// Settled: failed. Terminal.
    Declined(Status),
    /// Settled, but the order's amount or currency is not the expected one (or it has
    /// none): final and **not paid**; hold it for review. Terminal.
    IntegrityFailed(Box<IntegrityError>),
    /// The payment is already settled the same way: nothing changed.
    Agrees(Status),
    /// The hint contradicts how the payment is settled (or what its own answer said). The
    /// payment keeps its status and now asks for the order status, which decides
    /// ([`NextStep::CheckStatus`]).
    Conflict(Box<Disagreement>),
    /// The hint says the payment succeeded but carries no amount, and the payment expects
    /// one (a return URL): nothing changed; check the order status, which shows it.
    AmountUnknown(Status),
    /// The payment does not know its transaction yet (its start is in flight, or its
    /// answer was lost), so a hint cannot settle it: nothing changed; check the order
    /// status.
    CheckStatus(Status),
    /// The hint reports a status that is not final: nothing changed.
    NotFinal(Status),
    /// This webhook (by `id`) was applied before: nothing changed.
    Duplicate,
    /// This webhook is older than one already applied: nothing changed.
    Stale,
    /// This webhook is about another transaction of the order (another attempt): nothing
    /// changed.
    OtherTransaction,
}

impl SettleOutcome {
    /// A stable snake_case code: `approved`, `declined`, `integrity_failure`, `agrees`,
    /// `conflict`, `amount_unknown`, `check_status`, `not_final`, `duplicate`, `stale`,
    /// `other_transaction`. Codes never change meaning; new ones may be added.
    pub fn code(&self) -> &'static str {
        match self {
            SettleOutcome::Approved(_) => "approved",
            SettleOutcome::Declined(_) => "declined",
            SettleOutcome::IntegrityFailed(_) => "integrity_failure",
            SettleOutcome::Agrees(_) => "agrees",
            SettleOutcome::Conflict(_) => "conflict",
            SettleOutcome::AmountUnknown(_) => "amount_unknown",
            SettleOutcome::CheckStatus(_) => "check_status",
            SettleOutcome::NotFinal(_) => "not_final",
            SettleOutcome::Duplicate => "duplicate",
            SettleOutcome::Stale => "stale",
            SettleOutcome::OtherTransaction => "other_transaction",
        }
    }

    /// True when the hint settled the payment: the one terminal outcome it reports.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            SettleOutcome::Approved(_)
                | SettleOutcome::Declined(_)
                | SettleOutcome::IntegrityFailed(_)
        )
    }
}

impl fmt::Display for SettleOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettleOutcome::Approved(s) => write!(f, "payment approved ({s}), to be confirmed"),
            SettleOutcome::Declined(s) => write!(f, "payment declined ({s}), to be confirmed"),
            SettleOutcome::IntegrityFailed(e) => write!(f, "payment held for review: {e}"),
            SettleOutcome::Agrees(s) => write!(f, "already settled as {s}"),
            SettleOutcome::Conflict(d) => {
                write!(f, "sources disagree: {d}; check the order status")
            }
            SettleOutcome::AmountUnknown(s) => write!(
                f,
                "says {s} without an amount; check the order status for the amount"
            ),
            SettleOutcome::CheckStatus(s) => {
                write!(
                    f,
                    "says {s}, but the transaction is not known yet; check the order status"
                )
            }
            SettleOutcome::NotFinal(s) => write!(f, "says {s}, which is not final"),
            SettleOutcome::Duplicate => f.write_str("this webhook was applied before"),
            SettleOutcome::Stale => f.write_str("this webhook is older than one already applied"),
            SettleOutcome::OtherTransaction => {
                f.write_str("this webhook is about another transaction of the order")
            }
        }
    }
}

/// A settlement hint that does not belong to this payment. It changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettleError {
    /// The hint names another order.
    #[error(
        "the settlement is for order {got:?}, not {expected:?}: hand it to that order's payment"
    )]
    OtherOrder {
        /// The order it names (made safe to log).
        got: String,
        /// This payment's order.
        expected: String,
    },
    /// Nothing was ever sent for this payment, so the hint is about another attempt on the
    /// order.
    #[error(
        "this payment attempt has not been started: the settlement is about another attempt; \
         hand it to the one that was started"
    )]
    NotStarted,
    /// The webhook's `id` is empty, longer than 256 bytes or holds a control character
    /// (read webhooks with `WebhookCredentials::verify`, which refuses those).
    #[error("the webhook's event id is empty, too long or holds control characters: read webhooks with WebhookCredentials::verify")]
    BadEventId,
}

/// What a payment knows about its settlement besides its stage. Every field is optional in
/// the persisted form, so a record that never needed one has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct SettleState {
    /// The amount and currency a success must show.
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<ExpectedAmount>,
    /// The `txn_id` of this attempt's transaction, from its start answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    txn_id: Option<String>,
    /// Who settled it (or, with `amount_unchecked`, said it succeeded).
    #[serde(skip_serializing_if = "Option::is_none")]
    by: Option<SettlementSource>,
    /// Settled by a return URL or webhook, not yet confirmed by the order status API.
    #[serde(skip_serializing_if = "is_false")]
    unconfirmed: bool,
    /// A source without an amount said success while an amount is expected: not final
    /// until an order body shows the amount.
    #[serde(skip_serializing_if = "is_false")]
    amount_unchecked: bool,
    /// The settlement failed the amount check: what the order showed.
    #[serde(skip_serializing_if = "Option::is_none")]
    integrity: Option<Found>,
    /// A hint contradicts the settlement; the order status API decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    conflict: Option<Disagreement>,
    /// The last time the order status API overturned a settlement.
    #[serde(skip_serializing_if = "Option::is_none")]
    disagreement: Option<Disagreement>,
    /// The ids of the last webhooks applied, oldest first.
    #[serde(skip_serializing_if = "VecDeque::is_empty")]
    webhooks: VecDeque<String>,
    /// The `date_created` of the newest webhook applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    latest_event: Option<Stamp>,
    /// The confirming order status check in flight (final payments only).
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<InFlight>,
    /// The card, kept when a hint or a confirmation replaced the OTP challenge.
    #[serde(skip_serializing_if = "Option::is_none")]
    card: Option<CardSummary>,
}

/// The amount and currency a settlement showed, when they failed the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Found {
    amount: Option<Amount>,
    currency: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl SettleState {
    /// Nothing to persist.
    pub(super) fn is_plain(&self) -> bool {
        self == &SettleState::default()
    }

    pub(super) fn amount_unchecked(&self) -> bool {
        self.amount_unchecked
    }

    /// The confirming status check in flight.
    pub(super) fn check(&self) -> Option<InFlight> {
        self.check
    }

    pub(super) fn end_check(&mut self) {
        self.check = None;
    }

    pub(super) fn card(&self) -> Option<CardSummary> {
        self.card.clone()
    }

    fn needs_confirmation(&self) -> bool {
        self.unconfirmed || self.amount_unchecked || self.conflict.is_some()
    }

    /// Remembers an applied webhook: its id (the last [`MAX_WEBHOOK_IDS`]) and its date.
    fn note(&mut self, event: Option<&WebhookEvent>) {
        let Some(event) = event else { return };
        if self.webhooks.len() == MAX_WEBHOOK_IDS {
            self.webhooks.pop_front();
        }
        self.webhooks.push_back(event.id.clone());
        if let Some(at) = event.created_at.map(Stamp::from_time) {
            self.latest_event = Some(self.latest_event.map_or(at, |l| l.max(at)));
        }
    }
}

/// What a final status means for the merchant, once the amount is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Paid,
    NotPaid,
    Integrity(IntegrityError),
    /// A success, an expected amount, and no order body to check it against.
    AmountUnknown,
}

impl Verdict {
    /// The terminal outcome of an answer (`AmountUnknown` never gets here).
    fn terminal(self, status: Status) -> Outcome {
        match self {
            Verdict::Paid => Outcome::Approved(status),
            Verdict::Integrity(e) => Outcome::IntegrityFailed(Box::new(e)),
            Verdict::NotPaid | Verdict::AmountUnknown => Outcome::Declined(status),
        }
    }

    /// The terminal outcome of a hint (`AmountUnknown` never gets here).
    fn settled(self, status: Status) -> SettleOutcome {
        match self {
            Verdict::Paid => SettleOutcome::Approved(status),
            Verdict::Integrity(e) => SettleOutcome::IntegrityFailed(Box::new(e)),
            Verdict::NotPaid | Verdict::AmountUnknown => SettleOutcome::Declined(status),
        }
    }

    fn found(&self) -> Option<Found> {
        match self {
            Verdict::Integrity(e) => Some(Found {
                amount: e.found_amount.clone(),
                currency: e.found_currency.clone(),
            }),
            _ => None,
        }
    }
}

impl Payment {
    // ----- The expected amount ----------------------------------------------------------

    /// At creation: the amount and currency this payment is for. A success then counts as
    /// paid only once an order body (the order status API's, or a webhook's) shows them;
    /// otherwise it is reported as [`Outcome::IntegrityFailed`]. Persisted with the record
    /// (it is not a secret). On a payment already started this changes nothing; use
    /// [`set_expected_amount`](Self::set_expected_amount) to see the refusal.
    ///
    /// ```
    /// use direct_otp::{Amount, ExpectedAmount, Payment, PaymentSource, StartRequest};
    /// # let now = time::macros::datetime!(2026-11-25 10:00 UTC);
    /// let start = StartRequest::new("ord_1", "acme", "customer_1",
    ///     PaymentSource::Token { card_token: "tok_123".into(), cvv: None })?;
    /// let expected = ExpectedAmount::new(Amount::parse("1499.00")?, "INR")?;
    /// let payment = Payment::new(&start, 1, now).with_expected_amount(expected.clone());
    /// assert_eq!(payment.expected_amount(), Some(&expected));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_expected_amount(mut self, expected: ExpectedAmount) -> Payment {
        // Refused only once started: documented as changing nothing.
        let _ = self.set_expected_amount(expected);
        self
    }

    /// Sets the amount and currency this payment is for (see
    /// [`with_expected_amount`](Self::with_expected_amount)). A change like any other (the
    /// revision moves); refused with [`Refusal::AlreadyStarted`] once anything was sent.
    pub fn set_expected_amount(&mut self, expected: ExpectedAmount) -> Result<(), Refusal> {
        if !matches!(self.stage, Stage::New) {
            return Err(Refusal::AlreadyStarted);
        }
        if self.settle.expected.as_ref() != Some(&expected) {
            self.settle.expected = Some(expected);
            self.revision = self.revision.saturating_add(1);
        }
        Ok(())
    }

    /// The amount and currency this payment is for, if set.
    pub fn expected_amount(&self) -> Option<&ExpectedAmount> {
        self.settle.expected.as_ref()
    }

    // ----- Hints ------------------------------------------------------------------------

    /// Feeds a settlement hint into the payment: a verified return URL or an authenticated
    /// webhook. A hint that says final settles an open payment (the one terminal outcome,
    /// unconfirmed: [`check_status`](Self::check_status) then confirms it); anything else
    /// changes nothing and says why. Idempotent: the same webhook again is
    /// [`SettleOutcome::Duplicate`], the same return again changes nothing. A request in
    /// flight when a hint settles the payment is abandoned: its answer is then refused
    /// with `InputError::AlreadyFinal`.
    ///
    /// Store the payment afterwards, with compare-and-swap, when its
    /// [`revision`](Self::revision) moved (`docs/concurrency.md`); answer a webhook `200`
    /// whatever the outcome, and a [`SettleError`] too (it is not this payment's).
    ///
    /// ```
    /// use direct_otp::{Payment, PaymentSource, ResponseKey, ReturnParams, Settlement,
    ///     SettleOutcome, StartRequest, Status};
    /// # use direct_otp::Config;
    /// # let now = time::macros::datetime!(2026-11-25 10:00 UTC);
    /// # let config = Config::sandbox("my_api_key")?;
    /// let start = StartRequest::new("ord_1", "acme", "customer_1",
    ///     PaymentSource::Token { card_token: "tok_123".into(), cvv: None })?;
    /// let mut payment = Payment::new(&start, 1, now);
    /// let out = payment.start(&config, &start, now)?;
    /// // 3DS failover: the browser goes to the bank's page...
    /// let answer = br#"{"order_id":"ord_1","txn_id":"acme-ord_1-1","status":"PENDING_VBV",
    ///     "payment":{"authentication":{"method":"GET","url":"https://bank.example/3ds"}}}"#;
    /// payment.handle_response(out.token, 200, answer, now)?;
    /// // ... and comes back with signed parameters.
    /// let key = ResponseKey::new("92206A0A4A75499C9B11206C2B3B9A53")?;
    /// # let query = "order_id=ord_1&status=CHARGED&status_id=21&signature=g%252F3qqSQNepQvlFQ8X7Y%252F%252BLZ4%252BWg0VLQ8izZSvOwDSaU%253D&signature_algorithm=HMAC-SHA256";
    /// let verified = ReturnParams::from_query(query)?.verify(&key)?;
    /// let outcome = payment.settle(Settlement::ReturnUrl(verified.clone()), now)?;
    /// assert_eq!(outcome, SettleOutcome::Approved(Status::Charged));
    /// assert!(payment.is_paid() && !payment.is_confirmed());
    /// // The same return again changes nothing.
    /// let revision = payment.revision();
    /// assert_eq!(payment.settle(verified.into(), now)?.code(), "agrees");
    /// assert_eq!(payment.revision(), revision);
    /// // Confirm with the order status API.
    /// let check = payment.check_status(&config, now)?;
    /// let body = br#"{"order_id":"ord_1","status":"CHARGED","amount":"1499","currency":"INR"}"#;
    /// assert_eq!(payment.handle_response(check.token, 200, body, now)?.code(), "confirmed");
    /// assert!(payment.is_confirmed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn settle(
        &mut self,
        settlement: Settlement,
        now: OffsetDateTime,
    ) -> Result<SettleOutcome, SettleError> {
        let source = settlement.source();
        let status = settlement.status().clone();
        if settlement.order_id() != self.order_id.as_str() {
            return Err(SettleError::OtherOrder {
                got: loggable(settlement.order_id()),
                expected: self.order_id.as_str().to_owned(),
            });
        }
        if matches!(self.stage, Stage::New) {
            return Err(SettleError::NotStarted);
        }
        let event = match &settlement {
            Settlement::Webhook(e) => Some(e),
            Settlement::ReturnUrl(_) => None,
        };
        if let Some(e) = event {
            if e.id.is_empty() || e.id.len() > MAX_EVENT_ID || e.id.chars().any(char::is_control) {
                return Err(SettleError::BadEventId);
            }
            if self.settle.webhooks.contains(&e.id) {
                return Ok(SettleOutcome::Duplicate);
            }
            if let (Some(theirs), Some(ours)) = (&e.order.txn_id, &self.settle.txn_id) {
                if theirs != ours {
                    return Ok(SettleOutcome::OtherTransaction);
                }
            }
            if let (Some(at), Some(latest)) = (e.created_at, self.settle.latest_event) {
                if Stamp::from_time(at) < latest {
                    return Ok(SettleOutcome::Stale);
                }
            }
        }
        if !status.is_final() {
            return Ok(SettleOutcome::NotFinal(status));
        }
        let verdict = self.verdict(&status, event.map(|e| &e.order));
        let open = match &self.stage {
            Stage::New | Stage::Starting { .. } | Stage::Unknown { .. } => {
                return Ok(SettleOutcome::CheckStatus(status));
            }
            Stage::BankPage { .. } => true,
            Stage::Challenge { challenge } => !challenge.is_final(),
            Stage::Final { .. } => false,
        };
        if verdict == Verdict::AmountUnknown
            && (open || (self.settle.amount_unchecked && status == self.status()))
        {
            return Ok(SettleOutcome::AmountUnknown(status));
        }
        if open {
            return Ok(self.settle_open(source, status, verdict, event, now));
        }
        if self.settle.amount_unchecked && status == self.status() {
            // The payment's own answer said this success; the webhook shows the amount.
            self.touch(now);
            self.settle.amount_unchecked = false;
            self.settle.by = Some(source);
            self.settle.unconfirmed = true;
            self.settle.integrity = verdict.found();
            self.settle.note(event);
            return Ok(verdict.settled(status));
        }
        let held = self.status();
        let paid = self.is_paid();
        let agrees = status == held
            && (verdict == Verdict::AmountUnknown || (verdict == Verdict::Paid) == paid);
        if agrees {
            return Ok(SettleOutcome::Agrees(held));
        }
        let conflict = Disagreement {
            source,
            said: status,
            status: held,
            was_paid: paid,
            paid,
        };
        if self.settle.conflict.as_ref() != Some(&conflict) || event.is_some() {
            self.replace_challenge();
            self.touch(now);
            self.settle.conflict = Some(conflict.clone());
            self.settle.note(event);
        }
        Ok(SettleOutcome::Conflict(Box::new(conflict)))
    }

    /// A final hint settles an open payment.
    fn settle_open(
        &mut self,
        source: SettlementSource,
        status: Status,
        verdict: Verdict,
        event: Option<&WebhookEvent>,
        now: OffsetDateTime,
    ) -> SettleOutcome {
        let card = self.challenge().map(|c| c.card().clone());
        self.touch(now);
        self.stage = Stage::Final {
            status: status.clone(),
        };
        let card = card.filter(|c| c != &CardSummary::default());
        self.settle = SettleState {
            expected: self.settle.expected.take(),
            txn_id: self.settle.txn_id.take(),
            by: Some(source),
            unconfirmed: true,
            integrity: verdict.found(),
            webhooks: std::mem::take(&mut self.settle.webhooks),
            latest_event: self.settle.latest_event,
            card,
            ..SettleState::default()
        };
        self.settle.note(event);
        verdict.settled(status)
    }

    /// A final OTP challenge gives way to the plain final stage (keeping the card), so that
    /// a confirmation can be in flight on it.
    fn replace_challenge(&mut self) {
        if let Stage::Challenge { challenge } = &self.stage {
            let card = challenge.card().clone();
            self.settle.card = Some(card).filter(|c| c != &CardSummary::default());
            self.stage = Stage::Final {
                status: challenge.status().clone(),
            };
        }
    }

    fn verdict(&self, status: &Status, order: Option<&OrderSnapshot>) -> Verdict {
        if !status.is_success() {
            return Verdict::NotPaid;
        }
        let Some(expected) = &self.settle.expected else {
            return Verdict::Paid;
        };
        match order.map(|o| expected.check(o)) {
            None => Verdict::AmountUnknown,
            Some(Ok(())) => Verdict::Paid,
            Some(Err(e)) => Verdict::Integrity(e),
        }
    }

    // ----- Hooks of the lifecycle (mod.rs) ----------------------------------------------

    /// After an answer of the payment's own requests (`kind`): remembers the transaction
    /// id a start names, and for a terminal outcome who settled it and whether the amount
    /// is the expected one.
    pub(super) fn settled_by_answer(
        &mut self,
        kind: RequestKind,
        http_status: u16,
        body: &[u8],
        outcome: Outcome,
    ) -> Outcome {
        let order = || OrderSnapshot::from_order_status(http_status, body).ok();
        if kind == RequestKind::Start && self.settle.txn_id.is_none() {
            self.settle.txn_id = order()
                .and_then(|o| o.txn_id)
                .filter(|t| t.len() <= MAX_TXN_ID);
        }
        if !outcome.is_terminal() {
            return outcome;
        }
        let source = match kind {
            RequestKind::OrderStatus => SettlementSource::OrderStatus,
            _ => SettlementSource::Answer,
        };
        self.settle.by = Some(source);
        self.settle.unconfirmed = false;
        let Outcome::Approved(status) = &outcome else {
            return outcome;
        };
        let Some(expected) = &self.settle.expected else {
            return outcome;
        };
        // The order status API always answers with the order; the transaction endpoints
        // may or may not carry its amount.
        let order = order().filter(|o| {
            source == SettlementSource::OrderStatus || o.amount.is_some() || o.currency.is_some()
        });
        let verdict = match (source, &order) {
            (SettlementSource::OrderStatus, None) => Verdict::Integrity(IntegrityError {
                expected: expected.clone(),
                found_amount: None,
                found_currency: None,
            }),
            _ => self.verdict(status, order.as_ref()),
        };
        match verdict {
            Verdict::AmountUnknown => {
                let status = status.clone();
                self.replace_challenge();
                self.settle.amount_unchecked = true;
                Outcome::CheckStatus(Uncertainty::AmountUnchecked(status))
            }
            Verdict::Integrity(e) => {
                self.settle.integrity = Verdict::Integrity(e.clone()).found();
                Outcome::IntegrityFailed(Box::new(e))
            }
            Verdict::Paid | Verdict::NotPaid => outcome,
        }
    }

    /// `check_status` on a final payment: the confirming order status check, when the
    /// settlement needs one (`None`: the usual rules apply, `AlreadyFinal` among them).
    pub(super) fn confirm(
        &mut self,
        config: &Config,
        now: OffsetDateTime,
    ) -> Option<Result<Outgoing, Refusal>> {
        if !matches!(self.stage, Stage::Final { .. }) {
            return None;
        }
        if let Some(check) = self.settle.check {
            return Some(Err(Refusal::InFlight(check.token)));
        }
        if !self.settle.needs_confirmation() {
            return None;
        }
        let now = self.touch(now);
        let token = Token::issue(self.record, self.revision, RequestKind::OrderStatus);
        self.settle.check = Some(InFlight {
            token,
            sent_at: now,
        });
        Some(Ok(Outgoing {
            token,
            request: request::order_status(
                config,
                self.order_id.as_str(),
                self.routing_id.shared(),
            ),
        }))
    }

    /// The answer to the confirming status check: the order status API decides.
    pub(super) fn on_confirmation(
        &mut self,
        http_status: u16,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Outcome {
        self.touch(now);
        self.settle.check = None;
        let order = match OrderSnapshot::from_order_status(http_status, body) {
            Ok(o) if o.order_id == self.order_id.as_str() => o,
            Ok(_) => {
                return Outcome::Rejected(ResponseError::Foreign(ForeignAnswer {
                    field: "order_id",
                }))
            }
            Err(e) => return Outcome::Rejected(e),
        };
        let api = order.status.clone();
        if !api.is_final() {
            // Not final yet: what was reported stands, still unconfirmed.
            return Outcome::Pending(api);
        }
        let verdict = self.verdict(&api, Some(&order));
        let api_paid = verdict == Verdict::Paid;
        let held = self.status();
        let was_paid = self.is_paid();
        let first = self.settle.amount_unchecked;
        let said_by = self.settle.by.unwrap_or(SettlementSource::Answer);
        if let Stage::Final { status } = &mut self.stage {
            status.clone_from(&api);
        }
        self.settle.integrity = verdict.found();
        self.settle.amount_unchecked = false;
        self.settle.unconfirmed = false;
        self.settle.conflict = None;
        let differs = held != api || was_paid != api_paid;
        let disagreement = differs.then(|| Disagreement {
            source: said_by,
            said: held,
            status: api.clone(),
            was_paid,
            paid: api_paid,
        });
        if first {
            // Nothing terminal was reported yet: this is the one terminal outcome.
            self.settle.by = Some(SettlementSource::OrderStatus);
            if disagreement.is_some() {
                self.settle.disagreement = disagreement;
            }
            return verdict.terminal(api);
        }
        match disagreement {
            None => Outcome::Confirmed(api),
            Some(d) => {
                self.settle.by = Some(SettlementSource::OrderStatus);
                self.settle.disagreement = Some(d.clone());
                Outcome::Disagreement(Box::new(d))
            }
        }
    }

    /// The next step of the plain final stage.
    pub(super) fn final_step(&self, status: &Status) -> NextStep {
        if self.settle.amount_unchecked || self.settle.conflict.is_some() {
            NextStep::CheckStatus
        } else {
            NextStep::Finished(status.clone())
        }
    }

    // ----- Getters ----------------------------------------------------------------------

    /// True once the payment is final, succeeded (`CHARGED` or `AUTHORIZED`), and, if an
    /// expected amount is set, an order body showed that amount and currency.
    pub fn is_paid(&self) -> bool {
        self.is_final() && self.status().is_success() && self.settle.integrity.is_none()
    }

    /// True once the payment is final and the order status API (or the payment's own
    /// answer) settled or confirmed it, with no hint contradicting it since. False while
    /// only a return URL or a webhook says it is final: confirm with
    /// [`check_status`](Self::check_status).
    pub fn is_confirmed(&self) -> bool {
        self.is_final() && !self.settle.unconfirmed && self.settle.conflict.is_none()
    }

    /// Who settled the payment, once final (`None` for a record stored before this was
    /// kept).
    pub fn settled_by(&self) -> Option<SettlementSource> {
        self.settle.by.filter(|_| self.is_final())
    }

    /// The integrity failure the payment settled with, if any: final and not paid.
    pub fn integrity_failure(&self) -> Option<IntegrityError> {
        let found = self.settle.integrity.as_ref()?;
        Some(IntegrityError {
            expected: self.settle.expected.clone()?,
            found_amount: found.amount.clone(),
            found_currency: found.currency.clone(),
        })
    }

    /// The last time the order status API overturned what another source had said.
    pub fn disagreement(&self) -> Option<&Disagreement> {
        self.settle.disagreement.as_ref()
    }

    /// A return URL or webhook that contradicts the settlement, until the order status API
    /// decides.
    pub fn conflict(&self) -> Option<&Disagreement> {
        self.settle.conflict.as_ref()
    }

    /// The view's `settlement_issue` code.
    pub(super) fn settlement_issue(&self) -> Option<&'static str> {
        if self.settle.integrity.is_some() {
            Some("integrity_failure")
        } else if self.settle.amount_unchecked {
            Some("amount_unchecked")
        } else if self.settle.conflict.is_some() {
            Some("conflict")
        } else if self.settle.disagreement.is_some() {
            Some("disagreement")
        } else {
            None
        }
    }

    /// Words for the view when the settlement, not the next step, says what to show.
    pub(super) fn settlement_message(&self) -> Option<String> {
        if self.settle.check.is_some() {
            return None;
        }
        match self.settlement_issue()? {
            "integrity_failure" => {
                Some("the payment could not be matched to the order; it is held for review".into())
            }
            "amount_unchecked" | "conflict" => Some("checking the payment with the bank".into()),
            _ => None,
        }
    }

    /// The first rule of the settlement state that this record breaks, if any.
    pub(super) fn settle_inconsistency(&self) -> Option<&'static str> {
        let s = &self.settle;
        let bad_id = |id: &String| {
            id.is_empty() || id.len() > MAX_EVENT_ID || id.chars().any(char::is_control)
        };
        if s.webhooks.len() > MAX_WEBHOOK_IDS || s.webhooks.iter().any(bad_id) {
            return Some("too many or malformed webhook ids");
        }
        if s.txn_id.as_ref().is_some_and(|t| {
            t.is_empty() || t.len() > MAX_TXN_ID || t.chars().any(char::is_control)
        }) {
            return Some("a malformed transaction id");
        }
        let final_stage = matches!(self.stage, Stage::Final { .. });
        if !final_stage && (s.needs_confirmation() || s.check.is_some() || s.card.is_some()) {
            return Some("settlement state outside a final stage");
        }
        if s.check.is_some() && !s.needs_confirmation() {
            return Some("a confirmation in flight that nothing needs");
        }
        let success = self.status().is_success();
        if (s.amount_unchecked || s.integrity.is_some()) && (s.expected.is_none() || !success) {
            return Some("an amount check without an expected amount or a success");
        }
        if s.unconfirmed && s.by.is_none_or(SettlementSource::is_authoritative) {
            return Some("an unconfirmed settlement without a hint that settled it");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::Otp;
    use crate::settle::ResponseKey;
    use crate::{InputError, PaymentSource, ReturnParams, SendFailure, StartRequest};
    use serde_json::json;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-25 10:00 UTC);
    const DIRECT: &[u8] = include_bytes!("../../tests/fixtures/start_direct_otp.json");
    const THREE_DS: &[u8] = include_bytes!("../../tests/fixtures/start_3ds_failover.json");
    const CHARGED: &[u8] = include_bytes!("../../tests/fixtures/submit_charged.json");
    /// The order of `start_3ds_failover.json`.
    const BANK: &str = "ord_dotp_1002";
    /// The order of `start_direct_otp.json`.
    const OTP: &str = "ord_dotp_1001";

    fn at(s: i64) -> OffsetDateTime {
        T0 + time::Duration::seconds(s)
    }

    fn config() -> Config {
        Config::sandbox("sk_test").unwrap()
    }

    fn start_request(order: &str) -> StartRequest {
        let card = PaymentSource::Token {
            card_token: "tok".into(),
            cvv: None,
        };
        StartRequest::new(order, "acme", "customer_1122", card).unwrap()
    }

    /// A payment for `order` started with `answer`, optionally expecting 1499 INR.
    fn started(order: &str, answer: &[u8], expected: Option<&str>) -> Payment {
        let start = start_request(order);
        let mut p = Payment::new(&start, 1, T0);
        if let Some(amount) = expected {
            let e = ExpectedAmount::new(Amount::parse(amount).unwrap(), "INR").unwrap();
            p = p.with_expected_amount(e);
        }
        let out = p.start(&config(), &start, T0).unwrap();
        p.handle_response(out.token, 200, answer, T0).unwrap();
        p
    }

    fn bank_page(expected: Option<&str>) -> Payment {
        let p = started(BANK, THREE_DS, expected);
        assert!(matches!(p.stage, Stage::BankPage { .. }));
        p
    }

    fn otp_page(expected: Option<&str>) -> Payment {
        let p = started(OTP, DIRECT, expected);
        assert!(matches!(p.stage, Stage::Challenge { .. }));
        p
    }

    fn order_body(order: &str, status: &str, amount: &str, txn: &str) -> serde_json::Value {
        json!({"order_id": order, "status": status, "amount": amount, "currency": "INR",
               "txn_id": txn})
    }

    fn webhook(id: &str, order: serde_json::Value, created: &str) -> Settlement {
        let body = json!({"id": id, "event_name": "ORDER_SUCCEEDED", "date_created": created,
                          "content": {"order": order}});
        Settlement::Webhook(WebhookEvent::parse(body.to_string().as_bytes()).unwrap())
    }

    /// A webhook for the 3DS order's transaction, at `T0 + secs`.
    fn hook(id: &str, status: &str, amount: &str, secs: i64) -> Settlement {
        let created = format!("2026-11-25T10:00:{secs:02}Z");
        webhook(
            id,
            order_body(BANK, status, amount, "acme-ord_dotp_1002-1"),
            &created,
        )
    }

    fn signed_return(order: &str, status: &str) -> Settlement {
        let key = ResponseKey::new("rk").unwrap();
        let params = [("order_id", order), ("status", status), ("status_id", "21")];
        let mut pairs: Vec<(String, String)> = params
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        pairs.push(("signature".into(), key.signature(params)));
        pairs.push(("signature_algorithm".into(), "HMAC-SHA256".into()));
        let verified = ReturnParams::from_pairs(pairs)
            .unwrap()
            .verify(&key)
            .unwrap();
        Settlement::ReturnUrl(verified)
    }

    /// Checks the status and hands back `body` as the order status answer.
    fn api(p: &mut Payment, body: &serde_json::Value, now: OffsetDateTime) -> Outcome {
        let out = p.check_status(&config(), now).unwrap();
        p.handle_response(out.token, 200, body.to_string().as_bytes(), now)
            .unwrap()
    }

    fn round_trip(p: &Payment) {
        let json = serde_json::to_string(p).unwrap();
        let back: Payment = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, p, "{json}");
    }

    #[test]
    fn a_webhook_settles_unconfirmed_and_the_status_api_confirms() {
        let mut p = bank_page(None);
        p.go_to_bank_page(at(1)).unwrap();
        let out = p
            .settle(hook("evt_1", "CHARGED", "1499", 5), at(5))
            .unwrap();
        assert_eq!(out, SettleOutcome::Approved(Status::Charged));
        assert!(out.is_terminal());
        assert!(p.is_final() && p.is_paid() && !p.is_confirmed());
        assert_eq!(p.settled_by(), Some(SettlementSource::Webhook));
        let view = p.view(at(5));
        assert_eq!(
            (view.next.as_str(), view.paid, view.confirmed),
            ("finished", true, false)
        );
        assert_eq!(view.settled_by.as_deref(), Some("webhook"));
        assert_eq!(view.settlement_issue, None);
        round_trip(&p);

        // Replays change nothing and say so; so does the browser's return afterwards.
        let revision = p.revision();
        let again = p
            .settle(hook("evt_1", "CHARGED", "1499", 5), at(6))
            .unwrap();
        assert_eq!(again, SettleOutcome::Duplicate);
        let ret = p.settle(signed_return(BANK, "CHARGED"), at(6)).unwrap();
        assert_eq!(ret, SettleOutcome::Agrees(Status::Charged));
        assert_eq!(p.revision(), revision);

        // Commands stay refused; the status check confirms.
        assert_eq!(
            p.go_to_bank_page(at(7)),
            Err(Refusal::AlreadyFinal(Status::Charged))
        );
        let body = order_body(BANK, "CHARGED", "1499", "acme-ord_dotp_1002-1");
        let out = p.check_status(&config(), at(7)).unwrap();
        assert_eq!(p.in_flight(), Some(out.token));
        assert_eq!(p.next_step(at(7)), NextStep::Wait(out.token));
        assert_eq!(
            p.check_status(&config(), at(7)),
            Err(Refusal::InFlight(out.token))
        );
        round_trip(&p);
        let confirmed = p
            .handle_response(out.token, 200, body.to_string().as_bytes(), at(8))
            .unwrap();
        assert_eq!(confirmed, Outcome::Confirmed(Status::Charged));
        assert!(!confirmed.is_terminal());
        assert!(p.is_confirmed() && p.is_paid());
        assert_eq!(p.settled_by(), Some(SettlementSource::Webhook));
        assert_eq!(
            p.check_status(&config(), at(9)),
            Err(Refusal::AlreadyFinal(Status::Charged))
        );
        round_trip(&p);
    }

    #[test]
    fn the_status_api_overturns_a_hint_and_says_so() {
        for (hint, api_status, was_paid, paid) in [
            ("AUTHENTICATION_FAILED", "CHARGED", false, true),
            ("CHARGED", "AUTHORIZATION_FAILED", true, false),
        ] {
            let mut p = bank_page(None);
            let out = p.settle(signed_return(BANK, hint), at(1)).unwrap();
            assert!(out.is_terminal(), "{out:?}");
            let body = order_body(BANK, api_status, "1499", "acme-ord_dotp_1002-1");
            let Outcome::Disagreement(d) = api(&mut p, &body, at(2)) else {
                panic!("expected a disagreement")
            };
            assert_eq!(
                (d.source, d.said.as_str(), d.status.as_str()),
                (SettlementSource::ReturnUrl, hint, api_status)
            );
            assert_eq!((d.was_paid, d.paid), (was_paid, paid));
            assert_eq!(p.status().as_str(), api_status, "the API wins");
            assert_eq!(p.is_paid(), paid);
            assert!(p.is_confirmed());
            assert_eq!(p.disagreement(), Some(&*d));
            let view = p.view(at(2));
            assert_eq!(view.settlement_issue.as_deref(), Some("disagreement"));
            assert_eq!(view.settled_by.as_deref(), Some("order_status"));
            round_trip(&p);
        }
    }

    #[test]
    fn amounts_decide_what_is_paid() {
        // A webhook for the wrong amount: final, not paid, never reported as approved.
        let mut p = bank_page(Some("1499.00"));
        let out = p
            .settle(hook("evt_1", "CHARGED", "1.00", 1), at(1))
            .unwrap();
        let SettleOutcome::IntegrityFailed(e) = &out else {
            panic!("{out:?}")
        };
        assert!(e.amount_differs() && !e.currency_differs());
        assert!(out.is_terminal());
        assert!(p.is_final() && !p.is_paid());
        assert_eq!(p.integrity_failure().as_ref(), Some(&**e));
        let view = p.view(at(1));
        assert_eq!(view.settlement_issue.as_deref(), Some("integrity_failure"));
        assert!(!view.paid && view.is_final);
        assert!(view.message.contains("held for review"), "{}", view.message);
        round_trip(&p);
        // The status API shows the same amount: confirmed, still not paid.
        let wrong = order_body(BANK, "CHARGED", "1", "acme-ord_dotp_1002-1");
        assert_eq!(
            api(&mut p.clone(), &wrong, at(2)),
            Outcome::Confirmed(Status::Charged)
        );
        // It shows the right amount: the API wins, reported as a disagreement.
        let right = order_body(BANK, "CHARGED", "1499", "acme-ord_dotp_1002-1");
        let Outcome::Disagreement(d) = api(&mut p, &right, at(2)) else {
            panic!()
        };
        assert!(!d.was_paid && d.paid && d.said == d.status);
        assert!(p.is_paid() && p.integrity_failure().is_none());

        // A return carries no amount: it cannot settle a payment that expects one.
        let mut p = bank_page(Some("1499"));
        let revision = p.revision();
        let out = p.settle(signed_return(BANK, "CHARGED"), at(1)).unwrap();
        assert_eq!(out, SettleOutcome::AmountUnknown(Status::Charged));
        assert_eq!(p.revision(), revision);
        // ... but a failure needs no amount.
        let out = p
            .settle(signed_return(BANK, "AUTHENTICATION_FAILED"), at(1))
            .unwrap();
        assert_eq!(out, SettleOutcome::Declined(Status::AuthenticationFailed));
    }

    #[test]
    fn a_success_without_an_amount_waits_for_the_order_status() {
        let cases = [
            (
                json!({"amount": "1499", "currency": "inr"}),
                "approved",
                true,
            ),
            (
                json!({"amount": "1499.5", "currency": "INR"}),
                "integrity_failure",
                false,
            ),
            (
                json!({"amount": "1499", "currency": "USD"}),
                "integrity_failure",
                false,
            ),
            (json!({}), "integrity_failure", false),
        ];
        for (fields, code, paid) in cases {
            let mut p = otp_page(Some("1499"));
            let out = p
                .submit(&config(), &Otp::new("123456").unwrap(), at(1))
                .unwrap();
            let outcome = p.handle_response(out.token, 200, CHARGED, at(2)).unwrap();
            assert_eq!(
                outcome,
                Outcome::CheckStatus(Uncertainty::AmountUnchecked(Status::Charged))
            );
            assert!(!outcome.is_terminal());
            assert!(!p.is_final() && !p.is_paid() && p.status() == Status::Charged);
            let view = p.view(at(2));
            assert_eq!(view.next, "check_status");
            assert_eq!(view.settlement_issue.as_deref(), Some("amount_unchecked"));
            assert_eq!(view.card.and_then(|c| c.last_four).as_deref(), Some("1111"));
            round_trip(&p);

            let mut body = json!({"order_id": OTP, "status": "CHARGED"});
            for (k, v) in fields.as_object().unwrap() {
                body[k] = v.clone();
            }
            let outcome = api(&mut p, &body, at(3));
            assert_eq!(outcome.code(), code, "{body}");
            assert!(outcome.is_terminal());
            assert!(p.is_final() && p.is_confirmed());
            assert_eq!(p.is_paid(), paid);
            assert_eq!(p.settled_by(), Some(SettlementSource::OrderStatus));
            assert_eq!(
                p.check_status(&config(), at(4)),
                Err(Refusal::AlreadyFinal(Status::Charged))
            );
            round_trip(&p);
        }
    }

    #[test]
    fn a_webhook_can_show_the_amount_an_answer_did_not() {
        let mut p = otp_page(Some("1499"));
        let out = p
            .submit(&config(), &Otp::new("123456").unwrap(), at(1))
            .unwrap();
        p.handle_response(out.token, 200, CHARGED, at(2)).unwrap();
        let order = order_body(OTP, "CHARGED", "1499.0", "acme-ord_dotp_1001-1");
        let out = p
            .settle(webhook("evt_9", order, "2026-11-25T10:00:03Z"), at(3))
            .unwrap();
        assert_eq!(out, SettleOutcome::Approved(Status::Charged));
        assert!(p.is_paid() && !p.is_confirmed());
    }

    #[test]
    fn a_contradicting_hint_asks_the_status_api() {
        let mut p = otp_page(None);
        let out = p
            .submit(&config(), &Otp::new("123456").unwrap(), at(1))
            .unwrap();
        let outcome = p.handle_response(out.token, 200, CHARGED, at(2)).unwrap();
        assert_eq!(outcome, Outcome::Approved(Status::Charged));
        assert_eq!(p.settled_by(), Some(SettlementSource::Answer));
        assert!(p.is_confirmed());
        let failed = order_body(OTP, "AUTHENTICATION_FAILED", "1499", "acme-ord_dotp_1001-1");
        let out = p
            .settle(
                webhook("evt_2", failed.clone(), "2026-11-25T10:00:03Z"),
                at(3),
            )
            .unwrap();
        let SettleOutcome::Conflict(d) = &out else {
            panic!("{out:?}")
        };
        assert_eq!(
            (&d.said, &d.status),
            (&Status::AuthenticationFailed, &Status::Charged)
        );
        assert!(!out.is_terminal());
        assert!(
            p.is_paid() && !p.is_confirmed(),
            "the payment keeps its status"
        );
        let view = p.view(at(3));
        assert_eq!(
            (view.next.as_str(), view.settlement_issue.as_deref()),
            ("check_status", Some("conflict"))
        );
        assert!(view.card.is_some(), "the card outlives the challenge");
        round_trip(&p);
        let revision = p.revision();
        let again = p
            .settle(webhook("evt_2", failed, "2026-11-25T10:00:03Z"), at(4))
            .unwrap();
        assert_eq!(again, SettleOutcome::Duplicate);
        assert_eq!(p.revision(), revision);
        // The status API sides with the answer: confirmed, the conflict is over.
        let body = order_body(OTP, "CHARGED", "1499", "acme-ord_dotp_1001-1");
        assert_eq!(
            api(&mut p, &body, at(5)),
            Outcome::Confirmed(Status::Charged)
        );
        assert!(p.is_confirmed() && p.conflict().is_none());
        assert_eq!(p.view(at(5)).next, "finished");
    }

    #[test]
    fn hints_that_change_nothing() {
        let mut p = bank_page(None);
        let revision = p.revision();
        for (hint, want) in [
            (
                hook("evt_p", "PENDING_VBV", "1499", 1),
                SettleOutcome::NotFinal(Status::PendingVbv),
            ),
            (
                webhook(
                    "evt_o",
                    order_body(
                        BANK,
                        "AUTHENTICATION_FAILED",
                        "1499",
                        "acme-ord_dotp_1002-2",
                    ),
                    "2026-11-25T10:00:01Z",
                ),
                SettleOutcome::OtherTransaction,
            ),
        ] {
            assert_eq!(p.settle(hint, at(1)).unwrap(), want);
        }
        assert_eq!(p.revision(), revision);
        assert_eq!(
            p.settle(signed_return("ord_other", "CHARGED"), at(1)),
            Err(SettleError::OtherOrder {
                got: "ord_other".into(),
                expected: BANK.into()
            })
        );
        // An older webhook than the one applied changes nothing.
        p.settle(hook("evt_new", "CHARGED", "1499", 30), at(2))
            .unwrap();
        let stale = p
            .settle(hook("evt_old", "AUTHORIZATION_FAILED", "1499", 10), at(3))
            .unwrap();
        assert_eq!(stale, SettleOutcome::Stale);

        // Before the transaction is known, nothing can be settled by a hint.
        let start = start_request(BANK);
        let mut p = Payment::new(&start, 1, T0);
        assert_eq!(
            p.settle(hook("evt_1", "CHARGED", "1499", 1), at(1)),
            Err(SettleError::NotStarted)
        );
        let out = p.start(&config(), &start, T0).unwrap();
        assert_eq!(
            p.settle(hook("evt_1", "CHARGED", "1499", 1), at(1)),
            Ok(SettleOutcome::CheckStatus(Status::Charged))
        );
        p.handle_send_failure(out.token, SendFailure::MaybeSent, at(1))
            .unwrap();
        assert_eq!(
            p.settle(signed_return(BANK, "CHARGED"), at(2)),
            Ok(SettleOutcome::CheckStatus(Status::Charged))
        );
        // Hostile event ids are refused.
        let Settlement::Webhook(mut e) = hook("evt", "CHARGED", "1", 1) else {
            unreachable!()
        };
        for id in [String::new(), "x".repeat(300), "a\nb".into()] {
            e.id = id;
            assert_eq!(
                bank_page(None).settle(Settlement::Webhook(e.clone()), at(1)),
                Err(SettleError::BadEventId)
            );
        }
    }

    #[test]
    fn a_hint_abandons_the_request_in_flight() {
        let mut p = otp_page(None);
        let out = p
            .submit(&config(), &Otp::new("123456").unwrap(), at(1))
            .unwrap();
        let order = order_body(OTP, "CHARGED", "1499", "acme-ord_dotp_1001-1");
        let settled = p
            .settle(webhook("evt_1", order, "2026-11-25T10:00:02Z"), at(2))
            .unwrap();
        assert_eq!(settled, SettleOutcome::Approved(Status::Charged));
        assert_eq!(p.in_flight(), None);
        assert_eq!(
            p.handle_response(out.token, 200, CHARGED, at(3)),
            Err(InputError::AlreadyFinal { got: out.token })
        );
        assert_eq!(
            p.view(at(3)).card.and_then(|c| c.last_four).as_deref(),
            Some("1111")
        );
        round_trip(&p);
    }

    #[test]
    fn a_lost_confirmation_is_checked_again() {
        let mut p = bank_page(None);
        p.settle(hook("evt_1", "CHARGED", "1499", 1), at(1))
            .unwrap();
        let out = p.check_status(&config(), at(2)).unwrap();
        assert_eq!(
            p.handle_send_failure(out.token, SendFailure::MaybeSent, at(3)),
            Ok(Outcome::NotDelivered)
        );
        let out = p.check_status(&config(), at(4)).unwrap();
        assert_eq!(p.recover(time::Duration::seconds(30), at(5)), None);
        assert_eq!(
            p.recover(time::Duration::seconds(30), at(40)),
            Some(Outcome::NotDelivered)
        );
        assert_eq!(p.in_flight(), None);
        let _ = out;
        // An answer about another order is refused and leaves the check in flight.
        let out = p.check_status(&config(), at(45)).unwrap();
        let foreign = json!({"order_id": "ord_other", "status": "AUTHORIZATION_FAILED"});
        let revision = p.revision();
        assert!(matches!(
            p.handle_response(out.token, 200, foreign.to_string().as_bytes(), at(46)),
            Err(InputError::Foreign(_))
        ));
        assert_eq!((p.in_flight(), p.revision()), (Some(out.token), revision));
        p.handle_send_failure(out.token, SendFailure::NotSent, at(47))
            .unwrap();
        // Unreadable, order-less and pending answers leave it unconfirmed.
        for body in [
            json!("x"),
            json!({"status": "CHARGED"}),
            json!({"order_id": BANK, "status": "PENDING_VBV"}),
        ] {
            let outcome = api(&mut p, &body, at(50));
            assert!(
                matches!(outcome, Outcome::Rejected(_) | Outcome::Pending(_)),
                "{outcome:?}"
            );
            assert!(p.is_paid() && !p.is_confirmed());
        }
        round_trip(&p);
    }

    #[test]
    fn webhook_ids_stay_bounded() {
        let mut p = bank_page(None);
        p.settle(hook("evt_0", "CHARGED", "1499", 0), at(0))
            .unwrap();
        for i in 1..40 {
            let status = if i % 2 == 0 {
                "CHARGED"
            } else {
                "JUSPAY_DECLINED"
            };
            let out = p
                .settle(hook(&format!("evt_{i}"), status, "1499", 0), at(1))
                .unwrap();
            assert!(!out.is_terminal());
        }
        assert_eq!(p.settle.webhooks.len(), MAX_WEBHOOK_IDS);
        assert_eq!(p.settle.webhooks.back().map(String::as_str), Some("evt_39"));
        round_trip(&p);
    }

    #[test]
    fn the_persisted_form() {
        // A payment that never needed settlement state has none; a started one knows
        // its transaction.
        let start = start_request(BANK);
        let json = serde_json::to_value(Payment::new(&start, 1, T0)).unwrap();
        assert!(json.get("settle").is_none(), "{json}");
        let json = serde_json::to_value(bank_page(None)).unwrap();
        assert_eq!(json["settle"], json!({"txn_id": "acme-ord_dotp_1002-1"}));
        // An expected amount is persisted; refused once started.
        let e = ExpectedAmount::new(Amount::parse("10").unwrap(), "inr").unwrap();
        let mut fresh = Payment::new(&start, 1, T0);
        fresh.set_expected_amount(e.clone()).unwrap();
        assert_eq!(fresh.revision(), 2);
        fresh.set_expected_amount(e.clone()).unwrap();
        assert_eq!(fresh.revision(), 2, "the same amount changes nothing");
        let json = serde_json::to_value(&fresh).unwrap();
        assert_eq!(
            json["settle"],
            json!({"expected": {"amount": "10", "currency": "INR"}})
        );
        let mut p = bank_page(None);
        assert_eq!(p.set_expected_amount(e), Err(Refusal::AlreadyStarted));

        // States no payment reaches are refused on load.
        p.settle(hook("evt_1", "CHARGED", "1499", 1), at(1))
            .unwrap();
        let good = serde_json::to_value(&p).unwrap();
        for (patch, rule) in [
            (
                json!({"stage": {"stage": "new"}}),
                "settlement state outside a final stage",
            ),
            (
                json!({"settle": {"by": "order_status", "unconfirmed": true}}),
                "unconfirmed",
            ),
            (
                json!({"settle": {"by": "webhook", "amount_unchecked": true}}),
                "amount check",
            ),
            (
                json!({"settle": {"webhooks": vec!["e"; 17]}}),
                "webhook ids",
            ),
            (json!({"settle": {"webhooks": ["a\u{7}"]}}), "webhook ids"),
            (json!({"settle": {"txn_id": ""}}), "transaction id"),
        ] {
            let mut bad = good.clone();
            for (k, v) in patch.as_object().unwrap() {
                bad[k] = v.clone();
            }
            let err = serde_json::from_value::<Payment>(bad)
                .unwrap_err()
                .to_string();
            assert!(err.contains(rule), "{err} (wanted {rule})");
        }
    }
}
