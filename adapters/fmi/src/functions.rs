//! The C interface of FMI 2.0 Co-Simulation, resolved from an FMU's shared library.
//!
//! Types follow `fmi2TypesPlatform.h` ("default" platform) and `fmi2FunctionTypes.h`:
//! `fmi2Boolean`, `fmi2Integer` and the enumerations are C `int`, `fmi2ValueReference` is
//! `unsigned int`, `fmi2Real` is `double`, strings are `const char*`.

use std::ffi::{c_char, c_double, c_int, c_uint, c_void};
use std::path::Path;

use libloading::Library;

use crate::error::FmiError;

pub(crate) type Component = *mut c_void;
pub(crate) type ComponentEnvironment = *mut c_void;
pub(crate) type FmuStatePtr = *mut c_void;
pub(crate) type Status = c_int;
pub(crate) type Boolean = c_int;
pub(crate) type ValueReference = c_uint;

pub(crate) const FMI2_TRUE: Boolean = 1;
pub(crate) const FMI2_FALSE: Boolean = 0;
/// `fmi2CoSimulation` in `fmi2Type`.
pub(crate) const CO_SIMULATION: c_int = 1;
/// `fmi2LastSuccessfulTime` in `fmi2StatusKind`.
pub(crate) const LAST_SUCCESSFUL_TIME: c_int = 2;
/// `fmi2Terminated` in `fmi2StatusKind`.
pub(crate) const TERMINATED: c_int = 3;

/// `fmi2CallbackLogger`: variadic, implemented in `logger.c`.
pub(crate) type Logger = unsafe extern "C" fn(
    ComponentEnvironment,
    *const c_char,
    Status,
    *const c_char,
    *const c_char,
    ...
);

/// `fmi2CallbackFunctions`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct CallbackFunctions {
    pub(crate) logger: Logger,
    pub(crate) allocate_memory: unsafe extern "C" fn(usize, usize) -> *mut c_void,
    pub(crate) free_memory: unsafe extern "C" fn(*mut c_void),
    pub(crate) step_finished: Option<unsafe extern "C" fn(ComponentEnvironment, Status)>,
    pub(crate) component_environment: ComponentEnvironment,
}

// SAFETY: the struct is never changed after it is made: it holds function pointers and the
// address of a `LogEnvironment`, which is itself `Send` and `Sync`. Sharing or moving it between
// threads is what FMI expects (an FMU may log from its own threads).
unsafe impl Send for CallbackFunctions {}
// SAFETY: as above.
unsafe impl Sync for CallbackFunctions {}

