//! The driver's step machine (`driver::Protocol`, `driver::Steps`) run directly, as a host
//! language would: several workers interleave the steps of their calls on shared payments,
//! each I/O done by this test against an in-memory store model and the in-process sandbox
//! as the bank, every I/O request read from its JSON form and every result handed back as
//! JSON (the forms a binding carries).
//!
//! Workers start orders (`start_next`, `start`), run commands, go to the bank page, settle
//! returns from the bank page and sweep; they stop between any two steps (a crash), meet
//! conflicts, lose answers (the bank drops them, fails after applying, answers twice), and
//! the store fails transiently before or after applying a write. Checked from the bank's
//! side, as `concurrency.rs` does:
//!
//! * a request reaches the bank only right after its write-ahead was stored, and never
//!   twice; nothing is sent past its `send_by`;
//! * the bank never refuses for its limits, its counters stay within them, and two OTPs
//!   never go out within a cooldown;
//! * every record written loads again (it is stored as the JSON the I/O request carried),
//!   and a final record never changes;
//! * a payment reports at most one terminal outcome, and only once it is stored final;
//! * the machine never reports that it was misused (the loop is right);
//! * after the storm, sweeps and status checks leave nothing in flight, and every final
//!   record says what the bank says about its transaction.
//!
//! `DIRECT_OTP_PROPTEST_CASES=N` runs N cases; `docs/testing.md` has the long run.

use crate::invariants;

use std::collections::{BTreeMap, HashMap, HashSet};

