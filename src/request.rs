//! Outgoing HTTP requests as plain data, and the functions that build each of them.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::config::Config;
use crate::otp::Otp;
use crate::token::{RequestKind, Token};

/// HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
}

impl Method {
    /// `"GET"` or `"POST"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// An HTTP request to send: method, absolute URL, headers, body.
///
/// `Debug` redacts the `Authorization` header and any body that carries an OTP or card data.
/// Such a body (submit, start) is wiped ([`zeroize`]) when the request is dropped, and was
/// built without leaving copies in freed memory. Wiping stops where the library lets go of
/// the bytes: [`into_body`](Self::into_body) and the conversion to an `http::Request` hand
/// the buffer to you or your HTTP client, whose copies (and the kernel's) are out of reach.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    kind: RequestKind,
    method: Method,
    url: String,
    headers: Vec<(&'static str, Arc<str>)>,
    body: Vec<u8>,
    body_is_secret: bool,
}

impl Request {
    /// What the request is for.
    pub fn kind(&self) -> RequestKind {
        self.kind
    }

    /// The HTTP method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The absolute URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The headers, names in lower case, in the order to send them.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&'static str, &str)> + '_ {
        self.headers.iter().map(|(n, v)| (*n, &**v))
    }

    /// The value of a header, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }

    /// The body (empty for `GET` and resend).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body out, for transports that need an owned buffer. The buffer is then
    /// yours: it is no longer wiped on drop (`zeroize::Zeroizing` can do that for you).
    pub fn into_body(mut self) -> Vec<u8> {
        std::mem::take(&mut self.body)
    }

    /// True when the body carries the OTP or card data (submit, start): never log it.
    pub fn body_is_secret(&self) -> bool {
        self.body_is_secret
    }

    /// True for a header whose value is a credential (`Authorization`).
    pub fn is_sensitive_header(name: &str) -> bool {
        name.eq_ignore_ascii_case("authorization")
    }

    fn new(kind: RequestKind, method: Method, url: String, config: &Config) -> Self {
        let mut headers = Vec::with_capacity(5);
        headers.push(("authorization", Arc::clone(config.authorization())));
        Request {
            kind,
            method,
            url,
            headers,
            body: Vec::new(),
            body_is_secret: false,
        }
    }

    fn header_push(&mut self, name: &'static str, value: &Arc<str>) {
        self.headers.push((name, Arc::clone(value)));
    }

    fn form(&mut self, form: Vec<u8>, secret: bool) {
        self.headers.push(("content-type", Arc::clone(&FORM_TYPE)));
        self.body = form;
        self.body_is_secret = secret;
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        self.wipe_secret_body();
    }
}

impl Request {
    fn wipe_secret_body(&mut self) {
        if self.body_is_secret {
            // The whole capacity, then the length: nothing of the OTP or card is left.
            self.body.zeroize();
        }
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Headers<'a>(&'a [(&'static str, Arc<str>)]);
        impl fmt::Debug for Headers<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|(n, v)| {
                        let v: &str = if Request::is_sensitive_header(n) {
                            "[redacted]"
                        } else {
                            v
                        };
                        (n, v)
                    }))
                    .finish()
            }
        }
        let body = if self.body_is_secret {
            "[redacted]".to_owned()
        } else {
            String::from_utf8_lossy(&self.body).into_owned()
        };
        f.debug_struct("Request")
            .field("kind", &self.kind)
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &Headers(&self.headers))
            .field("body", &body)
            .finish()
    }
}

/// A request issued by a challenge, with the token its answer must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Hand this back with the answer.
    pub token: Token,
    /// What to send.
    pub request: Request,
}

static FORM_TYPE: std::sync::LazyLock<Arc<str>> =
    std::sync::LazyLock::new(|| Arc::from("application/x-www-form-urlencoded"));

fn url(config: &Config, parts: &[&str]) -> String {
    let len = config.base_url().len() + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut url = String::with_capacity(len);
    url.push_str(config.base_url());
    for p in parts {
        url.push_str(p);
    }
    url
}

