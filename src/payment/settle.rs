//! One settled status from three sources: the payment's own answers and the order status
//! API, the browser's verified return URL, and authenticated webhooks.
//!
//! The rules (`docs/settlement.md`, "Precedence"):
//!
//! * **The bank's own word settles.** An answer to this attempt's request, the order status
//!   API (its `txn_id`, when present, must be this attempt's), or a webhook bound to this
//!   attempt by its `txn_id`. A verified return URL (it names the order, not the attempt)
//!   or a webhook without a `txn_id` is a reason to confirm, never the verdict: the payment
//!   moves to *confirming* (`confirming.rs`) and the order status decides.
//! * **Paid means confirmed.** Only a final payment is paid, and a payment is final only by
//!   the bank's own word, with the amount checked when one is expected.
//! * **One terminal outcome.** Whichever source settles the payment first reports the one
//!   terminal outcome (`Approved`, `Declined` or `IntegrityFailed`); nothing reports a
//!   second one. A hint contradicting it sends it to confirming; the order status then
//!   confirms it (`Outcome::Confirmed`) or overturns it (`Outcome::Disagreement`).
//! * **Monotonic and idempotent.** A webhook seen before, an older one, one about another
//!   transaction, one that says nothing final, or any hint while a request is in flight
//!   changes nothing and says so.
//! * **The amount.** With an expected amount, a success counts as paid only when an order
//!   body (the order status API's, or a bound webhook's) shows that amount and currency; a
//!   mismatch is a terminal `IntegrityFailed` (final, not paid); a success from an answer
//!   without an amount is confirming until the order status shows it.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Confirming, InFlight, Payment, Resume, Stage, Why};
use crate::card::CardSummary;
use crate::clock::Stamp;
use crate::error::ResponseError;
use crate::outcome::{Outcome, Refusal, Uncertainty};
use crate::settle::{
    loggable, Amount, Disagreement, ExpectedAmount, IntegrityError, OrderSnapshot,
    SettlementSource, VerifiedReturn, WebhookEvent, MAX_EVENT_ID,
};
use crate::status::Status;
use crate::token::RequestKind;

/// How many webhook ids a payment remembers (the most recent ones it applied).
const MAX_WEBHOOK_IDS: usize = 16;

/// How many earlier attempts' transactions a payment remembers.
const MAX_EARLIER: usize = 8;

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
/// `Approved`, `Declined` and `IntegrityFailed` are terminal: a webhook bound to this
/// attempt's transaction settled the payment, and this is the one terminal outcome the
/// payment reports. `Confirming` and `Conflict` moved the payment to confirming (check the
/// order status: `Driver::settle` does). Every other outcome changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettleOutcome {
    /// Settled by a webhook bound to this attempt: paid (for the expected amount, if one
    /// is set). Terminal.
    Approved(Status),
    /// Settled by a webhook bound to this attempt: failed. Terminal.
    Declined(Status),
    /// Settled by a webhook bound to this attempt, but the order's amount or currency is
    /// not the expected one (or it has none): final and **not paid**; hold it for review.
    /// Terminal.
    IntegrityFailed(Box<IntegrityError>),
    /// A return URL or a webhook without a `txn_id` says final: a reason to confirm, not
    /// the verdict. The payment is confirming ([`NextStep::Confirming`]); the OTP page
    /// stays usable; check the order status, which decides.
    ///
    /// [`NextStep::Confirming`]: crate::NextStep::Confirming
    Confirming(Status),
    /// The payment is already settled the same way: nothing changed.
    Agrees(Status),
    /// The hint contradicts how the payment was settled. The payment is confirming now
    /// and is not paid until the order status decides ([`Payment::check_status`]).
    Conflict(Box<Disagreement>),
    /// The payment does not know its transaction yet (its start is in flight, or its
    /// answer was lost), so a hint cannot settle it: nothing changed; check the order
    /// status.
    CheckStatus(Status),
    /// A request is in flight: nothing changed (its answer, or the order status after it,
    /// will tell).
    InFlight,
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
    /// A stable snake_case code: `approved`, `declined`, `integrity_failure`,
    /// `confirming`, `agrees`, `conflict`, `check_status`, `in_flight`, `not_final`,
    /// `duplicate`, `stale`, `other_transaction`. Codes never change meaning; new ones may
    /// be added.
    pub fn code(&self) -> &'static str {
        match self {
            SettleOutcome::Approved(_) => "approved",
            SettleOutcome::Declined(_) => "declined",
            SettleOutcome::IntegrityFailed(_) => "integrity_failure",
            SettleOutcome::Confirming(_) => "confirming",
            SettleOutcome::Agrees(_) => "agrees",
            SettleOutcome::Conflict(_) => "conflict",
            SettleOutcome::CheckStatus(_) => "check_status",
            SettleOutcome::InFlight => "in_flight",
            SettleOutcome::NotFinal(_) => "not_final",
            SettleOutcome::Duplicate => "duplicate",
            SettleOutcome::Stale => "stale",
            SettleOutcome::OtherTransaction => "other_transaction",
        }
    }

    /// True when a bound webhook settled the payment: the one terminal outcome it reports.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            SettleOutcome::Approved(_)
                | SettleOutcome::Declined(_)
                | SettleOutcome::IntegrityFailed(_)
        )
    }

    /// True when the payment now needs the order status: it is confirming.
    pub fn needs_status_check(&self) -> bool {
        matches!(
            self,
            SettleOutcome::Confirming(_)
                | SettleOutcome::Conflict(_)
                | SettleOutcome::CheckStatus(_)
        )
    }
}

