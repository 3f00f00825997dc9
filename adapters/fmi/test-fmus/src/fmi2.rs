//! The FMI 2.0 Co-Simulation C API, exported from the shared library with the exact signatures
//! of `fmi2Functions.h`, `fmi2FunctionTypes.h` and `fmi2TypesPlatform.h` (platform "default").
//!
//! # Safety
//!
//! Every function here is `unsafe` because a master calls it with raw pointers, under the rules
//! of the FMI 2.0 standard, which the caller must keep:
//!
//! - a component `c` is a pointer returned by [`fmi2Instantiate`] and not yet passed to
//!   [`fmi2FreeInstance`]; calls on one instance are not concurrent (different instances may run
//!   on different threads);
//! - an array argument with a count `n > 0` points to `n` valid elements (readable, or writable
//!   for outputs); a C string is NUL-terminated; `functions` passed to [`fmi2Instantiate`] and the
//!   logger in it stay valid while the instance lives;
//! - an `fmi2FMUstate` comes from [`fmi2GetFMUstate`] on the same instance.
//!
//! Within those rules the library checks what it cheaply can and answers misuse with `fmi2Error`
//! and a logged message rather than undefined behaviour: null pointers, components that are not
//! live instances, FMU states that do not belong to the instance, unknown value references,
//! calls out of order in the FMI state machine. No Rust panic crosses the boundary: a panic turns
//! the instance's answer into `fmi2Fatal` and the instance becomes unusable.

#![allow(non_snake_case)]
#![allow(clippy::missing_safety_doc)] // documented once, above, for the whole module

use std::any::Any;
use std::collections::BTreeSet;
use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::{Mutex, PoisonError};

use crate::instance::{Instance, Logger, ModelState, Phase};
use crate::model::{TestModel, ValueType};

/// `fmi2Component`: an instance, as the master sees it.
pub type Component = *mut c_void;
/// `fmi2ComponentEnvironment`: the master's pointer, passed back to its callbacks.
pub type ComponentEnvironment = *mut c_void;
/// `fmi2FMUstate`: a snapshot of an instance's state.
pub type FmuState = *mut c_void;
/// `fmi2ValueReference`.
pub type ValueReference = c_uint;
/// `fmi2Real`.
pub type Real = f64;
/// `fmi2Integer`.
pub type Integer = c_int;
/// `fmi2Boolean`: 0 is false, anything else true.
pub type Boolean = c_int;
/// `fmi2String`.
pub type FmiString = *const c_char;
/// `fmi2Byte`.
pub type Byte = c_char;
/// `fmi2Type` (0 model exchange, 1 co-simulation), kept as a plain `int` so that no value a
/// master passes is undefined behaviour.
pub type FmuType = c_int;
/// `fmi2StatusKind` as passed by the master; see [`StatusKind`].
pub type RawStatusKind = c_int;

/// `fmi2True`.
pub const TRUE: Boolean = 1;
/// `fmi2False`.
pub const FALSE: Boolean = 0;
/// `fmi2CoSimulation`, the only [`FmuType`] these models support.
pub const CO_SIMULATION: FmuType = 1;

/// `fmi2CallbackLogger`: `(environment, instanceName, status, category, message, ...)`, where
/// `message` is a printf format for the variadic arguments. This library always passes `"%s"`
/// and the text as the one variadic argument.
pub type CallbackLogger =
    unsafe extern "C" fn(ComponentEnvironment, FmiString, c_int, FmiString, FmiString, ...);
/// `fmi2CallbackAllocateMemory`: `calloc`-like.
pub type CallbackAllocateMemory = unsafe extern "C" fn(usize, usize) -> *mut c_void;
/// `fmi2CallbackFreeMemory`.
pub type CallbackFreeMemory = unsafe extern "C" fn(*mut c_void);
/// `fmi2StepFinished`: `(environment, status)`, for asynchronous steps (never called here).
pub type StepFinished = unsafe extern "C" fn(ComponentEnvironment, c_int);

