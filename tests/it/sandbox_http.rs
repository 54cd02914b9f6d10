//! The library against the sandbox served over loopback HTTP, with a plain ureq client
//! (proxies off, 4xx bodies kept): the same checks as `tests/it/sandbox.rs`, over real
//! sockets, with faults that really close connections or delay answers.

use crate::common;
use crate::sandbox_support;

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use direct_otp::sandbox::{Endpoint, Fault, OtpSource, Sandbox, SandboxConfig, SandboxServer};
use direct_otp::{
    Challenge, Config, Otp, Outcome, PaymentSource, Refusal, Request, SendFailure, StartRequest,
    Started, Status, Uncertainty,
};
use sandbox_support::{deliver, read_start};
use time::{Duration, OffsetDateTime};

const KEY: &str = "sk_test_SECRETKEY";
const ROUTING: &str = "customer_1122";

fn agent(timeout: StdDuration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// One exchange: the status and body, or how sending failed.
fn send(agent: &ureq::Agent, request: &Request) -> Result<(u16, Vec<u8>), ureq::Error> {
    let mut builder = http::Request::builder()
        .method(request.method().as_str())
        .uri(request.url());
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(request.body().to_vec())
        .expect("a valid request");
    let mut response = agent.run(request)?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()?;
    Ok((status, body))
}

fn failure_of(e: &ureq::Error) -> SendFailure {
    match e {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => SendFailure::NotSent,
        _ => SendFailure::MaybeSent,
    }
}

/// The library, a sandbox server, a ureq agent, and a virtual clock for the library.
struct Client {
    server: SandboxServer,
    agent: ureq::Agent,
    config: Config,
    now: OffsetDateTime,
    checked: BTreeSet<&'static str>,
}

impl Client {
    fn new(config: SandboxConfig) -> Client {
        let server = SandboxServer::start(Sandbox::new(config)).unwrap();
        let config = Config::new(server.base_url(), KEY).unwrap();
        Client {
            server,
            agent: agent(StdDuration::from_secs(10)),
            config,
            now: common::T0,
            checked: BTreeSet::new(),
        }
    }

    fn start(&mut self, order: &str) -> Challenge {
        let source = PaymentSource::Token {
            card_token: "tok_visa".into(),
            cvv: None,
        };
        let start = StartRequest::new(order, "acme", ROUTING, source).unwrap();
        let (status, body) = send(&self.agent, &start.request(&self.config)).unwrap();
        match read_start(&mut self.checked, ROUTING, status, &body, self.now).unwrap() {
            Started::Challenge(c) => *c,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    fn run(
        &mut self,
        c: &mut Challenge,
        command: Result<direct_otp::Outgoing, Refusal>,
    ) -> Outcome {
        let out = command.expect("the library refused the command");
        match send(&self.agent, &out.request) {
            Ok((status, body)) => deliver(
                &mut self.checked,
                c,
                out.request.kind(),
                out.token,
                status,
                &body,
                self.now,
            ),
            Err(e) => c
                .handle_send_failure(out.token, failure_of(&e), self.now)
                .unwrap(),
        }
    }

    fn sms(&self, c: &Challenge) -> String {
        self.server
            .sandbox()
            .current_otp(c.txn_id())
            .unwrap()
            .to_owned()
    }
}

#[test]
fn checkout_over_loopback_http() {
    let mut client = Client::new(SandboxConfig::new(KEY).with_otp(OtpSource::Seeded(3)));
    let mut c = client.start("ord_http");
    let first = client.sms(&c);

    client.now += Duration::seconds(31);
    let command = c.resend(&client.config, client.now);
    assert_eq!(
        client.run(&mut c, command),
        Outcome::OtpSent { sends_left: 2 }
    );
    let second = client.sms(&c);
    assert_ne!(first, second);

    let command = c.submit(&client.config, &Otp::new(&first).unwrap(), client.now);
    assert_eq!(
        client.run(&mut c, command),
        Outcome::WrongOtp { attempts_left: 3 }
    );
    let command = c.submit(&client.config, &Otp::new(&second).unwrap(), client.now);
    assert_eq!(
        client.run(&mut c, command),
        Outcome::Approved(Status::Charged)
    );
    assert!(client.checked.contains("submit_charged"));
    assert!(client.checked.contains("submit_pending_wrong_otp"));
    assert_eq!(client.server.sandbox().log().len(), 4);
}

#[test]
fn dropped_submit_answer_over_http_is_reconciled() {
    let mut client = Client::new(SandboxConfig::new(KEY));
    let mut c = client.start("ord_http_lost");
    client
        .server
        .sandbox()
        .inject(Endpoint::Submit, Fault::DropResponse);
    let otp = client.sms(&c);
    let command = c.submit(&client.config, &Otp::new(&otp).unwrap(), client.now);
    // The connection closes without an answer; the payment went through.
    assert_eq!(
        client.run(&mut c, command),
        Outcome::CheckStatus(Uncertainty::MaybeSent)
    );
    assert_eq!(
        client.server.sandbox().order_status("ord_http_lost"),
        Some(Status::Charged)
    );
    let command = c.check_status(&client.config, client.now);
    assert_eq!(
        client.run(&mut c, command),
        Outcome::Approved(Status::Charged)
    );
    assert_eq!(client.server.sandbox().requests_to(Endpoint::Submit), 1);
}

#[test]
fn slow_answers_and_the_bank_page_over_http() {
    let mut client = Client::new(SandboxConfig::new(KEY).with_limits(4, 1));
    let mut c = client.start("ord_http_slow");

    // A little late: still answered.
    client.server.sandbox().inject(
        Endpoint::OrderStatus,
        Fault::Slow(StdDuration::from_millis(50)),
    );
    let command = c.check_status(&client.config, client.now);
    assert_eq!(
        client.run(&mut c, command),
        Outcome::Pending(Status::PendingVbv)
    );

    // Later than the client waits: the submit may have happened.
    client.agent = agent(StdDuration::from_millis(300));
    client
        .server
        .sandbox()
        .inject(Endpoint::Submit, Fault::Slow(StdDuration::from_secs(5)));
    let command = c.submit(&client.config, &Otp::new("000000").unwrap(), client.now);
    assert_eq!(
        client.run(&mut c, command),
        Outcome::CheckStatus(Uncertainty::MaybeSent)
    );
    client.agent = agent(StdDuration::from_secs(10));
    let command = c.check_status(&client.config, client.now);
    assert_eq!(
        client.run(&mut c, command),
        Outcome::Pending(Status::PendingVbv)
    );
    // That wrong OTP used the only try; the library learns it from the server's 400.
    let command = c.submit(&client.config, &Otp::new("000000").unwrap(), client.now);
    assert_eq!(client.run(&mut c, command), Outcome::AttemptLimitReached);
    assert!(c.may_submit(client.now).is_err());
    let url = c.go_to_bank_page(client.now).unwrap().to_owned();

    // The browser's side: the page, then the cardholder finishes.
    let page = client.agent.get(&url).call().unwrap();
    assert_eq!(page.status(), 200);
    let done = client
        .agent
        .post(&url)
        .content_type("application/x-www-form-urlencoded")
        .send("result=success")
        .unwrap();
    assert_eq!(done.status(), 200);
    let command = c.check_status(&client.config, client.now);
    assert_eq!(
        client.run(&mut c, command),
        Outcome::Approved(Status::Charged)
    );
}

#[test]
fn dropping_the_server_stops_it_and_cuts_slow_answers_short() {
    let server = SandboxServer::start(Sandbox::new(SandboxConfig::new(KEY))).unwrap();
    let addr = server.addr();
    let config = Config::new(server.base_url(), KEY).unwrap();
    server.sandbox().inject(
        Endpoint::OrderStatus,
        Fault::Slow(StdDuration::from_secs(60)),
    );
    let source = PaymentSource::Token {
        card_token: "tok".into(),
        cvv: None,
    };
    let request = StartRequest::new("ord_stop", "acme", ROUTING, source)
        .unwrap()
        .order_status_check()
        .request(&config);
    let waiting = std::thread::spawn(move || send(&agent(StdDuration::from_secs(30)), &request));
    // Wait until the request has reached the model (bounded, so a broken server fails).
    for _ in 0..500 {
        if !server.sandbox().log().is_empty() {
            break;
        }
        std::thread::sleep(StdDuration::from_millis(10));
    }
    assert_eq!(server.sandbox().log().len(), 1);
    drop(server);
    // The client saw the connection close, not its own 30 s timeout.
    let err = waiting.join().unwrap().unwrap_err();
    assert!(!matches!(err, ureq::Error::Timeout(_)), "{err:?}");
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

/// A burst of 1,000 clients connecting at the same moment, as a load test or a busy CI
/// machine makes: every connection is accepted and answered, none is reset or refused.
#[test]
fn a_burst_of_a_thousand_connections_is_answered_without_a_reset() {
    use std::io::{Read, Write};
    use std::sync::{Arc, Barrier};

    const CLIENTS: usize = 1000;
    let server = SandboxServer::start(Sandbox::new(SandboxConfig::new(KEY))).unwrap();
    let addr = server.addr();
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || -> std::io::Result<Vec<u8>> {
                    barrier.wait();
                    let mut stream = std::net::TcpStream::connect(addr)?;
                    stream.set_read_timeout(Some(StdDuration::from_secs(60)))?;
                    write!(
                        stream,
                        "GET /orders/burst_{i} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
                    )?;
                    let mut answer = Vec::new();
                    stream.read_to_end(&mut answer)?;
                    Ok(answer)
                })
                .expect("a client thread")
        })
        .collect();
    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    for client in clients {
        match client.join().expect("a client thread") {
            // Unauthenticated: 401 with the access-denied envelope, as any real answer.
            Ok(answer) if answer.starts_with(b"HTTP/1.1 401 ") => {}
            Ok(answer) => {
                let head = String::from_utf8_lossy(&answer[..answer.len().min(20)]).into_owned();
                *failures.entry(format!("answer {head:?}")).or_default() += 1;
            }
            Err(e) => *failures.entry(format!("{:?}", e.kind())).or_default() += 1,
        }
    }
    assert!(
        failures.is_empty(),
        "of {CLIENTS} connections: {failures:?}"
    );
    assert_eq!(server.sandbox().requests_to(Endpoint::OrderStatus), CLIENTS);
}
