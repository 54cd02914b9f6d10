//! The driver's answers, one case each, deterministic: a memory store, the in-process
//! sandbox as the bank, a virtual clock, and hooks that make another worker act at exactly
//! the wrong moment (between the load and the write-ahead, between the write-ahead and the
//! send). Each case checks what the bank saw, not only what the driver said.
//!
//! The same protocol under load, over HTTP, with SQLite and PostgreSQL: `tests/workers.rs`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use direct_otp::driver::{
    AsyncDriver, AsyncSend, BlockingSend, Command, Done, DriveError, Driver, Settled, Swept,
};
use direct_otp::sandbox::{
    BankPageResult, Endpoint, Fault, OtpSource, Sandbox, SandboxConfig, SANDBOX_RESPONSE_KEY,
    SANDBOX_WEBHOOK_PASSWORD, SANDBOX_WEBHOOK_USER,
};
use direct_otp::store::{
    AsyncStore, MemoryStore, PgStore, Record, Rejection, SqliteStore, Store, StoreError,
};
use direct_otp::{
    Amount, Config, ExpectedAmount, InputError, NextStep, Otp, Outcome, Payment, PaymentSource,
    Refusal, Request, RequestKind, ResponseKey, ReturnParams, SendFailure, Settlement,
    StartRequest, Status, WebhookCredentials,
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
        e.payment(),
        Some(&w.store.get(&key)),
        "Busy carries the payment as the winner stored it"
    );
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
    assert_eq!(
        e.payment(),
        Some(&stored),
        "Refused carries the stored payment"
    );
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
    hint: Settlement,
) {
    is_send(&d.start(start, 1));
    is_send(&d.run("k", Command::CheckStatus));
    is_send(&d.bank_page("k"));
    is_send(&d.sweep(1));
    is_send(&d.sweep_and_check(1));
    is_send(&d.start_next(start));
    is_send(&d.settle(hint));
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

// ----- Settlement through the driver: return URLs and webhooks, bound to the attempt ------

/// Both drivers behind one face, so one scenario runs on every store.
trait Drives {
    fn start(&self, start: &StartRequest, attempt: u32) -> Result<Done, DriveError>;
    fn start_next(&self, start: &StartRequest) -> Result<Done, DriveError>;
    fn run(&self, key: &str, command: Command) -> Result<Done, DriveError>;
    fn settle(&self, settlement: Settlement) -> Result<Settled, DriveError>;
    fn load(&self, key: &str) -> Result<Payment, DriveError>;
}

impl<S: Store<Payment>> Drives for Driver<S, Bank> {
    fn start(&self, start: &StartRequest, attempt: u32) -> Result<Done, DriveError> {
        Driver::start(self, start, attempt)
    }
    fn start_next(&self, start: &StartRequest) -> Result<Done, DriveError> {
        Driver::start_next(self, start)
    }
    fn run(&self, key: &str, command: Command) -> Result<Done, DriveError> {
        Driver::run(self, key, command)
    }
    fn settle(&self, settlement: Settlement) -> Result<Settled, DriveError> {
        Driver::settle(self, settlement)
    }
    fn load(&self, key: &str) -> Result<Payment, DriveError> {
        Driver::load(self, key)
    }
}

/// The async driver, each call run to its end on a runtime of its own.
struct OnRuntime<S> {
    driver: AsyncDriver<S, Bank>,
    rt: tokio::runtime::Runtime,
}

impl<S: AsyncStore<Payment> + Sync> Drives for OnRuntime<S> {
    fn start(&self, start: &StartRequest, attempt: u32) -> Result<Done, DriveError> {
        self.rt
            .block_on(assert_send(self.driver.start(start, attempt)))
    }
    fn start_next(&self, start: &StartRequest) -> Result<Done, DriveError> {
        self.rt.block_on(assert_send(self.driver.start_next(start)))
    }
    fn run(&self, key: &str, command: Command) -> Result<Done, DriveError> {
        self.rt.block_on(assert_send(self.driver.run(key, command)))
    }
    fn settle(&self, settlement: Settlement) -> Result<Settled, DriveError> {
        self.rt
            .block_on(assert_send(self.driver.settle(settlement)))
    }
    fn load(&self, key: &str) -> Result<Payment, DriveError> {
        self.rt.block_on(self.driver.load(key))
    }
}

fn on_runtime<S: AsyncStore<Payment>>(store: S, bank: &Bank) -> OnRuntime<S> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    OnRuntime {
        driver: AsyncDriver::new(store, bank.clone(), bank.config()),
        rt,
    }
}

