//! The blocking driver: any [`Store`] and any [`BlockingSend`].

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{
    loaded, reply, BankPage, BlockingSend, Command, Done, DriveError, Input, Io, Protocol, Settled,
    Step, Steps, Swept,
};
use crate::store::Store;
use crate::{Config, Payment, Settlement, StartRequest};

/// Runs the write-ahead protocol for stored [`Payment`]s, blocking: load, command,
/// compare-and-swap of the request in flight, send, compare-and-swap of the answer; and the
/// recovery sweep. Share one driver between threads (`&Driver` is enough: it is `Sync` when
/// its store and transport are).
///
/// Typically an `SqliteStore` (feature `sqlite`) and a `UreqTransport`
/// (feature `ureq`); in tests, a [`MemoryStore`](crate::store::MemoryStore) and the
/// in-process sandbox (see [`BlockingSend`]).
///
#[cfg_attr(all(feature = "sqlite", feature = "ureq"), doc = "```no_run")]
#[cfg_attr(not(all(feature = "sqlite", feature = "ureq")), doc = "```ignore")]
/// use direct_otp::driver::{Command, DriveError, Driver};
/// use direct_otp::store::SqliteStore;
/// use direct_otp::transport::UreqTransport;
/// use direct_otp::{Config, Otp, PaymentSource, StartRequest};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let driver = Driver::new(
///     SqliteStore::open("payments.sqlite3")?,
///     UreqTransport::with_default_agent(), // 30 s timeout: grace 60 s
///     Config::sandbox("your_api_key")?,
/// );
/// // POST /pay: start attempt 1 of order_42 (POST /txns); the OTP is on its way.
/// let card = PaymentSource::Token { card_token: "tok_123".into(), cvv: None };
/// let start = StartRequest::new("order_42", "acme", "customer_1122", card)?;
/// let done = driver.start(&start, 1)?;
/// let key = done.payment.key().to_owned(); // "order_42/1": the page's id
///
/// // POST /pay/{key}/otp: the cardholder typed the OTP (two tabs may do it at once).
/// match driver.run(&key, Command::Submit(Otp::new("123456")?)) {
///     Ok(done) => println!("{}", done.outcome),           // render done.payment.view(now)
///     Err(e @ DriveError::Busy { .. }) => println!("409: {e}"), // someone else is on it
///     Err(e) => println!("{}: {e}", e.http_status()),
/// }
///
/// // Every half grace or so, in one place: settle what dead workers left in flight.
/// for swept in driver.sweep_and_check(100)? {
///     println!("swept {}", swept.key());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Driver<S, T> {
    store: S,
    transport: T,
    protocol: Protocol,
}

