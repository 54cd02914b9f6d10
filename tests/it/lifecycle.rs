//! Whole lifecycles on a fake clock, with answers from the fixtures.

use crate::common;
use crate::invariants;

use common::*;
use direct_otp::{
    Challenge, InputError, Malformed, NextStep, OrderStatusCheck, Otp, Outcome, Policy, Refusal,
    ResponseError, SendFailure, StartError, Started, Status, TimerEvent, Token, Uncertainty,
};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

/// A clock the test moves by hand.
struct Clock(OffsetDateTime);

impl Clock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
    fn advance(&mut self, d: Duration) -> OffsetDateTime {
        self.0 += d;
        self.0
    }
    /// Jumps to the challenge's next deadline and fires it, as a caller's event loop would.
    fn run_timer(&mut self, c: &mut Challenge) -> Option<TimerEvent> {
        let at = c.poll_timeout()?;
        self.0 = self.0.max(at);
        c.handle_timeout(self.0)
    }
}

fn resend_answer(sent: u32, limit: u32) -> Vec<u8> {
    let mut body = fixture_json("resend_counters");
    let params = &mut body["payment"]["authentication"]["params"];
    params["times_otp_sent"] = json!(sent);
    params["max_otp_send_limit"] = json!(limit);
    body.to_string().into_bytes()
}

fn wrong_otp_answer(attempt: u32, max: u32) -> Vec<u8> {
    let mut body = fixture_json("submit_pending_wrong_otp");
    let params = &mut body["payment"]["authentication"]["params"];
    params["current_attempt"] = json!(attempt);
    params["max_attempts"] = json!(max);
    params["submit_otp_allowed"] = json!(attempt < max);
    body.to_string().into_bytes()
}

fn otp(s: &str) -> Otp {
    Otp::new(s).unwrap()
}

#[test]
fn resend_until_the_limit_then_fall_back_to_the_bank_page() {
    let mut clock = Clock(T0);
    let mut c = challenge();
    assert_eq!(c.sends_left(), 3);

    for sent in 2..=4 {
        assert_eq!(clock.run_timer(&mut c), Some(TimerEvent::ResendAvailable));
        let out = c.resend(&config(), clock.now()).unwrap();
        clock.advance(Duration::milliseconds(300));
        let outcome = c
            .handle_response(out.token, 200, &resend_answer(sent, 4), clock.now())
            .unwrap();
        assert_eq!(
            outcome,
            Outcome::OtpSent {
                sends_left: 4 - sent
            }
        );
    }
    assert_eq!(
        c.may_resend(clock.advance(Duration::minutes(1))),
        Err(Refusal::SendLimitReached { limit: 4 })
    );
    // No cooldown timer is left; the next deadline is the expiry.
    assert_eq!(c.poll_timeout(), Some(c.expires_at()));
    assert_eq!(c.resend_available_at(), None);

    // The cardholder gives up on SMS and takes the bank page.
    let url = c.go_to_bank_page(clock.now()).unwrap().to_owned();
    assert!(url.starts_with("https://sandbox.juspay.in/v2/pay/start/"));
    assert_eq!(c.next_step(clock.now()), NextStep::AwaitBankPage);
    assert_eq!(c.may_submit(clock.now()), Err(Refusal::OnBankPage));
    assert_eq!(c.poll_timeout(), None, "no timers while on the bank page");

    // Back from the bank page: the order status is still pending, then charged.
    let t = c
        .check_status(&config(), clock.advance(Duration::seconds(20)))
        .unwrap()
        .token;
    let pending = fixture("order_status_pending");
    assert_eq!(
        c.handle_response(t, 200, &pending, clock.now()),
        Ok(Outcome::Pending(Status::PendingVbv))
    );
    assert_eq!(c.next_step(clock.now()), NextStep::AwaitBankPage);
    let t = c
        .check_status(&config(), clock.advance(Duration::seconds(20)))
        .unwrap()
        .token;
    let charged = fixture("order_status_charged");
    assert_eq!(
        c.handle_response(t, 200, &charged, clock.now()),
        Ok(Outcome::Approved(Status::Charged))
    );
    assert!(c.is_final());
}

#[test]
fn server_refuses_a_resend_at_its_own_limit() {
    let mut clock = Clock(T0);
    let mut c = challenge();
    clock.run_timer(&mut c);
    let out = c.resend(&config(), clock.now()).unwrap();
    let outcome = c
        .handle_response(
            out.token,
            400,
            &fixture("resend_limit_exceeded"),
            clock.now(),
        )
        .unwrap();
    assert_eq!(outcome, Outcome::SendLimitReached);
    assert_eq!(c.sends_left(), 0);
    assert!(c.may_submit(clock.now()).is_ok());
}

