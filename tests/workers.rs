//! The proof under load and faults: several workers drive the same payments through the
//! driver at once, against the sandbox bank over loopback HTTP, and die at random between
//! their write-ahead and their answer; recovery sweeps run meanwhile. Then everything is
//! settled, and the bank's own counters are checked:
//!
//! * **no command reaches the bank twice**: every request the bank received was sent once,
//!   right after the write-ahead of its token won on the sending thread (the bank's count per
//!   endpoint equals the distinct tokens sent, over all processes);
//! * **sends and attempts never exceed the limits**: each order's transaction has at most
//!   `max_sends` OTPs sent and `max_attempts` tries, and the bank never answered
//!   `max_limit_exceeded`; one `POST /txns` per payment;
//! * **exactly one terminal outcome per payment**: `Outcome::is_terminal()` reported by the
//!   workers and sweeps, counted per payment over all processes, is 1 for every final
//!   payment, and the stored status is the bank's;
//! * **no final record reverts**: every write is checked against the row it replaces (a
//!   final record stays final, with its status);
//! * **no record is lost**: every payment started loads at the end, and none is left in
//!   flight.
//!
//! Each run has two OS processes (this test binary runs a copy of itself as the second, told
//! so by an environment variable), each with several worker threads and a sweeper, on one
//! store: SQLite (a temporary file) always; PostgreSQL (a table of its own) when
//! `DATABASE_URL` is set, else the test says it was skipped. The second process ends by
//! dying for real (`process::exit`) with a request answered but not stored.
//!
//! Workers are killed with a panic (unwinding out of the driver, as a dead worker leaves
//! its write-ahead behind): before the request leaves, or after the bank answered. The
//! bank also drops answers, answers late (past the transport's timeout), refuses with 500 or
//! `DUPLICATE_REQUEST`; a payment may be started by several workers at once, submitted twice
//! at once, resent in bursts.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, Once};
use std::time::{Duration, Instant};

use direct_otp::driver::{
    AsyncDriver, AsyncSend, BankPage, BlockingSend, Command, Done, DriveError, Driver, Swept,
};
use direct_otp::sandbox::{
    BankPageResult, CardFlow, Endpoint, Fault, OtpSource, Sandbox, SandboxConfig, SandboxServer,
};
use direct_otp::store::{AsyncStore, PgStore, SqliteStore, Store, StoreError};
use direct_otp::transport::{HyperTransport, Settings, TransportError, UreqTransport};
use direct_otp::{
    Config, NextStep, Otp, Payment, PaymentSource, Policy, Request, RequestKind, SendFailure,
    StartRequest, Token,
};
use time::OffsetDateTime;
use tokio::runtime::Runtime;

const KEY: &str = "sk_test_workers";
const OTP: &str = "123456";
const WRONG: &str = "999999";
/// The bank's limits, and the payments' (the start answer does not state them).
const MAX_SENDS: u32 = 3;
const MAX_ATTEMPTS: u32 = 3;
/// Payments per run.
const PAYMENTS: usize = 24;
/// Worker threads per process (plus a sweeper).
const THREADS: usize = 3;
/// How long the workers run.
const STORM: Duration = Duration::from_secs(3);
/// The transport's deadline, and the grace after which a request counts as abandoned.
const TIMEOUT: Duration = Duration::from_secs(1);
const GRACE: Duration = Duration::from_secs(2);
/// One send in `KILL_ONE_IN` kills its worker (half before sending, half after).
const KILL_ONE_IN: u64 = 16;
/// The exit code of the second process when it dies on purpose.
const DIED: i32 = 77;

const CHILD: &str = "DIRECT_OTP_WORKERS_CHILD";
const CHILD_SERVER: &str = "DIRECT_OTP_WORKERS_SERVER";
const CHILD_STORE: &str = "DIRECT_OTP_WORKERS_STORE";
const CHILD_PREFIX: &str = "DIRECT_OTP_WORKERS_PREFIX";
const CHILD_SEED: &str = "DIRECT_OTP_WORKERS_SEED";

// ----- What every process records: the ledger ------------------------------------------------

/// One fact a worker reports. The second process writes them to a file as it goes (so a
/// process that dies leaves them behind); the first reads them back.
#[derive(Debug, Clone)]
enum Event {
    /// A write with a request in flight won (a write-ahead), of this kind.
    WriteAhead(RequestKind),
    /// A request left for the bank.
    Sent(RequestKind, String),
    /// A stored outcome that settles the payment.
    Terminal(String),
    /// A worker was killed.
    Kill,
    /// A sweep recovered a payment.
    Recovered,
    /// A driver answer, by its code.
    Code(String),
    /// Something that must never happen.
    Violation(String),
}

