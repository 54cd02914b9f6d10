//! Fault injection against each adapter: a loopback server that refuses, stays silent,
//! resets, answers 500, too much, invalid JSON, a redirect, or drips its answer. Each case
//! checks the typed error or outcome, and that the challenge is left in a state it can
//! recover from (the recovery itself is driven too).

use crate::adapter_support;
use crate::common::check_cases;
use crate::fault_server;

use std::time::Duration;

use adapter_support::{Adapter, AnyTransport};
use direct_otp::transport::{
    Driven, HyperTransport, Settings, TransportError, TransportErrorKind, UreqTransport,
};
use direct_otp::{
    Challenge, Config, InputError, Malformed, NextStep, Otp, Outcome, Outgoing, PaymentSource,
    Policy, Refusal, Request, RequestKind, ResponseError, SendFailure, StartError, StartRequest,
    Started, Status, Uncertainty,
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
    let path = format!("{}/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn otp() -> Otp {
    Otp::new("123456").unwrap()
}

/// A challenge started from the documented start answer, at `T0`, resend allowed at once.
fn challenge() -> Challenge {
    let mut policy = Policy::default();
    policy.resend_cooldown = std::time::Duration::ZERO;
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

/// What the fault server does: `/orders/*` answers `PENDING_VBV` (so a lost request can be
/// reconciled) and everything else gets the action, or every request gets it.
enum Serve {
    WithStatus(Action),
    Always(Action),
}

/// One request through an adapter to a misbehaving server.
struct Fault {
    name: &'static str,
    serve: Serve,
    /// How long the adapter waits, and its body limit (else the default).
    timeout: Duration,
    limit: Option<usize>,
    command: RequestKind,
    /// The outcome the challenge reports.
    outcome: fn(&Outcome) -> bool,
    /// The transport error the exchange reports, if any.
    transport: Option<TransportErrorKind>,
    then: Vec<After>,
}

/// What holds after the exchange.
#[derive(Debug)]
enum After {
    /// The lost request counted this many attempts, allows only a status check, and the
    /// status check (answered `PENDING_VBV`) reopens the OTP page.
    Reconciles(u32),
    /// Nothing changed: the OTP page is still open.
    PageOpen,
    Sends(u32),
    Final,
    /// The transport error says the request may have been sent (or surely was not).
    MayHaveBeenSent(bool),
    /// The first request the server saw went to this path.
    FirstPath(&'static str),
    /// The exchange took less than this.
    Within(Duration),
}

impl Fault {
    fn run(&self, a: Adapter) {
        let name = format!("{} ({a:?})", self.name);
        let server = match &self.serve {
            Serve::WithStatus(action) => server_with_status(action.clone()),
            Serve::Always(action) => FaultServer::always(action.clone()),
        };
        let h = Harness::with(a, &server.base_url(), self.timeout, self.limit);
        let mut c = challenge();
        let started = std::time::Instant::now();
        let d = match self.command {
            RequestKind::Submit => h.submit(&mut c),
            RequestKind::Resend => h.resend(&mut c),
            _ => h.check_status(&mut c),
        };
        let took = started.elapsed();
        assert!((self.outcome)(&d.outcome), "{name}: {d:?}");
        let kind = d.transport_error.as_ref().map(TransportError::kind);
        assert_eq!(kind, self.transport, "{name}: {d:?}");
        for after in &self.then {
            match after {
                After::Reconciles(attempts) => assert_reconciles(&h, &mut c, *attempts),
                After::PageOpen => {
                    assert_eq!(c.next_step(T0), NextStep::EnterOtp, "{name}");
                    assert!(c.may_submit(T0).is_ok(), "{name}");
                }
                After::Sends(n) => assert_eq!(c.otp_sends(), *n, "{name}"),
                After::Final => assert!(c.is_final() && c.in_flight().is_none(), "{name}"),
                After::MayHaveBeenSent(maybe) => {
                    let e = d.transport_error.as_ref().expect("a transport error");
                    assert_eq!(e.may_have_been_sent(), *maybe, "{name}");
                    let failure = if *maybe {
                        SendFailure::MaybeSent
                    } else {
                        SendFailure::NotSent
                    };
                    assert_eq!(e.send_failure(), failure, "{name}");
                }
                After::FirstPath(path) => assert_eq!(server.seen()[0].path, *path, "{name}"),
                After::Within(most) => assert!(took < *most, "{name}: {took:?}"),
            }
        }
    }
}

fn lost(o: &Outcome) -> bool {
    *o == Outcome::CheckStatus(Uncertainty::MaybeSent)
}

fn not_delivered(o: &Outcome) -> bool {
    *o == Outcome::NotDelivered
}

fn charged(o: &Outcome) -> bool {
    *o == Outcome::Approved(Status::Charged)
}

/// Every way an exchange can fail or limp, one case each.
fn faults() -> Vec<Fault> {
    use RequestKind::{OrderStatus, Resend, Submit};
    let case = |name, serve, command, outcome, transport, then| Fault {
        name,
        serve,
        timeout: PATIENT,
        limit: None,
        command,
        outcome,
        transport,
        then,
    };
    let short = |f: Fault| Fault {
        timeout: SHORT,
        ..f
    };
    let limit = |f: Fault, limit| Fault {
        limit: Some(limit),
        ..f
    };
    let reset = Action::ResetMidBody {
        declared: 2000,
        sent: 100,
    };
    let cut = Action::CloseMidBody {
        declared: 2000,
        sent: 100,
    };
    let drip = |every| Action::Drip {
        status: 200,
        body: br#"{"status":"CHARGED"}"#.to_vec(),
        every: Duration::from_millis(every),
    };
    let big = format!(
        "{{\"status\":\"CHARGED\",\"pad\":\"{}\"}}",
        "x".repeat(4096)
    );
    let pending = fixture("order_status_pending");
    let server_error = || Action::json(500, fixture("error_internal_500"));
    use After::*;
    use Serve::{Always, WithStatus};
    vec![
        short(case(
            "a silent server: a submit times out and goes to reconcile",
            WithStatus(Action::Silent),
            Submit,
            lost,
            Some(TransportErrorKind::Timeout),
            vec![
                MayHaveBeenSent(true),
                Reconciles(1),
                FirstPath("/v2/txns/txn_36dc6eada1d0463da91dc56c8262a8c3/authenticate"),
            ],
        )),
        // The lost resend counts against the limit: never re-sent blindly.
        short(case(
            "a silent server: a resend goes to reconcile",
            WithStatus(Action::Silent),
            Resend,
            lost,
            Some(TransportErrorKind::Timeout),
            vec![Sends(2), Reconciles(0)],
        )),
        short(case(
            "a silent server: a status check changes nothing",
            Always(Action::Silent),
            OrderStatus,
            not_delivered,
            Some(TransportErrorKind::Timeout),
            vec![PageOpen],
        )),
        case(
            "a reset in the middle of the body: reconcile",
            WithStatus(reset),
            Submit,
            lost,
            Some(TransportErrorKind::Io),
            vec![Reconciles(1)],
        ),
        case(
            "a close in the middle of the body: reconcile",
            WithStatus(cut),
            Submit,
            lost,
            Some(TransportErrorKind::Io),
            vec![MayHaveBeenSent(true), Reconciles(1)],
        ),
        case(
            "500 on a submit: reconcile, the error kept",
            WithStatus(server_error()),
            Submit,
            |o| match o {
                Outcome::CheckStatus(Uncertainty::Response(ResponseError::Api(api))) => {
                    api.http_status() == 500
                        && api.code() == Some("INTERNAL_SERVER_ERROR")
                        && api.request_id() == Some("req_500")
                }
                _ => false,
            },
            None,
            vec![Reconciles(1)],
        ),
        case(
            "500 on a status check: rejected",
            Always(server_error()),
            OrderStatus,
            |o| matches!(o, Outcome::Rejected(ResponseError::Api(_))),
            None,
            vec![PageOpen],
        ),
        limit(
            case(
                "a body over the limit: reconcile",
                WithStatus(Action::json(200, big)),
                Submit,
                lost,
                Some(TransportErrorKind::BodyTooLarge),
                vec![Reconciles(1)],
            ),
            2048,
        ),
        // No content-length: the limit is enforced while reading.
        case(
            "a chunked body over the default limit: refused",
            Always(Action::Chunked {
                status: 200,
                body: vec![b' '; 100 * 1024],
                chunk: 8192,
            }),
            OrderStatus,
            not_delivered,
            Some(TransportErrorKind::BodyTooLarge),
            vec![PageOpen],
        ),
        limit(
            case(
                "a body of exactly the limit: read",
                Always(Action::Chunked {
                    status: 200,
                    body: pending.clone(),
                    chunk: 100,
                }),
                OrderStatus,
                |o| *o == Outcome::Pending(Status::PendingVbv),
                None,
                vec![],
            ),
            pending.len(),
        ),
        case(
            "invalid JSON on a submit: reconcile",
            WithStatus(Action::json(200, &b"{\"status\": \"CHARGED\","[..])),
            Submit,
            |o| {
                matches!(
                    o,
                    Outcome::CheckStatus(Uncertainty::Response(ResponseError::Malformed {
                        http_status: 200,
                        problem: Malformed::Syntax { .. }
                    }))
                )
            },
            None,
            vec![Reconciles(1)],
        ),
        case(
            "invalid JSON on a status check: rejected",
            Always(Action::json(200, &b"<html>gateway</html>"[..])),
            OrderStatus,
            |o| matches!(o, Outcome::Rejected(ResponseError::Malformed { .. })),
            None,
            vec![PageOpen],
        ),
        // The timeout is one deadline for the whole exchange, not a per-read timeout: an
        // answer dripped slowly but completely within it succeeds...
        case(
            "a slow answer within the timeout: read",
            Always(drip(2)),
            Submit,
            charged,
            None,
            vec![Final],
        ),
        // ... and one dripped past the deadline is cut off there (a slow server can't hold
        // the caller longer than the timeout).
        short(case(
            "a slow answer past the timeout: cut off, reconcile",
            WithStatus(drip(25)),
            Submit,
            lost,
            Some(TransportErrorKind::Timeout),
            vec![Within(Duration::from_secs(3)), Reconciles(1)],
        )),
        // The longest deadline anyone could ask for is clamped to a day, never an overflow:
        // ureq used to panic adding it to the current instant, with the challenge left in
        // flight.
        Fault {
            timeout: Duration::MAX,
            ..case(
                "the longest timeout: clamped, not a panic",
                Always(Action::json(200, fixture("submit_charged"))),
                Submit,
                charged,
                None,
                vec![Final],
            )
        },
    ]
}

/// Every case of [`faults`], through one adapter.
fn faults_through(a: Adapter) {
    check_cases(faults(), |f| f.run(a));
}

#[test]
fn the_longest_timeout_setting_is_clamped() {
    let settings = Settings::new().with_timeout(Duration::MAX);
    assert_eq!(settings.timeout(), direct_otp::transport::MAX_TIMEOUT);
}

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
    faults_through,
    refused_connection_changes_nothing,
    bodies_of_4xx_answers_are_kept,
    redirects_are_answers_and_never_followed,
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

/// Set in the child process of [`hyper_never_panics_without_timers_or_runtime`]: the test
/// then runs its scenario under a panic hook that aborts the process.
const ABORT_ON_PANIC: &str = "DIRECT_OTP_TEST_ABORT_ON_PANIC";

/// Nothing on hyper's path panics, caught or not, on a runtime without timers or outside
/// any Tokio runtime. The scenario runs in a child process (this test binary, this test
/// only) whose panic hook calls `std::process::abort`, as a `panic = "abort"` build would:
/// any panic, even one caught by `catch_unwind`, kills the child and fails the test. A
/// canary child that panics on purpose shows that the hook does kill it.
#[test]
fn hyper_never_panics_without_timers_or_runtime() {
    match std::env::var(ABORT_ON_PANIC).as_deref() {
        Ok("scenario") => {
            std::panic::set_hook(Box::new(|info| {
                eprintln!("panicked under the aborting hook: {info}");
                std::process::abort();
            }));
            return without_timers_or_runtime();
        }
        Ok("canary") => {
            std::panic::set_hook(Box::new(|_| std::process::abort()));
            let _ = std::panic::catch_unwind(|| panic!("caught, yet the hook aborts"));
            return;
        }
        _ => {}
    }
    let run = |mode: &str| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "faults::hyper_never_panics_without_timers_or_runtime",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ABORT_ON_PANIC, mode)
            .output()
            .unwrap()
    };
    let canary = run("canary");
    assert!(
        !canary.status.success(),
        "the aborting hook did not abort: {canary:?}"
    );
    let child = run("scenario");
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success() && stdout.contains("1 passed"),
        "{:?}\n{stdout}\n{}",
        child.status,
        String::from_utf8_lossy(&child.stderr)
    );
}

