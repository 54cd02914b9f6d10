//! One transaction's OTP challenge, from "the bank sent an OTP" to "the payment is final".
//!
//! The whole lifecycle lives here, top to bottom: the state, the commands that issue
//! requests (or refuse), the handling of answers and transport failures, and the timers.
//! See `docs/lifecycle.md` for the state diagram.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::card::CardSummary;
use crate::clock::Stamp;
use crate::config::Config;
use crate::error::{Malformed, ResponseError};
use crate::id::{HeaderValue, PathId};
use crate::otp::Otp;
use crate::outcome::{Outcome, Refusal, SendFailure, TimerEvent, Uncertainty};
use crate::policy::Policy;
use crate::request::{self, Outgoing, Request, Token};
use crate::response::{self, ErrorMeaning, Params, TxnBody};
use crate::status::Status;

/// The version of the persisted JSON form written by this library.
pub const FORMAT_VERSION: u32 = 1;

/// A Direct OTP challenge: a sans-IO state machine for one card transaction.
///
/// * **Commands** ([`resend`](Self::resend), [`submit`](Self::submit),
///   [`check_status`](Self::check_status), [`go_to_bank_page`](Self::go_to_bank_page))
///   return the request to send, or a [`Refusal`] that changes nothing.
/// * **Inputs** ([`handle_response`](Self::handle_response),
///   [`handle_send_failure`](Self::handle_send_failure)) take the answer to the request in
///   flight, identified by its [`Token`], and return an [`Outcome`].
/// * **Timers**: [`poll_timeout`](Self::poll_timeout) gives the next deadline and
///   [`handle_timeout`](Self::handle_timeout) acts on it.
/// * **Getters** tell a UI what to show.
///
/// Time is always an argument; time that goes backwards is treated as the latest time seen.
/// At most one request is in flight. The challenge serializes with serde (without the API
/// key or any OTP) and round-trips exactly.
///
/// ```
/// use direct_otp::{Config, Outcome, Otp, Policy, Started};
/// use time::macros::datetime;
///
/// let config = Config::sandbox("my_api_key")?;
/// let now = datetime!(2026-11-25 10:00 UTC);
/// // The answer to `POST /txns` (sent by your HTTP client).
/// let body = br#"{"order_id":"ord_1","status":"PENDING_VBV","payment":{"authentication":{
///     "method":"POST","url":"https://sandbox.juspay.in/v2/txns/txn_1/authenticate",
///     "params":{"id":"txn_1","challenge_id":"ch_1","auth_type":"OTP",
///               "submit_otp_allowed":true,"resend_otp_allowed":true}}}}"#;
/// let Started::Challenge(mut challenge) =
///     Started::from_response("customer_1", Policy::default(), 200, body, now)?
/// else { unreachable!() };
///
/// let out = challenge.submit(&config, &Otp::new("123456")?, now)?;
/// assert_eq!(out.request.url(), "https://sandbox.juspay.in/v2/txns/txn_1/authenticate");
/// // ... send out.request, then hand the answer back:
/// let answer = br#"{"status":"CHARGED"}"#;
/// let outcome = challenge.handle_response(out.token, 200, answer, now)?;
/// assert!(matches!(outcome, Outcome::Approved(_)));
/// assert!(challenge.is_final());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// The derives write inherent `Challenge::serialize`/`deserialize`; the trait impls at the
// end of this file call them, and check a loaded state's consistency.
#[serde(remote = "Self")]
pub struct Challenge {
    format: FormatVersion,
    order_id: PathId,
    txn_id: PathId,
    challenge_id: PathId,
    routing_id: HeaderValue,
    status: Status,
    card: CardSummary,
    fallback_url: Option<String>,
    submit_allowed: bool,
    resend_allowed: bool,
    otp_sent: u32,
    server_send_limit: Option<u32>,
    attempts: u32,
    server_attempt_limit: Option<u32>,
    policy: Policy,
    phase: Phase,
    created_at: Stamp,
    last_seen: Stamp,
    cooldown_until: Option<Stamp>,
    next_token: u64,
}

/// Where the challenge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum Phase {
    /// No request in flight.
    Resting { rest: Rest },
    /// One request in flight; `rest` is where to go back to if it changes nothing.
    InFlight {
        token: Token,
        kind: Pending,
        rest: Rest,
    },
    /// The payment is final; `status` says how. Nothing changes any more.
    Final,
}

