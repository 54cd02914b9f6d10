//! Every response interpreter on arbitrary bytes: the start answer (both entry points) and
//! the answers to a resend, a submit and an order-status check in flight, each under a 2xx
//! status and under one more status picked from every class by the input's length.
//!
//! Must hold: no panic; a typed error or an outcome that agrees with the challenge; every
//! challenge invariant afterwards (`tests/it/invariants/mod.rs`), the serde round trip
//! included; errors stay small; a final status reported is one the answer says. An answer
//! that names another order or transaction is refused by design (`InputError::Foreign`):
//! then nothing changed and the request is still in flight. Any other refusal of the
//! token in flight is a bug.
#![no_main]

use direct_otp::{
    Challenge, Config, InputError, Outcome, PaymentSource, Policy, StartRequest, Started,
};
use libfuzzer_sys::fuzz_target;
use time::macros::datetime;
use time::OffsetDateTime;

use direct_otp_fuzz::invariants;

const START: &[u8] = include_bytes!("../../tests/fixtures/start_direct_otp.json");
const NOW: OffsetDateTime = datetime!(2026-11-25 10:00:00 UTC);
/// One status per class, and the odd ones.
const STATUSES: [u16; 16] = [
    0,
    100,
    201,
    204,
    299,
    302,
    304,
    400,
    401,
    404,
    409,
    429,
    500,
    503,
    600,
    u16::MAX,
];

fn challenge() -> Challenge {
    match Started::from_response("customer_1", Policy::default(), 200, START, NOW) {
        Ok(Started::Challenge(c)) => *c,
        other => panic!("the start fixture gives a challenge: {other:?}"),
    }
}

fuzz_target!(|body: &[u8]| {
    let config = Config::sandbox("sk_test_SECRETKEY").expect("valid config");
    let start = StartRequest::new(
        "ord_1",
        "acme",
        "customer_1",
        PaymentSource::Token {
            card_token: "tok_1".into(),
            cvv: None,
        },
    )
    .expect("valid ids");
    let base = challenge();
    let later = NOW + time::Duration::seconds(1);
    for status in [200, STATUSES[body.len() % STATUSES.len()]] {
        let started = Started::from_response("customer_1", Policy::default(), status, body, NOW);
        invariants::check_started(&started, &config, NOW, "Started::from_response");
        let started = start.handle_response(status, body, NOW);
        invariants::check_started(&started, &config, NOW, "StartRequest::handle_response");

        for kind in 0..3 {
            let mut c = base.clone();
            let out = match kind {
                0 => c.resend(&config, later + time::Duration::minutes(1)),
                1 => c.submit(
                    &config,
                    &direct_otp::Otp::new("123456").expect("otp"),
                    later,
                ),
                _ => c.check_status(&config, later),
            }
            .expect("the fresh challenge accepts the command");
            let before = c.clone();
            match c.handle_response(out.token, status, body, later) {
                Ok(outcome) => {
                    invariants::check_outcome(&c, &outcome, later, "answer");
                    if let Outcome::Approved(s) | Outcome::Declined(s) = &outcome {
                        assert!(
                            direct_otp_fuzz::says(body, s.as_str()),
                            "reported {s}, which the answer does not say"
                        );
                    }
                }
                Err(InputError::Foreign(e)) => {
                    assert_eq!(c, before, "a foreign answer changed the challenge");
                    assert_eq!(c.in_flight(), Some(out.token), "no longer in flight");
                    invariants::check_error_size(&e, "foreign answer");
                }
                Err(e) => panic!("the token in flight was refused: {e}"),
            }
            invariants::check_challenge(&c, &config, later, "after the answer");
            direct_otp_fuzz::round_trip(&c, "after the answer");
        }
    }
});
