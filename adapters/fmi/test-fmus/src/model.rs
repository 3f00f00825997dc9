//! The test models: their variables, defaults and equations.
//!
//! Every model is a handful of scalar variables whose value reference is also their position in
//! the model's variable table, so an instance stores its values in one `Vec<f64>` indexed by value
//! reference (Integer variables are stored as exactly representable `f64`s). States are
//! integrated inside `fmi2DoStep` with the classical fourth-order Runge-Kutta method on an
//! internal grid of at least ten sub-steps per communication step and at most 1 ms per sub-step,
//! with the inputs held constant over the communication step. The models' own numerical error is
//! therefore negligible next to the coupling error a master introduces.

use std::fmt;

/// One of the models served by the test FMU library.
///
/// The library is a single shared object; `fmi2Instantiate`'s `fmuGUID` selects the model, and
/// every `.fmu` written by [`pack`](crate::pack) carries its model's [`guid`](Self::guid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TestModel {
    /// `x' = k x` with `x(0) = 1`: exactly `x(t) = exp(k t)`.
    Dahlquist,
    /// The whole damped mass-spring oscillator `m x'' = -d x' - c x + F`, the reference for the
    /// split pair below. See [`oscillator_exact`] for its closed-form solution.
    Oscillator,
    /// The mass half of the split oscillator: input `force`, outputs `x` and `v`,
    /// `m v' = force`, `x' = v`.
    OscillatorMass,
    /// The spring-damper half of the split oscillator: input `v`, output
    /// `force = -stiffness s - damping v`, state the elongation `s' = v`.
    OscillatorSpring,
    /// Dahlquist's equation that rejects (`fmi2Discard`, state unchanged) every communication
    /// step longer than its parameter `max_step`. Nothing was computed, so the master may retry
    /// at once with a shorter step, with or without restoring an FMU state first.
    DiscardAbove,
    /// Dahlquist's equation that stops for good at its parameter `stop_at`: the step reaching past
    /// it integrates up to `stop_at` only, returns `fmi2Discard` and reports `fmi2Terminated`.
    TerminateEarly,
    /// Dahlquist's equation whose solver "fails" (`fmi2Error`, logged under `logStatusError`) on
    /// every step starting at or after its parameter `fail_at`. Setting the Integer parameter
    /// `panic_now` to a non-zero value makes the next `fmi2DoStep` panic inside the library, which
    /// the FFI layer must turn into `fmi2Fatal`.
    Faulty,
    /// A home battery driven by a price: input `price` (€/kWh), outputs `soc` (state of charge,
    /// 0 to 1) and `net_kw` (the average power it drew from the grid over the last step,
    /// negative when it fed in). It charges at `power_kw` while the price is below `price_low`,
    /// discharges at `power_kw` while it is above `price_high`, idles in between, and never
    /// leaves `0 <= soc <= 1` (a step that reaches a bound moves only the energy that fits).
    /// Times are in seconds, energies in kWh.
    Battery,
    /// A discrete counter with Integer and Boolean ports: each completed communication step adds
    /// the Integer input `increment` to the Integer output `count` while the Boolean input
    /// `enabled` is true; the Boolean output `odd` tells whether `count` is odd.
    Counter,
}

impl TestModel {
    /// All models, in a fixed order.
    pub const ALL: [TestModel; 9] = [
        TestModel::Dahlquist,
        TestModel::Oscillator,
        TestModel::OscillatorMass,
        TestModel::OscillatorSpring,
        TestModel::DiscardAbove,
        TestModel::TerminateEarly,
        TestModel::Faulty,
        TestModel::Battery,
        TestModel::Counter,
    ];

