//! Simulation time: integer ticks, never floating point.
//!
//! A [`SimTime`] is a point on the federation's time axis and a [`SimDuration`] a non-negative
//! span such as a lookahead or a step. One tick is one nanosecond. Every order and every grant is
//! decided on the integers; `f64` seconds are converted exactly once, at the boundary where they
//! enter (an FMU, a configuration file), and the conversion says when it had to round.
//!
//! Arithmetic is checked: an overflow is a [`TimeError`], never a wrap. [`SimTime::END`] is the
//! end of time (the largest representable instant); it stands for "no bound" in time management.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Number of ticks in one second of simulation time.
pub const TICKS_PER_SECOND: i64 = 1_000_000_000;

/// A point in simulation time, counted in ticks of one nanosecond.
///
/// Displayed in seconds (`1.5s`); parsed from `"1.5s"`, `"250ms"`, `"10us"`, `"3ns"` or a plain
/// number of seconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SimTime(i64);

/// A non-negative span of simulation time, counted in ticks of one nanosecond.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SimDuration(u64);

/// Why a time value could not be made or computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// The result does not fit in 64-bit ticks.
    #[error("simulation time overflow: {what} does not fit in 64-bit nanosecond ticks")]
    Overflow {
        /// The computation that overflowed, in words.
        what: String,
    },
    /// A floating-point time was NaN or infinite.
    #[error("simulation time {value} is not a finite number of seconds")]
    NotFinite {
        /// The offending value.
        value: f64,
    },
    /// A duration would be negative.
    #[error("a duration cannot be negative (got {value})")]
    Negative {
        /// The offending value, as written.
        value: String,
    },
    /// Text that is not a time.
    #[error(
        "`{text}` is not a simulation time: write seconds such as `1.5`, `1.5s`, `20ms`, `5us` or `100ns`"
    )]
    Syntax {
        /// The text that failed to parse.
        text: String,
    },
}

impl SimTime {
    /// Time zero, where federates start.
    pub const ZERO: Self = Self(0);
    /// The end of time: later than any instant a federate can reach by stepping.
    pub const END: Self = Self(i64::MAX);
    /// The earliest representable instant.
    pub const MIN: Self = Self(i64::MIN);

    /// A time from raw ticks (nanoseconds).
    pub const fn from_ticks(ticks: i64) -> Self {
        Self(ticks)
    }

    /// The raw tick count.
    pub const fn ticks(self) -> i64 {
        self.0
    }

    /// A whole number of seconds.
    ///
    /// # Errors
    ///
    /// [`TimeError::Overflow`] when the value does not fit in ticks.
    pub fn from_secs(secs: i64) -> Result<Self, TimeError> {
        secs.checked_mul(TICKS_PER_SECOND)
            .map(Self)
            .ok_or_else(|| overflow(format!("{secs} s")))
    }

    /// A whole number of milliseconds.
    ///
    /// # Errors
    ///
    /// [`TimeError::Overflow`] when the value does not fit in ticks.
    pub fn from_millis(millis: i64) -> Result<Self, TimeError> {
        millis
            .checked_mul(1_000_000)
            .map(Self)
            .ok_or_else(|| overflow(format!("{millis} ms")))
    }

