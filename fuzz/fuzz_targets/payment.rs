//! Arbitrary operation sequences on one stored `Payment` (the whole record, from before the
//! start until settled), through the public API only: commands (start, resend, submit,
//! status check, bank page), answers (the fixtures, fixtures with a field replaced by an
//! arbitrary value, raw bytes) under any HTTP status to the token in flight, to stale tokens
//! and to forged ones, send failures (`NotSent`/`MaybeSent`), settlement hints (a verified
//! return URL and a webhook, for this order or another, with any status), timers, recovery
//! after a grace, clock moves forwards and backwards, and restores from the stored form.
//!
//! Must hold after every step: no panic; the record serializes and loads back equal (every
//! record written loads again); a refused input (an answer for another token, or one that
//! names another order or transaction, `InputError::Foreign`) or a refused command changes
//! nothing; a final status is one that an answer or a hint said (nothing is reported that
//! the bank did not say).
#![no_main]

use arbitrary::Arbitrary;
use direct_otp::{
    Config, InputError, Otp, Payment, PaymentSource, SendFailure, Settlement, StartRequest, Token,
    VerifiedReturn, WebhookEvent,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use time::OffsetDateTime;

use direct_otp_fuzz::invariants::{at_ms, ms_of, Secrets};
use direct_otp_fuzz::{round_trip, says, Body, Http, FIXTURES, KEY, OTP, T0_MS};

/// The fixtures' orders: the Direct OTP start and answers name the first, the 3DS failover
/// start the second.
const ORDERS: [&str; 2] = ["ord_dotp_1001", "ord_dotp_1002"];

/// Statuses a settlement hint may carry: every known one, and odd ones.
const HINT_STATUSES: [&str; 14] = [
    "CHARGED",
    "AUTHORIZED",
    "AUTHENTICATION_FAILED",
    "AUTHORIZATION_FAILED",
    "JUSPAY_DECLINED",
    "AUTO_REFUNDED",
    "PENDING_VBV",
    "AUTHORIZING",
    "VBV_SUCCESSFUL",
    "NEW",
    "STARTED",
    "charged",
    "",
    "SOMETHING_NEW",
];

const EVENTS: [&str; 5] = [
    "ORDER_SUCCEEDED",
    "ORDER_FAILED",
    "TXN_CREATED",
    "ORDER_REFUNDED",
    "SOMETHING_ELSE",
];

/// A settlement hint, built as the verifiers would give it.
#[derive(Debug, Arbitrary)]
struct Hint {
    other_order: bool,
    status: u8,
    /// A webhook's event id (duplicates are likely: the record dedupes by it).
    id: u8,
    event: u8,
    amount: Option<u32>,
    currency: bool,
    txn: Option<u8>,
}

impl Hint {
    fn status(&self) -> &'static str {
        HINT_STATUSES[usize::from(self.status) % HINT_STATUSES.len()]
    }

    fn order<'a>(&self, order: &'a str) -> &'a str {
        if self.other_order {
            "ord_other"
        } else {
            order
        }
    }

    /// A verified return, as `ReturnParams::verify` gives it (it has no public constructor
    /// but its stored form, which must keep reading this).
    fn verified_return(&self, order: &str) -> VerifiedReturn {
        let v = json!({
            "order_id": self.order(order),
            "status": self.status(),
            "status_id": self.id,
            "params": [["order_id", self.order(order)], ["status", self.status()]],
        });
        serde_json::from_value(v).expect("a VerifiedReturn reads from its stored form")
    }

    /// A webhook, as `WebhookEvent::parse` reads it (`None`: no status, which it refuses).
    fn webhook(&self, order: &str) -> Option<WebhookEvent> {
        if self.status().is_empty() {
            return None;
        }
        let mut content = json!({"order_id": self.order(order), "status": self.status()});
        if let Some(amount) = self.amount {
            content["amount"] = json!(f64::from(amount) / 100.0);
        }
        if self.currency {
            content["currency"] = json!("INR");
        }
        if let Some(t) = self.txn {
            content["txn_id"] = json!(format!("txn_{t}"));
        }
        let body = json!({
            "id": format!("evt_{}", self.id),
            "event_name": EVENTS[usize::from(self.event) % EVENTS.len()],
            "date_created": "2026-11-25T10:00:00Z",
            "content": {"order": content},
        });
        Some(WebhookEvent::parse(body.to_string().as_bytes()).expect("a well-formed webhook"))
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    Start,
    Resend,
    Submit,
    CheckStatus,
    BankPage,
    /// An answer to the token in flight.
    Answer(Http, Body),
    /// An answer to a token issued earlier in the run (stale, or still in flight).
    AnswerIssued(u8, Http, Body),
    /// An answer to a token this record never issued.
    AnswerForged(u64, Http, Body),
    Fail(bool),
    FailIssued(u8, bool),
    ReturnUrl(Hint),
    Webhook(Hint),
    Recover(u16),
    TimerAtDeadline,
    Timer,
    Advance(i32),
    Jump(i64),
    Restore,
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// Which fixture order the payment is for (Direct OTP, or 3DS failover).
    order: bool,
    ops: Vec<Op>,
}

