//! The protocol of `docs/concurrency.md`, done for the caller: a [`Payment`] kept in a
//! store, its requests sent through a transport, several workers at once.
//!
//! Every step that sends is the same sequence, and the driver runs it:
//!
//! 1. **load** the payment by key;
//! 2. run the **command** on it ([`Command`], or the start): the payment returns the request
//!    to send, or a [`Refusal`] that changes nothing ([`DriveError::Refused`]);
//! 3. **write ahead**: store the payment, now with its request in flight, with
//!    compare-and-swap on the revision loaded (a new payment: insert it). If that loses,
//!    someone else is on it: nothing is sent ([`DriveError::Busy`], HTTP 409);
//! 4. **send promptly**: if the write-ahead is already older than *grace − timeout* (a long
//!    pause), nothing is sent ([`DriveError::Late`]): a recovery may be under way;
//! 5. hand the **answer** (or the transport's failure) back to the payment, and store it
//!    with compare-and-swap on the write-ahead's revision. If that loses, the payment was
//!    recovered meanwhile: the answer is reported, not stored ([`DriveError::Overtaken`]).
//!
//! A **recovery sweep** ([`Driver::sweep`]) settles the payments a dead worker left in flight
//! longer than the grace: it lists them, lets each [`recover`](Payment::recover) ("maybe
//! sent": a submit or resend then needs an order-status check, never a blind re-send) and
//! stores the result with compare-and-swap; [`Driver::sweep_and_check`] also checks the
//! order status of those that need it.
//!
//! The driver holds no rule of its own: what may be sent, and what an answer means, is the
//! payment's; what a conflict is, the store's. It only sequences them.
//!
//! * [`Driver`]: blocking, over any [`Store`](crate::store::Store) and any [`BlockingSend`]
#![cfg_attr(
    feature = "ureq",
    doc = "  ([`UreqTransport`](crate::transport::UreqTransport) implements it);"
)]
#![cfg_attr(
    not(feature = "ureq"),
    doc = "  (`UreqTransport`, feature `ureq`, implements it);"
)]
//! * [`AsyncDriver`]: async (`Send` futures), over any
//!   [`AsyncStore`](crate::store::AsyncStore) and any [`AsyncSend`]
#![cfg_attr(
    feature = "hyper",
    doc = "  ([`HyperTransport`](crate::transport::HyperTransport) implements it)."
)]
#![cfg_attr(
    not(feature = "hyper"),
    doc = "  (`HyperTransport`, feature `hyper`, implements it)."
)]
//!
//! `docs/stores.md` says what to do with each answer and how often to sweep.

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;

use crate::store::StoreError;
use crate::{
    Config, InputError, NextStep, Otp, Outcome, Outgoing, Payment, Refusal, Reply, Request,
    SendFailure,
};

mod asynchronous;
mod blocking;

pub use self::asynchronous::AsyncDriver;
pub use self::blocking::Driver;

/// What the blocking [`Driver`] sends requests with: one exchange, blocking the thread.
///
#[cfg_attr(
    feature = "ureq",
    doc = "[`UreqTransport`](crate::transport::UreqTransport) implements it. To use your own"
)]
#[cfg_attr(
    not(feature = "ureq"),
    doc = "`UreqTransport` (feature `ureq`) implements it. To use your own"
)]
/// HTTP client (or, in tests, the in-process sandbox), implement it:
///
/// ```
/// use std::sync::Mutex;
/// use direct_otp::driver::BlockingSend;
/// use direct_otp::sandbox::Sandbox;
/// use direct_otp::{Request, SendFailure};
///
/// /// The in-process sandbox as a "bank": no sockets.
/// struct InProcess(Mutex<Sandbox>);
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("the sandbox dropped the answer")]
/// struct Dropped;
///
/// impl BlockingSend for InProcess {
///     type Error = Dropped;
///     fn send(&self, request: Request) -> Result<(u16, Vec<u8>), Dropped> {
///         let answer = self.0.lock().unwrap().handle_request(&request, self.now());
///         if answer.is_delivered() { Ok((answer.status, answer.body)) } else { Err(Dropped) }
///     }
///     fn send_failure(&self, _: &Dropped) -> SendFailure {
///         SendFailure::MaybeSent // it reached the bank, the answer was lost
///     }
///     fn timeout(&self) -> std::time::Duration {
///         std::time::Duration::from_secs(30)
///     }
/// }
/// ```
pub trait BlockingSend {
    /// How an exchange fails.
    type Error: StdError + Send + Sync + 'static;

