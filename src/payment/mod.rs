//! One payment attempt as one record, from before the start until it is settled.
//!
//! The whole lifecycle reads top to bottom here:
//!
//! ```text
//! New --start--> Starting --answer--> Challenge (Direct OTP, see challenge.rs) --> final
//!                   |                  BankPage (3DS: the browser goes to the bank) --status--> final
//!                   |                  final (the start answer was already final)
//!                   '--lost/unreadable--> Unknown --status--> final
//! ```
//!
//! The record carries the revision, the write-ahead state and the recovery of
//! `docs/concurrency.md` for every stage, the challenge's included: one record id, one
//! revision, one request in flight at most.

mod confirming;
mod settle;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::card::PaymentSource;
use crate::challenge::Challenge;
use crate::clock::Stamp;
use crate::config::Config;
use crate::error::{ForeignAnswer, InputError, ResponseError, StartError};
use crate::exchange::Reply;
use crate::id::{HeaderValue, PathId};
use crate::otp::Otp;
use crate::outcome::{Outcome, Refusal, SendFailure, TimerEvent, Uncertainty};
use crate::policy::Policy;
use crate::request::{self, Outgoing};
use crate::response;
use crate::start::{StartRequest, StartTerms, Started};
use crate::status::Status;
use crate::token::{RecordId, RequestKind, Token};
use crate::view::{NextStep, PaymentView};

use confirming::{Confirming, Resume, Why};
use settle::SettleState;
pub use settle::{SettleError, SettleOutcome, Settlement};

/// The version of the persisted JSON form of a [`Payment`].
pub const PAYMENT_FORMAT_VERSION: u32 = 2;

/// One payment attempt: a sans-IO state machine for the whole of it, kept as one record
/// between web requests.
///
/// * It starts [`new`](Self::new) (nothing sent); [`start`](Self::start) issues
///   `POST /txns`. The answer opens the OTP challenge, or sends the cardholder to the
///   bank's 3DS page, or is already final; a lost or unreadable answer leaves the outcome
///   unknown until an order status check settles it.
/// * Commands ([`start`](Self::start), [`resend`](Self::resend), [`submit`](Self::submit),
///   [`check_status`](Self::check_status), [`go_to_bank_page`](Self::go_to_bank_page))
///   return the request to send, or a [`Refusal`] that changes nothing.
/// * Inputs ([`handle`](Self::handle), or [`handle_response`](Self::handle_response) and
///   [`handle_send_failure`](Self::handle_send_failure)) take the answer to the request in
///   flight, matched by its [`Token`], and return an [`Outcome`]. Exactly one outcome is
///   terminal (`Approved`, `Declined` or `IntegrityFailed`); after it every command is
///   refused with `AlreadyFinal` and nothing changes again, except through the order status
///   API (below).
/// * [`settle`](Self::settle) takes a verified return URL or an authenticated webhook: one
///   that says final may settle the payment first (unconfirmed; `check_status` confirms
///   it, or reports the API's `Disagreement`). An expected amount
///   ([`with_expected_amount`](Self::with_expected_amount)) makes a success paid only for
///   that amount. See `docs/settlement.md`, "Precedence".
/// * [`view`](Self::view) gives a UI everything it shows, owned and serializable.
///
/// Key records by [`key`](Self::key), `{order_id}/{attempt}`: a new attempt on the same order
/// after a decline is a new record with the next attempt number.
///
/// ```
/// use direct_otp::{Config, Outcome, Payment, PaymentSource, StartRequest};
/// use time::macros::datetime;
///
/// let config = Config::sandbox("my_api_key")?;
/// let now = datetime!(2026-11-25 10:00 UTC);
/// let start = StartRequest::new("ord_1", "acme", "customer_1",
///     PaymentSource::Token { card_token: "tok_123".into(), cvv: None })?;
/// let mut payment = Payment::new(&start, 1, now);
/// let out = payment.start(&config, &start, now)?;
/// // Store the payment (it is now in flight), then send out.request; hand the answer back:
/// let body = br#"{"order_id":"ord_1","status":"PENDING_VBV","payment":{"authentication":{
///     "method":"POST","url":"https://sandbox.juspay.in/v2/txns/txn_1/authenticate",
///     "params":{"id":"txn_1","challenge_id":"ch_1","auth_type":"OTP",
///               "submit_otp_allowed":true,"resend_otp_allowed":true}}}}"#;
/// let outcome = payment.handle_response(out.token, 200, body, now)?;
/// assert_eq!(outcome.code(), "otp_sent");
/// assert_eq!(payment.view(now).next, "enter_otp");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Payment {
    /// `{order_id}/{attempt}`, derived (not persisted).
    #[serde(skip)]
    key: String,
    format: PaymentFormat,
    record: RecordId,
    revision: u64,
    order_id: PathId,
    attempt: u32,
    routing_id: HeaderValue,
    policy: Policy,
    created_at: Stamp,
    last_seen: Stamp,
    stage: Stage,
    /// What the start needs besides the card (merchant id, optional form fields), so a
    /// start can be made again with only the card ([`start_with`](Self::start_with)).
    /// Absent from records stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    terms: Option<StartTerms>,
    /// What settled it, the expected amount, the webhooks seen (`settle.rs`). Absent from
    /// records that never needed it.
    #[serde(default, skip_serializing_if = "SettleState::is_plain")]
    settle: SettleState,
}

