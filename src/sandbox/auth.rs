//! The sandbox's side of HTTP Basic authentication: reading the API key out of an
//! `Authorization` header, as a server does, rather than borrowing the client's encoder.

/// The user name of `Basic base64(user ":")`, the form Juspay uses (API key as user name,
/// empty password). Exact, like the real API: the scheme is `Basic` followed by one space,
/// the base64 is canonical and padded; a password, a missing `:`, invalid UTF-8, or any
/// other form gives `None`.
pub(super) fn basic_user(header: &str) -> Option<String> {
    let decoded = decode_base64(header.strip_prefix("Basic ")?)?;
    let text = String::from_utf8(decoded).ok()?;
    match text.split_once(':') {
        Some((user, "")) => Some(user.to_owned()),
        _ => None,
    }
}

/// Standard base64 with padding (RFC 4648 §4), canonical only: the length a multiple of
/// 4, padding only at the end, unused bits zero.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if padding > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, quad) in bytes.chunks(4).enumerate() {
        let last = (i + 1) * 4 == bytes.len();
        let pad = if last { padding } else { 0 };
        let mut n = 0u32;
        for (j, &b) in quad.iter().enumerate() {
            let v = if j >= 4 - pad { 0 } else { sextet(b)? };
            n = (n << 6) | u32::from(v);
        }
        let [_, b0, b1, b2] = n.to_be_bytes();
        match pad {
            0 => out.extend_from_slice(&[b0, b1, b2]),
            1 if b2 == 0 => out.extend_from_slice(&[b0, b1]),
            2 if b1 == 0 && b2 == 0 => out.push(b0),
            _ => return None,
        }
    }
    Some(out)
}

fn sextet(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors_decode() {
        for (encoded, decoded) in [
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
            ("Pz8+Pw==", "??>?"),
            ("Pz8/Pw==", "???\u{3f}"),
        ] {
            assert_eq!(decode_base64(encoded), Some(decoded.into()), "{encoded}");
        }
    }

    #[test]
    fn malformed_base64_is_refused() {
        for bad in [
            "", "Zg", "Zg=", "Z===", "Zg==Zg==", "Zh==", "Zm9=", "Zm 9", "Zm9v\n", "Zm-v",
        ] {
            assert_eq!(decode_base64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_api_key_is_the_user_name_with_an_empty_password() {
        // The API reference's example: key 1D6AFDC8EA649E9A21C3E5406AC0FB.
        let header = "Basic MUQ2QUZEQzhFQTY0OUU5QTIxQzNFNTQwNkFDMEZCOg==";
        assert_eq!(
            basic_user(header).as_deref(),
            Some("1D6AFDC8EA649E9A21C3E5406AC0FB")
        );
        for wrong in [
            "basic azE6",     // scheme case
            "Basic  azE6",    // two spaces
            "Basic azE6eA==", // "k1:x": a password
            "Basic azE=",     // "k1": no colon
            "Bearer k1",
            "Basic /w==", // not UTF-8
            "",
        ] {
            assert_eq!(basic_user(wrong), None, "{wrong:?}");
        }
    }
}
