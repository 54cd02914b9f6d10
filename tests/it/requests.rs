//! Every request the library builds: exact method, URL, headers and body bytes.

use crate::common;

use common::*;
use direct_otp::{
    CardDetails, Config, Method, OrderStatusCheck, Otp, PaymentSource, Request, RequestKind,
    StartRequest,
};

const AUTH: &str = "Basic c2tfdGVzdF9TRUNSRVRLRVk6"; // base64("sk_test_SECRETKEY:")
const FORM: &str = "application/x-www-form-urlencoded";
const TXN: &str = "https://sandbox.juspay.in/v2/txns/txn_36dc6eada1d0463da91dc56c8262a8c3";

fn headers(r: &Request) -> Vec<(&'static str, String)> {
    r.headers().map(|(n, v)| (n, v.to_owned())).collect()
}

/// A request as built, and what it must be.
struct Built {
    name: &'static str,
    request: Request,
    /// The `Debug` of what built it and of the request, which must hold no secret of `hidden`.
    shown: String,
    hidden: &'static [&'static str],
    kind: RequestKind,
    method: Method,
    url: String,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
}

impl Built {
    fn check(self) {
        let Built {
            name,
            request: r,
            shown,
            hidden,
            kind,
            method,
            url,
            headers: want_headers,
            body,
        } = self;
        assert_eq!(
            (r.kind(), r.method(), r.url()),
            (kind, method, url.as_str()),
            "{name}"
        );
        let want: Vec<_> = want_headers
            .iter()
            .map(|(n, v)| (*n, (*v).to_owned()))
            .collect();
        assert_eq!(headers(&r), want, "{name}");
        // Header names are looked up in any case.
        for (n, v) in want_headers {
            assert_eq!(r.header(&n.to_uppercase()), Some(*v), "{name}: {n}");
        }
        assert_eq!(std::str::from_utf8(r.body()), Ok(body), "{name}");
        for secret in hidden.iter().chain(&[KEY]) {
            assert!(!shown.contains(secret), "{name}: {secret:?} in {shown}");
        }
    }
}

/// The start request of the fixtures' order, for `source`.
fn start(source: PaymentSource) -> StartRequest {
    StartRequest::new("ord_dotp_1001", "acme", ROUTING, source).unwrap()
}

