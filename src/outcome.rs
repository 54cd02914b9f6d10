//! What the caller hears back: refusals of commands, outcomes of answers, timer events.

use std::fmt;

use time::OffsetDateTime;

use crate::error::{ApiError, ResponseError};
use crate::settle::{Disagreement, IntegrityError};
use crate::status::Status;
use crate::token::Token;

/// Why a command did not produce a request. A refused command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A request is already in flight: hand its answer (or its failure) back first.
    #[error("a {} request is in flight; hand back its answer first", .0.kind())]
    InFlight(Token),
    /// The outcome of an earlier request is unknown: check the order status first.
    #[error("the last request's outcome is unknown; check the order status first")]
    CheckStatus,
    /// The cardholder was sent to the bank page: check the order status for the result.
    #[error("the cardholder is on the bank page; check the order status for the result")]
    OnBankPage,
    /// The challenge outlived its lifetime: offer the bank page or check the order status.
    #[error("the OTP page has expired; offer the bank page or check the order status")]
    Expired,
    /// The payment is final; nothing more can be done in this challenge.
    #[error("the payment is already final ({0})")]
    AlreadyFinal(Status),
    /// No more OTPs can be sent: offer the bank page.
    #[error("OTP send limit reached ({limit} sends); offer the bank page")]
    SendLimitReached {
        /// The limit in force.
        limit: u32,
    },
    /// No more OTP tries: offer the bank page.
    #[error("OTP attempt limit reached ({limit} attempts); offer the bank page")]
    AttemptLimitReached {
        /// The limit in force.
        limit: u32,
    },
    /// Resending is possible from `until`.
    #[error("resend is possible from {}", crate::clock::rfc3339(*until))]
    Cooldown {
        /// When the cooldown ends.
        until: OffsetDateTime,
    },
    /// The server's `resend_otp_allowed` is false.
    #[error("the bank does not allow resending an OTP for this transaction")]
    ResendNotAllowed,
    /// The server's `submit_otp_allowed` is false: offer the bank page.
    #[error("the bank does not allow OTP entry for this transaction; offer the bank page")]
    SubmitNotAllowed,
    /// No `fallback_url` was given, so there is no bank page to go to.
    #[error("no bank-page fallback URL is known for this transaction")]
    NoBankPage,
    /// Nothing was sent yet: start the payment first.
    #[error("the payment has not been started; start it first")]
    NotStarted,
    /// The payment was started already; a second `POST /txns` would be a second
    /// transaction (and a second SMS). Follow its next step instead.
    #[error("the payment was started already; follow its next step")]
    AlreadyStarted,
    /// The start request given is for another order or customer than this payment.
    #[error("the start request is for another order or customer than this payment")]
    OtherOrder,
    /// A return URL or webhook reported the payment final; only the order status decides
    /// now (the OTP page stays usable where the payment has one): check the order status.
    #[error("the payment is being confirmed with the bank; check the order status")]
    Confirming,
    /// This attempt is still open (the bank may still settle it): finish it, or check the
    /// order status, before starting the next attempt on the order.
    #[error("this payment attempt is still open; finish it or check the order status before a new attempt")]
    AttemptOpen,
    /// This payment was stored before it kept its start terms: start it with the whole
    /// start request ([`Payment::start`](crate::Payment::start)).
    #[error("this payment keeps no start terms; start it with the whole start request")]
    StartRequestNeeded,
}

impl Refusal {
    /// A stable snake_case code for this refusal (the same word a [`NextStep`] or an
    /// [`Outcome`] uses for the same state). Codes never change meaning; new ones may be
    /// added.
    ///
    /// [`NextStep`]: crate::NextStep
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::InFlight(_) => "in_flight",
            Refusal::CheckStatus => "check_status",
            Refusal::OnBankPage => "on_bank_page",
            Refusal::Expired => "expired",
            Refusal::AlreadyFinal(_) => "already_final",
            Refusal::SendLimitReached { .. } => "send_limit_reached",
            Refusal::AttemptLimitReached { .. } => "attempt_limit_reached",
            Refusal::Cooldown { .. } => "cooldown",
            Refusal::ResendNotAllowed => "resend_not_allowed",
            Refusal::SubmitNotAllowed => "submit_not_allowed",
            Refusal::NoBankPage => "no_bank_page",
            Refusal::NotStarted => "not_started",
            Refusal::AlreadyStarted => "already_started",
            Refusal::OtherOrder => "other_order",
            Refusal::Confirming => "confirming",
            Refusal::AttemptOpen => "attempt_open",
            Refusal::StartRequestNeeded => "start_request_needed",
        }
    }

    /// The HTTP status a web handler would answer this refusal with: 409 (the state does
    /// not allow it now: in flight, check the status, on the bank page, final, started or
    /// not), 410 (expired), 429 (cooldown: send `Retry-After`, see
    /// [`retry_after`](Self::retry_after)), 422 (not allowed for this transaction: limits,
    /// the bank's flags, no bank page, another order).
    pub fn http_status(&self) -> u16 {
        match self {
            Refusal::InFlight(_)
            | Refusal::CheckStatus
            | Refusal::OnBankPage
            | Refusal::AlreadyFinal(_)
            | Refusal::NotStarted
            | Refusal::AlreadyStarted
            | Refusal::Confirming
            | Refusal::AttemptOpen => 409,
            Refusal::Expired => 410,
            Refusal::Cooldown { .. } => 429,
            Refusal::SendLimitReached { .. }
            | Refusal::AttemptLimitReached { .. }
            | Refusal::ResendNotAllowed
            | Refusal::SubmitNotAllowed
            | Refusal::NoBankPage
            | Refusal::OtherOrder
            | Refusal::StartRequestNeeded => 422,
        }
    }

    /// For a cooldown, whole seconds from `now` until the command is possible (rounded
    /// up; at least 1): the value of a `Retry-After` header.
    pub fn retry_after(&self, now: OffsetDateTime) -> Option<u64> {
        let Refusal::Cooldown { until } = self else {
            return None;
        };
        let left = *until - now;
        let secs = u64::try_from(left.whole_seconds()).unwrap_or(0)
            + u64::from(left.subsec_nanoseconds() > 0);
        Some(secs.max(1))
    }
}

