//! The standalone sandbox (`src/bin/direct-otp-sandbox.rs`) as a test suite in another
//! language uses it: started as a process on a free port, its URL read from its first line,
//! a payment made through the simulated API, and the control API (`/_sandbox/`) read for
//! the OTP, the order, and a reset. Then the rest of the control API through a
//! `SandboxServer` with it turned on, over HTTP only (no `server.sandbox()`): faults per
//! order and endpoint with the counters proving nothing reached the bank twice, card flows,
//! settings, the signed return URL, webhooks taken and delivered, and hostile control input
//! (every refusal a 4xx in the one error form, and the sandbox still serving).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use crate::fault_server::{Action, FaultServer};
use direct_otp::driver::{Command as Step, Driver};
use direct_otp::sandbox::{Sandbox, SandboxConfig, SandboxServer};
use direct_otp::store::MemoryStore;
use direct_otp::transport::UreqTransport;
use direct_otp::{
    Config, Otp, Outcome, PaymentSource, ResponseKey, ReturnParams, StartRequest, Status,
    Uncertainty, WebhookCredentials,
};
use serde_json::{json, Value};

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

pub(crate) fn base64(text: &str) -> String {
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
    let child = Command::new(env!("CARGO_BIN_EXE_sandbox"))
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

/// A `SandboxServer` with the control API, driven over HTTP only.
struct Control {
    server: SandboxServer,
    agent: ureq::Agent,
}

impl Control {
    fn start() -> Control {
        let mut config = SandboxConfig::new(KEY);
        config.control_api = true;
        Control {
            server: SandboxServer::start(Sandbox::new(config)).unwrap(),
            agent: agent(),
        }
    }

    fn url(&self) -> &str {
        self.server.base_url()
    }

    /// A control call with a JSON body (or none): the status and the JSON answer.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let bytes = body.map_or_else(Vec::new, |b| b.to_string().into_bytes());
        self.raw(method, path, bytes, Some(KEY))
    }

    /// The same, with raw bytes and any key; the answer must be JSON, whatever was sent.
    fn raw(&self, method: &str, path: &str, body: Vec<u8>, key: Option<&str>) -> (u16, Value) {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url()))
            .header("content-type", "application/json");
        if let Some(key) = key {
            request = request.header(
                "authorization",
                format!("Basic {}", base64(&format!("{key}:"))),
            );
        }
        let mut answer = self.agent.run(request.body(body).unwrap()).unwrap();
        let status = answer.status().as_u16();
        let bytes = answer.body_mut().read_to_vec().unwrap();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {path}: {status}, not JSON ({e}): {bytes:?}"));
        (status, json)
    }

    /// A call that must succeed.
    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer
    }

    /// A simulated Juspay call with a form body, as curl sends it: status and JSON.
    fn juspay(&self, path: &str, form: &str) -> (u16, Value) {
        let basic = format!("Basic {}", base64(&format!("{KEY}:")));
        let mut request = http::Request::builder()
            .uri(format!("{}{path}", self.url()))
            .header("authorization", basic)
            .header("x-routing-id", "cust_1");
        request = if form.is_empty() {
            request.method("GET")
        } else {
            request
                .method("POST")
                .header("content-type", "application/x-www-form-urlencoded")
        };
        let mut answer = self
            .agent
            .run(request.body(form.as_bytes().to_vec()).unwrap())
            .unwrap();
        let status = answer.status().as_u16();
        let bytes = answer.body_mut().read_to_vec().unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn start_payment(&self, order: &str, card: &str) -> (u16, Value) {
        let form = format!(
            "order_id={order}&merchant_id=acme&payment_method_type=CARD&card_token={card}\
             &auth_type=OTP&format=json"
        );
        self.juspay("/txns", &form)
    }

    fn driver(&self) -> Driver<MemoryStore, UreqTransport> {
        Driver::new(
            MemoryStore::new(),
            UreqTransport::with_default_agent(),
            Config::new(self.url(), KEY).unwrap(),
        )
    }
}

