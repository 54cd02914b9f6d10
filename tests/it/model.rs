//! Model-based property tests of the challenge lifecycle: what the bank allows, and what a
//! caller may observe.
//!
//! A real [`Challenge`] runs through random sequences of commands, answers, transport
//! failures, stale answers, clock moves (both ways, to the ends of time) and timers. The
//! test does not restate how the library decides. It keeps a small record of the bank's
//! side ([`Bank`]: what the bank has said, and so what it allows), updated from what each
//! answer *says* (the test generated it, so it knows), and of what the caller did
//! ([`Page`]); after every step it checks that the challenge keeps to them:
//!
//! * the counters and limits are the bank's (stated, or counted when it does not say), never
//!   above the limits, and never lower than before unless the bank said so;
//! * a command is accepted exactly when the bank and the page allow it, a refusal gives a
//!   reason that is true, and a refused command changes nothing;
//! * a resend only once the cooldown since the last OTP is over, and within the limits;
//! * a lost or unknown submit or resend leads to "check status" before any new one;
//! * an answer is applied only to the request in flight; a final challenge never changes;
//! * each class of answer gives its family of outcome (a success status `Approved`, a
//!   failure status `Declined`, each class of error envelope its own family), and an
//!   outcome that changes nothing changes nothing the caller sees;
//! * what the page shows (`next_step`, the timers) agrees with what the commands do;
//!
//! and every invariant of `tests/it/invariants/mod.rs`, and that no secret shows in
//! anything the library printed or stored.
//!
//! Two strategies:
//! * [`lifecycle_follows_the_model`]: answers generated from the documented shapes
//!   (`tests/fixtures`), with lenient variants (counters as strings, flags as `"true"`),
//!   error envelopes of every class, and bytes that are not JSON;
//! * [`lifecycle_against_the_sandbox`]: answers from the simulated server
//!   (`direct_otp::sandbox`) to the challenge's actual requests, with scripted faults.
//!
//! `DIRECT_OTP_PROPTEST_CASES=N` runs N cases per property instead of the default;
//! `DIRECT_OTP_PROPTEST_SEED=S` changes the fixed seed (see `docs/testing.md`).

use crate::common;
use crate::invariants;

use direct_otp::sandbox::{
    BankPageResult, CardFlow, Delivery, Endpoint, Fault, OtpSource, Sandbox, SandboxConfig,
    WrongOtp,
};
use direct_otp::{
    CardDetails, Challenge, Config, InputError, Method, NextStep, Otp, Outcome, PaymentSource,
    Policy, Refusal, RequestKind, ResponseError, SendFailure, StartRequest, Started, Status,
    TimerEvent, Token, Uncertainty,
};
use invariants::{at_ms, ms_of, token, Secrets};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

// ----- Settings and secrets -------------------------------------------------------------

const KEY: &str = "sk_test_SECRETKEY";
const ROUTING: &str = "customer_model_1";
/// OTPs of 6 to 8 digits that no number the library prints could equal by chance.
const OTPS: [&str; 3] = ["86420975", "5038271", "917364"];
const CARD_NUMBER: &str = "4000123498765432";
const CARD_CVV: &str = "7391";
const CARD_TOKEN: &str = "tok_SECRETCARDTOKEN";
const CARD_NAME: &str = "Zyxwv Secretholder";
/// 2026-11-25 10:00:00 UTC.
const T0_MS: i64 = 1_795_600_800_000;

const ORDER_ID: &str = "ord_model_1";
const TXN_ID: &str = "txn_model_1";
const CHALLENGE_ID: &str = "ch_model_1";