impl fmt::Display for SettleOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettleOutcome::Approved(s) => write!(f, "payment approved ({s})"),
            SettleOutcome::Declined(s) => write!(f, "payment declined ({s})"),
            SettleOutcome::IntegrityFailed(e) => write!(f, "payment held for review: {e}"),
            SettleOutcome::Confirming(s) => {
                write!(f, "reported {s}; confirming with the order status")
            }
            SettleOutcome::Agrees(s) => write!(f, "already settled as {s}"),
            SettleOutcome::Conflict(d) => {
                write!(f, "sources disagree: {d}; confirming with the order status")
            }
            SettleOutcome::CheckStatus(s) => {
                write!(
                    f,
                    "says {s}, but the transaction is not known yet; check the order status"
                )
            }
            SettleOutcome::InFlight => {
                f.write_str("a request is in flight; its answer or the order status will tell")
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

impl SettleError {
    /// A stable snake_case code: `other_order` (the refusal's word), `not_started`,
    /// `bad_event_id`. Codes never change meaning; new ones may be added.
    pub fn code(&self) -> &'static str {
        match self {
            SettleError::OtherOrder { .. } => "other_order",
            SettleError::NotStarted => "not_started",
            SettleError::BadEventId => "bad_event_id",
        }
    }
}

/// What a payment knows about its settlement besides its stage. Every field is optional in
/// the persisted form, so a record that never needed one has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct SettleState {
    /// The amount and currency a success must show.
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<ExpectedAmount>,
    /// The `txn_id` of this attempt's transaction, from its start answer (or, when that
    /// was lost, from the order status).
    #[serde(skip_serializing_if = "Option::is_none")]
    txn_id: Option<String>,
    /// The transactions of the attempts before this one on the order (the newest last).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    earlier: Vec<String>,
    /// Who settled it, once final.
    #[serde(skip_serializing_if = "Option::is_none")]
    by: Option<SettlementSource>,
    /// The settlement failed the amount check: what the order showed.
    #[serde(skip_serializing_if = "Option::is_none")]
    integrity: Option<Found>,
    /// The last time the order status API overturned a settlement.
    #[serde(skip_serializing_if = "Option::is_none")]
    disagreement: Option<Disagreement>,
    /// The ids of the last webhooks applied, oldest first.
    #[serde(skip_serializing_if = "VecDeque::is_empty")]
    webhooks: VecDeque<String>,
    /// The `date_created` of the newest webhook applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    latest_event: Option<Stamp>,
    /// The card, kept when the OTP challenge gave way to another stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    card: Option<CardSummary>,
    /// Read from records of format 1 only (never written): what is now the
    /// [`Confirming`] stage. See [`Payment::migrate`].
    #[serde(skip_serializing)]
    unconfirmed: bool,
    #[serde(skip_serializing)]
    amount_unchecked: bool,
    #[serde(skip_serializing)]
    conflict: Option<Disagreement>,
    #[serde(skip_serializing)]
    check: Option<InFlight>,
}

/// The amount and currency a settlement showed, when they failed the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Found {
    amount: Option<Amount>,
    currency: Option<String>,
}

impl SettleState {
    /// Nothing to persist.
    pub(super) fn is_plain(&self) -> bool {
        self == &SettleState::default()
    }

    pub(super) fn card(&self) -> Option<CardSummary> {
        self.card.clone()
    }

    /// This attempt's transaction, once known.
    pub(super) fn txn_id(&self) -> Option<String> {
        self.txn_id.clone()
    }

    /// Learns this attempt's transaction from an order body, when it is not known yet.
    /// False when the body names an earlier attempt's transaction (this attempt's start
    /// never reached the bank).
    pub(super) fn learn_txn(&mut self, http_status: u16, body: &[u8]) -> bool {
        if self.txn_id.is_some() {
            return true;
        }
        let named = OrderSnapshot::from_order_status(http_status, body)
            .ok()
            .and_then(|o| o.txn_id)
            .filter(|t| valid_id(t, MAX_TXN_ID));
        if named.as_ref().is_some_and(|t| self.earlier.contains(t)) {
            return false;
        }
        self.txn_id = named;
        true
    }

    /// Sets the expected amount of a new payment.
    pub(super) fn expect(&mut self, expected: ExpectedAmount) {
        self.expected = Some(expected);
    }