impl Event {
    fn line(&self) -> String {
        match self {
            Event::WriteAhead(k) => format!("write_ahead {k}"),
            Event::Sent(k, t) => format!("sent {k} {t}"),
            Event::Terminal(key) => format!("terminal {key}"),
            Event::Kill => "kill".into(),
            Event::Recovered => "recovered".into(),
            Event::Code(c) => format!("code {c}"),
            Event::Violation(v) => format!("violation {}", v.replace('\n', " ")),
        }
    }

    fn parse(line: &str) -> Event {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let kind = |s: &str| match s {
            "start" => RequestKind::Start,
            "resend" => RequestKind::Resend,
            "submit" => RequestKind::Submit,
            "order_status" => RequestKind::OrderStatus,
            other => panic!("unknown kind {other}"),
        };
        match word {
            "write_ahead" => Event::WriteAhead(kind(rest)),
            "sent" => {
                let (k, t) = rest.split_once(' ').unwrap();
                Event::Sent(kind(k), t.to_owned())
            }
            "terminal" => Event::Terminal(rest.to_owned()),
            "kill" => Event::Kill,
            "recovered" => Event::Recovered,
            "code" => Event::Code(rest.to_owned()),
            "violation" => Event::Violation(rest.to_owned()),
            other => panic!("unknown ledger line {other:?}"),
        }
    }
}

#[derive(Default)]
struct Tally {
    /// By request kind (its code).
    write_aheads: BTreeMap<&'static str, usize>,
    sends: BTreeMap<&'static str, usize>,
    tokens: HashSet<String>,
    terminal: HashMap<String, usize>,
    kills: usize,
    recovered: usize,
    codes: BTreeMap<String, usize>,
    violations: Vec<String>,
}

struct Ledger {
    tally: Mutex<Tally>,
    file: Option<Mutex<File>>,
}

impl Ledger {
    fn new(file: Option<File>) -> Ledger {
        Ledger {
            tally: Mutex::default(),
            file: file.map(Mutex::new),
        }
    }

    fn note(&self, event: Event) {
        if let Some(file) = &self.file {
            // One write per line: a process that dies leaves whole lines.
            let line = format!("{}\n", event.line());
            let _ = file.lock().unwrap().write_all(line.as_bytes());
        }
        self.apply(event);
    }

    fn apply(&self, event: Event) {
        let mut t = self.tally.lock().unwrap();
        match event {
            Event::WriteAhead(k) => *t.write_aheads.entry(k.code()).or_default() += 1,
            Event::Sent(k, token) => {
                if !t.tokens.insert(token.clone()) {
                    t.violations.push(format!("request {token} sent twice"));
                }
                *t.sends.entry(k.code()).or_default() += 1;
            }
            Event::Terminal(key) => *t.terminal.entry(key).or_default() += 1,
            Event::Kill => t.kills += 1,
            Event::Recovered => t.recovered += 1,
            Event::Code(c) => *t.codes.entry(c).or_default() += 1,
            Event::Violation(v) => t.violations.push(v),
        }
    }

    fn violation(&self, what: String) {
        self.note(Event::Violation(what));
    }

    /// Reads back the events another process wrote.
    fn merge(&self, path: &std::path::Path) {
        let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for line in BufReader::new(file).lines() {
            let line = line.unwrap();
            if !line.is_empty() {
                self.apply(Event::parse(&line));
            }
        }
    }
}

// ----- Killing workers, and the thread's own facts ----------------------------------------

/// The panic payload of a worker killed on purpose.
struct Killed;

thread_local! {
    /// The token of the last write-ahead this thread won: the only request it may send.
    static WRITTEN_AHEAD: Cell<Option<Token>> = const { Cell::new(None) };
    static RNG: Cell<u64> = const { Cell::new(0x9e37_79b9_7f4a_7c15) };
}

fn seed_thread(seed: u64) {
    RNG.with(|r| r.set(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1));
}

/// splitmix64 on the thread's state.
fn rand() -> u64 {
    RNG.with(|r| {
        let s = r.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        r.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn below(n: usize) -> usize {
    (rand() % n as u64) as usize
}

/// Keeps killed workers quiet; any other panic is printed as usual.
fn quiet_kills() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<Killed>() {
                default(info);
            }
        }));
    });
}

/// Runs one worker step; a kill ends the step as a death would (nothing after it runs).
fn survive(step: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(step)) {
        if !payload.is::<Killed>() {
            resume_unwind(payload);
        }
    }
}

// ----- The wire: a transport that counts, checks and kills -------------------------------

/// What a send does besides sending: the checks and the kills, shared by both transports.
struct Watch {
    ledger: Arc<Ledger>,
    /// Milliseconds added to the system clock (moved only when no request is out).
    offset_ms: AtomicI64,
    kills: AtomicBool,
    /// Exit the process right after the next answer arrives.
    exit_after_send: AtomicBool,
}

