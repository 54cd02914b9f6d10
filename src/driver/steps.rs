//! The driver's protocol as a pure step machine (sans-IO): every decision of the drivers,
//! asking for its I/O as plain values and taking the results back.
//!
//! [`Protocol`] makes a [`Steps`] for each driver call ([`run`](Protocol::run),
//! [`start`](Protocol::start), [`start_next`](Protocol::start_next),
//! [`bank_page`](Protocol::bank_page), [`settle`](Protocol::settle),
//! [`sweep`](Protocol::sweep)). Its [`resume`](Steps::resume) takes the result of the last
//! I/O it asked for (first [`Input::Begin`]) and the time now, and gives the next
//! [`Io`] to do, or the call's result: the same `Result<Done, DriveError>` (or
//! [`BankPage`], [`Settled`], `Vec<Swept>`) the drivers return. The blocking
//! [`Driver`](super::Driver) and the [`AsyncDriver`](super::AsyncDriver) are loops over
//! it; a host language (Python, Node) runs the same loop with its own database and HTTP
//! client, carrying [`Io`] and [`Input`] as JSON (`docs/concurrency.md`).

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use time::OffsetDateTime;

use super::trace;
use super::{
    answer_error, default_grace, done, expect_amount, fresh_payment, needs_check, next_attempt,
    not_applied, refused, retry_answer, settled, store_error, to_time, too_late, wants_check,
    write_ahead_error, BankPage, Command, Done, DriveError, Settled, Swept, EARLIER_ATTEMPTS,
    SETTLE_TRIES,
};
use crate::store::{check_key, StoreError};
use crate::{
    Config, NextStep, Outcome, Outgoing, Payment, Reply, Request, SendFailure, SettleError,
    SettleOutcome, Settlement, StartRequest, Token,
};

/// The protocol's settings, and the maker of [`Steps`]: the API configuration requests are
/// built with, the transport's timeout, and the grace (see
/// [`Driver::with_grace`](super::Driver::with_grace)).
///
/// One step machine per call; each holds every decision the drivers make (write-ahead
/// with compare-and-swap, the deadline before a send, the answer stored with bounded
/// retries, the reload on a conflict, the settlement's retries, the sweep) and asks for
/// each load, write, send and pause as an [`Io`]. The loop that runs it does only that
/// I/O:
///
/// ```
/// use std::time::Duration;
/// use direct_otp::driver::{Command, Done, Input, Io, Protocol, Step, Steps};
/// use direct_otp::sandbox::{OtpSource, Sandbox, SandboxConfig};
/// use direct_otp::store::{MemoryStore, Store};
/// use direct_otp::{Config, Otp, Payment, PaymentSource, Reply, StartRequest};
///
/// let mut bank = Sandbox::new(SandboxConfig::new("sk_test").with_otp(OtpSource::Fixed("123456".into())));
/// let protocol = Protocol::new(Config::new(bank.base_url(), "sk_test")?, Duration::from_secs(30));
/// let memory = MemoryStore::new();
/// let store: &dyn Store<Payment> = &memory; // your database
/// let now = time::OffsetDateTime::now_utc(); // your clock, read at each resume
///
/// // The whole loop: do the I/O the machine asks for, hand the result back.
/// let mut drive = |mut steps: Steps<Done>| {
///     let mut input = Input::Begin;
///     loop {
///         let io = match steps.resume(input, now) {
///             Step::Io(io) => io,
///             Step::Finished(result) => return result,
///         };
///         let stored = |r: Result<(), _>| r.map_or_else(Input::StoreFailed, |()| Input::Stored);
///         input = match io {
///             Io::Load { key } => store.load(&key).map_or_else(Input::StoreFailed, Input::Loaded),
///             Io::LatestForOrder { order_id } => {
///                 store.latest_for_order(&order_id).map_or_else(Input::StoreFailed, Input::Loaded)
///             }
///             Io::Insert { payment } => stored(store.insert(&payment)),
///             Io::Replace { expected, payment } => stored(store.replace(expected, &payment)),
///             Io::ListInFlight { before, limit } => {
///                 store.in_flight_before(before, limit).map_or_else(Input::StoreFailed, Input::Listed)
///             }
///             Io::Send { request, .. } => {
///                 let answer = bank.handle_request(&request, now); // your HTTP client
///                 Input::sent(Reply::Answer { status: answer.status, body: answer.body })
///             }
///             Io::Pause { wait } => {
///                 std::thread::sleep(wait);
///                 Input::Paused
///             }
///             other => panic!("an I/O this loop does not know: {other:?}"),
///         };
///     }
/// };
///
/// let card = PaymentSource::Token { card_token: "tok_1".into(), cvv: None };
/// let done = drive(protocol.start(StartRequest::new("ord_1", "acme", "cust_1", card)?, 1))?;
/// assert_eq!(done.payment.key(), "ord_1/1");
/// let done = drive(protocol.run("ord_1/1", Command::Submit(Otp::new("123456")?)))?;
/// assert!(done.outcome.is_terminal() && done.payment.is_paid());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Protocol {
    config: Config,
    timeout: Duration,
    grace: Duration,
}

impl Protocol {
    /// The protocol for requests built with `config` and sent by a transport whose
    /// exchanges take at most `timeout`; the grace is twice the timeout.
    pub fn new(config: Config, timeout: Duration) -> Self {
        Protocol {
            config,
            timeout,
            grace: default_grace(timeout),
        }
    }

    /// How long a request may stay in flight before a sweep recovers it (see
    /// [`Driver::with_grace`](super::Driver::with_grace)).
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The API configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The transport's timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The grace.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// [`Driver::run`](super::Driver::run) as steps: `command` on the payment under `key`.
    pub fn run(&self, key: &str, command: Command) -> Steps<Done> {
        Steps::new(
            RunTask::new(self.clone(), key.to_owned(), command),
            "run",
            key,
            trace::done,
        )
    }

