//! What binds an answer to the request it answers: the record, its revision, the kind of
//! request, and a random nonce.
//!
//! A leaf module: it depends on nothing else in the crate, so errors, outcomes and requests
//! can all name a [`Token`] without import cycles.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RequestKind {
    /// `POST /txns`: start authentication (the bank sends the first OTP).
    Start,
    /// `POST /v2/txns/{id}/authenticate/{challenge_id}/resend`.
    Resend,
    /// `POST /v2/txns/{id}/authenticate` with the OTP.
    Submit,
    /// `GET /orders/{order_id}`.
    OrderStatus,
    /// `GET /cardbins/{bin}`: is this card eligible for Direct OTP.
    CardBin,
}

impl RequestKind {
    /// True if sending it twice could do something twice (an SMS, an OTP attempt, a
    /// transaction): such a request is never retried blindly after a lost answer.
    pub fn has_side_effects(self) -> bool {
        !matches!(self, RequestKind::OrderStatus | RequestKind::CardBin)
    }

    /// A stable snake_case name: `start`, `resend`, `submit`, `order_status`, `card_bin`.
    pub fn code(self) -> &'static str {
        match self {
            RequestKind::Start => "start",
            RequestKind::Resend => "resend",
            RequestKind::Submit => "submit",
            RequestKind::OrderStatus => "order_status",
            RequestKind::CardBin => "card_bin",
        }
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A record's identity: 64 random bits drawn when the record is created and kept with it,
/// so that tokens of two records can never be mistaken for each other.
///
/// Serialized as 16 lower-case hex digits (a JSON number would lose bits in JavaScript).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(u64);

impl RecordId {
    /// A fresh random id.
    pub(crate) fn random() -> Self {
        RecordId(random_u64())
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({self})")
    }
}

impl Serialize for RecordId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RecordId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hex_u64(d).map(RecordId)
    }
}

/// Identifies one request: the record that issued it, the revision the record reached by
/// issuing it, the kind of request, and a random nonce.
///
/// The answer to that request must be handed back with the same token. An answer with any
/// other token (another record's, an older request's, or a request issued by another copy
/// of the same stored record) is refused and changes nothing. Two copies loaded from the
/// same stored state that both issue a request get different tokens: the nonce is drawn
/// fresh for every request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token {
    record: RecordId,
    revision: u64,
    kind: RequestKind,
    #[serde(serialize_with = "hex_ser", deserialize_with = "hex_u32")]
    nonce: u32,
}

impl Token {
    /// A new token for a request of `kind` that brings `record` to `revision`.
    pub(crate) fn issue(record: RecordId, revision: u64, kind: RequestKind) -> Self {
        Token {
            record,
            revision,
            kind,
            // 32 bits keep a token (and an error holding two) small; two copies of one
            // record issuing at the same revision collide once in four billion.
            nonce: random_u64() as u32,
        }
    }

    /// The record that issued the request.
    pub fn record(&self) -> RecordId {
        self.record
    }

    /// The revision the record reached by issuing the request: the revision to store
    /// (write-ahead) before sending it.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// What the request is for.
    pub fn kind(&self) -> RequestKind {
        self.kind
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}/r{}/{:08x}",
            self.kind, self.record, self.revision, self.nonce
        )
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({self})")
    }
}

/// A token's text is not one [`Token`]'s `Display` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a request token (expected kind@record/rREVISION/nonce, as the token was given)")]
#[non_exhaustive]
pub struct TokenParseError;

