//! The invariants every [`Challenge`] must satisfy at any moment, whatever it was fed, and
//! the scan for leaked secrets. Shared by `tests/it/model.rs`, `tests/hostile.rs`,
//! `tests/it/secrets.rs` and the fuzz targets in `fuzz/` (through `#[path]`), so the property
//! tests and the fuzzers check the same rules. `docs/testing.md` lists them.
#![allow(dead_code)]

pub mod patch;

use direct_otp::{
    Challenge, Config, NextStep, Otp, Outcome, Refusal, SendFailure, StartError, Started, Token,
    Uncertainty,
};
use time::{Duration, OffsetDateTime};

/// Cases per property test: `DIRECT_OTP_PROPTEST_CASES`, else `default`.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("DIRECT_OTP_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The property tests' seed: `DIRECT_OTP_PROPTEST_SEED`, else a fixed one, so a run is
/// reproducible.
pub fn proptest_seed() -> u64 {
    std::env::var("DIRECT_OTP_PROPTEST_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0x00D1_2EC7_0007)
}

/// The earliest instant `time` can represent.
pub fn min_time() -> OffsetDateTime {
    time::PrimitiveDateTime::MIN.assume_utc()
}

/// The latest instant `time` can represent.
pub fn max_time() -> OffsetDateTime {
    time::PrimitiveDateTime::MAX.assume_utc()
}

/// Whole Unix milliseconds as an instant, clamped to the range `time` can represent.
pub fn at_ms(ms: i64) -> OffsetDateTime {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(if nanos < 0 {
        min_time()
    } else {
        max_time()
    })
}

/// An instant as whole Unix milliseconds, rounded towards the past (as the core does).
pub fn ms_of(t: OffsetDateTime) -> i64 {
    let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

/// A token that is surely not `in_flight`: the same record, revision and kind, another nonce
/// (or, with nothing in flight, a token of some record never issued).
pub fn other_token(in_flight: Option<Token>) -> Token {
    match in_flight {
        Some(t) => {
            let mut v = serde_json::to_value(t).expect("a token serializes");
            let nonce = v["nonce"].as_str().unwrap_or("00000000").to_owned();
            let flipped = u32::from_str_radix(&nonce, 16).unwrap_or(0) ^ 0x5a5a_5a5a;
            v["nonce"] = serde_json::Value::from(format!("{flipped:08x}"));
            serde_json::from_value(v).expect("a forged token")
        }
        None => forged_token(None, 0),
    }
}

/// A token of `record` (or of a made-up record) that was never issued: what a caller
/// restoring a wrong token from storage would hand back. `n` makes it distinct.
pub fn forged_token(record: Option<direct_otp::RecordId>, n: u64) -> Token {
    let record = record.map_or_else(|| "00000000deadbeef".to_owned(), |r| r.to_string());
    serde_json::from_value(serde_json::json!({
        "record": record,
        "revision": n,
        "kind": "resend",
        "nonce": format!("{:08x}", (n as u32) ^ 0xdead_beef),
    }))
    .expect("a forged token")
}

std::thread_local! {
    /// The tokens a test run numbered (see [`token`]), and the record they belong to.
    static TOKENS: std::cell::RefCell<(Option<direct_otp::RecordId>, std::collections::HashMap<u64, Token>)> =
        Default::default();
}

/// Starts numbering tokens for a new run of `record` (a reference model numbers the
/// requests it expects 1, 2, 3, ...; the real tokens carry random nonces).
pub fn bind_tokens(record: direct_otp::RecordId) {
    TOKENS.with(|t| *t.borrow_mut() = (Some(record), Default::default()));
}

/// Records that the model's request number `n` is the real token `t`.
pub fn register_token(n: u64, t: Token) {
    TOKENS.with(|tokens| {
        tokens.borrow_mut().1.insert(n, t);
    });
}

/// The real token for the model's request number `n`; for a number never issued, a forged
/// token of the bound record (always the same one for the same `n`).
pub fn token(n: u64) -> Token {
    TOKENS.with(|tokens| {
        let (record, issued) = &mut *tokens.borrow_mut();
        *issued.entry(n).or_insert_with(|| forged_token(*record, n))
    })
}

/// The revision moves by one with every change (a step makes at most `most` changes) and
/// only then; the record id never changes.
pub fn check_revision(before: &Challenge, after: &Challenge, most: u64, context: &str) {
    assert_eq!(
        before.record_id(),
        after.record_id(),
        "{context}: record id"
    );
    let moved = after.revision().checked_sub(before.revision());
    if before == after {
        assert_eq!(moved, Some(0), "{context}: revision without a change");
    } else {
        assert!(
            moved.is_some_and(|m| (1..=most).contains(&m)),
            "{context}: revision {} -> {} for a change of at most {most} steps",
            before.revision(),
            after.revision()
        );
    }
}

/// The OTP used by the invariant checks' probing submits.
const PROBE_OTP: &str = "86420975";

/// A `CHARGED` answer: what a stale answer would most like to smuggle in.
const CHARGED: &[u8] = br#"{"status":"CHARGED","order_id":"x"}"#;

/// Checks every invariant that holds for any challenge at any time, without changing it.
/// Panics (with `context` in the message) on the first violation.
///
/// * counters never exceed their limits;
/// * the state survives a serde JSON round trip unchanged (and re-serializes identically);
/// * the status is final exactly when the challenge is final;
/// * a final challenge refuses every command with `AlreadyFinal` and runs no timer;
/// * with a request in flight, every command is refused with `InFlight(token)` and no timer
///   runs: at most one request is ever in flight;
/// * a refused command changes nothing, and `check_*`/`can_*` agree with the command;
/// * an answer or a transport failure for a token that is not in flight is refused with
///   an `InputError` and changes nothing;
/// * `poll_timeout` and `handle_timeout` agree: at the deadline the timer fires, after it the
///   deadline moves strictly later or disappears (no busy loop), and 1 ms before it the
///   timer fires only if the challenge has already seen a later time (in which case it
///   fires at any time, however early);
/// * a spurious `handle_timeout` (nothing due) changes nothing.
pub fn check_challenge(c: &Challenge, config: &Config, now: OffsetDateTime, context: &str) {
    check_state(c, context);
    check_behaviour(c, config, now, context);
}

/// The invariants of the state itself: counters within limits, finality agreeing with the
/// status. A challenge built by the library always keeps them, and loading refuses a
/// persisted state that breaks them (see `docs/testing.md`).
pub fn check_state(c: &Challenge, context: &str) {
    let fail = &Fail { c, context };
    if c.otp_sends() > c.send_limit() {
        fail.now(format!(
            "otp_sends {} > send_limit {}",
            c.otp_sends(),
            c.send_limit()
        ));
    }
    if c.attempts() > c.attempt_limit() {
        fail.now(format!(
            "attempts {} > attempt_limit {}",
            c.attempts(),
            c.attempt_limit()
        ));
    }
    if c.sends_left() != c.send_limit() - c.otp_sends()
        || c.attempts_left() != c.attempt_limit() - c.attempts()
    {
        fail.now("sends_left/attempts_left disagree with the counters".into());
    }

    if c.is_final() != c.status().is_final() {
        fail.now(format!(
            "is_final {} but status {}",
            c.is_final(),
            c.status()
        ));
    }
}

/// The invariants of behaviour: the round trip, refusals, stale tokens and timers of
/// [`check_challenge`].
pub fn check_behaviour(c: &Challenge, config: &Config, now: OffsetDateTime, context: &str) {
    let fail = &Fail { c, context };
    round_trip(c, fail);

    let step = c.next_step(now);
    if c.is_final() {
        if step != NextStep::Finished(c.status().clone()) {
            fail.now(format!("final, but next_step is {step:?}"));
        }
        if c.poll_timeout().is_some() {
            fail.now("a final challenge runs a timer".into());
        }
        let want = Refusal::AlreadyFinal(c.status().clone());
        for (name, got) in commands(c, config, now) {
            if got != Err(want.clone()) {
                fail.now(format!("final, but {name} gave {got:?}"));
            }
        }
    }
    if let Some(t) = c.in_flight() {
        if step != NextStep::Wait(t) {
            fail.now(format!("in flight, but next_step is {step:?}"));
        }
        if c.poll_timeout().is_some() {
            fail.now("a timer runs while a request is in flight".into());
        }
        for (name, got) in commands(c, config, now) {
            if got != Err(Refusal::InFlight(t)) {
                fail.now(format!("{t} in flight, but {name} gave {got:?}"));
            }
        }
    }

    // Refused commands change nothing; may_submit and may_resend tell the same refusal.
    let otp = Otp::new(PROBE_OTP).expect("valid OTP");
    let mut probe = c.clone();
    match probe.submit(config, &otp, now) {
        Ok(_) => {
            if c.may_submit(now).is_err() {
                fail.now("submit accepted, but may_submit refuses it".into());
            }
        }
        Err(r) => {
            unchanged(c, &probe, "a refused submit", fail);
            if c.may_submit(now) != Err(r.clone()) {
                fail.now(format!(
                    "submit refused with {r:?}, may_submit says {:?}",
                    c.may_submit(now)
                ));
            }
        }
    }
    let mut probe = c.clone();
    match probe.resend(config, now) {
        Ok(_) => {
            if c.may_resend(now).is_err() {
                fail.now("resend accepted, but may_resend refuses it".into());
            }
        }
        Err(r) => {
            unchanged(c, &probe, "a refused resend", fail);
            if c.may_resend(now) != Err(r.clone()) {
                fail.now(format!(
                    "resend refused with {r:?}, may_resend says {:?}",
                    c.may_resend(now)
                ));
            }
        }
    }
    let mut probe = c.clone();
    if probe.check_status(config, now).is_err() {
        unchanged(c, &probe, "a refused check_status", fail);
    }
    let mut probe = c.clone();
    if probe.go_to_bank_page(now).is_err() {
        unchanged(c, &probe, "a refused go_to_bank_page", fail);
    }

    // Answers for a token that is not in flight change nothing.
    let stale = other_token(c.in_flight());
    let mut probe = c.clone();
    if probe.handle_response(stale, 200, CHARGED, now).is_ok() {
        fail.now(format!("an answer for {stale} was accepted"));
    }
    unchanged(c, &probe, "a stale answer", fail);
    if probe
        .handle_send_failure(stale, SendFailure::MaybeSent, now)
        .is_ok()
    {
        fail.now(format!("a send failure for {stale} was accepted"));
    }
    unchanged(c, &probe, "a stale send failure", fail);

    check_timers(c, fail);
}

/// Reports a broken invariant, with the state that broke it.
struct Fail<'a> {
    c: &'a Challenge,
    context: &'a str,
}

impl Fail<'_> {
    fn now(&self, what: String) -> ! {
        panic!("invariant broken ({}): {what}\n{:#?}", self.context, self.c)
    }
}