/// The resting places between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Rest {
    /// The OTP page is usable (within the limits).
    Open,
    /// A submit or resend was lost: only the order status can tell what happened.
    MustReconcile,
    /// The cardholder was sent to the bank's page; the order status tells the result.
    BankPage,
    /// The lifetime ended before the payment was final.
    Expired,
}

/// The kinds of request a challenge issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Pending {
    Resend,
    Submit,
    OrderStatus,
}

/// What the UI should do next, from [`Challenge::next_step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NextStep<'a> {
    /// Show the OTP input (and "Resend" when [`Challenge::can_resend`] says so).
    EnterOtp,
    /// A request is in flight: wait for its answer.
    Wait(Token),
    /// The outcome is unknown (or still being processed): check the order status.
    CheckStatus,
    /// OTP entry is over: send the browser to this bank page, then check the order status.
    BankPage(&'a str),
    /// The cardholder is on the bank page: check the order status when they come back.
    AwaitBankPage,
    /// The OTP page expired and no bank page is known: check the order status.
    Expired,
    /// The payment is final.
    Finished(&'a Status),
}

/// The data a new challenge starts from (read from the start response).
pub(crate) struct Seed<'a> {
    pub order_id: PathId,
    pub txn_id: PathId,
    pub challenge_id: PathId,
    pub routing_id: HeaderValue,
    pub body: &'a TxnBody<'a>,
    pub policy: Policy,
    pub now: OffsetDateTime,
}

impl Challenge {
    pub(crate) fn new(seed: Seed<'_>) -> Self {
        let now = Stamp::from_time(seed.now);
        let mut c = Challenge {
            format: FormatVersion,
            order_id: seed.order_id,
            txn_id: seed.txn_id,
            challenge_id: seed.challenge_id,
            routing_id: seed.routing_id,
            status: Status::PendingVbv,
            card: CardSummary::default(),
            fallback_url: None,
            submit_allowed: true,
            resend_allowed: true,
            otp_sent: 0,
            server_send_limit: None,
            attempts: 0,
            server_attempt_limit: None,
            policy: seed.policy.normalized(),
            phase: Phase::Resting { rest: Rest::Open },
            created_at: now,
            last_seen: now,
            cooldown_until: None,
            next_token: 1,
        };
        c.apply_txn(seed.body, seed.body.params(), Counted::Send, now);
        c
    }

    // ----- Commands -------------------------------------------------------------------

    /// Asks the bank to send a new OTP: `POST /v2/txns/{id}/authenticate/{challenge_id}/resend`.
    pub fn resend(&mut self, config: &Config, now: OffsetDateTime) -> Result<Outgoing, Refusal> {
        let now = self.effective(now);
        let rest = self.check_resend_at(now)?;
        let req = request::resend(
            config,
            self.txn_id.as_str(),
            self.challenge_id.as_str(),
            self.routing_id.shared(),
        );
        Ok(self.issue(Pending::Resend, rest, req, now))
    }

    /// Submits the OTP: `POST /v2/txns/{id}/authenticate`. The OTP goes into the request body
    /// only; the challenge does not keep it.
    pub fn submit(
        &mut self,
        config: &Config,
        otp: &Otp,
        now: OffsetDateTime,
    ) -> Result<Outgoing, Refusal> {
        let now = self.effective(now);
        let rest = self.check_submit_at(now)?;
        let req = request::submit(
            config,
            self.txn_id.as_str(),
            self.challenge_id.as_str(),
            self.routing_id.shared(),
            otp,
        );
        Ok(self.issue(Pending::Submit, rest, req, now))
    }

    /// Asks for the order status (`GET /orders/{order_id}`), the authoritative answer after
    /// a lost response, after the bank page, or whenever in doubt. Safe to repeat.
    pub fn check_status(
        &mut self,
        config: &Config,
        now: OffsetDateTime,
    ) -> Result<Outgoing, Refusal> {
        let now = self.effective(now);
        let rest = self.check_idle()?;
        let req = request::order_status(config, self.order_id.as_str(), self.routing_id.shared());
        Ok(self.issue(Pending::OrderStatus, rest, req, now))
    }