    /// The model's name: its `modelName` and the stem of its `.fmu` file.
    pub fn name(self) -> &'static str {
        match self {
            TestModel::Dahlquist => "dahlquist",
            TestModel::Oscillator => "oscillator",
            TestModel::OscillatorMass => "oscillator_mass",
            TestModel::OscillatorSpring => "oscillator_spring",
            TestModel::DiscardAbove => "discard_above",
            TestModel::TerminateEarly => "terminate_early",
            TestModel::Faulty => "faulty",
            TestModel::Battery => "battery",
            TestModel::Counter => "counter",
        }
    }

    /// The model with this [`name`](Self::name), if any.
    pub fn from_name(name: &str) -> Option<TestModel> {
        Self::ALL.into_iter().find(|model| model.name() == name)
    }

    /// The GUID written into the model description and expected by `fmi2Instantiate`.
    pub fn guid(self) -> &'static str {
        match self {
            TestModel::Dahlquist => "{6d1f3a52-0c1e-4f7b-9a51-1b0e5fd3a001}",
            TestModel::Oscillator => "{6d1f3a52-0c1e-4f7b-9a51-1b0e5fd3a002}",
            TestModel::OscillatorMass => "{6d1f3a52-0c1e-4f7b-9a51-1b0e5fd3a003}",
            TestModel::OscillatorSpring => "{6d1f3a52-0c1e-4f7b-9a51-1b0e5fd3a004}",
            TestModel::DiscardAbove => "{6d1f3a52-0c1e-4f7b-9a51-1b0e5fd3a005}",
            TestModel::TerminateEarly => "{6d1f3a52-0c1e-4f7b-9a51-1b0e5fd3a006}",
            TestModel::Faulty => "{6d1f3a52-0c1e-4f7b-9a51-1b0e5fd3a007}",
            TestModel::Battery => "{6d1f3a52-0c1e-4f7b-9a51-1b0e5fd3a008}",
            TestModel::Counter => "{6d1f3a52-0c1e-4f7b-9a51-1b0e5fd3a009}",
        }
    }

    /// The model whose [`guid`](Self::guid) this is, if any.
    pub fn from_guid(guid: &str) -> Option<TestModel> {
        Self::ALL.into_iter().find(|model| model.guid() == guid)
    }

    /// A one-line description, written into the model description.
    pub fn description(self) -> &'static str {
        match self {
            TestModel::Dahlquist => "Dahlquist test equation x' = k x, exact solution exp(k t)",
            TestModel::Oscillator => {
                "Damped mass-spring oscillator m x'' = -damping x' - stiffness x + force"
            }
            TestModel::OscillatorMass => "Mass of the split oscillator: m v' = force, x' = v",
            TestModel::OscillatorSpring => {
                "Spring-damper of the split oscillator: s' = v, force = -stiffness s - damping v"
            }
            TestModel::DiscardAbove => {
                "Dahlquist equation that discards steps longer than max_step"
            }
            TestModel::TerminateEarly => "Dahlquist equation that terminates at stop_at",
            TestModel::Faulty => "Dahlquist equation whose solver fails from fail_at on",
            TestModel::Battery => {
                "Home battery charging below price_low and discharging above price_high"
            }
            TestModel::Counter => "Counter adding increment per step while enabled",
        }
    }

    /// The model's variables; each one's value reference is its index in this slice.
    pub fn variables(self) -> &'static [Variable] {
        match self {
            TestModel::Dahlquist => &DAHLQUIST,
            TestModel::Oscillator => &OSCILLATOR,
            TestModel::OscillatorMass => &OSCILLATOR_MASS,
            TestModel::OscillatorSpring => &OSCILLATOR_SPRING,
            TestModel::DiscardAbove => &DISCARD_ABOVE,
            TestModel::TerminateEarly => &TERMINATE_EARLY,
            TestModel::Faulty => &FAULTY,
            TestModel::Battery => &BATTERY,
            TestModel::Counter => &COUNTER,
        }
    }

    /// The variable with this value reference, if any.
    pub fn variable(self, value_reference: u32) -> Option<&'static Variable> {
        self.variables().get(usize::try_from(value_reference).ok()?)
    }

    /// The value reference of the variable called `name`, if any.
    pub fn value_reference(self, name: &str) -> Option<u32> {
        self.variables()
            .iter()
            .find(|variable| variable.name == name)
            .map(|v| v.value_reference)
    }

    /// The `<DefaultExperiment>` of the model description.
    pub fn default_experiment(self) -> DefaultExperiment {
        let (stop_time, step_size) = match self {
            TestModel::Oscillator | TestModel::OscillatorMass | TestModel::OscillatorSpring => {
                (10.0, 1e-3)
            }
            // A day in quarter hours.
            TestModel::Battery => (86_400.0, 900.0),
            _ => (1.0, 0.01),
        };
        DefaultExperiment {
            start_time: 0.0,
            stop_time,
            step_size,
            tolerance: 1e-4,
        }
    }

    /// The magnitude of the model's fastest eigenvalue with its default parameters, in rad/s:
    /// what a federate wrapping it would declare to the step controller.
    pub fn fastest_eigenvalue(self) -> f64 {
        match self {
            TestModel::Oscillator | TestModel::OscillatorMass | TestModel::OscillatorSpring => {
                (DEFAULT_STIFFNESS / DEFAULT_MASS).sqrt()
            }
            // Switched or discrete, no continuous dynamics: nothing limits the step.
            TestModel::Battery | TestModel::Counter => 0.0,
            _ => -DEFAULT_K,
        }
    }

    /// The start values of all variables, indexed by value reference (0 where a variable has no
    /// start value; such variables are calculated outputs).
    pub(crate) fn start_values(self) -> Vec<f64> {
        let mut values: Vec<f64> = self
            .variables()
            .iter()
            .map(|variable| variable.start.unwrap_or(0.0))
            .collect();
        update_outputs(self, &mut values);
        update_text_outputs(self, &self.start_texts(), &mut values);
        values
    }

    /// Start values of the String variables by value reference (empty for the others).
    pub(crate) fn start_texts(self) -> Vec<String> {
        self.variables()
            .iter()
            .map(|variable| variable.text.unwrap_or_default().to_owned())
            .collect()
    }
}

impl fmt::Display for TestModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Start, stop and step size the model description suggests to a master.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DefaultExperiment {
    /// Start time in seconds.
    pub start_time: f64,
    /// Stop time in seconds.
    pub stop_time: f64,
    /// Suggested communication step in seconds.
    pub step_size: f64,
    /// Suggested relative tolerance (the models only log the one a master sets up).
    pub tolerance: f64,
}

/// A scalar variable of a test model, as declared in its model description.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variable {
    /// The variable's name.
    pub name: &'static str,
    /// Its value reference, also its index in [`TestModel::variables`].
    pub value_reference: u32,
    /// FMI causality.
    pub causality: Causality,
    /// FMI variability.
    pub variability: Variability,
    /// FMI `initial` attribute, when written explicitly.
    pub initial: Option<Initial>,
    /// The variable's type.
    pub value_type: ValueType,
    /// Start value, absent for calculated outputs (and String variables).
    pub start: Option<f64>,
    /// Start value of a String variable.
    pub text: Option<&'static str>,
    /// Largest value, when the model description states one.
    pub max: Option<f64>,
    /// One-line description.
    pub description: &'static str,
}

impl Variable {
    /// Whether a master may set this variable before `fmi2ExitInitializationMode`: parameters,
    /// inputs and variables with `initial="exact"`.
    pub(crate) fn settable_during_initialization(&self) -> bool {
        matches!(self.causality, Causality::Parameter | Causality::Input)
            || self.initial == Some(Initial::Exact)
    }

    /// Whether a master may set this variable between steps: inputs and tunable parameters.
    pub(crate) fn settable_between_steps(&self) -> bool {
        self.causality == Causality::Input
            || (self.causality == Causality::Parameter && self.variability == Variability::Tunable)
    }
}

