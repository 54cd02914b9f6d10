//! The API key (and its `Basic` Base64 form), OTPs and card data never show in any
//! `Debug`, `Display`, error message or persisted state the library produces.
//!
//! These are the fixed cases, one per kind of value; `tests/it/model.rs` runs the same scan
//! ([`invariants::Secrets`]) after every step of its random lifecycles, on the challenge,
//! its serialized state, every outcome, refusal, input error and outgoing request.

use crate::common;
use crate::invariants;

use common::{fixture, secs, ROUTING, T0};
use direct_otp::sandbox::{HttpRequest, OtpSource, Sandbox, SandboxConfig};
use direct_otp::transport::UreqTransport;
use direct_otp::{
    CardDetails, Challenge, Config, Otp, PaymentSource, Policy, Request, SendFailure, StartRequest,
    Started,
};
use invariants::{contains_number, Secrets};

const KEY: &str = "sk_test_SECRETKEY";
const OTP: &str = "86420975";
const CARD_NUMBER: &str = "4000123498765432";
const CVV: &str = "7391";
const CARD_TOKEN: &str = "tok_SECRETCARDTOKEN";
const NAME: &str = "Zyxwv Secretholder";
const EXPIRY_YEAR: &str = "2039";

fn config() -> Config {
    Config::sandbox(KEY).unwrap()
}

fn secrets() -> Secrets {
    Secrets::default()
        .with_key(KEY, &config())
        .with_text(CARD_NUMBER)
        .with_text(CARD_TOKEN)
        .with_text(NAME)
        .with_number(OTP)
}

fn raw_card() -> PaymentSource {
    PaymentSource::Card(CardDetails {
        number: CARD_NUMBER.into(),
        expiry_month: "09".into(),
        expiry_year: EXPIRY_YEAR.into(),
        cvv: CVV.into(),
        name_on_card: Some(NAME.into()),
    })
}

fn token_card() -> PaymentSource {
    PaymentSource::Token {
        card_token: CARD_TOKEN.into(),
        cvv: Some(CVV.into()),
    }
}

/// Checks a text that holds no timestamps, where even the short CVV and the expiry year
/// must not appear.
fn check_without_numbers(what: &str, shown: &str) {
    secrets().check(what, shown);
    for short in [CVV, EXPIRY_YEAR] {
        assert!(
            !contains_number(shown, short),
            "{what} leaks {short}: {shown}"
        );
    }
}

#[test]
fn config_debug_hides_the_key_and_its_base64_form() {
    let c = config().with_merchant_id("acme").unwrap();
    check_without_numbers("Config Debug", &format!("{c:?}"));
    check_without_numbers("Config Debug", &format!("{c:#?}"));
    // A refused key is not repeated in the error.
    let e = Config::sandbox("sk_test_SECRET KEY").unwrap_err();
    assert!(!format!("{e} {e:?}").contains("SECRET"), "{e}");
}

#[test]
fn start_request_debug_hides_card_data() {
    for source in [raw_card(), token_card()] {
        let start = StartRequest::new("ord_1", "acme", ROUTING, source.clone()).unwrap();
        check_without_numbers("PaymentSource Debug", &format!("{source:?}"));
        check_without_numbers("StartRequest Debug", &format!("{start:?}"));
        check_without_numbers("StartRequest Debug", &format!("{start:#?}"));
        // The request carries the card in its body (it must), but its Debug does not.
        let request = start.request(&config());
        let body = String::from_utf8_lossy(request.body()).into_owned();
        assert!(body.contains(CVV), "the card goes to the server: {body}");
        check_without_numbers("start Request Debug", &format!("{request:?}"));
    }
}

#[test]
fn otps_never_show() {
    let otp = Otp::new(OTP).unwrap();
    check_without_numbers("Otp Debug", &format!("{otp:?}"));
    for bad in ["8642097a", "864209751", "86 42"] {
        let e = Otp::new(bad).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("86420"), "{shown}");
    }
    let mut c = common::challenge();
    let out = c.submit(&config(), &otp, secs(5)).unwrap();
    assert!(String::from_utf8_lossy(out.request.body()).contains(OTP));
    secrets().check("submit Outgoing Debug", &format!("{out:?} {out:#?}"));
    // The challenge never keeps the OTP: its state after the submit is the same whatever
    // the OTP was (but for the random nonce of the token in flight).
    let mut c = common::challenge();
    let mut other = c.clone();
    let t1 = c.submit(&config(), &otp, secs(5)).unwrap().token;
    let t2 = other
        .submit(&config(), &Otp::new("13579246").unwrap(), secs(5))
        .unwrap()
        .token;
    let without_token = |c: &direct_otp::Challenge, t: direct_otp::Token| {
        let json = serde_json::to_string(c).unwrap();
        json.replace(&serde_json::to_string(&t).unwrap(), "TOKEN")
    };
    assert_eq!(without_token(&c, t1), without_token(&other, t2));
    secrets().check_challenge(&c, secs(5));
}

