//! Fault injection against each adapter: a loopback server that refuses, stays silent,
//! resets, answers 500, too much, invalid JSON, a redirect, or drips its answer. Each case
//! checks the typed error or outcome, and that the challenge is left in a state it can
//! recover from (the recovery itself is driven too).

use crate::adapter_support;
use crate::fault_server;

use std::time::Duration;

use adapter_support::{Adapter, AnyTransport};
use direct_otp::transport::{
    Driven, HyperTransport, Settings, TransportError, TransportErrorKind, UreqTransport,
};
use direct_otp::{
    Challenge, Config, InputError, Malformed, NextStep, Otp, Outcome, Outgoing, PaymentSource,
    Policy, Refusal, Request, ResponseError, SendFailure, StartError, StartRequest, Started,
    Status, Uncertainty,
};
use fault_server::{closed_port_url, Action, FaultServer};
use time::macros::datetime;
use time::OffsetDateTime;

const KEY: &str = "sk_test_SECRETKEY";
const T0: OffsetDateTime = datetime!(2026-11-25 10:00:00 UTC);
/// How long a silent server is waited for: short, to keep the suite quick.
const SHORT: Duration = Duration::from_millis(300);
/// How long an answering server is waited for: long, so a busy machine never fails a test.
const PATIENT: Duration = Duration::from_secs(10);

