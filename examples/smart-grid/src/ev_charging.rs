//! The EV-charging twin: a charge-point operator's fleet of cars that plug in in the evening
//! and must be charged by their departure the next morning.
//!
//! Each car decides from the price alone:
//!
//! * While every price seen so far was the same (a flat tariff), there is nothing to gain by
//!   waiting: it charges at full power from the moment it plugs in.
//! * Otherwise it places the current price between the lowest and highest seen so far. Above
//!   its own threshold (drawn per car, around the middle) it waits; below it charges at the
//!   slowest constant power that still completes its energy by departure, which spreads the
//!   fleet's demand over the cheap hours instead of piling it onto the first one.
//! * Whatever the price, a car that could no longer finish in time if it waited one more step
//!   charges at full power: every car leaves with its energy whenever that is physically
//!   possible.

use federate_sdk::hosted::Hosted;
use federate_sdk::{SimDuration, SimTime, Values};
use serde::Deserialize;
use tracing::debug;

use crate::profile::DAY_STARTS_AT_HOUR;
use crate::rng::SplitMix64;
use crate::{GridError, default_step, step_param};
use federate_sdk::hosted::{HostedError, LockStep};

/// The fleet's parameters (`[federate.params]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvParams {
    /// The lock-step step, e.g. `"15min"`.
    pub step: String,
    /// Number of cars.
    pub cars: u32,
    /// Charging power of each charge point, kW.
    pub charger_kw: f64,
    /// Seed of the draws of arrival, departure, energy and threshold per car.
    pub seed: u64,
}

impl Default for EvParams {
    fn default() -> Self {
        Self {
            step: default_step(),
            cars: 30,
            charger_kw: 11.0,
            seed: 7,
        }
    }
}

/// One car's day.
#[derive(Debug, Clone, PartialEq)]
pub struct Car {
    /// When it plugs in (on the step grid).
    pub arrival: SimTime,
    /// When it leaves (on the step grid).
    pub departure: SimTime,
    /// The energy it needs by departure, kWh.
    pub need_kwh: f64,
    /// Charged so far, kWh.
    pub charged_kwh: f64,
    /// Relative price (0 the lowest seen, 1 the highest) above which it waits.
    pub threshold: f64,
}

/// What the fleet did over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct EvReport {
    /// Every car at the end.
    pub cars: Vec<Car>,
    /// The fleet's power per step `(end of the step, kW)`.
    pub power: Vec<(SimTime, f64)>,
}

impl EvReport {
    /// Energy needed by the cars that left before the end, and still missing at their departure.
    pub fn unmet_kwh(&self, end: SimTime) -> f64 {
        self.cars
            .iter()
            .filter(|car| car.departure <= end)
            .map(|car| (car.need_kwh - car.charged_kwh).max(0.0))
            .sum()
    }

    /// Total energy charged, kWh.
    pub fn charged_kwh(&self) -> f64 {
        self.cars.iter().map(|car| car.charged_kwh).sum()
    }

    /// A one-line summary.
    pub fn summary(&self) -> String {
        let end = self.power.last().map_or(SimTime::ZERO, |(t, _)| *t);
        let peak = self.power.iter().map(|(_, kw)| *kw).fold(0.0, f64::max);
        format!(
            "{} cars charged {:.1} kWh, {:.1} kWh missing at departure, fleet peak {peak:.1} kW",
            self.cars.len(),
            self.charged_kwh(),
            self.unmet_kwh(end),
        )
    }
}

/// The fleet of `params`: arrivals between 16:30 and 20:30, departures between 06:00 and 08:00
/// the next morning, 8 to 30 kWh each, all on the step grid of `h` from `start`.
pub fn fleet(params: &EvParams, start: SimTime, h: SimDuration) -> Vec<Car> {
    let mut rng = SplitMix64::new(params.seed);
    let at_hour = |hour: f64| {
        // Hours after simulated time 0 (noon), rounded to the step grid.
        let after = (hour - DAY_STARTS_AT_HOUR).rem_euclid(24.0) * 3600.0;
        let steps = (after / h.as_secs_f64()).round();
        // A whole number of steps within a day: the product fits in the ticks.
        start.saturating_add(SimDuration::from_ticks(
            h.ticks().saturating_mul(steps as u64),
        ))
    };
    (0..params.cars)
        .map(|_| {
            let arrival = at_hour(rng.uniform(16.5, 20.5));
            let departure = at_hour(rng.uniform(6.0, 8.0));
            let need_kwh = rng.uniform(8.0, 30.0);
            let threshold = rng.uniform(0.35, 0.65);
            Car {
                arrival,
                departure,
                need_kwh,
                charged_kwh: 0.0,
                threshold,
            }
        })
        .collect()
}