fn proptest_config(default_cases: u32) -> ProptestConfig {
    let cases = invariants::proptest_cases(default_cases);
    let seed = invariants::proptest_seed();
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        // The seed is fixed, so a failure reproduces without a regressions file.
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

fn config() -> Config {
    Config::sandbox(KEY).expect("valid config")
}

fn secrets(config: &Config) -> Secrets {
    let mut s = Secrets::default()
        .with_key(KEY, config)
        .with_text(CARD_NUMBER)
        .with_text(CARD_TOKEN)
        .with_text(CARD_NAME);
    for otp in OTPS {
        s = s.with_number(otp);
    }
    s
}

fn card(raw: bool) -> PaymentSource {
    if raw {
        PaymentSource::Card(CardDetails {
            number: CARD_NUMBER.into(),
            expiry_month: "09".into(),
            expiry_year: "2031".into(),
            cvv: CARD_CVV.into(),
            name_on_card: Some(CARD_NAME.into()),
        })
    } else {
        PaymentSource::Token {
            card_token: CARD_TOKEN.into(),
            cvv: Some(CARD_CVV.into()),
        }
    }
}

// ----- Time -------------------------------------------------------------------------------

fn min_ms() -> i64 {
    ms_of(invariants::min_time())
}

fn max_ms() -> i64 {
    ms_of(invariants::max_time())
}

/// `a + d` milliseconds, saturating and clamped to the range `time` represents.
fn plus(a: i64, d: i64) -> i64 {
    a.saturating_add(d).clamp(min_ms(), max_ms())
}

/// Whole milliseconds of a policy duration, as the core counts them (negative is zero).
fn policy_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The test's clock: whole milliseconds plus a sub-millisecond part the core ignores.
#[derive(Debug, Clone, Copy)]
struct Clock {
    ms: i64,
    sub_ns: u32,
}

impl Clock {
    fn now(self) -> OffsetDateTime {
        let t = at_ms(self.ms);
        t.checked_add(Duration::nanoseconds(i64::from(self.sub_ns)))
            .filter(|n| ms_of(*n) == self.ms)
            .unwrap_or(t)
    }

    /// Jumps to the next deadline of `c` (only to a cooldown's end unless `expiry_too`), if
    /// there is one, and returns it.
    fn jump_to_deadline(&mut self, c: &Challenge, expiry_too: bool) -> Option<OffsetDateTime> {
        let deadline = if expiry_too {
            c.poll_timeout()
        } else {
            c.resend_available_at()
        }?;
        *self = Clock {
            ms: ms_of(deadline),
            sub_ns: 0,
        };
        Some(deadline)
    }

    /// Moves the clock; `c` tells where its deadlines are.
    fn apply(&mut self, m: &ClockMove, c: &Challenge) {
        let deadline = |expiry_too: bool| {
            if expiry_too {
                c.poll_timeout()
            } else {
                c.resend_available_at()
            }
            .map(ms_of)
        };
        self.ms = match *m {
            ClockMove::Forward(ms) => plus(self.ms, i64::from(ms)),
            ClockMove::Back(ms) => plus(self.ms, -i64::from(ms)),
            ClockMove::FarForward(s) => plus(self.ms, s.saturating_mul(1000)),
            ClockMove::FarBack(s) => plus(self.ms, -s.saturating_mul(1000)),
            ClockMove::ToEnd => max_ms(),
            ClockMove::ToStart => min_ms(),
            ClockMove::ToDeadline(delta, expiry_too) => match deadline(expiry_too) {
                Some(d) => plus(d, i64::from(delta)),
                None => self.ms,
            },
        };
        if let ClockMove::Forward(ms) | ClockMove::Back(ms) = *m {
            self.sub_ns = (ms % 7) * 142_857;
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum ClockMove {
    Forward(u32),
    Back(u32),
    FarForward(i64),
    FarBack(i64),
    ToEnd,
    ToStart,
    /// To the next deadline plus this many milliseconds (stays put without one); only to a
    /// cooldown's end unless the flag allows the expiry too.
    ToDeadline(i8, bool),
}

fn clock_move() -> BoxedStrategy<ClockMove> {
    prop_oneof![
        24 => (0u32..=30_000).prop_map(ClockMove::Forward),
        4 => (30_001u32..=900_000).prop_map(ClockMove::Forward),
        6 => (0u32..=120_000).prop_map(ClockMove::Back),
        1 => (1i64..=3_200_000_000_000).prop_map(ClockMove::FarForward),
        1 => (1i64..=3_200_000_000_000).prop_map(ClockMove::FarBack),
        1 => prop_oneof![Just(ClockMove::ToEnd), Just(ClockMove::ToStart)],
        6 => (
            prop_oneof![Just(0i8), Just(-1), Just(1), any::<i8>()],
            prop::bool::weighted(0.25)
        )
            .prop_map(|(d, expiry)| ClockMove::ToDeadline(d, expiry)),
    ]
    .boxed()
}

// ----- Answer bodies ----------------------------------------------------------------------

/// A rendered JSON value and what it says (`None`: nothing a reader could use).
#[derive(Debug, Clone)]
struct Field<T> {
    json: Value,
    means: Option<T>,
}

fn field<T>(json: Value, means: Option<T>) -> Field<T> {
    Field { json, means }
}

fn said<T: Clone>(f: &Option<Field<T>>) -> Option<T> {
    f.as_ref().and_then(|f| f.means.clone())
}

/// A counter: numbers, numeric strings (with spaces), whole floats; nonsense says nothing.
fn count() -> BoxedStrategy<Field<u32>> {
    let n = prop_oneof![8 => 0u32..=6, 1 => Just(u32::MAX), 1 => 7u32..=1000];
    prop_oneof![
        5 => n.clone().prop_map(|n| field(json!(n), Some(n))),
        3 => n.clone().prop_map(|n| field(json!(n.to_string()), Some(n))),
        1 => n.clone().prop_map(|n| field(json!(format!(" {n} ")), Some(n))),
        1 => n.prop_map(|n| field(json!(f64::from(n)), Some(n))),
        2 => prop::sample::select(vec![
            json!(-1),
            json!(4_294_967_296u64),
            json!("4x"),
            json!(4.5),
            json!(1e300),
            json!(true),
            Value::Null,
            json!({"n": 4}),
            json!([4]),
            json!(""),
        ])
        .prop_map(|v| field(v, None)),
    ]
    .boxed()
}

/// A flag: booleans, `"true"`/`"FALSE"`, `1`/`0`; anything else says nothing.
fn flag() -> BoxedStrategy<Field<bool>> {
    prop_oneof![
        5 => any::<bool>().prop_map(|b| field(json!(b), Some(b))),
        2 => any::<bool>().prop_map(|b| field(json!(if b { "true" } else { "false" }), Some(b))),
        1 => any::<bool>().prop_map(|b| field(json!(if b { " TRUE" } else { "False " }), Some(b))),
        1 => any::<bool>().prop_map(|b| field(json!(u8::from(b)), Some(b))),
        1 => prop::sample::select(vec![json!("yes"), json!(2), json!(1.0), Value::Null, json!({})])
            .prop_map(|v| field(v, None)),
    ]
    .boxed()
}

/// The statuses that end a payment well, and those that end it badly (the API's table).
const SUCCESS: [&str; 2] = ["CHARGED", "AUTHORIZED"];
const FAILURE: [&str; 4] = [
    "AUTHENTICATION_FAILED",
    "AUTHORIZATION_FAILED",
    "JUSPAY_DECLINED",
    "AUTO_REFUNDED",
];

fn is_final(status: &str) -> bool {
    SUCCESS.contains(&status) || FAILURE.contains(&status)
}

/// A `status`: known values (final or not), unknown text, numbers (read as their text),
/// and values that say nothing.
fn status_text() -> BoxedStrategy<Option<Field<String>>> {
    fn text(s: &str) -> Option<Field<String>> {
        Some(field(json!(s), Some(s.to_owned())))
    }
    prop_oneof![
        10 => Just(text("PENDING_VBV")),
        2 => prop::sample::select([SUCCESS.as_slice(), &FAILURE].concat()).prop_map(text),
        2 => prop::sample::select(vec![
            "AUTHORIZING",
            "VBV_SUCCESSFUL",
            "NEW",
            "STARTED",
            "charged",
            "SOMETHING_NEW",
        ])
        .prop_map(text),
        1 => Just(Some(field(json!(21), Some("21".to_owned())))),
        1 => prop::sample::select(vec![json!(""), Value::Null, json!(true), json!(["CHARGED"])])
            .prop_map(|v| Some(field(v, None))),
        1 => Just(None),
    ]
    .boxed()
}

fn fallback_url() -> BoxedStrategy<Field<String>> {
    prop_oneof![
        4 => (0u8..4).prop_map(|i| {
            let url = format!("https://sandbox.juspay.in/v2/pay/start/acme/page{i}?x=%20y");
            field(json!(url), Some(url))
        }),
        // Not a place to send a browser: says no bank page.
        3 => prop::sample::select(vec![
            json!(""),
            Value::Null,
            json!(77),
            json!("javascript:alert(1)"),
            json!("data:text/html,x"),
            json!("//evil.example/x"),
            json!("https://bank.example/x\r\nSet-Cookie: a=b"),
            json!("https://user:pw@bank.example/"),
        ])
        .prop_map(|v| field(v, None)),
    ]
    .boxed()
}

/// `payment.authentication.params`: every key optional.
#[derive(Debug, Clone, Default)]
struct ParamsSpec {
    submit: Option<Field<bool>>,
    resend: Option<Field<bool>>,
    times_sent: Option<Field<u32>>,
    send_limit: Option<Field<u32>>,
    attempt: Option<Field<u32>>,
    attempt_limit: Option<Field<u32>>,
    fallback: Option<Field<String>>,
    auth_method: bool,
}

impl ParamsSpec {
    fn render(&self, into: &mut serde_json::Map<String, Value>) {
        fn json<T>(f: &Option<Field<T>>) -> Option<Value> {
            f.as_ref().map(|f| f.json.clone())
        }
        for (key, value) in [
            ("submit_otp_allowed", json(&self.submit)),
            ("resend_otp_allowed", json(&self.resend)),
            ("fallback_url", json(&self.fallback)),
            ("times_otp_sent", json(&self.times_sent)),
            ("max_otp_send_limit", json(&self.send_limit)),
            ("current_attempt", json(&self.attempt)),
            ("max_attempts", json(&self.attempt_limit)),
        ] {
            into.remove(key);
            if let Some(v) = value {
                into.insert(key.to_owned(), v);
            }
        }
        if self.auth_method {
            if let Some(t) = into.remove("auth_type") {
                into.insert("auth_method".into(), t);
            }
        }
    }

    /// Whether the bank states a counter or a limit here.
    fn states_counts(&self) -> bool {
        [
            &self.times_sent,
            &self.send_limit,
            &self.attempt,
            &self.attempt_limit,
        ]
        .into_iter()
        .any(|f| said(f).is_some())
    }
}

fn params() -> BoxedStrategy<ParamsSpec> {
    let maybe = |p: f64, s: BoxedStrategy<Field<u32>>| prop::option::weighted(p, s);
    (
        prop::option::weighted(0.6, flag()),
        prop::option::weighted(0.6, flag()),
        (maybe(0.5, count()), maybe(0.4, count())),
        (maybe(0.5, count()), maybe(0.4, count())),
        prop::option::weighted(0.5, fallback_url()),
        any::<bool>(),
    )
        .prop_map(
            |(
                submit,
                resend,
                (times_sent, send_limit),
                (attempt, attempt_limit),
                fallback,
                auth_method,
            )| {
                ParamsSpec {
                    submit,
                    resend,
                    times_sent,
                    send_limit,
                    attempt,
                    attempt_limit,
                    fallback,
                    auth_method,
                }
            },
        )
        .boxed()
}

/// Where the params sit, or why there are none.
#[derive(Debug, Clone)]
enum Auth {
    NoPayment,
    NullPayment,
    NoAuthentication,
    NoParams,
    Params(Box<ParamsSpec>),
}

fn auth() -> BoxedStrategy<Auth> {
    prop_oneof![
        12 => params().prop_map(|p| Auth::Params(Box::new(p))),
        1 => Just(Auth::NoPayment),
        1 => Just(Auth::NullPayment),
        1 => Just(Auth::NoAuthentication),
        1 => Just(Auth::NoParams),
    ]
    .boxed()
}

/// What an error envelope's codes say, by the documented and observed codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    /// A refusal with no more specific meaning.
    Refused,
    WrongOtp,
    LimitExceeded,
    /// Another request on the transaction is in progress.
    Duplicate,
    /// `INVALID_ACTION`: the transaction no longer waits for an OTP.
    Stale,
}

/// A code with `meaning`, as `error_code` or `error_info.code`.
fn code(meaning: Meaning) -> BoxedStrategy<(Field<String>, Meaning)> {
    let codes: &[&'static str] = match meaning {
        Meaning::LimitExceeded => &[
            "max_limit_exceeded",
            "MAX_LIMIT_EXCEEDED",
            "otp_limit_exceeded",
        ],
        Meaning::Duplicate => &["DUPLICATE_REQUEST", "duplicate_request"],
        Meaning::Stale => &["INVALID_ACTION", "invalid_action"],
        Meaning::WrongOtp => &[
            "LP_INCORRECT_OTP",
            "Otp_Mismatch",
            "INVALID_OTP",
            "wrong_otp",
        ],
        Meaning::Refused => &[
            "access_denied",
            "transaction_not_found",
            "RESOURCE_NOT_FOUND",
            "MISSING_MANDATORY_PARAMETER",
            "INVALID_INPUT",
            "Another request is in progress for this transaction",
            "internal_server_error",
            "otp_expired",
            "LIMIT",
            // A number, read as its text.
            "400",
        ],
    };
    prop::sample::select(codes.to_vec())
        .prop_map(move |c| {
            let json = c.parse::<u16>().map_or_else(|_| json!(c), |n| json!(n));
            (field(json, Some(c.to_owned())), meaning)
        })
        .boxed()
}

/// An answer body, as a description the test reads and bytes the library reads.
#[derive(Debug, Clone)]
enum Body {
    /// The transaction shape (start, resend, submit answers).
    Txn {
        status: Option<Field<String>>,
        auth: Auth,
    },
    /// The order shape (`GET /orders/{id}`).
    Order { status: Option<Field<String>> },
    /// An error envelope; `codes` are `error_code` and `error_info.code`.
    Envelope {
        status: Option<Field<String>>,
        codes: [Option<(Field<String>, Meaning)>; 2],
    },
    /// Bytes that are not JSON (HTML, invalid UTF-8, a BOM, truncated JSON, nothing).
    Garbage(Vec<u8>),
}

/// What an answer says, as the test reads it from how it generated the answer.
#[derive(Debug)]
enum Says<'a> {
    /// Under 2xx, a JSON object: its usable `status`, and the params of the transaction shape.
    Body {
        status: Option<String>,
        params: Option<&'a ParamsSpec>,
    },
    /// Under 2xx, bytes that are not a JSON object.
    Unreadable,
    /// Under 4xx: what the error codes mean, and the code the error reports.
    Refusal(Meaning, Option<String>),
    /// Under 5xx: the server failed (the request may or may not have been acted on).
    Failed(Option<String>),
    /// Any other HTTP status (0, 1xx, 3xx, 600 and more).
    Odd,
}

impl Body {
    fn render(&self) -> Vec<u8> {
        let base = |name: &str, status: &Option<Field<String>>| {
            let mut v = common::fixture_json(name);
            let obj = v.as_object_mut().expect("fixtures are objects");
            obj.remove("status");
            if let Some(s) = status {
                obj.insert("status".into(), s.json.clone());
            }
            v
        };
        match self {
            Body::Txn { status, auth } => {
                let mut v = base("submit_pending_wrong_otp", status);
                v["order_id"] = json!(ORDER_ID);
                v["payment"]["authentication"]["params"]["id"] = json!(TXN_ID);
                match auth {
                    Auth::NoPayment => drop(v.as_object_mut().expect("object").remove("payment")),
                    Auth::NullPayment => v["payment"] = Value::Null,
                    Auth::NoAuthentication => v["payment"] = json!({"authentication": null}),
                    Auth::NoParams => {
                        let a = v["payment"]["authentication"].as_object_mut();
                        drop(a.expect("object").remove("params"));
                    }
                    Auth::Params(p) => p.render(
                        v["payment"]["authentication"]["params"]
                            .as_object_mut()
                            .expect("fixture has params"),
                    ),
                }
                v.to_string().into_bytes()
            }
            Body::Order { status } => {
                let mut v = base("order_status_pending", status);
                v["order_id"] = json!(ORDER_ID);
                v.to_string().into_bytes()
            }
            Body::Envelope { status, codes } => {
                let mut v = base("error_forbidden_403", status);
                let obj = v.as_object_mut().expect("object");
                obj.remove("error_code");
                if let Some((c, _)) = &codes[0] {
                    obj.insert("error_code".into(), c.json.clone());
                }
                let info = v["error_info"].as_object_mut().expect("object");
                info.remove("code");
                if let Some((c, _)) = &codes[1] {
                    info.insert("code".into(), c.json.clone());
                }
                v.to_string().into_bytes()
            }
            Body::Garbage(b) => b.clone(),
        }
    }

    /// What this body says under the HTTP status `http`.
    fn says(&self, http: u16) -> Says<'_> {
        let envelope = || match self {
            Body::Envelope { codes, .. } => {
                // The codes have one meaning, or are plain refusals (see `envelope_body`).
                let mut meanings = codes.iter().flatten().map(|(_, m)| *m);
                let meaning = meanings.find(|m| *m != Meaning::Refused);
                let code = |i: usize| codes[i].as_ref().and_then(|(f, _)| f.means.clone());
                (meaning.unwrap_or(Meaning::Refused), code(1).or(code(0)))
            }
            _ => (Meaning::Refused, None),
        };
        match (http, self) {
            (200..=299, Body::Garbage(_)) => Says::Unreadable,
            (200..=299, Body::Txn { status, auth }) => Says::Body {
                status: said(status),
                params: match auth {
                    Auth::Params(p) => Some(p),
                    _ => None,
                },
            },
            (200..=299, Body::Order { status } | Body::Envelope { status, .. }) => Says::Body {
                status: said(status),
                params: None,
            },
            (400..=499, _) => {
                let (meaning, code) = envelope();
                Says::Refusal(meaning, code)
            }
            (500..=599, _) => Says::Failed(envelope().1),
            _ => Says::Odd,
        }
    }
}

impl Body {
    /// Whether the bank states a counter or a limit in this answer.
    fn states_counts(&self) -> bool {
        matches!(self, Body::Txn { auth: Auth::Params(p), .. } if p.states_counts())
    }
}

fn garbage() -> BoxedStrategy<Vec<u8>> {
    // The first byte can start no JSON value, so nothing after it can make the body valid.
    let first = prop::sample::select(vec![
        b"<".to_vec(),
        b"\xff".to_vec(),
        b"\xef\xbb\xbf".to_vec(),
        b"]".to_vec(),
        b"}".to_vec(),
        b"x".to_vec(),
        b"\0".to_vec(),
        b"NaN".to_vec(),
        b"Infinity".to_vec(),
    ]);
    prop_oneof![
        4 => (first, prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(mut a, b)| {
            a.extend(b);
            a
        }),
        3 => prop::sample::select(vec![
            Vec::new(),
            b"<html><body>502 Bad Gateway</body></html>".to_vec(),
            b"{\"status\": \"CHARGED\"".to_vec(),
            b"{\"status\": \"CHARGED\"}}".to_vec(),
            b"null".to_vec(),
            b"{\"status\":\"\xff\"}".to_vec(),
        ]),
    ]
    .boxed()
}

fn txn_body() -> BoxedStrategy<Body> {
    (status_text(), auth())
        .prop_map(|(status, auth)| Body::Txn { status, auth })
        .boxed()
}

fn order_body() -> BoxedStrategy<Body> {
    status_text()
        .prop_map(|status| Body::Order { status })
        .boxed()
}

/// An error envelope of one meaning: each code either has it or is a plain refusal (an
/// envelope whose codes disagree is a fixed case in `responses.rs`).
fn envelope_body() -> BoxedStrategy<Body> {
    let status = prop::option::weighted(
        0.8,
        prop::sample::select(vec![
            "Invalid Request",
            "error",
            "NOT_FOUND",
            "Bad Request",
            "ERROR",
        ])
        .prop_map(|s| field(json!(s), Some(s.to_owned()))),
    );
    let meaning = prop::sample::select(vec![
        Meaning::LimitExceeded,
        Meaning::Duplicate,
        Meaning::Stale,
        Meaning::WrongOtp,
        Meaning::Refused,
    ]);
    (status, meaning)
        .prop_flat_map(|(status, meaning)| {
            let slot = |p| {
                prop::option::weighted(
                    p,
                    prop_oneof![2 => code(meaning), 1 => code(Meaning::Refused)],
                )
            };
            (Just(status), slot(0.7), slot(0.5))
        })
        .prop_map(|(status, a, b)| Body::Envelope {
            status,
            codes: [a, b],
        })
        .boxed()
}

const OK: [u16; 5] = [200, 201, 202, 204, 299];
const CLIENT: [u16; 8] = [400, 401, 403, 404, 409, 422, 429, 499];
const SERVER: [u16; 5] = [500, 502, 503, 504, 599];
const ODD: [u16; 12] = [
    0,
    100,
    101,
    199,
    300,
    301,
    302,
    304,
    399,
    600,
    999,
    u16::MAX,
];

/// An HTTP status and a body: mostly the realistic pairs, sometimes any pair.
fn answer() -> BoxedStrategy<(u16, Body)> {
    let ok = prop::sample::select(OK.to_vec());
    let client = prop::sample::select(CLIENT.to_vec());
    let server = prop::sample::select(SERVER.to_vec());
    let any_status = prop::sample::select([OK.as_slice(), &CLIENT, &SERVER, &ODD].concat());
    let any_body = prop_oneof![
        txn_body(),
        order_body(),
        envelope_body(),
        garbage().prop_map(Body::Garbage)
    ];
    prop_oneof![
        8 => (Just(200u16), txn_body()),
        2 => (ok.clone(), txn_body()),
        3 => (ok, order_body()),
        5 => (client, envelope_body()),
        2 => (server, prop_oneof![envelope_body(), garbage().prop_map(Body::Garbage)]),
        2 => (any_status.clone(), garbage().prop_map(Body::Garbage)),
        2 => (any_status, any_body),
    ]
    .boxed()
}

// ----- The bank's side, and what the caller did ---------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Resend,
    Submit,
    OrderStatus,
}

