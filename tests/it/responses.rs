//! Every response kind, read from the fixtures (and variants derived from them).

use crate::common;
use crate::invariants;

use common::*;
use direct_otp::{
    ApiError, InputError, Malformed, NextStep, OrderStatusCheck, Otp, Outcome, Policy, Refusal,
    ResponseError, SendFailure, StartError, Started, Status, Token, Uncertainty,
};
use serde_json::{json, Value};

/// `fixture` with each path set to its value.
fn patched(name: &str, fields: &[(&[&str], Value)]) -> Vec<u8> {
    let mut v = fixture_json(name);
    for (path, value) in fields {
        invariants::patch::set(&mut v, path, value.clone());
    }
    v.to_string().into_bytes()
}

fn api(outcome: &Outcome) -> &ApiError {
    match outcome {
        Outcome::Rejected(ResponseError::Api(e))
        | Outcome::CheckStatus(Uncertainty::Response(ResponseError::Api(e)))
        | Outcome::CheckStatus(Uncertainty::Stale(ResponseError::Api(e))) => e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

// ----- Start --------------------------------------------------------------------------

#[test]
fn start_direct_otp() {
    let c = challenge();
    assert_eq!(c.order_id(), "ord_dotp_1001");
    assert_eq!(c.txn_id(), "txn_36dc6eada1d0463da91dc56c8262a8c3");
    assert_eq!(c.challenge_id(), "ch_7f3a9c2e");
    assert_eq!(c.status(), &Status::PendingVbv);
    assert_eq!((c.otp_sends(), c.send_limit(), c.sends_left()), (1, 4, 3));
    assert_eq!(
        (c.attempts(), c.attempt_limit(), c.attempts_left()),
        (0, 4, 4)
    );
    assert!(c
        .fallback_url()
        .unwrap()
        .starts_with("https://sandbox.juspay.in/v2/pay/start/"));
    let card = c.card();
    assert_eq!(card.isin.as_deref(), Some("411111"));
    assert_eq!(card.last_four.as_deref(), Some("1111"));
    assert_eq!(card.brand.as_deref(), Some("VISA"));
    assert_eq!(card.issuer.as_deref(), Some("HDFC Bank"));
    assert!(c.may_submit(T0).is_ok());
    assert!(
        c.may_resend(T0).is_err(),
        "the first OTP starts the cooldown"
    );
    assert_eq!(c.resend_available_at(), Some(secs(30)));
    assert_eq!(c.next_step(T0), NextStep::EnterOtp);
}

/// What a start answer that opens no OTP page gives.
#[derive(Debug)]
enum StartWant {
    Is(Started),
    Api(u16, &'static str),
    Malformed(Malformed),
    AnyError,
}

#[test]
fn start_answers_without_an_otp_page() {
    let params_id = ["payment", "authentication", "params", "id"];
    let cases = [
        (
            "3DS failover: a redirect",
            200,
            fixture("start_3ds_failover"),
            StartWant::Is(Started::Redirect {
                url: "https://sandbox.juspay.in/v2/pay/start/guest/eulk2m9x0a7b3c4d".into(),
                method: "GET".into(),
            }),
        ),
        (
            "a final status",
            200,
            fixture("submit_juspay_declined"),
            StartWant::Is(Started::Finished(Status::JuspayDeclined)),
        ),
        (
            "an error envelope",
            401,
            fixture("error_access_denied_401"),
            StartWant::Api(401, "access_denied"),
        ),
        (
            "an unsafe id",
            200,
            patched("start_direct_otp", &[(&params_id, json!("../../admin"))]),
            StartWant::Malformed(Malformed::BadId("payment.authentication.params.id")),
        ),
        (
            "no order id",
            200,
            {
                let mut body = fixture_json("start_direct_otp");
                body.as_object_mut().unwrap().remove("order_id");
                body.to_string().into_bytes()
            },
            StartWant::Malformed(Malformed::Missing("order_id")),
        ),
        ("not JSON", 200, b"{not json".to_vec(), StartWant::AnyError),
    ];
    check_cases(cases, |(name, status, body, want)| {
        let got = Started::from_response(ROUTING, Policy::default(), status, &body, T0);
        let ok = match (&want, &got) {
            (StartWant::Is(w), Ok(g)) => w == g,
            (StartWant::Api(http, code), Err(StartError::Response(ResponseError::Api(e)))) => {
                e.http_status() == *http && e.error_code() == Some(*code)
            }
            (
                StartWant::Malformed(p),
                Err(StartError::Response(ResponseError::Malformed { problem, .. })),
            ) => p == problem,
            (StartWant::AnyError, Err(_)) => true,
            _ => false,
        };
        assert!(ok, "{name}: got {got:?}, want {want:?}");
    });
}

#[test]
fn start_reads_the_seed_sample_as_direct_otp() {
    // The seed's sample says method GET, but carries challenge_id and auth_type OTP.
    let started =
        Started::from_response(ROUTING, Policy::default(), 200, &fixture("resend_seed"), T0)
            .unwrap();
    let Started::Challenge(c) = started else {
        panic!("{started:?}")
    };
    assert_eq!(c.txn_id(), "txn_uuid");
    assert_eq!(c.challenge_id(), "ch_xyz");
    assert_eq!(c.order_id(), "DOTP312312");
    assert_eq!(c.card().last_four.as_deref(), Some("2986"));
    assert_eq!(c.card().brand.as_deref(), Some("VISA"));
    assert_eq!(c.card().issuer.as_deref(), Some("Axis Bank"));
}

#[test]
fn start_accepts_lenient_variants() {
    let mut body = fixture_json("start_direct_otp");
    let params = &mut body["payment"]["authentication"]["params"];
    params["submit_otp_allowed"] = json!("true");
    params["resend_otp_allowed"] = json!("false");
    params["max_otp_send_limit"] = json!("3");
    params["max_attempts"] = json!(2);
    params.as_object_mut().unwrap().remove("auth_type");
    params["auth_method"] = json!("OTP");
    params["something_new"] = json!({"nested": [1, 2, 3]});
    let Started::Challenge(c) = Started::from_response(
        ROUTING,
        Policy::default(),
        200,
        body.to_string().as_bytes(),
        T0,
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!((c.send_limit(), c.attempt_limit()), (3, 2));
    assert_eq!(c.may_resend(secs(60)), Err(Refusal::ResendNotAllowed));
}

// ----- Answers to a request in flight ---------------------------------------------------

/// The request an answer is for.
#[derive(Debug, Clone, Copy)]
enum Asked {
    /// A resend at 40 s (the cooldown over), from a fresh challenge.
    Resend,
    /// A submit at 5 s, from a fresh challenge.
    Submit,
    /// An order-status check at 7 s, after a submit whose answer was lost (one attempt).
    StatusAfterLostSubmit,
}

/// What the answer must give.
#[derive(Debug)]
enum Want {
    Is(Outcome),
    /// `Rejected`, with an API error of this HTTP status and (if given) code, or any error.
    Rejected(Option<(u16, Option<&'static str>)>),
    /// `Unauthorized`, the bank refusing the key with this HTTP status.
    Unauthorized(u16),
    /// `CheckStatus`, with an API error of this code, or for an unreadable answer.
    CheckStatus(Option<&'static str>),
    /// `CheckStatus(Stale)`: the bank says this copy is behind.
    Stale,
}

/// What the challenge shows after the answer (times in seconds from `T0`).
#[derive(Debug)]
enum Then {
    Sends(u32),
    SendLimit(u32),
    SendsLeft(u32),
    Attempts(u32),
    AttemptsLeft(u32),
    Final(bool),
    StatusIs(Status),
    Step(i64, NextStep),
    /// `next_step` is the bank page the answer gave.
    StepIsBankPage(i64),
    MaySubmit(i64, Result<(), Refusal>),
    MayResend(i64, Result<(), Refusal>),
    /// `check_status` is accepted (`Ok`) or refused.
    MayCheck(i64, Result<(), Refusal>),
    /// The only timer left is the expiry: no cooldown runs.
    OnlyExpiry,
    NoTimer,
}

/// A request in flight gets an answer: what it gives, and what the challenge shows then.
struct Case {
    name: &'static str,
    asked: Asked,
    status: u16,
    body: Vec<u8>,
    want: Want,
    then: Vec<Then>,
}

fn case(name: &'static str, asked: Asked, status: u16, body: Vec<u8>, want: Want) -> Case {
    Case {
        name,
        asked,
        status,
        body,
        want,
        then: Vec::new(),
    }
}

impl Case {
    fn then(mut self, then: impl IntoIterator<Item = Then>) -> Case {
        self.then.extend(then);
        self
    }

    fn run(self) {
        let Case {
            name,
            asked,
            status,
            body,
            want,
            then,
        } = self;
        let config = config();
        let mut c = challenge();
        let otp = Otp::new("123456").unwrap();
        let token = match asked {
            Asked::Resend => c.resend(&config, secs(40)).unwrap().token,
            Asked::Submit => c.submit(&config, &otp, secs(5)).unwrap().token,
            Asked::StatusAfterLostSubmit => {
                let t = c.submit(&config, &otp, secs(5)).unwrap().token;
                let lost = c.handle_send_failure(t, SendFailure::MaybeSent, secs(6));
                assert_eq!(lost, Ok(Outcome::CheckStatus(Uncertainty::MaybeSent)));
                c.check_status(&config, secs(7)).unwrap().token
            }
        };
        let outcome = c.handle_response(token, status, &body, secs(6)).unwrap();
        let ok = match &want {
            Want::Is(w) => &outcome == w,
            Want::Rejected(None) => matches!(outcome, Outcome::Rejected(_)),
            Want::Unauthorized(http) => {
                matches!(&outcome, Outcome::Unauthorized(e) if e.http_status() == *http)
            }
            Want::Rejected(Some((http, code))) => {
                matches!(outcome, Outcome::Rejected(_))
                    && api(&outcome).http_status() == *http
                    && code.is_none_or(|code| api(&outcome).code() == Some(code))
            }
            Want::CheckStatus(None) => {
                matches!(outcome, Outcome::CheckStatus(Uncertainty::Response(_)))
            }
            Want::CheckStatus(Some(code)) => {
                matches!(outcome, Outcome::CheckStatus(Uncertainty::Response(_)))
                    && api(&outcome).code() == Some(code)
            }
            Want::Stale => matches!(outcome, Outcome::CheckStatus(Uncertainty::Stale(_))),
        };
        assert!(ok, "{name}: got {outcome:?}, want {want:?}");
        for then in then {
            let shown = match &then {
                Then::Sends(n) => c.otp_sends() == *n,
                Then::SendLimit(n) => c.send_limit() == *n,
                Then::SendsLeft(n) => c.sends_left() == *n,
                Then::Attempts(n) => c.attempts() == *n,
                Then::AttemptsLeft(n) => c.attempts_left() == *n,
                Then::Final(f) => c.is_final() == *f,
                Then::StatusIs(s) => c.status() == s,
                Then::Step(at, step) => c.next_step(secs(*at)) == *step,
                Then::StepIsBankPage(at) => matches!(
                    c.next_step(secs(*at)),
                    NextStep::BankPage(url) if url.contains("/v2/pay/start/")
                ),
                Then::MaySubmit(at, r) => c.may_submit(secs(*at)) == *r,
                Then::MayResend(at, r) => c.may_resend(secs(*at)) == *r,
                Then::MayCheck(at, r) => c.clone().check_status(&config, secs(*at)).map(drop) == *r,
                Then::OnlyExpiry => c.poll_timeout() == Some(c.expires_at()),
                Then::NoTimer => c.poll_timeout().is_none(),
            };
            assert!(shown, "{name}: not {then:?}\n{c:#?}");
        }
    }
}

/// Every answer a resend, a submit or an order-status check can get, one case each.
fn answers() -> Vec<Case> {
    use Asked::{Resend, StatusAfterLostSubmit as LostThenStatus, Submit};
    use Then::*;
    let final_ = |s: direct_otp::Status| {
        [
            Final(true),
            Step(7, NextStep::Finished(s.clone())),
            NoTimer,
            MaySubmit(7, Err(Refusal::AlreadyFinal(s.clone()))),
            MayCheck(7, Err(Refusal::AlreadyFinal(s))),
        ]
    };
    let status = |s: &str| patched("submit_charged", &[(&["status"], json!(s))]);
    let ours = [
        (&["order_id"][..], json!("ord_dotp_1001")),
        (
            &["payment", "authentication", "params", "id"][..],
            json!("txn_36dc6eada1d0463da91dc56c8262a8c3"),
        ),
    ];
    vec![
        // Resend.
        case(
            "resend 200, counters as strings",
            Resend,
            200,
            fixture("resend_counters"),
            Want::Is(Outcome::OtpSent { sends_left: 2 }),
        )
        .then([Sends(2), SendLimit(4), Attempts(0)]),
        // The documented sample names its own order and transaction: answer as ours. The
        // next resend waits for the cooldown, counted from the answer; the answer's time (6 s)
        // is earlier than the resend's (40 s), so the later one counts.
        case(
            "resend 200, the seed sample (no counters: counted here)",
            Resend,
            200,
            patched("resend_seed", &ours),
            Want::Is(Outcome::OtpSent { sends_left: 2 }),
        )
        .then([
            Sends(2),
            MayResend(50, Err(Refusal::Cooldown { until: secs(70) })),
            MayResend(70, Ok(())),
        ]),
        // The OTP already sent can still be entered; no cooldown timer any more.
        case(
            "resend 400 max_limit_exceeded",
            Resend,
            400,
            fixture("resend_limit_exceeded"),
            Want::Is(Outcome::SendLimitReached),
        )
        .then([
            SendsLeft(0),
            MayResend(500, Err(Refusal::SendLimitReached { limit: 4 })),
            MaySubmit(7, Ok(())),
            OnlyExpiry,
        ]),
        // Submit: final statuses.
        case(
            "submit CHARGED",
            Submit,
            200,
            fixture("submit_charged"),
            Want::Is(Outcome::Approved(Status::Charged)),
        )
        .then(final_(Status::Charged)),
        case(
            "submit AUTHORIZED",
            Submit,
            200,
            fixture("submit_authorized"),
            Want::Is(Outcome::Approved(Status::Authorized)),
        )
        .then(final_(Status::Authorized)),
        case(
            "submit AUTHENTICATION_FAILED",
            Submit,
            200,
            fixture("submit_authentication_failed"),
            Want::Is(Outcome::Declined(Status::AuthenticationFailed)),
        )
        .then([Final(true)]),
        case(
            "submit JUSPAY_DECLINED",
            Submit,
            200,
            fixture("submit_juspay_declined"),
            Want::Is(Outcome::Declined(Status::JuspayDeclined)),
        )
        .then([Final(true)]),
        case(
            "submit AUTHORIZATION_FAILED",
            Submit,
            200,
            status("AUTHORIZATION_FAILED"),
            Want::Is(Outcome::Declined(Status::AuthorizationFailed)),
        )
        .then([Final(true)]),
        // Submit: a wrong OTP, or no more tries.
        case(
            "submit 200 PENDING_VBV: a wrong OTP",
            Submit,
            200,
            fixture("submit_pending_wrong_otp"),
            Want::Is(Outcome::WrongOtp { attempts_left: 3 }),
        )
        .then([
            Attempts(1),
            MaySubmit(7, Ok(())),
            StatusIs(direct_otp::Status::PendingVbv),
        ]),
        // resend_otp_allowed false: no resend either; the bank page is offered.
        case(
            "submit 200 PENDING_VBV, no tries left",
            Submit,
            200,
            fixture("submit_pending_exhausted"),
            Want::Is(Outcome::AttemptLimitReached),
        )
        .then([
            AttemptsLeft(0),
            MaySubmit(7, Err(Refusal::AttemptLimitReached { limit: 4 })),
            MayResend(100, Err(Refusal::ResendNotAllowed)),
            StepIsBankPage(7),
        ]),
        case(
            "submit 400 wrong-OTP code counts an attempt",
            Submit,
            400,
            fixture("submit_wrong_otp_400"),
            Want::Is(Outcome::WrongOtp { attempts_left: 3 }),
        )
        .then([Attempts(1)]),
        case(
            "submit 400 limit exceeded exhausts the attempts",
            Submit,
            400,
            fixture("resend_limit_exceeded"),
            Want::Is(Outcome::AttemptLimitReached),
        )
        .then([AttemptsLeft(0)]),
        // Submit: not final yet.
        case(
            "submit AUTHORIZING needs a status check",
            Submit,
            200,
            fixture("submit_authorizing"),
            Want::Is(Outcome::Pending(direct_otp::Status::Authorizing)),
        )
        .then([
            Step(7, NextStep::CheckStatus),
            MaySubmit(7, Err(Refusal::CheckStatus)),
        ]),
        case(
            "submit with an unknown status: kept, not final",
            Submit,
            200,
            status("PARTIALLY_CHARGED"),
            Want::Is(Outcome::Pending(direct_otp::Status::Other(
                "PARTIALLY_CHARGED".into(),
            ))),
        )
        .then([
            Final(false),
            StatusIs(direct_otp::Status::Other("PARTIALLY_CHARGED".into())),
            Step(7, NextStep::CheckStatus),
        ]),
        // Submit: client errors are rejections that change nothing.
        case(
            "submit 401",
            Submit,
            401,
            fixture("error_access_denied_401"),
            Want::Unauthorized(401),
        )
        .then([Attempts(0), MaySubmit(7, Ok(()))]),
        case(
            "submit 403",
            Submit,
            403,
            fixture("error_forbidden_403"),
            Want::Unauthorized(403),
        )
        .then([Attempts(0), MaySubmit(7, Ok(()))]),
        case(
            "submit 404",
            Submit,
            404,
            fixture("error_not_found_404"),
            Want::Rejected(Some((404, None))),
        )
        .then([Attempts(0), MaySubmit(7, Ok(()))]),
        case(
            "submit 400 missing routing id",
            Submit,
            400,
            fixture("error_missing_routing_id"),
            Want::Rejected(Some((400, None))),
        )
        .then([Attempts(0), MaySubmit(7, Ok(()))]),
        // Submit: server errors and duplicates need reconciliation; a maybe-processed OTP
        // counts as an attempt.
        case(
            "submit 500",
            Submit,
            500,
            fixture("error_internal_500"),
            Want::CheckStatus(Some("INTERNAL_SERVER_ERROR")),
        )
        .then([Step(7, NextStep::CheckStatus), Attempts(1)]),
        case(
            "submit 400 DUPLICATE_REQUEST",
            Submit,
            400,
            fixture("error_duplicate_request"),
            Want::CheckStatus(Some("DUPLICATE_REQUEST")),
        )
        .then([Step(7, NextStep::CheckStatus), Attempts(1)]),
        // Submit: unreadable answers need reconciliation.
        case(
            "submit 200 HTML",
            Submit,
            200,
            b"<html>gateway timeout</html>".to_vec(),
            Want::CheckStatus(None),
        )
        .then([Step(7, NextStep::CheckStatus), MayCheck(7, Ok(()))]),
        case(
            "submit 200 truncated JSON",
            Submit,
            200,
            b"{\"status\":".to_vec(),
            Want::CheckStatus(None),
        )
        .then([Step(7, NextStep::CheckStatus), MayCheck(7, Ok(()))]),
        case(
            "submit 200 no status",
            Submit,
            200,
            b"{}".to_vec(),
            Want::CheckStatus(None),
        )
        .then([Step(7, NextStep::CheckStatus), MayCheck(7, Ok(()))]),
        case(
            "submit 200 empty status",
            Submit,
            200,
            b"{\"status\":\"\"}".to_vec(),
            Want::CheckStatus(None),
        )
        .then([Step(7, NextStep::CheckStatus), MayCheck(7, Ok(()))]),
        case(
            "submit 302",
            Submit,
            302,
            Vec::new(),
            Want::CheckStatus(None),
        )
        .then([Step(7, NextStep::CheckStatus), MayCheck(7, Ok(()))]),
        case(
            "submit 502 text",
            Submit,
            502,
            b"Bad gateway".to_vec(),
            Want::CheckStatus(None),
        )
        .then([Step(7, NextStep::CheckStatus), MayCheck(7, Ok(()))]),
        // Order status after a lost submit.
        case(
            "order status CHARGED settles a lost submit",
            LostThenStatus,
            200,
            fixture("order_status_charged"),
            Want::Is(Outcome::Approved(direct_otp::Status::Charged)),
        )
        .then([Final(true)]),
        case(
            "order status PENDING_VBV reopens the OTP page",
            LostThenStatus,
            200,
            fixture("order_status_pending"),
            Want::Is(Outcome::Pending(direct_otp::Status::PendingVbv)),
        )
        .then([
            Step(8, NextStep::EnterOtp),
            Attempts(1),
            MaySubmit(8, Ok(())),
        ]),
        // Order status errors change nothing: still "check status", the attempt kept.
        case(
            "order status 400 not found",
            LostThenStatus,
            400,
            fixture("order_not_found"),
            Want::Rejected(Some((400, Some("RESOURCE_NOT_FOUND")))),
        )
        .then([Step(8, NextStep::CheckStatus), Attempts(1)]),
        case(
            "order status 401",
            LostThenStatus,
            401,
            fixture("error_access_denied_401"),
            Want::Unauthorized(401),
        )
        .then([Step(8, NextStep::CheckStatus), Attempts(1)]),
        case(
            "order status 500",
            LostThenStatus,
            500,
            fixture("error_internal_500"),
            Want::Rejected(None),
        )
        .then([Step(8, NextStep::CheckStatus), Attempts(1)]),
        case(
            "order status 200 not JSON",
            LostThenStatus,
            200,
            b"not json".to_vec(),
            Want::Rejected(None),
        )
        .then([Step(8, NextStep::CheckStatus), Attempts(1)]),
        case(
            "order status 200 no status",
            LostThenStatus,
            200,
            b"{\"order_id\":\"ord_dotp_1001\"}".to_vec(),
            Want::Rejected(None),
        )
        .then([Step(8, NextStep::CheckStatus), Attempts(1)]),
        case(
            "order status 301",
            LostThenStatus,
            301,
            Vec::new(),
            Want::Rejected(None),
        )
        .then([Step(8, NextStep::CheckStatus), Attempts(1)]),
    ]
}

#[test]
fn answers_to_a_request_in_flight() {
    check_cases(answers(), Case::run);
}

/// An error envelope whose two codes (`error_code`, `error_info.code`) mean different
/// things, to a submit: the first meaning in this order wins, wherever it stands: stale
/// (`INVALID_ACTION`), duplicate, limit exceeded, wrong OTP, a plain refusal.
#[test]
fn conflicting_error_codes() {
    let envelope = |error_code: &str, info_code: &str| {
        let codes = [
            (&["error_code"][..], json!(error_code)),
            (&["error_info", "code"][..], json!(info_code)),
        ];
        patched("error_forbidden_403", &codes)
    };
    let (stale, duplicate, limit, wrong) = (
        "INVALID_ACTION",
        "DUPLICATE_REQUEST",
        "max_limit_exceeded",
        "LP_INCORRECT_OTP",
    );
    let cases = [
        (
            "stale over duplicate",
            envelope(duplicate, stale),
            Want::Stale,
        ),
        (
            "stale over limit (swapped)",
            envelope(stale, limit),
            Want::Stale,
        ),
        (
            "duplicate over limit",
            envelope(limit, duplicate),
            Want::CheckStatus(Some(duplicate)),
        ),
        (
            "duplicate over wrong OTP (swapped)",
            envelope(duplicate, wrong),
            Want::CheckStatus(Some(wrong)),
        ),
        (
            "limit over wrong OTP",
            envelope(wrong, limit),
            Want::Is(Outcome::AttemptLimitReached),
        ),
        (
            "wrong OTP over a plain refusal",
            envelope("access_denied", wrong),
            Want::Is(Outcome::WrongOtp { attempts_left: 3 }),
        ),
    ];
    check_cases(
        cases.map(|(name, body, want)| case(name, Asked::Submit, 400, body, want)),
        Case::run,
    );
}

#[test]
fn answers_with_the_wrong_token_change_nothing() {
    let mut c = challenge();
    let out = c
        .submit(&config(), &Otp::new("1234").unwrap(), secs(5))
        .unwrap();
    let before = c.clone();
    let stale = out.token;
    let fake: Token = invariants::other_token(Some(stale));
    assert_eq!(
        c.handle_response(fake, 200, &fixture("submit_charged"), secs(6)),
        Err(InputError::StaleToken {
            got: fake,
            in_flight: stale
        })
    );
    assert_eq!(c, before);
    let _ = c.handle_response(stale, 200, &fixture("submit_charged"), secs(6));
    let after = c.clone();
    assert_eq!(
        c.handle_response(
            stale,
            200,
            &fixture("submit_authentication_failed"),
            secs(6)
        ),
        Err(InputError::AlreadyFinal { got: stale })
    );
    assert_eq!(c, after);
}

#[test]
fn an_order_status_check_reads_what_a_challenge_reads() {
    let check = OrderStatusCheck::new("ord_dotp_1001", ROUTING).unwrap();
    assert_eq!(
        check.handle_response(200, &fixture("order_status_charged")),
        Ok(Status::Charged)
    );
    assert_eq!(
        check.handle_response(200, &fixture("order_status_pending")),
        Ok(Status::PendingVbv)
    );
    let unknown = check.handle_response(200, br#"{"status": "NEW_STATE_2027"}"#);
    assert!(
        matches!(&unknown, Ok(s) if !s.is_final() && s.to_string() == "NEW_STATE_2027"),
        "{unknown:?}"
    );

    let Err(ResponseError::Api(e)) = check.handle_response(400, &fixture("order_not_found")) else {
        panic!("an error envelope");
    };
    assert_eq!(
        (e.http_status(), e.code()),
        (400, Some("RESOURCE_NOT_FOUND"))
    );
    for (status, body, problem) in [
        (200, &b"{}"[..], Some(Malformed::Missing("status"))),
        (
            200,
            br#"{"status": ""}"#,
            Some(Malformed::Missing("status")),
        ),
        (200, b"<html>", None),
        (302, b"", None),
    ] {
        let e = check.handle_response(status, body).unwrap_err();
        match (problem, &e) {
            (Some(p), ResponseError::Malformed { problem, .. }) => assert_eq!(*problem, p),
            (None, ResponseError::Malformed { .. } | ResponseError::UnexpectedStatus(302)) => {}
            _ => panic!("{status} {body:?}: {e:?}"),
        }
    }

    // A challenge checking its order reads the same answers the same way.
    for name in [
        "order_status_charged",
        "order_status_pending",
        "order_not_found",
    ] {
        let status = if name == "order_not_found" { 400 } else { 200 };
        let mut c = challenge();
        let token = c.check_status(&config(), secs(5)).unwrap().token;
        let outcome = c
            .handle_response(token, status, &fixture(name), secs(6))
            .unwrap();
        match check.handle_response(status, &fixture(name)) {
            Ok(s) if s.is_final() => assert_eq!(outcome, Outcome::Approved(s)),
            Ok(s) => assert_eq!(outcome, Outcome::Pending(s)),
            Err(e) => assert_eq!(outcome, Outcome::Rejected(e)),
        }
    }
}
