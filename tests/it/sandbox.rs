//! The library driven against the sandbox model in-process (no sockets), one test per
//! scenario. Every answer is checked against its fixture's shape, and the library must read
//! the answer and the fixture alike (see `sandbox_support`).

use crate::common;
use crate::sandbox_support;

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use direct_otp::sandbox::{
    BankPageResult, CardFlow, Delivery, Endpoint, Fault, HttpRequest, Orders, OtpSource, Sandbox,
    SandboxConfig, SandboxError, WrongOtp,
};
use direct_otp::{
    Challenge, Config, NextStep, Otp, Outcome, PaymentSource, Refusal, Request, RequestKind,
    ResponseError, SendFailure, StartError, StartRequest, Started, Status, Uncertainty,
};
use sandbox_support::{check_shape, deliver, read_start, shape_errors};
use serde_json::json;
use time::{Duration, OffsetDateTime};

const KEY: &str = "sk_test_SECRETKEY";
const ROUTING: &str = "customer_1122";
/// How long the simulated client waits for an answer before giving up.
const CLIENT_TIMEOUT: StdDuration = StdDuration::from_secs(5);

/// The library, a sandbox, and a virtual clock, wired together in-process.
struct World {
    sandbox: Sandbox,
    config: Config,
    now: OffsetDateTime,
    /// Every fixture some answer was checked against.
    checked: BTreeSet<&'static str>,
}

impl World {
    fn new(config: SandboxConfig) -> World {
        let sandbox = Sandbox::new(config);
        let client = Config::new(sandbox.base_url(), KEY).unwrap();
        World {
            sandbox,
            config: client,
            now: common::T0,
            checked: BTreeSet::new(),
        }
    }

    fn default() -> World {
        World::new(SandboxConfig::new(KEY))
    }

    fn later(&mut self, secs: i64) {
        self.now += Duration::seconds(secs);
    }

    fn start_request(order: &str, card: &str) -> StartRequest {
        let source = PaymentSource::Token {
            card_token: card.into(),
            cvv: None,
        };
        StartRequest::new(order, "acme", ROUTING, source).unwrap()
    }

    /// `POST /txns` for `order` with the card token `card`.
    fn start(&mut self, order: &str, card: &str) -> Result<Started, StartError> {
        let request = World::start_request(order, card).request(&self.config);
        let answer = self.sandbox.handle_request(&request, self.now);
        read_start(
            &mut self.checked,
            ROUTING,
            answer.status,
            &answer.body,
            self.now,
        )
    }