/// `fmi2CallbackFunctions`. The library copies it in [`fmi2Instantiate`], calls only the logger
/// and allocates with Rust's allocator (`canNotUseMemoryManagementFunctions="true"`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CallbackFunctions {
    /// Receives log messages; may be null, then nothing is logged.
    pub logger: Option<CallbackLogger>,
    /// Unused.
    pub allocate_memory: Option<CallbackAllocateMemory>,
    /// Unused.
    pub free_memory: Option<CallbackFreeMemory>,
    /// Unused.
    pub step_finished: Option<StepFinished>,
    /// Passed back to the logger.
    pub component_environment: ComponentEnvironment,
}

/// `fmi2Status`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `fmi2OK`.
    Ok = 0,
    /// `fmi2Warning`.
    Warning = 1,
    /// `fmi2Discard`: the step was not (fully) computed; see the FMI standard.
    Discard = 2,
    /// `fmi2Error`: the call failed; the instance may need `fmi2Reset`.
    Error = 3,
    /// `fmi2Fatal`: the instance is unusable.
    Fatal = 4,
    /// `fmi2Pending`: never returned by this synchronous library.
    Pending = 5,
}

/// `fmi2StatusKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// `fmi2DoStepStatus` (0), asked with [`fmi2GetStatus`].
    DoStepStatus,
    /// `fmi2PendingStatus` (1), asked with [`fmi2GetStringStatus`].
    PendingStatus,
    /// `fmi2LastSuccessfulTime` (2), asked with [`fmi2GetRealStatus`].
    LastSuccessfulTime,
    /// `fmi2Terminated` (3), asked with [`fmi2GetBooleanStatus`].
    Terminated,
}

impl StatusKind {
    /// The C value of this kind.
    pub const fn raw(self) -> RawStatusKind {
        match self {
            StatusKind::DoStepStatus => 0,
            StatusKind::PendingStatus => 1,
            StatusKind::LastSuccessfulTime => 2,
            StatusKind::Terminated => 3,
        }
    }

    fn from_raw(raw: RawStatusKind) -> Option<Self> {
        [
            StatusKind::DoStepStatus,
            StatusKind::PendingStatus,
            StatusKind::LastSuccessfulTime,
            StatusKind::Terminated,
        ]
        .into_iter()
        .find(|kind| kind.raw() == raw)
    }
}

/// Addresses of the live instances, so that a stale or foreign component is refused instead of
/// dereferenced.
static LIVE_INSTANCES: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

fn live_instances() -> std::sync::MutexGuard<'static, BTreeSet<usize>> {
    LIVE_INSTANCES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Runs `body`, turning a panic into `fallback`.
fn guard<R>(fallback: R, body: impl FnOnce() -> R) -> R {
    panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "non-string panic payload"
    }
}

/// Runs `body` on the live instance `c`. A null or unknown component gives `fmi2Error` (with no
/// logger to tell); a fatal instance gives `fmi2Fatal`; a panic in `body` makes the instance
/// fatal.
unsafe fn with_instance(
    c: Component,
    function: &str,
    body: impl FnOnce(&mut Instance) -> Status,
) -> Status {
    guard(Status::Fatal, || {
        if c.is_null() || !live_instances().contains(&(c as usize)) {
            return Status::Error;
        }
        // SAFETY: `c` is registered, so it is a live `Box<Instance>` from `fmi2Instantiate`, and
        // the master makes no concurrent call on the same instance.
        let instance = unsafe { &mut *c.cast::<Instance>() };
        if instance.phase() == Phase::Fatal {
            instance.log(
                Status::Fatal,
                &format!("{function}: the instance is unusable"),
            );
            return Status::Fatal;
        }
        match panic::catch_unwind(AssertUnwindSafe(|| body(&mut *instance))) {
            Ok(status) => status,
            Err(payload) => {
                let message = panic_message(payload.as_ref()).to_owned();
                // Logging could panic again (a logger that unwinds); the answer stays Fatal.
                let _ = panic::catch_unwind(AssertUnwindSafe(|| {
                    instance.enter_fatal(function, &message);
                }));
                Status::Fatal
            }
        }
    })
}

