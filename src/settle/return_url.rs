//! The browser's return from the bank page (or 3DS): signed query parameters, verified with
//! the merchant's response key.
//!
//! # The signature, exactly
//!
//! Juspay's documented algorithm ("Status Verification", Juspay docs, common resources):
//! take every parameter except `signature` and `signature_algorithm`; percent-encode each
//! name and value; sort by encoded name (bytewise ASCII); join as `name=value` with `&`;
//! percent-encode that whole string; HMAC-SHA256 it under the response key; base64 the
//! digest (standard alphabet, padded); percent-encode that, and compare it with the
//! `signature` parameter decoded once. The documented example carries
//! `signature=euKzwwiUztPPg3MCEYpgKZfcyTr1uQq1hzKkhP8G1vQ%253D`: decoded once (as any query
//! parser does) that is `...1vQ%3D`, the percent-encoded base64. Decoding is done exactly
//! once, never "until stable".
//!
//! **Which percent-encoding.** The docs don't say which characters stay unencoded, and
//! Juspay's signing samples use their language's own encoder:
//! `java.net.URLEncoder.encode(s, "UTF-8")` (the `application/x-www-form-urlencoded`
//! serializer, WHATWG URL §5.2: letters, digits and `*-._` kept, space as `+`), PHP
//! `urlencode` (`*` encoded too), Python `quote_plus` (`~` kept, `*` encoded) and
//! JavaScript `encodeURIComponent` (`~*!'()` kept, space as `%20`). All of them keep
//! letters, digits and `-._` and write every reserved character (`%`, `&`, `=`, `+`, `/`,
//! ...) as `%XX` in upper case. So a return is checked against each encoding's canonical
//! string (the same encoding for the pairs, the whole string and the digest): identical
//! candidates are signed once, every distinct one is signed and compared in constant time,
//! with no early exit, and the return verifies if one matches. A tampered return matches
//! none. The Java sample `SignatureVerification.validateHMAC_SHA256` gives the one vector
//! Juspay publishes (response key `92206A0A4A75499C9B11206C2B3B9A53`, parameters
//! `order_id=order_1727694028`, `status=AUTHORIZATION_FAILED`, `status_id=27`,
//! `myQP=aGVsbG9Xb3JsZA==`, signature `8Esx2nrz3KE059rdsTkffYKu6AXXk07KzBo3KOexl3I=`),
//! reproduced only with the per-pair encoding *and* the whole-string encoding; it and
//! vectors for each encoder (computed with Python) are tests in `tests/it/settle.rs`.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::ct;
use super::error::{loggable, ReturnUrlError, SecretError};
use super::percent::{self, Encoding};
use crate::error::IdError;
use crate::id::check_path_id;
use crate::order::OrderStatusCheck;
use crate::status::Status;

/// The only `signature_algorithm` Juspay uses.
pub const SIGNATURE_ALGORITHM: &str = "HMAC-SHA256";

/// The longest percent-encoded base64 of a SHA-256 digest: 44 characters, each at most
/// `%XX`.
const MAX_SIGNATURE: usize = 44 * 3;

/// The merchant's response key (Juspay dashboard, Settings): the HMAC key of return-URL
/// signatures. A secret like the API key: redacted in `Debug` and `Display`, never
/// serialized. It keeps only the keyed HMAC state, not the key text.
///
/// ```
/// use direct_otp::ResponseKey;
///
/// let key = ResponseKey::new("92206A0A4A75499C9B11206C2B3B9A53")?;
/// assert_eq!(format!("{key:?} {key}"), "ResponseKey([redacted]) [redacted]");
/// assert!(ResponseKey::new("").is_err());
/// # Ok::<(), direct_otp::SecretError>(())
/// ```
#[derive(Clone)]
pub struct ResponseKey {
    mac: Hmac<Sha256>,
}