impl Bank {
    /// The cardholder finishes the bank page of `payment`'s transaction.
    fn finish_bank_page(&self, payment: &Payment, result: BankPageResult) {
        let txn = payment.challenge().unwrap().txn_id().to_owned();
        self.sandbox
            .lock()
            .unwrap()
            .complete_bank_page(&txn, result)
            .unwrap();
    }

    /// The browser's signed return for the order's current status, verified.
    fn verified_return(&self, order: &str) -> Settlement {
        let query = self.sandbox.lock().unwrap().return_query(order).unwrap();
        let key = ResponseKey::new(SANDBOX_RESPONSE_KEY).unwrap();
        ReturnParams::from_query(&query)
            .unwrap()
            .verify(&key)
            .unwrap()
            .into()
    }

    /// The webhooks the bank queued for the order, authenticated.
    fn webhooks(&self, order: &str) -> Vec<Settlement> {
        let credentials =
            WebhookCredentials::new(SANDBOX_WEBHOOK_USER, SANDBOX_WEBHOOK_PASSWORD).unwrap();
        let requests = self.sandbox.lock().unwrap().take_webhooks(order);
        requests
            .into_iter()
            .map(|r| {
                credentials
                    .verify(r.header("authorization"), &r.body)
                    .unwrap()
                    .into()
            })
            .collect()
    }
}

/// A verified return for an order nobody stored.
fn return_for_unknown_order(bank: &Bank, known: &str) -> Settlement {
    let Settlement::ReturnUrl(mut verified) = bank.verified_return(known) else {
        unreachable!()
    };
    verified.order_id = "ord_nobody".into();
    verified.into()
}

/// A failed first attempt, then a second one paid on the bank page; the returns and
/// webhooks of both are handed to `settle`: each goes to the latest attempt, one call
/// each, with the status check made, and what is returned is what is stored.
fn settle_scenario(d: &dyn Drives, bank: &Bank, order: &str) {
    let checks = || bank.requests_to(Endpoint::OrderStatus);
    // Attempt 1: the cardholder fails on the bank page and comes back.
    let first = d.start(&start_request(order), 1).unwrap().payment;
    bank.finish_bank_page(&first, BankPageResult::Failure);
    let before = checks();
    let settled = d.settle(bank.verified_return(order)).unwrap();
    assert_eq!(settled.payment.key(), format!("{order}/1"));
    assert!(
        matches!(settled.check, Some(Ok(_))),
        "the order status confirms a return: {:?}",
        settled.check
    );
    assert_eq!(checks(), before + 1, "one status check");
    assert!(settled.payment.is_final() && !settled.payment.is_paid());
    assert_eq!(d.load(settled.payment.key()).unwrap(), settled.payment);
    let first = settled.payment;

    // Attempt 2 on the same order ("try again": its number from the store), paid on the
    // bank page.
    let second = d.start_next(&start_request(order)).unwrap().payment;
    assert_eq!(second.key(), format!("{order}/2"));
    bank.finish_bank_page(&second, BankPageResult::Success);
    let before = checks();
    let settled = d.settle(bank.verified_return(order)).unwrap();
    assert_eq!(
        settled.payment.key(),
        format!("{order}/2"),
        "the latest attempt"
    );
    assert!(matches!(settled.check, Some(Ok(_))), "{:?}", settled.check);
    assert_eq!(checks(), before + 1);
    assert!(settled.payment.is_paid() && settled.payment.is_confirmed());
    assert_eq!(d.load(settled.payment.key()).unwrap(), settled.payment);

    // Every webhook of the order (both attempts', any order): applied to attempt 2, never
    // an error, never undoing its settlement; attempt 1 is never touched.
    for hook in bank.webhooks(order) {
        let settled = d.settle(hook).unwrap();
        assert_eq!(settled.payment.key(), format!("{order}/2"));
        assert!(settled.payment.is_paid(), "{}", settled.outcome);
    }
    let second = d.load(&format!("{order}/2")).unwrap();
    assert!(second.is_paid() && second.is_confirmed());
    assert_eq!(d.load(&format!("{order}/1")).unwrap(), first);

    // The same return again: nothing to do, nothing sent.
    let before = checks();
    let again = d.settle(bank.verified_return(order)).unwrap();
    assert_eq!(again.payment, second);
    assert!(again.check.is_none());
    assert_eq!(checks(), before);

    // An order nobody stored: typed, not a server error; nothing written.
    let e = d.settle(return_for_unknown_order(bank, order)).unwrap_err();
    assert!(matches!(&e, DriveError::UnknownOrder { order_id } if order_id == "ord_nobody"));
    assert_eq!((e.http_status(), e.code()), (404, "unknown_order"));
    assert!(matches!(
        d.load("ord_nobody/1"),
        Err(DriveError::NotFound { .. })
    ));

    // Keys no store can hold: 400, never a store failure.
    for key in ["", "ord\0x/1", &"k".repeat(5_000)] {
        for e in [
            d.run(key, Command::CheckStatus).unwrap_err(),
            d.load(key).unwrap_err(),
        ] {
            assert!(matches!(e, DriveError::BadKey { .. }), "{key:?}: {e}");
            assert_eq!((e.http_status(), e.code()), (400, "bad_key"));
            assert!(e.to_string().len() < 300, "a huge key is cut: {e}");
        }
    }
}

