//! A running instance of an FMI 2.0 Co-Simulation FMU, behind a safe API.

use std::collections::BTreeSet;
use std::ffi::{CStr, CString, c_char, c_int};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{FmiError, Status};
use crate::fmu::Fmu;
use crate::functions::{
    self, CallbackFunctions, Component, FMI2_FALSE, FMI2_TRUE, FmuStatePtr, Functions,
};
use crate::logging::{self, LogEnvironment};
use crate::model_description::{ModelDescription, ValueType};

/// How a communication step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StepOutcome {
    /// The FMU reached the end of the step.
    Completed,
    /// The FMU could not complete the step (`fmi2Discard`); restore a saved state with
    /// [`Instance::set_state`] and retry with a smaller step, or terminate.
    Discarded,
    /// The FMU ended the simulation before the end of the step (`fmi2Discard` with
    /// `fmi2Terminated` true); [`Instance::last_successful_time`] says when.
    Terminated,
}

/// A saved state of an FMU instance, from [`Instance::get_state`].
///
/// It belongs to the instance that saved it and is freed with it, or earlier with
/// [`Instance::free_state`].
#[derive(Debug)]
pub struct FmuState {
    instance: u64,
    slot: usize,
}

/// An instance of an FMI 2.0 Co-Simulation FMU.
///
/// Made by [`Instance::new`]; then [`setup_experiment`](Self::setup_experiment),
/// [`enter_initialization_mode`](Self::enter_initialization_mode), setting start values,
/// [`exit_initialization_mode`](Self::exit_initialization_mode), and [`do_step`](Self::do_step)
/// in a loop. Dropping it frees the FMU's instance and saved states.
///
/// # Threads
///
/// FMI 2.0 lets an instance be called from any thread, one call at a time. [`Instance`] is
/// therefore `Send` (it may move to the thread that runs the federate) but not `Sync`, and every
/// call that reaches the FMU takes `&mut self`.
///
/// # Faults
///
/// The instance follows FMI 2.0's state machine and refuses, with [`FmiError::InvalidCall`],
/// the calls that the standard forbids in the current state, since many FMUs crash on them
/// instead of returning an error. Value references are checked against the model description
/// for the same reason. After `fmi2Error` only reading values and [`Instance::reset`] remain;
/// after `fmi2Fatal` nothing does, and the instance, its library and its callbacks are
/// deliberately leaked on drop, since FMI forbids even `fmi2FreeInstance` then.
///
/// What cannot be handled in-process: a segmentation fault, an abort or an endless loop inside
/// the FMU's code takes the whole process with it. A distributed RTI (the daemon) survives, as
/// it runs in another process, and treats the federate as lost (the federation's loss policy
/// applies); an embedded RTI dies with the process. Run untrusted or fragile FMUs each in a
/// federate process of its own.
///
/// Sharing an instance between threads does not compile:
///
/// ```compile_fail
/// fn shared<T: Sync>() {}
/// shared::<fedtwin_fmi::Instance>();
/// ```
pub struct Instance {
    component: Component,
    phase: Phase,
    name: String,
    id: u64,
    states: Vec<Option<FmuStatePtr>>,
    /// `(type, value reference)` of every variable, to refuse references the FMU does not know.
    variables: BTreeSet<(ValueType, u32)>,
    functions: Arc<Functions>,
    /// Reached by the logger through `componentEnvironment`; outlives the FMU's instance.
    log: Arc<LogEnvironment>,
    /// Given to `fmi2Instantiate`; kept valid until `fmi2FreeInstance`.
    callbacks: Arc<CallbackFunctions>,
    /// The strings given to `fmi2Instantiate`, kept for FMUs that keep the pointers.
    instantiate_strings: Arc<[CString; 3]>,
    /// Keeps the unpacked directory (resources) alive.
    fmu: Fmu,
    /// What the FMU logged during its last `fmi2DoStep` when it discarded or ended the step.
    step_message: Option<String>,
}

// SAFETY: FMI 2.0 allows calling an instance from any thread as long as no two calls overlap.
// `Instance` is not `Sync` (it holds raw pointers) and every FMI call takes `&mut self`, so calls
// never overlap. The logger may run on the FMU's own threads: it only touches `LogEnvironment`,
// which is `Sync`. The remaining raw pointers are owned by the instance and move with it.
unsafe impl Send for Instance {}

/// Where the instance is in FMI 2.0's Co-Simulation state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Instantiated,
    Initialization,
    Stepping,
    StepDiscarded,
    StoppedByFmu,
    Terminated,
    Failed,
    Fatal,
}

