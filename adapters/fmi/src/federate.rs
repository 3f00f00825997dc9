//! One FMU as a lock-step federate.
//!
//! # Timing
//!
//! The federate is time-regulating with a lookahead of one communication step `h` and
//! time-constrained. Coupled FMUs exchange values in Jacobi fashion: granted at `T`, each one
//!
//! 1. writes the latest reflected attributes into its FMU inputs: the others' outputs at `T`,
//!    delivered with the grant to `T`;
//! 2. steps the FMU over `[T, T + h]`;
//! 3. publishes its outputs at `T + h`, stamped `T + h` (exactly its bound `T + L`);
//! 4. requests `T + h` (TAR); the grant to `T + h` delivers the others' outputs at `T + h`.
//!
//! Outputs at the start time cannot be stamped (the bound is already `start + h`), so with a
//! start barrier (`expect`) the adapters exchange them untimestamped between two
//! synchronization points: `ready` (everyone joined and subscribed) and `start` (everyone sent
//! their initial outputs). Each FMU therefore starts from the others' actual initial outputs, and
//! the only error the coupling adds is the Jacobi hold of the inputs over each step. Without a
//! barrier the inputs start from their configured `start` values.
//!
//! # Status handling
//!
//! * `fmi2Discard`: when the FMU declares `canHandleVariableCommunicationStepSize` and
//!   `canGetAndSetFMUstate`, its state is saved before every step; a discarded step is undone
//!   and the same interval retried as two half steps, recursively, down to the configured
//!   minimum step. Otherwise the run ends with [`AdapterError::Discarded`]. Sub-steps do not
//!   change what is published: outputs still go out at `T + h`.
//! * FMU terminated (`fmi2Terminated`): the federate resigns cleanly and
//!   [`RunSummary::terminated_early`] says when.
//! * `fmi2Error`, `fmi2Fatal`: the federate resigns (so that the others' GALT moves on) and the
//!   run ends with [`AdapterError::Fmu`], quoting the FMU's message.

use std::sync::atomic::{AtomicBool, Ordering};

use federate_sdk::{
    Connector, Delivery, Error as FederateError, Federate, ObjectInstance, Order, SimDuration,
    SimTime, TlsFiles, Values, blocking, hosted,
};
use fedtwin_core::step::{self, Coupled, Dynamics, StepError};
use tracing::{info, warn};

use crate::config::{
    AdapterConfig, ConfigError, Publication, Resolved, Signals, Subscription, unfit,
};
use crate::model_description::{ValueType, VariableKind};
use crate::{FmiError, Fmu, FmuState, Instance, StepOutcome, to_sim_time};

/// Why an adapter run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The step controller refused the step (the message has the numbers).
    #[error("{0}")]
    Unstable(StepError),
    /// The FMU failed to load, initialize or step; the message quotes the FMU.
    #[error("FMU `{instance}`: {source}")]
    Fmu {
        /// The instance (federate) name.
        instance: String,
        /// The FMI error.
        #[source]
        source: Box<FmiError>,
    },
    /// The FMU discarded a step and the adapter cannot retry it.
    #[error("FMU `{instance}` discarded the step from {time} over {step}: {reason}")]
    Discarded {
        /// The instance (federate) name.
        instance: String,
        /// Start of the discarded step.
        time: SimTime,
        /// Its length.
        step: SimDuration,
        /// Why it cannot be retried, and what to change.
        reason: String,
    },
    /// A reflected attribute value does not fit the FMU input it is mapped to (1.5 for an
    /// Integer input, 2 for a Boolean one): the adapter does not round.
    #[error(
        "FMU `{instance}`: attribute `{attribute}` = {value} at {time} cannot go into its \
         {value_type} input `{variable}`, which takes {takes}"
    )]
    UnfitInput {
        /// The instance (federate) name.
        instance: String,
        /// The subscribed attribute, `Class.attribute`.
        attribute: String,
        /// The value it reflected.
        value: f64,
        /// The federation time of the reflection's grant.
        time: SimTime,
        /// The FMU input.
        variable: String,
        /// The input's type.
        value_type: ValueType,
        /// What the input takes.
        takes: Box<str>,
    },
    /// The run was asked to stop ([`run_until`]) before its stop time; the FMU was terminated
    /// and the federate resigned.
    #[error("FMU `{instance}` stopped on request at {time}, before its stop time")]
    Interrupted {
        /// The instance (federate) name.
        instance: String,
        /// The FMU's time when it stopped.
        time: SimTime,
    },
    /// The federation refused or lost the federate.
    #[error("federate `{instance}`: {source}")]
    Federation {
        /// The federate name.
        instance: String,
        /// The SDK's error.
        #[source]
        source: FederateError,
    },
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunSummary {
    /// The communication step.
    pub step: SimDuration,
    /// Communication steps completed.
    pub steps: u64,
    /// The FMU's time when the run ended.
    pub final_time: SimTime,
    /// When the FMU stopped the simulation before the stop time.
    pub terminated_early: Option<SimTime>,
    /// The published outputs at the end, by variable name.
    pub outputs: Vec<(String, f64)>,
}