    fn challenge(&mut self, order: &str) -> Challenge {
        match self.start(order, "tok_visa").unwrap() {
            Started::Challenge(c) => *c,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    /// Sends a command's request to the sandbox and hands the result back, as a transport
    /// would: a dropped or too-slow answer is a `MaybeSent` failure.
    fn run(
        &mut self,
        c: &mut Challenge,
        command: Result<direct_otp::Outgoing, Refusal>,
    ) -> Outcome {
        let out = command.expect("the library refused the command");
        let answer = self.sandbox.handle_request(&out.request, self.now);
        match answer.delivery {
            Delivery::Never => {
                return c
                    .handle_send_failure(out.token, SendFailure::MaybeSent, self.now)
                    .unwrap()
            }
            Delivery::After(d) if d > CLIENT_TIMEOUT => {
                self.now += CLIENT_TIMEOUT;
                return c
                    .handle_send_failure(out.token, SendFailure::MaybeSent, self.now)
                    .unwrap();
            }
            _ => {}
        }
        deliver(
            &mut self.checked,
            c,
            out.request.kind(),
            out.token,
            answer.status,
            &answer.body,
            self.now,
        )
    }

    fn resend(&mut self, c: &mut Challenge) -> Outcome {
        let command = c.resend(&self.config, self.now);
        self.run(c, command)
    }

    fn submit(&mut self, c: &mut Challenge, otp: &str) -> Outcome {
        let command = c.submit(&self.config, &Otp::new(otp).unwrap(), self.now);
        self.run(c, command)
    }

    fn check_status(&mut self, c: &mut Challenge) -> Outcome {
        let command = c.check_status(&self.config, self.now);
        self.run(c, command)
    }

    /// "Reads the SMS": the OTP the bank sent last.
    fn sms(&self, c: &Challenge) -> String {
        self.sandbox
            .current_otp(c.txn_id())
            .expect("no OTP is valid")
            .to_owned()
    }

    /// An OTP that is surely wrong.
    fn wrong(&self, c: &Challenge) -> String {
        let right = self.sms(c);
        right
            .chars()
            .map(|d| if d == '9' { '0' } else { (d as u8 + 1) as char })
            .collect()
    }

    /// Sends a hand-made request and checks its answer's shape.
    fn raw(&mut self, kind: RequestKind, request: &HttpRequest) -> (u16, serde_json::Value) {
        let answer = self.sandbox.handle(request, self.now);
        let names = check_shape(kind, answer.status, &answer.body);
        self.checked.extend(names);
        (answer.status, answer.json_body().unwrap())
    }
}

fn api_code(outcome: &Outcome) -> (u16, Option<String>) {
    match outcome {
        Outcome::Rejected(ResponseError::Api(e)) | Outcome::Unauthorized(e) => {
            (e.http_status(), e.code().map(str::to_owned))
        }
        other => panic!("expected an API refusal, got {other:?}"),
    }
}

/// A library request as the sandbox sees it, minus one header.
fn without_header(request: &Request, name: &str) -> HttpRequest {
    let mut r = HttpRequest::from(request);
    r.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    r
}

#[test]
fn happy_path_resend_wrong_otp_then_right_otp_is_charged() {
    let mut w = World::default();
    let mut c = w.challenge("ord_happy");
    assert_eq!(c.next_step(w.now), NextStep::EnterOtp);
    assert_eq!((c.sends_left(), c.attempts_left()), (3, 4));
    let first_sms = w.sms(&c);

    // The SMS is late; the cardholder taps "Resend" once the cooldown is over.
    assert!(c.may_resend(w.now).is_err());
    w.later(31);
    assert_eq!(w.resend(&mut c), Outcome::OtpSent { sends_left: 2 });
    let second_sms = w.sms(&c);
    let by_order = w.sandbox.current_otp_for_order("ord_happy");
    assert_eq!(
        by_order,
        Some(second_sms.as_str()),
        "the phone, by order id"
    );
    assert_eq!(w.sandbox.current_otp_for_order("ord_unknown"), None);

    // Then types the first OTP, which the resend replaced.
    assert_ne!(first_sms, second_sms, "a resend sends a new OTP");
    let outcome = w.submit(&mut c, &first_sms);
    assert_eq!(outcome, Outcome::WrongOtp { attempts_left: 3 });
    assert_eq!(c.next_step(w.now), NextStep::EnterOtp);

    assert_eq!(
        w.submit(&mut c, &second_sms),
        Outcome::Approved(Status::Charged)
    );
    assert!(c.is_final());
    let txn = w.sandbox.transaction(c.txn_id()).unwrap();
    assert_eq!(
        (txn.status, txn.otp_sends, txn.attempts),
        (Status::Charged, 2, 2)
    );
    assert_eq!(w.sandbox.current_otp(c.txn_id()), None);
    assert_eq!(w.sandbox.current_otp_for_order("ord_happy"), None);
    assert_eq!(w.sandbox.order_status("ord_happy"), Some(Status::Charged));

    // The order status agrees.
    let request = World::start_request("ord_happy", "tok_visa")
        .order_status_check()
        .request(&w.config);
    let answer = w.sandbox.handle_request(&request, w.now);
    check_shape(RequestKind::OrderStatus, answer.status, &answer.body);
    let body = answer.json_body().unwrap();
    assert_eq!(
        (body["status"].clone(), body["status_id"].clone()),
        (json!("CHARGED"), json!(21))
    );
    assert_eq!(body["customer_id"], json!(ROUTING));

    // A paid order takes no new transaction.
    let again = w.start("ord_happy", "tok_visa").unwrap_err();
    assert!(
        matches!(again, StartError::Response(ResponseError::Api(e)) if e.code() == Some("INVALID_ACTION"))
    );
}

#[test]
fn auto_capture_false_authorizes_only() {
    let mut w = World::default();
    w.config = w.config.clone().with_auto_capture(Some(false));
    let mut c = w.challenge("ord_auth");
    let otp = w.sms(&c);
    assert_eq!(
        w.submit(&mut c, &otp),
        Outcome::Approved(Status::Authorized)
    );

    // The sandbox's own default applies when the client sends no auto_capture.
    let mut config = SandboxConfig::new(KEY);
    config.auto_capture = false;
    let mut w = World::new(config);
    let mut c = w.challenge("ord_auth_default");
    let otp = w.sms(&c);
    assert_eq!(
        w.submit(&mut c, &otp),
        Outcome::Approved(Status::Authorized)
    );
    assert_eq!(
        w.sandbox.order_status("ord_auth_default"),
        Some(Status::Authorized)
    );
    assert_eq!(
        c.check_status(&w.config, w.now),
        Err(Refusal::AlreadyFinal(Status::Authorized))
    );
}

#[test]
fn send_limit_reached_falls_back_to_the_bank_page() {
    let mut w = World::new(SandboxConfig::new(KEY).with_limits(2, 4));
    let mut c = w.challenge("ord_limit");
    w.later(31);
    assert_eq!(w.resend(&mut c), Outcome::OtpSent { sends_left: 0 });
    // The server said its limit; the library refuses the next resend itself.
    w.later(31);
    assert_eq!(
        c.resend(&w.config, w.now),
        Err(Refusal::SendLimitReached { limit: 2 })
    );
    assert_eq!(w.sandbox.requests_to(Endpoint::Resend), 1);

    // The cardholder gives up on SMS and finishes on the bank page.
    let url = c.go_to_bank_page(w.now).unwrap().to_owned();
    assert!(url.starts_with(w.sandbox.base_url()), "{url}");
    assert_eq!(c.next_step(w.now), NextStep::AwaitBankPage);
    let page = HttpRequest::new("POST", sandbox_target(&url)).with_body("result=success");
    let answer = w.sandbox.handle(&page, w.now);
    assert_eq!(answer.status, 200);
    assert_eq!(w.check_status(&mut c), Outcome::Approved(Status::Charged));
}

#[test]
fn send_limit_error_from_the_server_is_understood() {
    // A server that reports no counters (the resend page's own sample has none), and a
    // second tab holding a stale copy of the challenge: the server itself refuses the send
    // over its limit with 400 max_limit_exceeded.
    let mut config = SandboxConfig::new(KEY).with_limits(2, 4);
    config.report_counters = false;
    let mut w = World::new(config);
    let mut c = w.challenge("ord_limit_400");
    let mut stale = c.clone();
    w.later(31);
    // Without counters, the library counts the send itself (against its policy of 4).
    assert_eq!(w.resend(&mut c), Outcome::OtpSent { sends_left: 2 });
    assert!(w.checked.contains("resend_seed"));
    // The server's flag says no more; the library listens.
    assert_eq!(c.may_resend(w.now), Err(Refusal::ResendNotAllowed));
    assert_eq!(w.resend(&mut stale), Outcome::SendLimitReached);
    assert_eq!(stale.sends_left(), 0);
    assert!(w.checked.contains("resend_limit_exceeded"));
    assert_eq!(w.sandbox.transaction(c.txn_id()).unwrap().otp_sends, 2);
    // The OTP sent earlier still works.
    let otp = w.sms(&c);
    assert_eq!(w.submit(&mut c, &otp), Outcome::Approved(Status::Charged));
}

#[test]
fn attempts_exhausted_leaves_only_the_bank_page() {
    let mut w = World::new(SandboxConfig::new(KEY).with_limits(4, 2));
    let mut c = w.challenge("ord_tries");
    let stale = c.clone();
    let wrong = w.wrong(&c);
    assert_eq!(
        w.submit(&mut c, &wrong),
        Outcome::WrongOtp { attempts_left: 1 }
    );
    assert_eq!(w.submit(&mut c, &wrong), Outcome::AttemptLimitReached);
    assert!(w.checked.contains("submit_pending_exhausted"));
    assert!(c.may_submit(w.now).is_err());
    assert!(c.may_resend(w.now).is_err());
    assert_eq!(w.sandbox.current_otp(c.txn_id()), None);
    let url = match c.next_step(w.now) {
        NextStep::BankPage(url) => url.to_owned(),
        other => panic!("expected the bank page, got {other:?}"),
    };

    // A second tab that missed all this submits once more: the server's attempt limit
    // (400 max_limit_exceeded), which the library reads as "no tries left".
    let mut stale = stale;
    assert_eq!(w.submit(&mut stale, "123456"), Outcome::AttemptLimitReached);
    assert!(w.checked.contains("resend_limit_exceeded"));
    assert_eq!(w.sandbox.transaction(c.txn_id()).unwrap().attempts, 2);

    // The bank page fails too: the payment is declined.
    c.go_to_bank_page(w.now).unwrap();
    assert_eq!(
        w.sandbox
            .complete_bank_page(&uuid_of(&url), BankPageResult::Failure),
        Ok(Status::AuthenticationFailed)
    );
    assert_eq!(
        w.check_status(&mut c),
        Outcome::Declined(Status::AuthenticationFailed)
    );
}

fn uuid_of(url: &str) -> String {
    let path = url.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_owned()
}

/// The path and query of a URL the sandbox produced.
fn sandbox_target(url: &str) -> &str {
    let rest = url.split_once("://").unwrap().1;
    &rest[rest.find('/').unwrap()..]
}

#[test]
fn wrong_otp_as_http_400_counts_locally() {
    let mut config = SandboxConfig::new(KEY).with_limits(4, 2);
    config.wrong_otp = WrongOtp::Http400;
    let mut w = World::new(config);
    let mut c = w.challenge("ord_400");
    let wrong = w.wrong(&c);
    // The 400 carries no counters: the library counts against its own policy (4 tries)
    // until the server's attempt limit (2) answers 400 max_limit_exceeded.
    assert_eq!(
        w.submit(&mut c, &wrong),
        Outcome::WrongOtp { attempts_left: 3 }
    );
    assert!(w.checked.contains("submit_wrong_otp_400"));
    assert_eq!(
        w.submit(&mut c, &wrong),
        Outcome::WrongOtp { attempts_left: 2 }
    );
    assert_eq!(w.submit(&mut c, &wrong), Outcome::AttemptLimitReached);
    assert_eq!(
        c.may_submit(w.now),
        Err(Refusal::AttemptLimitReached { limit: 4 })
    );
    assert_eq!(w.sandbox.transaction(c.txn_id()).unwrap().attempts, 2);
}

#[test]
fn lost_submit_answer_is_settled_by_reconciliation() {
    let mut w = World::default();
    let mut c = w.challenge("ord_lost");
    w.sandbox
        .inject(Endpoint::of(RequestKind::Submit), Fault::DropResponse);
    let otp = w.sms(&c);
    let outcome = w.submit(&mut c, &otp);
    assert_eq!(outcome, Outcome::CheckStatus(Uncertainty::MaybeSent));
    // The payment went through, but the client can't know yet.
    assert_eq!(w.sandbox.order_status("ord_lost"), Some(Status::Charged));
    assert_eq!(c.next_step(w.now), NextStep::CheckStatus);
    assert_eq!(
        c.submit(&w.config, &Otp::new(&otp).unwrap(), w.now),
        Err(Refusal::CheckStatus)
    );
    assert_eq!(w.check_status(&mut c), Outcome::Approved(Status::Charged));
    // Never re-sent blindly.
    assert_eq!(w.sandbox.requests_to(Endpoint::Submit), 1);
    assert_eq!(w.sandbox.pending_faults(), 0);
    let last = w.sandbox.log().iter().find(|e| e.fault.is_some()).unwrap();
    assert_eq!(last.delivery, Delivery::Never);
}

#[test]
fn lost_wrong_otp_reconciles_back_to_the_otp_page() {
    let mut w = World::default();
    let mut c = w.challenge("ord_lost_wrong");
    w.sandbox.inject(Endpoint::Submit, Fault::DropResponse);
    let wrong = w.wrong(&c);
    assert!(matches!(w.submit(&mut c, &wrong), Outcome::CheckStatus(_)));
    // Still waiting for the OTP: the page opens again, with the lost try counted.
    assert_eq!(w.check_status(&mut c), Outcome::Pending(Status::PendingVbv));
    assert!(w.checked.contains("order_status_pending"));
    assert_eq!(c.next_step(w.now), NextStep::EnterOtp);
    assert_eq!(c.attempts_left(), 3);
    let otp = w.sms(&c);
    assert_eq!(w.submit(&mut c, &otp), Outcome::Approved(Status::Charged));
}

#[test]
fn internal_error_on_submit_is_reconciled() {
    // Not acted on: the order is still pending and the OTP can be sent again.
    let mut w = World::default();
    let mut c = w.challenge("ord_500");
    w.sandbox.inject(Endpoint::Submit, Fault::InternalError);
    let otp = w.sms(&c);
    assert!(matches!(
        w.submit(&mut c, &otp),
        Outcome::CheckStatus(Uncertainty::Response(ResponseError::Api(e))) if e.http_status() == 500
    ));
    assert!(w.checked.contains("error_internal_500"));
    assert_eq!(w.check_status(&mut c), Outcome::Pending(Status::PendingVbv));
    assert_eq!(w.submit(&mut c, &otp), Outcome::Approved(Status::Charged));

    // Acted on, then 500: the order status shows the payment went through.
    let mut c = w.challenge("ord_500_applied");
    w.sandbox
        .inject(Endpoint::Submit, Fault::InternalErrorAfterApply);
    let otp = w.sms(&c);
    assert!(matches!(w.submit(&mut c, &otp), Outcome::CheckStatus(_)));
    assert_eq!(w.check_status(&mut c), Outcome::Approved(Status::Charged));
}

#[test]
fn duplicate_and_slow_resends_are_reconciled_and_counted() {
    let mut w = World::default();
    let mut c = w.challenge("ord_dup");
    w.later(31);
    w.sandbox.inject(Endpoint::Resend, Fault::Duplicate);
    assert!(matches!(w.resend(&mut c), Outcome::CheckStatus(_)));
    assert!(w.checked.contains("error_duplicate_request"));
    assert_eq!(w.check_status(&mut c), Outcome::Pending(Status::PendingVbv));
    // The library counted the unknown send; the sandbox did not send it.
    assert_eq!(c.otp_sends(), 2);
    assert_eq!(w.sandbox.transaction(c.txn_id()).unwrap().otp_sends, 1);

    // Slow beyond the client's timeout: sent, but the client gives up waiting.
    w.later(31);
    w.sandbox
        .inject(Endpoint::Resend, Fault::Slow(StdDuration::from_secs(30)));
    assert_eq!(
        w.resend(&mut c),
        Outcome::CheckStatus(Uncertainty::MaybeSent)
    );
    assert_eq!(w.sandbox.transaction(c.txn_id()).unwrap().otp_sends, 2);
    assert_eq!(w.check_status(&mut c), Outcome::Pending(Status::PendingVbv));

    // Slow within the timeout: just late.
    w.later(31);
    w.sandbox
        .inject(Endpoint::Resend, Fault::Slow(StdDuration::from_millis(200)));
    assert!(matches!(w.resend(&mut c), Outcome::OtpSent { .. }));
    let otp = w.sms(&c);
    assert_eq!(w.submit(&mut c, &otp), Outcome::Approved(Status::Charged));
}

#[test]
fn lost_request_changes_nothing() {
    let mut w = World::default();
    let mut c = w.challenge("ord_lost_request");
    w.sandbox.inject(Endpoint::Submit, Fault::DropRequest);
    let otp = w.sms(&c);
    assert!(matches!(w.submit(&mut c, &otp), Outcome::CheckStatus(_)));
    assert_eq!(w.sandbox.transaction(c.txn_id()).unwrap().attempts, 0);
    assert_eq!(w.check_status(&mut c), Outcome::Pending(Status::PendingVbv));
    assert_eq!(w.submit(&mut c, &otp), Outcome::Approved(Status::Charged));
}

#[test]
fn three_ds_failover_card_redirects_then_settles_by_status() {
    let mut w = World::new(SandboxConfig::new(KEY).with_card("tok_3ds", CardFlow::ThreeDsFailover));
    let (url, method) = match w.start("ord_3ds", "tok_3ds").unwrap() {
        Started::Redirect { url, method } => (url, method),
        other => panic!("expected a redirect, got {other:?}"),
    };
    assert!(w.checked.contains("start_3ds_failover"));
    assert_eq!(method, "GET");
    let txn = w.sandbox.latest_transaction("ord_3ds").unwrap();
    assert!(txn.three_ds);
    assert_eq!(w.sandbox.current_otp(&txn.id), None);
    assert!(url.ends_with(&txn.txn_uuid), "{url}");

    // The browser opens the page, the cardholder authenticates.
    let page = w
        .sandbox
        .handle(&HttpRequest::new("GET", sandbox_target(&url)), w.now);
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let done = w
        .sandbox
        .handle(&HttpRequest::new("POST", sandbox_target(&url)), w.now);
    assert_eq!(done.status, 200);

    let start = World::start_request("ord_3ds", "tok_3ds");
    let answer = w
        .sandbox
        .handle_request(&start.order_status_check().request(&w.config), w.now);
    check_shape(RequestKind::OrderStatus, answer.status, &answer.body);
    assert_eq!(answer.json_body().unwrap()["status"], json!("CHARGED"));

    // No OTP calls on a 3DS transaction.
    let resend = format!(
        "/v2/txns/{}/authenticate/{}/resend",
        txn.id, txn.challenge_id
    );
    let (status, body) = w.raw(
        RequestKind::Resend,
        &HttpRequest::new("POST", &resend)
            .with_header("authorization", &auth_header(&w))
            .with_header("x-routing-id", ROUTING),
    );
    assert_eq!(
        (status, body["error_info"]["code"].clone()),
        (400, json!("INVALID_ACTION"))
    );
}

fn auth_header(w: &World) -> String {
    World::start_request("o", "t")
        .request(&w.config)
        .header("authorization")
        .unwrap()
        .to_owned()
}

#[test]
fn a_start_without_auth_type_otp_is_3ds() {
    let mut w = World::default();
    let body =
        "order_id=ord_plain&merchant_id=acme&payment_method_type=CARD&card_token=tok&format=json";
    let request = HttpRequest::new("POST", "/txns")
        .with_header("authorization", &auth_header(&w))
        .with_header("x-routing-id", ROUTING)
        .with_body(body);
    let (status, body) = w.raw(RequestKind::Start, &request);
    assert_eq!(status, 200);
    assert_eq!(body["payment"]["authentication"]["method"], json!("GET"));
}

#[test]
fn bad_api_key_is_401_access_denied() {
    let mut w = World::default();
    w.config = Config::new(w.sandbox.base_url(), "sk_wrong").unwrap();
    let err = w.start("ord_key", "tok_visa").unwrap_err();
    match err {
        StartError::Response(ResponseError::Api(e)) => {
            assert_eq!((e.http_status(), e.code()), (401, Some("access_denied")))
        }
        other => panic!("expected 401, got {other:?}"),
    }
    assert!(w.checked.contains("error_access_denied_401"));
    assert_eq!(
        w.sandbox.order_status("ord_key"),
        None,
        "nothing was created"
    );

    // A challenge whose calls use a wrong key: refused, nothing changes.
    w.config = Config::new(w.sandbox.base_url(), KEY).unwrap();
    let mut c = w.challenge("ord_key");
    w.config = Config::new(w.sandbox.base_url(), "sk_wrong").unwrap();
    let otp = w.sms(&c);
    let outcome = w.submit(&mut c, &otp);
    assert_eq!(api_code(&outcome), (401, Some("access_denied".into())));
    assert_eq!(c.attempts_left(), 4);
    w.config = Config::new(w.sandbox.base_url(), KEY).unwrap();
    assert_eq!(w.submit(&mut c, &otp), Outcome::Approved(Status::Charged));
}

#[test]
fn basic_auth_is_checked_exactly() {
    let mut w = World::new(SandboxConfig::new("k1"));
    let target = "/orders/none";
    let status_with = |w: &mut World, auth: Option<&str>| {
        let mut r = HttpRequest::new("GET", target).with_header("x-routing-id", ROUTING);
        if let Some(a) = auth {
            r = r.with_header("Authorization", a);
        }
        w.raw(RequestKind::OrderStatus, &r).0
    };
    // base64("k1:") is "azE6": the right header reaches the handler (unknown order: 400).
    assert_eq!(status_with(&mut w, Some("Basic azE6")), 400);
    for wrong in [
        None,
        Some("basic azE6"),     // scheme case
        Some("Basic azE6eA=="), // "k1:x": a password
        Some("Basic azE="),     // "k1": no colon
        Some("Bearer k1"),
        Some("Basic  azE6"),
        Some(""),
    ] {
        assert_eq!(status_with(&mut w, wrong), 401, "{wrong:?}");
    }
}

/// The log is a ring of the most recent requests; the per-endpoint counts never forget.
#[test]
fn the_request_log_keeps_only_the_most_recent_requests() {
    let now = OffsetDateTime::UNIX_EPOCH;
    let get = HttpRequest::new("GET", "/orders/none");
    for (capacity, requests, numbers_kept) in [
        (3, 5, vec![3, 4, 5]),
        (3, 2, vec![1, 2]),
        (1, 4, vec![4]),
        (0, 4, vec![]),
    ] {
        let mut config = SandboxConfig::new(KEY);
        config.log_capacity = capacity;
        let mut sandbox = Sandbox::new(config);
        for _ in 0..requests {
            sandbox.handle(&get, now);
        }
        let kept: Vec<u64> = sandbox.log().iter().map(|e| e.number).collect();
        assert_eq!(kept, numbers_kept, "capacity {capacity}");
        assert_eq!(sandbox.requests_to(Endpoint::OrderStatus), requests);
    }
    // The default: 1,024 entries, however long the server runs.
    let mut sandbox = Sandbox::new(SandboxConfig::new(KEY));
    assert_eq!(
        sandbox.config().log_capacity,
        SandboxConfig::DEFAULT_LOG_CAPACITY
    );
    for _ in 0..3000 {
        sandbox.handle(&get, now);
    }
    assert_eq!(sandbox.log().len(), 1024);
    assert_eq!(sandbox.log().front().map(|e| e.number), Some(3000 - 1023));
    assert_eq!(sandbox.requests_to(Endpoint::OrderStatus), 3000);
}

/// One payment through the world: `POST /txns`, then (when `pay`) the right OTP.
fn one_payment(w: &mut World, order: &str, pay: bool) {
    let mut c = w.challenge(order);
    if pay {
        let otp = w.sms(&c);
        assert!(matches!(w.submit(&mut c, &otp), Outcome::Approved(_)));
    }
}

#[test]
fn a_long_running_sandbox_keeps_a_bounded_number_of_orders() {
    let mut config = SandboxConfig::new(KEY);
    config.order_capacity = 50;
    let mut w = World::new(config);
    // 10 abandoned at the OTP page, then 200 paid: the paid ones go first.
    for i in 0..10 {
        one_payment(&mut w, &format!("abandoned_{i}"), false);
    }
    for i in 0..200 {
        one_payment(&mut w, &format!("paid_{i}"), true);
        assert!(w.sandbox.order_count() <= 50);
        assert!(w.sandbox.transaction_count() <= 50);
        assert!(w.sandbox.queued_webhooks() <= 50 * 2);
    }
    assert_eq!(w.sandbox.order_count(), 50);
    assert_eq!(w.sandbox.evicted_orders(), 160);
    for i in 0..10 {
        let order = format!("abandoned_{i}");
        assert_eq!(w.sandbox.order_status(&order), Some(Status::PendingVbv));
    }
    assert_eq!(w.sandbox.order_status("paid_159"), None, "let go");
    assert_eq!(w.sandbox.order_status("paid_160"), Some(Status::Charged));
    assert_eq!(w.sandbox.pending_webhooks("paid_159"), 0);
    // An order let go answers as an unknown one.
    let (status, body) = w.raw(
        RequestKind::OrderStatus,
        &HttpRequest::new("GET", "/orders/paid_0")
            .with_header("authorization", &auth_header(&w))
            .with_header("x-routing-id", ROUTING),
    );
    assert_eq!((status, body["status"].as_str()), (400, Some("NOT_FOUND")));
    // 60 more abandoned: the 40 paid ones left go, then the oldest abandoned ones.
    for i in 10..70 {
        one_payment(&mut w, &format!("abandoned_{i}"), false);
    }
    assert_eq!(w.sandbox.order_count(), 50);
    assert_eq!(w.sandbox.order_status("paid_199"), None);
    assert_eq!(w.sandbox.order_status("abandoned_19"), None);
    assert_eq!(
        w.sandbox.order_status("abandoned_20"),
        Some(Status::PendingVbv)
    );
    // The newest abandoned payment can still be finished.
    let order = "abandoned_69";
    let txn = w.sandbox.latest_transaction(order).unwrap();
    assert!(w.sandbox.current_otp(&txn.id).is_some());
    // The default keeps 1,024 orders.
    assert_eq!(
        SandboxConfig::new(KEY).order_capacity,
        SandboxConfig::DEFAULT_ORDER_CAPACITY
    );
    assert_eq!(SandboxConfig::DEFAULT_ORDER_CAPACITY, 1024);
}

#[test]
fn undrained_webhook_queues_are_capped() {
    let mut config = SandboxConfig::new(KEY).with_card("tok_declined", CardFlow::DeclineAfterOtp);
    config.webhook_capacity = 3;
    let mut w = World::new(config);
    // One order, five declined attempts: two events each (TXN_CREATED, ORDER_FAILED).
    for _ in 0..5 {
        let Started::Challenge(mut c) = w.start("ord_many", "tok_declined").unwrap() else {
            panic!("expected a challenge")
        };
        let otp = w.sms(&c);
        assert!(w.submit(&mut c, &otp).is_terminal());
    }
    assert_eq!(w.sandbox.pending_webhooks("ord_many"), 3);
    assert_eq!(w.sandbox.dropped_webhooks(), 7);
    let kept = w.sandbox.take_webhooks("ord_many");
    let names: Vec<String> = kept
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            format!(
                "{} {}",
                body["event_name"], body["content"]["order"]["txn_id"]
            )
        })
        .collect();
    // The newest three are kept.
    assert_eq!(
        names,
        [
            r#""ORDER_FAILED" "acme-ord_many-4""#,
            r#""TXN_CREATED" "acme-ord_many-5""#,
            r#""ORDER_FAILED" "acme-ord_many-5""#,
        ]
    );
    assert_eq!(w.sandbox.queued_webhooks(), 0);
}

