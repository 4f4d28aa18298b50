//! Points in time: [`UnixTime`], read and written as RFC 3339 UTC text.
//!
//! The crate does no I/O: a decision that depends on the time (a key's
//! expiry) takes it from the caller. With `std`, [`UnixTime::now`] reads the
//! system clock.
//!
//! The text form is the one RFC 3339 profile a record needs, parsed here in a
//! few lines rather than through a date crate (the core stays `no_std`, and a
//! date crate's calendar, zones and formats are not needed): `YYYY-MM-DDTHH:MM:SSZ`,
//! with optional fractional seconds (dropped: an expiry given to the
//! millisecond takes effect up to a second earlier, never later) and `Z` or
//! `+00:00` as the offset. Other offsets are refused: a record's times are UTC.

use core::fmt;
use core::str::FromStr;

use crate::text::Escaped;

/// The latest time this crate reads or writes: 9999-12-31T23:59:59Z.
const MAX_SECS: u64 = 253_402_300_799;

/// A point in time, in whole seconds since 1970-01-01T00:00:00Z (leap
/// seconds not counted, as Unix time), from 1970 to the end of year 9999.
///
/// As text (`Display`, `FromStr`, serde) it is RFC 3339 in UTC,
/// `2027-03-01T12:00:00Z`.
///
/// ```
/// use structure_access::UnixTime;
///
/// let t: UnixTime = "2027-03-01T12:00:00Z".parse()?;
/// assert_eq!(t.as_secs(), 1_803_902_400);
/// assert_eq!(t.to_string(), "2027-03-01T12:00:00Z");
/// assert_eq!("2027-03-01T12:00:00.999+00:00".parse::<UnixTime>()?, t);
/// assert!("2027-03-01T12:00:00+01:00".parse::<UnixTime>().is_err());
/// # Ok::<(), structure_access::TimeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(u64);

/// Why a text is not a [`UnixTime`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// Not of the shape `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)`.
    #[error(
        "time `{}` is not RFC 3339 UTC, expected `YYYY-MM-DDTHH:MM:SSZ` (fractional seconds and `+00:00` allowed)",
        Escaped(found.as_str())
    )]
    Malformed {
        /// The text (cut short when long).
        found: alloc::string::String,
    },
    /// An offset other than UTC.
    #[error("time `{}` is not in UTC, expected the offset `Z` or `+00:00`", Escaped(found.as_str()))]
    NotUtc {
        /// The text (cut short when long).
        found: alloc::string::String,
    },
    /// A month, day, hour, minute or second out of its range (such as
    /// February 30th, or a leap second).
    #[error("time `{}` is not a date and time of the calendar", Escaped(found.as_str()))]
    OutOfRange {
        /// The text (cut short when long).
        found: alloc::string::String,
    },
    /// Before 1970 or after 9999.
    #[error("time `{}` is outside 1970-01-01 to 9999-12-31", Escaped(found.as_str()))]
    OutOfEra {
        /// The text (cut short when long).
        found: alloc::string::String,
    },
}

impl UnixTime {
    /// 1970-01-01T00:00:00Z.
    pub const EPOCH: Self = Self(0);

    /// The time `secs` seconds after the epoch, or `None` past the end of
    /// year 9999.
    #[must_use]
    pub const fn from_secs(secs: u64) -> Option<Self> {
        if secs > MAX_SECS {
            None
        } else {
            Some(Self(secs))
        }
    }

    /// Seconds since the epoch.
    #[must_use]
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// The time `secs` seconds later, or `None` past the end of year 9999.
    #[must_use]
    pub const fn plus_secs(self, secs: u64) -> Option<Self> {
        match self.0.checked_add(secs) {
            Some(t) => Self::from_secs(t),
            None => None,
        }
    }

    /// Seconds from `self` until `later`, 0 if `later` is not later.
    #[must_use]
    pub const fn secs_until(self, later: Self) -> u64 {
        later.0.saturating_sub(self.0)
    }

    /// The system clock's time (only with the `std` feature). A clock set
    /// before 1970 reads as the epoch, one past 9999 as the end of 9999.
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    #[must_use]
    pub fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self(secs.min(MAX_SECS))
    }
}

