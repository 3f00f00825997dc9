//! The step controller: one stability rule for lock-step and event-driven coupling.
//!
//! Coupled continuous models exchange values only at communication points, so each sees the
//! others' outputs late by the coupling step `h` plus any coupling delay `tau` (a lookahead or
//! an output delay is exactly such a delay). An explicit, delayed coupling of a component whose
//! fastest eigenvalue has magnitude `|lambda|` stays stable only while
//!
//! ```text
//! h + tau <= alpha * 2 / |lambda_max|
//! ```
//!
//! (the forward-Euler stability limit `2/|lambda|`, shrunk by a safety factor `alpha` in
//! `(0, 1]`). `lambda_max` is the largest magnitude declared among the federates coupled by
//! subscriptions. In lock-step mode [`choose_step`] picks the largest step that keeps the rule
//! within the configured and FMU limits; in event mode [`check_step`] checks a lookahead or a
//! step request against it. A configuration with no stable step is refused with an error that
//! names the fastest federate, the bound and the numbers. [`StepSettings::override_stability`]
//! turns the refusal into a warning, for experiments.
//!
//! The eigenvalue and safety factor are `f64`, as engineers state them; the bound is converted
//! to integer ticks once, rounding down, and every comparison after that is on ticks.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::{SimDuration, TICKS_PER_SECOND};

/// The fastest dynamics a federate declares.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dynamics {
    /// Magnitude of the fastest eigenvalue, in 1/s.
    fastest_eigenvalue: f64,
}

impl Dynamics {
    /// From the magnitude of the fastest eigenvalue, in 1/s (the sign is ignored).
    ///
    /// # Errors
    ///
    /// [`StepError::InvalidDynamics`] for zero, NaN or infinity.
    pub fn from_eigenvalue(lambda: f64) -> Result<Self, StepError> {
        let magnitude = lambda.abs();
        if !magnitude.is_finite() || magnitude == 0.0 {
            return Err(StepError::InvalidDynamics(format!(
                "eigenvalue {lambda}: give a finite, non-zero magnitude in 1/s"
            )));
        }
        Ok(Self {
            fastest_eigenvalue: magnitude,
        })
    }

    /// From the fastest time constant (`1/|lambda|`).
    ///
    /// # Errors
    ///
    /// [`StepError::InvalidDynamics`] for a zero time constant.
    pub fn from_time_constant(time_constant: SimDuration) -> Result<Self, StepError> {
        if time_constant.is_zero() {
            return Err(StepError::InvalidDynamics("a time constant of zero".into()));
        }
        Self::from_eigenvalue(1.0 / time_constant.as_secs_f64())
    }

    /// `|lambda|` in 1/s.
    pub fn eigenvalue(self) -> f64 {
        self.fastest_eigenvalue
    }
}

/// How a federation chooses and checks steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepSettings {
    /// Safety factor in `(0, 1]`.
    pub alpha: f64,
    /// The smallest step worth taking.
    pub min_step: SimDuration,
    /// The largest step wanted.
    pub max_step: SimDuration,
    /// Accept unstable steps (logged as a warning by the caller), for experiments only.
    pub override_stability: bool,
}

impl Default for StepSettings {
    fn default() -> Self {
        Self {
            alpha: 0.9,
            min_step: SimDuration::from_ticks(1_000),
            max_step: SimDuration::from_ticks(TICKS_PER_SECOND as u64),
            override_stability: false,
        }
    }
}

impl StepSettings {
    /// Checks the settings themselves.
    ///
    /// # Errors
    ///
    /// [`StepError::InvalidSettings`] naming the setting.
    pub fn validate(&self) -> Result<(), StepError> {
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(StepError::InvalidSettings(format!(
                "alpha = {} is outside (0, 1]",
                self.alpha
            )));
        }
        if self.min_step.is_zero() || self.min_step > self.max_step {
            return Err(StepError::InvalidSettings(format!(
                "min_step = {} and max_step = {}: need 0 < min_step <= max_step",
                self.min_step, self.max_step
            )));
        }
        Ok(())
    }
}

/// One federate taking part in a coupling, as the controller sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coupled<'a> {
    /// Its name, for error messages.
    pub name: &'a str,
    /// Its declared fastest dynamics, if any.
    pub dynamics: Option<Dynamics>,
    /// The largest step it can take (an FMU's limit), if any.
    pub max_step: Option<SimDuration>,
}

/// What limited a chosen step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// The configured maximum step.
    Configured,
    /// A federate's own maximum step.
    Federate(String),
    /// The stability bound set by this federate's dynamics.
    Stability(String),
}

/// A step chosen by [`choose_step`].
#[derive(Debug, Clone, PartialEq)]
pub struct StepChoice {
    /// The step.
    pub step: SimDuration,
    /// `alpha * 2 / |lambda_max|`, when any federate declared dynamics.
    pub bound: Option<SimDuration>,
    /// What decided the step.
    pub limited_by: Limit,
    /// Set when the override let an unstable step through: the explanation to log.
    pub unstable: Option<StepError>,
}