/// What an answer (or a transport failure) did to the challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A new OTP was sent.
    OtpSent {
        /// Sends still allowed after this one.
        sends_left: u32,
    },
    /// The server refused to send another OTP (`max_limit_exceeded`): offer the bank page.
    SendLimitReached,
    /// The OTP was wrong; the cardholder may try again.
    WrongOtp {
        /// Tries still allowed.
        attempts_left: u32,
    },
    /// The OTP was wrong and no tries are left (or the bank disallowed further entry): offer
    /// the bank page.
    AttemptLimitReached,
    /// The payment succeeded (`CHARGED`, or `AUTHORIZED`). Final.
    Approved(Status),
    /// The payment failed (`AUTHENTICATION_FAILED`, `AUTHORIZATION_FAILED`,
    /// `JUSPAY_DECLINED`, ...). Final: a new try is a new transaction on the same order.
    Declined(Status),
    /// The status is known and not final (`PENDING_VBV`, `AUTHORIZING`, or unknown text).
    /// [`Challenge::next_step`](crate::Challenge::next_step) says what to do.
    Pending(Status),
    /// The server refused the request or its answer was unusable, and nothing changed: the
    /// same command may be tried again once the cause is fixed.
    Rejected(ResponseError),
    /// The outcome of a request with side effects (start, submit, resend) is unknown. Only
    /// an order status check is allowed now; the request is never re-sent blindly.
    CheckStatus(Uncertainty),
    /// Direct OTP is not available for this card (3DS failover): send the browser to the
    /// bank's page ([`NextStep::BankPage`](crate::NextStep::BankPage)), then check the
    /// order status.
    BankPageRequired,
    /// The request surely did not reach the server (or was a harmless status check):
    /// nothing changed and the command may be tried again.
    NotDelivered,
    /// The bank refused this merchant's credentials (HTTP 401 or 403: a wrong or revoked
    /// API key, or a key for another merchant or environment). Nothing changed. This is a
    /// **configuration error**: fix the key ([`Config`](crate::Config)); retrying will not
    /// help.
    Unauthorized(ApiError),
    /// The settlement's amount or currency is not what the payment expects
    /// ([`Payment::with_expected_amount`](crate::Payment::with_expected_amount)), or it has
    /// none: final, and **not paid**. Hold the order for review (and refund if the money
    /// arrived). Terminal, like `Approved` and `Declined`.
    IntegrityFailed(Box<IntegrityError>),
    /// The order status API confirmed the settlement already reported (from a return URL
    /// or a webhook): nothing new to do.
    Confirmed(Status),
    /// The order status API overturned the settlement already reported: the payment now
    /// holds the API's status. Act on [`Disagreement::paid`] and
    /// [`Disagreement::was_paid`]; see `docs/settlement.md`.
    Disagreement(Box<Disagreement>),
}

impl Outcome {
    /// A stable snake_case code for this outcome (the same word a [`Refusal`] or a
    /// [`NextStep`](crate::NextStep) uses for the same state). Codes never change meaning;
    /// new ones may be added.
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::OtpSent { .. } => "otp_sent",
            Outcome::SendLimitReached => "send_limit_reached",
            Outcome::WrongOtp { .. } => "wrong_otp",
            Outcome::AttemptLimitReached => "attempt_limit_reached",
            Outcome::Approved(_) => "approved",
            Outcome::Declined(_) => "declined",
            Outcome::Pending(_) => "pending",
            Outcome::Rejected(_) => "rejected",
            Outcome::Unauthorized(_) => "unauthorized",
            Outcome::CheckStatus(_) => "check_status",
            Outcome::BankPageRequired => "bank_page",
            Outcome::NotDelivered => "not_delivered",
            Outcome::IntegrityFailed(_) => "integrity_failure",
            Outcome::Confirmed(_) => "confirmed",
            Outcome::Disagreement(_) => "disagreement",
        }
    }

    /// The outcome of a request the bank refused, nothing changed: [`Unauthorized`] for a
    /// refused key (HTTP 401 or 403), [`Rejected`] otherwise. Every refusal is read here,
    /// so one rule tells a configuration error from a refused request.
    ///
    /// [`Unauthorized`]: Outcome::Unauthorized
    /// [`Rejected`]: Outcome::Rejected
    pub(crate) fn rejected(error: ResponseError) -> Outcome {
        match error {
            ResponseError::Api(e) if matches!(e.http_status(), 401 | 403) => {
                Outcome::Unauthorized(e)
            }
            e => Outcome::Rejected(e),
        }
    }

    /// True for the one outcome of a payment that settles it (`Approved`, `Declined`, or
    /// `IntegrityFailed`). A later `Confirmed` or `Disagreement` is not terminal: it
    /// confirms or corrects the one already reported.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Outcome::Approved(_) | Outcome::Declined(_) | Outcome::IntegrityFailed(_)
        )
    }
}

