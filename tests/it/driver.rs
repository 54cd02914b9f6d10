//! The driver's answers, one case each, deterministic: a memory store, the in-process
//! sandbox as the bank, a virtual clock, and hooks that make another worker act at exactly
//! the wrong moment (between the load and the write-ahead, between the write-ahead and the
//! send). Each case checks what the bank saw, not only what the driver said.
//!
//! The same protocol under load, over HTTP, with SQLite and PostgreSQL: `tests/workers.rs`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use direct_otp::driver::{
    AsyncDriver, AsyncSend, BlockingSend, Command, DriveError, Driver, Swept,
};
use direct_otp::sandbox::{Endpoint, Fault, OtpSource, Sandbox, SandboxConfig};
use direct_otp::store::{MemoryStore, Record, Store, StoreError};
use direct_otp::{
    Config, InputError, NextStep, Otp, Outcome, Payment, PaymentSource, Refusal, Request,
    RequestKind, SendFailure, StartRequest, Status,
};
use time::OffsetDateTime;

const KEY: &str = "sk_test_driver";
const OTP: &str = "123456";
const WRONG: &str = "999999";
/// The transport's timeout; the grace is twice it.
const TIMEOUT: Duration = Duration::from_secs(30);
const GRACE: Duration = Duration::from_secs(60);

type Hook = Box<dyn FnOnce() + Send>;

/// The in-process sandbox as the bank, on a virtual clock, with a hook run just before the
/// next send (another worker acting meanwhile).
#[derive(Clone)]
struct Bank {
    sandbox: Arc<Mutex<Sandbox>>,
    clock_ms: Arc<AtomicI64>,
    before_send: Arc<Mutex<Option<Hook>>>,
    /// Rewrites the next answer's body (an answer about something else).
    tamper: Arc<Mutex<Option<(String, String)>>>,
}

#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error("the sandbox closed the connection without an answer")]
    NoAnswer,
    #[error("connection refused")]
    Refused,
}

impl Bank {
    fn new() -> Bank {
        let sandbox = Sandbox::new(SandboxConfig::new(KEY).with_otp(OtpSource::Fixed(OTP.into())));
        Bank {
            sandbox: Arc::new(Mutex::new(sandbox)),
            clock_ms: Arc::new(AtomicI64::new(1_795_600_800_000)),
            before_send: Arc::default(),
            tamper: Arc::default(),
        }
    }

    fn config(&self) -> Config {
        Config::new(self.sandbox.lock().unwrap().base_url(), KEY).unwrap()
    }

    fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap();
        self.clock_ms.fetch_add(ms, Ordering::SeqCst);
    }

    fn before_next_send(&self, hook: impl FnOnce() + Send + 'static) {
        *self.before_send.lock().unwrap() = Some(Box::new(hook));
    }

    fn requests_to(&self, endpoint: Endpoint) -> usize {
        self.sandbox.lock().unwrap().requests_to(endpoint)
    }

    fn inject(&self, endpoint: Endpoint, fault: Fault) {
        self.sandbox.lock().unwrap().inject(endpoint, fault);
    }

    fn exchange(&self, request: Request) -> Result<(u16, Vec<u8>), Lost> {
        if let Some(hook) = self.before_send.lock().unwrap().take() {
            hook();
        }
        let now = BlockingSend::now(self);
        let answer = self.sandbox.lock().unwrap().handle_request(&request, now);
        if !answer.is_delivered() {
            return Err(Lost::NoAnswer);
        }
        let mut body = answer.body;
        if let Some((from, to)) = self.tamper.lock().unwrap().take() {
            body = String::from_utf8(body).unwrap().replace(&from, &to).into();
        }
        Ok((answer.status, body))
    }
}

impl BlockingSend for Bank {
    type Error = Lost;
    fn send(&self, request: Request) -> Result<(u16, Vec<u8>), Lost> {
        self.exchange(request)
    }
    fn send_failure(&self, error: &Lost) -> SendFailure {
        match error {
            Lost::NoAnswer => SendFailure::MaybeSent,
            Lost::Refused => SendFailure::NotSent,
        }
    }
    fn timeout(&self) -> Duration {
        TIMEOUT
    }
    fn now(&self) -> OffsetDateTime {
        let ms = self.clock_ms.load(Ordering::SeqCst);
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
    }
}

