//! The whole payment as one record, against the in-process sandbox: every stage, the view
//! and its codes, persistence, and exactly one terminal outcome.

use direct_otp::sandbox::{BankPageResult, CardFlow, Endpoint, Fault, Sandbox, SandboxConfig};
use direct_otp::{
    Config, InputError, NextStep, Otp, Outcome, Payment, PaymentSource, Policy, Refusal, Reply,
    SendFailure, StartRequest, Status, Uncertainty,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};

const KEY: &str = "sk_test_payment";
const T0: OffsetDateTime = time::macros::datetime!(2026-11-25 10:00 UTC);

fn secs(s: i64) -> OffsetDateTime {
    T0 + Duration::seconds(s)
}

struct Bank {
    sandbox: Sandbox,
    config: Config,
}

impl Bank {
    fn new() -> Bank {
        let sandbox =
            Sandbox::new(SandboxConfig::new(KEY).with_card("tok_3ds", CardFlow::ThreeDsFailover));
        let config = Config::new(sandbox.base_url(), KEY).unwrap();
        Bank { sandbox, config }
    }

    /// Sends `out` and hands the reply back, as any transport would.
    fn exchange(
        &mut self,
        p: &mut Payment,
        out: direct_otp::Outgoing,
        now: OffsetDateTime,
    ) -> Outcome {
        let answer = self.sandbox.handle_request(&out.request, now);
        let reply = if answer.is_delivered() {
            Reply::Answer {
                status: answer.status,
                body: answer.body,
            }
        } else {
            Reply::Failed(SendFailure::MaybeSent)
        };
        p.handle(out.token, reply, now).unwrap()
    }

    fn otp(&self, p: &Payment) -> Otp {
        let txn = p.challenge().unwrap().txn_id();
        Otp::new(self.sandbox.current_otp(txn).unwrap()).unwrap()
    }
}

fn start_request(order: &str, card: &str) -> StartRequest {
    StartRequest::new(
        order,
        "acme",
        "cust_1",
        PaymentSource::Token {
            card_token: card.into(),
            cvv: None,
        },
    )
    .unwrap()
}

/// A copy as loaded back from storage: every state round-trips exactly.
fn stored(p: &Payment) -> Payment {
    let json = serde_json::to_string(p).unwrap();
    for secret in [KEY, "tok_visa", "Basic"] {
        assert!(!json.contains(secret), "{json}");
    }
    let back: Payment = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, p);
    back
}

