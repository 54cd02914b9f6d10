//! The sandbox server delivering its webhooks to a loopback URL: payments over HTTP through
//! the blocking driver, and a tiny receiver (a std TCP listener reading one request per
//! connection) that records what arrives and answers scripted statuses.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use direct_otp::driver::{Command, Driver};
use direct_otp::sandbox::{Sandbox, SandboxConfig, SandboxServer, WebhookDeliveries, WebhookFault};
use direct_otp::store::MemoryStore;
use direct_otp::transport::UreqTransport;
use direct_otp::{Config, Otp, PaymentSource, StartRequest, WebhookCredentials};
use serde_json::Value;

const KEY: &str = "sk_test_webhooks";
const USER: &str = "shop_hooks";
const PASSWORD: &str = "hook_password_1";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    target: String,
    authorization: Option<String>,
    body: Vec<u8>,
    at: Instant,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// `EVENT_NAME order_id`.
    fn event(&self) -> String {
        let v = self.json();
        let order = v["content"]["order"]["order_id"].as_str().unwrap_or("?");
        format!("{} {order}", v["event_name"].as_str().unwrap_or("?"))
    }
}

/// A loopback HTTP receiver: answers the scripted statuses in turn, then 200.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start(script: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/webhooks/juspay?shop=1",
            listener.local_addr().unwrap()
        );
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut script: VecDeque<u16> = script.iter().copied().collect();
        let (into, stopping) = (Arc::clone(&got), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Some(request) = read_request(&stream) {
                    into.lock().unwrap().push(request);
                    let status = script.pop_front().unwrap_or(200);
                    let answer = format!(
                        "HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = (&stream).write_all(answer.as_bytes());
                }
            }
        });
        Receiver {
            url,
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let addr = self.url.trim_start_matches("http://");
        let _ = TcpStream::connect(&addr[..addr.find('/').unwrap_or(addr.len())]);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One HTTP/1.1 request with a `content-length` body.
fn read_request(stream: &TcpStream) -> Option<Got> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?, parts.next()?.to_owned());
    assert_eq!(method, "POST");
    let (mut length, mut authorization) = (0, None);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "authorization" => authorization = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Got {
        target,
        authorization,
        body,
        at: Instant::now(),
    })
}

fn server(receiver: &Receiver, retries: u32) -> SandboxServer {
    let mut config = SandboxConfig::new(KEY)
        .with_webhook_credentials(USER, PASSWORD)
        .with_webhook_url(&receiver.url)
        .unwrap();
    config.webhook_retries = retries;
    SandboxServer::start(Sandbox::new(config)).unwrap()
}

fn driver(server: &SandboxServer) -> Driver<MemoryStore, UreqTransport> {
    let config = Config::new(server.base_url(), KEY).unwrap();
    Driver::new(
        MemoryStore::new(),
        UreqTransport::with_default_agent(),
        config,
    )
}

/// Starts a payment for `order` and, when `pay`, submits the OTP the bank sent.
fn payment(server: &SandboxServer, d: &Driver<MemoryStore, UreqTransport>, order: &str, pay: bool) {
    let start = StartRequest::new(
        order,
        "acme",
        "customer_1",
        PaymentSource::token("tok_visa"),
    )
    .unwrap();
    let key = d.start(&start, 1).unwrap().payment.key().to_owned();
    if pay {
        let otp = server
            .sandbox()
            .current_otp_for_order(order)
            .unwrap()
            .to_owned();
        let done = d
            .run(&key, Command::Submit(Otp::new(&otp).unwrap()))
            .unwrap();
        assert!(done.outcome.is_terminal(), "{}", done.outcome);
    }
}