/// One line: steps, how the run ended and the final outputs.
impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} steps of {}, ", self.steps, self.step)?;
        match self.terminated_early {
            Some(at) => write!(f, "terminated by the FMU at {at};")?,
            None => write!(f, "reached {};", self.final_time)?,
        }
        for (i, (name, value)) in self.outputs.iter().enumerate() {
            let separator = if i == 0 { " " } else { ", " };
            write!(f, "{separator}{name} = {value:.6e}")?;
        }
        Ok(())
    }
}

impl AdapterConfig {
    /// The connector for a daemon (`rti` set), or `None` for an embedded RTI.
    ///
    /// # Errors
    ///
    /// [`AdapterError::Federation`] for an address that is not `quic://host:port`.
    pub fn daemon_connector(&self) -> Result<Option<Connector>, AdapterError> {
        let Some(rti) = &self.rti else {
            return Ok(None);
        };
        Connector::quic(rti, TlsFiles::in_dir(&self.certs, &self.instance))
            .map(Some)
            .map_err(|source| AdapterError::Federation {
                instance: self.instance.clone(),
                source,
            })
    }

    /// The communication step: `[step] size` checked against the stability bound, or the
    /// largest stable step the controller chooses, over this FMU's declared dynamics and those
    /// of the federates coupled with it ([`AdapterConfig::coupled`]). With
    /// `override_stability` an unstable step is logged and kept.
    ///
    /// The check uses no coupling delay: in lock-step the exchange delay is the step itself,
    /// which the rule already counts.
    ///
    /// # Errors
    ///
    /// [`AdapterError::Unstable`] with the controller's message.
    pub fn communication_step(&self) -> Result<SimDuration, AdapterError> {
        self.communication_step_with(None)
    }

    /// [`AdapterConfig::communication_step`] counting also `also`, a coupled federate's name
    /// and declared `|lambda|` (as the RTI reports the fastest of them).
    ///
    /// # Errors
    ///
    /// As [`AdapterConfig::communication_step`].
    pub fn communication_step_with(
        &self,
        also: Option<(&str, f64)>,
    ) -> Result<SimDuration, AdapterError> {
        let dynamics = self
            .fastest_eigenvalue
            .map(Dynamics::from_eigenvalue)
            .transpose()
            .map_err(AdapterError::Unstable)?;
        // With no dynamics declared anywhere the controller knows no bound: the FMU's own
        // suggestion then beats the blind configured maximum.
        // Within the configured range: a smaller one would break the lookahead the adapter
        // joins with when it chooses at the start barrier.
        let suggested = self
            .suggested_step
            .filter(|_| dynamics.is_none() && self.coupled.is_empty() && also.is_none())
            .map(|s| {
                s.clamp(
                    self.step.min_step,
                    self.step.max_step.max(self.step.min_step),
                )
            });
        let mut coupled = vec![Coupled {
            name: &self.instance,
            dynamics,
            max_step: suggested,
        }];
        let others = self
            .coupled
            .iter()
            .map(|(name, lambda)| (name.as_str(), *lambda))
            .chain(also);
        for (name, lambda) in others {
            coupled.push(Coupled {
                name,
                dynamics: Some(Dynamics::from_eigenvalue(lambda).map_err(AdapterError::Unstable)?),
                max_step: None,
            });
        }
        let Some(size) = self.step_size else {
            let choice = step::choose_step(&self.step, &coupled, SimDuration::ZERO)
                .map_err(AdapterError::Unstable)?;
            if let Some(unstable) = choice.unstable {
                warn!(instance = %self.instance, "override_stability: {unstable}");
            }
            return Ok(choice.step);
        };
        self.step.validate().map_err(AdapterError::Unstable)?;
        match step::check_step(self.step.alpha, &coupled, size, SimDuration::ZERO) {
            Ok(()) => Ok(size),
            Err(unstable) if self.step.override_stability => {
                warn!(instance = %self.instance, "override_stability: {unstable}");
                Ok(size)
            }
            Err(unstable) => Err(AdapterError::Unstable(unstable)),
        }
    }
}

/// Runs the FMU of `config` as a lock-step federate through `connector` until its stop time.
///
/// # Errors
///
/// See [`AdapterError`]; after joining, the federate resigns before any error is returned.
pub fn run(config: &AdapterConfig, connector: Connector) -> Result<RunSummary, AdapterError> {
    run_with(config, connector, |_, _| {})
}

