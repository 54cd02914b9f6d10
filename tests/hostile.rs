//! Hostile input to every response interpreter: the start answer (both entry points) and
//! the answers to a resend, a submit and an order-status check in flight (from the OTP
//! page and from the bank page), under every HTTP status class.
//!
//! Arbitrary bytes, arbitrary JSON (with the real field names, so wrong types land where
//! the library looks), nesting deeper than serde_json's recursion limit, numbers too big for
//! any type, 10 MB strings, duplicate keys, NaN-like tokens, invalid UTF-8 and a BOM. Each
//! must give a typed error or an outcome that agrees with the challenge, never a panic;
//! every invariant of `tests/it/invariants/mod.rs` holds afterwards; errors stay small; and
//! memory stays proportional to the input (measured by a per-thread counting allocator).

#[path = "it/common/mod.rs"]
mod common;
#[path = "it/invariants/mod.rs"]
mod invariants;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::{config, fixture, fixture_json, secs, ROUTING, T0};
use direct_otp::{
    Challenge, InputError, Malformed, Otp, Outcome, PaymentSource, Policy, ResponseError,
    StartError, StartRequest, Started, Status, Uncertainty,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use serde_json::{json, Value};
use time::OffsetDateTime;

// ----- Memory accounting ------------------------------------------------------------------

/// Counts the bytes live on the current thread, and their peak.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grow(n: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(n);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrink(n: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(n)));
}

// SAFETY: every call is forwarded to `System` unchanged; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrink(layout.size());
            grow(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the most bytes it had allocated at once on this
/// thread (beyond what was live before).
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    (r, PEAK.with(Cell::get) - base)
}

// ----- The interpreters ---------------------------------------------------------------------

const STATUSES: [u16; 22] = [
    0, 100, 101, 200, 201, 204, 299, 301, 304, 399, 400, 401, 403, 404, 409, 429, 499, 500, 502,
    503, 599, 65535,
];

fn later() -> OffsetDateTime {
    secs(60)
}

/// Challenges with a request of each kind in flight: resend, submit, order status from
/// the OTP page, order status from the bank page.
fn in_flight() -> Vec<(&'static str, Challenge, direct_otp::Token)> {
    let config = config();
    let fresh = common::challenge();
    let mut out = Vec::new();
    let mut c = fresh.clone();
    let t = c.resend(&config, secs(31)).unwrap().token;
    out.push(("resend", c, t));
    let mut c = fresh.clone();
    let t = c
        .submit(&config, &Otp::new("123456").unwrap(), secs(5))
        .unwrap()
        .token;
    out.push(("submit", c, t));
    let mut c = fresh.clone();
    let t = c.check_status(&config, secs(5)).unwrap().token;
    out.push(("order status", c, t));
    let mut c = fresh;
    c.go_to_bank_page(secs(5)).unwrap();
    let t = c.check_status(&config, secs(6)).unwrap().token;
    out.push(("order status (bank page)", c, t));
    out
}

fn start_request() -> StartRequest {
    StartRequest::new(
        "ord_dotp_1001",
        "acme",
        ROUTING,
        PaymentSource::Token {
            card_token: "tok_1".into(),
            cvv: None,
        },
    )
    .unwrap()
}

