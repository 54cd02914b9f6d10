//! Conversions between the library's [`Request`] and the [`http`](::http) crate's types.
//!
//! Only the directions that make sense exist: a [`Request`] is built by the library and
//! goes out, so it converts *into* an `http::Request`; an answer comes in, so an
//! `http::Response` gives the status and body that
//! [`Challenge::handle_response`](crate::Challenge::handle_response) and
//! [`StartRequest::handle_response`](crate::StartRequest::handle_response) take.

use ::http::header::{HeaderName, HeaderValue};

use super::{TransportError, TransportErrorKind};
use crate::request::{Method, Request};

impl TryFrom<Request> for ::http::Request<Vec<u8>> {
    type Error = TransportError;

    /// Converts a request, moving its body. The `Authorization` header is marked sensitive
    /// ([`HeaderValue::set_sensitive`]), so HTTP/2 clients never index it and `Debug`
    /// output of the `http` crate hides it.
    ///
    /// The body is not hidden: the `http` crate's `Debug` prints a `Vec<u8>` body byte by
    /// byte, and the body of a submit holds the OTP (and that of a start, card data). Log
    /// the library's [`Request`] instead, whose `Debug` redacts secret bodies.
    ///
    /// Fails with [`TransportErrorKind::InvalidRequest`] if the `http` crate refuses the URL
    /// (a base URL with characters it does not accept) or a header.
    ///
    /// ```
    /// use direct_otp::{Config, PaymentSource, StartRequest};
    ///
    /// let config = Config::sandbox("my_api_key")?;
    /// let start = StartRequest::new(
    ///     "ord_1",
    ///     "acme",
    ///     "customer_1",
    ///     PaymentSource::Token { card_token: "tok_1".into(), cvv: None },
    /// )?;
    /// let request = http::Request::<Vec<u8>>::try_from(start.request(&config))?;
    /// assert_eq!(request.uri(), "https://sandbox.juspay.in/txns");
    /// assert!(request.headers()["authorization"].is_sensitive());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn try_from(request: Request) -> Result<Self, Self::Error> {
        let builder = head(&request)?;
        builder.body(request.into_body()).map_err(invalid)
    }
}

impl TryFrom<&Request> for ::http::Request<Vec<u8>> {
    type Error = TransportError;

    /// Converts a request, copying its body. See the conversion from an owned [`Request`].
    fn try_from(request: &Request) -> Result<Self, Self::Error> {
        head(request)?
            .body(request.body().to_vec())
            .map_err(invalid)
    }
}

/// Method, URI and headers.
fn head(request: &Request) -> Result<::http::request::Builder, TransportError> {
    let method = match request.method() {
        Method::Get => ::http::Method::GET,
        Method::Post => ::http::Method::POST,
    };
    let uri = ::http::Uri::try_from(request.url()).map_err(invalid)?;
    let mut builder = ::http::Request::builder().method(method).uri(uri);
    let headers = builder
        .headers_mut()
        .ok_or_else(|| TransportError::from_kind(TransportErrorKind::InvalidRequest))?;
    headers.reserve(request.headers().len());
    for (name, value) in request.headers() {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(invalid)?;
        let mut value = HeaderValue::from_str(value).map_err(invalid)?;
        value.set_sensitive(Request::is_sensitive_header(name.as_str()));
        headers.append(name, value);
    }
    Ok(builder)
}

