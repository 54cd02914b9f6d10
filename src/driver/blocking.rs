//! The blocking driver: any [`Store`] and any [`BlockingSend`].

use std::time::Duration;

use super::{
    answer_error, default_grace, loaded, needs_check, refused, reply, to_time, too_late,
    write_ahead_error, BankPage, BlockingSend, Command, Done, DriveError, Swept,
};
use crate::store::Store;
use crate::{Config, Outgoing, Payment, Reply, SendFailure, StartRequest};

/// Runs the write-ahead protocol for stored [`Payment`]s, blocking: load, command,
/// compare-and-swap of the request in flight, send, compare-and-swap of the answer; and the
/// recovery sweep. Share one driver between threads (`&Driver` is enough: it is `Sync` when
/// its store and transport are).
///
/// Typically an `SqliteStore` (feature `sqlite`) and a `UreqTransport`
/// (feature `ureq`); in tests, a [`MemoryStore`](crate::store::MemoryStore) and the
/// in-process sandbox (see [`BlockingSend`]).
///
/// ```no_run
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
    config: Config,
    grace: Duration,
}

impl<S: Store<Payment>, T: BlockingSend> Driver<S, T> {
    /// A driver over `store` and `transport`, sending as `config`, with a grace of twice
    /// the transport's timeout (see [`with_grace`](Self::with_grace)).
    pub fn new(store: S, transport: T, config: Config) -> Self {
        let grace = default_grace(transport.timeout());
        Driver {
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
    pub fn start(&self, start: &StartRequest, attempt: u32) -> Result<Done, DriveError> {
        let now = self.transport.now();
        let fresh = Payment::new(start, attempt, now);
        let key = fresh.key().to_owned();
        let stored = self
            .store
            .load(&key)
            .map_err(|e| super::store_error(&key, false, e))?;
        let (mut payment, loaded) = match stored {
            Some(payment) => {
                let revision = payment.revision();
                (payment, Some(revision))
            }
            None => (fresh, None),
        };
        let out = payment
            .start(&self.config, start, now)
            .map_err(|r| refused(&key, r))?;
        match loaded {
            None => self.store.insert(&payment),
            Some(revision) => self.store.replace(revision, &payment),
        }
        .map_err(|e| write_ahead_error(&key, e))?;
        self.exchange(payment, out)
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
        let mut payment = self.load(key)?;
        let loaded = payment.revision();
        let out = command
            .issue(&mut payment, &self.config, self.transport.now())
            .map_err(|r| refused(key, r))?;
        self.store
            .replace(loaded, &payment)
            .map_err(|e| write_ahead_error(key, e))?;
        self.exchange(payment, out)
    }

    /// Sends the browser to the bank's page ([`Payment::go_to_bank_page`]): the URL, with
    /// the payment stored (it now waits for the browser's return; check the order status
    /// then). Nothing is sent. [`DriveError::Busy`] if someone else changed it first.
    pub fn bank_page(&self, key: &str) -> Result<BankPage, DriveError> {
        let mut payment = self.load(key)?;
        let loaded = payment.revision();
        let url = payment
            .go_to_bank_page(self.transport.now())
            .map_err(|r| refused(key, r))?;
        if payment.revision() != loaded {
            self.store
                .replace(loaded, &payment)
                .map_err(|e| write_ahead_error(key, e))?;
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
    pub fn sweep(&self, limit: usize) -> Result<Vec<Swept>, DriveError> {
        self.sweep_with(limit, false)
    }

    /// [`sweep`](Self::sweep), then an order-status check ([`Command::CheckStatus`]) of
    /// every recovered payment that needs one, so that a payment whose worker died is
    /// settled without waiting for the cardholder's page.
    pub fn sweep_and_check(&self, limit: usize) -> Result<Vec<Swept>, DriveError> {
        self.sweep_with(limit, true)
    }

    fn sweep_with(&self, limit: usize, check: bool) -> Result<Vec<Swept>, DriveError> {
        let now = self.transport.now();
        let keys = self
            .store
            .in_flight_before(now - to_time(self.grace), limit)
            .map_err(|e| super::store_error("", false, e))?;
        Ok(keys
            .into_iter()
            .map(|key| self.sweep_one(key, check))
            .collect())
    }

    fn sweep_one(&self, key: String, check: bool) -> Swept {
        let mut payment = match self.load(&key) {
            Ok(payment) => payment,
            Err(DriveError::NotFound { .. }) => return Swept::Moved { key },
            Err(error) => return Swept::Failed { key, error },
        };
        let loaded = payment.revision();
        let now = self.transport.now();
        let Some(outcome) = payment.recover(self.grace, now) else {
            return Swept::Moved { key };
        };
        match self.store.replace(loaded, &payment) {
            Ok(()) => {}
            Err(e) if e.is_conflict() => return Swept::Moved { key },
            Err(e) => {
                let error = super::store_error(&key, false, e);
                return Swept::Failed { key, error };
            }
        }
        let check =
            (check && needs_check(&payment, now)).then(|| self.run(&key, Command::CheckStatus));
        Swept::Recovered {
            key,
            outcome,
            check,
        }
    }

    /// After the write-ahead won: send promptly (or not at all), hand the answer back,
    /// store it.
    fn exchange(&self, mut payment: Payment, out: Outgoing) -> Result<Done, DriveError> {
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
                let _ = self.store.replace(ahead, &payment);
            }
            return Err(DriveError::Late { key });
        }
        let result = self.transport.send(out.request);
        let (reply, transport_error) = reply(result, |e| self.transport.send_failure(e));
        let outcome = payment
            .handle(out.token, reply, self.transport.now())
            .map_err(|source| DriveError::Unanswerable {
                key: key.clone(),
                source,
            })?;
        self.store
            .replace(ahead, &payment)
            .map_err(|e| answer_error(&key, outcome.clone(), e))?;
        Ok(Done {
            payment,
            outcome,
            transport_error,
        })
    }
}