/// The `len` elements at `pointer`, or `None` for a null pointer with `len > 0`.
///
/// # Safety
///
/// A non-null `pointer` points to `len` readable elements that outlive `'a`.
unsafe fn array<'a, T>(pointer: *const T, len: usize) -> Option<&'a [T]> {
    if len == 0 {
        Some(&[])
    } else if pointer.is_null() {
        None
    } else {
        // SAFETY: non-null with `len` elements, by the caller's contract.
        Some(unsafe { std::slice::from_raw_parts(pointer, len) })
    }
}

/// The `len` writable elements at `pointer`, or `None` for a null pointer with `len > 0`.
///
/// # Safety
///
/// A non-null `pointer` points to `len` writable elements, not aliased, that outlive `'a`.
unsafe fn array_mut<'a, T>(pointer: *mut T, len: usize) -> Option<&'a mut [T]> {
    if len == 0 {
        Some(&mut [])
    } else if pointer.is_null() {
        None
    } else {
        // SAFETY: non-null with `len` writable elements, by the caller's contract.
        Some(unsafe { std::slice::from_raw_parts_mut(pointer, len) })
    }
}

fn null_argument(instance: &Instance, function: &str, argument: &str) -> Status {
    instance.refuse(function, &format!("argument {argument} is a null pointer"))
}

// ---------------------------------------------------------------------------------------------
// Inquire platform and version, logging.

/// `fmi2GetTypesPlatform`: `"default"`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2GetTypesPlatform() -> *const c_char {
    c"default".as_ptr()
}

/// `fmi2GetVersion`: `"2.0"`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2GetVersion() -> *const c_char {
    c"2.0".as_ptr()
}

