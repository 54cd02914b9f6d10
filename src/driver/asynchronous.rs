//! The async driver: any [`AsyncStore`] and any [`AsyncSend`]; its futures are `Send`.

use std::time::Duration;

use super::{
    answer_error, default_grace, expect_amount, fresh_payment, loaded, needs_check, next_attempt,
    not_applied, pause, refused, reply, retry_answer, settled, store_error, to_time, too_late,
    wants_check, write_ahead_error, AsyncSend, BankPage, Command, Done, DriveError, Settled, Swept,
    EARLIER_ATTEMPTS, SETTLE_TRIES,
};
use crate::store::{AsyncStore, StoreError};
use crate::{
    Config, NextStep, Outcome, Outgoing, Payment, Reply, SendFailure, SettleError, SettleOutcome,
    Settlement, StartRequest,
};

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
/// ```no_run
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
    config: Config,
    grace: Duration,
}

impl<S: AsyncStore<Payment>, T: AsyncSend> AsyncDriver<S, T> {
    /// A driver over `store` and `transport`, sending as `config`, with a grace of twice
    /// the transport's timeout (see [`with_grace`](Self::with_grace)).
    pub fn new(store: S, transport: T, config: Config) -> Self {
        let grace = default_grace(transport.timeout());
        AsyncDriver {
            store,
            transport,
            config,
            grace,
        }
    }

