//! The load harness: N shoppers at once, each paying its own order through
//! `direct_otp::driver::AsyncDriver` over a `SqliteStore` file, against the sandbox server
//! on loopback (hyper transport). Shared by `tests/it/shoppers.rs` (a short run) and
//! `benches/shoppers.rs` (250 shoppers), which includes this file by `#[path]`.
//!
//! What a shopper does, by its number `i`: starts the payment (`POST /txns`), loads its
//! page, reads the SMS, and then
//! * most: submits the right OTP;
//! * every 5th (`i % 5 == 1`): a wrong OTP first, then the right one;
//! * every 10th (`i % 10 == 4`): goes to the bank page, authenticates there, and comes back
//!   to an order-status check;
//! * every 10th (`i % 10 == 8`): leaves at the OTP page (its payment must stay continuable).
//!
//! At the end the harness checks, from the bank's side and the store's:
//! * **no payment stranded**: every payment is final with the bank's status, or on an OTP
//!   page the shopper can continue (the bank has it `PENDING_VBV` with an OTP to type);
//!   none is left in flight, or in an unknown stage (check status, expired) while the bank
//!   has it `PENDING_VBV`, and the store lists none in flight;
//! * **no shared order**: the order ids are all different, the bank saw one `POST /txns`
//!   per shopper, and each order has exactly one transaction (`acme-{order}-1`);
//! * and reports p50/p99/max of each step's latency.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use direct_otp::driver::{AsyncDriver, Command, DriveError};
use direct_otp::sandbox::{
    BankPageResult, Endpoint, OtpSource, Sandbox, SandboxConfig, SandboxServer,
};
use direct_otp::store::{AsyncStore, SqliteStore};
use direct_otp::transport::HyperTransport;
use direct_otp::{Config, NextStep, Otp, Outcome, Payment, PaymentSource, StartRequest, Status};
use hyper_util::client::legacy::connect::HttpConnector;
use ring::rand::{SecureRandom, SystemRandom};

const KEY: &str = "sk_test_shoppers";

type Shop = AsyncDriver<SqliteStore, HyperTransport<HttpConnector>>;

/// The steps timed, in the report's order.
pub const STEPS: [&str; 6] = [
    "start",
    "load",
    "wrong_otp",
    "submit",
    "bank_page",
    "check_status",
];

/// What one run found.
#[derive(Debug, Default)]
pub struct Report {
    pub shoppers: usize,
    /// The most shoppers in the shop at once.
    pub at_once: usize,
    pub elapsed: Duration,
    /// Latencies per step.
    pub steps: BTreeMap<&'static str, Vec<Duration>>,
    /// Shoppers who did not finish within the deadline.
    pub unfinished: usize,
    /// Payments final, with the bank's status (by status).
    pub settled: BTreeMap<String, usize>,
    /// Payments on an OTP page their shopper can continue.
    pub continuable: usize,
    /// Payments stranded: `order: stored stage / bank status`.
    pub stranded: Vec<String>,
    /// Errors the driver answered, by step and code (a `busy` from a double click is not
    /// expected here: every shopper is alone on its payment).
    pub errors: BTreeMap<String, usize>,
    /// Anything else that must not happen (a shared order, a status the bank did not say).
    pub problems: Vec<String>,
}

impl Report {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.unfinished == 0 && self.stranded.is_empty() && self.problems.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} shoppers ({} at once) in {:.2} s: settled {:?}, continuable {}, stranded {}, unfinished {}",
            self.shoppers,
            self.at_once.min(self.shoppers),
            self.elapsed.as_secs_f64(),
            self.settled,
            self.continuable,
            self.stranded.len(),
            self.unfinished
        )?;
        writeln!(f, "| step | n | p50 ms | p99 ms | max ms |")?;
        writeln!(f, "|---|---|---|---|---|")?;
        for step in STEPS {
            let Some(times) = self.steps.get(step) else {
                continue;
            };
            let (p50, p99, max) = percentiles(times);
            writeln!(
                f,
                "| {step} | {} | {:.1} | {:.1} | {:.1} |",
                times.len(),
                ms(p50),
                ms(p99),
                ms(max)
            )?;
        }
        for (what, list) in [("stranded", &self.stranded), ("problem", &self.problems)] {
            for item in list.iter().take(10) {
                writeln!(f, "{what}: {item}")?;
            }
        }
        if !self.errors.is_empty() {
            writeln!(f, "driver errors: {:?}", self.errors)?;
        }
        Ok(())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50, p99 and max (nearest rank).
