//! Federated learning: hospital federates train a small model on private data; an aggregator
//! averages their parameters (FedAvg) each round.
//!
//! # The federation
//!
//! | federate | publishes | subscribes |
//! |---|---|---|
//! | [`hospital`] (several) | `Hospital.Update { weights, samples, round }` | `Model.Global` |
//! | [`aggregator`] | `Model.Global { weights, round, accuracy, baseline }` | `Hospital.Update` |
//!
//! Each hospital generates its own private data set (see [`learning`]) and never publishes it:
//! only model parameters and a sample count cross the federation. The aggregator averages the
//! hospitals' weights, weighted by their sample counts, optionally adds Gaussian noise, and
//! publishes the next global model with its accuracy on a test set of its own.
//!
//! # Timing
//!
//! All federates run in lock-step with step `h` (`step`, default 500 ms): time-regulating with
//! lookahead `h`, time-constrained, publishing stamped `T + h`. A round is one exchange each
//! way, two steps: global round `r` is published stamped `r` seconds, the hospitals' updates
//! trained from it half a second later. So with the default step one round takes one second of
//! simulated time, and `rounds` rounds need a stop time of at least `rounds` seconds.
//!
//! Every attribute meant for recording (`round`, `accuracy`, `baseline`) is an `f64`, so that a
//! recorder can read them all the same way; `weights` is a `Vec<f64>`, `samples` a `u64`.

#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod aggregator;
pub mod hospital;
pub mod learning;
mod rng;

use federate_sdk::hosted::HostedError;
use federate_sdk::hosted::{Hosted, HostedFn, HostedResult, ParamsError};
use federate_sdk::{ObjectModel, SimDuration};

/// The federates this example offers to `fedtwin run` (`builtin = "federated-learning/<name>"`).
pub const FEDERATES: &[(&str, HostedFn)] = &[
    ("hospital", hosted_hospital),
    ("aggregator", hosted_aggregator),
];

/// The federation's object model; every federate declares exactly this.
pub fn model() -> ObjectModel {
    ObjectModel::new()
        .with_object_class("Hospital.Update", ["weights", "samples", "round"])
        .with_object_class("Model.Global", ["weights", "round", "accuracy", "baseline"])
}

/// Why a federated-learning federate failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LearningError {
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
    /// A received model is unusable (a wrong number of weights, say).
    #[error("federate `{federate}`: {message}")]
    BadModel {
        /// The federate that received it.
        federate: String,
        /// What was wrong, naming the sender.
        message: String,
    },
    /// The federation refused or lost the federate, or a value did not decode.
    #[error(transparent)]
    Federation(#[from] HostedError),
}

fn default_step() -> String {
    "500ms".to_owned()
}

/// The lock-step `step` parameter of `hosted`, checked positive.
fn step_param(hosted: &Hosted, text: &str) -> Result<SimDuration, LearningError> {
    let invalid = |message: String| LearningError::InvalidParam {
        federate: hosted.name.clone(),
        key: "step",
        message,
    };
    let step: SimDuration = text.parse().map_err(|e| invalid(format!("{e}")))?;
    if step.is_zero() {
        return Err(invalid("the step must be positive".to_owned()));
    }
    Ok(step)
}

fn hosted_hospital(hosted: Hosted) -> HostedResult {
    Ok(hospital::run(&hosted)?.summary())
}

fn hosted_aggregator(hosted: Hosted) -> HostedResult {
    Ok(aggregator::run(&hosted)?.summary())
}

#[cfg(test)]
mod tests {
    use federate_sdk::{Connector, EmbeddedRti, SimTime};

    use super::*;

    fn hosted(name: &str, params: &str) -> Hosted {
        Hosted {
            federation: "federated-learning-params".to_owned(),
            name: name.to_owned(),
            connector: Connector::from(EmbeddedRti::start().unwrap()),
            stop: SimTime::from_secs(2).unwrap(),
            expect: Vec::new(),
            params: toml::from_str(params).unwrap(),
            model: None,
        }
    }

    #[test]
    fn federates_are_offered_under_the_names_of_the_federation_file() {
        let names: Vec<&str> = FEDERATES.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["hospital", "aggregator"]);
    }

    #[test]
    fn bad_parameters_are_errors_naming_federate_and_key() {
        let (hospital, aggregator) = (FEDERATES[0].1, FEDERATES[1].1);
        let error = hospital(hosted("hospital-x", "sample = 10")).unwrap_err();
        assert!(error.to_string().contains("hospital-x"), "{error}");
        assert!(error.to_string().contains("sample"), "{error}");
        let error = aggregator(hosted("aggregator", "dp_noise = -1.0")).unwrap_err();
        assert!(error.to_string().contains("dp_noise"), "{error}");
        let error = aggregator(hosted("aggregator", "step = \"soon\"")).unwrap_err();
        assert!(error.to_string().contains("step"), "{error}");
    }

    #[test]
    fn an_aggregator_alone_completes_no_round_and_says_so() {
        let aggregator = FEDERATES[1].1;
        let summary = aggregator(hosted("aggregator", "rounds = 3")).unwrap();
        assert!(summary.starts_with("0 of 3 rounds"), "{summary}");
    }
}