/// A lost submit scripted for one order only: the other order pays normally, the lost one
/// is charged at the bank, the driver reconciles, and the counters show that the submit
/// reached the bank once.
#[test]
fn faults_for_one_order_and_the_counters_prove_no_request_went_twice() {
    let c = Control::start();
    let queued = c.ok(
        "POST",
        "/_sandbox/faults",
        Some(json!({"fault": "drop_response", "endpoint": "submit", "order_id": "ord_lost"})),
    );
    assert_eq!(queued, json!({"queued": 1, "pending": 1}));
    let listed = c.ok("GET", "/_sandbox/faults", None);
    assert_eq!(
        listed["faults"],
        json!([{"fault": "drop_response", "endpoint": "submit", "order_id": "ord_lost"}])
    );
    let d = c.driver();
    let pay = |order: &str| {
        let start =
            StartRequest::new(order, "acme", "cust_1", PaymentSource::token("tok_visa")).unwrap();
        let key = d.start(&start, 1).unwrap().payment.key().to_owned();
        let sms = c.ok("GET", &format!("/_sandbox/orders/{order}/otp"), None);
        let otp = Otp::new(sms["otp"].as_str().unwrap()).unwrap();
        (key.clone(), d.run(&key, Step::Submit(otp)).unwrap().outcome)
    };
    let (_, paid) = pay("ord_ok");
    assert_eq!(paid, Outcome::Approved(Status::Charged));
    let (lost_key, lost) = pay("ord_lost");
    assert_eq!(lost, Outcome::CheckStatus(Uncertainty::MaybeSent));
    // The bank charged it; the shop does not know yet.
    let order = c.ok("GET", "/_sandbox/orders/ord_lost", None);
    assert_eq!(order["status"], "CHARGED");
    assert_eq!(order["requests"]["submit"], 1);
    assert_eq!(order["transactions"].as_array().unwrap().len(), 1);
    let done = d.run(&lost_key, Step::CheckStatus).unwrap();
    assert_eq!(done.outcome, Outcome::Approved(Status::Charged));
    let order = c.ok("GET", "/_sandbox/orders/ord_lost", None);
    assert_eq!(
        order["requests"],
        json!({"start": 1, "resend": 0, "submit": 1, "order_status": 1, "bank_page": 0, "card_bin": 0})
    );
    let counters = c.ok("GET", "/_sandbox/counters", None);
    assert_eq!(counters["requests"]["submit"], 2);
    assert_eq!(counters["requests"]["start"], 2);
    assert_eq!(counters["otps_sent"], 2);
    assert_eq!(counters["pending_faults"], 0);
    let log = c.ok("GET", "/_sandbox/log", None);
    let faulty: Vec<&Value> = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["fault"].is_null())
        .collect();
    assert_eq!(faulty.len(), 1, "{log}");
    assert_eq!(faulty[0]["delivery"], "never");

    // For the next N requests to any endpoint, then cleared.
    c.ok(
        "POST",
        "/_sandbox/faults",
        Some(json!({"fault": "internal_error", "times": 3})),
    );
    for _ in 0..2 {
        let (status, body) = c.juspay("/orders/ord_ok", "");
        assert_eq!(
            (status, body["error_code"].as_str()),
            (500, Some("internal_server_error"))
        );
    }
    assert_eq!(
        c.ok("DELETE", "/_sandbox/faults", None),
        json!({"cleared": 1})
    );
    assert_eq!(c.juspay("/orders/ord_ok", "").0, 200);
}

