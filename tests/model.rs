//! Model-based property tests of the challenge lifecycle.
//!
//! A small reference model (counters, limits, flags, phase, the token in flight, the
//! cooldown and the latest time seen) runs beside a real [`Challenge`] through random
//! sequences of commands, answers, transport failures, stale answers, clock moves (both
//! ways, to the ends of time) and timers. After every step the test compares the
//! challenge with the model (every getter, every outcome, every refusal) and checks the
//! invariants of `tests/invariants/mod.rs`, that a final challenge never changes again, and
//! that no secret shows in anything the library printed or stored.
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

mod common;
mod invariants;

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
fn policy_ms(d: Duration) -> i64 {
    i64::try_from(d.whole_milliseconds().max(0)).unwrap_or(i64::MAX)
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

/// A rendered JSON value and what the library should read from it.
#[derive(Debug, Clone)]
struct Field<T> {
    json: Value,
    means: Option<T>,
}

fn field<T>(json: Value, means: Option<T>) -> Field<T> {
    Field { json, means }
}

/// A counter: numbers, numeric strings (with spaces), whole floats; nonsense reads as absent.
fn count() -> BoxedStrategy<Field<u32>> {
    let n = prop_oneof![8 => 0u32..=6, 1 => Just(u32::MAX), 1 => 7u32..=1000];
    prop_oneof![
        5 => n.clone().prop_map(|n| field(json!(n), Some(n))),
        3 => n.clone().prop_map(|n| field(json!(n.to_string()), Some(n))),
        1 => n.clone().prop_map(|n| field(json!(format!(" {n} ")), Some(n))),
        1 => n.prop_map(|n| field(json!(f64::from(n)), Some(n))),
        2 => prop_oneof![
            Just(json!(-1)),
            Just(json!(4_294_967_296u64)),
            Just(json!("4x")),
            Just(json!(4.5)),
            Just(json!(1e300)),
            Just(json!(true)),
            Just(Value::Null),
            Just(json!({"n": 4})),
            Just(json!([4])),
            Just(json!("")),
        ]
        .prop_map(|v| field(v, None)),
    ]
    .boxed()
}

/// A flag: booleans, `"true"`/`"FALSE"`, `1`/`0`; anything else reads as absent.
fn flag() -> BoxedStrategy<Field<bool>> {
    prop_oneof![
        5 => any::<bool>().prop_map(|b| field(json!(b), Some(b))),
        2 => any::<bool>().prop_map(|b| field(json!(if b { "true" } else { "false" }), Some(b))),
        1 => any::<bool>().prop_map(|b| field(json!(if b { " TRUE" } else { "False " }), Some(b))),
        1 => any::<bool>().prop_map(|b| field(json!(u8::from(b)), Some(b))),
        1 => prop_oneof![
            Just(json!("yes")),
            Just(json!(2)),
            Just(json!(1.0)),
            Just(Value::Null),
            Just(json!({})),
        ]
        .prop_map(|v| field(v, None)),
    ]
    .boxed()
}

const FINAL_STATUSES: [&str; 6] = [
    "CHARGED",
    "AUTHORIZED",
    "AUTHENTICATION_FAILED",
    "AUTHORIZATION_FAILED",
    "JUSPAY_DECLINED",
    "AUTO_REFUNDED",
];

/// A `status`: known values (final or not), unknown text, numbers (read as their text),
/// and absent-like values.
fn status_text() -> BoxedStrategy<Option<Field<String>>> {
    fn text(s: &str) -> Option<Field<String>> {
        Some(field(json!(s), Some(s.to_owned())))
    }
    prop_oneof![
        10 => Just(text("PENDING_VBV")),
        2 => prop::sample::select(FINAL_STATUSES.to_vec()).prop_map(text),
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
        1 => prop_oneof![Just(json!("")), Just(Value::Null), Just(json!(true)), Just(json!(["CHARGED"]))]
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
        1 => Just(field(json!(""), None)),
        1 => Just(field(Value::Null, None)),
        // Not a place to send a browser: read as no fallback.
        1 => Just(field(json!(77), None)),
        1 => prop_oneof![
            Just("javascript:alert(1)"),
            Just("data:text/html,x"),
            Just("//evil.example/x"),
            Just("https://bank.example/x\r\nSet-Cookie: a=b"),
            Just("https://user:pw@bank.example/"),
        ]
        .prop_map(|u| field(json!(u), None)),
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
        for key in [
            "submit_otp_allowed",
            "resend_otp_allowed",
            "fallback_url",
            "times_otp_sent",
            "max_otp_send_limit",
            "current_attempt",
            "max_attempts",
        ] {
            into.remove(key);
        }
        let mut put = |key: &str, v: Option<Value>| {
            if let Some(v) = v {
                into.insert(key.to_owned(), v);
            }
        };
        put(
            "submit_otp_allowed",
            self.submit.as_ref().map(|f| f.json.clone()),
        );
        put(
            "resend_otp_allowed",
            self.resend.as_ref().map(|f| f.json.clone()),
        );
        put(
            "fallback_url",
            self.fallback.as_ref().map(|f| f.json.clone()),
        );
        put(
            "times_otp_sent",
            self.times_sent.as_ref().map(|f| f.json.clone()),
        );
        put(
            "max_otp_send_limit",
            self.send_limit.as_ref().map(|f| f.json.clone()),
        );
        put(
            "current_attempt",
            self.attempt.as_ref().map(|f| f.json.clone()),
        );
        put(
            "max_attempts",
            self.attempt_limit.as_ref().map(|f| f.json.clone()),
        );
        if self.auth_method {
            if let Some(t) = into.remove("auth_type") {
                into.insert("auth_method".into(), t);
            }
        }
    }
}

fn params() -> BoxedStrategy<ParamsSpec> {
    (
        prop::option::weighted(0.6, flag()),
        prop::option::weighted(0.6, flag()),
        prop::option::weighted(0.5, count()),
        prop::option::weighted(0.4, count()),
        prop::option::weighted(0.5, count()),
        prop::option::weighted(0.4, count()),
        prop::option::weighted(0.5, fallback_url()),
        any::<bool>(),
    )
        .prop_map(
            |(
                submit,
                resend,
                times_sent,
                send_limit,
                attempt,
                attempt_limit,
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

impl Auth {
    fn params(&self) -> Option<&ParamsSpec> {
        match self {
            Auth::Params(p) => Some(p),
            _ => None,
        }
    }
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

/// What an error code means for the flow, by the documented and observed codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Meaning {
    // Ordered by precedence, strongest last.
    Refused,
    WrongOtp,
    LimitExceeded,
    Duplicate,
    /// `INVALID_ACTION`: the transaction no longer waits for an OTP.
    Stale,
}

fn code() -> BoxedStrategy<(Field<String>, Meaning)> {
    let of = |codes: Vec<&'static str>, m: Meaning| {
        prop::sample::select(codes).prop_map(move |c| (field(json!(c), Some(c.to_owned())), m))
    };
    prop_oneof![
        3 => of(vec!["max_limit_exceeded", "MAX_LIMIT_EXCEEDED", "otp_limit_exceeded"], Meaning::LimitExceeded),
        2 => of(vec!["DUPLICATE_REQUEST", "duplicate_request"], Meaning::Duplicate),
        2 => of(vec!["INVALID_ACTION", "invalid_action"], Meaning::Stale),
        3 => of(vec!["LP_INCORRECT_OTP", "Otp_Mismatch", "INVALID_OTP", "wrong_otp"], Meaning::WrongOtp),
        4 => of(
            vec![
                "access_denied",
                "transaction_not_found",
                "RESOURCE_NOT_FOUND",
                "MISSING_MANDATORY_PARAMETER",
                "INVALID_INPUT",
                "Another request is in progress for this transaction",
                "internal_server_error",
                "otp_expired",
                "LIMIT",
            ],
            Meaning::Refused,
        ),
        1 => Just((field(json!(400), Some("400".to_owned())), Meaning::Refused)),
    ]
.boxed()
}

/// An answer body, as a description the model reads and bytes the library reads.
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

/// The model's reading of a transaction-shaped body.
struct TxnView<'a> {
    status: Option<String>,
    params: Option<&'a ParamsSpec>,
}

/// The model's reading of an error envelope.
struct EnvelopeView {
    meaning: Meaning,
    code: Option<String>,
}

impl Body {
    fn render(&self) -> Vec<u8> {
        let set_status = |v: &mut Value, status: &Option<Field<String>>| {
            let obj = v.as_object_mut().expect("fixtures are objects");
            obj.remove("status");
            if let Some(s) = status {
                obj.insert("status".into(), s.json.clone());
            }
        };
        match self {
            Body::Txn { status, auth } => {
                let mut v = common::fixture_json("submit_pending_wrong_otp");
                set_status(&mut v, status);
                v["order_id"] = json!(ORDER_ID);
                v["payment"]["authentication"]["params"]["id"] = json!(TXN_ID);
                let obj = v.as_object_mut().expect("object");
                match auth {
                    Auth::NoPayment => {
                        obj.remove("payment");
                    }
                    Auth::NullPayment => {
                        obj.insert("payment".into(), Value::Null);
                    }
                    Auth::NoAuthentication => {
                        obj.insert("payment".into(), json!({"authentication": null}));
                    }
                    Auth::NoParams => {
                        v["payment"]["authentication"]
                            .as_object_mut()
                            .expect("object")
                            .remove("params");
                    }
                    Auth::Params(p) => {
                        let params = v["payment"]["authentication"]["params"]
                            .as_object_mut()
                            .expect("fixture has params");
                        p.render(params);
                    }
                }
                v.to_string().into_bytes()
            }
            Body::Order { status } => {
                let mut v = common::fixture_json("order_status_pending");
                set_status(&mut v, status);
                v["order_id"] = json!(ORDER_ID);
                v.to_string().into_bytes()
            }
            Body::Envelope { status, codes } => {
                let mut v = common::fixture_json("error_forbidden_403");
                set_status(&mut v, status);
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

    /// Read as the transaction shape: `None` when the body is not JSON.
    fn txn(&self) -> Option<TxnView<'_>> {
        let status = |s: &Option<Field<String>>| s.as_ref().and_then(|f| f.means.clone());
        match self {
            Body::Txn { status: s, auth } => Some(TxnView {
                status: status(s),
                params: auth.params(),
            }),
            Body::Order { status: s } | Body::Envelope { status: s, .. } => Some(TxnView {
                status: status(s),
                params: None,
            }),
            Body::Garbage(_) => None,
        }
    }

    fn envelope(&self) -> EnvelopeView {
        match self {
            Body::Envelope { codes, .. } => {
                let meaning = codes
                    .iter()
                    .flatten()
                    .map(|(_, m)| *m)
                    .max()
                    .unwrap_or(Meaning::Refused);
                let text = |i: usize| codes[i].as_ref().and_then(|(f, _)| f.means.clone());
                EnvelopeView {
                    meaning,
                    code: text(1).or(text(0)),
                }
            }
            _ => EnvelopeView {
                meaning: Meaning::Refused,
                code: None,
            },
        }
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
        1 => Just(Vec::new()),
        1 => Just(b"<html><body>502 Bad Gateway</body></html>".to_vec()),
        1 => Just(b"{\"status\": \"CHARGED\"".to_vec()),
        1 => Just(b"{\"status\": \"CHARGED\"}}".to_vec()),
        1 => Just(b"null".to_vec()),
        1 => Just(b"{\"status\":\"\xff\"}".to_vec()),
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
    (
        status,
        prop::option::weighted(0.7, code()),
        prop::option::weighted(0.5, code()),
    )
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

// ----- The model --------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rest {
    Open,
    CheckStatus,
    BankPage,
    Expired,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Resting(Rest),
    InFlight { token: u64, kind: Kind, rest: Rest },
    Final,
}

/// What an error in an outcome should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ErrShape {
    Api { http: u16, code: Option<String> },
    Malformed(u16),
    Unexpected(u16),
}

/// What the model expects an answer to give.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Exact(Outcome),
    Rejected(ErrShape),
    Reconcile(Option<ErrShape>),
    /// Reconcile, the bank having said the copy is stale.
    Stale(ErrShape),
}

impl Expect {
    fn matches(&self, got: &Outcome) -> bool {
        match (self, got) {
            (Expect::Exact(want), got) => want == got,
            (Expect::Rejected(shape), Outcome::Rejected(e)) => shape_matches(shape, e),
            (Expect::Reconcile(None), Outcome::CheckStatus(Uncertainty::MaybeSent)) => true,
            (Expect::Reconcile(Some(shape)), Outcome::CheckStatus(Uncertainty::Response(e))) => {
                shape_matches(shape, e)
            }
            (Expect::Stale(shape), Outcome::CheckStatus(Uncertainty::Stale(e))) => {
                shape_matches(shape, e)
            }
            _ => false,
        }
    }
}

fn shape_matches(shape: &ErrShape, e: &ResponseError) -> bool {
    match (shape, e) {
        (ErrShape::Api { http, code }, ResponseError::Api(api)) => {
            api.http_status() == *http && api.code() == code.as_deref()
        }
        (ErrShape::Malformed(h), ResponseError::Malformed { http_status, .. }) => h == http_status,
        (ErrShape::Unexpected(h), ResponseError::UnexpectedStatus(got)) => h == got,
        _ => false,
    }
}

/// The error for a status the call can't use: the envelope of a 4xx/5xx, else the status.
fn status_error(http: u16, body: &Body) -> ErrShape {
    match http {
        400..=599 => ErrShape::Api {
            http,
            code: body.envelope().code,
        },
        _ => ErrShape::Unexpected(http),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Send,
    Attempt,
}

/// The reference model of one challenge, written from `docs/lifecycle.md`.
#[derive(Debug, Clone)]
struct Model {
    max_sends: u32,
    max_attempts: u32,
    cooldown: i64,
    lifetime: i64,
    phase: Phase,
    status: Status,
    fallback: Option<String>,
    submit_allowed: bool,
    resend_allowed: bool,
    otp_sent: u32,
    attempts: u32,
    server_send_limit: Option<u32>,
    server_attempt_limit: Option<u32>,
    created: i64,
    last_seen: i64,
    cooldown_until: Option<i64>,
    next_token: u64,
}

impl Model {
    fn start(policy: &Policy, params: &ParamsSpec, now: i64) -> Model {
        let mut m = Model {
            max_sends: policy.max_sends,
            max_attempts: policy.max_attempts,
            cooldown: policy_ms(policy.resend_cooldown),
            lifetime: policy_ms(policy.lifetime),
            phase: Phase::Resting(Rest::Open),
            status: Status::PendingVbv,
            fallback: None,
            submit_allowed: true,
            resend_allowed: true,
            otp_sent: 0,
            attempts: 0,
            server_send_limit: None,
            server_attempt_limit: None,
            created: now,
            last_seen: now,
            cooldown_until: None,
            next_token: 1,
        };
        m.apply(Some(params), Counted::Send, now);
        m
    }

    /// Limits are at most `Policy::MAX_LIMIT`, from either side.
    fn send_limit(&self) -> u32 {
        self.server_send_limit
            .unwrap_or(self.max_sends)
            .min(Policy::MAX_LIMIT)
    }

    fn attempt_limit(&self) -> u32 {
        self.server_attempt_limit
            .unwrap_or(self.max_attempts)
            .min(Policy::MAX_LIMIT)
    }

    fn expires(&self) -> i64 {
        plus(self.created, self.lifetime)
    }

    fn effective(&self, now: i64) -> i64 {
        now.max(self.last_seen)
    }

    // Commands.

    fn idle(&self) -> Result<Rest, Refusal> {
        match self.phase {
            Phase::Final => Err(Refusal::AlreadyFinal(self.status.clone())),
            Phase::InFlight { token: t, .. } => Err(Refusal::InFlight(token(t))),
            Phase::Resting(rest) => Ok(rest),
        }
    }

    fn otp_page(&self, now: i64) -> Result<Rest, Refusal> {
        match self.idle()? {
            Rest::CheckStatus => Err(Refusal::CheckStatus),
            Rest::BankPage => Err(Refusal::OnBankPage),
            Rest::Expired => Err(Refusal::Expired),
            Rest::Open if now >= self.expires() => Err(Refusal::Expired),
            Rest::Open => Ok(Rest::Open),
        }
    }

    fn may_submit(&self, now: i64) -> Result<Rest, Refusal> {
        let rest = self.otp_page(now)?;
        if self.attempts >= self.attempt_limit() {
            return Err(Refusal::AttemptLimitReached {
                limit: self.attempt_limit(),
            });
        }
        if !self.submit_allowed {
            return Err(Refusal::SubmitNotAllowed);
        }
        Ok(rest)
    }

    fn may_resend(&self, now: i64) -> Result<Rest, Refusal> {
        let rest = self.otp_page(now)?;
        if self.otp_sent >= self.send_limit() {
            return Err(Refusal::SendLimitReached {
                limit: self.send_limit(),
            });
        }
        if !self.resend_allowed {
            return Err(Refusal::ResendNotAllowed);
        }
        match self.cooldown_until {
            Some(until) if now < until => Err(Refusal::Cooldown {
                until: at_ms(until),
            }),
            _ => Ok(rest),
        }
    }

    /// Runs a command: the token it issues, or its refusal (which changes nothing).
    fn command(&mut self, kind: Kind, now: i64) -> Result<u64, Refusal> {
        let now = self.effective(now);
        let rest = match kind {
            Kind::Resend => self.may_resend(now)?,
            Kind::Submit => self.may_submit(now)?,
            Kind::OrderStatus => self.idle()?,
        };
        let t = self.next_token;
        self.next_token = self.next_token.saturating_add(1);
        self.phase = Phase::InFlight {
            token: t,
            kind,
            rest,
        };
        self.last_seen = now;
        Ok(t)
    }

    fn bank_page(&mut self, now: i64) -> Result<String, Refusal> {
        let now = self.effective(now);
        let rest = self.idle()?;
        let url = self.fallback.clone().ok_or(Refusal::NoBankPage)?;
        if rest == Rest::BankPage {
            // A page reload: the same URL again, nothing changes.
            return Ok(url);
        }
        self.phase = Phase::Resting(Rest::BankPage);
        self.cooldown_until = None;
        self.last_seen = now;
        Ok(url)
    }

    // Inputs.

    /// The error an answer for `got` gets, if `got` is not in flight.
    fn refuse_token(&self, got: u64) -> Option<InputError> {
        match self.phase {
            Phase::InFlight { token: t, .. } if t == got => None,
            Phase::InFlight { token: t, .. } => Some(InputError::StaleToken {
                got: token(got),
                in_flight: token(t),
            }),
            Phase::Final => Some(InputError::AlreadyFinal { got: token(got) }),
            Phase::Resting(_) => Some(InputError::NothingInFlight { got: token(got) }),
        }
    }

    /// Takes the answer to the request in flight.
    fn answer(&mut self, http: u16, body: &Body, now: i64) -> Expect {
        let Phase::InFlight { kind, rest, .. } = self.phase else {
            unreachable!("answer without a request in flight")
        };
        let now = self.effective(now);
        self.last_seen = now;
        self.phase = Phase::Resting(rest);
        match kind {
            Kind::Resend => self.on_resend(http, body, now),
            Kind::Submit => self.on_submit(http, body, now),
            Kind::OrderStatus => self.on_order_status(rest, http, body),
        }
    }

    fn on_resend(&mut self, http: u16, body: &Body, now: i64) -> Expect {
        match http {
            200..=299 => match body.txn() {
                // A final status settles, whatever the call.
                Some(TxnView {
                    status: Some(text), ..
                }) if FINAL_STATUSES.contains(&text.as_str()) => self.finish(&text),
                Some(t) => {
                    self.apply(t.params, Counted::Send, now);
                    Expect::Exact(Outcome::OtpSent {
                        sends_left: self.send_limit() - self.otp_sent,
                    })
                }
                None => self.uncertain(Kind::Resend, Some(ErrShape::Malformed(http)), now),
            },
            400..=499 => {
                let env = body.envelope();
                let shape = ErrShape::Api {
                    http,
                    code: env.code,
                };
                match env.meaning {
                    Meaning::LimitExceeded => {
                        self.otp_sent = self.send_limit();
                        self.resend_allowed = false;
                        self.cooldown_until = None;
                        Expect::Exact(Outcome::SendLimitReached)
                    }
                    Meaning::Duplicate => self.uncertain(Kind::Resend, Some(shape), now),
                    Meaning::Stale => self.stale(shape),
                    Meaning::WrongOtp | Meaning::Refused => Expect::Rejected(shape),
                }
            }
            _ => self.uncertain(Kind::Resend, Some(status_error(http, body)), now),
        }
    }

    fn on_submit(&mut self, http: u16, body: &Body, now: i64) -> Expect {
        match http {
            200..=299 => {
                let Some(t) = body.txn() else {
                    return self.uncertain(Kind::Submit, Some(ErrShape::Malformed(http)), now);
                };
                let Some(text) = t.status else {
                    return self.uncertain(Kind::Submit, Some(ErrShape::Malformed(http)), now);
                };
                if FINAL_STATUSES.contains(&text.as_str()) {
                    // The OTP was used: counted, even on success.
                    self.apply(t.params, Counted::Attempt, now);
                    return self.finish(&text);
                }
                let status = Status::parse(&text);
                if text == "PENDING_VBV" {
                    self.status = status;
                    self.apply(t.params, Counted::Attempt, now);
                    return self.after_wrong_otp();
                }
                self.apply(t.params, Counted::Attempt, now);
                self.status = status.clone();
                self.phase = Phase::Resting(Rest::CheckStatus);
                Expect::Exact(Outcome::Pending(status))
            }
            400..=499 => {
                let env = body.envelope();
                let shape = ErrShape::Api {
                    http,
                    code: env.code,
                };
                match env.meaning {
                    Meaning::WrongOtp => {
                        self.count(Counted::Attempt, now);
                        self.after_wrong_otp()
                    }
                    Meaning::LimitExceeded => {
                        self.attempts = self.attempt_limit();
                        Expect::Exact(Outcome::AttemptLimitReached)
                    }
                    Meaning::Duplicate => self.uncertain(Kind::Submit, Some(shape), now),
                    Meaning::Stale => self.stale(shape),
                    Meaning::Refused => Expect::Rejected(shape),
                }
            }
            _ => self.uncertain(Kind::Submit, Some(status_error(http, body)), now),
        }
    }

    fn after_wrong_otp(&self) -> Expect {
        Expect::Exact(
            if self.attempts >= self.attempt_limit() || !self.submit_allowed {
                Outcome::AttemptLimitReached
            } else {
                Outcome::WrongOtp {
                    attempts_left: self.attempt_limit() - self.attempts,
                }
            },
        )
    }

    fn on_order_status(&mut self, rest: Rest, http: u16, body: &Body) -> Expect {
        if !(200..=299).contains(&http) {
            return Expect::Rejected(status_error(http, body));
        }
        let Some(t) = body.txn() else {
            return Expect::Rejected(ErrShape::Malformed(http));
        };
        let Some(text) = t.status else {
            return Expect::Rejected(ErrShape::Malformed(http));
        };
        if FINAL_STATUSES.contains(&text.as_str()) {
            return self.finish(&text);
        }
        let pending = text == "PENDING_VBV";
        let rest = match (pending, rest) {
            (true, Rest::CheckStatus) => Rest::Open,
            (true, rest) => rest,
            (false, Rest::Open) => Rest::CheckStatus,
            (false, rest) => rest,
        };
        self.phase = Phase::Resting(rest);
        self.status = Status::parse(&text);
        Expect::Exact(Outcome::Pending(self.status.clone()))
    }

    fn send_failure(&mut self, maybe: bool, now: i64) -> Expect {
        let Phase::InFlight { kind, rest, .. } = self.phase else {
            unreachable!("failure without a request in flight")
        };
        let now = self.effective(now);
        self.last_seen = now;
        self.phase = Phase::Resting(rest);
        if maybe && kind != Kind::OrderStatus {
            self.uncertain(kind, None, now)
        } else {
            Expect::Exact(Outcome::NotDelivered)
        }
    }

    fn uncertain(&mut self, kind: Kind, why: Option<ErrShape>, now: i64) -> Expect {
        match kind {
            Kind::Resend => self.count(Counted::Send, now),
            Kind::Submit => self.count(Counted::Attempt, now),
            Kind::OrderStatus => {}
        }
        self.phase = Phase::Resting(Rest::CheckStatus);
        Expect::Reconcile(why)
    }

    /// The bank says the transaction is past OTP entry: reconcile, counting nothing.
    fn stale(&mut self, shape: ErrShape) -> Expect {
        self.phase = Phase::Resting(Rest::CheckStatus);
        Expect::Stale(shape)
    }

    fn finish(&mut self, text: &str) -> Expect {
        let status = Status::parse(text);
        self.phase = Phase::Final;
        self.cooldown_until = None;
        self.status = status.clone();
        Expect::Exact(if text == "CHARGED" || text == "AUTHORIZED" {
            Outcome::Approved(status)
        } else {
            Outcome::Declined(status)
        })
    }

    /// What a transaction-shaped answer says: flags, fallback, limits, counters; counts
    /// `counted` locally when the server gives no counter for it.
    fn apply(&mut self, params: Option<&ParamsSpec>, counted: Counted, now: i64) {
        let means = |f: &Option<Field<u32>>| f.as_ref().and_then(|f| f.means);
        let mut server_counter = None;
        if let Some(p) = params {
            if let Some(v) = p.submit.as_ref().and_then(|f| f.means) {
                self.submit_allowed = v;
            }
            if let Some(v) = p.resend.as_ref().and_then(|f| f.means) {
                self.resend_allowed = v;
            }
            if let Some(url) = p.fallback.as_ref().and_then(|f| f.means.clone()) {
                self.fallback = Some(url);
            }
            if let Some(n) = means(&p.send_limit) {
                self.server_send_limit = Some(n);
            }
            if let Some(n) = means(&p.attempt_limit) {
                self.server_attempt_limit = Some(n);
            }
            if let Some(n) = means(&p.times_sent) {
                self.otp_sent = n;
            }
            if let Some(n) = means(&p.attempt) {
                self.attempts = n;
            }
            server_counter = match counted {
                Counted::Send => means(&p.times_sent),
                Counted::Attempt => means(&p.attempt),
            };
        }
        match (server_counter, counted) {
            (None, _) => self.count(counted, now),
            (Some(_), Counted::Send) => self.cooldown_until = Some(plus(now, self.cooldown)),
            (Some(_), Counted::Attempt) => {}
        }
        self.clamp();
    }

    fn count(&mut self, counted: Counted, now: i64) {
        match counted {
            Counted::Send => {
                self.otp_sent = self.otp_sent.saturating_add(1);
                self.cooldown_until = Some(plus(now, self.cooldown));
            }
            Counted::Attempt => self.attempts = self.attempts.saturating_add(1),
        }
        self.clamp();
    }

    fn clamp(&mut self) {
        self.otp_sent = self.otp_sent.min(self.send_limit());
        self.attempts = self.attempts.min(self.attempt_limit());
    }

    // Timers.

    /// The next deadline, and whether it is the cooldown's.
    fn deadline(&self) -> Option<(i64, bool)> {
        if self.phase != Phase::Resting(Rest::Open) {
            return None;
        }
        let expiry = self.expires();
        match self
            .cooldown_until
            .filter(|_| self.resend_allowed && self.otp_sent < self.send_limit())
        {
            Some(c) if c < expiry => Some((c, true)),
            _ => Some((expiry, false)),
        }
    }

    fn timeout(&mut self, now: i64) -> Option<TimerEvent> {
        let now = self.effective(now);
        let (at, _) = self.deadline()?;
        if now < at {
            return None;
        }
        self.last_seen = now;
        self.cooldown_until = None;
        if now >= self.expires() {
            self.phase = Phase::Resting(Rest::Expired);
            Some(TimerEvent::Expired)
        } else {
            Some(TimerEvent::ResendAvailable)
        }
    }

    // Getters.

    fn next_step(&self, now: i64) -> NextStep {
        let now = self.effective(now);
        match self.phase {
            Phase::Final => NextStep::Finished(self.status.clone()),
            Phase::InFlight { .. } => unreachable!("compared through in_flight"),
            Phase::Resting(Rest::CheckStatus) => NextStep::CheckStatus,
            Phase::Resting(Rest::BankPage) => NextStep::AwaitBankPage,
            Phase::Resting(Rest::Open) if self.may_submit(now).is_ok() => NextStep::EnterOtp,
            Phase::Resting(rest) => match &self.fallback {
                Some(url) => NextStep::BankPage(url.clone()),
                None if rest == Rest::Expired || now >= self.expires() => NextStep::Expired,
                None => NextStep::CheckStatus,
            },
        }
    }

    /// Compares every getter of `c` with the model.
    fn compare(&self, c: &Challenge, now: i64, at: OffsetDateTime, context: &str) {
        let in_flight = match self.phase {
            Phase::InFlight { token: t, .. } => Some(token(t)),
            _ => None,
        };
        let ctx = || format!("{context}\nmodel: {self:#?}\nchallenge: {c:#?}");
        assert_eq!(c.in_flight(), in_flight, "in_flight; {}", ctx());
        assert_eq!(
            c.is_final(),
            self.phase == Phase::Final,
            "is_final; {}",
            ctx()
        );
        assert_eq!(c.status(), &self.status, "status; {}", ctx());
        assert_eq!(c.otp_sends(), self.otp_sent, "otp_sends; {}", ctx());
        assert_eq!(c.attempts(), self.attempts, "attempts; {}", ctx());
        assert_eq!(c.send_limit(), self.send_limit(), "send_limit; {}", ctx());
        assert_eq!(
            c.attempt_limit(),
            self.attempt_limit(),
            "attempt_limit; {}",
            ctx()
        );
        assert_eq!(
            c.fallback_url(),
            self.fallback.as_deref(),
            "fallback; {}",
            ctx()
        );
        assert_eq!(
            c.expires_at(),
            at_ms(self.expires()),
            "expires_at; {}",
            ctx()
        );
        let deadline = self.deadline();
        assert_eq!(
            c.poll_timeout(),
            deadline.map(|(d, _)| at_ms(d)),
            "poll_timeout; {}",
            ctx()
        );
        assert_eq!(
            c.resend_available_at(),
            deadline
                .filter(|(_, cooldown)| *cooldown)
                .map(|(d, _)| at_ms(d)),
            "resend_available_at; {}",
            ctx()
        );
        let eff = self.effective(now);
        assert_eq!(
            c.may_submit(at),
            self.may_submit(eff).map(drop),
            "check_submit; {}",
            ctx()
        );
        assert_eq!(
            c.may_resend(at),
            self.may_resend(eff).map(drop),
            "check_resend; {}",
            ctx()
        );
        if let Some(t) = in_flight {
            assert_eq!(c.next_step(at), NextStep::Wait(t), "next_step; {}", ctx());
        } else {
            assert_eq!(c.next_step(at), self.next_step(now), "next_step; {}", ctx());
        }
        // `handle_timeout` one millisecond before the deadline fires only when the
        // challenge has already seen a time at or past it.
        if let Some((d, _)) = deadline {
            if d > min_ms() {
                let fired = c.clone().handle_timeout(at_ms(d - 1)).is_some();
                assert_eq!(fired, self.last_seen >= d, "timer 1 ms early; {}", ctx());
            }
        }
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
        Just(Duration::ZERO),
        Just(Duration::MAX),
        Just(Duration::MIN),
        Just(Duration::seconds(-5)),
        Just(Duration::nanoseconds(1_500_000)),
        Just(Duration::nanoseconds(999_999)),
    ];
    let cooldown = prop_oneof![
        6 => (0i64..=60_000).prop_map(Duration::milliseconds),
        1 => odd.clone(),
    ];
    let lifetime = prop_oneof![
        8 => (120_000i64..=3_600_000).prop_map(Duration::milliseconds),
        1 => (0i64..120_000).prop_map(Duration::milliseconds),
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

/// A challenge, its model, and everything the test must check after each step.
struct Run {
    config: Config,
    secrets: Secrets,
    clock: Clock,
    c: Challenge,
    model: Model,
    issued: Vec<u64>,
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
        let model = Model::start(&policy, params, start_ms);
        invariants::bind_tokens(c.record_id());
        let run = Run {
            config,
            secrets,
            clock,
            c,
            model,
            issued: Vec::new(),
            final_state: None,
        };
        run.check("start");
        run
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    fn pick(&self, p: TokenPick) -> u64 {
        match p {
            TokenPick::Issued(i) if !self.issued.is_empty() => *i.get(&self.issued),
            TokenPick::Issued(_) => 1,
            TokenPick::Future(k) => self.model.next_token.saturating_add(u64::from(k)),
            TokenPick::Any(n) => n,
        }
    }

    fn step(&mut self, op: &Op, i: usize) {
        let context = format!("step {i}: {op:?}");
        let now = self.now();
        let ms = self.clock.ms;
        match op {
            Op::Resend => {
                let got = self.c.resend(&self.config, now);
                self.command(
                    Kind::Resend,
                    got.map(|o| (o.token, o.request)),
                    None,
                    &context,
                );
            }
            Op::Submit(k) => {
                let otp = Otp::new(&format!(" {} ", OTPS[*k])).expect("valid OTP");
                let got = self.c.submit(&self.config, &otp, now);
                self.command(
                    Kind::Submit,
                    got.map(|o| (o.token, o.request)),
                    Some(OTPS[*k]),
                    &context,
                );
            }
            Op::CheckStatus => {
                let got = self.c.check_status(&self.config, now);
                self.command(
                    Kind::OrderStatus,
                    got.map(|o| (o.token, o.request)),
                    None,
                    &context,
                );
            }
            Op::BankPage => {
                let before = self.c.clone();
                let got = self.c.go_to_bank_page(now);
                let want = self.model.bank_page(ms);
                assert_eq!(got, want, "{context}");
                self.refused_changes_nothing(&before, got.is_err(), &context);
                self.secrets.check("go_to_bank_page", &format!("{got:?}"));
            }
            Op::Answer(http, body) => match self.model.phase {
                Phase::InFlight { token: t, .. } => self.answer(t, *http, body, &context),
                _ => {
                    let t = self.issued.last().copied().unwrap_or(1);
                    self.answer(t, *http, body, &context);
                }
            },
            Op::Exchange(command, http, body) => {
                self.step(command, i);
                if let Phase::InFlight { token: t, .. } = self.model.phase {
                    self.answer(t, *http, body, &context);
                }
            }
            Op::AnswerToken(p, http, body) => {
                let t = self.pick(*p);
                self.answer(t, *http, body, &context);
            }
            Op::Fail(maybe) => {
                let t = match self.model.phase {
                    Phase::InFlight { token: t, .. } => t,
                    _ => self.issued.last().copied().unwrap_or(1),
                };
                self.fail(t, *maybe, &context);
            }
            Op::FailToken(p, maybe) => {
                let t = self.pick(*p);
                self.fail(t, *maybe, &context);
            }
            Op::Clock(m) => self.clock.apply(m, &self.c),
            Op::TimerAtDeadline(expiry_too) => {
                let deadline = if *expiry_too {
                    self.c.poll_timeout()
                } else {
                    self.c.resend_available_at()
                };
                if let Some(t) = deadline {
                    self.clock = Clock {
                        ms: ms_of(t),
                        sub_ns: 0,
                    };
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
        self.check(&context);
    }

    fn command(
        &mut self,
        kind: Kind,
        got: Result<(Token, direct_otp::Request), Refusal>,
        otp: Option<&str>,
        context: &str,
    ) {
        let want = self.model.command(kind, self.clock.ms);
        match (&got, want) {
            (Ok((t, request)), Ok(want_token)) => {
                invariants::register_token(want_token, *t);
                assert_eq!(t.kind(), kind.request_kind(), "{context}: token kind");
                assert_eq!(t.record(), self.c.record_id(), "{context}: token record");
                assert_eq!(t.revision(), self.c.revision(), "{context}: token revision");
                self.issued.push(want_token);
                self.check_request(kind, request, otp, context);
                self.secrets.check_debug("outgoing request", request);
            }
            (Err(got), Err(want)) => {
                assert_eq!(got, &want, "{context}: refusal");
                self.secrets.check_error("refusal", got);
            }
            (got, want) => panic!("{context}: got {got:?}, the model wants {want:?}"),
        }
    }

    fn check_request(&self, kind: Kind, r: &direct_otp::Request, otp: Option<&str>, context: &str) {
        let base = self.config.base_url();
        let (rk, method, url) = match kind {
            Kind::Resend => (
                RequestKind::Resend,
                Method::Post,
                format!("{base}/v2/txns/{TXN_ID}/authenticate/{CHALLENGE_ID}/resend"),
            ),
            Kind::Submit => (
                RequestKind::Submit,
                Method::Post,
                format!("{base}/v2/txns/{TXN_ID}/authenticate"),
            ),
            Kind::OrderStatus => (
                RequestKind::OrderStatus,
                Method::Get,
                format!("{base}/orders/{ORDER_ID}"),
            ),
        };
        assert_eq!(
            (r.kind(), r.method(), r.url()),
            (rk, method, url.as_str()),
            "{context}"
        );
        assert_eq!(r.header("x-routing-id"), Some(ROUTING), "{context}");
        assert!(
            r.header("authorization")
                .is_some_and(|a| a.starts_with("Basic ")),
            "{context}"
        );
        let body = String::from_utf8_lossy(r.body());
        match otp {
            Some(otp) => {
                assert!(
                    body.contains(&format!("answer.otp={otp}")),
                    "{context}: {body}"
                );
                assert!(
                    body.contains(&format!("challenge_id={CHALLENGE_ID}")),
                    "{context}: {body}"
                );
            }
            None => assert!(!body.contains("answer.otp"), "{context}: {body}"),
        }
    }

    fn answer(&mut self, t: u64, http: u16, body: &Body, context: &str) {
        let before = self.c.clone();
        let bytes = body.render();
        let got = self.c.handle_response(token(t), http, &bytes, self.now());
        match self.model.refuse_token(t) {
            Some(want) => {
                assert_eq!(got, Err(want), "{context}");
                self.refused_changes_nothing(&before, true, context);
                if let Err(e) = &got {
                    self.secrets.check_error("input error", e);
                }
            }
            None => {
                let want = self.model.answer(http, body, self.clock.ms);
                let outcome = got.unwrap_or_else(|e| panic!("{context}: refused {e:?}"));
                assert!(
                    want.matches(&outcome),
                    "{context}: got {outcome:?}, the model wants {want:?}"
                );
                self.outcome(&outcome, context);
            }
        }
    }

    fn fail(&mut self, t: u64, maybe: bool, context: &str) {
        let before = self.c.clone();
        let failure = if maybe {
            SendFailure::MaybeSent
        } else {
            SendFailure::NotSent
        };
        let got = self.c.handle_send_failure(token(t), failure, self.now());
        match self.model.refuse_token(t) {
            Some(want) => {
                assert_eq!(got, Err(want), "{context}");
                self.refused_changes_nothing(&before, true, context);
            }
            None => {
                let want = self.model.send_failure(maybe, self.clock.ms);
                let outcome = got.unwrap_or_else(|e| panic!("{context}: refused {e:?}"));
                assert!(
                    want.matches(&outcome),
                    "{context}: got {outcome:?}, the model wants {want:?}"
                );
                self.outcome(&outcome, context);
            }
        }
    }

    fn outcome(&self, outcome: &Outcome, context: &str) {
        invariants::check_outcome(&self.c, outcome, self.now(), context);
        self.secrets.check_debug("outcome", outcome);
        if let Outcome::Rejected(e) | Outcome::CheckStatus(Uncertainty::Response(e)) = outcome {
            self.secrets.check_error("response error", e);
        }
    }

    fn timer(&mut self, context: &str, must_fire: bool) {
        let before = self.c.clone();
        let deadline = self.c.poll_timeout();
        let got = self.c.handle_timeout(self.now());
        let want = self.model.timeout(self.clock.ms);
        assert_eq!(got, want, "{context}");
        if must_fire {
            assert!(got.is_some(), "{context}: the deadline did not fire");
        }
        match got {
            None => assert_eq!(
                self.c, before,
                "{context}: a spurious timer changed the state"
            ),
            Some(_) => {
                // No busy loop: the next deadline is strictly later, or there is none.
                if let (Some(old), Some(new)) = (deadline, self.c.poll_timeout()) {
                    assert!(new > old, "{context}: deadline {old} then {new}");
                }
            }
        }
    }

    fn refused_changes_nothing(&self, before: &Challenge, refused: bool, context: &str) {
        if refused {
            assert_eq!(
                &self.c, before,
                "{context}: a refused input changed the state"
            );
        }
    }

    fn check(&self, context: &str) {
        if let Some(f) = &self.final_state {
            assert_eq!(&self.c, f, "{context}: a final challenge changed");
        }
        self.model
            .compare(&self.c, self.clock.ms, self.now(), context);
        invariants::check_challenge(&self.c, &self.config, self.now(), context);
        self.secrets.check_challenge(&self.c, self.now());
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

    /// Random lifecycles follow the reference model step by step and keep every invariant.
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
                        Delivery::Never => {
                            self.c.handle_send_failure(t, SendFailure::MaybeSent, now)
                        }
                        Delivery::Now | Delivery::After(_) => {
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
                let deadline = if *expiry_too {
                    self.c.poll_timeout()
                } else {
                    self.c.resend_available_at()
                };
                if let Some(t) = deadline {
                    self.clock = Clock {
                        ms: ms_of(t),
                        sub_ns: 0,
                    };
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
        Duration::MAX,
        Duration::MIN,
        Duration::seconds(-5),
        Duration::nanoseconds(1_500_000),
    ] {
        let mut policy = Policy::default();
        policy.resend_cooldown = d;
        policy.lifetime = d;
        let c = common::challenge_with(policy);
        let back: Challenge = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c, "{d}");
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