/// Days from 1970-01-01 to `y-m-d` (proleptic Gregorian; Howard Hinnant's
/// `days_from_civil`), for `y` in 1970..=9999.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    // 719468 days from 0000-03-01 to 1970-01-01; y >= 1970 keeps this positive.
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of the day `days` after 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The decimal number of `digits` ASCII digits.
fn number(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

fn cut(text: &str) -> alloc::string::String {
    text.chars().take(64).collect()
}

impl FromStr for UnixTime {
    type Err = TimeError;

    fn from_str(text: &str) -> Result<Self, TimeError> {
        let malformed = || TimeError::Malformed { found: cut(text) };
        let b = text.as_bytes();
        let (Some(date), Some(rest)) = (b.get(..19), b.get(19..)) else {
            return Err(malformed());
        };
        let field = |range: core::ops::Range<usize>| date.get(range).and_then(number);
        let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
        if separators.iter().any(|&(i, c)| date.get(i) != Some(&c))
            || !matches!(date.get(10), Some(b'T' | b't'))
        {
            return Err(malformed());
        }
        let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) = (
            field(0..4),
            field(5..7),
            field(8..10),
            field(11..13),
            field(14..16),
            field(17..19),
        ) else {
            return Err(malformed());
        };
        // Fractional seconds: at least one digit after the dot, then dropped.
        let rest = match rest.strip_prefix(b".") {
            Some(fraction) => {
                let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
                if digits == 0 {
                    return Err(malformed());
                }
                fraction.get(digits..).unwrap_or_default()
            }
            None => rest,
        };
        match rest {
            b"Z" | b"z" | b"+00:00" => {}
            [b'+' | b'-', h1, h2, b':', m1, m2]
                if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) =>
            {
                // `-00:00` is RFC 3339's "offset unknown": not UTC either.
                return Err(TimeError::NotUtc { found: cut(text) });
            }
            _ => return Err(malformed()),
        }
        if !(1..=12).contains(&mo) || h > 23 || mi > 59 || s > 59 {
            return Err(TimeError::OutOfRange { found: cut(text) });
        }
        if y < 1970 {
            return Err(TimeError::OutOfEra { found: cut(text) });
        }
        if d == 0 || d > days_in_month(y, mo) {
            return Err(TimeError::OutOfRange { found: cut(text) });
        }
        Ok(Self(
            days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s,
        ))
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0 / 86_400);
        let t = self.0 % 86_400;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            t / 3600,
            t / 60 % 60,
            t % 60
        )
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl serde::Serialize for UnixTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> serde::Deserialize<'de> for UnixTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(crate::serde_util::FromStrVisitor::new(
            "an RFC 3339 UTC time, such as `2027-03-01T12:00:00Z`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn known_instants() {
        for (text, secs) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T23:59:59Z", 951_868_799),
            ("2026-12-04T12:39:29Z", 1_796_387_969),
            ("9999-12-31T23:59:59Z", MAX_SECS),
        ] {
            let t: UnixTime = text.parse().unwrap();
            assert_eq!(t.as_secs(), secs, "{text}");
            assert_eq!(t.to_string(), text);
        }
    }

    #[test]
    fn refusals_say_why() {
        for (text, kind) in [
            ("", "not RFC 3339"),
            ("2026-12-04 12:00:00Z", "not RFC 3339"),
            ("2026-12-04T12:00:00", "not RFC 3339"),
            ("2026-12-04T12:00:00.Z", "not RFC 3339"),
            ("2026-12-04T12:00:00+0100", "not RFC 3339"),
            ("+026-12-04T12:00:00Z", "not RFC 3339"),
            ("2026-12-04T12:00:00+01:00", "not in UTC"),
            ("2026-12-04T12:00:00-00:00", "not in UTC"),
            ("2026-02-29T12:00:00Z", "not a date"),
            ("2026-13-01T12:00:00Z", "not a date"),
            ("2026-12-04T24:00:00Z", "not a date"),
            ("2026-12-31T23:59:60Z", "not a date"),
            ("1969-12-31T23:59:59Z", "outside"),
        ] {
            let e = text.parse::<UnixTime>().unwrap_err().to_string();
            assert!(e.contains(kind), "{text}: {e}");
        }
        let e = "2026\n12".parse::<UnixTime>().unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn arithmetic_stays_in_the_era() {
        let end = UnixTime::from_secs(MAX_SECS).unwrap();
        assert_eq!(UnixTime::from_secs(MAX_SECS + 1), None);
        assert_eq!(end.plus_secs(1), None);
        assert_eq!(UnixTime::EPOCH.plus_secs(60), UnixTime::from_secs(60));
        assert_eq!(end.secs_until(UnixTime::EPOCH), 0);
        assert_eq!(UnixTime::EPOCH.secs_until(end), MAX_SECS);
    }
}