    /// The cardholder leaves the OTP page for the bank's page: returns the `fallback_url` to
    /// send the browser to (exactly as the server gave it). From then on OTP entry is closed
    /// and [`check_status`](Self::check_status) tells the result.
    pub fn go_to_bank_page(&mut self, now: OffsetDateTime) -> Result<&str, Refusal> {
        let now = self.effective(now);
        let rest = self.check_idle()?;
        if rest == Rest::BankPage {
            return Err(Refusal::OnBankPage);
        }
        if self.fallback_url.is_none() {
            return Err(Refusal::NoFallback);
        }
        self.phase = Phase::Resting {
            rest: Rest::BankPage,
        };
        self.cooldown_until = None;
        self.last_seen = now;
        Ok(self.fallback_url.as_deref().unwrap_or_default())
    }

    fn issue(&mut self, kind: Pending, rest: Rest, request: Request, now: Stamp) -> Outgoing {
        let token = Token(self.next_token);
        self.next_token = self.next_token.saturating_add(1);
        self.phase = Phase::InFlight { token, kind, rest };
        self.last_seen = now;
        Outgoing { token, request }
    }

    // ----- Rules for commands (also behind the `can_*` getters) -------------------------

    fn check_idle(&self) -> Result<Rest, Refusal> {
        match self.phase {
            Phase::Final => Err(Refusal::AlreadyFinal(self.status.clone())),
            Phase::InFlight { token, .. } => Err(Refusal::InFlight(token)),
            Phase::Resting { rest } => Ok(rest),
        }
    }

    fn check_otp_page(&self, now: Stamp) -> Result<Rest, Refusal> {
        match self.check_idle()? {
            Rest::MustReconcile => Err(Refusal::MustReconcile),
            Rest::BankPage => Err(Refusal::OnBankPage),
            Rest::Expired => Err(Refusal::Expired),
            Rest::Open if now >= self.expires() => Err(Refusal::Expired),
            Rest::Open => Ok(Rest::Open),
        }
    }

    fn check_submit_at(&self, now: Stamp) -> Result<Rest, Refusal> {
        let rest = self.check_otp_page(now)?;
        if self.attempts >= self.attempt_limit() {
            return Err(Refusal::AttemptLimitReached {
                limit: self.attempt_limit(),
            });
        }
        if !self.submit_allowed {
            return Err(Refusal::SubmitNotAllowed);
        }
        Ok(rest)
    }

    fn check_resend_at(&self, now: Stamp) -> Result<Rest, Refusal> {
        let rest = self.check_otp_page(now)?;
        if self.otp_sent >= self.send_limit() {
            return Err(Refusal::SendLimitReached {
                limit: self.send_limit(),
            });
        }
        if !self.resend_allowed {
            return Err(Refusal::ResendNotAllowed);
        }
        match self.cooldown_until {
            Some(until) if now < until => Err(Refusal::Cooldown {
                until: until.to_time(),
            }),
            _ => Ok(rest),
        }
    }

    // ----- Inputs ---------------------------------------------------------------------