    /// The state a next attempt starts from: the expected amount, and the transactions of
    /// `previous` and of the attempts before it (the last [`MAX_EARLIER`]).
    pub(super) fn after(&mut self, previous: &SettleState) {
        self.expected.clone_from(&previous.expected);
        self.earlier = previous.earlier.clone();
        self.earlier.extend(previous.txn_id.clone());
        let excess = self.earlier.len().saturating_sub(MAX_EARLIER);
        self.earlier.drain(..excess);
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

fn valid_id(id: &str, max: usize) -> bool {
    !id.is_empty() && id.len() <= max && !id.chars().any(char::is_control)
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
    /// The terminal outcome of a hint bound to this attempt.
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
    /// webhook. A hint is evidence, not the verdict, unless it is bound to this attempt:
    ///
    /// * a **webhook whose `txn_id` is this attempt's** settles an open payment (the one
    ///   terminal outcome: `Approved`, `Declined` or `IntegrityFailed`, the amount checked
    ///   against the order it carries);
    /// * a **return URL** (it names the order, not the attempt: the back button replays an
    ///   earlier attempt's, correctly signed) or a **webhook without a `txn_id`** moves an
    ///   open payment to *confirming* ([`SettleOutcome::Confirming`], next step
    ///   [`NextStep::Confirming`](crate::NextStep::Confirming)): the OTP page stays usable, and
    ///   [`check_status`](Self::check_status) decides, going back to the OTP page or the
    ///   bank page when the order is not final;
    /// * a webhook naming **another transaction** changes nothing
    ///   ([`SettleOutcome::OtherTransaction`]), and so does one seen before, an older one,
    ///   one that says nothing final, and any hint while a request is in flight (its
    ///   answer or the order status will tell: [`SettleOutcome::InFlight`]);
    /// * a hint that **contradicts** a settled payment sends it to confirming too
    ///   ([`SettleOutcome::Conflict`]): the order status confirms or overturns it.
    ///
    /// Store the payment afterwards, with compare-and-swap, when its
    /// [`revision`](Self::revision) moved (`docs/concurrency.md`), or let
    /// `Driver::settle` do all of it; answer a webhook `200` whatever the outcome, and a
    /// [`SettleError`] too (it is not this payment's).
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
    /// // ... and comes back with signed parameters: a reason to confirm, not the verdict.
    /// let key = ResponseKey::new("92206A0A4A75499C9B11206C2B3B9A53")?;
    /// # let query = "order_id=ord_1&status=CHARGED&status_id=21&signature=g%252F3qqSQNepQvlFQ8X7Y%252F%252BLZ4%252BWg0VLQ8izZSvOwDSaU%253D&signature_algorithm=HMAC-SHA256";
    /// let verified = ReturnParams::from_query(query)?.verify(&key)?;
    /// let outcome = payment.settle(Settlement::ReturnUrl(verified), now)?;
    /// assert_eq!(outcome, SettleOutcome::Confirming(Status::Charged));
    /// assert!(!payment.is_paid());
    /// assert_eq!(payment.view(now).next, "confirming");
    /// // The order status decides.
    /// let check = payment.check_status(&config, now)?;
    /// let body = br#"{"order_id":"ord_1","txn_id":"acme-ord_1-1","status":"CHARGED"}"#;
    /// assert_eq!(payment.handle_response(check.token, 200, body, now)?.code(), "approved");
    /// assert!(payment.is_paid());
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
            if !valid_id(&e.id, MAX_EVENT_ID) {
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
        // Nothing changes under a request in flight: its token stays valid, and its
        // answer (or the order status after it) tells.
        if self.in_flight().is_some() {
            return Ok(SettleOutcome::InFlight);
        }
        if !status.is_final() {
            return Ok(SettleOutcome::NotFinal(status));
        }
        let bound =
            event.filter(|e| e.order.txn_id.is_some() && e.order.txn_id == self.settle.txn_id);
        if matches!(self.stage, Stage::Starting { .. } | Stage::Unknown { .. }) {
            return Ok(SettleOutcome::CheckStatus(status));
        }
        if let Some(held) = self.settled_status() {
            return Ok(self.contradict(source, status, held, event, now));
        }
        if let Stage::Confirming(c) = &self.stage {
            if bound.is_none() || matches!(c.resume, Resume::Settled { .. }) {
                return Ok(SettleOutcome::Confirming(status));
            }
        }
        if let Some(event) = bound {
            let verdict = self.verdict(&status, Some(&event.order));
            self.keep_card();
            self.stage = Stage::Final {
                status: status.clone(),
            };
            self.touch(now);
            self.settle.by = Some(source);
            self.settle.integrity = verdict.found();
            self.settle.note(Some(event));
            return Ok(verdict.settled(status));
        }
        let resume = match std::mem::replace(&mut self.stage, Stage::New) {
            Stage::Challenge { challenge } => Resume::Otp { challenge },
            Stage::BankPage {
                url,
                browser_away,
                status,
                ..
            } => Resume::BankPage {
                url,
                browser_away,
                status,
            },
            other => {
                // Every other stage returned above.
                self.stage = other;
                return Ok(SettleOutcome::CheckStatus(status));
            }
        };
        self.stage = Stage::Confirming(Box::new(Confirming {
            reported: status.clone(),
            by: source,
            why: Why::Hint,
            check: None,
            resume,
        }));
        self.touch(now);
        self.settle.note(event);
        Ok(SettleOutcome::Confirming(status))
    }

    /// The status of a settled payment (final, not confirming).
    fn settled_status(&self) -> Option<Status> {
        self.is_final().then(|| self.status())
    }

    /// A final hint on a settled payment: it agrees, or the order status must decide.
    fn contradict(
        &mut self,
        source: SettlementSource,
        said: Status,
        held: Status,
        event: Option<&WebhookEvent>,
        now: OffsetDateTime,
    ) -> SettleOutcome {
        let verdict = self.verdict(&said, event.map(|e| &e.order));
        let paid = self.is_paid();
        let agrees = said == held
            && (verdict == Verdict::AmountUnknown || (verdict == Verdict::Paid) == paid);
        if agrees {
            return SettleOutcome::Agrees(held);
        }
        let disagreement = Disagreement {
            source,
            said: said.clone(),
            status: held.clone(),
            was_paid: paid,
            paid,
        };
        self.keep_card();
        self.stage = Stage::Confirming(Box::new(Confirming {
            reported: said,
            by: source,
            why: Why::Conflict {
                disagreement: disagreement.clone(),
            },
            check: None,
            resume: Resume::Settled { status: held },
        }));
        self.touch(now);
        self.settle.note(event);
        SettleOutcome::Conflict(Box::new(disagreement))
    }

    /// The OTP challenge gives way to another stage: its card is kept for the view.
    fn keep_card(&mut self) {
        if let Some(challenge) = self.challenge() {
            let card = challenge.card().clone();
            self.settle.card = Some(card).filter(|c| c != &CardSummary::default());
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
    /// is the expected one. A success without the expected amount is not the verdict: the
    /// payment is confirming until the order status shows the amount.
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
                .filter(|t| valid_id(t, MAX_TXN_ID));
        }
        if !outcome.is_terminal() {
            return outcome;
        }
        let source = match kind {
            RequestKind::OrderStatus => SettlementSource::OrderStatus,
            _ => SettlementSource::Answer,
        };
        self.settle.by = Some(source);
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
                self.keep_card();
                self.settle.by = None;
                self.stage = Stage::Confirming(Box::new(Confirming {
                    reported: status.clone(),
                    by: SettlementSource::Answer,
                    why: Why::AmountUnchecked,
                    check: None,
                    resume: Resume::Nothing,
                }));
                Outcome::CheckStatus(Uncertainty::AmountUnchecked(status))
            }
            Verdict::Integrity(e) => {
                self.settle.integrity = Verdict::Integrity(e.clone()).found();
                Outcome::IntegrityFailed(Box::new(e))
            }
            Verdict::Paid | Verdict::NotPaid => outcome,
        }
    }