impl Phase {
    fn describe(self) -> &'static str {
        match self {
            Phase::Instantiated => "instantiated (not initialized yet)",
            Phase::Initialization => "in initialization mode",
            Phase::Stepping => "stepping",
            Phase::StepDiscarded => "after a discarded step",
            Phase::StoppedByFmu => "stopped by the FMU (it reported fmi2Terminated)",
            Phase::Terminated => "terminated",
            Phase::Failed => "failed (an earlier call returned fmi2Error)",
            Phase::Fatal => "unusable (an earlier call returned fmi2Fatal)",
        }
    }
}

/// Phases in which values can be read.
const READABLE: &[Phase] = &[
    Phase::Initialization,
    Phase::Stepping,
    Phase::StepDiscarded,
    Phase::StoppedByFmu,
    Phase::Terminated,
    Phase::Failed,
];
/// Phases in which values can be written.
const WRITABLE: &[Phase] = &[Phase::Instantiated, Phase::Initialization, Phase::Stepping];
/// Phases in which a state can be saved or restored.
const STATEFUL: &[Phase] = &[
    Phase::Instantiated,
    Phase::Initialization,
    Phase::Stepping,
    Phase::StepDiscarded,
    Phase::StoppedByFmu,
    Phase::Terminated,
];

static NEXT_INSTANCE_ID: AtomicU64 = AtomicU64::new(1);

impl Instance {
    /// Loads the FMU's library, checks that it is an FMI 2.0 library with standard types, and
    /// instantiates it for Co-Simulation as `name`. With `logging`, the FMU is asked to log
    /// everything (debug-level `tracing` events); warnings and errors are logged either way when
    /// the FMU reports them.
    ///
    /// # Errors
    ///
    /// [`FmiError::LoadLibrary`], [`FmiError::MissingSymbol`] for an incomplete library,
    /// [`FmiError::Incompatible`] when `fmi2GetVersion` is not "2.0" or `fmi2GetTypesPlatform`
    /// not "default", [`FmiError::Instantiate`] when the FMU refuses, with its message, and
    /// [`FmiError::InvalidCall`] for a second instance of an FMU that allows only one per
    /// process.
    pub fn new(fmu: &Fmu, name: &str, logging: bool) -> Result<Instance, FmiError> {
        if !fmu.claim_instance() {
            return Err(FmiError::InvalidCall {
                function: "fmi2Instantiate",
                reason: format!(
                    "`{}` can be instantiated only once per process \
                     (canBeInstantiatedOnlyOncePerProcess) and an instance exists; drop it \
                     first or run this instance in another process",
                    fmu.description().model_name
                ),
            });
        }
        let instance = Self::instantiate(fmu, name, logging);
        if instance.is_err() {
            fmu.release_instance();
        }
        instance
    }

    fn instantiate(fmu: &Fmu, name: &str, logging: bool) -> Result<Instance, FmiError> {
        let functions = Arc::new(Functions::load(fmu.library_path())?);

        // SAFETY: both functions take no argument and return a static C string (or, from a
        // broken FMU, null, which `static_text` handles).
        let version = unsafe { static_text((functions.get_version)()) };
        if version != "2.0" {
            return Err(FmiError::Incompatible {
                function: "fmi2GetVersion",
                found: version,
                expected: "2.0",
            });
        }
        // SAFETY: as above.
        let types_platform = unsafe { static_text((functions.get_types_platform)()) };
        if types_platform != "default" {
            return Err(FmiError::Incompatible {
                function: "fmi2GetTypesPlatform",
                found: types_platform,
                expected: "default",
            });
        }

        let description = fmu.description();
        let strings = Arc::new([
            c_string("fmi2Instantiate", "instance name", name)?,
            c_string("fmi2Instantiate", "GUID", &description.guid)?,
            c_string(
                "fmi2Instantiate",
                "resource location",
                &fmu.resource_location(),
            )?,
        ]);
        let log = Arc::new(LogEnvironment::new(name));
        let callbacks = Arc::new(CallbackFunctions {
            logger: logging::logger(),
            allocate_memory: calloc,
            free_memory: free,
            step_finished: None,
            component_environment: Arc::as_ptr(&log).cast_mut().cast(),
        });

        let [name_c, guid_c, resources_c] = &*strings;
        // SAFETY: every pointer is valid: the strings and the callbacks live in `Arc`s that the
        // instance keeps until after `fmi2FreeInstance`; `componentEnvironment` points to `log`,
        // kept likewise. The argument types are those of `fmi2InstantiateTYPE`.
        let component = unsafe {
            (functions.instantiate)(
                name_c.as_ptr(),
                functions::CO_SIMULATION,
                guid_c.as_ptr(),
                resources_c.as_ptr(),
                Arc::as_ptr(&callbacks),
                FMI2_FALSE,
                if logging { FMI2_TRUE } else { FMI2_FALSE },
            )
        };
        if component.is_null() {
            return Err(FmiError::Instantiate {
                instance: name.to_owned(),
                message: log.message(),
            });
        }
        tracing::debug!(
            instance = name,
            model = %description.model_name,
            library = %fmu.library_path().display(),
            "instantiated FMU"
        );

        Ok(Instance {
            component,
            phase: Phase::Instantiated,
            name: name.to_owned(),
            id: NEXT_INSTANCE_ID.fetch_add(1, Ordering::Relaxed),
            states: Vec::new(),
            variables: description
                .variables
                .iter()
                .map(|v| (v.kind.value_type(), v.value_reference))
                .collect(),
            functions,
            log,
            callbacks,
            instantiate_strings: strings,
            fmu: fmu.clone(),
            step_message: None,
        })
    }