use direct_otp::driver::Settled;
use direct_otp::driver::{
    BankPage, Command, Done, DriveError, Input, Io, Protocol, Step, Steps, Swept,
};
use direct_otp::sandbox::{
    BankPageResult, Endpoint, Fault, Sandbox, SandboxConfig, SANDBOX_RESPONSE_KEY,
};
use direct_otp::store::StoreError;
use direct_otp::{
    Config, NextStep, Otp, Payment, PaymentSource, Policy, ResponseKey, ReturnParams, StartRequest,
    Token,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

const KEY: &str = "sk_test_steps";
const WORKERS: usize = 3;
const ORDERS: usize = 2;
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
const WRONG_OTP: &str = "00000000";

/// A row of the store model: the JSON stored, its revision, and its order and attempt.
struct Row {
    json: String,
    revision: u64,
    order: String,
    attempt: u32,
    /// Set once the stored record is final: it must never change after.
    final_json: Option<String>,
}

/// A call a worker runs.
enum Running {
    Done(Steps<Done>),
    Page(Steps<BankPage>),
    Settle(Steps<Settled>),
    Sweep(Steps<Vec<Swept>>),
}

enum Finished {
    Done(Result<Done, DriveError>),
    Page(Result<BankPage, DriveError>),
    Settle(Result<Settled, DriveError>),
    Sweep(Result<Vec<Swept>, DriveError>),
}

impl Running {
    fn resume(&mut self, input: Input, now: OffsetDateTime) -> Result<Io, Box<Finished>> {
        fn step<T>(
            s: &mut Steps<T>,
            i: Input,
            now: OffsetDateTime,
            f: fn(Result<T, DriveError>) -> Finished,
        ) -> Result<Io, Box<Finished>> {
            match s.resume(i, now) {
                Step::Io(io) => Ok(io),
                Step::Finished(r) => Err(Box::new(f(r))),
            }
        }
        match self {
            Running::Done(s) => step(s, input, now, Finished::Done),
            Running::Page(s) => step(s, input, now, Finished::Page),
            Running::Settle(s) => step(s, input, now, Finished::Settle),
            Running::Sweep(s) => step(s, input, now, Finished::Sweep),
        }
    }
}

/// A worker's call in progress: the machine, the I/O it asked for, and its last
/// write-ahead (the key and the token then in flight).
struct Call {
    running: Running,
    pending: Io,
    wrote: Option<(String, Token)>,
}

#[derive(Debug, Clone, Copy)]
enum Cmd {
    Resend,
    SubmitRight,
    SubmitWrong,
    CheckStatus,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    StartNext(usize),
    StartFirst(usize),
    Run(usize, Cmd),
    BankPage(usize),
    Settle(usize),
    Sweep(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum StoreFault {
    None,
    /// The store fails before applying the write (or the read).
    Before,
    /// The store applies the write, then fails (a dropped connection after the commit).
    After,
}

#[derive(Debug, Clone)]
enum Op {
    Begin(usize, Kind),
    /// Worker `w` does the I/O its machine asked for and resumes it.
    Step(usize, StoreFault, Option<Fault>),
    Crash(usize),
    Clock(i64),
    Browser(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WORKERS;
    let o = 0..ORDERS;
    let cmd = prop_oneof![
        3 => Just(Cmd::Resend),
        2 => Just(Cmd::SubmitRight),
        3 => Just(Cmd::SubmitWrong),
        1 => Just(Cmd::CheckStatus),
    ];
    let kind = prop_oneof![
        3 => o.clone().prop_map(Kind::StartNext),
        1 => o.clone().prop_map(Kind::StartFirst),
        8 => (o.clone(), cmd).prop_map(|(o, c)| Kind::Run(o, c)),
        1 => o.clone().prop_map(Kind::BankPage),
        1 => o.clone().prop_map(Kind::Settle),
        1 => any::<bool>().prop_map(Kind::Sweep),
    ];
    let store = prop_oneof![
        30 => Just(StoreFault::None),
        1 => Just(StoreFault::Before),
        1 => Just(StoreFault::After),
    ];
    let bank = prop_oneof![
        8 => Just(None),
        1 => Just(Some(Fault::DropResponse)),
        1 => Just(Some(Fault::DropRequest)),
        1 => Just(Some(Fault::InternalErrorAfterApply)),
        1 => Just(Some(Fault::Duplicate)),
    ];
    prop_oneof![
        6 => (w.clone(), kind).prop_map(|(w, k)| Op::Begin(w, k)),
        24 => (w.clone(), store, bank).prop_map(|(w, s, b)| Op::Step(w, s, b)),
        1 => w.prop_map(Op::Crash),
        4 => (0i64..40).prop_map(Op::Clock),
        1 => (o, any::<bool>()).prop_map(|(o, s)| Op::Browser(o, s)),
    ]
}

#[derive(Default)]
struct Stats {
    sends: u64,
    conflicts: u64,
    store_faults: u64,
    late: u64,
    crashes: u64,
    /// How the calls ended: `Done` outcomes' and errors' codes.
    codes: BTreeMap<&'static str, u64>,
}

struct World {
    protocol: Protocol,
    bank: Sandbox,
    policy: Policy,
    now: OffsetDateTime,
    rows: BTreeMap<String, Row>,
    workers: Vec<Option<Call>>,
    starts: Vec<StartRequest>,
    /// Every token sent to the bank.
    sent: HashSet<String>,
    /// When each transaction's OTPs went out, as the bank counted them.
    sends_at: HashMap<String, Vec<OffsetDateTime>>,
    /// Terminal outcomes reported per key.
    terminal: HashMap<String, u32>,
    stats: Stats,
}

fn order_id(order: usize) -> String {
    format!("ord_steps_{order}")
}

impl World {
    fn new() -> World {
        let bank = Sandbox::new(SandboxConfig::new(KEY).with_limits(3, 3));
        let config = Config::new(bank.base_url(), KEY).expect("config");
        let mut policy = Policy::default();
        policy.max_sends = 3;
        policy.max_attempts = 3;
        let starts = (0..ORDERS)
            .map(|i| {
                StartRequest::new(
                    &order_id(i),
                    "acme",
                    &format!("cust_{i}"),
                    PaymentSource::Token {
                        card_token: "tok_visa".into(),
                        cvv: None,
                    },
                )
                .expect("ids")
                .with_policy(policy)
            })
            .collect();
        World {
            protocol: Protocol::new(config, TIMEOUT),
            bank,
            policy,
            now: time::macros::datetime!(2026-11-25 10:00 UTC),
            rows: BTreeMap::new(),
            workers: (0..WORKERS).map(|_| None).collect(),
            starts,
            sent: HashSet::new(),
            sends_at: HashMap::new(),
            terminal: HashMap::new(),
            stats: Stats::default(),
        }
    }

    fn decode(json: &str) -> Payment {
        serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("a stored record does not load: {e}\n{json}"))
    }

    /// The latest attempt of an order, as stored.
    fn latest(&self, order: &str) -> Option<(&String, &Row)> {
        self.rows
            .iter()
            .filter(|(_, r)| r.order == order)
            .max_by_key(|(_, r)| r.attempt)
    }

    fn latest_key(&self, order: usize) -> String {
        self.latest(&order_id(order))
            .map_or_else(|| format!("{}/1", order_id(order)), |(k, _)| k.clone())
    }

    fn begin(&mut self, w: usize, kind: Kind) {
        if self.workers[w].is_some() {
            return;
        }
        let p = &self.protocol;
        // A page for an order not started yet offers "Pay".
        let started = |o: usize| self.latest(&order_id(o)).is_some();
        let kind = match kind {
            Kind::Run(o, _) | Kind::BankPage(o) if !started(o) => Kind::StartNext(o),
            kind => kind,
        };
        let running = match kind {
            Kind::StartNext(o) => Running::Done(p.start_next(self.starts[o].clone())),
            Kind::StartFirst(o) => Running::Done(p.start(self.starts[o].clone(), 1)),
            Kind::Run(o, cmd) => {
                let key = self.latest_key(o);
                let command = match cmd {
                    Cmd::Resend => Command::Resend,
                    Cmd::CheckStatus => Command::CheckStatus,
                    Cmd::SubmitRight | Cmd::SubmitWrong => {
                        let right = self
                            .rows
                            .get(&key)
                            .and_then(|r| {
                                Self::decode(&r.json)
                                    .challenge()
                                    .map(|c| c.txn_id().to_owned())
                            })
                            .and_then(|t| self.bank.current_otp(&t).map(str::to_owned));
                        let otp = match (cmd, right) {
                            (Cmd::SubmitRight, Some(otp)) => otp,
                            _ => WRONG_OTP.to_owned(),
                        };
                        Command::Submit(Otp::new(&otp).expect("otp"))
                    }
                };
                Running::Done(p.run(&key, command))
            }
            Kind::BankPage(o) => Running::Page(p.bank_page(&self.latest_key(o))),
            Kind::Settle(o) => {
                let Some(query) = self.bank.return_query(&order_id(o)) else {
                    return;
                };
                let response_key = ResponseKey::new(SANDBOX_RESPONSE_KEY).expect("key");
                let verified = ReturnParams::from_query(&query)
                    .expect("the sandbox's return query parses")
                    .verify(&response_key)
                    .expect("the sandbox signs its returns");
                Running::Settle(p.settle(verified.into()))
            }
            Kind::Sweep(check) => Running::Sweep(p.sweep(10, check)),
        };
        self.start_call(w, running);
    }

    fn start_call(&mut self, w: usize, mut running: Running) {
        match running.resume(input(json!({"result": "begin"})), self.now) {
            Ok(io) => {
                self.workers[w] = Some(Call {
                    running,
                    pending: io,
                    wrote: None,
                })
            }
            Err(finished) => self.finished(*finished),
        }
    }

    /// Does worker `w`'s pending I/O, and resumes its machine with the result.
    fn step(&mut self, w: usize, store: StoreFault, bank: Option<Fault>) {
        let Some(mut call) = self.workers[w].take() else {
            return;
        };
        let io = std::mem::replace(
            &mut call.pending,
            Io::Pause {
                wait: std::time::Duration::ZERO,
            },
        );
        let result = self.io(&mut call, io, store, bank);
        match call.running.resume(input(result), self.now) {
            Ok(io) => {
                if let Io::Send { send_by, .. } = &io {
                    assert!(*send_by >= self.now, "a send asked for past its deadline");
                }
                call.pending = io;
                self.workers[w] = Some(call);
            }
            Err(finished) => self.finished(*finished),
        }
        self.check_bank();
    }

    /// One I/O, as a host would do it from the request's JSON; the result as JSON.
    fn io(&mut self, call: &mut Call, io: Io, store: StoreFault, bank: Option<Fault>) -> Value {
        let form = serde_json::to_value(&io).expect("an I/O request serializes");
        let op = form["op"].as_str().expect("op").to_owned();
        let transient = |stats: &mut Stats| {
            stats.store_faults += 1;
            json!({"result": "store_failed", "transient": true, "message": "connection reset"})
        };
        match op.as_str() {
            "load" | "latest_for_order" => {
                if store != StoreFault::None {
                    return transient(&mut self.stats);
                }
                let row = if op == "load" {
                    self.rows.get(form["key"].as_str().expect("key"))
                } else {
                    self.latest(form["order_id"].as_str().expect("order_id"))
                        .map(|(_, r)| r)
                };
                match row {
                    // The stored text as it is: a payment is carried as its own JSON.
                    Some(row) => {
                        input_text(&format!(r#"{{"result":"loaded","payment":{}}}"#, row.json))
                    }
                    None => json!({"result": "loaded", "payment": null}),
                }
            }
            "insert" | "replace" => {
                if store == StoreFault::Before {
                    return transient(&mut self.stats);
                }
                let json = form["payment"].to_string();
                let payment = Self::decode(&json);
                let key = payment.key().to_owned();
                let result = match (op.as_str(), self.rows.get(&key)) {
                    ("insert", Some(row)) => Err(row.revision),
                    ("insert", None) => Ok(()),
                    (_, None) => panic!("a replace of {key}, never inserted"),
                    (_, Some(row)) => {
                        let expected = form["expected"].as_u64().expect("expected");
                        if row.revision == expected {
                            Ok(())
                        } else {
                            Err(row.revision)
                        }
                    }
                };
                if let Err(found) = result {
                    self.stats.conflicts += 1;
                    return json!({"result": "conflict", "key": key, "found": found});
                }
                if let Some(row) = self.rows.get(&key) {
                    assert!(
                        payment.revision() > row.revision,
                        "a write moves the revision up"
                    );
                    if let Some(f) = &row.final_json {
                        panic!("{key}: a final record changed\nwas: {f}\nnow: {json}");
                    }
                }
                let final_json = payment.is_final().then(|| json.clone());
                self.rows.insert(
                    key.clone(),
                    Row {
                        json,
                        revision: payment.revision(),
                        order: payment.order_id().to_owned(),
                        attempt: payment.attempt(),
                        final_json,
                    },
                );
                if let Some(token) = payment.in_flight() {
                    call.wrote = Some((key, token));
                }
                if store == StoreFault::After {
                    return transient(&mut self.stats);
                }
                json!({"result": "stored"})
            }
            "list_in_flight" => {
                if store != StoreFault::None {
                    return transient(&mut self.stats);
                }
                let before = form["before"].as_i64().expect("before in ms");
                let limit = form["limit"].as_u64().expect("limit") as usize;
                let mut keys: Vec<(i64, String)> = self
                    .rows
                    .iter()
                    .filter_map(|(k, r)| {
                        let since = Self::decode(&r.json).in_flight_since()?;
                        let ms = (since.unix_timestamp_nanos() / 1_000_000) as i64;
                        (ms < before).then(|| (ms, k.clone()))
                    })
                    .collect();
                keys.sort();
                let keys: Vec<String> = keys.into_iter().take(limit).map(|(_, k)| k).collect();
                json!({"result": "listed", "keys": keys})
            }
            "send" => {
                let Io::Send { request, .. } = io else {
                    panic!("op send is Io::Send");
                };
                let send_by = form["send_by"].as_i64().expect("send_by in ms");
                let now_ms = (self.now.unix_timestamp_nanos() / 1_000_000) as i64;
                if now_ms > send_by {
                    self.stats.late += 1;
                    return json!({"result": "send_failed", "maybe_sent": false, "message": "too late"});
                }
                assert_eq!(form["request"]["url"], request.url());
                assert_eq!(form["request"]["method"], request.method().as_str());
                // Write-ahead: what is sent is what is stored in flight, and only once.
                let (key, token) = call.wrote.clone().expect("a send after a write-ahead");
                assert_eq!(form["key"], key.as_str(), "the send names its payment");
                let stored = Self::decode(&self.rows[&key].json);
                assert_eq!(
                    stored.in_flight(),
                    Some(token),
                    "{key}: sent without being stored"
                );
                assert_eq!(token.kind(), request.kind());
                assert!(
                    self.sent.insert(token.to_string()),
                    "request {token} sent twice"
                );
                self.stats.sends += 1;
                let order = (0..ORDERS)
                    .find(|o| order_id(*o) == stored.order_id())
                    .expect("order");
                if let Some(f) = bank {
                    self.bank.inject(Endpoint::of(token.kind()), f);
                }
                let before = self.bank_sends(order);
                let answer = self.bank.handle_request(&request, self.now);
                if self.bank_sends(order) > before {
                    let txn = self
                        .bank
                        .latest_transaction(&order_id(order))
                        .expect("sent to");
                    self.sends_at.entry(txn.id).or_default().push(self.now);
                }
                let body =
                    String::from_utf8(answer.body.clone()).expect("the sandbox answers UTF-8");
                assert!(
                    !body.contains("max_limit_exceeded"),
                    "the bank refused for its limits: {body}"
                );
                if answer.is_delivered() {
                    json!({"result": "answer", "status": answer.status, "body": body})
                } else {
                    json!({"result": "send_failed", "maybe_sent": true, "message": "timed out"})
                }
            }
            "pause" => {
                assert!(form["wait"].as_u64().is_some(), "a pause in ms");
                json!({"result": "paused"})
            }
            other => panic!("an I/O request this loop does not know: {other}"),
        }
    }

    fn bank_sends(&self, order: usize) -> u32 {
        self.bank
            .latest_transaction(&order_id(order))
            .map_or(0, |t| t.otp_sends)
    }

    /// A call's result: checked against the store.
    fn finished(&mut self, finished: Finished) {
        match finished {
            Finished::Done(r) => self.done(r),
            Finished::Page(r) => {
                if let Err(e) = r {
                    self.error(&e);
                }
            }
            Finished::Settle(r) => match r {
                Ok(settled) => {
                    if let Some(check) = settled.check {
                        match check {
                            Ok(outcome) if outcome.is_terminal() => {
                                self.terminal_reported(settled.payment.key())
                            }
                            Ok(_) => {}
                            Err(e) => self.error(&e),
                        }
                    }
                }
                Err(e) => self.error(&e),
            },
            Finished::Sweep(r) => match r {
                Ok(swept) => {
                    for s in swept {
                        match s {
                            Swept::Recovered { check: Some(r), .. } => self.done(r),
                            Swept::Failed { error, .. } => self.error(&error),
                            _ => {}
                        }
                    }
                }
                Err(e) => self.error(&e),
            },
        }
    }

    fn done(&mut self, r: Result<Done, DriveError>) {
        match r {
            Ok(done) => {
                *self.stats.codes.entry(done.outcome.code()).or_default() += 1;
                let row = &self.rows[done.payment.key()];
                assert_eq!(
                    row.revision,
                    done.payment.revision(),
                    "Done is the payment as stored"
                );
                if done.outcome.is_terminal() {
                    self.terminal_reported(done.payment.key());
                }
            }
            Err(e) => self.error(&e),
        }
    }

    fn terminal_reported(&mut self, key: &str) {
        let n = self.terminal.entry(key.to_owned()).or_default();
        *n += 1;
        assert_eq!(*n, 1, "{key}: a second terminal outcome");
        assert!(
            self.rows[key].final_json.is_some(),
            "{key}: terminal but not stored final"
        );
    }

    /// No error says the loop misused the machine.
    fn error(&mut self, e: &DriveError) {
        *self.stats.codes.entry(e.code()).or_default() += 1;
        assert!(!e.code().is_empty());
        if let DriveError::Store {
            source: StoreError::Config { reason },
            ..
        } = e
        {
            panic!("the machine reports a misuse: {reason}");
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Begin(w, kind) => self.begin(*w, *kind),
            Op::Step(w, s, b) => self.step(*w, *s, *b),
            Op::Crash(w) => {
                if self.workers[*w].take().is_some() {
                    self.stats.crashes += 1;
                }
            }
            Op::Clock(s) => self.now += Duration::seconds(*s),
            Op::Browser(o, success) => {
                let Some((_, row)) = self.latest(&order_id(*o)) else {
                    return;
                };
                let c = Self::decode(&row.json);
                if c.next_step(self.now) != NextStep::AwaitBankPage {
                    return;
                }
                let Some(id) = c.challenge().map(|c| c.txn_id().to_owned()) else {
                    return;
                };
                let result = if *success {
                    BankPageResult::Success
                } else {
                    BankPageResult::Failure
                };
                let _ = self.bank.complete_bank_page(&id, result);
            }
        }
    }

    /// What the bank allows, from its own side.
    fn check_bank(&self) {
        let cfg = self.bank.config();
        for order in 0..ORDERS {
            let Some(txn) = self.bank.latest_transaction(&order_id(order)) else {
                continue;
            };
            assert!(txn.otp_sends <= cfg.max_sends, "{txn:?}");
            assert!(txn.attempts <= cfg.max_attempts, "{txn:?}");
        }
        for (txn, at) in &self.sends_at {
            for pair in at.windows(2) {
                assert!(
                    pair[1] - pair[0] >= self.policy.resend_cooldown,
                    "{txn}: two OTPs sent {} apart",
                    pair[1] - pair[0]
                );
            }
        }
    }

    /// Runs one call to its end with no fault.
    fn run_to_end(&mut self, running: Running) {
        let w = WORKERS; // a worker of its own
        self.workers.push(None);
        self.start_call(w, running);
        while self.workers[w].is_some() {
            self.step(w, StoreFault::None, None);
        }
        self.workers.pop();
    }

    /// After the storm: the live workers stop, time passes the grace, sweeps and status
    /// checks settle what can be; then nothing is in flight and every final record says
    /// what the bank says.
    fn settle(&mut self) {
        for w in 0..WORKERS {
            self.workers[w] = None;
        }
        for _ in 0..4 {
            self.now += Duration::seconds(61);
            let sweep = Running::Sweep(self.protocol.sweep(100, true));
            self.run_to_end(sweep);
            for order in 0..ORDERS {
                let key = self.latest_key(order);
                let open = self.rows.get(&key).is_some_and(|r| {
                    let c = Self::decode(&r.json);
                    !c.is_final() && c.in_flight().is_none() && c.challenge().is_some()
                });
                if open {
                    let check = Running::Done(self.protocol.run(&key, Command::CheckStatus));
                    self.run_to_end(check);
                }
            }
        }
        for (key, row) in &self.rows {
            let c = Self::decode(&row.json);
            assert!(c.in_flight().is_none(), "{key} left in flight");
            let txn = c
                .challenge()
                .and_then(|ch| self.bank.transaction(ch.txn_id()));
            if c.is_final() {
                if let Some(txn) = &txn {
                    assert_eq!(c.status(), txn.status, "{key}: stored vs bank");
                }
            }
            let reported = self.terminal.get(key).copied().unwrap_or(0);
            assert!(
                reported <= 1 && (reported == 0 || c.is_final()),
                "{key}: {reported} terminal outcomes"
            );
        }
        for order in 0..ORDERS {
            let key = self.latest_key(order);
            let Some(row) = self.rows.get(&key) else {
                continue;
            };
            let c = Self::decode(&row.json);
            let txn = c
                .challenge()
                .and_then(|ch| self.bank.transaction(ch.txn_id()));
            if let Some(txn) = txn {
                if txn.status.is_final() {
                    assert!(
                        c.is_final(),
                        "{key}: the bank settled {} but the record is {c:?}",
                        txn.status
                    );
                }
            }
        }
    }
}

/// A result as a host hands it: JSON, read into an [`Input`].
fn input(value: Value) -> Input {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("an I/O result does not read: {e}"))
}

fn input_text(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
}

fn proptest_config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: invariants::proptest_cases(default_cases),
        rng_seed: RngSeed::Fixed(invariants::proptest_seed()),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[test]
fn workers_interleaving_the_step_machine_never_break_what_the_bank_allows() {
    let config = proptest_config(64);
    let cases = config.cases;
    let totals = std::sync::Mutex::new((0u64, Stats::default()));
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&prop::collection::vec(op(), 1..200), |ops| {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
        }
        world.settle();
        let mut t = totals.lock().unwrap();
        t.0 += ops.len() as u64;
        t.1.sends += world.stats.sends;
        t.1.conflicts += world.stats.conflicts;
        t.1.store_faults += world.stats.store_faults;
        t.1.late += world.stats.late;
        t.1.crashes += world.stats.crashes;
        for (code, n) in &world.stats.codes {
            *t.1.codes.entry(code).or_default() += n;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (ops, s) = totals.into_inner().unwrap();
    // The figures docs/testing.md records for the long run.
    eprintln!(
        "steps: {cases} cases, {ops} ops, {} sends, {} conflicts, {} store faults, {} late, {} crashes; ended {:?}",
        s.sends, s.conflicts, s.store_faults, s.late, s.crashes, s.codes
    );
}

#[test]
fn the_json_forms_of_the_io_requests_and_results() {
    let mut world = World::new();
    let mut steps = world.protocol.start_next(world.starts[0].clone());
    let Step::Io(io) = steps.resume(Input::Begin, world.now) else {
        panic!("a start asks for the latest attempt first");
    };
    assert_eq!(
        serde_json::to_value(&io).unwrap(),
        json!({"op": "latest_for_order", "order_id": "ord_steps_0"})
    );
    let Step::Io(io) = steps.resume(
        input(json!({"result": "loaded", "payment": null})),
        world.now,
    ) else {
        panic!("then it loads attempt 1");
    };
    assert_eq!(
        serde_json::to_value(&io).unwrap(),
        json!({"op": "load", "key": "ord_steps_0/1"})
    );
    let Step::Io(io) = steps.resume(
        input(json!({"result": "loaded", "payment": null})),
        world.now,
    ) else {
        panic!("then it inserts the write-ahead");
    };
    let form = serde_json::to_value(&io).unwrap();
    assert_eq!(form["op"], "insert");
    let stored: Payment =
        serde_json::from_value(form["payment"].clone()).expect("the payment's own JSON");
    assert_eq!(stored.key(), "ord_steps_0/1");
    assert!(stored.in_flight().is_some(), "written ahead, in flight");
    let Step::Io(io) = steps.resume(input(json!({"result": "stored"})), world.now) else {
        panic!("then it sends");
    };
    let form = serde_json::to_value(&io).unwrap();
    assert_eq!(form["op"], "send");
    assert_eq!(form["request"]["kind"], "start");
    assert_eq!(form["request"]["method"], "POST");
    let ms = (world.now.unix_timestamp_nanos() / 1_000_000) as i64;
    assert_eq!(
        form["send_by"],
        json!(ms + 30_000),
        "grace 60 s less the 30 s timeout"
    );
    // Debug redacts the card data and the API key; the JSON must carry them to the client.
    let debug = format!("{io:?}");
    assert!(
        !debug.contains("tok_visa") && !debug.contains(KEY),
        "{debug}"
    );
    assert!(form["request"]["body"]
        .as_str()
        .unwrap()
        .contains("tok_visa"));
    // A conflict on the write of the answer after a lost connection, and other results.
    for result in [
        json!({"result": "conflict", "found": 3}),
        json!({"result": "store_failed", "transient": true, "message": "reset"}),
        json!({"result": "store_failed", "corrupt": true, "key": "k", "message": "bad row"}),
        json!({"result": "send_failed", "maybe_sent": true}),
        json!({"result": "answer", "status": 500, "body": [123, 255]}),
        json!({"result": "listed", "keys": ["a/1"]}),
        json!({"result": "paused"}),
    ] {
        let _ = input(result);
    }
    // A result that answers another request is the loop's bug, reported, never a panic.
    world.now += Duration::seconds(1);
    match steps.resume(input(json!({"result": "paused"})), world.now) {
        Step::Finished(Err(DriveError::Store {
            sent: true,
            source: StoreError::Config { .. },
            ..
        })) => {}
        other => panic!("{other:?}"),
    }
    assert!(steps.is_finished());
    assert!(matches!(
        steps.resume(Input::Begin, world.now),
        Step::Finished(Err(_))
    ));
}