/// Where the payment is, outside the challenge's own states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
enum Stage {
    /// Nothing sent yet.
    New,
    /// `POST /txns` in flight.
    Starting { request: InFlight },
    /// The start's outcome is unknown (its answer was lost or unreadable): only the order
    /// status can tell; `check` is the status check in flight.
    Unknown {
        status: Option<Status>,
        check: Option<InFlight>,
    },
    /// 3DS failover: the browser authenticates on the bank's page at `url`.
    BankPage {
        url: String,
        browser_away: bool,
        status: Status,
        check: Option<InFlight>,
    },
    /// The Direct OTP challenge (its own states are in `challenge.rs`).
    Challenge { challenge: Box<Challenge> },
    /// A source said the payment is final, but it is not the verdict: the order status
    /// decides (`confirming.rs`).
    Confirming(Box<Confirming>),
    /// Settled by the bank's own word: an answer to this attempt's request, the order
    /// status API, or a webhook bound to this attempt's transaction.
    Final { status: Status },
}

/// A request in flight outside the challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct InFlight {
    token: Token,
    sent_at: Stamp,
}

impl Payment {
    /// A new payment attempt for `start`'s order, with nothing sent yet. `attempt` numbers
    /// the attempts on one order (1, 2, ...): store each under its own [`key`](Self::key).
    /// The payment keeps everything of `start` but the card (the order, the customer, the
    /// policy, the expected amount, the merchant id and the optional form fields), so a start
    /// made again later needs only the card ([`start_with`](Self::start_with)).
    pub fn new(start: &StartRequest, attempt: u32, now: OffsetDateTime) -> Payment {
        let mut payment = Payment::blank(start, attempt, now);
        if let Some(expected) = start.expected_amount() {
            payment.settle.expect(expected.clone());
        }
        payment
    }

