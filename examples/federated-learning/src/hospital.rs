//! A hospital: trains the global model on its own patients' (synthetic) data, which never
//! leave it, and publishes only the resulting parameters and its sample count.

use federate_sdk::hosted::Hosted;
use federate_sdk::{Delivery, Values};
use serde::Deserialize;
use tracing::debug;

use crate::learning::{Dataset, FEATURES, Training, Weights, accuracy, train};
use crate::rng::SplitMix64;
use crate::{LearningError, default_step, step_param};
use federate_sdk::hosted::LockStep;

/// A hospital's parameters (`[federate.params]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HospitalParams {
    /// The lock-step step; all federates must agree.
    pub step: String,
    /// Seed of this hospital's data and shuffles: give each hospital its own.
    pub seed: u64,
    /// Number of private examples.
    pub samples: u32,
    /// How far this hospital's population is from the centre (covariate shift, 0 = none).
    pub shift: f64,
    /// Local passes over the data per round.
    pub epochs: u32,
    /// SGD step size.
    pub learning_rate: f64,
    /// Mini-batch size.
    pub batch: u32,
}

impl Default for HospitalParams {
    fn default() -> Self {
        Self {
            step: default_step(),
            seed: 1,
            samples: 500,
            shift: 0.0,
            epochs: 2,
            learning_rate: 0.005,
            batch: 32,
        }
    }
}

/// What a hospital did over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct HospitalReport {
    /// Private examples.
    pub samples: usize,
    /// Rounds it trained.
    pub rounds: u32,
    /// The newest global model's accuracy on this hospital's own data.
    pub local_accuracy: f64,
}

impl HospitalReport {
    /// A one-line summary.
    pub fn summary(&self) -> String {
        format!(
            "trained {} rounds on {} private samples; newest global model {:.1}% on them",
            self.rounds,
            self.samples,
            100.0 * self.local_accuracy
        )
    }
}

/// Runs the hospital until the stop time.
///
/// # Errors
///
/// [`LearningError`] naming the federate: bad parameters, an unusable global model, a
/// federation error.
pub fn run(hosted: &Hosted) -> Result<HospitalReport, LearningError> {
    let params: HospitalParams = hosted.params()?;
    let h = step_param(hosted, &params.step)?;
    let invalid = |key, message: &str| LearningError::InvalidParam {
        federate: hosted.name.clone(),
        key,
        message: message.to_owned(),
    };
    if !(params.learning_rate.is_finite() && params.learning_rate > 0.0) {
        return Err(invalid("learning_rate", "must be positive"));
    }
    if !params.shift.is_finite() {
        return Err(invalid("shift", "must be a finite distance"));
    }
    let mut rng = SplitMix64::new(params.seed);
    let data = Dataset::generate(&mut rng, params.samples as usize, params.shift);
    let training = Training {
        epochs: params.epochs,
        learning_rate: params.learning_rate,
        batch: params.batch as usize,
        l2: 1e-4,
    };
    let mut lockstep = LockStep::join(
        hosted,
        crate::model(),
        h,
        &[
            "Hospital.Update.weights",
            "Hospital.Update.samples",
            "Hospital.Update.round",
        ],
        &["Model.Global.weights", "Model.Global.round"],
    )?;
    let update = lockstep.register("Hospital.Update", &hosted.name)?;
    lockstep.run(|lockstep| {
        let deliveries = lockstep.start(&hosted.expect, &[])?;
        let mut global = newest_global(lockstep, &deliveries, false)?;
        let mut trained: Option<f64> = None;
        let mut rounds = 0;
        for _ in 0..lockstep.steps() {
            if let Some((round, weights)) = &global
                && trained != Some(*round)
            {
                let mut local = weights.clone();
                train(&mut local, &data, &training, &mut rng);
                debug!(hospital = %lockstep.name(), round, "trained");
                let values = Values::new()
                    .with("weights", &local)
                    .and_then(|v| v.with("samples", &(data.len() as u64)))
                    .and_then(|v| v.with("round", round));
                let values = lockstep.check(values)?;
                lockstep.publish(&update, values)?;
                trained = Some(*round);
                rounds += 1;
            }
            let deliveries = lockstep.step()?;
            if let Some(newer) = newest_global(lockstep, &deliveries, true)? {
                global = Some(newer);
            }
        }
        Ok(HospitalReport {
            samples: data.len(),
            rounds,
            local_accuracy: global.map_or(0.0, |(_, weights)| accuracy(&weights, &data)),
        })
    })
}

/// The newest `Model.Global` (round and weights) in `deliveries`. While stepping only
/// timestamped reflections count, as in the FMI adapter.
fn newest_global(
    lockstep: &LockStep,
    deliveries: &[Delivery],
    timestamped: bool,
) -> Result<Option<(f64, Weights)>, LearningError> {
    let mut newest = None;
    for delivery in deliveries {
        let Delivery::Reflection(reflection) = delivery else {
            continue;
        };
        if &*reflection.object.class != "Model.Global"
            || (timestamped && reflection.timestamp.is_none())
        {
            continue;
        }
        let weights: Option<Weights> = lockstep.check(reflection.values.try_get("weights"))?;
        let round: Option<f64> = lockstep.check(reflection.values.try_get("round"))?;
        if let (Some(weights), Some(round)) = (weights, round) {
            if weights.len() != FEATURES + 1 {
                return Err(LearningError::BadModel {
                    federate: lockstep.name().to_owned(),
                    message: format!(
                        "the global model from `{}` has {} weights, expected {}",
                        reflection.sender,
                        weights.len(),
                        FEATURES + 1
                    ),
                });
            }
            newest = Some((round, weights));
        }
    }
    Ok(newest)
}