    /// Hands back the answer to the request `token`: its HTTP status and body.
    ///
    /// An answer for any token but the one in flight is refused with an [`InputError`] and
    /// changes nothing. Any body, however malformed, gives an [`Outcome`]; an unreadable
    /// answer to a submit or resend moves the challenge to "check the order status".
    ///
    /// [`InputError`]: crate::InputError
    pub fn handle_response(
        &mut self,
        token: Token,
        http_status: u16,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Outcome, crate::InputError> {
        let (kind, rest) = self.answered(token)?;
        let now = self.effective(now);
        self.last_seen = now;
        self.phase = Phase::Resting { rest };
        Ok(match kind {
            Pending::Resend => self.on_resend(http_status, body, now),
            Pending::Submit => self.on_submit(http_status, body, now),
            Pending::OrderStatus => self.on_order_status(rest, http_status, body),
        })
    }

    /// Reports that sending the request `token` failed. `SendFailure::MaybeSent` on a submit
    /// or resend moves the challenge to "check the order status"; a lost status check, or a
    /// request that surely was not sent, changes nothing.
    pub fn handle_send_failure(
        &mut self,
        token: Token,
        failure: SendFailure,
        now: OffsetDateTime,
    ) -> Result<Outcome, crate::InputError> {
        let (kind, rest) = self.answered(token)?;
        let now = self.effective(now);
        self.last_seen = now;
        self.phase = Phase::Resting { rest };
        Ok(match (failure, kind) {
            (SendFailure::MaybeSent, Pending::Resend | Pending::Submit) => {
                self.uncertain(kind, Uncertainty::MaybeSent, now)
            }
            _ => Outcome::NotDelivered,
        })
    }

    fn answered(&self, got: Token) -> Result<(Pending, Rest), crate::InputError> {
        match self.phase {
            Phase::InFlight { token, kind, rest } if token == got => Ok((kind, rest)),
            Phase::InFlight { token, .. } => Err(crate::InputError::StaleToken {
                got,
                in_flight: token,
            }),
            _ => Err(crate::InputError::NothingInFlight { got }),
        }
    }

    fn on_resend(&mut self, http_status: u16, body: &[u8], now: Stamp) -> Outcome {
        match http_status {
            200..=299 => match response::parse::<TxnBody>(http_status, body) {
                Ok(txn) => {
                    self.apply_txn(&txn, txn.params(), Counted::Send, now);
                    Outcome::OtpSent {
                        sends_left: self.sends_left(),
                    }
                }
                Err(e) => self.uncertain(Pending::Resend, Uncertainty::Response(e), now),
            },
            400..=499 => {
                let envelope = response::Envelope::parse(http_status, body);
                match envelope.meaning() {
                    ErrorMeaning::LimitExceeded => {
                        self.otp_sent = self.send_limit();
                        self.resend_allowed = false;
                        self.cooldown_until = None;
                        Outcome::SendLimitReached
                    }
                    ErrorMeaning::Duplicate => {
                        let e = envelope.error().into();
                        self.uncertain(Pending::Resend, Uncertainty::Response(e), now)
                    }
                    ErrorMeaning::WrongOtp | ErrorMeaning::Refused => {
                        Outcome::Rejected(envelope.error().into())
                    }
                }
            }
            _ => {
                let e = response::status_error(http_status, body);
                self.uncertain(Pending::Resend, Uncertainty::Response(e), now)
            }
        }
    }

    fn on_submit(&mut self, http_status: u16, body: &[u8], now: Stamp) -> Outcome {
        match http_status {
            200..=299 => {
                let txn = match response::parse::<TxnBody>(http_status, body) {
                    Ok(txn) => txn,
                    Err(e) => {
                        return self.uncertain(Pending::Submit, Uncertainty::Response(e), now)
                    }
                };
                let Some(status) = txn.status.non_empty().map(Status::parse) else {
                    let e = ResponseError::Malformed {
                        http_status,
                        problem: Malformed::Missing("status"),
                    };
                    return self.uncertain(Pending::Submit, Uncertainty::Response(e), now);
                };
                if status.is_final() {
                    return self.finish(status);
                }
                if status == Status::PendingVbv {
                    self.status = status;
                    self.apply_txn(&txn, txn.params(), Counted::Attempt, now);
                    return self.after_wrong_otp();
                }
                // Accepted but still processing (AUTHORIZING, ...) or an unknown status. The
                // OTP was used: count the attempt (or take the server's counters), so a
                // status check that finds PENDING_VBV again reopens the page within limits.
                self.apply_txn(&txn, txn.params(), Counted::Attempt, now);
                self.status = status.clone();
                self.phase = Phase::Resting {
                    rest: Rest::MustReconcile,
                };
                Outcome::Pending(status)
            }
            400..=499 => {
                let envelope = response::Envelope::parse(http_status, body);
                match envelope.meaning() {
                    ErrorMeaning::WrongOtp => {
                        self.count(Counted::Attempt, now);
                        self.after_wrong_otp()
                    }
                    ErrorMeaning::LimitExceeded => {
                        self.attempts = self.attempt_limit();
                        Outcome::AttemptsExhausted
                    }
                    ErrorMeaning::Duplicate => {
                        let e = envelope.error().into();
                        self.uncertain(Pending::Submit, Uncertainty::Response(e), now)
                    }
                    ErrorMeaning::Refused => Outcome::Rejected(envelope.error().into()),
                }
            }
            _ => {
                let e = response::status_error(http_status, body);
                self.uncertain(Pending::Submit, Uncertainty::Response(e), now)
            }
        }
    }

    fn after_wrong_otp(&self) -> Outcome {
        if self.attempts >= self.attempt_limit() || !self.submit_allowed {
            Outcome::AttemptsExhausted
        } else {
            Outcome::WrongOtp {
                attempts_left: self.attempts_left(),
            }
        }
    }

    fn on_order_status(&mut self, rest: Rest, http_status: u16, body: &[u8]) -> Outcome {
        let status = match response::order_status(http_status, body) {
            Ok(status) => status,
            Err(e) => return Outcome::Rejected(e),
        };
        if status.is_final() {
            return self.finish(status);
        }
        let rest = match (&status, rest) {
            // Still waiting for the OTP: a lost submit or resend did not end it.
            (Status::PendingVbv, Rest::MustReconcile) => Rest::Open,
            (Status::PendingVbv, rest) => rest,
            // Past OTP entry but not final: keep checking.
            (_, Rest::Open) => Rest::MustReconcile,
            (_, rest) => rest,
        };
        self.phase = Phase::Resting { rest };
        self.status = status.clone();
        Outcome::Pending(status)
    }

    /// The outcome of a submit or resend is unknown: count it as if it happened (so the
    /// limits are never exceeded) and allow only a status check.
    fn uncertain(&mut self, kind: Pending, why: Uncertainty, now: Stamp) -> Outcome {
        match kind {
            Pending::Resend => self.count(Counted::Send, now),
            Pending::Submit => self.count(Counted::Attempt, now),
            Pending::OrderStatus => {}
        }
        self.phase = Phase::Resting {
            rest: Rest::MustReconcile,
        };
        Outcome::MustReconcile(why)
    }

    fn finish(&mut self, status: Status) -> Outcome {
        self.phase = Phase::Final;
        self.cooldown_until = None;
        self.status = status.clone();
        if status.is_success() {
            Outcome::Approved(status)
        } else {
            Outcome::Declined(status)
        }
    }

    /// Takes in what a transaction-shaped answer says: flags, fallback URL, card facts,
    /// limits and counters. `counted` is what this answer means happened, used when the
    /// server does not send its own counter.
    fn apply_txn(
        &mut self,
        txn: &TxnBody<'_>,
        params: Option<&Params<'_>>,
        counted: Counted,
        now: Stamp,
    ) {
        let none = Params::default();
        let p = params.unwrap_or(&none);
        if let Some(v) = p.submit_otp_allowed.0 {
            self.submit_allowed = v;
        }
        if let Some(v) = p.resend_otp_allowed.0 {
            self.resend_allowed = v;
        }
        let card = txn.card();
        let isin = card.and_then(|c| c.card_isin.non_empty());
        let last_four = card.and_then(|c| c.last_four_digits.non_empty());
        let brand = card.and_then(|c| c.card_brand.non_empty());
        let issuer = card.and_then(|c| c.card_issuer.non_empty());
        let summary = &mut self.card;
        for (value, slot) in [
            (p.card_isin.non_empty().or(isin), &mut summary.isin),
            (last_four, &mut summary.last_four),
            (p.card_brand.non_empty().or(brand), &mut summary.brand),
            (
                p.card_issuer_bank_name.non_empty().or(issuer),
                &mut summary.issuer,
            ),
            (p.fallback_url.non_empty(), &mut self.fallback_url),
        ] {
            update(slot, value);
        }
        if p.max_otp_send_limit.0.is_some() {
            self.server_send_limit = p.max_otp_send_limit.0;
        }
        if p.max_attempts.0.is_some() {
            self.server_attempt_limit = p.max_attempts.0;
        }
        if let Some(n) = p.times_otp_sent.0 {
            self.otp_sent = n;
        }
        if let Some(n) = p.current_attempt.0 {
            self.attempts = n;
        }
        let server_counter = match counted {
            Counted::Send => p.times_otp_sent.0,
            Counted::Attempt => p.current_attempt.0,
        };
        match (server_counter, counted) {
            (None, _) => self.count(counted, now),
            (Some(_), Counted::Send) => self.arm_cooldown(now),
            (Some(_), Counted::Attempt) => {}
        }
        self.clamp_counters();
    }

    /// Counts one send or attempt locally.
    fn count(&mut self, counted: Counted, now: Stamp) {
        match counted {
            Counted::Send => {
                self.otp_sent = self.otp_sent.saturating_add(1);
                self.arm_cooldown(now);
            }
            Counted::Attempt => self.attempts = self.attempts.saturating_add(1),
        }
        self.clamp_counters();
    }

    fn arm_cooldown(&mut self, now: Stamp) {
        self.cooldown_until = Some(now.plus(self.policy.resend_cooldown));
    }

    /// Counters never exceed their limits, whatever the server says.
    fn clamp_counters(&mut self) {
        self.otp_sent = self.otp_sent.min(self.send_limit());
        self.attempts = self.attempts.min(self.attempt_limit());
    }

    // ----- Timers ---------------------------------------------------------------------

    /// The next deadline to call [`handle_timeout`](Self::handle_timeout) at: the end of the
    /// resend cooldown or the end of the lifetime, whichever is first. `None` when no timer
    /// runs (a request is in flight, the page is closed, or the payment is final).
    pub fn poll_timeout(&self) -> Option<OffsetDateTime> {
        self.next_deadline().map(|(at, _)| at.to_time())
    }

    /// Fires the timer due at `now`, if any. Returns `None` (and changes nothing) when no
    /// timer is due. When both are due, the expiry wins (a cooldown ending on a closed page
    /// means nothing).
    pub fn handle_timeout(&mut self, now: OffsetDateTime) -> Option<TimerEvent> {
        let now = self.effective(now);
        let (at, _) = self.next_deadline()?;
        if now < at {
            return None;
        }
        self.last_seen = now;
        self.cooldown_until = None;
        if now >= self.expires() {
            self.phase = Phase::Resting {
                rest: Rest::Expired,
            };
            Some(TimerEvent::Expired)
        } else {
            Some(TimerEvent::ResendAvailable)
        }
    }

    /// The single source of both timer functions, so they always agree.
    fn next_deadline(&self) -> Option<(Stamp, Timer)> {
        if self.phase != (Phase::Resting { rest: Rest::Open }) {
            return None;
        }
        let expiry = (self.expires(), Timer::Expiry);
        let cooldown = self
            .cooldown_until
            .filter(|_| self.resend_allowed && self.otp_sent < self.send_limit())
            .map(|at| (at, Timer::Cooldown));
        Some(match cooldown {
            Some(c) if c.0 < expiry.0 => c,
            _ => expiry,
        })
    }

    fn expires(&self) -> Stamp {
        self.created_at.plus(self.policy.lifetime)
    }

    /// `now`, or the latest time seen if `now` is earlier.
    fn effective(&self, now: OffsetDateTime) -> Stamp {
        Stamp::from_time(now).max(self.last_seen)
    }

    // ----- Getters --------------------------------------------------------------------

    /// What the UI should do next.
    pub fn next_step(&self, now: OffsetDateTime) -> NextStep<'_> {
        let now = self.effective(now);
        match self.phase {
            Phase::Final => NextStep::Finished(&self.status),
            Phase::InFlight { token, .. } => NextStep::Wait(token),
            Phase::Resting { rest } => match rest {
                Rest::MustReconcile => NextStep::CheckStatus,
                Rest::BankPage => NextStep::AwaitBankPage,
                Rest::Open if self.check_submit_at(now).is_ok() => NextStep::EnterOtp,
                Rest::Open | Rest::Expired => match &self.fallback_url {
                    Some(url) => NextStep::BankPage(url),
                    None if rest == Rest::Expired || now >= self.expires() => NextStep::Expired,
                    None => NextStep::CheckStatus,
                },
            },
        }
    }

