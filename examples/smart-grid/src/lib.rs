//! Smart-grid federation: a utility grid twin, an EV-charging twin and prosumer battery twins
//! owned by different parties, coordinated only by the price the utility publishes.
//!
//! # The federation
//!
//! | federate | owner | publishes | subscribes |
//! |---|---|---|---|
//! | [`utility`] | the grid operator | `Utility.Tariff.price`, `Grid.Load.load_kw`/`base_kw` | every `net_kw` |
//! | [`ev_charging`] | a charge-point operator | `EV.State.net_kw`/`connected` | the price |
//! | [`prosumer`] (and the battery FMU) | each household | `Prosumer.State.net_kw`/`soc` | the price |
//!
//! Nobody commands anybody: the utility only sets a price, and each owner decides from it what
//! its own equipment does. With `coordination = false` the utility charges a flat price, the
//! cars charge as soon as they plug in and the evening peak grows; with coordination the price
//! follows the forecast load and the flexible loads move into the night.
//!
//! # Timing
//!
//! Every federate runs in lock-step with the step `h` (`step`, default 15 minutes): it is
//! time-regulating with lookahead `h` and time-constrained; granted at `T` it acts over
//! `[T, T + h]` on the inputs delivered with that grant, publishes its results stamped `T + h`
//! and requests `T + h` — the same pattern as the FMI adapter, so FMU batteries take part
//! unchanged. A value stamped `t` means:
//!
//! * `price`: the tariff over `[t, t + h]` (€/kWh);
//! * `net_kw`: average power drawn from the grid over `[t - h, t]` (kW, negative when feeding
//!   in); `soc` and `connected`: the state at `t`;
//! * `load_kw`, `base_kw`: the feeder load the utility measured over `[t - 2h, t - h]`: it
//!   learns the others' `net_kw` for `[t - 2h, t - h]` at `t - h` and can publish no earlier
//!   than its bound, `t`.
//!
//! Simulated time 0 is noon ([`DAY_STARTS_AT_HOUR`]), so that one 24-hour run holds an
//! evening's arrivals and the next morning's departures.
//!
//! Before the first step all federates meet in the start barrier
//! ([`federate_sdk::hosted::start_barrier`]) and exchange their values at the start time
//! untimestamped.

#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod ev_charging;
pub mod profile;
pub mod prosumer;
mod rng;
pub mod utility;

use federate_sdk::hosted::{Hosted, HostedFn, HostedResult, ParamsError};
use federate_sdk::hosted::{HostedError, LockStep};
use federate_sdk::{ObjectModel, SimDuration, TimeError};

pub use profile::DAY_STARTS_AT_HOUR;

/// The federates this example offers to `fedtwin run` (`builtin = "smart-grid/<name>"`).
pub const FEDERATES: &[(&str, HostedFn)] = &[
    ("utility", hosted_utility),
    ("ev-charging", hosted_ev_charging),
    ("prosumer", hosted_prosumer),
];

/// The federation's object model; every federate (and `battery.toml`) declares exactly this.
pub fn model() -> ObjectModel {
    ObjectModel::new()
        .with_object_class("Utility.Tariff", ["price"])
        .with_object_class("Grid.Load", ["load_kw", "base_kw"])
        .with_object_class("Prosumer.State", ["net_kw", "soc"])
        .with_object_class("EV.State", ["net_kw", "connected"])
}