/// A serde JSON round trip gives an equal challenge that serializes the same.
fn round_trip(c: &Challenge, fail: &Fail<'_>) {
    let json = match serde_json::to_string(c) {
        Ok(j) => j,
        Err(e) => fail.now(format!("serialize failed: {e}")),
    };
    let back: Challenge = match serde_json::from_str(&json) {
        Ok(b) => b,
        Err(e) => fail.now(format!("deserialize failed: {e}\n{json}")),
    };
    if &back != c {
        fail.now(format!(
            "the round trip changed the state\n{json}\n{back:#?}"
        ));
    }
    match serde_json::to_string(&back) {
        Ok(again) if again == json => {}
        other => fail.now(format!("re-serialized differently: {other:?}\n{json}")),
    }
}

fn unchanged(before: &Challenge, after: &Challenge, what: &str, fail: &Fail<'_>) {
    if before != after {
        fail.now(format!("{what} changed the state into\n{after:#?}"));
    }
}

/// The four commands, run on clones, as `Result<(), Refusal>`.
fn commands(
    c: &Challenge,
    config: &Config,
    now: OffsetDateTime,
) -> [(&'static str, Result<(), Refusal>); 4] {
    let otp = Otp::new(PROBE_OTP).expect("valid OTP");
    [
        ("resend", c.clone().resend(config, now).map(drop)),
        ("submit", c.clone().submit(config, &otp, now).map(drop)),
        (
            "check_status",
            c.clone().check_status(config, now).map(drop),
        ),
        ("go_to_bank_page", c.clone().go_to_bank_page(now).map(drop)),
    ]
}

fn check_timers(c: &Challenge, fail: &Fail<'_>) {
    // Does the timer fire at the earliest time of all? Only if the challenge has already
    // seen a time at or past the deadline (earlier times count as the latest time seen).
    let mut earliest = c.clone();
    let fires_at_earliest = earliest.handle_timeout(min_time()).is_some();
    if !fires_at_earliest {
        unchanged(c, &earliest, "a spurious handle_timeout", fail);
    }
    match c.poll_timeout() {
        None => {
            let mut probe = c.clone();
            if let Some(e) = probe.handle_timeout(max_time()) {
                fail.now(format!(
                    "poll_timeout is None, but handle_timeout fired {e:?}"
                ));
            }
            unchanged(c, &probe, "handle_timeout without a deadline", fail);
            if fires_at_earliest {
                fail.now("no deadline, but the timer fired".into());
            }
        }
        Some(t) => {
            let mut probe = c.clone();
            let Some(event) = probe.handle_timeout(t) else {
                fail.now(format!(
                    "poll_timeout is {t}, but handle_timeout({t}) fired nothing"
                ));
            };
            if let Some(next) = probe.poll_timeout() {
                if next <= t {
                    fail.now(format!(
                        "after {event:?} at {t}, the next deadline is {next}: a busy loop"
                    ));
                }
            }
            if c.resend_available_at().is_some_and(|r| r != t) {
                fail.now("resend_available_at is not the next deadline".into());
            }
            if let Some(before) = t.checked_sub(Duration::milliseconds(1)) {
                let mut probe = c.clone();
                let fired = probe.handle_timeout(before).is_some();
                if fired != fires_at_earliest {
                    fail.now(format!(
                        "handle_timeout 1 ms before the deadline {t} fired: {fired}, \
                         at the earliest time: {fires_at_earliest}"
                    ));
                }
                if !fired {
                    unchanged(c, &probe, "handle_timeout before the deadline", fail);
                }
            }
        }
    }
}

/// The most server text an error's `Display` may carry, in bytes (7 fields of at most 200
/// characters, plus the library's own words).
pub const MAX_ERROR_DISPLAY: usize = 8 * 1024;
/// The same bound for `Debug`, which escapes characters (up to 10 bytes each).
pub const MAX_ERROR_DEBUG: usize = 20 * 1024;

/// Checks that an error's `Display` and `Debug` stay small whatever the server sent.
pub fn check_error_size(e: &dyn std::error::Error, context: &str) {
    let shown = e.to_string();
    assert!(
        shown.len() <= MAX_ERROR_DISPLAY,
        "{context}: error Display is {} bytes",
        shown.len()
    );
    let debug = format!("{e:?}");
    assert!(
        debug.len() <= MAX_ERROR_DEBUG,
        "{context}: error Debug is {} bytes",
        debug.len()
    );
}

/// Checks that an outcome agrees with the state of the challenge it came from, and that any
/// error it carries is small.
pub fn check_outcome(c: &Challenge, outcome: &Outcome, now: OffsetDateTime, context: &str) {
    let fail = |what: String| -> ! { panic!("outcome {outcome:?} ({context}): {what}\n{c:#?}") };
    if c.in_flight().is_some() {
        fail("a request is still in flight after its answer".into());
    }
    match outcome {
        Outcome::Approved(s) => {
            if !(c.is_final() && s.is_success() && c.status() == s) {
                fail("approved, but the challenge is not a final success".into());
            }
        }
        Outcome::Declined(s) => {
            if !(c.is_final() && s.is_final() && !s.is_success() && c.status() == s) {
                fail("declined, but the challenge is not a final failure".into());
            }
        }
        Outcome::Pending(s) => {
            if c.is_final() || c.status() != s {
                fail("pending, but the status differs or is final".into());
            }
        }
        Outcome::OtpSent { sends_left } => {
            if *sends_left != c.sends_left() {
                fail(format!("sends_left {sends_left} but {}", c.sends_left()));
            }
        }
        Outcome::WrongOtp { attempts_left } => {
            if *attempts_left != c.attempts_left() || *attempts_left == 0 {
                fail(format!(
                    "attempts_left {attempts_left} but {}",
                    c.attempts_left()
                ));
            }
        }
        Outcome::AttemptLimitReached => {
            if c.may_submit(now).is_ok() {
                fail("attempts exhausted, but submit is allowed".into());
            }
        }
        Outcome::SendLimitReached => {
            if c.may_resend(now).is_ok() {
                fail("send limit reached, but resend is allowed".into());
            }
        }
        Outcome::CheckStatus(why) => {
            if c.next_step(now) != NextStep::CheckStatus
                || c.may_submit(now).is_ok()
                || c.may_resend(now).is_ok()
            {
                fail("must reconcile, but the next step is not a status check".into());
            }
            if let Uncertainty::Response(e) = why {
                check_error_size(e, context);
            }
        }
        Outcome::Rejected(e) => check_error_size(e, context),
        Outcome::Unauthorized(e) => {
            if !matches!(e.http_status(), 401 | 403) {
                fail("unauthorized without a 401 or 403".into());
            }
            check_error_size(&direct_otp::ResponseError::Api(e.clone()), context);
        }
        Outcome::NotDelivered => {}
        other => fail(format!("an outcome this check does not know: {other:?}")),
    }
}

/// Checks what starting gave: a challenge that keeps every invariant, a redirect with a
/// URL, a final status, or a small error.
pub fn check_started(
    started: &Result<Started, StartError>,
    config: &Config,
    now: OffsetDateTime,
    context: &str,
) {
    match started {
        Ok(Started::Challenge(c)) => {
            if c.in_flight().is_some() || c.is_final() {
                panic!("{context}: a new challenge is in flight or final: {c:#?}");
            }
            check_challenge(c, config, now, context);
        }
        Ok(Started::Redirect { url, .. }) => assert!(!url.is_empty(), "{context}: empty redirect"),
        Ok(Started::Finished(s)) => assert!(s.is_final(), "{context}: finished with {s}"),
        Ok(other) => panic!("{context}: a start result this check does not know: {other:?}"),
        Err(e) => check_error_size(e, context),
    }
}

/// Strings that must never appear in anything the library shows or stores.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Must not appear anywhere as a substring (API key, its Base64 form, card number,
    /// card token, cardholder name).
    text: Vec<String>,
    /// Digit strings (OTPs) that must not appear as a whole number: not preceded or
    /// followed by another digit, so a timestamp that happens to contain the digits is no
    /// false alarm.
    numbers: Vec<String>,
}

