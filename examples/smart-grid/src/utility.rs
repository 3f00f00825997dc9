//! The utility: the grid twin of a feeder and the party that sets the price.
//!
//! It models the feeder's ordinary households itself ([`household_kw`] times `households`),
//! measures every federate's `net_kw`, publishes the total as `Grid.Load` and sets the price
//! for the step after next:
//!
//! * `coordination = true`: a load-following tariff. The price rises linearly from `price_min`
//!   at the day's lowest household demand to `price_max` at its highest, applied to the
//!   forecast load of the step it prices: the households' known profile plus a smoothed
//!   estimate of the federates' net load. Flexible demand sees cheap hours where the feeder has
//!   room, and its own load raises the price where it crowds in.
//! * `coordination = false`: a flat `flat_price`, so that nobody has a reason to move.
//!
//! The utility never commands a battery or a car: it cannot see inside them, and the owners
//! decide.

use std::collections::BTreeMap;

use federate_sdk::hosted::Hosted;
use federate_sdk::{Delivery, SimDuration, SimTime, Values};
use serde::Deserialize;
use tracing::debug;

use crate::profile::{clock, household_kw, household_range, mid_hour};
use crate::{GridError, default_step, step_param};
use federate_sdk::hosted::{self, HostedError, LockStep};

/// The utility's parameters (`[federate.params]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UtilityParams {
    /// Price signals that follow the load (true) or a flat price (false).
    pub coordination: bool,
    /// The lock-step step, e.g. `"15min"`.
    pub step: String,
    /// Ordinary households on the feeder, modelled by the utility itself.
    pub households: u32,
    /// The price without coordination, €/kWh.
    pub flat_price: f64,
    /// The price at the day's lowest household demand, €/kWh.
    pub price_min: f64,
    /// The price at the day's highest household demand (and the cap), €/kWh.
    pub price_max: f64,
    /// Weight of the newest measurement in the smoothed estimate of the federates' net load
    /// (0 to 1): lower values react more slowly but keep the price from chasing its own echo.
    pub smoothing: f64,
}

impl Default for UtilityParams {
    fn default() -> Self {
        Self {
            coordination: true,
            step: default_step(),
            households: 150,
            flat_price: 0.25,
            price_min: 0.10,
            price_max: 0.50,
            smoothing: 0.3,
        }
    }
}

/// One measured step of the feeder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadSample {
    /// The end of the measured step `[time - h, time]`.
    pub time: SimTime,
    /// Total load, kW.
    pub load_kw: f64,
    /// The utility's own households, kW.
    pub base_kw: f64,
    /// The price over the step, €/kWh.
    pub price: f64,
}

/// What the utility saw over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct UtilityReport {
    /// Whether the price followed the load.
    pub coordination: bool,
    /// Every measured step, in time order.
    pub samples: Vec<LoadSample>,
}

impl UtilityReport {
    /// The highest load and the end of the step it was measured in.
    pub fn peak(&self) -> Option<(SimTime, f64)> {
        self.samples
            .iter()
            .map(|s| (s.time, s.load_kw))
            .reduce(|best, next| if next.1 > best.1 { next } else { best })
    }

    /// The mean load, kW.
    pub fn mean_kw(&self) -> f64 {
        let n = self.samples.len().max(1) as f64;
        self.samples.iter().map(|s| s.load_kw).sum::<f64>() / n
    }

    /// A one-line summary: peak, mean and peak-to-average ratio.
    pub fn summary(&self) -> String {
        let (at, peak) = self.peak().unwrap_or((SimTime::ZERO, 0.0));
        let mean = self.mean_kw();
        format!(
            "coordination {}: peak load {peak:.1} kW in the step ending {} (t = {at}), \
             mean {mean:.1} kW, peak/average {:.2}",
            if self.coordination { "on" } else { "off" },
            clock(at),
            if mean > 0.0 { peak / mean } else { 0.0 },
        )
    }
}

/// Runs the utility until the stop time.
///
/// # Errors
///
/// [`GridError`] naming the federate: bad parameters or a federation error.
pub fn run(hosted: &Hosted) -> Result<UtilityReport, GridError> {
    let params: UtilityParams = hosted.params()?;
    let h = step_param(hosted, &params.step)?;
    let invalid = |key, message: &str| GridError::InvalidParam {
        federate: hosted.name.clone(),
        key,
        message: message.to_owned(),
    };
    if !(params.price_min.is_finite() && params.price_min < params.price_max) {
        return Err(invalid("price_min", "needs price_min < price_max"));
    }
    if !(0.0..=1.0).contains(&params.smoothing) || params.smoothing == 0.0 {
        return Err(invalid("smoothing", "must be in (0, 1]"));
    }
    let lockstep = LockStep::join(
        hosted,
        crate::model(),
        h,
        &[
            "Utility.Tariff.price",
            "Grid.Load.load_kw",
            "Grid.Load.base_kw",
        ],
        &["Prosumer.State.net_kw", "EV.State.net_kw"],
    )?;
    lockstep.run(|lockstep| Utility::new(params).run(lockstep, hosted))
}

