//! A prosumer: a household with rooftop photovoltaics and a home battery, run by its owner.
//!
//! Each step the owner's controller looks at the price and its own house, nothing else:
//!
//! * price below `price_low`: charge at full power (from the grid if the sun does not suffice);
//! * price above `price_high`: discharge at full power, covering the house and feeding in;
//! * in between: self-consumption — store the photovoltaic surplus, cover a deficit from the
//!   battery.
//!
//! The state of charge never leaves `[0, 1]`: a step that reaches a bound moves only the energy
//! that fits. The utility cannot command this battery; it can only make the hours it wants
//! emptied dear and the hours it wants filled cheap.

use federate_sdk::hosted::Hosted;
use federate_sdk::{SimTime, Values};
use serde::Deserialize;
use tracing::debug;

use crate::profile::{household_kw, mid_hour, pv_per_kwp};
use crate::{GridError, default_step, step_param};
use federate_sdk::hosted::{HostedError, LockStep};

/// The prosumer's parameters (`[federate.params]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProsumerParams {
    /// The lock-step step, e.g. `"15min"`.
    pub step: String,
    /// Photovoltaic peak power, kW.
    pub pv_kwp: f64,
    /// The house's demand as a multiple of an ordinary household's.
    pub load_scale: f64,
    /// Usable battery capacity, kWh.
    pub capacity_kwh: f64,
    /// Battery charging and discharging power, kW.
    pub power_kw: f64,
    /// Initial state of charge, 0 to 1.
    pub soc0: f64,
    /// Charge at full power below this price, €/kWh.
    pub price_low: f64,
    /// Discharge at full power above this price, €/kWh.
    pub price_high: f64,
}

impl Default for ProsumerParams {
    fn default() -> Self {
        Self {
            step: default_step(),
            pv_kwp: 5.0,
            load_scale: 1.0,
            capacity_kwh: 10.0,
            power_kw: 5.0,
            soc0: 0.5,
            price_low: 0.15,
            price_high: 0.35,
        }
    }
}

/// What the prosumer did over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProsumerReport {
    /// Battery capacity, kWh.
    pub capacity_kwh: f64,
    /// State of charge at the start.
    pub soc0: f64,
    /// The step, hours.
    pub step_hours: f64,
    /// Per step: end of the step, net power drawn over it (kW), state of charge at its end.
    pub steps: Vec<(SimTime, f64, f64)>,
    /// Energy into (positive) and out of the battery summed over the run, kWh.
    pub battery_kwh: f64,
}

impl ProsumerReport {
    /// The final state of charge.
    pub fn final_soc(&self) -> f64 {
        self.steps.last().map_or(self.soc0, |(_, _, soc)| *soc)
    }

    /// A one-line summary.
    pub fn summary(&self) -> String {
        let hours = self.step_hours;
        let imported: f64 = self
            .steps
            .iter()
            .map(|(_, kw, _)| kw.max(0.0) * hours)
            .sum();
        let exported: f64 = self
            .steps
            .iter()
            .map(|(_, kw, _)| (-kw).max(0.0) * hours)
            .sum();
        let (low, high) = self
            .steps
            .iter()
            .fold((self.soc0, self.soc0), |(l, h), (_, _, soc)| {
                (l.min(*soc), h.max(*soc))
            });
        format!(
            "imported {imported:.1} kWh, exported {exported:.1} kWh, SoC {:.2} -> {:.2} \
             (range {low:.2}..{high:.2})",
            self.soc0,
            self.final_soc()
        )
    }
}

/// Runs the prosumer until the stop time.
///
/// # Errors
///
/// [`GridError`] naming the federate: bad parameters or a federation error.
pub fn run(hosted: &Hosted) -> Result<ProsumerReport, GridError> {
    let params: ProsumerParams = hosted.params()?;
    let h = step_param(hosted, &params.step)?;
    check(hosted, &params)?;
    let lockstep = LockStep::join(
        hosted,
        crate::model(),
        h,
        &["Prosumer.State.net_kw", "Prosumer.State.soc"],
        &["Utility.Tariff.price"],
    )?;
    lockstep.run(|lockstep| Home::new(params).run(lockstep, hosted))
}