/// Runs the fleet until the stop time.
///
/// # Errors
///
/// [`GridError`] naming the federate: bad parameters or a federation error.
pub fn run(hosted: &Hosted) -> Result<EvReport, GridError> {
    let params: EvParams = hosted.params()?;
    let h = step_param(hosted, &params.step)?;
    if !(params.charger_kw.is_finite() && params.charger_kw > 0.0) {
        return Err(GridError::InvalidParam {
            federate: hosted.name.clone(),
            key: "charger_kw",
            message: "must be positive".to_owned(),
        });
    }
    let lockstep = LockStep::join(
        hosted,
        crate::model(),
        h,
        &["EV.State.net_kw", "EV.State.connected"],
        &["Utility.Tariff.price"],
    )?;
    lockstep.run(|lockstep| {
        let cars = fleet(&params, lockstep.time(), h);
        Fleet {
            charger_kw: params.charger_kw,
            cars,
            seen: None,
        }
        .run(lockstep, hosted)
    })
}

struct Fleet {
    charger_kw: f64,
    cars: Vec<Car>,
    /// The lowest and highest price seen.
    seen: Option<(f64, f64)>,
}

impl Fleet {
    fn run(mut self, lockstep: &mut LockStep, hosted: &Hosted) -> Result<EvReport, GridError> {
        let state = lockstep.register("EV.State", &hosted.name)?;
        let initial = values(0.0, self.connected(lockstep.time()), hosted)?;
        let deliveries = lockstep.start(&hosted.expect, &[(&state, initial)])?;
        let mut price = self.price(lockstep, &deliveries, false)?;

        let mut power = Vec::new();
        for _ in 0..lockstep.steps() {
            let now = lockstep.time();
            let net_kw = self.charge(now, lockstep.h(), price);
            let end = now.saturating_add(lockstep.h());
            power.push((end, net_kw));
            debug!(time = %now, net_kw, "charging");
            lockstep.publish(&state, values(net_kw, self.connected(end), hosted)?)?;
            let deliveries = lockstep.step()?;
            if let Some(new) = self.price(lockstep, &deliveries, true)? {
                price = Some(new);
            }
        }
        Ok(EvReport {
            cars: self.cars,
            power,
        })
    }

    /// The newest price in `deliveries`, noted among the prices seen.
    fn price(
        &mut self,
        lockstep: &LockStep,
        deliveries: &[federate_sdk::Delivery],
        timestamped: bool,
    ) -> Result<Option<f64>, GridError> {
        let newest = crate::newest_price(lockstep, deliveries, timestamped)?;
        if let Some(price) = newest {
            self.seen = Some(match self.seen {
                Some((low, high)) => (low.min(price), high.max(price)),
                None => (price, price),
            });
        }
        Ok(newest)
    }

    /// Charges every connected car over `[now, now + h]` at `price`; returns the fleet's power.
    fn charge(&mut self, now: SimTime, h: SimDuration, price: Option<f64>) -> f64 {
        let hours = h.as_secs_f64() / 3600.0;
        // Where the price stands among those seen: 0 the cheapest, 1 the dearest; `None` while
        // all were equal or none is known (no signal: charge at once).
        let relative = price.zip(self.seen).and_then(|(price, (low, high))| {
            (high - low > 1e-9).then(|| ((price - low) / (high - low)).clamp(0.0, 1.0))
        });
        let mut energy = 0.0;
        for car in &mut self.cars {
            let remaining = car.need_kwh - car.charged_kwh;
            if now < car.arrival || now >= car.departure || remaining <= 1e-12 {
                continue;
            }
            let hours_left = car.departure.as_secs_f64() - now.as_secs_f64();
            let hours_left = hours_left / 3600.0;
            let full = self.charger_kw * hours;
            // Waiting one step would leave less time than charging at full power needs.
            let must = remaining > self.charger_kw * (hours_left - hours) - 1e-9;
            let kwh = match relative {
                _ if must => full,
                None => full,
                Some(relative) if relative <= car.threshold => remaining / hours_left * hours,
                Some(_) => 0.0,
            };
            let kwh = kwh.min(remaining);
            car.charged_kwh += kwh;
            energy += kwh;
        }
        energy / hours
    }

    fn connected(&self, at: SimTime) -> f64 {
        let plugged = self
            .cars
            .iter()
            .filter(|car| car.arrival <= at && at < car.departure)
            .count();
        // A fleet of at most `u32::MAX` cars: exact in an f64.
        plugged as f64
    }
}

/// `EV.State` values; `connected` is a count, sent as `f64` like every attribute of this
/// federation so that a recorder can read them all the same way.
fn values(net_kw: f64, connected: f64, hosted: &Hosted) -> Result<Values, GridError> {
    Values::new()
        .with("net_kw", &net_kw)
        .and_then(|v| v.with("connected", &connected))
        .map_err(|source| {
            GridError::Federation(HostedError {
                federate: hosted.name.clone(),
                source,
            })
        })
}