/// Waits (at most 5 s) until the deliveries satisfy `done`.
fn wait_for(server: &SandboxServer, done: impl Fn(WebhookDeliveries) -> bool) -> WebhookDeliveries {
    let waited = Instant::now();
    loop {
        let now = server.webhook_deliveries();
        if done(now) {
            return now;
        }
        assert!(waited.elapsed() < Duration::from_secs(5), "{now:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn webhooks_reach_the_url_with_credentials_duplicates_reordering_and_delays() {
    let receiver = Receiver::start(&[]);
    let server = server(&receiver, 3);
    let d = driver(&server);
    // ord_dup: its first event twice. ord_late: TXN_CREATED held until after the next one.
    // ord_slow: TXN_CREATED 300 ms late, overtaken by ORDER_SUCCEEDED.
    server.sandbox().inject_webhook(WebhookFault::Duplicate);
    payment(&server, &d, "ord_dup", true);
    server
        .sandbox()
        .inject_webhook(WebhookFault::DeliverAfterNext);
    payment(&server, &d, "ord_late", true);
    server
        .sandbox()
        .inject_webhook(WebhookFault::Delay(Duration::from_millis(300)));
    let started = Instant::now();
    payment(&server, &d, "ord_slow", true);
    let deliveries = wait_for(&server, |w| w.delivered == 7);
    assert_eq!((deliveries.attempts, deliveries.given_up), (7, 0));
    let got = receiver.got();
    let credentials = WebhookCredentials::new(USER, PASSWORD).unwrap();
    for request in &got {
        assert_eq!(request.target, "/webhooks/juspay?shop=1");
        credentials
            .verify(request.authorization.as_deref(), &request.body)
            .expect("the merchant's handler accepts it");
    }
    let of = |order: &str| -> Vec<String> {
        got.iter()
            .map(Got::event)
            .filter(|e| e.ends_with(order))
            .collect()
    };
    assert_eq!(
        of("ord_dup"),
        [
            "TXN_CREATED ord_dup",
            "TXN_CREATED ord_dup",
            "ORDER_SUCCEEDED ord_dup"
        ]
    );
    let dup: Vec<&Got> = got
        .iter()
        .filter(|g| g.event().ends_with("ord_dup"))
        .collect();
    assert_eq!(
        dup[0].json()["id"],
        dup[1].json()["id"],
        "a duplicate keeps its id"
    );
    assert_eq!(
        of("ord_late"),
        ["ORDER_SUCCEEDED ord_late", "TXN_CREATED ord_late"]
    );
    assert_eq!(
        of("ord_slow"),
        ["ORDER_SUCCEEDED ord_slow", "TXN_CREATED ord_slow"]
    );
    let late = got
        .iter()
        .find(|g| g.event() == "TXN_CREATED ord_slow")
        .unwrap();
    assert!(late.at - started >= Duration::from_millis(300));
    // Delivered webhooks are not queued any more.
    assert_eq!(server.sandbox().queued_webhooks(), 0);
}

#[test]
fn a_failing_receiver_gets_a_bounded_number_of_retries() {
    // 500 and 503, then 200: the first webhook is delivered at its third try.
    let receiver = Receiver::start(&[500, 503]);
    let server = server(&receiver, 3);
    payment(&server, &driver(&server), "ord_retried", false);
    let deliveries = wait_for(&server, |w| w.delivered == 1);
    assert_eq!((deliveries.attempts, deliveries.given_up), (3, 0));
    let got = receiver.got();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|g| g.body == got[0].body),
        "the same webhook"
    );

    // Always 500, two retries: three tries each for TXN_CREATED and ORDER_SUCCEEDED, then
    // the sandbox gives up on them.
    let receiver = Receiver::start(&[500; 100]);
    let server = self::server(&receiver, 2);
    payment(&server, &driver(&server), "ord_refused", true);
    let deliveries = wait_for(&server, |w| w.given_up == 2);
    assert_eq!((deliveries.attempts, deliveries.delivered), (6, 0));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(receiver.got().len(), 6, "nothing more is sent");
    assert_eq!(server.sandbox().queued_webhooks(), 0);
}

#[test]
fn without_a_url_webhooks_stay_queued() {
    let server = SandboxServer::start(Sandbox::new(SandboxConfig::new(KEY))).unwrap();
    payment(&server, &driver(&server), "ord_kept", true);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.webhook_deliveries(), WebhookDeliveries::default());
    assert_eq!(server.sandbox().pending_webhooks("ord_kept"), 2);
}

/// An event held back with no next event is delivered once it has waited `HOLD_AT_MOST`.
#[test]
fn a_held_back_last_event_is_delivered_after_the_hold() {
    let receiver = Receiver::start(&[]);
    let server = server(&receiver, 3);
    let d = driver(&server);
    payment(&server, &d, "ord_held", false);
    wait_for(&server, |w| w.delivered == 1);
    // ORDER_SUCCEEDED is held back, and nothing follows it.
    server
        .sandbox()
        .inject_webhook(WebhookFault::DeliverAfterNext);
    let paid = Instant::now();
    let key = direct_otp::Payment::key_for("ord_held", 1);
    let otp = server
        .sandbox()
        .current_otp_for_order("ord_held")
        .unwrap()
        .to_owned();
    d.run(&key, Command::Submit(Otp::new(&otp).unwrap()))
        .unwrap();
    assert_eq!(server.sandbox().pending_webhooks("ord_held"), 1);
    wait_for(&server, |w| w.delivered == 2);
    let got = receiver.got();
    assert_eq!(got[1].event(), "ORDER_SUCCEEDED ord_held");
    assert!(got[1].at - paid >= direct_otp::sandbox::HOLD_AT_MOST);
}