/// FMI 2.0 causality of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    /// Set by the user before the simulation.
    Parameter,
    /// Set by the master from another model's output.
    Input,
    /// Computed by the model and visible to the master.
    Output,
    /// Internal state, visible but not meant for coupling.
    Local,
}

impl Causality {
    /// The attribute value in a model description.
    pub fn as_str(self) -> &'static str {
        match self {
            Causality::Parameter => "parameter",
            Causality::Input => "input",
            Causality::Output => "output",
            Causality::Local => "local",
        }
    }
}

/// FMI 2.0 variability of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variability {
    /// Fixed after initialization.
    Fixed,
    /// May change between communication steps.
    Tunable,
    /// Changes only at communication points.
    Discrete,
    /// Changes continuously in time.
    Continuous,
}

impl Variability {
    /// The attribute value in a model description.
    pub fn as_str(self) -> &'static str {
        match self {
            Variability::Fixed => "fixed",
            Variability::Tunable => "tunable",
            Variability::Discrete => "discrete",
            Variability::Continuous => "continuous",
        }
    }
}

/// FMI 2.0 `initial` attribute of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initial {
    /// Initialized with its start value.
    Exact,
    /// Computed from other variables during initialization.
    Calculated,
}

impl Initial {
    /// The attribute value in a model description.
    pub fn as_str(self) -> &'static str {
        match self {
            Initial::Exact => "exact",
            Initial::Calculated => "calculated",
        }
    }
}

/// The type of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// `fmi2Real`.
    Real,
    /// `fmi2Integer`.
    Integer,
    /// `fmi2Boolean`, held as 0 or 1.
    Boolean,
    /// `fmi2String`, held apart from the numbers.
    String,
}

impl ValueType {
    /// The element name in a model description.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Real => "Real",
            ValueType::Integer => "Integer",
            ValueType::Boolean => "Boolean",
            ValueType::String => "String",
        }
    }
}

/// Value references of every model's variables.
pub mod vr {
    /// [`TestModel::Dahlquist`](crate::TestModel::Dahlquist).
    pub mod dahlquist {
        /// Output and state `x`, start 1.
        pub const X: u32 = 0;
        /// Parameter `k`, default -1.
        pub const K: u32 = 1;
    }

    /// [`TestModel::Oscillator`](crate::TestModel::Oscillator).
    pub mod oscillator {
        /// Output and state `x` (position), start 1.
        pub const X: u32 = 0;
        /// Output and state `v` (velocity), start 0.
        pub const V: u32 = 1;
        /// Input `force`, default 0.
        pub const FORCE: u32 = 2;
        /// Parameter `mass`, default 1.
        pub const MASS: u32 = 3;
        /// Parameter `stiffness`, default 100.
        pub const STIFFNESS: u32 = 4;
        /// Parameter `damping`, default 0.5.
        pub const DAMPING: u32 = 5;
    }

    /// [`TestModel::OscillatorMass`](crate::TestModel::OscillatorMass).
    pub mod oscillator_mass {
        /// Output and state `x` (position), start 1.
        pub const X: u32 = 0;
        /// Output and state `v` (velocity), start 0.
        pub const V: u32 = 1;
        /// Input `force`, default 0.
        pub const FORCE: u32 = 2;
        /// Parameter `mass`, default 1.
        pub const MASS: u32 = 3;
    }

    /// [`TestModel::OscillatorSpring`](crate::TestModel::OscillatorSpring).
    pub mod oscillator_spring {
        /// Output `force = -stiffness s - damping v` (calculated).
        pub const FORCE: u32 = 0;
        /// Input `v` (velocity of the mass), default 0.
        pub const V: u32 = 1;
        /// Local state `s` (elongation), start 1: must equal the mass's `x` at the start.
        pub const S: u32 = 2;
        /// Parameter `stiffness`, default 100.
        pub const STIFFNESS: u32 = 3;
        /// Parameter `damping`, default 0.5.
        pub const DAMPING: u32 = 4;
    }

    /// [`TestModel::DiscardAbove`](crate::TestModel::DiscardAbove).
    pub mod discard_above {
        /// Output and state `x`, start 1.
        pub const X: u32 = 0;
        /// Parameter `k`, default -1.
        pub const K: u32 = 1;
        /// Parameter `max_step`: the longest accepted communication step, default 0.01 s.
        pub const MAX_STEP: u32 = 2;
    }

    /// [`TestModel::TerminateEarly`](crate::TestModel::TerminateEarly).
    pub mod terminate_early {
        /// Output and state `x`, start 1.
        pub const X: u32 = 0;
        /// Parameter `k`, default -1.
        pub const K: u32 = 1;
        /// Parameter `stop_at`: the time at which the model terminates, default 0.5 s.
        pub const STOP_AT: u32 = 2;
    }

    /// [`TestModel::Faulty`](crate::TestModel::Faulty).
    pub mod faulty {
        /// Output and state `x`, start 1.
        pub const X: u32 = 0;
        /// Parameter `k`, default -1.
        pub const K: u32 = 1;
        /// Parameter `fail_at`: steps starting at or after it fail, default 0.3 s.
        pub const FAIL_AT: u32 = 2;
        /// Tunable Integer parameter `panic_now`, test only: non-zero makes the next `fmi2DoStep`
        /// panic inside the library.
        pub const PANIC_NOW: u32 = 3;
    }