#[test]
fn wrong_otp_then_right_otp() {
    let mut clock = Clock(T0);
    let mut c = challenge();
    let out = c
        .submit(
            &config(),
            &otp("111111"),
            clock.advance(Duration::seconds(20)),
        )
        .unwrap();
    let outcome = c
        .handle_response(out.token, 200, &wrong_otp_answer(1, 4), clock.now())
        .unwrap();
    assert_eq!(outcome, Outcome::WrongOtp { attempts_left: 3 });
    assert_eq!(c.next_step(clock.now()), NextStep::EnterOtp);

    let out = c
        .submit(
            &config(),
            &otp("424242"),
            clock.advance(Duration::seconds(15)),
        )
        .unwrap();
    assert_eq!(c.next_step(clock.now()), NextStep::Wait(out.token));
    assert_eq!(c.may_submit(clock.now()), Err(Refusal::InFlight(out.token)));
    let outcome = c
        .handle_response(out.token, 200, &fixture("submit_charged"), clock.now())
        .unwrap();
    assert_eq!(outcome, Outcome::Approved(Status::Charged));
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.handle_timeout(clock.advance(Duration::hours(1))), None);
}

#[test]
fn attempts_exhausted_counted_locally_when_the_server_sends_no_counters() {
    let mut clock = Clock(T0);
    let mut policy = Policy::default();
    policy.max_attempts = 3;
    let mut c = challenge_with(policy);
    let mut bare = fixture_json("submit_pending_wrong_otp");
    let params = bare["payment"]["authentication"]["params"]
        .as_object_mut()
        .unwrap();
    for k in [
        "times_otp_sent",
        "max_otp_send_limit",
        "current_attempt",
        "max_attempts",
    ] {
        params.remove(k);
    }
    let bare = bare.to_string().into_bytes();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let out = c
            .submit(
                &config(),
                &otp("000000"),
                clock.advance(Duration::seconds(5)),
            )
            .unwrap();
        outcomes.push(
            c.handle_response(out.token, 200, &bare, clock.now())
                .unwrap(),
        );
    }
    assert_eq!(
        outcomes,
        vec![
            Outcome::WrongOtp { attempts_left: 2 },
            Outcome::WrongOtp { attempts_left: 1 },
            Outcome::AttemptLimitReached
        ]
    );
    assert_eq!(
        c.may_submit(clock.now()),
        Err(Refusal::AttemptLimitReached { limit: 3 })
    );
    assert!(matches!(c.next_step(clock.now()), NextStep::BankPage(_)));
}

#[test]
fn attempts_exhausted_by_the_server() {
    let mut c = challenge();
    let mut outcomes = Vec::new();
    for attempt in 1..=4 {
        let out = c
            .submit(&config(), &otp("999999"), secs(attempt.into()))
            .unwrap();
        outcomes.push(
            c.handle_response(
                out.token,
                200,
                &wrong_otp_answer(attempt, 4),
                secs(attempt.into()),
            )
            .unwrap(),
        );
    }
    assert_eq!(outcomes.last(), Some(&Outcome::AttemptLimitReached));
    assert_eq!(c.attempts(), 4);
    assert_eq!(
        c.may_submit(secs(10)),
        Err(Refusal::AttemptLimitReached { limit: 4 })
    );
}

#[test]
fn lost_submit_is_reconciled_never_resent() {
    let mut clock = Clock(T0);
    let mut c = challenge();
    let out = c
        .submit(
            &config(),
            &otp("424242"),
            clock.advance(Duration::seconds(10)),
        )
        .unwrap();
    // The connection reset after the request was written.
    let outcome = c
        .handle_send_failure(
            out.token,
            SendFailure::MaybeSent,
            clock.advance(Duration::seconds(30)),
        )
        .unwrap();
    assert!(matches!(outcome, Outcome::CheckStatus(_)));
    assert_eq!(c.next_step(clock.now()), NextStep::CheckStatus);
    assert_eq!(c.may_submit(clock.now()), Err(Refusal::CheckStatus));
    assert_eq!(c.may_resend(clock.now()), Err(Refusal::CheckStatus));
    assert_eq!(
        c.poll_timeout(),
        None,
        "no expiry while the outcome is unknown"
    );

    // The status check itself is lost too: harmless, ask again.
    let t = c.check_status(&config(), clock.now()).unwrap().token;
    assert_eq!(
        c.handle_send_failure(t, SendFailure::MaybeSent, clock.now()),
        Ok(Outcome::NotDelivered)
    );
    assert_eq!(c.next_step(clock.now()), NextStep::CheckStatus);

    let t = c
        .check_status(&config(), clock.advance(Duration::seconds(2)))
        .unwrap()
        .token;
    let outcome = c
        .handle_response(t, 200, &fixture("order_status_charged"), clock.now())
        .unwrap();
    assert_eq!(outcome, Outcome::Approved(Status::Charged));
    assert!(c.is_final());
}

