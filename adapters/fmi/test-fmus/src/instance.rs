//! One FMU instance: the FMI 2.0 Co-Simulation state machine around a [`TestModel`], with no
//! raw pointers except the master's callbacks.
//!
//! The exported `fmi2*` functions in [`crate::fmi2`] turn the master's pointers into slices and
//! call the methods here. Every refusal is logged through the master's logger with the function's
//! name and what to do instead, then answered with `fmi2Error`.

use std::collections::HashSet;
use std::ffi::{CStr, CString, c_char, c_void};

use crate::fmi2::{CallbackLogger, Status, StatusKind};
use crate::model::{self, StepOutcome, TestModel, ValueType, Variable};

/// Log categories the FMU declares, in the order of the model description.
pub(crate) const LOG_CATEGORIES: [(&str, &str); 6] = [
    ("logEvents", "Lifecycle and step events (debug)"),
    ("logStatusWarning", "Messages with status fmi2Warning"),
    ("logStatusDiscard", "Messages with status fmi2Discard"),
    ("logStatusError", "Messages with status fmi2Error"),
    ("logStatusFatal", "Messages with status fmi2Fatal"),
    ("logAll", "All messages"),
];

/// Where an instance is in the FMI 2.0 Co-Simulation state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// After `fmi2Instantiate` or `fmi2Reset`.
    Instantiated,
    /// Between `fmi2EnterInitializationMode` and `fmi2ExitInitializationMode`.
    InitializationMode,
    /// Ready for the next `fmi2DoStep`.
    StepComplete,
    /// A step returned `fmi2Discard` and the model cannot go on (it terminated).
    StepFailed,
    /// After `fmi2Terminate`.
    Terminated,
    /// A call returned `fmi2Error`; only getters, `fmi2Reset` and `fmi2FreeInstance` are left.
    Error,
    /// A panic was caught; only `fmi2FreeInstance` is left.
    Fatal,
}

impl Phase {
    fn describe(self) -> &'static str {
        match self {
            Phase::Instantiated => "instantiated (before fmi2EnterInitializationMode)",
            Phase::InitializationMode => "in initialization mode",
            Phase::StepComplete => "initialized and between steps",
            Phase::StepFailed => "stopped after a discarded step",
            Phase::Terminated => "terminated",
            Phase::Error => "in the error state (call fmi2Reset or fmi2FreeInstance)",
            Phase::Fatal => "unusable after a fatal error (call fmi2FreeInstance)",
        }
    }
}

/// Phases in which values may be read.
const READABLE: &[Phase] = &[
    Phase::InitializationMode,
    Phase::StepComplete,
    Phase::StepFailed,
    Phase::Terminated,
    Phase::Error,
];
/// Phases whose state can be captured and restored with `fmi2GetFMUstate`/`fmi2SetFMUstate`.
const SNAPSHOT_PHASES: &[Phase] = &[
    Phase::Instantiated,
    Phase::InitializationMode,
    Phase::StepComplete,
    Phase::StepFailed,
    Phase::Terminated,
];
/// Phases in which `fmi2Get*Status` answers.
const STATUS_PHASES: &[Phase] = &[
    Phase::StepComplete,
    Phase::StepFailed,
    Phase::Terminated,
    Phase::Error,
];

/// Everything an `fmi2FMUstate` captures: the whole simulation state of an instance.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModelState {
    phase: Phase,
    time: f64,
    stop_time: Option<f64>,
    experiment_set_up: bool,
    values: Vec<f64>,
    /// String variables by value reference (empty for the others).
    texts: Vec<String>,
    terminated: bool,
    last_successful_time: f64,
    last_step_status: Status,
}

impl ModelState {
    fn new(model: TestModel) -> Self {
        ModelState {
            phase: Phase::Instantiated,
            time: 0.0,
            stop_time: None,
            experiment_set_up: false,
            values: model.start_values(),
            texts: model.start_texts(),
            terminated: false,
            last_successful_time: 0.0,
            last_step_status: Status::Ok,
        }
    }
}

/// The master's logger and environment, copied out of `fmi2CallbackFunctions`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Logger {
    pub(crate) callback: Option<CallbackLogger>,
    pub(crate) environment: *mut c_void,
}