fn check(hosted: &Hosted, params: &ProsumerParams) -> Result<(), GridError> {
    let invalid = |key, message: &str| {
        Err(GridError::InvalidParam {
            federate: hosted.name.clone(),
            key,
            message: message.to_owned(),
        })
    };
    let positive = |value: f64| value.is_finite() && value > 0.0;
    let non_negative = |value: f64| value.is_finite() && value >= 0.0;
    if !positive(params.capacity_kwh) {
        return invalid("capacity_kwh", "must be positive");
    }
    if !non_negative(params.power_kw) {
        return invalid("power_kw", "must not be negative");
    }
    if !non_negative(params.pv_kwp) || !non_negative(params.load_scale) {
        return invalid("pv_kwp", "pv_kwp and load_scale must not be negative");
    }
    if !(0.0..=1.0).contains(&params.soc0) {
        return invalid("soc0", "must be within [0, 1]");
    }
    if !(params.price_low.is_finite() && params.price_low <= params.price_high) {
        return invalid("price_low", "needs price_low <= price_high");
    }
    Ok(())
}

struct Home {
    params: ProsumerParams,
    soc: f64,
}

impl Home {
    fn new(params: ProsumerParams) -> Self {
        Self {
            soc: params.soc0,
            params,
        }
    }

    fn run(
        mut self,
        lockstep: &mut LockStep,
        hosted: &Hosted,
    ) -> Result<ProsumerReport, GridError> {
        let hours = lockstep.h().as_secs_f64() / 3600.0;
        let state = lockstep.register("Prosumer.State", &hosted.name)?;
        // Before the first step the battery is idle: the house draws its own net demand.
        let (load, pv) = self.house(lockstep.time(), hours);
        let initial = values(load - pv, self.soc, hosted)?;
        let deliveries = lockstep.start(&hosted.expect, &[(&state, initial)])?;
        let mut price = crate::newest_price(lockstep, &deliveries, false)?;

        let mut steps = Vec::new();
        let mut battery_kwh = 0.0;
        for _ in 0..lockstep.steps() {
            let now = lockstep.time();
            let (load, pv) = self.house(now, hours);
            let battery_kw = self.decide(price, pv - load);
            // Only the energy that fits between empty and full moves.
            let capacity = self.params.capacity_kwh;
            let kwh = (battery_kw * hours).clamp(-self.soc * capacity, (1.0 - self.soc) * capacity);
            self.soc = (self.soc + kwh / capacity).clamp(0.0, 1.0);
            battery_kwh += kwh;
            let net_kw = load - pv + kwh / hours;
            debug!(time = %now, net_kw, soc = self.soc, ?price, "stepped");
            steps.push((now.saturating_add(lockstep.h()), net_kw, self.soc));
            lockstep.publish(&state, values(net_kw, self.soc, hosted)?)?;
            let deliveries = lockstep.step()?;
            if let Some(new) = crate::newest_price(lockstep, &deliveries, true)? {
                price = Some(new);
            }
        }
        Ok(ProsumerReport {
            step_hours: hours,
            capacity_kwh: self.params.capacity_kwh,
            soc0: self.params.soc0,
            steps,
            battery_kwh,
        })
    }

    /// The house's demand and photovoltaic output over `[t, t + h]`, kW.
    fn house(&self, t: SimTime, hours: f64) -> (f64, f64) {
        let hour = mid_hour(t, hours);
        (
            self.params.load_scale * household_kw(hour),
            self.params.pv_kwp * pv_per_kwp(hour),
        )
    }

    /// The battery power wanted (positive: charging), before the state-of-charge limits.
    fn decide(&self, price: Option<f64>, surplus_kw: f64) -> f64 {
        let power = self.params.power_kw;
        match price {
            Some(price) if price < self.params.price_low => power,
            Some(price) if price > self.params.price_high => -power,
            // Self-consumption, also while no price is known.
            _ => surplus_kw.clamp(-power, power),
        }
    }
}

fn values(net_kw: f64, soc: f64, hosted: &Hosted) -> Result<Values, GridError> {
    Values::new()
        .with("net_kw", &net_kw)
        .and_then(|v| v.with("soc", &soc))
        .map_err(|source| {
            GridError::Federation(HostedError {
                federate: hosted.name.clone(),
                source,
            })
        })
}