/// What each interpreter made of one answer.
struct Results {
    starts: [Result<Started, StartError>; 2],
    answers: Vec<(&'static str, Challenge, Outcome)>,
}

/// Feeds `body` under `status` to every interpreter and checks every invariant.
fn interpret(status: u16, body: &[u8]) -> Results {
    let config = config();
    let context = format!("HTTP {status}, {} bytes", body.len());
    let a = Started::from_response(ROUTING, Policy::default(), status, body, T0);
    invariants::check_started(&a, &config, T0, &context);
    let b = start_request().handle_response(status, body, T0);
    invariants::check_started(&b, &config, T0, &context);
    let mut answers = Vec::new();
    for (kind, mut c, t) in in_flight() {
        let context = format!("{kind}: {context}");
        let before = c.clone();
        let outcome = match c.handle_response(t, status, body, later()) {
            Ok(outcome) => outcome,
            // An answer about another order or transaction is refused and changes nothing.
            Err(InputError::Foreign(_)) => {
                assert_eq!(
                    c, before,
                    "{context}: a foreign answer changed the challenge"
                );
                assert_eq!(c.in_flight(), Some(t), "{context}");
                continue;
            }
            Err(e) => panic!("{context}: the token in flight was refused: {e}"),
        };
        invariants::check_outcome(&c, &outcome, later(), &context);
        invariants::check_challenge(&c, &config, later(), &context);
        answers.push((kind, c, outcome));
    }
    Results {
        starts: [a, b],
        answers,
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

// ----- Arbitrary bytes and JSON -------------------------------------------------------------

/// The field names the library reads, and a few it does not.
const KEYS: [&str; 32] = [
    "status",
    "order_id",
    "id",
    "txn_uuid",
    "payment",
    "authentication",
    "method",
    "url",
    "params",
    "challenge_id",
    "auth_type",
    "auth_method",
    "card_isin",
    "card_issuer_bank_name",
    "card_brand",
    "fallback_url",
    "submit_otp_allowed",
    "resend_otp_allowed",
    "times_otp_sent",
    "max_otp_send_limit",
    "current_attempt",
    "max_attempts",
    "payment_info",
    "card",
    "last_four_digits",
    "card_issuer",
    "error_code",
    "error_message",
    "error_info",
    "code",
    "request_id",
    "x",
];

/// Any JSON value, its objects keyed mostly by the real field names, so every field gets
/// every type somewhere.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            "PENDING_VBV",
            "CHARGED",
            "AUTHORIZING",
            "OTP",
            "true",
            "4",
            "-1",
            "",
            "max_limit_exceeded",
            "DUPLICATE_REQUEST",
            "LP_INCORRECT_OTP",
            "txn_1",
            "../../x",
            "a/b?c#d",
            "\u{202e}\u{0}\n",
        ])
        .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![4 => prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned), 1 => ".{0,8}"],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A fixture with the value at one of its paths replaced by `v`.
fn patched(name: &str, path: &[&str], v: Value) -> Vec<u8> {
    let mut doc = fixture_json(name);
    invariants::patch::set(&mut doc, path, v);
    doc.to_string().into_bytes()
}

const FIXTURES: [&str; 8] = [
    "start_direct_otp",
    "resend_counters",
    "submit_pending_wrong_otp",
    "submit_charged",
    "order_status_charged",
    "resend_limit_exceeded",
    "error_duplicate_request",
    "submit_wrong_otp_400",
];

proptest! {
    #![proptest_config(proptest_config(1024))]

    /// Arbitrary bytes under every status class.
    #[test]
    fn arbitrary_bytes(
        status in prop::sample::select(STATUSES.to_vec()),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        interpret(status, &body);
    }

    /// Arbitrary JSON documents made of the real field names.
    #[test]
    fn arbitrary_json(
        status in prop::sample::select(STATUSES.to_vec()),
        doc in json_value(),
    ) {
        interpret(status, doc.to_string().as_bytes());
    }

    /// The documented shapes with one field the library reads replaced by anything.
    #[test]
    fn fixtures_with_a_field_of_any_type(
        status in prop::sample::select(vec![200u16, 400, 500]),
        name in prop::sample::select(FIXTURES.to_vec()),
        path in prop::sample::select(invariants::patch::RESPONSE_PATHS.to_vec()),
        v in json_value(),
    ) {
        interpret(status, &patched(name, path, v));
    }
}

// ----- Each hostile kind, checked one by one ---------------------------------------------------

/// Every interpreter under a 200, a 400 and a 500.
fn interpret_each_class(body: &[u8]) -> Vec<Results> {
    [200, 400, 500]
        .into_iter()
        .map(|s| interpret(s, body))
        .collect()
}

