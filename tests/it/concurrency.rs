//! Several workers sharing stored payment records under compare-and-swap, against the
//! sandbox bank, from before the start until the payment is settled.
//!
//! Each case creates two payments (two orders, nothing sent yet) and stores each in a slot
//! that only a compare-and-swap on its revision can replace, as a database row would. Three workers
//! then interleave at random: they load a record, run a command on their copy, store the
//! in-flight state (write-ahead) and send only if that store won, hand answers back (or
//! transport failures), crash between any two of these steps, cross answers between copies
//! and records, and recover requests nobody answered after a grace. The bank is the
//! in-process sandbox; what it allows is checked from its own side:
//!
//! * no request is sent twice, and every request sent was first stored (write-ahead);
//! * the bank never has to refuse a send or an attempt for its limits, and its counters stay
//!   within them; two resends never reach it within one cooldown;
//! * a stored record always loads, and once final it never changes again;
//! * exactly one terminal outcome (`Approved` or `Declined`) is stored per payment: none
//!   before it is final, one once it is;
//! * the view never offers an action the record would refuse;
//! * an answer never applies to another copy, another record or another order;
//! * in the end, recovery and status checks settle every record the bank settled, with the
//!   bank's status.
//!
//! `DIRECT_OTP_PROPTEST_CASES=N` runs N cases (the default keeps CI short); see
//! `docs/testing.md` for the long run.

use crate::invariants;

use std::collections::HashSet;