#[test]
fn missing_routing_id_is_refused() {
    let mut w = World::default();
    let request = World::start_request("ord_route", "tok_visa").request(&w.config);
    let (status, body) = w.raw(
        RequestKind::Start,
        &without_header(&request, "x-routing-id"),
    );
    assert_eq!(status, 400);
    assert_eq!(body["error_code"], json!("MISSING_MANDATORY_PARAMETER"));
    assert_eq!(
        body["error_info"]["fields"][0]["field_name"],
        json!("x-routing-id")
    );
    assert_eq!(w.sandbox.order_status("ord_route"), None);

    // What the library makes of it, on a challenge call.
    let mut c = w.challenge("ord_route");
    let out = c.check_status(&w.config, w.now).unwrap();
    let answer = w
        .sandbox
        .handle(&without_header(&out.request, "x-routing-id"), w.now);
    let outcome = deliver(
        &mut w.checked,
        &mut c,
        RequestKind::OrderStatus,
        out.token,
        answer.status,
        &answer.body,
        w.now,
    );
    assert_eq!(
        api_code(&outcome),
        (400, Some("MISSING_MANDATORY_PARAMETER".into()))
    );
    assert_eq!(c.next_step(w.now), NextStep::EnterOtp);

    // A sandbox that does not require it.
    let mut config = SandboxConfig::new(KEY);
    config.require_routing_id = false;
    let mut w = World::new(config);
    let (status, _) = w.raw(
        RequestKind::Start,
        &without_header(&request, "x-routing-id"),
    );
    assert_eq!(status, 200);
}