    /// The answer to the status check made while confirming (outside the OTP page): the
    /// order status API decides. `status` is the answer read, already bound to this
    /// attempt's transaction.
    pub(super) fn on_confirmation(
        &mut self,
        status: Result<Status, ResponseError>,
        http_status: u16,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Outcome {
        self.touch(now);
        self.end_check();
        let api = match status {
            Ok(status) => status,
            Err(ResponseError::Foreign(e)) if e.is_other_transaction() => {
                // The order's latest transaction is another attempt's: what was reported
                // was about that one. The confirming is over: back where it was.
                self.resume_after_other_transaction();
                return Outcome::rejected(ResponseError::Foreign(e));
            }
            Err(e) => return Outcome::rejected(e),
        };
        let Stage::Confirming(c) = &mut self.stage else {
            return Outcome::Pending(api);
        };
        if !api.is_final() {
            // Not final yet: back where it was, or still confirming.
            if let Resume::BankPage {
                url, browser_away, ..
            } = &c.resume
            {
                self.stage = Stage::BankPage {
                    url: url.clone(),
                    browser_away: *browser_away,
                    status: api.clone(),
                    check: None,
                };
            }
            return Outcome::Pending(api);
        }
        let Resume::Settled { status: held } = c.resume.clone() else {
            // Nothing terminal was reported yet: this is the one terminal outcome (the
            // amount is checked after, as for any order status).
            return self.finish(api);
        };
        let order = OrderSnapshot::from_order_status(http_status, body).ok();
        let verdict = match (self.verdict(&api, order.as_ref()), &self.settle.expected) {
            // The order status always shows the order: no amount is a failed check.
            (Verdict::AmountUnknown, Some(expected)) => Verdict::Integrity(IntegrityError {
                expected: expected.clone(),
                found_amount: None,
                found_currency: None,
            }),
            (v, _) => v,
        };
        let was_paid = held.is_success() && self.settle.integrity.is_none();
        let api_paid = verdict == Verdict::Paid;
        self.stage = Stage::Final {
            status: api.clone(),
        };
        self.settle.integrity = verdict.found();
        if held == api && was_paid == api_paid {
            return Outcome::Confirmed(api);
        }
        let d = Disagreement {
            source: SettlementSource::OrderStatus,
            said: held,
            status: api,
            was_paid,
            paid: api_paid,
        };
        self.settle.by = Some(SettlementSource::OrderStatus);
        self.settle.disagreement = Some(d.clone());
        Outcome::Disagreement(Box::new(d))
    }

    /// Confirming, when the order status names another transaction of the order: the hint
    /// was about that transaction, so the payment goes back where it was (a settled one is
    /// settled as before). A success without the amount has nowhere to go back to: it keeps
    /// confirming.
    fn resume_after_other_transaction(&mut self) {
        let Stage::Confirming(c) = &mut self.stage else {
            return;
        };
        match std::mem::replace(&mut c.resume, Resume::Nothing) {
            Resume::Settled { status } => self.stage = Stage::Final { status },
            Resume::BankPage {
                url,
                browser_away,
                status,
            } => {
                self.stage = Stage::BankPage {
                    url,
                    browser_away,
                    status,
                    check: None,
                }
            }
            Resume::Otp { challenge } => self.stage = Stage::Challenge { challenge },
            Resume::Nothing => {}
        }
    }

    /// Reads a record of format 1, whose settlement flags are now the confirming stage.
    pub(super) fn migrate(&mut self) -> Result<(), &'static str> {
        let s = &mut self.settle;
        let legacy = (
            std::mem::take(&mut s.unconfirmed),
            std::mem::take(&mut s.amount_unchecked),
            s.conflict.take(),
            s.check.take(),
        );
        let (unconfirmed, amount_unchecked, conflict, check) = legacy;
        if !unconfirmed && !amount_unchecked && conflict.is_none() && check.is_none() {
            return Ok(());
        }
        let Stage::Final { status } = &self.stage else {
            return Err("settlement state outside a final stage");
        };
        let status = status.clone();
        let by = self.settle.by.unwrap_or(SettlementSource::Answer);
        let confirming = if amount_unchecked {
            Confirming {
                reported: status,
                by: SettlementSource::Answer,
                why: Why::AmountUnchecked,
                check,
                resume: Resume::Nothing,
            }
        } else {
            let disagreement = conflict.unwrap_or(Disagreement {
                source: by,
                said: status.clone(),
                status: status.clone(),
                was_paid: status.is_success(),
                paid: status.is_success(),
            });
            Confirming {
                reported: disagreement.said.clone(),
                by: disagreement.source,
                why: Why::Conflict { disagreement },
                check,
                resume: Resume::Settled { status },
            }
        };
        if !unconfirmed
            && !amount_unchecked
            && confirming.check.is_some()
            && !matches!(confirming.why, Why::Conflict { .. })
        {
            return Err("a confirmation in flight that nothing needs");
        }
        self.stage = Stage::Confirming(Box::new(confirming));
        Ok(())
    }

    // ----- Getters ----------------------------------------------------------------------

    /// True only once the payment is final (settled by the bank's own word: see
    /// [`is_final`](Self::is_final)), succeeded (`CHARGED` or `AUTHORIZED`), and, if an
    /// expected amount is set, an order body showed that amount and currency. Never true
    /// while the bank could still say otherwise: not while confirming a return URL or a
    /// webhook, nor while a hint contradicts the settlement.
    pub fn is_paid(&self) -> bool {
        self.is_final() && self.status().is_success() && self.settle.integrity.is_none()
    }