    /// Creates the payment and starts it, the start request given once: the payment (store
    /// it, now in flight: the write-ahead) and the `POST /txns` to send. The same as
    /// [`new`](Self::new) then [`start`](Self::start).
    ///
    /// ```
    /// use direct_otp::{Config, Payment, PaymentSource, StartRequest};
    /// # let now = time::macros::datetime!(2026-11-25 10:00 UTC);
    /// let config = Config::sandbox("my_api_key")?;
    /// let start = StartRequest::new("ord_1", "acme", "customer_1",
    ///     PaymentSource::Token { card_token: "tok_123".into(), cvv: None })?;
    /// let (payment, out) = Payment::begin(&config, &start, 1, now);
    /// assert_eq!(payment.in_flight(), Some(out.token));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn begin(
        config: &Config,
        start: &StartRequest,
        attempt: u32,
        now: OffsetDateTime,
    ) -> (Payment, Outgoing) {
        let mut payment = Payment::new(start, attempt, now);
        let out = payment.issue_start(config, start, now);
        (payment, out)
    }

    fn blank(start: &StartRequest, attempt: u32, now: OffsetDateTime) -> Payment {
        let now = Stamp::from_time(now);
        Payment {
            key: key_of(start.order_id().as_str(), attempt),
            format: PaymentFormat(PAYMENT_FORMAT_VERSION),
            record: RecordId::random(),
            revision: 1,
            order_id: start.order_id().clone(),
            attempt,
            routing_id: start.routing_id().clone(),
            policy: start.policy().normalized(),
            created_at: now,
            last_seen: now,
            stage: Stage::New,
            terms: Some(start.terms()),
            settle: SettleState::default(),
        }
    }

    /// The next attempt on this payment's order (attempt + 1, nothing sent yet), once this
    /// one is over: final and not paid, or [`NextStep::NewAttempt`]. The new record keeps
    /// the expected amount and knows the transactions of the attempts before it, so an
    /// order status about one of them is never taken for its own (a lost start whose order
    /// still shows an earlier attempt's transaction never arrived: it may start again).
    /// Store it under its own [`key`](Self::key).
    ///
    /// Refused with [`Refusal::AlreadyFinal`] once paid, [`Refusal::NotStarted`] before this
    /// attempt was started (start it instead), [`Refusal::InFlight`] while a request is out,
    /// [`Refusal::AttemptOpen`] while the bank may still settle it, and
    /// [`Refusal::OtherOrder`] for a start request of another order or customer.
    ///
    /// ```
    /// use direct_otp::{Config, Payment, PaymentSource, StartRequest};
    /// # let now = time::macros::datetime!(2026-11-25 10:00 UTC);
    /// let config = Config::sandbox("my_api_key")?;
    /// let start = StartRequest::new("ord_1", "acme", "customer_1",
    ///     PaymentSource::Token { card_token: "tok_123".into(), cvv: None })?;
    /// let mut first = Payment::new(&start, 1, now);
    /// let out = first.start(&config, &start, now)?;
    /// let declined = br#"{"order_id":"ord_1","txn_id":"acme-ord_1-1","status":"JUSPAY_DECLINED"}"#;
    /// first.handle_response(out.token, 200, declined, now)?;
    /// let second = first.next_attempt(&start, now)?;
    /// assert_eq!(second.key(), "ord_1/2");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_attempt(
        &self,
        start: &StartRequest,
        now: OffsetDateTime,
    ) -> Result<Payment, Refusal> {
        if self.is_paid() {
            return Err(Refusal::AlreadyFinal(self.status()));
        }
        if let Some(token) = self.in_flight() {
            return Err(Refusal::InFlight(token));
        }
        match self.next_step(now) {
            NextStep::Finished(_) | NextStep::NewAttempt => {}
            NextStep::Start => return Err(Refusal::NotStarted),
            _ => return Err(Refusal::AttemptOpen),
        }
        if start.order_id() != &self.order_id || start.routing_id() != &self.routing_id {
            return Err(Refusal::OtherOrder);
        }
        let mut next = Payment::new(start, self.attempt.saturating_add(1), now);
        next.settle.after(&self.settle);
        Ok(next)
    }

    // ----- Commands -------------------------------------------------------------------

    /// Starts authentication: `POST /txns` built from `start` (which holds the card data;
    /// the payment never keeps it). Refused unless nothing was sent yet (or the last start
    /// surely did not leave, or the bank refused it), and when `start` is for another order
    /// or customer.
    pub fn start(
        &mut self,
        config: &Config,
        start: &StartRequest,
        now: OffsetDateTime,
    ) -> Result<Outgoing, Refusal> {
        self.idle()?;
        if !matches!(self.stage, Stage::New) {
            return Err(Refusal::AlreadyStarted);
        }
        if start.order_id() != &self.order_id || start.routing_id() != &self.routing_id {
            return Err(Refusal::OtherOrder);
        }
        Ok(self.issue_start(config, start, now))
    }

    /// `POST /txns`, now in flight (the checks were made).
    fn issue_start(
        &mut self,
        config: &Config,
        start: &StartRequest,
        now: OffsetDateTime,
    ) -> Outgoing {
        let now = self.touch(now);
        let token = Token::issue(self.record, self.revision, RequestKind::Start);
        self.stage = Stage::Starting {
            request: InFlight {
                token,
                sent_at: now,
            },
        };
        Outgoing {
            token,
            request: start.request(config),
        }
    }

    /// Starts authentication again with only the card, after a start that surely did not
    /// leave or that the bank refused (the payment is back to "start"): `POST /txns` built
    /// from what the payment kept of its first start and `source`, which holds the card data
    /// the payment never keeps (a saved-card token, or the card typed again). Refused as
    /// [`start`](Self::start) is, and with [`Refusal::StartRequestNeeded`] for a payment
    /// stored before it kept its start terms (call `start` with the whole request).
    ///
    /// ```
    /// use direct_otp::{Config, Payment, PaymentSource, SendFailure, StartRequest};
    /// # let now = time::macros::datetime!(2026-11-25 10:00 UTC);
    /// let config = Config::sandbox("my_api_key")?;
    /// let card = PaymentSource::Token { card_token: "tok_123".into(), cvv: None };
    /// let (mut payment, out) = Payment::begin(&config,
    ///     &StartRequest::new("ord_1", "acme", "customer_1", card.clone())?, 1, now);
    /// // The connection was refused: nothing left. In a later web request, with the card:
    /// payment.handle_send_failure(out.token, SendFailure::NotSent, now)?;
    /// let again = payment.start_with(&config, &card, now)?;
    /// assert_eq!(again.request.body(), out.request.body());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_with(
        &mut self,
        config: &Config,
        source: &PaymentSource,
        now: OffsetDateTime,
    ) -> Result<Outgoing, Refusal> {
        self.idle()?;
        if !matches!(self.stage, Stage::New) {
            return Err(Refusal::AlreadyStarted);
        }
        let start = self
            .terms
            .as_ref()
            .ok_or(Refusal::StartRequestNeeded)?
            .request(
                self.order_id.as_str(),
                self.routing_id.shared(),
                source.clone(),
                self.policy,
            )
            .map_err(|_| Refusal::StartRequestNeeded)?;
        self.start(config, &start, now)
    }

    /// Asks the bank for a new OTP (on the OTP page, also while confirming).
    pub fn resend(&mut self, config: &Config, now: OffsetDateTime) -> Result<Outgoing, Refusal> {
        let out = self.otp_page()?.resend(config, now)?;
        self.sync();
        Ok(out)
    }

    /// Submits the OTP (on the OTP page, also while confirming). The payment does not keep
    /// it.
    pub fn submit(
        &mut self,
        config: &Config,
        otp: &Otp,
        now: OffsetDateTime,
    ) -> Result<Outgoing, Refusal> {
        let out = self.otp_page()?.submit(config, otp, now)?;
        self.sync();
        Ok(out)
    }

    /// Asks for the order status (`GET /orders/{order_id}`): after a lost answer, after the
    /// bank page, while confirming, or whenever in doubt. Safe to repeat. Refused once the
    /// payment is final.
    pub fn check_status(
        &mut self,
        config: &Config,
        now: OffsetDateTime,
    ) -> Result<Outgoing, Refusal> {
        if let Some(challenge) = self.challenge_slot() {
            let out = challenge.check_status(config, now)?;
            self.sync();
            return Ok(out);
        }
        self.idle()?;
        if matches!(self.stage, Stage::New) {
            return Err(Refusal::NotStarted);
        }
        let now = self.touch(now);
        let token = Token::issue(self.record, self.revision, RequestKind::OrderStatus);
        let request = InFlight {
            token,
            sent_at: now,
        };
        match &mut self.stage {
            Stage::Unknown { check, .. } | Stage::BankPage { check, .. } => *check = Some(request),
            Stage::Confirming(c) => c.check = Some(request),
            _ => {}
        }
        Ok(Outgoing {
            token,
            request: request::order_status(
                config,
                self.order_id.as_str(),
                self.routing_id.shared(),
            ),
        })
    }

    /// Sends the cardholder to the bank's page: the OTP challenge's `fallback_url`, or the
    /// 3DS page when Direct OTP was not available. Returns the URL to redirect the browser
    /// to, exactly as the server gave it; asking again (a page reload) gives the same URL.
    /// Then check the order status when the browser comes back.
    pub fn go_to_bank_page(&mut self, now: OffsetDateTime) -> Result<String, Refusal> {
        if let Some(challenge) = self.challenge_slot() {
            let url = challenge.go_to_bank_page(now)?;
            self.sync();
            return Ok(url);
        }
        self.idle()?;
        let (url, browser_away) = match &mut self.stage {
            Stage::BankPage {
                url, browser_away, ..
            } => (url, browser_away),
            Stage::Confirming(c) => match &mut c.resume {
                Resume::BankPage {
                    url, browser_away, ..
                } => (url, browser_away),
                _ => return Err(Refusal::Confirming),
            },
            Stage::New => return Err(Refusal::NotStarted),
            _ => return Err(Refusal::CheckStatus),
        };
        let url = url.clone();
        if !*browser_away {
            *browser_away = true;
            self.touch(now);
        }
        Ok(url)
    }

    // ----- Inputs ---------------------------------------------------------------------

    /// Hands back the result of sending the request `token`: its answer, or how sending
    /// failed. The one input for every exchange; the transports use it too.
    pub fn handle(
        &mut self,
        token: Token,
        reply: Reply,
        now: OffsetDateTime,
    ) -> Result<Outcome, InputError> {
        match reply {
            Reply::Answer { status, body } => self.handle_response(token, status, &body, now),
            Reply::Failed(failure) => self.handle_send_failure(token, failure, now),
        }
    }

    /// Hands back the answer to the request `token`: its HTTP status and body. An answer
    /// for any other token, or one that names another order, is refused and changes
    /// nothing. An order status that names another transaction of the order than this
    /// attempt's is not about this attempt: the check is over and nothing else changes
    /// (`Outcome::Rejected`).
    pub fn handle_response(
        &mut self,
        token: Token,
        http_status: u16,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Outcome, InputError> {
        let kind = token.kind();
        let txn = self.settle.txn_id();
        let other_txn = kind == RequestKind::OrderStatus
            && matches!(
                response::order_status(self.order_id.as_str(), txn.as_deref(), http_status, body),
                Err(ResponseError::Foreign(e)) if e.is_other_transaction()
            );
        let outcome = if self.challenge_slot().is_some() && other_txn {
            // The order's status names another transaction: not about this attempt. The
            // check is over (as a check that was not delivered), nothing else changes.
            let challenge = self
                .challenge_slot()
                .ok_or(InputError::NothingInFlight { got: token })?;
            challenge.handle_send_failure(token, SendFailure::NotSent, now)?;
            self.sync();
            // While confirming: the report was about that transaction; back to the page.
            self.after_otp_page_answer(kind);
            Outcome::rejected(ResponseError::Foreign(ForeignAnswer::OTHER_TRANSACTION))
        } else if let Some(challenge) = self.challenge_slot() {
            let outcome = challenge.handle_response(token, http_status, body, now)?;
            self.sync();
            self.after_otp_page_answer(kind);
            outcome
        } else {
            // Read the answer, and refuse one about another order, before changing anything.
            if self.answered(token)? == RequestKind::Start {
                let read = crate::start::read_start(
                    self.routing_id.clone(),
                    Some(&self.order_id),
                    self.policy,
                    http_status,
                    body,
                    now,
                );
                if let Err(StartError::Response(ResponseError::Foreign(e))) = read {
                    return Err(e.into());
                }
                self.on_start(read, http_status, body, now)
            } else {
                let status = response::order_status(
                    self.order_id.as_str(),
                    txn.as_deref(),
                    http_status,
                    body,
                );
                if let Err(ResponseError::Foreign(e)) = &status {
                    if !e.is_other_transaction() {
                        return Err((*e).into());
                    }
                }
                if matches!(self.stage, Stage::Confirming(_)) {
                    self.on_confirmation(status, http_status, body, now)
                } else {
                    self.on_order_status(status, http_status, body, now)
                }
            }
        };
        Ok(self.settled_by_answer(kind, http_status, body, outcome))
    }

    /// Reports that sending the request `token` failed. A start that may have been sent
    /// leaves the outcome unknown (check the order status; never start again: that would
    /// be a second transaction and a second SMS); one surely not sent may be started again.
    pub fn handle_send_failure(
        &mut self,
        token: Token,
        failure: SendFailure,
        now: OffsetDateTime,
    ) -> Result<Outcome, InputError> {
        if let Some(challenge) = self.challenge_slot() {
            let outcome = challenge.handle_send_failure(token, failure, now)?;
            self.sync();
            return Ok(outcome);
        }
        let kind = self.answered(token)?;
        self.touch(now);
        Ok(match (kind, failure) {
            (RequestKind::Start, SendFailure::MaybeSent) => {
                self.stage = Stage::Unknown {
                    status: None,
                    check: None,
                };
                Outcome::CheckStatus(Uncertainty::MaybeSent)
            }
            (RequestKind::Start, _) => {
                self.stage = Stage::New;
                Outcome::NotDelivered
            }
            _ => {
                self.end_check();
                Outcome::NotDelivered
            }
        })
    }

    /// Recovers a request nobody answered within `grace` (a worker died): as a transport
    /// failure that may have been sent. `None`, and no change, when nothing is in flight or
    /// it is younger than `grace`. See `docs/concurrency.md`.
    pub fn recover(&mut self, grace: std::time::Duration, now: OffsetDateTime) -> Option<Outcome> {
        if let Some(challenge) = self.challenge_slot() {
            let outcome = challenge.recover(grace, now);
            self.sync();
            return outcome;
        }
        let request = self.request_in_flight()?;
        if self.effective(now) < request.sent_at.plus(grace) {
            return None;
        }
        self.handle_send_failure(request.token, SendFailure::MaybeSent, now)
            .ok()
    }

    // ----- Timers ---------------------------------------------------------------------

    /// The next deadline to call [`handle_timeout`](Self::handle_timeout) at (on the OTP
    /// page: the resend cooldown or the page's expiry).
    pub fn poll_timeout(&self) -> Option<OffsetDateTime> {
        self.otp_page_ref()?.poll_timeout()
    }

    /// Fires the timer due at `now`, if any.
    pub fn handle_timeout(&mut self, now: OffsetDateTime) -> Option<TimerEvent> {
        let event = self.challenge_slot()?.handle_timeout(now);
        self.sync();
        event
    }

    // ----- Getters --------------------------------------------------------------------

    /// What the UI should do next.
    pub fn next_step(&self, now: OffsetDateTime) -> NextStep {
        if let Some(token) = self.in_flight() {
            return NextStep::Wait(token);
        }
        match &self.stage {
            Stage::New => NextStep::Start,
            Stage::Challenge { challenge } => challenge.next_step(now),
            Stage::Confirming(_) => NextStep::Confirming,
            Stage::Final { status } => NextStep::Finished(status.clone()),
            Stage::BankPage {
                url,
                browser_away: false,
                ..
            } => NextStep::BankPage(url.clone()),
            Stage::BankPage { .. } => NextStep::AwaitBankPage,
            Stage::Unknown {
                status: Some(Status::PendingVbv),
                ..
            } => NextStep::NewAttempt,
            Stage::Starting { .. } | Stage::Unknown { .. } => NextStep::CheckStatus,
        }
    }

    /// Everything a payment page shows, owned and serializable.
    pub fn view(&self, now: OffsetDateTime) -> PaymentView {
        let next = self.next_step(now);
        let challenge = self.challenge();
        let open = self.otp_page_ref().filter(|c| !c.is_final());
        let seconds_until = |at: OffsetDateTime| {
            let left = at - now.max(self.last_seen.to_time());
            u64::try_from(left.whole_seconds()).unwrap_or(0)
                + u64::from(left.subsec_nanoseconds() > 0)
        };
        let bank_page_url = match &next {
            NextStep::BankPage(url) => Some(url.clone()),
            _ => None,
        };
        let bank_page_available = !self.is_final()
            && (bank_page_url.is_some() || open.and_then(Challenge::fallback_url).is_some());
        let status = self.status();
        let otp_page_open = next == NextStep::EnterOtp
            || (next == NextStep::Confirming
                && open.is_some_and(|c| c.next_step(now) == NextStep::EnterOtp));
        PaymentView {
            key: self.key.clone(),
            order_id: self.order_id.as_str().to_owned(),
            attempt: self.attempt,
            next: next.code().to_owned(),
            message: self
                .settlement_message()
                .unwrap_or_else(|| next.to_string()),
            status: status.to_string(),
            is_final: self.is_final(),
            paid: self.is_paid(),
            confirmed: self.is_confirmed(),
            settled_by: self.settled_by().map(|s| s.code().to_owned()),
            settlement_issue: self.settlement_issue().map(str::to_owned),
            can_submit: open.is_some_and(|c| c.may_submit(now).is_ok()),
            can_resend: open.is_some_and(|c| c.may_resend(now).is_ok()),
            resend_in_seconds: open
                .and_then(Challenge::resend_available_at)
                .map(seconds_until),
            sends_left: open.map(Challenge::sends_left),
            attempts_left: open.map(Challenge::attempts_left),
            expires_in_seconds: open
                .filter(|_| otp_page_open)
                .map(|c| seconds_until(c.expires_at())),
            bank_page_url,
            bank_page_available,
            card: challenge
                .map(|c| c.card().clone())
                .or_else(|| self.settle.card())
                .filter(|c| c != &Default::default()),
        }
    }

    /// The key attempt `attempt` of order `order_id` is stored under, `{order_id}/{attempt}`
    /// (the [`key`](Self::key) of `Payment::new(start, attempt, now)`): to load a payment
    /// by its order, before or without building it.
    ///
    /// ```
    /// assert_eq!(direct_otp::Payment::key_for("order_42", 1), "order_42/1");
    /// ```
    pub fn key_for(order_id: &str, attempt: u32) -> String {
        key_of(order_id, attempt)
    }

    /// The key to store this record under: `{order_id}/{attempt}`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The order id.
    pub fn order_id(&self) -> &str {
        self.order_id.as_str()
    }

    /// The attempt number on this order.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// This record's random identity; every token it issues carries it.
    pub fn record_id(&self) -> RecordId {
        self.record
    }

    /// The revision: 1 when created, one more with every change. Store with
    /// compare-and-swap on it (`docs/concurrency.md`).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The token of the request in flight, if any: the record's one request in flight.
    pub fn in_flight(&self) -> Option<Token> {
        match self.otp_page_ref() {
            Some(c) if c.in_flight().is_some() => c.in_flight(),
            _ => self.request_in_flight().map(|r| r.token),
        }
    }

    /// When the request in flight was issued: a recovery sweep looks for records in flight
    /// since long ago.
    pub fn in_flight_since(&self) -> Option<OffsetDateTime> {
        match self.otp_page_ref() {
            Some(c) if c.in_flight().is_some() => c.in_flight_since(),
            _ => self.request_in_flight().map(|r| r.sent_at.to_time()),
        }
    }

    /// The last status known from the bank's side (`NEW` before anything is known). While
    /// confirming, the status a return URL or webhook reported is not taken as known.
    pub fn status(&self) -> Status {
        match &self.stage {
            Stage::New | Stage::Starting { .. } => Status::New,
            Stage::Unknown { status, .. } => status.clone().unwrap_or(Status::New),
            Stage::BankPage { status, .. } | Stage::Final { status } => status.clone(),
            Stage::Challenge { challenge } => challenge.status().clone(),
            Stage::Confirming(c) => c.known_status(),
        }
    }

    /// True once the payment is final: settled by the bank's own word (an answer to this
    /// attempt's request, the order status API, or a webhook bound to this attempt's
    /// transaction), and its one terminal outcome was reported. A return URL or an
    /// unbound webhook never makes it final on its own (see [`settle`](Self::settle)).
    pub fn is_final(&self) -> bool {
        match &self.stage {
            Stage::Final { .. } => true,
            Stage::Challenge { challenge } => challenge.is_final(),
            _ => false,
        }
    }

    /// The OTP challenge, once the start opened one (also while confirming, when the OTP
    /// page is kept usable).
    pub fn challenge(&self) -> Option<&Challenge> {
        self.otp_page_ref()
    }

    // ----- The rest -------------------------------------------------------------------

    fn on_start(
        &mut self,
        read: Result<Started, StartError>,
        http_status: u16,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Outcome {
        self.touch(now);
        match read {
            Ok(Started::Challenge(mut challenge)) => {
                challenge.adopt(self.record, self.revision);
                let sends_left = challenge.sends_left();
                self.stage = Stage::Challenge { challenge };
                Outcome::OtpSent { sends_left }
            }
            Ok(Started::Redirect { url, .. }) => {
                self.stage = Stage::BankPage {
                    url,
                    browser_away: false,
                    status: Status::PendingVbv,
                    check: None,
                };
                Outcome::BankPageRequired
            }
            Ok(Started::Finished(status)) => self.finish(status),
            // A start the bank refused did nothing: it may be started again once fixed.
            Err(StartError::Response(ResponseError::Api(e)))
                if (400..=499).contains(&http_status)
                    && response::Envelope::parse(http_status, body).meaning()
                        != response::ErrorMeaning::Duplicate =>
            {
                self.stage = Stage::New;
                Outcome::rejected(ResponseError::Api(e))
            }
            Err(e) => {
                self.stage = Stage::Unknown {
                    status: None,
                    check: None,
                };
                let e = match e {
                    StartError::Response(e) => e,
                    StartError::Id(_) => ResponseError::Malformed {
                        http_status,
                        problem: crate::Malformed::BadId("order_id"),
                    },
                };
                Outcome::CheckStatus(Uncertainty::Response(e))
            }
        }
    }

    /// The order status, outside the OTP page and outside confirming.
    fn on_order_status(
        &mut self,
        status: Result<Status, ResponseError>,
        http_status: u16,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Outcome {
        self.touch(now);
        self.end_check();
        let status = match status {
            Ok(status) => status,
            Err(e) => {
                // A start whose outcome was unknown, for an order the bank does not know:
                // it never arrived (the order would exist had it). It may start again.
                if matches!(self.stage, Stage::Unknown { .. }) && is_unknown_order(&e) {
                    self.stage = Stage::New;
                    return Outcome::NotDelivered;
                }
                return Outcome::rejected(e);
            }
        };
        if matches!(self.stage, Stage::Unknown { .. }) && !self.settle.learn_txn(http_status, body)
        {
            // The order's latest transaction is an earlier attempt's: had this start
            // arrived, its transaction would be the latest. It may start again.
            self.stage = Stage::New;
            return Outcome::NotDelivered;
        }
        if status.is_final() {
            return self.finish(status);
        }
        if let Stage::Unknown { status: slot, .. } = &mut self.stage {
            *slot = Some(status.clone());
        } else if let Stage::BankPage { status: slot, .. } = &mut self.stage {
            slot.clone_from(&status);
        }
        Outcome::Pending(status)
    }

    fn finish(&mut self, status: Status) -> Outcome {
        self.stage = Stage::Final {
            status: status.clone(),
        };
        if status.is_success() {
            Outcome::Approved(status)
        } else {
            Outcome::Declined(status)
        }
    }

    /// The status check in flight outside the OTP page is over.
    fn end_check(&mut self) {
        match &mut self.stage {
            Stage::Unknown { check, .. } | Stage::BankPage { check, .. } => *check = None,
            Stage::Confirming(c) => c.check = None,
            _ => {}
        }
    }

    /// Refuses a command while a request is in flight or once final (outside the OTP
    /// page, which has its own rules).
    fn idle(&self) -> Result<(), Refusal> {
        if let Some(token) = self.in_flight() {
            return Err(Refusal::InFlight(token));
        }
        match &self.stage {
            Stage::Final { status } => Err(Refusal::AlreadyFinal(status.clone())),
            _ => Ok(()),
        }
    }

    /// The request in flight outside the OTP page.
    fn request_in_flight(&self) -> Option<InFlight> {
        match &self.stage {
            Stage::Starting { request } => Some(*request),
            Stage::Unknown { check, .. } | Stage::BankPage { check, .. } => *check,
            Stage::Confirming(c) => c.check,
            _ => None,
        }
    }

    /// Whether `token` is that of the request in flight.
    pub(crate) fn check_token(&self, token: Token) -> Result<(), InputError> {
        match self.otp_page_ref() {
            Some(c) if self.request_in_flight().is_none() => c.check_token(token),
            _ => self.answered(token).map(|_| ()),
        }
    }

    fn answered(&self, got: Token) -> Result<RequestKind, InputError> {
        if got.record() != self.record {
            return Err(InputError::OtherRecord { got });
        }
        match self.request_in_flight() {
            Some(r) if r.token == got => Ok(got.kind()),
            Some(r) => Err(InputError::StaleToken {
                got,
                in_flight: r.token,
            }),
            None if self.is_final() => Err(InputError::AlreadyFinal { got }),
            None => Err(InputError::NothingInFlight { got }),
        }
    }

    /// The OTP page, for a command on it: refused outside it, and while the confirming
    /// check is in flight.
    fn otp_page(&mut self) -> Result<&mut Challenge, Refusal> {
        if self.challenge_slot().is_none() {
            self.idle()?;
            return Err(match &self.stage {
                Stage::New => Refusal::NotStarted,
                Stage::BankPage { .. } => Refusal::OnBankPage,
                Stage::Confirming(_) => Refusal::Confirming,
                _ => Refusal::CheckStatus,
            });
        }
        self.challenge_slot().ok_or(Refusal::CheckStatus)
    }

    /// The OTP challenge that takes the next command or answer, and holds the record's one
    /// request in flight: the OTP page, or the one kept while confirming (then the
    /// confirming check is the challenge's too).
    fn challenge_slot(&mut self) -> Option<&mut Challenge> {
        match &mut self.stage {
            Stage::Challenge { challenge } => Some(challenge),
            Stage::Confirming(c) => c.challenge_mut(),
            _ => None,
        }
    }

    fn otp_page_ref(&self) -> Option<&Challenge> {
        match &self.stage {
            Stage::Challenge { challenge } => Some(challenge),
            Stage::Confirming(c) => c.challenge(),
            _ => None,
        }
    }

    /// After the OTP page answered while confirming: the order status decided (a status
    /// check), or the bank's own answer settled the payment. Either way the confirming is
    /// over and the page is where the answer left it.
    fn after_otp_page_answer(&mut self, kind: RequestKind) {
        let Stage::Confirming(c) = &mut self.stage else {
            return;
        };
        let decided =
            kind == RequestKind::OrderStatus || c.challenge().is_some_and(Challenge::is_final);
        if !decided {
            return;
        }
        if let Resume::Otp { challenge } = std::mem::replace(&mut c.resume, Resume::Nothing) {
            self.stage = Stage::Challenge { challenge };
        }
    }

    /// After the challenge changed: the payment's revision and latest time are the
    /// challenge's (it was seeded with the payment's, so they only move forward together).
    fn sync(&mut self) {
        if let Some((revision, seen)) = self
            .otp_page_ref()
            .map(|c| (c.revision(), Stamp::from_time(c.last_seen())))
        {
            self.revision = revision;
            self.last_seen = self.last_seen.max(seen);
        }
    }

    /// Every change outside the challenge goes through here. A challenge kept in the
    /// record takes the new revision too, so they never part.
    fn touch(&mut self, now: OffsetDateTime) -> Stamp {
        let now = self.effective(now);
        self.revision = self.revision.saturating_add(1);
        self.last_seen = now;
        let (record, revision) = (self.record, self.revision);
        if let Some(challenge) = self.challenge_slot() {
            challenge.adopt(record, revision);
        }
        now
    }

    fn effective(&self, now: OffsetDateTime) -> Stamp {
        Stamp::from_time(now).max(self.last_seen)
    }

    /// The first rule of a built payment that this state breaks, if any.
    fn inconsistency(&self) -> Option<&'static str> {
        if self.revision == 0 || self.revision == u64::MAX {
            return Some("the revision is 0 or saturated");
        }
        if self.created_at > self.last_seen {
            return Some("created after it was last seen");
        }
        if let Some(challenge) = self.otp_page_ref() {
            if challenge.record_id() != self.record || challenge.revision() != self.revision {
                return Some("the challenge is not this payment's");
            }
            if challenge.order_id() != self.order_id.as_str() {
                return Some("the challenge is for another order");
            }
        }
        match &self.stage {
            Stage::Final { status } if !status.is_final() => {
                return Some("a final stage with a status that is not final");
            }
            Stage::Unknown {
                status: Some(status),
                ..
            } if status.is_final() => return Some("a final status in an open stage"),
            Stage::BankPage { status, .. } if status.is_final() => {
                return Some("a final status in an open stage")
            }
            Stage::Confirming(c) => {
                if let Some(rule) = c.inconsistency() {
                    return Some(rule);
                }
            }
            _ => {}
        }
        if let Some(rule) = self.settle_inconsistency() {
            return Some(rule);
        }
        if self.terms.as_ref().is_some_and(|t| !t.is_valid()) {
            return Some("start terms that break the start request's rules");
        }
        let request = self.request_in_flight()?;
        let t = request.token;
        let kind_fits = match &self.stage {
            Stage::Starting { .. } => t.kind() == RequestKind::Start,
            _ => t.kind() == RequestKind::OrderStatus,
        };
        if t.record() != self.record || t.revision() != self.revision || !kind_fits {
            return Some("the token in flight was not issued by this record at this revision");
        }
        if request.sent_at > self.last_seen || request.sent_at < self.created_at {
            return Some("the request in flight was sent outside the record's lifetime");
        }
        None
    }
}

impl Serialize for Payment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Payment::serialize(self, s)
    }
}

