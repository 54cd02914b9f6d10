//! Card data: what the caller sends to start authentication, and the masked summary kept in
//! a challenge for the UI.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How the card is given to `POST /txns`.
///
/// Card numbers and security codes are redacted in `Debug` and are never stored in a
/// challenge.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaymentSource {
    /// A saved or network token (`card_token`), with the CVV when the account requires it.
    Token {
        /// The token.
        card_token: String,
        /// `card_security_code`, if required.
        cvv: Option<String>,
    },
    /// Raw card fields (only for PCI-compliant merchants).
    Card(CardDetails),
}

/// Raw card fields for `POST /txns`.
#[derive(Clone, PartialEq, Eq)]
pub struct CardDetails {
    /// `card_number`.
    pub number: String,
    /// `card_exp_month`, `MM`.
    pub expiry_month: String,
    /// `card_exp_year`, `YYYY` (or `YY`).
    pub expiry_year: String,
    /// `card_security_code`.
    pub cvv: String,
    /// `name_on_card`, optional.
    pub name_on_card: Option<String>,
}

impl PaymentSource {
    /// A saved or network token without a CVV ([`PaymentSource::Token`]).
    ///
    /// ```
    /// use direct_otp::PaymentSource;
    /// let card = PaymentSource::token("tok_visa");
    /// assert!(matches!(card, PaymentSource::Token { cvv: None, .. }));
    /// ```
    pub fn token(card_token: &str) -> Self {
        PaymentSource::Token {
            card_token: card_token.to_owned(),
            cvv: None,
        }
    }
}

impl fmt::Debug for PaymentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaymentSource::Token { .. } => f.write_str("PaymentSource::Token([redacted])"),
            PaymentSource::Card(card) => write!(f, "PaymentSource::Card({card:?})"),
        }
    }
}

impl fmt::Debug for CardDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last4 = self
            .number
            .len()
            .checked_sub(4)
            .and_then(|i| self.number.get(i..))
            .filter(|_| self.number.len() >= 12)
            .unwrap_or("");
        f.debug_struct("CardDetails")
            .field("number", &format_args!("****{last4}"))
            .field("expiry", &"[redacted]")
            .field("cvv", &"[redacted]")
            .field(
                "name_on_card",
                &self.name_on_card.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// The masked card facts the server reports, for showing "VISA •••• 2986, Axis Bank".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CardSummary {
    /// The BIN as the server shows it (`card_isin`, often masked like `44**06`).
    pub isin: Option<String>,
    /// `last_four_digits`.
    pub last_four: Option<String>,
    /// `card_brand` (VISA, MASTERCARD, RUPAY, ...).
    pub brand: Option<String>,
    /// `card_issuer_bank_name` or `card_issuer`.
    pub issuer: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_card_data() {
        let card = PaymentSource::Card(CardDetails {
            number: "4111111111111111".into(),
            expiry_month: "12".into(),
            expiry_year: "2030".into(),
            cvv: "987".into(),
            name_on_card: Some("Asha Rao".into()),
        });
        let shown = format!("{card:?}");
        for secret in ["4111111111", "987", "2030", "Asha"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("****1111"), "{shown}");
        let token = PaymentSource::Token {
            card_token: "tok_secret".into(),
            cvv: Some("123".into()),
        };
        assert!(!format!("{token:?}").contains("tok_secret"));
    }
}