#[test]
fn nesting_beyond_the_recursion_limit_is_an_error_not_a_stack_overflow() {
    let deep = |open: &str, close: &str, n: usize| format!("{}{}", open.repeat(n), close.repeat(n));
    let mut bodies = vec![
        deep("[", "]", 100_000),
        deep("{\"a\":", "}", 100_000),
        deep("{\"status\":", "}", 100_000),
    ];
    // Deep inside fields the library reads leniently or skips.
    for field in [
        "times_otp_sent",
        "submit_otp_allowed",
        "fallback_url",
        "unknown",
    ] {
        let inner = deep("[", "]", 10_000);
        bodies.push(
            String::from_utf8(patched(
                "submit_pending_wrong_otp",
                &["payment", "authentication", "params", field],
                json!("HOLE"),
            ))
            .unwrap()
            .replace("\"HOLE\"", &inner),
        );
    }
    for (i, body) in bodies.iter().enumerate() {
        for results in interpret_each_class(body.as_bytes()) {
            for (kind, c, outcome) in &results.answers {
                assert!(!c.is_final(), "{kind}: {outcome:?}");
            }
        }
        let r = Started::from_response(ROUTING, Policy::default(), 200, body.as_bytes(), T0);
        if i < 3 {
            // Nothing usable: a typed error.
            assert!(
                matches!(
                    r,
                    Err(StartError::Response(ResponseError::Malformed { .. }))
                ),
                "{r:?}"
            );
        } else {
            // Deep nesting in one field reads as that field absent (serde_json skips it
            // without recursion); the rest of the answer still starts the challenge.
            assert!(matches!(r, Ok(Started::Challenge(_))), "{r:?}");
        }
    }
}

#[test]
fn numbers_beyond_every_type() {
    for n in [
        "1e400",
        "-1e400",
        "1e-400",
        "123456789012345678901234567890",
        "-123456789012345678901234567890",
        "18446744073709551616",
        "4294967296",
        "-0",
        "-0.0",
        "0.0000000000000000000000001",
    ] {
        for path in [
            &["payment", "authentication", "params", "times_otp_sent"][..],
            &["payment", "authentication", "params", "max_attempts"],
            &["payment", "authentication", "params", "submit_otp_allowed"],
            &["payment", "authentication", "params", "id"],
            &["status"],
        ] {
            let body = String::from_utf8(patched("submit_pending_wrong_otp", path, json!("HOLE")))
                .unwrap()
                .replace("\"HOLE\"", n);
            interpret_each_class(body.as_bytes());
        }
    }
    // A counter that fits no u32 is absent: the answer still counts, locally.
    let body = String::from_utf8(patched(
        "resend_counters",
        &["payment", "authentication", "params", "times_otp_sent"],
        json!("HOLE"),
    ))
    .unwrap()
    .replace("\"HOLE\"", "1e400");
    let results = interpret(200, body.as_bytes());
    let (_, _, outcome) = &results.answers[0];
    assert!(
        matches!(outcome, Outcome::CheckStatus(_) | Outcome::OtpSent { .. }),
        "{outcome:?}"
    );
}

#[test]
fn nan_like_tokens_and_broken_encodings_are_syntax_errors() {
    let bodies: [&[u8]; 14] = [
        b"NaN",
        b"{\"status\": NaN}",
        b"{\"status\": Infinity}",
        b"{\"status\": -Infinity}",
        b"{\"times_otp_sent\": nan}",
        b"\xef\xbb\xbf{\"status\":\"CHARGED\"}",
        b"{\"status\":\"CHAR\xffGED\"}",
        b"{\"status\":\"\xc0\xafCHARGED\"}",
        b"{\"status\":\"\\ud800\"}",
        b"{\"status\":\"CHARGED\"",
        b"{\"status\":\"CHARGED\"}}",
        b"{\"status\":\"CHARGED\",}",
        b"{'status':'CHARGED'}",
        b"\0",
    ];
    for body in bodies {
        for results in interpret_each_class(body) {
            for (kind, c, outcome) in &results.answers {
                assert!(
                    !c.is_final(),
                    "{kind} {:?}: {outcome:?}",
                    String::from_utf8_lossy(body)
                );
            }
        }
        let r = Started::from_response(ROUTING, Policy::default(), 200, body, T0);
        assert!(r.is_err(), "{:?}: {r:?}", String::from_utf8_lossy(body));
    }
}

/// True for an outcome saying the answer could not be read (a duplicate key, say).
fn unreadable(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::CheckStatus(Uncertainty::Response(ResponseError::Malformed {
            problem: Malformed::Shape { .. },
            ..
        })) | Outcome::Rejected(ResponseError::Malformed {
            problem: Malformed::Shape { .. },
            ..
        })
    )
}