    /// [`Driver::start`](super::Driver::start) as steps.
    pub fn start(&self, start: StartRequest, attempt: u32) -> Steps<Done> {
        let task = StartTask::new(self.clone(), start, attempt);
        let key = task.key.clone();
        Steps::new(task, "start", &key, trace::done)
    }

    /// [`Driver::start_next`](super::Driver::start_next) as steps.
    pub fn start_next(&self, start: StartRequest) -> Steps<Done> {
        let order_id = start.order_id().as_str().to_owned();
        let task = StartNextTask {
            p: self.clone(),
            start: Some(start),
            then: None,
            waiting: false,
        };
        Steps::new(task, "start_next", &order_id, trace::done)
    }

    /// [`Driver::bank_page`](super::Driver::bank_page) as steps.
    pub fn bank_page(&self, key: &str) -> Steps<BankPage> {
        let task = BankPageTask {
            key: key.to_owned(),
            state: PageState::Begin,
        };
        Steps::new(task, "bank_page", key, trace::bank_page)
    }

    /// [`Driver::settle`](super::Driver::settle) as steps.
    pub fn settle(&self, settlement: Settlement) -> Steps<Settled> {
        let order_id = settlement.order_id().to_owned();
        let task = SettleTask {
            p: self.clone(),
            settlement,
            tries: 0,
            state: SettleState::Begin,
        };
        Steps::new(task, "settle", &order_id, trace::settled)
    }

    /// [`Driver::sweep`](super::Driver::sweep) (`check` false) or
    /// [`Driver::sweep_and_check`](super::Driver::sweep_and_check) (`check` true) as steps.
    pub fn sweep(&self, limit: usize, check: bool) -> Steps<Vec<Swept>> {
        let task = SweepTask {
            p: self.clone(),
            limit,
            check,
            keys: Vec::new().into_iter(),
            swept: Vec::new(),
            state: SweepState::Begin,
        };
        Steps::new(task, "sweep", "", trace::swept)
    }
}

/// One driver call as a step machine (made by [`Protocol`]): [`resume`](Self::resume) it
/// with [`Input::Begin`], then with the result of each [`Io`] it asks for, until it gives
/// [`Step::Finished`]. `T` is what the call gives: [`Done`], [`BankPage`], [`Settled`] or
/// `Vec<Swept>`.
///
/// Dropping it at any point is what a worker that dies does: the payment stays as last
/// stored (in flight, at worst, until the recovery sweep).
pub struct Steps<T> {
    task: Option<Box<dyn Task<Output = T> + Send>>,
    /// The call's span (feature `tracing`).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    span: trace::Span,
    /// Its result as an event (feature `tracing`).
    report: fn(&Result<T, DriveError>),
}

impl<T> fmt::Debug for Steps<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Steps")
            .field("finished", &self.task.is_none())
            .finish()
    }
}

impl<T> Steps<T> {
    fn new(
        task: impl Task<Output = T> + Send + 'static,
        call: &'static str,
        key: &str,
        report: fn(&Result<T, DriveError>),
    ) -> Self {
        Steps {
            task: Some(Box::new(task)),
            span: trace::span(call, key),
            report,
        }
    }

    /// Hands the result of the last [`Io`] asked for (first [`Input::Begin`]) and the time
    /// now; gives the next [`Io`] to do, or the call's result.
    ///
    /// An input that does not answer the I/O asked for (a bug in the loop), or a resume
    /// after the result was given, finishes with [`DriveError::Store`] whose source is a
    /// [`StoreError::Config`] saying so; nothing is written on that account.
    pub fn resume(&mut self, input: Input, now: OffsetDateTime) -> Step<T> {
        #[cfg(feature = "tracing")]
        let _entered = self.span.enter();
        let Some(task) = self.task.as_mut() else {
            let result = Err(misuse("", false, "resumed after it finished"));
            (self.report)(&result);
            return Step::Finished(result);
        };
        match task.resume(input, now) {
            Poll::Io(io) => {
                trace::io(&io);
                Step::Io(io)
            }
            Poll::Ready(result) => {
                self.task = None;
                (self.report)(&result);
                Step::Finished(result)
            }
        }
    }

    /// Whether the call has finished (its result was given).
    pub fn is_finished(&self) -> bool {
        self.task.is_none()
    }
}

/// What [`Steps::resume`] gives: the next I/O, or the call's result.
#[derive(Debug)]
pub enum Step<T> {
    /// Do this, then resume with its result.
    Io(Io),
    /// The call is over: what the driver would return.
    Finished(Result<T, DriveError>),
}

