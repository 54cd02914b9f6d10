//! Arbitrary command/response sequences on one challenge: commands, answers (fixtures,
//! fixtures with one field replaced by an arbitrary value, raw bytes) under arbitrary HTTP
//! statuses, answers and transport failures for arbitrary tokens, clock moves in both
//! directions and to the ends of time, timers, and serde round trips.
//!
//! Must hold after every step: every challenge invariant (`tests/it/invariants/mod.rs`), the
//! outcome agrees with the state, a final challenge never changes again, and the API key
//! and the OTP never show in any Debug, Display or serialized state.
#![no_main]

use arbitrary::Arbitrary;
use direct_otp::{Challenge, Config, Otp, Policy, SendFailure, Started};
use libfuzzer_sys::fuzz_target;

use direct_otp_fuzz::invariants::{self, at_ms, ms_of, Secrets};
use direct_otp_fuzz::{Body, Http, FIXTURES, KEY, OTP, T0_MS};

#[derive(Debug, Arbitrary)]
enum Op {
    Resend,
    Submit,
    CheckStatus,
    BankPage,
    Answer(Http, Body),
    AnswerToken(u64, Http, Body),
    Fail(bool),
    FailToken(u64, bool),
    Advance(i32),
    Jump(i64),
    TimerAtDeadline,
    Timer,
    RoundTrip,
}

#[derive(Debug, Arbitrary)]
struct Input {
    max_sends: u8,
    max_attempts: u8,
    cooldown_ms: u32,
    lifetime_ms: u32,
    start: Option<Body>,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let config = Config::sandbox(KEY).expect("valid config");
    let secrets = Secrets::default().with_key(KEY, &config).with_number(OTP);
    let otp = Otp::new(OTP).expect("valid OTP");
    let mut policy = Policy::default();
    policy.max_sends = u32::from(input.max_sends % 8);
    policy.max_attempts = u32::from(input.max_attempts % 8);
    policy.resend_cooldown = std::time::Duration::from_millis(u64::from(input.cooldown_ms));
    policy.lifetime = std::time::Duration::from_millis(u64::from(input.lifetime_ms));

    let mut now = at_ms(T0_MS);
    let start = input
        .start
        .as_ref()
        .map_or(FIXTURES[0].to_vec(), |b| b.bytes(&FIXTURES));
    let started = Started::from_response("customer_1", policy, 200, &start, now);
    invariants::check_started(&started, &config, now, "start");
    let mut c: Challenge = match started {
        Ok(Started::Challenge(c)) => *c,
        _ => match Started::from_response("customer_1", policy, 200, FIXTURES[0], now) {
            Ok(Started::Challenge(c)) => *c,
            other => panic!("the start fixture gives a challenge: {other:?}"),
        },
    };
    let mut final_state: Option<Challenge> = None;

    for (i, op) in input.ops.iter().enumerate() {
        let context = format!("step {i}: {op:?}");
        let before = c.clone();
        match op {
            Op::Resend => shown(&secrets, &c.resend(&config, now)),
            Op::Submit => shown(&secrets, &c.submit(&config, &otp, now)),
            Op::CheckStatus => shown(&secrets, &c.check_status(&config, now)),
            Op::BankPage => {
                let r = c.go_to_bank_page(now);
                secrets.check("go_to_bank_page", &format!("{r:?}"));
            }
            Op::Answer(http, body) => {
                if let Some(t) = c.in_flight() {
                    match c.handle_response(t, http.code(), &body.bytes(&FIXTURES), now) {
                        Ok(outcome) => {
                            secrets.check("outcome", &format!("{outcome:?}"));
                            invariants::check_outcome(&c, &outcome, now, &context);
                        }
                        // About another order or transaction: refused, nothing changed.
                        Err(direct_otp::InputError::Foreign(_)) => {
                            assert_eq!(c, before, "{context}: a foreign answer changed the state");
                        }
                        Err(e) => panic!("{context}: the token in flight was refused: {e}"),
                    }
                }
            }
            Op::AnswerToken(t, http, body) => {
                let t = invariants::token(*t);
                let r = c.handle_response(t, http.code(), &body.bytes(&FIXTURES), now);
                secrets.check("answer", &format!("{r:?}"));
                match r {
                    Ok(outcome) => invariants::check_outcome(&c, &outcome, now, &context),
                    Err(e) => {
                        assert_eq!(c, before, "{context}: a refused answer changed the state");
                        secrets.check("input error", &e.to_string());
                    }
                }
            }
            Op::Fail(maybe) => {
                if let Some(t) = c.in_flight() {
                    let outcome = c
                        .handle_send_failure(t, failure(*maybe), now)
                        .expect("the token in flight is accepted");
                    invariants::check_outcome(&c, &outcome, now, &context);
                }
            }
            Op::FailToken(t, maybe) => {
                let t = invariants::token(*t);
                if c.handle_send_failure(t, failure(*maybe), now).is_err() {
                    assert_eq!(c, before, "{context}: a refused failure changed the state");
                }
            }
            Op::Advance(ms) => now = at_ms(ms_of(now).saturating_add(i64::from(*ms))),
            Op::Jump(ms) => now = at_ms(*ms),
            Op::TimerAtDeadline => {
                if let Some(t) = c.poll_timeout() {
                    now = t;
                    assert!(
                        c.handle_timeout(now).is_some(),
                        "{context}: the deadline did not fire"
                    );
                }
            }
            Op::Timer => {
                if c.handle_timeout(now).is_none() {
                    assert_eq!(c, before, "{context}: a spurious timer changed the state");
                }
            }
            Op::RoundTrip => {
                let json = serde_json::to_vec(&c).expect("serializes");
                c = serde_json::from_slice(&json).expect("deserializes");
            }
        }
        if let Some(f) = &final_state {
            assert_eq!(&c, f, "{context}: a final challenge changed");
        } else if c.is_final() {
            final_state = Some(c.clone());
        }
        invariants::check_challenge(&c, &config, now, &context);
        secrets.check_challenge(&c, now);
    }
});

fn failure(maybe: bool) -> SendFailure {
    if maybe {
        SendFailure::MaybeSent
    } else {
        SendFailure::NotSent
    }
}

fn shown<T: std::fmt::Debug, E: std::fmt::Debug + std::fmt::Display>(
    secrets: &Secrets,
    r: &Result<T, E>,
) {
    secrets.check("command result", &format!("{r:?}"));
    if let Err(e) = r {
        secrets.check("refusal", &e.to_string());
    }
}