/// `fmi2SetDebugLogging`: switches debug messages on or off, for the given categories or (none
/// given) for all.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2SetDebugLogging(
    c: Component,
    loggingOn: Boolean,
    nCategories: usize,
    categories: *const FmiString,
) -> Status {
    const FUNCTION: &str = "fmi2SetDebugLogging";
    // SAFETY: the module's contract covers `c` and the array.
    unsafe {
        with_instance(c, FUNCTION, |instance| {
            let Some(pointers) = array(categories, nCategories) else {
                return null_argument(instance, FUNCTION, "categories");
            };
            let mut names = Vec::with_capacity(pointers.len());
            for &pointer in pointers {
                if pointer.is_null() {
                    return null_argument(instance, FUNCTION, "categories[i]");
                }
                names.push(CStr::from_ptr(pointer).to_string_lossy());
            }
            let names: Vec<&str> = names.iter().map(|name| name.as_ref()).collect();
            instance.set_debug_logging(loggingOn != FALSE, &names)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Creation and destruction.

/// `fmi2Instantiate`: a new co-simulation instance of the model whose GUID is `fmuGUID`, or null
/// (with a logged reason when a logger was given).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2Instantiate(
    instanceName: FmiString,
    fmuType: FmuType,
    fmuGUID: FmiString,
    fmuResourceLocation: FmiString,
    functions: *const CallbackFunctions,
    visible: Boolean,
    loggingOn: Boolean,
) -> Component {
    let _ = (fmuResourceLocation, visible);
    guard(ptr::null_mut(), || {
        // SAFETY: a non-null `functions` points to a valid struct (module contract).
        let Some(functions) = (unsafe { functions.as_ref() }).copied() else {
            return ptr::null_mut();
        };
        let logger = Logger {
            callback: functions.logger,
            environment: functions.component_environment,
        };
        let refuse = |name: &CStr, message: &str| {
            logger.log(
                name,
                Status::Error,
                "logStatusError",
                &format!("fmi2Instantiate: {message}"),
            );
            ptr::null_mut()
        };

        if instanceName.is_null() {
            return refuse(c"", "argument instanceName is a null pointer");
        }
        // SAFETY: non-null C strings are NUL-terminated (module contract).
        let name = unsafe { CStr::from_ptr(instanceName) }.to_owned();
        if fmuType != CO_SIMULATION {
            return refuse(
                &name,
                &format!("fmuType {fmuType} is not fmi2CoSimulation (1)"),
            );
        }
        if fmuGUID.is_null() {
            return refuse(&name, "argument fmuGUID is a null pointer");
        }
        // SAFETY: as above.
        let guid = unsafe { CStr::from_ptr(fmuGUID) }.to_string_lossy();
        let Some(model) = TestModel::from_guid(&guid) else {
            return refuse(&name, &format!("no model has GUID {guid}"));
        };

        let instance = Box::new(Instance::new(name, model, logger, loggingOn != FALSE));
        let component: Component = Box::into_raw(instance).cast();
        live_instances().insert(component as usize);
        component
    })
}

/// `fmi2FreeInstance`: frees the instance and every FMU state it handed out. Ignores null and
/// unknown components.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2FreeInstance(c: Component) {
    guard((), || {
        if live_instances().remove(&(c as usize)) {
            // SAFETY: `c` was registered, so it is a `Box<Instance>` from `fmi2Instantiate`; it is
            // unregistered now, so it is freed exactly once.
            drop(unsafe { Box::from_raw(c.cast::<Instance>()) });
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Initialization, termination, reset.

/// `fmi2SetupExperiment`: sets the start time and the optional stop time; the tolerance is
/// only logged (the models integrate with a fixed internal step).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2SetupExperiment(
    c: Component,
    toleranceDefined: Boolean,
    tolerance: Real,
    startTime: Real,
    stopTimeDefined: Boolean,
    stopTime: Real,
) -> Status {
    let tolerance = (toleranceDefined != FALSE).then_some(tolerance);
    let stop_time = (stopTimeDefined != FALSE).then_some(stopTime);
    // SAFETY: the module's contract covers `c`.
    unsafe {
        with_instance(c, "fmi2SetupExperiment", |instance| {
            instance.setup_experiment(tolerance, startTime, stop_time)
        })
    }
}

/// `fmi2EnterInitializationMode`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2EnterInitializationMode(c: Component) -> Status {
    // SAFETY: the module's contract covers `c`.
    unsafe {
        with_instance(
            c,
            "fmi2EnterInitializationMode",
            Instance::enter_initialization_mode,
        )
    }
}

/// `fmi2ExitInitializationMode`: checks the parameters and makes the instance ready to step.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2ExitInitializationMode(c: Component) -> Status {
    // SAFETY: the module's contract covers `c`.
    unsafe {
        with_instance(
            c,
            "fmi2ExitInitializationMode",
            Instance::exit_initialization_mode,
        )
    }
}

/// `fmi2Terminate`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2Terminate(c: Component) -> Status {
    // SAFETY: the module's contract covers `c`.
    unsafe { with_instance(c, "fmi2Terminate", Instance::terminate) }
}

/// `fmi2Reset`: back to the state right after `fmi2Instantiate`, parameters included.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2Reset(c: Component) -> Status {
    // SAFETY: the module's contract covers `c`.
    unsafe { with_instance(c, "fmi2Reset", Instance::reset) }
}

// ---------------------------------------------------------------------------------------------
// Getting and setting variable values.

/// Shared body of the typed getters: checks the arrays, then reads through `store`.
unsafe fn get<T>(
    c: Component,
    function: &str,
    value_type: ValueType,
    vr: *const ValueReference,
    nvr: usize,
    value: *mut T,
    convert: impl Fn(f64) -> T,
) -> Status {
    // SAFETY: the module's contract covers `c` and both arrays.
    unsafe {
        with_instance(c, function, |instance| {
            let Some(references) = array(vr, nvr) else {
                return null_argument(instance, function, "vr");
            };
            let Some(values) = array_mut(value, nvr) else {
                return null_argument(instance, function, "value");
            };
            instance.read(function, value_type, references, |i, v| {
                values[i] = convert(v)
            })
        })
    }
}

/// Shared body of the typed setters: checks the arrays, then writes atomically.
unsafe fn set<T: Copy>(
    c: Component,
    function: &str,
    value_type: ValueType,
    vr: *const ValueReference,
    nvr: usize,
    value: *const T,
    convert: impl Fn(T) -> f64,
) -> Status {
    // SAFETY: the module's contract covers `c` and both arrays.
    unsafe {
        with_instance(c, function, |instance| {
            let Some(references) = array(vr, nvr) else {
                return null_argument(instance, function, "vr");
            };
            let Some(values) = array(value, nvr) else {
                return null_argument(instance, function, "value");
            };
            instance.write(function, value_type, references, |i| convert(values[i]))
        })
    }
}

/// `fmi2GetReal`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2GetReal(
    c: Component,
    vr: *const ValueReference,
    nvr: usize,
    value: *mut Real,
) -> Status {
    // SAFETY: forwarded under the module's contract.
    unsafe { get(c, "fmi2GetReal", ValueType::Real, vr, nvr, value, |v| v) }
}

