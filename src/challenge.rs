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
use crate::error::ForeignAnswer;
use crate::error::{Malformed, ResponseError};
use crate::exchange::Reply;
use crate::id::{HeaderValue, PathId};
use crate::otp::Otp;
use crate::outcome::{Outcome, Refusal, SendFailure, TimerEvent, Uncertainty};
use crate::policy::Policy;
use crate::request::{self, Outgoing, Request};
use crate::response::{self, ErrorMeaning, Params, TxnBody};
use crate::status::Status;
use crate::token::{RecordId, RequestKind, Token};
use crate::view::NextStep;

/// The version of the persisted JSON form written by this library.
pub const FORMAT_VERSION: u32 = 2;

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
    record: RecordId,
    revision: u64,
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
}

/// Where the challenge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum Phase {
    /// No request in flight.
    Resting { rest: Rest },
    /// One request in flight, issued at `sent_at`; `rest` is where to go back to if it
    /// changes nothing.
    InFlight {
        token: Token,
        kind: Pending,
        rest: Rest,
        sent_at: Stamp,
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
    CheckStatus,
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

impl Pending {
    fn request_kind(self) -> RequestKind {
        match self {
            Pending::Resend => RequestKind::Resend,
            Pending::Submit => RequestKind::Submit,
            Pending::OrderStatus => RequestKind::OrderStatus,
        }
    }
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
            record: RecordId::random(),
            revision: 1,
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
    /// and [`check_status`](Self::check_status) tells the result. Asking again while on the
    /// bank page (a page reload) gives the same URL and changes nothing.
    pub fn go_to_bank_page(&mut self, now: OffsetDateTime) -> Result<String, Refusal> {
        let now = self.effective(now);
        let rest = self.check_idle()?;
        let Some(url) = self.fallback_url.clone() else {
            return Err(Refusal::NoBankPage);
        };
        if rest != Rest::BankPage {
            self.touch(now);
            self.phase = Phase::Resting {
                rest: Rest::BankPage,
            };
            self.cooldown_until = None;
        }
        Ok(url)
    }

    fn issue(&mut self, kind: Pending, rest: Rest, request: Request, now: Stamp) -> Outgoing {
        self.touch(now);
        let token = Token::issue(self.record, self.revision, kind.request_kind());
        self.phase = Phase::InFlight {
            token,
            kind,
            rest,
            sent_at: now,
        };
        Outgoing { token, request }
    }

    /// Takes the identity and revision of the payment record this challenge becomes part
    /// of (its tokens then name that record).
    pub(crate) fn adopt(&mut self, record: RecordId, revision: u64) {
        self.record = record;
        self.revision = revision;
    }

    /// The latest time seen.
    pub(crate) fn last_seen(&self) -> OffsetDateTime {
        self.last_seen.to_time()
    }

    /// Every change goes through here: a new revision, and the latest time seen.
    fn touch(&mut self, now: Stamp) {
        self.revision = self.revision.saturating_add(1);
        self.last_seen = now;
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
            Rest::CheckStatus => Err(Refusal::CheckStatus),
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

    /// Hands back the result of sending the request `token`: its answer, or how sending
    /// failed. The same as [`handle_response`](Self::handle_response) or
    /// [`handle_send_failure`](Self::handle_send_failure).
    pub fn handle(
        &mut self,
        token: Token,
        reply: Reply,
        now: OffsetDateTime,
    ) -> Result<Outcome, crate::InputError> {
        match reply {
            Reply::Answer { status, body } => self.handle_response(token, status, &body, now),
            Reply::Failed(failure) => self.handle_send_failure(token, failure, now),
        }
    }

    /// Hands back the answer to the request `token`: its HTTP status and body.
    ///
    /// An answer for any token but the one in flight, or an answer that names another order
    /// or transaction ([`InputError::Foreign`]), is refused with an [`InputError`] and changes
    /// nothing. Any other body, however malformed, gives an [`Outcome`]; an unreadable answer
    /// to a submit or resend moves the challenge to "check the order status".
    ///
    /// [`InputError`]: crate::InputError
    /// [`InputError::Foreign`]: crate::InputError::Foreign
    pub fn handle_response(
        &mut self,
        token: Token,
        http_status: u16,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Outcome, crate::InputError> {
        let (kind, rest) = self.answered(token)?;
        // Read the answer, and refuse one about another order, before changing anything.
        let success = (200..=299).contains(&http_status);
        let txn = |c: &Self| {
            let txn = response::parse::<TxnBody>(http_status, body);
            if let Ok(t) = &txn {
                c.same_transaction(t)?;
            }
            Ok::<_, ForeignAnswer>(txn)
        };
        let answer = match kind {
            Pending::Resend if success => Answer::Resent(txn(self)?),
            Pending::Submit if success => Answer::Submitted(txn(self)?),
            Pending::Resend => Answer::ResendError,
            Pending::Submit => Answer::SubmitError,
            Pending::OrderStatus => {
                // The challenge knows its authentication id, not the order's `txn_id`: the
                // payment binds the answer to its transaction before handing it here.
                match response::order_status(self.order_id.as_str(), None, http_status, body) {
                    Err(ResponseError::Foreign(e)) => return Err(e.into()),
                    status => Answer::Order(status),
                }
            }
        };
        let now = self.effective(now);
        self.touch(now);
        self.phase = Phase::Resting { rest };
        Ok(match answer {
            Answer::Resent(txn) => self.on_resend_ok(txn, now),
            Answer::Submitted(txn) => self.on_submit_ok(http_status, txn, now),
            Answer::ResendError => self.on_resend_error(http_status, body, now),
            Answer::SubmitError => self.on_submit_error(http_status, body, now),
            Answer::Order(status) => self.on_order_status(rest, status),
        })
    }

    /// An answer naming another order, or another transaction in its authentication
    /// parameters, is not about the request asked.
    fn same_transaction(&self, txn: &TxnBody<'_>) -> Result<(), ForeignAnswer> {
        response::same_order(&txn.order_id, self.order_id.as_str())?;
        match txn.params().and_then(|p| p.id.non_empty()) {
            Some(id) if id != self.txn_id.as_str() => Err(ForeignAnswer {
                field: "payment.authentication.params.id",
            }),
            _ => Ok(()),
        }
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
        self.touch(now);
        self.phase = Phase::Resting { rest };
        Ok(match (failure, kind) {
            (SendFailure::MaybeSent, Pending::Resend | Pending::Submit) => {
                self.uncertain(kind, Uncertainty::MaybeSent, now)
            }
            _ => Outcome::NotDelivered,
        })
    }

    /// Recovers a request nobody answered: one in flight since `grace` or longer before
    /// `now` (a worker died, or its answer was lost) is treated as "maybe sent", exactly as
    /// [`handle_send_failure`](Self::handle_send_failure) with
    /// [`SendFailure::MaybeSent`]: a submit or resend moves to "check the order status", a
    /// status check is simply over. Returns `None`, and changes nothing, when no request is
    /// in flight or it is younger than `grace`.
    ///
    /// Choose `grace` longer than your transport's timeout, so that a request still being
    /// answered is never recovered under a live worker. See `docs/concurrency.md`.
    pub fn recover(&mut self, grace: std::time::Duration, now: OffsetDateTime) -> Option<Outcome> {
        let Phase::InFlight { token, sent_at, .. } = self.phase else {
            return None;
        };
        if self.effective(now) < sent_at.plus(grace) {
            return None;
        }
        self.handle_send_failure(token, SendFailure::MaybeSent, now)
            .ok()
    }

    /// Whether `token` is that of the request in flight (what an answer to it would be
    /// checked against first).
    pub(crate) fn check_token(&self, token: Token) -> Result<(), crate::InputError> {
        self.answered(token).map(|_| ())
    }

    fn answered(&self, got: Token) -> Result<(Pending, Rest), crate::InputError> {
        if got.record() != self.record {
            return Err(crate::InputError::OtherRecord { got });
        }
        match self.phase {
            Phase::InFlight {
                token, kind, rest, ..
            } if token == got => Ok((kind, rest)),
            Phase::InFlight { token, .. } => Err(crate::InputError::StaleToken {
                got,
                in_flight: token,
            }),
            Phase::Final => Err(crate::InputError::AlreadyFinal { got }),
            Phase::Resting { .. } => Err(crate::InputError::NothingInFlight { got }),
        }
    }

    fn on_resend_ok(&mut self, txn: Result<TxnBody<'_>, ResponseError>, now: Stamp) -> Outcome {
        let txn = match txn {
            Ok(txn) => txn,
            Err(e) => return self.uncertain(Pending::Resend, Uncertainty::Response(e), now),
        };
        // The docs say not to validate a resend's status; but a final one means the
        // transaction is over (another copy or the bank page settled it): settle, never
        // reopen the OTP page.
        match txn.status.non_empty().map(Status::parse) {
            Some(status) if status.is_final() => self.finish(status),
            _ => {
                self.apply_txn(&txn, txn.params(), Counted::Send, now);
                Outcome::OtpSent {
                    sends_left: self.sends_left(),
                }
            }
        }
    }

    fn on_resend_error(&mut self, http_status: u16, body: &[u8], now: Stamp) -> Outcome {
        match http_status {
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
                    ErrorMeaning::Stale => self.stale(envelope.error()),
                    ErrorMeaning::WrongOtp | ErrorMeaning::Refused => {
                        Outcome::rejected(envelope.error().into())
                    }
                }
            }
            _ => {
                let e = response::status_error(http_status, body);
                self.uncertain(Pending::Resend, Uncertainty::Response(e), now)
            }
        }
    }

    fn on_submit_ok(
        &mut self,
        http_status: u16,
        txn: Result<TxnBody<'_>, ResponseError>,
        now: Stamp,
    ) -> Outcome {
        let txn = match txn {
            Ok(txn) => txn,
            Err(e) => return self.uncertain(Pending::Submit, Uncertainty::Response(e), now),
        };
        let Some(status) = txn.status.non_empty().map(Status::parse) else {
            let e = ResponseError::Malformed {
                http_status,
                problem: Malformed::Missing("status"),
            };
            return self.uncertain(Pending::Submit, Uncertainty::Response(e), now);
        };
        // The OTP was used whatever the status says: count the attempt (or take the
        // server's counters).
        self.apply_txn(&txn, txn.params(), Counted::Attempt, now);
        if status.is_final() {
            return self.finish(status);
        }
        if status == Status::PendingVbv {
            self.status = status;
            return self.after_wrong_otp();
        }
        // Accepted but still processing (AUTHORIZING, ...) or an unknown status: a status
        // check that finds PENDING_VBV again reopens the page within limits.
        self.status = status.clone();
        self.phase = Phase::Resting {
            rest: Rest::CheckStatus,
        };
        Outcome::Pending(status)
    }

    fn on_submit_error(&mut self, http_status: u16, body: &[u8], now: Stamp) -> Outcome {
        match http_status {
            400..=499 => {
                let envelope = response::Envelope::parse(http_status, body);
                match envelope.meaning() {
                    ErrorMeaning::WrongOtp => {
                        self.count(Counted::Attempt, now);
                        self.after_wrong_otp()
                    }
                    ErrorMeaning::LimitExceeded => {
                        self.attempts = self.attempt_limit();
                        Outcome::AttemptLimitReached
                    }
                    ErrorMeaning::Duplicate => {
                        let e = envelope.error().into();
                        self.uncertain(Pending::Submit, Uncertainty::Response(e), now)
                    }
                    ErrorMeaning::Stale => self.stale(envelope.error()),
                    ErrorMeaning::Refused => Outcome::rejected(envelope.error().into()),
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
            Outcome::AttemptLimitReached
        } else {
            Outcome::WrongOtp {
                attempts_left: self.attempts_left(),
            }
        }
    }

    fn on_order_status(&mut self, rest: Rest, status: Result<Status, ResponseError>) -> Outcome {
        let status = match status {
            Ok(status) => status,
            Err(e) => return Outcome::rejected(e),
        };
        if status.is_final() {
            return self.finish(status);
        }
        let rest = match (&status, rest) {
            // Still waiting for the OTP: a lost submit or resend did not end it.
            (Status::PendingVbv, Rest::CheckStatus) => Rest::Open,
            (Status::PendingVbv, rest) => rest,
            // Past OTP entry but not final: keep checking.
            (_, Rest::Open) => Rest::CheckStatus,
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
            rest: Rest::CheckStatus,
        };
        Outcome::CheckStatus(why)
    }

    /// The bank says the transaction no longer waits for an OTP (`INVALID_ACTION`): this copy
    /// is stale. Nothing is counted (the request was refused); only the order status can
    /// say what happened.
    fn stale(&mut self, error: crate::ApiError) -> Outcome {
        self.phase = Phase::Resting {
            rest: Rest::CheckStatus,
        };
        Outcome::CheckStatus(Uncertainty::Stale(error.into()))
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
            (
                p.fallback_url
                    .non_empty()
                    .filter(|u| crate::link::is_browser_safe(u)),
                &mut self.fallback_url,
            ),
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
        self.touch(now);
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
    pub fn next_step(&self, now: OffsetDateTime) -> NextStep {
        let now = self.effective(now);
        match self.phase {
            Phase::Final => NextStep::Finished(self.status.clone()),
            Phase::InFlight { token, .. } => NextStep::Wait(token),
            Phase::Resting { rest } => match rest {
                Rest::CheckStatus => NextStep::CheckStatus,
                Rest::BankPage => NextStep::AwaitBankPage,
                Rest::Open if self.check_submit_at(now).is_ok() => NextStep::EnterOtp,
                Rest::Open | Rest::Expired => match &self.fallback_url {
                    Some(url) => NextStep::BankPage(url.clone()),
                    None if rest == Rest::Expired || now >= self.expires() => NextStep::Expired,
                    None => NextStep::CheckStatus,
                },
            },
        }
    }

    /// Whether [`submit`](Self::submit) would be accepted at `now`: `Ok(())`, or the
    /// [`Refusal`] it would give. Changes nothing.
    pub fn may_submit(&self, now: OffsetDateTime) -> Result<(), Refusal> {
        self.check_submit_at(self.effective(now)).map(|_| ())
    }

    /// Whether [`resend`](Self::resend) would be accepted at `now`: `Ok(())`, or the
    /// [`Refusal`] it would give. Changes nothing.
    pub fn may_resend(&self, now: OffsetDateTime) -> Result<(), Refusal> {
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

    /// The send limit in force (the server's, else the policy's), at most
    /// [`Policy::MAX_LIMIT`].
    pub fn send_limit(&self) -> u32 {
        self.server_send_limit
            .unwrap_or(self.policy.max_sends)
            .min(Policy::MAX_LIMIT)
    }

    /// Sends left before the limit.
    pub fn sends_left(&self) -> u32 {
        self.send_limit().saturating_sub(self.otp_sent)
    }

    /// OTP submissions so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The attempt limit in force (the server's, else the policy's), at most
    /// [`Policy::MAX_LIMIT`].
    pub fn attempt_limit(&self) -> u32 {
        self.server_attempt_limit
            .unwrap_or(self.policy.max_attempts)
            .min(Policy::MAX_LIMIT)
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

    /// When the request in flight was issued (and so, under the write-ahead rule, stored
    /// before it was sent). A recovery sweep looks for records in flight since long ago.
    pub fn in_flight_since(&self) -> Option<OffsetDateTime> {
        match self.phase {
            Phase::InFlight { sent_at, .. } => Some(sent_at.to_time()),
            _ => None,
        }
    }

    /// This record's random identity, drawn when it was created and kept in its persisted
    /// state. Every token it issues carries it.
    pub fn record_id(&self) -> RecordId {
        self.record
    }

    /// The revision: 1 when created, one more with every change (a command that issues a
    /// request, an answer, a recovery, a timer that fires, going to the bank page). A
    /// refused command or input changes nothing and keeps the revision. Store a record
    /// only if the stored revision is still the one you loaded (compare-and-swap): see
    /// `docs/concurrency.md`.
    pub fn revision(&self) -> u64 {
        self.revision
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

/// An answer, read (once) before the challenge changes.
enum Answer<'a> {
    Resent(Result<TxnBody<'a>, ResponseError>),
    Submitted(Result<TxnBody<'a>, ResponseError>),
    ResendError,
    SubmitError,
    Order(Result<Status, ResponseError>),
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
        if self.revision == 0 || self.revision == u64::MAX {
            return Some("the revision is 0 or saturated");
        }
        // Limits are at most `Policy::MAX_LIMIT`, so this also refuses saturated counters.
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
            // Nothing changes a record while its request is in flight.
            Phase::InFlight {
                token,
                kind,
                sent_at,
                ..
            } => {
                if token.record() != self.record
                    || token.revision() != self.revision
                    || token.kind() != kind.request_kind()
                {
                    Some("the token in flight was not issued by this record at this revision")
                } else if sent_at > self.last_seen || sent_at < self.created_at {
                    Some("the request in flight was sent outside the record's lifetime")
                } else {
                    None
                }
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
