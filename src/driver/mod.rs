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
//! payment's; what a conflict is, the store's. It only sequences them, and that sequence is
//! written once, as a sans-IO step machine ([`Protocol`], [`Steps`]): both drivers are loops
//! over it that do the I/O it asks for ([`Io`]) and hand the results back ([`Input`]). A
//! binding in another language runs the same loop with its own database and HTTP client,
//! carrying [`Io`] and [`Input`] as JSON (`docs/concurrency.md`).
//!
//! With the feature `tracing`, every call is a `direct_otp.drive` span and each I/O and
//! result an event, carrying the payment key, revisions, request kinds and the stable codes
//! ([`Outcome::code`], [`Refusal::code`], [`DriveError::code`],
//! [`SettleOutcome::code`](crate::SettleOutcome::code)); never a secret, a body or a token.
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

use crate::store::{Rejection, StoreError};
use crate::{
    Config, InputError, NextStep, Otp, Outcome, Outgoing, Payment, PaymentSource, Refusal, Reply,
    Request, SendFailure, SettleError, SettleOutcome, StartRequest,
};

mod asynchronous;
mod blocking;
mod steps;
mod trace;

pub use self::asynchronous::AsyncDriver;
pub use self::blocking::{Driver, SweepHandle};
pub use self::steps::{Input, Io, Protocol, Step, Steps};

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
    /// Start again with only the card ([`Payment::start_with`]), after a start that surely
    /// did not leave or that the bank refused. The payment never keeps the card data.
    Start(PaymentSource),
}