/// A refused step or configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// No step satisfies the stability rule within the limits.
    #[error(
        "no stable step: `{fastest}` declares |lambda| = {eigenvalue} 1/s, so step + delay must \
         not exceed alpha * 2 / |lambda| = {alpha} * 2 / {eigenvalue} = {bound}; with a coupling \
         delay of {delay} and a smallest step of {min_step} nothing fits. Shorten the delay \
         (lookahead), or set override_stability for an experiment"
    )]
    NoStableStep {
        /// The federate with the fastest dynamics.
        fastest: String,
        /// Its `|lambda|`, 1/s.
        eigenvalue: f64,
        /// The safety factor.
        alpha: f64,
        /// `alpha * 2 / |lambda|`.
        bound: SimDuration,
        /// The coupling delay.
        delay: SimDuration,
        /// The smallest step allowed.
        min_step: SimDuration,
    },
    /// A requested step (with its delay) exceeds the bound.
    #[error(
        "unstable step: step {step} + delay {delay} exceeds alpha * 2 / |lambda| = {alpha} * 2 / \
         {eigenvalue} = {bound}, set by `{fastest}`; take steps of at most {largest} or declare a \
         shorter lookahead"
    )]
    Unstable {
        /// The federate with the fastest dynamics.
        fastest: String,
        /// Its `|lambda|`, 1/s.
        eigenvalue: f64,
        /// The safety factor.
        alpha: f64,
        /// `alpha * 2 / |lambda|`.
        bound: SimDuration,
        /// The step asked for.
        step: SimDuration,
        /// The coupling delay.
        delay: SimDuration,
        /// The largest stable step with this delay (zero if none).
        largest: SimDuration,
    },
    /// Invalid dynamics.
    #[error("invalid dynamics: {0}")]
    InvalidDynamics(String),
    /// Invalid settings.
    #[error("invalid step settings: {0}")]
    InvalidSettings(String),
}

/// `alpha * 2 / |lambda|` in ticks, rounded down.
pub fn stable_bound(alpha: f64, dynamics: Dynamics) -> SimDuration {
    let seconds = alpha * 2.0 / dynamics.eigenvalue();
    let ticks = (seconds * TICKS_PER_SECOND as f64).floor();
    // `as` saturates for out-of-range floats, which is the intent for huge bounds.
    SimDuration::from_ticks(ticks as u64)
}

/// The federate with the fastest declared dynamics.
pub fn fastest<'a>(federates: &[Coupled<'a>]) -> Option<(&'a str, Dynamics)> {
    federates
        .iter()
        .filter_map(|f| f.dynamics.map(|d| (f.name, d)))
        .max_by(|a, b| a.1.eigenvalue().total_cmp(&b.1.eigenvalue()))
}