impl Watch {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
            + time::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Before a request leaves: it must be the one this thread just wrote ahead. Returns
    /// whether the worker dies once it is answered.
    fn before(&self, request: &Request) -> bool {
        let Some(token) = WRITTEN_AHEAD.with(Cell::take) else {
            self.ledger.violation(format!(
                "a {} request sent without a write-ahead",
                request.kind()
            ));
            return false;
        };
        if token.kind() != request.kind() {
            self.ledger.violation(format!(
                "sent a {} request after writing ahead {token}",
                request.kind()
            ));
        }
        let roll = rand() % (2 * KILL_ONE_IN);
        if self.kills.load(Ordering::Relaxed) && roll == 0 {
            self.ledger.note(Event::Kill);
            std::panic::panic_any(Killed); // dies before the request leaves
        }
        self.ledger
            .note(Event::Sent(request.kind(), token.to_string()));
        self.kills.load(Ordering::Relaxed) && roll == 1
    }

    /// After the answer (or the failure): the bank never refuses for its limits; maybe die.
    fn after(&self, result: &Result<(u16, Vec<u8>), TransportError>, die: bool) {
        if let Ok((_, body)) = result {
            if String::from_utf8_lossy(body).contains("max_limit_exceeded") {
                self.ledger
                    .violation("the bank refused a request for its limits".into());
            }
        }
        if self.exit_after_send.load(Ordering::SeqCst) {
            std::process::exit(DIED); // the whole process dies, the answer in hand
        }
        if die {
            self.ledger.note(Event::Kill);
            std::panic::panic_any(Killed); // dies with the answer in hand
        }
    }
}

struct Wire {
    transport: UreqTransport,
    watch: Arc<Watch>,
}

impl BlockingSend for Wire {
    type Error = TransportError;
    fn send(&self, request: Request) -> Result<(u16, Vec<u8>), TransportError> {
        let die = self.watch.before(&request);
        let result = self.transport.send(request);
        self.watch.after(&result, die);
        result
    }
    fn send_failure(&self, error: &TransportError) -> SendFailure {
        error.send_failure()
    }
    fn timeout(&self) -> Duration {
        self.transport.settings().timeout()
    }
    fn now(&self) -> OffsetDateTime {
        self.watch.now()
    }
}

struct AsyncWire {
    transport: HyperTransport<hyper_util::client::legacy::connect::HttpConnector>,
    watch: Arc<Watch>,
}

impl AsyncSend for AsyncWire {
    type Error = TransportError;
    async fn send(&self, request: Request) -> Result<(u16, Vec<u8>), TransportError> {
        let die = self.watch.before(&request);
        let result = self.transport.send(request).await;
        self.watch.after(&result, die);
        result
    }
    fn send_failure(&self, error: &TransportError) -> SendFailure {
        error.send_failure()
    }
    fn timeout(&self) -> Duration {
        self.transport.settings().timeout()
    }
    fn now(&self) -> OffsetDateTime {
        self.watch.now()
    }
}

// ----- The store, watched: write-aheads noted, final records never replaced ---------------

struct Watched<S> {
    inner: S,
    ledger: Arc<Ledger>,
}

impl<S> Watched<S> {
    /// After a write that won.
    fn wrote(&self, record: &Payment, replaced: Option<&Payment>, expected: u64) {
        // A final record may be written again (a confirmation of its status), but it stays
        // final, with the same status.
        if let Some(before) = replaced.filter(|b| b.revision() == expected && b.is_final()) {
            if !record.is_final() || record.status() != before.status() {
                self.ledger.violation(format!(
                    "final record {} reverted: was {:?}, now {:?} (final: {})",
                    record.key(),
                    before.status(),
                    record.status(),
                    record.is_final()
                ));
            }
        }
        if let Some(token) = record.in_flight() {
            WRITTEN_AHEAD.with(|w| w.set(Some(token)));
            self.ledger.note(Event::WriteAhead(token.kind()));
        }
    }
}

impl<S: Store<Payment>> Store<Payment> for Watched<S> {
    fn load(&self, key: &str) -> Result<Option<Payment>, StoreError> {
        self.inner.load(key)
    }
    fn insert(&self, record: &Payment) -> Result<(), StoreError> {
        self.inner.insert(record)?;
        self.wrote(record, None, 0);
        Ok(())
    }
    fn replace(&self, expected: u64, record: &Payment) -> Result<(), StoreError> {
        // If the swap wins, the row it replaced had revision `expected`: this is that row
        // whenever its revision says so (revisions only grow).
        let before = self.inner.load(record.key()).ok().flatten();
        self.inner.replace(expected, record)?;
        self.wrote(record, before.as_ref(), expected);
        Ok(())
    }
    fn in_flight_before(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.in_flight_before(cutoff, limit)
    }
    fn latest_for_order(&self, order_id: &str) -> Result<Option<Payment>, StoreError> {
        self.inner.latest_for_order(order_id)
    }
}

