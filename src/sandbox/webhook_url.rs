//! Where a sandbox server delivers its webhooks: a plain-HTTP URL on loopback, checked
//! once, when it is configured.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Why [`SandboxConfig::with_webhook_url`](super::SandboxConfig::with_webhook_url) refused
/// a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookUrlError {
    /// Not `http://`: the sandbox delivers over plain HTTP only. Use `http://127.0.0.1:PORT/...`.
    #[error("the webhook URL must start with http:// (the sandbox delivers plain HTTP on loopback only)")]
    NotHttp,
    /// The host is not a loopback address: the sandbox delivers to nothing else. Use
    /// `127.0.0.1`, `[::1]` or `localhost`.
    #[error("the webhook URL's host must be loopback (127.0.0.1, [::1] or localhost)")]
    NotLoopback,
    /// The URL cannot be read: what is wrong with it.
    #[error("the webhook URL is malformed: {0}")]
    Malformed(&'static str),
}

/// A checked webhook URL: where to connect, and what to put in the request line and `Host`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct WebhookUrl {
    text: String,
    pub(crate) addr: SocketAddr,
    /// `host[:port]`, as written, for the `Host` header.
    pub(crate) authority: String,
    /// The path and query, `/` when none.
    pub(crate) target: String,
}

impl WebhookUrl {
    pub(crate) fn parse(url: &str) -> Result<WebhookUrl, WebhookUrlError> {
        let scheme = url.get(..7).filter(|s| s.eq_ignore_ascii_case("http://"));
        let rest = match scheme {
            Some(_) => &url[7..],
            None => return Err(WebhookUrlError::NotHttp),
        };
        if !rest.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(WebhookUrlError::Malformed(
                "only visible ASCII characters (percent-encode the rest)",
            ));
        }
        if rest.contains('#') {
            return Err(WebhookUrlError::Malformed("a fragment is never sent"));
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(end);
        if authority.contains('@') {
            return Err(WebhookUrlError::Malformed(
                "no user name or password in the URL",
            ));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6
                    .split_once(']')
                    .ok_or(WebhookUrlError::Malformed("an unclosed [ in the host"))?;
                (host, after)
            }
            None => match authority.find(':') {
                Some(i) => authority.split_at(i),
                None => (authority, ""),
            },
        };
        let port = match port {
            "" => 80,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|p| *p != 0)
                .ok_or(WebhookUrlError::Malformed("the port must be 1 to 65535"))?,
        };
        if host.is_empty() {
            return Err(WebhookUrlError::Malformed("no host"));
        }
        let ip = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse::<IpAddr>()
                .map_err(|_| WebhookUrlError::NotLoopback)?
        };
        if !ip.is_loopback() {
            return Err(WebhookUrlError::NotLoopback);
        }
        let target = match target {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_owned(),
        };
        Ok(WebhookUrl {
            text: url.to_owned(),
            addr: SocketAddr::new(ip, port),
            authority: authority.to_owned(),
            target,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_on_loopback_is_accepted() {
        use WebhookUrlError::*;
        let ok = [
            (
                "http://127.0.0.1:8080/webhooks/juspay",
                "127.0.0.1:8080",
                "/webhooks/juspay",
            ),
            ("HTTP://localhost:9", "127.0.0.1:9", "/"),
            ("http://[::1]:7000?x=1", "[::1]:7000", "/?x=1"),
            ("http://127.0.0.2/hook", "127.0.0.2:80", "/hook"),
        ];
        for (url, addr, target) in ok {
            let parsed = WebhookUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(parsed.addr.to_string(), addr, "{url}");
            assert_eq!(parsed.target, target, "{url}");
            assert_eq!(parsed.as_str(), url);
        }
        let refused = [
            ("https://127.0.0.1/hook", NotHttp),
            ("ftp://127.0.0.1/", NotHttp),
            ("127.0.0.1:80/hook", NotHttp),
            ("", NotHttp),
            ("http://example.com/hook", NotLoopback),
            ("http://10.0.0.1/hook", NotLoopback),
            ("http://0.0.0.0:80/", NotLoopback),
            ("http://127.0.0.1.example.com/", NotLoopback),
            ("http://localhost.example.com/", NotLoopback),
            ("http://[::ffff:8.8.8.8]/", NotLoopback),
            ("http://2130706433/", NotLoopback),
            (
                "http://127.0.0.1@example.com/",
                Malformed("no user name or password in the URL"),
            ),
            (
                "http://u:p@127.0.0.1/",
                Malformed("no user name or password in the URL"),
            ),
            (
                "http://127.0.0.1:0/",
                Malformed("the port must be 1 to 65535"),
            ),
            (
                "http://127.0.0.1:99999/",
                Malformed("the port must be 1 to 65535"),
            ),
            (
                "http://127.0.0.1:/",
                Malformed("the port must be 1 to 65535"),
            ),
            ("http://[::1/", Malformed("an unclosed [ in the host")),
            ("http:///hook", Malformed("no host")),
            (
                "http://127.0.0.1/a b",
                Malformed("only visible ASCII characters (percent-encode the rest)"),
            ),
            (
                "http://127.0.0.1/a\r\nX: y",
                Malformed("only visible ASCII characters (percent-encode the rest)"),
            ),
            (
                "http://127.0.0.1/#frag",
                Malformed("a fragment is never sent"),
            ),
        ];
        for (url, want) in refused {
            assert_eq!(WebhookUrl::parse(url), Err(want), "{url:?}");
        }
    }
}