impl Logger {
    /// Passes `message` to the master's logger as the argument of a `"%s"` format, so that no
    /// `%` in it is ever read as a directive.
    pub(crate) fn log(&self, instance_name: &CStr, status: Status, category: &str, message: &str) {
        let Some(callback) = self.callback else {
            return;
        };
        let message = c_string(message);
        let category = c_string(category);
        // SAFETY: the master promised a valid logger for as long as the instance lives; every
        // pointer passed is a NUL-terminated string that outlives the call, and the single
        // variadic argument matches the "%s" directive.
        unsafe {
            callback(
                self.environment,
                instance_name.as_ptr(),
                status as i32,
                category.as_ptr(),
                c"%s".as_ptr(),
                message.as_ptr(),
            );
        }
    }
}

/// A C string of `text`, with interior NULs (which C cannot carry) replaced.
pub(crate) fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "\u{fffd}")).unwrap_or_default()
}

/// An FMU instance as the exported functions see it.
#[derive(Debug)]
pub(crate) struct Instance {
    name: CString,
    model: TestModel,
    logger: Logger,
    /// Debug logging switched on by `loggingOn` or `fmi2SetDebugLogging`.
    logging_on: bool,
    /// Categories enabled for debug messages, by index into [`LOG_CATEGORIES`].
    categories: [bool; LOG_CATEGORIES.len()],
    state: ModelState,
    /// Addresses of the `fmi2FMUstate`s handed out by this instance and not freed yet.
    snapshots: HashSet<usize>,
    /// The strings of the last `fmi2GetString`, which stay valid until the next call.
    returned: Vec<CString>,
}

impl Instance {
    pub(crate) fn new(name: CString, model: TestModel, logger: Logger, logging_on: bool) -> Self {
        let instance = Instance {
            name,
            model,
            logger,
            logging_on,
            categories: [true; LOG_CATEGORIES.len()],
            state: ModelState::new(model),
            snapshots: HashSet::new(),
            returned: Vec::new(),
        };
        instance.debug(&format!("instantiated model {model}"));
        instance
    }

    pub(crate) fn phase(&self) -> Phase {
        self.state.phase
    }

    /// Logs a debug message under `logEvents` when debug logging is on for it.
    pub(crate) fn debug(&self, message: &str) {
        const CATEGORY: &str = "logEvents";
        if self.logging_on && (self.category_enabled(CATEGORY) || self.category_enabled("logAll")) {
            self.logger.log(&self.name, Status::Ok, CATEGORY, message);
        }
    }

    fn category_enabled(&self, category: &str) -> bool {
        let index = LOG_CATEGORIES
            .iter()
            .position(|(name, _)| *name == category);
        index.is_some_and(|index| self.categories[index])
    }

    /// Logs a message with a non-OK status; such messages are always passed to the logger.
    pub(crate) fn log(&self, status: Status, message: &str) {
        let category = match status {
            Status::Ok | Status::Pending => "logEvents",
            Status::Warning => "logStatusWarning",
            Status::Discard => "logStatusDiscard",
            Status::Error => "logStatusError",
            Status::Fatal => "logStatusFatal",
        };
        self.logger.log(&self.name, status, category, message);
    }

    /// Logs `function: message` as an error and answers `fmi2Error`.
    pub(crate) fn refuse(&self, function: &str, message: &str) -> Status {
        self.log(Status::Error, &format!("{function}: {message}"));
        Status::Error
    }

    /// Marks the instance unusable after a caught panic.
    pub(crate) fn enter_fatal(&mut self, function: &str, panic_message: &str) {
        self.state.phase = Phase::Fatal;
        self.log(
            Status::Fatal,
            &format!("{function}: internal panic ({panic_message}); the instance is unusable"),
        );
    }

    fn require(&self, function: &str, allowed: &[Phase]) -> Result<(), Status> {
        if allowed.contains(&self.state.phase) {
            Ok(())
        } else {
            Err(self.refuse(
                function,
                &format!(
                    "not allowed while the instance is {}",
                    self.state.phase.describe()
                ),
            ))
        }
    }

    pub(crate) fn set_debug_logging(&mut self, logging_on: bool, categories: &[&str]) -> Status {
        let mut enabled = [categories.is_empty(); LOG_CATEGORIES.len()];
        for category in categories {
            match LOG_CATEGORIES.iter().position(|(name, _)| name == category) {
                Some(index) => enabled[index] = true,
                None => {
                    return self.refuse(
                        "fmi2SetDebugLogging",
                        &format!("unknown log category {category:?}"),
                    );
                }
            }
        }
        self.logging_on = logging_on;
        self.categories = enabled;
        Status::Ok
    }

