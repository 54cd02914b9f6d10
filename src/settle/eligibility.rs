//! Card eligibility for Direct OTP: `GET /cardbins/{bin}` with
//! `options.check_direct_otp_support=true`, and its reader.

use serde::{Deserialize, Serialize};

use super::error::BinError;
use crate::config::Config;
use crate::error::ResponseError;
use crate::id::{check_header_value, HeaderValue};
use crate::lenient::{Flag, Text};
use crate::request::{self, Request};
use crate::response;

/// Asks whether a card's BIN can take Direct OTP, before starting a payment.
///
/// The answer is **dynamic** ("based on the score", say Juspay's docs): a BIN reported
/// eligible can still get a 3DS redirect at start, so the redirect path
/// ([`Started::Redirect`](crate::Started::Redirect)) must always be handled. Cache an
/// answer per BIN only with an expiry, and never treat it as a promise.
///
/// ```
/// use direct_otp::{Config, EligibilityCheck};
///
/// let config = Config::sandbox("my_api_key")?;
/// let check = EligibilityCheck::new("424242", "acme")?;
/// let request = check.request(&config);
/// assert_eq!(
///     request.url(),
///     "https://sandbox.juspay.in/cardbins/424242?merchant_id=acme&options.check_direct_otp_support=true"
/// );
/// // ... send it, then read the answer:
/// let answer = check.handle_response(200, br#"{"id":"424242","brand":"VISA","direct_otp_support":"true"}"#)?;
/// assert!(answer.is_eligible());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EligibilityCheck {
    bin: String,
    merchant_id: String,
    routing_id: Option<HeaderValue>,
}

impl EligibilityCheck {
    /// The card's BIN (its first 6 to 9 digits; never pass the whole card number) and the
    /// merchant id (sent as the `merchant_id` query parameter).
    pub fn new(bin: &str, merchant_id: &str) -> Result<Self, BinError> {
        if !bin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BinError::NotDigits);
        }
        if !(6..=9).contains(&bin.len()) {
            return Err(BinError::Length(bin.len()));
        }
        check_header_value("merchant_id", merchant_id)?;
        Ok(EligibilityCheck {
            bin: bin.to_owned(),
            merchant_id: merchant_id.to_owned(),
            routing_id: None,
        })
    }

    /// Also sends `x-routing-id` (the customer id, as on the payment calls).
    pub fn with_routing_id(mut self, routing_id: &str) -> Result<Self, BinError> {
        self.routing_id = Some(HeaderValue::new("x-routing-id", routing_id)?);
        Ok(self)
    }

    /// The BIN asked about.
    pub fn bin(&self) -> &str {
        &self.bin
    }

    /// The request, with `x-merchantid` and `version` when configured. It changes nothing
    /// on the server: safe to send again.
    pub fn request(&self, config: &Config) -> Request {
        request::card_bin(
            config,
            &self.bin,
            &self.merchant_id,
            self.routing_id.as_ref().map(HeaderValue::shared),
        )
    }

    /// Reads the answer: `direct_otp_support` (`true`, `"true"`, `1` ...) and the card
    /// facts shown with it. An error envelope or another HTTP status is an error.
    pub fn handle_response(
        &self,
        http_status: u16,
        body: &[u8],
    ) -> Result<Eligibility, ResponseError> {
        if !(200..=299).contains(&http_status) {
            return Err(response::status_error(http_status, body));
        }
        let b = response::parse::<CardBinBody>(http_status, body)?;
        let text = |t: &Text<'_>| {
            t.non_empty()
                .filter(|s| s.len() <= 64 && !s.chars().any(char::is_control))
                .map(str::to_owned)
        };
        Ok(Eligibility {
            bin: self.bin.clone(),
            direct_otp_support: b.direct_otp_support.0,
            brand: text(&b.brand),
            bank: text(&b.bank),
            card_type: text(&b.card_type),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
struct CardBinBody<'a> {
    #[serde(default, borrow)]
    brand: Text<'a>,
    #[serde(default, borrow)]
    bank: Text<'a>,
    #[serde(default, borrow, rename = "type")]
    card_type: Text<'a>,
    #[serde(default)]
    direct_otp_support: Flag,
}

/// What `GET /cardbins/{bin}` said about a BIN: owned plain data, safe to cache (with an
/// expiry: eligibility is dynamic, see [`EligibilityCheck`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Eligibility {
    /// The BIN asked about.
    pub bin: String,
    /// `direct_otp_support`; `None` when the answer does not say.
    pub direct_otp_support: Option<bool>,
    /// `brand` (VISA, MASTERCARD, RUPAY, ...).
    pub brand: Option<String>,
    /// `bank`, the issuer.
    pub bank: Option<String>,
    /// `type` (CREDIT, DEBIT, ...).
    pub card_type: Option<String>,
}

impl Eligibility {
    /// True only when the answer says `direct_otp_support: true`. Even then the start may
    /// redirect to 3DS.
    pub fn is_eligible(&self) -> bool {
        self.direct_otp_support == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::IdError;

    #[test]
    fn bins_are_six_to_nine_digits() {
        for ok in ["424242", "4242424", "42424242", "424242424"] {
            assert!(EligibilityCheck::new(ok, "acme").is_ok(), "{ok}");
        }
        for (bad, want) in [
            ("", BinError::Length(0)),
            ("42424", BinError::Length(5)),
            ("4242424242", BinError::Length(10)),
            ("4242424242424242", BinError::Length(16)),
            ("42424a", BinError::NotDigits),
            ("4242 42", BinError::NotDigits),
            ("４２４２４２", BinError::NotDigits),
            ("../../x", BinError::NotDigits),
        ] {
            assert_eq!(EligibilityCheck::new(bad, "acme"), Err(want), "{bad:?}");
        }
        let e = EligibilityCheck::new("4000123498765432", "acme").unwrap_err();
        assert!(!e.to_string().contains("4000123498765432"), "{e}");
        assert!(matches!(
            EligibilityCheck::new("424242", "a\r\nb"),
            Err(BinError::Id(IdError::ForbiddenCharacter { .. }))
        ));
    }

    #[test]
    fn request_is_a_get_with_the_query() {
        let config = Config::sandbox("k")
            .unwrap()
            .with_merchant_id("acme")
            .unwrap()
            .with_version("2024-06-01")
            .unwrap();
        let r = EligibilityCheck::new("42424242", "a&b=c d")
            .unwrap()
            .with_routing_id("cust_1")
            .unwrap()
            .request(&config);
        assert_eq!(r.kind(), crate::RequestKind::CardBin);
        assert!(!r.kind().has_side_effects());
        assert_eq!(r.method(), request::Method::Get);
        assert_eq!(
            r.url(),
            "https://sandbox.juspay.in/cardbins/42424242?merchant_id=a%26b%3Dc+d&options.check_direct_otp_support=true"
        );
        assert_eq!(r.header("x-routing-id"), Some("cust_1"));
        assert_eq!(r.header("x-merchantid"), Some("acme"));
        assert_eq!(r.header("version"), Some("2024-06-01"));
        assert!(r.header("authorization").is_some());
        assert!(r.body().is_empty());
    }
}
