//! Time as the core sees it: whole Unix milliseconds, with saturating arithmetic.
//!
//! The caller passes `now` as an [`OffsetDateTime`]; the core keeps instants as `i64`
//! milliseconds so that arithmetic can never panic, the persisted form round-trips exactly,
//! and a deadline handed out by `poll_timeout` compares equal when it is fed back in.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use time::OffsetDateTime;

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
        Stamp::from(ms_of(t))
    }

    /// Back to an `OffsetDateTime` (UTC), clamped to the range `time` can represent.
    pub(crate) fn to_time(self) -> OffsetDateTime {
        let (secs, ms) = (self.0.div_euclid(1000), self.0.rem_euclid(1000));
        match OffsetDateTime::from_unix_timestamp(secs) {
            // `ms` is in 0..1000, so this never fails.
            Ok(t) => t.replace_millisecond(ms as u16).unwrap_or(t),
            Err(_) if secs < 0 => min_time(),
            Err(_) => max_time(),
        }
    }

    pub(crate) fn plus(self, d: Duration) -> Self {
        Stamp::from(self.0.saturating_add(millis(d)))
    }
}

/// Unix milliseconds, rounded towards the past, in 64-bit arithmetic (whole seconds are
/// already rounded towards the past; the millisecond within the second is added).
fn ms_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
        .saturating_mul(1000)
        .saturating_add(i64::from(t.millisecond()))
}

fn min_ms() -> i64 {
    ms_of(min_time())
}

fn max_ms() -> i64 {
    ms_of(max_time())
}

/// Whole milliseconds of a duration; negative durations count as zero.
/// An instant as RFC 3339 in UTC, to the second (`2026-12-07T01:38:50Z`): what messages
/// print, never `time`'s own debug-like format.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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
    fn milliseconds_agree_with_the_nanosecond_count() {
        for t in [
            datetime!(1969-12-31 23:59:59.0005 UTC),
            datetime!(1970-01-01 00:00:00 UTC),
            datetime!(1900-02-28 12:00:00.999999 -03:00),
            datetime!(2026-11-25 15:30:00.5 +05:30),
            min_time(),
            max_time(),
        ] {
            let ms = i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).unwrap();
            assert_eq!(Stamp::from_time(t), Stamp(ms), "{t}");
            let back = Stamp(ms).to_time();
            assert_eq!(
                back.unix_timestamp_nanos(),
                i128::from(ms) * 1_000_000,
                "{t}"
            );
        }
        assert_eq!(millis(Duration::ZERO), 0);
        assert_eq!(millis(Duration::new(2, 999_999_999)), 2_999);
        assert_eq!(millis(Duration::MAX), i64::MAX);
    }

    #[test]
    fn messages_print_rfc_3339() {
        let t = time::macros::datetime!(2026-12-07 1:38:50.345 +05:30);
        assert_eq!(rfc3339(t), "2026-12-06T20:08:50Z");
        let _ = rfc3339(min_time());
        let _ = rfc3339(max_time());
    }

    #[test]
    fn extremes_never_panic() {
        let lo = Stamp::from_time(min_time());
        let hi = Stamp::from_time(max_time());
        assert_eq!(hi.plus(Duration::MAX), hi);
        assert_eq!(Stamp::from_time(hi.to_time()), hi);
        assert_eq!(lo.plus(Duration::ZERO), lo);
        assert_eq!(Stamp::from_time(lo.to_time()), lo);
        assert_eq!(Stamp::from(i64::MIN), lo);
        assert_eq!(Stamp::from(i64::MAX), Stamp::from_time(max_time()));
        let back: Stamp = serde_json::from_str("9223372036854775807").unwrap();
        assert_eq!(back, hi);
    }
}