/// `POST /v2/txns/{id}/authenticate/{challenge_id}/resend`: no body; headers
/// `Authorization` and `x-routing-id`, exactly as documented. Ids must already be checked.
pub(crate) fn resend(config: &Config, txn: &str, challenge: &str, routing: &Arc<str>) -> Request {
    let url = url(
        config,
        &["/v2/txns/", txn, "/authenticate/", challenge, "/resend"],
    );
    let mut r = Request::new(RequestKind::Resend, Method::Post, url, config);
    r.header_push("x-routing-id", routing);
    r
}

/// `POST /v2/txns/{id}/authenticate`, form `challenge_id`, `answer.otp`, optional
/// `auto_capture`.
pub(crate) fn submit(
    config: &Config,
    txn: &str,
    challenge: &str,
    routing: &Arc<str>,
    otp: &Otp,
) -> Request {
    let url = url(config, &["/v2/txns/", txn, "/authenticate"]);
    let mut r = Request::new(RequestKind::Submit, Method::Post, url, config);
    r.header_push("x-routing-id", routing);
    let mut form = Form::with_capacity(64 + challenge.len());
    form.field("challenge_id", challenge);
    form.field("answer.otp", otp.expose());
    if let Some(capture) = config.auto_capture() {
        form.field("auto_capture", if capture { "true" } else { "false" });
    }
    r.form(form.into_bytes(), true);
    r
}

/// `GET /orders/{order_id}`, with `x-merchantid` and `version` when configured.
pub(crate) fn order_status(config: &Config, order: &str, routing: &Arc<str>) -> Request {
    let url = url(config, &["/orders/", order]);
    let mut r = Request::new(RequestKind::OrderStatus, Method::Get, url, config);
    r.header_push("x-routing-id", routing);
    if let Some(m) = config.merchant_id() {
        r.header_push("x-merchantid", m);
    }
    if let Some(v) = config.version() {
        r.header_push("version", v);
    }
    r
}

/// `GET /cardbins/{bin}?merchant_id=..&options.check_direct_otp_support=true`, with
/// `x-routing-id` when given and `x-merchantid`/`version` when configured. The BIN must
/// already be checked (digits only); the merchant id is form-encoded into the query.
pub(crate) fn card_bin(
    config: &Config,
    bin: &str,
    merchant_id: &str,
    routing: Option<&Arc<str>>,
) -> Request {
    let mut query = Form::with_capacity(64 + merchant_id.len());
    query.field("merchant_id", merchant_id);
    query.field("options.check_direct_otp_support", "true");
    // Not a secret: taken out of the wiping buffer as it is.
    let query = String::from_utf8(std::mem::take(&mut query.0)).unwrap_or_default();
    let url = url(config, &["/cardbins/", bin, "?", &query]);
    let mut r = Request::new(RequestKind::CardBin, Method::Get, url, config);
    if let Some(routing) = routing {
        r.header_push("x-routing-id", routing);
    }
    if let Some(m) = config.merchant_id() {
        r.header_push("x-merchantid", m);
    }
    if let Some(v) = config.version() {
        r.header_push("version", v);
    }
    r
}

/// `POST /txns` with a prepared form body (holds card data: redacted in `Debug`).
pub(crate) fn start(config: &Config, routing: &Arc<str>, form: Form) -> Request {
    let url = url(config, &["/txns"]);
    let mut r = Request::new(RequestKind::Start, Method::Post, url, config);
    r.header_push("x-routing-id", routing);
    r.form(form.into_bytes(), true);
    r
}

/// An `application/x-www-form-urlencoded` body being built. Every form holds a secret (the
/// OTP, card data), so it never lets the allocator see its bytes: it grows by copying into a
/// larger buffer and wiping the old one, and wipes itself if dropped unused.
pub(crate) struct Form(Vec<u8>);