fn built() -> Vec<Built> {
    const BASIC: &[(&str, &str)] = &[("authorization", AUTH), ("x-routing-id", ROUTING)];
    const POSTED: &[(&str, &str)] = &[
        ("authorization", AUTH),
        ("x-routing-id", ROUTING),
        ("content-type", FORM),
    ];
    let otp = |s| Otp::new(s).unwrap();
    let command =
        |name, config: &Config, f: &dyn Fn(&mut direct_otp::Challenge, &Config) -> Request| {
            let mut c = challenge();
            let request = f(&mut c, config);
            (name, format!("{request:?}"), request)
        };
    let resend = |c: &mut direct_otp::Challenge, config: &Config| {
        c.resend(config, secs(31)).unwrap().request
    };
    let status = |c: &mut direct_otp::Challenge, config: &Config| {
        c.check_status(config, secs(1)).unwrap().request
    };
    let merchant = config()
        .with_merchant_id("acme")
        .unwrap()
        .with_version("2024-06-01")
        .unwrap();
    let production = Config::new("https://api.juspay.in/", KEY)
        .unwrap()
        .with_merchant_id("acme")
        .unwrap()
        .with_version("2024-06-01")
        .unwrap();
    let prefixed = Config::new("http://127.0.0.1:8080/juspay/", KEY).unwrap();
    let token = start(PaymentSource::Token {
        card_token: "tok_abc/def+1".into(),
        cvv: Some("123".into()),
    })
    .with_payment_method("VISA")
    .unwrap()
    .with_save_to_locker(false);
    let card = start(PaymentSource::Card(CardDetails {
        number: "4111111111111111".into(),
        expiry_month: "12".into(),
        expiry_year: "2030".into(),
        cvv: "987".into(),
        name_on_card: Some("Asha Rao".into()),
    }))
    .with_gateway_id("17")
    .unwrap();
    let starting = |name, s: &StartRequest| {
        let request = s.request(&config());
        (name, format!("{s:?} {request:?}"), request)
    };
    let each = |(name, shown, request), kind, method, url: String, headers, body, hidden| Built {
        name,
        request,
        shown,
        hidden,
        kind,
        method,
        url,
        headers,
        body,
    };
    vec![
        each(
            command("resend", &config(), &resend),
            RequestKind::Resend,
            Method::Post,
            format!("{TXN}/authenticate/ch_7f3a9c2e/resend"),
            BASIC,
            "",
            &[],
        ),
        each(
            command("submit", &config(), &|c, config| {
                c.submit(config, &otp("123456"), secs(5)).unwrap().request
            }),
            RequestKind::Submit,
            Method::Post,
            format!("{TXN}/authenticate"),
            POSTED,
            "challenge_id=ch_7f3a9c2e&answer.otp=123456",
            &["123456"],
        ),
        each(
            command(
                "submit, authorize only",
                &config().with_auto_capture(Some(false)),
                &|c, config| c.submit(config, &otp("0042"), secs(5)).unwrap().request,
            ),
            RequestKind::Submit,
            Method::Post,
            format!("{TXN}/authenticate"),
            POSTED,
            "challenge_id=ch_7f3a9c2e&answer.otp=0042&auto_capture=false",
            &[],
        ),
        each(
            command(
                "submit, capture",
                &config().with_auto_capture(Some(true)),
                &|c, config| c.submit(config, &otp("0042"), secs(5)).unwrap().request,
            ),
            RequestKind::Submit,
            Method::Post,
            format!("{TXN}/authenticate"),
            POSTED,
            "challenge_id=ch_7f3a9c2e&answer.otp=0042&auto_capture=true",
            &[],
        ),
        each(
            command("order status", &config(), &status),
            RequestKind::OrderStatus,
            Method::Get,
            "https://sandbox.juspay.in/orders/ord_dotp_1001".into(),
            BASIC,
            "",
            &[],
        ),
        each(
            command(
                "order status with the merchant headers",
                &production,
                &status,
            ),
            RequestKind::OrderStatus,
            Method::Get,
            "https://api.juspay.in/orders/ord_dotp_1001".into(),
            &[
                ("authorization", AUTH),
                ("x-routing-id", ROUTING),
                ("x-merchantid", "acme"),
                ("version", "2024-06-01"),
            ],
            "",
            &[],
        ),
        each(
            command(
                "order status under a base URL with a path",
                &prefixed,
                &status,
            ),
            RequestKind::OrderStatus,
            Method::Get,
            "http://127.0.0.1:8080/juspay/orders/ord_dotp_1001".into(),
            BASIC,
            "",
            &[],
        ),
        each(
            starting("start with a card token", &token),
            RequestKind::Start,
            Method::Post,
            "https://sandbox.juspay.in/txns".into(),
            POSTED,
            "order_id=ord_dotp_1001&merchant_id=acme&payment_method_type=CARD&payment_method=VISA\
             &card_token=tok_abc%2Fdef%2B1&card_security_code=123&save_to_locker=false\
             &auth_type=OTP&format=json",
            &["tok_abc", "123&"],
        ),
        each(
            starting("start with card fields", &card),
            RequestKind::Start,
            Method::Post,
            "https://sandbox.juspay.in/txns".into(),
            POSTED,
            "order_id=ord_dotp_1001&merchant_id=acme&payment_method_type=CARD\
             &card_number=4111111111111111&card_exp_month=12&card_exp_year=2030\
             &card_security_code=987&name_on_card=Asha+Rao&gateway_id=17&auth_type=OTP&format=json",
            &["4111111111111111", "987", "Asha"],
        ),
        // A lost start answer is settled by the order status, never by a second POST /txns.
        each(
            (
                "the order status of a start",
                String::new(),
                card.order_status_check().request(&config()),
            ),
            RequestKind::OrderStatus,
            Method::Get,
            "https://sandbox.juspay.in/orders/ord_dotp_1001".into(),
            BASIC,
            "",
            &[],
        ),
        // The stand-alone check sends what a challenge sends, with any configuration.
        each(
            (
                "a stand-alone order status check",
                String::new(),
                OrderStatusCheck::new("ord_dotp_1001", ROUTING)
                    .unwrap()
                    .request(&merchant),
            ),
            RequestKind::OrderStatus,
            Method::Get,
            "https://sandbox.juspay.in/orders/ord_dotp_1001".into(),
            &[
                ("authorization", AUTH),
                ("x-routing-id", ROUTING),
                ("x-merchantid", "acme"),
                ("version", "2024-06-01"),
            ],
            "",
            &[],
        ),
    ]
}

#[test]
fn every_request_is_exactly_as_documented() {
    check_cases(built(), Built::check);
}