    /// Seconds as `f64`, rounded to the nearest tick. This is the one place where floating point
    /// enters; call it once at the boundary and keep the `SimTime`.
    ///
    /// # Errors
    ///
    /// [`TimeError::NotFinite`] for NaN or infinities, [`TimeError::Overflow`] when out of range.
    pub fn from_secs_f64(secs: f64) -> Result<Self, TimeError> {
        if !secs.is_finite() {
            return Err(TimeError::NotFinite { value: secs });
        }
        let ticks = (secs * TICKS_PER_SECOND as f64).round();
        // i64::MAX is not exactly representable as f64; the comparison is against 2^63.
        if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&ticks) {
            return Err(overflow(format!("{secs} s")));
        }
        Ok(Self(ticks as i64))
    }

    /// Seconds as `f64`, for display and for FMI calls. Never use the result to order events.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / TICKS_PER_SECOND as f64
    }

    /// `self + d`.
    ///
    /// # Errors
    ///
    /// [`TimeError::Overflow`] past [`SimTime::END`].
    pub fn checked_add(self, d: SimDuration) -> Result<Self, TimeError> {
        self.0
            .checked_add_unsigned(d.0)
            .map(Self)
            .ok_or_else(|| overflow(format!("{self} + {d}")))
    }

    /// `self + d`, staying at [`SimTime::END`] instead of overflowing. Time management uses this
    /// for bounds, where the end of time plus a lookahead is still the end of time.
    pub fn saturating_add(self, d: SimDuration) -> Self {
        Self(self.0.saturating_add_unsigned(d.0))
    }

    /// The span from `earlier` to `self`.
    ///
    /// # Errors
    ///
    /// [`TimeError::Negative`] when `earlier` is later than `self`.
    pub fn duration_since(self, earlier: SimTime) -> Result<SimDuration, TimeError> {
        if earlier > self {
            return Err(TimeError::Negative {
                value: format!("{self} - {earlier}"),
            });
        }
        Ok(SimDuration(self.0.abs_diff(earlier.0)))
    }

    /// Whether this is [`SimTime::END`].
    pub const fn is_end(self) -> bool {
        self.0 == i64::MAX
    }
}

impl SimDuration {
    /// No time at all: a zero lookahead.
    pub const ZERO: Self = Self(0);
    /// One tick, the smallest positive duration.
    pub const TICK: Self = Self(1);

    /// A duration from raw ticks (nanoseconds).
    pub const fn from_ticks(ticks: u64) -> Self {
        Self(ticks)
    }

    /// The raw tick count.
    pub const fn ticks(self) -> u64 {
        self.0
    }

    /// A whole number of seconds.
    ///
    /// # Errors
    ///
    /// [`TimeError::Overflow`] when the value does not fit in ticks.
    pub fn from_secs(secs: u64) -> Result<Self, TimeError> {
        secs.checked_mul(TICKS_PER_SECOND as u64)
            .map(Self)
            .ok_or_else(|| overflow(format!("{secs} s")))
    }

    /// A whole number of milliseconds.
    ///
    /// # Errors
    ///
    /// [`TimeError::Overflow`] when the value does not fit in ticks.
    pub fn from_millis(millis: u64) -> Result<Self, TimeError> {
        millis
            .checked_mul(1_000_000)
            .map(Self)
            .ok_or_else(|| overflow(format!("{millis} ms")))
    }

    /// Seconds as `f64`, rounded to the nearest tick.
    ///
    /// # Errors
    ///
    /// [`TimeError::NotFinite`], [`TimeError::Negative`] or [`TimeError::Overflow`].
    pub fn from_secs_f64(secs: f64) -> Result<Self, TimeError> {
        if secs < 0.0 {
            return Err(TimeError::Negative {
                value: format!("{secs} s"),
            });
        }
        let t = SimTime::from_secs_f64(secs)?;
        Ok(Self(t.0.unsigned_abs()))
    }

    /// Seconds as `f64`.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / TICKS_PER_SECOND as f64
    }

    /// `self + other`.
    ///
    /// # Errors
    ///
    /// [`TimeError::Overflow`].
    pub fn checked_add(self, other: SimDuration) -> Result<Self, TimeError> {
        self.0
            .checked_add(other.0)
            .map(Self)
            .ok_or_else(|| overflow(format!("{self} + {other}")))
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

fn overflow(what: String) -> TimeError {
    TimeError::Overflow { what }
}

/// Writes `ticks` (non-negative) as seconds with the trailing zeros of the fraction removed.
fn write_seconds(f: &mut fmt::Formatter<'_>, negative: bool, ticks: u64) -> fmt::Result {
    let whole = ticks / TICKS_PER_SECOND as u64;
    let frac = ticks % TICKS_PER_SECOND as u64;
    let sign = if negative { "-" } else { "" };
    if frac == 0 {
        return write!(f, "{sign}{whole}s");
    }
    let digits = format!("{frac:09}");
    write!(f, "{sign}{whole}.{}s", digits.trim_end_matches('0'))
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_end() {
            return f.write_str("end");
        }
        write_seconds(f, self.0 < 0, self.0.unsigned_abs())
    }
}