impl<S: AsyncStore<Payment> + Sync> AsyncStore<Payment> for Watched<S> {
    async fn load(&self, key: &str) -> Result<Option<Payment>, StoreError> {
        self.inner.load(key).await
    }
    async fn insert(&self, record: &Payment) -> Result<(), StoreError> {
        self.inner.insert(record).await?;
        self.wrote(record, None, 0);
        Ok(())
    }
    async fn replace(&self, expected: u64, record: &Payment) -> Result<(), StoreError> {
        let before = self.inner.load(record.key()).await.ok().flatten();
        self.inner.replace(expected, record).await?;
        self.wrote(record, before.as_ref(), expected);
        Ok(())
    }
    async fn in_flight_before(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.in_flight_before(cutoff, limit).await
    }
    async fn latest_for_order(&self, order_id: &str) -> Result<Option<Payment>, StoreError> {
        self.inner.latest_for_order(order_id).await
    }
}

// ----- Both drivers behind one face ---------------------------------------------------------

trait Drive: Sync {
    fn start(&self, start: &StartRequest) -> Result<Done, DriveError>;
    fn run(&self, key: &str, command: Command) -> Result<Done, DriveError>;
    fn bank_page(&self, key: &str) -> Result<BankPage, DriveError>;
    fn sweep_and_check(&self) -> Result<Vec<Swept>, DriveError>;
    fn load(&self, key: &str) -> Result<Payment, DriveError>;
    fn watch(&self) -> &Watch;
}

impl<S: Store<Payment> + Sync> Drive for Driver<Watched<S>, Wire> {
    fn start(&self, start: &StartRequest) -> Result<Done, DriveError> {
        Driver::start(self, start, 1)
    }
    fn run(&self, key: &str, command: Command) -> Result<Done, DriveError> {
        Driver::run(self, key, command)
    }
    fn bank_page(&self, key: &str) -> Result<BankPage, DriveError> {
        Driver::bank_page(self, key)
    }
    fn sweep_and_check(&self) -> Result<Vec<Swept>, DriveError> {
        Driver::sweep_and_check(self, 64)
    }
    fn load(&self, key: &str) -> Result<Payment, DriveError> {
        Driver::load(self, key)
    }
    fn watch(&self) -> &Watch {
        &self.transport().watch
    }
}

struct OnRuntime<S> {
    rt: Arc<Runtime>,
    driver: AsyncDriver<Watched<S>, AsyncWire>,
}

impl<S: AsyncStore<Payment> + Send + Sync> Drive for OnRuntime<S> {
    fn start(&self, start: &StartRequest) -> Result<Done, DriveError> {
        self.rt.block_on(self.driver.start(start, 1))
    }
    fn run(&self, key: &str, command: Command) -> Result<Done, DriveError> {
        self.rt.block_on(self.driver.run(key, command))
    }
    fn bank_page(&self, key: &str) -> Result<BankPage, DriveError> {
        self.rt.block_on(self.driver.bank_page(key))
    }
    fn sweep_and_check(&self) -> Result<Vec<Swept>, DriveError> {
        self.rt.block_on(self.driver.sweep_and_check(64))
    }
    fn load(&self, key: &str) -> Result<Payment, DriveError> {
        self.rt.block_on(self.driver.load(key))
    }
    fn watch(&self) -> &Watch {
        &self.driver.transport().watch
    }
}

// ----- The payments --------------------------------------------------------------------------

const CARDS: [(&str, CardFlow); 4] = [
    ("tok_otp", CardFlow::DirectOtp),
    ("tok_3ds", CardFlow::ThreeDsFailover),
    ("tok_decline", CardFlow::DeclineAfterOtp),
    ("tok_slow", CardFlow::SlowAuthorization),
];

fn policy() -> Policy {
    let mut policy = Policy::default();
    policy.max_sends = MAX_SENDS;
    policy.max_attempts = MAX_ATTEMPTS;
    policy.resend_cooldown = std::time::Duration::ZERO; // bursts of resends reach the limit
    policy
}

fn order(prefix: &str, i: usize) -> String {
    format!("{prefix}{i}")
}

fn start_request(prefix: &str, i: usize) -> StartRequest {
    let card = PaymentSource::Token {
        card_token: CARDS[i % CARDS.len()].0.into(),
        cvv: None,
    };
    StartRequest::new(&order(prefix, i), "acme", &format!("cust_{i}"), card)
        .unwrap()
        .with_policy(policy())
}

fn key(prefix: &str, i: usize) -> String {
    format!("{}/1", order(prefix, i))
}

fn submit(otp: &str) -> Command {
    Command::Submit(Otp::new(otp).unwrap())
}