#[test]
fn unknown_transaction_and_order() {
    let mut w = World::default();
    // A challenge for a transaction this sandbox never saw (from the fixture).
    let started = Started::from_response(
        ROUTING,
        Default::default(),
        200,
        &common::fixture("start_direct_otp"),
        w.now,
    )
    .unwrap();
    let Started::Challenge(c) = started else {
        panic!("expected a challenge")
    };
    let mut c = *c;
    w.later(31);
    let outcome = w.resend(&mut c);
    assert_eq!(api_code(&outcome), (404, Some("RESOURCE_NOT_FOUND".into())));
    assert_eq!(c.next_step(w.now), NextStep::EnterOtp);
    let outcome = w.submit(&mut c, "123456");
    assert_eq!(api_code(&outcome), (404, Some("RESOURCE_NOT_FOUND".into())));
    let outcome = w.check_status(&mut c);
    assert_eq!(api_code(&outcome), (400, Some("RESOURCE_NOT_FOUND".into())));
    assert!(w.checked.contains("order_not_found"));
    assert!(w.checked.contains("error_not_found_404"));

    // A challenge id that is not the transaction's.
    let mut c = w.challenge("ord_known");
    let txn = w.sandbox.transaction(c.txn_id()).unwrap();
    let target = format!("/v2/txns/{}/authenticate/ch_other/resend", txn.id);
    let request = HttpRequest::new("POST", &target)
        .with_header("authorization", &auth_header(&w))
        .with_header("x-routing-id", ROUTING);
    let (status, body) = w.raw(RequestKind::Resend, &request);
    assert_eq!(
        (status, body["error_info"]["code"].clone()),
        (400, json!("INVALID_INPUT"))
    );
    // An unknown route.
    let answer = w
        .sandbox
        .handle(&HttpRequest::new("GET", "/v3/nothing"), w.now);
    assert_eq!(answer.status, 404);
    let otp = w.sms(&c);
    assert_eq!(w.submit(&mut c, &otp), Outcome::Approved(Status::Charged));
}