/// Words a person can read (server texts are escaped, no raw timestamps).
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::OtpSent { sends_left } => {
                write!(f, "a new code was sent ({sends_left} more can be sent)")
            }
            Outcome::SendLimitReached => f.write_str("no more codes can be sent"),
            Outcome::WrongOtp { attempts_left: 1 } => f.write_str("wrong code, 1 try left"),
            Outcome::WrongOtp { attempts_left } => {
                write!(f, "wrong code, {attempts_left} tries left")
            }
            Outcome::AttemptLimitReached => f.write_str("wrong code, no tries left"),
            Outcome::Approved(status) => write!(f, "payment approved ({status})"),
            Outcome::Declined(status) => write!(f, "payment declined ({status})"),
            Outcome::Pending(status) => write!(f, "payment still in progress ({status})"),
            Outcome::Rejected(_) => f.write_str("the bank refused the request; nothing changed"),
            Outcome::Unauthorized(e) => write!(
                f,
                "the bank refused the API key (HTTP {}): check the configuration",
                e.http_status()
            ),
            Outcome::CheckStatus(_) => {
                f.write_str("the result is not known yet; checking with the bank")
            }
            Outcome::BankPageRequired => f.write_str("continue on your bank's page"),
            Outcome::NotDelivered => f.write_str("the request did not reach the bank; try again"),
            Outcome::IntegrityFailed(_) => {
                f.write_str("the payment is not for the expected amount; it is held for review")
            }
            Outcome::Confirmed(status) => write!(f, "payment confirmed ({status})"),
            Outcome::Disagreement(d) if d.paid => {
                write!(f, "payment approved after all ({})", d.status)
            }
            Outcome::Disagreement(d) => write!(f, "payment not completed after all ({})", d.status),
        }
    }
}

/// Why the outcome of a request is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Uncertainty {
    /// The transport failed after the request may have been sent (timeout, reset).
    MaybeSent,
    /// An answer came but could not be read, or reports an error that does not say whether
    /// the request was acted on (5xx, `DUPLICATE_REQUEST`, a redirect).
    Response(ResponseError),
    /// The bank says the transaction no longer waits for an OTP (`INVALID_ACTION`,
    /// "transaction already processed"): this copy of the record is stale (another worker
    /// or the bank page moved it on). The refused request counted nothing.
    Stale(ResponseError),
    /// The bank says the payment succeeded (this status), but its answer carries no amount
    /// to check against the one the payment expects: only the order status can show it.
    AmountUnchecked(Status),
}

impl Uncertainty {
    /// A stable snake_case code (the `why` of a `check_status` outcome's wire form):
    /// `maybe_sent`, `response`, `stale`, `amount_unchecked`.
    pub fn code(&self) -> &'static str {
        match self {
            Uncertainty::MaybeSent => "maybe_sent",
            Uncertainty::Response(_) => "response",
            Uncertainty::Stale(_) => "stale",
            Uncertainty::AmountUnchecked(_) => "amount_unchecked",
        }
    }
}

/// How sending a request failed, as the transport can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendFailure {
    /// The request surely did not leave (connection refused, DNS failure, TLS handshake
    /// failure before any byte of the request was written).
    NotSent,
    /// The request may have reached the server (timeout or reset after writing began).
    MaybeSent,
}

impl SendFailure {
    /// A stable snake_case code, the reply kind of its wire form: `not_sent`, `maybe_sent`.
    pub fn code(self) -> &'static str {
        match self {
            SendFailure::NotSent => "not_sent",
            SendFailure::MaybeSent => "maybe_sent",
        }
    }
}

/// What a timer did when it fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimerEvent {
    /// The resend cooldown ended: "Resend" can be enabled.
    ResendAvailable,
    /// The challenge's lifetime ended: the OTP page is closed.
    Expired,
}

impl TimerEvent {
    /// A stable snake_case code: `resend_available`, `expired` (the next step's word).
    pub fn code(self) -> &'static str {
        match self {
            TimerEvent::ResendAvailable => "resend_available",
            TimerEvent::Expired => "expired",
        }
    }
}