    /// The instance's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The FMU this is an instance of.
    pub fn fmu(&self) -> &Fmu {
        &self.fmu
    }

    /// The FMU's model description.
    pub fn description(&self) -> &ModelDescription {
        self.fmu.description()
    }

    /// What the FMU logged during the last [`do_step`](Self::do_step) that it discarded or
    /// ended early (its last error message, else its last message), if anything.
    pub fn step_message(&self) -> Option<&str> {
        self.step_message.as_deref()
    }

    /// The last error message the FMU logged during the last call, if any.
    pub fn last_error_message(&self) -> Option<String> {
        self.log.last_error()
    }

    /// `fmi2SetDebugLogging`: turns the FMU's logging on or off, for all categories when
    /// `categories` is empty.
    ///
    /// # Errors
    ///
    /// [`FmiError::Failed`] when the FMU refuses, [`FmiError::InvalidArgument`] for a category
    /// with a NUL byte, [`FmiError::InvalidCall`] after `fmi2Fatal`.
    pub fn set_debug_logging(&mut self, on: bool, categories: &[&str]) -> Result<(), FmiError> {
        const FUNCTION: &str = "fmi2SetDebugLogging";
        self.require(
            FUNCTION,
            &[
                Phase::Instantiated,
                Phase::Initialization,
                Phase::Stepping,
                Phase::StepDiscarded,
                Phase::StoppedByFmu,
                Phase::Terminated,
                Phase::Failed,
            ],
        )?;
        let owned = categories
            .iter()
            .map(|c| c_string(FUNCTION, "category", c))
            .collect::<Result<Vec<_>, _>>()?;
        let pointers: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
        let pointer = if pointers.is_empty() {
            std::ptr::null()
        } else {
            pointers.as_ptr()
        };
        let flag = if on { FMI2_TRUE } else { FMI2_FALSE };
        self.call_strict(FUNCTION, |f, c| {
            // SAFETY: `pointer` is null with a count of 0, or points to `pointers.len()` valid
            // C strings that outlive the call.
            unsafe { (f.set_debug_logging)(c, flag, pointers.len(), pointer) }
        })?;
        Ok(())
    }

    /// `fmi2SetupExperiment`: the solver tolerance, when given, and the start and stop times.
    ///
    /// # Errors
    ///
    /// [`FmiError::Failed`] when the FMU refuses, [`FmiError::InvalidCall`] unless just
    /// instantiated, [`FmiError::InvalidArgument`] for a time that is not finite.
    pub fn setup_experiment(
        &mut self,
        tolerance: Option<f64>,
        start: f64,
        stop: Option<f64>,
    ) -> Result<(), FmiError> {
        const FUNCTION: &str = "fmi2SetupExperiment";
        self.require(FUNCTION, &[Phase::Instantiated])?;
        let finite = start.is_finite()
            && tolerance.is_none_or(f64::is_finite)
            && stop.is_none_or(|s| s.is_finite() && s >= start);
        if !finite {
            return Err(FmiError::InvalidArgument {
                function: FUNCTION,
                reason: format!(
                    "tolerance {tolerance:?}, start {start} and stop {stop:?} must be finite, \
                     with stop not before start"
                ),
            });
        }
        self.call_strict(FUNCTION, |f, c| {
            // SAFETY: plain values; `c` is the live instance.
            unsafe {
                (f.setup_experiment)(
                    c,
                    fmi2_bool(tolerance.is_some()),
                    tolerance.unwrap_or(0.0),
                    start,
                    fmi2_bool(stop.is_some()),
                    stop.unwrap_or(0.0),
                )
            }
        })?;
        Ok(())
    }

    /// `fmi2EnterInitializationMode`.
    ///
    /// # Errors
    ///
    /// [`FmiError::Failed`] when the FMU refuses, [`FmiError::InvalidCall`] unless just
    /// instantiated.
    pub fn enter_initialization_mode(&mut self) -> Result<(), FmiError> {
        const FUNCTION: &str = "fmi2EnterInitializationMode";
        self.require(FUNCTION, &[Phase::Instantiated])?;
        // SAFETY: `c` is the live instance.
        self.call_strict(FUNCTION, |f, c| unsafe { (f.enter_initialization_mode)(c) })?;
        self.phase = Phase::Initialization;
        Ok(())
    }