impl Secrets {
    /// The API key `key` of `config`, with its `Authorization` header value (`Basic ...`)
    /// and that value's Base64 part.
    pub fn with_key(mut self, key: &str, config: &Config) -> Self {
        self.text.push(key.to_owned());
        let request = direct_otp::StartRequest::new(
            "ord_secret_probe",
            "acme",
            "routing_probe",
            direct_otp::PaymentSource::Token {
                card_token: "tok_probe".into(),
                cvv: None,
            },
        )
        .expect("valid ids")
        .request(config);
        let basic = request
            .header("authorization")
            .expect("every request carries Authorization")
            .to_owned();
        let b64 = basic.trim_start_matches("Basic ").to_owned();
        assert!(b64.len() >= 16, "the Base64 credentials are distinctive");
        self.text.push(basic);
        self.text.push(b64);
        self
    }

    /// A secret text (card number, token, name).
    pub fn with_text(mut self, s: &str) -> Self {
        self.text.push(s.to_owned());
        self
    }

    /// A secret digit string (an OTP).
    pub fn with_number(mut self, s: &str) -> Self {
        assert!(s.bytes().all(|b| b.is_ascii_digit()));
        self.numbers.push(s.to_owned());
        self
    }

    /// Panics if `shown` (something shown or stored: Debug, Display, JSON) holds a secret.
    pub fn check(&self, what: &str, shown: &str) {
        for s in &self.text {
            assert!(
                !shown.contains(s.as_str()),
                "{what} leaks the secret {s:?}:\n{shown}"
            );
        }
        for n in &self.numbers {
            assert!(
                !contains_number(shown, n),
                "{what} leaks the OTP {n}:\n{shown}"
            );
        }
    }