/// The I/O a step machine asks for. Its JSON (`serde`) is `{"op": "load", "key": ...}`
/// and so on: times as Unix milliseconds, durations as milliseconds, a payment as the
/// [`Payment`]'s own JSON (what the stores keep), a request as its parts.
///
/// The JSON of a [`Send`](Io::Send) holds the API key (its `authorization` header) and,
/// for a start or a submit, card data or the OTP in its body: hand it to the HTTP client
/// and nothing else (never log it). Its `Debug` redacts them.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Io {
    /// Load the payment under `key`: [`Input::Loaded`] (`None` when there is none) or
    /// [`Input::StoreFailed`].
    Load {
        /// The key.
        key: String,
    },
    /// Load the latest attempt of the order ([`Store::latest_for_order`](crate::store::Store::latest_for_order)):
    /// [`Input::Loaded`] or [`Input::StoreFailed`].
    LatestForOrder {
        /// The order id.
        order_id: String,
    },
    /// Insert this new payment ([`Store::insert`](crate::store::Store::insert)):
    /// [`Input::Stored`], or [`Input::StoreFailed`] (a conflict if the key exists).
    Insert {
        /// The payment to insert.
        payment: Box<Payment>,
    },
    /// Replace the payment if its stored revision is still `expected`
    /// ([`Store::replace`](crate::store::Store::replace), compare-and-swap):
    /// [`Input::Stored`], or [`Input::StoreFailed`] (a conflict otherwise).
    Replace {
        /// The revision the payment was loaded at.
        expected: u64,
        /// The payment to store.
        payment: Box<Payment>,
    },
    /// List the keys of payments in flight since before `before`, oldest first, at most
    /// `limit` ([`Store::in_flight_before`](crate::store::Store::in_flight_before)):
    /// [`Input::Listed`] or [`Input::StoreFailed`].
    ListInFlight {
        /// The cutoff (Unix ms in JSON).
        #[serde(serialize_with = "ser_ms")]
        before: OffsetDateTime,
        /// At most this many keys.
        limit: usize,
    },
    /// Send this request now: [`Input::Sent`] with the answer or how it failed. Its
    /// write-ahead is stored; the machine checked it is young enough. Do not send it past
    /// `send_by` (a long pause since it was asked for): answer
    /// `Input::sent(Reply::Failed(SendFailure::NotSent))` instead.
    Send {
        /// The key of the payment whose request this is (for the host's logs).
        key: String,
        /// The request (its parts in JSON: `kind`, `method`, `url`, `headers`, `body`).
        #[serde(serialize_with = "ser_request")]
        request: Request,
        /// The latest time to send it (Unix ms in JSON).
        #[serde(serialize_with = "ser_ms")]
        send_by: OffsetDateTime,
    },
    /// Wait this long, then resume with [`Input::Paused`] (before retrying the write of
    /// an answer after a store failure that may pass).
    Pause {
        /// How long (ms in JSON).
        #[serde(serialize_with = "ser_duration_ms")]
        wait: Duration,
    },
}

/// The result of an [`Io`], handed to [`Steps::resume`]. Its JSON is
/// `{"result": "loaded", "payment": {...} | null}`, `{"result": "listed", "keys": [...]}`,
/// `{"result": "stored"}`, `{"result": "conflict"}`, `{"result": "store_failed",
/// "transient": true, "message": "..."}` (`"corrupt": true` for a row that does not
/// load), `{"result": "answer", "status": 200, "body": "..."}`, `{"result": "send_failed",
/// "maybe_sent": true, "message": "..."}`, `{"result": "paused"}` and `{"result": "begin"}`.
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "handed over once per step; a box would make every loop write `Box::new`"
)]
pub enum Input {
    /// The first resume: no I/O was asked for yet.
    Begin,
    /// A load's result (for [`Io::Load`] and [`Io::LatestForOrder`]).
    Loaded(Option<Payment>),
    /// A listing's keys ([`Io::ListInFlight`]).
    Listed(Vec<String>),
    /// An insert or a replace went through.
    Stored,
    /// A store operation failed: a conflict ([`StoreError::is_conflict`]), or the store.
    StoreFailed(StoreError),
    /// The exchange's result ([`Io::Send`]): the answer or how it failed, and the
    /// transport's error for the caller's logs ([`Done::transport_error`]).
    Sent {
        /// The answer, or the failure.
        reply: Reply,
        /// The transport's error, when the exchange got no usable answer.
        error: Option<Box<dyn StdError + Send + Sync>>,
    },
    /// The pause is over ([`Io::Pause`]).
    Paused,
}

impl Input {
    /// An exchange's result without a transport error to report.
    pub fn sent(reply: Reply) -> Self {
        Input::Sent { reply, error: None }
    }

    fn name(&self) -> &'static str {
        match self {
            Input::Begin => "begin",
            Input::Loaded(_) => "loaded",
            Input::Listed(_) => "listed",
            Input::Stored => "stored",
            Input::StoreFailed(_) => "store_failed",
            Input::Sent { .. } => "sent",
            Input::Paused => "paused",
        }
    }
}

// ----- serde forms -------------------------------------------------------------------------

fn unix_ms(t: &OffsetDateTime) -> i64 {
    crate::store::unix_ms(*t)
}

fn ser_ms<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(unix_ms(t))
}

fn ser_duration_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A body as JSON: a string when it is UTF-8 (every body here is), else its bytes.
enum BodyForm<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl Serialize for BodyForm<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BodyForm::Text(t) => s.serialize_str(t),
            BodyForm::Bytes(b) => s.collect_seq(b.iter()),
        }
    }
}

fn body_form(body: &[u8]) -> BodyForm<'_> {
    match std::str::from_utf8(body) {
        Ok(t) => BodyForm::Text(t),
        Err(_) => BodyForm::Bytes(body),
    }
}

fn ser_request<S: Serializer>(r: &Request, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Parts<'a> {
        kind: crate::RequestKind,
        method: &'static str,
        url: &'a str,
        headers: Vec<(&'static str, &'a str)>,
        body: BodyForm<'a>,
    }
    Parts {
        kind: r.kind(),
        method: r.method().as_str(),
        url: r.url(),
        headers: r.headers().collect(),
        body: body_form(r.body()),
    }
    .serialize(s)
}

/// A body in JSON: a string (its UTF-8 bytes) or an array of bytes.
#[derive(Deserialize)]
#[serde(untagged)]
enum BodyIn {
    Text(String),
    Bytes(Vec<u8>),
}

#[derive(Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "read once, then moved into an `Input`"
)]
enum InputForm {
    Begin,
    Loaded {
        payment: Option<Payment>,
    },
    Listed {
        keys: Vec<String>,
    },
    Stored,
    Conflict {
        #[serde(default)]
        key: String,
        #[serde(default)]
        found: Option<u64>,
    },
    StoreFailed {
        #[serde(default)]
        key: String,
        #[serde(default)]
        transient: bool,
        #[serde(default)]
        corrupt: bool,
        message: String,
    },
    Answer {
        status: u16,
        body: BodyIn,
    },
    SendFailed {
        maybe_sent: bool,
        #[serde(default)]
        message: Option<String>,
    },
    Paused,
}