    /// Sends `request` and reads its answer: the HTTP status (any: 4xx and 5xx are answers
    /// too, with their bodies) and the body. Within [`timeout`](Self::timeout).
    fn send(&self, request: Request) -> Result<(u16, Vec<u8>), Self::Error>;

    /// Whether a failed exchange may have reached the server: [`SendFailure::NotSent`]
    /// only when it surely did not (connection refused, DNS). When in doubt,
    /// [`SendFailure::MaybeSent`].
    fn send_failure(&self, error: &Self::Error) -> SendFailure;

    /// The longest one exchange takes (the transport's deadline). The driver never sends
    /// a request whose write-ahead is older than the grace less this.
    fn timeout(&self) -> Duration;

    /// The time now. Defaults to the system clock; a transport with a clock of its own
    /// (the ones here take [`Settings::with_clock`](crate::transport::Settings::with_clock))
    /// gives that, so a test can move time.
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// What the [`AsyncDriver`] sends requests with: one exchange, as a `Send` future.
///
#[cfg_attr(
    feature = "hyper",
    doc = "[`HyperTransport`](crate::transport::HyperTransport) implements it. Implement it for your"
)]
#[cfg_attr(
    not(feature = "hyper"),
    doc = "`HyperTransport` (feature `hyper`) implements it. Implement it for your"
)]
/// own client with `async fn send` in the `impl` block; see [`BlockingSend`] for what each
/// method means.
pub trait AsyncSend {
    /// How an exchange fails.
    type Error: StdError + Send + Sync + 'static;

    /// Sends `request` and reads its answer (see [`BlockingSend::send`]).
    fn send(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<(u16, Vec<u8>), Self::Error>> + Send;

    /// See [`BlockingSend::send_failure`].
    fn send_failure(&self, error: &Self::Error) -> SendFailure;

    /// See [`BlockingSend::timeout`].
    fn timeout(&self) -> Duration;

    /// See [`BlockingSend::now`].
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A command the cardholder's page asks for, run on a stored payment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Command {
    /// Ask the bank for a new OTP ([`Payment::resend`]).
    Resend,
    /// Submit the OTP typed ([`Payment::submit`]). The payment never keeps it.
    Submit(Otp),
    /// Ask for the order status ([`Payment::check_status`]): after a lost answer, when the
    /// browser is back from the bank page, whenever in doubt. Safe to repeat.
    CheckStatus,
}

impl Command {
    /// Runs the command on `payment`.
    fn issue(
        &self,
        payment: &mut Payment,
        config: &Config,
        now: OffsetDateTime,
    ) -> Result<Outgoing, Refusal> {
        match self {
            Command::Resend => payment.resend(config, now),
            Command::Submit(otp) => payment.submit(config, otp, now),
            Command::CheckStatus => payment.check_status(config, now),
        }
    }
}

/// A step that went through: the request was sent (or surely failed to be) and the answer
/// is stored.
#[derive(Debug)]
#[non_exhaustive]
pub struct Done {
    /// The payment as stored now: render [`Payment::view`] from it.
    pub payment: Payment,
    /// What the answer did ([`Outcome::is_terminal`]: the payment is settled now).
    pub outcome: Outcome,
    /// The transport's error, when the exchange got no usable answer (for logs: the
    /// payment has taken it into account, as "not sent" or "maybe sent").
    pub transport_error: Option<Box<dyn StdError + Send + Sync>>,
}

/// The browser goes to the bank's page: the URL, and the payment as stored.
#[derive(Debug)]
#[non_exhaustive]
pub struct BankPage {
    /// Where to redirect the browser, exactly as the server gave it.
    pub url: String,
    /// The payment as stored now.
    pub payment: Payment,
}

/// What a recovery sweep did with one payment it found in flight past the grace.
#[derive(Debug)]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "a sweep's short list; a box would only make matching on `check` harder"
)]
pub enum Swept {
    /// Recovered and stored: its request counts as "maybe sent" (`outcome`, usually
    /// [`Outcome::CheckStatus`]). `check` is the order-status check made afterwards by
    /// [`Driver::sweep_and_check`], when the payment needed one.
    Recovered {
        /// The payment's key.
        key: String,
        /// What the recovery did.
        outcome: Outcome,
        /// The status check, if one was made.
        check: Option<Result<Done, DriveError>>,
    },
    /// Nothing to do any more: it was answered, recovered by another sweep, or removed
    /// since it was listed. Nothing was written.
    Moved {
        /// The payment's key.
        key: String,
    },
    /// It could not be loaded or stored: a [`StoreError::Corrupt`] row (left untouched:
    /// inspect it), or the store failed (the next sweep tries again).
    Failed {
        /// The payment's key.
        key: String,
        /// Why.
        error: DriveError,
    },
}

