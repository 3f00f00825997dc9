//! The synthetic day: household demand and photovoltaic output by hour of day.
//!
//! Smooth, deterministic shapes rather than measured data, so that the example needs no data
//! files and its results are easy to reason about.

use federate_sdk::SimTime;

/// The hour of day at simulated time 0: noon, so that a 24-hour run covers the evening peak,
/// the cars' arrivals, the night and the next morning's departures.
pub const DAY_STARTS_AT_HOUR: f64 = 12.0;

/// Hour of day (0 to 24) at simulated time `t`.
pub fn hour_of_day(t: SimTime) -> f64 {
    (DAY_STARTS_AT_HOUR + t.as_secs_f64() / 3600.0).rem_euclid(24.0)
}

/// The wall-clock time of day at simulated time `t`, as `HH:MM`.
pub fn clock(t: SimTime) -> String {
    // Minutes of the day: a whole number below 1440, exact in the cast.
    let minutes = (hour_of_day(t) * 60.0).round() as u32 % (24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Hour of day in the middle of the step `[t, t + step_hours]`.
pub fn mid_hour(t: SimTime, step_hours: f64) -> f64 {
    (hour_of_day(t) + step_hours / 2.0).rem_euclid(24.0)
}

/// Demand of one ordinary household in kW: a night floor, a morning peak around 07:30, a small
/// midday bump and an evening peak around 19:00 (about 1.25 kW).
pub fn household_kw(hour: f64) -> f64 {
    0.30 + 0.35 * bump(hour, 7.5, 1.0) + 0.15 * bump(hour, 12.5, 1.5) + 0.95 * bump(hour, 19.0, 1.6)
}

/// Photovoltaic output per kW of peak power: a half sine from 06:00 to 20:00.
pub fn pv_per_kwp(hour: f64) -> f64 {
    if (6.0..20.0).contains(&hour) {
        (std::f64::consts::PI * (hour - 6.0) / 14.0).sin()
    } else {
        0.0
    }
}

/// The smallest and largest [`household_kw`] over the day (sampled every minute).
pub fn household_range() -> (f64, f64) {
    (0..24 * 60)
        .map(|minute| household_kw(f64::from(minute) / 60.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), kw| {
            (low.min(kw), high.max(kw))
        })
}

/// A Gaussian bump of height 1 around `centre` (hours), wrapped around midnight.
fn bump(hour: f64, centre: f64, width: f64) -> f64 {
    let distance = (hour - centre).rem_euclid(24.0);
    let distance = distance.min(24.0 - distance);
    (-0.5 * (distance / width).powi(2)).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_evening_is_the_peak_and_the_night_the_valley() {
        let (low, high) = household_range();
        assert!((household_kw(19.0) - high).abs() < 0.01);
        assert!(household_kw(3.0) - low < 0.01);
        assert!(household_kw(7.5) > household_kw(3.0) + 0.3);
        assert_eq!(pv_per_kwp(2.0), 0.0);
        assert!((pv_per_kwp(13.0) - 1.0).abs() < 1e-12);
        assert_eq!(hour_of_day(SimTime::ZERO), 12.0);
        assert_eq!(hour_of_day(SimTime::from_secs(13 * 3600).unwrap()), 1.0);
        assert_eq!(clock(SimTime::from_secs(71_100).unwrap()), "07:45");
        assert_eq!(clock(SimTime::from_secs(43_200).unwrap()), "00:00");
    }
}