impl<S: Store<Payment>, T: BlockingSend> Driver<S, T> {
    /// A driver over `store` and `transport`, sending as `config`, with a grace of twice
    /// the transport's timeout (see [`with_grace`](Self::with_grace)).
    pub fn new(store: S, transport: T, config: Config) -> Self {
        let protocol = Protocol::new(config, transport.timeout());
        Driver {
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

    /// The step machine this driver runs ([`Protocol`]): the same steps, for a loop of
    /// your own.
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// Runs `steps` to the end: each [`Io`] done with the store and the transport, the
    /// clock read at each resume.
    fn drive<O>(&self, mut steps: Steps<O>) -> Result<O, DriveError> {
        let mut input = Input::Begin;
        loop {
            let io = match steps.resume(input, self.transport.now()) {
                Step::Io(io) => io,
                Step::Finished(result) => return result,
            };
            input = match io {
                Io::Load { key } => self
                    .store
                    .load(&key)
                    .map_or_else(Input::StoreFailed, Input::Loaded),
                Io::LatestForOrder { order_id } => self
                    .store
                    .latest_for_order(&order_id)
                    .map_or_else(Input::StoreFailed, Input::Loaded),
                Io::Insert { payment } => stored(self.store.insert(&payment)),
                Io::Replace { expected, payment } => stored(self.store.replace(expected, &payment)),
                Io::ListInFlight { before, limit } => self
                    .store
                    .in_flight_before(before, limit)
                    .map_or_else(Input::StoreFailed, Input::Listed),
                Io::Send { request, .. } => {
                    let (reply, error) = reply(self.transport.send(request), |e| {
                        self.transport.send_failure(e)
                    });
                    Input::Sent { reply, error }
                }
                Io::Pause { wait } => {
                    std::thread::sleep(wait);
                    Input::Paused
                }
            };
        }
    }

    /// The payment stored under `key` ([`DriveError::NotFound`] if none).
    pub fn load(&self, key: &str) -> Result<Payment, DriveError> {
        loaded(key, self.store.load(key))
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
    /// write-ahead: a success then counts as paid only for that amount.
    pub fn start(&self, start: &StartRequest, attempt: u32) -> Result<Done, DriveError> {
        self.drive(self.protocol.start(start.clone(), attempt))
    }

    /// Starts the next attempt of `start`'s order: attempt 1 when none is stored; the
    /// latest stored attempt again when its start never left; otherwise the attempt after
    /// the latest ([`Payment::next_attempt`]: it keeps the expected amount and the earlier
    /// transactions, so their late webhooks are not taken for this one), refused while the
    /// latest is open or paid ([`DriveError::Refused`] with that payment). The "try again"
    /// button after a failed attempt, in one call; the attempt number comes from the
    /// store ([`Store::latest_for_order`]). [`DriveError::Busy`] if another worker
    /// started the same next attempt first: one `POST /txns` goes out.
    pub fn start_next(&self, start: &StartRequest) -> Result<Done, DriveError> {
        self.drive(self.protocol.start_next(start.clone()))
    }

    /// Runs `command` on the payment stored under `key`, with the whole protocol: the
    /// write-ahead, the send, the answer stored. See [`DriveError`] for what each failure
    /// means and which HTTP status to answer.
    ///
    /// ```
    /// use direct_otp::driver::{Command, DriveError, Driver};
    /// use direct_otp::sandbox::{OtpSource, Sandbox, SandboxConfig};
    /// use direct_otp::store::MemoryStore;
    /// use direct_otp::{Config, Otp, Outcome, PaymentSource, Refusal, StartRequest};
    /// # use std::sync::Mutex;
    /// # struct InProcess(Mutex<Sandbox>);
    /// # #[derive(Debug, thiserror::Error)]
    /// # #[error("dropped")]
    /// # struct Dropped;
    /// # impl direct_otp::driver::BlockingSend for InProcess {
    /// #     type Error = Dropped;
    /// #     fn send(&self, r: direct_otp::Request) -> Result<(u16, Vec<u8>), Dropped> {
    /// #         let a = self.0.lock().unwrap().handle_request(&r, self.now());
    /// #         if a.is_delivered() { Ok((a.status, a.body)) } else { Err(Dropped) }
    /// #     }
    /// #     fn send_failure(&self, _: &Dropped) -> direct_otp::SendFailure {
    /// #         direct_otp::SendFailure::MaybeSent
    /// #     }
    /// #     fn timeout(&self) -> std::time::Duration { std::time::Duration::from_secs(30) }
    /// # }
    ///
    /// // The in-process sandbox as the bank (see `BlockingSend`), a memory store.
    /// let sandbox = Sandbox::new(SandboxConfig::new("sk_test").with_otp(OtpSource::Fixed("123456".into())));
    /// let config = Config::new(sandbox.base_url(), "sk_test")?;
    /// let driver = Driver::new(MemoryStore::new(), InProcess(Mutex::new(sandbox)), config);
    ///
    /// let card = PaymentSource::Token { card_token: "tok_1".into(), cvv: None };
    /// let done = driver.start(&StartRequest::new("ord_1", "acme", "cust_1", card)?, 1)?;
    /// assert_eq!(done.payment.key(), "ord_1/1");
    ///
    /// let done = driver.run("ord_1/1", Command::Submit(Otp::new("654321")?))?;
    /// assert_eq!(done.outcome, Outcome::WrongOtp { attempts_left: 3 });
    /// let done = driver.run("ord_1/1", Command::Submit(Otp::new("123456")?))?;
    /// assert!(done.outcome.is_terminal()); // approved, and stored
    ///
    /// // Settled: a late double click is refused, and nothing is sent.
    /// let e = driver.run("ord_1/1", Command::Resend).unwrap_err();
    /// assert!(matches!(e, DriveError::Refused { refusal: Refusal::AlreadyFinal(_), .. }));
    /// assert_eq!(e.http_status(), 409);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run(&self, key: &str, command: Command) -> Result<Done, DriveError> {
        self.drive(self.protocol.run(key, command))
    }

    /// Applies a settlement hint, a verified return URL or an authenticated webhook, to the
    /// payment it is about, in one call: finds the latest attempt of its order
    /// ([`Store::latest_for_order`]), [`settle`](Payment::settle)s it, stores it with
    /// compare-and-swap when it changed (on a conflict: reloads and applies the hint
    /// again, up to 5 times, then [`DriveError::Busy`]), and, when the payment then needs
    /// the order status (to confirm what the hint said, or because the hint could not
    /// settle it), runs that check as [`run`](Self::run)`(key, Command::CheckStatus)` does.
    ///
    /// If the latest attempt was never started (its start surely did not leave), the hint
    /// is about an earlier one: the earlier attempts are tried, latest first.
    ///
    /// A webhook handler answers `200` to `Ok` and to any error whose
    /// [`http_status`](DriveError::http_status) is under 500 (`UnknownOrder`,
    /// `NotApplied`, `BadKey`, `Busy`: log them; Juspay would retry anything else in
    /// vain), and 5xx only to a store failure, which a retry may fix.
    ///
    /// ```
    /// # use std::sync::Mutex;
    /// # use direct_otp::sandbox::{BankPageResult, Sandbox, SandboxConfig, SANDBOX_RESPONSE_KEY};
    /// # struct InProcess(Mutex<Sandbox>);
    /// # #[derive(Debug, thiserror::Error)]
    /// # #[error("dropped")]
    /// # struct Dropped;
    /// # impl direct_otp::driver::BlockingSend for InProcess {
    /// #     type Error = Dropped;
    /// #     fn send(&self, r: direct_otp::Request) -> Result<(u16, Vec<u8>), Dropped> {
    /// #         let a = self.0.lock().unwrap().handle_request(&r, self.now());
    /// #         if a.is_delivered() { Ok((a.status, a.body)) } else { Err(Dropped) }
    /// #     }
    /// #     fn send_failure(&self, _: &Dropped) -> direct_otp::SendFailure {
    /// #         direct_otp::SendFailure::MaybeSent
    /// #     }
    /// #     fn timeout(&self) -> std::time::Duration { std::time::Duration::from_secs(30) }
    /// # }
    /// use direct_otp::driver::{DriveError, Driver};
    /// use direct_otp::store::MemoryStore;
    /// use direct_otp::{Config, PaymentSource, ResponseKey, ReturnParams, StartRequest};
    ///
    /// // The in-process sandbox as the bank (see `BlockingSend`), a memory store.
    /// let sandbox = Sandbox::new(SandboxConfig::new("sk_test"));
    /// let config = Config::new(sandbox.base_url(), "sk_test")?;
    /// let driver = Driver::new(MemoryStore::new(), InProcess(Mutex::new(sandbox)), config);
    /// let card = PaymentSource::Token { card_token: "tok_1".into(), cvv: None };
    /// let done = driver.start(&StartRequest::new("ord_1", "acme", "cust_1", card)?, 1)?;
    /// # let txn = done.payment.challenge().unwrap().txn_id().to_owned();
    /// # let query = {
    /// #     let mut bank = driver.transport().0.lock().unwrap();
    /// #     bank.complete_bank_page(&txn, BankPageResult::Success).unwrap();
    /// #     bank.return_query("ord_1").unwrap()
    /// # };
    /// let response_key = ResponseKey::new(SANDBOX_RESPONSE_KEY)?;
    ///
    /// // GET /return?order_id=ord_1&status=CHARGED&...: the browser is back from the bank.
    /// let verified = ReturnParams::from_query(&query)?.verify(&response_key)?;
    /// let settled = driver.settle(verified.into())?;
    /// assert_eq!(settled.payment.key(), "ord_1/1"); // the latest attempt of ord_1
    /// assert!(settled.check.is_some());             // the order status was asked
    /// assert!(settled.payment.is_paid() && settled.payment.is_confirmed());
    ///
    /// // A return about an order this shop never stored: log it (a webhook: answer 200).
    /// # let mut verified = ReturnParams::from_query(&query)?.verify(&response_key)?;
    /// # verified.order_id = "ord_9".into();
    /// let e = driver.settle(verified.into()).unwrap_err();
    /// assert!(matches!(e, DriveError::UnknownOrder { .. }));
    /// assert_eq!((e.code(), e.http_status()), ("unknown_order", 404));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn settle(&self, settlement: Settlement) -> Result<Settled, DriveError> {
        self.drive(self.protocol.settle(settlement))
    }

    /// Sends the browser to the bank's page ([`Payment::go_to_bank_page`]): the URL, with
    /// the payment stored (it now waits for the browser's return; check the order status
    /// then). Nothing is sent. [`DriveError::Busy`] if someone else changed it first.
    pub fn bank_page(&self, key: &str) -> Result<BankPage, DriveError> {
        self.drive(self.protocol.bank_page(key))
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
    pub fn sweep(&self, limit: usize) -> Result<Vec<Swept>, DriveError> {
        self.drive(self.protocol.sweep(limit, false))
    }

    /// [`sweep`](Self::sweep), then an order-status check ([`Command::CheckStatus`]) of
    /// every recovered payment that needs one, so that a payment whose worker died is
    /// settled without waiting for the cardholder's page.
    pub fn sweep_and_check(&self, limit: usize) -> Result<Vec<Swept>, DriveError> {
        self.drive(self.protocol.sweep(limit, true))
    }
}

/// An insert's or a replace's result as the machine's input.
fn stored(result: Result<(), crate::store::StoreError>) -> Input {
    result.map_or_else(Input::StoreFailed, |()| Input::Stored)
}

/// The recovery sweep on a thread of its own, for the blocking driver.
impl<S, T> Driver<S, T>
where
    S: Store<Payment> + Send + Sync + 'static,
    T: BlockingSend + Send + Sync + 'static,
{
    /// The recovery sweep, on a thread of its own until stopped: a
    /// [`sweep_and_check`](Self::sweep_and_check) of up to `limit` payments at once and
    /// then every `every` (half the grace or less; at least 1 ms), each result handed to
    /// `report` (to log it). Start it once per service; [`SweepHandle::stop`] (or dropping
    /// the handle) ends it after the sweep under way, if any. Fails only if the thread
    /// cannot be spawned.
    ///
    #[cfg_attr(all(feature = "sqlite", feature = "ureq"), doc = "```no_run")]
    #[cfg_attr(not(all(feature = "sqlite", feature = "ureq")), doc = "```ignore")]
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use direct_otp::driver::Driver;
    /// # use direct_otp::store::SqliteStore;
    /// # use direct_otp::transport::UreqTransport;
    /// # use direct_otp::Config;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let driver = Arc::new(Driver::new(
    ///     SqliteStore::open("payments.sqlite3")?,
    ///     UreqTransport::with_default_agent(),
    ///     Config::sandbox("your_api_key")?,
    /// ));
    /// let sweeper = driver.sweep_every(Duration::from_secs(30), 100, |swept| match swept {
    ///     Ok(swept) => swept.iter().for_each(|s| eprintln!("swept {}", s.key())),
    ///     Err(e) => eprintln!("sweep failed: {e}"),
    /// })?;
    /// // ... serve requests with `driver` ...
    /// sweeper.stop(); // on shutdown
    /// # Ok(()) }
    /// ```
    pub fn sweep_every(
        self: &Arc<Self>,
        every: Duration,
        limit: usize,
        mut report: impl FnMut(Result<Vec<Swept>, DriveError>) + Send + 'static,
    ) -> std::io::Result<SweepHandle> {
        let (stop, stopped) = mpsc::channel::<()>();
        let driver = Arc::clone(self);
        let every = every.max(Duration::from_millis(1));
        let thread = std::thread::Builder::new()
            .name("direct-otp-sweep".into())
            .spawn(move || loop {
                report(driver.sweep_and_check(limit));
                match stopped.recv_timeout(every) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            })?;
        Ok(SweepHandle {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// The periodic sweep of [`Driver::sweep_every`], running on its own thread. Dropping it
/// stops the sweep without waiting; [`stop`](Self::stop) waits for it to end.
#[derive(Debug)]
pub struct SweepHandle {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SweepHandle {
    /// Stops the sweep and waits until its thread has ended (after the sweep under way,
    /// if any). A panic in the sweep (in `report`, say) is resumed here.
    pub fn stop(mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }

    /// Whether the sweep's thread is still running.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for SweepHandle {
    fn drop(&mut self) {
        // The thread sees the channel closed at its next wait, and ends.
        drop(self.stop.take());
    }
}