#[test]
fn direct_otp_from_before_start_to_paid() {
    let mut bank = Bank::new();
    let start = start_request("ord_pay_1", "tok_visa");
    let mut p = Payment::new(&start, 1, T0);
    assert_eq!(p.key(), "ord_pay_1/1");
    let view = p.view(T0);
    assert_eq!((view.next.as_str(), view.status.as_str()), ("start", "NEW"));
    assert!(!view.can_submit && !view.is_final && !view.bank_page_available);
    assert_eq!(Payment::key_for("ord_pay_1", 1), p.key());
    assert_eq!(p.check_status(&bank.config, T0), Err(Refusal::NotStarted));
    assert_eq!(
        p.submit(&bank.config, &Otp::new("1234").unwrap(), T0),
        Err(Refusal::NotStarted)
    );

    let out = p.start(&bank.config, &start, T0).unwrap();
    assert_eq!(p.revision(), 2);
    assert_eq!(p.in_flight(), Some(out.token));
    assert_eq!(p.in_flight_since(), Some(T0));
    assert!(matches!(p.next_step(T0), NextStep::Wait(t) if t == out.token));
    assert_eq!(
        p.start(&bank.config, &start, T0),
        Err(Refusal::InFlight(out.token))
    );
    let p2 = stored(&p);
    assert_eq!(p2.in_flight(), Some(out.token));

    let outcome = bank.exchange(&mut p, out, secs(1));
    assert_eq!(outcome.code(), "otp_sent");
    let view = p.view(secs(1));
    assert_eq!(view.next, "enter_otp");
    assert!(view.can_submit && !view.can_resend);
    assert_eq!(view.resend_in_seconds, Some(30));
    assert_eq!((view.sends_left, view.attempts_left), (Some(3), Some(4)));
    assert_eq!(
        view.card.as_ref().and_then(|c| c.last_four.as_deref()),
        Some("1111")
    );
    assert_eq!(view.expires_in_seconds, Some(600));
    assert!(
        view.bank_page_available,
        "the OTP page offers the fallback_url"
    );
    assert_eq!(view.bank_page_url, None, "not the next step");
    assert_eq!(
        p.start(&bank.config, &start, secs(1)),
        Err(Refusal::AlreadyStarted)
    );
    let challenge = p.challenge().unwrap();
    assert_eq!(challenge.record_id(), p.record_id(), "one record id");
    assert_eq!(challenge.revision(), p.revision(), "one revision");
    stored(&p);

    let out = p
        .submit(&bank.config, &Otp::new("00000000").unwrap(), secs(5))
        .unwrap();
    assert_eq!(out.token.record(), p.record_id());
    let outcome = bank.exchange(&mut p, out, secs(6));
    assert_eq!(outcome, Outcome::WrongOtp { attempts_left: 3 });
    assert_eq!(outcome.to_string(), "wrong code, 3 tries left");
    let otp = bank.otp(&p);
    let out = p.submit(&bank.config, &otp, secs(7)).unwrap();
    let token = out.token;
    let outcome = bank.exchange(&mut p, out, secs(8));
    assert_eq!(outcome, Outcome::Approved(Status::Charged));
    assert!(outcome.is_terminal());
    let view = p.view(secs(9));
    assert!(view.is_final && view.paid && !view.bank_page_available);
    assert_eq!(
        (view.next.as_str(), view.message.as_str()),
        ("finished", "payment complete")
    );
    // Nothing moves a final record, and nothing reports a second approval.
    let before = p.clone();
    assert_eq!(
        p.check_status(&bank.config, secs(10)),
        Err(Refusal::AlreadyFinal(Status::Charged))
    );
    assert_eq!(
        p.handle_response(token, 200, b"{}", secs(10)),
        Err(InputError::AlreadyFinal { got: token })
    );
    assert_eq!(p, before);
    stored(&p);
}

#[test]
fn three_ds_goes_to_the_bank_page_and_settles_by_the_order_status() {
    let mut bank = Bank::new();
    let start = start_request("ord_pay_3ds", "tok_3ds");
    let mut p = Payment::new(&start, 1, T0);
    let out = p.start(&bank.config, &start, T0).unwrap();
    assert_eq!(bank.exchange(&mut p, out, T0), Outcome::BankPageRequired);
    let NextStep::BankPage(url) = p.next_step(T0) else {
        panic!("{:?}", p.next_step(T0))
    };
    assert_eq!(p.view(T0).bank_page_url.as_deref(), Some(url.as_str()));
    assert!(
        p.view(T0).bank_page_available,
        "the 3DS page is the next step"
    );
    assert_eq!(Payment::key_for("ord_pay_3ds", 1), p.key());
    assert_eq!(
        p.submit(&bank.config, &Otp::new("1234").unwrap(), T0),
        Err(Refusal::OnBankPage)
    );
    assert_eq!(p.go_to_bank_page(secs(1)).unwrap(), url);
    let revision = p.revision();
    assert_eq!(p.go_to_bank_page(secs(2)).unwrap(), url, "a reload");
    assert_eq!(p.revision(), revision);
    assert_eq!(p.next_step(secs(2)), NextStep::AwaitBankPage);
    stored(&p);
    // The cardholder is not back yet: the status says pending.
    let out = p.check_status(&bank.config, secs(3)).unwrap();
    assert_eq!(
        bank.exchange(&mut p, out, secs(3)),
        Outcome::Pending(Status::PendingVbv)
    );
    let txn = bank.sandbox.latest_transaction("ord_pay_3ds").unwrap();
    bank.sandbox
        .complete_bank_page(&txn.txn_uuid, BankPageResult::Success)
        .unwrap();
    let out = p.check_status(&bank.config, secs(60)).unwrap();
    assert_eq!(
        bank.exchange(&mut p, out, secs(60)),
        Outcome::Approved(Status::Charged)
    );
    assert!(p.view(secs(61)).paid);
    stored(&p);
}

