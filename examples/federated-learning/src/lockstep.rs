//! The lock-step loop of the FMI adapter, for these federates.

use federate_sdk::hosted::{self, Hosted};
use federate_sdk::{Delivery, Federate, ObjectInstance, SimDuration, Values, blocking};

use crate::{LearningError, model};

/// A joined lock-step federate: regulating with lookahead `h`, constrained.
pub(crate) struct LockStep {
    federate: blocking::Federate,
    pub(crate) name: String,
    /// The communication step, also the lookahead.
    pub(crate) h: SimDuration,
    /// Steps until the stop time (the last one may end past it).
    pub(crate) steps: u64,
}

impl LockStep {
    /// Joins, publishes `publish`, subscribes `subscribe` and registers one object of `class`
    /// named after the federate.
    pub(crate) fn join(
        hosted: &Hosted,
        h: SimDuration,
        publish: &[&str],
        subscribe: &[&str],
        class: &str,
    ) -> Result<(Self, ObjectInstance), LearningError> {
        let federate = Federate::builder(&hosted.federation, &hosted.name)
            .create_federation(model())
            .time_regulating(h)
            .time_constrained()
            .join_blocking(hosted.connector.clone())
            .map_err(|source| LearningError::Federation {
                federate: hosted.name.clone(),
                source,
            })?;
        let span = hosted.stop.ticks().abs_diff(federate.time().ticks());
        let mut lockstep = Self {
            federate,
            name: hosted.name.clone(),
            h,
            steps: span.div_ceil(h.ticks().max(1)),
        };
        let declared = (|| {
            lockstep.federate.publish(publish)?;
            lockstep.federate.subscribe(subscribe)?;
            let name = lockstep.name.clone();
            lockstep.federate.register_object(class, Some(&name))
        })();
        match declared {
            Ok(object) => Ok((lockstep, object)),
            Err(source) => {
                let _ = lockstep.federate.resign();
                Err(LearningError::Federation {
                    federate: hosted.name.clone(),
                    source,
                })
            }
        }
    }

    /// Waits for every federate of the run, sending `initial` untimestamped in between, and
    /// returns what the others sent.
    pub(crate) fn start(
        &mut self,
        expect: &[String],
        initial: Option<(&ObjectInstance, Values)>,
    ) -> Result<Vec<Delivery>, LearningError> {
        let expected: Vec<&str> = expect.iter().map(String::as_str).collect();
        let started =
            hosted::start_barrier(&mut self.federate, &expected, |federate| match initial {
                Some((object, values)) => federate.update(object, values, None),
                None => Ok(()),
            });
        self.check(started)?;
        let deliveries = self.federate.take_deliveries();
        self.check(deliveries)
    }

    /// Sends `values` of `object` stamped `T + h`.
    pub(crate) fn publish(
        &mut self,
        object: &ObjectInstance,
        values: Values,
    ) -> Result<(), LearningError> {
        let sent = self
            .federate
            .time()
            .checked_add(self.h)
            .map_err(federate_sdk::Error::from)
            .and_then(|at| self.federate.update(object, values, Some(at)));
        self.check(sent)
    }

    /// Requests `T + h` and returns what was delivered with the grant.
    pub(crate) fn step(&mut self) -> Result<Vec<Delivery>, LearningError> {
        let granted = self.federate.step(self.h);
        self.check(granted).map(|grant| grant.deliveries)
    }

    /// Wraps an SDK error with this federate's name.
    pub(crate) fn check<T>(&self, result: federate_sdk::Result<T>) -> Result<T, LearningError> {
        result.map_err(|source| LearningError::Federation {
            federate: self.name.clone(),
            source,
        })
    }
}

/// Runs `body` and resigns afterwards, also after a failure (so that the others are not held
/// back by a federate that stopped).
pub(crate) fn run<R>(
    mut lockstep: LockStep,
    body: impl FnOnce(&mut LockStep) -> Result<R, LearningError>,
) -> Result<R, LearningError> {
    let outcome = body(&mut lockstep);
    let name = lockstep.name.clone();
    let resigned = lockstep.federate.resign();
    match outcome {
        Ok(result) => {
            resigned.map_err(|source| LearningError::Federation {
                federate: name,
                source,
            })?;
            Ok(result)
        }
        Err(error) => {
            tracing::warn!(federate = %name, "failed, resigned: {error}");
            Err(error)
        }
    }
}