/// `fmi2GetInteger`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2GetInteger(
    c: Component,
    vr: *const ValueReference,
    nvr: usize,
    value: *mut Integer,
) -> Status {
    // Integer variables only ever hold values set from `fmi2Integer`s: the cast is exact.
    // SAFETY: forwarded under the module's contract.
    unsafe {
        get(
            c,
            "fmi2GetInteger",
            ValueType::Integer,
            vr,
            nvr,
            value,
            |v| v as Integer,
        )
    }
}

/// `fmi2GetBoolean`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2GetBoolean(
    c: Component,
    vr: *const ValueReference,
    nvr: usize,
    value: *mut Boolean,
) -> Status {
    // SAFETY: forwarded under the module's contract.
    unsafe {
        get(
            c,
            "fmi2GetBoolean",
            ValueType::Boolean,
            vr,
            nvr,
            value,
            |v| if v != 0.0 { TRUE } else { FALSE },
        )
    }
}

/// `fmi2GetString`: the strings stay valid until the next `fmi2GetString` on the instance.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2GetString(
    c: Component,
    vr: *const ValueReference,
    nvr: usize,
    value: *mut FmiString,
) -> Status {
    const FUNCTION: &str = "fmi2GetString";
    // SAFETY: the module's contract covers `c` and both arrays.
    unsafe {
        with_instance(c, FUNCTION, |instance| {
            let Some(references) = array(vr, nvr) else {
                return null_argument(instance, FUNCTION, "vr");
            };
            let Some(values) = array_mut(value, nvr) else {
                return null_argument(instance, FUNCTION, "value");
            };
            match instance.read_texts(FUNCTION, references) {
                Ok(pointers) => {
                    values.copy_from_slice(&pointers);
                    Status::Ok
                }
                Err(status) => status,
            }
        })
    }
}

/// `fmi2SetReal`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2SetReal(
    c: Component,
    vr: *const ValueReference,
    nvr: usize,
    value: *const Real,
) -> Status {
    // SAFETY: forwarded under the module's contract.
    unsafe { set(c, "fmi2SetReal", ValueType::Real, vr, nvr, value, |v| v) }
}

/// `fmi2SetInteger`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2SetInteger(
    c: Component,
    vr: *const ValueReference,
    nvr: usize,
    value: *const Integer,
) -> Status {
    // SAFETY: forwarded under the module's contract.
    unsafe {
        set(
            c,
            "fmi2SetInteger",
            ValueType::Integer,
            vr,
            nvr,
            value,
            f64::from,
        )
    }
}