impl AsyncSend for Bank {
    type Error = Lost;
    async fn send(&self, request: Request) -> Result<(u16, Vec<u8>), Lost> {
        self.exchange(request)
    }
    fn send_failure(&self, error: &Lost) -> SendFailure {
        BlockingSend::send_failure(self, error)
    }
    fn timeout(&self) -> Duration {
        TIMEOUT
    }
    fn now(&self) -> OffsetDateTime {
        BlockingSend::now(self)
    }
}

/// A store whose next `replace` or `insert` first lets another worker act.
#[derive(Clone, Default)]
struct Racy {
    inner: MemoryStore,
    before_write: Arc<Mutex<Option<Hook>>>,
}

impl Racy {
    fn before_next_write(&self, hook: impl FnOnce() + Send + 'static) {
        *self.before_write.lock().unwrap() = Some(Box::new(hook));
    }
    fn hook(&self) {
        let hook = self.before_write.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
    }
    fn get(&self, key: &str) -> Payment {
        Store::<Payment>::load(&self.inner, key).unwrap().unwrap()
    }
}

impl Store<Payment> for Racy {
    fn load(&self, key: &str) -> Result<Option<Payment>, StoreError> {
        Store::load(&self.inner, key)
    }
    fn insert(&self, record: &Payment) -> Result<(), StoreError> {
        self.hook();
        Store::insert(&self.inner, record)
    }
    fn replace(&self, expected: u64, record: &Payment) -> Result<(), StoreError> {
        self.hook();
        Store::replace(&self.inner, expected, record)
    }
    fn in_flight_before(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        Store::<Payment>::in_flight_before(&self.inner, cutoff, limit)
    }
    fn latest_for_order(&self, order_id: &str) -> Result<Option<Payment>, StoreError> {
        Store::latest_for_order(&self.inner, order_id)
    }
}

fn start_request(order: &str) -> StartRequest {
    let card = PaymentSource::Token {
        card_token: "tok_visa".into(),
        cvv: None,
    };
    StartRequest::new(order, "acme", "customer_1", card).unwrap()
}

fn otp(s: &str) -> Command {
    Command::Submit(Otp::new(s).unwrap())
}

struct World {
    bank: Bank,
    store: Racy,
    driver: Arc<Driver<Racy, Bank>>,
}

fn world() -> World {
    let bank = Bank::new();
    let store = Racy::default();
    let driver = Driver::new(store.clone(), bank.clone(), bank.config());
    assert_eq!(driver.grace(), GRACE, "twice the timeout by default");
    World {
        bank,
        store,
        driver: Arc::new(driver),
    }
}

impl World {
    /// A payment started through the driver: its key.
    fn started(&self, order: &str) -> String {
        let done = self.driver.start(&start_request(order), 1).unwrap();
        assert_eq!(done.outcome, Outcome::OtpSent { sends_left: 3 });
        done.payment.key().to_owned()
    }
}

