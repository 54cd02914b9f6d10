//! The one-time password typed by the cardholder.

use std::fmt;

use zeroize::Zeroize;

use crate::error::OtpError;

/// A validated OTP: 4 to 8 ASCII digits.
///
/// It is held inline (no heap), is redacted in `Debug`, has no `Display` and no `Serialize`,
/// and is wiped ([`zeroize`]) when dropped, as is each clone. The challenge never stores it:
/// it only goes into the body of the submit request, whose buffer is wiped too when the
/// [`Request`](crate::Request) is dropped (see there for where wiping stops).
///
/// ```
/// use direct_otp::Otp;
///
/// let otp = Otp::new("123456")?;
/// assert_eq!(format!("{otp:?}"), "Otp([redacted])");
/// assert!(Otp::new("12a4").is_err());
/// # Ok::<(), direct_otp::OtpError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Otp {
    digits: [u8; 8],
    len: u8,
}

impl Otp {
    /// Validates `s` (surrounding whitespace is trimmed, as users paste OTPs).
    pub fn new(s: &str) -> Result<Self, OtpError> {
        let s = s.trim();
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(OtpError::NotDigits);
        }
        if !(4..=8).contains(&s.len()) {
            return Err(OtpError::Length(s.len()));
        }
        let mut digits = [0u8; 8];
        digits[..s.len()].copy_from_slice(s.as_bytes());
        Ok(Otp {
            digits,
            len: s.len() as u8,
        })
    }

    /// The digits, for the request body only.
    pub(crate) fn expose(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for Otp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Otp([redacted])")
    }
}

impl Drop for Otp {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl Otp {
    fn wipe(&mut self) {
        self.digits.zeroize();
        self.len.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_four_to_eight_digits() {
        assert_eq!(Otp::new("1234").unwrap().expose(), "1234");
        assert_eq!(Otp::new(" 12345678\n").unwrap().expose(), "12345678");
    }

    #[test]
    fn the_wipe_run_on_drop_clears_every_digit() {
        let mut otp = Otp::new("12345678").unwrap();
        otp.wipe();
        assert_eq!((otp.digits, otp.len), ([0; 8], 0));
        assert_eq!(otp.expose(), "");
    }

    #[test]
    fn rejects_everything_else_without_echoing_it() {
        assert_eq!(Otp::new("123"), Err(OtpError::Length(3)));
        assert_eq!(Otp::new("123456789"), Err(OtpError::Length(9)));
        assert_eq!(Otp::new(""), Err(OtpError::Length(0)));
        assert_eq!(Otp::new("12 34"), Err(OtpError::NotDigits));
        assert_eq!(Otp::new("１２３４"), Err(OtpError::NotDigits));
        assert_eq!(Otp::new("-123"), Err(OtpError::NotDigits));
        assert_eq!(OtpError::Length(3).code(), "otp_length");
        assert_eq!(OtpError::NotDigits.code(), "otp_not_digits");
        let e = Otp::new("98765x").unwrap_err().to_string();
        assert!(!e.contains("98765"), "{e}");
    }
}
