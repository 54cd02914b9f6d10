//! What every transport is set up with: one type, so both adapters take the same settings
//! the same way.

use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

/// Default deadline for one whole exchange (connect, send, answer, body): 30 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest deadline a [`Settings`] keeps: 24 hours. A longer one (up to
/// `Duration::MAX`) is clamped to it, because HTTP clients add the deadline to the current
/// instant and `Instant + Duration::MAX` overflows (ureq panicked on it).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Default limit on a response body: 64 KiB (the largest documented answer is a few KiB).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The settings of a transport: the deadline of one exchange, the largest response body
/// read, and the clock `drive` reads when it hands an answer to the challenge. Shared by
#[cfg_attr(
    feature = "hyper",
    doc = "[`HyperTransport::with_settings`](super::HyperTransport::with_settings) and"
)]
#[cfg_attr(not(feature = "hyper"), doc = "`HyperTransport::with_settings` and")]
#[cfg_attr(
    feature = "ureq",
    doc = "[`UreqTransport::with_settings`](super::UreqTransport::with_settings)."
)]
#[cfg_attr(not(feature = "ureq"), doc = "`UreqTransport::with_settings`.")]
///
/// ```
/// use std::time::Duration;
/// use direct_otp::transport::{Settings, DEFAULT_BODY_LIMIT, MAX_TIMEOUT};
///
/// let settings = Settings::new().with_timeout(Duration::from_secs(20));
/// assert_eq!(settings.timeout(), Duration::from_secs(20));
/// assert_eq!(settings.body_limit(), DEFAULT_BODY_LIMIT);
/// // Longer than a day is clamped, never an overflow further down.
/// assert_eq!(Settings::new().with_timeout(Duration::MAX).timeout(), MAX_TIMEOUT);
/// ```
#[derive(Clone, Copy)]
pub struct Settings {
    timeout: Duration,
    body_limit: usize,
    clock: fn() -> OffsetDateTime,
}

impl Settings {
    /// [`DEFAULT_TIMEOUT`], [`DEFAULT_BODY_LIMIT`], and the system clock
    /// ([`OffsetDateTime::now_utc`]).
    pub fn new() -> Self {
        Settings {
            timeout: DEFAULT_TIMEOUT,
            body_limit: DEFAULT_BODY_LIMIT,
            clock: OffsetDateTime::now_utc,
        }
    }

    /// The deadline for one whole exchange: connecting, sending, and reading the answer
    /// with its body. Clamped to [`MAX_TIMEOUT`] (24 hours).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// The largest response body read; a larger one fails with
    /// [`TransportErrorKind::BodyTooLarge`](super::TransportErrorKind::BodyTooLarge).
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The clock `drive` reads when it hands an answer to the challenge (default
    /// [`OffsetDateTime::now_utc`]); a test can pin it.
    pub fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
        self.clock = clock;
        self
    }

    /// The deadline for one exchange.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The response body limit, in bytes.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// The time on the clock.
    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }
}

impl Default for Settings {
    /// [`Settings::new`].
    fn default() -> Self {
        Settings::new()
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("timeout", &self.timeout)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_clamped_to_a_day() {
        let day = Duration::from_secs(86_400);
        assert_eq!(MAX_TIMEOUT, day);
        for (asked, kept) in [
            (Duration::ZERO, Duration::ZERO),
            (Duration::from_millis(300), Duration::from_millis(300)),
            (day, day),
            (day + Duration::from_nanos(1), day),
            (Duration::from_secs(u64::MAX), day),
            (Duration::MAX, day),
        ] {
            assert_eq!(
                Settings::new().with_timeout(asked).timeout(),
                kept,
                "{asked:?}"
            );
        }
    }

    #[test]
    fn defaults_and_builders() {
        fn epoch() -> OffsetDateTime {
            OffsetDateTime::UNIX_EPOCH
        }
        let s = Settings::default();
        assert_eq!(
            (s.timeout(), s.body_limit()),
            (DEFAULT_TIMEOUT, DEFAULT_BODY_LIMIT)
        );
        let s = s.with_body_limit(10).with_clock(epoch);
        assert_eq!((s.body_limit(), s.now()), (10, OffsetDateTime::UNIX_EPOCH));
    }
}