fn invalid(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> TransportError {
    TransportError::new(TransportErrorKind::InvalidRequest, e)
}

/// The HTTP status and body of a response, as
/// [`Challenge::handle_response`](crate::Challenge::handle_response) and
/// [`StartRequest::handle_response`](crate::StartRequest::handle_response) take them.
///
/// Read the body with a size limit first (the adapters use 64 KiB): answers of this API are
/// a few KiB.
///
/// ```
/// use direct_otp::transport::response_parts;
///
/// let response = http::Response::builder().status(400).body(br#"{"status":"error"}"#.to_vec())?;
/// let (status, body) = response_parts(&response);
/// assert_eq!(status, 400);
/// assert_eq!(body, br#"{"status":"error"}"#);
/// # Ok::<(), http::Error>(())
/// ```
pub fn response_parts<B: AsRef<[u8]>>(response: &::http::Response<B>) -> (u16, &[u8]) {
    (response.status().as_u16(), response.body().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Otp, Started};

    fn challenge() -> crate::Challenge {
        let body = br#"{"order_id":"ord_1","status":"PENDING_VBV","payment":{"authentication":{
            "method":"POST","url":"https://x/v2/txns/txn_1/authenticate",
            "params":{"id":"txn_1","challenge_id":"ch_1","auth_type":"OTP"}}}}"#;
        let now = time::macros::datetime!(2026-11-25 10:00 UTC);
        match Started::from_response("cust_1", Default::default(), 200, body, now).unwrap() {
            Started::Challenge(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn submit_converts_with_every_header_and_the_body() {
        let config = Config::new("http://127.0.0.1:8080/prefix", "sk_key")
            .unwrap()
            .with_merchant_id("acme")
            .unwrap();
        let now = time::macros::datetime!(2026-11-25 10:00 UTC);
        let mut c = challenge();
        let out = c
            .submit(&config, &Otp::new("123456").unwrap(), now)
            .unwrap();
        let ours = out.request.clone();
        let theirs = ::http::Request::<Vec<u8>>::try_from(&out.request).unwrap();
        assert_eq!(theirs.method(), ::http::Method::POST);
        assert_eq!(
            theirs.uri(),
            "http://127.0.0.1:8080/prefix/v2/txns/txn_1/authenticate"
        );
        assert_eq!(theirs.headers().len(), ours.headers().len());
        for (name, value) in ours.headers() {
            let got = &theirs.headers()[name];
            assert_eq!(got, value, "{name}");
            assert_eq!(got.is_sensitive(), name == "authorization", "{name}");
        }
        assert_eq!(theirs.body(), ours.body());
        // The owned conversion moves the same body.
        let owned = ::http::Request::<Vec<u8>>::try_from(out.request).unwrap();
        assert_eq!(owned.body(), ours.body());
        // The http crate's Debug hides the sensitive value.
        assert!(!format!("{theirs:?}").contains("Basic"));
    }

    #[test]
    fn get_has_an_empty_body() {
        let config = Config::sandbox("k").unwrap();
        let now = time::macros::datetime!(2026-11-25 10:00 UTC);
        let out = challenge().check_status(&config, now).unwrap();
        let r = ::http::Request::<Vec<u8>>::try_from(out.request).unwrap();
        assert_eq!(r.method(), ::http::Method::GET);
        assert_eq!(r.uri(), "https://sandbox.juspay.in/orders/ord_1");
        assert!(r.body().is_empty());
    }

    #[test]
    fn a_url_the_http_crate_refuses_never_gets_this_far() {
        // Config refuses what the http crate would refuse in a URI path, so a conversion
        // failure is left for a future header or URL rule that drifts from the http crate's:
        // it is then an invalid request, surely not sent.
        assert!(Config::new("http://127.0.0.1/<x>", "k").is_err());
        let e = invalid(::http::Uri::try_from("http://127.0.0.1/<x>").unwrap_err());
        assert_eq!(e.kind(), TransportErrorKind::InvalidRequest);
        assert!(!e.may_have_been_sent());
    }

    #[test]
    fn response_parts_gives_status_and_body() {
        let r = ::http::Response::builder()
            .status(302)
            .body(b"moved".to_vec())
            .unwrap();
        assert_eq!(response_parts(&r), (302, &b"moved"[..]));
        let r = ::http::Response::new("text");
        assert_eq!(response_parts(&r), (200, &b"text"[..]));
    }
}