/// Card flows and settings changed while serving, the bank page finished through the
/// control API, the signed return URL read and verified, and webhooks taken, then
/// delivered to a URL set (and cleared) at run time.
#[test]
fn card_flows_settings_return_urls_and_webhooks() {
    let c = Control::start();
    for (card, flow) in [
        ("tok_3ds", "three_ds_failover"),
        ("tok_nosms", "no_sms"),
        ("tok_decline", "decline_after_otp"),
    ] {
        let set = c.ok(
            "PUT",
            &format!("/_sandbox/cards/{card}"),
            Some(json!({"flow": flow})),
        );
        assert_eq!(set["flow"], flow);
    }
    assert_eq!(c.ok("GET", "/_sandbox/cards", None)["cards"], 3);
    let settings = c.ok(
        "PATCH",
        "/_sandbox/settings",
        Some(json!({
            "otp": {"fixed": "424242"},
            "max_sends": 2,
            "return_url": "https://shop.example/return?cart=7",
            "response_key": "rk_from_the_sdk",
            "webhook_credentials": {"username": "hook_user", "password": "hook_pass"},
        })),
    );
    assert_eq!(
        (settings["otp"].as_str(), settings["max_sends"].as_u64()),
        (Some("fixed"), Some(2))
    );
    let shown = settings.to_string();
    for secret in ["424242", "rk_from_the_sdk", "hook_pass", KEY] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }

    // 3DS failover: no OTP params, the bank page finishes it, the return URL is signed.
    let (status, started) = c.start_payment("ord_3ds", "tok_3ds");
    assert_eq!(status, 200);
    assert_eq!(started["payment"]["authentication"]["method"], "GET");
    assert_eq!(c.call("GET", "/_sandbox/orders/ord_3ds/otp", None).0, 404);
    let done = c.ok(
        "POST",
        "/_sandbox/orders/ord_3ds/bank-page",
        Some(json!({"result": "success"})),
    );
    assert_eq!(done["status"], "CHARGED");
    let (status, again) = c.call("POST", "/_sandbox/orders/ord_3ds/bank-page", None);
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("not_awaiting_authentication"))
    );
    let ret = c.ok("GET", "/_sandbox/orders/ord_3ds/return-url", None);
    let url = ret["return_url"].as_str().unwrap();
    assert!(
        url.starts_with("https://shop.example/return?cart=7&"),
        "{url}"
    );
    let verified = ReturnParams::from_url(url)
        .unwrap()
        .verify(&ResponseKey::new("rk_from_the_sdk").unwrap())
        .unwrap();
    assert_eq!(
        (verified.order_id.as_str(), verified.status),
        ("ord_3ds", Status::Charged)
    );

    // No SMS: sends are counted, nothing can be read, a resend does not help.
    let (_, started) = c.start_payment("ord_nosms", "tok_nosms");
    let params = &started["payment"]["authentication"]["params"];
    let resend = format!(
        "/v2/txns/{}/authenticate/{}/resend",
        params["id"].as_str().unwrap(),
        params["challenge_id"].as_str().unwrap()
    );
    assert_eq!(c.juspay(&resend, "x=1").0, 200);
    let (status, none) = c.call("GET", "/_sandbox/orders/ord_nosms/otp", None);
    assert_eq!((status, none["code"].as_str()), (404, Some("no_otp")));
    let order = c.ok("GET", "/_sandbox/orders/ord_nosms", None);
    assert_eq!(order["transaction"]["otp_sends"], 2);
    // Over the send limit set above.
    assert_eq!(c.juspay(&resend, "x=1").0, 400);

    // Decline after the right (fixed) OTP.
    let (_, started) = c.start_payment("ord_decline", "tok_decline");
    let params = &started["payment"]["authentication"]["params"];
    let submit = format!("/v2/txns/{}/authenticate", params["id"].as_str().unwrap());
    let form = format!(
        "challenge_id={}&answer.otp=424242",
        params["challenge_id"].as_str().unwrap()
    );
    let (status, answer) = c.juspay(&submit, &form);
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("AUTHORIZATION_FAILED"))
    );

    // Webhooks, taken: signed with the credentials set above.
    let taken = c.ok("POST", "/_sandbox/orders/ord_3ds/webhooks/take", None);
    let webhooks = taken["webhooks"].as_array().unwrap();
    assert_eq!(webhooks.len(), 2, "{taken}");
    let credentials = WebhookCredentials::new("hook_user", "hook_pass").unwrap();
    for w in webhooks {
        let event = credentials
            .verify(
                w["headers"]["authorization"].as_str(),
                w["body"].as_str().unwrap().as_bytes(),
            )
            .unwrap();
        assert_eq!(event.order.order_id, "ord_3ds");
    }
    assert_eq!(
        c.ok("POST", "/_sandbox/orders/ord_3ds/webhooks/take", None)["webhooks"],
        json!([])
    );

    // Delivered to a URL set at run time (the two orders' webhooks still queued too), the
    // next event twice; then cleared: queued again.
    let receiver = FaultServer::always(Action::json(200, &b"{}"[..]));
    let hook = format!("{}/hooks", receiver.base_url());
    c.ok(
        "PATCH",
        "/_sandbox/settings",
        Some(json!({"webhook_url": hook})),
    );
    c.ok(
        "POST",
        "/_sandbox/webhook-faults",
        Some(json!({"fault": "duplicate"})),
    );
    c.start_payment("ord_hook", "tok_visa");
    let about = |order: &str| {
        let needle = format!("\"order_id\":\"{order}\"");
        receiver
            .seen()
            .iter()
            .filter(|s| String::from_utf8_lossy(&s.body).contains(&needle))
            .count()
    };
    let waited = Instant::now();
    while about("ord_hook") < 2 || about("ord_decline") < 2 {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "{} seen",
            receiver.seen().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = receiver.seen();
    assert!(seen
        .iter()
        .all(|s| s.path == "/hooks" && s.method == "POST"));
    let deliveries = c.ok("GET", "/_sandbox/counters", None)["webhook_deliveries"].clone();
    assert_eq!(deliveries["delivered"], seen.len(), "{deliveries}");
    assert_eq!(deliveries["given_up"], 0);
    let cleared = c.ok(
        "PATCH",
        "/_sandbox/settings",
        Some(json!({"webhook_url": null})),
    );
    assert_eq!(cleared["webhook_url"], Value::Null);
    c.start_payment("ord_queued", "tok_visa");
    std::thread::sleep(Duration::from_millis(100));
    let order = c.ok("GET", "/_sandbox/orders/ord_queued", None);
    assert_eq!(order["pending_webhooks"], 1);
    assert_eq!(about("ord_queued"), 0);

    // A reset forgets the orders and keeps the settings.
    c.ok("POST", "/_sandbox/reset", None);
    assert_eq!(c.call("GET", "/_sandbox/orders/ord_3ds", None).0, 404);
    assert_eq!(c.ok("GET", "/_sandbox/settings", None)["max_sends"], 2);
}