impl ResponseKey {
    /// The key as the dashboard shows it: non-empty visible ASCII (no whitespace; a pasted
    /// newline is an error, not part of the key).
    pub fn new(key: &str) -> Result<Self, SecretError> {
        const WHAT: &str = "response key";
        if key.is_empty() {
            return Err(SecretError::Empty { what: WHAT });
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SecretError::Forbidden {
                what: WHAT,
                reason: "whitespace, control or non-ASCII characters",
            });
        }
        // HMAC takes keys of any length: this never fails.
        let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
            .map_err(|_| SecretError::Empty { what: WHAT })?;
        Ok(ResponseKey { mac })
    }

    /// The `signature` of these parameters (names and values as decoded once), as it must
    /// read once decoded: the percent-encoded base64 of the HMAC (`...%3D`), with the
    /// crate's encoding (`java.net.URLEncoder`'s). The sandbox signs with this too; put in a
    /// URL it is encoded again (`...%253D`).
    #[cfg(any(test, feature = "sandbox"))]
    pub(crate) fn signature<'a>(
        &self,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> String {
        let params: Vec<(&str, &str)> = params.into_iter().collect();
        self.sign(&canonical(&params, Encoding::JavaUrlEncoder))
    }

    /// The signature text of a canonical string: the HMAC, in base64, percent-encoded.
    /// Base64's `+/=` come out the same (`%2B`, `%2F`, `%3D`) in every [`Encoding`].
    fn sign(&self, canonical: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(canonical);
        let mut base64 = String::with_capacity(44);
        crate::config::base64_into(&mac.finalize().into_bytes(), &mut base64);
        String::from_utf8(Encoding::JavaUrlEncoder.encode(&base64)).unwrap_or_default()
    }

    /// Whether `signature` (as decoded once) signs `params` in one of the [`Encoding`]s.
    /// Every distinct candidate is signed and compared, in constant time, whatever matched.
    fn verifies(&self, params: &[(&str, &str)], signature: &str) -> bool {
        let mut candidates: Vec<Vec<u8>> = Vec::with_capacity(Encoding::ALL.len());
        for encoding in Encoding::ALL {
            let candidate = canonical(params, encoding);
            if !candidates.contains(&candidate) {
                candidates.push(candidate);
            }
        }
        let mut matched = false;
        for candidate in &candidates {
            let expected = self.sign(candidate);
            // `|`, not `||`: every candidate is compared.
            matched |= ct::eq_padded::<MAX_SIGNATURE>(expected.as_bytes(), signature.as_bytes());
        }
        matched
    }
}

/// The string Juspay signs, in `encoding`: each name and value encoded, the pairs sorted by
/// encoded name (bytewise), joined as `name=value` with `&`, the whole encoded again.
fn canonical(params: &[(&str, &str)], encoding: Encoding) -> Vec<u8> {
    let mut encoded: Vec<(Vec<u8>, Vec<u8>)> = params
        .iter()
        .map(|(name, value)| (encoding.encode(name), encoding.encode(value)))
        .collect();
    encoded.sort();
    let mut joined = String::new();
    for (i, (name, value)) in encoded.iter().enumerate() {
        if i > 0 {
            joined.push('&');
        }
        // The encoders' output is ASCII.
        joined.push_str(std::str::from_utf8(name).unwrap_or_default());
        joined.push('=');
        joined.push_str(std::str::from_utf8(value).unwrap_or_default());
    }
    encoding.encode(&joined)
}

impl fmt::Debug for ResponseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseKey([redacted])")
    }
}

