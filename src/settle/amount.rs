//! Exact money: an [`Amount`] is a decimal kept as text, never a float, and an
//! [`ExpectedAmount`] checks that an order is for what the merchant charged.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::AmountError;
use super::snapshot::OrderSnapshot;

/// Most significant digits, and largest exponent, an amount may have.
const MAX_DIGITS: usize = 38;

/// A non-negative decimal amount, exact: `1499`, `1499.5`, `0.01`.
///
/// It is kept as canonical decimal text (no leading zeros, no trailing fractional zeros, no
/// exponent), so two amounts are equal exactly when their values are: `1499.00`, `1499.0`,
/// `1499` and `1.499e3` are the same amount. It never goes through an `f64`.
///
/// ```
/// use direct_otp::Amount;
///
/// let a = Amount::parse("1499.50")?;
/// assert_eq!(a.to_string(), "1499.5");
/// assert_eq!(a, Amount::parse("1.4995e3")?);
/// assert_eq!(a.to_minor_units(2), Some(149_950)); // paise
/// assert_eq!(Amount::from_minor_units(149_950, 2), a);
/// assert!(Amount::parse("-1").is_err());
/// # Ok::<(), direct_otp::AmountError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Amount(Box<str>);

impl Amount {
    /// Parses a decimal number: digits, an optional fraction, an optional exponent
    /// (`1499`, `1499.50`, `1.4995E3`); surrounding whitespace is ignored.
    pub fn parse(s: &str) -> Result<Amount, AmountError> {
        let s = s.trim();
        let s = match s.strip_prefix('-') {
            Some(rest) if !rest.is_empty() && rest.bytes().all(|b| b == b'0' || b == b'.') => {
                rest // "-0" and "-0.00" are zero
            }
            Some(_) => return Err(AmountError::Negative),
            None => s,
        };
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], parse_exponent(&s[i + 1..])?),
            None => (s, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits_only = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits_only(int) || !digits_only(frac) || mantissa.ends_with('.') {
            return Err(AmountError::NotANumber);
        }
        let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
        // value = digits × 10^-scale
        let scale = i64::try_from(frac.len()).map_err(|_| AmountError::OutOfRange)? - exponent;
        Amount::from_digits(&mut digits, scale)
    }

    /// `units` minor units of a currency with `exponent` decimals: `(149950, 2)` is
    /// `1499.5`. An exponent above 38 is taken as 38.
    pub fn from_minor_units(units: u128, exponent: u32) -> Amount {
        let mut digits = units.to_string().into_bytes();
        let scale = i64::from(exponent.min(MAX_DIGITS as u32));
        // At most 39 digits and a scale of at most 38: always in range.
        Amount::from_digits(&mut digits, scale).unwrap_or_else(|_| Amount("0".into()))
    }

    /// The amount in minor units of a currency with `exponent` decimals (`Some(149950)`
    /// for `1499.5` and 2), or `None` if it has more decimals than that or does not fit.
    pub fn to_minor_units(&self, exponent: u32) -> Option<u128> {
        let (int, frac) = self.0.split_once('.').unwrap_or((&self.0, ""));
        let pad = exponent.checked_sub(u32::try_from(frac.len()).ok()?)?;
        let mut units: u128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            units = units.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
        }
        units.checked_mul(10u128.checked_pow(pad)?)
    }

    /// The canonical decimal text (`1499.5`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Builds the canonical text of `digits × 10^-scale`.
    fn from_digits(digits: &mut Vec<u8>, mut scale: i64) -> Result<Amount, AmountError> {
        let leading = digits.iter().take_while(|&&d| d == b'0').count();
        digits.drain(..leading);
        while scale > 0 && digits.last() == Some(&b'0') {
            digits.pop();
            scale -= 1;
        }
        if digits.is_empty() {
            return Ok(Amount("0".into()));
        }
        if scale < 0 {
            let zeros = usize::try_from(-scale).map_err(|_| AmountError::OutOfRange)?;
            if zeros > MAX_DIGITS {
                return Err(AmountError::OutOfRange);
            }
            digits.resize(digits.len() + zeros, b'0');
            scale = 0;
        }
        let scale = usize::try_from(scale).map_err(|_| AmountError::OutOfRange)?;
        if digits.len() > MAX_DIGITS + 1 || scale > MAX_DIGITS {
            return Err(AmountError::OutOfRange);
        }
        let mut text = String::with_capacity(digits.len() + scale + 2);
        let digits = std::str::from_utf8(digits).map_err(|_| AmountError::NotANumber)?;
        if scale == 0 {
            text.push_str(digits);
        } else if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            text.push_str(int);
            text.push('.');
            text.push_str(frac);
        } else {
            text.push_str("0.");
            text.extend(std::iter::repeat_n('0', scale - digits.len()));
            text.push_str(digits);
        }
        Ok(Amount(text.into_boxed_str()))
    }
}

