//! Helpers shared by the core's integration tests.
#![allow(dead_code)]

use direct_otp::{Challenge, Config, Policy, Started};
use time::macros::datetime;
use time::OffsetDateTime;

pub const KEY: &str = "sk_test_SECRETKEY";
pub const ROUTING: &str = "customer_1122";

/// The start of every test's fake clock.
pub const T0: OffsetDateTime = datetime!(2026-11-25 10:00:00 UTC);

pub fn secs(s: i64) -> OffsetDateTime {
    T0 + time::Duration::seconds(s)
}

/// A fixture's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fixture as JSON, to derive variants from.
pub fn fixture_json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

pub fn config() -> Config {
    Config::sandbox(KEY).unwrap()
}

/// A challenge started from `start_direct_otp.json` at `T0`.
pub fn challenge() -> Challenge {
    challenge_with(Policy::default())
}

pub fn challenge_with(policy: Policy) -> Challenge {
    match Started::from_response(ROUTING, policy, 200, &fixture("start_direct_otp"), T0).unwrap() {
        Started::Challenge(c) => *c,
        other => panic!("expected a challenge, got {other:?}"),
    }
}

/// Runs `check` on every case of a table, then fails if any case failed, quoting each
/// failure's message (which names its case).
pub fn check_cases<C>(cases: impl IntoIterator<Item = C>, check: impl Fn(C)) {
    let mut failures = Vec::new();
    let mut total = 0;
    for case in cases {
        total += 1;
        let run = std::panic::AssertUnwindSafe(|| check(case));
        if let Err(panic) = std::panic::catch_unwind(run) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(a panic without a message)");
            failures.push(message.lines().next().unwrap_or_default().to_owned());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