/// `fmi2SetBoolean`: any non-zero `fmi2Boolean` is true.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2SetBoolean(
    c: Component,
    vr: *const ValueReference,
    nvr: usize,
    value: *const Boolean,
) -> Status {
    // SAFETY: forwarded under the module's contract.
    unsafe {
        set(
            c,
            "fmi2SetBoolean",
            ValueType::Boolean,
            vr,
            nvr,
            value,
            |b| if b != FALSE { 1.0 } else { 0.0 },
        )
    }
}

/// `fmi2SetString`: copies the strings; a null string is an error, invalid UTF-8 is replaced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2SetString(
    c: Component,
    vr: *const ValueReference,
    nvr: usize,
    value: *const FmiString,
) -> Status {
    const FUNCTION: &str = "fmi2SetString";
    // SAFETY: the module's contract covers `c`, both arrays and the strings they point to.
    unsafe {
        with_instance(c, FUNCTION, |instance| {
            let Some(references) = array(vr, nvr) else {
                return null_argument(instance, FUNCTION, "vr");
            };
            let Some(pointers) = array(value, nvr) else {
                return null_argument(instance, FUNCTION, "value");
            };
            let mut texts = Vec::with_capacity(nvr);
            for &pointer in pointers {
                if pointer.is_null() {
                    return null_argument(instance, FUNCTION, "value[i]");
                }
                // SAFETY: a non-null fmi2String is a NUL-terminated string (the contract).
                let text = CStr::from_ptr(pointer);
                texts.push(text.to_string_lossy().into_owned());
            }
            instance.write_texts(FUNCTION, references, texts)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// FMU state.

/// `fmi2GetFMUstate`: captures the whole state into a new FMU state (`*FMUstate` null) or into
/// the existing one `*FMUstate`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2GetFMUstate(c: Component, FMUstate: *mut FmuState) -> Status {
    const FUNCTION: &str = "fmi2GetFMUstate";
    // SAFETY: the module's contract covers `c` and `FMUstate`.
    unsafe {
        with_instance(c, FUNCTION, |instance| {
            let Some(slot) = FMUstate.as_mut() else {
                return null_argument(instance, FUNCTION, "FMUstate");
            };
            let existing = (!slot.is_null()).then(|| slot.cast::<ModelState>());
            match instance.capture(existing) {
                Ok(snapshot) => {
                    *slot = snapshot.cast();
                    Status::Ok
                }
                Err(status) => status,
            }
        })
    }
}

/// `fmi2SetFMUstate`: restores a state captured by this instance.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2SetFMUstate(c: Component, FMUstate: FmuState) -> Status {
    // SAFETY: the module's contract covers `c`; the state is checked against the instance's own.
    unsafe {
        with_instance(c, "fmi2SetFMUstate", |instance| {
            instance.restore(FMUstate.cast())
        })
    }
}

/// `fmi2FreeFMUstate`: frees `*FMUstate` and sets it to null; a null state is a no-op.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2FreeFMUstate(c: Component, FMUstate: *mut FmuState) -> Status {
    const FUNCTION: &str = "fmi2FreeFMUstate";
    // SAFETY: the module's contract covers `c` and `FMUstate`.
    unsafe {
        with_instance(c, FUNCTION, |instance| {
            let Some(slot) = FMUstate.as_mut() else {
                return null_argument(instance, FUNCTION, "FMUstate");
            };
            if slot.is_null() {
                return Status::Ok;
            }
            let status = instance.release(slot.cast());
            if status == Status::Ok {
                *slot = ptr::null_mut();
            }
            status
        })
    }
}

fn serialization_unsupported(instance: &Instance, function: &str) -> Status {
    instance.refuse(
        function,
        "FMU state serialization is not supported (canSerializeFMUstate=false)",
    )
}

/// `fmi2SerializedFMUstateSize`: not supported (`canSerializeFMUstate="false"`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2SerializedFMUstateSize(
    c: Component,
    FMUstate: FmuState,
    size: *mut usize,
) -> Status {
    let _ = (FMUstate, size);
    const FUNCTION: &str = "fmi2SerializedFMUstateSize";
    // SAFETY: the module's contract covers `c`; no other pointer is touched.
    unsafe {
        with_instance(c, FUNCTION, |instance| {
            serialization_unsupported(instance, FUNCTION)
        })
    }
}