/// Notes what a driver call gave back.
fn note(ledger: &Ledger, result: &Result<Done, DriveError>) {
    match result {
        Ok(done) => {
            if done.outcome.is_terminal() {
                ledger.note(Event::Terminal(done.payment.key().to_owned()));
            }
            ledger.note(Event::Code(done.outcome.code().to_owned()));
        }
        Err(e) => {
            ledger.note(Event::Code(e.code().to_owned()));
            if matches!(
                e,
                DriveError::Store { .. } | DriveError::Unanswerable { .. }
            ) {
                ledger.violation(format!("driver: {e}"));
            }
        }
    }
}

fn note_sweep(ledger: &Ledger, swept: Result<Vec<Swept>, DriveError>) {
    match swept {
        Ok(swept) => {
            for s in swept {
                match s {
                    Swept::Recovered { check, .. } => {
                        ledger.note(Event::Recovered);
                        if let Some(check) = check {
                            note(ledger, &check);
                        }
                    }
                    Swept::Moved { .. } => ledger.note(Event::Code("moved".into())),
                    Swept::Failed { key, error } => {
                        ledger.violation(format!("sweep of {key}: {error}"))
                    }
                    other => ledger.violation(format!("unknown sweep result {other:?}")),
                }
            }
        }
        Err(e) => ledger.violation(format!("sweep listing: {e}")),
    }
}

/// What the first process can do that the second cannot: act as the browser on the bank
/// page, and script the bank's faults.
struct Bank<'a>(&'a SandboxServer);

impl Bank<'_> {
    fn browser(&self, order: &str, success: bool) {
        let mut sandbox = self.0.sandbox();
        if let Some(txn) = sandbox.latest_transaction(order) {
            let result = if success {
                BankPageResult::Success
            } else {
                BankPageResult::Failure
            };
            let _ = sandbox.complete_bank_page(&txn.id, result);
        }
    }

    /// Queues a fault, unless one is queued already (they are used by the next request to
    /// their endpoint, which may be a while).
    fn fault(&self) {
        if self.0.sandbox().pending_faults() > 0 {
            return;
        }
        let endpoint = [
            Endpoint::Resend,
            Endpoint::Submit,
            Endpoint::OrderStatus,
            Endpoint::Start,
        ][below(4)];
        let fault = [
            Fault::DropResponse,
            Fault::DropRequest,
            Fault::InternalErrorAfterApply,
            Fault::Duplicate,
            Fault::Slow(TIMEOUT + Duration::from_millis(300)),
        ][below(5)];
        self.0.sandbox().inject(endpoint, fault);
    }
}

/// One worker: it starts every payment (in its own order: every payment is started by
/// several workers at once), then runs random commands on random payments until `until`.
fn worker(d: &dyn Drive, ledger: &Ledger, prefix: &str, until: Instant, bank: Option<&Bank<'_>>) {
    let mut sequence: Vec<usize> = (0..PAYMENTS).collect();
    for i in (1..sequence.len()).rev() {
        sequence.swap(i, below(i + 1));
    }
    for i in sequence {
        survive(|| note(ledger, &d.start(&start_request(prefix, i))));
    }
    while Instant::now() < until {
        let i = below(PAYMENTS);
        let key = key(prefix, i);
        survive(|| match below(20) {
            0..=1 => note(ledger, &d.start(&start_request(prefix, i))),
            2..=6 => {
                // A burst of resends.
                for _ in 0..=below(3) {
                    note(ledger, &d.run(&key, Command::Resend));
                }
            }
            7..=9 => note(ledger, &d.run(&key, submit(WRONG))),
            10 => note(ledger, &d.run(&key, submit(OTP))),
            11..=12 => note(ledger, &d.run(&key, Command::CheckStatus)),
            13 => {
                if let Err(e) = d.bank_page(&key) {
                    ledger.note(Event::Code(e.code().to_owned()));
                }
            }
            14..=15 => {
                // Two tabs at once: a double submit, or a resend and a submit.
                let barrier = Barrier::new(2);
                let seed = rand();
                std::thread::scope(|s| {
                    for tab in 0..2u64 {
                        let (barrier, key) = (&barrier, &key);
                        s.spawn(move || {
                            seed_thread(seed ^ tab);
                            barrier.wait();
                            survive(|| {
                                let command = match (tab, seed % 2) {
                                    (0, 0) => Command::Resend,
                                    (_, 0) => submit(WRONG),
                                    _ => submit(OTP),
                                };
                                note(ledger, &d.run(key, command));
                            });
                        });
                    }
                });
            }
            16 => match bank {
                Some(bank) => bank.fault(),
                None => note(ledger, &d.run(&key, Command::CheckStatus)),
            },
            _ => {
                // The cardholder back from the bank page, then the page's status check.
                if let (Some(bank), Ok(p)) = (bank, d.load(&key)) {
                    if p.next_step(d.watch().now()) == NextStep::AwaitBankPage {
                        bank.browser(&order(prefix, i), below(3) != 0);
                    }
                }
                note(ledger, &d.run(&key, Command::CheckStatus));
            }
        });
    }
}