/// Why a smart-grid federate failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GridError {
    /// The parameters from the federation file do not fit.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// A parameter has the right type but an unusable value.
    #[error("federate `{federate}`: invalid parameter `{key}`: {message}")]
    InvalidParam {
        /// The federate.
        federate: String,
        /// The parameter's key.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The federation refused or lost the federate, or a value did not decode.
    #[error(transparent)]
    Federation(#[from] HostedError),
}

/// The lock-step `step` parameter of `hosted`, checked positive.
fn step_param(hosted: &Hosted, text: &str) -> Result<SimDuration, GridError> {
    let invalid = |message: String| GridError::InvalidParam {
        federate: hosted.name.clone(),
        key: "step",
        message,
    };
    let step: SimDuration = text
        .parse()
        .map_err(|e: TimeError| invalid(e.to_string()))?;
    if step.is_zero() {
        return Err(invalid("the step must be positive".to_owned()));
    }
    Ok(step)
}

fn default_step() -> String {
    "15min".to_owned()
}

fn hosted_utility(hosted: Hosted) -> HostedResult {
    Ok(utility::run(&hosted)?.summary())
}

fn hosted_ev_charging(hosted: Hosted) -> HostedResult {
    Ok(ev_charging::run(&hosted)?.summary())
}

fn hosted_prosumer(hosted: Hosted) -> HostedResult {
    Ok(prosumer::run(&hosted)?.summary())
}

/// The newest `Utility.Tariff.price` in `deliveries`, if any (only timestamped ones while
/// stepping, as in the FMI adapter).
pub(crate) fn newest_price(
    lockstep: &LockStep,
    deliveries: &[federate_sdk::Delivery],
    timestamped: bool,
) -> Result<Option<f64>, GridError> {
    let prices = lockstep.check(federate_sdk::hosted::reflected(
        deliveries,
        "Utility.Tariff",
        "price",
        timestamped,
    ))?;
    Ok(prices.last().map(|(_, price)| *price))
}

#[cfg(test)]
mod tests {
    use federate_sdk::{Connector, EmbeddedRti, SimTime};

    use super::*;

    fn hosted(name: &str, params: &str) -> Hosted {
        Hosted {
            federation: "smart-grid-params".to_owned(),
            name: name.to_owned(),
            connector: Connector::from(EmbeddedRti::start().unwrap()),
            stop: SimTime::from_secs(3600).unwrap(),
            expect: Vec::new(),
            params: toml::from_str(params).unwrap(),
            model: None,
        }
    }

    #[test]
    fn federates_are_offered_under_the_names_of_the_federation_file() {
        let names: Vec<&str> = FEDERATES.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["utility", "ev-charging", "prosumer"]);
    }

    #[test]
    fn bad_parameters_are_errors_naming_federate_and_key() {
        let prosumer = FEDERATES[2].1;
        let error = prosumer(hosted("home-9", "soc0 = 1.5")).unwrap_err();
        assert!(error.to_string().contains("home-9"), "{error}");
        assert!(error.to_string().contains("soc0"), "{error}");
        let error = prosumer(hosted("home-9", "pv_kw = 3.0")).unwrap_err();
        assert!(error.to_string().contains("pv_kw"), "{error}");
        let utility = FEDERATES[0].1;
        let error = utility(hosted("utility", "step = \"fortnight\"")).unwrap_err();
        assert!(error.to_string().contains("step"), "{error}");
        let error = utility(hosted("utility", "coordination = \"yes\"")).unwrap_err();
        assert!(error.to_string().contains("utility"), "{error}");
    }

    #[test]
    fn a_federate_alone_runs_to_the_stop_time() {
        let ev = FEDERATES[1].1;
        let summary = ev(hosted("ev-charging", "cars = 3")).unwrap();
        assert!(summary.starts_with("3 cars"), "{summary}");
    }

    #[test]
    fn steps_in_minutes_and_hours_are_exact() {
        let parse_duration = |text: &str| text.parse::<SimDuration>();
        assert_eq!(
            parse_duration("15min").unwrap(),
            SimDuration::from_secs(900).unwrap()
        );
        assert_eq!(
            parse_duration("24h").unwrap(),
            SimDuration::from_secs(86_400).unwrap()
        );
        assert_eq!(
            parse_duration("1.5h").unwrap(),
            SimDuration::from_secs(5_400).unwrap()
        );
        assert_eq!(
            parse_duration("900s").unwrap(),
            SimDuration::from_secs(900).unwrap()
        );
        assert!(parse_duration("15 parsecs").is_err());
        assert!(parse_duration("99999999999999h").is_err());
    }
}