fn clock() -> OffsetDateTime {
    T0
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn otp() -> Otp {
    Otp::new("123456").unwrap()
}

/// A challenge started from the documented start answer, at `T0`, resend allowed at once.
fn challenge() -> Challenge {
    let mut policy = Policy::default();
    policy.resend_cooldown = time::Duration::ZERO;
    match Started::from_response("customer_1", policy, 200, &fixture("start_direct_otp"), T0)
        .unwrap()
    {
        Started::Challenge(c) => *c,
        other => panic!("{other:?}"),
    }
}

fn start_request() -> StartRequest {
    StartRequest::new(
        "ord_1",
        "acme",
        "customer_1",
        PaymentSource::Token {
            card_token: "tok_1".into(),
            cvv: None,
        },
    )
    .unwrap()
}

/// One adapter, pointed at a fault server.
struct Harness {
    adapter: Adapter,
    base_url: String,
    config: Config,
    transport: AnyTransport,
}

impl Harness {
    /// For a server that answers.
    fn new(adapter: Adapter, base_url: &str) -> Harness {
        Harness::with(adapter, base_url, PATIENT, None)
    }

    /// For a server that is expected to time out.
    fn short(adapter: Adapter, base_url: &str) -> Harness {
        Harness::with(adapter, base_url, SHORT, None)
    }

    fn with(adapter: Adapter, base_url: &str, timeout: Duration, limit: Option<usize>) -> Harness {
        let transport = AnyTransport::new(adapter, timeout, limit, clock);
        Harness {
            adapter,
            base_url: base_url.to_owned(),
            config: Config::new(base_url, KEY).unwrap(),
            transport,
        }
    }

    fn drive(&self, c: &mut Challenge, out: Outgoing) -> Result<Driven, InputError> {
        self.transport.drive(c, out)
    }

    fn send(&self, request: Request) -> Result<(u16, Vec<u8>), TransportError> {
        self.transport.send(request)
    }

    fn submit(&self, c: &mut Challenge) -> Driven {
        let out = c.submit(&self.config, &otp(), T0).unwrap();
        self.drive(c, out).unwrap()
    }

    fn resend(&self, c: &mut Challenge) -> Driven {
        let out = c.resend(&self.config, T0).unwrap();
        self.drive(c, out).unwrap()
    }

    fn check_status(&self, c: &mut Challenge) -> Driven {
        let out = c.check_status(&self.config, T0).unwrap();
        self.drive(c, out).unwrap()
    }
}

fn kind_of(d: &Driven) -> TransportErrorKind {
    d.transport_error
        .as_ref()
        .unwrap_or_else(|| panic!("expected a transport error, got {d:?}"))
        .kind()
}

/// A lost submit: the challenge counts the attempt, allows only a status check, and the
/// status check (answered `PENDING_VBV` by `server`) reopens the OTP page.
fn assert_reconciles(h: &Harness, c: &mut Challenge, attempts: u32) {
    let h = Harness::new(h.adapter, &h.base_url);
    assert_eq!(c.next_step(T0), NextStep::CheckStatus);
    assert_eq!(c.attempts(), attempts);
    assert_eq!(c.may_submit(T0), Err(Refusal::CheckStatus));
    assert_eq!(c.may_resend(T0), Err(Refusal::CheckStatus));
    let d = h.check_status(c);
    assert_eq!(d.outcome, Outcome::Pending(Status::PendingVbv), "{d:?}");
    assert_eq!(c.next_step(T0), NextStep::EnterOtp);
    assert!(c.may_submit(T0).is_ok());
}

/// `/orders/*` answers `PENDING_VBV`; everything else gets `action`.
fn server_with_status(action: Action) -> FaultServer {
    let pending = fixture("order_status_pending");
    FaultServer::start(move |seen| {
        if seen.path.starts_with("/orders/") {
            Action::json(200, pending.clone())
        } else {
            action.clone()
        }
    })
}

// ----- The scenarios, each run against both adapters ---------------------------------------

fn refused_connection_changes_nothing(a: Adapter) {
    let h = Harness::new(a, &closed_port_url());
    let mut c = challenge();

    let d = h.submit(&mut c);
    assert_eq!(d.outcome, Outcome::NotDelivered);
    assert_eq!(kind_of(&d), TransportErrorKind::Connect);
    assert_eq!(
        d.transport_error.unwrap().send_failure(),
        SendFailure::NotSent
    );
    assert_eq!(c.attempts(), 0);
    assert_eq!(c.in_flight(), None);
    assert_eq!(c.next_step(T0), NextStep::EnterOtp);

    let d = h.resend(&mut c);
    assert_eq!(d.outcome, Outcome::NotDelivered);
    assert_eq!(c.otp_sends(), 1);

    // Nothing changed: the same submit may go again.
    assert!(c.submit(&h.config, &otp(), T0).is_ok());

    // The start request, which has no challenge yet.
    let e = h.send(start_request().request(&h.config)).unwrap_err();
    assert_eq!(e.kind(), TransportErrorKind::Connect);
    assert!(!e.may_have_been_sent());
}

fn silent_server_times_out_and_a_submit_goes_to_reconcile(a: Adapter) {
    let server = server_with_status(Action::Silent);
    let h = Harness::short(a, &server.base_url());
    let mut c = challenge();

    let d = h.submit(&mut c);
    assert_eq!(d.outcome, Outcome::CheckStatus(Uncertainty::MaybeSent));
    let e = d.transport_error.unwrap();
    assert_eq!(e.kind(), TransportErrorKind::Timeout);
    assert_eq!(e.send_failure(), SendFailure::MaybeSent);
    assert_reconciles(&h, &mut c, 1);
    assert_eq!(
        server.seen()[0].path,
        format!("/v2/txns/{}/authenticate", c.txn_id())
    );
}

fn silent_server_on_a_resend_goes_to_reconcile(a: Adapter) {
    let server = server_with_status(Action::Silent);
    let h = Harness::short(a, &server.base_url());
    let mut c = challenge();
    let d = h.resend(&mut c);
    assert_eq!(d.outcome, Outcome::CheckStatus(Uncertainty::MaybeSent));
    assert_eq!(kind_of(&d), TransportErrorKind::Timeout);
    // The lost resend counts against the limit: never re-sent blindly.
    assert_eq!(c.otp_sends(), 2);
    assert_reconciles(&h, &mut c, 0);
}

fn silent_server_on_a_status_check_changes_nothing(a: Adapter) {
    let server = FaultServer::always(Action::Silent);
    let h = Harness::short(a, &server.base_url());
    let mut c = challenge();
    let d = h.check_status(&mut c);
    assert_eq!(d.outcome, Outcome::NotDelivered);
    assert_eq!(kind_of(&d), TransportErrorKind::Timeout);
    assert_eq!(c.next_step(T0), NextStep::EnterOtp);
    assert!(c.may_submit(T0).is_ok());
}

fn reset_mid_body_goes_to_reconcile(a: Adapter) {
    let server = server_with_status(Action::ResetMidBody {
        declared: 2000,
        sent: 100,
    });
    let h = Harness::new(a, &server.base_url());
    let mut c = challenge();
    let d = h.submit(&mut c);
    assert_eq!(d.outcome, Outcome::CheckStatus(Uncertainty::MaybeSent));
    assert_eq!(kind_of(&d), TransportErrorKind::Io, "{d:?}");
    assert_reconciles(&h, &mut c, 1);
}

fn close_mid_body_goes_to_reconcile(a: Adapter) {
    let server = server_with_status(Action::CloseMidBody {
        declared: 2000,
        sent: 100,
    });
    let h = Harness::new(a, &server.base_url());
    let mut c = challenge();
    let d = h.submit(&mut c);
    assert_eq!(d.outcome, Outcome::CheckStatus(Uncertainty::MaybeSent));
    assert!(d.transport_error.as_ref().unwrap().may_have_been_sent());
    assert_eq!(kind_of(&d), TransportErrorKind::Io, "{d:?}");
    assert_reconciles(&h, &mut c, 1);
}

fn status_500_on_a_submit_goes_to_reconcile(a: Adapter) {
    let server = server_with_status(Action::json(500, fixture("error_internal_500")));
    let h = Harness::new(a, &server.base_url());
    let mut c = challenge();
    let d = h.submit(&mut c);
    assert!(d.transport_error.is_none());
    match &d.outcome {
        Outcome::CheckStatus(Uncertainty::Response(ResponseError::Api(api))) => {
            assert_eq!(api.http_status(), 500);
            assert_eq!(api.code(), Some("INTERNAL_SERVER_ERROR"));
            assert_eq!(api.request_id(), Some("req_500"));
        }
        other => panic!("{other:?}"),
    }
    assert_reconciles(&h, &mut c, 1);
}

fn status_500_on_a_status_check_is_rejected(a: Adapter) {
    let server = FaultServer::always(Action::json(500, fixture("error_internal_500")));
    let h = Harness::new(a, &server.base_url());
    let mut c = challenge();
    let d = h.check_status(&mut c);
    assert!(
        matches!(d.outcome, Outcome::Rejected(ResponseError::Api(_))),
        "{d:?}"
    );
    assert_eq!(c.next_step(T0), NextStep::EnterOtp);
}

/// The error code of a 4xx lives in its body: the adapters must hand it over.
fn bodies_of_4xx_answers_are_kept(a: Adapter) {
    let wrong = fixture("submit_wrong_otp_400");
    let limit = fixture("resend_limit_exceeded");
    let server = FaultServer::start(move |seen| {
        if seen.path.ends_with("/resend") {
            Action::json(400, limit.clone())
        } else {
            Action::json(400, wrong.clone())
        }
    });
    let h = Harness::new(a, &server.base_url());
    let mut c = challenge();
    let d = h.submit(&mut c);
    assert_eq!(d.outcome, Outcome::WrongOtp { attempts_left: 3 });
    let d = h.resend(&mut c);
    assert_eq!(d.outcome, Outcome::SendLimitReached);
    assert!(matches!(c.next_step(T0), NextStep::EnterOtp));
    assert!(c.may_resend(T0).is_err());
}

fn a_body_over_the_limit_goes_to_reconcile(a: Adapter) {
    let big = format!(
        "{{\"status\":\"CHARGED\",\"pad\":\"{}\"}}",
        "x".repeat(4096)
    );
    let server = server_with_status(Action::json(200, big));
    let h = Harness::with(a, &server.base_url(), PATIENT, Some(2048));
    let mut c = challenge();
    let d = h.submit(&mut c);
    assert_eq!(d.outcome, Outcome::CheckStatus(Uncertainty::MaybeSent));
    assert_eq!(kind_of(&d), TransportErrorKind::BodyTooLarge);
    assert_reconciles(&h, &mut c, 1);
}

fn a_chunked_body_over_the_default_limit_is_refused(a: Adapter) {
    // No content-length: the limit is enforced while reading.
    let big = vec![b' '; 100 * 1024];
    let server = FaultServer::always(Action::Chunked {
        status: 200,
        body: big,
        chunk: 8192,
    });
    let h = Harness::new(a, &server.base_url());
    let mut c = challenge();
    let d = h.check_status(&mut c);
    assert_eq!(d.outcome, Outcome::NotDelivered);
    assert_eq!(kind_of(&d), TransportErrorKind::BodyTooLarge);
    assert_eq!(c.next_step(T0), NextStep::EnterOtp);
}

fn a_body_of_exactly_the_limit_is_read(a: Adapter) {
    let body = fixture("order_status_pending");
    let len = body.len();
    let server = FaultServer::always(Action::Chunked {
        status: 200,
        body,
        chunk: 100,
    });
    let h = Harness::with(a, &server.base_url(), PATIENT, Some(len));
    let mut c = challenge();
    let d = h.check_status(&mut c);
    assert_eq!(d.outcome, Outcome::Pending(Status::PendingVbv), "{d:?}");
}

fn invalid_json_on_a_submit_goes_to_reconcile(a: Adapter) {
    let server = server_with_status(Action::json(200, &b"{\"status\": \"CHARGED\","[..]));
    let h = Harness::new(a, &server.base_url());
    let mut c = challenge();
    let d = h.submit(&mut c);
    assert!(d.transport_error.is_none());
    assert!(
        matches!(
            d.outcome,
            Outcome::CheckStatus(Uncertainty::Response(ResponseError::Malformed {
                http_status: 200,
                problem: Malformed::Syntax { .. }
            }))
        ),
        "{d:?}"
    );
    assert_reconciles(&h, &mut c, 1);
}

fn invalid_json_on_a_status_check_is_rejected(a: Adapter) {
    let server = FaultServer::always(Action::json(200, &b"<html>gateway</html>"[..]));
    let h = Harness::new(a, &server.base_url());
    let mut c = challenge();
    let d = h.check_status(&mut c);
    assert!(
        matches!(
            d.outcome,
            Outcome::Rejected(ResponseError::Malformed { .. })
        ),
        "{d:?}"
    );
    assert_eq!(c.next_step(T0), NextStep::EnterOtp);
}

fn redirects_are_answers_and_never_followed(a: Adapter) {
    for status in [302, 307] {
        let server = FaultServer::start(move |seen| {
            if seen.path == "/followed" {
                Action::json(200, &br#"{"status":"CHARGED"}"#[..])
            } else {
                Action::redirect(status, "/followed")
            }
        });
        let h = Harness::new(a, &server.base_url());
        let mut c = challenge();
        let d = h.submit(&mut c);
        assert!(d.transport_error.is_none());
        assert_eq!(
            d.outcome,
            Outcome::CheckStatus(Uncertainty::Response(ResponseError::UnexpectedStatus(
                status
            )))
        );
        assert_eq!(c.next_step(T0), NextStep::CheckStatus);

        // The start request: the redirect is its answer, refused by the core.
        let (got, _) = h.send(start_request().request(&h.config)).unwrap();
        assert_eq!(got, status);
        assert!(matches!(
            start_request().handle_response(got, b"moved", T0),
            Err(StartError::Response(ResponseError::UnexpectedStatus(s))) if s == status
        ));

        let seen = server.seen();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen.iter().all(|s| s.path != "/followed"), "{seen:?}");
    }
}

/// The timeout is one deadline for the whole exchange, not a per-read timeout: an answer
/// dripped slowly but completely within it succeeds.
fn a_slow_answer_within_the_timeout_succeeds(a: Adapter) {
    let server = FaultServer::always(Action::Drip {
        status: 200,
        body: br#"{"status":"CHARGED"}"#.to_vec(),
        every: Duration::from_millis(2),
    });
    let h = Harness::new(a, &server.base_url());
    let mut c = challenge();
    let d = h.submit(&mut c);
    assert_eq!(d.outcome, Outcome::Approved(Status::Charged), "{d:?}");
    assert!(c.is_final());
}

/// The longest deadline anyone could ask for (`Duration::MAX`) is clamped to a day, never
/// an overflow: ureq used to panic adding it to the current instant, with the challenge
/// left in flight.
fn the_longest_timeout_is_clamped_not_a_panic(a: Adapter) {
    let server = FaultServer::always(Action::json(200, fixture("submit_charged")));
    let h = Harness::with(a, &server.base_url(), Duration::MAX, None);
    let mut c = challenge();
    let d = h.submit(&mut c);
    assert_eq!(d.outcome, Outcome::Approved(Status::Charged), "{d:?}");
    assert_eq!(c.in_flight(), None);
    let settings = Settings::new().with_timeout(Duration::MAX);
    assert_eq!(settings.timeout(), direct_otp::transport::MAX_TIMEOUT);
}

/// ... and one dripped past the deadline is cut off there (a slow server can't hold the
/// caller longer than the timeout).
fn a_slow_answer_past_the_timeout_times_out(a: Adapter) {
    let server = server_with_status(Action::Drip {
        status: 200,
        body: br#"{"status":"CHARGED"}"#.to_vec(),
        every: Duration::from_millis(25),
    });
    let h = Harness::short(a, &server.base_url());
    let mut c = challenge();
    let started = std::time::Instant::now();
    let d = h.submit(&mut c);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(d.outcome, Outcome::CheckStatus(Uncertainty::MaybeSent));
    assert_eq!(kind_of(&d), TransportErrorKind::Timeout);
    assert_reconciles(&h, &mut c, 1);
}

/// An `Outgoing` that is not the request in flight is refused before anything is sent.
fn a_stale_outgoing_is_never_sent(a: Adapter) {
    let server = FaultServer::always(Action::json(200, &br#"{"status":"CHARGED"}"#[..]));
    let h = Harness::new(a, &server.base_url());
    let mut c = challenge();
    let out = c.submit(&h.config, &otp(), T0).unwrap();
    let token = out.token;
    c.handle_send_failure(token, SendFailure::NotSent, T0)
        .unwrap();
    assert_eq!(
        h.drive(&mut c, out).unwrap_err(),
        InputError::NothingInFlight { got: token }
    );
    let fresh = c.submit(&h.config, &otp(), T0).unwrap();
    let stale = Outgoing {
        token,
        request: fresh.request.clone(),
    };
    assert_eq!(
        h.drive(&mut c, stale).unwrap_err(),
        InputError::StaleToken {
            got: token,
            in_flight: fresh.token
        }
    );
    assert!(server.seen().is_empty());
    // The fresh one still goes through.
    let d = h.drive(&mut c, fresh).unwrap();
    assert_eq!(d.outcome, Outcome::Approved(Status::Charged));
}

/// The request on the wire: method, path, form body and headers as the core built them.
fn requests_arrive_as_built(a: Adapter) {
    let server = FaultServer::always(Action::json(200, fixture("submit_charged")));
    let h = Harness::new(a, &server.base_url());
    let mut c = challenge();
    let out = c.submit(&h.config, &otp(), T0).unwrap();
    let built = out.request.clone();
    h.drive(&mut c, out).unwrap();
    let seen = &server.seen()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(format!("{}{}", server.base_url(), seen.path), built.url());
    assert_eq!(seen.body, built.body());
    for (name, value) in built.headers() {
        assert_eq!(seen.header(name), Some(value), "{name}");
    }
    assert_eq!(
        seen.header("content-length"),
        Some(&*built.body().len().to_string())
    );

    let out = {
        let mut c = challenge();
        c.check_status(&h.config, T0).unwrap()
    };
    let mut c2 = challenge();
    let out2 = c2.check_status(&h.config, T0).unwrap();
    assert_eq!(out.request, out2.request);
    h.drive(&mut c2, out2).unwrap();
    let seen = &server.seen()[1];
    assert_eq!(seen.method, "GET");
    assert!(seen.body.is_empty());
}

for_each_adapter!(
    refused_connection_changes_nothing,
    silent_server_times_out_and_a_submit_goes_to_reconcile,
    silent_server_on_a_resend_goes_to_reconcile,
    silent_server_on_a_status_check_changes_nothing,
    reset_mid_body_goes_to_reconcile,
    close_mid_body_goes_to_reconcile,
    status_500_on_a_submit_goes_to_reconcile,
    status_500_on_a_status_check_is_rejected,
    bodies_of_4xx_answers_are_kept,
    a_body_over_the_limit_goes_to_reconcile,
    a_chunked_body_over_the_default_limit_is_refused,
    a_body_of_exactly_the_limit_is_read,
    invalid_json_on_a_submit_goes_to_reconcile,
    invalid_json_on_a_status_check_is_rejected,
    redirects_are_answers_and_never_followed,
    a_slow_answer_within_the_timeout_succeeds,
    the_longest_timeout_is_clamped_not_a_panic,
    a_slow_answer_past_the_timeout_times_out,
    a_stale_outgoing_is_never_sent,
    requests_arrive_as_built,
);

// ----- hyper only: cancellation, Send ------------------------------------------------------

/// A `drive` future dropped mid-exchange (an outer timeout, a cancelled task) tells the
/// challenge "maybe sent" at once.
#[tokio::test]
async fn hyper_drive_dropped_mid_exchange_goes_to_reconcile() {
    let server = FaultServer::always(Action::Silent);
    let t = HyperTransport::plain_http().with_settings(
        Settings::new()
            .with_timeout(Duration::from_secs(30))
            .with_clock(clock),
    );
    let config = Config::new(&server.base_url(), KEY).unwrap();
    let mut c = challenge();
    let out = c.submit(&config, &otp(), T0).unwrap();
    let cut = tokio::time::timeout(Duration::from_millis(200), t.drive(&mut c, out)).await;
    assert!(cut.is_err());
    assert_eq!(c.in_flight(), None);
    assert_eq!(c.next_step(T0), NextStep::CheckStatus);
    assert_eq!(c.attempts(), 1);
}

/// A `drive` future dropped before it was ever polled sent nothing: the challenge is told
/// "not sent" and nothing changed.
#[tokio::test]
async fn hyper_drive_dropped_unpolled_changes_nothing() {
    let t = HyperTransport::plain_http().with_settings(Settings::new().with_clock(clock));
    let config = Config::new(&closed_port_url(), KEY).unwrap();
    let mut c = challenge();
    let out = c.submit(&config, &otp(), T0).unwrap();
    drop(t.drive(&mut c, out));
    assert_eq!(c.in_flight(), None);
    assert_eq!(c.next_step(T0), NextStep::EnterOtp);
    assert_eq!(c.attempts(), 0);
}

/// On a runtime without timers no deadline can be set: nothing is sent, the error says
/// why, it counts as "not sent", and the challenge records no attempt (it used to panic
/// inside the exchange and leave a "maybe sent" attempt that never went out).
#[test]
fn hyper_on_a_runtime_without_timers_sends_nothing() {
    let server = FaultServer::always(Action::json(200, fixture("submit_charged")));
    let config = Config::new(&server.base_url(), KEY).unwrap();
    let t = HyperTransport::plain_http().with_settings(Settings::new().with_clock(clock));
    let no_timers = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let mut c = challenge();
    let out = c.submit(&config, &otp(), T0).unwrap();
    let d = no_timers.block_on(t.drive(&mut c, out)).unwrap();
    assert_eq!(kind_of(&d), TransportErrorKind::Runtime, "{d:?}");
    assert_eq!(d.outcome, Outcome::NotDelivered);
    assert_eq!((c.in_flight(), c.attempts()), (None, 0));
    assert_eq!(c.next_step(T0), NextStep::EnterOtp);
    let e = no_timers
        .block_on(t.send(start_request().request(&config)))
        .unwrap_err();
    assert_eq!(e.kind(), TransportErrorKind::Runtime);
    assert!(!e.may_have_been_sent());

    // No runtime at all (another executor): the same, without a panic.
    let mut send = std::pin::pin!(t.send(start_request().request(&config)));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::future::Future::poll(send.as_mut(), &mut cx) {
        std::task::Poll::Ready(Err(e)) => assert_eq!(e.kind(), TransportErrorKind::Runtime),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.seen().len(), 0, "nothing reached the server");

    // The same submit, once on a runtime with timers, goes through.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = c.submit(&config, &otp(), T0).unwrap();
    let d = rt.block_on(t.drive(&mut c, out)).unwrap();
    assert_eq!(d.outcome, Outcome::Approved(Status::Charged));
}

/// The futures can be spawned on a multi-threaded runtime (they are `Send`), and the
/// transport can be shared between tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_futures_are_send_and_spawnable() {
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let server = FaultServer::always(Action::json(200, fixture("submit_charged")));
    let t = std::sync::Arc::new(
        HyperTransport::plain_http().with_settings(Settings::new().with_clock(clock)),
    );
    let config = Config::new(&server.base_url(), KEY).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (t, config) = (t.clone(), config.clone());
        tasks.push(tokio::spawn(assert_send(async move {
            let mut c = challenge();
            let out = c.submit(&config, &otp(), T0).unwrap();
            let d = t.drive(&mut c, out).await.unwrap();
            let sent = t.send(start_request().request(&config)).await.unwrap();
            (d.outcome, sent.0)
        })));
    }
    for task in tasks {
        assert_eq!(
            task.await.unwrap(),
            (Outcome::Approved(Status::Charged), 200)
        );
    }
}

/// With hyper the adapter sees whether a connection was made, so a deadline that passes
/// while still connecting is "not sent". The listener's accept queue is full, so the
/// kernel drops the client's SYN and the connect hangs.
#[test]
fn hyper_timeout_while_connecting_is_not_sent() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some((_listener, _fillers, url)) = rt.block_on(full_accept_queue()) else {
        eprintln!("skipped: could not fill the accept queue on this system");
        return;
    };
    let t = HyperTransport::plain_http()
        .with_settings(Settings::new().with_timeout(SHORT).with_clock(clock));
    let config = Config::new(&url, KEY).unwrap();
    let mut c = challenge();
    let out = c.submit(&config, &otp(), T0).unwrap();
    let d = rt.block_on(t.drive(&mut c, out)).unwrap();
    assert_eq!(kind_of(&d), TransportErrorKind::Connect, "{d:?}");
    assert_eq!(d.outcome, Outcome::NotDelivered);
    assert_eq!(c.next_step(T0), NextStep::EnterOtp);
}