/// As [`run`], calling `on_outputs(t, outputs)` with the published outputs (in the order of
/// [`AdapterConfig::publish`]) at the start time and after every step.
///
/// # Errors
///
/// As [`run`].
pub fn run_with(
    config: &AdapterConfig,
    connector: Connector,
    on_outputs: impl FnMut(SimTime, &[f64]),
) -> Result<RunSummary, AdapterError> {
    run_until(config, connector, on_outputs, &AtomicBool::new(false))
}

/// As [`run_with`], stopping before the next step once `stop` is set: the FMU is terminated
/// (`fmi2Terminate`, so that it can finish its files), the federate resigns and the run ends
/// with [`AdapterError::Interrupted`]. A step waiting for its grant finishes first.
///
/// # Errors
///
/// As [`run`], and [`AdapterError::Interrupted`].
pub fn run_until(
    config: &AdapterConfig,
    connector: Connector,
    on_outputs: impl FnMut(SimTime, &[f64]),
    stop: &AtomicBool,
) -> Result<RunSummary, AdapterError> {
    // The step is checked here, by the adapter: the RTI's event-mode check counts the
    // lookahead as a coupling delay, which in lock-step is the same exchange as the step and
    // would be counted twice. The dynamics go to the RTI as lock-step ones, for the partners
    // to ask for (see `LockStep::check_coupled_step`).
    let fmu = Fmu::open(&config.fmu).map_err(|source| AdapterError::Fmu {
        instance: config.instance.clone(),
        source: Box::new(source),
    })?;
    let completed = config.with_model_defaults(fmu.description())?;
    let config = &completed;
    let h = config.communication_step()?;
    // With a start barrier and the step left to the controller, the step is chosen at the
    // barrier, once the partners' declared dynamics are known, and the FMU initialized with
    // it there: the federate joins with the smallest lookahead and raises it to the step.
    let deferred = config.step_size.is_none() && !config.expect.is_empty();
    let federation_error = |source| AdapterError::Federation {
        instance: config.instance.clone(),
        source,
    };
    let mut builder = Federate::builder(&config.federation, &config.instance)
        .create_federation(config.object_model())
        .time_regulating(if deferred { config.step.min_step } else { h })
        .time_constrained();
    if let Some(lambda) = config.fastest_eigenvalue {
        builder = builder.lock_step_dynamics(lambda);
    }
    let (mut adapter, mut federate, objects, started) = if deferred {
        let mut federate = builder
            .join_blocking(connector.clone())
            .map_err(federation_error)?;
        match start_at_barrier(&mut federate, config, fmu, stop) {
            Ok((adapter, objects, outputs)) => (adapter, federate, objects, Some(outputs)),
            Err(error) => {
                warn!(instance = %config.instance, "start failed, resigning: {error}");
                let _ = federate.resign();
                return Err(error);
            }
        }
    } else {
        let adapter = Adapter::start(config, h, fmu)?;
        let federate = builder
            // An embedded RTI lives as long as a handle to it: keep `connector` until the end.
            .join_blocking(connector.clone())
            .map_err(federation_error)?;
        (adapter, federate, Vec::new(), None)
    };
    info!(
        instance = %config.instance,
        step = %adapter.h,
        start = %config.start,
        stop = %config.stop,
        fmu = %config.fmu.display(),
        "FMU ready"
    );
    let span = config.stop.ticks().abs_diff(config.start.ticks());
    if span % adapter.h.ticks().max(1) != 0 {
        // Lock-step keeps every step the same length (the lookahead promise is one step), so
        // the run ends at the first whole step past the stop time.
        warn!(
            instance = %config.instance,
            step = %adapter.h,
            stop = %config.stop,
            steps = step_count(config.start, config.stop, adapter.h),
            "the stop time is not a whole number of steps from the start; the run ends at the \
             first step past it"
        );
    }
    let deliveries = if started.is_some() {
        federate.take_deliveries().map_err(federation_error)?
    } else {
        Vec::new()
    };
    let mut lockstep = LockStep {
        federate,
        objects,
        adapter: &mut adapter,
        started,
    };
    if let Err(error) = lockstep.reflect(&deliveries, false) {
        let _ = lockstep.federate.resign();
        return Err(error);
    }
    match lockstep.run(on_outputs, stop) {
        Ok(summary) => {
            lockstep
                .federate
                .resign()
                .map_err(|source| adapter.federation_error(source))?;
            info!(
                instance = %config.instance,
                steps = summary.steps,
                time = %summary.final_time,
                "run finished"
            );
            drop(connector);
            Ok(summary)
        }
        Err(error) => {
            if matches!(error, AdapterError::Interrupted { .. }) {
                info!(instance = %config.instance, "{error}; resigning");
            } else {
                warn!(instance = %config.instance, "run failed, resigning: {error}");
            }
            let _ = lockstep.federate.resign();
            drop(connector);
            Err(error)
        }
    }
}