    /// [`TestModel::Battery`](crate::TestModel::Battery).
    pub mod battery {
        /// Output `soc`, the state of charge (0 to 1), calculated from `soc0` at initialization.
        pub const SOC: u32 = 0;
        /// Output `net_kw`: average power drawn from the grid over the last step (negative when
        /// feeding in), 0 before the first step.
        pub const NET_KW: u32 = 1;
        /// Input `price` in €/kWh, default 0.25.
        pub const PRICE: u32 = 2;
        /// Parameter `capacity_kwh`, default 10.
        pub const CAPACITY_KWH: u32 = 3;
        /// Parameter `power_kw`: charging and discharging power, default 5.
        pub const POWER_KW: u32 = 4;
        /// Parameter `soc0`: initial state of charge, default 0.5.
        pub const SOC0: u32 = 5;
        /// Parameter `price_low`: charge below this price, default 0.15.
        pub const PRICE_LOW: u32 = 6;
        /// Parameter `price_high`: discharge above this price, default 0.35.
        pub const PRICE_HIGH: u32 = 7;
    }

    /// [`TestModel::Counter`](crate::TestModel::Counter).
    pub mod counter {
        /// Integer output `count`, start 0.
        pub const COUNT: u32 = 0;
        /// Boolean output `odd`: whether `count` is odd (calculated).
        pub const ODD: u32 = 1;
        /// Integer input `increment`, default 1.
        pub const INCREMENT: u32 = 2;
        /// Boolean input `enabled`, default true.
        pub const ENABLED: u32 = 3;
        /// String parameter `label`, default "counter".
        pub const LABEL: u32 = 4;
        /// Integer output `label_length`: the characters of `label` (calculated).
        pub const LABEL_LENGTH: u32 = 5;
    }
}

/// Default of `k` in the Dahlquist family.
const DEFAULT_K: f64 = -1.0;
/// Default oscillator mass in kg.
const DEFAULT_MASS: f64 = 1.0;
/// Default oscillator stiffness in N/m: with the default mass, |lambda| = 10 rad/s.
const DEFAULT_STIFFNESS: f64 = 100.0;
/// Default oscillator damping in N s/m (damping ratio 0.025).
const DEFAULT_DAMPING: f64 = 0.5;

/// Relative tolerance for comparing communication points with model parameters (`stop_at`,
/// `fail_at`, `max_step`) in spite of accumulated rounding in the master's time.
const TIME_TOLERANCE: f64 = 1e-9;
/// Largest internal Runge-Kutta step in seconds.
const MAX_INTERNAL_STEP: f64 = 1e-3;
/// Fewest internal Runge-Kutta steps per communication step.
const MIN_INTERNAL_STEPS: f64 = 10.0;

const fn real(
    name: &'static str,
    value_reference: u32,
    causality: Causality,
    variability: Variability,
    initial: Option<Initial>,
    start: Option<f64>,
    description: &'static str,
) -> Variable {
    Variable {
        name,
        value_reference,
        causality,
        variability,
        initial,
        value_type: ValueType::Real,
        start,
        text: None,
        max: None,
        description,
    }
}

const fn state(
    name: &'static str,
    value_reference: u32,
    start: f64,
    description: &'static str,
) -> Variable {
    real(
        name,
        value_reference,
        Causality::Output,
        Variability::Continuous,
        Some(Initial::Exact),
        Some(start),
        description,
    )
}

const fn parameter(
    name: &'static str,
    value_reference: u32,
    start: f64,
    description: &'static str,
) -> Variable {
    real(
        name,
        value_reference,
        Causality::Parameter,
        Variability::Fixed,
        Some(Initial::Exact),
        Some(start),
        description,
    )
}

const fn calculated_output(
    name: &'static str,
    value_reference: u32,
    description: &'static str,
) -> Variable {
    real(
        name,
        value_reference,
        Causality::Output,
        Variability::Continuous,
        Some(Initial::Calculated),
        None,
        description,
    )
}

const fn input(
    name: &'static str,
    value_reference: u32,
    start: f64,
    description: &'static str,
) -> Variable {
    real(
        name,
        value_reference,
        Causality::Input,
        Variability::Continuous,
        None,
        Some(start),
        description,
    )
}

const X_DESCRIPTION: &str = "State x of x' = k x";
const K_DESCRIPTION: &str = "Rate k of x' = k x";

static DAHLQUIST: [Variable; 2] = [
    state("x", vr::dahlquist::X, 1.0, X_DESCRIPTION),
    parameter("k", vr::dahlquist::K, DEFAULT_K, K_DESCRIPTION),
];

static OSCILLATOR: [Variable; 6] = [
    state("x", vr::oscillator::X, 1.0, "Position"),
    state("v", vr::oscillator::V, 0.0, "Velocity"),
    input("force", vr::oscillator::FORCE, 0.0, "External force"),
    parameter("mass", vr::oscillator::MASS, DEFAULT_MASS, "Mass"),
    parameter(
        "stiffness",
        vr::oscillator::STIFFNESS,
        DEFAULT_STIFFNESS,
        "Spring stiffness",
    ),
    parameter(
        "damping",
        vr::oscillator::DAMPING,
        DEFAULT_DAMPING,
        "Damping coefficient",
    ),
];

static OSCILLATOR_MASS: [Variable; 4] = [
    state("x", vr::oscillator_mass::X, 1.0, "Position"),
    state("v", vr::oscillator_mass::V, 0.0, "Velocity"),
    input(
        "force",
        vr::oscillator_mass::FORCE,
        0.0,
        "Force acting on the mass",
    ),
    parameter("mass", vr::oscillator_mass::MASS, DEFAULT_MASS, "Mass"),
];

static OSCILLATOR_SPRING: [Variable; 5] = [
    real(
        "force",
        vr::oscillator_spring::FORCE,
        Causality::Output,
        Variability::Continuous,
        Some(Initial::Calculated),
        None,
        "Force on the mass: -stiffness s - damping v",
    ),
    input("v", vr::oscillator_spring::V, 0.0, "Velocity of the mass"),
    real(
        "s",
        vr::oscillator_spring::S,
        Causality::Local,
        Variability::Continuous,
        Some(Initial::Exact),
        Some(1.0),
        "Elongation of the spring; must start equal to the mass's position",
    ),
    parameter(
        "stiffness",
        vr::oscillator_spring::STIFFNESS,
        DEFAULT_STIFFNESS,
        "Spring stiffness",
    ),
    parameter(
        "damping",
        vr::oscillator_spring::DAMPING,
        DEFAULT_DAMPING,
        "Damping coefficient",
    ),
];

