//! Every lifecycle scenario through each adapter, against the sandbox served over loopback
//! HTTP: the adapters' `send` for the start, their `drive` for every challenge request, and
//! a virtual clock the adapters read (so the resend cooldown passes without waiting).

use crate::adapter_support;

use std::cell::Cell;
use std::time::Duration as StdDuration;

use adapter_support::{Adapter, AnyTransport};
use direct_otp::sandbox::{
    BankPageResult, CardFlow, Endpoint, Fault, OtpSource, Sandbox, SandboxConfig, SandboxServer,
};
use direct_otp::transport::{Driven, TransportError, TransportErrorKind};
use direct_otp::{
    Challenge, Config, NextStep, OrderStatusCheck, Otp, Outcome, Outgoing, PaymentSource, Refusal,
    Request, StartRequest, Started, Status, Uncertainty,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const KEY: &str = "sk_test_SECRETKEY";
const ROUTING: &str = "customer_1122";

thread_local! {
    /// The virtual clock of this test's thread (each test runs on its own thread, and the
    /// hyper harness runs its futures on that same thread).
    static NOW: Cell<OffsetDateTime> = const { Cell::new(datetime!(2026-11-25 10:00:00 UTC)) };
}

fn clock() -> OffsetDateTime {
    NOW.with(Cell::get)
}

fn advance(seconds: i64) {
    NOW.with(|now| now.set(now.get() + Duration::seconds(seconds)));
}

/// A sandbox server, the library's config for it, and one adapter.
struct World {
    server: SandboxServer,
    config: Config,
    transport: AnyTransport,
}

impl World {
    fn new(adapter: Adapter, sandbox: SandboxConfig) -> World {
        World::with_timeout(adapter, sandbox, StdDuration::from_secs(10))
    }

    fn with_timeout(adapter: Adapter, sandbox: SandboxConfig, timeout: StdDuration) -> World {
        let server = SandboxServer::start(Sandbox::new(sandbox)).unwrap();
        let config = Config::new(server.base_url(), KEY).unwrap();
        let transport = AnyTransport::new(adapter, timeout, None, clock);
        World {
            server,
            config,
            transport,
        }
    }

    fn send(&self, request: Request) -> Result<(u16, Vec<u8>), TransportError> {
        self.transport.send(request)
    }

    fn drive(&self, c: &mut Challenge, out: Outgoing) -> Driven {
        self.transport.drive(c, out).unwrap()
    }

    fn start_request(&self, order: &str, card_token: &str) -> StartRequest {
        let source = PaymentSource::Token {
            card_token: card_token.into(),
            cvv: None,
        };
        StartRequest::new(order, "acme", ROUTING, source).unwrap()
    }

    fn start(&self, order: &str) -> Challenge {
        let start = self.start_request(order, "tok_visa");
        let (status, body) = self.send(start.request(&self.config)).unwrap();
        match start.handle_response(status, &body, clock()).unwrap() {
            Started::Challenge(c) => *c,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    fn sms(&self, c: &Challenge) -> Otp {
        Otp::new(self.server.sandbox().current_otp(c.txn_id()).unwrap()).unwrap()
    }

    fn submit(&self, c: &mut Challenge, otp: &Otp) -> Driven {
        let out = c.submit(&self.config, otp, clock()).unwrap();
        self.drive(c, out)
    }

    fn resend(&self, c: &mut Challenge) -> Driven {
        let out = c.resend(&self.config, clock()).unwrap();
        self.drive(c, out)
    }

    fn check_status(&self, c: &mut Challenge) -> Driven {
        let out = c.check_status(&self.config, clock()).unwrap();
        self.drive(c, out)
    }
}

fn wrong_otp() -> Otp {
    Otp::new("000000").unwrap()
}

// ----- Scenarios ---------------------------------------------------------------------------

fn happy_path_with_a_resend_a_wrong_and_a_right_otp(a: Adapter) {
    let w = World::new(a, SandboxConfig::new(KEY).with_otp(OtpSource::Seeded(3)));
    let mut c = w.start("ord_happy");
    let first = w.sms(&c);
    assert_eq!(c.next_step(clock()), NextStep::EnterOtp);

    // The cooldown (30 s by default) holds the resend back until the timer fires.
    assert!(matches!(
        c.may_resend(clock()),
        Err(Refusal::Cooldown { .. })
    ));
    advance(31);
    assert!(c.may_resend(clock()).is_ok());
    assert_eq!(w.resend(&mut c).outcome, Outcome::OtpSent { sends_left: 2 });
    let second = w.sms(&c);
    assert_ne!(first, second);

    assert_eq!(
        w.submit(&mut c, &first).outcome,
        Outcome::WrongOtp { attempts_left: 3 }
    );
    let d = w.submit(&mut c, &second);
    assert!(d.transport_error.is_none());
    assert_eq!(d.outcome, Outcome::Approved(Status::Charged));
    assert!(c.is_final());
    assert_eq!(c.next_step(clock()), NextStep::Finished(Status::Charged));

    let sandbox = w.server.sandbox();
    assert_eq!(sandbox.order_status("ord_happy"), Some(Status::Charged));
    assert_eq!(sandbox.requests_to(Endpoint::Start), 1);
    assert_eq!(sandbox.requests_to(Endpoint::Resend), 1);
    assert_eq!(sandbox.requests_to(Endpoint::Submit), 2);
}

fn the_send_limit_then_the_bank_page(a: Adapter) {
    // The server allows 2 sends (the one at start included) and says so in its counters.
    let w = World::new(a, SandboxConfig::new(KEY).with_limits(2, 4));
    let mut c = w.start("ord_limit");

    advance(31);
    let d = w.resend(&mut c);
    assert!(d.transport_error.is_none());
    assert_eq!(d.outcome, Outcome::OtpSent { sends_left: 0 });
    advance(31);
    assert_eq!(
        c.may_resend(clock()),
        Err(Refusal::SendLimitReached { limit: 2 })
    );

    // The cardholder gives up on SMS: the bank page, then the order status.
    let url = c.go_to_bank_page(clock()).unwrap().to_owned();
    assert!(url.starts_with(w.server.base_url()), "{url}");
    assert_eq!(c.next_step(clock()), NextStep::AwaitBankPage);
    w.server
        .sandbox()
        .complete_bank_page(c.txn_id(), BankPageResult::Success)
        .unwrap();
    assert_eq!(
        w.check_status(&mut c).outcome,
        Outcome::Approved(Status::Charged)
    );
    assert_eq!(w.server.sandbox().requests_to(Endpoint::Resend), 1);
}

fn attempts_exhausted_then_the_bank_page(a: Adapter) {
    let w = World::new(a, SandboxConfig::new(KEY).with_limits(4, 2));
    let mut c = w.start("ord_attempts");
    assert_eq!(
        w.submit(&mut c, &wrong_otp()).outcome,
        Outcome::WrongOtp { attempts_left: 1 }
    );
    assert_eq!(
        w.submit(&mut c, &wrong_otp()).outcome,
        Outcome::AttemptLimitReached
    );
    assert!(matches!(
        c.may_submit(clock()),
        Err(Refusal::AttemptLimitReached { limit: 2 } | Refusal::SubmitNotAllowed)
    ));
    let NextStep::BankPage(url) = c.next_step(clock()) else {
        panic!("{:?}", c.next_step(clock()));
    };
    let url = url.to_owned();
    assert_eq!(c.go_to_bank_page(clock()).unwrap(), url);
    w.server
        .sandbox()
        .complete_bank_page(c.txn_id(), BankPageResult::Failure)
        .unwrap();
    assert_eq!(
        w.check_status(&mut c).outcome,
        Outcome::Declined(Status::AuthenticationFailed)
    );
    assert!(c.is_final());
}

fn a_lost_submit_answer_is_reconciled(a: Adapter) {
    let w = World::new(a, SandboxConfig::new(KEY));
    let mut c = w.start("ord_lost");
    let otp = w.sms(&c);
    // The payment goes through; the connection closes without an answer.
    w.server
        .sandbox()
        .inject(Endpoint::Submit, Fault::DropResponse);
    let d = w.submit(&mut c, &otp);
    assert_eq!(d.outcome, Outcome::CheckStatus(Uncertainty::MaybeSent));
    let e = d.transport_error.unwrap();
    assert!(e.may_have_been_sent(), "{e:?}");
    assert_eq!(e.kind(), TransportErrorKind::Io, "{e:?}");
    assert_eq!(c.next_step(clock()), NextStep::CheckStatus);
    assert_eq!(c.may_submit(clock()), Err(Refusal::CheckStatus));

    assert_eq!(
        w.check_status(&mut c).outcome,
        Outcome::Approved(Status::Charged)
    );
    // Never re-sent blindly.
    assert_eq!(w.server.sandbox().requests_to(Endpoint::Submit), 1);
}

fn a_submit_lost_before_it_acted_is_reconciled_then_retried(a: Adapter) {
    let w = World::new(a, SandboxConfig::new(KEY));
    let mut c = w.start("ord_dropped_request");
    let otp = w.sms(&c);
    w.server
        .sandbox()
        .inject(Endpoint::Submit, Fault::DropRequest);
    let d = w.submit(&mut c, &otp);
    // The client cannot tell it from a lost answer: reconcile.
    assert_eq!(d.outcome, Outcome::CheckStatus(Uncertainty::MaybeSent));
    assert_eq!(
        w.check_status(&mut c).outcome,
        Outcome::Pending(Status::PendingVbv)
    );
    assert_eq!(c.next_step(clock()), NextStep::EnterOtp);
    let otp = w.sms(&c);
    assert_eq!(
        w.submit(&mut c, &otp).outcome,
        Outcome::Approved(Status::Charged)
    );
}

fn a_submit_answered_too_late_is_reconciled(a: Adapter) {
    let w = World::with_timeout(a, SandboxConfig::new(KEY), StdDuration::from_millis(300));
    let mut c = w.start("ord_slow");
    let otp = w.sms(&c);
    w.server
        .sandbox()
        .inject(Endpoint::Submit, Fault::Slow(StdDuration::from_secs(3)));
    let d = w.submit(&mut c, &otp);
    assert_eq!(d.outcome, Outcome::CheckStatus(Uncertainty::MaybeSent));
    assert_eq!(
        d.transport_error.unwrap().kind(),
        TransportErrorKind::Timeout
    );
    // The sandbox acted on it before its delayed answer.
    assert_eq!(
        w.check_status(&mut c).outcome,
        Outcome::Approved(Status::Charged)
    );
}

fn a_500_on_a_resend_is_reconciled(a: Adapter) {
    let w = World::new(a, SandboxConfig::new(KEY));
    let mut c = w.start("ord_500");
    advance(31);
    w.server
        .sandbox()
        .inject(Endpoint::Resend, Fault::InternalErrorAfterApply);
    let d = w.resend(&mut c);
    assert!(d.transport_error.is_none());
    assert!(
        matches!(d.outcome, Outcome::CheckStatus(Uncertainty::Response(_))),
        "{d:?}"
    );
    assert_eq!(c.otp_sends(), 2);
    assert_eq!(
        w.check_status(&mut c).outcome,
        Outcome::Pending(Status::PendingVbv)
    );
    let otp = w.sms(&c);
    assert_eq!(
        w.submit(&mut c, &otp).outcome,
        Outcome::Approved(Status::Charged)
    );
}

fn three_ds_failover(a: Adapter) {
    let w = World::new(
        a,
        SandboxConfig::new(KEY).with_card("tok_3ds", CardFlow::ThreeDsFailover),
    );
    let start = w.start_request("ord_3ds", "tok_3ds");
    let (status, body) = w.send(start.request(&w.config)).unwrap();
    let Started::Redirect { url, method } = start.handle_response(status, &body, clock()).unwrap()
    else {
        panic!("expected a redirect");
    };
    assert_eq!(method, "GET");
    let txn = w.server.sandbox().latest_transaction("ord_3ds").unwrap();
    assert!(txn.three_ds);
    assert!(url.ends_with(&txn.txn_uuid), "{url}");

    // The browser finishes on the bank page; the order status tells the result.
    w.server
        .sandbox()
        .complete_bank_page(&txn.txn_uuid, BankPageResult::Success)
        .unwrap();
    let check = start.order_status_check();
    let (status, body) = w.send(check.request(&w.config)).unwrap();
    assert_eq!(check.handle_response(status, &body), Ok(Status::Charged));
    // The same check, built in a later web request from what the backend kept.
    let later = OrderStatusCheck::new("ord_3ds", ROUTING).unwrap();
    assert_eq!(later, check);
    let (status, body) = w.send(later.request(&w.config)).unwrap();
    assert_eq!(later.handle_response(status, &body), Ok(Status::Charged));
}

fn a_start_to_a_stopped_server_is_not_sent(a: Adapter) {
    let w = World::new(a, SandboxConfig::new(KEY));
    let request = w.start_request("ord_gone", "tok_visa").request(&w.config);
    let World {
        server, transport, ..
    } = w;
    drop(server); // nothing listens on that port any more
    let e = transport.send(request).unwrap_err();
    assert_eq!(e.kind(), TransportErrorKind::Connect, "{e:?}");
    assert!(!e.may_have_been_sent());
}

for_each_adapter!(
    happy_path_with_a_resend_a_wrong_and_a_right_otp,
    the_send_limit_then_the_bank_page,
    attempts_exhausted_then_the_bank_page,
    a_lost_submit_answer_is_reconciled,
    a_submit_lost_before_it_acted_is_reconciled_then_retried,
    a_submit_answered_too_late_is_reconciled,
    a_500_on_a_resend_is_reconciled,
    three_ds_failover,
    a_start_to_a_stopped_server_is_not_sent,
);