#[test]
fn slow_authorization_and_decline_after_otp() {
    let config = SandboxConfig::new(KEY)
        .with_card("tok_slow", CardFlow::SlowAuthorization)
        .with_card("tok_decline", CardFlow::DeclineAfterOtp);
    let mut w = World::new(config);
    let Started::Challenge(mut c) = w.start("ord_slow", "tok_slow").unwrap() else {
        panic!("expected a challenge")
    };
    let otp = w.sms(&c);
    assert_eq!(
        w.submit(&mut c, &otp),
        Outcome::Pending(Status::Authorizing)
    );
    assert!(w.checked.contains("submit_authorizing"));
    assert_eq!(c.next_step(w.now), NextStep::CheckStatus);
    assert_eq!(w.check_status(&mut c), Outcome::Approved(Status::Charged));

    let Started::Challenge(mut c) = w.start("ord_decline", "tok_decline").unwrap() else {
        panic!("expected a challenge")
    };
    let otp = w.sms(&c);
    assert_eq!(
        w.submit(&mut c, &otp),
        Outcome::Declined(Status::AuthorizationFailed)
    );
    assert!(w.checked.contains("submit_authentication_failed"));
    // A new try on the same order is a new transaction, with a new OTP.
    let mut c2 = w.challenge("ord_decline");
    assert_ne!(c2.txn_id(), c.txn_id());
    let otp = w.sms(&c2);
    assert_eq!(w.submit(&mut c2, &otp), Outcome::Approved(Status::Charged));
    let latest = w.sandbox.latest_transaction("ord_decline").unwrap();
    assert_eq!(latest.txn_id, "acme-ord_decline-2");
}