#[test]
fn every_request_debug_redacts_the_credentials() {
    let mut c = common::challenge();
    let config = config().with_merchant_id("acme").unwrap();
    let mut requests: Vec<Request> = Vec::new();
    let out = c.check_status(&config, secs(1)).unwrap();
    requests.push(out.request.clone());
    c.handle_send_failure(out.token, SendFailure::NotSent, secs(1))
        .unwrap();
    let out = c.resend(&config, secs(40)).unwrap();
    requests.push(out.request.clone());
    c.handle_send_failure(out.token, SendFailure::NotSent, secs(40))
        .unwrap();
    let out = c
        .submit(&config, &Otp::new(OTP).unwrap(), secs(41))
        .unwrap();
    requests.push(out.request);
    requests.push(
        StartRequest::new("ord_1", "acme", ROUTING, raw_card())
            .unwrap()
            .request(&config),
    );
    for r in &requests {
        assert!(r.header("authorization").unwrap().starts_with("Basic "));
        assert!(Request::is_sensitive_header("Authorization"));
        check_without_numbers("Request Debug", &format!("{r:?}"));
        // The sandbox's view of the same request redacts too.
        let wire = HttpRequest::from(r);
        secrets().check("sandbox HttpRequest Debug", &format!("{wire:?}"));
        // Converted to the `http` crate, the Authorization header is marked sensitive.
        let h = http::Request::<Vec<u8>>::try_from(r).unwrap();
        assert!(h.headers()["authorization"].is_sensitive());
        secrets().check("http::Request headers Debug", &format!("{:?}", h.headers()));
    }
}

#[test]
fn persisted_state_and_outcomes_of_a_whole_payment_hold_no_secret() {
    let config = config();
    let s = secrets();
    let start = StartRequest::new("ord_dotp_1001", "acme", ROUTING, raw_card()).unwrap();
    let started = start
        .handle_response(200, &fixture("start_direct_otp"), T0)
        .unwrap();
    s.check_debug("Started", &started);
    let Started::Challenge(mut c) = started else {
        panic!("a challenge")
    };
    let otp = Otp::new(OTP).unwrap();
    for (answer, status) in [
        ("submit_pending_wrong_otp", 200),
        ("submit_wrong_otp_400", 400),
        ("error_internal_500", 500),
    ] {
        let now = c.expires_at() - time::Duration::minutes(5);
        if c.may_submit(now).is_ok() {
            let out = c.submit(&config, &otp, now).unwrap();
            let outcome = c
                .handle_response(out.token, status, &fixture(answer), now)
                .unwrap();
            s.check_debug("outcome", &outcome);
        } else {
            let refusal = c.may_submit(now).unwrap_err();
            s.check_error("refusal", &refusal);
            let out = c.check_status(&config, now).unwrap();
            let outcome = c
                .handle_response(out.token, 200, &fixture("order_status_pending"), now)
                .unwrap();
            s.check_debug("outcome", &outcome);
        }
        s.check_challenge(&c, now);
        let json = serde_json::to_string(&*c).unwrap();
        let back: Challenge = serde_json::from_str(&json).unwrap();
        s.check_challenge(&back, now);
    }
    // A stale answer's error shows tokens only.
    let e = c
        .handle_response(invariants::token(999), 200, b"{}", secs(1))
        .unwrap_err();
    s.check_error("input error", &e);
}

#[test]
fn sandbox_debug_hides_its_key_and_otps() {
    let mut sandbox = Sandbox::new(SandboxConfig::new(KEY).with_otp(OtpSource::Fixed(OTP.into())));
    let config = Config::new(sandbox.base_url(), KEY).unwrap();
    let start = StartRequest::new("ord_1", "acme", ROUTING, raw_card()).unwrap();
    let answer = sandbox.handle_request(&start.request(&config), T0);
    assert_eq!(answer.status, 200);
    secrets().check("Sandbox Debug", &format!("{sandbox:?} {sandbox:#?}"));
    secrets().check("SandboxConfig Debug", &format!("{:?}", sandbox.config()));
    // What the sandbox keeps of the card is what the real API shows: BIN and last four.
    let Started::Challenge(c) = start
        .handle_response(answer.status, &answer.body, T0)
        .unwrap()
    else {
        panic!("a challenge")
    };
    secrets().check_challenge(&c, T0);
}

#[test]
fn transport_errors_hold_no_secret() {
    // Nothing listens on this loopback port: the request fails before it is sent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = Config::new(&format!("http://127.0.0.1:{port}"), KEY).unwrap();
    let mut c = common::challenge_with(Policy::default());
    let out = c.submit(&config, &Otp::new(OTP).unwrap(), secs(5)).unwrap();
    let transport = UreqTransport::with_default_agent();
    let e = transport.send(out.request).unwrap_err();
    secrets().check_error("TransportError", &e);
}