/// The FMU side: the instance and the resolved mapping.
struct Adapter<'a> {
    config: &'a AdapterConfig,
    _fmu: Fmu,
    instance: Instance,
    resolved: Resolved,
    h: SimDuration,
    /// Current input values, in the order of the subscriptions.
    inputs: Vec<f64>,
    /// The state saved before each step, when discarded steps can be retried.
    saved: Option<FmuState>,
    /// Whether discarded steps can be retried at all (and why not).
    retry: Result<(), String>,
}

/// The federate side of a run.
struct LockStep<'a, 'c> {
    federate: blocking::Federate,
    /// One registered object per published class, with its publications' indices.
    objects: Objects,
    adapter: &'a mut Adapter<'c>,
    /// The outputs at the start time, when the start barrier is already behind
    /// ([`start_at_barrier`]).
    started: Option<Vec<f64>>,
}

/// How one communication step ended.
enum Advance {
    Completed,
    Terminated(SimTime),
}

impl<'c> Adapter<'c> {
    /// Instantiates and initializes the opened FMU.
    fn start(config: &'c AdapterConfig, h: SimDuration, fmu: Fmu) -> Result<Self, AdapterError> {
        let fmi = |source| AdapterError::Fmu {
            instance: config.instance.clone(),
            source: Box::new(source),
        };
        let resolved = config.resolve(fmu.description())?;
        let capabilities = &fmu.description().co_simulation;
        let retry = if !capabilities.can_handle_variable_communication_step_size {
            Err(
                "it does not declare canHandleVariableCommunicationStepSize, so the adapter \
                 cannot retry with shorter steps; take a shorter [step] size"
                    .to_owned(),
            )
        } else if !capabilities.can_get_and_set_fmu_state {
            Err(
                "it does not declare canGetAndSetFMUstate, so the adapter cannot undo the \
                 discarded step to retry it; take a shorter [step] size"
                    .to_owned(),
            )
        } else {
            Ok(())
        };
        let mut instance =
            Instance::new(&fmu, &config.instance, config.fmu_logging).map_err(fmi)?;

        let (references, values) = &resolved.real_parameters;
        if !references.is_empty() {
            instance.set_real(references, values).map_err(fmi)?;
        }
        let (references, values) = &resolved.integer_parameters;
        if !references.is_empty() {
            instance.set_integer(references, values).map_err(fmi)?;
        }
        let (references, values) = &resolved.boolean_parameters;
        if !references.is_empty() {
            instance.set_boolean(references, values).map_err(fmi)?;
        }
        let (references, values) = &resolved.string_parameters;
        if !references.is_empty() {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            instance.set_string(references, &values).map_err(fmi)?;
        }
        // Inputs start from the configured value, else from the model description's.
        let mut inputs = Vec::with_capacity(resolved.inputs.references.len());
        for subscription in &config.subscribe {
            let described =
                fmu.description()
                    .variable(&subscription.variable)
                    .and_then(|v| match v.kind {
                        VariableKind::Real { start, .. } => start,
                        VariableKind::Integer { start } | VariableKind::Enumeration { start } => {
                            start.map(f64::from)
                        }
                        VariableKind::Boolean { start } => start.map(|b| f64::from(u8::from(b))),
                        VariableKind::String { .. } => None,
                    });
            inputs.push(subscription.start.or(described).unwrap_or(0.0));
        }
        if !inputs.is_empty() {
            write_signals(&mut instance, &resolved.inputs, &inputs).map_err(fmi)?;
        }

        let steps = step_count(config.start, config.stop, h);
        let stop = config
            .start
            .checked_add(SimDuration::from_ticks(h.ticks().saturating_mul(steps)))
            .unwrap_or(config.stop);
        instance
            .setup_experiment(
                config.tolerance,
                config.start.as_secs_f64(),
                Some(stop.as_secs_f64()),
            )
            .map_err(fmi)?;
        instance.enter_initialization_mode().map_err(fmi)?;
        instance.exit_initialization_mode().map_err(fmi)?;
        let saved = match retry {
            Ok(()) => Some(instance.get_state().map_err(fmi)?),
            Err(_) => None,
        };
        Ok(Self {
            config,
            _fmu: fmu,
            instance,
            resolved,
            h,
            inputs,
            saved,
            retry,
        })
    }

    fn fmi_error(&self, source: FmiError) -> AdapterError {
        AdapterError::Fmu {
            instance: self.config.instance.clone(),
            source: Box::new(source),
        }
    }

    /// Ends the FMU on a stop request (`fmi2Terminate`, so that it can finish its files): the
    /// error the run then ends with, stopped at FMU time `time`.
    fn interrupt(&mut self, time: SimTime) -> AdapterError {
        match self.instance.terminate() {
            Ok(()) => AdapterError::Interrupted {
                instance: self.config.instance.clone(),
                time,
            },
            Err(error) => self.fmi_error(error),
        }
    }

