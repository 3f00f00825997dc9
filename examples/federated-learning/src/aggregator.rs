//! The aggregator: federated averaging (FedAvg) of the hospitals' parameters, nothing else.
//!
//! Each round it waits for an update from every hospital it knows (every `Hospital.Update`
//! object it discovered), averages their weights weighted by sample count, optionally adds
//! Gaussian noise (`dp_noise`, the standard deviation per weight), and publishes the result as
//! the next `Model.Global` round.
//!
//! To show what federation costs, it measures each global model's accuracy on a test set and
//! compares it with a centrally trained baseline. Both come from samples the aggregator draws
//! itself from the task's generative process ([`crate::learning`]): the baseline is trained on
//! a fresh sample as large as all hospitals' data together. It *stands in* for a model trained
//! on the pooled hospital data, which the aggregator never sees and which, in a real
//! federation, nobody could pool; the stand-in is honest only because the data here are
//! synthetic.
//!
//! `dp_noise` illustrates the accuracy cost of noise on the aggregate. It is not a
//! differential-privacy guarantee by itself: updates are not clipped and no privacy budget is
//! accounted.

use std::collections::{BTreeMap, BTreeSet};

use federate_sdk::hosted::Hosted;
use federate_sdk::{Delivery, Values};
use serde::Deserialize;
use tracing::info;

use crate::learning::{Dataset, FEATURES, Training, Weights, accuracy, train};
use crate::rng::SplitMix64;
use crate::{LearningError, default_step, step_param};
use federate_sdk::hosted::LockStep;

/// The aggregator's parameters (`[federate.params]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AggregatorParams {
    /// The lock-step step; all federates must agree.
    pub step: String,
    /// Rounds of federated averaging (each takes two steps).
    pub rounds: u32,
    /// Standard deviation of the Gaussian noise added to each averaged weight (0: none).
    pub dp_noise: f64,
    /// Seed of the test set, the baseline's sample and the noise.
    pub seed: u64,
    /// Examples in the test set.
    pub test_samples: u32,
    /// Passes over its sample when training the central baseline.
    pub baseline_epochs: u32,
}

impl Default for AggregatorParams {
    fn default() -> Self {
        Self {
            step: default_step(),
            rounds: 20,
            dp_noise: 0.0,
            seed: 1,
            test_samples: 5000,
            baseline_epochs: 20,
        }
    }
}

/// One completed round.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    /// The round number of the published model (1 for the first average).
    pub round: u32,
    /// Its accuracy on the test set.
    pub accuracy: f64,
    /// The hospitals whose updates it averages, by name.
    pub hospitals: Vec<String>,
    /// Their examples together.
    pub samples: u64,
}

/// What the aggregator did over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatorReport {
    /// Rounds asked for.
    pub rounds_wanted: u32,
    /// Every completed round, in order.
    pub rounds: Vec<Round>,
    /// The accuracy of the initial model (all weights zero).
    pub initial_accuracy: f64,
    /// The central baseline's accuracy, once the first round told how much data there is.
    pub baseline_accuracy: Option<f64>,
    /// The newest global model.
    pub weights: Weights,
}

impl AggregatorReport {
    /// The newest global model's accuracy.
    pub fn final_accuracy(&self) -> f64 {
        self.rounds
            .last()
            .map_or(self.initial_accuracy, |round| round.accuracy)
    }

    /// A one-line summary: accuracy per round against the central baseline.
    pub fn summary(&self) -> String {
        let per_round: Vec<String> = self
            .rounds
            .iter()
            .map(|r| format!("{}: {:.1}%", r.round, 100.0 * r.accuracy))
            .collect();
        let baseline = self.baseline_accuracy.map_or_else(
            || "no central baseline (no round completed)".to_owned(),
            |b| {
                format!(
                    "central baseline {:.1}% (gap {:+.1} points)",
                    100.0 * b,
                    100.0 * (self.final_accuracy() - b)
                )
            },
        );
        format!(
            "{} of {} rounds; accuracy by round {}; {baseline}",
            self.rounds.len(),
            self.rounds_wanted,
            per_round.join(", ")
        )
    }
}