/// A host's message as an error.
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Message {}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match InputForm::deserialize(d)? {
            InputForm::Begin => Input::Begin,
            InputForm::Loaded { payment } => Input::Loaded(payment),
            InputForm::Listed { keys } => Input::Listed(keys),
            InputForm::Stored => Input::Stored,
            InputForm::Conflict { key, found } => {
                Input::StoreFailed(StoreError::Conflict { key, found })
            }
            InputForm::StoreFailed {
                key,
                transient,
                corrupt,
                message,
            } => Input::StoreFailed(if corrupt {
                StoreError::Corrupt {
                    key,
                    source: Box::new(Message(message)),
                }
            } else if transient {
                StoreError::backend(Message(message))
            } else {
                StoreError::Config { reason: message }
            }),
            InputForm::Answer { status, body } => Input::sent(Reply::Answer {
                status,
                body: match body {
                    BodyIn::Text(t) => t.into_bytes(),
                    BodyIn::Bytes(b) => b,
                },
            }),
            InputForm::SendFailed {
                maybe_sent,
                message,
            } => Input::Sent {
                reply: Reply::Failed(if maybe_sent {
                    SendFailure::MaybeSent
                } else {
                    SendFailure::NotSent
                }),
                error: message.map(|m| Box::new(Message(m)) as Box<dyn StdError + Send + Sync>),
            },
            InputForm::Paused => Input::Paused,
        })
    }
}

// ----- the machine -------------------------------------------------------------------------

/// A task's answer to one resume.
enum Poll<T> {
    Io(Io),
    Ready(Result<T, DriveError>),
}

/// One call's steps. Each is resumed with the result of the I/O it asked for last.
trait Task {
    type Output;
    fn resume(&mut self, input: Input, now: OffsetDateTime) -> Poll<Self::Output>;
}

/// An input that does not answer the I/O asked for: the loop's bug.
fn misuse(key: &str, sent: bool, what: &str) -> DriveError {
    DriveError::Store {
        key: key.to_owned(),
        sent,
        source: StoreError::Config {
            reason: format!("the step machine was {what}"),
        },
    }
}

fn unexpected(key: &str, sent: bool, input: &Input) -> DriveError {
    misuse(
        key,
        sent,
        &format!(
            "handed `{}`, not the result of the I/O it asked for",
            input.name()
        ),
    )
}

/// Loading `key`, or the error a store would give for a key it cannot hold.
fn load(key: &str) -> Result<Io, DriveError> {
    check_key(key).map_err(|e| store_error(key, false, e))?;
    Ok(Io::Load {
        key: key.to_owned(),
    })
}

/// Where a write-ahead is: stored, then the exchange.
enum ExState {
    /// The write-ahead was asked for.
    WriteAhead,
    /// The write-ahead lost: reloading for the error to carry.
    ReloadBusy,
    /// Too late to send: storing "not sent".
    Late,
    /// The request was asked to be sent.
    Sending,
    /// The answer's write was asked for, after `failures` failed ones.
    Storing {
        failures: u32,
    },
    /// A pause before the next try.
    Pausing {
        failures: u32,
    },
    /// A conflict after a failure: is the stored row this very write?
    OwnWrite {
        error: StoreError,
    },
    Over,
}

/// Rules 2 to 4: the write-ahead with compare-and-swap, the send (or not: too late), the
/// answer stored with compare-and-swap and bounded retries.
struct Exchange {
    p: Protocol,
    key: String,
    payment: Payment,
    token: Option<Token>,
    request: Option<Request>,
    outcome: Option<Outcome>,
    transport_error: Option<Box<dyn StdError + Send + Sync>>,
    state: ExState,
}

impl Exchange {
    /// The write-ahead of `payment` (its request `out` in flight): an insert when
    /// `loaded` is `None`, else a compare-and-swap on the revision loaded.
    fn begin(p: Protocol, payment: Payment, out: Outgoing, loaded: Option<u64>) -> (Self, Io) {
        let io = match loaded {
            None => Io::Insert {
                payment: Box::new(payment.clone()),
            },
            Some(expected) => Io::Replace {
                expected,
                payment: Box::new(payment.clone()),
            },
        };
        let ex = Exchange {
            p,
            key: payment.key().to_owned(),
            payment,
            token: Some(out.token),
            request: Some(out.request),
            outcome: None,
            transport_error: None,
            state: ExState::WriteAhead,
        };
        (ex, io)
    }

    fn replace_io(&self) -> Io {
        // The write-ahead's revision: the answer's compare-and-swap expects it.
        Io::Replace {
            expected: self.ahead(),
            payment: Box::new(self.payment.clone()),
        }
    }

    fn ahead(&self) -> u64 {
        self.token.map_or(0, |t| t.revision())
    }