#[test]
fn an_order_status_check_sends_what_a_challenge_sends() {
    for config in [
        config(),
        config()
            .with_merchant_id("acme")
            .unwrap()
            .with_version("2024-06-01")
            .unwrap(),
    ] {
        let mut c = challenge();
        let ours = c.check_status(&config, secs(1)).unwrap().request;
        let check = OrderStatusCheck::new("ord_dotp_1001", ROUTING).unwrap();
        let theirs = check.request(&config);
        assert_eq!(theirs.kind(), RequestKind::OrderStatus);
        assert_eq!(theirs.method(), ours.method());
        assert_eq!(theirs.url(), ours.url());
        assert_eq!(headers(&theirs), headers(&ours));
        assert_eq!(theirs.body(), b"");
    }
    // Ids that would change the path, or a routing id that would add a header, are refused.
    for (order, routing) in [
        ("../refunds", ROUTING),
        ("ord?x=1", ROUTING),
        ("", ROUTING),
        ("ord_1", "a\r\nx-evil: 1"),
        ("ord_1", ""),
    ] {
        assert!(
            OrderStatusCheck::new(order, routing).is_err(),
            "{order:?} {routing:?}"
        );
    }
}

#[test]
fn hostile_ids_and_headers_are_refused_before_any_request() {
    let token = || PaymentSource::Token {
        card_token: "t".into(),
        cvv: None,
    };
    for order in [
        "", "../admin", "a/b", "a?x=1", "a#b", "a b", "a\r\nb", "a%2F",
    ] {
        assert!(
            StartRequest::new(order, "acme", ROUTING, token()).is_err(),
            "{order:?}"
        );
    }
    assert!(StartRequest::new("o", "acme", "cust\r\nx-evil: 1", token()).is_err());
    assert!(StartRequest::new("o", "ac\nme", ROUTING, token()).is_err());
}

/// One rule per place a value goes: the path rule for `order_id`, the header rule for
/// `x-routing-id`, the form body rule for `merchant_id`, `payment_method`, `gateway_id`.
#[test]
fn each_start_field_is_checked_by_the_rule_of_where_it_goes() {
    use direct_otp::IdError;
    let token = || PaymentSource::Token {
        card_token: "t".into(),
        cvv: None,
    };
    let start = |order: &str, merchant: &str, routing: &str| {
        StartRequest::new(order, merchant, routing, token()).map(|_| ())
    };
    let form = |field: &str, value: &str| {
        let s = StartRequest::new("o", "acme", ROUTING, token()).unwrap();
        match field {
            "merchant_id" => StartRequest::new("o", value, ROUTING, token()).map(|_| ()),
            "payment_method" => s.with_payment_method(value).map(|_| ()),
            _ => s.with_gateway_id(value).map(|_| ()),
        }
    };
    let forbidden = |field, c: &str| {
        Err(IdError::ForbiddenCharacter {
            field,
            character: c.into(),
        })
    };
    // The order id goes in a URL path: dot segments and path characters are refused.
    for (order, want) in [
        ("ord.1", Ok(())),
        (".", Err(IdError::DotSegment { field: "order_id" })),
        ("..", Err(IdError::DotSegment { field: "order_id" })),
        ("a..b", Err(IdError::DotDot { field: "order_id" })),
        ("a b", forbidden("order_id", "' '")),
    ] {
        assert_eq!(start(order, "acme", ROUTING), want, "{order:?}");
    }
    // The routing id goes in a header: visible ASCII and inner spaces.
    for (routing, want) in [
        ("cart 42", Ok(())),
        ("caf\u{e9}", forbidden("x-routing-id", "'\u{e9}'")),
        ("a\r\nx: y", forbidden("x-routing-id", "'\\r'")),
    ] {
        assert_eq!(start("o", "acme", routing), want, "{routing:?}");
    }
    // The three form body fields: percent-encoded on the wire, so only mistakes are refused.
    for field in ["merchant_id", "payment_method", "gateway_id"] {
        for (value, want) in [
            ("VISA", Ok(())),
            ("Acme Traders/India", Ok(())),
            ("caf\u{e9} & co=1", Ok(())),
            ("", Err(IdError::Empty { field })),
            ("VI\r\nSA", forbidden(field, "'\\r'")),
            ("VISA\n", forbidden(field, "'\\n'")),
            ("a\u{0}", forbidden(field, "'\\0'")),
            (
                " VISA",
                forbidden(field, "whitespace (leading or trailing)"),
            ),
            (&"x".repeat(257), Err(IdError::TooLong { field, max: 256 })),
        ] {
            assert_eq!(form(field, value), want, "{field} {value:?}");
        }
    }
    // What is accepted reaches the body percent-encoded.
    let r = StartRequest::new("o", "Acme Traders", ROUTING, token())
        .unwrap()
        .with_gateway_id("g&w=1")
        .unwrap()
        .request(&config());
    let body = std::str::from_utf8(r.body()).unwrap();
    assert!(body.contains("merchant_id=Acme+Traders&"), "{body}");
    assert!(body.contains("gateway_id=g%26w%3D1&"), "{body}");
}
