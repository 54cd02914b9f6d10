//! `application/x-www-form-urlencoded` decoding for return parameters (a query string or a
//! form body), strict: a malformed `%`-escape or a name or value that is not UTF-8 once
//! decoded is an error, never guessed at. Encoding, for the return signature, in each of
//! the [`Encoding`]s Juspay's signing samples use; the first, `java.net.URLEncoder`'s, is
//! the crate's one form encoder ([`crate::request::encode_into`]).

use super::error::ReturnUrlError;

/// Largest input accepted: a return carries a handful of short parameters.
pub(crate) const MAX_INPUT: usize = 16 * 1024;
/// Most parameters accepted.
pub(crate) const MAX_PAIRS: usize = 64;

/// Splits `input` at `&`, each piece at its first `=`, and decodes both halves once
/// (`+` is a space, `%XX` a byte). Empty pieces (`a=1&&b=2`) are skipped; a piece without
/// `=` is a name with an empty value.
pub(crate) fn parse_pairs(input: &[u8]) -> Result<Vec<(String, String)>, ReturnUrlError> {
    if input.len() > MAX_INPUT {
        return Err(ReturnUrlError::TooLarge { max: MAX_INPUT });
    }
    let mut pairs = Vec::new();
    for piece in input.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        if pairs.len() == MAX_PAIRS {
            return Err(ReturnUrlError::TooManyParameters { max: MAX_PAIRS });
        }
        let (name, value) = match piece.iter().position(|&b| b == b'=') {
            Some(i) => (&piece[..i], &piece[i + 1..]),
            None => (piece, &[][..]),
        };
        pairs.push((decode(name)?, decode(value)?));
    }
    Ok(pairs)
}

/// Decodes one name or value, once.
pub(crate) fn decode(s: &[u8]) -> Result<String, ReturnUrlError> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = s.get(i + 1).and_then(|&h| hex(h));
                let lo = s.get(i + 2).and_then(|&l| hex(l));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(ReturnUrlError::BadEncoding);
                };
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ReturnUrlError::NotUtf8)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A percent-encoder of Juspay's signature samples. They agree on letters, digits, `-._`
/// (kept) and on every reserved character (`%XX`, upper-case hex, of each UTF-8 byte); they
/// differ on `~ * ! ' ( )` and on the space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// `java.net.URLEncoder.encode(s, "UTF-8")`, the form serializer (WHATWG URL §5.2):
    /// `*` kept, space as `+`.
    JavaUrlEncoder,
    /// PHP `urlencode`: only `-._` kept, space as `+`.
    PhpUrlencode,
    /// Python `urllib.parse.quote_plus`: `~` kept, space as `+`.
    PythonQuotePlus,
    /// JavaScript `encodeURIComponent`: `~ * ! ' ( )` kept, space as `%20`.
    JsEncodeUriComponent,
}

impl Encoding {
    /// Every encoding, the crate's own (Java's) first.
    pub(crate) const ALL: [Encoding; 4] = [
        Encoding::JavaUrlEncoder,
        Encoding::PhpUrlencode,
        Encoding::PythonQuotePlus,
        Encoding::JsEncodeUriComponent,
    ];

    /// Appends `s`, encoded, to `out`.
    pub(crate) fn encode_into(self, s: &str, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let (kept, space): (&[u8], &[u8]) = match self {
            Encoding::JavaUrlEncoder => return crate::request::encode_into(s, out),
            Encoding::PhpUrlencode => (b"-._", b"+"),
            Encoding::PythonQuotePlus => (b"-._~", b"+"),
            Encoding::JsEncodeUriComponent => (b"-._~*!'()", b"%20"),
        };
        for &b in s.as_bytes() {
            if b.is_ascii_alphanumeric() || kept.contains(&b) {
                out.push(b);
            } else if b == b' ' {
                out.extend_from_slice(space);
            } else {
                out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
        }
    }

    /// `s`, encoded.
    pub(crate) fn encode(self, s: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(s.len() + s.len() / 2);
        self.encode_into(s, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_once() {
        let pairs = parse_pairs(b"a=1&&b=x%253D+y&flag&=v&c=%C3%A9").unwrap();
        let want: Vec<(String, String)> = [
            ("a", "1"),
            ("b", "x%3D y"),
            ("flag", ""),
            ("", "v"),
            ("c", "é"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(pairs, want);
        assert_eq!(decode(b"%3d%3D").unwrap(), "==");
    }

    #[test]
    fn refuses_what_it_cannot_decode() {
        for bad in [&b"a=%"[..], b"a=%4", b"a=%zz", b"%G0=1", b"a=%%41"] {
            assert_eq!(
                parse_pairs(bad),
                Err(ReturnUrlError::BadEncoding),
                "{bad:?}"
            );
        }
        for bad in [&b"a=%FF"[..], b"a=%C3", b"%ED%A0%80=1", b"a=\xff"] {
            assert_eq!(parse_pairs(bad), Err(ReturnUrlError::NotUtf8), "{bad:?}");
        }
        assert_eq!(
            parse_pairs(&vec![b'a'; MAX_INPUT + 1]),
            Err(ReturnUrlError::TooLarge { max: MAX_INPUT })
        );
        assert_eq!(
            parse_pairs("a=1&".repeat(MAX_PAIRS + 1).as_bytes()),
            Err(ReturnUrlError::TooManyParameters { max: MAX_PAIRS })
        );
    }

    #[test]
    fn each_encoding_keeps_its_own_characters() {
        let input = "aZ09-._ ~*!'()+/=&%é";
        for (encoding, want) in [
            (
                Encoding::JavaUrlEncoder,
                "aZ09-._+%7E*%21%27%28%29%2B%2F%3D%26%25%C3%A9",
            ),
            (
                Encoding::PhpUrlencode,
                "aZ09-._+%7E%2A%21%27%28%29%2B%2F%3D%26%25%C3%A9",
            ),
            (
                Encoding::PythonQuotePlus,
                "aZ09-._+~%2A%21%27%28%29%2B%2F%3D%26%25%C3%A9",
            ),
            (
                Encoding::JsEncodeUriComponent,
                "aZ09-._%20~*!'()%2B%2F%3D%26%25%C3%A9",
            ),
        ] {
            let got = encoding.encode(input);
            assert_eq!(String::from_utf8(got).unwrap(), want, "{encoding:?}");
        }
        // Java's is the crate's form encoder.
        let mut form = Vec::new();
        crate::request::encode_into(input, &mut form);
        assert_eq!(Encoding::JavaUrlEncoder.encode(input), form);
    }
}