pub fn percentiles(times: &[Duration]) -> (Duration, Duration, Duration) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let rank = |p: f64| {
        let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
        sorted.get(i).copied().unwrap_or_default()
    };
    (
        rank(0.50),
        rank(0.99),
        sorted.last().copied().unwrap_or_default(),
    )
}

/// A fresh order id: `shop_` and 128 random bits from the OS, in hex.
pub fn order_id() -> String {
    let mut bits = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bits)
        .expect("the OS gives randomness");
    let mut id = String::from("shop_");
    for b in bits {
        let _ = write!(id, "{b:02x}");
    }
    id
}

/// What one shopper saw.
#[derive(Default)]
struct Trip {
    order: String,
    times: Vec<(&'static str, Duration)>,
    errors: Vec<String>,
}

/// Runs `shoppers` shoppers at once, each given at most `deadline`, with the SQLite file
/// in `dir`; then checks. Loopback only.
pub async fn run(shoppers: usize, deadline: Duration, dir: &std::path::Path) -> Report {
    run_with(shoppers, shoppers, deadline, dir, |_| {}).await
}

/// [`run`], with at most `at_once` shoppers in the shop at a time (1: one after another, a
/// baseline without contention), and the bank scripted first (faults, to prove the checks
/// catch what they look for).
pub async fn run_with(
    shoppers: usize,
    at_once: usize,
    deadline: Duration,
    dir: &std::path::Path,
    script: impl FnOnce(&mut Sandbox),
) -> Report {
    let mut bank = SandboxConfig::new(KEY).with_otp(OtpSource::Seeded(250));
    bank.order_capacity = shoppers.max(1) * 2;
    bank.log_capacity = 0;
    let mut bank = Sandbox::new(bank);
    script(&mut bank);
    let server = Arc::new(SandboxServer::start(bank).expect("the bank starts"));
    let file: PathBuf = dir.join("shoppers.sqlite3");
    let store = SqliteStore::open(&file).expect("the store opens");
    let config = Config::new(server.base_url(), KEY).expect("a config");
    let shop = Arc::new(AsyncDriver::new(
        store,
        HyperTransport::plain_http(),
        config,
    ));

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let door = Arc::new(tokio::sync::Semaphore::new(at_once.max(1)));
    for i in 0..shoppers {
        let (shop, server, door) = (Arc::clone(&shop), Arc::clone(&server), Arc::clone(&door));
        tasks.spawn(async move {
            let _inside = door.acquire_owned().await;
            let mut trip = Trip {
                order: order_id(),
                ..Trip::default()
            };
            let shopped = tokio::time::timeout(deadline, shopper(i, &shop, &server, &mut trip));
            let finished = shopped.await.is_ok();
            (trip, finished)
        });
    }
    let mut report = Report {
        shoppers,
        at_once,
        ..Report::default()
    };
    let mut trips = Vec::with_capacity(shoppers);
    while let Some(joined) = tasks.join_next().await {
        let (trip, finished) = joined.expect("a shopper does not panic");
        if !finished {
            report.unfinished += 1;
        }
        trips.push(trip);
    }
    report.elapsed = started.elapsed();
    for trip in &trips {
        for (step, took) in &trip.times {
            report.steps.entry(step).or_default().push(*took);
        }
        for e in &trip.errors {
            *report.errors.entry(e.clone()).or_default() += 1;
        }
    }
    check(&shop, &server, &trips, &mut report).await;
    report
}

async fn timed<T>(
    trip: &mut Trip,
    step: &'static str,
    f: impl std::future::Future<Output = Result<T, DriveError>>,
) -> Result<T, ()> {
    let t = Instant::now();
    let result = f.await;
    trip.times.push((step, t.elapsed()));
    result.map_err(|e| trip.errors.push(format!("{step}: {}", e.code())))
}

/// One shopper's visit; returns early (the payment as it is) at the first driver error.
async fn shopper(i: usize, shop: &Arc<Shop>, server: &SandboxServer, trip: &mut Trip) {
    let card = PaymentSource::token("tok_visa");
    let customer = format!("cust_{i}");
    let Ok(start) = StartRequest::new(&trip.order, "acme", &customer, card) else {
        trip.errors.push("start: bad order id".into());
        return;
    };
    let Ok(done) = timed(trip, "start", shop.spawn_start(start, 1)).await else {
        return;
    };
    let key = done.payment.key().to_owned();
    if timed(trip, "load", shop.load(&key)).await.is_err() {
        return;
    }
    let sms = server
        .sandbox()
        .current_otp_for_order(&trip.order)
        .map(str::to_owned);
    let Some((sms, Ok(otp))) = sms.map(|s| (s.clone(), Otp::new(&s))) else {
        trip.errors.push("sms: none".into());
        return;
    };
    match i % 10 {
        8 => return, // leaves at the OTP page
        4 => {
            if timed(trip, "bank_page", shop.bank_page(&key))
                .await
                .is_err()
            {
                return;
            }
            let uuid = server
                .sandbox()
                .latest_transaction(&trip.order)
                .map(|t| t.txn_uuid);
            let finished = uuid.map(|u| {
                server
                    .sandbox()
                    .complete_bank_page(&u, BankPageResult::Success)
            });
            if !matches!(finished, Some(Ok(_))) {
                trip.errors.push("bank_page: not finished".into());
                return;
            }
            let _ = timed(
                trip,
                "check_status",
                shop.spawn_run(&key, Command::CheckStatus),
            )
            .await;
            return;
        }
        _ => {}
    }
    if i % 5 == 1 {
        let wrong = Otp::new(if sms == "000000" { "111111" } else { "000000" });
        let Ok(wrong) = wrong else { return };
        let run = shop.spawn_run(&key, Command::Submit(wrong));
        match timed(trip, "wrong_otp", run).await {
            Ok(done) if matches!(done.outcome, Outcome::WrongOtp { .. }) => {}
            Ok(done) => trip
                .errors
                .push(format!("wrong_otp: {}", done.outcome.code())),
            Err(()) => return,
        }
    }
    let _ = timed(trip, "submit", shop.spawn_run(&key, Command::Submit(otp))).await;
}

/// The checks at the end, from the store's side and the bank's.
async fn check(shop: &Shop, server: &SandboxServer, trips: &[Trip], report: &mut Report) {
    let orders: HashSet<&str> = trips.iter().map(|t| t.order.as_str()).collect();
    if orders.len() != trips.len() {
        let shared = trips.len() - orders.len();
        report.problems.push(format!("{shared} order ids shared"));
    }
    // The bank's side first (its lock is not held across the store's calls).
    let (starts, at_bank) = {
        let bank = server.sandbox();
        let at_bank: Vec<_> = trips
            .iter()
            .map(|trip| {
                let order = trip.order.as_str();
                let txn_id = bank.latest_transaction(order).map(|t| t.txn_id);
                let status = bank.order_status(order).unwrap_or(Status::New);
                let sms = bank.current_otp_for_order(order).is_some();
                (txn_id, status, sms)
            })
            .collect();
        (bank.requests_to(Endpoint::Start), at_bank)
    };
    if starts != trips.len() {
        report.problems.push(format!(
            "the bank saw {starts} POST /txns for {} shoppers",
            trips.len()
        ));
    }
    let now = shop.transport().now();
    for (trip, (txn_id, at_bank, sms)) in trips.iter().zip(at_bank) {
        let order = trip.order.as_str();
        match txn_id {
            Some(t) if t == format!("acme-{order}-1") => {}
            Some(t) => report
                .problems
                .push(format!("{order}: the bank's transaction is {t}")),
            None => report
                .problems
                .push(format!("{order}: unknown to the bank")),
        }
        let key = Payment::key_for(order, 1);
        let stored: Payment = match shop.store().load(&key).await {
            Ok(Some(payment)) => payment,
            Ok(None) => {
                report
                    .stranded
                    .push(format!("{order}: not stored / bank {at_bank}"));
                continue;
            }
            Err(e) => {
                report
                    .problems
                    .push(format!("{order}: the store failed: {e}"));
                continue;
            }
        };
        match stored.next_step(now) {
            NextStep::Finished(status) if status == at_bank => {
                *report.settled.entry(status.to_string()).or_default() += 1;
            }
            NextStep::Finished(status) => report
                .problems
                .push(format!("{order}: stored {status}, the bank says {at_bank}")),
            NextStep::EnterOtp if at_bank == Status::PendingVbv && sms => {
                report.continuable += 1;
            }
            step => report
                .stranded
                .push(format!("{order}: stored {} / bank {at_bank}", step.code())),
        }
    }
    let far = now + time::Duration::hours(1);
    let listed = AsyncStore::<Payment>::in_flight_before(shop.store(), far, trips.len() + 1);
    match listed.await {
        Ok(in_flight) if in_flight.is_empty() => {}
        Ok(in_flight) => report.problems.push(format!(
            "the store lists {} payments in flight",
            in_flight.len()
        )),
        Err(e) => report
            .problems
            .push(format!("the store's listing failed: {e}")),
    }
}