    fn federation_error(&self, source: FederateError) -> AdapterError {
        AdapterError::Federation {
            instance: self.config.instance.clone(),
            source,
        }
    }

    fn outputs(&mut self) -> Result<Vec<f64>, AdapterError> {
        read_signals(&mut self.instance, &self.resolved.outputs).map_err(|e| self.fmi_error(e))
    }

    /// Steps the FMU over `[time, time + step]`, retrying a discarded step in halves.
    fn advance(&mut self, time: SimTime, step: SimDuration) -> Result<Advance, AdapterError> {
        if let Some(saved) = &mut self.saved {
            self.instance
                .update_state(saved)
                .map_err(|source| AdapterError::Fmu {
                    instance: self.config.instance.clone(),
                    source: Box::new(source),
                })?;
        }
        let outcome = self
            .instance
            .do_step(time.as_secs_f64(), step.as_secs_f64())
            .map_err(|e| self.fmi_error(e))?;
        match outcome {
            StepOutcome::Completed => Ok(Advance::Completed),
            StepOutcome::Terminated => {
                let end = time.saturating_add(step);
                let said = self.instance.last_successful_time();
                let reached = said
                    .as_ref()
                    .ok()
                    .and_then(|t| to_sim_time(*t).ok())
                    .unwrap_or(time);
                // An FMU's own report; one outside the step it was given cannot be true, and
                // would move the federate's time where the grant never allowed it.
                let clamped = reached.clamp(time, end);
                if clamped != reached || said.is_err() {
                    warn!(
                        instance = %self.config.instance,
                        said = ?said,
                        %time,
                        %end,
                        "the FMU's last successful time is not within its last step; taking {clamped}"
                    );
                }
                Ok(Advance::Terminated(clamped))
            }
            StepOutcome::Discarded => self.retry(time, step),
        }
    }

    /// Undoes a discarded step and takes it as two half steps.
    fn retry(&mut self, time: SimTime, step: SimDuration) -> Result<Advance, AdapterError> {
        let said = self
            .instance
            .step_message()
            .map(|message| format!(" (the FMU said: {message})"))
            .unwrap_or_default();
        let discarded = |reason: String| AdapterError::Discarded {
            instance: self.config.instance.clone(),
            time,
            step,
            reason: format!("{reason}{said}"),
        };
        if let Err(reason) = &self.retry {
            return Err(discarded(reason.clone()));
        }
        let half = SimDuration::from_ticks(step.ticks() / 2);
        if half < self.config.step.min_step {
            return Err(discarded(format!(
                "half of it is below the minimum step {}; lower [step] min or the step size",
                self.config.step.min_step
            )));
        }
        warn!(
            instance = %self.config.instance,
            %time,
            %step,
            "FMU discarded the step{said}; retrying in two halves"
        );
        if let Some(saved) = &self.saved {
            self.instance
                .set_state(saved)
                .map_err(|source| AdapterError::Fmu {
                    instance: self.config.instance.clone(),
                    source: Box::new(source),
                })?;
        }
        let middle = time.saturating_add(half);
        if let Advance::Terminated(at) = self.advance(time, half)? {
            return Ok(Advance::Terminated(at));
        }
        let rest = SimDuration::from_ticks(step.ticks() - half.ticks());
        self.advance(middle, rest)
    }
}