    /// Whether [`submit`](Self::submit) would be accepted at `now`.
    pub fn can_submit(&self, now: OffsetDateTime) -> bool {
        self.check_submit(now).is_ok()
    }

    /// Why [`submit`](Self::submit) would be refused at `now`, if it would.
    pub fn check_submit(&self, now: OffsetDateTime) -> Result<(), Refusal> {
        self.check_submit_at(self.effective(now)).map(|_| ())
    }

    /// Whether [`resend`](Self::resend) would be accepted at `now`.
    pub fn can_resend(&self, now: OffsetDateTime) -> bool {
        self.check_resend(now).is_ok()
    }

    /// Why [`resend`](Self::resend) would be refused at `now`, if it would.
    pub fn check_resend(&self, now: OffsetDateTime) -> Result<(), Refusal> {
        self.check_resend_at(self.effective(now)).map(|_| ())
    }

    /// When the resend cooldown ends, if one runs and a resend could follow it.
    pub fn resend_available_at(&self) -> Option<OffsetDateTime> {
        match self.next_deadline() {
            Some((at, Timer::Cooldown)) => Some(at.to_time()),
            _ => None,
        }
    }

    /// OTP sends so far (the first one at start included).
    pub fn otp_sends(&self) -> u32 {
        self.otp_sent
    }