/// What the inputs so far have said about this payment's order: the final statuses of
/// the answers and hints that were applied. An answer whose top-level `order_id` names
/// another order says nothing about this one (the record must refuse it).
struct Said {
    order: &'static str,
    statuses: Vec<String>,
}

impl Said {
    fn answer(&mut self, body: &[u8]) {
        // As the library reads it: a non-empty string names an order; an empty one, or
        // none, names none (a number, which it reads as its text, is left alone here).
        let other_order = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("order_id").and_then(Value::as_str).map(str::to_owned))
            .is_some_and(|o| !o.is_empty() && o != self.order);
        if other_order {
            return;
        }
        for status in [
            "CHARGED",
            "AUTHORIZED",
            "AUTHENTICATION_FAILED",
            "AUTHORIZATION_FAILED",
            "JUSPAY_DECLINED",
            "AUTO_REFUNDED",
        ] {
            if says(body, status) {
                self.statuses.push(status.to_owned());
            }
        }
    }

    fn hint(&mut self, hint: &Hint) {
        if !hint.other_order {
            self.statuses.push(hint.status().to_owned());
        }
    }

    fn said(&self, status: &str) -> bool {
        self.statuses.iter().any(|s| s == status)
    }
}

fuzz_target!(|input: Input| {
    let config = Config::sandbox(KEY).expect("valid config");
    let secrets = Secrets::default().with_key(KEY, &config).with_number(OTP);
    let otp = Otp::new(OTP).expect("valid OTP");
    let order = ORDERS[usize::from(input.order)];
    let start = StartRequest::new(
        order,
        "acme",
        "customer_1",
        PaymentSource::Token {
            card_token: "tok_1".into(),
            cvv: None,
        },
    )
    .expect("valid ids");
    let mut now = at_ms(T0_MS);
    let mut p = Payment::new(&start, 1, now);
    let mut issued: Vec<Token> = Vec::new();
    let mut said = Said {
        order,
        statuses: Vec::new(),
    };

    for (i, op) in input.ops.iter().enumerate() {
        let context = format!("step {i}: {op:?}");
        let before = p.clone();
        // A command: accepted (its token is now in flight) or refused (nothing changed).
        let mut command = |p: &mut Payment, r: Result<direct_otp::Outgoing, _>| match r {
            Ok(out) => {
                assert_eq!(p.in_flight(), Some(out.token), "{context}: not in flight");
                issued.push(out.token);
                secrets.check("request", &format!("{:?}", out.request));
            }
            Err(e) => {
                assert_eq!(
                    *p, before,
                    "{context}: a refused command changed the record"
                );
                secrets.check("refusal", &format!("{e} {e:?}"));
            }
        };
        match op {
            Op::Start => {
                let r = p.start(&config, &start, now);
                command(&mut p, r);
            }
            Op::Resend => {
                let r = p.resend(&config, now);
                command(&mut p, r);
            }
            Op::Submit => {
                let r = p.submit(&config, &otp, now);
                command(&mut p, r);
            }
            Op::CheckStatus => {
                let r = p.check_status(&config, now);
                command(&mut p, r);
            }
            Op::BankPage => {
                if p.go_to_bank_page(now).is_err() {
                    assert_eq!(p, before, "{context}: a refused command changed the record");
                }
            }
            Op::Answer(http, body) => {
                if let Some(t) = p.in_flight() {
                    answer(
                        &mut p,
                        &before,
                        t,
                        http.code(),
                        &body.bytes(&FIXTURES),
                        now,
                        &mut said,
                        &context,
                    );
                }
            }
            Op::AnswerIssued(n, http, body) => {
                if !issued.is_empty() {
                    let t = issued[usize::from(*n) % issued.len()];
                    answer(
                        &mut p,
                        &before,
                        t,
                        http.code(),
                        &body.bytes(&FIXTURES),
                        now,
                        &mut said,
                        &context,
                    );
                }
            }
            Op::AnswerForged(n, http, body) => {
                let t = direct_otp_fuzz::invariants::forged_token(Some(p.record_id()), *n);
                // Never issued (its nonce is made up): always refused, and nothing changes.
                let r = p.handle_response(t, http.code(), &body.bytes(&FIXTURES), now);
                assert!(r.is_err(), "{context}: a forged token was accepted: {r:?}");
                assert_eq!(p, before, "{context}: a refused answer changed the record");
            }
            Op::Fail(maybe) => {
                if let Some(t) = p.in_flight() {
                    p.handle_send_failure(t, failure(*maybe), now)
                        .unwrap_or_else(|e| {
                            panic!("{context}: the token in flight was refused: {e}")
                        });
                }
            }
            Op::FailIssued(n, maybe) => {
                if !issued.is_empty() {
                    let t = issued[usize::from(*n) % issued.len()];
                    if p.handle_send_failure(t, failure(*maybe), now).is_err() {
                        assert_eq!(p, before, "{context}: a refused failure changed the record");
                    }
                }
            }
            Op::ReturnUrl(hint) => {
                let r = Settlement::ReturnUrl(hint.verified_return(order));
                settle(&mut p, &before, r, hint, now, &mut said, &context);
            }
            Op::Webhook(hint) => {
                if let Some(e) = hint.webhook(order) {
                    settle(
                        &mut p,
                        &before,
                        Settlement::Webhook(e),
                        hint,
                        now,
                        &mut said,
                        &context,
                    );
                }
            }
            Op::Recover(grace_s) => {
                let grace = std::time::Duration::from_secs(u64::from(*grace_s));
                if p.recover(grace, now).is_none() {
                    assert_eq!(
                        p, before,
                        "{context}: recover did nothing but changed the record"
                    );
                }
            }
            Op::TimerAtDeadline => {
                if let Some(t) = p.poll_timeout() {
                    now = t;
                    assert!(
                        p.handle_timeout(now).is_some(),
                        "{context}: the deadline did not fire"
                    );
                }
            }
            Op::Timer => {
                if p.handle_timeout(now).is_none() {
                    assert_eq!(p, before, "{context}: a spurious timer changed the record");
                }
            }
            Op::Advance(ms) => now = at_ms(ms_of(now).saturating_add(i64::from(*ms))),
            Op::Jump(ms) => now = at_ms(*ms),
            Op::Restore => p = round_trip(&p, &context),
        }

        // Every record written loads again, equal.
        round_trip(&p, &context);
        let status = p.status();
        if status.is_final() {
            assert!(
                said.said(status.as_str()),
                "{context}: final {status}, which no answer or hint said"
            );
        }
        let _ = p.next_step(now);
        let view = p.view(now);
        secrets.check("view", &format!("{view:?}"));
        secrets.check("record", &serde_json::to_string(&p).expect("serializes"));
        secrets.check("debug", &format!("{p:?}"));
    }
});

