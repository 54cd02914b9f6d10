//! Time as the core sees it: whole Unix milliseconds, with saturating arithmetic.
//!
//! The caller passes `now` as an [`OffsetDateTime`]; the core keeps instants as `i64`
//! milliseconds so that arithmetic can never panic, the persisted form round-trips exactly,
//! and a deadline handed out by `poll_timeout` compares equal when it is fed back in.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// An instant, in milliseconds since the Unix epoch.
///
/// Every `Stamp` lies within the range `OffsetDateTime` can represent, so converting to
/// `OffsetDateTime` and back gives the same `Stamp` (deadlines handed out compare equal when
/// fed back in, even at the extremes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "i64", into = "i64")]
pub(crate) struct Stamp(i64);

impl From<i64> for Stamp {
    fn from(ms: i64) -> Self {
        Stamp(ms.clamp(min_ms(), max_ms()))
    }
}

impl From<Stamp> for i64 {
    fn from(s: Stamp) -> i64 {
        s.0
    }
}

impl Stamp {
    pub(crate) fn from_time(t: OffsetDateTime) -> Self {
        // Always within range: `OffsetDateTime` spans about ±10,000 years.
        Stamp::from(nanos_to_ms(t.unix_timestamp_nanos()))
    }

    /// Back to an `OffsetDateTime` (UTC), clamped to the range `time` can represent.
    pub(crate) fn to_time(self) -> OffsetDateTime {
        let nanos = i128::from(self.0) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(if nanos < 0 {
            min_time()
        } else {
            max_time()
        })
    }

    pub(crate) fn plus(self, d: Duration) -> Self {
        Stamp::from(self.0.saturating_add(millis(d)))
    }
}

fn nanos_to_ms(nanos: i128) -> i64 {
    let ms = nanos.div_euclid(1_000_000);
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

fn min_ms() -> i64 {
    nanos_to_ms(min_time().unix_timestamp_nanos())
}

fn max_ms() -> i64 {
    nanos_to_ms(max_time().unix_timestamp_nanos())
}

/// Whole milliseconds of a duration; negative durations count as zero.
pub(crate) fn millis(d: Duration) -> i64 {
    let ms = d.whole_milliseconds().max(0);
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn min_time() -> OffsetDateTime {
    time::PrimitiveDateTime::MIN.assume_utc()
}

fn max_time() -> OffsetDateTime {
    time::PrimitiveDateTime::MAX.assume_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn round_trips_millisecond_instants() {
        let t = datetime!(2026-11-25 10:00:00.123 UTC);
        assert_eq!(Stamp::from_time(t).to_time(), t);
        let offset = datetime!(2026-11-25 15:30:00.5 +05:30);
        assert_eq!(Stamp::from_time(offset).to_time(), offset);
    }

    #[test]
    fn truncates_towards_the_past() {
        let t = datetime!(1969-12-31 23:59:59.9999 UTC);
        assert_eq!(Stamp::from_time(t), Stamp(-1));
    }

    #[test]
    fn extremes_never_panic() {
        let lo = Stamp::from_time(min_time());
        let hi = Stamp::from_time(max_time());
        assert_eq!(hi.plus(Duration::MAX), hi);
        assert_eq!(Stamp::from_time(hi.to_time()), hi);
        assert_eq!(lo.plus(Duration::MIN), lo);
        assert_eq!(Stamp::from_time(lo.to_time()), lo);
        assert_eq!(Stamp::from(i64::MIN), lo);
        assert_eq!(Stamp::from(i64::MAX), Stamp::from_time(max_time()));
        let back: Stamp = serde_json::from_str("9223372036854775807").unwrap();
        assert_eq!(back, hi);
    }
}