    /// The send limit in force (the server's, else the policy's).
    pub fn send_limit(&self) -> u32 {
        self.server_send_limit.unwrap_or(self.policy.max_sends)
    }

    /// Sends left before the limit.
    pub fn sends_left(&self) -> u32 {
        self.send_limit().saturating_sub(self.otp_sent)
    }

    /// OTP submissions so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The attempt limit in force (the server's, else the policy's).
    pub fn attempt_limit(&self) -> u32 {
        self.server_attempt_limit
            .unwrap_or(self.policy.max_attempts)
    }

    /// Tries left before the limit.
    pub fn attempts_left(&self) -> u32 {
        self.attempt_limit().saturating_sub(self.attempts)
    }

    /// The bank page to fall back to, exactly as the server gave it.
    pub fn fallback_url(&self) -> Option<&str> {
        self.fallback_url.as_deref()
    }

    /// The masked card facts for display.
    pub fn card(&self) -> &CardSummary {
        &self.card
    }

    /// The last known status.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// True once the payment is final; nothing changes after that.
    pub fn is_final(&self) -> bool {
        self.phase == Phase::Final
    }

    /// The token of the request in flight, if any.
    pub fn in_flight(&self) -> Option<Token> {
        match self.phase {
            Phase::InFlight { token, .. } => Some(token),
            _ => None,
        }
    }

