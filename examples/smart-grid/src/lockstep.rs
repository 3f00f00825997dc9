//! The lock-step loop every federate of this example shares with the FMI adapter.

use federate_sdk::hosted::{self, Hosted};
use federate_sdk::{Delivery, Federate, ObjectInstance, SimDuration, SimTime, Values, blocking};

use crate::{GridError, model};

/// A joined lock-step federate: regulating with lookahead `h`, constrained.
pub(crate) struct LockStep {
    federate: blocking::Federate,
    name: String,
    /// The communication step, also the lookahead.
    pub(crate) h: SimDuration,
    /// Steps until the stop time (the last one may end past it).
    pub(crate) steps: u64,
}

impl LockStep {
    /// Joins the federation of `hosted`, then publishes and subscribes the attributes named
    /// `Class.attribute`.
    pub(crate) fn join(
        hosted: &Hosted,
        h: SimDuration,
        publish: &[&str],
        subscribe: &[&str],
    ) -> Result<Self, GridError> {
        let federation_error = |source| GridError::Federation {
            federate: hosted.name.clone(),
            source,
        };
        let federate = Federate::builder(&hosted.federation, &hosted.name)
            .create_federation(model())
            .time_regulating(h)
            .time_constrained()
            .join_blocking(hosted.connector.clone())
            .map_err(federation_error)?;
        let span = hosted.stop.ticks().abs_diff(federate.time().ticks());
        let mut lockstep = Self {
            federate,
            name: hosted.name.clone(),
            h,
            steps: span.div_ceil(h.ticks().max(1)),
        };
        let declared = (|| {
            if !publish.is_empty() {
                lockstep.federate.publish(publish)?;
            }
            if !subscribe.is_empty() {
                lockstep.federate.subscribe(subscribe)?;
            }
            Ok(())
        })();
        lockstep.check(declared)?;
        Ok(lockstep)
    }

    /// Registers an object of `class` named after this federate, or `<federate>/<class>` when
    /// `qualified` (for a federate with objects of several classes, as the FMI adapter names
    /// them).
    pub(crate) fn register(
        &mut self,
        class: &str,
        qualified: bool,
    ) -> Result<ObjectInstance, GridError> {
        let name = if qualified {
            format!("{}/{class}", self.name)
        } else {
            self.name.clone()
        };
        let registered = self.federate.register_object(class, Some(&name));
        self.check(registered)
    }

    /// Waits for every federate of the run, sends `initial` (object, values) untimestamped in
    /// between and returns what the others sent.
    pub(crate) fn start(
        &mut self,
        expect: &[String],
        initial: &[(&ObjectInstance, Values)],
    ) -> Result<Vec<Delivery>, GridError> {
        let expected: Vec<&str> = expect.iter().map(String::as_str).collect();
        let started = hosted::start_barrier(&mut self.federate, &expected, |federate| {
            for (object, values) in initial {
                federate.update(object, values.clone(), None)?;
            }
            Ok(())
        });
        self.check(started)?;
        let deliveries = self.federate.take_deliveries();
        self.check(deliveries)
    }

    /// Logical time.
    pub(crate) fn time(&self) -> SimTime {
        self.federate.time()
    }

    /// Sends `values` of `object` stamped one step ahead, `T + h` (the bound).
    pub(crate) fn publish(
        &mut self,
        object: &ObjectInstance,
        values: Values,
    ) -> Result<(), GridError> {
        let at = self.federate.time().checked_add(self.h);
        let sent = at
            .map_err(federate_sdk::Error::from)
            .and_then(|at| self.federate.update(object, values, Some(at)));
        self.check(sent)
    }

    /// Requests `T + h` and returns what was delivered with the grant.
    pub(crate) fn step(&mut self) -> Result<Vec<Delivery>, GridError> {
        let granted = self.federate.step(self.h);
        self.check(granted).map(|grant| grant.deliveries)
    }

    /// Resigns: the others' time goes on without this federate.
    pub(crate) fn resign(self) -> Result<(), GridError> {
        let name = self.name;
        self.federate
            .resign()
            .map_err(|source| GridError::Federation {
                federate: name,
                source,
            })
    }

    /// See [`reflected`].
    pub(crate) fn reflected(
        &self,
        deliveries: &[Delivery],
        class: &str,
        attribute: &str,
        timestamped: bool,
    ) -> Result<Vec<(String, f64)>, GridError> {
        self.check(reflected(deliveries, class, attribute, timestamped))
    }

    fn check<T>(&self, result: federate_sdk::Result<T>) -> Result<T, GridError> {
        result.map_err(|source| GridError::Federation {
            federate: self.name.clone(),
            source,
        })
    }
}

/// Runs `body` on a joined federate and resigns afterwards, also after a failure (so that the
/// others are not held back by a federate that stopped).
pub(crate) fn run<R>(
    mut lockstep: LockStep,
    body: impl FnOnce(&mut LockStep) -> Result<R, GridError>,
) -> Result<R, GridError> {
    match body(&mut lockstep) {
        Ok(result) => {
            lockstep.resign()?;
            Ok(result)
        }
        Err(error) => {
            tracing::warn!(federate = %lockstep.name, "failed, resigning: {error}");
            let _ = lockstep.resign();
            Err(error)
        }
    }
}

/// The `f64` attribute `attribute` of the reflections of `class` in `deliveries`, with the
/// object's name, in delivery order. While stepping only timestamped reflections count, as in
/// the FMI adapter: a late initial value must not overwrite a newer one.
fn reflected(
    deliveries: &[Delivery],
    class: &str,
    attribute: &str,
    timestamped: bool,
) -> Result<Vec<(String, f64)>, federate_sdk::Error> {
    let mut values = Vec::new();
    for delivery in deliveries {
        let Delivery::Reflection(reflection) = delivery else {
            continue;
        };
        if *reflection.object.class != *class || (timestamped && reflection.timestamp.is_none()) {
            continue;
        }
        if let Some(value) = reflection.values.try_get::<f64>(attribute)? {
            values.push((reflection.object.name.to_string(), value));
        }
    }
    Ok(values)
}