/// An answer to `token`: applied (an outcome), or refused with a typed error that changed
/// nothing. The token in flight may only be refused because the answer names another
/// order or transaction.
#[allow(clippy::too_many_arguments)]
fn answer(
    p: &mut Payment,
    before: &Payment,
    token: Token,
    http: u16,
    body: &[u8],
    now: OffsetDateTime,
    said: &mut Said,
    context: &str,
) {
    let in_flight = p.in_flight() == Some(token);
    match p.handle_response(token, http, body, now) {
        Ok(_) => said.answer(body),
        Err(InputError::Foreign(_)) => {
            assert_eq!(p, before, "{context}: a foreign answer changed the record");
        }
        Err(e) => {
            assert!(
                !in_flight,
                "{context}: the token in flight was refused: {e}"
            );
            assert_eq!(p, before, "{context}: a refused answer changed the record");
        }
    }
}

/// A settlement hint: applied, or refused with a typed error that changed nothing.
fn settle(
    p: &mut Payment,
    before: &Payment,
    hint: Settlement,
    from: &Hint,
    now: OffsetDateTime,
    said: &mut Said,
    context: &str,
) {
    match p.settle(hint, now) {
        Ok(_) => said.hint(from),
        Err(_) => assert_eq!(p, before, "{context}: a refused hint changed the record"),
    }
}

fn failure(maybe: bool) -> SendFailure {
    if maybe {
        SendFailure::MaybeSent
    } else {
        SendFailure::NotSent
    }
}
