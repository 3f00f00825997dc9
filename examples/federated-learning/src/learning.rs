//! The learning task: synthetic two-class data from one ground truth, logistic regression
//! trained by mini-batch SGD, and accuracy.
//!
//! Every hospital observes the same phenomenon — the label follows
//! `P(y = 1 | x) = sigmoid(w* . x + b*)` with the fixed [`TRUE_WEIGHTS`] — but treats its own
//! population: its features are centred on its own `shift` along a direction drawn from its
//! seed (covariate shift, so the hospitals' data are not identically distributed).

use crate::rng::SplitMix64;

/// Features per example.
pub const FEATURES: usize = 6;

/// The ground truth `w*` followed by the bias `b*`.
pub const TRUE_WEIGHTS: [f64; FEATURES + 1] = [1.5, -2.0, 1.0, 0.5, -1.0, 0.0, -0.25];

/// Model parameters: one weight per feature, then the bias.
pub type Weights = Vec<f64>;

/// A labelled data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Feature vectors.
    pub features: Vec<[f64; FEATURES]>,
    /// Labels, 0 or 1.
    pub labels: Vec<f64>,
}

impl Dataset {
    /// `samples` examples drawn with `rng`, features centred `shift` away from the origin along
    /// a direction drawn from `rng` too (no direction for `shift = 0`).
    pub(crate) fn generate(rng: &mut SplitMix64, samples: usize, shift: f64) -> Self {
        let mut direction = [0.0; FEATURES];
        direction.iter_mut().for_each(|d| *d = rng.normal());
        let norm = direction
            .iter()
            .map(|d| d * d)
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        let centre: [f64; FEATURES] = std::array::from_fn(|j| shift * direction[j] / norm);
        let mut features = Vec::with_capacity(samples);
        let mut labels = Vec::with_capacity(samples);
        for _ in 0..samples {
            let x: [f64; FEATURES] = std::array::from_fn(|j| centre[j] + rng.normal());
            let p = sigmoid(logit(&TRUE_WEIGHTS, &x));
            labels.push(if rng.unit() < p { 1.0 } else { 0.0 });
            features.push(x);
        }
        Self { features, labels }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// How to train.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Training {
    /// Passes over the data.
    pub epochs: u32,
    /// SGD step size.
    pub learning_rate: f64,
    /// Examples per mini-batch.
    pub batch: usize,
    /// L2 penalty on the weights (not the bias).
    pub l2: f64,
}

/// Trains `weights` in place on `data` by mini-batch SGD on the logistic loss, shuffling with
/// `rng` every epoch.
pub(crate) fn train(
    weights: &mut [f64],
    data: &Dataset,
    training: &Training,
    rng: &mut SplitMix64,
) {
    let n = data.len();
    if n == 0 || weights.len() != FEATURES + 1 {
        return;
    }
    let mut order: Vec<usize> = (0..n).collect();
    let batch = training.batch.clamp(1, n);
    for _ in 0..training.epochs {
        // Fisher-Yates.
        for i in (1..n).rev() {
            order.swap(i, rng.below(i + 1));
        }
        for chunk in order.chunks(batch) {
            let mut gradient = [0.0; FEATURES + 1];
            for &i in chunk {
                let x = &data.features[i];
                let error = sigmoid(logit(weights, x)) - data.labels[i];
                for j in 0..FEATURES {
                    gradient[j] += error * x[j];
                }
                gradient[FEATURES] += error;
            }
            let scale = training.learning_rate / chunk.len() as f64;
            for j in 0..FEATURES {
                weights[j] -=
                    scale * gradient[j] + training.learning_rate * training.l2 * weights[j];
            }
            weights[FEATURES] -= scale * gradient[FEATURES];
        }
    }
}

/// The share of `data` that `weights` classify correctly (threshold 0.5).
pub fn accuracy(weights: &[f64], data: &Dataset) -> f64 {
    if data.is_empty() || weights.len() != FEATURES + 1 {
        return 0.0;
    }
    let correct = data
        .features
        .iter()
        .zip(&data.labels)
        .filter(|(x, label)| (logit(weights, x) > 0.0) == (**label > 0.5))
        .count();
    correct as f64 / data.len() as f64
}

fn logit(weights: &[f64], x: &[f64; FEATURES]) -> f64 {
    x.iter().zip(weights).map(|(x, w)| x * w).sum::<f64>() + weights[FEATURES]
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_recovers_the_ground_truth_classifier() {
        let mut rng = SplitMix64::new(11);
        let train_set = Dataset::generate(&mut rng, 4000, 0.0);
        let test_set = Dataset::generate(&mut rng, 4000, 0.0);
        let mut weights = vec![0.0; FEATURES + 1];
        let training = Training {
            epochs: 20,
            learning_rate: 0.1,
            batch: 32,
            l2: 1e-4,
        };
        train(&mut weights, &train_set, &training, &mut rng);
        let learned = accuracy(&weights, &test_set);
        let truth = accuracy(&TRUE_WEIGHTS, &test_set);
        assert!(truth > 0.8, "the task is learnable: {truth}");
        assert!(learned > truth - 0.02, "learned {learned} vs truth {truth}");
        assert!(accuracy(&[0.0; FEATURES + 1], &test_set) < 0.7);
    }
}