/// Loads a persisted payment: the format version, safe ids, and the rules every payment
/// this library builds keeps (a paid payment never comes back looking open).
impl<'de> Deserialize<'de> for Payment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut p = Payment::deserialize(d)?;
        p.key = key_of(p.order_id.as_str(), p.attempt);
        if p.format.0 == 1 {
            if let Err(rule) = p.migrate() {
                return Err(serde::de::Error::custom(format_args!(
                    "inconsistent payment state: {rule}"
                )));
            }
        }
        p.format = PaymentFormat(PAYMENT_FORMAT_VERSION);
        match p.inconsistency() {
            None => Ok(p),
            Some(rule) => Err(serde::de::Error::custom(format_args!(
                "inconsistent payment state: {rule}"
            ))),
        }
    }
}

/// The order status API's "no such order" (`404`, or `400` with `NOT_FOUND` /
/// `RESOURCE_NOT_FOUND`).
fn is_unknown_order(e: &ResponseError) -> bool {
    match e {
        ResponseError::Api(a) => {
            a.http_status() == 404
                || a.status() == Some("NOT_FOUND")
                || a.code() == Some("RESOURCE_NOT_FOUND")
        }
        _ => false,
    }
}

fn key_of(order_id: &str, attempt: u32) -> String {
    format!("{order_id}/{attempt}")
}

/// Marks the persisted format; refuses any version but [`PAYMENT_FORMAT_VERSION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PaymentFormat(u32);

impl Serialize for PaymentFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(PAYMENT_FORMAT_VERSION)
    }
}

impl<'de> Deserialize<'de> for PaymentFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u32::deserialize(d)? {
            // Format 1 kept the confirming stage as settlement flags: read and converted.
            v @ (1 | PAYMENT_FORMAT_VERSION) => Ok(PaymentFormat(v)),
            v => Err(serde::de::Error::custom(format_args!(
                "payment format version {v} is not supported (this library reads {PAYMENT_FORMAT_VERSION})"
            ))),
        }
    }
}
