//! The base URL a [`Config`](crate::Config) sends to, checked strictly, once.
//!
//! Accepted: `http://` or `https://`, a host (a DNS name, an IPv4 address, or an IPv6
//! address in brackets), an optional port from 1 to 65535, and an optional path prefix of
//! non-empty segments. Refused, with the [`BaseUrlError`] saying why: any other scheme, user
//! name or password (`user:pw@`), an empty or malformed host, a port that is not a number
//! from 1 to 65535, a query or fragment, a `.` or `..` path segment (`%2e` counted as a
//! dot, in any case), an empty segment (`//`), characters a URL path may not hold, and
//! anything outside visible ASCII.
//!
//! Why not a URL crate: `http::Uri` accepts `https://:443`, `https://host:abc`,
//! `https://u:p@a@b`, port 99999 and `/../` as they are, so every rule would still be ours;
//! the `url` crate refuses more but rewrites dot segments away and percent-encodes a second
//! `@` instead of refusing them, and brings about 45 crates (IDNA, ICU) into a core that
//! has five direct dependencies. The accepted form is a subset of what both accept, which the
//! tests check against `http::Uri` (what the transports convert to).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::BaseUrlError;

/// The checked base URL: the scheme in lower case, the rest as given, without trailing `/`.
pub(crate) fn check(url: &str) -> Result<String, BaseUrlError> {
    if let Some(character) = url.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(BaseUrlError::Character { character });
    }
    let (scheme, rest) = url.split_once("://").ok_or(BaseUrlError::Scheme)?;
    let scheme = if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else {
        return Err(BaseUrlError::Scheme);
    };
    if rest.contains(['?', '#']) {
        return Err(BaseUrlError::QueryOrFragment);
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    check_authority(authority)?;
    let path = path.trim_end_matches('/');
    check_path(path)?;
    let mut checked = String::with_capacity(scheme.len() + 3 + authority.len() + path.len());
    checked.push_str(scheme);
    checked.push_str("://");
    checked.push_str(authority);
    checked.push_str(path);
    Ok(checked)
}

/// `host[:port]`, no user information.
fn check_authority(authority: &str) -> Result<(), BaseUrlError> {
    if authority.contains('@') {
        return Err(BaseUrlError::UserInfo);
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (ip, after) = bracketed.split_once(']').ok_or(BaseUrlError::Host)?;
        // No zone id (`%25eth0`): a base URL names a host, not an interface.
        ip.parse::<Ipv6Addr>().map_err(|_| BaseUrlError::Host)?;
        match after {
            "" => (ip, None),
            _ => (ip, Some(after.strip_prefix(':').ok_or(BaseUrlError::Host)?)),
        }
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(BaseUrlError::MissingHost);
        }
        check_host(host)?;
        (host, port)
    };
    debug_assert!(!host.is_empty());
    if let Some(port) = port {
        check_port(port)?;
    }
    Ok(())
}

/// A DNS name (letters, digits, `-` and `_`, in non-empty labels of at most 63 bytes that
/// neither start nor end with `-`), or an IPv4 address when every label is digits.
fn check_host(host: &str) -> Result<(), BaseUrlError> {
    if host.len() > 253 {
        return Err(BaseUrlError::Host);
    }
    let labels_ok = host.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if !labels_ok {
        return Err(BaseUrlError::Host);
    }
    // `999.1.1.1` or `1.2.3` would be looked up as names and fail late: refuse them now.
    let numeric = host
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if numeric && host.parse::<Ipv4Addr>().is_err() {
        return Err(BaseUrlError::Host);
    }
    Ok(())
}

/// 1 to 5 ASCII digits, a value from 1 to 65535 (no sign, no empty port).
fn check_port(port: &str) -> Result<(), BaseUrlError> {
    let digits = (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit());
    match port.parse::<u16>() {
        Ok(n) if digits && n != 0 => Ok(()),
        _ => Err(BaseUrlError::Port),
    }
}

