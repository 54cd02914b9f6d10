//! The checkout's client for a real Juspay host (`shop::juspay_transport`: the hyper adapter
//! over hyper-rustls) is the TLS set-up the documentation shows, and it meets the transport
//! conformance table (`tests/conformance/transport.json` at the repository's root,
//! `docs/conformance.md`) where a TLS client is needed: each case whose target is
//! `https_on_plain_port` (a TLS handshake with the sandbox's plain-HTTP port, which fails) is
//! scripted through the sandbox's control API over HTTP and sent through that client; the
//! result, how many requests reached the bank and whether it acted are checked. The crate's
//! own conformance test (`tests/it/conformance.rs`) runs the other cases, and this one with
//! `HyperTransport::plain_http`, which refuses the URL instead.

use std::path::Path;
use std::time::Duration;

use direct_otp::sandbox::{Sandbox, SandboxConfig, SandboxServer};
use direct_otp::transport::{Settings, TransportError, DEFAULT_BODY_LIMIT};
use direct_otp::{Config, PaymentSource, StartRequest};
use direct_otp_checkout::shop;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The repository's root: the crate's sources, docs and conformance table.
fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn read(path: &str) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` without comments (`//` to the end of a line) and without whitespace.
fn code(text: &str) -> String {
    let lines = text.lines().map(|l| l.find("//").map_or(l, |i| &l[..i]));
    lines
        .flat_map(str::chars)
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// The statements of the TLS snippet in `text`: from `let https =` to the end of the
/// `let client =` statement, as `code` has them.
fn tls_snippet(text: &str, source: &str) -> String {
    let text = code(text);
    let start = text
        .find("lethttps=hyper_rustls::")
        .unwrap_or_else(|| panic!("{source}: no hyper-rustls set-up"));
    let client = start
        + text[start..]
            .find("letclient=")
            .unwrap_or_else(|| panic!("{source}: no `let client =` after the connector"));
    let end = client + text[client..].find(';').expect("a statement ends") + 1;
    text[start..end].to_owned()
}

/// The hyper adapter's documentation and `docs/adapters.md` show the client the checkout
/// builds for a real Juspay host, to the statement: the set-up they document is this
/// package's code, built and run (below) here.
#[test]
fn the_documented_tls_set_up_is_the_checkouts() {
    let shop = read("examples/checkout/src/shop.rs");
    let start = shop
        .find("pub fn juspay_transport()")
        .expect("juspay_transport");
    let body = &shop[start..start + shop[start..].find("\n}\n").expect("its end")];
    let ours = tls_snippet(body, "shop.rs");
    assert!(
        code(body).ends_with(&format!("{ours}HyperTransport::new(client)")),
        "juspay_transport: {body}"
    );
    let adapter = read("src/transport/hyper.rs")
        .replace("/// ", "")
        .replace("///", "");
    for (source, text) in [
        ("src/transport/hyper.rs", adapter),
        ("docs/adapters.md", read("docs/adapters.md")),
    ] {
        let theirs = tls_snippet(&text, source);
        assert_eq!(theirs, ours, "{source} shows another set-up than shop.rs");
        assert!(
            code(&text).contains(&format!(
                "{theirs}lettransport:HyperTransport<_>=HyperTransport::new(client);"
            )),
            "{source}: the transport is built from the client"
        );
    }
}

/// The control API, as any client calls it (plain HTTP on loopback).
struct Control {
    base: String,
    basic: String,
    client: Client<HttpConnector, Full<bytes::Bytes>>,
}

impl Control {
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", &self.basic)
            .body(Full::from(
                body.map_or_else(Vec::new, |b| b.to_string().into_bytes()),
            ))
            .unwrap();
        let answer = self.client.request(request).await.unwrap();
        let status = answer.status().as_u16();
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }
}