#[test]
fn a_submit_that_surely_was_not_sent_can_be_retried() {
    let mut c = challenge();
    let before = c.clone();
    let out = c.submit(&config(), &otp("424242"), secs(10)).unwrap();
    assert_eq!(
        c.handle_send_failure(out.token, SendFailure::NotSent, secs(10)),
        Ok(Outcome::NotDelivered)
    );
    assert_eq!(c.attempts(), before.attempts());
    assert_eq!(c.next_step(secs(10)), NextStep::EnterOtp);
    assert!(c.submit(&config(), &otp("424242"), secs(11)).is_ok());
}

#[test]
fn lost_resend_counts_against_the_limit() {
    let mut c = challenge();
    let out = c.resend(&config(), secs(30)).unwrap();
    let outcome = c
        .handle_send_failure(out.token, SendFailure::MaybeSent, secs(31))
        .unwrap();
    assert!(matches!(outcome, Outcome::CheckStatus(_)));
    assert_eq!(c.otp_sends(), 2);
    let t = c.check_status(&config(), secs(32)).unwrap().token;
    let outcome = c
        .handle_response(t, 200, &fixture("order_status_pending"), secs(33))
        .unwrap();
    assert_eq!(outcome, Outcome::Pending(Status::PendingVbv));
    assert_eq!(c.next_step(secs(33)), NextStep::EnterOtp);
    assert_eq!(c.sends_left(), 2);
}