static DISCARD_ABOVE: [Variable; 3] = [
    state("x", vr::discard_above::X, 1.0, X_DESCRIPTION),
    parameter("k", vr::discard_above::K, DEFAULT_K, K_DESCRIPTION),
    parameter(
        "max_step",
        vr::discard_above::MAX_STEP,
        0.01,
        "Longest accepted communication step",
    ),
];

static TERMINATE_EARLY: [Variable; 3] = [
    state("x", vr::terminate_early::X, 1.0, X_DESCRIPTION),
    parameter("k", vr::terminate_early::K, DEFAULT_K, K_DESCRIPTION),
    parameter(
        "stop_at",
        vr::terminate_early::STOP_AT,
        0.5,
        "Time at which the model terminates",
    ),
];

static FAULTY: [Variable; 4] = [
    state("x", vr::faulty::X, 1.0, X_DESCRIPTION),
    parameter("k", vr::faulty::K, DEFAULT_K, K_DESCRIPTION),
    parameter(
        "fail_at",
        vr::faulty::FAIL_AT,
        0.3,
        "Steps starting at or after this time fail",
    ),
    Variable {
        name: "panic_now",
        value_reference: vr::faulty::PANIC_NOW,
        causality: Causality::Parameter,
        variability: Variability::Tunable,
        initial: Some(Initial::Exact),
        value_type: ValueType::Integer,
        start: Some(0.0),
        text: None,
        max: None,
        description: "Test only: non-zero makes the next doStep panic inside the FMU",
    },
];

static BATTERY: [Variable; 8] = [
    calculated_output(
        "soc",
        vr::battery::SOC,
        "State of charge, 0 (empty) to 1 (full)",
    ),
    calculated_output(
        "net_kw",
        vr::battery::NET_KW,
        "Average power drawn from the grid over the last step in kW (negative: fed in)",
    ),
    input(
        "price",
        vr::battery::PRICE,
        0.25,
        "Electricity price in EUR/kWh",
    ),
    parameter(
        "capacity_kwh",
        vr::battery::CAPACITY_KWH,
        10.0,
        "Usable capacity in kWh",
    ),
    parameter(
        "power_kw",
        vr::battery::POWER_KW,
        5.0,
        "Charging and discharging power in kW",
    ),
    parameter("soc0", vr::battery::SOC0, 0.5, "Initial state of charge"),
    parameter(
        "price_low",
        vr::battery::PRICE_LOW,
        0.15,
        "Charges while the price is below this, in EUR/kWh",
    ),
    parameter(
        "price_high",
        vr::battery::PRICE_HIGH,
        0.35,
        "Discharges while the price is above this, in EUR/kWh",
    ),
];

static COUNTER: [Variable; 6] = [
    Variable {
        name: "count",
        value_reference: vr::counter::COUNT,
        causality: Causality::Output,
        variability: Variability::Discrete,
        initial: Some(Initial::Exact),
        value_type: ValueType::Integer,
        start: Some(0.0),
        text: None,
        max: None,
        description: "Sum of the increments of the enabled steps",
    },
    Variable {
        name: "odd",
        value_reference: vr::counter::ODD,
        causality: Causality::Output,
        variability: Variability::Discrete,
        initial: Some(Initial::Calculated),
        value_type: ValueType::Boolean,
        start: None,
        text: None,
        max: None,
        description: "Whether count is odd",
    },
    Variable {
        name: "increment",
        value_reference: vr::counter::INCREMENT,
        causality: Causality::Input,
        variability: Variability::Discrete,
        initial: None,
        value_type: ValueType::Integer,
        start: Some(1.0),
        text: None,
        max: Some(1000.0),
        description: "Added to count at each step while enabled",
    },
    Variable {
        name: "enabled",
        value_reference: vr::counter::ENABLED,
        causality: Causality::Input,
        variability: Variability::Discrete,
        initial: None,
        value_type: ValueType::Boolean,
        start: Some(1.0),
        text: None,
        max: None,
        description: "Whether steps count",
    },
    Variable {
        name: "label",
        value_reference: vr::counter::LABEL,
        causality: Causality::Parameter,
        variability: Variability::Fixed,
        initial: Some(Initial::Exact),
        value_type: ValueType::String,
        start: None,
        text: Some("counter"),
        max: None,
        description: "A name for the counter, reported through label_length",
    },
    Variable {
        name: "label_length",
        value_reference: vr::counter::LABEL_LENGTH,
        causality: Causality::Output,
        variability: Variability::Discrete,
        initial: Some(Initial::Calculated),
        value_type: ValueType::Integer,
        start: None,
        text: None,
        max: None,
        description: "Characters in label",
    },
];

/// What one communication step did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StepOutcome {
    /// The whole step was computed.
    Completed,
    /// The step was refused before anything was computed; the state is unchanged.
    Rejected(String),
    /// The model integrated up to `reached` (at most the step's end) and stops for good.
    Terminated {
        /// The time the model reached.
        reached: f64,
        /// Why it stopped.
        message: String,
    },
    /// The model failed before computing anything.
    Failed(String),
}