#[test]
fn settle_through_the_blocking_driver_on_memory_and_sqlite() {
    let bank = Bank::new();
    let memory = Driver::new(MemoryStore::new(), bank.clone(), bank.config());
    settle_scenario(&memory, &bank, "ord_settle_mem");
    let db = crate::stores::TempDb::new();
    let sqlite = Driver::new(
        SqliteStore::open(&db.0).unwrap(),
        bank.clone(),
        bank.config(),
    );
    settle_scenario(&sqlite, &bank, "ord_settle_sqlite");
}

#[test]
fn settle_through_the_async_driver_on_memory_sqlite_and_postgres() {
    let bank = Bank::new();
    settle_scenario(
        &on_runtime(MemoryStore::new(), &bank),
        &bank,
        "ord_asettle_mem",
    );
    let db = crate::stores::TempDb::new();
    let sqlite = on_runtime(SqliteStore::open(&db.0).unwrap(), &bank);
    settle_scenario(&sqlite, &bank, "ord_asettle_sqlite");
    let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: settling through PostgreSQL (set DATABASE_URL=postgres://...)"
        );
        return;
    };
    let table = crate::stores::unique("dotp_settle");
    let pg = on_runtime(MemoryStore::new(), &bank);
    let store = pg
        .rt
        .block_on(PgStore::connect(&url))
        .unwrap()
        .with_table(&table)
        .unwrap();
    pg.rt.block_on(store.migrate()).unwrap();
    let on_pg = OnRuntime {
        driver: AsyncDriver::new(store.clone(), bank.clone(), bank.config()),
        rt: pg.rt,
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        settle_scenario(&on_pg, &bank, "ord_asettle_pg")
    }));
    on_pg.rt.block_on(async {
        let client = store.pool().get().await.unwrap();
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await
            .unwrap();
    });
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn a_settlement_that_loses_its_write_reloads_and_applies_again() {
    let w = world();
    let key = w.started("ord_settle_race");
    let paid = w.store.get(&key);
    w.bank.finish_bank_page(&paid, BankPageResult::Success);
    let hint = w.bank.verified_return("ord_settle_race");
    // Between our load and our write, the same return is applied by another worker.
    let (store, other_hint, bank) = (w.store.clone(), hint.clone(), w.bank.clone());
    let raced = Arc::new(AtomicUsize::new(0));
    let ran = raced.clone();
    w.store.before_next_write(move || {
        let mut other = store.get("ord_settle_race/1");
        let loaded = other.revision();
        other.settle(other_hint, BlockingSend::now(&bank)).unwrap();
        Store::replace(&store.inner, loaded, &other).unwrap();
        ran.fetch_add(1, Ordering::SeqCst);
    });
    let settled = w.driver.settle(hint).unwrap();
    assert_eq!(
        raced.load(Ordering::SeqCst),
        1,
        "the other worker went first"
    );
    // Ours was applied again to what they stored, and the status check made once.
    assert_eq!(settled.payment, w.store.get(&key));
    assert!(matches!(settled.check, Some(Ok(_))), "{:?}", settled.check);
    assert_eq!(w.bank.requests_to(Endpoint::OrderStatus), 1);
    assert!(settled.payment.is_paid() && settled.payment.is_confirmed());
}