impl fmt::Debug for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_seconds(f, false, self.0)
    }
}

impl fmt::Debug for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Parses decimal text with a unit (`h`, `min`, `s`, `ms`, `us`, `ns`; none means seconds) into
/// ticks, exactly (no floating point).
fn parse_ticks(text: &str) -> Result<i64, TimeError> {
    let syntax = || TimeError::Syntax {
        text: text.to_owned(),
    };
    let trimmed = text.trim();
    if trimmed == "end" {
        return Ok(i64::MAX);
    }
    // Hours and minutes are whole multiples of a second: parse the number in seconds and
    // multiply exactly, so that "1.5h" is 5400 s to the tick.
    for (suffix, seconds) in [("h", 3600i128), ("min", 60)] {
        if let Some(n) = trimmed.strip_suffix(suffix) {
            let n = n.trim_end();
            if n.ends_with(|c: char| !c.is_ascii_digit() && c != '.') {
                return Err(syntax());
            }
            let in_seconds = parse_ticks(&format!("{n}s"))?;
            return i64::try_from(i128::from(in_seconds) * seconds)
                .map_err(|_| overflow(text.to_owned()));
        }
    }
    let (number, scale_digits) = if let Some(n) = trimmed.strip_suffix("ns") {
        (n, 0u32)
    } else if let Some(n) = trimmed.strip_suffix("us") {
        (n, 3)
    } else if let Some(n) = trimmed.strip_suffix("ms") {
        (n, 6)
    } else if let Some(n) = trimmed.strip_suffix('s') {
        (n, 9)
    } else {
        (trimmed, 9)
    };
    let number = number.trim_end();
    let (negative, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(syntax());
    }
    if frac_part.len() > scale_digits as usize {
        // More digits than the tick can hold: refuse rather than round silently.
        return Err(syntax());
    }
    let scale = 10i64.pow(scale_digits);
    let int_value: i64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| overflow(text.to_owned()))?
    };
    let frac_value: i64 = if frac_part.is_empty() {
        0
    } else {
        let padded = format!("{frac_part:0<width$}", width = scale_digits as usize);
        padded.parse().map_err(|_| syntax())?
    };
    // i128 so that the most negative tick count, whose magnitude exceeds i64::MAX, still parses.
    let magnitude = i128::from(int_value) * i128::from(scale) + i128::from(frac_value);
    let signed = if negative { -magnitude } else { magnitude };
    i64::try_from(signed).map_err(|_| overflow(text.to_owned()))
}

impl FromStr for SimTime {
    type Err = TimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_ticks(s).map(Self)
    }
}