    /// `fmi2ExitInitializationMode`: after it, the instance steps.
    ///
    /// # Errors
    ///
    /// [`FmiError::Failed`] when the FMU refuses, [`FmiError::InvalidCall`] outside
    /// initialization mode.
    pub fn exit_initialization_mode(&mut self) -> Result<(), FmiError> {
        const FUNCTION: &str = "fmi2ExitInitializationMode";
        self.require(FUNCTION, &[Phase::Initialization])?;
        // SAFETY: `c` is the live instance.
        self.call_strict(FUNCTION, |f, c| unsafe { (f.exit_initialization_mode)(c) })?;
        self.phase = Phase::Stepping;
        Ok(())
    }

    /// `fmi2DoStep` from `current` over `step` seconds (FMI's own `f64` times; convert the
    /// results with [`to_sim_time`](crate::to_sim_time) once).
    ///
    /// After [`StepOutcome::Discarded`] the FMU accepts no further step until a saved state is
    /// restored with [`set_state`](Self::set_state).
    ///
    /// # Errors
    ///
    /// [`FmiError::Failed`] with the FMU's message for `fmi2Error` and `fmi2Fatal` (and for
    /// `fmi2Pending`: asynchronous steps are not supported), [`FmiError::InvalidCall`] when not
    /// stepping, [`FmiError::InvalidArgument`] for a step that is not positive and finite.
    pub fn do_step(&mut self, current: f64, step: f64) -> Result<StepOutcome, FmiError> {
        const FUNCTION: &str = "fmi2DoStep";
        self.require(FUNCTION, &[Phase::Stepping])?;
        if !current.is_finite() || !step.is_finite() || step <= 0.0 {
            return Err(FmiError::InvalidArgument {
                function: FUNCTION,
                reason: format!(
                    "a step from {current} s over {step} s: both must be finite and the step \
                     positive"
                ),
            });
        }

        // noSetFMUStatePriorToCurrentPoint is false: a state saved earlier may be restored.
        // SAFETY: plain values; `c` is the live instance.
        self.step_message = None;
        let status = self.call(FUNCTION, |f, c| unsafe {
            (f.do_step)(c, current, step, FMI2_FALSE)
        })?;
        if status != Status::Discard {
            return Ok(StepOutcome::Completed);
        }

        // Discarded: the FMU either stopped for good or could not take this step. Its reason,
        // if it logged one, is kept before the status query clears the log.
        self.step_message = self.log.message();
        let mut terminated = FMI2_FALSE;
        self.log.clear();
        // SAFETY: `terminated` is a valid `fmi2Boolean` to write; `c` is the live instance.
        let raw = unsafe {
            (self.functions.get_boolean_status)(
                self.component,
                functions::TERMINATED,
                &mut terminated,
            )
        };
        let asked = matches!(Status::from_raw(raw), Status::Ok | Status::Warning);
        if asked && terminated != FMI2_FALSE {
            self.phase = Phase::StoppedByFmu;
            tracing::debug!(instance = %self.name, current, step, "FMU terminated the simulation");
            Ok(StepOutcome::Terminated)
        } else {
            self.phase = Phase::StepDiscarded;
            tracing::debug!(instance = %self.name, current, step, "FMU discarded the step");
            Ok(StepOutcome::Discarded)
        }
    }

    /// `fmi2GetRealStatus(fmi2LastSuccessfulTime)`: where the FMU got to, after a step that it
    /// discarded or ended early.
    ///
    /// # Errors
    ///
    /// [`FmiError::Failed`] when the FMU cannot say, [`FmiError::InvalidCall`] before stepping.
    pub fn last_successful_time(&mut self) -> Result<f64, FmiError> {
        const FUNCTION: &str = "fmi2GetRealStatus";
        self.require(
            FUNCTION,
            &[Phase::Stepping, Phase::StepDiscarded, Phase::StoppedByFmu],
        )?;
        let mut time = 0.0;
        self.call_strict(FUNCTION, |f, c| {
            // SAFETY: `time` is a valid `fmi2Real` to write; `c` is the live instance.
            unsafe { (f.get_real_status)(c, functions::LAST_SUCCESSFUL_TIME, &mut time) }
        })?;
        Ok(time)
    }

    /// `fmi2Terminate`: ends the simulation run; values can still be read.
    ///
    /// # Errors
    ///
    /// [`FmiError::Failed`] when the FMU reports an error, [`FmiError::InvalidCall`] unless
    /// initialized.
    pub fn terminate(&mut self) -> Result<(), FmiError> {
        const FUNCTION: &str = "fmi2Terminate";
        self.require(
            FUNCTION,
            &[Phase::Stepping, Phase::StepDiscarded, Phase::StoppedByFmu],
        )?;
        // SAFETY: `c` is the live instance.
        self.call_strict(FUNCTION, |f, c| unsafe { (f.terminate)(c) })?;
        self.phase = Phase::Terminated;
        Ok(())
    }