/// Bad control input of every kind: a 4xx in the one error form, never a 500, never a
/// change, and the sandbox still serves.
#[test]
fn hostile_control_input_is_refused_in_one_error_form() {
    let c = Control::start();
    c.start_payment("ord_1", "tok_visa");
    let before = c.ok("GET", "/_sandbox/settings", None);
    // Nested past serde_json's recursion limit, within the 64 KiB body limit.
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "POST",
            "/_sandbox/faults",
            b"{".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/_sandbox/faults",
            b"[]".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/_sandbox/faults",
            b"\xff\xfe".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/_sandbox/faults",
            deep.into_bytes(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/_sandbox/faults",
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/_sandbox/faults",
            vec![b' '; 70_000],
            413,
            "body_too_large",
        ),
        (
            "POST",
            "/_sandbox/faults",
            b"{}".to_vec(),
            400,
            "missing_field",
        ),
        (
            "POST",
            "/_sandbox/faults",
            br#"{"fault":"explode"}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/_sandbox/faults",
            br#"{"fault":"reset","endpoint":"txns"}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/_sandbox/faults",
            br#"{"fault":"reset","times":0}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/_sandbox/faults",
            br#"{"fault":"reset","times":1e9}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/_sandbox/faults",
            br#"{"fault":"reset","times":18446744073709551616}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/_sandbox/faults",
            br#"{"fault":"slow","delay_ms":-5}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/_sandbox/faults",
            br#"{"fault":"slow","delay_ms":99999999999}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/_sandbox/faults",
            br#"{"fault":"oversized","bytes":999999999999}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/_sandbox/faults",
            br#"{"fault":"redirect","status":200}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/_sandbox/faults",
            br#"{"fault":"reset","order_id":""}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/_sandbox/faults",
            br#"{"fault":"reset","order_id":7}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/_sandbox/faults",
            br#"{"fault":"reset","__proto__":{}}"#.to_vec(),
            400,
            "unknown_field",
        ),
        (
            "POST",
            "/_sandbox/webhook-faults",
            br#"{"fault":"delay"}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "PUT",
            "/_sandbox/cards/tok_x",
            br#"{"flow":"teleport"}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "PUT",
            "/_sandbox/cards/",
            br#"{"flow":"no_sms"}"#.to_vec(),
            400,
            "missing_field",
        ),
        (
            "PUT",
            "/_sandbox/bins/41a1",
            br#"{"eligible":false}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "PUT",
            "/_sandbox/bins/4111",
            br#"{"eligible":"no"}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "PATCH",
            "/_sandbox/settings",
            br#"{"webhook_url":"http://example.com/hook"}"#.to_vec(),
            400,
            "invalid_webhook_url",
        ),
        (
            "PATCH",
            "/_sandbox/settings",
            br#"{"webhook_url":"https://127.0.0.1/hook"}"#.to_vec(),
            400,
            "invalid_webhook_url",
        ),
        (
            "PATCH",
            "/_sandbox/settings",
            br#"{"webhook_url":"http://u:p@127.0.0.1/"}"#.to_vec(),
            400,
            "invalid_webhook_url",
        ),
        (
            "PATCH",
            "/_sandbox/settings",
            br#"{"otp":{"fixed":"12ab"}}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "PATCH",
            "/_sandbox/settings",
            br#"{"otp":{"fixed":"1234","seeded":1}}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "PATCH",
            "/_sandbox/settings",
            br#"{"response_key":""}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "PATCH",
            "/_sandbox/settings",
            br#"{"max_sends":-1}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "PATCH",
            "/_sandbox/settings",
            br#"{"max_sends":2,"wrong_otp":"maybe"}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "PATCH",
            "/_sandbox/settings",
            br#"{"api_key":"mine"}"#.to_vec(),
            400,
            "unknown_field",
        ),
        (
            "PATCH",
            "/_sandbox/settings",
            br#"{"return_url":"javascript:alert(1)"}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "PATCH",
            "/_sandbox/settings",
            br#"{"webhook_credentials":{"username":"a:b","password":"p"}}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/_sandbox/orders",
            br#"{"order_id":"o","amount":"NaN"}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/_sandbox/orders/ord_1/bank-page",
            br#"{"result":"maybe"}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/_sandbox/orders/nope/bank-page",
            Vec::new(),
            404,
            "not_found",
        ),
        ("GET", "/_sandbox/orders/nope", Vec::new(), 404, "not_found"),
        (
            "GET",
            "/_sandbox/orders/nope/return-url",
            Vec::new(),
            404,
            "not_found",
        ),
        (
            "POST",
            "/_sandbox/orders/nope/webhooks/take",
            Vec::new(),
            404,
            "not_found",
        ),
        (
            "GET",
            "/_sandbox/orders/%zz",
            Vec::new(),
            400,
            "invalid_path",
        ),
        (
            "GET",
            "/_sandbox/orders/%FF",
            Vec::new(),
            400,
            "invalid_path",
        ),
        (
            "GET",
            "/_sandbox/nothing/here",
            Vec::new(),
            404,
            "not_found",
        ),
        (
            "DELETE",
            "/_sandbox/reset",
            Vec::new(),
            405,
            "method_not_allowed",
        ),
        (
            "GET",
            "/_sandbox/reset",
            Vec::new(),
            405,
            "method_not_allowed",
        ),
        (
            "PUT",
            "/_sandbox/faults",
            Vec::new(),
            405,
            "method_not_allowed",
        ),
    ];
    crate::common::check_cases(cases, |(method, path, body, status, code)| {
        let (got, answer) = c.raw(method, path, body, Some(KEY));
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {answer}"
        );
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    });
    // Without the key or with another: 401, whatever the route.
    for key in [None, Some("sk_other"), Some("")] {
        let (status, answer) = c.raw("POST", "/_sandbox/reset", Vec::new(), key);
        assert_eq!(
            (status, answer["code"].as_str()),
            (401, Some("access_denied"))
        );
    }
    // The queues are bounded: 10,000 faults, then 409 `too_many` until they are cleared.
    for _ in 0..10 {
        let fault = json!({"fault": "internal_error", "order_id": "nobody", "times": 1000});
        c.ok("POST", "/_sandbox/faults", Some(fault));
    }
    let (status, full) = c.call("POST", "/_sandbox/faults", Some(json!({"fault": "reset"})));
    assert_eq!((status, full["code"].as_str()), (409, Some("too_many")));
    assert_eq!(
        c.ok("DELETE", "/_sandbox/faults", None),
        json!({"cleared": 10_000})
    );
    // Nothing changed, and everything still works.
    assert_eq!(c.ok("GET", "/_sandbox/settings", None), before);
    assert_eq!(c.ok("GET", "/_sandbox/faults", None), json!({"faults": []}));
    assert_eq!(
        c.ok("GET", "/_sandbox/orders/ord_1", None)["status"],
        "PENDING_VBV"
    );
    assert_eq!(
        c.ok("GET", "/_sandbox/orders/ord%5F1/otp", None)["order_id"],
        "ord_1"
    );
}