#[test]
fn a_settlement_always_overtaken_gives_up_busy_after_five_tries() {
    let bank = Bank::new();
    let store = Flaky::default();
    let driver = Driver::new(store.clone(), bank.clone(), bank.config());
    let key = driver
        .start(&start_request("ord_settle_busy"), 1)
        .unwrap()
        .payment
        .key()
        .to_owned();
    bank.finish_bank_page(&store.get(&key), BankPageResult::Success);
    let before = store.get(&key);
    store.fail_next(vec![Failure::Conflict; 5]);
    let writes = store.writes();
    let e = driver
        .settle(bank.verified_return("ord_settle_busy"))
        .unwrap_err();
    assert!(matches!(e, DriveError::Busy { .. }), "{e}");
    assert_eq!(e.payment(), Some(&before), "with the payment as stored");
    assert_eq!(store.writes() - writes, 5, "bounded: five tries");
    assert_eq!(store.get(&key), before, "nothing written");
    assert_eq!(bank.requests_to(Endpoint::OrderStatus), 0, "nothing sent");
    // Two conflicts only: the third try wins.
    store.fail_next(vec![Failure::Conflict; 2]);
    let settled = driver
        .settle(bank.verified_return("ord_settle_busy"))
        .unwrap();
    assert_eq!(settled.payment, store.get(&key));
    assert!(settled.payment.is_paid());
}

#[test]
fn a_settlement_for_a_never_started_attempt_goes_to_the_earlier_one() {
    let w = world();
    let first = w.started("ord_walk");
    // Attempt 2 is stored, but its start surely never left (connection refused).
    let refusing = Driver::new(w.store.clone(), Refusing(w.bank.clone()), w.bank.config());
    let done = refusing.start(&start_request("ord_walk"), 2).unwrap();
    assert_eq!(
        done.payment.next_step(BlockingSend::now(&w.bank)),
        NextStep::Start
    );
    let second = w.store.get("ord_walk/2");
    // The cardholder of attempt 1 finishes on the bank page and comes back.
    w.bank
        .finish_bank_page(&w.store.get(&first), BankPageResult::Success);
    let settled = w.driver.settle(w.bank.verified_return("ord_walk")).unwrap();
    assert_eq!(settled.payment.key(), first);
    assert!(settled.payment.is_paid());
    assert_eq!(w.store.get("ord_walk/2"), second, "attempt 2 untouched");

    // Only a never-started attempt: the hint applies to nothing stored.
    let e = refusing
        .start(&start_request("ord_walk_none"), 1)
        .map(|d| d.outcome);
    assert_eq!(e.unwrap(), Outcome::NotDelivered);
    let Settlement::ReturnUrl(mut hint) = w.bank.verified_return("ord_walk") else {
        unreachable!()
    };
    hint.order_id = "ord_walk_none".into();
    let e = w.driver.settle(hint.into()).unwrap_err();
    assert!(matches!(e, DriveError::NotApplied { .. }), "{e}");
    assert_eq!((e.http_status(), e.code()), (404, "not_started"));
}

#[test]
fn the_expected_amount_is_set_at_the_start_through_the_driver() {
    let w = world();
    let amount = |a: &str| ExpectedAmount::new(Amount::parse(a).unwrap(), "INR").unwrap();
    for (order, expected, paid) in [
        ("ord_amount_ok", "1499.00", true),
        ("ord_amount_bad", "1.00", false),
    ] {
        let start = start_request(order).with_expected_amount(amount(expected));
        let done = w.driver.start(&start, 1).unwrap();
        let stored = w.store.get(done.payment.key());
        assert_eq!(
            stored.expected_amount(),
            Some(&amount(expected)),
            "stored with it"
        );
        w.bank.finish_bank_page(&stored, BankPageResult::Success);
        let settled = w.driver.settle(w.bank.verified_return(order)).unwrap();
        assert!(settled.payment.is_final(), "{order}");
        assert_eq!(
            settled.payment.is_paid(),
            paid,
            "{order}: {}",
            settled.outcome
        );
    }
    // A stored attempt started again takes the amount too (its start never left).
    let refusing = Driver::new(w.store.clone(), Refusing(w.bank.clone()), w.bank.config());
    refusing
        .start(&start_request("ord_amount_again"), 1)
        .unwrap();
    let start = start_request("ord_amount_again").with_expected_amount(amount("1499"));
    let done = w.driver.start(&start, 1).unwrap();
    assert_eq!(done.payment.expected_amount(), Some(&amount("1499")));
}

