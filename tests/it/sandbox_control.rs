//! The standalone sandbox (`src/bin/direct-otp-sandbox.rs`) as a test suite in another
//! language uses it: started as a process on a free port, its URL read from its first line,
//! a payment made through the simulated API, and the control API (`/_sandbox/`) read for
//! the OTP, the order, and a reset.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use direct_otp::driver::{Command as Step, Driver};
use direct_otp::sandbox::{Sandbox, SandboxConfig};
use direct_otp::store::MemoryStore;
use direct_otp::transport::UreqTransport;
use direct_otp::{Config, Otp, Outcome, PaymentSource, StartRequest, Status};
use serde_json::Value;

const KEY: &str = "sk_test_control";

/// The program, killed when dropped.
struct Program(Child);

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .build()
        .into()
}

/// A control request: its status and JSON body.
fn control(agent: &ureq::Agent, method: &str, url: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = http::Request::builder().method(method).uri(url);
    if let Some(key) = key {
        let basic = format!("Basic {}", base64(&format!("{key}:")));
        request = request.header("authorization", basic);
    }
    let mut answer = agent.run(request.body(Vec::new()).unwrap()).unwrap();
    let status = answer.status().as_u16();
    let body = answer.body_mut().read_to_vec().unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

fn base64(text: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn the_standalone_sandbox_serves_juspay_and_its_control_api() {
    let child = Command::new(env!("CARGO_BIN_EXE_direct-otp-sandbox"))
        .args(["--port", "0", "--key", KEY])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the program starts");
    let mut program = Program(child);
    let mut first = String::new();
    let stdout = program.0.stdout.take().unwrap();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let url = first.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url:?}");

    // A payment through the simulated API, the OTP read from the control API.
    let config = Config::new(&url, KEY).unwrap();
    let driver = Driver::new(
        MemoryStore::new(),
        UreqTransport::with_default_agent(),
        config,
    );
    let start = StartRequest::new(
        "ord_ctl",
        "acme",
        "cust_1",
        PaymentSource::token("tok_visa"),
    )
    .unwrap();
    let key = driver.start(&start, 1).unwrap().payment.key().to_owned();
    let agent = agent();
    let otp_url = format!("{url}/_sandbox/orders/ord_ctl/otp");
    let (status, sms) = control(&agent, "GET", &otp_url, Some(KEY));
    assert_eq!(status, 200, "{sms}");
    assert_eq!(sms["order_id"], "ord_ctl");
    assert_eq!(sms["transaction"]["txn_id"], "acme-ord_ctl-1");
    let otp = Otp::new(sms["otp"].as_str().unwrap()).unwrap();
    let done = driver.run(&key, Step::Submit(otp)).unwrap();
    assert_eq!(done.outcome, Outcome::Approved(Status::Charged));

    let order_url = format!("{url}/_sandbox/orders/ord_ctl");
    let (status, order) = control(&agent, "GET", &order_url, Some(KEY));
    assert_eq!((status, order["status"].as_str()), (200, Some("CHARGED")));
    assert_eq!(order["transaction"]["attempts"], 1);
    // Paid: no OTP to read any more.
    let (status, none) = control(&agent, "GET", &otp_url, Some(KEY));
    assert_eq!((status, none["code"].as_str()), (404, Some("no_otp")));

    // The key is needed, as for the simulated API.
    for key in [None, Some("sk_wrong")] {
        let (status, refused) = control(&agent, "GET", &otp_url, key);
        assert_eq!(
            (status, refused["code"].as_str()),
            (401, Some("access_denied"))
        );
    }
    let (status, _) = control(&agent, "GET", &format!("{url}/_sandbox/nothing"), Some(KEY));
    assert_eq!(status, 404);

    // Reset: the order is forgotten, the server goes on.
    let (status, reset) = control(&agent, "POST", &format!("{url}/_sandbox/reset"), Some(KEY));
    assert_eq!((status, reset["reset"].as_bool()), (200, Some(true)));
    let (status, _) = control(&agent, "GET", &order_url, Some(KEY));
    assert_eq!(status, 404);
    let again = driver.start(
        &StartRequest::new(
            "ord_ctl2",
            "acme",
            "cust_1",
            PaymentSource::token("tok_visa"),
        )
        .unwrap(),
        1,
    );
    assert!(matches!(again.unwrap().outcome, Outcome::OtpSent { .. }));
}

/// Off by default: `/_sandbox/` is then an unknown route like any other.
#[test]
fn the_control_api_is_off_unless_asked_for() {
    let request = direct_otp::sandbox::HttpRequest::new("POST", "/_sandbox/reset");
    let mut sandbox = Sandbox::new(SandboxConfig::new(KEY));
    let answer = sandbox.handle(&request, time::OffsetDateTime::UNIX_EPOCH);
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json_body().unwrap()["error_code"], "not_found");
    assert_eq!(sandbox.log().len(), 1, "answered as a Juspay route");
    // On, in process too: the control API answers and is not logged as a Juspay request.
    let mut config = SandboxConfig::new(KEY);
    config.control_api = true;
    let mut sandbox = Sandbox::new(config);
    let basic = format!("Basic {}", base64(&format!("{KEY}:")));
    let answer = sandbox.handle(
        &request.with_header("authorization", &basic),
        time::OffsetDateTime::UNIX_EPOCH,
    );
    assert_eq!(answer.status, 200);
    assert_eq!(sandbox.log().len(), 0);
}