    fn resume(&mut self, input: Input, now: OffsetDateTime) -> Poll<Done> {
        let key = self.key.clone();
        match (std::mem::replace(&mut self.state, ExState::Over), input) {
            (ExState::WriteAhead, Input::Stored) => self.send(now),
            (ExState::WriteAhead, Input::StoreFailed(e)) if e.is_conflict() => {
                self.state = ExState::ReloadBusy;
                Poll::Io(Io::Load { key })
            }
            (ExState::WriteAhead, Input::StoreFailed(e)) => {
                Poll::Ready(Err(write_ahead_error(&key, e, || None)))
            }
            (ExState::ReloadBusy, Input::Loaded(reloaded)) => Poll::Ready(Err(DriveError::Busy {
                key,
                payment: reloaded.map(Box::new),
            })),
            (ExState::ReloadBusy, Input::StoreFailed(_)) => {
                Poll::Ready(Err(DriveError::Busy { key, payment: None }))
            }
            // Whatever the store said: a conflict is a sweep that got there first.
            (ExState::Late, Input::Stored | Input::StoreFailed(_)) => {
                Poll::Ready(Err(DriveError::Late { key }))
            }
            (ExState::Sending, Input::Sent { reply, error }) => {
                self.transport_error = error;
                let Some(token) = self.token else {
                    return Poll::Ready(Err(misuse(&key, true, "sending without a token")));
                };
                match self.payment.handle(token, reply, now) {
                    Err(source) => Poll::Ready(Err(DriveError::Unanswerable { key, source })),
                    Ok(outcome) => {
                        self.outcome = Some(outcome);
                        self.state = ExState::Storing { failures: 0 };
                        Poll::Io(self.replace_io())
                    }
                }
            }
            (ExState::Storing { .. }, Input::Stored) => self.done(),
            (ExState::Storing { failures }, Input::StoreFailed(error)) => {
                if failures > 0 && error.is_conflict() {
                    self.state = ExState::OwnWrite { error };
                    return Poll::Io(Io::Load { key });
                }
                self.retry(error, failures)
            }
            (ExState::OwnWrite { error }, input) => match input {
                Input::Loaded(Some(stored)) if stored == self.payment => self.done(),
                Input::Loaded(_) | Input::StoreFailed(_) => self.retry(error, 1),
                other => Poll::Ready(Err(unexpected(&key, true, &other))),
            },
            (ExState::Pausing { failures }, Input::Paused) => {
                self.state = ExState::Storing { failures };
                Poll::Io(self.replace_io())
            }
            (state, input) => {
                let sent = matches!(
                    state,
                    ExState::Sending | ExState::Storing { .. } | ExState::Pausing { .. }
                );
                Poll::Ready(Err(unexpected(&key, sent, &input)))
            }
        }
    }

    /// After a failed write of the answer: a pause and another try, or the error.
    fn retry(&mut self, error: StoreError, failures: u32) -> Poll<Done> {
        match retry_answer(&error, failures) {
            Some(wait) => {
                self.state = ExState::Pausing {
                    failures: failures + 1,
                };
                Poll::Io(Io::Pause { wait })
            }
            None => Poll::Ready(Err(match self.outcome.take() {
                Some(outcome) => answer_error(&self.key, outcome, error),
                None => store_error(&self.key, true, error),
            })),
        }
    }

    /// Rule 3: send promptly, or tell the payment it was not sent.
    fn send(&mut self, now: OffsetDateTime) -> Poll<Done> {
        let key = self.key.clone();
        if too_late(&self.payment, self.p.grace, self.p.timeout, now) {
            let not_sent = Reply::Failed(SendFailure::NotSent);
            let told = self
                .token
                .is_some_and(|t| self.payment.handle(t, not_sent, now).is_ok());
            if told {
                self.state = ExState::Late;
                return Poll::Io(self.replace_io());
            }
            return Poll::Ready(Err(DriveError::Late { key }));
        }
        let window = to_time(self.p.grace.saturating_sub(self.p.timeout));
        let since = self.payment.in_flight_since().unwrap_or(now);
        match self.request.take() {
            Some(request) => {
                self.state = ExState::Sending;
                Poll::Io(Io::Send {
                    key,
                    request,
                    send_by: since.saturating_add(window),
                })
            }
            None => Poll::Ready(Err(misuse(&key, false, "asked to send twice"))),
        }
    }

    fn done(&mut self) -> Poll<Done> {
        let Some(outcome) = self.outcome.take() else {
            return Poll::Ready(Err(misuse(
                &self.key,
                true,
                "storing an answer it never had",
            )));
        };
        Poll::Ready(done(
            self.payment.clone(),
            outcome,
            self.transport_error.take(),
        ))
    }
}

/// `run`: load, command, then the exchange.
struct RunTask {
    p: Protocol,
    key: String,
    command: Option<Command>,
    exchange: Option<Exchange>,
}

impl RunTask {
    fn new(p: Protocol, key: String, command: Command) -> Self {
        RunTask {
            p,
            key,
            command: Some(command),
            exchange: None,
        }
    }
}

impl Task for RunTask {
    type Output = Done;

    fn resume(&mut self, input: Input, now: OffsetDateTime) -> Poll<Done> {
        if let Some(ex) = self.exchange.as_mut() {
            return ex.resume(input, now);
        }
        let key = self.key.clone();
        match input {
            Input::Begin => match load(&key) {
                Ok(io) => Poll::Io(io),
                Err(e) => Poll::Ready(Err(e)),
            },
            Input::Loaded(None) => Poll::Ready(Err(DriveError::NotFound { key })),
            Input::Loaded(Some(stored)) => {
                let Some(command) = self.command.take() else {
                    return Poll::Ready(Err(misuse(&key, false, "loaded twice")));
                };
                let loaded = stored.revision();
                let mut payment = stored.clone();
                match command.issue(&mut payment, &self.p.config, now) {
                    Err(r) => Poll::Ready(Err(refused(&key, r, Some(&stored)))),
                    Ok(out) => {
                        let (ex, io) = Exchange::begin(self.p.clone(), payment, out, Some(loaded));
                        self.exchange = Some(ex);
                        Poll::Io(io)
                    }
                }
            }
            Input::StoreFailed(e) => Poll::Ready(Err(store_error(&key, false, e))),
            other => Poll::Ready(Err(unexpected(&key, false, &other))),
        }
    }
}

/// `start`: load the key, start the stored or a fresh payment, then the exchange.
struct StartTask {
    p: Protocol,
    start: Option<StartRequest>,
    attempt: u32,
    key: String,
    began: Option<OffsetDateTime>,
    exchange: Option<Exchange>,
}

impl StartTask {
    fn new(p: Protocol, start: StartRequest, attempt: u32) -> Self {
        StartTask {
            p,
            key: Payment::key_for(start.order_id().as_str(), attempt),
            start: Some(start),
            attempt,
            began: None,
            exchange: None,
        }
    }
}

impl Task for StartTask {
    type Output = Done;

