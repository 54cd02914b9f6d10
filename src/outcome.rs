//! What the caller hears back: refusals of commands, outcomes of answers, timer events.

use time::OffsetDateTime;

use crate::error::ResponseError;
use crate::status::Status;
use crate::token::Token;

/// Why a command did not produce a request. A refused command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A request is already in flight: hand its answer (or its failure) back first.
    #[error("request {0} is in flight; hand back its answer first")]
    InFlight(Token),
    /// The outcome of an earlier submit or resend is unknown: check the order status first.
    #[error("the last request's outcome is unknown; check the order status first")]
    MustReconcile,
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
    #[error("resend is possible from {until}")]
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
    NoFallback,
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
    AttemptsExhausted,
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
    /// The outcome of a submit or resend is unknown. The challenge now only allows checking
    /// the order status; the request is never re-sent blindly.
    MustReconcile(Uncertainty),
    /// The request surely did not reach the server (or was a harmless status check):
    /// nothing changed and the command may be tried again.
    NotDelivered,
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

/// What a timer did when it fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimerEvent {
    /// The resend cooldown ended: "Resend" can be enabled.
    ResendAvailable,
    /// The challenge's lifetime ended: the OTP page is closed.
    Expired,
}
