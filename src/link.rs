//! URLs the library hands to a browser (the bank page, the 3DS page).
//!
//! They come from the server and are followed exactly as given, never rebuilt; but only a
//! URL a browser will read the way we do reaches the caller: an absolute `http` or `https`
//! URL with a host, without control characters, spaces, backslashes or credentials. Anything
//! else (`javascript:`, `data:`, `//evil.example`, a URL with CR/LF) is treated as absent.

/// Longest URL handed to a browser, in bytes.
const MAX_LEN: usize = 4096;

/// True when `url` may be given to a browser as a place to go.
pub(crate) fn is_browser_safe(url: &str) -> bool {
    if url.len() > MAX_LEN
        || url
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\' || b >= 0x80)
    {
        return false;
    }
    let rest = match url.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http") =>
        {
            rest
        }
        _ => return false,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let (host, port) = match authority.strip_prefix('[') {
        // An IPv6 literal: `[...]`, then nothing or `:port`.
        Some(v6) => match v6.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, rest)) => match rest.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return false,
            },
            None => return false,
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    !host.is_empty() && !host.starts_with('.') && port_ok
}

#[cfg(test)]
mod tests {
    use super::is_browser_safe;

    #[test]
    fn only_absolute_http_urls_with_a_host_pass() {
        for ok in [
            "https://bank.example/pay?x=1&y=%20",
            "http://127.0.0.1:8080/v2/pay/start/acme/eul1",
            "HTTPS://Bank.Example",
            "https://[::1]:443/x",
            "https://bank.example#frag",
        ] {
            assert!(is_browser_safe(ok), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "JavaScript://bank.example/%0aalert(1)",
            "data:text/html,<script>",
            "//evil.example/x",
            "/relative/path",
            "https:evil.example",
            "https://",
            "https:///path",
            "https://bank.example/\r\nSet-Cookie: x",
            "https://bank.example/a b",
            "https://bank.example\\@evil.example",
            "https://user:pw@bank.example/",
            "https://bank.example@evil.example/",
            "https://bank.example:abc/",
            "https://bank.example:/",
            "ftp://bank.example/",
            "https://bänk.example/",
            "",
        ] {
            assert!(!is_browser_safe(bad), "{bad:?}");
        }
        assert!(!is_browser_safe(&format!(
            "https://b.example/{}",
            "a".repeat(5000)
        )));
    }
}