/// On a runtime without timers (I/O only) the exchange runs under the transport's own
/// deadline; outside any Tokio runtime nothing is sent, the error says why, it counts as
/// "not sent", and the challenge records no attempt.
fn without_timers_or_runtime() {
    let server = FaultServer::always(Action::json(200, fixture("submit_charged")));
    let config = Config::new(&server.base_url(), KEY).unwrap();
    let t = HyperTransport::plain_http().with_settings(Settings::new().with_clock(clock));

    // No runtime at all (another executor): nothing sent, the typed error.
    let mut c = challenge();
    let out = c.submit(&config, &otp(), T0).unwrap();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let d = {
        let mut drive = std::pin::pin!(t.drive(&mut c, out));
        match std::future::Future::poll(drive.as_mut(), &mut cx) {
            std::task::Poll::Ready(d) => d.unwrap(),
            std::task::Poll::Pending => panic!("pending outside a runtime"),
        }
    };
    assert_eq!(kind_of(&d), TransportErrorKind::Runtime, "{d:?}");
    assert_eq!(d.outcome, Outcome::NotDelivered);
    assert_eq!((c.in_flight(), c.attempts()), (None, 0));
    assert_eq!(c.next_step(T0), NextStep::EnterOtp);
    let mut send = std::pin::pin!(t.send(start_request().request(&config)));
    match std::future::Future::poll(send.as_mut(), &mut cx) {
        std::task::Poll::Ready(Err(e)) => {
            assert_eq!(e.kind(), TransportErrorKind::Runtime);
            assert!(!e.may_have_been_sent());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.seen().len(), 0, "nothing reached the server");

    // A runtime without timers: the deadline needs none, the submit goes through.
    let no_timers = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let out = c.submit(&config, &otp(), T0).unwrap();
    let d = no_timers.block_on(t.drive(&mut c, out)).unwrap();
    assert_eq!(d.outcome, Outcome::Approved(Status::Charged), "{d:?}");
    assert_eq!(server.seen().len(), 1);

    // ... and its deadline still passes: a silent server times out.
    let silent = FaultServer::always(Action::Silent);
    let t = HyperTransport::plain_http()
        .with_settings(Settings::new().with_timeout(SHORT).with_clock(clock));
    let e = no_timers
        .block_on(t.send(start_request().request(&Config::new(&silent.base_url(), KEY).unwrap())))
        .unwrap_err();
    assert_eq!(e.kind(), TransportErrorKind::Timeout, "{e:?}");
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