struct Utility {
    params: UtilityParams,
    /// The feeder's own demand range, kW: where the tariff runs from `price_min` to `price_max`.
    range: (f64, f64),
    /// The latest `net_kw` of each federate's object, by object name (ordered: sums are
    /// reproducible to the last bit).
    net: BTreeMap<String, f64>,
    /// Smoothed sum of `net`, kW.
    flexible_estimate: f64,
}

impl Utility {
    fn new(params: UtilityParams) -> Self {
        let (low, high) = household_range();
        let households = f64::from(params.households);
        Self {
            range: (households * low, households * high),
            params,
            net: BTreeMap::new(),
            flexible_estimate: 0.0,
        }
    }

    fn run(mut self, lockstep: &mut LockStep, hosted: &Hosted) -> Result<UtilityReport, GridError> {
        let hours = lockstep.h().as_secs_f64() / 3600.0;
        let tariff = lockstep.register(
            "Utility.Tariff",
            &format!("{}/Utility.Tariff", lockstep.name()),
        )?;
        let load = lockstep.register("Grid.Load", &format!("{}/Grid.Load", lockstep.name()))?;

        // The price over the first step goes out with the initial values.
        let mut price = self.price(lockstep.time(), hours);
        let initial = Values::new()
            .with("price", &price)
            .map_err(|e| federation(hosted, e))?;
        let deliveries = lockstep.start(&hosted.expect, &[(&tariff, initial)])?;
        self.measure(lockstep, &deliveries, false)?;
        self.flexible_estimate = self.net.values().sum();

        let mut samples = Vec::new();
        for k in 0..=lockstep.steps() {
            let now = lockstep.time();
            if k > 0 {
                let sample = self.sample(now, lockstep.h(), price);
                samples.push(sample);
                // The last measurement would be stamped past the stop time: it stays in the
                // report only.
                if k < lockstep.steps() {
                    let values = Values::new()
                        .with("load_kw", &sample.load_kw)
                        .and_then(|v| v.with("base_kw", &sample.base_kw))
                        .map_err(|e| federation(hosted, e))?;
                    lockstep.publish(&load, values)?;
                }
            }
            if k == lockstep.steps() {
                break;
            }
            // The price over `[now + h, now + 2h]`, stamped `now + h`: in force from the next
            // grant on.
            let next = self.price(now.saturating_add(lockstep.h()), hours);
            let values = Values::new()
                .with("price", &next)
                .map_err(|e| federation(hosted, e))?;
            lockstep.publish(&tariff, values)?;
            let deliveries = lockstep.step()?;
            self.measure(lockstep, &deliveries, true)?;
            price = next;
        }
        Ok(UtilityReport {
            coordination: self.params.coordination,
            samples,
        })
    }

    /// The feeder over `[now - h, now]`: the households' demand plus every federate's `net_kw`
    /// delivered with the grant to `now`; updates the smoothed estimate of the latter.
    fn sample(&mut self, now: SimTime, h: SimDuration, price: f64) -> LoadSample {
        let hours = h.as_secs_f64() / 3600.0;
        let h_ticks = i64::try_from(h.ticks()).unwrap_or(i64::MAX);
        let start = SimTime::from_ticks(now.ticks().saturating_sub(h_ticks));
        let base_kw = f64::from(self.params.households) * household_kw(mid_hour(start, hours));
        let flexible: f64 = self.net.values().sum();
        let weight = self.params.smoothing;
        self.flexible_estimate = weight * flexible + (1.0 - weight) * self.flexible_estimate;
        debug!(time = %now, load_kw = base_kw + flexible, price, "measured");
        LoadSample {
            time: now,
            load_kw: base_kw + flexible,
            base_kw,
            price,
        }
    }

    /// The tariff over `[from, from + h]`.
    fn price(&self, from: SimTime, hours: f64) -> f64 {
        let params = &self.params;
        if !params.coordination {
            return params.flat_price;
        }
        let forecast = f64::from(params.households) * household_kw(mid_hour(from, hours))
            + self.flexible_estimate;
        let (low, high) = self.range;
        let position = ((forecast - low) / (high - low)).clamp(0.0, 1.0);
        params.price_min + (params.price_max - params.price_min) * position
    }

    /// Takes the federates' `net_kw` from `deliveries`; a removed object (its owner resigned or
    /// was lost) no longer draws anything.
    fn measure(
        &mut self,
        lockstep: &LockStep,
        deliveries: &[Delivery],
        timestamped: bool,
    ) -> Result<(), GridError> {
        for delivery in deliveries {
            if let Delivery::Removed { object, .. } = delivery {
                self.net.remove(&*object.name);
            }
        }
        for class in ["Prosumer.State", "EV.State"] {
            for (object, net_kw) in
                lockstep.check(hosted::reflected(deliveries, class, "net_kw", timestamped))?
            {
                self.net.insert(object, net_kw);
            }
        }
        Ok(())
    }
}

fn federation(hosted: &Hosted, source: federate_sdk::Error) -> GridError {
    GridError::Federation(HostedError {
        federate: hosted.name.clone(),
        source,
    })
}
