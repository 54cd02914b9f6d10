//! Proxy variables in the environment never hijack the adapters' defaults (the loopback
//! tests, and a sandbox on 127.0.0.1, must not be routed to a proxy).
//!
//! This binary holds a single test: it sets process-wide variables before any client is
//! built, so no other test can race with it.

#[path = "it/fault_server/mod.rs"]
mod fault_server;

use std::time::Duration;

use direct_otp::transport::{HyperTransport, Settings, TransportErrorKind, UreqTransport};
use direct_otp::{Config, PaymentSource, StartRequest};
use fault_server::{closed_port_url, Action, FaultServer};

#[test]
fn proxy_variables_are_ignored() {
    // A "proxy" on a port where nothing listens: any request routed to it fails.
    let dead = closed_port_url();
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        std::env::set_var(name, &dead);
    }
    for name in ["NO_PROXY", "no_proxy"] {
        std::env::remove_var(name);
    }

    let server = FaultServer::always(Action::json(200, &br#"{"status":"CHARGED"}"#[..]));
    let config = Config::new(&server.base_url(), "sk_test").unwrap();
    let request = || {
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
        .order_status_check()
        .request(&config)
    };
    let settings = Settings::new().with_timeout(Duration::from_secs(10));

    // The control: ureq's own defaults do take the variables, and fail.
    let hijacked = UreqTransport::new(ureq::Agent::new_with_defaults()).with_settings(settings);
    assert!(hijacked.agent().config().proxy().is_some());
    let e = hijacked.send(request()).unwrap_err();
    assert_eq!(e.kind(), TransportErrorKind::Connect, "{e:?}");
    assert_eq!(server.seen().len(), 0);

    // The adapters' defaults reach the loopback server directly.
    let ureq = UreqTransport::with_default_agent().with_settings(settings);
    assert_eq!(ureq.send(request()).unwrap().0, 200);

    let hyper = HyperTransport::plain_http().with_settings(settings);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(hyper.send(request())).unwrap().0, 200);

    assert_eq!(server.seen().len(), 2);
}