#[test]
fn three_ds_failover_at_start() {
    let started = Started::from_response(
        ROUTING,
        Policy::default(),
        200,
        &fixture("start_3ds_failover"),
        T0,
    )
    .unwrap();
    match started {
        Started::Redirect { url, method } => {
            assert_eq!(method, "GET");
            assert_eq!(
                url,
                "https://sandbox.juspay.in/v2/pay/start/guest/eulk2m9x0a7b3c4d"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn expiry_closes_the_otp_page() {
    let mut clock = Clock(T0);
    let mut policy = Policy::default();
    policy.lifetime = std::time::Duration::from_secs(5 * 60);
    policy.resend_cooldown = std::time::Duration::from_secs(60);
    let mut c = challenge_with(policy);

    assert_eq!(c.poll_timeout(), Some(secs(60)));
    assert_eq!(c.handle_timeout(secs(59)), None, "not due yet");
    assert_eq!(clock.run_timer(&mut c), Some(TimerEvent::ResendAvailable));
    assert_eq!(c.poll_timeout(), Some(secs(300)));
    // Commands already see the expiry before the timer is handled, and change nothing.
    let before = c.clone();
    assert_eq!(
        c.submit(&config(), &otp("1234"), secs(300)),
        Err(Refusal::Expired)
    );
    assert_eq!(c, before);
    assert_eq!(clock.run_timer(&mut c), Some(TimerEvent::Expired));
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.may_resend(clock.now()), Err(Refusal::Expired));
    assert!(matches!(c.next_step(clock.now()), NextStep::BankPage(_)));
    // The result is still learned from the order status.
    let t = c.check_status(&config(), clock.now()).unwrap().token;
    let outcome = c
        .handle_response(t, 200, &fixture("order_status_pending"), clock.now())
        .unwrap();
    assert_eq!(outcome, Outcome::Pending(Status::PendingVbv));
    assert_eq!(c.may_submit(clock.now()), Err(Refusal::Expired));
}

#[test]
fn a_response_in_flight_at_expiry_still_counts() {
    let mut c = challenge();
    let out = c.submit(&config(), &otp("424242"), secs(599)).unwrap();
    assert_eq!(c.poll_timeout(), None, "no timer while in flight");
    let outcome = c
        .handle_response(out.token, 200, &wrong_otp_answer(1, 4), secs(601))
        .unwrap();
    assert_eq!(outcome, Outcome::WrongOtp { attempts_left: 3 });
    // The overdue timers (the cooldown from the start, and the expiry) are due at once;
    // the expiry wins, and no timer is left (no busy loop).
    assert_eq!(c.poll_timeout(), Some(secs(30)));
    assert_eq!(c.handle_timeout(secs(601)), Some(TimerEvent::Expired));
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn a_stale_answer_after_a_newer_request_changes_nothing() {
    let mut c = challenge();
    let first = c.submit(&config(), &otp("111111"), secs(5)).unwrap().token;
    c.handle_send_failure(first, SendFailure::NotSent, secs(6))
        .unwrap();
    let second = c.submit(&config(), &otp("222222"), secs(7)).unwrap().token;
    assert_ne!(first, second);
    let before = c.clone();
    // The first request's answer turns up late (it had been sent after all).
    let late = c.handle_response(first, 200, &fixture("submit_charged"), secs(8));
    assert!(late.is_err());
    assert_eq!(c, before);
    let outcome = c
        .handle_response(second, 200, &wrong_otp_answer(1, 4), secs(9))
        .unwrap();
    assert_eq!(outcome, Outcome::WrongOtp { attempts_left: 3 });
    // And once more after the newer answer.
    let before = c.clone();
    assert!(c
        .handle_response(second, 200, &fixture("submit_charged"), secs(10))
        .is_err());
    assert!(c
        .handle_response(first, 200, &fixture("submit_charged"), secs(10))
        .is_err());
    assert_eq!(c, before);
}

#[test]
fn time_going_backwards_is_ignored() {
    let mut c = challenge();
    let out = c.submit(&config(), &otp("111111"), secs(100)).unwrap();
    c.handle_response(out.token, 200, &wrong_otp_answer(1, 4), secs(100))
        .unwrap();
    // A clock that jumped back an hour sees the latest time instead: the cooldown from the
    // start (30 s) is over, not pending.
    assert!(c.may_resend(secs(-3600)).is_ok());
    assert_eq!(
        c.handle_timeout(secs(-3600)),
        Some(TimerEvent::ResendAvailable)
    );
    // Extreme instants never panic.
    let far = OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT);
    let mut c = challenge();
    assert_eq!(c.handle_timeout(far), Some(TimerEvent::Expired));
    assert_eq!(c.handle_timeout(OffsetDateTime::UNIX_EPOCH), None);
    let mut policy = Policy::default();
    policy.lifetime = std::time::Duration::MAX;
    policy.resend_cooldown = std::time::Duration::MAX;
    let mut c = challenge_with(policy);
    let at = c.poll_timeout().unwrap();
    assert_eq!(c.handle_timeout(at), Some(TimerEvent::Expired));
}

#[test]
fn persisted_state_round_trips_at_every_step_without_secrets() {
    let mut c = challenge();
    let mut states = vec![c.clone()];
    let out = c.submit(&config(), &otp("86429731"), secs(5)).unwrap();
    states.push(c.clone());
    c.handle_response(out.token, 200, &wrong_otp_answer(1, 4), secs(6))
        .unwrap();
    states.push(c.clone());
    let out = c.resend(&config(), secs(40)).unwrap();
    c.handle_send_failure(out.token, SendFailure::MaybeSent, secs(41))
        .unwrap();
    states.push(c.clone());
    c.handle_timeout(secs(45));
    let t = c.check_status(&config(), secs(50)).unwrap().token;
    states.push(c.clone());
    c.handle_response(t, 200, &fixture("order_status_charged"), secs(51))
        .unwrap();
    states.push(c.clone());

    for state in states {
        let json = serde_json::to_string(&state).unwrap();
        for secret in ["86429731", KEY, "c2tfdGVzdF9TRUNSRVRLRVk6", "Basic"] {
            assert!(!json.contains(secret), "{json}");
        }
        assert!(json.starts_with("{\"format\":2,"), "{json}");
        let back: Challenge = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}

#[test]
fn persisted_state_is_checked_when_loaded() {
    let json = serde_json::to_value(challenge()).unwrap();
    for (version, what) in [(3, "newer"), (1, "older, without record and revision")] {
        let mut other = json.clone();
        other["format"] = json!(version);
        let err = serde_json::from_value::<Challenge>(other)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("format version {version}")),
            "{what}: {err}"
        );
    }
    let mut hostile = json.clone();
    hostile["txn_id"] = json!("../../refunds");
    assert!(serde_json::from_value::<Challenge>(hostile).is_err());
    let mut hostile = json;
    hostile["routing_id"] = json!("a\r\nx-evil: 1");
    assert!(serde_json::from_value::<Challenge>(hostile).is_err());
}

#[test]
fn an_inconsistent_persisted_state_is_refused_with_the_rule_it_breaks() {
    let mut c = challenge();
    let out = c.submit(&config(), &otp("424242"), secs(5)).unwrap();
    let in_flight = serde_json::to_value(&c).unwrap();
    assert_eq!(in_flight["revision"], json!(out.token.revision()));
    assert_eq!(in_flight["record"], json!(c.record_id().to_string()));
    c.handle_response(out.token, 200, &fixture("submit_charged"), secs(6))
        .unwrap();
    let paid = serde_json::to_value(&c).unwrap();
    let limit = u64::from(c.send_limit());
    let other_record = json!("00000000deadbeef");

    type Case<'a> = (&'a Value, &'a [&'a str], Value, &'a str);
    let cases: [Case; 11] = [
        (
            &in_flight,
            &["otp_sent"],
            json!(limit + 1),
            "more OTPs sent",
        ),
        (&in_flight, &["attempts"], json!(99), "more attempts"),
        // Limits are at most Policy::MAX_LIMIT, so a saturated counter is refused too.
        (&paid, &["attempts"], json!(u32::MAX), "more attempts"),
        (&paid, &["server_send_limit"], json!(u32::MAX), ""),
        // A paid order that looks open would take an OTP again.
        (&in_flight, &["status"], json!("CHARGED"), "finality"),
        (&paid, &["status"], json!("PENDING_VBV"), "finality"),
        (&paid, &["last_seen"], json!(0), "created after"),
        (&paid, &["revision"], json!(u64::MAX), "saturated"),
        (&paid, &["revision"], json!(0), "revision is 0"),
        (
            &in_flight,
            &["revision"],
            json!(99),
            "not issued by this record",
        ),
        (
            &in_flight,
            &["phase", "token", "record"],
            other_record,
            "not issued by this record",
        ),
    ];
    for (base, path, value, rule) in cases {
        let mut v = base.clone();
        let mut slot = &mut v;
        for key in path {
            slot = &mut slot[*key];
        }
        *slot = value.clone();
        match serde_json::from_value::<Challenge>(v) {
            // A server limit above the cap is read as the cap: counters still fit.
            Ok(loaded) if rule.is_empty() => assert_eq!(loaded.send_limit(), Policy::MAX_LIMIT),
            Ok(_) => panic!("{path:?} = {value} loaded"),
            Err(e) => {
                let err = e.to_string();
                assert!(
                    err.contains("inconsistent challenge state") && err.contains(rule),
                    "{path:?} = {value}: {err}"
                );
            }
        }
    }
    // The untouched states load.
    for base in [&in_flight, &paid] {
        serde_json::from_value::<Challenge>(base.clone()).unwrap();
    }
}

#[test]
fn a_persisted_request_in_flight_is_answered_after_loading() {
    let mut c = challenge();
    let out = c.submit(&config(), &otp("424242"), secs(5)).unwrap();
    let stored = serde_json::to_string(&c).unwrap();
    let mut loaded: Challenge = serde_json::from_str(&stored).unwrap();
    let token: Token = out.token;
    assert_eq!(loaded.in_flight(), Some(token));
    let outcome = loaded
        .handle_response(token, 200, &fixture("submit_charged"), secs(6))
        .unwrap();
    assert_eq!(outcome, Outcome::Approved(Status::Charged));
}

// ----- Answers bound to what was asked (copies, other records, other orders) -------------

/// A copy of `c` as another worker would load it from the same stored state.
fn copy_of(c: &Challenge) -> Challenge {
    serde_json::from_str(&serde_json::to_string(c).unwrap()).unwrap()
}

#[test]
fn two_copies_of_one_stored_record_never_take_each_others_answers() {
    let stored = challenge();
    let (mut a, mut b) = (copy_of(&stored), copy_of(&stored));
    let resend = a.resend(&config(), secs(31)).unwrap();
    let submit = b.submit(&config(), &otp("424242"), secs(31)).unwrap();
    // Same record, same revision reached; different kinds and nonces.
    assert_eq!(resend.token.record(), submit.token.record());
    assert_eq!(resend.token.revision(), submit.token.revision());
    assert_ne!(resend.token, submit.token);
    // Even the same command on both copies gives two tokens.
    let (mut c1, mut c2) = (copy_of(&stored), copy_of(&stored));
    let t1 = c1
        .submit(&config(), &otp("424242"), secs(31))
        .unwrap()
        .token;
    let t2 = c2
        .submit(&config(), &otp("424242"), secs(31))
        .unwrap()
        .token;
    assert_ne!(t1, t2);

    // The resend's answer handed to the submitting copy is refused; nothing changes.
    let before = b.clone();
    let err = b
        .handle_response(resend.token, 200, &resend_answer(2, 4), secs(32))
        .unwrap_err();
    assert_eq!(
        err,
        InputError::StaleToken {
            got: resend.token,
            in_flight: submit.token
        }
    );
    assert_eq!(b, before);
    assert_eq!(b.revision(), stored.revision() + 1);
}

#[test]
fn a_token_of_another_challenge_is_refused() {
    let mut x = challenge();
    let mut y = challenge();
    assert_ne!(x.record_id(), y.record_id());
    let tx = x.submit(&config(), &otp("424242"), secs(5)).unwrap().token;
    let _ty = y.submit(&config(), &otp("111111"), secs(5)).unwrap().token;
    let before = y.clone();
    assert_eq!(
        y.handle_response(tx, 200, &fixture("submit_charged"), secs(6)),
        Err(InputError::OtherRecord { got: tx })
    );
    assert_eq!(
        y.handle_send_failure(tx, SendFailure::MaybeSent, secs(6)),
        Err(InputError::OtherRecord { got: tx })
    );
    assert_eq!(y, before, "Y is still waiting for its own answer");
}

/// `fixture` with `path` set to `value`.
fn with(name: &str, path: &[&str], value: Value) -> Vec<u8> {
    let mut v = fixture_json(name);
    let mut slot = &mut v;
    for key in path {
        slot = &mut slot[*key];
    }
    *slot = value;
    v.to_string().into_bytes()
}

#[test]
fn an_answer_about_another_order_or_transaction_is_refused_and_changes_nothing() {
    let params_id = ["payment", "authentication", "params", "id"];
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "order status",
            br#"{"order_id":"OTHER","status":"CHARGED"}"#.to_vec(),
            "order_id",
        ),
        (
            "submit",
            with("submit_charged", &["order_id"], json!("OTHER")),
            "order_id",
        ),
        (
            "submit",
            with("submit_charged", &params_id, json!("txn_other")),
            "params.id",
        ),
        (
            "resend",
            with("resend_counters", &["order_id"], json!("OTHER")),
            "order_id",
        ),
        (
            "resend",
            with("resend_counters", &params_id, json!("txn_other")),
            "params.id",
        ),
    ];
    for (kind, body, field) in cases {
        let mut c = challenge();
        let out = match kind {
            "order status" => c.check_status(&config(), secs(31)),
            "submit" => c.submit(&config(), &otp("424242"), secs(31)),
            _ => c.resend(&config(), secs(31)),
        }
        .unwrap();
        let before = c.clone();
        match c.handle_response(out.token, 200, &body, secs(32)) {
            Err(InputError::Foreign(e)) => assert!(e.field.ends_with(field), "{kind}: {e}"),
            other => panic!("{kind} {field}: {other:?}"),
        }
        assert_eq!(c, before, "{kind} {field}: nothing changed");
        assert_eq!(c.in_flight(), Some(out.token), "{kind}: still in flight");
        // The right answer is still taken.
        let right = match kind {
            "order status" => fixture("order_status_charged"),
            "submit" => fixture("submit_charged"),
            _ => resend_answer(2, 4),
        };
        assert!(
            c.handle_response(out.token, 200, &right, secs(33)).is_ok(),
            "{kind}"
        );
    }
}