impl FromStr for SimDuration {
    type Err = TimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ticks = parse_ticks(s)?;
        if ticks < 0 {
            return Err(TimeError::Negative {
                value: s.to_owned(),
            });
        }
        Ok(Self(ticks.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn displays_seconds_without_trailing_zeros() {
        assert_eq!(SimTime::from_ticks(1_500_000_000).to_string(), "1.5s");
        assert_eq!(SimTime::from_ticks(-250_000_000).to_string(), "-0.25s");
        assert_eq!(SimTime::ZERO.to_string(), "0s");
        assert_eq!(SimTime::from_ticks(1).to_string(), "0.000000001s");
        assert_eq!(SimTime::END.to_string(), "end");
        assert_eq!(SimDuration::from_ticks(3_000_000_000).to_string(), "3s");
    }

    #[test]
    fn parses_units_exactly() {
        assert_eq!(
            "1.5".parse::<SimTime>(),
            Ok(SimTime::from_ticks(1_500_000_000))
        );
        assert_eq!(
            "1.5s".parse::<SimTime>(),
            Ok(SimTime::from_ticks(1_500_000_000))
        );
        assert_eq!(
            "20ms".parse::<SimTime>(),
            Ok(SimTime::from_ticks(20_000_000))
        );
        assert_eq!("0.5us".parse::<SimTime>(), Ok(SimTime::from_ticks(500)));
        assert_eq!("7ns".parse::<SimDuration>(), Ok(SimDuration::from_ticks(7)));
        assert_eq!(
            "-2s".parse::<SimTime>(),
            Ok(SimTime::from_ticks(-2_000_000_000))
        );
        assert_eq!("end".parse::<SimTime>(), Ok(SimTime::END));
        assert_eq!(
            "24h".parse::<SimTime>(),
            Ok(SimTime::from_ticks(86_400_000_000_000))
        );
        assert_eq!(
            "1.5h".parse::<SimDuration>(),
            Ok(SimDuration::from_ticks(5_400_000_000_000))
        );
        assert_eq!(
            "15min".parse::<SimDuration>(),
            Ok(SimDuration::from_ticks(900_000_000_000))
        );
        assert_eq!(
            "-2min".parse::<SimTime>(),
            Ok(SimTime::from_ticks(-120_000_000_000))
        );
    }

    #[test]
    fn refuses_bad_text() {
        for text in [
            "",
            "s",
            "1.2.3",
            "abc",
            "1.0000000001",
            "0.5ns",
            "--1",
            "h",
            "min",
            "1msh",
            "1smin",
            "0.0000000000001h",
        ] {
            assert!(
                matches!(text.parse::<SimTime>(), Err(TimeError::Syntax { .. })),
                "{text:?} parsed"
            );
        }
        assert!(matches!(
            "-1s".parse::<SimDuration>(),
            Err(TimeError::Negative { .. })
        ));
        assert!(matches!(
            "99999999999999999999".parse::<SimTime>(),
            Err(TimeError::Overflow { .. })
        ));
    }

    #[test]
    fn arithmetic_is_checked() {
        let near_end = SimTime::from_ticks(i64::MAX - 1);
        assert!(matches!(
            near_end.checked_add(SimDuration::from_ticks(2)),
            Err(TimeError::Overflow { .. })
        ));
        assert_eq!(
            near_end.saturating_add(SimDuration::from_ticks(2)),
            SimTime::END
        );
        assert!(SimTime::from_secs(i64::MAX / 2).is_err());
        assert!(SimTime::from_secs_f64(f64::NAN).is_err());
        assert!(SimTime::from_secs_f64(1e300).is_err());
        assert!(SimDuration::from_secs_f64(-1.0).is_err());
        assert_eq!(
            SimTime::from_secs_f64(0.1),
            Ok(SimTime::from_ticks(100_000_000))
        );
    }

    #[test]
    fn durations_between_times() {
        let a = SimTime::from_ticks(10);
        let b = SimTime::from_ticks(25);
        assert_eq!(b.duration_since(a), Ok(SimDuration::from_ticks(15)));
        assert!(a.duration_since(b).is_err());
        assert_eq!(
            SimTime::END.duration_since(SimTime::MIN).map(|d| d.ticks()),
            Ok(u64::MAX)
        );
    }

    proptest! {
        #[test]
        fn display_round_trips(ticks in any::<i64>().prop_filter("end", |t| *t != i64::MAX)) {
            let t = SimTime::from_ticks(ticks);
            let shown = t.to_string();
            prop_assert_eq!(shown.parse::<SimTime>(), Ok(t));
        }

        #[test]
        fn order_matches_ticks(a in any::<i64>(), b in any::<i64>()) {
            prop_assert_eq!(SimTime::from_ticks(a).cmp(&SimTime::from_ticks(b)), a.cmp(&b));
        }
    }
}