    /// `fmi2Reset`: back to the state right after instantiation, also after `fmi2Error`.
    ///
    /// # Errors
    ///
    /// [`FmiError::Failed`] when the FMU cannot reset, [`FmiError::InvalidCall`] after
    /// `fmi2Fatal`.
    pub fn reset(&mut self) -> Result<(), FmiError> {
        const FUNCTION: &str = "fmi2Reset";
        self.require(
            FUNCTION,
            &[
                Phase::Instantiated,
                Phase::Initialization,
                Phase::Stepping,
                Phase::StepDiscarded,
                Phase::StoppedByFmu,
                Phase::Terminated,
                Phase::Failed,
            ],
        )?;
        // SAFETY: `c` is the live instance.
        self.call_strict(FUNCTION, |f, c| unsafe { (f.reset)(c) })?;
        self.phase = Phase::Instantiated;
        Ok(())
    }

    /// `fmi2SetReal`: `values[i]` to the variable `references[i]`.
    ///
    /// # Errors
    ///
    /// [`FmiError::InvalidArgument`] for slices of different lengths,
    /// [`FmiError::UnknownValueReference`], [`FmiError::Failed`] when the FMU refuses,
    /// [`FmiError::InvalidCall`] when values cannot be set now.
    pub fn set_real(&mut self, references: &[u32], values: &[f64]) -> Result<(), FmiError> {
        const FUNCTION: &str = "fmi2SetReal";
        self.check_set(FUNCTION, ValueType::Real, references, values.len())?;
        self.call_strict(FUNCTION, |f, c| {
            // SAFETY: both arrays have `references.len()` elements (checked) and outlive the call.
            unsafe { (f.set_real)(c, references.as_ptr(), references.len(), values.as_ptr()) }
        })?;
        Ok(())
    }

    /// `fmi2SetInteger` (also for enumerations).
    ///
    /// # Errors
    ///
    /// As [`set_real`](Self::set_real).
    pub fn set_integer(&mut self, references: &[u32], values: &[i32]) -> Result<(), FmiError> {
        const FUNCTION: &str = "fmi2SetInteger";
        self.check_set(FUNCTION, ValueType::Integer, references, values.len())?;
        self.call_strict(FUNCTION, |f, c| {
            // SAFETY: both arrays have `references.len()` elements (checked) and outlive the call.
            unsafe { (f.set_integer)(c, references.as_ptr(), references.len(), values.as_ptr()) }
        })?;
        Ok(())
    }

    /// `fmi2SetBoolean`.
    ///
    /// # Errors
    ///
    /// As [`set_real`](Self::set_real).
    pub fn set_boolean(&mut self, references: &[u32], values: &[bool]) -> Result<(), FmiError> {
        const FUNCTION: &str = "fmi2SetBoolean";
        self.check_set(FUNCTION, ValueType::Boolean, references, values.len())?;
        let values: Vec<c_int> = values.iter().map(|&v| fmi2_bool(v)).collect();
        self.call_strict(FUNCTION, |f, c| {
            // SAFETY: both arrays have `references.len()` elements (checked) and outlive the call.
            unsafe { (f.set_boolean)(c, references.as_ptr(), references.len(), values.as_ptr()) }
        })?;
        Ok(())
    }

    /// `fmi2SetString`.
    ///
    /// # Errors
    ///
    /// As [`set_real`](Self::set_real), and [`FmiError::InvalidArgument`] for a string with a
    /// NUL byte.
    pub fn set_string(&mut self, references: &[u32], values: &[&str]) -> Result<(), FmiError> {
        const FUNCTION: &str = "fmi2SetString";
        self.check_set(FUNCTION, ValueType::String, references, values.len())?;
        let owned = values
            .iter()
            .map(|v| c_string(FUNCTION, "value", v))
            .collect::<Result<Vec<_>, _>>()?;
        let pointers: Vec<*const c_char> = owned.iter().map(|s| s.as_ptr()).collect();
        self.call_strict(FUNCTION, |f, c| {
            // SAFETY: both arrays have `references.len()` elements (checked); the strings in
            // `owned` outlive the call (the FMU copies them).
            unsafe { (f.set_string)(c, references.as_ptr(), references.len(), pointers.as_ptr()) }
        })?;
        Ok(())
    }