/// Runs the aggregator until the stop time.
///
/// # Errors
///
/// [`LearningError`] naming the federate: bad parameters, an unusable update, a federation
/// error.
pub fn run(hosted: &Hosted) -> Result<AggregatorReport, LearningError> {
    let params: AggregatorParams = hosted.params()?;
    let h = step_param(hosted, &params.step)?;
    if !(params.dp_noise.is_finite() && params.dp_noise >= 0.0) {
        return Err(LearningError::InvalidParam {
            federate: hosted.name.clone(),
            key: "dp_noise",
            message: "must be a standard deviation, finite and not negative".to_owned(),
        });
    }
    let mut rng = SplitMix64::new(params.seed);
    let test = Dataset::generate(&mut rng, params.test_samples as usize, 0.0);
    let mut lockstep = LockStep::join(
        hosted,
        crate::model(),
        h,
        &[
            "Model.Global.weights",
            "Model.Global.round",
            "Model.Global.accuracy",
            "Model.Global.baseline",
        ],
        &[
            "Hospital.Update.weights",
            "Hospital.Update.samples",
            "Hospital.Update.round",
        ],
    )?;
    let global = lockstep.register("Model.Global", &hosted.name)?;
    lockstep.run(|lockstep| {
        let mut weights = vec![0.0; FEATURES + 1];
        let initial_accuracy = accuracy(&weights, &test);
        let initial = model_values(lockstep, &weights, 0, initial_accuracy, None)?;
        let deliveries = lockstep.start(&hosted.expect, &[(&global, initial)])?;

        let mut pool = Pool::default();
        pool.take(lockstep, &deliveries, 0)?;
        let mut rounds = Vec::new();
        let mut baseline = None;
        for _ in 0..lockstep.steps() {
            let round = u32::try_from(rounds.len()).unwrap_or(u32::MAX);
            if round < params.rounds
                && let Some(updates) = pool.complete()
            {
                let samples: u64 = updates.iter().map(|(_, u)| u.samples).sum();
                weights = average(&updates);
                if params.dp_noise > 0.0 {
                    weights
                        .iter_mut()
                        .for_each(|w| *w += params.dp_noise * rng.normal());
                }
                let baseline = *baseline.get_or_insert_with(|| {
                    central_baseline(&mut rng, samples, params.baseline_epochs, &test)
                });
                let next = Round {
                    round: round + 1,
                    accuracy: accuracy(&weights, &test),
                    hospitals: updates.iter().map(|(name, _)| name.clone()).collect(),
                    samples,
                };
                info!(
                    round = next.round,
                    accuracy = next.accuracy,
                    baseline,
                    hospitals = next.hospitals.len(),
                    "averaged"
                );
                let values = model_values(
                    lockstep,
                    &weights,
                    next.round,
                    next.accuracy,
                    Some(baseline),
                )?;
                lockstep.publish(&global, values)?;
                rounds.push(next);
                pool.updates.clear();
            }
            let deliveries = lockstep.step()?;
            let current = u32::try_from(rounds.len()).unwrap_or(u32::MAX);
            pool.take(lockstep, &deliveries, current)?;
        }
        Ok(AggregatorReport {
            rounds_wanted: params.rounds,
            rounds,
            initial_accuracy,
            baseline_accuracy: baseline,
            weights,
        })
    })
}

/// One hospital's update.
#[derive(Debug, Clone)]
struct Update {
    weights: Weights,
    samples: u64,
}

/// The hospitals known and the updates of the current round.
#[derive(Debug, Default)]
struct Pool {
    /// Every `Hospital.Update` object discovered and not removed, by name.
    hospitals: BTreeSet<String>,
    /// This round's updates, by hospital.
    updates: BTreeMap<String, Update>,
}