    fn resume(&mut self, input: Input, now: OffsetDateTime) -> Poll<Done> {
        if let Some(ex) = self.exchange.as_mut() {
            return ex.resume(input, now);
        }
        let key = self.key.clone();
        match input {
            Input::Begin => {
                self.began = Some(now);
                match load(&key) {
                    Ok(io) => Poll::Io(io),
                    Err(e) => Poll::Ready(Err(e)),
                }
            }
            Input::Loaded(stored) => {
                let Some(start) = self.start.take() else {
                    return Poll::Ready(Err(misuse(&key, false, "loaded twice")));
                };
                let began = self.began.unwrap_or(now);
                let (mut payment, loaded) = match stored {
                    Some(payment) => {
                        let revision = payment.revision();
                        (payment, Some(revision))
                    }
                    None => (fresh_payment(&start, self.attempt, began), None),
                };
                let before = loaded.map(|_| payment.clone());
                let issued = expect_amount(&mut payment, &start)
                    .and_then(|()| payment.start(&self.p.config, &start, began));
                match issued {
                    Err(r) => Poll::Ready(Err(refused(&key, r, before.as_ref()))),
                    Ok(out) => {
                        let (ex, io) = Exchange::begin(self.p.clone(), payment, out, loaded);
                        self.exchange = Some(ex);
                        Poll::Io(io)
                    }
                }
            }
            Input::StoreFailed(e) => Poll::Ready(Err(store_error(&key, false, e))),
            other => Poll::Ready(Err(unexpected(&key, false, &other))),
        }
    }
}

/// `start_next`: the latest attempt, then a start or the next attempt's exchange.
struct StartNextTask {
    p: Protocol,
    start: Option<StartRequest>,
    then: Option<Then>,
    waiting: bool,
}

enum Then {
    Start(Box<StartTask>),
    Exchange(Box<Exchange>),
}

impl Task for StartNextTask {
    type Output = Done;

    fn resume(&mut self, input: Input, now: OffsetDateTime) -> Poll<Done> {
        match self.then.as_mut() {
            Some(Then::Start(task)) => return task.resume(input, now),
            Some(Then::Exchange(ex)) => return ex.resume(input, now),
            None => {}
        }
        let order_id = self
            .start
            .as_ref()
            .map(|s| s.order_id().as_str().to_owned())
            .unwrap_or_default();
        match (self.waiting, input) {
            (false, Input::Begin) => {
                if let Err(e) = check_key(&order_id) {
                    return Poll::Ready(Err(store_error(&order_id, false, e)));
                }
                self.waiting = true;
                Poll::Io(Io::LatestForOrder { order_id })
            }
            (true, Input::Loaded(latest)) => {
                let Some(start) = self.start.take() else {
                    return Poll::Ready(Err(misuse(&order_id, false, "loaded twice")));
                };
                let attempt = match &latest {
                    None => Some(1),
                    Some(l) if l.next_step(now) == NextStep::Start => Some(l.attempt()),
                    Some(_) => None,
                };
                if let Some(attempt) = attempt {
                    let mut task = StartTask::new(self.p.clone(), start, attempt);
                    let poll = task.resume(Input::Begin, now);
                    self.then = Some(Then::Start(Box::new(task)));
                    return poll;
                }
                let Some(latest) = latest else {
                    return Poll::Ready(Err(misuse(&order_id, false, "lost the latest")));
                };
                match next_attempt(&latest, &start, &self.p.config, now) {
                    Err(e) => Poll::Ready(Err(e)),
                    Ok((next, out)) => {
                        let (ex, io) = Exchange::begin(self.p.clone(), next, out, None);
                        self.then = Some(Then::Exchange(Box::new(ex)));
                        Poll::Io(io)
                    }
                }
            }
            (true, Input::StoreFailed(e)) => Poll::Ready(Err(store_error(&order_id, false, e))),
            (_, other) => Poll::Ready(Err(unexpected(&order_id, false, &other))),
        }
    }
}

enum PageState {
    Begin,
    Loading,
    Storing(Box<BankPage>),
    ReloadBusy,
}

/// `bank_page`: load, go to the bank page, store it if it changed.
struct BankPageTask {
    key: String,
    state: PageState,
}

impl Task for BankPageTask {
    type Output = BankPage;

    fn resume(&mut self, input: Input, now: OffsetDateTime) -> Poll<BankPage> {
        let key = self.key.clone();
        match (std::mem::replace(&mut self.state, PageState::Begin), input) {
            (PageState::Begin, Input::Begin) => match load(&key) {
                Ok(io) => {
                    self.state = PageState::Loading;
                    Poll::Io(io)
                }
                Err(e) => Poll::Ready(Err(e)),
            },
            (PageState::Loading, Input::Loaded(None)) => {
                Poll::Ready(Err(DriveError::NotFound { key }))
            }
            (PageState::Loading, Input::Loaded(Some(stored))) => {
                let loaded = stored.revision();
                let mut payment = stored.clone();
                match payment.go_to_bank_page(now) {
                    Err(r) => Poll::Ready(Err(refused(&key, r, Some(&stored)))),
                    Ok(url) if payment.revision() == loaded => {
                        Poll::Ready(Ok(BankPage { url, payment }))
                    }
                    Ok(url) => {
                        let io = Io::Replace {
                            expected: loaded,
                            payment: Box::new(payment.clone()),
                        };
                        self.state = PageState::Storing(Box::new(BankPage { url, payment }));
                        Poll::Io(io)
                    }
                }
            }
            (PageState::Loading, Input::StoreFailed(e)) => {
                Poll::Ready(Err(store_error(&key, false, e)))
            }
            (PageState::Storing(page), Input::Stored) => Poll::Ready(Ok(*page)),
            (PageState::Storing(_), Input::StoreFailed(e)) if e.is_conflict() => {
                self.state = PageState::ReloadBusy;
                Poll::Io(Io::Load { key })
            }
            (PageState::Storing(_), Input::StoreFailed(e)) => {
                Poll::Ready(Err(write_ahead_error(&key, e, || None)))
            }
            (PageState::ReloadBusy, input) => Poll::Ready(Err(DriveError::Busy {
                key,
                payment: match input {
                    Input::Loaded(p) => p.map(Box::new),
                    _ => None,
                },
            })),
            (_, other) => Poll::Ready(Err(unexpected(&key, false, &other))),
        }
    }
}