#[test]
fn a_lost_start_is_settled_by_the_order_status_never_started_again() {
    let mut bank = Bank::new();
    let start = start_request("ord_pay_lost", "tok_visa");
    let mut p = Payment::new(&start, 1, T0);
    bank.sandbox.inject(Endpoint::Start, Fault::DropResponse);
    let out = p.start(&bank.config, &start, T0).unwrap();
    let outcome = bank.exchange(&mut p, out, T0);
    assert_eq!(outcome, Outcome::CheckStatus(Uncertainty::MaybeSent));
    assert_eq!(p.next_step(T0), NextStep::CheckStatus);
    assert_eq!(p.view(T0).next, "check_status");
    assert_eq!(
        p.start(&bank.config, &start, T0),
        Err(Refusal::AlreadyStarted)
    );
    assert_eq!(p.resend(&bank.config, T0), Err(Refusal::CheckStatus));
    let out = p.check_status(&bank.config, secs(1)).unwrap();
    assert_eq!(
        bank.exchange(&mut p, out, secs(1)),
        Outcome::Pending(Status::PendingVbv)
    );
    assert_eq!(p.status(), Status::PendingVbv);
    assert_eq!(
        bank.sandbox.requests_to(Endpoint::Start),
        1,
        "never started twice"
    );
    stored(&p);
}

#[test]
fn a_start_that_surely_did_not_leave_or_was_refused_may_start_again() {
    let mut bank = Bank::new();
    let start = start_request("ord_pay_again", "tok_visa");
    let mut p = Payment::new(&start, 1, T0);
    let out = p.start(&bank.config, &start, T0).unwrap();
    let outcome = p
        .handle(out.token, Reply::Failed(SendFailure::NotSent), T0)
        .unwrap();
    assert_eq!(outcome, Outcome::NotDelivered);
    assert_eq!(p.next_step(T0), NextStep::Start);

    // A wrong key: the bank refuses, nothing happened.
    let wrong = Config::new(bank.sandbox.base_url(), "sk_wrong").unwrap();
    let out = p.start(&wrong, &start, secs(1)).unwrap();
    let outcome = bank.exchange(&mut p, out, secs(1));
    assert_eq!(outcome.code(), "unauthorized", "{outcome:?}");
    assert_eq!(p.next_step(secs(1)), NextStep::Start);

    let out = p.start(&bank.config, &start, secs(2)).unwrap();
    assert_eq!(bank.exchange(&mut p, out, secs(2)).code(), "otp_sent");
    // Another order's start request is refused.
    let other = start_request("ord_other", "tok_visa");
    let mut q = Payment::new(&start, 2, T0);
    assert_eq!(q.start(&bank.config, &other, T0), Err(Refusal::OtherOrder));
}

#[test]
fn a_start_left_in_flight_is_recovered_after_the_grace() {
    let bank = Bank::new();
    let start = start_request("ord_pay_dead", "tok_visa");
    let mut p = Payment::new(&start, 1, T0);
    p.start(&bank.config, &start, T0).unwrap();
    let grace = std::time::Duration::from_secs(60);
    let mut later = stored(&p);
    assert_eq!(later.recover(grace, secs(59)), None);
    assert_eq!(
        later.recover(grace, secs(60)),
        Some(Outcome::CheckStatus(Uncertainty::MaybeSent))
    );
    assert_eq!(later.next_step(secs(60)), NextStep::CheckStatus);
    assert_eq!(later.revision(), p.revision() + 1);
}