/// `""` or `/segment/...`: non-empty segments of RFC 3986 `pchar`, none a dot segment.
fn check_path(path: &str) -> Result<(), BaseUrlError> {
    if path.is_empty() {
        return Ok(());
    }
    for segment in path.split('/').skip(1) {
        if segment.is_empty() {
            return Err(BaseUrlError::EmptySegment);
        }
        let mut dots_only = true;
        let bytes = segment.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
                let Some(hex) = hex else {
                    return Err(BaseUrlError::PercentEncoding);
                };
                dots_only &= hex.eq_ignore_ascii_case(b"2e");
                i += 3;
                continue;
            }
            let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
            let sub_delim = matches!(
                b,
                b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
            );
            if !(unreserved || sub_delim || b == b':' || b == b'@') {
                return Err(BaseUrlError::PathCharacter {
                    character: char::from(b),
                });
            }
            dots_only &= b == b'.';
            i += 1;
        }
        // A segment of only (possibly encoded) dots: `.` and `..` are dot segments;
        // three or more are a name to RFC 3986 but walk up on some servers: refused too.
        if dots_only {
            return Err(BaseUrlError::DotSegment);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_base_urls_and_their_normal_form() {
        for (url, want) in [
            ("https://sandbox.juspay.in", "https://sandbox.juspay.in"),
            ("https://sandbox.juspay.in/", "https://sandbox.juspay.in"),
            ("https://api.juspay.in:443", "https://api.juspay.in:443"),
            ("HTTPS://Sandbox.Juspay.in", "https://Sandbox.Juspay.in"),
            (
                "http://127.0.0.1:8080/prefix",
                "http://127.0.0.1:8080/prefix",
            ),
            (
                "http://127.0.0.1:8080/prefix/",
                "http://127.0.0.1:8080/prefix",
            ),
            ("http://localhost:1", "http://localhost:1"),
            ("http://h:65535", "http://h:65535"),
            ("http://[::1]:8080/p", "http://[::1]:8080/p"),
            ("http://[2001:db8::7]", "http://[2001:db8::7]"),
            ("http://juspay_mock:9000", "http://juspay_mock:9000"),
            (
                "https://h/a.b/v1.2/x~y/a:b@c/%41",
                "https://h/a.b/v1.2/x~y/a:b@c/%41",
            ),
            ("https://h/.well-known/x..y", "https://h/.well-known/x..y"),
            ("https://h/%2e%2fx", "https://h/%2e%2fx"),
        ] {
            assert_eq!(check(url), Ok(want.to_owned()), "{url}");
        }
    }

    #[test]
    fn refused_base_urls_say_why() {
        use BaseUrlError as E;
        for (url, want) in [
            ("sandbox.juspay.in", E::Scheme),
            ("ftp://x", E::Scheme),
            ("javascript://x", E::Scheme),
            ("https:/x", E::Scheme),
            ("https://", E::MissingHost),
            ("https:///x", E::MissingHost),
            ("https://:443", E::MissingHost),
            ("https://host:abc", E::Port),
            ("https://host:", E::Port),
            ("https://host:+80", E::Port),
            ("https://host:0", E::Port),
            ("https://host:99999", E::Port),
            ("https://host:065536", E::Port),
            ("https://host:1:2", E::Port),
            ("https://[::1", E::Host),
            ("https://[::1]x", E::Host),
            ("https://[zz]", E::Host),
            ("https://[fe80::1%25eth0]", E::Host),
            ("https://::1", E::MissingHost),
            ("https://a..b", E::Host),
            ("https://-h", E::Host),
            ("https://h-.x", E::Host),
            ("https://h.", E::Host),
            ("https://999.1.1.1", E::Host),
            ("https://1.2.3", E::Host),
            ("https://h%41", E::Host),
            ("https://u:p@a@b", E::UserInfo),
            ("https://user:pw@sandbox.juspay.in", E::UserInfo),
            ("https://user@h", E::UserInfo),
            ("https://@h", E::UserInfo),
            ("https://x?y", E::QueryOrFragment),
            ("https://x#y", E::QueryOrFragment),
            ("https://x/p?", E::QueryOrFragment),
            ("https://h/../x", E::DotSegment),
            ("https://h/a/..", E::DotSegment),
            ("https://h/./x", E::DotSegment),
            ("https://h/a/.", E::DotSegment),
            ("https://h/%2e%2e/x", E::DotSegment),
            ("https://h/%2E%2e/x", E::DotSegment),
            ("https://h/.%2E", E::DotSegment),
            ("https://h/%2e", E::DotSegment),
            ("https://h/.../x", E::DotSegment),
            ("https://h//x", E::EmptySegment),
            ("https://h/a//b", E::EmptySegment),
            ("https://h/a%zz", E::PercentEncoding),
            ("https://h/a%4", E::PercentEncoding),
            ("https://h/a\\b", E::PathCharacter { character: '\\' }),
            ("https://h/a\"b", E::PathCharacter { character: '"' }),
            ("https://h/{x}", E::PathCharacter { character: '{' }),
            ("https://h/a|b", E::PathCharacter { character: '|' }),
            ("https://x y", E::Character { character: ' ' }),
            ("https://h/\r\n", E::Character { character: '\r' }),
            ("https://h\u{0}", E::Character { character: '\0' }),
            ("https://bücher.de", E::Character { character: 'ü' }),
        ] {
            assert_eq!(check(url), Err(want), "{url}");
        }
    }

    /// What is accepted is a URL the `http` crate (and so every transport) accepts, with
    /// the same host, port and path.
    #[cfg(feature = "http")]
    #[test]
    fn accepted_urls_parse_the_same_as_http_uris() {
        for url in [
            "https://sandbox.juspay.in",
            "http://127.0.0.1:8080/prefix/",
            "http://[::1]:8080/p",
            "http://juspay_mock:9000",
            "https://h/a.b/v1.2/x~y/a:b@c/%41/!$&'()*+,;=",
        ] {
            let base = check(url).unwrap();
            let full = format!("{base}/orders/ord_1");
            let uri: ::http::Uri = full.parse().unwrap_or_else(|e| panic!("{full}: {e}"));
            assert_eq!(uri.to_string(), full);
            assert!(uri.path().ends_with("/orders/ord_1"), "{full}");
            assert_eq!(uri.query(), None);
        }
    }
}