enum SettleState {
    Begin,
    Latest,
    /// Looking for an earlier attempt: the latest's key, the attempt being loaded, how
    /// many were looked at.
    Earlier {
        latest: String,
        attempt: u32,
        looked: u32,
    },
    Storing {
        payment: Box<Payment>,
        outcome: SettleOutcome,
    },
    ReloadBusy {
        key: String,
    },
    Checking {
        payment: Box<Payment>,
        outcome: SettleOutcome,
        check: Box<RunTask>,
    },
    Over,
}

/// `settle`: the latest started attempt, the hint applied, stored with compare-and-swap
/// (again on a conflict), then the status check the payment needs.
struct SettleTask {
    p: Protocol,
    settlement: Settlement,
    tries: usize,
    state: SettleState,
}

impl SettleTask {
    fn order_id(&self) -> String {
        self.settlement.order_id().to_owned()
    }

    fn begin(&mut self) -> Poll<Settled> {
        self.tries += 1;
        let order_id = self.order_id();
        if let Err(e) = check_key(&order_id) {
            return Poll::Ready(Err(store_error(&order_id, false, e)));
        }
        self.state = SettleState::Latest;
        Poll::Io(Io::LatestForOrder { order_id })
    }

    /// The hint applied to `payment`, or the search for an earlier attempt.
    fn apply(
        &mut self,
        mut payment: Payment,
        latest: String,
        attempt: u32,
        looked: u32,
        now: OffsetDateTime,
    ) -> Poll<Settled> {
        let loaded = payment.revision();
        match payment.settle(self.settlement.clone(), now) {
            Ok(outcome) if payment.revision() != loaded => {
                let io = Io::Replace {
                    expected: loaded,
                    payment: Box::new(payment.clone()),
                };
                self.state = SettleState::Storing {
                    payment: Box::new(payment),
                    outcome,
                };
                Poll::Io(io)
            }
            Ok(outcome) => self.check(payment, outcome, now),
            Err(SettleError::NotStarted) => self.earlier(latest, attempt, looked),
            Err(e) => Poll::Ready(Err(not_applied(payment.key(), e))),
        }
    }

    /// Never started: the hint is about an earlier attempt.
    fn earlier(&mut self, latest: String, attempt: u32, looked: u32) -> Poll<Settled> {
        if attempt > 1 && looked < EARLIER_ATTEMPTS {
            let key = Payment::key_for(&self.order_id(), attempt - 1);
            self.state = SettleState::Earlier {
                latest,
                attempt: attempt - 1,
                looked: looked + 1,
            };
            match load(&key) {
                Ok(io) => Poll::Io(io),
                Err(e) => Poll::Ready(Err(e)),
            }
        } else {
            Poll::Ready(Err(not_applied(&latest, SettleError::NotStarted)))
        }
    }

    fn check(
        &mut self,
        payment: Payment,
        outcome: SettleOutcome,
        now: OffsetDateTime,
    ) -> Poll<Settled> {
        if !wants_check(&payment, &outcome, now) {
            return Poll::Ready(Ok(settled(payment, outcome, None)));
        }
        let mut check = Box::new(RunTask::new(
            self.p.clone(),
            payment.key().to_owned(),
            Command::CheckStatus,
        ));
        match check.resume(Input::Begin, now) {
            Poll::Io(io) => {
                self.state = SettleState::Checking {
                    payment: Box::new(payment),
                    outcome,
                    check,
                };
                Poll::Io(io)
            }
            Poll::Ready(result) => Poll::Ready(Ok(settled(payment, outcome, Some(result)))),
        }
    }
}

impl Task for SettleTask {
    type Output = Settled;

    fn resume(&mut self, input: Input, now: OffsetDateTime) -> Poll<Settled> {
        let order_id = self.order_id();
        match (std::mem::replace(&mut self.state, SettleState::Over), input) {
            (SettleState::Begin, Input::Begin) => self.begin(),
            (SettleState::Latest, Input::Loaded(None)) => {
                Poll::Ready(Err(DriveError::UnknownOrder { order_id }))
            }
            (SettleState::Latest, Input::Loaded(Some(payment))) => {
                let (latest, attempt) = (payment.key().to_owned(), payment.attempt());
                self.apply(payment, latest, attempt, 0, now)
            }
            (SettleState::Latest, Input::StoreFailed(e)) => {
                Poll::Ready(Err(store_error(&order_id, false, e)))
            }
            (
                SettleState::Earlier {
                    latest,
                    attempt,
                    looked,
                },
                Input::Loaded(found),
            ) => match found {
                Some(payment) => self.apply(payment, latest, attempt, looked, now),
                None => self.earlier(latest, attempt, looked),
            },
            (SettleState::Earlier { attempt, .. }, Input::StoreFailed(e)) => {
                let key = Payment::key_for(&order_id, attempt);
                Poll::Ready(Err(store_error(&key, false, e)))
            }
            (SettleState::Storing { payment, outcome }, Input::Stored) => {
                self.check(*payment, outcome, now)
            }
            (SettleState::Storing { payment, .. }, Input::StoreFailed(e)) => {
                if e.is_conflict() && self.tries < SETTLE_TRIES {
                    return self.begin();
                }
                let key = payment.key().to_owned();
                if e.is_conflict() {
                    self.state = SettleState::ReloadBusy { key: key.clone() };
                    return Poll::Io(Io::Load { key });
                }
                Poll::Ready(Err(write_ahead_error(&key, e, || None)))
            }
            (SettleState::ReloadBusy { key }, input) => Poll::Ready(Err(DriveError::Busy {
                key,
                payment: match input {
                    Input::Loaded(p) => p.map(Box::new),
                    _ => None,
                },
            })),
            (
                SettleState::Checking {
                    payment,
                    outcome,
                    mut check,
                },
                input,
            ) => match check.resume(input, now) {
                Poll::Io(io) => {
                    self.state = SettleState::Checking {
                        payment,
                        outcome,
                        check,
                    };
                    Poll::Io(io)
                }
                Poll::Ready(result) => Poll::Ready(Ok(settled(*payment, outcome, Some(result)))),
            },
            (_, other) => Poll::Ready(Err(unexpected(&order_id, false, &other))),
        }
    }
}