/// `fmi2SerializeFMUstate`: not supported (`canSerializeFMUstate="false"`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2SerializeFMUstate(
    c: Component,
    FMUstate: FmuState,
    serializedState: *mut Byte,
    size: usize,
) -> Status {
    let _ = (FMUstate, serializedState, size);
    const FUNCTION: &str = "fmi2SerializeFMUstate";
    // SAFETY: the module's contract covers `c`; no other pointer is touched.
    unsafe {
        with_instance(c, FUNCTION, |instance| {
            serialization_unsupported(instance, FUNCTION)
        })
    }
}

/// `fmi2DeSerializeFMUstate`: not supported (`canSerializeFMUstate="false"`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2DeSerializeFMUstate(
    c: Component,
    serializedState: *const Byte,
    size: usize,
    FMUstate: *mut FmuState,
) -> Status {
    let _ = (serializedState, size, FMUstate);
    const FUNCTION: &str = "fmi2DeSerializeFMUstate";
    // SAFETY: the module's contract covers `c`; no other pointer is touched.
    unsafe {
        with_instance(c, FUNCTION, |instance| {
            serialization_unsupported(instance, FUNCTION)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Derivatives.

/// `fmi2GetDirectionalDerivative`: not provided (`providesDirectionalDerivative="false"`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2GetDirectionalDerivative(
    c: Component,
    vUnknown_ref: *const ValueReference,
    nUnknown: usize,
    vKnown_ref: *const ValueReference,
    nKnown: usize,
    dvKnown: *const Real,
    dvUnknown: *mut Real,
) -> Status {
    let _ = (
        vUnknown_ref,
        nUnknown,
        vKnown_ref,
        nKnown,
        dvKnown,
        dvUnknown,
    );
    const FUNCTION: &str = "fmi2GetDirectionalDerivative";
    // SAFETY: the module's contract covers `c`; no other pointer is touched.
    unsafe {
        with_instance(c, FUNCTION, |instance| {
            instance.refuse(
                FUNCTION,
                "not provided (providesDirectionalDerivative=false)",
            )
        })
    }
}

/// `fmi2SetRealInputDerivatives`: not supported (`canInterpolateInputs="false"`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2SetRealInputDerivatives(
    c: Component,
    vr: *const ValueReference,
    nvr: usize,
    order: *const Integer,
    value: *const Real,
) -> Status {
    let _ = (vr, nvr, order, value);
    const FUNCTION: &str = "fmi2SetRealInputDerivatives";
    // SAFETY: the module's contract covers `c`; no other pointer is touched.
    unsafe {
        with_instance(c, FUNCTION, |instance| {
            instance.refuse(
                FUNCTION,
                "inputs are held constant (canInterpolateInputs=false)",
            )
        })
    }
}

/// `fmi2GetRealOutputDerivatives`: not supported (`maxOutputDerivativeOrder="0"`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2GetRealOutputDerivatives(
    c: Component,
    vr: *const ValueReference,
    nvr: usize,
    order: *const Integer,
    value: *mut Real,
) -> Status {
    let _ = (vr, nvr, order, value);
    const FUNCTION: &str = "fmi2GetRealOutputDerivatives";
    // SAFETY: the module's contract covers `c`; no other pointer is touched.
    unsafe {
        with_instance(c, FUNCTION, |instance| {
            instance.refuse(
                FUNCTION,
                "no output derivatives (maxOutputDerivativeOrder=0)",
            )
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Stepping and status.

/// `fmi2DoStep`: advances from `currentCommunicationPoint` (which must be the instance's time)
/// by `communicationStepSize`, with the inputs held constant.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2DoStep(
    c: Component,
    currentCommunicationPoint: Real,
    communicationStepSize: Real,
    noSetFMUStatePriorToCurrentPoint: Boolean,
) -> Status {
    let _ = noSetFMUStatePriorToCurrentPoint;
    // SAFETY: the module's contract covers `c`.
    unsafe {
        with_instance(c, "fmi2DoStep", |instance| {
            instance.do_step(currentCommunicationPoint, communicationStepSize)
        })
    }
}

/// `fmi2CancelStep`: steps are synchronous, so there is never one to cancel.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2CancelStep(c: Component) -> Status {
    const FUNCTION: &str = "fmi2CancelStep";
    // SAFETY: the module's contract covers `c`.
    unsafe {
        with_instance(c, FUNCTION, |instance| {
            instance.refuse(
                FUNCTION,
                "no asynchronous step to cancel (canRunAsynchronuously=false)",
            )
        })
    }
}

/// Shared body of the status queries.
unsafe fn status_query<T>(
    c: Component,
    function: &str,
    kind: RawStatusKind,
    value: *mut T,
    query: impl FnOnce(&Instance, StatusKind) -> Result<T, Status>,
) -> Status {
    // SAFETY: the module's contract covers `c` and `value`.
    unsafe {
        with_instance(c, function, |instance| {
            let Some(slot) = value.as_mut() else {
                return null_argument(instance, function, "value");
            };
            let Some(kind) = StatusKind::from_raw(kind) else {
                return instance.refuse(function, &format!("unknown fmi2StatusKind {kind}"));
            };
            match query(instance, kind) {
                Ok(answer) => {
                    *slot = answer;
                    Status::Ok
                }
                Err(status) => status,
            }
        })
    }
}

/// `fmi2GetStatus`: for `fmi2DoStepStatus`, the status of the last `fmi2DoStep`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2GetStatus(
    c: Component,
    s: RawStatusKind,
    value: *mut Status,
) -> Status {
    // SAFETY: forwarded under the module's contract.
    unsafe { status_query(c, "fmi2GetStatus", s, value, Instance::status) }
}

/// `fmi2GetRealStatus`: for `fmi2LastSuccessfulTime`, the time the last step reached.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2GetRealStatus(
    c: Component,
    s: RawStatusKind,
    value: *mut Real,
) -> Status {
    // SAFETY: forwarded under the module's contract.
    unsafe { status_query(c, "fmi2GetRealStatus", s, value, Instance::real_status) }
}

/// `fmi2GetIntegerStatus`: no Integer status exists; `fmi2Discard`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2GetIntegerStatus(
    c: Component,
    s: RawStatusKind,
    value: *mut Integer,
) -> Status {
    const FUNCTION: &str = "fmi2GetIntegerStatus";
    // SAFETY: forwarded under the module's contract.
    unsafe {
        status_query(c, FUNCTION, s, value, |instance, kind| {
            Err(instance.status_not_available(FUNCTION, kind))
        })
    }
}

/// `fmi2GetBooleanStatus`: for `fmi2Terminated`, whether the model stopped for good.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2GetBooleanStatus(
    c: Component,
    s: RawStatusKind,
    value: *mut Boolean,
) -> Status {
    // SAFETY: forwarded under the module's contract.
    unsafe {
        status_query(c, "fmi2GetBooleanStatus", s, value, |instance, kind| {
            instance
                .boolean_status(kind)
                .map(|terminated| if terminated { TRUE } else { FALSE })
        })
    }
}

/// `fmi2GetStringStatus`: `fmi2PendingStatus` never applies to synchronous steps; `fmi2Discard`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fmi2GetStringStatus(
    c: Component,
    s: RawStatusKind,
    value: *mut FmiString,
) -> Status {
    const FUNCTION: &str = "fmi2GetStringStatus";
    // SAFETY: forwarded under the module's contract.
    unsafe {
        status_query(c, FUNCTION, s, value, |instance, kind| {
            Err(instance.status_not_available(FUNCTION, kind))
        })
    }
}