impl Kind {
    fn request_kind(self) -> RequestKind {
        match self {
            Kind::Resend => RequestKind::Resend,
            Kind::Submit => RequestKind::Submit,
            Kind::OrderStatus => RequestKind::OrderStatus,
        }
    }
}

/// What the bank has said about the payment, as far as its answers have told, and so what
/// it allows. Updated from what each answer says, never from the challenge.
#[derive(Debug, Clone)]
struct Bank {
    /// The payment is over, with this status.
    over: Option<String>,
    /// OTPs sent and tries used: the bank's count when it states one, else every request
    /// that may have been acted on (a lost one too), read as at most the limit.
    sends: u32,
    attempts: u32,
    /// The bank's limits when it states them, else the policy's; at most `MAX_LIMIT`.
    send_limit: u32,
    attempt_limit: u32,
    /// The bank's `submit_otp_allowed` / `resend_otp_allowed`, true until it says otherwise.
    submit_allowed: bool,
    resend_allowed: bool,
    /// The last bank page it gave that a browser may be sent to.
    fallback: Option<String>,
    /// When the last OTP may have gone out (the time its answer was handed back), while
    /// another may follow; the policy's cooldown runs from there.
    last_otp: Option<i64>,
    cooldown: i64,
    /// The policy's lifetime from the start: the OTP page closes then.
    expires: i64,
}

impl Bank {
    fn start(policy: &Policy, params: &ParamsSpec, now: i64) -> Bank {
        let mut bank = Bank {
            over: None,
            sends: 0,
            attempts: 0,
            send_limit: policy.max_sends.min(Policy::MAX_LIMIT),
            attempt_limit: policy.max_attempts.min(Policy::MAX_LIMIT),
            submit_allowed: true,
            resend_allowed: true,
            fallback: None,
            last_otp: None,
            cooldown: policy_ms(policy.resend_cooldown),
            expires: plus(now, policy_ms(policy.lifetime)),
        };
        // The start sent the first OTP.
        bank.take(Some(params), Kind::Resend, now);
        bank
    }

    /// Takes what a readable answer states, and counts what it answers (`kind`) unless the
    /// bank states that counter itself.
    fn take(&mut self, params: Option<&ParamsSpec>, kind: Kind, now: i64) {
        let mut stated = None;
        if let Some(p) = params {
            self.submit_allowed = said(&p.submit).unwrap_or(self.submit_allowed);
            self.resend_allowed = said(&p.resend).unwrap_or(self.resend_allowed);
            self.fallback = said(&p.fallback).or(self.fallback.take());
            let limit = |f| said(f).map(|n: u32| n.min(Policy::MAX_LIMIT));
            self.send_limit = limit(&p.send_limit).unwrap_or(self.send_limit);
            self.attempt_limit = limit(&p.attempt_limit).unwrap_or(self.attempt_limit);
            self.sends = said(&p.times_sent).unwrap_or(self.sends);
            self.attempts = said(&p.attempt).unwrap_or(self.attempts);
            stated = said(if kind == Kind::Resend {
                &p.times_sent
            } else {
                &p.attempt
            });
        }
        if stated.is_none() {
            self.count(kind, now);
        }
        if kind == Kind::Resend {
            self.last_otp = Some(now);
        }
        self.clamp();
    }

    /// The request may have been acted on: count it as done, so no limit is ever exceeded.
    fn count(&mut self, kind: Kind, now: i64) {
        match kind {
            Kind::Resend => {
                self.sends = self.sends.saturating_add(1);
                self.last_otp = Some(now);
            }
            Kind::Submit => self.attempts = self.attempts.saturating_add(1),
            Kind::OrderStatus => {}
        }
        self.clamp();
    }

    fn clamp(&mut self) {
        self.sends = self.sends.min(self.send_limit);
        self.attempts = self.attempts.min(self.attempt_limit);
    }

    fn another_try(&self) -> bool {
        self.attempts < self.attempt_limit && self.submit_allowed
    }

    /// When the cooldown since the last OTP is over.
    fn cooldown_end(&self) -> Option<i64> {
        self.last_otp.map(|t| plus(t, self.cooldown))
    }