impl Command {
    /// Runs the command on `payment`: the request to send, or why not (without a store;
    /// the driver's steps call it between the load and the write-ahead).
    pub fn issue(
        &self,
        payment: &mut Payment,
        config: &Config,
        now: OffsetDateTime,
    ) -> Result<Outgoing, Refusal> {
        match self {
            Command::Resend => payment.resend(config, now),
            Command::Submit(otp) => payment.submit(config, otp, now),
            Command::CheckStatus => payment.check_status(config, now),
            Command::Start(source) => payment.start_with(config, source, now),
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

/// A settlement hint applied through the driver ([`Driver::settle`]): the payment it was
/// applied to, as stored now, what the hint did, and the confirming order status check,
/// when one was made.
#[derive(Debug)]
#[non_exhaustive]
pub struct Settled {
    /// The payment as stored now (after the status check, when one was made and stored):
    /// the latest attempt of the order that was started. Render [`Payment::view`] from it.
    pub payment: Payment,
    /// What the hint did ([`SettleOutcome::is_terminal`]: it settled the payment, to be
    /// confirmed). Log it; answer a webhook `200` whatever it is.
    pub outcome: SettleOutcome,
    /// The order status check made afterwards because the payment then needed it (to
    /// confirm the hint, or because the hint could not settle it): its outcome, or why it
    /// did not go through (e.g. [`DriveError::Refused`] with a request in flight, whose
    /// answer settles it). `None`: no check was needed.
    pub check: Option<Result<Outcome, DriveError>>,
    /// The transport's error of the status check, when it got no usable answer (for logs).
    pub transport_error: Option<Box<dyn StdError + Send + Sync>>,
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
    /// A stable snake_case code: `recovered`, `moved`, `sweep_failed`.
    pub fn code(&self) -> &'static str {
        match self {
            Swept::Recovered { .. } => "recovered",
            Swept::Moved { .. } => "moved",
            Swept::Failed { .. } => "sweep_failed",
        }
    }

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
    /// The key is one no store can hold (empty, longer than
    /// [`MAX_KEY_LEN`](crate::store::MAX_KEY_LEN) bytes, or holding a NUL, like a path
    /// `/pay/%00`): so no payment has it. Nothing was read or written. **Answer HTTP 400.**
    #[error("{} is not a payment key ({reason}); nothing was read", ShortKey(key))]
    BadKey {
        /// The key as given (a hostile one may be huge; [`Display`](std::fmt::Display)
        /// shows its start).
        key: String,
        /// Why no store can hold it.
        reason: Rejection,
    },
    /// No payment of this order is stored: a return URL or a webhook about an order this
    /// store does not know (another shop on the same account, a test order, a record
    /// removed). Nothing was written. **Log it**; a webhook handler answers `200` (Juspay
    /// retries anything else, in vain), a return URL handler 404.
    #[error(
        "no payment of order {} is stored; nothing was written",
        ShortKey(order_id)
    )]
    UnknownOrder {
        /// The order the hint names.
        order_id: String,
    },
    /// The settlement hint does not apply to any stored attempt of its order
    /// ([`SettleError`]: no attempt was started, or the webhook's event id is unusable).
    /// Nothing was written. **Log it**; a webhook handler answers `200`.
    #[error("payment {key:?}: {source}; nothing was written")]
    NotApplied {
        /// The key of the order's latest attempt.
        key: String,
        /// Why.
        source: SettleError,
    },
    /// The payment refused the command (a request in flight, a limit, the cooldown, final,
    /// ...). Nothing was written or sent. **Show the stored payment** (`payment`, unless
    /// none is stored); [`Refusal::http_status`] is the HTTP status to answer.
    #[error("payment {key:?}: {refusal}; nothing was sent")]
    Refused {
        /// The payment's key.
        key: String,
        /// Why.
        refusal: Refusal,
        /// The payment as stored (unchanged), to show; `None` for a start refused before
        /// anything was stored.
        payment: Option<Box<Payment>>,
    },
    /// Someone else changed the payment between the load and the write-ahead (or started
    /// this attempt first): they are on it. Nothing was sent. **Answer HTTP 409** and show
    /// `payment`, the payment as stored after them.
    #[error("payment {key:?} was changed by someone else first; nothing was sent: reload it")]
    Busy {
        /// The payment's key.
        key: String,
        /// The payment as reloaded after the conflict; `None` if that reload failed (then
        /// reload it yourself).
        payment: Option<Box<Payment>>,
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
    /// The bank refused this merchant's credentials (HTTP 401 or 403: a wrong or revoked
    /// API key, or one for another merchant or environment): a **configuration error**. The
    /// answer is stored (the payment is no longer in flight; nothing else changed). **Fix
    /// the API key** ([`Config`]); retrying will not help. HTTP 500: the failure is the
    /// server's, not the cardholder's.
    #[error("payment {key:?}: the bank refused the API key ({source}); fix the configuration")]
    Unauthorized {
        /// The payment's key.
        key: String,
        /// The bank's answer.
        source: crate::ApiError,
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
    /// The HTTP status a web handler would answer with: 400 a bad key, 404 not found (or
    /// an unknown order, or no started attempt), 409 busy or
    /// overtaken (the page reloads), the refusal's own ([`Refusal::http_status`]), 502 an
    /// answer about something else, 500 an API key the bank refused, 503 late or a store failure (retry), 500 a corrupt row.
    pub fn http_status(&self) -> u16 {
        match self {
            DriveError::NotFound { .. } | DriveError::UnknownOrder { .. } => 404,
            DriveError::BadKey { .. } => 400,
            DriveError::NotApplied { source, .. } => match source {
                SettleError::BadEventId => 400,
                SettleError::NotStarted => 404,
                _ => 409,
            },
            DriveError::Refused { refusal, .. } => refusal.http_status(),
            DriveError::Busy { .. } | DriveError::Overtaken { .. } => 409,
            DriveError::Unanswerable { .. } => 502,
            DriveError::Unauthorized { .. } => 500,
            DriveError::Store {
                source: StoreError::Corrupt { .. },
                ..
            } => 500,
            DriveError::Late { .. } | DriveError::Store { .. } => 503,
        }
    }

    /// A stable snake_case code: `not_found`, `bad_key`, `unknown_order`, `not_started`,
    /// `bad_event_id`, `other_order`, `busy`, `late`, `overtaken`, `unanswerable`,
    /// `unauthorized`, `store`, or the refusal's own [`code`](Refusal::code).
    pub fn code(&self) -> &'static str {
        match self {
            DriveError::NotFound { .. } => "not_found",
            DriveError::BadKey { .. } => "bad_key",
            DriveError::UnknownOrder { .. } => "unknown_order",
            DriveError::NotApplied { source, .. } => source.code(),
            DriveError::Refused { refusal, .. } => refusal.code(),
            DriveError::Busy { .. } => "busy",
            DriveError::Late { .. } => "late",
            DriveError::Overtaken { .. } => "overtaken",
            DriveError::Unanswerable { .. } => "unanswerable",
            DriveError::Unauthorized { .. } => "unauthorized",
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

    /// The payment as stored, when the error carries it (`Refused`, `Busy`): show it
    /// without reloading.
    pub fn payment(&self) -> Option<&Payment> {
        match self {
            DriveError::Refused { payment, .. } | DriveError::Busy { payment, .. } => {
                payment.as_deref()
            }
            _ => None,
        }
    }

    /// Seconds to wait before trying again, when the refusal says
    /// ([`Refusal::retry_after`]: a resend cooldown): the `Retry-After` header.
    pub fn retry_after(&self, now: OffsetDateTime) -> Option<u64> {
        match self {
            DriveError::Refused { refusal, .. } => refusal.retry_after(now),
            _ => None,
        }
    }

    /// The key of the payment concerned (for `UnknownOrder`, the order id).
    pub fn key(&self) -> &str {
        match self {
            DriveError::NotFound { key }
            | DriveError::BadKey { key, .. }
            | DriveError::UnknownOrder { order_id: key }
            | DriveError::NotApplied { key, .. }
            | DriveError::Refused { key, .. }
            | DriveError::Busy { key, .. }
            | DriveError::Late { key }
            | DriveError::Overtaken { key, .. }
            | DriveError::Unanswerable { key, .. }
            | DriveError::Unauthorized { key, .. }
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

/// A store error on the write-ahead: a conflict means someone else is on it (and
/// `reloaded` is the payment as they left it).
fn write_ahead_error(
    key: &str,
    source: StoreError,
    reloaded: impl FnOnce() -> Option<Payment>,
) -> DriveError {
    if source.is_conflict() {
        DriveError::Busy {
            key: key.to_owned(),
            payment: reloaded().map(Box::new),
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

/// A store error; a key no store can hold (refused before the database) is no payment's.
fn store_error(key: &str, sent: bool, source: StoreError) -> DriveError {
    match source {
        StoreError::Rejected {
            key,
            reason:
                reason @ (Rejection::EmptyKey | Rejection::KeyTooLong { .. } | Rejection::KeyHasNul),
        } if !sent => DriveError::BadKey { key, reason },
        source => DriveError::Store {
            key: key.to_owned(),
            sent,
            source,
        },
    }
}

/// `refusal`, with the payment as stored (`None`: nothing stored).
fn refused(key: &str, refusal: Refusal, stored: Option<&Payment>) -> DriveError {
    DriveError::Refused {
        key: key.to_owned(),
        refusal,
        payment: stored.map(|p| Box::new(p.clone())),
    }
}

/// How many times the driver tries to store an answer when the store fails in a way that
/// may pass (not a conflict): the first try and 4 more.
const ANSWER_TRIES: u32 = 5;

/// The pause before the first retry of an answer's write; it doubles for each next one
/// (25, 50, 100, 200 ms: 375 ms in all, within a web request's patience).
const ANSWER_BACKOFF: Duration = Duration::from_millis(25);

/// After `failures` earlier failed tries, whether (and after which pause) to try storing an
/// answer again after `error`: only a database failure ([`StoreError::Backend`]: busy,
/// locked, a dropped connection), never a conflict or a refusal, at most [`ANSWER_TRIES`]
/// tries in all.
fn retry_answer(error: &StoreError, failures: u32) -> Option<Duration> {
    let transient = matches!(error, StoreError::Backend { .. });
    (transient && failures + 1 < ANSWER_TRIES).then(|| ANSWER_BACKOFF.saturating_mul(1 << failures))
}

/// A pause that needs no particular async runtime (a retry after a store failure is rare):
/// a short-lived thread sleeps, then wakes the task.
fn pause(wait: Duration) -> impl Future<Output = ()> + Send {
    use std::sync::{Arc, Mutex};
    use std::task::{Poll, Waker};

    #[derive(Default)]
    struct State {
        started: bool,
        done: bool,
        waker: Option<Waker>,
    }
    let state = Arc::new(Mutex::new(State::default()));
    std::future::poll_fn(move |cx| {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        if st.done {
            return Poll::Ready(());
        }
        st.waker = Some(cx.waker().clone());
        if !st.started {
            st.started = true;
            let state = Arc::clone(&state);
            let spawned = std::thread::Builder::new().spawn(move || {
                std::thread::sleep(wait);
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                st.done = true;
                if let Some(waker) = st.waker.take() {
                    waker.wake();
                }
            });
            if spawned.is_err() {
                // No thread to wait on: retry at once rather than never.
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
}

/// How many times a settlement hint is applied again after losing a compare-and-swap (each
/// time on the payment reloaded) before the driver answers [`DriveError::Busy`].
const SETTLE_TRIES: usize = 5;

/// How many earlier attempts a hint is offered to when the latest was never started.
const EARLIER_ATTEMPTS: u32 = 8;

/// A hint that does not apply: no started attempt, or an unusable event id.
fn not_applied(key: &str, source: SettleError) -> DriveError {
    DriveError::NotApplied {
        key: key.to_owned(),
        source,
    }
}

/// Whether a payment a hint was just applied to needs the order status now: the hint says
/// so ([`SettleOutcome::needs_status_check`]: it is confirming, or the hint could not settle
/// it), or the payment does ([`NextStep::Confirming`], [`NextStep::CheckStatus`]). Not
/// while a request is in flight: its answer comes first.
fn wants_check(payment: &Payment, outcome: &SettleOutcome, now: OffsetDateTime) -> bool {
    payment.in_flight().is_none()
        && (outcome.needs_status_check()
            || matches!(
                payment.next_step(now),
                NextStep::Confirming | NextStep::CheckStatus
            ))
}

/// A stored answer as the caller's result: the bank refusing the API key is a
/// configuration error, not an outcome to show.
fn done(
    payment: Payment,
    outcome: Outcome,
    transport_error: Option<Box<dyn StdError + Send + Sync>>,
) -> Result<Done, DriveError> {
    match outcome {
        Outcome::Unauthorized(source) => Err(DriveError::Unauthorized {
            key: payment.key().to_owned(),
            source,
        }),
        outcome => Ok(Done {
            payment,
            outcome,
            transport_error,
        }),
    }
}

/// The result of a settlement, with the status check made after it (if any).
fn settled(
    stored: Payment,
    outcome: SettleOutcome,
    check: Option<Result<Done, DriveError>>,
) -> Settled {
    match check {
        Some(Ok(done)) => Settled {
            payment: done.payment,
            outcome,
            check: Some(Ok(done.outcome)),
            transport_error: done.transport_error,
        },
        Some(Err(e)) => Settled {
            payment: stored,
            outcome,
            check: Some(Err(e)),
            transport_error: None,
        },
        None => Settled {
            payment: stored,
            outcome,
            check: None,
            transport_error: None,
        },
    }
}

/// The payment a fresh start stores: `start`'s expected amount set on it.
fn fresh_payment(start: &StartRequest, attempt: u32, now: OffsetDateTime) -> Payment {
    let fresh = Payment::new(start, attempt, now);
    match start.expected_amount() {
        Some(expected) => fresh.with_expected_amount(expected.clone()),
        None => fresh,
    }
}

/// The attempt after `latest`, started: the payment to insert (its start in flight) and
/// the request. Refused (with `latest`) while `latest` is open or paid.
fn next_attempt(
    latest: &Payment,
    start: &StartRequest,
    config: &Config,
    now: OffsetDateTime,
) -> Result<(Payment, Outgoing), DriveError> {
    let mut next = latest
        .next_attempt(start, now)
        .map_err(|r| refused(latest.key(), r, Some(latest)))?;
    let key = next.key().to_owned();
    let out = expect_amount(&mut next, start)
        .and_then(|()| next.start(config, start, now))
        .map_err(|r| refused(&key, r, None))?;
    Ok((next, out))
}

/// A stored payment started again: `start`'s expected amount set on it, refused once it
/// was started (as the start itself would be).
fn expect_amount(payment: &mut Payment, start: &StartRequest) -> Result<(), Refusal> {
    match start.expected_amount() {
        Some(expected) if payment.expected_amount() != Some(expected) => {
            payment.set_expected_amount(expected.clone())
        }
        _ => Ok(()),
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

/// A key in a message: escaped, cut after 64 characters (a hostile key may be huge).
struct ShortKey<'a>(&'a str);

impl std::fmt::Display for ShortKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::store::short_key(f, self.0)
    }
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
            payment: None,
        };
        let cases = [
            (refused, true),
            (
                DriveError::Busy {
                    key: key(),
                    payment: None,
                },
                true,
            ),
            (DriveError::NotFound { key: key() }, false),
            (DriveError::Late { key: key() }, false),
        ];
        for (e, shows) in cases {
            assert_eq!(e.shows_payment(), shows, "{e}");
            assert_eq!(e.retry_after(now), None, "{e}");
        }
    }
}