#[test]
fn duplicate_keys_are_never_read_as_either_value() {
    // A duplicated status: no interpreter believes either value.
    for body in [
        r#"{"status":"CHARGED","status":"PENDING_VBV"}"#,
        r#"{"status":"PENDING_VBV","status":"CHARGED"}"#,
    ] {
        let results = interpret(200, body.as_bytes());
        for (kind, c, outcome) in &results.answers {
            assert!(unreadable(outcome), "{kind} {body}: {outcome:?}");
            assert!(!c.is_final());
        }
        assert!(results.starts.iter().all(Result::is_err), "{body}");
    }
    // A duplicate inside the transaction shape sinks the transaction answers (resend,
    // submit, start); the order shape reads only `status`, so it is unaffected.
    for body in [
        r#"{"status":"CHARGED","payment":{"authentication":{"params":{"current_attempt":1,"current_attempt":9}}}}"#,
        r#"{"status":"CHARGED","payment":{},"payment":{}}"#,
    ] {
        let results = interpret(200, body.as_bytes());
        for (kind, c, outcome) in &results.answers {
            if kind.starts_with("order status") {
                assert_eq!(
                    outcome,
                    &Outcome::Approved(Status::Charged),
                    "{kind} {body}"
                );
            } else {
                assert!(unreadable(outcome), "{kind} {body}: {outcome:?}");
                assert!(!c.is_final());
            }
        }
        assert!(results.starts.iter().all(Result::is_err), "{body}");
    }
    // A duplicated unknown key is skipped like any unknown key.
    let body = r#"{"status":"CHARGED","x":1,"x":2}"#;
    let results = interpret(200, body.as_bytes());
    assert!(matches!(
        results.answers[1].2,
        Outcome::Approved(Status::Charged)
    ));
}

#[test]
fn wrong_types_in_leaf_fields_read_as_absent() {
    // Counters, flags and texts of a wrong type never sink the whole answer.
    let leaves = [
        &["payment", "authentication", "params", "times_otp_sent"][..],
        &["payment", "authentication", "params", "max_otp_send_limit"],
        &["payment", "authentication", "params", "submit_otp_allowed"],
        &["payment", "authentication", "params", "fallback_url"],
        &["payment", "authentication", "params", "card_isin"],
        &["payment_info", "card", "last_four_digits"],
    ];
    for path in leaves {
        for v in [
            json!(null),
            json!(true),
            json!(-1),
            json!(2.5),
            json!([1, [2]]),
            json!({"a": {}}),
        ] {
            let body = patched("resend_counters", path, v.clone());
            let results = interpret(200, &body);
            let (_, _, outcome) = &results.answers[0];
            assert!(
                matches!(outcome, Outcome::OtpSent { .. }),
                "{path:?} = {v}: {outcome:?}"
            );
        }
    }
}

// ----- Size ----------------------------------------------------------------------------------

const TEN_MB: usize = 10 * 1024 * 1024;

/// A 10 MB string in each place a server could put one: a status the library keeps,
/// an error text it trims, an id it refuses, a URL it keeps, a field it skips, and the same
/// with escapes (which serde_json must unescape into a copy); each with the HTTP statuses
/// under which the library reads that place.
fn huge_bodies() -> Vec<(&'static str, Vec<u8>, &'static [u16])> {
    let s = "A".repeat(TEN_MB);
    let escaped = "\\n".repeat(TEN_MB / 2);
    let hole = |name: &str, path: &[&str], fill: &str| {
        String::from_utf8(patched(name, path, json!("HOLE")))
            .unwrap()
            .replace("HOLE", fill)
            .into_bytes()
    };
    vec![
        (
            "status",
            hole("submit_authorizing", &["status"], &s),
            &[200],
        ),
        (
            "error_message",
            hole("resend_limit_exceeded", &["error_message"], &s),
            &[400, 500],
        ),
        (
            "escaped error_message",
            hole("error_internal_500", &["error_message"], &escaped),
            &[500],
        ),
        (
            "error_info.code",
            hole("error_duplicate_request", &["error_info", "code"], &s),
            &[400],
        ),
        (
            "params.id",
            hole(
                "start_direct_otp",
                &["payment", "authentication", "params", "id"],
                &s,
            ),
            &[200],
        ),
        (
            "fallback_url",
            hole(
                "submit_pending_wrong_otp",
                &["payment", "authentication", "params", "fallback_url"],
                &s,
            ),
            &[200],
        ),
        (
            "skipped field",
            hole("submit_charged", &["gateway"], &s),
            &[200],
        ),
        (
            "escaped skipped field",
            hole("submit_charged", &["gateway"], &escaped),
            &[200],
        ),
        ("raw bytes", vec![b'x'; TEN_MB], &[200, 500]),
    ]
}