impl Swept {
    /// The payment's key.
    pub fn key(&self) -> &str {
        match self {
            Swept::Recovered { key, .. } | Swept::Moved { key } | Swept::Failed { key, .. } => key,
        }
    }
}

/// Why a driver step did not go through, and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriveError {
    /// No payment is stored under this key. **Start it first** (or the key is wrong):
    /// HTTP 404.
    #[error("no payment {key:?} is stored: start it first")]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// The payment refused the command (a request in flight, a limit, the cooldown, final,
    /// ...). Nothing was written or sent. **Show the stored payment**;
    /// [`Refusal::http_status`] is the HTTP status to answer.
    #[error("payment {key:?}: {refusal}; nothing was sent")]
    Refused {
        /// The payment's key.
        key: String,
        /// Why.
        refusal: Refusal,
    },
    /// Someone else changed the payment between the load and the write-ahead (or started
    /// this attempt first): they are on it. Nothing was sent. **Answer HTTP 409** and let
    /// the page reload the stored payment.
    #[error("payment {key:?} was changed by someone else first; nothing was sent: reload it")]
    Busy {
        /// The payment's key.
        key: String,
    },
    /// The write-ahead was older than the grace less the transport's timeout when the
    /// request was about to go (this worker paused too long): nothing was sent, and the
    /// payment was told so if it was still in flight. **Try again** (HTTP 503).
    #[error("payment {key:?}: the stored request was too old to send safely; nothing was sent: try again")]
    Late {
        /// The payment's key.
        key: String,
    },
    /// The request was sent and answered, but meanwhile the payment was recovered (its
    /// request counted as lost) or changed: the answer was **not** stored, the stored
    /// payment was left as it is. **Reload it** (HTTP 409): the order status will tell
    /// what happened.
    #[error("payment {key:?} was recovered while its request was out ({outcome}); the answer was not stored: reload it")]
    Overtaken {
        /// The payment's key.
        key: String,
        /// What the answer would have done.
        outcome: Box<Outcome>,
    },
    /// The answer was refused by the payment (it names another order or transaction): it
    /// was not applied, and the payment stays in flight until the recovery sweep settles
    /// it. **Report it** (HTTP 502): the server answered about something else.
    #[error(
        "payment {key:?}: the answer was refused ({source}); the sweep will recover the request"
    )]
    Unanswerable {
        /// The payment's key.
        key: String,
        /// Why.
        source: InputError,
    },
    /// The store failed. When `sent` is false, nothing was sent; when true, the request
    /// was sent but its answer is not stored (the payment stays in flight until the sweep
    /// recovers it). A [`StoreError::Corrupt`] row is left untouched: **inspect it**
    /// (HTTP 500); otherwise **reload and retry later** (HTTP 503).
    #[error("payment {key:?}: {source}")]
    Store {
        /// The payment's key (empty for a sweep's listing).
        key: String,
        /// Whether the request had been sent.
        sent: bool,
        /// The store's error.
        source: StoreError,
    },
}