// ----- A store that fails on purpose --------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Failure {
    /// The database fails ("database is locked"); nothing written.
    Locked,
    /// The write is applied, then the database reports a failure (a lost acknowledgement).
    LockedAfterWrite,
    /// Someone else wrote first (without changing anything).
    Conflict,
}

/// A memory store whose next `replace`s fail as told.
#[derive(Clone, Default)]
struct Flaky {
    inner: MemoryStore,
    failures: Arc<Mutex<VecDeque<Failure>>>,
    writes: Arc<AtomicUsize>,
}

impl Flaky {
    fn fail_next(&self, failures: Vec<Failure>) {
        self.failures.lock().unwrap().extend(failures);
    }
    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
    fn get(&self, key: &str) -> Payment {
        Store::<Payment>::load(&self.inner, key).unwrap().unwrap()
    }
}

impl Store<Payment> for Flaky {
    fn load(&self, key: &str) -> Result<Option<Payment>, StoreError> {
        Store::load(&self.inner, key)
    }
    fn insert(&self, record: &Payment) -> Result<(), StoreError> {
        Store::insert(&self.inner, record)
    }
    fn replace(&self, expected: u64, record: &Payment) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let failure = self.failures.lock().unwrap().pop_front();
        match failure {
            None => Store::replace(&self.inner, expected, record),
            Some(Failure::Locked) => Err(StoreError::backend("database is locked")),
            Some(Failure::LockedAfterWrite) => {
                Store::replace(&self.inner, expected, record)?;
                Err(StoreError::backend("connection reset after the commit"))
            }
            Some(Failure::Conflict) => Err(StoreError::Conflict {
                key: record.key().to_owned(),
                found: None,
            }),
        }
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

/// What the driver does with an answer whose write fails.
#[derive(Debug)]
enum Expect {
    /// Stored, after this many writes of the answer (the failed ones included).
    Stored(usize),
    /// Given up after five tries: `Store { sent: true }`, the payment left for the sweep.
    GaveUp,
    /// A conflict: not retried, reported as `Overtaken`.
    Overtaken,
}

#[test]
fn an_answer_whose_write_fails_is_stored_by_a_retry() {
    let cases: [(&str, Vec<Failure>, Expect); 5] = [
        ("locked twice", vec![Failure::Locked; 2], Expect::Stored(3)),
        (
            "locked four times",
            vec![Failure::Locked; 4],
            Expect::Stored(5),
        ),
        // The retry conflicts with the failed write itself, which had landed.
        (
            "applied, then failed",
            vec![Failure::LockedAfterWrite],
            Expect::Stored(2),
        ),
        (
            "locked five times",
            vec![Failure::Locked; 5],
            Expect::GaveUp,
        ),
        (
            "a conflict is not retried",
            vec![Failure::Conflict],
            Expect::Overtaken,
        ),
    ];
    for (i, (name, failures, expect)) in cases.into_iter().enumerate() {
        let bank = Bank::new();
        let store = Flaky::default();
        let driver = Driver::new(store.clone(), bank.clone(), bank.config());
        let order = format!("ord_retry_{i}");
        let key = driver
            .start(&start_request(&order), 1)
            .unwrap()
            .payment
            .key()
            .to_owned();
        // The failures hit the write after the bank answered, not the write-ahead.
        let armed = store.clone();
        bank.before_next_send(move || armed.fail_next(failures));
        let writes = store.writes();
        let result = driver.run(&key, otp(OTP));
        assert_eq!(bank.requests_to(Endpoint::Submit), 1, "{name}: sent once");
        // The writes of the answer: all but the write-ahead.
        let answer_writes = store.writes() - writes - 1;
        match (result, expect) {
            (Ok(done), Expect::Stored(tries)) => {
                assert!(done.outcome.is_terminal(), "{name}");
                assert_eq!(done.payment, store.get(&key), "{name}: stored");
                assert_eq!(answer_writes, tries, "{name}");
            }
            (Err(e @ DriveError::Store { sent: true, .. }), Expect::GaveUp) => {
                assert_eq!(e.http_status(), 503, "{name}");
                assert_eq!(answer_writes, 5, "{name}: five tries, no more");
                assert!(
                    store.get(&key).in_flight().is_some(),
                    "{name}: left for the sweep"
                );
            }
            (Err(e @ DriveError::Overtaken { .. }), Expect::Overtaken) => {
                assert_eq!(answer_writes, 1, "{name}: not retried");
                assert_eq!(e.http_status(), 409);
            }
            (other, expect) => panic!("{name}: expected {expect:?}, got {other:?}"),
        }
    }
}

/// The same store through the async contract (each call done at once).
impl AsyncStore<Payment> for Flaky {
    async fn load(&self, key: &str) -> Result<Option<Payment>, StoreError> {
        Store::load(self, key)
    }
    async fn insert(&self, record: &Payment) -> Result<(), StoreError> {
        Store::insert(self, record)
    }
    async fn replace(&self, expected: u64, record: &Payment) -> Result<(), StoreError> {
        Store::replace(self, expected, record)
    }
    async fn in_flight_before(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        Store::in_flight_before(self, cutoff, limit)
    }
    async fn latest_for_order(&self, order_id: &str) -> Result<Option<Payment>, StoreError> {
        Store::latest_for_order(self, order_id)
    }
}

/// The async driver retries the same way; its pause needs no timer of the runtime's (a
/// current-thread runtime without `enable_time` here).
#[test]
fn the_async_driver_retries_an_answers_write_too() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bank = Bank::new();
    let store = Flaky::default();
    let driver = AsyncDriver::new(store.clone(), bank.clone(), bank.config());
    rt.block_on(async {
        let key = driver
            .start(&start_request("ord_async_retry"), 1)
            .await
            .unwrap()
            .payment
            .key()
            .to_owned();
        let armed = store.clone();
        bank.before_next_send(move || {
            armed.fail_next(vec![Failure::Locked, Failure::LockedAfterWrite])
        });
        let writes = store.writes();
        let done = driver.run(&key, otp(OTP)).await.unwrap();
        assert!(done.outcome.is_terminal());
        assert_eq!(done.payment, store.get(&key));
        // The write-ahead, then: locked, applied-then-failed, the conflict with itself.
        assert_eq!(store.writes() - writes, 4);
        assert_eq!(bank.requests_to(Endpoint::Submit), 1);
        // A settlement that conflicts twice is applied on the third try.
        let done = driver.start(&start_request("ord_async_settle"), 1).await;
        let key = done.unwrap().payment.key().to_owned();
        bank.finish_bank_page(&store.get(&key), BankPageResult::Success);
        store.fail_next(vec![Failure::Conflict; 2]);
        let settled = driver
            .settle(bank.verified_return("ord_async_settle"))
            .await
            .unwrap();
        assert_eq!(settled.payment, store.get(&key));
        assert!(settled.payment.is_paid());
    });
}