#[test]
fn ten_megabyte_answers_cost_memory_in_proportion_and_errors_stay_small() {
    for (what, body, statuses) in huge_bodies() {
        let len = body.len();
        for &status in statuses {
            // At most two copies of the input (what the challenge keeps and what the
            // outcome reports), plus a little.
            let bound = 2 * len + (1 << 20);
            let (start, peak) =
                peak_of(|| Started::from_response(ROUTING, Policy::default(), status, &body, T0));
            assert!(
                peak <= bound,
                "start, {what}, HTTP {status}: {peak} bytes for {len}"
            );
            if let Err(e) = &start {
                invariants::check_error_size(e, what);
            }
            drop(start);
            for (kind, c, t) in in_flight() {
                let body = &body;
                let ((c, o), peak) = peak_of(move || {
                    let mut c = c;
                    let o = c.handle_response(t, status, body, later());
                    (c, o)
                });
                assert!(
                    peak <= bound,
                    "{kind}, {what}, HTTP {status}: {peak} bytes for {len}"
                );
                let o = match o {
                    Ok(o) => o,
                    // A huge id is another transaction's: refused, nothing kept.
                    Err(InputError::Foreign(_)) if what == "params.id" => {
                        assert_eq!(c.in_flight(), Some(t), "{kind}, {what}");
                        continue;
                    }
                    Err(e) => panic!("{kind}, {what}: {e}"),
                };
                invariants::check_outcome(&c, &o, later(), what);
                if let Outcome::Rejected(e) | Outcome::CheckStatus(Uncertainty::Response(e)) = &o {
                    invariants::check_error_size(e, what);
                }
                let kept = serde_json::to_string(&c).unwrap().len();
                assert!(
                    kept <= len + 4096,
                    "{kind}, {what}: the state grew to {kept} bytes"
                );
            }
        }
    }
}

#[test]
fn megabyte_error_texts_are_trimmed_to_200_characters() {
    let body = format!(
        r#"{{"status":"error","error_code":"{0}","error_message":"{0}","error_info":{{"code":"{0}","category":"{0}","request_id":"{0}"}}}}"#,
        "é".repeat(1 << 19)
    );
    for (_, mut c, t) in in_flight() {
        let o = c.handle_response(t, 400, body.as_bytes(), later()).unwrap();
        let Outcome::Rejected(ResponseError::Api(e)) = &o else {
            panic!("{o:?}");
        };
        for text in [
            e.error_code(),
            e.error_message(),
            e.info_code(),
            e.category(),
            e.request_id(),
        ] {
            assert_eq!(text.map(|t| t.chars().count()), Some(200));
        }
        invariants::check_error_size(&ResponseError::Api(e.clone()), "trimmed");
    }
}

#[test]
fn every_status_class_with_every_fixture() {
    for name in [
        "start_direct_otp",
        "start_3ds_failover",
        "resend_seed",
        "resend_counters",
        "resend_limit_exceeded",
        "submit_charged",
        "submit_authorized",
        "submit_authentication_failed",
        "submit_juspay_declined",
        "submit_pending_wrong_otp",
        "submit_pending_exhausted",
        "submit_wrong_otp_400",
        "submit_authorizing",
        "order_status_charged",
        "order_status_pending",
        "order_not_found",
        "error_access_denied_401",
        "error_forbidden_403",
        "error_not_found_404",
        "error_internal_500",
        "error_duplicate_request",
        "error_missing_routing_id",
    ] {
        for status in STATUSES {
            let results = interpret(status, &fixture(name));
            if !(200..=299).contains(&status) {
                // A non-2xx answer never finishes a payment or a start.
                for (kind, c, outcome) in &results.answers {
                    assert!(!c.is_final(), "{name} {status} {kind}: {outcome:?}");
                }
                assert!(results.starts.iter().all(Result::is_err), "{name} {status}");
            }
        }
    }
}

