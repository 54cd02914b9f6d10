//! Client-side limits, used where the server does not state its own.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Limits the client applies. The server's `max_otp_send_limit` and `max_attempts`, when a
/// response carries them, take precedence over `max_sends` and `max_attempts`; the cooldown
/// and lifetime are client-side only (the API documents neither).
///
/// ```
/// use direct_otp::Policy;
/// use std::time::Duration;
///
/// let mut policy = Policy::default();
/// policy.resend_cooldown = Duration::from_secs(45);
/// assert_eq!(policy.max_sends, 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Policy {
    /// OTP sends allowed, counting the first one sent at start. Default 4 (the documented
    /// samples show 4). At most [`Policy::MAX_LIMIT`]; more is taken as that.
    pub max_sends: u32,
    /// OTP submissions allowed. Default 4. At most [`Policy::MAX_LIMIT`]; more is taken as
    /// that.
    pub max_attempts: u32,
    /// Wait between two sends. Default 30 seconds.
    #[serde(with = "millis")]
    pub resend_cooldown: Duration,
    /// How long after start the OTP page may be used. Default 10 minutes.
    #[serde(with = "millis")]
    pub lifetime: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_sends: 4,
            max_attempts: 4,
            resend_cooldown: Duration::from_secs(30),
            lifetime: Duration::from_secs(10 * 60),
        }
    }
}

impl Policy {
    /// The largest send or attempt limit, from the policy or from the server: counters stay
    /// far from saturating, and a stored counter above it is refused as corrupt.
    pub const MAX_LIMIT: u32 = 1_000;

    /// The policy as a challenge keeps and persists it: limits at most
    /// [`MAX_LIMIT`](Self::MAX_LIMIT), durations in whole milliseconds (negative ones as
    /// zero, longer ones as `i64::MAX` ms), which is also how the challenge counts them. A
    /// challenge built with any policy then survives a serde round trip unchanged.
    pub(crate) fn normalized(self) -> Policy {
        let whole_ms = |d: Duration| Duration::from_millis(crate::clock::millis(d).unsigned_abs());
        Policy {
            max_sends: self.max_sends.min(Self::MAX_LIMIT),
            max_attempts: self.max_attempts.min(Self::MAX_LIMIT),
            resend_cooldown: whole_ms(self.resend_cooldown),
            lifetime: whole_ms(self.lifetime),
        }
    }
}

/// Durations persist as whole milliseconds.
mod millis {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(crate::clock::millis(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(
            i64::deserialize(d)?.max(0).unsigned_abs(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_durations_are_what_the_persisted_form_holds() {
        for d in [
            Duration::MAX,
            Duration::from_nanos(1_500_000),
            Duration::from_nanos(999_999),
            Duration::ZERO,
            Duration::from_secs(30),
        ] {
            let p = Policy {
                resend_cooldown: d,
                lifetime: d,
                ..Policy::default()
            };
            let n = p.normalized();
            let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
            assert_eq!(back, n, "{d:?}");
            assert_eq!(n.normalized(), n);
            assert_eq!(crate::clock::millis(n.lifetime), crate::clock::millis(d));
        }
        assert_eq!(Policy::default().normalized(), Policy::default());
    }
}