impl fmt::Display for ResponseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The parameters the browser brought back to the return URL, decoded once, not verified
/// yet. Read them from the query string (`GET`, the default), the form body (`POST`, a
/// merchant setting), or pairs a web framework already decoded; then
/// [`verify`](Self::verify) them.
///
/// Input is bounded (16 KiB, 64 parameters); a malformed `%`-escape, a name or value that
/// is not UTF-8, or a parameter given twice is an error.
///
/// ```
/// use direct_otp::{ResponseKey, ReturnParams, ReturnUrlError, Status};
///
/// let key = ResponseKey::new("92206A0A4A75499C9B11206C2B3B9A53")?;
/// // What Juspay's return carries (the signature is encoded twice: `%253D`).
/// let query = "order_id=order_1727694028&status=AUTHORIZATION_FAILED&status_id=27\
///              &myQP=aGVsbG9Xb3JsZA%3D%3D\
///              &signature=8Esx2nrz3KE059rdsTkffYKu6AXXk07KzBo3KOexl3I%253D\
///              &signature_algorithm=HMAC-SHA256";
/// let verified = ReturnParams::from_query(query)?.verify(&key)?;
/// assert_eq!(verified.order_id, "order_1727694028");
/// assert_eq!(verified.status, Status::AuthorizationFailed);
///
/// // Anyone can edit a URL; nobody without the key can sign it.
/// let forged = query.replace("AUTHORIZATION_FAILED", "CHARGED");
/// let err = ReturnParams::from_query(&forged)?.verify(&key).unwrap_err();
/// assert_eq!(err, ReturnUrlError::BadSignature);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnParams {
    pairs: Vec<(String, String)>,
}

impl ReturnParams {
    /// Reads a query string (`order_id=...&status=...`; a leading `?` and a trailing
    /// `#fragment` are ignored).
    pub fn from_query(query: &str) -> Result<Self, ReturnUrlError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        ReturnParams::from_form(query.as_bytes())
    }

    /// Reads the query of a whole return URL (`https://shop/return?order_id=...`); a URL
    /// without a query has no parameters.
    pub fn from_url(url: &str) -> Result<Self, ReturnUrlError> {
        let url = url.split_once('#').map_or(url, |(u, _)| u);
        ReturnParams::from_query(url.split_once('?').map_or("", |(_, q)| q))
    }

    /// Reads an `application/x-www-form-urlencoded` body (a `POST` return).
    pub fn from_form(body: &[u8]) -> Result<Self, ReturnUrlError> {
        ReturnParams::checked(percent::parse_pairs(body)?)
    }

    /// Takes parameters a web framework has already decoded once (its query or form
    /// extractor): the `signature` must be as the framework gives it (`...%3D`), not
    /// decoded again.
    pub fn from_pairs<I, N, V>(pairs: I) -> Result<Self, ReturnUrlError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: Into<String>,
    {
        let mut checked = Vec::new();
        let mut size = 0usize;
        for (name, value) in pairs {
            let (name, value) = (name.into(), value.into());
            size = size.saturating_add(name.len() + value.len() + 2);
            if size > percent::MAX_INPUT {
                return Err(ReturnUrlError::TooLarge {
                    max: percent::MAX_INPUT,
                });
            }
            if checked.len() == percent::MAX_PAIRS {
                return Err(ReturnUrlError::TooManyParameters {
                    max: percent::MAX_PAIRS,
                });
            }
            checked.push((name, value));
        }
        ReturnParams::checked(checked)
    }

    fn checked(mut pairs: Vec<(String, String)>) -> Result<Self, ReturnUrlError> {
        pairs.sort();
        if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(ReturnUrlError::DuplicateParameter {
                name: loggable(&w[0].0),
            });
        }
        Ok(ReturnParams { pairs })
    }

    /// A parameter's value, decoded once.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.pairs[i].1.as_str())
    }

    /// `order_id`, unverified (e.g. to pick the merchant whose key verifies it).
    pub fn order_id(&self) -> Option<&str> {
        self.get("order_id")
    }

    /// Every parameter, sorted by name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Checks the signature under `key` (in constant time), then reads `order_id`,
    /// `status` and `status_id`. A missing or unsupported algorithm, a missing or wrong
    /// signature, or a signed return without an order id or status is an error.
    pub fn verify(&self, key: &ResponseKey) -> Result<VerifiedReturn, ReturnUrlError> {
        let signature = self
            .get("signature")
            .filter(|s| !s.is_empty())
            .ok_or(ReturnUrlError::MissingSignature)?;
        let algorithm = self
            .get("signature_algorithm")
            .filter(|a| !a.is_empty())
            .ok_or(ReturnUrlError::MissingAlgorithm)?;
        if !algorithm.eq_ignore_ascii_case(SIGNATURE_ALGORITHM) {
            return Err(ReturnUrlError::UnsupportedAlgorithm {
                algorithm: loggable(algorithm),
            });
        }
        let signed = || {
            self.iter()
                .filter(|(n, _)| *n != "signature" && *n != "signature_algorithm")
        };
        if !key.verifies(&signed().collect::<Vec<_>>(), signature) {
            return Err(ReturnUrlError::BadSignature);
        }
        let order_id = self
            .order_id()
            .filter(|o| !o.is_empty())
            .ok_or(ReturnUrlError::MissingField("order_id"))?;
        check_path_id("order_id", order_id).map_err(ReturnUrlError::UnsafeOrderId)?;
        let status = self
            .get("status")
            .filter(|s| !s.is_empty())
            .ok_or(ReturnUrlError::MissingField("status"))?;
        Ok(VerifiedReturn {
            order_id: order_id.to_owned(),
            status: Status::parse(status),
            status_id: self.get("status_id").and_then(|s| s.trim().parse().ok()),
            params: signed()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
        })
    }
}