    /// What an answer to a request of `kind` must give, by what it says; the record takes
    /// what it says. `page` learns whether only a status check can tell what happened.
    fn answer(&mut self, page: &mut Page, kind: Kind, http: u16, body: &Body, now: i64) -> Expect {
        use ErrShape::{Api, Malformed, Unexpected};
        let lost = |bank: &mut Bank, page: &mut Page, why| {
            bank.count(kind, now);
            page.must_check = true;
            Expect::CheckStatus(why)
        };
        match (kind, body.says(http)) {
            // A final status ends the payment, whatever was asked (a submit was a try).
            (
                _,
                Says::Body {
                    status: Some(s),
                    params,
                },
            ) if is_final(&s) => {
                if kind == Kind::Submit {
                    self.take(params, kind, now);
                }
                self.over = Some(s.clone());
                Expect::Over(s)
            }
            (
                Kind::OrderStatus,
                Says::Body {
                    status: Some(s), ..
                },
            ) => {
                // Still waiting for the OTP: a lost submit or resend did not end it.
                page.must_check = s != "PENDING_VBV";
                Expect::Pending(s)
            }
            (Kind::OrderStatus, Says::Body { status: None, .. } | Says::Unreadable) => {
                Expect::Rejected(Malformed(http))
            }
            (Kind::OrderStatus, Says::Refusal(_, code) | Says::Failed(code)) => {
                Expect::Rejected(Api { http, code })
            }
            (Kind::OrderStatus, Says::Odd) => Expect::Rejected(Unexpected(http)),
            // A resend's status is not for reading (the docs say so): an OTP went out.
            (Kind::Resend, Says::Body { params, .. }) => {
                self.take(params, kind, now);
                Expect::OtpSent
            }
            (
                Kind::Submit,
                Says::Body {
                    status: Some(s),
                    params,
                },
            ) => {
                self.take(params, kind, now);
                if s == "PENDING_VBV" {
                    Expect::WrongOtp
                } else {
                    // Accepted and still processing: only the order status can tell.
                    page.must_check = true;
                    Expect::Pending(s)
                }
            }
            (_, Says::Body { status: None, .. } | Says::Unreadable) => {
                lost(self, page, Why::Response(Malformed(http)))
            }
            (Kind::Submit, Says::Refusal(Meaning::WrongOtp, _)) => {
                self.count(kind, now);
                Expect::WrongOtp
            }
            (Kind::Submit, Says::Refusal(Meaning::LimitExceeded, _)) => {
                self.attempts = self.attempt_limit;
                Expect::AttemptLimitReached
            }
            (Kind::Resend, Says::Refusal(Meaning::LimitExceeded, _)) => {
                self.sends = self.send_limit;
                self.resend_allowed = false;
                self.last_otp = None;
                Expect::SendLimitReached
            }
            (_, Says::Refusal(Meaning::Duplicate, code) | Says::Failed(code)) => {
                lost(self, page, Why::Response(Api { http, code }))
            }
            (_, Says::Refusal(Meaning::Stale, code)) => {
                // Refused, so nothing happened; but this copy is behind the bank.
                page.must_check = true;
                Expect::CheckStatus(Why::Stale(Api { http, code }))
            }
            (_, Says::Refusal(_, code)) => Expect::Rejected(Api { http, code }),
            (_, Says::Odd) => lost(self, page, Why::Response(Unexpected(http))),
        }
    }

    /// What a transport failure must give: a submit or resend that may have been sent is
    /// counted and leads to a status check; anything else changed nothing.
    fn failure(&mut self, page: &mut Page, kind: Kind, maybe: bool, now: i64) -> Expect {
        if maybe && kind != Kind::OrderStatus {
            self.count(kind, now);
            page.must_check = true;
            Expect::CheckStatus(Why::MaybeSent)
        } else {
            Expect::NotDelivered
        }
    }
}

/// What the caller did and saw: the request in flight, and the states it led to.
#[derive(Debug, Clone)]
struct Page {
    /// The request in flight: the test's number for its token, and its kind.
    in_flight: Option<(u64, Kind)>,
    next_token: u64,
    /// A submit or resend whose outcome is unknown (lost, unreadable, still processing, or
    /// refused as stale) has not been settled by an order status saying `PENDING_VBV`.
    must_check: bool,
    /// The cardholder went to the bank page (for good).
    on_bank_page: bool,
    /// The lifetime timer fired: the OTP page closed (for good).
    expired: bool,
    /// The latest time of a step that changed the challenge: earlier times count as it.
    seen: i64,
}

impl Page {
    /// The OTP page is up: nothing in flight, nothing unknown, not left, not timed out.
    fn open(&self, bank: &Bank) -> bool {
        bank.over.is_none()
            && self.in_flight.is_none()
            && !self.must_check
            && !self.on_bank_page
            && !self.expired
    }

    fn allows(&self, bank: &Bank, kind: Kind, now: i64) -> bool {
        let otp_page = self.open(bank) && now < bank.expires;
        match kind {
            Kind::Submit => otp_page && bank.another_try(),
            Kind::Resend => {
                otp_page
                    && bank.sends < bank.send_limit
                    && bank.resend_allowed
                    && bank.cooldown_end().is_none_or(|end| now >= end)
            }
            Kind::OrderStatus => bank.over.is_none() && self.in_flight.is_none(),
        }
    }

    /// Whether `refusal` of a command of `kind` (`None`: the bank page) gives a true reason.
    fn true_reason(&self, bank: &Bank, kind: Option<Kind>, refusal: &Refusal, now: i64) -> bool {
        let otp = matches!(kind, Some(Kind::Submit | Kind::Resend));
        match refusal {
            Refusal::InFlight(t) => self.in_flight.is_some_and(|(n, _)| token(n) == *t),
            Refusal::AlreadyFinal(s) => bank.over.as_deref() == Some(s.as_str()),
            Refusal::CheckStatus => otp && self.must_check,
            Refusal::OnBankPage => otp && self.on_bank_page,
            Refusal::Expired => otp && (self.expired || now >= bank.expires),
            Refusal::NoBankPage => kind.is_none() && bank.fallback.is_none(),
            Refusal::AttemptLimitReached { limit } => {
                kind == Some(Kind::Submit)
                    && *limit == bank.attempt_limit
                    && bank.attempts >= *limit
            }
            Refusal::SubmitNotAllowed => kind == Some(Kind::Submit) && !bank.submit_allowed,
            Refusal::SendLimitReached { limit } => {
                kind == Some(Kind::Resend) && *limit == bank.send_limit && bank.sends >= *limit
            }
            Refusal::ResendNotAllowed => kind == Some(Kind::Resend) && !bank.resend_allowed,
            Refusal::Cooldown { until } => {
                kind == Some(Kind::Resend)
                    && bank.cooldown_end() == Some(ms_of(*until))
                    && now < ms_of(*until)
            }
            _ => false,
        }
    }
}

/// The outcome an answer must give, by family; the values in it must agree with the bank's
/// record after the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// The payment is over: `Approved` for a success status, `Declined` for a failure.
    Over(String),
    OtpSent,
    /// A wrong OTP: `WrongOtp` while the bank allows another try, else `AttemptLimitReached`.
    WrongOtp,
    SendLimitReached,
    AttemptLimitReached,
    Pending(String),
    /// Only the order status can tell what happened, and why.
    CheckStatus(Why),
    /// The bank refused, or the status check was unusable: nothing changed.
    Rejected(ErrShape),
    /// Nothing was sent (or it was only a status check): nothing changed.
    NotDelivered,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Why {
    MaybeSent,
    Response(ErrShape),
    Stale(ErrShape),
}

/// The error an outcome carries: its HTTP status, and the code of an error envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ErrShape {
    Api { http: u16, code: Option<String> },
    Malformed(u16),
    Unexpected(u16),
}

impl ErrShape {
    fn matches(&self, e: &ResponseError) -> bool {
        match (self, e) {
            (ErrShape::Api { http, code }, ResponseError::Api(api)) => {
                api.http_status() == *http && api.code() == code.as_deref()
            }
            (ErrShape::Malformed(h), ResponseError::Malformed { http_status, .. }) => {
                h == http_status
            }
            (ErrShape::Unexpected(h), ResponseError::UnexpectedStatus(got)) => h == got,
            _ => false,
        }
    }
}

impl Expect {
    fn matches(&self, got: &Outcome, bank: &Bank) -> bool {
        match (self, got) {
            (Expect::Over(s), Outcome::Approved(g)) => {
                SUCCESS.contains(&s.as_str()) && g.as_str() == s
            }
            (Expect::Over(s), Outcome::Declined(g)) => {
                FAILURE.contains(&s.as_str()) && g.as_str() == s
            }
            (Expect::OtpSent, Outcome::OtpSent { sends_left }) => {
                *sends_left == bank.send_limit - bank.sends
            }
            (Expect::WrongOtp, Outcome::WrongOtp { attempts_left }) => {
                bank.another_try() && *attempts_left == bank.attempt_limit - bank.attempts
            }
            (Expect::WrongOtp, Outcome::AttemptLimitReached) => !bank.another_try(),
            (Expect::Pending(s), Outcome::Pending(g)) => g.as_str() == s,
            (Expect::CheckStatus(Why::MaybeSent), Outcome::CheckStatus(Uncertainty::MaybeSent)) => {
                true
            }
            (
                Expect::CheckStatus(Why::Response(e)),
                Outcome::CheckStatus(Uncertainty::Response(g)),
            )
            | (Expect::CheckStatus(Why::Stale(e)), Outcome::CheckStatus(Uncertainty::Stale(g)))
            | (Expect::Rejected(e), Outcome::Rejected(g)) => e.matches(g),
            // The bank refused the key itself: a configuration error of its own.
            (
                Expect::Rejected(
                    e @ ErrShape::Api {
                        http: 401 | 403, ..
                    },
                ),
                Outcome::Unauthorized(g),
            ) => e.matches(&ResponseError::Api(g.clone())),
            (Expect::SendLimitReached, Outcome::SendLimitReached)
            | (Expect::AttemptLimitReached, Outcome::AttemptLimitReached)
            | (Expect::NotDelivered, Outcome::NotDelivered) => true,
            _ => false,
        }
    }

    /// An outcome after which the caller must see nothing changed.
    fn changes_nothing(&self) -> bool {
        matches!(self, Expect::Rejected(_) | Expect::NotDelivered)
    }
}

// ----- Operations -------------------------------------------------------------------------

/// How a test picks a token that may not be the one in flight.
#[derive(Debug, Clone, Copy)]
enum TokenPick {
    /// One issued before (possibly the one in flight, which is then a real answer).
    Issued(prop::sample::Index),
    /// One not issued yet.
    Future(u8),
    /// Any number.
    Any(u64),
}

#[derive(Debug, Clone)]
enum Op {
    Resend,
    Submit(usize),
    CheckStatus,
    BankPage,
    /// The answer to the request in flight (or, with none, a late duplicate of the last).
    Answer(u16, Body),
    /// A command, then (if accepted) the answer to its request.
    Exchange(Box<Op>, u16, Body),
    AnswerToken(TokenPick, u16, Body),
    /// Sending the request in flight failed: `true` for "maybe sent".
    Fail(bool),
    FailToken(TokenPick, bool),
    Clock(ClockMove),
    /// Jump to the end of the cooldown (or, if the flag allows, to whichever deadline is
    /// next) and fire it.
    TimerAtDeadline(bool),
    /// `handle_timeout` at the current time.
    Timer,
    /// Replace the challenge with its persisted-and-restored copy.
    Restore,
}

impl Op {
    /// The answer this step hands over, if any.
    fn answer(&self) -> Option<&Body> {
        match self {
            Op::Answer(_, b) | Op::AnswerToken(_, _, b) | Op::Exchange(_, _, b) => Some(b),
            _ => None,
        }
    }
}