    /// `fmi2GetReal`: the values of the variables `references`, in order.
    ///
    /// # Errors
    ///
    /// [`FmiError::UnknownValueReference`], [`FmiError::Failed`] when the FMU refuses,
    /// [`FmiError::InvalidCall`] before initialization mode or after `fmi2Fatal`.
    pub fn get_real(&mut self, references: &[u32]) -> Result<Vec<f64>, FmiError> {
        const FUNCTION: &str = "fmi2GetReal";
        self.check_get(FUNCTION, ValueType::Real, references)?;
        let mut values = vec![0.0; references.len()];
        self.call_strict(FUNCTION, |f, c| {
            // SAFETY: both arrays have `references.len()` elements and outlive the call.
            unsafe {
                (f.get_real)(
                    c,
                    references.as_ptr(),
                    references.len(),
                    values.as_mut_ptr(),
                )
            }
        })?;
        Ok(values)
    }

    /// `fmi2GetInteger` (also for enumerations).
    ///
    /// # Errors
    ///
    /// As [`get_real`](Self::get_real).
    pub fn get_integer(&mut self, references: &[u32]) -> Result<Vec<i32>, FmiError> {
        const FUNCTION: &str = "fmi2GetInteger";
        self.check_get(FUNCTION, ValueType::Integer, references)?;
        let mut values = vec![0; references.len()];
        self.call_strict(FUNCTION, |f, c| {
            // SAFETY: both arrays have `references.len()` elements and outlive the call.
            unsafe {
                (f.get_integer)(
                    c,
                    references.as_ptr(),
                    references.len(),
                    values.as_mut_ptr(),
                )
            }
        })?;
        Ok(values)
    }

    /// `fmi2GetBoolean`.
    ///
    /// # Errors
    ///
    /// As [`get_real`](Self::get_real).
    pub fn get_boolean(&mut self, references: &[u32]) -> Result<Vec<bool>, FmiError> {
        const FUNCTION: &str = "fmi2GetBoolean";
        self.check_get(FUNCTION, ValueType::Boolean, references)?;
        let mut values = vec![FMI2_FALSE; references.len()];
        self.call_strict(FUNCTION, |f, c| {
            // SAFETY: both arrays have `references.len()` elements and outlive the call.
            unsafe {
                (f.get_boolean)(
                    c,
                    references.as_ptr(),
                    references.len(),
                    values.as_mut_ptr(),
                )
            }
        })?;
        Ok(values.into_iter().map(|v| v != FMI2_FALSE).collect())
    }

    /// `fmi2GetString`: copies of the FMU's strings.
    ///
    /// # Errors
    ///
    /// As [`get_real`](Self::get_real).
    pub fn get_string(&mut self, references: &[u32]) -> Result<Vec<String>, FmiError> {
        const FUNCTION: &str = "fmi2GetString";
        self.check_get(FUNCTION, ValueType::String, references)?;
        let mut values: Vec<*const c_char> = vec![std::ptr::null(); references.len()];
        self.call_strict(FUNCTION, |f, c| {
            // SAFETY: both arrays have `references.len()` elements and outlive the call.
            unsafe {
                (f.get_string)(
                    c,
                    references.as_ptr(),
                    references.len(),
                    values.as_mut_ptr(),
                )
            }
        })?;
        // The FMU owns the strings until its next call: copy them now.
        Ok(values
            .into_iter()
            .map(|pointer| {
                if pointer.is_null() {
                    tracing::warn!(instance = %self.name, "fmi2GetString returned a null string");
                }
                // SAFETY: null (handled) or a NUL-terminated string the FMU keeps valid until
                // its next call.
                unsafe { static_text(pointer) }
            })
            .collect())
    }

    /// `fmi2GetFMUstate`: saves the FMU's complete state, to return to with
    /// [`set_state`](Self::set_state).
    ///
    /// # Errors
    ///
    /// [`FmiError::Unsupported`] when the FMU does not declare `canGetAndSetFMUstate`,
    /// [`FmiError::Failed`] when it cannot save, [`FmiError::InvalidCall`] after a failure.
    pub fn get_state(&mut self) -> Result<FmuState, FmiError> {
        const FUNCTION: &str = "fmi2GetFMUstate";
        self.require_states(FUNCTION)?;
        let mut pointer: FmuStatePtr = std::ptr::null_mut();
        self.call_strict(FUNCTION, |f, c| {
            // SAFETY: `pointer` is null, so the FMU allocates a new state and writes it there.
            unsafe { (f.get_fmu_state)(c, &mut pointer) }
        })?;
        let slot = match self.states.iter().position(Option::is_none) {
            Some(slot) => {
                self.states[slot] = Some(pointer);
                slot
            }
            None => {
                self.states.push(Some(pointer));
                self.states.len() - 1
            }
        };
        Ok(FmuState {
            instance: self.id,
            slot,
        })
    }