#[test]
fn known_orders_only() {
    let mut config = SandboxConfig::new(KEY);
    config.orders = Orders::KnownOnly;
    let mut w = World::new(config);
    let err = w.start("ord_unknown", "tok_visa").unwrap_err();
    assert!(matches!(err, StartError::Response(ResponseError::Api(e)) if e.http_status() == 400));
    w.sandbox.add_order("ord_known", 250.5);
    assert_eq!(w.sandbox.order_status("ord_known"), Some(Status::New));
    let mut c = w.challenge("ord_known");
    let otp = w.sms(&c);
    assert_eq!(w.submit(&mut c, &otp), Outcome::Approved(Status::Charged));
    let request = World::start_request("ord_known", "tok_visa")
        .order_status_check()
        .request(&w.config);
    let body = w
        .sandbox
        .handle_request(&request, w.now)
        .json_body()
        .unwrap();
    assert_eq!(body["amount"], json!(250.5));
}

#[test]
fn fixed_and_seeded_otps_are_deterministic() {
    let mut w = World::new(SandboxConfig::new(KEY).with_otp(OtpSource::Fixed("4242".into())));
    let c = w.challenge("ord_fixed");
    assert_eq!(w.sms(&c), "4242");

    // Two sandboxes with the same seeds answer the same requests with the same bytes.
    let run = || {
        let mut w = World::new(SandboxConfig::new(KEY).with_otp(OtpSource::Seeded(99)));
        let mut c = w.challenge("ord_seed");
        w.later(31);
        w.resend(&mut c);
        let request = World::start_request("ord_seed", "tok_visa")
            .order_status_check()
            .request(&w.config);
        let answer = w.sandbox.handle_request(&request, w.now);
        (w.sms(&c), answer.body)
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert_eq!(a.0.len(), 6);
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let mut w = World::new(SandboxConfig::new(KEY).with_otp(OtpSource::Fixed("987654".into())));
    let _c = w.challenge("ord_debug");
    let shown = format!("{:?} {:?}", w.sandbox, w.sandbox.config());
    assert!(!shown.contains(KEY), "{shown}");
    assert!(!shown.contains("987654"), "{shown}");
}

#[test]
fn bad_input_never_panics() {
    let mut w = World::default();
    let auth = auth_header(&w);
    for (method, target, body) in [
        ("POST", "/txns", &b""[..]),
        ("POST", "/txns", b"order_id=%ZZ&&&=&merchant_id"),
        ("POST", "/txns", b"\xff\xfe"),
        ("POST", "/v2/txns//authenticate", b""),
        ("POST", "/v2/txns/x/authenticate", b"challenge_id=a"),
        ("POST", "/v2/txns/x/authenticate/y/resend?z", b""),
        ("GET", "/orders/", b""),
        ("GET", "", b""),
        ("DELETE", "/txns", b""),
        ("GET", "/v2/pay/start/acme/nope", b""),
        ("POST", "/v2/pay/start/acme/nope", b"result=success"),
    ] {
        let request = HttpRequest::new(method, target)
            .with_header("authorization", &auth)
            .with_header("x-routing-id", ROUTING)
            .with_body(body);
        let answer = w.sandbox.handle(&request, w.now);
        assert!(
            (400..=404).contains(&answer.status),
            "{method} {target}: {}",
            answer.status
        );
    }
}

#[test]
fn the_shape_check_catches_drift() {
    let fixture = json!({"a": "x", "b": {"c": 1, "d": [ {"e": true} ]}, "n": null});
    assert!(shape_errors(&fixture, &fixture).is_empty());
    let drifted = json!({"b": {"c": "1", "d": [ {"e": true}, {} ]}, "n": 3, "extra": 1});
    let errors = shape_errors(&fixture, &drifted);
    assert_eq!(
        errors,
        vec![
            "$.a: missing",
            "$.b.c: fixture has a number, sandbox sent a string",
            "$.b.d[1].e: missing",
        ]
    );
}

#[test]
fn every_documented_shape_is_produced_and_read_alike() {
    // One world walks through every kind of answer; each is checked against its fixture.
    let mut w = World::new(
        SandboxConfig::new(KEY)
            .with_limits(2, 2)
            .with_card("tok_3ds", CardFlow::ThreeDsFailover)
            .with_card("tok_slow", CardFlow::SlowAuthorization)
            .with_card("tok_decline", CardFlow::DeclineAfterOtp),
    );
    let mut c = w.challenge("ord_a");
    w.later(31);
    w.resend(&mut c);
    w.later(31);
    let out = c.resend(&w.config, w.now);
    assert!(out.is_err());
    let wrong = w.wrong(&c);
    w.submit(&mut c, &wrong);
    w.check_status(&mut c);
    w.submit(&mut c, &wrong);
    let mut c = w.challenge("ord_b");
    let otp = w.sms(&c);
    w.submit(&mut c, &otp);
    w.config = w.config.clone().with_auto_capture(Some(false));
    let mut c = w.challenge("ord_c");
    let otp = w.sms(&c);
    w.submit(&mut c, &otp);
    w.start("ord_d", "tok_3ds").unwrap();
    let Started::Challenge(mut c) = w.start("ord_e", "tok_slow").unwrap() else {
        panic!()
    };
    let otp = w.sms(&c);
    w.submit(&mut c, &otp);
    w.check_status(&mut c);
    let Started::Challenge(mut c) = w.start("ord_f", "tok_decline").unwrap() else {
        panic!()
    };
    let otp = w.sms(&c);
    w.submit(&mut c, &otp);
    let mut c = w.challenge("ord_g");
    for fault in [Fault::InternalError, Fault::Duplicate] {
        w.sandbox.inject(Endpoint::Submit, fault);
        w.submit(&mut c, &wrong);
        w.check_status(&mut c);
    }
    // Errors: send limit, wrong OTP as 400, bad key, missing routing id, unknown ids.
    let mut limit = World::new({
        let mut cfg = SandboxConfig::new(KEY).with_limits(2, 4);
        cfg.report_counters = false;
        cfg.wrong_otp = WrongOtp::Http400;
        cfg
    });
    let mut c = limit.challenge("ord_h");
    let mut stale = c.clone();
    limit.later(31);
    limit.resend(&mut c);
    limit.resend(&mut stale);
    limit.submit(&mut c, "0000");
    w.checked.extend(limit.checked);
    let request = World::start_request("ord_i", "tok_visa").request(&w.config);
    w.raw(
        RequestKind::Start,
        &without_header(&request, "x-routing-id"),
    );
    w.raw(
        RequestKind::Start,
        &without_header(&request, "authorization"),
    );
    w.raw(
        RequestKind::OrderStatus,
        &HttpRequest::from(
            &World::start_request("ord_none", "t")
                .order_status_check()
                .request(&w.config),
        ),
    );
    let submit = HttpRequest::new("POST", "/v2/txns/txn_none/authenticate")
        .with_header("authorization", &auth_header(&w))
        .with_header("x-routing-id", ROUTING);
    w.raw(RequestKind::Submit, &submit);

    let all: BTreeSet<&str> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
        .map(|n| &*Box::leak(n.into_boxed_str()))
        .collect();
    let never: BTreeSet<&str> = all.difference(&w.checked).copied().collect();
    // The sandbox never answers 403 (no merchant is forbidden) or JUSPAY_DECLINED.
    assert_eq!(
        never,
        BTreeSet::from(["error_forbidden_403", "submit_juspay_declined"]),
        "fixtures no sandbox answer was checked against"
    );
}

#[test]
fn sandbox_errors_for_direct_calls() {
    let mut w = World::default();
    assert_eq!(
        w.sandbox
            .complete_bank_page("nope", BankPageResult::Success),
        Err(SandboxError::UnknownTransaction("nope".into()))
    );
    let mut c = w.challenge("ord_direct");
    let otp = w.sms(&c);
    w.submit(&mut c, &otp);
    assert_eq!(
        w.sandbox
            .complete_bank_page(c.txn_id(), BankPageResult::Success),
        Err(SandboxError::NotAwaitingAuthentication(Status::Charged))
    );
}
