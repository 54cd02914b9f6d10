//! Every variant of every enum that crosses, in its wire form: each code is listed in the
//! registry under its type (and each listed code is given by some variant), and the forms
//! are the checked-in `docs/protocol.samples.json`, which the integration tests
//! (`tests/it/wire.rs`) check against the schema with an independent validator.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{ToWire, WireError};
use crate::driver::DriveError;
use crate::error::*;
use crate::outcome::{Outcome, Refusal, SendFailure, TimerEvent, Uncertainty};
use crate::payment::{SettleError, SettleOutcome};
use crate::settle::*;
use crate::status::Status;
use crate::store::{Rejection, StoreError};
use crate::token::{RequestKind, Token};
use crate::view::NextStep;

/// (type, schema def, code, wire form).
type Sample = (&'static str, &'static str, &'static str, Value);

/// A fixed token, so the samples are the same in every run.
fn token() -> Token {
    let token: Token = "submit@00000000000000ff/r3/0a1b2c3d".parse().unwrap();
    assert_eq!((token.revision(), token.kind()), (3, RequestKind::Submit));
    token
}

fn api() -> ApiError {
    ApiError::new(
        402,
        [
            Some("error"),
            Some("E1"),
            Some("bad \u{7}card"),
            Some("INVALID_INPUT"),
            None,
            Some("req_1"),
        ],
    )
}

fn expected() -> ExpectedAmount {
    ExpectedAmount::new(Amount::parse("10.5").unwrap(), "inr").unwrap()
}

fn integrity() -> Box<IntegrityError> {
    Box::new(IntegrityError {
        expected: expected(),
        found_amount: None,
        found_currency: Some("USD".into()),
    })
}

fn disagreement() -> Box<Disagreement> {
    Box::new(Disagreement {
        source: SettlementSource::Webhook,
        said: Status::Charged,
        status: Status::AuthenticationFailed,
        was_paid: false,
        paid: false,
    })
}

fn responses() -> Vec<ResponseError> {
    vec![
        ResponseError::Api(api()),
        ResponseError::Malformed {
            http_status: 200,
            problem: Malformed::Syntax { line: 1, column: 2 },
        },
        ResponseError::Malformed {
            http_status: 200,
            problem: Malformed::Shape { line: 1, column: 2 },
        },
        ResponseError::Malformed {
            http_status: 200,
            problem: Malformed::Missing("order_id"),
        },
        ResponseError::Malformed {
            http_status: 200,
            problem: Malformed::BadId("txn_id"),
        },
        ResponseError::Malformed {
            http_status: 200,
            problem: Malformed::BadUrl("url"),
        },
        ResponseError::UnexpectedStatus(302),
        ResponseError::Foreign(ForeignAnswer { field: "order_id" }),
    ]
}

fn ids() -> Vec<IdError> {
    vec![
        IdError::Empty { field: "order_id" },
        IdError::TooLong {
            field: "order_id",
            max: 128,
        },
        IdError::ForbiddenCharacter {
            field: "order_id",
            character: "'/'".into(),
        },
        IdError::DotDot { field: "order_id" },
        IdError::DotSegment { field: "order_id" },
    ]
}

fn base_urls() -> Vec<BaseUrlError> {
    vec![
        BaseUrlError::Scheme,
        BaseUrlError::Character { character: ' ' },
        BaseUrlError::MissingHost,
        BaseUrlError::Host,
        BaseUrlError::Port,
        BaseUrlError::UserInfo,
        BaseUrlError::QueryOrFragment,
        BaseUrlError::DotSegment,
        BaseUrlError::EmptySegment,
        BaseUrlError::PathCharacter { character: '|' },
        BaseUrlError::PercentEncoding,
    ]
}

fn amounts() -> Vec<AmountError> {
    vec![
        AmountError::NotANumber,
        AmountError::Negative,
        AmountError::OutOfRange,
        AmountError::Currency,
    ]
}

fn refusals() -> Vec<Refusal> {
    vec![
        Refusal::InFlight(token()),
        Refusal::CheckStatus,
        Refusal::OnBankPage,
        Refusal::Expired,
        Refusal::AlreadyFinal(Status::Charged),
        Refusal::SendLimitReached { limit: 4 },
        Refusal::AttemptLimitReached { limit: 4 },
        Refusal::Cooldown {
            until: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
        },
        Refusal::ResendNotAllowed,
        Refusal::SubmitNotAllowed,
        Refusal::NoBankPage,
        Refusal::NotStarted,
        Refusal::AlreadyStarted,
        Refusal::OtherOrder,
        Refusal::Confirming,
        Refusal::AttemptOpen,
        Refusal::StartRequestNeeded,
    ]
}

fn outcomes() -> Vec<Outcome> {
    let mut all = vec![
        Outcome::OtpSent { sends_left: 2 },
        Outcome::SendLimitReached,
        Outcome::WrongOtp { attempts_left: 1 },
        Outcome::AttemptLimitReached,
        Outcome::Approved(Status::Charged),
        Outcome::Declined(Status::JuspayDeclined),
        Outcome::Pending(Status::parse("SOMETHING_NEW")),
        Outcome::Unauthorized(ApiError::new(401, [None; 6])),
        Outcome::CheckStatus(Uncertainty::MaybeSent),
        Outcome::CheckStatus(Uncertainty::AmountUnchecked(Status::Charged)),
        Outcome::BankPageRequired,
        Outcome::NotDelivered,
        Outcome::IntegrityFailed(integrity()),
        Outcome::Confirmed(Status::Authorized),
        Outcome::Disagreement(disagreement()),
    ];
    for e in responses() {
        all.push(Outcome::Rejected(e.clone()));
        all.push(Outcome::CheckStatus(Uncertainty::Response(e.clone())));
        all.push(Outcome::CheckStatus(Uncertainty::Stale(e)));
    }
    all
}

fn settle_errors() -> Vec<SettleError> {
    vec![
        SettleError::OtherOrder {
            got: "a".into(),
            expected: "b".into(),
        },
        SettleError::NotStarted,
        SettleError::BadEventId,
    ]
}

fn inputs() -> Vec<InputError> {
    vec![
        InputError::OtherRecord { got: token() },
        InputError::StaleToken {
            got: token(),
            in_flight: token(),
        },
        InputError::AlreadyFinal { got: token() },
        InputError::NothingInFlight { got: token() },
        InputError::Foreign(ForeignAnswer { field: "txn_id" }),
    ]
}

fn stores() -> Vec<StoreError> {
    let mut all = vec![
        StoreError::Conflict {
            key: "k".into(),
            found: Some(3),
        },
        StoreError::Conflict {
            key: "k".into(),
            found: None,
        },
        StoreError::NotFound { key: "k".into() },
        StoreError::Corrupt {
            key: "k".into(),
            source: "not JSON".into(),
        },
        StoreError::Config {
            reason: "bad URL".into(),
        },
        StoreError::backend(std::io::Error::other("down")),
    ];
    for reason in rejections() {
        all.push(StoreError::Rejected {
            key: "k".into(),
            reason,
        });
    }
    all
}

fn rejections() -> Vec<Rejection> {
    vec![
        Rejection::EmptyKey,
        Rejection::KeyTooLong { len: 2000 },
        Rejection::KeyHasNul,
        Rejection::RevisionNotAdvanced {
            expected: 3,
            new: 3,
        },
        Rejection::RevisionTooLarge { revision: u64::MAX },
        Rejection::Unserializable {
            message: "x".into(),
        },
    ]
}

fn drives() -> Vec<DriveError> {
    let key = || "ord_1/1".to_owned();
    let mut all = vec![
        DriveError::NotFound { key: key() },
        DriveError::UnknownOrder {
            order_id: "ord_1".into(),
        },
        DriveError::Busy {
            key: key(),
            payment: None,
        },
        DriveError::Late { key: key() },
        DriveError::Overtaken {
            key: key(),
            outcome: Box::new(Outcome::Approved(Status::Charged)),
        },
        DriveError::Unauthorized {
            key: key(),
            source: ApiError::new(403, [None; 6]),
        },
    ];
    all.extend(
        rejections()
            .into_iter()
            .map(|reason| DriveError::BadKey { key: key(), reason }),
    );
    all.extend(
        settle_errors()
            .into_iter()
            .map(|source| DriveError::NotApplied { key: key(), source }),
    );
    all.extend(refusals().into_iter().map(|refusal| DriveError::Refused {
        key: key(),
        refusal,
        payment: None,
    }));
    all.extend(
        inputs()
            .into_iter()
            .map(|source| DriveError::Unanswerable { key: key(), source }),
    );
    all.extend(stores().into_iter().map(|source| DriveError::Store {
        key: key(),
        sent: true,
        source,
    }));
    all
}

fn wire_errors() -> Vec<WireError> {
    let mut all = vec![
        WireError::Syntax { line: 1, column: 1 },
        WireError::Shape { line: 1, column: 1 },
        WireError::Record { line: 1, column: 1 },
        WireError::Token,
        WireError::Base64,
        WireError::Otp(OtpError::Length(3)),
        WireError::Otp(OtpError::NotDigits),
        WireError::Config(ConfigError::ApiKey),
    ];
    all.extend(ids().into_iter().map(WireError::Id));
    all.extend(
        ids()
            .into_iter()
            .map(|e| WireError::Config(ConfigError::Header(e))),
    );
    all.extend(
        base_urls()
            .into_iter()
            .map(|e| WireError::Config(ConfigError::BaseUrl(e))),
    );
    all.extend(amounts().into_iter().map(WireError::Amount));
    all
}

fn push<T: ToWire>(
    out: &mut Vec<Sample>,
    ty: &'static str,
    def: &'static str,
    code: impl Fn(&T) -> &'static str,
    values: Vec<T>,
) {
    for v in values {
        out.push((ty, def, code(&v), v.to_wire()));
    }
}

/// One sample per variant of every type that has a code.
fn samples() -> Vec<Sample> {
    let mut s = Vec::new();
    push(&mut s, "Outcome", "outcome", Outcome::code, outcomes());
    push(&mut s, "Refusal", "refusal", Refusal::code, refusals());
    let settled = vec![
        SettleOutcome::Approved(Status::Charged),
        SettleOutcome::Declined(Status::AuthorizationFailed),
        SettleOutcome::IntegrityFailed(integrity()),
        SettleOutcome::Confirming(Status::Charged),
        SettleOutcome::Agrees(Status::Charged),
        SettleOutcome::Conflict(disagreement()),
        SettleOutcome::CheckStatus(Status::Charged),
        SettleOutcome::InFlight,
        SettleOutcome::NotFinal(Status::PendingVbv),
        SettleOutcome::Duplicate,
        SettleOutcome::Stale,
        SettleOutcome::OtherTransaction,
    ];
    push(
        &mut s,
        "SettleOutcome",
        "settle_outcome",
        SettleOutcome::code,
        settled,
    );
    let steps = vec![
        NextStep::Start,
        NextStep::EnterOtp,
        NextStep::Wait(token()),
        NextStep::CheckStatus,
        NextStep::BankPage("https://bank.example/acs".into()),
        NextStep::AwaitBankPage,
        NextStep::Expired,
        NextStep::Confirming,
        NextStep::NewAttempt,
        NextStep::Finished(Status::Charged),
    ];
    push(&mut s, "NextStep", "next_step", NextStep::code, steps);
    let timers = vec![TimerEvent::ResendAvailable, TimerEvent::Expired];
    push(&mut s, "TimerEvent", "timer_event", |t| t.code(), timers);
    for f in [SendFailure::NotSent, SendFailure::MaybeSent] {
        s.push(("SendFailure", "reply", f.code(), json!({"kind": f.code()})));
    }
    push(&mut s, "InputError", "error", InputError::code, inputs());
    push(
        &mut s,
        "ResponseError",
        "error",
        ResponseError::code,
        responses(),
    );
    push(&mut s, "IdError", "error", IdError::code, ids());
    push(
        &mut s,
        "BaseUrlError",
        "error",
        BaseUrlError::code,
        base_urls(),
    );
    let configs = base_urls()
        .into_iter()
        .map(ConfigError::BaseUrl)
        .chain(ids().into_iter().map(ConfigError::Header))
        .chain([ConfigError::ApiKey])
        .collect();
    push(&mut s, "ConfigError", "error", ConfigError::code, configs);
    push(
        &mut s,
        "OtpError",
        "error",
        OtpError::code,
        vec![OtpError::Length(9), OtpError::NotDigits],
    );
    let starts = ids()
        .into_iter()
        .map(StartError::Id)
        .chain(responses().into_iter().map(StartError::Response))
        .collect();
    push(&mut s, "StartError", "error", StartError::code, starts);
    push(
        &mut s,
        "SettleError",
        "error",
        SettleError::code,
        settle_errors(),
    );
    let secrets = vec![
        SecretError::Empty {
            what: "response key",
        },
        SecretError::Forbidden {
            what: "webhook password",
            reason: "a colon",
        },
    ];
    push(&mut s, "SecretError", "error", SecretError::code, secrets);
    let returns = vec![
        ReturnUrlError::TooLarge { max: 8192 },
        ReturnUrlError::TooManyParameters { max: 64 },
        ReturnUrlError::BadEncoding,
        ReturnUrlError::NotUtf8,
        ReturnUrlError::DuplicateParameter {
            name: "status".into(),
        },
        ReturnUrlError::MissingSignature,
        ReturnUrlError::MissingAlgorithm,
        ReturnUrlError::UnsupportedAlgorithm {
            algorithm: "MD5".into(),
        },
        ReturnUrlError::BadSignature,
        ReturnUrlError::MissingField("order_id"),
    ]
    .into_iter()
    .chain(ids().into_iter().map(ReturnUrlError::UnsafeOrderId))
    .collect();
    push(
        &mut s,
        "ReturnUrlError",
        "error",
        ReturnUrlError::code,
        returns,
    );
    let hooks = vec![
        WebhookError::MissingAuthorization,
        WebhookError::NotBasic,
        WebhookError::BadCredentials,
        WebhookError::TooLarge { max: 65536 },
        WebhookError::Malformed(Malformed::Missing("id")),
    ];
    push(&mut s, "WebhookError", "error", WebhookError::code, hooks);
    push(&mut s, "AmountError", "error", AmountError::code, amounts());
    let bins = vec![BinError::Length(4), BinError::NotDigits]
        .into_iter()
        .chain(ids().into_iter().map(BinError::Id))
        .collect();
    push(&mut s, "BinError", "error", BinError::code, bins);
    push(&mut s, "StoreError", "error", StoreError::code, stores());
    push(&mut s, "DriveError", "error", DriveError::code, drives());
    let swept = vec![
        crate::driver::Swept::Recovered {
            key: "ord_1/1".into(),
            outcome: Outcome::CheckStatus(Uncertainty::MaybeSent),
            check: None,
        },
        crate::driver::Swept::Moved {
            key: "ord_1/1".into(),
        },
        crate::driver::Swept::Failed {
            key: "ord_1/1".into(),
            error: DriveError::Late {
                key: "ord_1/1".into(),
            },
        },
    ];
    push(&mut s, "Swept", "swept", crate::driver::Swept::code, swept);
    push(&mut s, "WireError", "error", WireError::code, wire_errors());
    #[cfg(feature = "sandbox-server")]
    {
        use super::host::SandboxError;
        let errors = vec![
            SandboxError::WebhookUrl(crate::sandbox::WebhookUrlError::NotLoopback),
            SandboxError::Unavailable("address in use".into()),
        ];
        push(&mut s, "SandboxError", "error", SandboxError::code, errors);
    }
    #[cfg(feature = "http")]
    {
        use crate::transport::{TransportError, TransportErrorKind as K};
        let kinds = [
            K::InvalidRequest,
            K::Connect,
            K::Timeout,
            K::Io,
            K::Protocol,
            K::Runtime,
            K::BodyTooLarge,
            K::Other,
        ];
        let errors = kinds.into_iter().map(TransportError::from_kind).collect();
        push(
            &mut s,
            "TransportError",
            "error",
            TransportError::code,
            errors,
        );
    }
    s
}

#[test]
fn every_code_is_registered_under_its_type_and_every_registered_code_is_given() {
    let samples = samples();
    for (ty, _, code, form) in &samples {
        let info = crate::codes::find(code)
            .unwrap_or_else(|| panic!("{code} ({ty}) is not in src/codes.rs"));
        assert!(
            info.types.contains(ty),
            "{code}: {ty} is not among its types {:?}",
            info.types
        );
        if *ty != "SendFailure" {
            assert_eq!(form["code"], *code, "{ty}: the wire form's code is code()");
        }
    }
    let codes = crate::codes::all();
    assert!(
        codes.windows(2).all(|w| w[0].code < w[1].code),
        "sorted, each once"
    );
    for info in codes {
        for ty in info.types {
            if cfg!(not(feature = "http")) && *ty == "TransportError"
                || cfg!(not(feature = "sandbox-server")) && *ty == "SandboxError"
            {
                continue;
            }
            assert!(
                samples
                    .iter()
                    .any(|(t, _, c, _)| t == ty && *c == info.code),
                "{} is registered for {ty}, but no {ty} gives it: remove it from src/codes.rs",
                info.code
            );
        }
    }
}

/// The samples, checked in for the integration tests, which validate each under the schema
/// (the JSON Schema validator is their dependency, not the crate's: see docs/testing.md).
const SAMPLES_FILE: &str = "docs/protocol.samples.json";

/// The samples as the file has them: one `{type, def, code, form}` per variant.
fn samples_json() -> Value {
    let samples = samples().into_iter();
    let samples = samples
        .map(|(ty, def, code, form)| json!({"type": ty, "def": def, "code": code, "form": form}));
    Value::Array(samples.collect())
}

/// `docs/protocol.samples.json` holds these samples (`UPDATE_WIRE_DOCS=1 cargo test -p
/// direct-otp -p direct-otp-tests wire::` rewrites it, with the schema and docs/codes.md).
/// Compared as JSON, so key order does not matter. With features `http` and `sandbox-server`
/// only: without them there is no `TransportError` or `SandboxError` to give their samples.
#[cfg(all(feature = "http", feature = "sandbox-server"))]
#[test]
fn the_checked_in_samples_are_up_to_date() {
    let path = format!("{}/{SAMPLES_FILE}", env!("CARGO_MANIFEST_DIR"));
    let want = samples_json();
    if std::env::var_os("UPDATE_WIRE_DOCS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&want).unwrap() + "\n").unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    let have: Value = serde_json::from_str(&have).unwrap_or(Value::Null);
    assert!(
        have == want,
        "{SAMPLES_FILE} is out of date with the code: run `UPDATE_WIRE_DOCS=1 cargo test -p \
         direct-otp -p direct-otp-tests wire::` to update it, and review the diff"
    );
}

#[test]
fn nested_errors_flatten_into_reason_and_cause() {
    let e = DriveError::Store {
        key: "k".into(),
        sent: false,
        source: StoreError::Rejected {
            key: "k".into(),
            reason: Rejection::KeyTooLong { len: 9 },
        },
    };
    assert_eq!(
        e.to_wire(),
        json!({"code": "store", "http_status": 503, "key": "k", "sent": false,
               "reason": "store_rejected", "cause": "key_too_long", "len": 9})
    );
    let o = Outcome::Rejected(ResponseError::UnexpectedStatus(302));
    assert_eq!(
        o.to_wire(),
        json!({"code": "rejected", "reason": "unexpected_status", "http_status": 302})
    );
}

#[test]
fn wire_errors_never_repeat_a_secret() {
    let secret = "4111111111111111";
    for input in [
        format!(r#"{{"command":"submit","otp":"{secret}"}}"#),
        format!(r#"{{"command":"submit","otp":{secret}}}"#),
        format!(r#"{{"command":"submit","otp":"{secret}","x":1}}"#),
        format!(r#"{{"base_url":"https://a.example","api_key":"{secret}\n"}}"#),
        format!(r#"{{"base_url":"ftp://{secret}","api_key":"k"}}"#),
    ] {
        let e = super::command(input.as_bytes())
            .map(|_| ())
            .or_else(|_| super::config(input.as_bytes()).map(|_| ()))
            .unwrap_err();
        for shown in [e.to_string(), format!("{e:?}"), e.to_wire_string()] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
