//! Federates hosted by a runner (`fedtwin run`): plain functions the runner calls on a thread
//! of their own, plus the start barrier that lets hosted federates, FMU adapters and external
//! programs begin the run together.
//!
//! A hosted federate is a [`HostedFn`]: it receives a [`Hosted`] (where to connect, its name,
//! the stop time, its parameters from the federation file), joins, runs to the stop time and
//! returns a one-line summary. A failure is returned, never panicked, so that the runner can
//! name the federate and its message.
//!
//! ```no_run
//! use federate_sdk::hosted::{self, Hosted, HostedResult};
//! use federate_sdk::{Federate, ObjectModel, SimDuration, Values};
//!
//! fn meter(hosted: Hosted) -> HostedResult {
//!     let own = ObjectModel::new().with_object_class("Grid.Meter", ["kw"]);
//!     let step = SimDuration::from_secs(1)?;
//!     let mut federate = Federate::builder(&hosted.federation, &hosted.name)
//!         .create_federation(hosted.model_or(own)) // the run's model when mixed with others
//!         .time_regulating(step)
//!         .time_constrained()
//!         .join_blocking(hosted.connector.clone())?;
//!     federate.publish(&["Grid.Meter.kw"])?;
//!     let meter = federate.register_object("Grid.Meter", Some(&hosted.name))?;
//!     let expected: Vec<&str> = hosted.expect.iter().map(String::as_str).collect();
//!     hosted::start_barrier(&mut federate, &expected, |federate| {
//!         federate.update(&meter, Values::new().with("kw", &0.0)?, None) // initial value
//!     })?;
//!     while federate.time() < hosted.stop {
//!         let next = federate.time().checked_add(step)?;
//!         federate.update(&meter, Values::new().with("kw", &1.5)?, Some(next))?;
//!         federate.step(step)?;
//!     }
//!     federate.resign()?;
//!     Ok(format!("metered until {}", hosted.stop))
//! }
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use fedtwin_core::{ObjectModel, RtiError, SimDuration, SimTime};
use serde::de::DeserializeOwned;

use crate::blocking::Federate;
use crate::error::{Error, Result};
use crate::link::Connector;
use crate::values::{Delivery, ObjectInstance, Values};

/// Everything a hosted federate gets from the runner.
#[derive(Debug, Clone)]
pub struct Hosted {
    /// The federation to join (created by whoever joins first).
    pub federation: String,
    /// This federate's name (unique in the federation).
    pub name: String,
    /// Where the RTI is.
    pub connector: Connector,
    /// When the run ends, in simulated time.
    pub stop: SimTime,
    /// Every federate of the run, this one included: the start barrier waits for all of them.
    pub expect: Vec<String>,
    /// The federate's own table from the federation file (`[federate.params]`).
    pub params: toml::Table,
    /// The federation's object model as the runner assembled it for the whole run (every
    /// class of the FMU adapters, players and built-in federates it knows of), or `None` when
    /// the federate's own model is the federation's. Create the federation with
    /// [`Hosted::model_or`]: every federate of the run then joins knowing every class, whatever
    /// the order in which they join (the engine merges the parts anyway).
    pub model: Option<ObjectModel>,
}

/// What a hosted federate returns: a one-line summary, or why it failed.
pub type HostedResult = std::result::Result<String, Box<dyn std::error::Error + Send + Sync>>;

/// A federate the runner can host.
pub type HostedFn = fn(Hosted) -> HostedResult;

/// A parameter table that does not fit the federate's parameter type.
#[derive(Debug, thiserror::Error)]
#[error("federate `{federate}`: invalid params: {message}")]
pub struct ParamsError {
    /// The federate whose parameters were rejected.
    pub federate: String,
    /// What was wrong, naming the key.
    pub message: String,
}