#[test]
fn stateless_readers_refuse_answers_about_another_order() {
    let start = direct_otp::StartRequest::new(
        "ord_dotp_1001",
        "acme",
        ROUTING,
        direct_otp::PaymentSource::Token {
            card_token: "tok_1".into(),
            cvv: None,
        },
    )
    .unwrap();
    let other = with("start_direct_otp", &["order_id"], json!("ord_other"));
    assert!(matches!(
        start.handle_response(200, &other, T0),
        Err(StartError::Response(ResponseError::Foreign(_)))
    ));
    let check = OrderStatusCheck::new("ord_dotp_1001", ROUTING).unwrap();
    assert!(matches!(
        check.handle_response(200, br#"{"order_id":"OTHER","status":"CHARGED"}"#),
        Err(ResponseError::Foreign(_))
    ));
    assert_eq!(
        check.handle_response(200, &fixture("order_status_charged")),
        Ok(Status::Charged)
    );
}

#[test]
fn a_resend_answered_with_a_final_status_settles() {
    for (status, approved) in [
        ("CHARGED", true),
        ("AUTHENTICATION_FAILED", false),
        ("JUSPAY_DECLINED", false),
    ] {
        let mut c = challenge();
        let out = c.resend(&config(), secs(31)).unwrap();
        let body = with("resend_counters", &["status"], json!(status));
        let outcome = c.handle_response(out.token, 200, &body, secs(32)).unwrap();
        let st = Status::parse(status);
        let want = if approved {
            Outcome::Approved(st.clone())
        } else {
            Outcome::Declined(st.clone())
        };
        assert_eq!(outcome, want, "{status}");
        assert!(c.is_final());
        assert_eq!(c.next_step(secs(33)), NextStep::Finished(st));
        assert!(matches!(
            c.resend(&config(), secs(99)),
            Err(Refusal::AlreadyFinal(_))
        ));
    }
}

#[test]
fn invalid_action_means_this_copy_is_stale_and_counts_nothing() {
    let stale = br#"{"status":"Bad Request","error_code":"invalid_request","error_message":"Transaction already processed","error_info":{"code":"INVALID_ACTION","category":"USER_ERROR"}}"#;
    for kind in ["submit", "resend"] {
        let mut c = challenge();
        let (sent, tried) = (c.otp_sends(), c.attempts());
        let out = match kind {
            "submit" => c.submit(&config(), &otp("424242"), secs(31)),
            _ => c.resend(&config(), secs(31)),
        }
        .unwrap();
        let outcome = c.handle_response(out.token, 400, stale, secs(32)).unwrap();
        assert!(
            matches!(&outcome, Outcome::CheckStatus(Uncertainty::Stale(ResponseError::Api(e))) if e.code() == Some("INVALID_ACTION")),
            "{kind}: {outcome:?}"
        );
        assert_eq!((c.otp_sends(), c.attempts()), (sent, tried), "{kind}");
        assert_eq!(c.next_step(secs(33)), NextStep::CheckStatus, "{kind}");
        assert_eq!(c.may_submit(secs(33)), Err(Refusal::CheckStatus));
        // The order status settles the stale copy.
        let out = c.check_status(&config(), secs(34)).unwrap();
        let outcome = c
            .handle_response(out.token, 200, &fixture("order_status_charged"), secs(35))
            .unwrap();
        assert_eq!(outcome, Outcome::Approved(Status::Charged), "{kind}");
    }
}

#[test]
fn a_successful_submit_counts_as_an_attempt() {
    for answer in ["submit_charged", "submit_authentication_failed"] {
        let mut c = challenge();
        let mut body = fixture_json(answer);
        // No server counter: the library counts.
        body["payment"]["authentication"]["params"]
            .as_object_mut()
            .unwrap()
            .remove("current_attempt");
        let out = c.submit(&config(), &otp("424242"), secs(5)).unwrap();
        c.handle_response(out.token, 200, body.to_string().as_bytes(), secs(6))
            .unwrap();
        assert_eq!(c.attempts(), 1, "{answer}");
    }
}

#[test]
fn the_bank_page_is_given_again_on_a_page_reload() {
    let mut c = challenge();
    let url = c.go_to_bank_page(secs(5)).unwrap();
    let revision = c.revision();
    let before = c.clone();
    assert_eq!(c.go_to_bank_page(secs(6)).unwrap(), url);
    assert_eq!(c, before, "a reload changes nothing");
    assert_eq!(c.revision(), revision);
}

#[test]
fn only_safe_http_urls_reach_the_browser() {
    let fallback = ["payment", "authentication", "params", "fallback_url"];
    for bad in [
        "javascript:alert(document.cookie)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "//evil.example/pay",
        "https://bank.example/pay\r\nSet-Cookie: x=1",
        "https://bank.example@evil.example/",
    ] {
        let body = with("start_direct_otp", &fallback, json!(bad));
        let c = match Started::from_response(ROUTING, Policy::default(), 200, &body, T0).unwrap() {
            Started::Challenge(c) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(c.fallback_url(), None, "{bad:?} is treated as no fallback");
        let mut c = *c;
        assert_eq!(c.go_to_bank_page(secs(1)), Err(Refusal::NoBankPage));

        let body = with(
            "start_3ds_failover",
            &["payment", "authentication", "url"],
            json!(bad),
        );
        match Started::from_response(ROUTING, Policy::default(), 200, &body, T0) {
            Err(StartError::Response(ResponseError::Malformed {
                problem: Malformed::BadUrl(_),
                ..
            })) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn the_revision_moves_with_every_change_and_only_then() {
    let mut c = challenge();
    assert_eq!(c.revision(), 1);
    let out = c.submit(&config(), &otp("424242"), secs(5)).unwrap();
    assert_eq!((c.revision(), out.token.revision()), (2, 2));
    // Refused commands and inputs change nothing.
    assert!(c.resend(&config(), secs(5)).is_err());
    assert!(c
        .handle_response(invariants::other_token(c.in_flight()), 200, b"{}", secs(5))
        .is_err());
    assert_eq!(c.revision(), 2);
    c.handle_response(out.token, 200, &wrong_otp_answer(1, 4), secs(6))
        .unwrap();
    assert_eq!(c.revision(), 3);
    assert_eq!(c.handle_timeout(secs(7)), None);
    assert_eq!(
        c.revision(),
        3,
        "a timer that does not fire changes nothing"
    );
    assert_eq!(
        c.handle_timeout(secs(31)),
        Some(TimerEvent::ResendAvailable)
    );
    assert_eq!(c.revision(), 4);
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["revision"], json!(4));
}

#[test]
fn a_request_nobody_answered_is_recovered_after_the_grace() {
    let grace = std::time::Duration::from_secs(60);
    let mut c = challenge();
    assert_eq!(c.recover(grace, secs(100)), None, "nothing in flight");
    let out = c.submit(&config(), &otp("424242"), secs(5)).unwrap();
    assert_eq!(c.in_flight_since(), Some(secs(5)));
    // A worker that died: another copy, loaded from storage, recovers it.
    let mut other = copy_of(&c);
    assert_eq!(
        other.recover(grace, secs(64)),
        None,
        "still within the grace"
    );
    assert_eq!(other.in_flight(), Some(out.token));
    assert_eq!(
        other.recover(grace, secs(65)),
        Some(Outcome::CheckStatus(Uncertainty::MaybeSent))
    );
    assert_eq!(other.attempts(), 1, "counted as if it happened");
    assert_eq!(other.next_step(secs(65)), NextStep::CheckStatus);
    assert_eq!(other.in_flight_since(), None);
    // The dead worker's late answer is refused by the recovered copy.
    assert!(matches!(
        other.handle_response(out.token, 200, &fixture("submit_charged"), secs(66)),
        Err(InputError::NothingInFlight { .. })
    ));
    // A lost status check just ends.
    let out = other.check_status(&config(), secs(70)).unwrap();
    assert_eq!(other.recover(grace, secs(200)), Some(Outcome::NotDelivered));
    assert_eq!(other.in_flight(), None);
    let _ = out;
}

/// When several refusals apply, the one given: the request in flight first, then the state
/// of the page (a status check owed, the bank page, the lifetime), then the bank's limits,
/// then its flags, then the cooldown. (The property tests check only that a refusal's reason
/// is true; the order is fixed here.)
#[test]
fn when_several_refusals_apply_the_first_reason_is_given() {
    /// A challenge started with these authentication params.
    fn started(params: Value) -> Challenge {
        let mut body = fixture_json("start_direct_otp");
        let p = &mut body["payment"]["authentication"]["params"];
        for (k, v) in params.as_object().unwrap() {
            p[k] = v.clone();
        }
        let body = body.to_string().into_bytes();
        match Started::from_response(ROUTING, Policy::default(), 200, &body, T0).unwrap() {
            Started::Challenge(c) => *c,
            other => panic!("{other:?}"),
        }
    }
    let (early, late) = (secs(1), secs(3600));
    let no_tries = || started(json!({"current_attempt": 4, "max_attempts": 4}));
    let in_flight = {
        let mut c = no_tries();
        let t = c.check_status(&config(), early).unwrap().token;
        (c, Refusal::InFlight(t))
    };
    let lost_submit = {
        let mut c = challenge();
        let t = c.submit(&config(), &otp("123456"), early).unwrap().token;
        c.handle_send_failure(t, SendFailure::MaybeSent, early)
            .unwrap();
        c
    };
    let mut on_bank_page = challenge();
    on_bank_page.go_to_bank_page(early).unwrap();
    let cases = [
        (
            "in flight, past the lifetime, no tries left",
            in_flight.0,
            true,
            late,
            in_flight.1,
        ),
        (
            "a status check owed, past the lifetime",
            lost_submit.clone(),
            true,
            late,
            Refusal::CheckStatus,
        ),
        (
            "a status check owed, resend",
            lost_submit,
            false,
            late,
            Refusal::CheckStatus,
        ),
        (
            "on the bank page, past the lifetime",
            on_bank_page,
            true,
            late,
            Refusal::OnBankPage,
        ),
        (
            "past the lifetime, no tries left",
            no_tries(),
            true,
            late,
            Refusal::Expired,
        ),
        (
            "no tries left, submit not allowed",
            started(json!({"current_attempt": 4, "max_attempts": 4, "submit_otp_allowed": false})),
            true,
            early,
            Refusal::AttemptLimitReached { limit: 4 },
        ),
        (
            "no sends left, resend not allowed, cooldown running",
            started(
                json!({"times_otp_sent": 4, "max_otp_send_limit": 4, "resend_otp_allowed": false}),
            ),
            false,
            early,
            Refusal::SendLimitReached { limit: 4 },
        ),
        (
            "resend not allowed, cooldown running",
            started(json!({"resend_otp_allowed": false})),
            false,
            early,
            Refusal::ResendNotAllowed,
        ),
    ];
    for (name, c, submit, at, want) in cases {
        let got = if submit {
            c.may_submit(at)
        } else {
            c.may_resend(at)
        };
        assert_eq!(got, Err(want), "{name}");
    }
}