/// A listener with a backlog of 0 that never accepts, and connections filling its queue.
/// `None` if a probe connection still gets through (a system that does not drop SYNs).
async fn full_accept_queue() -> Option<(tokio::net::TcpListener, Vec<std::net::TcpStream>, String)>
{
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind("127.0.0.1:0".parse().ok()?).ok()?;
    let listener = socket.listen(0).ok()?;
    let addr = listener.local_addr().ok()?;
    let mut fillers = Vec::new();
    for _ in 0..4 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(s) => fillers.push(s),
            Err(_) => return Some((listener, fillers, format!("http://{addr}"))),
        }
    }
    None
}

/// ureq names the deadline that passed, not whether a connection was made. With only the
/// overall timeout, a hang while connecting is reported either as a connect timeout ("not
/// sent") or, when the overall deadline is noticed first, as a plain timeout ("maybe sent",
/// the safe side). With the agent's `timeout_connect` shorter than the timeout, it is always
/// a connect timeout.
#[test]
fn ureq_timeout_while_connecting() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some((_listener, _fillers, url)) = rt.block_on(full_accept_queue()) else {
        eprintln!("skipped: could not fill the accept queue on this system");
        return;
    };
    let config = Config::new(&url, KEY).unwrap();

    let t = UreqTransport::with_default_agent()
        .with_settings(Settings::new().with_timeout(SHORT).with_clock(clock));
    let mut c = challenge();
    let out = c.submit(&config, &otp(), T0).unwrap();
    let d = t.drive(&mut c, out).unwrap();
    match kind_of(&d) {
        TransportErrorKind::Connect => assert_eq!(c.next_step(T0), NextStep::EnterOtp),
        TransportErrorKind::Timeout => assert_eq!(c.next_step(T0), NextStep::CheckStatus),
        other => panic!("{other:?}: {d:?}"),
    }

    let agent = ureq::Agent::config_builder()
        .proxy(None)
        .timeout_connect(Some(Duration::from_millis(100)))
        .build()
        .new_agent();
    let t = UreqTransport::new(agent)
        .with_settings(Settings::new().with_timeout(SHORT).with_clock(clock));
    let mut c = challenge();
    let out = c.submit(&config, &otp(), T0).unwrap();
    let d = t.drive(&mut c, out).unwrap();
    assert_eq!(kind_of(&d), TransportErrorKind::Connect, "{d:?}");
    assert_eq!(d.outcome, Outcome::NotDelivered);
    assert_eq!(c.next_step(T0), NextStep::EnterOtp);
}