impl Hosted {
    /// Reads the parameters into the federate's own type; missing keys take the type's
    /// `#[serde(default)]`s, unknown keys are errors when the type denies them.
    ///
    /// # Errors
    ///
    /// [`ParamsError`] naming the federate and the offending key.
    pub fn params<T: DeserializeOwned>(&self) -> std::result::Result<T, ParamsError> {
        toml::Value::Table(self.params.clone())
            .try_into()
            .map_err(|e: toml::de::Error| ParamsError {
                federate: self.name.clone(),
                message: e.message().to_owned(),
            })
    }

    /// The object model to create the federation with: the runner's model of the whole run
    /// when it has one (it contains `own`'s classes), else `own`.
    pub fn model_or(&self, own: ObjectModel) -> ObjectModel {
        self.model.clone().unwrap_or(own)
    }
}

/// How long [`start_barrier`] waits for the expected federates to join.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a wait at the start barrier says, as a warning, whom it is waiting for.
const WAIT_WARNING: Duration = Duration::from_secs(10);

/// Waits until every federate in `expected` has joined and declared its interests, lets this
/// one send its initial (untimestamped) values in `initial`, and returns once everybody has.
///
/// Every participant calls this with the same set of names and tries to register the two
/// synchronization points, `ready` (all joined and subscribed) and `start` (all sent their
/// initial values): the first to find everyone joined registers each, the others find it
/// registered. So whoever is missing, each participant gives up after [`START_TIMEOUT`] naming
/// it, rather than wait for a registration that never comes. Values sent in `initial` are in the deliveries of the next
/// [`Federate::take_deliveries`]. The FMI adapter uses the same protocol, so FMUs and hosted
/// federates start together. With an empty `expected` nothing waits and `initial` still runs.
///
/// # Errors
///
/// [`Error::Protocol`] naming a federate that did not join within [`START_TIMEOUT`]; any error
/// of the synchronization calls or of `initial`.
pub fn start_barrier(
    federate: &mut Federate,
    expected: &[&str],
    initial: impl FnOnce(&mut Federate) -> Result<()>,
) -> Result<()> {
    start_barrier_within(federate, expected, START_TIMEOUT, initial)
}

/// [`start_barrier`], waiting at most `timeout` for the expected federates to join.
///
/// # Errors
///
/// As [`start_barrier`], after `timeout`.
pub fn start_barrier_within(
    federate: &mut Federate,
    expected: &[&str],
    timeout: Duration,
    initial: impl FnOnce(&mut Federate) -> Result<()>,
) -> Result<()> {
    start_barrier_until(
        federate,
        expected,
        timeout,
        &AtomicBool::new(false),
        initial,
    )
}