macro_rules! fmi2_functions {
    ($($field:ident: $symbol:literal => fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        /// Every function FMI 2.0 Co-Simulation defines, with the library they come from.
        ///
        /// All are resolved so that an incomplete FMU is refused when it is loaded, not midway
        /// through a run; the serialization and derivative functions are not called yet.
        #[allow(dead_code, reason = "resolved to check the FMU, not all are called yet")]
        pub(crate) struct Functions {
            $(pub(crate) $field: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
            /// Kept loaded as long as the pointers above may be called.
            _library: Library,
        }

        impl Functions {
            /// Loads the library and resolves every function.
            pub(crate) fn load(path: &Path) -> Result<Self, FmiError> {
                // SAFETY: loading a library runs its initialisers, which an FMU is trusted to
                // have (running its code is the point of loading it). The path is the FMU's own
                // binary inside our private directory.
                let library = unsafe { Library::new(path) }.map_err(|source| {
                    FmiError::LoadLibrary { path: path.to_owned(), source }
                })?;
                $(
                    // SAFETY: the type is the one fmi2FunctionTypes.h declares for this symbol;
                    // the pointer is copied out of the `Symbol` but only called while `library`,
                    // stored beside it, stays loaded.
                    let $field = *unsafe {
                        library.get::<unsafe extern "C" fn($($arg),*) $(-> $ret)?>(
                            concat!($symbol, "\0").as_bytes(),
                        )
                    }
                    .map_err(|source| FmiError::MissingSymbol {
                        symbol: $symbol,
                        library: path.to_owned(),
                        source,
                    })?;
                )*
                Ok(Self { $($field,)* _library: library })
            }
        }
    };
}

fmi2_functions! {
    get_types_platform: "fmi2GetTypesPlatform" => fn() -> *const c_char;
    get_version: "fmi2GetVersion" => fn() -> *const c_char;
    set_debug_logging: "fmi2SetDebugLogging"
        => fn(Component, Boolean, usize, *const *const c_char) -> Status;
    instantiate: "fmi2Instantiate" => fn(
        *const c_char,
        c_int,
        *const c_char,
        *const c_char,
        *const CallbackFunctions,
        Boolean,
        Boolean
    ) -> Component;
    free_instance: "fmi2FreeInstance" => fn(Component);
    setup_experiment: "fmi2SetupExperiment"
        => fn(Component, Boolean, c_double, c_double, Boolean, c_double) -> Status;
    enter_initialization_mode: "fmi2EnterInitializationMode" => fn(Component) -> Status;
    exit_initialization_mode: "fmi2ExitInitializationMode" => fn(Component) -> Status;
    terminate: "fmi2Terminate" => fn(Component) -> Status;
    reset: "fmi2Reset" => fn(Component) -> Status;
    get_real: "fmi2GetReal"
        => fn(Component, *const ValueReference, usize, *mut c_double) -> Status;
    get_integer: "fmi2GetInteger"
        => fn(Component, *const ValueReference, usize, *mut c_int) -> Status;
    get_boolean: "fmi2GetBoolean"
        => fn(Component, *const ValueReference, usize, *mut Boolean) -> Status;
    get_string: "fmi2GetString"
        => fn(Component, *const ValueReference, usize, *mut *const c_char) -> Status;
    set_real: "fmi2SetReal"
        => fn(Component, *const ValueReference, usize, *const c_double) -> Status;
    set_integer: "fmi2SetInteger"
        => fn(Component, *const ValueReference, usize, *const c_int) -> Status;
    set_boolean: "fmi2SetBoolean"
        => fn(Component, *const ValueReference, usize, *const Boolean) -> Status;
    set_string: "fmi2SetString"
        => fn(Component, *const ValueReference, usize, *const *const c_char) -> Status;
    get_fmu_state: "fmi2GetFMUstate" => fn(Component, *mut FmuStatePtr) -> Status;
    set_fmu_state: "fmi2SetFMUstate" => fn(Component, FmuStatePtr) -> Status;
    free_fmu_state: "fmi2FreeFMUstate" => fn(Component, *mut FmuStatePtr) -> Status;
    serialized_fmu_state_size: "fmi2SerializedFMUstateSize"
        => fn(Component, FmuStatePtr, *mut usize) -> Status;
    serialize_fmu_state: "fmi2SerializeFMUstate"
        => fn(Component, FmuStatePtr, *mut u8, usize) -> Status;
    deserialize_fmu_state: "fmi2DeSerializeFMUstate"
        => fn(Component, *const u8, usize, *mut FmuStatePtr) -> Status;
    get_directional_derivative: "fmi2GetDirectionalDerivative" => fn(
        Component,
        *const ValueReference,
        usize,
        *const ValueReference,
        usize,
        *const c_double,
        *mut c_double
    ) -> Status;
    set_real_input_derivatives: "fmi2SetRealInputDerivatives"
        => fn(Component, *const ValueReference, usize, *const c_int, *const c_double) -> Status;
    get_real_output_derivatives: "fmi2GetRealOutputDerivatives"
        => fn(Component, *const ValueReference, usize, *const c_int, *mut c_double) -> Status;
    do_step: "fmi2DoStep" => fn(Component, c_double, c_double, Boolean) -> Status;
    cancel_step: "fmi2CancelStep" => fn(Component) -> Status;
    get_status: "fmi2GetStatus" => fn(Component, c_int, *mut Status) -> Status;
    get_real_status: "fmi2GetRealStatus" => fn(Component, c_int, *mut c_double) -> Status;
    get_integer_status: "fmi2GetIntegerStatus" => fn(Component, c_int, *mut c_int) -> Status;
    get_boolean_status: "fmi2GetBooleanStatus" => fn(Component, c_int, *mut Boolean) -> Status;
    get_string_status: "fmi2GetStringStatus"
        => fn(Component, c_int, *mut *const c_char) -> Status;
}

impl std::fmt::Debug for Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Functions")
            .field("library", &self._library)
            .finish_non_exhaustive()
    }
}