use direct_otp::sandbox::{BankPageResult, Endpoint, Fault, Sandbox, SandboxConfig};
use direct_otp::{
    Config, InputError, NextStep, Otp, Outgoing, Payment, PaymentSource, Policy, RequestKind,
    SendFailure, StartRequest, Status,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use time::{Duration, OffsetDateTime};

const KEY: &str = "sk_test_concurrency";
const WORKERS: usize = 3;
const ORDERS: usize = 2;
/// Longer than any transport timeout: a request in flight this long was abandoned.
const GRACE: std::time::Duration = std::time::Duration::from_secs(60);
/// The transport's deadline for one exchange.
const TIMEOUT: Duration = Duration::seconds(30);
const WRONG_OTP: &str = "00000000";

/// A database row: the stored JSON and its revision.
struct Slot {
    json: String,
    revision: u64,
    /// Set once the stored record is final: it must never change after.
    final_json: Option<String>,
}

/// What one worker holds between its steps.
#[derive(Default)]
struct Worker {
    /// Its copy of a record: the order it belongs to, and the copy.
    copy: Option<(usize, Payment)>,
    /// The request its copy issued, stored (write-ahead), maybe sent.
    issued: Option<Outgoing>,
    sent: bool,
    /// The bank's answer: `None` if the bank dropped it.
    answer: Option<Option<(u16, Vec<u8>)>>,
}

#[derive(Debug, Clone)]
enum Op {
    Start(usize),
    /// Worker `w` takes its natural next step: load a record (the `usize`), run the command
    /// (`Cmd`), send (with the fault), or hand the answer back.
    Progress(usize, usize, Cmd, Option<Fault>),
    Load(usize, usize),
    Resend(usize),
    SubmitRight(usize),
    SubmitWrong(usize),
    CheckStatus(usize),
    BankPage(usize),
    /// Send the stored request; the bank may suffer a fault first.
    Send(usize, Option<Fault>),
    Deliver(usize),
    Crash(usize),
    /// Hand one worker's answer to another worker's copy.
    Cross(usize, usize),
    Recover(usize, usize),
    Clock(i64),
    /// The cardholder finishes on the bank page of an order.
    Browser(usize, bool),
}

#[derive(Debug, Clone, Copy)]
enum Cmd {
    Resend,
    SubmitRight,
    SubmitWrong,
    CheckStatus,
    BankPage,
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WORKERS;
    let o = 0..ORDERS;
    let fault = || {
        prop_oneof![
            6 => Just(None),
            1 => Just(Some(Fault::DropResponse)),
            1 => Just(Some(Fault::DropRequest)),
            1 => Just(Some(Fault::InternalErrorAfterApply)),
            1 => Just(Some(Fault::Duplicate)),
        ]
    };
    let cmd = prop_oneof![
        5 => Just(Cmd::Resend),
        1 => Just(Cmd::SubmitRight),
        3 => Just(Cmd::SubmitWrong),
        1 => Just(Cmd::CheckStatus),
        1 => Just(Cmd::BankPage),
    ];
    prop_oneof![
        32 => (w.clone(), o.clone(), cmd, fault())
            .prop_map(|(w, o, c, f)| Op::Progress(w, o, c, f)),
        1 => (w.clone(), o.clone()).prop_map(|(w, o)| Op::Load(w, o)),
        2 => w.clone().prop_map(Op::Resend),
        2 => w.clone().prop_map(Op::SubmitRight),
        2 => w.clone().prop_map(Op::SubmitWrong),
        1 => w.clone().prop_map(Op::CheckStatus),
        1 => w.clone().prop_map(Op::BankPage),
        4 => (w.clone(), fault()).prop_map(|(w, f)| Op::Send(w, f)),
        4 => w.clone().prop_map(Op::Deliver),
        1 => w.clone().prop_map(Op::Crash),
        1 => (w.clone(), w.clone()).prop_map(|(a, b)| Op::Cross(a, b)),
        2 => (w, o.clone()).prop_map(|(w, o)| Op::Recover(w, o)),
        8 => (0i64..45).prop_map(Op::Clock),
        1 => (o, any::<bool>()).prop_map(|(o, s)| Op::Browser(o, s)),
    ]
}

struct World {
    config: Config,
    bank: Sandbox,
    policy: Policy,
    now: OffsetDateTime,
    slots: Vec<Slot>,
    workers: Vec<Worker>,
    /// Every token sent to the bank, to prove none is sent twice.
    sent: HashSet<String>,
    /// When each order's OTPs were sent (start, then resends), as the bank saw them.
    sends_at: Vec<Vec<OffsetDateTime>>,
    /// Each order's start request (it holds the card; the record never does).
    starts: Vec<StartRequest>,
    /// How many terminal outcomes each order's stored record reported.
    terminal: Vec<u32>,
}

impl World {
    fn new() -> World {
        let now = time::macros::datetime!(2026-11-25 10:00 UTC);
        // Low limits, so that random runs reach them.
        let bank = Sandbox::new(SandboxConfig::new(KEY).with_limits(3, 3));
        let config = Config::new(bank.base_url(), KEY).expect("config");
        // The client's limits are the bank's (its start answer does not state them).
        let mut policy = Policy::default();
        policy.max_sends = 3;
        policy.max_attempts = 3;
        let mut slots = Vec::new();
        let mut starts = Vec::new();
        for i in 0..ORDERS {
            let start = StartRequest::new(
                &format!("ord_conc_{i}"),
                "acme",
                &format!("cust_{i}"),
                PaymentSource::Token {
                    card_token: "tok_visa".into(),
                    cvv: None,
                },
            )
            .expect("ids")
            .with_policy(policy);
            let p = Payment::new(&start, 1, now);
            slots.push(Slot {
                json: serde_json::to_string(&p).expect("serializes"),
                revision: p.revision(),
                final_json: None,
            });
            starts.push(start);
        }
        World {
            config,
            bank,
            policy,
            now,
            slots,
            workers: (0..WORKERS).map(|_| Worker::default()).collect(),
            sent: HashSet::new(),
            sends_at: vec![Vec::new(); ORDERS],
            starts,
            terminal: vec![0; ORDERS],
        }
    }

    /// Starts every payment through worker 0, as the checkout's "Pay" would.
    fn start_all(&mut self) {
        for order in 0..ORDERS {
            self.step(&Op::Load(0, order));
            self.step(&Op::Start(0));
            self.step(&Op::Send(0, None));
            self.step(&Op::Deliver(0));
            assert!(
                self.load(order).challenge().is_some(),
                "order {order} started"
            );
        }
        self.workers[0] = Worker::default();
    }

    fn load(&self, order: usize) -> Payment {
        serde_json::from_str(&self.slots[order].json)
            .unwrap_or_else(|e| panic!("stored record {order} does not load: {e}"))
    }

    /// Stores `c` if the slot still holds `expected`: the compare-and-swap a database does.
    fn cas(&mut self, order: usize, expected: u64, c: &Payment) -> bool {
        let slot = &mut self.slots[order];
        if slot.revision != expected {
            return false;
        }
        assert!(
            c.revision() > expected,
            "a store always moves the revision up"
        );
        if let Some(f) = &slot.final_json {
            panic!("order {order}: a final record changed\nwas: {f}\nnow: {c:?}");
        }
        slot.json = serde_json::to_string(c).expect("serializes");
        slot.revision = c.revision();
        if c.is_final() {
            slot.final_json = Some(slot.json.clone());
        }
        true
    }

    /// A command on worker `w`'s copy, then the write-ahead: the copy's new state is stored
    /// before anything is sent; a worker whose store loses drops its copy and sends nothing.
    fn command(&mut self, w: usize, op: &Op) {
        let Some((order, mut c)) = self.workers[w].copy.take() else {
            return;
        };
        if self.workers[w].issued.is_some() {
            self.workers[w].copy = Some((order, c));
            return;
        }
        let loaded = c.revision();
        let (config, now) = (&self.config, self.now);
        let result = match op {
            Op::Start(_) => c.start(config, &self.starts[order], now).map(Some),
            Op::Resend(_) => c.resend(config, now).map(Some),
            Op::SubmitRight(_) | Op::SubmitWrong(_) => {
                let txn = c.challenge().map(|c| c.txn_id().to_owned());
                let right = txn
                    .and_then(|t| self.bank.current_otp(&t))
                    .map(str::to_owned);
                let otp = match (op, right) {
                    (Op::SubmitRight(_), Some(otp)) => otp,
                    _ => WRONG_OTP.to_owned(),
                };
                c.submit(config, &Otp::new(&otp).expect("otp"), now)
                    .map(Some)
            }
            Op::CheckStatus(_) => c.check_status(config, now).map(Some),
            _ => c.go_to_bank_page(now).map(|_| None),
        };
        match result {
            Err(_) => assert_eq!(c.revision(), loaded, "a refusal changes nothing"),
            Ok(out) if c.revision() == loaded => assert!(out.is_none(), "a request needs a change"),
            Ok(out) => {
                if !self.cas(order, loaded, &c) {
                    return; // someone else is on it: drop the copy, send nothing
                }
                self.workers[w].issued = out;
                self.workers[w].sent = false;
                self.workers[w].answer = None;
            }
        }
        self.workers[w].copy = Some((order, c));
    }

    fn send(&mut self, w: usize, fault: Option<Fault>) {
        let worker = &self.workers[w];
        let (Some((order, _)), Some(out), false) = (&worker.copy, &worker.issued, worker.sent)
        else {
            return;
        };
        let (order, out) = (*order, out.clone());
        // Send promptly or not at all: a write-ahead older than the grace less the timeout
        // may be recovered while the request is still on the wire.
        let since = worker.copy.as_ref().and_then(|(_, c)| c.in_flight_since());
        if since.is_none_or(|t| self.now - t > Duration::seconds(60) - TIMEOUT) {
            self.workers[w] = Worker::default();
            return;
        }
        assert!(
            self.sent.insert(out.token.to_string()),
            "request {} sent twice",
            out.token
        );
        // Write-ahead: what is sent is what is stored.
        let stored = self.load(order);
        assert_eq!(
            stored.in_flight(),
            Some(out.token),
            "sent without being stored"
        );
        if let Some(f) = fault {
            self.bank.inject(Endpoint::of(out.token.kind()), f);
        }
        let sends_before = self.bank_sends(order);
        let answer = self.bank.handle_request(&out.request, self.now);
        if self.bank_sends(order) > sends_before {
            self.sends_at[order].push(self.now);
        }
        let body = String::from_utf8_lossy(&answer.body);
        assert!(
            !body.contains("max_limit_exceeded"),
            "the bank refused a request for its limits: {body}"
        );
        let worker = &mut self.workers[w];
        worker.sent = true;
        worker.answer = Some(
            answer
                .is_delivered()
                .then_some((answer.status, answer.body)),
        );
    }

    fn bank_sends(&self, order: usize) -> u32 {
        self.bank
            .latest_transaction(&format!("ord_conc_{order}"))
            .map_or(0, |t| t.otp_sends)
    }

    /// Hands the answer (or the transport failure) back, then stores the result.
    fn deliver(&mut self, w: usize) {
        let worker = &mut self.workers[w];
        let (Some((order, mut c)), Some(out)) = (worker.copy.take(), worker.issued.take()) else {
            return;
        };
        let before = c.revision();
        let result = match (worker.sent, worker.answer.take()) {
            (false, _) => c.handle_send_failure(out.token, SendFailure::NotSent, self.now),
            (true, Some(Some((status, body)))) => {
                c.handle_response(out.token, status, &body, self.now)
            }
            (true, _) => c.handle_send_failure(out.token, SendFailure::MaybeSent, self.now),
        };
        let outcome =
            result.unwrap_or_else(|e| panic!("the copy that issued {} refused it: {e}", out.token));
        if self.cas(order, before, &c) {
            if outcome.is_terminal() {
                self.terminal[order] += 1;
            }
            self.workers[w].copy = Some((order, c));
        }
    }

    /// Worker `from`'s answer handed to worker `to`'s copy: never applied.
    fn cross(&mut self, from: usize, to: usize) {
        if from == to {
            return;
        }
        let (Some(out), Some(Some((status, body)))) =
            (&self.workers[from].issued, &self.workers[from].answer)
        else {
            return;
        };
        let (token, status, body) = (out.token, *status, body.clone());
        let Some((_, c)) = &mut self.workers[to].copy else {
            return;
        };
        if c.in_flight() == Some(token) {
            // A copy loaded while that very request was in flight: the answer is its own.
            return;
        }
        let before = c.clone();
        let got = c.handle_response(token, status, &body, self.now);
        assert!(
            matches!(
                got,
                Err(InputError::StaleToken { .. }
                    | InputError::NothingInFlight { .. }
                    | InputError::AlreadyFinal { .. }
                    | InputError::OtherRecord { .. }
                    | InputError::Foreign(_))
            ),
            "a crossed answer was applied: {got:?}"
        );
        assert_eq!(*c, before, "a crossed answer changed the copy");
    }

    fn recover(&mut self, w: usize, order: usize) {
        let mut c = self.load(order);
        let before = c.revision();
        if c.recover(GRACE, self.now).is_some() {
            assert!(c.in_flight().is_none());
            self.cas(order, before, &c);
        }
        self.workers[w] = Worker::default();
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Progress(w, order, cmd, fault) => {
                if let Some((_, c)) = &self.workers[*w].copy {
                    self.check_view(c);
                }
                let worker = &self.workers[*w];
                let next = match (&worker.copy, &worker.issued, worker.sent) {
                    (None, _, _) => Op::Load(*w, *order),
                    // What the page shows decides, as a UI would.
                    (Some((o, c)), None, _) => match c.next_step(self.now) {
                        NextStep::Start => Op::Start(*w),
                        NextStep::EnterOtp => match cmd {
                            Cmd::Resend => Op::Resend(*w),
                            Cmd::SubmitRight => Op::SubmitRight(*w),
                            Cmd::SubmitWrong => Op::SubmitWrong(*w),
                            Cmd::CheckStatus => Op::CheckStatus(*w),
                            Cmd::BankPage => Op::BankPage(*w),
                        },
                        NextStep::BankPage(_) => Op::BankPage(*w),
                        NextStep::AwaitBankPage if matches!(cmd, Cmd::SubmitRight) => {
                            Op::Browser(*o, true)
                        }
                        NextStep::AwaitBankPage if matches!(cmd, Cmd::SubmitWrong) => {
                            Op::Browser(*o, false)
                        }
                        // Another worker's request is in flight: recover it once abandoned.
                        NextStep::Wait(_) => Op::Recover(*w, *o),
                        NextStep::Finished(_) => Op::Load(*w, *order),
                        _ => Op::CheckStatus(*w),
                    },
                    (Some(_), Some(_), false) => Op::Send(*w, *fault),
                    (Some(_), Some(_), true) => Op::Deliver(*w),
                };
                self.step(&next);
                // A live worker sends right after its write-ahead.
                if matches!(
                    next,
                    Op::Resend(_) | Op::SubmitRight(_) | Op::SubmitWrong(_) | Op::CheckStatus(_)
                ) {
                    self.step(&Op::Send(*w, *fault));
                }
                return;
            }
            Op::Load(w, order) => {
                self.workers[*w] = Worker {
                    copy: Some((*order, self.load(*order))),
                    ..Worker::default()
                };
            }
            Op::Start(w)
            | Op::Resend(w)
            | Op::SubmitRight(w)
            | Op::SubmitWrong(w)
            | Op::CheckStatus(w)
            | Op::BankPage(w) => self.command(*w, op),
            Op::Send(w, fault) => self.send(*w, *fault),
            Op::Deliver(w) => self.deliver(*w),
            Op::Crash(w) => self.workers[*w] = Worker::default(),
            Op::Cross(a, b) => self.cross(*a, *b),
            Op::Recover(w, order) => self.recover(*w, *order),
            Op::Clock(s) => self.now += Duration::seconds(*s),
            Op::Browser(order, success) => {
                // Only a cardholder sent to the bank page finishes there.
                let c = self.load(*order);
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
        self.check_bank();
    }

    /// The view never offers an action the record would refuse.
    fn check_view(&self, c: &Payment) {
        let view = c.view(self.now);
        let otp = Otp::new(WRONG_OTP).expect("otp");
        let try_on = |f: &dyn Fn(&mut Payment) -> bool| f(&mut c.clone());
        if view.can_submit {
            assert!(
                try_on(&|p| p.submit(&self.config, &otp, self.now).is_ok()),
                "{view:?}"
            );
        }
        if view.can_resend {
            assert!(
                try_on(&|p| p.resend(&self.config, self.now).is_ok()),
                "{view:?}"
            );
        }
        let offered = match view.next.as_str() {
            "start" => try_on(&|p| {
                p.start(&self.config, &self.starts[0], self.now).is_ok()
                    || p.start(&self.config, &self.starts[1], self.now).is_ok()
            }),
            "check_status" | "expired" | "await_bank_page" => {
                try_on(&|p| p.check_status(&self.config, self.now).is_ok())
            }
            "bank_page" => try_on(&|p| p.go_to_bank_page(self.now).is_ok()),
            "enter_otp" => view.can_submit,
            _ => true,
        };
        assert!(
            offered,
            "the view offers {} but the record refuses it: {view:?}",
            view.next
        );
        assert_eq!(view.is_final, c.is_final());
        assert_eq!(view.bank_page_url.is_some(), view.next == "bank_page");
    }

    /// What the bank allows, from its own side.
    fn check_bank(&self) {
        let cfg = self.bank.config();
        for order in 0..ORDERS {
            let Some(txn) = self.bank.latest_transaction(&format!("ord_conc_{order}")) else {
                continue; // not started yet
            };
            assert!(txn.otp_sends <= cfg.max_sends, "{txn:?}");
            assert!(txn.attempts <= cfg.max_attempts, "{txn:?}");
            for pair in self.sends_at[order].windows(2) {
                assert!(
                    pair[1] - pair[0] >= self.policy.resend_cooldown,
                    "order {order}: two OTPs sent {} apart",
                    pair[1] - pair[0]
                );
            }
        }
    }

    /// After the storm: every record is recovered and checked until it settles or is open
    /// again; a settled record says what the bank says.
    fn settle(&mut self) {
        self.now += Duration::seconds(61);
        for order in 0..ORDERS {
            for _ in 0..4 {
                self.recover(0, order);
                let c = self.load(order);
                if c.is_final() {
                    break;
                }
                self.workers[0].copy = Some((order, c));
                self.command(0, &Op::CheckStatus(0));
                self.send(0, None);
                self.deliver(0);
            }
            let c = self.load(order);
            // An order never started is unknown to the bank (it creates orders on first use).
            let bank = self
                .bank
                .order_status(&format!("ord_conc_{order}"))
                .unwrap_or(Status::New);
            assert_eq!(
                self.terminal[order],
                u32::from(c.is_final()),
                "order {order}: terminal outcomes stored"
            );
            if c.is_final() {
                assert_eq!(c.status(), bank, "order {order}: stored vs bank");
            } else if bank.is_final() {
                panic!("order {order}: the bank settled {bank} but the record is {c:?}");
            }
            assert!(c.in_flight().is_none(), "order {order} left in flight");
        }
    }
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
fn copies_under_compare_and_swap_never_break_what_the_bank_allows() {
    let config = proptest_config(96);
    let cases = config.cases;
    let steps = std::sync::atomic::AtomicU64::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&prop::collection::vec(op(), 1..150), |ops| {
        let mut world = World::new();
        for op in &ops {
            world.step(op);
        }
        world.settle();
        steps.fetch_add(ops.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The figure docs/testing.md records for the long run.
    eprintln!("concurrency: {cases} cases, {} steps", steps.into_inner());
}

#[test]
fn the_loser_of_a_write_ahead_sends_nothing() {
    // Two tabs load the same record and both tap "Resend".
    let mut world = World::new();
    world.start_all();
    world.now += Duration::seconds(31);
    world.step(&Op::Load(0, 0));
    world.step(&Op::Load(1, 0));
    world.step(&Op::Resend(0));
    world.step(&Op::Resend(1));
    assert!(world.workers[0].issued.is_some(), "the first store wins");
    assert!(world.workers[1].copy.is_none() && world.workers[1].issued.is_none());
    world.step(&Op::Send(1, None));
    world.step(&Op::Send(0, None));
    world.step(&Op::Deliver(0));
    assert_eq!(world.bank.requests_to(Endpoint::Resend), 1);
    assert_eq!(world.load(0).challenge().map(|c| c.otp_sends()), Some(2));
}

#[test]
fn a_crashed_worker_is_recovered_and_reconciled() {
    let mut world = World::new();
    world.start_all();
    world.step(&Op::Load(0, 0));
    world.step(&Op::SubmitRight(0));
    world.step(&Op::Send(0, None));
    world.step(&Op::Crash(0)); // dies with the answer in hand
    assert_eq!(
        world.load(0).in_flight().map(|t| t.kind()),
        Some(RequestKind::Submit)
    );
    world.step(&Op::Recover(1, 0));
    assert!(world.load(0).in_flight().is_some(), "within the grace");
    world.step(&Op::Clock(61));
    world.step(&Op::Recover(1, 0));
    assert!(world.load(0).in_flight().is_none());
    world.settle();
    assert_eq!(world.load(0).status(), Status::Charged);
}