/// [`start_barrier_within`], giving up as soon as `stop` is set while it waits for the
/// expected federates to join (a Ctrl-C should not wait out the timeout for a partner that
/// never starts). Once everyone has joined, the barrier is passed: that wait is short.
///
/// # Errors
///
/// As [`start_barrier_within`]; [`Error::Protocol`] saying so when stopped.
pub fn start_barrier_until(
    federate: &mut Federate,
    expected: &[&str],
    timeout: Duration,
    stop: &AtomicBool,
    initial: impl FnOnce(&mut Federate) -> Result<()>,
) -> Result<()> {
    if expected.is_empty() {
        return initial(federate);
    }
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    expected.dedup();
    let deadline = Instant::now() + timeout;
    register(federate, "ready", &expected, deadline, stop)?;
    register(federate, "start", &expected, deadline, stop)?;
    // Registered by this federate or another, each point is announced at once to every
    // member; one that does not come (a leftover point of the same name without this federate,
    // or a registrar that cannot register) would otherwise be waited for forever.
    for label in ["ready", "start"] {
        while !federate.sync_point_announced(label)? {
            stopped(federate, stop)?;
            if Instant::now() >= deadline {
                return Err(Error::Protocol(format!(
                    "the start barrier's `{label}` point was not announced to `{}` within {} s: \
                     a point of that name exists without it, or no participant may register it",
                    federate.name(),
                    timeout.as_secs()
                )));
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
    tracing::info!(federate = %federate.name(), expected = ?expected, "waiting at the start barrier");
    federate.synchronize("ready")?;
    initial(federate)?;
    federate.synchronize("start")
}

/// Registers a synchronization point, retrying while an expected federate has not joined. One
/// that another participant registered first, or that the policy lets only others register,
/// is theirs to register: this one then only waits for it.
fn register(
    federate: &mut Federate,
    label: &str,
    expected: &[&str],
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<()> {
    let started = Instant::now();
    let mut next_warning = started + WAIT_WARNING;
    loop {
        stopped(federate, stop)?;
        match federate.register_sync_point(label, expected) {
            Err(Error::Refused {
                source: RtiError::SyncPointExists(_) | RtiError::Denied { .. },
                ..
            }) => return Ok(()),
            Err(Error::Refused {
                source: RtiError::FederateNotFound(name),
                ..
            }) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(Error::Protocol(format!(
                        "`{name}` did not join within {} s; start it or remove it from the \
                         expected federates",
                        now.duration_since(started).as_secs()
                    )));
                }
                if now >= next_warning {
                    tracing::warn!(
                        federate = %federate.name(),
                        missing = %name,
                        "still waiting at the start barrier"
                    );
                    next_warning = now + WAIT_WARNING;
                }
                thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn stopped(federate: &Federate, stop: &AtomicBool) -> Result<()> {
    if stop.load(Ordering::SeqCst) {
        return Err(Error::Protocol(format!(
            "`{}` stopped on request at the start barrier",
            federate.name()
        )));
    }
    Ok(())
}

/// An SDK error with the name of the federate it happened to, for runners that host many.
#[derive(Debug, thiserror::Error)]
#[error("federate `{federate}`: {source}")]
pub struct HostedError {
    /// The federate.
    pub federate: String,
    /// What went wrong.
    #[source]
    pub source: Error,
}

/// A lock-step federate, the FMI adapter's timing for code: time-regulating with a lookahead
/// of one communication step `h` and time-constrained. Granted at `T`, it reads the others'
/// values at `T` (delivered with the grant), computes, publishes its outputs stamped `T + h`
/// (exactly its bound) and requests `T + h`. FMU adapters and these federates therefore couple
/// in Jacobi fashion and start together through [`start_barrier`].
#[derive(Debug)]
pub struct LockStep {
    federate: Federate,
    name: String,
    h: SimDuration,
    steps: u64,
}

impl LockStep {
    /// Joins the federation of `hosted` (creating it, if missing, with the run's model or else
    /// `model`: see [`Hosted::model_or`]), then publishes and subscribes the attributes named
    /// `Class.attribute`.
    ///
    /// # Errors
    ///
    /// [`HostedError`] naming the federate, with the SDK's error.
    pub fn join(
        hosted: &Hosted,
        model: ObjectModel,
        h: SimDuration,
        publish: &[&str],
        subscribe: &[&str],
    ) -> std::result::Result<Self, HostedError> {
        let joined = crate::Federate::builder(&hosted.federation, &hosted.name)
            .create_federation(hosted.model_or(model))
            .time_regulating(h)
            .time_constrained()
            .join_blocking(hosted.connector.clone());
        let federate = joined.map_err(|source| HostedError {
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
            if !publish.is_empty() {
                lockstep.federate.publish(publish)?;
            }
            if !subscribe.is_empty() {
                lockstep.federate.subscribe(subscribe)?;
            }
            Ok(())
        })();
        if let Err(error) = declared {
            // Leave rather than be dropped and counted lost (see `FederateBuilder::join`).
            let name = lockstep.name.clone();
            if let Err(resign) = lockstep.federate.resign() {
                tracing::debug!(%resign, "resigning after a refused declaration");
            }
            return Err(HostedError {
                federate: name,
                source: error,
            });
        }
        Ok(lockstep)
    }

    /// This federate's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The communication step, which is also the lookahead.
    pub fn h(&self) -> SimDuration {
        self.h
    }

    /// Steps from the join time to the stop time (the last one may end past it).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Logical time.
    pub fn time(&self) -> SimTime {
        self.federate.time()
    }

    /// The federate underneath, for calls this type does not wrap.
    pub fn federate(&mut self) -> &mut Federate {
        &mut self.federate
    }

    /// Registers an object of `class` named `name`.
    ///
    /// # Errors
    ///
    /// [`HostedError`] with the SDK's refusal.
    pub fn register(
        &mut self,
        class: &str,
        name: &str,
    ) -> std::result::Result<ObjectInstance, HostedError> {
        let registered = self.federate.register_object(class, Some(name));
        self.check(registered)
    }

    /// Waits at [`start_barrier`] for every federate in `expect`, sends `initial` (object and
    /// values) untimestamped in between, and returns what the others sent.
    ///
    /// # Errors
    ///
    /// [`HostedError`] from the barrier or the sends.
    pub fn start(
        &mut self,
        expect: &[String],
        initial: &[(&ObjectInstance, Values)],
    ) -> std::result::Result<Vec<Delivery>, HostedError> {
        let expected: Vec<&str> = expect.iter().map(String::as_str).collect();
        let started = start_barrier(&mut self.federate, &expected, |federate| {
            for (object, values) in initial {
                federate.update(object, values.clone(), None)?;
            }
            Ok(())
        });
        self.check(started)?;
        let deliveries = self.federate.take_deliveries();
        self.check(deliveries)
    }

    /// Sends `values` of `object` stamped `T + h`, the bound.
    ///
    /// # Errors
    ///
    /// [`HostedError`] with the SDK's refusal.
    pub fn publish(
        &mut self,
        object: &ObjectInstance,
        values: Values,
    ) -> std::result::Result<(), HostedError> {
        let sent = self
            .federate
            .time()
            .checked_add(self.h)
            .map_err(Error::from)
            .and_then(|at| self.federate.update(object, values, Some(at)));
        self.check(sent)
    }

    /// Requests `T + h` and returns what was delivered with the grant.
    ///
    /// # Errors
    ///
    /// [`HostedError`], for example when the federation halted.
    pub fn step(&mut self) -> std::result::Result<Vec<Delivery>, HostedError> {
        let granted = self.federate.step(self.h);
        self.check(granted).map(|grant| grant.deliveries)
    }

    /// Names an SDK error after this federate.
    ///
    /// # Errors
    ///
    /// `result`'s error, as a [`HostedError`].
    pub fn check<T>(&self, result: Result<T>) -> std::result::Result<T, HostedError> {
        result.map_err(|source| HostedError {
            federate: self.name.clone(),
            source,
        })
    }

    /// Runs `body` and resigns afterwards, also after a failure, so that the others' time is
    /// not held back by a federate that stopped.
    ///
    /// # Errors
    ///
    /// `body`'s error, or the resignation's.
    pub fn run<R, E: From<HostedError> + std::fmt::Display>(
        mut self,
        body: impl FnOnce(&mut Self) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        match body(&mut self) {
            Ok(result) => {
                let resigned = self.federate.resign();
                let name = self.name;
                resigned.map_err(|source| HostedError {
                    federate: name,
                    source,
                })?;
                Ok(result)
            }
            Err(error) => {
                tracing::warn!(federate = %self.name, "failed, resigning: {error}");
                let _ = self.federate.resign();
                Err(error)
            }
        }
    }
}

/// The `f64` attribute `attribute` of the reflections of `class` in `deliveries`, with each
/// object's name, in delivery order. With `timestamped`, only timestamped reflections count,
/// as in the FMI adapter: a late initial value must not overwrite a newer one.
///
/// # Errors
///
/// A value that is not an `f64`.
pub fn reflected(
    deliveries: &[Delivery],
    class: &str,
    attribute: &str,
    timestamped: bool,
) -> Result<Vec<(String, f64)>> {
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
