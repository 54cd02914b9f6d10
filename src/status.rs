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

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