fn parse_exponent(s: &str) -> Result<i64, AmountError> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::NotANumber);
    }
    let e: i64 = digits.parse().map_err(|_| AmountError::OutOfRange)?;
    if e > 2 * MAX_DIGITS as i64 {
        return Err(AmountError::OutOfRange);
    }
    Ok(if s.starts_with('-') { -e } else { e })
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

impl std::str::FromStr for Amount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Amount::parse(s)
    }
}

/// Serialized as its canonical text (`"1499.5"`), so no float ever holds it.
impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Amount::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The amount and currency the merchant charges for an order: what a settled order must
/// show before it counts as paid (a status alone does not prove the right payment).
///
/// ```
/// use direct_otp::{Amount, ExpectedAmount, OrderSnapshot};
///
/// let expected = ExpectedAmount::new(Amount::parse("1499.00")?, "inr")?;
/// let body = br#"{"order_id":"ord_1","status":"CHARGED","amount":1499.0,"currency":"INR"}"#;
/// let order = OrderSnapshot::from_order_status(200, body)?;
/// assert!(expected.check(&order).is_ok());
///
/// let tampered = br#"{"order_id":"ord_1","status":"CHARGED","amount":1.0,"currency":"INR"}"#;
/// let err = expected.check(&OrderSnapshot::from_order_status(200, tampered)?).unwrap_err();
/// assert!(err.amount_differs() && !err.currency_differs());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ExpectedRepr")]
pub struct ExpectedAmount {
    amount: Amount,
    currency: String,
}

#[derive(Deserialize)]
struct ExpectedRepr {
    amount: Amount,
    currency: String,
}

impl TryFrom<ExpectedRepr> for ExpectedAmount {
    type Error = AmountError;
    fn try_from(r: ExpectedRepr) -> Result<Self, Self::Error> {
        ExpectedAmount::new(r.amount, &r.currency)
    }
}

impl ExpectedAmount {
    /// The amount, and the ISO 4217 currency code (three ASCII letters, any case; kept in
    /// upper case).
    pub fn new(amount: Amount, currency: &str) -> Result<Self, AmountError> {
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(AmountError::Currency);
        }
        Ok(ExpectedAmount {
            amount,
            currency: currency.to_ascii_uppercase(),
        })
    }

    /// The amount expected.
    pub fn amount(&self) -> &Amount {
        &self.amount
    }

    /// The currency expected (upper case).
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// Checks an order (from the order status API or a webhook) against what was expected.
    /// Pure: no request, no clock. An order with no readable amount or currency fails: it
    /// proves nothing. Currencies compare ignoring ASCII case; amounts compare by value.
    pub fn check(&self, order: &OrderSnapshot) -> Result<(), IntegrityError> {
        let amount_ok = order.amount.as_ref() == Some(&self.amount);
        let currency_ok = order
            .currency
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(&self.currency));
        if amount_ok && currency_ok {
            Ok(())
        } else {
            Err(IntegrityError {
                expected: self.clone(),
                found_amount: order.amount.clone(),
                found_currency: order.currency.clone(),
            })
        }
    }
}

/// An order's amount or currency is not what the merchant charged: never report it as
/// paid. Hold the order for review (and refund if the money did arrive).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "integrity failure: expected {} {}, the order says {} {}",
    expected.amount,
    expected.currency,
    found_amount.as_ref().map_or("(no amount)".to_owned(), Amount::to_string),
    found_currency.as_deref().unwrap_or("(no currency)")
)]
#[non_exhaustive]
pub struct IntegrityError {
    /// What the merchant expected.
    pub expected: ExpectedAmount,
    /// The order's amount, if it had a readable one.
    pub found_amount: Option<Amount>,
    /// The order's currency, if it had one.
    pub found_currency: Option<String>,
}