    pub(crate) fn setup_experiment(
        &mut self,
        tolerance: Option<f64>,
        start_time: f64,
        stop_time: Option<f64>,
    ) -> Status {
        const FUNCTION: &str = "fmi2SetupExperiment";
        if let Err(status) = self.require(FUNCTION, &[Phase::Instantiated]) {
            return status;
        }
        if !start_time.is_finite() {
            return self.refuse(FUNCTION, &format!("startTime {start_time} is not finite"));
        }
        if let Some(stop) = stop_time.filter(|stop| stop.is_nan() || *stop < start_time) {
            return self.refuse(FUNCTION, &format!("stopTime {stop} is before startTime"));
        }
        self.state.time = start_time;
        self.state.last_successful_time = start_time;
        self.state.stop_time = stop_time;
        self.state.experiment_set_up = true;
        // The models integrate with a fixed internal step; the tolerance is only reported, so
        // that a master's choice can be seen in the log.
        self.debug(&match tolerance {
            Some(tolerance) => format!("fmi2SetupExperiment: tolerance {tolerance:e}"),
            None => "fmi2SetupExperiment: no tolerance".to_owned(),
        });
        Status::Ok
    }

    pub(crate) fn enter_initialization_mode(&mut self) -> Status {
        const FUNCTION: &str = "fmi2EnterInitializationMode";
        if let Err(status) = self.require(FUNCTION, &[Phase::Instantiated]) {
            return status;
        }
        if !self.state.experiment_set_up {
            return self.refuse(FUNCTION, "call fmi2SetupExperiment first");
        }
        self.state.phase = Phase::InitializationMode;
        Status::Ok
    }

    pub(crate) fn exit_initialization_mode(&mut self) -> Status {
        const FUNCTION: &str = "fmi2ExitInitializationMode";
        if let Err(status) = self.require(FUNCTION, &[Phase::InitializationMode]) {
            return status;
        }
        if let Err(message) = model::validate(self.model, &self.state.values) {
            self.state.phase = Phase::Error;
            return self.refuse(FUNCTION, &message);
        }
        model::initialize(self.model, &mut self.state.values);
        model::update_outputs(self.model, &mut self.state.values);
        self.state.phase = Phase::StepComplete;
        self.debug(&format!("initialized at t={}", self.state.time));
        Status::Ok
    }

    pub(crate) fn terminate(&mut self) -> Status {
        if let Err(status) =
            self.require("fmi2Terminate", &[Phase::StepComplete, Phase::StepFailed])
        {
            return status;
        }
        self.state.phase = Phase::Terminated;
        self.debug("fmi2Terminate: simulation over");
        Status::Ok
    }

    pub(crate) fn reset(&mut self) -> Status {
        self.state = ModelState::new(self.model);
        self.debug("reset to the state after fmi2Instantiate");
        Status::Ok
    }

    /// Reads the variables `value_references` of type `value_type`, handing each value with its
    /// position to `write`; stops at the first unknown reference.
    pub(crate) fn read(
        &self,
        function: &str,
        value_type: ValueType,
        value_references: &[u32],
        mut write: impl FnMut(usize, f64),
    ) -> Status {
        if let Err(status) = self.require(function, READABLE) {
            return status;
        }
        for (position, &value_reference) in value_references.iter().enumerate() {
            match self.variable(function, value_type, value_reference) {
                Ok(_) => write(position, self.state.values[value_reference as usize]),
                Err(status) => return status,
            }
        }
        Status::Ok
    }

    /// The String variables `value_references`, as C strings that stay valid until the next
    /// call of this function (FMI 2.0, 2.1.7).
    pub(crate) fn read_texts(
        &mut self,
        function: &str,
        value_references: &[u32],
    ) -> Result<Vec<*const c_char>, Status> {
        self.require(function, READABLE)?;
        let mut returned = Vec::with_capacity(value_references.len());
        for &value_reference in value_references {
            self.variable(function, ValueType::String, value_reference)?;
            returned.push(c_string(&self.state.texts[value_reference as usize]));
        }
        self.returned = returned;
        Ok(self.returned.iter().map(|s| s.as_ptr()).collect())
    }

    /// Sets the String variables `value_references` to `values`; checks every reference before
    /// changing anything.
    pub(crate) fn write_texts(
        &mut self,
        function: &str,
        value_references: &[u32],
        values: Vec<String>,
    ) -> Status {
        if let Err(status) = self.check_writable(function, ValueType::String, value_references) {
            return status;
        }
        for (&value_reference, value) in value_references.iter().zip(values) {
            self.state.texts[value_reference as usize] = value;
        }
        model::update_text_outputs(self.model, &self.state.texts, &mut self.state.values);
        Status::Ok
    }

