//! Every request the library builds: exact method, URL, headers and body bytes.

use crate::common;

use common::*;
use direct_otp::{
    CardDetails, Config, Method, OrderStatusCheck, Otp, PaymentSource, RequestKind, StartRequest,
};

const AUTH: &str = "Basic c2tfdGVzdF9TRUNSRVRLRVk6"; // base64("sk_test_SECRETKEY:")

fn headers(r: &direct_otp::Request) -> Vec<(&'static str, String)> {
    r.headers().map(|(n, v)| (n, v.to_owned())).collect()
}

#[test]
fn resend_request_is_exactly_as_documented() {
    let mut c = challenge();
    let out = c.resend(&config(), secs(31)).unwrap();
    let r = &out.request;
    assert_eq!(r.kind(), RequestKind::Resend);
    assert_eq!(r.method(), Method::Post);
    assert_eq!(
        r.url(),
        "https://sandbox.juspay.in/v2/txns/txn_36dc6eada1d0463da91dc56c8262a8c3/authenticate/ch_7f3a9c2e/resend"
    );
    assert_eq!(
        headers(r),
        vec![
            ("authorization", AUTH.to_owned()),
            ("x-routing-id", ROUTING.to_owned())
        ]
    );
    assert_eq!(r.body(), b"");
}

#[test]
fn submit_request_carries_the_form() {
    let mut c = challenge();
    let out = c
        .submit(&config(), &Otp::new("123456").unwrap(), secs(5))
        .unwrap();
    let r = &out.request;
    assert_eq!(r.kind(), RequestKind::Submit);
    assert_eq!(r.method(), Method::Post);
    assert_eq!(
        r.url(),
        "https://sandbox.juspay.in/v2/txns/txn_36dc6eada1d0463da91dc56c8262a8c3/authenticate"
    );
    assert_eq!(
        headers(r),
        vec![
            ("authorization", AUTH.to_owned()),
            ("x-routing-id", ROUTING.to_owned()),
            (
                "content-type",
                "application/x-www-form-urlencoded".to_owned()
            ),
        ]
    );
    assert_eq!(r.body(), b"challenge_id=ch_7f3a9c2e&answer.otp=123456");
}

#[test]
fn submit_sends_auto_capture_when_configured() {
    for (setting, tail) in [
        (Some(false), "&auto_capture=false"),
        (Some(true), "&auto_capture=true"),
    ] {
        let config = config().with_auto_capture(setting);
        let mut c = challenge();
        let out = c
            .submit(&config, &Otp::new("0042").unwrap(), secs(5))
            .unwrap();
        let want = format!("challenge_id=ch_7f3a9c2e&answer.otp=0042{tail}");
        assert_eq!(out.request.body(), want.as_bytes());
    }
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
fn order_status_request_with_and_without_merchant_headers() {
    let mut c = challenge();
    let out = c.check_status(&config(), secs(1)).unwrap();
    let r = &out.request;
    assert_eq!(r.kind(), RequestKind::OrderStatus);
    assert_eq!(r.method(), Method::Get);
    assert_eq!(r.url(), "https://sandbox.juspay.in/orders/ord_dotp_1001");
    assert_eq!(
        headers(r),
        vec![
            ("authorization", AUTH.to_owned()),
            ("x-routing-id", ROUTING.to_owned())
        ]
    );
    assert_eq!(r.body(), b"");

    let config = Config::new("https://api.juspay.in/", KEY)
        .unwrap()
        .with_merchant_id("acme")
        .unwrap()
        .with_version("2024-06-01")
        .unwrap();
    let mut c = challenge();
    let out = c.check_status(&config, secs(1)).unwrap();
    assert_eq!(
        out.request.url(),
        "https://api.juspay.in/orders/ord_dotp_1001"
    );
    assert_eq!(
        headers(&out.request),
        vec![
            ("authorization", AUTH.to_owned()),
            ("x-routing-id", ROUTING.to_owned()),
            ("x-merchantid", "acme".to_owned()),
            ("version", "2024-06-01".to_owned()),
        ]
    );
    assert_eq!(out.request.header("X-MerchantId"), Some("acme"));
}

#[test]
fn start_request_with_a_token() {
    let start = StartRequest::new(
        "ord_dotp_1001",
        "acme",
        ROUTING,
        PaymentSource::Token {
            card_token: "tok_abc/def+1".into(),
            cvv: Some("123".into()),
        },
    )
    .unwrap()
    .with_payment_method("VISA")
    .unwrap()
    .with_save_to_locker(false);
    let r = start.request(&config());
    assert_eq!(r.kind(), RequestKind::Start);
    assert_eq!(r.method(), Method::Post);
    assert_eq!(r.url(), "https://sandbox.juspay.in/txns");
    assert_eq!(
        headers(&r),
        vec![
            ("authorization", AUTH.to_owned()),
            ("x-routing-id", ROUTING.to_owned()),
            (
                "content-type",
                "application/x-www-form-urlencoded".to_owned()
            ),
        ]
    );
    assert_eq!(
        std::str::from_utf8(r.body()).unwrap(),
        "order_id=ord_dotp_1001&merchant_id=acme&payment_method_type=CARD&payment_method=VISA\
         &card_token=tok_abc%2Fdef%2B1&card_security_code=123&save_to_locker=false\
         &auth_type=OTP&format=json"
    );
    let shown = format!("{start:?} {r:?}");
    assert!(!shown.contains("tok_abc"), "{shown}");
    assert!(!shown.contains("123&"), "{shown}");
}

#[test]
fn start_request_with_card_fields() {
    let start = StartRequest::new(
        "ord_dotp_1001",
        "acme",
        ROUTING,
        PaymentSource::Card(CardDetails {
            number: "4111111111111111".into(),
            expiry_month: "12".into(),
            expiry_year: "2030".into(),
            cvv: "987".into(),
            name_on_card: Some("Asha Rao".into()),
        }),
    )
    .unwrap()
    .with_gateway_id("17")
    .unwrap();
    let r = start.request(&config());
    assert_eq!(
        std::str::from_utf8(r.body()).unwrap(),
        "order_id=ord_dotp_1001&merchant_id=acme&payment_method_type=CARD\
         &card_number=4111111111111111&card_exp_month=12&card_exp_year=2030\
         &card_security_code=987&name_on_card=Asha+Rao&gateway_id=17&auth_type=OTP&format=json"
    );
    let shown = format!("{start:?}{r:?}");
    for secret in ["4111111111111111", "987", "Asha"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    // A lost start answer is settled by the order status, never by a second POST /txns.
    let check = start.order_status_check().request(&config());
    assert_eq!(check.method(), Method::Get);
    assert_eq!(
        check.url(),
        "https://sandbox.juspay.in/orders/ord_dotp_1001"
    );
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

#[test]
fn a_custom_base_url_prefix_is_kept() {
    let config = Config::new("http://127.0.0.1:8080/juspay/", KEY).unwrap();
    let mut c = challenge();
    let out = c.check_status(&config, secs(1)).unwrap();
    assert_eq!(
        out.request.url(),
        "http://127.0.0.1:8080/juspay/orders/ord_dotp_1001"
    );
}