/// A return whose signature checked out: a settlement *hint*. It proves Juspay sent the
/// browser back with this status; Juspay's own advice is to confirm with the order status
/// API before fulfilling ([`status_check`](Self::status_check)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VerifiedReturn {
    /// `order_id` (checked: safe to use in `GET /orders/{order_id}`).
    pub order_id: String,
    /// `status`, as signed.
    pub status: Status,
    /// `status_id`, if it is a number.
    pub status_id: Option<u32>,
    /// Every signed parameter (all but `signature` and `signature_algorithm`), sorted by
    /// name, with the merchant's own return-URL parameters among them.
    pub params: Vec<(String, String)>,
}

impl VerifiedReturn {
    /// The order status request that confirms this return (`routing_id`: the customer's
    /// `x-routing-id`, as sent at start).
    pub fn status_check(&self, routing_id: &str) -> Result<OrderStatusCheck, IdError> {
        OrderStatusCheck::new(&self.order_id, routing_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_documented_way() {
        // The Java sample's vector (see the module docs).
        let key = ResponseKey::new("92206A0A4A75499C9B11206C2B3B9A53").unwrap();
        let params = [
            ("order_id", "order_1727694028"),
            ("status", "AUTHORIZATION_FAILED"),
            ("status_id", "27"),
            ("myQP", "aGVsbG9Xb3JsZA=="),
        ];
        assert_eq!(
            key.signature(params),
            "8Esx2nrz3KE059rdsTkffYKu6AXXk07KzBo3KOexl3I%3D"
        );
    }

    #[test]
    fn hmac_sha256_rfc4231_case_2() {
        // The HMAC-SHA256 the signature uses, against RFC 4231 §4.3 (test case 2).
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn secrets_are_checked() {
        assert_eq!(
            ResponseKey::new("").unwrap_err(),
            SecretError::Empty {
                what: "response key"
            }
        );
        for bad in ["key\n", " key", "ké", "a b"] {
            assert!(
                matches!(ResponseKey::new(bad), Err(SecretError::Forbidden { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parameters_are_found_by_name() {
        let p = ReturnParams::from_query("?b=2&a=1#frag").unwrap();
        assert_eq!(
            (p.get("a"), p.get("b"), p.get("c")),
            (Some("1"), Some("2"), None)
        );
        assert_eq!(p.iter().len(), 2);
        let p = ReturnParams::from_url("https://shop.example/r?order_id=o1#x").unwrap();
        assert_eq!(p.order_id(), Some("o1"));
        assert_eq!(
            ReturnParams::from_url("https://shop.example/r")
                .unwrap()
                .iter()
                .len(),
            0
        );
        assert_eq!(
            ReturnParams::from_query("a=1&a=2"),
            Err(ReturnUrlError::DuplicateParameter { name: "a".into() })
        );
        assert_eq!(
            ReturnParams::from_pairs([("x\u{7}y", "1"), ("x\u{7}y", "2")]),
            Err(ReturnUrlError::DuplicateParameter { name: "xy".into() })
        );
    }
}