#[test]
fn structural_fields_of_a_wrong_type_make_the_answer_unreadable_never_wrong() {
    // Documented in docs/testing.md: leaf fields of a wrong type read as absent, but an
    // object the shape nests in (`payment`, `payment_info`) of a wrong type sinks a
    // transaction-shaped answer: a typed error, or "check the order status".
    for (path, v) in [
        (&["payment"][..], json!("x")),
        (&["payment_info"], json!(5)),
        (&["payment", "authentication"], json!(true)),
        (&["payment", "authentication", "params"], json!("x")),
    ] {
        let results = interpret(200, &patched("submit_charged", path, v.clone()));
        assert!(results.starts.iter().all(Result::is_err), "{path:?} = {v}");
        for (kind, c, outcome) in &results.answers {
            if kind.starts_with("order status") {
                // The order shape reads only `status`.
                assert_eq!(outcome, &Outcome::Approved(Status::Charged), "{path:?}");
            } else {
                assert!(
                    matches!(outcome, Outcome::CheckStatus(_)),
                    "{kind} {path:?} = {v}: {outcome:?}"
                );
                assert!(!c.is_final());
            }
        }
    }
}

// ----- A long-running sandbox -------------------------------------------------------------

/// The embedded sandbox as a long-running server sees it: payment after payment, a quarter
/// of them abandoned at the OTP page, none of their webhooks taken. The bytes it holds stop
/// growing once it keeps `order_capacity` orders: from 400 to 1,600 payments they stay
/// within a few percent (each payment held 5 to 12 kB before orders,
/// transactions and webhook queues were bounded).
#[test]
fn a_long_running_sandbox_holds_flat_memory() {
    use direct_otp::sandbox::{Sandbox, SandboxConfig};
    use direct_otp::Config;

    const CAPACITY: usize = 100;
    let mut bank = SandboxConfig::new("sk_test_flat");
    bank.order_capacity = CAPACITY;
    let base = LIVE.with(Cell::get);
    let mut sandbox = Sandbox::new(bank);
    let config = Config::new(sandbox.base_url(), "sk_test_flat").unwrap();
    let pay = |sandbox: &mut Sandbox, i: usize| {
        let card = PaymentSource::token("tok_visa");
        let start = StartRequest::new(&format!("ord_{i:06}"), "acme", ROUTING, card).unwrap();
        let answer = sandbox.handle_request(&start.request(&config), T0);
        let Ok(Started::Challenge(mut c)) = start.handle_response(answer.status, &answer.body, T0)
        else {
            panic!("expected a challenge")
        };
        if i % 4 == 3 {
            return; // abandoned at the OTP page
        }
        let otp = Otp::new(sandbox.current_otp(c.txn_id()).unwrap()).unwrap();
        let out = c.submit(&config, &otp, T0).unwrap();
        let answer = sandbox.handle_request(&out.request, T0);
        let outcome = c
            .handle_response(out.token, answer.status, &answer.body, T0)
            .unwrap();
        assert!(matches!(outcome, Outcome::Approved(_)));
    };
    let mut held = Vec::new();
    for i in 0..1600 {
        pay(&mut sandbox, i);
        if [400, 800, 1200, 1600].contains(&(i + 1)) {
            held.push(LIVE.with(Cell::get) - base);
        }
    }
    assert_eq!(sandbox.order_count(), CAPACITY);
    assert!(sandbox.queued_webhooks() <= 2 * CAPACITY);
    eprintln!("sandbox bytes after 400 / 800 / 1,200 / 1,600 payments: {held:?}");
    // Flat within the noise of the maps' node and buffer sizes (a few percent), where
    // the unbounded sandbox grew by 5 to 12 kB a payment (+2 to 5 MB from 400 to 1,600).
    let most = held.iter().copied().max().unwrap_or_default() as f64;
    assert!(most < held[0] as f64 * 1.10, "memory grows: {held:?}");
    assert!(most < (CAPACITY * 8 * 1024) as f64, "{held:?}");
    drop(sandbox);
}
