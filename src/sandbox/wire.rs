//! The sandbox's requests and responses as plain data, and the small parsing they need
//! (header look-up, form bodies, target splitting).

use std::fmt;
use std::time::Duration;

/// An HTTP request as the sandbox sees it.
///
/// Build one by hand, from the library's [`Request`](crate::Request) (`From<&Request>`), or
/// let `SandboxServer` build it from the wire. `Debug` redacts the `Authorization` header
/// and shows only the body's length (it may hold an OTP or card data).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct HttpRequest {
    /// `GET`, `POST`, ... (compared case-sensitively, as HTTP does).
    pub method: String,
    /// The path and query, e.g. `/orders/ord_1` (no scheme or host).
    pub target: String,
    /// Header names and values; names are compared case-insensitively.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A request with no headers and no body.
    pub fn new(method: &str, target: &str) -> Self {
        HttpRequest {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(p, _)| p)
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let v = if crate::Request::is_sensitive_header(n) {
                    "[redacted]"
                } else {
                    v.as_str()
                };
                (n.as_str(), v)
            })
            .collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("headers", &headers)
            .field("body", &format_args!("[{} bytes]", self.body.len()))
            .finish()
    }
}

/// Converts a request built by the library, keeping the path and query of its URL.
impl From<&crate::Request> for HttpRequest {
    fn from(r: &crate::Request) -> Self {
        HttpRequest {
            method: r.method().as_str().to_owned(),
            target: target_of(r.url()).to_owned(),
            headers: r
                .headers()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
            body: r.body().to_vec(),
        }
    }
}

/// The path and query of an absolute URL (`/` when it has none).
pub(crate) fn target_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    match after_scheme.find(['/', '?']) {
        Some(i) if after_scheme[i..].starts_with('/') => &after_scheme[i..],
        _ => "/",
    }
}

/// How (and whether) a response reaches the client: where the scripted faults "slow" and
/// "dropped response" show up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// Answer at once.
    Now,
    /// Answer after this delay (the server sleeps; an in-process test decides what the
    /// delay means for its client, e.g. a timeout).
    After(Duration),
    /// Never answer: the server closes the connection without a response. The response
    /// still describes what would have been sent.
    Never,
    /// Never answer: the server resets the connection (TCP RST) without a response. The
    /// response still describes what would have been sent.
    Reset,
    /// The head and half of the body are sent, then the connection is closed: the client
    /// gets a truncated answer (an error while reading the body).
    Truncated,
    /// The head and half of the body are sent at once, the rest after this delay.
    Stalled(Duration),
}

/// The sandbox's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// Header names and values (`content-type`).
    pub headers: Vec<(String, String)>,
    /// The body (JSON for every API endpoint).
    pub body: Vec<u8>,
    /// Whether the client gets it (see [`Fault`](super::Fault)).
    pub delivery: Delivery,
}

impl HttpResponse {
    pub(crate) fn json(status: u16, body: &serde_json::Value) -> Self {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            delivery: Delivery::Now,
        }
    }

    pub(crate) fn html(status: u16, body: String) -> Self {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
            body: body.into_bytes(),
            delivery: Delivery::Now,
        }
    }

    /// The body as JSON, if it is JSON.
    pub fn json_body(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True when the client gets the whole response (at once or late).
    pub fn is_delivered(&self) -> bool {
        matches!(
            self.delivery,
            Delivery::Now | Delivery::After(_) | Delivery::Stalled(_)
        )
    }
}

/// An `application/x-www-form-urlencoded` body, decoded.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(body: &[u8]) -> Form {
        Form(
            body.split(|&b| b == b'&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let mut it = pair.splitn(2, |&b| b == b'=');
                    let name = decode(it.next().unwrap_or_default());
                    let value = decode(it.next().unwrap_or_default());
                    (name, value)
                })
                .collect(),
        )
    }

    /// The first value of a field, if present and not empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// Form-urldecodes one name or value (`+` is a space, `%XX` a byte; a bad escape is kept
/// as is, and invalid UTF-8 is replaced).
fn decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                // Exactly two hex digits (`from_str_radix` would also take a sign: `%+f`).
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| Some(hex_digit(h[0])? << 4 | hex_digit(h[1])?));
                if let Some(b) = hex {
                    out.push(b);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The value of one ASCII hex digit.
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_of_urls() {
        assert_eq!(target_of("http://127.0.0.1:80/txns"), "/txns");
        assert_eq!(target_of("https://h/p/orders/o?x=1"), "/p/orders/o?x=1");
        assert_eq!(target_of("https://h"), "/");
        assert_eq!(target_of("https://h?x"), "/");
        assert_eq!(target_of("/orders/x"), "/orders/x");
    }

    #[test]
    fn debug_hides_credentials_and_bodies() {
        let r = HttpRequest::new("POST", "/v2/txns/t/authenticate")
            .with_header("Authorization", "Basic c2VjcmV0Og==")
            .with_header("x-routing-id", "cust_1")
            .with_body("challenge_id=c&answer.otp=424242");
        let shown = format!("{r:?}");
        assert!(!shown.contains("c2VjcmV0Og"), "{shown}");
        assert!(!shown.contains("424242"), "{shown}");
        assert!(
            shown.contains("cust_1") && shown.contains("[32 bytes]"),
            "{shown}"
        );
    }

    #[test]
    fn forms_decode() {
        let f = Form::parse(b"answer.otp=12+34&a%26b=x%3Dy&bad=%zz%4&empty=&=v");
        assert_eq!(f.get("answer.otp"), Some("12 34"));
        assert_eq!(f.get("a&b"), Some("x=y"));
        assert_eq!(f.get("bad"), Some("%zz%4"));
        assert_eq!(f.get("empty"), None);
        assert_eq!(f.get("missing"), None);
        assert_eq!(Form::parse(b"n=%C3%A9%FF").get("n"), Some("é\u{FFFD}"));
    }

    #[test]
    fn an_escape_is_a_percent_and_exactly_two_hex_digits() {
        for (raw, decoded) in [
            ("%2B", "+"),
            ("%2b%41%7a", "+Az"),
            ("%0F", "\u{f}"),
            // Not 0x0F: the `%` stays, and `+` is a space as everywhere in a form.
            ("%+f", "% f"),
            ("%-1", "%-1"),
            ("%+0", "% 0"),
            ("% f", "% f"),
            ("%f", "%f"),
            ("%", "%"),
            ("%g0", "%g0"),
            ("%0x", "%0x"),
            ("%%41", "%A"),
            ("%é", "%é"),
        ] {
            let body = format!("v={raw}");
            assert_eq!(
                Form::parse(body.as_bytes()).get("v"),
                Some(decoded),
                "{raw}"
            );
        }
    }
}