    /// When the OTP page closes.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires().to_time()
    }

    /// The order id.
    pub fn order_id(&self) -> &str {
        self.order_id.as_str()
    }

    /// The transaction id used in the API paths.
    pub fn txn_id(&self) -> &str {
        self.txn_id.as_str()
    }

    /// The challenge id.
    pub fn challenge_id(&self) -> &str {
        self.challenge_id.as_str()
    }

    /// The policy in force, its durations in whole milliseconds (as the challenge counts
    /// and persists them).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// Replaces a kept text with a new value from the server, copying only when it changed.
fn update(slot: &mut Option<String>, value: Option<&str>) {
    if let Some(v) = value {
        if slot.as_deref() != Some(v) {
            *slot = Some(v.to_owned());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Cooldown,
    Expiry,
}

/// What an answer means happened, for counting when the server gives no counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Send,
    Attempt,
}

impl Serialize for Challenge {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Challenge::serialize(self, s)
    }
}

/// Loads a persisted challenge: the format version, safe ids, and then the rules every
/// challenge this library builds keeps. A state that breaks one (corrupt or tampered
/// storage) is refused rather than acted on: a paid order that looks open could take an
/// OTP again.
impl<'de> Deserialize<'de> for Challenge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let c = Challenge::deserialize(d)?;
        match c.inconsistency() {
            None => Ok(c),
            Some(rule) => Err(serde::de::Error::custom(format_args!(
                "inconsistent challenge state: {rule}"
            ))),
        }
    }
}

impl Challenge {
    /// The first rule of a built challenge that this state breaks, if any.
    fn inconsistency(&self) -> Option<&'static str> {
        if self.otp_sent > self.send_limit() {
            return Some("more OTPs sent than the send limit");
        }
        if self.attempts > self.attempt_limit() {
            return Some("more attempts than the attempt limit");
        }
        if self.is_final() != self.status.is_final() {
            return Some("the phase and the status disagree on finality");
        }
        if self.created_at > self.last_seen {
            return Some("created after it was last seen");
        }
        match self.phase {
            // Tokens are issued in order; the counter saturates at the last one.
            Phase::InFlight { token, .. } if token.0 >= self.next_token && token.0 != u64::MAX => {
                Some("the token in flight was never issued")
            }
            _ => None,
        }
    }
}

/// Marks the persisted format; refuses any version but [`FORMAT_VERSION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FormatVersion;

impl Serialize for FormatVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(FORMAT_VERSION)
    }
}

impl<'de> Deserialize<'de> for FormatVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u32::deserialize(d)? {
            FORMAT_VERSION => Ok(FormatVersion),
            v => Err(serde::de::Error::custom(format_args!(
                "challenge format version {v} is not supported (this library reads {FORMAT_VERSION})"
            ))),
        }
    }
}