/// Sweeps every 150 ms until `until`.
fn sweeper(d: &dyn Drive, ledger: &Ledger, until: Instant) {
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(150));
        survive(|| note_sweep(ledger, d.sweep_and_check()));
    }
}

/// The storm in this process: worker threads and a sweeper.
fn storm(d: &dyn Drive, ledger: &Ledger, prefix: &str, seed: u64, bank: Option<&Bank<'_>>) {
    let until = Instant::now() + STORM;
    std::thread::scope(|s| {
        for w in 0..THREADS {
            s.spawn(move || {
                seed_thread(seed + w as u64);
                worker(d, ledger, prefix, until, bank);
            });
        }
        s.spawn(move || {
            seed_thread(seed + 100);
            sweeper(d, ledger, until);
        });
    });
}

// ----- The second process ---------------------------------------------------------------------

/// How the second process finds the store.
enum StoreSpec {
    Sqlite(PathBuf),
    Postgres { url: String, table: String },
}

impl StoreSpec {
    fn encode(&self) -> String {
        match self {
            StoreSpec::Sqlite(p) => format!("sqlite {}", p.display()),
            StoreSpec::Postgres { url, table } => format!("postgres {table} {url}"),
        }
    }

    fn decode(s: &str) -> StoreSpec {
        match s.split_once(' ') {
            Some(("sqlite", path)) => StoreSpec::Sqlite(path.into()),
            Some(("postgres", rest)) => {
                let (table, url) = rest.split_once(' ').unwrap();
                StoreSpec::Postgres {
                    url: url.into(),
                    table: table.into(),
                }
            }
            _ => panic!("bad store spec {s:?}"),
        }
    }
}

fn watch(ledger: &Arc<Ledger>) -> Arc<Watch> {
    Arc::new(Watch {
        ledger: ledger.clone(),
        offset_ms: AtomicI64::new(0),
        kills: AtomicBool::new(true),
        exit_after_send: AtomicBool::new(false),
    })
}

fn settings() -> Settings {
    Settings::new().with_timeout(TIMEOUT)
}

/// A driver of the right kind over the store `spec` names.
fn drive(spec: &StoreSpec, server: &str, ledger: &Arc<Ledger>) -> Box<dyn Drive> {
    let config = Config::new(server, KEY).unwrap();
    let watch = watch(ledger);
    match spec {
        StoreSpec::Sqlite(path) => {
            // A write that waits its turn longer than the default 5 s under load is a slow
            // machine, not a broken protocol: give it 30 s.
            let sqlite = SqliteStore::open(path).unwrap();
            let store = Watched {
                inner: sqlite.busy_timeout(Duration::from_secs(30)).unwrap(),
                ledger: ledger.clone(),
            };
            let wire = Wire {
                transport: UreqTransport::with_default_agent().with_settings(settings()),
                watch,
            };
            Box::new(Driver::new(store, wire, config).with_grace(GRACE))
        }
        StoreSpec::Postgres { url, table } => {
            let rt = Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap(),
            );
            let pg = rt
                .block_on(PgStore::connect(url))
                .unwrap()
                .with_table(table)
                .unwrap();
            let store = Watched {
                inner: pg,
                ledger: ledger.clone(),
            };
            let wire = AsyncWire {
                transport: HyperTransport::plain_http().with_settings(settings()),
                watch,
            };
            let driver = AsyncDriver::new(store, wire, config).with_grace(GRACE);
            Box::new(OnRuntime { rt, driver })
        }
    }
}

/// The second process: a storm of its own, then a real death with a request answered and
/// not stored (when some payment still takes an OTP).
fn child() {
    quiet_kills();
    let env = |name: &str| std::env::var(name).unwrap();
    let ledger = Arc::new(Ledger::new(Some(
        OpenOptions::new().append(true).open(env(CHILD)).unwrap(),
    )));
    let prefix = env(CHILD_PREFIX);
    let d = drive(
        &StoreSpec::decode(&env(CHILD_STORE)),
        &env(CHILD_SERVER),
        &ledger,
    );
    let seed: u64 = env(CHILD_SEED).parse().unwrap();
    storm(&*d, &ledger, &prefix, seed, None);
    let now = d.watch().now();
    for i in 0..PAYMENTS {
        let key = key(&prefix, i);
        if matches!(d.load(&key), Ok(p) if p.next_step(now) == NextStep::EnterOtp) {
            d.watch().kills.store(false, Ordering::SeqCst);
            d.watch().exit_after_send.store(true, Ordering::SeqCst);
            let _ = d.run(&key, submit(WRONG)); // exits once answered
            d.watch().exit_after_send.store(false, Ordering::SeqCst);
        }
    }
}

// ----- The run ---------------------------------------------------------------------------------