impl DriveError {
    /// The HTTP status a web handler would answer with: 404 not found, 409 busy or
    /// overtaken (the page reloads), the refusal's own ([`Refusal::http_status`]), 502 an
    /// answer about something else, 503 late or a store failure (retry), 500 a corrupt row.
    pub fn http_status(&self) -> u16 {
        match self {
            DriveError::NotFound { .. } => 404,
            DriveError::Refused { refusal, .. } => refusal.http_status(),
            DriveError::Busy { .. } | DriveError::Overtaken { .. } => 409,
            DriveError::Unanswerable { .. } => 502,
            DriveError::Store {
                source: StoreError::Corrupt { .. },
                ..
            } => 500,
            DriveError::Late { .. } | DriveError::Store { .. } => 503,
        }
    }

    /// A stable snake_case code: `not_found`, `busy`, `late`, `overtaken`,
    /// `unanswerable`, `store`, or the refusal's own [`code`](Refusal::code).
    pub fn code(&self) -> &'static str {
        match self {
            DriveError::NotFound { .. } => "not_found",
            DriveError::Refused { refusal, .. } => refusal.code(),
            DriveError::Busy { .. } => "busy",
            DriveError::Late { .. } => "late",
            DriveError::Overtaken { .. } => "overtaken",
            DriveError::Unanswerable { .. } => "unanswerable",
            DriveError::Store { .. } => "store",
        }
    }

    /// Whether a page should show the stored payment, unchanged, with [`code`](Self::code)
    /// as its notice: the payment refused the command, or someone else was on it
    /// (`Refused`, `Busy`, `Overtaken`). Otherwise there is no payment to show, or the
    /// failure is the server's: an error page with [`http_status`](Self::http_status).
    pub fn shows_payment(&self) -> bool {
        matches!(
            self,
            DriveError::Refused { .. } | DriveError::Busy { .. } | DriveError::Overtaken { .. }
        )
    }

    /// Seconds to wait before trying again, when the refusal says
    /// ([`Refusal::retry_after`]: a resend cooldown): the `Retry-After` header.
    pub fn retry_after(&self, now: OffsetDateTime) -> Option<u64> {
        match self {
            DriveError::Refused { refusal, .. } => refusal.retry_after(now),
            _ => None,
        }
    }

    /// The key of the payment concerned.
    pub fn key(&self) -> &str {
        match self {
            DriveError::NotFound { key }
            | DriveError::Refused { key, .. }
            | DriveError::Busy { key }
            | DriveError::Late { key }
            | DriveError::Overtaken { key, .. }
            | DriveError::Unanswerable { key, .. }
            | DriveError::Store { key, .. } => key,
        }
    }
}

// ----- What both drivers share: the pure steps between the I/O --------------------------

/// The grace when none is given: twice the transport's timeout.
fn default_grace(timeout: Duration) -> Duration {
    timeout.saturating_mul(2)
}

fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// Rule 3: a write-ahead older than `grace - timeout` is not sent.
fn too_late(payment: &Payment, grace: Duration, timeout: Duration, now: OffsetDateTime) -> bool {
    let window = to_time(grace.saturating_sub(timeout));
    payment
        .in_flight_since()
        .is_none_or(|since| now - since > window)
}

/// A store error on a load.
fn loaded(key: &str, result: Result<Option<Payment>, StoreError>) -> Result<Payment, DriveError> {
    match result {
        Ok(Some(payment)) => Ok(payment),
        Ok(None) => Err(DriveError::NotFound {
            key: key.to_owned(),
        }),
        Err(source) => Err(store_error(key, false, source)),
    }
}