    /// The same as [`is_final`](Self::is_final): every final payment was settled by the
    /// bank's own word (the payment's answers, the order status API, or a webhook bound to
    /// this attempt), so it is confirmed. Kept for callers that checked
    /// `is_paid() && is_confirmed()`.
    pub fn is_confirmed(&self) -> bool {
        self.is_final()
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

    /// The last time the order status API overturned a settlement.
    pub fn disagreement(&self) -> Option<&Disagreement> {
        self.settle.disagreement.as_ref()
    }

    /// A return URL or webhook that contradicts the settlement, while the payment is
    /// confirming it.
    pub fn conflict(&self) -> Option<&Disagreement> {
        match &self.stage {
            Stage::Confirming(c) => match &c.why {
                Why::Conflict { disagreement } => Some(disagreement),
                _ => None,
            },
            _ => None,
        }
    }

    /// The view's `settlement_issue` code.
    pub(super) fn settlement_issue(&self) -> Option<&'static str> {
        if let Stage::Confirming(c) = &self.stage {
            if let Some(issue) = c.issue() {
                return Some(issue);
            }
        }
        if self.settle.integrity.is_some() {
            Some("integrity_failure")
        } else if self.settle.disagreement.is_some() {
            Some("disagreement")
        } else {
            None
        }
    }

    /// Words for the view when the settlement, not the next step, says what to show.
    pub(super) fn settlement_message(&self) -> Option<String> {
        if self.in_flight().is_some() {
            return None;
        }
        match self.settlement_issue()? {
            "integrity_failure" => {
                Some("the payment could not be matched to the order; it is held for review".into())
            }
            _ => None,
        }
    }