impl IntegrityError {
    /// The amount differs (or is missing).
    pub fn amount_differs(&self) -> bool {
        self.found_amount.as_ref() != Some(&self.expected.amount)
    }

    /// The currency differs (or is missing).
    pub fn currency_differs(&self) -> bool {
        !self
            .found_currency
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(&self.expected.currency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_to_canonical_text() {
        for (input, want) in [
            ("0", "0"),
            ("0.00", "0"),
            ("-0.0", "0"),
            ("000", "0"),
            ("1499", "1499"),
            ("1499.0", "1499"),
            ("1499.00", "1499"),
            (" 1499.50 ", "1499.5"),
            ("01499.5", "1499.5"),
            ("0.01", "0.01"),
            ("0.10", "0.1"),
            ("1e3", "1000"),
            ("1.4995E3", "1499.5"),
            ("1499.5e-2", "14.995"),
            ("5e-3", "0.005"),
            ("100e+0", "100"),
            (
                "12345678901234567890.123456789",
                "12345678901234567890.123456789",
            ),
        ] {
            assert_eq!(
                Amount::parse(input).map(|a| a.to_string()),
                Ok(want.into()),
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_money() {
        for (input, want) in [
            ("", AmountError::NotANumber),
            (".5", AmountError::NotANumber),
            ("5.", AmountError::NotANumber),
            ("1,499", AmountError::NotANumber),
            ("+5", AmountError::NotANumber),
            ("1e", AmountError::NotANumber),
            ("1e+", AmountError::NotANumber),
            ("0x10", AmountError::NotANumber),
            ("NaN", AmountError::NotANumber),
            ("1 499", AmountError::NotANumber),
            ("١٢", AmountError::NotANumber),
            ("-1", AmountError::Negative),
            ("-0.01", AmountError::Negative),
            ("1e77", AmountError::OutOfRange),
            ("1e99999999999999999999", AmountError::OutOfRange),
            ("1e-77", AmountError::OutOfRange),
        ] {
            assert_eq!(Amount::parse(input), Err(want), "{input}");
        }
        assert_eq!(Amount::parse(&"9".repeat(40)), Err(AmountError::OutOfRange));
        assert!(Amount::parse(&"9".repeat(39)).is_ok());
        assert_eq!(Amount::parse(&"0".repeat(10_000)).unwrap().as_str(), "0");
    }

    #[test]
    fn minor_units_round_trip() {
        let a = Amount::parse("1499.5").unwrap();
        assert_eq!(a.to_minor_units(2), Some(149_950));
        assert_eq!(a.to_minor_units(1), Some(14_995));
        assert_eq!(a.to_minor_units(0), None, "fraction below the unit");
        assert_eq!(
            Amount::parse("1e38").unwrap().to_minor_units(2),
            None,
            "overflow"
        );
        assert_eq!(Amount::from_minor_units(0, 2).as_str(), "0");
        assert_eq!(Amount::from_minor_units(5, 3).as_str(), "0.005");
        assert_eq!(Amount::from_minor_units(149_900, 2).as_str(), "1499");
        assert_eq!(
            Amount::from_minor_units(u128::MAX, 0).to_minor_units(0),
            Some(u128::MAX)
        );
        assert_eq!(Amount::from_minor_units(7, 500).to_minor_units(38), Some(7));
    }

    #[test]
    fn serde_uses_the_text() {
        let a = Amount::parse("1499.50").unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), r#""1499.5""#);
        assert_eq!(serde_json::from_str::<Amount>(r#""1499.50""#).unwrap(), a);
        assert!(serde_json::from_str::<Amount>(r#""-3""#).is_err());
        let e = ExpectedAmount::new(a, "inr").unwrap();
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#"{"amount":"1499.5","currency":"INR"}"#);
        assert_eq!(serde_json::from_str::<ExpectedAmount>(&json).unwrap(), e);
        assert!(
            serde_json::from_str::<ExpectedAmount>(r#"{"amount":"1","currency":"RUPEE"}"#).is_err()
        );
    }

    #[test]
    fn currencies_are_three_letters() {
        let a = Amount::parse("1").unwrap();
        for bad in ["", "IN", "INRR", "IN1", "€€€", "IN "] {
            assert_eq!(
                ExpectedAmount::new(a.clone(), bad),
                Err(AmountError::Currency),
                "{bad}"
            );
        }
        assert_eq!(ExpectedAmount::new(a, "usd").unwrap().currency(), "USD");
    }
}