impl LockStep<'_, '_> {
    fn run(
        &mut self,
        mut on_outputs: impl FnMut(SimTime, &[f64]),
        stop: &AtomicBool,
    ) -> Result<RunSummary, AdapterError> {
        let config = self.adapter.config;
        let h = self.adapter.h;

        // Federation time `T` is FMU time `start + (T - joined)`.
        let joined = self.federate.time();
        let fmu_time = |t: SimTime| {
            config
                .start
                .saturating_add(SimDuration::from_ticks(t.ticks().abs_diff(joined.ticks())))
        };
        let mut outputs = match self.started.take() {
            Some(outputs) => {
                on_outputs(config.start, &outputs);
                outputs
            }
            None => {
                self.declare()?;
                let outputs = self.adapter.outputs()?;
                on_outputs(config.start, &outputs);
                if !config.expect.is_empty() {
                    self.start_barrier(&outputs, stop)?;
                }
                // A step chosen at the barrier counted the partners already.
                self.check_coupled_step(h)?;
                outputs
            }
        };

        let total = step_count(config.start, config.stop, h);
        let mut steps = 0;
        let mut terminated_early = None;
        while steps < total {
            let now = self.federate.time();
            if stop.load(Ordering::Relaxed) {
                return Err(self.adapter.interrupt(fmu_time(now)));
            }
            if !self.adapter.inputs.is_empty() {
                let adapter = &mut *self.adapter;
                write_signals(
                    &mut adapter.instance,
                    &adapter.resolved.inputs,
                    &adapter.inputs,
                )
                .map_err(|e| adapter.fmi_error(e))?;
            }
            if let Advance::Terminated(at) = self.adapter.advance(fmu_time(now), h)? {
                info!(instance = %config.instance, time = %at, "FMU terminated the simulation");
                terminated_early = Some(at);
                if let Ok(last) = self.adapter.outputs() {
                    outputs = last;
                    // The partners hold these from the end of this step on, as after any
                    // other step: stamped `now + h`, within the lookahead.
                    let next = now
                        .checked_add(h)
                        .map_err(|e| self.adapter.federation_error(e.into()))?;
                    on_outputs(at, &outputs);
                    self.publish(&outputs, Some(next))?;
                }
                break;
            }
            steps += 1;
            outputs = self.adapter.outputs()?;
            let next = now
                .checked_add(h)
                .map_err(|e| self.adapter.federation_error(e.into()))?;
            on_outputs(fmu_time(next), &outputs);
            self.publish(&outputs, Some(next))?;
            let grant = self
                .federate
                .step(h)
                .map_err(|e| self.adapter.federation_error(e))?;
            if stop.load(Ordering::Relaxed) {
                // The run ends before the next step: what the grant brings is not used, and
                // partners leaving are the interrupt's doing, not worth a warning.
                continue;
            }
            self.reflect(&grant.deliveries, true)?;
        }

        // fmi2Terminate lets the FMU finish its work (flush files, close connections) before
        // it is freed.
        let adapter = &mut *self.adapter;
        adapter
            .instance
            .terminate()
            .map_err(|e| adapter.fmi_error(e))?;
        let final_time = terminated_early.unwrap_or_else(|| fmu_time(self.federate.time()));
        Ok(RunSummary {
            step: h,
            steps,
            final_time,
            terminated_early,
            outputs: config
                .publish
                .iter()
                .map(|p| p.variable.clone())
                .zip(outputs)
                .collect(),
        })
    }

    /// Checks the step against the fastest dynamics declared among the federates coupled with
    /// this one, as the RTI knows them once they have joined and subscribed (after the start
    /// barrier): an adapter started on its own knows only its own file.
    fn check_coupled_step(&mut self, h: SimDuration) -> Result<(), AdapterError> {
        let config = self.adapter.config;
        let fastest = self
            .federate
            .coupled_dynamics()
            .map_err(|e| self.adapter.federation_error(e))?;
        let Some((name, lambda)) = fastest else {
            return Ok(());
        };
        let dynamics = Dynamics::from_eigenvalue(lambda).map_err(AdapterError::Unstable)?;
        let coupled = [Coupled {
            name: &name,
            dynamics: Some(dynamics),
            max_step: None,
        }];
        match step::check_step(config.step.alpha, &coupled, h, SimDuration::ZERO) {
            Ok(()) => Ok(()),
            Err(unstable) if config.step.override_stability => {
                warn!(instance = %config.instance, "override_stability: {unstable}");
                Ok(())
            }
            Err(unstable) => Err(AdapterError::Unstable(unstable)),
        }
    }

    /// Publishes, subscribes and registers one object per published class.
    fn declare(&mut self) -> Result<(), AdapterError> {
        self.objects = declare(&mut self.federate, self.adapter.config)
            .map_err(|e| self.adapter.federation_error(e))?;
        Ok(())
    }

    /// Waits for the expected federates, exchanging the outputs at the start time.
    fn start_barrier(&mut self, outputs: &[f64], stop: &AtomicBool) -> Result<(), AdapterError> {
        let config = self.adapter.config;
        let expected = as_str(&config.expect);
        let objects = &self.objects;
        let passed = hosted::start_barrier_until(
            &mut self.federate,
            &expected,
            hosted::START_TIMEOUT,
            stop,
            |federate| publish(federate, config, objects, outputs, None),
        );
        if passed.is_err() && stop.load(Ordering::SeqCst) {
            // Initialized already: terminated, it may finish its files as after a step.
            return Err(self.adapter.interrupt(config.start));
        }
        passed.map_err(|e| self.adapter.federation_error(e))?;
        let deliveries = self
            .federate
            .take_deliveries()
            .map_err(|e| self.adapter.federation_error(e))?;
        self.reflect(&deliveries, false)
    }

    /// Sends the outputs as attribute updates.
    fn publish(&mut self, outputs: &[f64], at: Option<SimTime>) -> Result<(), AdapterError> {
        publish(
            &mut self.federate,
            self.adapter.config,
            &self.objects,
            outputs,
            at,
        )
        .map_err(|e| self.adapter.federation_error(e))
    }