    /// The first rule of the settlement state that this record breaks, if any.
    pub(super) fn settle_inconsistency(&self) -> Option<&'static str> {
        let s = &self.settle;
        if s.webhooks.len() > MAX_WEBHOOK_IDS
            || s.webhooks.iter().any(|id| !valid_id(id, MAX_EVENT_ID))
        {
            return Some("too many or malformed webhook ids");
        }
        if s.txn_id.as_ref().is_some_and(|t| !valid_id(t, MAX_TXN_ID))
            || s.earlier.len() > MAX_EARLIER
            || s.earlier.iter().any(|t| !valid_id(t, MAX_TXN_ID))
        {
            return Some("a malformed transaction id");
        }
        let settled = matches!(self.stage, Stage::Final { .. } | Stage::Confirming(_));
        if !settled && s.card.is_some() {
            return Some("a kept card while the OTP page is there");
        }
        if s.unconfirmed || s.amount_unchecked || s.conflict.is_some() || s.check.is_some() {
            return Some("settlement flags of format 1 in a record of format 2");
        }
        // A final OTP page is settled too: the challenge itself holds the final status.
        let success = self.status().is_success();
        let settled = settled || self.is_final();
        if s.integrity.is_some() && (s.expected.is_none() || !success || !settled) {
            return Some("an amount check without an expected amount or a success");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::otp::Otp;
    use crate::settle::ResponseKey;
    use crate::view::NextStep;
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

    /// A webhook without a `txn_id`: bound to no attempt.
    fn unbound_hook(id: &str, status: &str) -> Settlement {
        webhook(
            id,
            json!({"order_id": BANK, "status": status, "amount": "1499", "currency": "INR"}),
            "2026-11-25T10:00:01Z",
        )
    }

    fn submit(p: &mut Payment, now: OffsetDateTime) -> crate::Outgoing {
        p.submit(&config(), &Otp::new("123456").unwrap(), now)
            .unwrap()
    }

    #[test]
    fn a_bound_webhook_settles_and_is_paid() {
        let mut p = bank_page(None);
        p.go_to_bank_page(at(1)).unwrap();
        let out = p
            .settle(hook("evt_1", "CHARGED", "1499", 5), at(5))
            .unwrap();
        assert_eq!(out, SettleOutcome::Approved(Status::Charged));
        assert!(out.is_terminal());
        assert!(p.is_final() && p.is_paid() && p.is_confirmed());
        assert_eq!(p.settled_by(), Some(SettlementSource::Webhook));
        let view = p.view(at(5));
        assert_eq!(
            (view.next.as_str(), view.paid, view.confirmed),
            ("finished", true, true)
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
        for refused in [
            p.go_to_bank_page(at(7)).map(drop),
            p.check_status(&config(), at(7)).map(drop),
        ] {
            assert_eq!(refused, Err(Refusal::AlreadyFinal(Status::Charged)));
        }
    }

    #[test]
    fn a_return_or_an_unbound_webhook_is_a_reason_to_confirm() {
        // (payment, hint, the order status, what it settles as, where it goes back to)
        type Make = fn(Option<&str>) -> Payment;
        let cases: [(Make, Settlement, &str, &str, &str); 6] = [
            (
                bank_page,
                signed_return(BANK, "CHARGED"),
                "CHARGED",
                "approved",
                "",
            ),
            (
                bank_page,
                signed_return(BANK, "CHARGED"),
                "AUTHENTICATION_FAILED",
                "declined",
                "",
            ),
            (
                bank_page,
                unbound_hook("e1", "CHARGED"),
                "PENDING_VBV",
                "pending",
                "bank_page",
            ),
            (
                otp_page,
                signed_return(OTP, "AUTHENTICATION_FAILED"),
                "PENDING_VBV",
                "pending",
                "enter_otp",
            ),
            (
                otp_page,
                signed_return(OTP, "CHARGED"),
                "CHARGED",
                "approved",
                "",
            ),
            (
                otp_page,
                signed_return(OTP, "JUSPAY_DECLINED"),
                "AUTHORIZING",
                "pending",
                "check_status",
            ),
        ];
        for (make, hint, api_status, code, back) in cases {
            let mut p = make(None);
            let order = p.order_id().to_owned();
            let said = hint.status().clone();
            let out = p.settle(hint, at(1)).unwrap();
            assert_eq!(out, SettleOutcome::Confirming(said.clone()));
            assert!(!out.is_terminal() && out.needs_status_check());
            assert!(!p.is_final() && !p.is_paid());
            assert_ne!(p.status(), said, "a hint is not the status");
            let view = p.view(at(1));
            assert_eq!((view.next.as_str(), view.paid), ("confirming", false));
            if order == OTP {
                assert!(view.can_submit, "the OTP page stays usable");
            }
            round_trip(&p);
            let txn = format!("acme-{order}-1");
            let body = order_body(&order, api_status, "1499", &txn);
            let outcome = api(&mut p, &body, at(2));
            assert_eq!(outcome.code(), code, "{api_status} after {said}");
            assert_eq!(p.is_paid(), code == "approved");
            if !back.is_empty() {
                assert_eq!(p.view(at(2)).next, back);
            }
            round_trip(&p);
        }
    }

    #[test]
    fn the_otp_page_works_while_confirming() {
        // A failed return replayed from an earlier attempt: the bank still waits for the OTP.
        let mut p = otp_page(None);
        p.settle(signed_return(OTP, "AUTHENTICATION_FAILED"), at(1))
            .unwrap();
        let out = submit(&mut p, at(2));
        // A hint while the submit is out changes nothing: the answer will tell.
        let revision = p.revision();
        assert_eq!(
            p.settle(signed_return(OTP, "CHARGED"), at(2)),
            Ok(SettleOutcome::InFlight)
        );
        assert_eq!(p.revision(), revision);
        round_trip(&p);
        let outcome = p.handle_response(out.token, 200, CHARGED, at(3)).unwrap();
        assert_eq!(outcome, Outcome::Approved(Status::Charged));
        assert!(p.is_paid());
        assert_eq!(p.settled_by(), Some(SettlementSource::Answer));
        round_trip(&p);
    }

    #[test]
    fn an_order_status_about_another_transaction_is_not_this_attempts() {
        for mut p in [bank_page(None), otp_page(None)] {
            let order = p.order_id().to_owned();
            let revision = p.revision();
            let body = order_body(&order, "CHARGED", "1499", "acme-other-2");
            let outcome = api(&mut p, &body, at(1));
            let Outcome::Rejected(ResponseError::Foreign(e)) = &outcome else {
                panic!("{outcome:?}")
            };
            assert!(e.is_other_transaction());
            assert!(!p.is_final() && p.in_flight().is_none());
            assert_eq!(p.revision(), revision + 2, "the check was made and is over");
            round_trip(&p);
        }
    }

    #[test]
    fn a_hint_during_the_confirming_check_changes_nothing() {
        // The high-severity bug: a webhook during the confirming status check moved the
        // revision under the token in flight, and the stored row no longer loaded.
        let mut p = otp_page(Some("1499"));
        let out = submit(&mut p, at(1));
        let outcome = p.handle_response(out.token, 200, CHARGED, at(2)).unwrap();
        assert_eq!(
            outcome,
            Outcome::CheckStatus(Uncertainty::AmountUnchecked(Status::Charged))
        );
        let check = p.check_status(&config(), at(3)).unwrap();
        let revision = p.revision();
        let order = order_body(OTP, "CHARGED", "1499", "acme-ord_dotp_1001-1");
        for hint in [
            webhook("evt_1", order.clone(), "2026-11-25T10:00:03Z"),
            webhook(
                "evt_2",
                order_body(OTP, "AUTHORIZATION_FAILED", "1499", "acme-ord_dotp_1001-1"),
                "2026-11-25T10:00:04Z",
            ),
            signed_return(OTP, "JUSPAY_DECLINED"),
        ] {
            assert_eq!(p.settle(hint, at(4)), Ok(SettleOutcome::InFlight));
            assert_eq!(p.revision(), revision);
            round_trip(&p);
        }
        let outcome = p
            .handle_response(check.token, 200, order.to_string().as_bytes(), at(5))
            .unwrap();
        assert_eq!(outcome, Outcome::Approved(Status::Charged));
        assert!(p.is_paid());
        round_trip(&p);
    }

    #[test]
    fn amounts_decide_what_is_paid() {
        // A bound webhook for the wrong amount: final, not paid, never reported approved.
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

        // A return carries no amount: confirming; the order status shows it.
        let mut p = bank_page(Some("1499"));
        let out = p.settle(signed_return(BANK, "CHARGED"), at(1)).unwrap();
        assert_eq!(out, SettleOutcome::Confirming(Status::Charged));
        let right = order_body(BANK, "CHARGED", "1499", "acme-ord_dotp_1002-1");
        assert_eq!(api(&mut p, &right, at(2)).code(), "approved");
        assert!(p.is_paid());
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
            let out = submit(&mut p, at(1));
            let outcome = p.handle_response(out.token, 200, CHARGED, at(2)).unwrap();
            assert_eq!(
                outcome,
                Outcome::CheckStatus(Uncertainty::AmountUnchecked(Status::Charged))
            );
            assert!(!outcome.is_terminal());
            assert!(!p.is_final() && !p.is_paid() && p.status() == Status::Charged);
            let view = p.view(at(2));
            assert_eq!(view.next, "confirming");
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
    fn an_integrity_failure_on_the_otp_page_loads_again() {
        // The order status, asked from the OTP page (there the challenge settles, not a
        // `Final` stage), shows another amount: final, not paid, and the record loads.
        // It did not: the load check took only a `Final` stage as settled.
        let mut p = otp_page(Some("1499"));
        let body = order_body(OTP, "CHARGED", "1.00", "acme-ord_dotp_1001-1");
        let outcome = api(&mut p, &body, at(1));
        assert_eq!(outcome.code(), "integrity_failure");
        assert!(p.is_final() && !p.is_paid());
        assert!(p.integrity_failure().is_some());
        round_trip(&p);
    }

    #[test]
    fn a_bound_webhook_can_show_the_amount_an_answer_did_not() {
        let mut p = otp_page(Some("1499"));
        let out = submit(&mut p, at(1));
        p.handle_response(out.token, 200, CHARGED, at(2)).unwrap();
        let order = order_body(OTP, "CHARGED", "1499.0", "acme-ord_dotp_1001-1");
        let out = p
            .settle(webhook("evt_9", order, "2026-11-25T10:00:03Z"), at(3))
            .unwrap();
        assert_eq!(out, SettleOutcome::Approved(Status::Charged));
        assert!(p.is_paid() && p.is_confirmed());
        round_trip(&p);
    }

    #[test]
    fn a_contradicting_hint_asks_the_status_api() {
        for (api_status, code, paid) in [
            ("CHARGED", "confirmed", true),
            ("AUTHENTICATION_FAILED", "disagreement", false),
        ] {
            let mut p = otp_page(None);
            let out = submit(&mut p, at(1));
            let outcome = p.handle_response(out.token, 200, CHARGED, at(2)).unwrap();
            assert_eq!(outcome, Outcome::Approved(Status::Charged));
            assert!(p.is_paid());
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
            assert!(
                !p.is_paid(),
                "not paid while the bank could still say otherwise"
            );
            assert_eq!(p.conflict(), Some(&**d));
            let view = p.view(at(3));
            assert_eq!(
                (view.next.as_str(), view.settlement_issue.as_deref()),
                ("confirming", Some("conflict"))
            );
            assert!(view.card.is_some(), "the card outlives the challenge");
            round_trip(&p);
            let revision = p.revision();
            let again = p
                .settle(webhook("evt_2", failed, "2026-11-25T10:00:03Z"), at(4))
                .unwrap();
            assert_eq!(again, SettleOutcome::Duplicate);
            assert_eq!(p.revision(), revision);
            let body = order_body(OTP, api_status, "1499", "acme-ord_dotp_1001-1");
            let outcome = api(&mut p, &body, at(5));
            assert_eq!(outcome.code(), code);
            assert!(
                !outcome.is_terminal(),
                "the terminal outcome was reported before"
            );
            assert_eq!(p.is_paid(), paid);
            assert!(p.is_final() && p.conflict().is_none());
            assert_eq!(p.view(at(5)).next, "finished");
            round_trip(&p);
        }
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
            Ok(SettleOutcome::InFlight)
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
    fn a_lost_start_learns_its_transaction_from_the_order_status() {
        let start = start_request(BANK);
        let mut p = Payment::new(&start, 1, T0);
        let out = p.start(&config(), &start, T0).unwrap();
        p.handle_send_failure(out.token, SendFailure::MaybeSent, at(1))
            .unwrap();
        let pending = order_body(BANK, "PENDING_VBV", "1499", "acme-ord_dotp_1002-1");
        assert_eq!(
            api(&mut p, &pending, at(2)),
            Outcome::Pending(Status::PendingVbv)
        );
        // The bank waits for an OTP this record cannot take: never a silent dead end.
        assert_eq!(p.next_step(at(2)), NextStep::NewAttempt);
        assert_eq!(p.view(at(2)).next, "new_attempt");
        // Webhooks are now bound to it.
        let other = order_body(BANK, "CHARGED", "1499", "acme-ord_dotp_1002-2");
        assert_eq!(
            p.settle(webhook("evt_x", other, "2026-11-25T10:00:03Z"), at(3)),
            Ok(SettleOutcome::OtherTransaction)
        );
        round_trip(&p);
    }

    #[test]
    fn a_lost_confirmation_is_checked_again() {
        let mut p = bank_page(None);
        p.settle(signed_return(BANK, "CHARGED"), at(1)).unwrap();
        let out = p.check_status(&config(), at(2)).unwrap();
        assert_eq!(
            p.handle_send_failure(out.token, SendFailure::MaybeSent, at(3)),
            Ok(Outcome::NotDelivered)
        );
        let _ = p.check_status(&config(), at(4)).unwrap();
        assert_eq!(p.recover(std::time::Duration::from_secs(30), at(5)), None);
        assert_eq!(
            p.recover(std::time::Duration::from_secs(30), at(40)),
            Some(Outcome::NotDelivered)
        );
        assert_eq!(p.in_flight(), None);
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
        // Unreadable and order-less answers leave it confirming; a refused key says so.
        for (http, body, code) in [
            (200, json!("x"), "rejected"),
            (
                401,
                json!({"status": "error", "error_code": "access_denied"}),
                "unauthorized",
            ),
        ] {
            let out = p.check_status(&config(), at(50)).unwrap();
            let outcome = p
                .handle_response(out.token, http, body.to_string().as_bytes(), at(50))
                .unwrap();
            assert_eq!(outcome.code(), code, "{body}");
            assert!(!p.is_paid() && p.view(at(50)).next == "confirming");
        }
        round_trip(&p);
    }

    #[test]
    fn webhook_ids_stay_bounded() {
        let mut p = bank_page(None);
        p.settle(hook("evt_0", "CHARGED", "1499", 0), at(0))
            .unwrap();
        let charged = order_body(BANK, "CHARGED", "1499", "acme-ord_dotp_1002-1");
        for i in 1..40 {
            let out = p
                .settle(
                    hook(&format!("evt_{i}"), "JUSPAY_DECLINED", "1499", 0),
                    at(i),
                )
                .unwrap();
            assert_eq!(out.code(), "conflict");
            assert_eq!(
                api(&mut p, &charged, at(i)),
                Outcome::Confirmed(Status::Charged)
            );
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
        assert_eq!(json["format"], 2);
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
                json!({"stage": {"stage": "new"}, "settle": {"card": {"last_four": "1111"}}}),
                "kept card",
            ),
            (json!({"settle": {"unconfirmed": true}}), "format 1"),
            (
                json!({"settle": {"webhooks": vec!["e"; 17]}}),
                "webhook ids",
            ),
            (json!({"settle": {"webhooks": ["a\u{7}"]}}), "webhook ids"),
            (json!({"settle": {"txn_id": ""}}), "transaction id"),
            (
                json!({"stage": {"stage": "confirming", "reported": "PENDING_VBV", "by": "return_url",
                                 "why": {"why": "hint"}, "resume": {"to": "nothing"}}}),
                "not final",
            ),
            (
                json!({"stage": {"stage": "confirming", "reported": "CHARGED", "by": "order_status",
                                 "why": {"why": "amount_unchecked"}, "resume": {"to": "nothing"}}}),
                "did not decide",
            ),
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

    #[test]
    fn the_next_attempt_knows_the_earlier_transactions() {
        let start = start_request(BANK);
        let first = bank_page(Some("1499"));
        // Still open: the bank may settle it.
        assert_eq!(
            first.next_attempt(&start, at(1)).unwrap_err(),
            Refusal::AttemptOpen
        );
        assert_eq!(
            Payment::new(&start, 1, T0)
                .next_attempt(&start, at(1))
                .unwrap_err(),
            Refusal::NotStarted
        );
        let mut first = first;
        let failed = order_body(
            BANK,
            "AUTHENTICATION_FAILED",
            "1499",
            "acme-ord_dotp_1002-1",
        );
        assert_eq!(api(&mut first, &failed, at(1)).code(), "declined");
        assert_eq!(
            first.next_attempt(&start_request(OTP), at(2)).unwrap_err(),
            Refusal::OtherOrder
        );
        let mut second = first.next_attempt(&start, at(2)).unwrap();
        assert_eq!((second.key(), second.attempt()), ("ord_dotp_1002/2", 2));
        assert_eq!(second.expected_amount(), first.expected_amount());
        round_trip(&second);
        // Its start is lost; the order still shows attempt 1's transaction: it never
        // arrived, and may start again (never taken for attempt 1's failure).
        let out = second.start(&config(), &start, at(3)).unwrap();
        second
            .handle_send_failure(out.token, SendFailure::MaybeSent, at(3))
            .unwrap();
        assert_eq!(api(&mut second, &failed, at(4)), Outcome::NotDelivered);
        assert_eq!(second.next_step(at(4)), NextStep::Start);
        round_trip(&second);
        // A paid attempt has no next one.
        let mut paid = bank_page(None);
        let charged = order_body(BANK, "CHARGED", "1499", "acme-ord_dotp_1002-1");
        api(&mut paid, &charged, at(1));
        assert_eq!(
            paid.next_attempt(&start, at(2)).unwrap_err(),
            Refusal::AlreadyFinal(Status::Charged)
        );
    }

    #[test]
    fn a_hint_about_another_attempt_is_undone_by_the_order_status() {
        // Attempt 1 failed; attempt 2's CHARGED return reaches attempt 1 (the shop looked up
        // the wrong record). Attempt 1 confirms, the order status names attempt 2's
        // transaction: attempt 1 is settled as it was, not confirming for ever.
        let mut first = bank_page(None);
        let failed = order_body(
            BANK,
            "AUTHENTICATION_FAILED",
            "1499",
            "acme-ord_dotp_1002-1",
        );
        api(&mut first, &failed, at(1));
        let out = first.settle(signed_return(BANK, "CHARGED"), at(2)).unwrap();
        assert_eq!(out.code(), "conflict");
        let second = order_body(BANK, "CHARGED", "1499", "acme-ord_dotp_1002-2");
        let outcome = api(&mut first, &second, at(3));
        assert!(
            matches!(&outcome, Outcome::Rejected(ResponseError::Foreign(e)) if e.is_other_transaction())
        );
        assert!(first.is_final() && !first.is_paid());
        assert_eq!(first.status(), Status::AuthenticationFailed);
        round_trip(&first);
        // The same on an open page: back to it.
        for mut p in [bank_page(None), otp_page(None)] {
            let order = p.order_id().to_owned();
            p.settle(signed_return(&order, "CHARGED"), at(1)).unwrap();
            let other = order_body(&order, "CHARGED", "1499", "acme-other-9");
            assert_eq!(api(&mut p, &other, at(2)).code(), "rejected");
            assert!(!p.is_final());
            assert_ne!(p.view(at(2)).next, "confirming");
            round_trip(&p);
        }
    }

    #[test]
    fn a_format_1_record_loads_with_its_settlement_still_to_confirm() {
        // Format 1 settled a return URL "unconfirmed": it loads as confirming, not paid.
        let p = bank_page(None);
        let mut v1 = serde_json::to_value(&p).unwrap();
        v1["format"] = json!(1);
        v1["stage"] = json!({"stage": "final", "status": "CHARGED"});
        v1["settle"] = json!({"txn_id": "acme-ord_dotp_1002-1", "by": "return_url",
                             "unconfirmed": true});
        let mut loaded: Payment = serde_json::from_value(v1).unwrap();
        assert!(!loaded.is_paid() && !loaded.is_final());
        assert_eq!(loaded.view(at(1)).next, "confirming");
        let body = order_body(BANK, "CHARGED", "1499", "acme-ord_dotp_1002-1");
        assert_eq!(
            api(&mut loaded, &body, at(2)),
            Outcome::Confirmed(Status::Charged)
        );
        assert!(loaded.is_paid());
        let written = serde_json::to_value(&loaded).unwrap();
        assert_eq!(written["format"], 2);
        round_trip(&loaded);
        // Format 3 is refused.
        let mut v3 = serde_json::to_value(&p).unwrap();
        v3["format"] = json!(3);
        assert!(serde_json::from_value::<Payment>(v3).is_err());
    }
}