#[test]
fn a_loaded_payment_must_be_one_the_library_could_have_built() {
    let mut bank = Bank::new();
    let start = start_request("ord_pay_load", "tok_visa");
    let mut p = Payment::new(&start, 1, T0);
    let out = p.start(&bank.config, &start, T0).unwrap();
    let starting = serde_json::to_value(&p).unwrap();
    bank.exchange(&mut p, out, T0);
    let open = serde_json::to_value(&p).unwrap();
    assert_eq!(open["format"], json!(2));
    let cases = [
        (
            &starting,
            "/revision",
            json!(7),
            "not issued by this record",
        ),
        (&starting, "/revision", json!(0), "revision is 0"),
        (&open, "/revision", json!(99), "not this payment's"),
        (
            &open,
            "/record",
            json!("00000000deadbeef"),
            "not this payment's",
        ),
        (&open, "/order_id", json!("ord_other"), "another order"),
        (&open, "/format", json!(3), "format version 3"),
    ];
    for (base, pointer, value, rule) in cases {
        let mut v = base.clone();
        *v.pointer_mut(pointer).unwrap() = value.clone();
        let err = serde_json::from_value::<Payment>(v)
            .unwrap_err()
            .to_string();
        assert!(err.contains(rule), "{pointer} = {value}: {err}");
    }
    let mut fin = json!({"stage": "final", "status": "PENDING_VBV"});
    let mut v = starting.clone();
    std::mem::swap(&mut v["stage"], &mut fin);
    let err = serde_json::from_value::<Payment>(v)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not final"), "{err}");
}

#[test]
fn refusals_carry_codes_http_statuses_and_retry_after() {
    let mut bank = Bank::new();
    let start = start_request("ord_pay_codes", "tok_visa");
    let policy = Policy::default();
    let mut p = Payment::new(&start.clone().with_policy(policy), 1, T0);
    let out = p.start(&bank.config, &start, T0).unwrap();
    bank.exchange(&mut p, out, T0);
    let refusal = p.resend(&bank.config, secs(10)).unwrap_err();
    assert_eq!(refusal.code(), "cooldown");
    assert_eq!(refusal.http_status(), 429);
    assert_eq!(refusal.retry_after(secs(10)), Some(20));
    assert_eq!(p.view(secs(10)).resend_in_seconds, Some(20));
    let out = p
        .submit(&bank.config, &Otp::new("1234").unwrap(), secs(11))
        .unwrap();
    let busy = p.resend(&bank.config, secs(12)).unwrap_err();
    assert_eq!((busy.code(), busy.http_status()), ("in_flight", 409));
    assert_eq!(p.view(secs(12)).next, "wait");
    let _ = out;
}

#[test]
fn answers_about_another_order_are_refused_at_every_stage() {
    let mut bank = Bank::new();
    let start = start_request("ord_pay_foreign", "tok_3ds");
    let mut p = Payment::new(&start, 1, T0);
    let out = p.start(&bank.config, &start, T0).unwrap();
    let before = p.clone();
    let other = br#"{"order_id":"ord_other","status":"CHARGED"}"#;
    assert!(matches!(
        p.handle_response(out.token, 200, other, T0),
        Err(InputError::Foreign(_))
    ));
    assert_eq!(p, before, "a foreign start answer changes nothing");
    bank.exchange(&mut p, out, T0);
    let out = p.check_status(&bank.config, secs(1)).unwrap();
    let before = p.clone();
    assert!(matches!(
        p.handle_response(out.token, 200, other, secs(1)),
        Err(InputError::Foreign(_))
    ));
    assert_eq!(p, before, "a foreign status answer changes nothing");
    assert!(!p.is_final());
}

#[test]
fn a_lost_start_for_an_order_the_bank_does_not_know_may_start_again() {
    let mut bank = Bank::new();
    let start = start_request("ord_pay_never", "tok_visa");
    let mut p = Payment::new(&start, 1, T0);
    // The request never reached the bank.
    bank.sandbox.inject(Endpoint::Start, Fault::DropRequest);
    let out = p.start(&bank.config, &start, T0).unwrap();
    assert_eq!(
        bank.exchange(&mut p, out, T0),
        Outcome::CheckStatus(Uncertainty::MaybeSent)
    );
    let out = p.check_status(&bank.config, secs(1)).unwrap();
    assert_eq!(bank.exchange(&mut p, out, secs(1)), Outcome::NotDelivered);
    assert_eq!(p.next_step(secs(1)), NextStep::Start);
    let out = p.start(&bank.config, &start, secs(2)).unwrap();
    assert_eq!(bank.exchange(&mut p, out, secs(2)).code(), "otp_sent");
    assert_eq!(bank.sandbox.requests_to(Endpoint::Start), 2);
}