#[test]
fn the_blocking_periodic_sweep_settles_a_dead_workers_payment_and_stops() {
    let w = world();
    let key = w.started("ord_swept_blocking");
    // A dead worker: its status check written ahead, never sent.
    let mut p = w.store.get(&key);
    let loaded = p.revision();
    p.check_status(&w.bank.config(), BlockingSend::now(&w.bank))
        .unwrap();
    Store::replace(&w.store.inner, loaded, &p).unwrap();
    w.bank.advance(GRACE + Duration::from_secs(1));
    let (report, reports) = std::sync::mpsc::channel();
    let sweeper = w
        .driver
        .sweep_every(Duration::from_millis(5), 10, move |r| {
            let _ =
                report.send(r.map(|s| s.iter().map(|s| s.key().to_owned()).collect::<Vec<_>>()));
        })
        .unwrap();
    let first = reports
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert_eq!(first, [key.as_str()]);
    let second = reports
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert!(second.is_empty(), "{second:?}");
    assert!(sweeper.is_running());
    sweeper.stop();
    // Stopped: no more reports once the channel is drained.
    while reports.try_recv().is_ok() {}
    std::thread::sleep(Duration::from_millis(30));
    assert!(
        reports.try_recv().is_err(),
        "the sweep went on after stop()"
    );
    assert_eq!(w.store.get(&key).in_flight_since(), None);
}