/// A store error on the write-ahead: a conflict means someone else is on it.
fn write_ahead_error(key: &str, source: StoreError) -> DriveError {
    if source.is_conflict() {
        DriveError::Busy {
            key: key.to_owned(),
        }
    } else {
        store_error(key, false, source)
    }
}

/// A store error on the answer: a conflict means the payment was recovered meanwhile.
fn answer_error(key: &str, outcome: Outcome, source: StoreError) -> DriveError {
    if source.is_conflict() {
        DriveError::Overtaken {
            key: key.to_owned(),
            outcome: Box::new(outcome),
        }
    } else {
        store_error(key, true, source)
    }
}

fn store_error(key: &str, sent: bool, source: StoreError) -> DriveError {
    DriveError::Store {
        key: key.to_owned(),
        sent,
        source,
    }
}

fn refused(key: &str, refusal: Refusal) -> DriveError {
    DriveError::Refused {
        key: key.to_owned(),
        refusal,
    }
}

/// The result of an exchange as the payment's input, and the error for the caller's logs.
fn reply<E: StdError + Send + Sync + 'static>(
    result: Result<(u16, Vec<u8>), E>,
    failure: impl FnOnce(&E) -> SendFailure,
) -> (Reply, Option<Box<dyn StdError + Send + Sync>>) {
    match result {
        Ok((status, body)) => (Reply::Answer { status, body }, None),
        Err(e) => (Reply::Failed(failure(&e)), Some(Box::new(e))),
    }
}

/// Whether a recovered payment needs the order status now.
fn needs_check(payment: &Payment, now: OffsetDateTime) -> bool {
    matches!(
        payment.next_step(now),
        NextStep::CheckStatus | NextStep::Confirming | NextStep::AwaitBankPage | NextStep::Expired
    )
}

// ----- The transports here ----------------------------------------------------------------

#[cfg(feature = "ureq")]
impl BlockingSend for crate::transport::UreqTransport {
    type Error = crate::transport::TransportError;

    fn send(&self, request: Request) -> Result<(u16, Vec<u8>), Self::Error> {
        crate::transport::UreqTransport::send(self, request)
    }

    fn send_failure(&self, error: &Self::Error) -> SendFailure {
        error.send_failure()
    }

    fn timeout(&self) -> Duration {
        self.settings().timeout()
    }

    fn now(&self) -> OffsetDateTime {
        crate::transport::UreqTransport::now(self)
    }
}

#[cfg(feature = "hyper")]
impl<C, B> AsyncSend for crate::transport::HyperTransport<C, B>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
    B: hyper::body::Body + From<Vec<u8>> + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Error = crate::transport::TransportError;

    fn send(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<(u16, Vec<u8>), Self::Error>> + Send {
        crate::transport::HyperTransport::send(self, request)
    }

    fn send_failure(&self, error: &Self::Error) -> SendFailure {
        error.send_failure()
    }

    fn timeout(&self) -> Duration {
        self.settings().timeout()
    }

    fn now(&self) -> OffsetDateTime {
        crate::transport::HyperTransport::now(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_grace_is_twice_the_timeout_and_saturates() {
        assert_eq!(
            default_grace(Duration::from_secs(30)),
            Duration::from_secs(60)
        );
        assert_eq!(default_grace(Duration::MAX), Duration::MAX);
        assert_eq!(to_time(Duration::MAX), time::Duration::MAX);
    }

    #[test]
    fn only_a_refusal_or_a_race_shows_the_payment() {
        let now = time::macros::datetime!(2026-11-25 10:00 UTC);
        let key = || "k/1".to_owned();
        let refused = DriveError::Refused {
            key: key(),
            refusal: Refusal::NotStarted,
        };
        let cases = [
            (refused, true),
            (DriveError::Busy { key: key() }, true),
            (DriveError::NotFound { key: key() }, false),
            (DriveError::Late { key: key() }, false),
        ];
        for (e, shows) in cases {
            assert_eq!(e.shows_payment(), shows, "{e}");
            assert_eq!(e.retry_after(now), None, "{e}");
        }
    }
}