    /// Takes subscribed values from reflections, in delivery order (the last one wins).
    /// While stepping only timestamped reflections count: a late initial value must not
    /// overwrite a newer one.
    fn reflect(&mut self, deliveries: &[Delivery], timestamped: bool) -> Result<(), AdapterError> {
        let config = self.adapter.config;
        for delivery in deliveries {
            let reflection = match delivery {
                Delivery::Reflection(reflection) => reflection,
                Delivery::Removed { object, sender, .. }
                    if config.subscribe.iter().any(|s| *s.class == *object.class) =>
                {
                    // Lock-step goes on (the RTI resigned or removed it); say that the inputs
                    // it fed now hold their last values rather than let that pass unseen.
                    warn!(
                        instance = %config.instance,
                        object = %object.name,
                        by = %sender,
                        "an object this FMU's inputs come from is gone; they hold their last values"
                    );
                    continue;
                }
                _ => continue,
            };
            if timestamped && reflection.order != Order::Timestamp {
                continue;
            }
            for (i, subscription) in config.subscribe.iter().enumerate() {
                if *reflection.object.class != *subscription.class {
                    continue;
                }
                let value: Option<f64> = reflection
                    .values
                    .try_get(&subscription.attribute)
                    .map_err(|e| self.adapter.federation_error(e))?;
                let Some(value) = value else {
                    continue;
                };
                let value_type = self.adapter.resolved.inputs.types[i];
                let range = self.adapter.resolved.inputs.ranges[i];
                // A partner's rounding (-1e-17 for a min of 0) is no reason to stop a run: a
                // Real value that far from a bound takes the bound.
                let value = if value_type == ValueType::Real {
                    range.snap(value)
                } else {
                    value
                };
                let takes = unfit(value_type, value)
                    .map(str::to_owned)
                    .or_else(|| (!range.contains(value)).then(|| range.describe()).flatten());
                if let Some(takes) = takes {
                    return Err(AdapterError::UnfitInput {
                        instance: config.instance.clone(),
                        attribute: subscription.path(),
                        value,
                        time: self.federate.time(),
                        variable: subscription.variable.clone(),
                        value_type,
                        takes: takes.into(),
                    });
                }
                self.adapter.inputs[i] = value;
            }
        }
        Ok(())
    }
}

/// The registered objects, one per published class, with the indices of their publications.
type Objects = Vec<(ObjectInstance, Vec<usize>)>;

/// Publishes, subscribes and registers one object per published class.
fn declare(
    federate: &mut blocking::Federate,
    config: &AdapterConfig,
) -> Result<Objects, federate_sdk::Error> {
    let published: Vec<String> = config.publish.iter().map(Publication::path).collect();
    let subscribed: Vec<String> = config.subscribe.iter().map(Subscription::path).collect();
    if !published.is_empty() {
        federate.publish(&as_str(&published))?;
    }
    if !subscribed.is_empty() {
        federate.subscribe(&as_str(&subscribed))?;
    }
    let classes = config.published_classes();
    let single = classes.len() == 1;
    let mut objects = Vec::with_capacity(classes.len());
    for (class, publications) in classes {
        let name = if single {
            config.instance.clone()
        } else {
            format!("{}/{class}", config.instance)
        };
        let object = federate.register_object(class, Some(&name))?;
        let indices = publications
            .iter()
            .filter_map(|p| config.publish.iter().position(|q| std::ptr::eq(q, *p)))
            .collect();
        objects.push((object, indices));
    }
    Ok(objects)
}

/// Declares, then passes the start barrier choosing the step there: once everyone has joined
/// and declared (`ready`), the RTI knows the fastest dynamics declared among the federates
/// coupled with this one; the step is chosen with them, the FMU initialized with it, its
/// outputs sent and the lookahead raised to the step before anyone may advance (`start`).
fn start_at_barrier<'c>(
    federate: &mut blocking::Federate,
    config: &'c AdapterConfig,
    fmu: Fmu,
    stop: &AtomicBool,
) -> Result<(Adapter<'c>, Objects, Vec<f64>), AdapterError> {
    let federation_error = |source| AdapterError::Federation {
        instance: config.instance.clone(),
        source,
    };
    let objects = declare(federate, config).map_err(federation_error)?;
    let expected = as_str(&config.expect);
    let mut started = None;
    let barrier = hosted::start_barrier_until(
        federate,
        &expected,
        hosted::START_TIMEOUT,
        stop,
        |federate| {
            let result = start_fmu(federate, config, fmu, &objects);
            let failed = result.is_err();
            started = Some(result);
            if failed {
                // The adapter's own error is kept in `started`; this only stops the barrier.
                return Err(federate_sdk::Error::Protocol(
                    "the FMU could not start".into(),
                ));
            }
            Ok(())
        },
    );
    match (started, barrier) {
        (Some(Err(error)), _) => Err(error),
        (_, Err(_)) if stop.load(Ordering::SeqCst) => Err(AdapterError::Interrupted {
            instance: config.instance.clone(),
            time: config.start,
        }),
        (_, Err(error)) => Err(federation_error(error)),
        (Some(Ok((adapter, outputs))), Ok(())) => Ok((adapter, objects, outputs)),
        (None, Ok(())) => Err(federation_error(federate_sdk::Error::Protocol(
            "the start barrier passed without starting the FMU".into(),
        ))),
    }
}