fn token_pick() -> BoxedStrategy<TokenPick> {
    prop_oneof![
        4 => any::<prop::sample::Index>().prop_map(TokenPick::Issued),
        1 => any::<u8>().prop_map(TokenPick::Future),
        1 => any::<u64>().prop_map(TokenPick::Any),
    ]
    .boxed()
}

fn op() -> BoxedStrategy<Op> {
    let command = prop_oneof![
        3 => Just(Op::Resend),
        4 => (0..OTPS.len()).prop_map(Op::Submit),
        2 => Just(Op::CheckStatus),
    ];
    prop_oneof![
        2 => command.clone(),
        16 => (command, answer()).prop_map(|(c, (h, b))| Op::Exchange(Box::new(c), h, b)),
        1 => Just(Op::BankPage),
        4 => answer().prop_map(|(h, b)| Op::Answer(h, b)),
        2 => (token_pick(), answer()).prop_map(|(t, (h, b))| Op::AnswerToken(t, h, b)),
        2 => any::<bool>().prop_map(Op::Fail),
        1 => (token_pick(), any::<bool>()).prop_map(|(t, m)| Op::FailToken(t, m)),
        6 => clock_move().prop_map(Op::Clock),
        2 => prop::bool::weighted(0.25).prop_map(Op::TimerAtDeadline),
        2 => Just(Op::Timer),
        1 => Just(Op::Restore),
    ]
    .boxed()
}

/// Policies including the edges: zero limits, zero or sub-millisecond cooldowns and
/// lifetimes, and durations too long to add.
fn policy() -> BoxedStrategy<Policy> {
    let limit = prop_oneof![6 => 1u32..=5, 1 => Just(0u32), 1 => Just(u32::MAX)];
    let odd = prop_oneof![
        Just(std::time::Duration::ZERO),
        Just(std::time::Duration::MAX),
        Just(std::time::Duration::from_nanos(1_500_000)),
        Just(std::time::Duration::from_nanos(999_999)),
    ];
    let cooldown = prop_oneof![
        6 => (0u64..=60_000).prop_map(std::time::Duration::from_millis),
        1 => odd.clone(),
    ];
    let lifetime = prop_oneof![
        8 => (120_000u64..=3_600_000).prop_map(std::time::Duration::from_millis),
        1 => (0u64..120_000).prop_map(std::time::Duration::from_millis),
        1 => odd,
    ];
    (limit.clone(), limit, cooldown, lifetime)
        .prop_map(|(s, a, c, l)| {
            let mut p = Policy::default();
            p.max_sends = s;
            p.max_attempts = a;
            p.resend_cooldown = c;
            p.lifetime = l;
            p
        })
        .boxed()
}

/// The start answer: the documented Direct OTP shape with generated params.
fn start_body(p: &ParamsSpec) -> Vec<u8> {
    let mut v = common::fixture_json("start_direct_otp");
    v["order_id"] = json!(ORDER_ID);
    let params = v["payment"]["authentication"]["params"]
        .as_object_mut()
        .expect("fixture has params");
    params.insert("id".into(), json!(TXN_ID));
    params.insert("challenge_id".into(), json!(CHALLENGE_ID));
    p.render(params);
    v.to_string().into_bytes()
}

// ----- The driver -------------------------------------------------------------------------

/// What the caller sees of a challenge, to compare before and after a step that must change
/// nothing of it (the revision and the time last seen may move).
fn seen_by_caller(c: &Challenge, at: OffsetDateTime) -> impl PartialEq + std::fmt::Debug {
    (
        (
            c.otp_sends(),
            c.send_limit(),
            c.attempts(),
            c.attempt_limit(),
        ),
        (c.status().clone(), c.fallback_url().map(str::to_owned)),
        (c.poll_timeout(), c.resend_available_at(), c.next_step(at)),
        (c.may_submit(at), c.may_resend(at)),
    )
}

/// A challenge, the bank's record and the caller's, and what the test must check after
/// each step.
struct Run {
    config: Config,
    secrets: Secrets,
    clock: Clock,
    c: Challenge,
    bank: Bank,
    page: Page,
    issued: Vec<u64>,
    /// The challenge before the command in flight: what `Rejected`/`NotDelivered` restore.
    before_request: Option<Challenge>,
    final_state: Option<Challenge>,
}