impl Pool {
    /// Notes discoveries, removals and the updates for `round` in `deliveries`.
    fn take(
        &mut self,
        lockstep: &LockStep,
        deliveries: &[Delivery],
        round: u32,
    ) -> Result<(), LearningError> {
        for delivery in deliveries {
            match delivery {
                Delivery::Discovered { object, .. } if &*object.class == "Hospital.Update" => {
                    self.hospitals.insert(object.name.to_string());
                }
                Delivery::Removed { object, .. } => {
                    self.hospitals.remove(&*object.name);
                    self.updates.remove(&*object.name);
                }
                Delivery::Reflection(reflection)
                    if &*reflection.object.class == "Hospital.Update"
                        && reflection.timestamp.is_some() =>
                {
                    let values = &reflection.values;
                    let updated: Option<f64> = lockstep.check(values.try_get("round"))?;
                    let weights: Option<Weights> = lockstep.check(values.try_get("weights"))?;
                    let samples: Option<u64> = lockstep.check(values.try_get("samples"))?;
                    let (Some(updated), Some(weights), Some(samples)) = (updated, weights, samples)
                    else {
                        continue;
                    };
                    if updated != f64::from(round) {
                        // A late update for an earlier round: the average moved on without it.
                        continue;
                    }
                    if weights.len() != FEATURES + 1 {
                        return Err(LearningError::BadModel {
                            federate: lockstep.name().to_owned(),
                            message: format!(
                                "the update from `{}` has {} weights, expected {}",
                                reflection.object.name,
                                weights.len(),
                                FEATURES + 1
                            ),
                        });
                    }
                    let name = reflection.object.name.to_string();
                    self.hospitals.insert(name.clone());
                    self.updates.insert(name, Update { weights, samples });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// This round's updates, in name order, once every known hospital has sent one.
    fn complete(&self) -> Option<Vec<(String, Update)>> {
        let complete = !self.hospitals.is_empty()
            && self.hospitals.iter().all(|h| self.updates.contains_key(h));
        complete.then(|| {
            self.updates
                .iter()
                .map(|(name, update)| (name.clone(), update.clone()))
                .collect()
        })
    }
}

/// FedAvg: the weights averaged with the sample counts as weights.
fn average(updates: &[(String, Update)]) -> Weights {
    let total: u64 = updates.iter().map(|(_, u)| u.samples).sum();
    let mut average = vec![0.0; FEATURES + 1];
    if total == 0 {
        return average;
    }
    for (_, update) in updates {
        // Counts far below 2^53: exact as f64.
        let share = update.samples as f64 / total as f64;
        for (a, w) in average.iter_mut().zip(&update.weights) {
            *a += share * w;
        }
    }
    average
}

/// The accuracy of a model trained centrally on `samples` fresh examples (see the module
/// documentation for what this stands in for).
fn central_baseline(rng: &mut SplitMix64, samples: u64, epochs: u32, test: &Dataset) -> f64 {
    let pooled = Dataset::generate(rng, usize::try_from(samples).unwrap_or(usize::MAX), 0.0);
    let mut weights = vec![0.0; FEATURES + 1];
    let training = Training {
        epochs,
        learning_rate: 0.1,
        batch: 16,
        l2: 1e-4,
    };
    train(&mut weights, &pooled, &training, rng);
    accuracy(&weights, test)
}

fn model_values(
    lockstep: &LockStep,
    weights: &Weights,
    round: u32,
    accuracy: f64,
    baseline: Option<f64>,
) -> Result<Values, LearningError> {
    let mut values = Values::new()
        .with("weights", weights)
        .and_then(|v| v.with("round", &f64::from(round)))
        .and_then(|v| v.with("accuracy", &accuracy));
    if let Some(baseline) = baseline {
        values = values.and_then(|v| v.with("baseline", &baseline));
    }
    Ok(lockstep.check(values)?)
}