/// Parses the text [`Display`](fmt::Display) writes (`submit@00000000000000ff/r3/0a1b2c3d`),
/// exactly: the wire form of a token is this opaque string.
///
/// ```
/// # use direct_otp::Token;
/// assert!("submit@00000000000000ff/r3/0a1b2c3d".parse::<Token>().is_ok());
/// assert!("submit@ff/r3/0a1b2c3d".parse::<Token>().is_err());
/// ```
impl std::str::FromStr for Token {
    type Err = TokenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = |t: &str, len: usize| {
            (t.len() == len && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                .then(|| u64::from_str_radix(t, 16).ok())
                .flatten()
        };
        let parse = || {
            let (kind, rest) = s.split_once('@')?;
            let kind = [
                RequestKind::Start,
                RequestKind::Resend,
                RequestKind::Submit,
                RequestKind::OrderStatus,
                RequestKind::CardBin,
            ]
            .into_iter()
            .find(|k| k.code() == kind)?;
            let mut parts = rest.split('/');
            let record = RecordId(hex(parts.next()?, 16)?);
            let revision = parts.next()?.strip_prefix('r')?;
            let digits_only = !revision.is_empty() && revision.bytes().all(|b| b.is_ascii_digit());
            let canonical = revision == "0" || !revision.starts_with('0');
            if !(digits_only && canonical) {
                return None;
            }
            let revision = revision.parse().ok()?;
            let nonce = u32::try_from(hex(parts.next()?, 8)?).ok()?;
            parts.next().is_none().then_some(Token {
                record,
                revision,
                kind,
                nonce,
            })
        };
        parse().ok_or(TokenParseError)
    }
}

fn hex_ser<S: Serializer>(n: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{n:08x}"))
}

fn hex_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let s = std::borrow::Cow::<str>::deserialize(d)?;
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(serde::de::Error::custom("expected 8 hex digits"));
    }
    u32::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
}

fn hex_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = std::borrow::Cow::<str>::deserialize(d)?;
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(serde::de::Error::custom("expected 16 hex digits"));
    }
    u64::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
}

/// 64 random bits, without a dependency: std's `RandomState` keys are drawn from the
/// operating system's random source (once per thread, then stepped), and SipHash of a
/// process-wide counter under them gives values that differ between threads, processes
/// and calls. Not for cryptography: only to keep tokens of different records and copies
/// apart.
fn random_u64() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_between_issues_and_round_trip() {
        let record = RecordId::random();
        let a = Token::issue(record, 2, RequestKind::Submit);
        let b = Token::issue(record, 2, RequestKind::Submit);
        assert_ne!(a, b, "the nonce keeps two copies' tokens apart");
        assert_ne!(RecordId::random(), record);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Token>(&json).unwrap(), a);
        assert!(json.contains(&format!("\"record\":\"{record}\"")), "{json}");
        assert_eq!(
            (a.record(), a.revision(), a.kind()),
            (record, 2, RequestKind::Submit)
        );
        assert!(a.to_string().starts_with(&format!("submit@{record}/r2/")));
    }

    #[test]
    fn token_text_parses_back_exactly() {
        let t = Token::issue(RecordId::random(), 12, RequestKind::OrderStatus);
        assert_eq!(t.to_string().parse::<Token>(), Ok(t));
        let good = "submit@00000000000000ff/r3/0a1b2c3d";
        assert_eq!(good.parse::<Token>().unwrap().to_string(), good);
        for bad in [
            "",
            "submit",
            "nope@00000000000000ff/r3/0a1b2c3d",
            "submit@00000000000000FF/r3/0a1b2c3d",
            "submit@00000000000000ff/r03/0a1b2c3d",
            "submit@00000000000000ff/r/0a1b2c3d",
            "submit@00000000000000ff/r+3/0a1b2c3d",
            "submit@00000000000000ff/r3/0a1b2c3",
            "submit@00000000000000ff/r3/0a1b2c3d/",
            "submit@00000000000000ff/r99999999999999999999/0a1b2c3d",
        ] {
            assert_eq!(bad.parse::<Token>(), Err(TokenParseError), "{bad}");
        }
    }

    #[test]
    fn ids_must_be_sixteen_hex_digits() {
        for bad in [
            r#""""#,
            r#""12""#,
            r#""zzzzzzzzzzzzzzzz""#,
            "12",
            r#""+123456789abcdef""#,
        ] {
            assert!(serde_json::from_str::<RecordId>(bad).is_err(), "{bad}");
        }
        let id: RecordId = serde_json::from_str(r#""00000000000000ff""#).unwrap();
        assert_eq!(id.to_string(), "00000000000000ff");
    }
}