    /// How long a request may stay in flight before a sweep treats it as abandoned (its
    /// worker died). It must be longer than the transport's timeout, by more than a
    /// write-ahead takes: a request is only sent while its write-ahead is younger than
    /// `grace - timeout`, so that no sweep recovers a request still on the wire. A grace
    /// not longer than the timeout sends nothing ([`DriveError::Late`]).
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
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
        &self.config
    }

    /// The grace.
    pub fn grace(&self) -> Duration {
        self.grace
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
        let now = self.transport.now();
        let fresh = fresh_payment(start, attempt, now);
        let key = fresh.key().to_owned();
        let stored = self
            .store
            .load(&key)
            .await
            .map_err(|e| store_error(&key, false, e))?;
        let (mut payment, loaded) = match stored {
            Some(payment) => {
                let revision = payment.revision();
                (payment, Some(revision))
            }
            None => (fresh, None),
        };
        let before = loaded.map(|_| payment.clone());
        let issued = expect_amount(&mut payment, start)
            .and_then(|()| payment.start(&self.config, start, now));
        let out = issued.map_err(|r| refused(&key, r, before.as_ref()))?;
        let written = match loaded {
            None => self.store.insert(&payment).await,
            Some(revision) => self.store.replace(revision, &payment).await,
        };
        if let Err(e) = written {
            return Err(self.write_ahead_failed(&key, e).await);
        }
        self.exchange(payment, out).await
    }

    /// Starts the next attempt of `start`'s order (attempt 1 when none is stored): the same
    /// as the blocking [`Driver::start_next`](super::Driver::start_next), see there.
    pub async fn start_next(&self, start: &StartRequest) -> Result<Done, DriveError> {
        let now = self.transport.now();
        let order_id = start.order_id().as_str();
        let latest = self
            .store
            .latest_for_order(order_id)
            .await
            .map_err(|e| store_error(order_id, false, e))?;
        let Some(latest) = latest else {
            return self.start(start, 1).await;
        };
        if latest.next_step(now) == NextStep::Start {
            return self.start(start, latest.attempt()).await;
        }
        let (next, out) = next_attempt(&latest, start, &self.config, now)?;
        let key = next.key().to_owned();
        if let Err(e) = self.store.insert(&next).await {
            return Err(self.write_ahead_failed(&key, e).await);
        }
        self.exchange(next, out).await
    }

    /// Runs `command` on the payment stored under `key`, with the whole protocol: the
    /// write-ahead, the send, the answer stored. See [`DriveError`] for what each failure
    /// means and which HTTP status to answer.
    pub async fn run(&self, key: &str, command: Command) -> Result<Done, DriveError> {
        let stored = self.load(key).await?;
        let loaded = stored.revision();
        let mut payment = stored.clone();
        let out = command
            .issue(&mut payment, &self.config, self.transport.now())
            .map_err(|r| refused(key, r, Some(&stored)))?;
        if let Err(e) = self.store.replace(loaded, &payment).await {
            return Err(self.write_ahead_failed(key, e).await);
        }
        self.exchange(payment, out).await
    }

    /// Applies a settlement hint (a verified return URL or an authenticated webhook) to the
    /// latest started attempt of its order, stores it with compare-and-swap (reloading and
    /// applying it again on a conflict) and runs the order status check the payment then
    /// needs: the same steps as the blocking [`Driver::settle`](super::Driver::settle), see
    /// there.
    pub async fn settle(&self, settlement: Settlement) -> Result<Settled, DriveError> {
        let order_id = settlement.order_id().to_owned();
        let mut tries = 0;
        loop {
            tries += 1;
            let (payment, loaded, outcome) = self.apply(&order_id, &settlement).await?;
            let key = payment.key().to_owned();
            if payment.revision() != loaded {
                match self.store.replace(loaded, &payment).await {
                    Ok(()) => {}
                    Err(e) if e.is_conflict() && tries < SETTLE_TRIES => continue,
                    Err(e) => return Err(self.write_ahead_failed(&key, e).await),
                }
            }
            let check = if wants_check(&payment, &outcome, self.transport.now()) {
                Some(self.run(&key, Command::CheckStatus).await)
            } else {
                None
            };
            return Ok(settled(payment, outcome, check));
        }
    }

    /// The hint applied to the latest started attempt of `order_id` (see the blocking
    /// driver's).
    async fn apply(
        &self,
        order_id: &str,
        settlement: &Settlement,
    ) -> Result<(Payment, u64, SettleOutcome), DriveError> {
        let mut payment = self
            .store
            .latest_for_order(order_id)
            .await
            .map_err(|e| store_error(order_id, false, e))?
            .ok_or_else(|| DriveError::UnknownOrder {
                order_id: order_id.to_owned(),
            })?;
        let latest = payment.key().to_owned();
        let (mut attempt, mut looked) = (payment.attempt(), 0);
        loop {
            let loaded = payment.revision();
            match payment.settle(settlement.clone(), self.transport.now()) {
                Ok(outcome) => return Ok((payment, loaded, outcome)),
                Err(SettleError::NotStarted) => {
                    let mut earlier = None;
                    while earlier.is_none() && attempt > 1 && looked < EARLIER_ATTEMPTS {
                        attempt -= 1;
                        looked += 1;
                        let key = Payment::key_for(order_id, attempt);
                        earlier = self
                            .store
                            .load(&key)
                            .await
                            .map_err(|e| store_error(&key, false, e))?;
                    }
                    payment =
                        earlier.ok_or_else(|| not_applied(&latest, SettleError::NotStarted))?;
                }
                Err(e) => return Err(not_applied(payment.key(), e)),
            }
        }
    }

    /// The payment under `key` as stored now, if it loads (for an error to carry).
    async fn reload(&self, key: &str) -> Option<Payment> {
        self.store.load(key).await.ok().flatten()
    }

    /// A failed write-ahead as the caller's error (a conflict: with the payment reloaded).
    async fn write_ahead_failed(&self, key: &str, e: StoreError) -> DriveError {
        let reloaded = if e.is_conflict() {
            self.reload(key).await
        } else {
            None
        };
        write_ahead_error(key, e, || reloaded)
    }

    /// Sends the browser to the bank's page ([`Payment::go_to_bank_page`]): the URL, with
    /// the payment stored (it now waits for the browser's return; check the order status
    /// then). Nothing is sent. [`DriveError::Busy`] if someone else changed it first.
    pub async fn bank_page(&self, key: &str) -> Result<BankPage, DriveError> {
        let stored = self.load(key).await?;
        let loaded = stored.revision();
        let mut payment = stored.clone();
        let url = payment
            .go_to_bank_page(self.transport.now())
            .map_err(|r| refused(key, r, Some(&stored)))?;
        if payment.revision() != loaded {
            if let Err(e) = self.store.replace(loaded, &payment).await {
                return Err(self.write_ahead_failed(key, e).await);
            }
        }
        Ok(BankPage { url, payment })
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
        self.sweep_with(limit, false).await
    }

    /// [`sweep`](Self::sweep), then an order-status check ([`Command::CheckStatus`]) of
    /// every recovered payment that needs one, so that a payment whose worker died is
    /// settled without waiting for the cardholder's page.
    pub async fn sweep_and_check(&self, limit: usize) -> Result<Vec<Swept>, DriveError> {
        self.sweep_with(limit, true).await
    }

    async fn sweep_with(&self, limit: usize, check: bool) -> Result<Vec<Swept>, DriveError> {
        let now = self.transport.now();
        let keys = self
            .store
            .in_flight_before(now - to_time(self.grace), limit)
            .await
            .map_err(|e| store_error("", false, e))?;
        let mut swept = Vec::with_capacity(keys.len());
        for key in keys {
            swept.push(self.sweep_one(key, check).await);
        }
        Ok(swept)
    }

    async fn sweep_one(&self, key: String, check: bool) -> Swept {
        let mut payment = match self.load(&key).await {
            Ok(payment) => payment,
            Err(DriveError::NotFound { .. }) => return Swept::Moved { key },
            Err(error) => return Swept::Failed { key, error },
        };
        let loaded = payment.revision();
        let now = self.transport.now();
        let Some(outcome) = payment.recover(self.grace, now) else {
            return Swept::Moved { key };
        };
        match self.store.replace(loaded, &payment).await {
            Ok(()) => {}
            Err(e) if e.is_conflict() => return Swept::Moved { key },
            Err(e) => {
                let error = store_error(&key, false, e);
                return Swept::Failed { key, error };
            }
        }
        let check = if check && needs_check(&payment, now) {
            Some(self.run(&key, Command::CheckStatus).await)
        } else {
            None
        };
        Swept::Recovered {
            key,
            outcome,
            check,
        }
    }

    /// After the write-ahead won: send promptly (or not at all), hand the answer back,
    /// store it.
    async fn exchange(&self, mut payment: Payment, out: Outgoing) -> Result<Done, DriveError> {
        let key = payment.key().to_owned();
        let ahead = payment.revision();
        let timeout = self.transport.timeout();
        if too_late(&payment, self.grace, timeout, self.transport.now()) {
            let not_sent = Reply::Failed(SendFailure::NotSent);
            if payment
                .handle(out.token, not_sent, self.transport.now())
                .is_ok()
            {
                // A conflict: a sweep got there first, which is as good.
                let _ = self.store.replace(ahead, &payment).await;
            }
            return Err(DriveError::Late { key });
        }
        let result = self.transport.send(out.request).await;
        let (reply, transport_error) = reply(result, |e| self.transport.send_failure(e));
        let outcome = payment
            .handle(out.token, reply, self.transport.now())
            .map_err(|source| DriveError::Unanswerable {
                key: key.clone(),
                source,
            })?;
        self.store_answer(ahead, &payment, &outcome).await?;
        super::done(payment, outcome, transport_error)
    }

    /// Stores the answer with compare-and-swap on the write-ahead's revision, a store
    /// failure that may pass retried (see the blocking driver's).
    async fn store_answer(
        &self,
        ahead: u64,
        payment: &Payment,
        outcome: &Outcome,
    ) -> Result<(), DriveError> {
        let mut failures = 0;
        loop {
            let error = match self.store.replace(ahead, payment).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if failures > 0
                && error.is_conflict()
                && self.reload(payment.key()).await.as_ref() == Some(payment)
            {
                return Ok(());
            }
            match retry_answer(&error, failures) {
                Some(wait) => pause(wait).await,
                None => return Err(answer_error(payment.key(), outcome.clone(), error)),
            }
            failures += 1;
        }
    }
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