    /// Checks the Debug, the serialized state and the next step of a challenge.
    pub fn check_challenge(&self, c: &Challenge, now: OffsetDateTime) {
        self.check("Challenge Debug", &format!("{c:?}"));
        self.check("Challenge Debug (pretty)", &format!("{c:#?}"));
        let json = serde_json::to_string(c).expect("serializes");
        self.check("serialized Challenge", &json);
        self.check("next_step", &format!("{:?}", c.next_step(now)));
        self.check("card summary", &format!("{:?}", c.card()));
    }

    /// Checks the Debug and (when there is one) the Display of a value.
    pub fn check_debug(&self, what: &str, v: &dyn std::fmt::Debug) {
        self.check(what, &format!("{v:?}"));
        self.check(what, &format!("{v:#?}"));
    }

    /// Checks the Debug and the Display of an error.
    pub fn check_error(&self, what: &str, e: &dyn std::error::Error) {
        self.check(what, &format!("{e:?}"));
        self.check(what, &e.to_string());
        let mut source = e.source();
        while let Some(s) = source {
            self.check(what, &s.to_string());
            source = s.source();
        }
    }
}

/// `haystack` contains `digits` not directly preceded or followed by another digit.
pub fn contains_number(haystack: &str, digits: &str) -> bool {
    let bytes = haystack.as_bytes();
    haystack.match_indices(digits).any(|(i, m)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + m.len()).copied();
        !before.is_some_and(|b| b.is_ascii_digit()) && !after.is_some_and(|b| b.is_ascii_digit())
    })
}