static RUNS: AtomicU64 = AtomicU64::new(0);

/// A unique name for this run's orders (several runs share nothing).
fn prefix(store: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "w{}_{}_{}_{nanos:x}_",
        store,
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

fn proof(name: &str, spec: StoreSpec) {
    quiet_kills();
    let mut config = SandboxConfig::new(KEY)
        .with_otp(OtpSource::Fixed(OTP.into()))
        .with_limits(MAX_SENDS, MAX_ATTEMPTS);
    for (card, flow) in CARDS {
        config = config.with_card(card, flow);
    }
    let server = SandboxServer::start(Sandbox::new(config)).unwrap();
    let bank = Bank(&server);
    let prefix = prefix(name);
    let ledger = Arc::new(Ledger::new(None));
    let d = drive(&spec, server.base_url(), &ledger);
    let started = Instant::now();

    // The second process, on the same store and bank.
    let child_ledger = std::env::temp_dir().join(format!("{prefix}ledger.txt"));
    File::create(&child_ledger).unwrap();
    let test_name = match spec {
        StoreSpec::Sqlite(_) => "sqlite_workers_two_processes",
        StoreSpec::Postgres { .. } => "postgres_workers_two_processes_need_database_url",
    };
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--test-threads=1", "--nocapture"])
        .env(CHILD, &child_ledger)
        .env(CHILD_SERVER, server.base_url())
        .env(CHILD_STORE, spec.encode())
        .env(CHILD_PREFIX, &prefix)
        .env(CHILD_SEED, "7000")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    storm(&*d, &ledger, &prefix, 1000, Some(&bank));
    let storm_done = started.elapsed();
    let status = child.wait().unwrap();
    let child_done = started.elapsed();
    let child_died = status.code() == Some(DIED);
    assert!(
        status.success() || status.code() == Some(DIED),
        "the second process failed: {status}"
    );
    ledger.merge(&child_ledger);
    let _ = std::fs::remove_file(&child_ledger);

    // Settle: nobody is sending now, so time may jump past the grace; then drive every
    // payment to its end (no more kills), the bank playing the cardholder's part.
    d.watch().kills.store(false, Ordering::SeqCst);
    d.watch()
        .offset_ms
        .fetch_add(GRACE.as_millis() as i64 + 1000, Ordering::SeqCst);
    note_sweep(&ledger, d.sweep_and_check());
    for i in 0..PAYMENTS {
        settle(&*d, &ledger, &bank, &prefix, i);
    }
    note_sweep(&ledger, d.sweep_and_check());

    let never_reached = check(&*d, &ledger, &server, &prefix);
    let t = ledger.tally.lock().unwrap();
    let mut out = std::io::stderr().lock();
    let _ =
        writeln!(
        out,
        "workers/{name}: 2 processes x {THREADS} workers + a sweeper each, {PAYMENTS} payments, \
         storm {:.1} s, second process done at {:.1} s ({}), settled at {:.1} s: sends {:?}; \
         {} killed, {} recovered by sweeps, {never_reached} never reached the bank; answers {:?}",
        storm_done.as_secs_f64(),
        child_done.as_secs_f64(),
        if child_died { "died on purpose with a request answered" } else { "exited" },
        started.elapsed().as_secs_f64(),
        t.sends,
        t.kills,
        t.recovered,
        t.codes,
    );
}

/// Drives payment `i` to its end, as the cardholder and the bank would.
fn settle(d: &dyn Drive, ledger: &Ledger, bank: &Bank<'_>, prefix: &str, i: usize) {
    let key = key(prefix, i);
    let order = order(prefix, i);
    let mut pending_checks = 0;
    for _ in 0..30 {
        let Ok(p) = d.load(&key) else {
            // Never started: start it now.
            note(ledger, &d.start(&start_request(prefix, i)));
            continue;
        };
        match p.next_step(d.watch().now()) {
            NextStep::Finished(_) => return,
            NextStep::Start => note(ledger, &d.start(&start_request(prefix, i))),
            NextStep::EnterOtp => note(ledger, &d.run(&key, submit(OTP))),
            NextStep::BankPage(_) => {
                let _ = d.bank_page(&key);
            }
            NextStep::AwaitBankPage => {
                bank.browser(&order, true);
                note(ledger, &d.run(&key, Command::CheckStatus));
            }
            NextStep::Wait(_) => note_sweep(ledger, d.sweep_and_check()),
            _ => {
                // Check the status; a start whose answer was lost opened no OTP page: the
                // bank gives up on it in the end (as a real one times out).
                if p.challenge().is_none() && pending_checks > 0 {
                    bank.browser(&order, false);
                }
                let result = d.run(&key, Command::CheckStatus);
                let code = result.as_ref().map_or("", |done| done.outcome.code());
                note(ledger, &result);
                match code {
                    "pending" => pending_checks += 1,
                    // The bank does not know the order: the start never reached it.
                    "rejected" if bank.0.sandbox().order_status(&order).is_none() => return,
                    _ => {}
                }
            }
        }
    }
}

/// The bank's counters against what the workers did.
/// Returns how many payments never reached the bank (their start died before leaving).
fn check(d: &dyn Drive, ledger: &Ledger, server: &SandboxServer, prefix: &str) -> usize {
    let t = ledger.tally.lock().unwrap();
    let sandbox = server.sandbox();
    let mut failures: Vec<String> = t.violations.clone();

    // No command reaches the bank twice: the bank's count per endpoint is the number of
    // distinct tokens sent (each right after its own write-ahead won).
    for (kind, endpoint) in [
        (RequestKind::Start, Endpoint::Start),
        (RequestKind::Resend, Endpoint::Resend),
        (RequestKind::Submit, Endpoint::Submit),
        (RequestKind::OrderStatus, Endpoint::OrderStatus),
    ] {
        let sent = t.sends.get(kind.code()).copied().unwrap_or(0);
        let won = t.write_aheads.get(kind.code()).copied().unwrap_or(0);
        let bank = sandbox.requests_to(endpoint);
        if bank != sent {
            failures.push(format!(
                "{kind}: the bank got {bank} requests, {sent} were sent"
            ));
        }
        if sent > won {
            failures.push(format!(
                "{kind}: {sent} sent but only {won} write-aheads won"
            ));
        }
    }
    if t.tokens.len() != t.sends.values().sum::<usize>() {
        failures.push("a token was sent twice".into());
    }

    let mut bank_never_started = 0;
    for i in 0..PAYMENTS {
        let key = key(prefix, i);
        let order = order(prefix, i);
        let terminal = t.terminal.get(&key).copied().unwrap_or(0);
        let txn = sandbox.latest_transaction(&order);
        if let Some(txn) = &txn {
            // One POST /txns per payment, within the limits.
            if !txn.txn_id.ends_with(&format!("{order}-1")) {
                failures.push(format!("{order}: a second transaction {}", txn.txn_id));
            }
            if txn.otp_sends > MAX_SENDS || txn.attempts > MAX_ATTEMPTS {
                failures.push(format!("{order}: over the limits: {txn:?}"));
            }
        }
        // No record lost.
        let p = match d.load(&key) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{key}: {e}"));
                continue;
            }
        };
        if p.in_flight().is_some() {
            failures.push(format!("{key} left in flight"));
        }
        let bank_status = sandbox.order_status(&order);
        if p.is_final() {
            if terminal != 1 {
                failures.push(format!("{key}: {terminal} terminal outcomes reported"));
            }
            if bank_status.as_ref() != Some(&p.status()) {
                failures.push(format!(
                    "{key}: stored {} but the bank says {bank_status:?}",
                    p.status()
                ));
            }
        } else if bank_status.is_none() && terminal == 0 {
            // Its start died before leaving and nothing reached the bank: nothing to settle
            // (`Payment` cannot know that the bank never saw it: see the report).
            bank_never_started += 1;
        } else {
            failures.push(format!(
                "{key} not final ({:?}, next {:?}), bank {bank_status:?}, {terminal} terminal outcomes",
                p.status(),
                p.next_step(d.watch().now())
            ));
        }
    }
    if t.kills == 0 {
        failures.push("no worker was killed: the run proves less than it says".into());
    }
    if t.recovered == 0 {
        failures.push("no sweep recovered anything".into());
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    bank_never_started
}