impl Run {
    fn start(
        policy: Policy,
        params: &ParamsSpec,
        via_request: bool,
        raw_card: bool,
        start_ms: i64,
    ) -> Run {
        let config = config();
        let secrets = secrets(&config);
        let clock = Clock {
            ms: start_ms,
            sub_ns: 0,
        };
        let body = start_body(params);
        let started = if via_request {
            let start = StartRequest::new(ORDER_ID, "acme", ROUTING, card(raw_card))
                .expect("valid ids")
                .with_policy(policy);
            let shown = format!("{start:?}");
            secrets.check("StartRequest Debug", &shown);
            let cvv = invariants::contains_number(&shown, CARD_CVV);
            assert!(!cvv, "StartRequest Debug leaks the CVV: {shown}");
            secrets.check_debug("start request", &start.request(&config));
            start.handle_response(200, &body, clock.now())
        } else {
            Started::from_response(ROUTING, policy, 200, &body, clock.now())
        };
        invariants::check_started(&started, &config, clock.now(), "start");
        let c = match started {
            Ok(Started::Challenge(c)) => *c,
            other => panic!("the Direct OTP start answer gave {other:?}"),
        };
        invariants::bind_tokens(c.record_id());
        let run = Run {
            config,
            secrets,
            clock,
            c,
            bank: Bank::start(&policy, params, start_ms),
            page: Page {
                in_flight: None,
                next_token: 1,
                must_check: false,
                on_bank_page: false,
                expired: false,
                seen: start_ms,
            },
            issued: Vec::new(),
            before_request: None,
            final_state: None,
        };
        run.check("start");
        run
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The time the challenge acts at: now, or the latest time it has seen if that is later.
    fn effective(&self) -> i64 {
        self.clock.ms.max(self.page.seen)
    }

    fn pick(&self, p: TokenPick) -> u64 {
        match p {
            TokenPick::Issued(i) if !self.issued.is_empty() => *i.get(&self.issued),
            TokenPick::Issued(_) => 1,
            TokenPick::Future(k) => self.page.next_token.saturating_add(u64::from(k)),
            TokenPick::Any(n) => n,
        }
    }

    /// The token an answer without one goes to: the one in flight, else the last issued.
    fn current(&self) -> u64 {
        match self.page.in_flight {
            Some((t, _)) => t,
            None => self.issued.last().copied().unwrap_or(1),
        }
    }

    fn step(&mut self, op: &Op, i: usize) {
        let context = format!("step {i}: {op:?}");
        let before = self.c.clone();
        let now = self.now();
        match op {
            Op::Resend => {
                let got = self.c.resend(&self.config, now);
                self.command(Kind::Resend, got, None, &before, &context);
            }
            Op::Submit(k) => {
                let otp = Otp::new(&format!(" {} ", OTPS[*k])).expect("valid OTP");
                let got = self.c.submit(&self.config, &otp, now);
                self.command(Kind::Submit, got, Some(OTPS[*k]), &before, &context);
            }
            Op::CheckStatus => {
                let got = self.c.check_status(&self.config, now);
                self.command(Kind::OrderStatus, got, None, &before, &context);
            }
            Op::BankPage => self.bank_page(&before, &context),
            Op::Answer(http, body) => self.answer(self.current(), *http, body, &context),
            Op::Exchange(command, http, body) => {
                self.step(command, i);
                if let Some((t, _)) = self.page.in_flight {
                    self.answer(t, *http, body, &context);
                }
            }
            Op::AnswerToken(p, http, body) => self.answer(self.pick(*p), *http, body, &context),
            Op::Fail(maybe) => self.fail(self.current(), *maybe, &context),
            Op::FailToken(p, maybe) => self.fail(self.pick(*p), *maybe, &context),
            Op::Clock(m) => self.clock.apply(m, &self.c),
            Op::TimerAtDeadline(expiry_too) => {
                if self.clock.jump_to_deadline(&self.c, *expiry_too).is_some() {
                    self.timer(&context, true);
                }
            }
            Op::Timer => self.timer(&context, false),
            Op::Restore => {
                let json = serde_json::to_string(&self.c).expect("serializes");
                let back: Challenge = serde_json::from_str(&json).expect("deserializes");
                assert_eq!(back, self.c, "{context}: restore changed the state");
                self.c = back;
            }
        }
        // Counters never go down unless the bank said so (a stated count or limit).
        if !self.c.is_final() && !op.answer().is_some_and(Body::states_counts) {
            let counts = |c: &Challenge| {
                (
                    c.otp_sends(),
                    c.attempts(),
                    c.send_limit(),
                    c.attempt_limit(),
                )
            };
            let (b, a) = (counts(&before), counts(&self.c));
            assert!(
                a.0 >= b.0 && a.1 >= b.1 && a == (a.0, a.1, b.2, b.3),
                "{context}: counts {b:?} -> {a:?}"
            );
        }
        self.check(&context);
    }

    /// A command's result: accepted exactly when the bank and the page allow it, and then a
    /// request of its kind for this transaction; refused with a true reason, changing nothing.
    fn command(
        &mut self,
        kind: Kind,
        got: Result<direct_otp::Outgoing, Refusal>,
        otp: Option<&str>,
        before: &Challenge,
        context: &str,
    ) {
        let now = self.effective();
        let allowed = self.page.allows(&self.bank, kind, now);
        match got {
            Ok(out) => {
                let ctx = || {
                    format!("{context}: accepted, but the bank or the page does not allow it\n{:#?}\n{:#?}", self.bank, self.page)
                };
                assert!(allowed, "{}", ctx());
                let n = self.page.next_token;
                self.page.next_token += 1;
                invariants::register_token(n, out.token);
                assert_eq!(
                    out.token.kind(),
                    kind.request_kind(),
                    "{context}: token kind"
                );
                assert_eq!(
                    out.token.record(),
                    self.c.record_id(),
                    "{context}: token record"
                );
                assert_eq!(
                    out.token.revision(),
                    self.c.revision(),
                    "{context}: token revision"
                );
                self.issued.push(n);
                self.page.in_flight = Some((n, kind));
                self.page.seen = now;
                self.before_request = Some(before.clone());
                self.check_request(kind, &out.request, otp, context);
                self.secrets.check_debug("outgoing request", &out.request);
            }
            Err(r) => {
                assert!(!allowed, "{context}: refused with {r:?}, but the bank and the page allow it\n{:#?}\n{:#?}", self.bank, self.page);
                let true_reason = self.page.true_reason(&self.bank, Some(kind), &r, now);
                assert!(
                    true_reason,
                    "{context}: refused with {r:?}, not a true reason\n{:#?}\n{:#?}",
                    self.bank, self.page
                );
                assert_eq!(
                    &self.c, before,
                    "{context}: a refused command changed the state"
                );
                self.secrets.check_error("refusal", &r);
            }
        }
    }

    fn bank_page(&mut self, before: &Challenge, context: &str) {
        let now = self.effective();
        let got = self.c.go_to_bank_page(self.now());
        self.secrets.check("go_to_bank_page", &format!("{got:?}"));
        let allowed =
            self.page.allows(&self.bank, Kind::OrderStatus, now) && self.bank.fallback.is_some();
        match got {
            Ok(url) => {
                assert!(allowed, "{context}: went to the bank page {url}");
                assert_eq!(
                    Some(&url),
                    self.bank.fallback.as_ref(),
                    "{context}: the bank page is the bank's"
                );
                if self.page.on_bank_page {
                    assert_eq!(
                        &self.c, before,
                        "{context}: a page reload changed the state"
                    );
                } else {
                    self.page.on_bank_page = true;
                    self.page.seen = now;
                }
            }
            Err(r) => {
                assert!(!allowed, "{context}: refused with {r:?}");
                let true_reason = self.page.true_reason(&self.bank, None, &r, now);
                assert!(
                    true_reason,
                    "{context}: refused with {r:?}, not a true reason"
                );
                assert_eq!(
                    &self.c, before,
                    "{context}: a refused command changed the state"
                );
            }
        }
    }

    fn check_request(&self, kind: Kind, r: &direct_otp::Request, otp: Option<&str>, context: &str) {
        let base = self.config.base_url();
        let (method, url) = match kind {
            Kind::Resend => (
                Method::Post,
                format!("{base}/v2/txns/{TXN_ID}/authenticate/{CHALLENGE_ID}/resend"),
            ),
            Kind::Submit => (
                Method::Post,
                format!("{base}/v2/txns/{TXN_ID}/authenticate"),
            ),
            Kind::OrderStatus => (Method::Get, format!("{base}/orders/{ORDER_ID}")),
        };
        assert_eq!(
            (r.kind(), r.method(), r.url()),
            (kind.request_kind(), method, url.as_str()),
            "{context}"
        );
        assert_eq!(r.header("x-routing-id"), Some(ROUTING), "{context}");
        let basic = r
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic "));
        assert!(basic, "{context}");
        let body = String::from_utf8_lossy(r.body());
        match otp {
            Some(otp) => {
                let form = format!("challenge_id={CHALLENGE_ID}&answer.otp={otp}");
                assert!(body.starts_with(&form), "{context}: {body}");
            }
            None => assert!(!body.contains("answer.otp"), "{context}: {body}"),
        }
    }

    /// The InputError an answer for `got` must get, if `got` is not the token in flight.
    fn refuse_token(&self, got: u64) -> Option<InputError> {
        let got_token = token(got);
        match self.page.in_flight {
            Some((t, _)) if t == got => None,
            Some((t, _)) => Some(InputError::StaleToken {
                got: got_token,
                in_flight: token(t),
            }),
            None if self.bank.over.is_some() => Some(InputError::AlreadyFinal { got: got_token }),
            None => Some(InputError::NothingInFlight { got: got_token }),
        }
    }

    fn answer(&mut self, t: u64, http: u16, body: &Body, context: &str) {
        let bytes = body.render();
        let got = self.c.handle_response(token(t), http, &bytes, self.now());
        self.handed_back(t, got, context, |bank, page, kind, now| {
            bank.answer(page, kind, http, body, now)
        });
    }

    fn fail(&mut self, t: u64, maybe: bool, context: &str) {
        let failure = if maybe {
            SendFailure::MaybeSent
        } else {
            SendFailure::NotSent
        };
        let got = self.c.handle_send_failure(token(t), failure, self.now());
        self.handed_back(t, got, context, |bank, page, kind, now| {
            bank.failure(page, kind, maybe, now)
        });
    }

    /// An answer or a failure for the token `t`: applied only to the request in flight,
    /// with the outcome of its family; refused and changing nothing for any other token.
    fn handed_back(
        &mut self,
        t: u64,
        got: Result<Outcome, InputError>,
        context: &str,
        expect: impl FnOnce(&mut Bank, &mut Page, Kind, i64) -> Expect,
    ) {
        let before = self.before_request.clone();
        if let Some(want) = self.refuse_token(t) {
            assert_eq!(got, Err(want), "{context}");
            if let Err(e) = &got {
                self.secrets.check_error("input error", e);
            }
            return;
        }
        let Some((_, kind)) = self.page.in_flight.take() else {
            unreachable!("refuse_token accepts only the token in flight")
        };
        let now = self.effective();
        self.page.seen = now;
        let want = expect(&mut self.bank, &mut self.page, kind, now);
        let outcome = got.unwrap_or_else(|e| panic!("{context}: refused {e:?}"));
        assert!(
            want.matches(&outcome, &self.bank),
            "{context}: got {outcome:?}, the bank's answer means {want:?}\n{:#?}",
            self.bank
        );
        if want.changes_nothing() {
            let before = before.expect("a request was issued");
            let at = self.now().max(at_ms(self.page.seen));
            assert_eq!(
                seen_by_caller(&self.c, at),
                seen_by_caller(&before, at),
                "{context}: {outcome:?} changed what the caller sees"
            );
        }
        invariants::check_outcome(&self.c, &outcome, self.now(), context);
        self.secrets.check_debug("outcome", &outcome);
        if let Outcome::Rejected(e) | Outcome::CheckStatus(Uncertainty::Response(e)) = &outcome {
            self.secrets.check_error("response error", e);
        }
    }

    /// A timer fires only when it is due: the expiry once the lifetime is over, "resend
    /// available" once the cooldown is over; on an open page past its lifetime it must fire.
    fn timer(&mut self, context: &str, must_fire: bool) {
        let before = self.c.clone();
        let deadline = self.c.poll_timeout();
        let now = self.effective();
        let open = self.page.open(&self.bank);
        let got = self.c.handle_timeout(self.now());
        let ctx = || {
            format!(
                "{context}: {got:?} at {now}\n{:#?}\n{:#?}",
                self.bank, self.page
            )
        };
        match got {
            Some(TimerEvent::Expired) => {
                assert!(open && now >= self.bank.expires, "{}", ctx());
                self.page.expired = true;
            }
            Some(TimerEvent::ResendAvailable) => {
                let cooled = self.bank.cooldown_end().is_some_and(|end| now >= end);
                assert!(open && now < self.bank.expires && cooled, "{}", ctx());
            }
            Some(other) => panic!("{context}: a timer event this test does not know: {other:?}"),
            None => {
                // A timer that is due fires: the expiry on the open page, any deadline.
                assert!(!(open && now >= self.bank.expires), "{}", ctx());
                let due = deadline.is_some_and(|d| ms_of(d) <= now);
                assert!(!must_fire && !due, "{context}: the deadline did not fire");
                assert_eq!(
                    self.c, before,
                    "{context}: a spurious timer changed the state"
                );
            }
        }
        if got.is_some() {
            self.page.seen = now;
            // No busy loop: the next deadline is strictly later, or there is none.
            if let (Some(old), Some(new)) = (deadline, self.c.poll_timeout()) {
                assert!(new > old, "{context}: deadline {old} then {new}");
            }
        }
    }

    /// What holds after every step: the challenge agrees with the bank's record and the
    /// caller's, and keeps every invariant.
    fn check(&self, context: &str) {
        let c = &self.c;
        let (bank, page) = (&self.bank, &self.page);
        let ctx = || format!("{context}\nbank: {bank:#?}\npage: {page:#?}\nchallenge: {c:#?}");
        if let Some(f) = &self.final_state {
            assert_eq!(c, f, "{context}: a final challenge changed");
        }
        // The bank's word.
        assert_eq!(c.is_final(), bank.over.is_some(), "final; {}", ctx());
        if let Some(s) = &bank.over {
            assert_eq!(c.status().as_str(), s, "final status; {}", ctx());
        } else {
            let counts = (
                c.otp_sends(),
                c.send_limit(),
                c.attempts(),
                c.attempt_limit(),
            );
            let want = (
                bank.sends,
                bank.send_limit,
                bank.attempts,
                bank.attempt_limit,
            );
            assert_eq!(counts, want, "counters and limits; {}", ctx());
            assert_eq!(
                c.fallback_url(),
                bank.fallback.as_deref(),
                "bank page; {}",
                ctx()
            );
        }
        assert_eq!(c.expires_at(), at_ms(bank.expires), "expires_at; {}", ctx());
        assert_eq!(
            c.in_flight(),
            page.in_flight.map(|(t, _)| token(t)),
            "in flight; {}",
            ctx()
        );

        // What the caller may do: exactly what the bank and the page allow, refused for a
        // true reason.
        let (at, now) = (self.now(), self.effective());
        for (kind, got) in [
            (Kind::Submit, c.may_submit(at)),
            (Kind::Resend, c.may_resend(at)),
        ] {
            assert_eq!(
                got.is_ok(),
                page.allows(bank, kind, now),
                "{kind:?}: {got:?}; {}",
                ctx()
            );
            if let Err(r) = &got {
                let true_reason = page.true_reason(bank, Some(kind), r, now);
                assert!(true_reason, "{kind:?} refused with {r:?}; {}", ctx());
            }
        }

        // While the OTP page is open, the payment waits for the OTP.
        if page.open(bank) {
            assert_eq!(c.status(), &Status::PendingVbv, "status; {}", ctx());
        }

        // Timers run only on the open page: the cooldown's end while a resend can follow it
        // before the lifetime is over, else the expiry.
        let open = page.open(bank);
        let cooldown = c.resend_available_at();
        let deadline = open.then(|| cooldown.unwrap_or(c.expires_at()));
        assert_eq!(c.poll_timeout(), deadline, "poll_timeout; {}", ctx());
        let end = bank.cooldown_end().filter(|&end| end < bank.expires);
        let resend_follows = open && bank.resend_allowed && bank.sends < bank.send_limit;
        match cooldown {
            Some(t) => {
                assert!(
                    resend_follows && Some(ms_of(t)) == end,
                    "resend_available_at; {}",
                    ctx()
                );
                if ms_of(t).max(page.seen) < bank.expires {
                    assert_eq!(
                        c.may_resend(t),
                        Ok(()),
                        "resend at the cooldown's end; {}",
                        ctx()
                    );
                }
            }
            // Not yet over, so its timer cannot have fired.
            None => assert!(
                !(resend_follows && end.is_some_and(|end| now < end)),
                "no resend_available_at; {}",
                ctx()
            ),
        }

        // What the page shows agrees with what the commands do.
        let step = c.next_step(at);
        let submit = c.may_submit(at).is_ok();
        let shown = match &step {
            NextStep::EnterOtp => submit,
            NextStep::Wait(t) => c.in_flight() == Some(*t),
            NextStep::Finished(_) => c.is_final(),
            NextStep::BankPage(url) => {
                !submit && !page.on_bank_page && Some(url) == bank.fallback.as_ref()
            }
            NextStep::AwaitBankPage => page.on_bank_page,
            NextStep::CheckStatus => {
                let closed_for_now = bank.fallback.is_none() && !page.expired && now < bank.expires;
                !submit && !page.on_bank_page && (page.must_check || closed_for_now)
            }
            NextStep::Expired => bank.fallback.is_none() && (page.expired || now >= bank.expires),
            _ => false,
        };
        assert!(shown, "next_step {step:?}; {}", ctx());
        assert!(
            !submit || step == NextStep::EnterOtp,
            "next_step {step:?}; {}",
            ctx()
        );
        // A lost or unknown request shows "check status" until the bank says more.
        let unknown = page.must_check && !page.on_bank_page && !page.expired;
        if unknown && bank.over.is_none() && page.in_flight.is_none() {
            assert_eq!(step, NextStep::CheckStatus, "{}", ctx());
        }

        invariants::check_challenge(c, &self.config, at, context);
        self.secrets.check_challenge(c, at);
    }

    fn after_step(&mut self) {
        if self.final_state.is_none() && self.c.is_final() {
            self.final_state = Some(self.c.clone());
        }
    }
}

fn start_ms() -> BoxedStrategy<i64> {
    prop_oneof![
        8 => Just(T0_MS),
        1 => Just(0i64),
        1 => Just(max_ms() - 1000),
        1 => Just(min_ms()),
        1 => (-62_000_000_000_000i64..=250_000_000_000_000).prop_map(|ms| ms),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(proptest_config(512))]

    /// Random lifecycles keep to what the bank allows, step by step, and keep every
    /// invariant.
    #[test]
    fn lifecycle_follows_the_model(
        policy in policy(),
        start in params(),
        via_request in any::<bool>(),
        raw_card in any::<bool>(),
        start_ms in start_ms(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut run = Run::start(policy, &start, via_request, raw_card, start_ms);
        for (i, op) in ops.iter().enumerate() {
            let before = run.c.clone();
            run.step(op, i);
            // An exchange is a command and an answer: two changes.
            let most = if matches!(op, Op::Exchange(..)) { 2 } else { 1 };
            invariants::check_revision(&before, &run.c, most, &format!("step {i}: {op:?}"));
            run.after_step();
        }
    }
}

// ----- Against the sandbox ----------------------------------------------------------------

/// The sandbox strategy's commands and events.
#[derive(Debug, Clone)]
enum SOp {
    Resend,
    /// Wait for the cooldown to end (as a UI's countdown would), then resend.
    ResendAfterCooldown,
    SubmitRight,
    SubmitWrong,
    CheckStatus,
    BankPage,
    /// The cardholder finishes on the bank page (the browser, not the library).
    BrowserFinishes(bool),
    /// The next request to this endpoint suffers this fault.
    Inject(Endpoint, Fault),
    /// The transport sends the request in flight to the sandbox and hands back what comes.
    Deliver,
    /// The transport fails before sending anything.
    NotSent,
    /// A late copy of an answer received earlier.
    Replay(prop::sample::Index),
    Clock(ClockMove),
    TimerAtDeadline(bool),
    Restore,
}

fn fault() -> BoxedStrategy<Fault> {
    prop_oneof![
        Just(Fault::InternalError),
        Just(Fault::InternalErrorAfterApply),
        Just(Fault::Duplicate),
        Just(Fault::Slow(std::time::Duration::from_secs(3))),
        Just(Fault::DropResponse),
        Just(Fault::DropRequest),
        Just(Fault::Reset),
        Just(Fault::TruncateBody),
        Just(Fault::StallBody(std::time::Duration::from_secs(3))),
        Just(Fault::Oversized(70_000)),
        Just(Fault::Redirect(302)),
        Just(Fault::Redirect(307)),
    ]
    .boxed()
}

fn sandbox_op() -> BoxedStrategy<SOp> {
    let endpoint = prop::sample::select(vec![
        Endpoint::Resend,
        Endpoint::Submit,
        Endpoint::OrderStatus,
    ]);
    prop_oneof![
        2 => Just(SOp::Resend),
        3 => Just(SOp::ResendAfterCooldown),
        1 => Just(SOp::SubmitRight),
        4 => Just(SOp::SubmitWrong),
        2 => Just(SOp::CheckStatus),
        1 => Just(SOp::BankPage),
        1 => any::<bool>().prop_map(SOp::BrowserFinishes),
        2 => (endpoint, fault()).prop_map(|(e, f)| SOp::Inject(e, f)),
        14 => Just(SOp::Deliver),
        1 => Just(SOp::NotSent),
        1 => any::<prop::sample::Index>().prop_map(SOp::Replay),
        4 => clock_move().prop_map(SOp::Clock),
        2 => prop::bool::weighted(0.25).prop_map(SOp::TimerAtDeadline),
        1 => Just(SOp::Restore),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
struct SandboxSetup {
    max_sends: u32,
    max_attempts: u32,
    wrong_otp_400: bool,
    report_counters: bool,
    auto_capture: bool,
    flow: CardFlow,
    raw_card: bool,
}

fn sandbox_setup() -> BoxedStrategy<SandboxSetup> {
    let limit = prop_oneof![6 => 1u32..=5, 1 => Just(0u32)];
    (
        limit.clone(),
        limit,
        any::<bool>(),
        prop::bool::weighted(0.7),
        any::<bool>(),
        prop_oneof![
            6 => Just(CardFlow::DirectOtp),
            1 => Just(CardFlow::DeclineAfterOtp),
            1 => Just(CardFlow::SlowAuthorization),
            1 => Just(CardFlow::ThreeDsFailover),
        ],
        any::<bool>(),
    )
        .prop_map(|(s, a, w, r, c, flow, raw_card)| SandboxSetup {
            max_sends: s,
            max_attempts: a,
            wrong_otp_400: w,
            report_counters: r,
            auto_capture: c,
            flow,
            raw_card,
        })
        .boxed()
}

/// The sandbox strategy's driver: the challenge talks to a simulated server.
struct SandboxRun {
    config: Config,
    secrets: Secrets,
    sandbox: Sandbox,
    clock: Clock,
    c: Challenge,
    pending: Option<(Token, direct_otp::Request)>,
    answers: Vec<(Token, u16, Vec<u8>)>,
    final_state: Option<Challenge>,
}

const SANDBOX_OTP: &str = "86420975";
const WRONG_OTP: &str = "5038271";

impl SandboxRun {
    /// Starts against the sandbox; `None` when the card takes the 3DS failover (checked).
    fn start(setup: &SandboxSetup, policy: Policy) -> Option<SandboxRun> {
        let card_key = if setup.raw_card {
            CARD_NUMBER
        } else {
            CARD_TOKEN
        };
        let mut sc = SandboxConfig::new(KEY)
            .with_otp(OtpSource::Fixed(SANDBOX_OTP.into()))
            .with_limits(setup.max_sends, setup.max_attempts)
            .with_card(card_key, setup.flow);
        sc.wrong_otp = if setup.wrong_otp_400 {
            WrongOtp::Http400
        } else {
            WrongOtp::PendingVbv
        };
        sc.report_counters = setup.report_counters;
        sc.auto_capture = setup.auto_capture;
        let mut sandbox = Sandbox::new(sc);
        let config = Config::new(sandbox.base_url(), KEY).expect("valid config");
        let secrets = secrets(&config).with_text(CARD_NAME);
        let clock = Clock {
            ms: T0_MS,
            sub_ns: 0,
        };
        let start = StartRequest::new(ORDER_ID, "acme", ROUTING, card(setup.raw_card))
            .expect("valid ids")
            .with_policy(policy);
        secrets.check("StartRequest Debug", &format!("{start:?}"));
        let answer = sandbox.handle_request(&start.request(&config), clock.now());
        let started = start.handle_response(answer.status, &answer.body, clock.now());
        invariants::check_started(&started, &config, clock.now(), "sandbox start");
        if let Ok(s) = &started {
            secrets.check_debug("Started", s);
        }
        match started {
            Ok(Started::Challenge(c)) => {
                assert_ne!(setup.flow, CardFlow::ThreeDsFailover);
                Some(SandboxRun {
                    config,
                    secrets,
                    sandbox,
                    clock,
                    c: *c,
                    pending: None,
                    answers: Vec::new(),
                    final_state: None,
                })
            }
            Ok(Started::Redirect { url, method }) => {
                assert_eq!(setup.flow, CardFlow::ThreeDsFailover);
                assert_eq!(method, "GET");
                assert!(url.contains("/v2/pay/start/guest/"), "{url}");
                None
            }
            other => panic!("the sandbox start gave {other:?}"),
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    fn issue(&mut self, got: Result<direct_otp::Outgoing, Refusal>, context: &str) {
        match got {
            Ok(out) => {
                assert!(self.pending.is_none(), "{context}: two requests in flight");
                self.secrets.check_debug("outgoing", &out);
                self.pending = Some((out.token, out.request));
            }
            Err(r) => {
                self.secrets.check_error("refusal", &r);
                if let Some((t, _)) = &self.pending {
                    assert_eq!(r, Refusal::InFlight(*t), "{context}");
                }
            }
        }
    }

    fn step(&mut self, op: &SOp, i: usize) {
        let context = format!("sandbox step {i}: {op:?}");
        let now = self.now();
        let before = self.c.clone();
        match op {
            SOp::ResendAfterCooldown => {
                if let Some(t) = self.c.resend_available_at() {
                    self.clock = Clock {
                        ms: ms_of(t),
                        sub_ns: 0,
                    };
                }
                let got = self.c.resend(&self.config, self.now());
                self.refusal_changes_nothing(&before, got.is_err(), &context);
                self.issue(got, &context);
            }
            SOp::Resend => {
                let got = self.c.resend(&self.config, now);
                self.refusal_changes_nothing(&before, got.is_err(), &context);
                self.issue(got, &context);
            }
            SOp::SubmitRight | SOp::SubmitWrong => {
                let otp = if matches!(op, SOp::SubmitRight) {
                    SANDBOX_OTP
                } else {
                    WRONG_OTP
                };
                let got = self
                    .c
                    .submit(&self.config, &Otp::new(otp).expect("valid"), now);
                self.refusal_changes_nothing(&before, got.is_err(), &context);
                self.issue(got, &context);
            }
            SOp::CheckStatus => {
                let got = self.c.check_status(&self.config, now);
                self.refusal_changes_nothing(&before, got.is_err(), &context);
                self.issue(got, &context);
            }
            SOp::BankPage => {
                let got = self.c.go_to_bank_page(now);
                self.refusal_changes_nothing(&before, got.is_err(), &context);
                if let Ok(url) = got {
                    assert!(url.contains("/v2/pay/start/acme/"), "{context}: {url}");
                }
            }
            SOp::BrowserFinishes(ok) => {
                let result = if *ok {
                    BankPageResult::Success
                } else {
                    BankPageResult::Failure
                };
                // Refused by the sandbox unless the payment still awaits authentication.
                let _ = self.sandbox.complete_bank_page(self.c.txn_id(), result);
            }
            SOp::Inject(e, f) => self.sandbox.inject(*e, *f),
            SOp::Deliver => {
                if let Some((t, request)) = self.pending.take() {
                    let answer = self.sandbox.handle_request(&request, now);
                    let got = match answer.delivery {
                        // No whole answer: a transport reports "maybe sent".
                        Delivery::Never | Delivery::Reset | Delivery::Truncated => {
                            self.c.handle_send_failure(t, SendFailure::MaybeSent, now)
                        }
                        Delivery::Now | Delivery::After(_) | Delivery::Stalled(_) => {
                            self.answers.push((t, answer.status, answer.body.clone()));
                            self.c.handle_response(t, answer.status, &answer.body, now)
                        }
                        other => panic!("a delivery this test does not know: {other:?}"),
                    };
                    let outcome = got.unwrap_or_else(|e| panic!("{context}: refused {e:?}"));
                    invariants::check_outcome(&self.c, &outcome, now, &context);
                    self.secrets.check_debug("outcome", &outcome);
                    self.against_server(&outcome, &context);
                }
            }
            SOp::NotSent => {
                if let Some((t, _)) = self.pending.take() {
                    let outcome = self
                        .c
                        .handle_send_failure(t, SendFailure::NotSent, now)
                        .unwrap_or_else(|e| panic!("{context}: refused {e:?}"));
                    assert_eq!(outcome, Outcome::NotDelivered, "{context}");
                }
            }
            SOp::Replay(i) => {
                if !self.answers.is_empty() {
                    let (t, status, body) = i.get(&self.answers).clone();
                    let got = self.c.handle_response(t, status, &body, now);
                    assert!(
                        got.is_err(),
                        "{context}: a replayed answer was accepted: {got:?}"
                    );
                    assert_eq!(
                        self.c, before,
                        "{context}: a replayed answer changed the state"
                    );
                }
            }
            SOp::Clock(m) => self.clock.apply(m, &self.c),
            SOp::TimerAtDeadline(expiry_too) => {
                if let Some(t) = self.clock.jump_to_deadline(&self.c, *expiry_too) {
                    assert!(
                        self.c.handle_timeout(t).is_some(),
                        "{context}: the deadline did not fire"
                    );
                    if let Some(next) = self.c.poll_timeout() {
                        assert!(next > t, "{context}: busy loop at {t}");
                    }
                }
            }
            SOp::Restore => {
                let json = serde_json::to_string(&self.c).expect("serializes");
                self.c = serde_json::from_str(&json).expect("deserializes");
                assert_eq!(self.c, before, "{context}: restore changed the state");
            }
        }
        self.check(&context);
    }

    fn refusal_changes_nothing(&self, before: &Challenge, refused: bool, context: &str) {
        if refused {
            assert_eq!(
                &self.c, before,
                "{context}: a refused command changed the state"
            );
        }
    }

    /// What the challenge concluded agrees with the server's truth.
    fn against_server(&self, outcome: &Outcome, context: &str) {
        let server = self
            .sandbox
            .transaction(self.c.txn_id())
            .expect("the sandbox knows the txn");
        let ctx = || {
            format!(
                "{context}: {outcome:?}\nserver: {server:#?}\nchallenge: {:#?}",
                self.c
            )
        };
        if matches!(outcome, Outcome::Approved(_) | Outcome::Declined(_)) {
            assert_eq!(self.c.status(), &server.status, "{}", ctx());
        }
        if self.c.is_final() {
            assert_eq!(
                Some(self.c.status().clone()),
                self.sandbox.order_status(ORDER_ID),
                "{}",
                ctx()
            );
        }
    }

    fn check(&self, context: &str) {
        if let Some(f) = &self.final_state {
            assert_eq!(&self.c, f, "{context}: a final challenge changed");
        }
        assert_eq!(
            self.c.in_flight(),
            self.pending.as_ref().map(|(t, _)| *t),
            "{context}"
        );
        // The client never believes fewer sends or attempts happened than the server saw
        // (an unknown outcome counts as if it happened), so its limits hold on the server.
        let server = self
            .sandbox
            .transaction(self.c.txn_id())
            .expect("the sandbox knows the txn");
        if self.pending.is_none() && !self.c.is_final() {
            // (A client at its own limit sends no more, whatever it counts.)
            let sends_ok =
                server.otp_sends <= self.c.otp_sends() || self.c.otp_sends() == self.c.send_limit();
            assert!(
                sends_ok,
                "{context}: server sent {} OTPs, the client counts {}",
                server.otp_sends,
                self.c.otp_sends()
            );
            let attempts_ok =
                server.attempts <= self.c.attempts() || self.c.attempts() == self.c.attempt_limit();
            assert!(
                attempts_ok,
                "{context}: server saw {} attempts, the client counts {}",
                server.attempts,
                self.c.attempts()
            );
        }
        // The page shows the OTP input exactly when a submit would be accepted.
        let enter_otp = self.c.next_step(self.now()) == NextStep::EnterOtp;
        assert_eq!(
            enter_otp,
            self.c.may_submit(self.now()).is_ok(),
            "{context}"
        );
        invariants::check_challenge(&self.c, &self.config, self.now(), context);
        self.secrets.check_challenge(&self.c, self.now());
        self.secrets.check_debug("sandbox", &self.sandbox);
    }

    /// Ends the run: with faults cleared, a status check brings the challenge to the
    /// server's status.
    fn settle(&mut self) {
        let now = self.now();
        if let Some((t, _)) = self.pending.take() {
            let _ = self.c.handle_send_failure(t, SendFailure::NotSent, now);
        }
        // Use up the queued faults on status checks until one answer comes through.
        for _ in 0..=self.sandbox.pending_faults() {
            let Ok(out) = self.c.check_status(&self.config, now) else {
                break;
            };
            let answer = self.sandbox.handle_request(&out.request, now);
            if answer.is_delivered() && answer.status == 200 {
                let outcome = self
                    .c
                    .handle_response(out.token, answer.status, &answer.body, now)
                    .expect("in flight");
                invariants::check_outcome(&self.c, &outcome, now, "settle");
                let server = self.sandbox.order_status(ORDER_ID).expect("known order");
                assert_eq!(self.c.status(), &server, "settled status; {outcome:?}");
                return;
            }
            let _ = self
                .c
                .handle_send_failure(out.token, SendFailure::NotSent, now);
        }
        // Already final: the status must be the server's.
        if self.c.is_final() {
            assert_eq!(
                Some(self.c.status().clone()),
                self.sandbox.order_status(ORDER_ID)
            );
        }
    }
}

proptest! {
    #![proptest_config(proptest_config(256))]

    /// Random lifecycles against the simulated server keep every invariant, never
    /// conclude what the server did not, and settle on the server's status.
    #[test]
    fn lifecycle_against_the_sandbox(
        setup in sandbox_setup(),
        policy in policy(),
        ops in prop::collection::vec(sandbox_op(), 1..60),
    ) {
        let Some(mut run) = SandboxRun::start(&setup, policy) else {
            return Ok(());
        };
        run.check("start");
        for (i, op) in ops.iter().enumerate() {
            let before = run.c.clone();
            run.step(op, i);
            // Waiting out the cooldown fires a timer, then resends: two changes.
            let most = if matches!(op, SOp::ResendAfterCooldown) { 2 } else { 1 };
            invariants::check_revision(&before, &run.c, most, &format!("step {i}: {op:?}"));
            if run.final_state.is_none() && run.c.is_final() {
                run.final_state = Some(run.c.clone());
            }
        }
        run.settle();
    }
}

// ----- Regressions found by these properties ------------------------------------------------

/// A policy whose durations are not whole milliseconds (negative, sub-millisecond, or
/// `Duration::MAX`) once made the challenge differ from its own persisted copy: the
/// persisted form keeps whole milliseconds. The challenge now keeps the policy as persisted.
#[test]
fn odd_policy_durations_survive_a_round_trip() {
    for d in [
        std::time::Duration::MAX,
        std::time::Duration::ZERO,
        std::time::Duration::from_nanos(1_500_000),
    ] {
        let mut policy = Policy::default();
        policy.resend_cooldown = d;
        policy.lifetime = d;
        let c = common::challenge_with(policy);
        let back: Challenge = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c, "{d:?}");
        assert_eq!(policy_ms(c.policy().lifetime), policy_ms(d));
        invariants::check_challenge(&c, &common::config(), common::T0, "odd policy");
    }
}

/// A submit answered `AUTHORIZING` used the OTP, but the attempt was not counted: when the
/// order status then said `PENDING_VBV`, the page reopened with one try too many (the
/// sandbox strategy saw the server count more attempts than the client).
#[test]
fn a_submit_still_processing_counts_the_attempt() {
    let mut c = common::challenge();
    let otp = Otp::new("123456").unwrap();
    let out = c.submit(&common::config(), &otp, common::secs(5)).unwrap();
    let body = common::fixture("submit_authorizing");
    let outcome = c.handle_response(out.token, 200, &body, common::secs(6));
    assert_eq!(outcome, Ok(Outcome::Pending(Status::Authorizing)));
    assert_eq!(c.attempts(), 1);
    let out = c.check_status(&common::config(), common::secs(7)).unwrap();
    let body = common::fixture("order_status_pending");
    let outcome = c.handle_response(out.token, 200, &body, common::secs(8));
    assert_eq!(outcome, Ok(Outcome::Pending(Status::PendingVbv)));
    assert_eq!((c.attempts(), c.attempts_left()), (1, 3));
    assert!(c.may_submit(common::secs(9)).is_ok());
}
