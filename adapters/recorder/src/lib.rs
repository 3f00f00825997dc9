//! The recorder and player federates of `fedtwin run`, and the plots of a recording.
//!
//! * [`recorder`]: a time-constrained, non-regulating federate that subscribes to chosen
//!   attributes and interactions, advances with next-event requests to the stop time and keeps
//!   every value it receives in a [`Recording`], which writes `signals.csv`,
//!   `interactions.csv` and `summary.json`.
//! * [`player`]: a time-regulating federate that replays a CSV file as the attributes of one
//!   object, each row stamped with its time.
//! * [`plot`]: SVG charts of a recording, one per recorded attribute.
//!
//! # Values
//!
//! The SDK sends values serialized with postcard and does not say their type. The recorder
//! reads a payload of eight bytes as an `f64` (what FMU adapters and players send) and any
//! other payload as an unsigned integer (postcard's varint, which also covers `bool`); a
//! payload that is neither is skipped with a debug log. Publish `f64` values to record them.

#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod player;
pub mod plot;
pub mod recorder;
mod recording;

use fedtwin_core::SimTime;
use fedtwin_core::time::TICKS_PER_SECOND;

pub use player::{PlayerConfig, PlayerError, PlayerTable};
pub use recorder::{RecordSpec, RecorderConfig, RecorderError};
pub use recording::{ColumnSummary, Recording, Written};

/// A time as exact decimal seconds without a unit (`1.5`, `0.000000001`, `-2`), the form of
/// the `time_s` columns: no floating point, so that a player's times come back unchanged.
pub fn format_seconds(time: SimTime) -> String {
    let ticks = i128::from(time.ticks());
    let per_second = i128::from(TICKS_PER_SECOND);
    let sign = if ticks < 0 { "-" } else { "" };
    let magnitude = ticks.abs();
    let whole = magnitude / per_second;
    let fraction = magnitude % per_second;
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{fraction:09}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// A value as CSV text: the shortest form that reads back as the same `f64` (Rust's `Display`
/// and `LowerExp` both round-trip), in exponent form when plain digits would be long.
pub fn format_number(value: f64) -> String {
    let magnitude = value.abs();
    if value != 0.0 && value.is_finite() && !(1e-4..1e15).contains(&magnitude) {
        format!("{value:e}")
    } else {
        value.to_string()
    }
}

/// A received value as a number (see the [crate documentation](crate)); `None` when the
/// payload is neither an `f64` nor an unsigned integer.
pub fn decode_number(bytes: &[u8]) -> Option<f64> {
    if let Ok(array) = <[u8; 8]>::try_from(bytes) {
        return Some(f64::from_le_bytes(array));
    }
    match postcard::take_from_bytes::<u64>(bytes) {
        // Integers beyond 2^53 lose precision here; recorded signals are f64 anyway.
        Ok((value, [])) => Some(value as f64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(format_seconds(SimTime::ZERO), "0");
        assert_eq!(format_seconds(SimTime::from_millis(1500).unwrap()), "1.5");
        assert_eq!(format_seconds(SimTime::from_ticks(1)), "0.000000001");
        assert_eq!(format_seconds(SimTime::from_ticks(-2_500_000_000)), "-2.5");
        assert_eq!(format_seconds(SimTime::from_secs(86_400).unwrap()), "86400");
    }

    #[test]
    fn numbers_round_trip_through_text() {
        for value in [
            0.0,
            1.0,
            -100.0,
            0.1,
            4.876568793176296e-15,
            1e300,
            -2.5e-5,
            123.456,
        ] {
            let text = format_number(value);
            assert_eq!(text.parse::<f64>().unwrap(), value, "{text}");
        }
        assert_eq!(format_number(1.0), "1");
        assert_eq!(
            format_number(4.876568793176296e-15),
            "4.876568793176296e-15"
        );
    }

    #[test]
    fn numbers_decode_from_postcard() {
        let f = postcard::to_stdvec(&-1.25f64).unwrap();
        assert_eq!(decode_number(&f), Some(-1.25));
        let n = postcard::to_stdvec(&300u64).unwrap();
        assert_eq!(decode_number(&n), Some(300.0));
        let b = postcard::to_stdvec(&true).unwrap();
        assert_eq!(decode_number(&b), Some(1.0));
        assert_eq!(decode_number(&[0xff, 0xff]), None);
        assert_eq!(decode_number(&[]), None);
    }
}