/// The largest step satisfying `step + delay <= bound` within the settings and every
/// federate's own limit (lock-step mode).
///
/// # Errors
///
/// [`StepError::NoStableStep`] naming the fastest federate, unless the settings override
/// stability (then the result carries the explanation in `unstable`), and
/// [`StepError::InvalidSettings`].
pub fn choose_step(
    settings: &StepSettings,
    federates: &[Coupled<'_>],
    delay: SimDuration,
) -> Result<StepChoice, StepError> {
    settings.validate()?;
    let mut step = settings.max_step;
    let mut limited_by = Limit::Configured;
    for federate in federates {
        if let Some(limit) = federate.max_step
            && limit < step
        {
            step = limit;
            limited_by = Limit::Federate(federate.name.to_owned());
        }
    }
    let Some((name, dynamics)) = fastest(federates) else {
        return Ok(StepChoice {
            step,
            bound: None,
            limited_by,
            unstable: None,
        });
    };
    let bound = stable_bound(settings.alpha, dynamics);
    let room = SimDuration::from_ticks(bound.ticks().saturating_sub(delay.ticks()));
    if room < step {
        step = room;
        limited_by = Limit::Stability(name.to_owned());
    }
    if step >= settings.min_step {
        return Ok(StepChoice {
            step,
            bound: Some(bound),
            limited_by,
            unstable: None,
        });
    }
    let error = StepError::NoStableStep {
        fastest: name.to_owned(),
        eigenvalue: dynamics.eigenvalue(),
        alpha: settings.alpha,
        bound,
        delay,
        min_step: settings.min_step,
    };
    if settings.override_stability {
        let step = federates
            .iter()
            .filter_map(|f| f.max_step)
            .fold(settings.max_step, SimDuration::min);
        return Ok(StepChoice {
            step,
            bound: Some(bound),
            limited_by: Limit::Configured,
            unstable: Some(error),
        });
    }
    Err(error)
}

/// Checks a step (or a lookahead, as a step of zero with that delay) against the bound set by
/// the fastest of `federates` (event mode).
///
/// # Errors
///
/// [`StepError::Unstable`] naming the fastest federate and the largest stable step.
pub fn check_step(
    alpha: f64,
    federates: &[Coupled<'_>],
    step: SimDuration,
    delay: SimDuration,
) -> Result<(), StepError> {
    let Some((name, dynamics)) = fastest(federates) else {
        return Ok(());
    };
    let bound = stable_bound(alpha, dynamics);
    if step.ticks().saturating_add(delay.ticks()) <= bound.ticks() {
        return Ok(());
    }
    Err(StepError::Unstable {
        fastest: name.to_owned(),
        eigenvalue: dynamics.eigenvalue(),
        alpha,
        bound,
        step,
        delay,
        largest: SimDuration::from_ticks(bound.ticks().saturating_sub(delay.ticks())),
    })
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Configured => f.write_str("the configured maximum step"),
            Self::Federate(name) => write!(f, "`{name}`'s maximum step"),
            Self::Stability(name) => write!(f, "the stability bound of `{name}`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(m: u64) -> SimDuration {
        SimDuration::from_millis(m).unwrap()
    }

    fn federate(name: &str, lambda: Option<f64>) -> Coupled<'_> {
        Coupled {
            name,
            dynamics: lambda.map(|l| Dynamics::from_eigenvalue(l).unwrap()),
            max_step: None,
        }
    }

    #[test]
    fn bound_is_alpha_two_over_lambda_in_ticks() {
        let d = Dynamics::from_eigenvalue(-10.0).unwrap();
        assert_eq!(stable_bound(1.0, d), ms(200));
        assert_eq!(stable_bound(0.5, d), ms(100));
        let tau = Dynamics::from_time_constant(ms(50)).unwrap();
        assert!((tau.eigenvalue() - 20.0).abs() < 1e-12);
        assert!(Dynamics::from_eigenvalue(0.0).is_err());
        assert!(Dynamics::from_eigenvalue(f64::NAN).is_err());
    }

    #[test]
    fn chooses_the_largest_stable_step_within_limits() {
        let settings = StepSettings {
            alpha: 0.9,
            min_step: ms(1),
            max_step: ms(500),
            ..Default::default()
        };
        let federates = [federate("mass", Some(2.0)), federate("spring", Some(10.0))];
        // Bound 0.9 * 2 / 10 = 180 ms; with a 30 ms delay, 150 ms remain.
        let choice = choose_step(&settings, &federates, ms(30)).unwrap();
        assert_eq!(choice.step, ms(150));
        assert_eq!(choice.bound, Some(ms(180)));
        assert_eq!(choice.limited_by, Limit::Stability("spring".into()));

        let limited = [Coupled {
            max_step: Some(ms(20)),
            ..federate("fmu", Some(1.0))
        }];
        let choice = choose_step(&settings, &limited, SimDuration::ZERO).unwrap();
        assert_eq!(
            (choice.step, choice.limited_by),
            (ms(20), Limit::Federate("fmu".into()))
        );

        let none = choose_step(&settings, &[federate("plain", None)], ms(5)).unwrap();
        assert_eq!((none.step, none.bound), (ms(500), None));
    }

    #[test]
    fn refuses_when_nothing_is_stable_and_names_the_numbers() {
        let settings = StepSettings {
            alpha: 0.9,
            min_step: ms(1),
            max_step: ms(500),
            ..Default::default()
        };
        let federates = [federate("mass", Some(2.0)), federate("spring", Some(10.0))];
        let error = choose_step(&settings, &federates, ms(250)).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, StepError::NoStableStep { ref fastest, .. } if fastest == "spring")
        );
        for needle in [
            "`spring`",
            "|lambda| = 10",
            "0.9 * 2 / 10 = 0.18s",
            "0.25s",
            "0.001s",
        ] {
            assert!(message.contains(needle), "{needle} missing from: {message}");
        }

        let experiment = StepSettings {
            override_stability: true,
            ..settings
        };
        let choice = choose_step(&experiment, &federates, ms(250)).unwrap();
        assert_eq!(choice.step, ms(500));
        assert!(choice.unstable.is_some());
    }

    #[test]
    fn event_mode_checks_steps_and_lookahead() {
        let federates = [federate("grid", Some(5.0)), federate("meter", None)];
        // Bound 1.0 * 2 / 5 = 400 ms.
        assert!(check_step(1.0, &federates, ms(300), ms(100)).is_ok());
        let error = check_step(1.0, &federates, ms(350), ms(100)).unwrap_err();
        assert!(matches!(error, StepError::Unstable { largest, .. } if largest == ms(300)));
        assert!(error.to_string().contains("at most 0.3s"), "{error}");
        assert!(check_step(1.0, &federates, SimDuration::ZERO, ms(401)).is_err());
        assert!(check_step(1.0, &[federate("x", None)], ms(10_000), ms(10_000)).is_ok());
    }

    #[test]
    fn settings_are_validated() {
        let bad_alpha = StepSettings {
            alpha: 1.5,
            ..Default::default()
        };
        assert!(matches!(
            bad_alpha.validate(),
            Err(StepError::InvalidSettings(_))
        ));
        let bad_steps = StepSettings {
            min_step: ms(10),
            max_step: ms(5),
            ..Default::default()
        };
        assert!(bad_steps.validate().is_err());
        assert!(StepSettings::default().validate().is_ok());
    }
}