/// Advances `values` (indexed by value reference) from `time` by `step`, with the inputs held
/// at their current values.
///
/// # Panics
///
/// On purpose, when the faulty model's `panic_now` is set.
pub(crate) fn step(model: TestModel, values: &mut [f64], time: f64, step: f64) -> StepOutcome {
    let tolerance = TIME_TOLERANCE * time.abs().max(1.0);
    match model {
        TestModel::DiscardAbove => {
            let max_step = values[vr::discard_above::MAX_STEP as usize];
            if step > max_step * (1.0 + TIME_TOLERANCE) {
                return StepOutcome::Rejected(format!(
                    "communication step {step} s exceeds max_step {max_step} s; retry with a \
                     shorter step"
                ));
            }
        }
        TestModel::TerminateEarly => {
            let stop_at = values[vr::terminate_early::STOP_AT as usize];
            if time + step > stop_at + tolerance {
                let reached = stop_at.max(time);
                integrate(model, values, reached - time);
                return StepOutcome::Terminated {
                    reached,
                    message: format!("model terminated at stop_at = {stop_at} s"),
                };
            }
        }
        TestModel::Faulty => {
            if values[vr::faulty::PANIC_NOW as usize] != 0.0 {
                panic!("panic_now is set: panicking inside fmi2DoStep on purpose");
            }
            let fail_at = values[vr::faulty::FAIL_AT as usize];
            if time >= fail_at - tolerance {
                return StepOutcome::Failed(format!("simulated solver failure at t={time}"));
            }
        }
        _ => {}
    }
    integrate(model, values, step);
    StepOutcome::Completed
}