    /// `fmi2GetFMUstate` into an existing state: overwrites `state` with the current one,
    /// without allocating a new state.
    ///
    /// # Errors
    ///
    /// As [`get_state`](Self::get_state), and [`FmiError::InvalidArgument`] for a state of
    /// another instance.
    pub fn update_state(&mut self, state: &mut FmuState) -> Result<(), FmiError> {
        const FUNCTION: &str = "fmi2GetFMUstate";
        self.require_states(FUNCTION)?;
        let mut pointer = self.state_pointer(FUNCTION, state)?;
        self.call_strict(FUNCTION, |f, c| {
            // SAFETY: `pointer` is a state this instance got from the FMU; the FMU overwrites it
            // in place (and may move it, hence the write-back below).
            unsafe { (f.get_fmu_state)(c, &mut pointer) }
        })?;
        self.states[state.slot] = Some(pointer);
        Ok(())
    }

    /// `fmi2SetFMUstate`: returns to a saved state, for example to retry a discarded step.
    ///
    /// # Errors
    ///
    /// [`FmiError::Unsupported`], [`FmiError::InvalidArgument`] for a state of another
    /// instance, [`FmiError::Failed`] when the FMU cannot restore it.
    pub fn set_state(&mut self, state: &FmuState) -> Result<(), FmiError> {
        const FUNCTION: &str = "fmi2SetFMUstate";
        self.require_states(FUNCTION)?;
        let pointer = self.state_pointer(FUNCTION, state)?;
        // SAFETY: `pointer` is a live state this instance got from the FMU.
        self.call_strict(FUNCTION, |f, c| unsafe { (f.set_fmu_state)(c, pointer) })?;
        if matches!(self.phase, Phase::StepDiscarded | Phase::StoppedByFmu) {
            self.phase = Phase::Stepping;
        }
        Ok(())
    }

    /// `fmi2FreeFMUstate`: frees a saved state now rather than with the instance.
    ///
    /// # Errors
    ///
    /// [`FmiError::InvalidArgument`] for a state of another instance, [`FmiError::Failed`]
    /// when the FMU reports an error.
    pub fn free_state(&mut self, state: FmuState) -> Result<(), FmiError> {
        const FUNCTION: &str = "fmi2FreeFMUstate";
        self.require(FUNCTION, STATEFUL)?;
        let mut pointer = self.state_pointer(FUNCTION, &state)?;
        self.states[state.slot] = None;
        // SAFETY: `pointer` is a live state of this instance, forgotten above so that it is
        // freed once.
        self.call_strict(FUNCTION, |f, c| unsafe {
            (f.free_fmu_state)(c, &mut pointer)
        })?;
        Ok(())
    }

    /// Refuses a call that FMI 2.0 forbids in the current phase.
    fn require(&self, function: &'static str, allowed: &[Phase]) -> Result<(), FmiError> {
        if allowed.contains(&self.phase) {
            return Ok(());
        }
        let advice = match self.phase {
            Phase::Fatal => {
                "the FMU can no longer be used; drop the instance and restart the process"
            }
            Phase::Failed => {
                "only reading values and reset remain possible; reset or drop the instance"
            }
            Phase::StepDiscarded => {
                "restore a saved state with set_state and retry with a smaller step, or terminate"
            }
            Phase::StoppedByFmu => "the FMU ended the simulation; terminate the instance",
            Phase::Terminated => "reset the instance to run again",
            Phase::Instantiated => "enter initialization mode first",
            Phase::Initialization => "exit initialization mode first",
            Phase::Stepping => "this call belongs to an earlier phase",
        };
        Err(FmiError::InvalidCall {
            function,
            reason: format!(
                "the instance `{}` is {}; {advice}",
                self.name,
                self.phase.describe()
            ),
        })
    }

    fn require_states(&self, function: &'static str) -> Result<(), FmiError> {
        if !self.description().co_simulation.can_get_and_set_fmu_state {
            return Err(FmiError::Unsupported {
                model: self.description().model_name.clone(),
                capability: "saving and restoring its state (canGetAndSetFMUstate is not true)",
            });
        }
        self.require(function, STATEFUL)
    }

    fn state_pointer(
        &self,
        function: &'static str,
        state: &FmuState,
    ) -> Result<FmuStatePtr, FmiError> {
        let pointer = (state.instance == self.id)
            .then(|| self.states.get(state.slot).copied().flatten())
            .flatten();
        pointer.ok_or_else(|| FmiError::InvalidArgument {
            function,
            reason: format!("the state was not saved by the instance `{}`", self.name),
        })
    }

    fn check_set(
        &self,
        function: &'static str,
        value_type: ValueType,
        references: &[u32],
        values: usize,
    ) -> Result<(), FmiError> {
        self.require(function, WRITABLE)?;
        if references.len() != values {
            return Err(FmiError::InvalidArgument {
                function,
                reason: format!("{} value references but {values} values", references.len()),
            });
        }
        self.check_references(function, value_type, references)
    }

