//! The async driver: any [`AsyncStore`] and any [`AsyncSend`]; its futures are `Send`.

use std::time::Duration;

use super::{
    loaded, pause, reply, AsyncSend, BankPage, Command, Done, DriveError, Input, Io, Protocol,
    Settled, Step, Steps, Swept,
};
use crate::store::{AsyncStore, StoreError};
use crate::{Config, Payment, Settlement, StartRequest};

/// Runs the write-ahead protocol for stored [`Payment`]s, async: the same steps as the
/// blocking [`Driver`](super::Driver) (see there and the [module](super) docs), with
/// futures that are `Send`, so they run inside `tokio::spawn` and axum handlers. Share one
/// driver (behind an `Arc`, or a `&'static`) between tasks.
///
/// Typically a `PgStore` (feature `postgres`) and a `HyperTransport` (feature `hyper`).
///
/// A future dropped between the write-ahead and the answer (a cancelled task, an outer
/// timeout, an axum handler whose browser went away) leaves the payment in flight, as a
/// dead worker does: the recovery sweep settles it after the grace. To finish the step
/// anyway, run it as its own task: [`spawn_start`](Self::spawn_start) and
/// [`spawn_run`](Self::spawn_run) (feature `tokio`) do.
///
#[cfg_attr(all(feature = "postgres", feature = "hyper"), doc = "```no_run")]
#[cfg_attr(not(all(feature = "postgres", feature = "hyper")), doc = "```ignore")]
/// use direct_otp::driver::{AsyncDriver, Command};
/// use direct_otp::store::PgStore;
/// use direct_otp::transport::HyperTransport;
/// use direct_otp::{Config, Otp};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PgStore::connect("postgres://app@db.internal/payments").await?;
/// store.migrate().await?;
/// // `plain_http` for brevity: build the client with hyper-rustls (docs/adapters.md).
/// let driver = AsyncDriver::new(store, HyperTransport::plain_http(), Config::sandbox("your_api_key")?);
///
/// match driver.run("order_42/1", Command::Submit(Otp::new("123456")?)).await {
///     Ok(done) => println!("{}", done.outcome),
///     Err(e) => println!("{} {}: {e}", e.http_status(), e.code()), // 409 busy: reload
/// }
/// // In one task, every half grace or so:
/// let swept = driver.sweep_and_check(100).await?;
/// println!("{} payments swept", swept.len());
/// # Ok(()) }
/// # fn main() {}
/// ```
#[derive(Debug)]
pub struct AsyncDriver<S, T> {
    store: S,
    transport: T,
    protocol: Protocol,
}

impl<S: AsyncStore<Payment>, T: AsyncSend> AsyncDriver<S, T> {
    /// A driver over `store` and `transport`, sending as `config`, with a grace of twice
    /// the transport's timeout (see [`with_grace`](Self::with_grace)).
    pub fn new(store: S, transport: T, config: Config) -> Self {
        let protocol = Protocol::new(config, transport.timeout());
        AsyncDriver {
            store,
            transport,
            protocol,
        }
    }

    /// How long a request may stay in flight before a sweep treats it as abandoned (its
    /// worker died). It must be longer than the transport's timeout, by more than a
    /// write-ahead takes: a request is only sent while its write-ahead is younger than
    /// `grace - timeout`, so that no sweep recovers a request still on the wire. A grace
    /// not longer than the timeout sends nothing ([`DriveError::Late`]).
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.protocol = self.protocol.with_grace(grace);
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The API configuration requests are built with.
    pub fn config(&self) -> &Config {
        self.protocol.config()
    }

    /// The grace.
    pub fn grace(&self) -> Duration {
        self.protocol.grace()
    }