/// Inside the start barrier: chooses the step with the coupled federates' dynamics, starts the
/// FMU with it, sends its initial outputs and raises the lookahead to the step.
fn start_fmu<'c>(
    federate: &mut blocking::Federate,
    config: &'c AdapterConfig,
    fmu: Fmu,
    objects: &[(ObjectInstance, Vec<usize>)],
) -> Result<(Adapter<'c>, Vec<f64>), AdapterError> {
    let federation_error = |source| AdapterError::Federation {
        instance: config.instance.clone(),
        source,
    };
    let fastest = federate.coupled_dynamics().map_err(federation_error)?;
    let h = config.communication_step_with(fastest.as_ref().map(|(n, l)| (n.as_str(), *l)))?;
    if h < config.step.min_step {
        // The federate joined with this lookahead; a lookahead cannot be taken back.
        return Err(AdapterError::Unstable(StepError::InvalidSettings(format!(
            "the chosen step {h} is below the smallest step {}",
            config.step.min_step
        ))));
    }
    let mut adapter = Adapter::start(config, h, fmu)?;
    let outputs = adapter.outputs()?;
    publish(federate, config, objects, &outputs, None).map_err(federation_error)?;
    federate.modify_lookahead(h).map_err(federation_error)?;
    Ok((adapter, outputs))
}

/// Sends each registered object's outputs as one attribute update.
fn publish(
    federate: &mut blocking::Federate,
    config: &AdapterConfig,
    objects: &[(ObjectInstance, Vec<usize>)],
    outputs: &[f64],
    at: Option<SimTime>,
) -> Result<(), FederateError> {
    for (object, indices) in objects {
        let mut values = Values::new();
        for &i in indices {
            values.insert(&config.publish[i].attribute, &outputs[i])?;
        }
        federate.update(object, values, at)?;
    }
    Ok(())
}

/// Reads mapped variables as attribute values.
fn read_signals(instance: &mut Instance, signals: &Signals) -> Result<Vec<f64>, FmiError> {
    if signals.all_real() {
        return instance.get_real(&signals.references);
    }
    // Mixed types: one call per type, which costs a few small allocations per step.
    let mut values = vec![0.0; signals.references.len()];
    let (at, references) = signals.of_type(ValueType::Real);
    if !references.is_empty() {
        for (i, v) in at.into_iter().zip(instance.get_real(&references)?) {
            values[i] = v;
        }
    }
    let (at, references) = signals.of_type(ValueType::Integer);
    if !references.is_empty() {
        for (i, v) in at.into_iter().zip(instance.get_integer(&references)?) {
            values[i] = f64::from(v);
        }
    }
    let (at, references) = signals.of_type(ValueType::Boolean);
    if !references.is_empty() {
        for (i, v) in at.into_iter().zip(instance.get_boolean(&references)?) {
            values[i] = f64::from(u8::from(v));
        }
    }
    Ok(values)
}

/// Writes attribute values into mapped variables; each value fits its variable's type
/// (checked by the configuration for start values and on reflection for the rest).
fn write_signals(
    instance: &mut Instance,
    signals: &Signals,
    values: &[f64],
) -> Result<(), FmiError> {
    if signals.all_real() {
        return instance.set_real(&signals.references, values);
    }
    let (at, references) = signals.of_type(ValueType::Real);
    if !references.is_empty() {
        let reals: Vec<f64> = at.iter().map(|&i| values[i]).collect();
        instance.set_real(&references, &reals)?;
    }
    let (at, references) = signals.of_type(ValueType::Integer);
    if !references.is_empty() {
        // Whole numbers within i32: checked before they got here.
        let integers: Vec<i32> = at.iter().map(|&i| values[i] as i32).collect();
        instance.set_integer(&references, &integers)?;
    }
    let (at, references) = signals.of_type(ValueType::Boolean);
    if !references.is_empty() {
        let booleans: Vec<bool> = at.iter().map(|&i| values[i] != 0.0).collect();
        instance.set_boolean(&references, &booleans)?;
    }
    Ok(())
}

/// Whole steps of `h` from `start` until `stop` is reached (the last may end past it).
fn step_count(start: SimTime, stop: SimTime, h: SimDuration) -> u64 {
    let span = stop.ticks().abs_diff(start.ticks());
    span.div_ceil(h.ticks().max(1))
}

fn as_str(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}