    fn check_get(
        &self,
        function: &'static str,
        value_type: ValueType,
        references: &[u32],
    ) -> Result<(), FmiError> {
        self.require(function, READABLE)?;
        self.check_references(function, value_type, references)
    }

    fn check_references(
        &self,
        function: &'static str,
        value_type: ValueType,
        references: &[u32],
    ) -> Result<(), FmiError> {
        match references
            .iter()
            .find(|&&r| !self.variables.contains(&(value_type, r)))
        {
            Some(&value_reference) => Err(FmiError::UnknownValueReference {
                function,
                value_reference,
                value_type,
            }),
            None => Ok(()),
        }
    }

    /// Calls the FMU; `fmi2OK`, `fmi2Warning` and `fmi2Discard` are returned for the caller to
    /// judge, `fmi2Error` and worse become [`FmiError::Failed`] with the FMU's last message and
    /// move the instance to the failed (or fatal) phase.
    fn call(
        &mut self,
        function: &'static str,
        f: impl FnOnce(&Functions, Component) -> functions::Status,
    ) -> Result<Status, FmiError> {
        self.log.clear();
        let status = Status::from_raw(f(&self.functions, self.component));
        match status {
            Status::Ok | Status::Warning | Status::Discard => return Ok(status),
            Status::Fatal => self.phase = Phase::Fatal,
            Status::Error | Status::Pending | Status::Unknown(_) => self.phase = Phase::Failed,
        }
        let mut message = self.log.message();
        if status == Status::Pending {
            message.get_or_insert_with(|| {
                "asynchronous steps (canRunAsynchronuously) are not supported".to_owned()
            });
        }
        Err(FmiError::Failed {
            function,
            status,
            message,
        })
    }

    /// [`call`](Self::call) for functions where `fmi2Discard` is a failure too (it leaves the
    /// instance usable).
    fn call_strict(
        &mut self,
        function: &'static str,
        f: impl FnOnce(&Functions, Component) -> functions::Status,
    ) -> Result<(), FmiError> {
        match self.call(function, f)? {
            Status::Discard => Err(FmiError::Failed {
                function,
                status: Status::Discard,
                message: self.log.message(),
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.phase == Phase::Fatal {
            // FMI forbids every call after fmi2Fatal, fmi2FreeInstance included. Leak the
            // instance and everything it may still reach (library, callbacks, environment,
            // strings) rather than unload code the FMU may still run.
            std::mem::forget(Arc::clone(&self.functions));
            std::mem::forget(Arc::clone(&self.log));
            std::mem::forget(Arc::clone(&self.callbacks));
            std::mem::forget(Arc::clone(&self.instantiate_strings));
            tracing::warn!(instance = %self.name, "leaking an FMU instance after fmi2Fatal");
            return;
        }

        for slot in &mut self.states {
            if let Some(mut pointer) = slot.take() {
                // SAFETY: a live state of this live instance, freed once (the slot is emptied).
                let raw = unsafe { (self.functions.free_fmu_state)(self.component, &mut pointer) };
                if Status::from_raw(raw) != Status::Ok {
                    tracing::debug!(instance = %self.name, "fmi2FreeFMUstate failed");
                }
            }
        }
        // SAFETY: the instance is live and freed once; the callbacks, environment and strings
        // it may use during the call are still alive (fields drop after this).
        unsafe { (self.functions.free_instance)(self.component) };
        self.fmu.release_instance();
        tracing::debug!(instance = %self.name, "freed FMU instance");
    }
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("name", &self.name)
            .field("model", &self.description().model_name)
            .field("phase", &self.phase)
            .field("saved_states", &self.states.iter().flatten().count())
            .finish_non_exhaustive()
    }
}

unsafe extern "C" {
    /// C's allocator, for `fmi2CallbackAllocateMemory` (zeroed, as FMI requires).
    fn calloc(count: usize, size: usize) -> *mut std::ffi::c_void;
    /// For `fmi2CallbackFreeMemory`.
    fn free(pointer: *mut std::ffi::c_void);
}

fn fmi2_bool(value: bool) -> c_int {
    if value { FMI2_TRUE } else { FMI2_FALSE }
}

fn c_string(function: &'static str, what: &str, text: &str) -> Result<CString, FmiError> {
    CString::new(text).map_err(|_| FmiError::InvalidArgument {
        function,
        reason: format!("the {what} `{}` contains a NUL byte", text.escape_debug()),
    })
}

/// A C string the FMU owns, copied; null becomes the empty string.
///
/// # Safety
///
/// `pointer` is null or a NUL-terminated string valid for the call.
unsafe fn static_text(pointer: *const c_char) -> String {
    if pointer.is_null() {
        return String::new();
    }
    // SAFETY: not null, and NUL-terminated by the caller's contract.
    unsafe { CStr::from_ptr(pointer) }
        .to_string_lossy()
        .into_owned()
}