    /// The step machine this driver runs ([`Protocol`]).
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// Runs `steps` to the end: each [`Io`] done with the store and the transport, the
    /// clock read at each resume.
    async fn drive<O>(&self, mut steps: Steps<O>) -> Result<O, DriveError> {
        let mut input = Input::Begin;
        loop {
            let io = match steps.resume(input, self.transport.now()) {
                Step::Io(io) => io,
                Step::Finished(result) => return result,
            };
            input = match io {
                Io::Load { key } => loaded_input(self.store.load(&key).await),
                Io::LatestForOrder { order_id } => {
                    loaded_input(self.store.latest_for_order(&order_id).await)
                }
                Io::Insert { payment } => stored(self.store.insert(&payment).await),
                Io::Replace { expected, payment } => {
                    stored(self.store.replace(expected, &payment).await)
                }
                Io::ListInFlight { before, limit } => self
                    .store
                    .in_flight_before(before, limit)
                    .await
                    .map_or_else(Input::StoreFailed, Input::Listed),
                Io::Send { request, .. } => {
                    let result = self.transport.send(request).await;
                    let (reply, error) = reply(result, |e| self.transport.send_failure(e));
                    Input::Sent { reply, error }
                }
                Io::Pause { wait } => {
                    pause(wait).await;
                    Input::Paused
                }
            };
        }
    }

    /// The payment stored under `key` ([`DriveError::NotFound`] if none).
    pub async fn load(&self, key: &str) -> Result<Payment, DriveError> {
        loaded(key, self.store.load(key).await)
    }

    /// Starts attempt `attempt` of `start`'s order (`POST /txns`), under the key
    /// `{order_id}/{attempt}`: a new payment is inserted with its start in flight (the
    /// write-ahead), then sent. If that key is stored already, the stored payment is
    /// started instead when it may be (its last start surely did not leave, or the bank
    /// refused it), and refused otherwise ([`Refusal::AlreadyStarted`](crate::Refusal)).
    ///
    /// [`DriveError::Busy`] if another worker started this attempt first: only one
    /// `POST /txns` goes out. The card data stays in `start`; the payment never keeps it.
    ///
    /// The expected amount and currency, if `start` has one
    /// ([`StartRequest::with_expected_amount`]), are set on the payment before its
    /// write-ahead.
    pub async fn start(&self, start: &StartRequest, attempt: u32) -> Result<Done, DriveError> {
        self.drive(self.protocol.start(start.clone(), attempt))
            .await
    }

    /// Starts the next attempt of `start`'s order (attempt 1 when none is stored): the same
    /// as the blocking [`Driver::start_next`](super::Driver::start_next), see there.
    pub async fn start_next(&self, start: &StartRequest) -> Result<Done, DriveError> {
        self.drive(self.protocol.start_next(start.clone())).await
    }

    /// Runs `command` on the payment stored under `key`, with the whole protocol: the
    /// write-ahead, the send, the answer stored. See [`DriveError`] for what each failure
    /// means and which HTTP status to answer.
    pub async fn run(&self, key: &str, command: Command) -> Result<Done, DriveError> {
        self.drive(self.protocol.run(key, command)).await
    }

    /// Applies a settlement hint (a verified return URL or an authenticated webhook) to the
    /// latest started attempt of its order, stores it with compare-and-swap (reloading and
    /// applying it again on a conflict) and runs the order status check the payment then
    /// needs: the same steps as the blocking [`Driver::settle`](super::Driver::settle), see
    /// there.
    pub async fn settle(&self, settlement: Settlement) -> Result<Settled, DriveError> {
        self.drive(self.protocol.settle(settlement)).await
    }

    /// Sends the browser to the bank's page ([`Payment::go_to_bank_page`]): the URL, with
    /// the payment stored (it now waits for the browser's return; check the order status
    /// then). Nothing is sent. [`DriveError::Busy`] if someone else changed it first.
    pub async fn bank_page(&self, key: &str) -> Result<BankPage, DriveError> {
        self.drive(self.protocol.bank_page(key)).await
    }

    /// The recovery sweep: up to `limit` payments in flight since longer than the grace
    /// (oldest first), each recovered (its request counts as "maybe sent") and stored with
    /// compare-and-swap. A payment that moved meanwhile is left alone. Fails only when the
    /// listing itself fails; a payment that fails is reported in its [`Swept`] and the
    /// sweep goes on.
    ///
    /// Run it from one place, every half grace or so (a conflict between two sweeps is
    /// harmless, only wasted work). The recovered payments then show "check the order
    /// status"; [`sweep_and_check`](Self::sweep_and_check) also checks it.
    pub async fn sweep(&self, limit: usize) -> Result<Vec<Swept>, DriveError> {
        self.drive(self.protocol.sweep(limit, false)).await
    }