#[test]
fn bad_keys_are_400_through_sqlite_too() {
    let bank = Bank::new();
    let db = crate::stores::TempDb::new();
    let driver = Driver::new(
        SqliteStore::open(&db.0).unwrap(),
        bank.clone(),
        bank.config(),
    );
    let long = "x".repeat(5_000);
    let cases = [
        ("", Rejection::EmptyKey),
        ("/pay/\0", Rejection::KeyHasNul),
        (long.as_str(), Rejection::KeyTooLong { len: 5_000 }),
    ];
    for (key, want) in cases {
        for e in [
            driver.run(key, otp(OTP)).unwrap_err(),
            driver.bank_page(key).unwrap_err(),
        ] {
            match &e {
                DriveError::BadKey { reason, .. } => assert_eq!(reason, &want),
                other => panic!("{key:?}: {other}"),
            }
            assert_eq!(e.http_status(), 400);
            assert!(!e.shows_payment());
        }
    }
}

#[test]
fn a_refused_api_key_is_a_configuration_error_and_leaves_nothing_in_flight() {
    let w = world();
    let key = w.started("ord_key");
    let wrong = Config::new(w.bank.sandbox.lock().unwrap().base_url(), "sk_revoked").unwrap();
    let misconfigured = Driver::new(w.store.clone(), w.bank.clone(), wrong);
    for e in [
        misconfigured.run(&key, Command::CheckStatus).unwrap_err(),
        misconfigured
            .start(&start_request("ord_key_2"), 1)
            .unwrap_err(),
    ] {
        assert!(matches!(e, DriveError::Unauthorized { .. }), "{e}");
        assert_eq!((e.http_status(), e.code()), (500, "unauthorized"));
        assert!(!e.shows_payment());
        assert!(
            !format!("{e} {e:?}").contains("sk_revoked"),
            "the key is not shown"
        );
        // The answer is stored: nothing left in flight for the sweep.
        let stored = w.store.get(e.key());
        assert!(stored.in_flight().is_none(), "{}", e.key());
    }
}

/// "Try again" after a failed attempt: the attempt number comes from the store, the next
/// attempt knows the earlier transactions, and every hint goes to the latest attempt.
#[test]
fn the_next_attempt_comes_from_the_store_and_hints_go_to_it() {
    let w = world();
    let order = "ord_next";
    let first = w.driver.start_next(&start_request(order)).unwrap();
    assert_eq!(first.payment.key(), "ord_next/1");
    // While attempt 1 is open there is no next one, and nothing is sent.
    let e = w.driver.start_next(&start_request(order)).unwrap_err();
    assert!(matches!(e, DriveError::Refused { .. }), "{e}");
    assert_eq!(e.payment().map(Payment::key), Some("ord_next/1"));
    assert_eq!(w.bank.requests_to(Endpoint::Start), 1);
    for attempt in 1..=2 {
        let key = format!("{order}/{attempt}");
        w.bank
            .finish_bank_page(&w.store.get(&key), BankPageResult::Failure);
        let settled = w.driver.settle(w.bank.verified_return(order)).unwrap();
        assert_eq!(settled.payment.key(), key);
        assert!(
            settled.payment.is_final() && !settled.payment.is_paid(),
            "{key}: {} {:?}",
            settled.outcome,
            settled.check
        );
        let next = w.driver.start_next(&start_request(order)).unwrap();
        assert_eq!(next.payment.key(), format!("{order}/{}", attempt + 1));
    }
    let done = w.driver.run("ord_next/3", otp(OTP)).unwrap();
    assert!(done.payment.is_paid(), "{:?}", done.outcome);
    // Every webhook of the order, the failed attempts' included: applied to attempt 3,
    // which stays paid; attempts 1 and 2 are never touched.
    let (one, two) = (w.store.get("ord_next/1"), w.store.get("ord_next/2"));
    let hooks = w.bank.webhooks(order);
    assert!(hooks.len() >= 4, "{}", hooks.len());
    for hook in hooks {
        let settled = w.driver.settle(hook).unwrap();
        assert_eq!(settled.payment.key(), "ord_next/3");
        assert!(settled.payment.is_paid(), "{}", settled.outcome);
    }
    assert_eq!(w.store.get("ord_next/1"), one);
    assert_eq!(w.store.get("ord_next/2"), two);
    // Paid: no next attempt.
    let e = w.driver.start_next(&start_request(order)).unwrap_err();
    assert!(
        matches!(
            e,
            DriveError::Refused {
                refusal: Refusal::AlreadyFinal(_),
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        w.bank.requests_to(Endpoint::Start),
        3,
        "one POST /txns per attempt"
    );
}