// ----- The tests -------------------------------------------------------------------------------

struct TempDb(PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

#[test]
fn sqlite_workers_two_processes() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let db = TempDb(std::env::temp_dir().join(format!("{}db.sqlite3", prefix("sqlite"))));
    SqliteStore::open(&db.0).unwrap();
    proof("sqlite", StoreSpec::Sqlite(db.0.clone()));
}

#[test]
fn postgres_workers_two_processes_need_database_url() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: PostgreSQL workers proof (set DATABASE_URL=postgres://...)"
        );
        return;
    };
    let rt = Runtime::new().unwrap();
    let table = prefix("pg").trim_end_matches('_').to_lowercase();
    let store = rt
        .block_on(PgStore::connect(&url))
        .unwrap()
        .with_table(&table)
        .unwrap();
    rt.block_on(store.migrate()).unwrap();
    struct Drop_(Runtime, PgStore, String);
    impl Drop for Drop_ {
        fn drop(&mut self) {
            let pool = self.1.pool().clone();
            let table = self.2.clone();
            let _ = self.0.block_on(async move {
                let client = pool.get().await?;
                client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
                    .await?;
                Ok::<_, Box<dyn std::error::Error>>(())
            });
        }
    }
    let _drop = Drop_(rt, store, table.clone());
    proof("postgres", StoreSpec::Postgres { url, table });
}