    /// [`sweep`](Self::sweep), then an order-status check ([`Command::CheckStatus`]) of
    /// every recovered payment that needs one, so that a payment whose worker died is
    /// settled without waiting for the cardholder's page.
    pub async fn sweep_and_check(&self, limit: usize) -> Result<Vec<Swept>, DriveError> {
        self.drive(self.protocol.sweep(limit, true)).await
    }
}

/// A load's result as the machine's input.
fn loaded_input(result: Result<Option<Payment>, StoreError>) -> Input {
    result.map_or_else(Input::StoreFailed, Input::Loaded)
}

/// An insert's or a replace's result as the machine's input.
fn stored(result: Result<(), StoreError>) -> Input {
    result.map_or_else(Input::StoreFailed, |()| Input::Stored)
}

/// Steps run as their own tokio task (feature `tokio`), so that dropping the caller's
/// future (a double click makes the browser drop the first request, and axum its handler)
/// never stops a step between its write-ahead and its answer: the answer is stored, and
/// the payment is not left in flight until the sweep. Needs a tokio runtime.
#[cfg(feature = "tokio")]
impl<S, T> AsyncDriver<S, T>
where
    S: AsyncStore<Payment> + Send + Sync + 'static,
    T: AsyncSend + Send + Sync + 'static,
{
    /// [`start`](Self::start), as its own task: it goes on if this future is dropped.
    /// A panic in the step is resumed here.
    pub async fn spawn_start(
        self: &std::sync::Arc<Self>,
        start: StartRequest,
        attempt: u32,
    ) -> Result<Done, DriveError> {
        let driver = std::sync::Arc::clone(self);
        join(tokio::spawn(
            async move { driver.start(&start, attempt).await },
        ))
        .await
    }

    /// [`run`](Self::run), as its own task: it goes on if this future is dropped.
    /// A panic in the step is resumed here.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use direct_otp::driver::{AsyncDriver, Command};
    /// # use direct_otp::store::SqliteStore;
    /// # use direct_otp::transport::HyperTransport;
    /// # use direct_otp::Config;
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = SqliteStore::open("payments.sqlite3")?; // async on tokio's blocking pool
    /// let driver = Arc::new(AsyncDriver::new(store, HyperTransport::plain_http(), Config::sandbox("key")?));
    /// // In an axum handler: if the browser goes away, the status check still completes.
    /// let done = driver.spawn_run("order_42/1", Command::CheckStatus).await?;
    /// println!("{}", done.outcome.code());
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    pub async fn spawn_run(
        self: &std::sync::Arc<Self>,
        key: &str,
        command: Command,
    ) -> Result<Done, DriveError> {
        let (driver, key) = (std::sync::Arc::clone(self), key.to_owned());
        join(tokio::spawn(async move { driver.run(&key, command).await })).await
    }
}

/// The recovery sweep, forever (feature `tokio`): [`sweep_and_check`](AsyncDriver::sweep_and_check)
/// of up to `limit` payments every `every` (half the grace or less; at least 1 ms), the
/// first at once, each result handed to
/// `report` (to log it). Spawn it once per service:
/// `tokio::spawn(async move { driver.sweep_every(every, 100, log).await })`.
#[cfg(feature = "tokio")]
impl<S: AsyncStore<Payment>, T: AsyncSend> AsyncDriver<S, T> {
    /// See above; the future never ends (drop or abort its task to stop it).
    pub async fn sweep_every(
        &self,
        every: Duration,
        limit: usize,
        mut report: impl FnMut(Result<Vec<Swept>, DriveError>),
    ) {
        let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            report(self.sweep_and_check(limit).await);
        }
    }
}

/// A spawned step's result. It is cancelled only when the runtime shuts down, which a
/// request handler does not outlive: that, like a panic, is resumed as a panic.
#[cfg(feature = "tokio")]
async fn join<T>(task: tokio::task::JoinHandle<T>) -> T {
    match task.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("a driver step was cancelled: {e}"),
    }
}
