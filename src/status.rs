//! Transaction and order status values.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Juspay transaction or order status, keyed on its string (numeric ids conflict between
/// doc versions). A status this library doesn't know is kept, with its text, as
/// [`Status::Other`], and is never final.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// `NEW`: order created, nothing tried.
    New,
    /// `STARTED`: no gateway found yet.
    Started,
    /// `PENDING_VBV`: authentication in progress (waiting for the OTP).
    PendingVbv,
    /// `VBV_SUCCESSFUL`: authenticated, authorizing.
    VbvSuccessful,
    /// `AUTHORIZING`: waiting on the bank.
    Authorizing,
    /// `CHARGED`: success.
    Charged,
    /// `AUTHORIZED`: success, held and not captured (`auto_capture=false`).
    Authorized,
    /// `AUTHENTICATION_FAILED`: authentication not completed.
    AuthenticationFailed,
    /// `AUTHORIZATION_FAILED`: the bank declined after authentication.
    AuthorizationFailed,
    /// `JUSPAY_DECLINED`: rejected by Juspay or the gateway.
    JuspayDeclined,
    /// `AUTO_REFUNDED`: charged, then refunded automatically.
    AutoRefunded,
    /// Any other value, kept as sent. Not final.
    Other(String),
}

impl Status {
    /// Parses a status string (case-sensitive, as the API sends it).
    pub fn parse(s: &str) -> Status {
        match s {
            "NEW" => Status::New,
            "STARTED" => Status::Started,
            "PENDING_VBV" => Status::PendingVbv,
            "VBV_SUCCESSFUL" => Status::VbvSuccessful,
            "AUTHORIZING" => Status::Authorizing,
            "CHARGED" => Status::Charged,
            "AUTHORIZED" => Status::Authorized,
            "AUTHENTICATION_FAILED" => Status::AuthenticationFailed,
            "AUTHORIZATION_FAILED" => Status::AuthorizationFailed,
            "JUSPAY_DECLINED" => Status::JuspayDeclined,
            "AUTO_REFUNDED" => Status::AutoRefunded,
            other => Status::Other(other.to_owned()),
        }
    }

    /// The status string.
    pub fn as_str(&self) -> &str {
        match self {
            Status::New => "NEW",
            Status::Started => "STARTED",
            Status::PendingVbv => "PENDING_VBV",
            Status::VbvSuccessful => "VBV_SUCCESSFUL",
            Status::Authorizing => "AUTHORIZING",
            Status::Charged => "CHARGED",
            Status::Authorized => "AUTHORIZED",
            Status::AuthenticationFailed => "AUTHENTICATION_FAILED",
            Status::AuthorizationFailed => "AUTHORIZATION_FAILED",
            Status::JuspayDeclined => "JUSPAY_DECLINED",
            Status::AutoRefunded => "AUTO_REFUNDED",
            Status::Other(s) => s,
        }
    }

    /// True when the payment succeeded (`CHARGED`, or `AUTHORIZED` for authorize-only).
    pub fn is_success(&self) -> bool {
        matches!(self, Status::Charged | Status::Authorized)
    }

    /// True when nothing more will happen to this transaction.
    pub fn is_final(&self) -> bool {
        self.is_success()
            || matches!(
                self,
                Status::AuthenticationFailed
                    | Status::AuthorizationFailed
                    | Status::JuspayDeclined
                    | Status::AutoRefunded
            )
    }
}

/// The status text, safe for a log line: in an unknown status's text, control characters,
/// line and paragraph separators and bidirectional controls are escaped as `\u{..}`, and a
/// backslash as `\\`, so a hostile status can neither break a log line nor pass for
/// another. [`Status::as_str`] gives the exact text.
///
/// ```
/// use direct_otp::Status;
///
/// let odd = Status::parse("PAID\r\nlevel=admin");
/// assert_eq!(odd.to_string(), "PAID\\u{d}\\u{a}level=admin");
/// assert_eq!(odd.as_str(), "PAID\r\nlevel=admin");
/// assert_eq!(Status::Charged.to_string(), "CHARGED");
/// ```
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.as_str();
        if !text.chars().any(needs_escape) {
            return f.write_str(text);
        }
        for c in text.chars() {
            if c == '\\' {
                f.write_str("\\\\")?;
            } else if needs_escape(c) {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// Characters a log line must not show raw: controls (C0, DEL, C1), the Unicode line and
/// paragraph separators, bidirectional controls, and the escape character itself.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(Status::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_status_round_trips() {
        for s in [
            "NEW",
            "STARTED",
            "PENDING_VBV",
            "VBV_SUCCESSFUL",
            "AUTHORIZING",
            "CHARGED",
            "AUTHORIZED",
            "AUTHENTICATION_FAILED",
            "AUTHORIZATION_FAILED",
            "JUSPAY_DECLINED",
            "AUTO_REFUNDED",
            "SOMETHING_NEW",
        ] {
            let st = Status::parse(s);
            assert_eq!(st.as_str(), s);
            let json = serde_json::to_string(&st).unwrap();
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), st);
        }
    }

    #[test]
    fn display_escapes_what_could_forge_a_log_line() {
        for (text, shown) in [
            ("CHARGED", "CHARGED"),
            ("SOMETHING_NEW", "SOMETHING_NEW"),
            ("bell\u{7}", "bell\\u{7}"),
            (
                "a\r\nlevel=error msg=forged",
                "a\\u{d}\\u{a}level=error msg=forged",
            ),
            ("esc\u{1b}[31mred", "esc\\u{1b}[31mred"),
            ("del\u{7f}c1\u{85}", "del\\u{7f}c1\\u{85}"),
            ("line\u{2028}para\u{2029}", "line\\u{2028}para\\u{2029}"),
            ("rtl\u{202e}DEGRAHC", "rtl\\u{202e}DEGRAHC"),
            ("isolate\u{2066}x\u{2069}", "isolate\\u{2066}x\\u{2069}"),
            // A literal escape must not pass for an escaped control character.
            ("not\\u{7}", "not\\\\u{7}"),
            ("tab\there", "tab\\u{9}here"),
            ("accents ok: é 支付", "accents ok: é 支付"),
            ("", ""),
        ] {
            let status = Status::parse(text);
            assert_eq!(status.to_string(), shown, "{text:?}");
            assert_eq!(status.as_str(), text, "as_str stays exact");
        }
    }

    #[test]
    fn finality() {
        assert!(Status::Charged.is_success() && Status::Charged.is_final());
        assert!(Status::Authorized.is_success());
        assert!(Status::JuspayDeclined.is_final() && !Status::JuspayDeclined.is_success());
        assert!(!Status::PendingVbv.is_final());
        assert!(!Status::Authorizing.is_final());
        assert!(
            !Status::parse("charged").is_final(),
            "unknown text is not final"
        );
        assert!(!Status::Other("CHARGED_LATER".into()).is_final());
    }
}
