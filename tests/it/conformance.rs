//! Transport conformance, driven by the language-neutral table
//! `tests/conformance/transport.json` (see `docs/conformance.md`): for each failure class,
//! the sandbox faults that produce it are scripted through the control API over HTTP (as a
//! client in any language does), the start request is sent through each Rust transport, and
//! the result (an answer with its status, "not sent" or "maybe sent") is checked, with how
//! many requests reached the bank and whether it acted on them.

use crate::adapter_support::{Adapter, AnyTransport};
use crate::common::check_cases;
use crate::fault_server::closed_port_url;

use std::time::Duration;

use direct_otp::sandbox::{Sandbox, SandboxConfig, SandboxServer};
use direct_otp::transport::{TransportError, TransportErrorKind, DEFAULT_BODY_LIMIT};
use direct_otp::{Config, PaymentSource, StartRequest};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

#[derive(Deserialize)]
struct Table {
    version: u32,
    harness: Harness,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Harness {
    api_key: String,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    class: String,
    target: Target,
    faults: Vec<Value>,
    client: Client,
    expect: Expect,
    rust: Rust,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Target {
    Sandbox,
    ClosedPort,
    HttpsOnPlainPort,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Client {
    timeout_ms: u64,
    body_limit: Option<usize>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Result {
    Answer,
    NotSent,
    MaybeSent,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Expect {
    result: Result,
    status: Option<u16>,
    /// Weaker results also accepted, on the safe side.
    #[serde(default)]
    may_report: Vec<Result>,
    bank_requests: u64,
    applied: bool,
}

/// The `TransportErrorKind` each Rust transport reports (`null`: an answer).
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Rust {
    hyper: Option<String>,
    ureq: Option<String>,
}

fn table() -> Table {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/conformance/transport.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn clock() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH
}

/// The control API, as any client calls it.
struct Control {
    base: String,
    key: String,
    agent: ureq::Agent,
}

impl Control {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let basic = format!(
            "Basic {}",
            crate::sandbox_control::base64(&format!("{}:", self.key))
        );
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", basic)
            .body(body.map_or_else(Vec::new, |b| b.to_string().into_bytes()))
            .unwrap();
        let mut answer = self.agent.run(request).unwrap();
        let status = answer.status().as_u16();
        let body = answer.body_mut().read_to_vec().unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }
}

fn kind_name(kind: TransportErrorKind) -> String {
    format!("{kind:?}")
}

fn run(case: &Case, adapter: Adapter, server: &SandboxServer, control: &Control, key: &str) {
    let name = format!("{} ({adapter:?}, {})", case.id, case.class);
    let (status, _) = control.call("POST", "/_sandbox/reset", None);
    assert_eq!(status, 200, "{name}");
    for fault in &case.faults {
        let (status, answer) = control.call("POST", "/_sandbox/faults", Some(fault));
        assert_eq!(status, 200, "{name}: {fault} refused: {answer}");
    }
    let base = match case.target {
        Target::Sandbox => server.base_url().to_owned(),
        Target::ClosedPort => closed_port_url(),
        Target::HttpsOnPlainPort => format!("https://{}", server.addr()),
    };
    let config = Config::new(&base, key).unwrap();
    let request = StartRequest::new(&case.id, "acme", "cust_1", PaymentSource::token("tok_visa"))
        .unwrap()
        .request(&config);
    let transport = AnyTransport::new(
        adapter,
        Duration::from_millis(case.client.timeout_ms),
        Some(case.client.body_limit.unwrap_or(DEFAULT_BODY_LIMIT)),
        clock,
    );
    let want_kind = match adapter {
        Adapter::Hyper => case.rust.hyper.as_deref(),
        Adapter::Ureq => case.rust.ureq.as_deref(),
    };
    // For `https_on_plain_port`, `plain_http` refuses the https URL before connecting; the
    // checkout's hyper-rustls client, which fails the handshake itself, runs the case in
    // examples/checkout/tests/tls.rs.
    check_result(&name, case, want_kind, transport.send(request));
    let (_, counters) = control.call("GET", "/_sandbox/counters", None);
    assert_eq!(
        counters["requests"]["start"], case.expect.bank_requests,
        "{name}: requests that reached the bank"
    );
    let (order, _) = control.call("GET", &format!("/_sandbox/orders/{}", case.id), None);
    assert_eq!(order == 200, case.expect.applied, "{name}: applied");
}

/// Checks what a transport reported against the case.
fn check_result(
    name: &str,
    case: &Case,
    want_kind: Option<&str>,
    sent: std::result::Result<(u16, Vec<u8>), TransportError>,
) {
    let (result, status, kind) = match &sent {
        Ok((status, _body)) => (Result::Answer, Some(*status), None),
        Err(e) if e.may_have_been_sent() => (Result::MaybeSent, None, Some(kind_name(e.kind()))),
        Err(e) => (Result::NotSent, None, Some(kind_name(e.kind()))),
    };
    let error = sent.as_ref().err().map(|e| format!("{e:?}"));
    assert!(
        result == case.expect.result || case.expect.may_report.contains(&result),
        "{name}: {result:?}, expected {:?} ({error:?})",
        case.expect.result
    );
    assert_eq!(
        (status, kind.as_deref()),
        (case.expect.status, want_kind),
        "{name}: status, kind ({error:?})"
    );
}

fn conformance(adapter: Adapter) {
    let table = table();
    assert_eq!(table.version, 1);
    let key = table.harness.api_key.clone();
    let mut config = SandboxConfig::new(&key);
    config.control_api = true;
    let server = SandboxServer::start(Sandbox::new(config)).unwrap();
    let control = Control {
        base: server.base_url().to_owned(),
        key: key.clone(),
        agent: ureq::Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .build()
            .into(),
    };
    check_cases(table.cases, |case| {
        run(&case, adapter, &server, &control, &key)
    });
}

/// Every failure class the document names has a case, and every case a class it names.
#[test]
fn the_table_covers_every_failure_class() {
    let table = table();
    let ids: Vec<&str> = table.cases.iter().map(|c| c.id.as_str()).collect();
    for needed in [
        "refused_before_connect",
        "tls_failure",
        "reset_after_request",
        "timeout_before_head",
        "timeout_in_body",
        "server_error",
        "truncated_body",
        "body_over_limit",
        "redirect_302",
    ] {
        assert!(ids.contains(&needed), "{needed} missing");
    }
    let doc = include_str!("../../docs/conformance.md");
    for id in &ids {
        assert!(
            doc.contains(&format!("`{id}`")),
            "{id} is not in docs/conformance.md"
        );
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "duplicate ids");
}

for_each_adapter!(conformance);