/// `user:` in HTTP Basic form (the API key is the user name, the password empty).
fn basic(user: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:").into_bytes();
    let mut out = String::from("Basic ");
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ABC[(n >> (18 - 6 * i) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn basic_is_base64_of_user_and_colon() {
    assert_eq!(basic("sk_conformance"), "Basic c2tfY29uZm9ybWFuY2U6");
    assert_eq!(basic("a"), "Basic YTo=");
    assert_eq!(basic("ab"), "Basic YWI6");
    assert_eq!(basic(""), "Basic Og==");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cases_of_the_conformance_table_through_the_checkouts_client() {
    let table: Value = serde_json::from_str(&read("tests/conformance/transport.json")).unwrap();
    assert_eq!(table["version"], 1);
    let key = table["harness"]["api_key"].as_str().unwrap();
    let mut config = SandboxConfig::new(key);
    config.control_api = true;
    let server = SandboxServer::start(Sandbox::new(config)).unwrap();
    let control = Control {
        base: server.base_url().to_owned(),
        basic: basic(key),
        client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
    };
    let cases = table["cases"].as_array().unwrap();
    let tls: Vec<&Value> = cases
        .iter()
        .filter(|c| c["target"] == "https_on_plain_port")
        .collect();
    assert!(
        tls.iter().any(|c| c["id"] == "tls_failure"),
        "the table's TLS case is gone"
    );
    for case in tls {
        let id = case["id"].as_str().unwrap();
        let (status, _) = control.call("POST", "/_sandbox/reset", None).await;
        assert_eq!(status, 200, "{id}");
        for fault in case["faults"].as_array().unwrap() {
            let (status, answer) = control.call("POST", "/_sandbox/faults", Some(fault)).await;
            assert_eq!(status, 200, "{id}: {fault} refused: {answer}");
        }
        let base = format!("https://{}", server.addr());
        let request = StartRequest::new(id, "acme", "cust_1", PaymentSource::token("tok_visa"))
            .unwrap()
            .request(&Config::new(&base, key).unwrap());
        let client = &case["client"];
        let settings = Settings::new()
            .with_timeout(Duration::from_millis(
                client["timeout_ms"].as_u64().unwrap(),
            ))
            .with_body_limit(
                client["body_limit"]
                    .as_u64()
                    .map_or(DEFAULT_BODY_LIMIT, |n| n as usize),
            );
        let transport = shop::juspay_transport().with_settings(settings);
        let sent = transport.send(request).await;
        if let Err(e) = &sent {
            // Failed in the handshake (rustls reports as `InvalidData`), not refused before.
            assert!(tls_error_in(e), "{id}: not a TLS error: {e:?}");
        }
        check(case, sent);
        let (_, counters) = control.call("GET", "/_sandbox/counters", None).await;
        assert_eq!(
            counters["requests"]["start"], case["expect"]["bank_requests"],
            "{id}: requests that reached the bank"
        );
        let (order, _) = control
            .call("GET", &format!("/_sandbox/orders/{id}"), None)
            .await;
        assert_eq!(
            Value::from(order == 200),
            case["expect"]["applied"],
            "{id}: applied"
        );
    }
}

/// Whether an error in `e`'s chain is an I/O error of kind `InvalidData`: how rustls hands
/// a failed handshake to hyper (a plain-HTTP client refusing the URL has none).
fn tls_error_in(e: &TransportError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::InvalidData {
                return true;
            }
            // An I/O error's `source` skips the error it wraps: look at that one.
            if let Some(inner) = io.get_ref() {
                source = Some(inner);
                continue;
            }
        }
        source = error.source();
    }
    false
}

#[test]
fn a_refused_url_is_no_tls_error() {
    let request = StartRequest::new("o", "acme", "c", PaymentSource::token("tok_visa"))
        .unwrap()
        .request(&Config::new("https://127.0.0.1:1", "k").unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let plain = direct_otp::transport::HyperTransport::plain_http();
    let e = runtime.block_on(plain.send(request)).unwrap_err();
    assert!(!tls_error_in(&e), "{e:?}");
}

/// What the client reported against the case: the result (or one `may_report` accepts),
/// the status of an answer, and the kind of error the table names for hyper.
fn check(case: &Value, sent: Result<(u16, Vec<u8>), TransportError>) {
    let id = &case["id"];
    let (result, status, kind) = match &sent {
        Ok((status, _)) => ("answer", Some(*status), None),
        Err(e) if e.may_have_been_sent() => ("maybe_sent", None, Some(format!("{:?}", e.kind()))),
        Err(e) => ("not_sent", None, Some(format!("{:?}", e.kind()))),
    };
    let expect = &case["expect"];
    let accepted = expect["result"] == result
        || expect["may_report"]
            .as_array()
            .is_some_and(|also| also.iter().any(|r| r == result));
    assert!(
        accepted,
        "{id}: {result}, expected {} ({sent:?})",
        expect["result"]
    );
    assert_eq!(
        status.map(u64::from),
        expect["status"].as_u64(),
        "{id}: status ({sent:?})"
    );
    assert_eq!(
        kind.as_deref(),
        case["rust"]["hyper"].as_str(),
        "{id}: kind ({sent:?})"
    );
}