#[test]
fn a_whole_payment_goes_through_and_ends_once() {
    let w = world();
    let key = w.started("ord_happy");
    assert_eq!(key, "ord_happy/1");
    let done = w.driver.run(&key, otp(WRONG)).unwrap();
    assert_eq!(done.outcome, Outcome::WrongOtp { attempts_left: 3 });
    assert_eq!(
        done.payment,
        w.store.get(&key),
        "what is returned is stored"
    );
    let done = w.driver.run(&key, otp(OTP)).unwrap();
    assert!(done.outcome.is_terminal(), "{:?}", done.outcome);
    assert_eq!(done.payment.status(), Status::Charged);
    assert!(done.payment.in_flight().is_none());

    // Anything after that is refused, nothing is sent, nothing written.
    let before = w.store.get(&key);
    for command in [Command::Resend, otp(OTP)] {
        let e = w.driver.run(&key, command).unwrap_err();
        assert!(
            matches!(
                &e,
                DriveError::Refused {
                    refusal: Refusal::AlreadyFinal(_),
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!((e.http_status(), e.code()), (409, "already_final"));
    }
    assert_eq!(w.store.get(&key), before);
    assert_eq!(w.bank.requests_to(Endpoint::Submit), 2);
    assert_eq!(w.bank.requests_to(Endpoint::Start), 1);
}

#[test]
fn an_unknown_key_is_not_found() {
    let w = world();
    let e = w.driver.run("nope/1", Command::CheckStatus).unwrap_err();
    assert!(matches!(&e, DriveError::NotFound { key } if key == "nope/1"));
    assert_eq!(
        (e.http_status(), e.code(), e.key()),
        (404, "not_found", "nope/1")
    );
    assert!(matches!(
        w.driver.bank_page("nope/1"),
        Err(DriveError::NotFound { .. })
    ));
}

#[test]
fn a_write_ahead_that_loses_sends_nothing() {
    let w = world();
    let key = w.started("ord_busy");
    // Between our load and our write-ahead, another tab's submit is stored first.
    let (store, config, bank, k) = (
        w.store.clone(),
        w.bank.config(),
        w.bank.clone(),
        key.clone(),
    );
    w.store.before_next_write(move || {
        let mut other = store.get(&k);
        let loaded = other.revision();
        other
            .submit(&config, &Otp::new(OTP).unwrap(), BlockingSend::now(&bank))
            .unwrap();
        Store::replace(&store.inner, loaded, &other).unwrap();
    });
    let e = w.driver.run(&key, otp(OTP)).unwrap_err();
    assert!(matches!(e, DriveError::Busy { .. }), "{e}");
    assert_eq!((e.http_status(), e.code()), (409, "busy"));
    assert_eq!(
        w.bank.requests_to(Endpoint::Submit),
        0,
        "the loser sent nothing"
    );
    // The other tab's request is what is in flight now.
    let stored = w.store.get(&key);
    assert_eq!(
        stored.in_flight().map(|t| t.kind()),
        Some(RequestKind::Submit)
    );
    // A third tab sees it in flight: refused, 409 too.
    let e = w.driver.run(&key, Command::Resend).unwrap_err();
    assert!(
        matches!(
            &e,
            DriveError::Refused {
                refusal: Refusal::InFlight(_),
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.http_status(), 409);
}

#[test]
fn two_starts_of_one_attempt_send_one_post_txns() {
    let w = world();
    let driver = w.driver.clone();
    // While we are about to insert, another worker starts the same attempt and wins.
    w.store.before_next_write(move || {
        driver.start(&start_request("ord_twice"), 1).unwrap();
    });
    let e = w.driver.start(&start_request("ord_twice"), 1).unwrap_err();
    assert!(matches!(e, DriveError::Busy { .. }), "{e}");
    assert_eq!(w.bank.requests_to(Endpoint::Start), 1);
    // Starting it again later is refused: it was started.
    let e = w.driver.start(&start_request("ord_twice"), 1).unwrap_err();
    assert!(
        matches!(
            e,
            DriveError::Refused {
                refusal: Refusal::AlreadyStarted,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(w.bank.requests_to(Endpoint::Start), 1);
    // A second attempt is a second record.
    assert_eq!(w.started_attempt("ord_twice", 2), "ord_twice/2");
}

impl World {
    fn started_attempt(&self, order: &str, attempt: u32) -> String {
        let done = self.driver.start(&start_request(order), attempt).unwrap();
        done.payment.key().to_owned()
    }
}

#[test]
fn a_start_that_surely_did_not_leave_can_be_started_again() {
    let w = world();
    // The connection is refused: nothing left.
    let refusing = Driver::new(w.store.clone(), Refusing(w.bank.clone()), w.bank.config());
    let done = refusing.start(&start_request("ord_refused"), 1).unwrap();
    assert_eq!(done.outcome, Outcome::NotDelivered);
    assert!(done.transport_error.is_some());
    assert_eq!(
        done.payment.next_step(BlockingSend::now(&w.bank)),
        NextStep::Start
    );
    // The stored payment is started again, through the same key.
    let done = w.driver.start(&start_request("ord_refused"), 1).unwrap();
    assert!(matches!(done.outcome, Outcome::OtpSent { .. }));
    assert_eq!(w.bank.requests_to(Endpoint::Start), 1);
}

/// A transport whose connections are all refused.
struct Refusing(Bank);

impl BlockingSend for Refusing {
    type Error = Lost;
    fn send(&self, _: Request) -> Result<(u16, Vec<u8>), Lost> {
        Err(Lost::Refused)
    }
    fn send_failure(&self, e: &Lost) -> SendFailure {
        BlockingSend::send_failure(&self.0, e)
    }
    fn timeout(&self) -> Duration {
        TIMEOUT
    }
    fn now(&self) -> OffsetDateTime {
        BlockingSend::now(&self.0)
    }
}

#[test]
fn a_write_ahead_too_old_to_send_is_not_sent() {
    let w = world();
    let key = w.started("ord_late");
    // The write-ahead takes longer than grace - timeout (a long pause).
    let bank = w.bank.clone();
    w.store
        .before_next_write(move || bank.advance(GRACE - TIMEOUT + Duration::from_secs(1)));
    let e = w.driver.run(&key, otp(OTP)).unwrap_err();
    assert!(matches!(e, DriveError::Late { .. }), "{e}");
    assert_eq!((e.http_status(), e.code()), (503, "late"));
    assert_eq!(w.bank.requests_to(Endpoint::Submit), 0, "nothing sent");
    // The payment was told it was not sent: free again, the OTP not counted.
    let stored = w.store.get(&key);
    assert!(stored.in_flight().is_none());
    assert_eq!(stored.challenge().unwrap().attempts(), 0);
    let done = w.driver.run(&key, otp(OTP)).unwrap();
    assert!(done.outcome.is_terminal());
}

#[test]
fn an_answer_after_a_recovery_is_reported_not_stored() {
    let w = world();
    let key = w.started("ord_overtaken");
    // Our submit is written ahead; before it leaves, the worker stalls past the grace
    // (but under it when the send began) and a sweep recovers the request.
    let (driver, bank) = (w.driver.clone(), w.bank.clone());
    w.bank.before_next_send(move || {
        bank.advance(GRACE + Duration::from_secs(1));
        let swept = driver.sweep(10).unwrap();
        assert!(
            matches!(
                &swept[..],
                [Swept::Recovered {
                    outcome: Outcome::CheckStatus(_),
                    check: None,
                    ..
                }]
            ),
            "{swept:?}"
        );
    });
    let e = w.driver.run(&key, otp(OTP)).unwrap_err();
    let DriveError::Overtaken { outcome, .. } = &e else {
        panic!("{e}");
    };
    assert!(
        outcome.is_terminal(),
        "the answer was the payment: {outcome:?}"
    );
    assert_eq!((e.http_status(), e.code()), (409, "overtaken"));
    // The stored payment is the recovered one; the order status settles it.
    let stored = w.store.get(&key);
    assert_eq!(
        stored.next_step(BlockingSend::now(&w.bank)),
        NextStep::CheckStatus
    );
    let done = w.driver.run(&key, Command::CheckStatus).unwrap();
    assert_eq!(done.outcome, Outcome::Approved(Status::Charged));
    assert_eq!(w.bank.requests_to(Endpoint::Submit), 1);
}

#[test]
fn an_answer_about_another_order_is_refused_and_swept_later() {
    let w = world();
    let key = w.started("ord_foreign");
    *w.bank.tamper.lock().unwrap() = Some(("ord_foreign".into(), "ord_other".into()));
    let e = w.driver.run(&key, otp(WRONG)).unwrap_err();
    assert!(
        matches!(
            e,
            DriveError::Unanswerable {
                source: InputError::Foreign(_),
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.http_status(), 502);
    let stored = w.store.get(&key);
    assert!(stored.in_flight().is_some(), "left in flight for the sweep");
    // Within the grace the sweep leaves it; after, it recovers and checks it.
    assert!(w.driver.sweep_and_check(10).unwrap().is_empty());
    w.bank.advance(GRACE + Duration::from_secs(1));
    let swept = w.driver.sweep_and_check(10).unwrap();
    let [Swept::Recovered {
        check: Some(Ok(done)),
        ..
    }] = &swept[..]
    else {
        panic!("{swept:?}");
    };
    assert_eq!(done.outcome, Outcome::Pending(Status::PendingVbv));
    assert_eq!(
        done.payment.next_step(BlockingSend::now(&w.bank)),
        NextStep::EnterOtp
    );
}

#[test]
fn a_dead_worker_is_swept_and_settled() {
    let w = world();
    let key = w.started("ord_dead");
    // The worker dies right after its submit reached the bank.
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let bank = w.bank.clone();
        w.bank.before_next_send(move || {
            bank.inject(Endpoint::Submit, Fault::DropResponse);
        });
        let bank = w.bank.clone();
        let dying = Driver::new(w.store.clone(), Dying(bank), w.bank.config());
        let _ = dying.run(&key, otp(OTP));
    }));
    assert!(died.is_err());
    assert_eq!(w.bank.requests_to(Endpoint::Submit), 1);
    assert!(w.store.get(&key).in_flight().is_some());
    // The cardholder's page meanwhile: wait.
    let e = w.driver.run(&key, otp(OTP)).unwrap_err();
    assert!(
        matches!(
            e,
            DriveError::Refused {
                refusal: Refusal::InFlight(_),
                ..
            }
        ),
        "{e}"
    );
    w.bank.advance(GRACE + Duration::from_millis(1));
    let swept = w.driver.sweep_and_check(10).unwrap();
    let [Swept::Recovered {
        key: k,
        outcome: Outcome::CheckStatus(_),
        check: Some(Ok(done)),
    }] = &swept[..]
    else {
        panic!("{swept:?}");
    };
    assert_eq!(k, &key);
    assert_eq!(done.outcome, Outcome::Approved(Status::Charged));
    assert_eq!(w.bank.requests_to(Endpoint::Submit), 1, "never re-sent");
    // A second sweep finds nothing.
    assert!(w.driver.sweep_and_check(10).unwrap().is_empty());
}

/// A worker that sends, then dies before handing the answer back.
struct Dying(Bank);

impl BlockingSend for Dying {
    type Error = Lost;
    fn send(&self, request: Request) -> Result<(u16, Vec<u8>), Lost> {
        let _ = self.0.exchange(request);
        panic!("the worker died with the answer in hand");
    }
    fn send_failure(&self, e: &Lost) -> SendFailure {
        BlockingSend::send_failure(&self.0, e)
    }
    fn timeout(&self) -> Duration {
        TIMEOUT
    }
    fn now(&self) -> OffsetDateTime {
        BlockingSend::now(&self.0)
    }
}

#[test]
fn a_corrupt_row_is_reported_by_the_sweep_and_left_alone() {
    let w = world();
    let long_ago = BlockingSend::now(&w.bank) - time::Duration::hours(1);
    w.store
        .inner
        .insert_raw("ord_bad/1", 3, Some(long_ago), "{not json");
    let swept = w.driver.sweep(10).unwrap();
    let [Swept::Failed {
        key,
        error:
            e @ DriveError::Store {
                source: StoreError::Corrupt { .. },
                sent: false,
                ..
            },
    }] = &swept[..]
    else {
        panic!("{swept:?}");
    };
    assert_eq!(key, "ord_bad/1");
    assert_eq!((e.http_status(), e.code()), (500, "store"));
    assert_eq!(
        w.store.inner.raw("ord_bad/1"),
        Some((3, "{not json".to_owned()))
    );
    let e = w.driver.run("ord_bad/1", Command::CheckStatus).unwrap_err();
    assert!(
        matches!(
            e,
            DriveError::Store {
                source: StoreError::Corrupt { .. },
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_lost_answer_goes_to_the_order_status_never_a_resend() {
    let w = world();
    let key = w.started("ord_lost");
    w.bank.inject(Endpoint::Submit, Fault::DropResponse);
    let done = w.driver.run(&key, otp(OTP)).unwrap();
    assert!(
        matches!(done.outcome, Outcome::CheckStatus(_)),
        "{:?}",
        done.outcome
    );
    assert!(done.transport_error.is_some());
    let e = w.driver.run(&key, otp(OTP)).unwrap_err();
    assert!(
        matches!(
            e,
            DriveError::Refused {
                refusal: Refusal::CheckStatus,
                ..
            }
        ),
        "{e}"
    );
    let done = w.driver.run(&key, Command::CheckStatus).unwrap();
    assert_eq!(done.outcome, Outcome::Approved(Status::Charged));
    assert_eq!(w.bank.requests_to(Endpoint::Submit), 1);
}

#[test]
fn the_bank_page_is_stored_and_then_checked() {
    let w = world();
    let key = w.started("ord_page");
    let page = w.driver.bank_page(&key).unwrap();
    assert!(page.url.contains("/v2/pay/start/"), "{}", page.url);
    assert_eq!(page.payment, w.store.get(&key));
    // Asking again (a reload) gives the same URL.
    assert_eq!(w.driver.bank_page(&key).unwrap().url, page.url);
    let txn = w.store.get(&key).challenge().unwrap().txn_id().to_owned();
    w.bank
        .sandbox
        .lock()
        .unwrap()
        .complete_bank_page(&txn, direct_otp::sandbox::BankPageResult::Success)
        .unwrap();
    let done = w.driver.run(&key, Command::CheckStatus).unwrap();
    assert_eq!(done.outcome, Outcome::Approved(Status::Charged));
}

// ----- The async driver -------------------------------------------------------------------

fn assert_send<T: Send>(t: T) -> T {
    t
}

fn is_send<T: Send>(_: &T) {}

#[test]
fn the_async_driver_does_the_same_with_send_futures() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bank = Bank::new();
    let store = MemoryStore::new();
    let driver = AsyncDriver::new(store.clone(), bank.clone(), bank.config());
    rt.block_on(async {
        let done = assert_send(driver.start(&start_request("ord_async"), 1))
            .await
            .unwrap();
        let key = done.payment.key().to_owned();
        let done = assert_send(driver.run(&key, otp(WRONG))).await.unwrap();
        assert_eq!(done.outcome, Outcome::WrongOtp { attempts_left: 3 });
        // A dead worker: its write-ahead stored, never sent, never answered.
        bank.advance(Duration::from_secs(31)); // the resend cooldown
        let mut p: Payment = driver.load(&key).await.unwrap();
        let loaded = p.revision();
        p.resend(driver.config(), AsyncSend::now(&bank)).unwrap();
        direct_otp::store::AsyncStore::replace(&store, loaded, &p)
            .await
            .unwrap();
        let e = driver.run(&key, otp(OTP)).await.unwrap_err();
        assert!(
            matches!(
                e,
                DriveError::Refused {
                    refusal: Refusal::InFlight(_),
                    ..
                }
            ),
            "{e}"
        );
        bank.advance(GRACE + Duration::from_secs(1));
        let swept = assert_send(driver.sweep_and_check(10)).await.unwrap();
        let [Swept::Recovered {
            check: Some(Ok(done)),
            ..
        }] = &swept[..]
        else {
            panic!("{swept:?}");
        };
        assert_eq!(done.outcome, Outcome::Pending(Status::PendingVbv));
        let done = driver.run(&key, otp(OTP)).await.unwrap();
        assert_eq!(done.outcome, Outcome::Approved(Status::Charged));
        let page = driver.bank_page(&key).await;
        assert!(matches!(page, Err(DriveError::Refused { .. })));
        assert_eq!(
            bank.requests_to(Endpoint::Resend),
            0,
            "the dead worker's resend never left"
        );
        assert_eq!(<Payment as Record>::key(&done.payment), key);
    });
}

/// The pair the async driver is for: PostgreSQL and hyper. Compiled, not run: every
/// future is `Send`, so it runs inside `tokio::spawn` and axum handlers.
#[allow(dead_code)]
fn postgres_and_hyper_futures_are_send(
    d: &AsyncDriver<
        direct_otp::store::PgStore,
        direct_otp::transport::HyperTransport<hyper_util::client::legacy::connect::HttpConnector>,
    >,
    start: &StartRequest,
) {
    is_send(&d.start(start, 1));
    is_send(&d.run("k", Command::CheckStatus));
    is_send(&d.bank_page("k"));
    is_send(&d.sweep(1));
    is_send(&d.sweep_and_check(1));
}

/// `spawn_run` finishes a step whose caller went away after the write-ahead (a browser's
/// second click makes axum drop the first handler): the answer is stored, the payment is
/// not left in flight for the sweep.
#[test]
fn a_spawned_step_is_finished_when_its_caller_is_dropped() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bank = Bank::new();
    let store = MemoryStore::new();
    let driver = Arc::new(AsyncDriver::new(store, bank.clone(), bank.config()));
    rt.block_on(async {
        let done = driver.spawn_start(start_request("ord_spawned"), 1).await;
        let key = done.unwrap().payment.key().to_owned();
        // The send waits until the caller has been dropped.
        let (reached, sending) = std::sync::mpsc::channel();
        let (go, released) = std::sync::mpsc::channel::<()>();
        bank.before_next_send(move || {
            reached.send(()).unwrap();
            let _ = released.recv();
        });
        let caller = tokio::spawn({
            let (driver, key) = (Arc::clone(&driver), key.clone());
            async move { driver.spawn_run(&key, otp(OTP)).await }
        });
        tokio::task::spawn_blocking(move || sending.recv().unwrap())
            .await
            .unwrap();
        let p = driver.load(&key).await.unwrap();
        assert!(p.in_flight_since().is_some(), "the write-ahead is stored");
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        go.send(()).unwrap();
        let mut settled = None;
        for _ in 0..1000 {
            let p = driver.load(&key).await.unwrap();
            if p.in_flight_since().is_none() {
                settled = Some(p);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let p = settled.expect("the spawned step stored its answer");
        assert_eq!(p.status(), Status::Charged);
        assert_eq!(bank.requests_to(Endpoint::Submit), 1);
    });
}

/// `sweep_every` sweeps at once, then periodically, and hands each result to its report.
#[test]
fn the_periodic_sweep_settles_a_dead_workers_payment() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bank = Bank::new();
    let driver = Arc::new(AsyncDriver::new(
        MemoryStore::new(),
        bank.clone(),
        bank.config(),
    ));
    rt.block_on(async {
        let done = driver.start(&start_request("ord_swept"), 1).await.unwrap();
        let key = done.payment.key().to_owned();
        // A dead worker: its status check written ahead, never sent.
        let mut p = driver.load(&key).await.unwrap();
        let loaded = p.revision();
        p.check_status(driver.config(), AsyncSend::now(&bank))
            .unwrap();
        direct_otp::store::AsyncStore::replace(driver.store(), loaded, &p)
            .await
            .unwrap();
        bank.advance(GRACE + Duration::from_secs(1));
        let (report, reports) = tokio::sync::mpsc::unbounded_channel();
        let sweeper = tokio::spawn({
            let driver = Arc::clone(&driver);
            async move {
                let report = move |r| report.send(r).unwrap();
                driver.sweep_every(Duration::ZERO, 10, report).await;
            }
        });
        let mut reports = reports;
        let first = reports.recv().await.unwrap().unwrap();
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].key(), key);
        let second = reports.recv().await.unwrap().unwrap();
        assert!(second.is_empty(), "{second:?}");
        sweeper.abort();
        let p = driver.load(&key).await.unwrap();
        assert_eq!(p.in_flight_since(), None);
    });
}