/// Checks the parameters once initialization is over; the message says what is wrong.
pub(crate) fn validate(model: TestModel, values: &[f64]) -> Result<(), String> {
    let positive = |name: &str, value: f64| {
        if value > 0.0 && value.is_finite() {
            Ok(())
        } else {
            Err(format!(
                "parameter {name} must be positive and finite, got {value}"
            ))
        }
    };
    match model {
        TestModel::Oscillator => positive("mass", values[vr::oscillator::MASS as usize]),
        TestModel::OscillatorMass => positive("mass", values[vr::oscillator_mass::MASS as usize]),
        TestModel::DiscardAbove => {
            positive("max_step", values[vr::discard_above::MAX_STEP as usize])
        }
        TestModel::Battery => {
            use vr::battery::{CAPACITY_KWH, POWER_KW, PRICE_HIGH, PRICE_LOW, SOC0};
            positive("capacity_kwh", values[CAPACITY_KWH as usize])?;
            positive("power_kw", values[POWER_KW as usize])?;
            let soc0 = values[SOC0 as usize];
            if !(0.0..=1.0).contains(&soc0) {
                return Err(format!("parameter soc0 must be within [0, 1], got {soc0}"));
            }
            let (low, high) = (values[PRICE_LOW as usize], values[PRICE_HIGH as usize]);
            if !(low.is_finite() && high.is_finite() && low <= high) {
                return Err(format!(
                    "parameters price_low = {low} and price_high = {high}: need finite values \
                     with price_low <= price_high"
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Sets the variables calculated at initialization from the parameters (the battery's `soc`
/// from `soc0`); called once, when initialization mode ends.
pub(crate) fn initialize(model: TestModel, values: &mut [f64]) {
    if model == TestModel::Battery {
        use vr::battery::{NET_KW, SOC, SOC0};
        values[SOC as usize] = values[SOC0 as usize];
        values[NET_KW as usize] = 0.0;
    }
}

/// Recomputes outputs that are functions of String variables (the counter's `label_length`).
pub(crate) fn update_text_outputs(model: TestModel, texts: &[String], values: &mut [f64]) {
    if model == TestModel::Counter {
        use vr::counter::{LABEL, LABEL_LENGTH};
        let length = texts.get(LABEL as usize).map_or(0, |t| t.chars().count());
        // A label set through the C API is far shorter than 2^53 characters: exact.
        values[LABEL_LENGTH as usize] = length as f64;
    }
}

/// Recomputes outputs that are functions of states and inputs (the spring's force, the
/// counter's parity).
pub(crate) fn update_outputs(model: TestModel, values: &mut [f64]) {
    if model == TestModel::Counter {
        use vr::counter::{COUNT, ODD};
        values[ODD as usize] = f64::from(u8::from(values[COUNT as usize] % 2.0 != 0.0));
    }
    if model == TestModel::OscillatorSpring {
        use vr::oscillator_spring::{DAMPING, FORCE, S, STIFFNESS, V};
        values[FORCE as usize] = -values[STIFFNESS as usize] * values[S as usize]
            - values[DAMPING as usize] * values[V as usize];
    }
}

/// Integrates the model's states over `duration` with RK4 and updates its outputs.
fn integrate(model: TestModel, values: &mut [f64], duration: f64) {
    if model == TestModel::Battery {
        // Piecewise constant power: exact without a solver.
        battery_step(values, duration);
        return;
    }
    if model == TestModel::Counter {
        use vr::counter::{COUNT, ENABLED, INCREMENT};
        if values[ENABLED as usize] != 0.0 {
            // Integers set through fmi2SetInteger: the sum stays exact far beyond i32.
            values[COUNT as usize] += values[INCREMENT as usize];
        }
        update_outputs(model, values);
        return;
    }
    if duration > 0.0 {
        let steps = (duration / MAX_INTERNAL_STEP)
            .ceil()
            .max(MIN_INTERNAL_STEPS);
        // The step count is a small positive integer-valued float; the cast is exact.
        let steps = steps as u64;
        let h = duration / steps as f64;
        match model {
            TestModel::Dahlquist
            | TestModel::DiscardAbove
            | TestModel::TerminateEarly
            | TestModel::Faulty => {
                let (x, k) = (vr::dahlquist::X as usize, vr::dahlquist::K as usize);
                let rate = values[k];
                let [end] = rk4([values[x]], h, steps, |[x]| [rate * x]);
                values[x] = end;
            }
            TestModel::Oscillator => {
                use vr::oscillator::{DAMPING, FORCE, MASS, STIFFNESS, V, X};
                let force = values[FORCE as usize];
                let mass = values[MASS as usize];
                let stiffness = values[STIFFNESS as usize];
                let damping = values[DAMPING as usize];
                let [x, v] = rk4(
                    [values[X as usize], values[V as usize]],
                    h,
                    steps,
                    |[x, v]| [v, (force - stiffness * x - damping * v) / mass],
                );
                values[X as usize] = x;
                values[V as usize] = v;
            }
            TestModel::OscillatorMass => {
                use vr::oscillator_mass::{FORCE, MASS, V, X};
                let acceleration = values[FORCE as usize] / values[MASS as usize];
                let [x, v] = rk4(
                    [values[X as usize], values[V as usize]],
                    h,
                    steps,
                    |[_, v]| [v, acceleration],
                );
                values[X as usize] = x;
                values[V as usize] = v;
            }
            TestModel::OscillatorSpring => {
                use vr::oscillator_spring::{S, V};
                let velocity = values[V as usize];
                let [s] = rk4([values[S as usize]], h, steps, |_| [velocity]);
                values[S as usize] = s;
            }
            // Handled above, without a solver.
            TestModel::Battery | TestModel::Counter => {}
        }
    }
    update_outputs(model, values);
}

/// Charges, discharges or idles the battery over `duration` seconds at the price held over the
/// step, moving only as much energy as fits between empty and full.
fn battery_step(values: &mut [f64], duration: f64) {
    use vr::battery::{CAPACITY_KWH, NET_KW, POWER_KW, PRICE, PRICE_HIGH, PRICE_LOW, SOC};
    if duration <= 0.0 {
        return;
    }
    let capacity = values[CAPACITY_KWH as usize];
    let soc = values[SOC as usize];
    let price = values[PRICE as usize];
    let most = values[POWER_KW as usize] * duration / 3600.0;
    let energy = if price < values[PRICE_LOW as usize] {
        most.min((1.0 - soc) * capacity).max(0.0)
    } else if price > values[PRICE_HIGH as usize] {
        -most.min(soc * capacity).max(0.0)
    } else {
        0.0
    };
    values[SOC as usize] = (soc + energy / capacity).clamp(0.0, 1.0);
    values[NET_KW as usize] = energy * 3600.0 / duration;
}

/// `steps` classical Runge-Kutta steps of length `h` for the autonomous system `y' = f(y)`.
fn rk4<const N: usize>(
    mut y: [f64; N],
    h: f64,
    steps: u64,
    f: impl Fn([f64; N]) -> [f64; N],
) -> [f64; N] {
    let axpy = |y: [f64; N], a: f64, k: [f64; N]| std::array::from_fn(|i| y[i] + a * k[i]);
    for _ in 0..steps {
        let k1 = f(y);
        let k2 = f(axpy(y, h / 2.0, k1));
        let k3 = f(axpy(y, h / 2.0, k2));
        let k4 = f(axpy(y, h, k3));
        y = std::array::from_fn(|i| y[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]));
    }
    y
}

/// The closed-form solution `(x(t), v(t))` of the free damped oscillator
/// `mass x'' + damping x' + stiffness x = 0` with `x(0) = x0`, `x'(0) = v0`.
///
/// With `sigma = damping / (2 mass)`, `omega0^2 = stiffness / mass` and
/// `omega_d = sqrt(omega0^2 - sigma^2)`, the under-damped case (the default parameters: mass 1,
/// stiffness 100, damping 0.5, so `sigma = 0.25`, `omega_d = sqrt(99.9375) ≈ 9.99687`) is
///
/// ```text
/// x(t) = exp(-sigma t) (x0 cos(omega_d t) + (v0 + sigma x0) / omega_d sin(omega_d t))
/// v(t) = exp(-sigma t) (v0 cos(omega_d t) - (omega0^2 x0 + sigma v0) / omega_d sin(omega_d t))
/// ```
///
/// so with `x(0) = 1`, `v(0) = 0`:
/// `x(t) = exp(-t/4) (cos(omega_d t) + sin(omega_d t) / (4 omega_d))` and
/// `v(t) = -100 exp(-t/4) sin(omega_d t) / omega_d`.
/// The critically damped (`omega0 = sigma`) and over-damped (`omega0 < sigma`) cases are
/// handled too. The external force is taken as zero.
///
/// A non-positive `mass` gives NaN.
pub fn oscillator_exact(
    t: f64,
    mass: f64,
    stiffness: f64,
    damping: f64,
    x0: f64,
    v0: f64,
) -> (f64, f64) {
    if mass.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return (f64::NAN, f64::NAN);
    }
    let sigma = damping / (2.0 * mass);
    let omega0_squared = stiffness / mass;
    let discriminant = omega0_squared - sigma * sigma;
    let critical_band = 1e-12 * omega0_squared.abs().max(sigma * sigma);

    if discriminant > critical_band {
        // Under-damped: decaying oscillation.
        let omega_d = discriminant.sqrt();
        let (sin, cos) = (omega_d * t).sin_cos();
        let decay = (-sigma * t).exp();
        let x = decay * (x0 * cos + (v0 + sigma * x0) / omega_d * sin);
        let v = decay * (v0 * cos - (omega0_squared * x0 + sigma * v0) / omega_d * sin);
        (x, v)
    } else if discriminant < -critical_band {
        // Over-damped: two real exponentials.
        let root = (-discriminant).sqrt();
        let (r1, r2) = (-sigma + root, -sigma - root);
        let c1 = (v0 - r2 * x0) / (r1 - r2);
        let c2 = x0 - c1;
        let (e1, e2) = ((r1 * t).exp(), (r2 * t).exp());
        (c1 * e1 + c2 * e2, c1 * r1 * e1 + c2 * r2 * e2)
    } else {
        // Critically damped: repeated root -sigma.
        let decay = (-sigma * t).exp();
        let b = v0 + sigma * x0;
        (decay * (x0 + b * t), decay * (v0 - sigma * b * t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_references_are_table_indices_and_unique_names() {
        for model in TestModel::ALL {
            for (index, variable) in model.variables().iter().enumerate() {
                assert_eq!(
                    variable.value_reference as usize, index,
                    "{model}.{}",
                    variable.name
                );
                assert_eq!(
                    model.value_reference(variable.name),
                    Some(variable.value_reference)
                );
            }
            assert_eq!(TestModel::from_name(model.name()), Some(model));
            assert_eq!(TestModel::from_guid(model.guid()), Some(model));
        }
    }

    #[test]
    fn rk4_solves_dahlquist_to_round_off() {
        let mut values = TestModel::Dahlquist.start_values();
        for _ in 0..100 {
            assert_eq!(
                step(TestModel::Dahlquist, &mut values, 0.0, 0.01),
                StepOutcome::Completed
            );
        }
        assert!((values[0] - (-1.0f64).exp()).abs() < 1e-12);
    }

    #[test]
    fn exact_oscillator_satisfies_its_equation() {
        // Check x'' = (-d x' - c x) / m by central differences in all three damping regimes.
        for (mass, stiffness, damping) in [(1.0, 100.0, 0.5), (1.0, 1.0, 2.0), (2.0, 1.0, 5.0)] {
            let exact = |t| oscillator_exact(t, mass, stiffness, damping, 1.0, -0.5);
            let (x0, v0) = exact(0.0);
            assert!((x0 - 1.0).abs() < 1e-12 && (v0 + 0.5).abs() < 1e-12);
            for t in [0.1, 0.7, 1.9] {
                let dt = 1e-4;
                let (x, v) = exact(t);
                let ((x_minus, v_minus), (x_plus, v_plus)) = (exact(t - dt), exact(t + dt));
                let acceleration = (v_plus - v_minus) / (2.0 * dt);
                assert!(((x_plus - x_minus) / (2.0 * dt) - v).abs() < 1e-5 * (1.0 + v.abs()));
                let expected = (-damping * v - stiffness * x) / mass;
                assert!((acceleration - expected).abs() < 1e-4 * (1.0 + expected.abs()));
            }
        }
    }

    #[test]
    fn whole_oscillator_fmu_matches_exact_solution() {
        let model = TestModel::Oscillator;
        let mut values = model.start_values();
        let h = 0.01;
        for n in 0..200 {
            assert_eq!(
                step(model, &mut values, n as f64 * h, h),
                StepOutcome::Completed
            );
        }
        let (x, v) = oscillator_exact(2.0, 1.0, 100.0, 0.5, 1.0, 0.0);
        assert!((values[0] - x).abs() < 1e-9, "{} vs {x}", values[0]);
        assert!((values[1] - v).abs() < 1e-8, "{} vs {v}", values[1]);
    }

    #[test]
    fn battery_follows_the_price_and_stops_at_full_and_empty() {
        use vr::battery::{NET_KW, POWER_KW, PRICE, SOC};
        let model = TestModel::Battery;
        let mut values = model.start_values();
        values[POWER_KW as usize] = 3.0;
        initialize(model, &mut values);
        assert_eq!(values[SOC as usize], 0.5);
        // Cheap: 3 kW for a quarter hour is 0.75 kWh of the 10 kWh capacity.
        values[PRICE as usize] = 0.10;
        assert_eq!(step(model, &mut values, 0.0, 900.0), StepOutcome::Completed);
        assert!((values[SOC as usize] - 0.575).abs() < 1e-12);
        assert!((values[NET_KW as usize] - 3.0).abs() < 1e-12);
        // Six more steps would pass full: the last one stores only the 0.5 kWh that fit.
        for n in 1..7 {
            step(model, &mut values, 900.0 * f64::from(n), 900.0);
        }
        assert!((values[SOC as usize] - 1.0).abs() < 1e-12);
        assert!(
            (values[NET_KW as usize] - 2.0).abs() < 1e-9,
            "0.5 kWh in 0.25 h"
        );
        // In between the thresholds: idle.
        values[PRICE as usize] = 0.25;
        step(model, &mut values, 6300.0, 900.0);
        assert_eq!(values[NET_KW as usize], 0.0);
        // Dear: feeds in until empty, never below.
        values[PRICE as usize] = 0.50;
        for n in 0..20 {
            step(model, &mut values, 7200.0 + 900.0 * f64::from(n), 900.0);
            assert!((0.0..=1.0).contains(&values[SOC as usize]));
            assert!(values[NET_KW as usize] <= 0.0);
        }
        assert!(values[SOC as usize] < 1e-12);
        assert!(values[NET_KW as usize].abs() < 1e-9);
    }

    #[test]
    fn battery_refuses_inconsistent_parameters() {
        use vr::battery::{PRICE_HIGH, SOC0};
        let model = TestModel::Battery;
        let mut values = model.start_values();
        assert_eq!(validate(model, &values), Ok(()));
        values[SOC0 as usize] = 1.5;
        assert!(validate(model, &values).unwrap_err().contains("soc0"));
        values[SOC0 as usize] = 0.5;
        values[PRICE_HIGH as usize] = 0.0;
        assert!(validate(model, &values).unwrap_err().contains("price_low"));
    }

    #[test]
    fn terminate_early_integrates_up_to_stop_at() {
        let model = TestModel::TerminateEarly;
        let mut values = model.start_values();
        let outcome = step(model, &mut values, 0.0, 0.8);
        assert!(matches!(outcome, StepOutcome::Terminated { reached, .. } if reached == 0.5));
        assert!((values[0] - (-0.5f64).exp()).abs() < 1e-12);
    }
}