    /// Sets the variables `value_references` of type `value_type` to `value(position)`; checks
    /// every reference before changing anything.
    pub(crate) fn write(
        &mut self,
        function: &str,
        value_type: ValueType,
        value_references: &[u32],
        value: impl Fn(usize) -> f64,
    ) -> Status {
        if let Err(status) = self.check_writable(function, value_type, value_references) {
            return status;
        }
        for (position, &value_reference) in value_references.iter().enumerate() {
            self.state.values[value_reference as usize] = value(position);
        }
        model::update_outputs(self.model, &mut self.state.values);
        Status::Ok
    }

    /// Whether the variables `value_references` have type `value_type` and may be set now.
    fn check_writable(
        &self,
        function: &str,
        value_type: ValueType,
        value_references: &[u32],
    ) -> Result<(), Status> {
        let phase = self.state.phase;
        let allowed = [
            Phase::Instantiated,
            Phase::InitializationMode,
            Phase::StepComplete,
        ];
        self.require(function, &allowed)?;
        for &value_reference in value_references {
            let variable = self.variable(function, value_type, value_reference)?;
            let settable = if phase == Phase::StepComplete {
                variable.settable_between_steps()
            } else {
                variable.settable_during_initialization()
            };
            if !settable {
                return Err(self.refuse(
                    function,
                    &format!(
                        "variable {} ({}, {}) cannot be set while the instance is {}",
                        variable.name,
                        variable.causality.as_str(),
                        variable.variability.as_str(),
                        phase.describe()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The variable `value_reference` names, if it has type `value_type`.
    fn variable(
        &self,
        function: &str,
        value_type: ValueType,
        value_reference: u32,
    ) -> Result<&'static Variable, Status> {
        match self.model.variable(value_reference) {
            Some(variable) if variable.value_type == value_type => Ok(variable),
            Some(variable) => Err(self.refuse(
                function,
                &format!(
                    "value reference {value_reference} is {} of type {}, not {}",
                    variable.name,
                    variable.value_type.as_str(),
                    value_type.as_str()
                ),
            )),
            None => Err(self.refuse(
                function,
                &format!(
                    "unknown value reference {value_reference} for a {} variable of model {}",
                    value_type.as_str(),
                    self.model
                ),
            )),
        }
    }

    pub(crate) fn do_step(&mut self, current_time: f64, step: f64) -> Status {
        const FUNCTION: &str = "fmi2DoStep";
        if let Err(status) = self.require(FUNCTION, &[Phase::StepComplete]) {
            return status;
        }
        if !(step > 0.0 && step.is_finite()) {
            return self.refuse(
                FUNCTION,
                &format!("communicationStepSize {step} is not positive"),
            );
        }
        let time = self.state.time;
        if !current_time.is_finite() || (current_time - time).abs() > 1e-9 * time.abs().max(1.0) {
            return self.refuse(
                FUNCTION,
                &format!(
                    "currentCommunicationPoint {current_time} differs from the instance's time \
                     {time}"
                ),
            );
        }
        if let Some(stop) = self.state.stop_time
            && current_time + step > stop + 1e-9 * stop.abs().max(1.0)
        {
            let end = current_time + step;
            return self.refuse(
                FUNCTION,
                &format!("step to {end} passes the stopTime {stop}"),
            );
        }
        self.debug(&format!("step from t={current_time} by {step}"));

        // Step a copy so that a refused or failed step leaves the state untouched.
        let mut values = self.state.values.clone();
        let outcome = model::step(self.model, &mut values, current_time, step);
        let status = match outcome {
            StepOutcome::Completed => {
                self.state.values = values;
                self.state.time = current_time + step;
                self.state.last_successful_time = self.state.time;
                Status::Ok
            }
            StepOutcome::Rejected(message) => {
                self.log(Status::Discard, &format!("{FUNCTION}: {message}"));
                Status::Discard
            }
            StepOutcome::Terminated { reached, message } => {
                self.state.values = values;
                self.state.time = reached;
                self.state.last_successful_time = reached;
                self.state.terminated = true;
                self.state.phase = Phase::StepFailed;
                self.log(Status::Discard, &format!("{FUNCTION}: {message}"));
                Status::Discard
            }
            StepOutcome::Failed(message) => {
                self.state.phase = Phase::Error;
                self.log(Status::Error, &format!("{FUNCTION}: {message}"));
                Status::Error
            }
        };
        self.state.last_step_status = status;
        status
    }

    pub(crate) fn status(&self, kind: StatusKind) -> Result<Status, Status> {
        const FUNCTION: &str = "fmi2GetStatus";
        self.require(FUNCTION, STATUS_PHASES)?;
        match kind {
            StatusKind::DoStepStatus => Ok(self.state.last_step_status),
            _ => Err(self.status_not_available(FUNCTION, kind)),
        }
    }

    pub(crate) fn real_status(&self, kind: StatusKind) -> Result<f64, Status> {
        const FUNCTION: &str = "fmi2GetRealStatus";
        self.require(FUNCTION, STATUS_PHASES)?;
        match kind {
            StatusKind::LastSuccessfulTime => Ok(self.state.last_successful_time),
            _ => Err(self.status_not_available(FUNCTION, kind)),
        }
    }

    pub(crate) fn boolean_status(&self, kind: StatusKind) -> Result<bool, Status> {
        const FUNCTION: &str = "fmi2GetBooleanStatus";
        self.require(FUNCTION, STATUS_PHASES)?;
        match kind {
            StatusKind::Terminated => Ok(self.state.terminated),
            _ => Err(self.status_not_available(FUNCTION, kind)),
        }
    }

    /// Answers a status query of a kind that does not exist for the function's type or that this
    /// synchronous FMU never has (the pending status): `fmi2Discard`, as the standard allows.
    pub(crate) fn status_not_available(&self, function: &str, kind: StatusKind) -> Status {
        if let Err(status) = self.require(function, STATUS_PHASES) {
            return status;
        }
        self.log(
            Status::Discard,
            &format!("{function}: status {kind:?} is not available"),
        );
        Status::Discard
    }

    /// Captures the state into a new snapshot, or into `existing` when that is one of this
    /// instance's snapshots.
    pub(crate) fn capture(
        &mut self,
        existing: Option<*mut ModelState>,
    ) -> Result<*mut ModelState, Status> {
        const FUNCTION: &str = "fmi2GetFMUstate";
        self.require(FUNCTION, SNAPSHOT_PHASES)?;
        match existing {
            Some(pointer) => {
                self.owned_snapshot(FUNCTION, pointer)?;
                // SAFETY: `pointer` is registered, so it came from `Box::into_raw` below and has
                // not been freed; the master does not use it concurrently.
                unsafe { *pointer = self.state.clone() };
                Ok(pointer)
            }
            None => {
                let pointer = Box::into_raw(Box::new(self.state.clone()));
                self.snapshots.insert(pointer as usize);
                Ok(pointer)
            }
        }
    }

    /// Restores the state captured in `snapshot`.
    pub(crate) fn restore(&mut self, snapshot: *mut ModelState) -> Status {
        const FUNCTION: &str = "fmi2SetFMUstate";
        if let Err(status) = self.require(FUNCTION, SNAPSHOT_PHASES) {
            return status;
        }
        if let Err(status) = self.owned_snapshot(FUNCTION, snapshot) {
            return status;
        }
        // SAFETY: registered pointers are live boxes of this instance (see `capture`).
        self.state = unsafe { (*snapshot).clone() };
        self.debug(&format!("state restored to t={}", self.state.time));
        Status::Ok
    }

    /// Frees `snapshot`, one of this instance's snapshots.
    pub(crate) fn release(&mut self, snapshot: *mut ModelState) -> Status {
        const FUNCTION: &str = "fmi2FreeFMUstate";
        if let Err(status) = self.owned_snapshot(FUNCTION, snapshot) {
            return status;
        }
        self.snapshots.remove(&(snapshot as usize));
        // SAFETY: registered pointers came from `Box::into_raw` and are freed exactly once, here
        // or in `drop`, after being unregistered.
        drop(unsafe { Box::from_raw(snapshot) });
        Status::Ok
    }

    fn owned_snapshot(&self, function: &str, snapshot: *mut ModelState) -> Result<(), Status> {
        if self.snapshots.contains(&(snapshot as usize)) {
            Ok(())
        } else {
            Err(self.refuse(
                function,
                "the FMU state was not obtained from this instance with fmi2GetFMUstate, or was \
                 already freed",
            ))
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        for address in self.snapshots.drain() {
            // SAFETY: every registered address is a live `Box<ModelState>` owned by this instance.
            drop(unsafe { Box::from_raw(address as *mut ModelState) });
        }
    }
}
