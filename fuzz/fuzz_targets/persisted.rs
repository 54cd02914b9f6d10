//! Loading a persisted challenge from storage that may be corrupt or tampered with: raw
//! bytes, and valid persisted states (fresh, in flight, must reconcile, on the bank page,
//! expired, final) with fields replaced by arbitrary JSON values.
//!
//! Must hold: loading never panics; a state that loads is consistent (loading refuses one
//! whose counters, finality or tokens break the rules), round-trips exactly and keeps every
//! invariant, of state and of behaviour, before and after every command, answer, failure
//! and timer. A state whose order or transaction was patched gets answers that name
//! another: those are refused by design (`InputError::Foreign`), change nothing and leave
//! the request in flight; any other refusal of the token in flight is a bug.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use direct_otp::{Challenge, Config, InputError, Otp, Outcome, Policy, SendFailure, Started};
use direct_otp_fuzz::invariants::{self, at_ms, max_time, min_time};
use direct_otp_fuzz::{set, Scalar};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const START: &[u8] = include_bytes!("../../tests/fixtures/start_direct_otp.json");
const RESEND: &[u8] = include_bytes!("../../tests/fixtures/resend_counters.json");
const WRONG: &[u8] = include_bytes!("../../tests/fixtures/submit_pending_wrong_otp.json");
const CHARGED: &[u8] = include_bytes!("../../tests/fixtures/order_status_charged.json");
/// 2026-11-25 10:00:00 UTC.
const T0_MS: i64 = 1_795_600_800_000;

/// The persisted fields, and their parents.
const PATHS: [&[&str]; 36] = [
    &["format"],
    &["order_id"],
    &["txn_id"],
    &["challenge_id"],
    &["routing_id"],
    &["status"],
    &["card"],
    &["card", "isin"],
    &["fallback_url"],
    &["submit_allowed"],
    &["resend_allowed"],
    &["otp_sent"],
    &["server_send_limit"],
    &["attempts"],
    &["server_attempt_limit"],
    &["policy"],
    &["policy", "max_sends"],
    &["policy", "max_attempts"],
    &["policy", "resend_cooldown"],
    &["policy", "lifetime"],
    &["phase"],
    &["phase", "phase"],
    &["phase", "rest"],
    &["phase", "token"],
    &["phase", "token", "record"],
    &["phase", "token", "revision"],
    &["phase", "token", "kind"],
    &["phase", "token", "nonce"],
    &["phase", "kind"],
    &["phase", "sent_at"],
    &["created_at"],
    &["last_seen"],
    &["cooldown_until"],
    &["record"],
    &["revision"],
    &["unknown_field"],
];

#[derive(Debug, Arbitrary)]
enum Input {
    Raw(Vec<u8>),
    Patched(u8, Vec<(u8, Scalar)>),
}

fn config() -> Config {
    Config::sandbox("sk_test_SECRETKEY").expect("valid config")
}

/// Valid persisted states in each phase, as JSON.
fn bases() -> &'static [Value] {
    static BASES: OnceLock<Vec<Value>> = OnceLock::new();
    BASES.get_or_init(|| {
        let config = config();
        let t = |s: i64| at_ms(T0_MS + s * 1000);
        let otp = Otp::new("123456").expect("valid OTP");
        let fresh = match Started::from_response("cust", Policy::default(), 200, START, t(0)) {
            Ok(Started::Challenge(c)) => *c,
            other => panic!("the start fixture gives a challenge: {other:?}"),
        };
        let mut states = vec![fresh.clone()];
        let mut c = fresh.clone();
        let out = c.resend(&config, t(40)).expect("resend after the cooldown");
        c.handle_response(out.token, 200, RESEND, t(41))
            .expect("in flight");
        states.push(c.clone());
        c.submit(&config, &otp, t(42)).expect("submit");
        states.push(c.clone());
        let mut c = fresh.clone();
        let out = c.submit(&config, &otp, t(5)).expect("submit");
        c.handle_response(out.token, 200, WRONG, t(6))
            .expect("in flight");
        states.push(c.clone());
        let out = c.submit(&config, &otp, t(7)).expect("submit");
        c.handle_send_failure(out.token, SendFailure::MaybeSent, t(8))
            .expect("in flight");
        states.push(c.clone());
        let mut c = fresh.clone();
        c.go_to_bank_page(t(9)).expect("bank page");
        states.push(c.clone());
        let out = c.check_status(&config, t(10)).expect("status");
        c.handle_response(out.token, 200, CHARGED, t(11))
            .expect("in flight");
        states.push(c);
        let mut c = fresh;
        c.handle_timeout(t(3600)).expect("expires");
        states.push(c);
        states
            .iter()
            .map(|s| serde_json::to_value(s).expect("serializes"))
            .collect()
    })
}

fuzz_target!(|input: Input| {
    let bytes = match &input {
        Input::Raw(b) => b.clone(),
        Input::Patched(base, patches) => {
            let bases = bases();
            let mut v = bases[usize::from(*base) % bases.len()].clone();
            for (path, value) in patches {
                set(
                    &mut v,
                    PATHS[usize::from(*path) % PATHS.len()],
                    value.json(),
                );
            }
            serde_json::to_vec(&v).expect("serializes")
        }
    };
    let Ok(c) = serde_json::from_slice::<Challenge>(&bytes) else {
        return;
    };
    let config = config();
    let otp = Otp::new("123456").expect("valid OTP");
    let check = |d: &Challenge, now, what: &str| invariants::check_challenge(d, &config, now, what);
    for now in [at_ms(T0_MS), min_time(), max_time()] {
        check(&c, now, "loaded");
        let mut d = c.clone();
        if let Some(t) = d.poll_timeout() {
            assert!(d.handle_timeout(t).is_some(), "the deadline did not fire");
            check(&d, now, "after the timer");
        }
        for command in 0..3 {
            for answer in [START, RESEND, WRONG, CHARGED, b"<html>".as_slice()] {
                let mut d = c.clone();
                let out = match command {
                    0 => d.resend(&config, now),
                    1 => d.submit(&config, &otp, now),
                    _ => d.check_status(&config, now),
                };
                let Ok(out) = out else { continue };
                check(&d, now, "in flight");
                let mut e = d.clone();
                match d.handle_response(out.token, 200, answer, now) {
                    Ok(outcome) => {
                        invariants::check_outcome(&d, &outcome, now, "answer");
                        if let Outcome::Approved(s) | Outcome::Declined(s) = &outcome {
                            assert!(
                                direct_otp_fuzz::says(answer, s.as_str()),
                                "reported {s}, which the answer does not say"
                            );
                        }
                    }
                    Err(InputError::Foreign(_)) => {
                        assert_eq!(d, e, "a foreign answer changed the challenge");
                        assert_eq!(d.in_flight(), Some(out.token), "no longer in flight");
                    }
                    Err(err) => panic!("the token in flight was refused: {err}"),
                }
                check(&d, now, "answered");
                direct_otp_fuzz::round_trip(&d, "answered");
                e.handle_send_failure(out.token, SendFailure::MaybeSent, now)
                    .expect("in flight");
                check(&e, now, "maybe sent");
            }
        }
        let mut d = c.clone();
        if d.go_to_bank_page(now).is_ok() {
            check(&d, now, "bank page");
        }
    }
});