impl Form {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Form(Vec::with_capacity(n))
    }

    pub(crate) fn field(&mut self, name: &str, value: &str) {
        // `&`, `=`, and at most three bytes per byte encoded.
        self.reserve(2 + 3 * (name.len() + value.len()));
        if !self.0.is_empty() {
            self.0.push(b'&');
        }
        encode_into(name, &mut self.0);
        self.0.push(b'=');
        encode_into(value, &mut self.0);
    }

    /// Room for `additional` more bytes, without a reallocation that would free a buffer
    /// holding a secret unwiped.
    fn reserve(&mut self, additional: usize) {
        if self.0.capacity() - self.0.len() >= additional {
            return;
        }
        let needed = self.0.len().saturating_add(additional);
        let mut bigger = Vec::with_capacity(needed.max(self.0.capacity().saturating_mul(2)));
        bigger.extend_from_slice(&self.0);
        self.0.zeroize();
        self.0 = bigger;
    }

    /// The body, handed to a [`Request`] that wipes it on drop.
    pub(crate) fn into_bytes(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for Form {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Form-urlencodes `s` (WHATWG `application/x-www-form-urlencoded` byte serializer).
pub(crate) fn encode_into(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(b),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> String {
        let mut f = Form::with_capacity(0);
        for (n, v) in pairs {
            f.field(n, v);
        }
        String::from_utf8(f.into_bytes()).unwrap()
    }

    #[test]
    fn form_encoding() {
        assert_eq!(
            form(&[("answer.otp", "1234"), ("a b", "x&y=z/é+")]),
            "answer.otp=1234&a+b=x%26y%3Dz%2F%C3%A9%2B"
        );
    }

    #[test]
    fn debug_redacts_credentials_and_secret_bodies() {
        let config = Config::sandbox("sk_secret").unwrap();
        let routing: Arc<str> = "cust".into();
        let otp = Otp::new("424242").unwrap();
        let r = submit(&config, "txn_1", "ch_1", &routing, &otp);
        let shown = format!("{r:?}");
        assert!(!shown.contains("424242"), "{shown}");
        assert!(!shown.contains("Basic"), "{shown}");
        assert!(shown.contains("[redacted]"));
        let r = order_status(&config, "ord_1", &routing);
        assert!(format!("{r:?}").contains("/orders/ord_1"));
    }

    /// Every byte of `v`'s buffer, its spare capacity included.
    #[allow(
        unsafe_code,
        reason = "the only way to look at a buffer's spare capacity"
    )]
    fn whole_buffer(v: &Vec<u8>) -> Vec<u8> {
        // SAFETY: only called after `zeroize`, which writes zeros over the whole capacity,
        // so every byte up to the capacity is initialized; `v` is borrowed, so it stays alive.
        unsafe { std::slice::from_raw_parts(v.as_ptr(), v.capacity()) }.to_vec()
    }

    #[test]
    fn secret_bodies_are_wiped_public_ones_kept() {
        let config = Config::sandbox("sk_secret").unwrap();
        let routing: Arc<str> = "cust".into();
        let otp = Otp::new("424242").unwrap();
        let mut r = submit(&config, "txn_1", "ch_1", &routing, &otp);
        assert!(r.body().windows(6).any(|w| w == b"424242"));
        r.wipe_secret_body();
        assert!(r.body().is_empty());
        assert!(whole_buffer(&r.body).iter().all(|&b| b == 0));
        let mut r = order_status(&config, "ord_1", &routing);
        r.body = b"not secret".to_vec();
        r.wipe_secret_body();
        assert_eq!(r.body(), b"not secret");
    }

    #[test]
    fn a_form_grows_without_losing_or_leaking_bytes() {
        let mut f = Form::with_capacity(4);
        let long = "4111111111111111".repeat(20);
        f.field("card_number", &long);
        f.field("cvv", "987");
        f.field("x", "y");
        assert_eq!(
            String::from_utf8(f.into_bytes()).unwrap(),
            format!("card_number={long}&cvv=987&x=y")
        );
    }
}