enum SweepState {
    Begin,
    Listing,
    Loading {
        key: String,
    },
    Storing {
        key: String,
        outcome: Outcome,
        check: bool,
    },
    Checking {
        key: String,
        outcome: Outcome,
        check: Box<RunTask>,
    },
    Over,
}

/// The recovery sweep: list, then each payment loaded, recovered, stored with
/// compare-and-swap, and (with `check`) its status checked.
struct SweepTask {
    p: Protocol,
    limit: usize,
    check: bool,
    keys: std::vec::IntoIter<String>,
    swept: Vec<Swept>,
    state: SweepState,
}

impl SweepTask {
    /// The next listed key, or the sweep's result.
    fn next_key(&mut self, swept: Option<Swept>) -> Poll<Vec<Swept>> {
        self.swept.extend(swept);
        loop {
            let Some(key) = self.keys.next() else {
                return Poll::Ready(Ok(std::mem::take(&mut self.swept)));
            };
            match load(&key) {
                Ok(io) => {
                    self.state = SweepState::Loading { key };
                    return Poll::Io(io);
                }
                Err(error) => self.swept.push(Swept::Failed { key, error }),
            }
        }
    }
}

impl Task for SweepTask {
    type Output = Vec<Swept>;

    fn resume(&mut self, input: Input, now: OffsetDateTime) -> Poll<Vec<Swept>> {
        match (std::mem::replace(&mut self.state, SweepState::Over), input) {
            (SweepState::Begin, Input::Begin) => {
                self.state = SweepState::Listing;
                Poll::Io(Io::ListInFlight {
                    before: now - to_time(self.p.grace),
                    limit: self.limit,
                })
            }
            (SweepState::Listing, Input::Listed(keys)) => {
                self.keys = keys.into_iter();
                self.next_key(None)
            }
            (SweepState::Listing, Input::StoreFailed(e)) => {
                Poll::Ready(Err(store_error("", false, e)))
            }
            (SweepState::Loading { key }, Input::Loaded(None)) => {
                self.next_key(Some(Swept::Moved { key }))
            }
            (SweepState::Loading { key }, Input::StoreFailed(e)) => {
                let error = store_error(&key, false, e);
                self.next_key(Some(Swept::Failed { key, error }))
            }
            (SweepState::Loading { key }, Input::Loaded(Some(mut payment))) => {
                let loaded = payment.revision();
                let Some(outcome) = payment.recover(self.p.grace, now) else {
                    return self.next_key(Some(Swept::Moved { key }));
                };
                let check = self.check && needs_check(&payment, now);
                self.state = SweepState::Storing {
                    key,
                    outcome,
                    check,
                };
                Poll::Io(Io::Replace {
                    expected: loaded,
                    payment: Box::new(payment),
                })
            }
            (SweepState::Storing { key, .. }, Input::StoreFailed(e)) if e.is_conflict() => {
                self.next_key(Some(Swept::Moved { key }))
            }
            (SweepState::Storing { key, .. }, Input::StoreFailed(e)) => {
                let error = store_error(&key, false, e);
                self.next_key(Some(Swept::Failed { key, error }))
            }
            (
                SweepState::Storing {
                    key,
                    outcome,
                    check,
                },
                Input::Stored,
            ) => {
                if !check {
                    return self.next_key(Some(Swept::Recovered {
                        key,
                        outcome,
                        check: None,
                    }));
                }
                let run = Box::new(RunTask::new(
                    self.p.clone(),
                    key.clone(),
                    Command::CheckStatus,
                ));
                self.drive_check(key, outcome, run, Input::Begin, now)
            }
            (
                SweepState::Checking {
                    key,
                    outcome,
                    check,
                },
                input,
            ) => self.drive_check(key, outcome, check, input, now),
            (_, other) => Poll::Ready(Err(unexpected("", false, &other))),
        }
    }
}

impl SweepTask {
    /// Resumes a recovered payment's status check; when it is over, the next key.
    fn drive_check(
        &mut self,
        key: String,
        outcome: Outcome,
        mut check: Box<RunTask>,
        input: Input,
        now: OffsetDateTime,
    ) -> Poll<Vec<Swept>> {
        match check.resume(input, now) {
            Poll::Io(io) => {
                self.state = SweepState::Checking {
                    key,
                    outcome,
                    check,
                };
                Poll::Io(io)
            }
            Poll::Ready(result) => self.next_key(Some(Swept::Recovered {
                key,
                outcome,
                check: Some(result),
            })),
        }
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Begin => f.write_str("Begin"),
            Input::Loaded(p) => f
                .debug_tuple("Loaded")
                .field(&p.as_ref().map(|p| (p.key(), p.revision())))
                .finish(),
            Input::Listed(keys) => f.debug_tuple("Listed").field(keys).finish(),
            Input::Stored => f.write_str("Stored"),
            Input::StoreFailed(e) => f.debug_tuple("StoreFailed").field(e).finish(),
            Input::Sent { reply, error } => f
                .debug_struct("Sent")
                .field("reply", reply)
                .field("error", error)
                .finish(),
            Input::Paused => f.write_str("Paused"),
        }
    }
}
