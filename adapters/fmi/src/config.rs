//! `adapter.toml`: how one FMU takes part in a federation.
//!
//! ```toml
//! fmu = "oscillator_mass.fmu"   # relative to this file
//! instance = "mass"             # federate name (and certificate identity against a daemon)
//! federation = "oscillator"
//! # rti = "quic://127.0.0.1:4433"   # absent: an RTI embedded in the process
//! # certs = "certs"                 # with `rti`: folder of ca.pem and this identity's files
//! expect = ["mass", "spring"]   # optional: wait for these federates before stepping
//!
//! [experiment]                  # absent times: the FMU's DefaultExperiment, else 0s to 1s
//! start = "0s"
//! stop = "10s"
//! tolerance = 1e-6              # the FMU solver's relative tolerance; absent: the FMU's own
//!
//! [step]
//! size = "10ms"                 # absent: the step controller chooses the largest stable step
//! min = "1us"
//! max = "100ms"
//! alpha = 0.9
//! fastest_eigenvalue = 10.0     # |lambda| in 1/s of the coupling this FMU takes part in
//! override_stability = false
//!
//! [parameters]                  # start values set before initialization
//! mass = 1.0                    # Real and Integer: numbers; Boolean: true/false (or 1/0)
//! # spring.c = 1e3              # dotted (Modelica) names may be bare; quote "x[1]"
//! # table = "load.csv"          # String: a string
//!
//! [[object_class]]              # optional: the federation's object model, verbatim
//! name = "Mass.State"
//! attributes = ["x", "v"]
//!
//! [[publish]]                   # FMU output -> attribute
//! variable = "x"
//! attribute = "Mass.State.x"
//!
//! [[subscribe]]                 # attribute -> FMU input
//! attribute = "Spring.State.force"
//! variable = "force"
//! start = -100.0                # the input's value until the first reflection
//! ```
//!
//! [`AdapterConfig::load`] checks the file on its own (syntax, unknown keys, times, attribute
//! paths); [`AdapterConfig::resolve`] checks it against the FMU's model description (variable
//! names, types, causalities). Every error names the file and the line at fault.
//!
//! Without `[[object_class]]` the object model is derived from the publish and subscribe
//! attribute paths (class = everything before the last dot). Adapters that map different
//! subsets of a class need not agree: the RTI merges each one's model into the federation's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use fedtwin_core::step::StepSettings;
use fedtwin_core::{ObjectModel, SimDuration, SimTime};
use serde::Deserialize;
use toml::Spanned;

use crate::ModelDescription;
use crate::model_description::{
    Causality, Initial, ScalarVariable, ValueRange, ValueType, Variability,
};

/// Why an adapter configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the adapter configuration {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML or does not have the expected keys.
    #[error("{file}: {message}")]
    Syntax {
        /// The file, as given.
        file: String,
        /// The TOML parser's message, which shows the line.
        message: String,
    },
    /// A value is wrong; the line shows which.
    #[error("{file}, line {line}: {message}")]
    Invalid {
        /// The file, as given.
        file: String,
        /// 1-based line of the value at fault.
        line: usize,
        /// What is wrong and what to write instead.
        message: String,
    },
}

/// A checked adapter configuration (see the [module documentation](self)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AdapterConfig {
    /// The configuration file, for messages.
    pub file: String,
    /// The `.fmu` archive.
    pub fmu: PathBuf,
    /// The federate's name, also the FMU instance's name.
    pub instance: String,
    /// The federation to join (created when missing).
    pub federation: String,
    /// A daemon's address (`quic://host:port`); `None` for an embedded RTI.
    pub rti: Option<String>,
    /// Folder of `ca.pem` and this identity's certificate and key (with `rti`).
    pub certs: PathBuf,
    /// Federates to wait for before the first step (empty: no start barrier).
    pub expect: Vec<String>,
    /// Start of the experiment.
    pub start: SimTime,
    /// End of the experiment.
    pub stop: SimTime,
    /// Whether `start` and `stop` were given (by the file or a runner); what was not given
    /// comes from the FMU's `DefaultExperiment` ([`AdapterConfig::with_model_defaults`]),
    /// else start 0 s and stop 1 s.
    pub experiment_given: (bool, bool),
    /// The relative tolerance for the FMU's own solver (`fmi2SetupExperiment`); `None` lets
    /// the FMU choose. From `[experiment] tolerance`, else the FMU's `DefaultExperiment`.
    pub tolerance: Option<f64>,
    /// The FMU's suggested communication step (`DefaultExperiment stepSize`): the step the
    /// controller chooses when neither `step_size` nor any dynamics are given.
    pub suggested_step: Option<SimDuration>,
    /// The requested communication step; `None` lets the step controller choose.
    pub step_size: Option<SimDuration>,
    /// The step controller's settings.
    pub step: StepSettings,
    /// `|lambda|` in 1/s of the coupling this FMU takes part in, if declared.
    pub fastest_eigenvalue: Option<f64>,
    /// The declared `|lambda|` of the federates coupled with this one, by name: the step
    /// controller keeps the step stable for the fastest of them too. The file has none; a
    /// runner that knows the other federates sets them.
    pub coupled: Vec<(String, f64)>,
    /// Start values set before initialization, by variable name.
    pub parameters: Vec<Parameter>,
    /// FMU outputs published as attributes.
    pub publish: Vec<Publication>,
    /// Attributes written into FMU inputs.
    pub subscribe: Vec<Subscription>,
    /// The federation's object model: classes with their attributes.
    pub object_classes: Vec<(String, Vec<String>)>,
    /// Interaction classes with their parameters. The file has none (an FMU neither sends nor
    /// receives interactions); a runner sets them so that the adapter creates the federation
    /// with the same model as the other federates of the run.
    pub interaction_classes: Vec<(String, Vec<String>)>,
    /// Ask the FMU to log everything (as `tracing` debug events).
    pub fmu_logging: bool,
}

/// A start value for an FMU variable.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// The variable's name.
    pub variable: String,
    /// Its value.
    pub value: ParameterValue,
    /// Line in the configuration.
    pub line: usize,
}

/// A value from `[parameters]`, as TOML typed it; checked against the variable's type by
/// [`AdapterConfig::resolve`].
#[derive(Debug, Clone, PartialEq)]
pub enum ParameterValue {
    /// `true` or `false`: a Boolean variable.
    Boolean(bool),
    /// An integer or a float: a Real, Integer or Boolean (0 or 1) variable.
    Number(f64),
    /// A string: a String variable.
    Text(String),
}

impl fmt::Display for ParameterValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Boolean(b) => write!(f, "{b}"),
            Self::Number(v) => write!(f, "{v}"),
            Self::Text(text) => write!(f, "{text:?}"),
        }
    }
}

/// An FMU output published as an attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The FMU output.
    pub variable: String,
    /// The attribute's class.
    pub class: String,
    /// The attribute's name within the class.
    pub attribute: String,
    /// Line of `variable` in the configuration.
    pub line: usize,
}

impl Publication {
    /// The attribute path, `Class.attribute`.
    pub fn path(&self) -> String {
        format!("{}.{}", self.class, self.attribute)
    }
}

/// An attribute written into an FMU input.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// The attribute's class.
    pub class: String,
    /// The attribute's name within the class.
    pub attribute: String,
    /// The FMU input.
    pub variable: String,
    /// The input's value until the first reflection (`None`: the FMU's own start value).
    pub start: Option<f64>,
    /// Line of `variable` in the configuration.
    pub line: usize,
}

impl Subscription {
    /// The attribute path, `Class.attribute`.
    pub fn path(&self) -> String {
        format!("{}.{}", self.class, self.attribute)
    }
}

/// The configuration resolved against the FMU: value references in the order of
/// [`AdapterConfig::publish`], [`AdapterConfig::subscribe`] and [`AdapterConfig::parameters`].
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The published outputs.
    pub outputs: Signals,
    /// The subscribed inputs.
    pub inputs: Signals,
    /// Value references and values of the Real parameters.
    pub real_parameters: (Vec<u32>, Vec<f64>),
    /// Value references and values of the Integer parameters.
    pub integer_parameters: (Vec<u32>, Vec<i32>),
    /// Value references and values of the Boolean parameters.
    pub boolean_parameters: (Vec<u32>, Vec<bool>),
    /// Value references and values of the String parameters.
    pub string_parameters: (Vec<u32>, Vec<String>),
}

/// Mapped FMU variables, in mapping order. Every attribute value is an `f64`: Integer (and
/// enumeration) variables travel as whole numbers, Boolean variables as 0 and 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    /// Value references.
    pub references: Vec<u32>,
    /// Each one's type: Real, Integer or Boolean.
    pub types: Vec<ValueType>,
    /// Each one's `min`/`max` from the model description.
    pub ranges: Vec<ValueRange>,
}

impl Signals {
    /// Whether every variable is Real: one `fmi2GetReal`/`fmi2SetReal` reaches them all.
    pub fn all_real(&self) -> bool {
        self.types.iter().all(|t| *t == ValueType::Real)
    }

    /// The positions and value references of the variables of type `value_type`.
    pub fn of_type(&self, value_type: ValueType) -> (Vec<usize>, Vec<u32>) {
        self.types
            .iter()
            .zip(&self.references)
            .enumerate()
            .filter(|(_, (t, _))| **t == value_type)
            .map(|(i, (_, r))| (i, *r))
            .unzip()
    }
}

/// Tells each adapter the declared dynamics of the others it is coupled with (one publishes an
/// attribute the other subscribes to), under the names they run as: see
/// [`AdapterConfig::coupled`]. For runners that start several adapters together.
pub fn couple(adapters: &mut [(String, &mut AdapterConfig)]) {
    let paths = |config: &AdapterConfig| -> (BTreeSet<String>, BTreeSet<String>) {
        let published = config.publish.iter().map(Publication::path).collect();
        let subscribed = config.subscribe.iter().map(Subscription::path).collect();
        (published, subscribed)
    };
    // Name, declared |lambda|, published and subscribed attribute paths.
    type Ports = (String, Option<f64>, BTreeSet<String>, BTreeSet<String>);
    let ports: Vec<Ports> = adapters
        .iter()
        .map(|(name, config)| {
            let (published, subscribed) = paths(config);
            (
                name.clone(),
                config.fastest_eigenvalue,
                published,
                subscribed,
            )
        })
        .collect();
    for (i, (_, config)) in adapters.iter_mut().enumerate() {
        let (_, _, published, subscribed) = &ports[i];
        config.coupled = ports
            .iter()
            .enumerate()
            .filter(|(j, (_, _, theirs_out, theirs_in))| {
                *j != i
                    && (!published.is_disjoint(theirs_in) || !subscribed.is_disjoint(theirs_out))
            })
            .filter_map(|(_, (name, lambda, ..))| lambda.map(|l| (name.clone(), l)))
            .collect();
    }
}

/// "a Real", "an Integer": the article before a type name in a message.
fn article(value_type: ValueType) -> &'static str {
    if value_type == ValueType::Integer {
        "an"
    } else {
        "a"
    }
}

/// What a Boolean parameter takes, for error messages.
const BOOLEAN_VALUES: &str = "true or false (or 1 or 0)";

/// Whether a variable of `value_type` can take `value` without rounding it: Integer variables
/// take whole numbers within `i32`, Boolean variables 0 or 1. `None`: it can; otherwise what
/// it takes, for an error message.
pub fn unfit(value_type: ValueType, value: f64) -> Option<&'static str> {
    match value_type {
        ValueType::Real => None,
        ValueType::Integer => (value.fract() != 0.0
            || !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&value))
        .then_some("whole numbers from -2147483648 to 2147483647"),
        ValueType::Boolean => (value != 0.0 && value != 1.0).then_some("0 (false) or 1 (true)"),
        ValueType::String => Some("strings, which attributes cannot carry"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    fmu: Spanned<String>,
    instance: Spanned<String>,
    federation: String,
    rti: Option<String>,
    certs: Option<String>,
    #[serde(default)]
    expect: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    experiment: RawExperiment,
    #[serde(default)]
    step: RawStep,
    #[serde(default)]
    parameters: BTreeMap<Spanned<String>, Spanned<RawParameter>>,
    #[serde(default)]
    object_class: Vec<RawObjectClass>,
    #[serde(default)]
    publish: Vec<RawPublish>,
    #[serde(default)]
    subscribe: Vec<RawSubscribe>,
    #[serde(default)]
    fmu_logging: bool,
}

/// A value under `[parameters]`, or a table of them: TOML reads a bare dotted name such as
/// Modelica's `spring.c = 1e3` as nested tables, which are flattened back into the name.
#[derive(Debug)]
enum RawParameter {
    Value(ParameterValue),
    Table(Vec<(Spanned<String>, Spanned<RawParameter>)>),
}

impl<'de> Deserialize<'de> for RawParameter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawParameter;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, true or false, or a string")
            }

            fn visit_bool<E>(self, v: bool) -> Result<RawParameter, E> {
                Ok(RawParameter::Value(ParameterValue::Boolean(v)))
            }

            fn visit_i64<E>(self, v: i64) -> Result<RawParameter, E> {
                Ok(RawParameter::Value(ParameterValue::Number(v as f64)))
            }

            fn visit_u64<E>(self, v: u64) -> Result<RawParameter, E> {
                Ok(RawParameter::Value(ParameterValue::Number(v as f64)))
            }

            fn visit_f64<E>(self, v: f64) -> Result<RawParameter, E> {
                Ok(RawParameter::Value(ParameterValue::Number(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<RawParameter, E> {
                Ok(RawParameter::Value(ParameterValue::Text(v.to_owned())))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawParameter, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value::<Spanned<RawParameter>>()?));
                }
                Ok(RawParameter::Table(entries))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Flattens `[parameters]` into dotted names, naming a variable given twice (`"a.b" = 1`
/// beside `a.b = 2` is the same variable for the FMU, though not for TOML).
fn flatten_parameters<'a>(
    source: &Source<'_>,
    prefix: &str,
    entries: &mut dyn Iterator<Item = (&'a Spanned<String>, &'a Spanned<RawParameter>)>,
    out: &mut Vec<Parameter>,
) -> Result<(), ConfigError> {
    for (key, value) in entries {
        let name = if prefix.is_empty() {
            key.get_ref().clone()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        match value.get_ref() {
            RawParameter::Value(v) => {
                let line = source.line(key.span());
                if let Some(first) = out.iter().find(|p| p.variable == name) {
                    return Err(source.error(
                        key.span(),
                        format_args!(
                            "`{name}` is set twice under [parameters] (first on line {}); \
                             keep one",
                            first.line
                        ),
                    ));
                }
                out.push(Parameter {
                    variable: name,
                    value: v.clone(),
                    line,
                });
            }
            RawParameter::Table(inner) => {
                flatten_parameters(source, &name, &mut inner.iter().map(|(k, v)| (k, v)), out)?;
            }
        }
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    start: Option<Spanned<String>>,
    stop: Option<Spanned<String>>,
    tolerance: Option<Spanned<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    size: Option<Spanned<String>>,
    min: Option<Spanned<String>>,
    max: Option<Spanned<String>>,
    alpha: Option<Spanned<f64>>,
    fastest_eigenvalue: Option<Spanned<f64>>,
    #[serde(default)]
    override_stability: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjectClass {
    name: Spanned<String>,
    attributes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublish {
    variable: Spanned<String>,
    attribute: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubscribe {
    attribute: Spanned<String>,
    variable: Spanned<String>,
    start: Option<f64>,
}

/// Turns byte spans into 1-based line numbers and errors that name the file.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        fedtwin_core::line_at(self.text.as_bytes(), span.start)
    }

    fn error(&self, span: Range<usize>, message: impl fmt::Display) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            line: self.line(span),
            message: message.to_string(),
        }
    }

    fn duration(&self, value: &Spanned<String>, what: &str) -> Result<SimDuration, ConfigError> {
        value.get_ref().parse().map_err(|e| {
            self.error(
                value.span(),
                format_args!("{what} = \"{}\" is not a duration: {e}", value.get_ref()),
            )
        })
    }

    fn time(&self, value: &Spanned<String>, what: &str) -> Result<SimTime, ConfigError> {
        value.get_ref().parse().map_err(|e| {
            self.error(
                value.span(),
                format_args!("{what} = \"{}\" is not a time: {e}", value.get_ref()),
            )
        })
    }

    fn attribute_path(&self, value: &Spanned<String>) -> Result<(String, String), ConfigError> {
        match value.get_ref().rsplit_once('.') {
            Some((class, attribute)) if !class.is_empty() && !attribute.is_empty() => {
                Ok((class.to_owned(), attribute.to_owned()))
            }
            _ => Err(self.error(
                value.span(),
                format_args!(
                    "attribute `{}` needs a class: write `Class.attribute`, e.g. `Mass.State.x`",
                    value.get_ref()
                ),
            )),
        }
    }
}

impl AdapterConfig {
    /// Reads and checks an `adapter.toml`; relative paths in it are relative to its folder.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`], [`ConfigError::Syntax`] (with the parser's line) and
    /// [`ConfigError::Invalid`] naming the line at fault.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        Self::parse(&text, &path.display().to_string(), base)
    }

    /// Parses and checks configuration text named `file` (for messages), with relative paths
    /// taken relative to `base`.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load), without [`ConfigError::Io`].
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.to_owned(),
            message: e.to_string(),
        })?;
        let source = Source { file, text };
        let relative = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let instance = raw.instance.get_ref().clone();
        if instance.is_empty() {
            return Err(source.error(raw.instance.span(), "instance must not be empty"));
        }
        if raw.fmu.get_ref().is_empty() {
            return Err(source.error(raw.fmu.span(), "fmu must name an .fmu file"));
        }
        let expect = match &raw.expect {
            Some(list) if !list.get_ref().contains(&instance) => {
                return Err(source.error(
                    list.span(),
                    format_args!(
                        "expect lists the federates that start together; add this one, \
                         `{instance}`, to it"
                    ),
                ));
            }
            Some(list) => list.get_ref().clone(),
            None => Vec::new(),
        };

        let start = match &raw.experiment.start {
            Some(s) => source.time(s, "start")?,
            None => SimTime::ZERO,
        };
        let stop = match &raw.experiment.stop {
            Some(s) => source.time(s, "stop")?,
            None => SimTime::from_secs(1).unwrap_or(SimTime::END),
        };
        // With one of them given, the other may come from the FMU (`with_model_defaults`,
        // which checks the pair once complete).
        if let (Some(_), Some(given)) = (&raw.experiment.start, &raw.experiment.stop)
            && stop <= start
        {
            return Err(source.error(
                given.span(),
                format_args!("stop = {stop} must come after start = {start}"),
            ));
        }
        let tolerance = match &raw.experiment.tolerance {
            Some(t) if !(t.get_ref().is_finite() && *t.get_ref() > 0.0) => {
                return Err(source.error(
                    t.span(),
                    format_args!(
                        "tolerance = {} must be a positive number (a relative tolerance such \
                         as 1e-6)",
                        t.get_ref()
                    ),
                ));
            }
            Some(t) => Some(*t.get_ref()),
            None => None,
        };

        let mut step = StepSettings {
            override_stability: raw.step.override_stability,
            ..StepSettings::default()
        };
        if let Some(min) = &raw.step.min {
            step.min_step = source.duration(min, "min")?;
        }
        if let Some(max) = &raw.step.max {
            step.max_step = source.duration(max, "max")?;
        }
        if let Some(alpha) = &raw.step.alpha {
            step.alpha = *alpha.get_ref();
        }
        let step_size = match &raw.step.size {
            Some(size) => {
                let h = source.duration(size, "size")?;
                if h.is_zero() {
                    return Err(source.error(size.span(), "size must be positive"));
                }
                Some(h)
            }
            None => None,
        };
        if let Err(e) = step.validate() {
            let span = raw
                .step
                .alpha
                .as_ref()
                .or(raw.step.fastest_eigenvalue.as_ref())
                .map_or(0..0, Spanned::span);
            return Err(source.error(span, e));
        }
        let fastest_eigenvalue = raw.step.fastest_eigenvalue.as_ref().map(|l| *l.get_ref());

        let mut parameters = Vec::new();
        flatten_parameters(&source, "", &mut raw.parameters.iter(), &mut parameters)?;

        let mut publish = Vec::new();
        for p in &raw.publish {
            let (class, attribute) = source.attribute_path(&p.attribute)?;
            // One attribute of one object has one value per update: two outputs written into
            // it would leave partners with whichever was encoded last.
            if let Some(other) = publish
                .iter()
                .find(|o: &&Publication| o.class == class && o.attribute == attribute)
            {
                return Err(source.error(
                    p.attribute.span(),
                    format_args!(
                        "attribute `{class}.{attribute}` already carries output `{}` (line {}); \
                         an attribute takes one output",
                        other.variable, other.line
                    ),
                ));
            }
            publish.push(Publication {
                variable: p.variable.get_ref().clone(),
                class,
                attribute,
                line: source.line(p.variable.span()),
            });
        }
        let mut subscribe: Vec<Subscription> = Vec::new();
        for s in &raw.subscribe {
            let (class, attribute) = source.attribute_path(&s.attribute)?;
            if let Some(other) = subscribe
                .iter()
                .find(|o| o.variable == *s.variable.get_ref())
            {
                return Err(source.error(
                    s.variable.span(),
                    format_args!(
                        "input `{}` is already fed by `{}.{}` (line {}); an input takes one \
                         attribute",
                        other.variable, other.class, other.attribute, other.line
                    ),
                ));
            }
            subscribe.push(Subscription {
                class,
                attribute,
                variable: s.variable.get_ref().clone(),
                start: s.start,
                line: source.line(s.variable.span()),
            });
        }

        let object_classes = if raw.object_class.is_empty() {
            derive_classes(&publish, &subscribe)
        } else {
            let classes: Vec<(String, Vec<String>)> = raw
                .object_class
                .iter()
                .map(|c| (c.name.get_ref().clone(), c.attributes.clone()))
                .collect();
            check_declared(&source, &raw, &classes)?;
            classes
        };

        Ok(Self {
            file: file.to_owned(),
            fmu: relative(raw.fmu.get_ref()),
            instance,
            federation: raw.federation,
            rti: raw.rti,
            certs: relative(raw.certs.as_deref().unwrap_or("certs")),
            expect,
            experiment_given: (
                raw.experiment.start.is_some(),
                raw.experiment.stop.is_some(),
            ),
            suggested_step: None,
            tolerance,
            start,
            stop,
            step_size,
            step,
            fastest_eigenvalue,
            coupled: Vec::new(),
            parameters,
            publish,
            subscribe,
            object_classes,
            interaction_classes: Vec::new(),
            fmu_logging: raw.fmu_logging,
        })
    }

    /// This configuration completed from the FMU's `DefaultExperiment`: the start and stop
    /// times the file does not give, and the suggested step as the controller's largest.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when a suggested time cannot be represented or the stop would
    /// not come after the start.
    pub fn with_model_defaults(
        &self,
        description: &ModelDescription,
    ) -> Result<AdapterConfig, ConfigError> {
        let mut config = self.clone();
        let invalid = |message: String| ConfigError::Invalid {
            file: self.file.clone(),
            line: 1,
            message,
        };
        let Some(experiment) = &description.default_experiment else {
            if config.stop <= config.start {
                return Err(invalid(format!(
                    "stop = {} must come after start = {} (the FMU suggests no times; without \
                     them stop is 1 s): set stop under [experiment]",
                    config.stop, config.start
                )));
            }
            return Ok(config);
        };
        if config.tolerance.is_none() {
            config.tolerance = experiment.tolerance.filter(|t| t.is_finite() && *t > 0.0);
        }
        let time = |what: &str, seconds: f64| {
            crate::to_sim_time(seconds).map_err(|e| {
                invalid(format!(
                    "the FMU's DefaultExperiment {what} = {seconds} cannot be used: {e}"
                ))
            })
        };
        if let (false, Some(start)) = (self.experiment_given.0, experiment.start_time) {
            config.start = time("startTime", start)?;
        }
        if let (false, Some(stop)) = (self.experiment_given.1, experiment.stop_time) {
            config.stop = time("stopTime", stop)?;
        }
        if config.stop <= config.start {
            return Err(invalid(format!(
                "stop = {} must come after start = {} (the times the file does not give come \
                 from the FMU's DefaultExperiment); set them under [experiment]",
                config.stop, config.start
            )));
        }
        if let Some(step) = experiment.step_size.filter(|s| *s > 0.0) {
            config.suggested_step = Some(crate::to_sim_duration(step).map_err(|e| {
                invalid(format!(
                    "the FMU's DefaultExperiment stepSize = {step} cannot be used: {e}"
                ))
            })?);
        }
        Ok(config)
    }

    /// The federation's object model.
    pub fn object_model(&self) -> ObjectModel {
        let model =
            self.object_classes
                .iter()
                .fold(ObjectModel::new(), |model, (name, attributes)| {
                    model.with_object_class(name, attributes.iter().map(String::as_str))
                });
        self.interaction_classes
            .iter()
            .fold(model, |model, (name, parameters)| {
                model.with_interaction_class(name, parameters.iter().map(String::as_str))
            })
    }

    /// The published classes, in first-mention order, with their attributes.
    pub fn published_classes(&self) -> Vec<(&str, Vec<&Publication>)> {
        let mut classes: Vec<(&str, Vec<&Publication>)> = Vec::new();
        for p in &self.publish {
            match classes.iter_mut().find(|(c, _)| *c == p.class) {
                Some((_, list)) => list.push(p),
                None => classes.push((&p.class, vec![p])),
            }
        }
        classes
    }

    /// Checks the mappings and parameters against the FMU's model description and resolves
    /// value references.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the line and the variable: unknown names, String
    /// variables in a mapping, values a variable's type cannot hold (`start` or a parameter:
    /// 1.5 for an Integer, 2 for a Boolean), and causality errors (publishing an input or
    /// parameter, subscribing into an output, setting a calculated variable).
    pub fn resolve(&self, description: &ModelDescription) -> Result<Resolved, ConfigError> {
        let fmu_name = self.fmu.file_name().map_or_else(
            || self.fmu.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        let invalid = |line: usize, message: String| ConfigError::Invalid {
            file: self.file.clone(),
            line,
            message,
        };
        let find = |name: &str, line: usize| {
            description.variable(name).ok_or_else(|| {
                invalid(
                    line,
                    format!(
                        "`{name}` is not a variable of {fmu_name}; {}",
                        name_hint(name, description)
                    ),
                )
            })
        };
        let mappable = |variable: &ScalarVariable, line: usize, role: &str| {
            let found = variable.kind.value_type();
            if found == ValueType::String {
                Err(invalid(
                    line,
                    format!(
                        "`{}` is a String variable of {fmu_name}; only Real, Integer and \
                         Boolean variables can be {role}",
                        variable.name
                    ),
                ))
            } else {
                Ok(found)
            }
        };

        let mut outputs = Signals::default();
        for p in &self.publish {
            let variable = find(&p.variable, p.line)?;
            if variable.causality != Causality::Output {
                return Err(invalid(
                    p.line,
                    format!(
                        "`{}` is {} of {fmu_name}; only outputs can be published",
                        p.variable,
                        causality_phrase(variable.causality)
                    ),
                ));
            }
            let found = mappable(variable, p.line, "published")?;
            outputs.references.push(variable.value_reference);
            outputs.types.push(found);
            outputs.ranges.push(variable.range);
        }

        let mut inputs = Signals::default();
        for s in &self.subscribe {
            let variable = find(&s.variable, s.line)?;
            if variable.causality != Causality::Input {
                return Err(invalid(
                    s.line,
                    format!(
                        "`{}` is {} of {fmu_name}; only inputs can take subscribed attributes",
                        s.variable,
                        causality_phrase(variable.causality)
                    ),
                ));
            }
            let found = mappable(variable, s.line, "subscribed into")?;
            let takes = s.start.and_then(|start| {
                unfit(found, start).map(str::to_owned).or_else(|| {
                    (!variable.range.contains(start))
                        .then(|| variable.range.describe())
                        .flatten()
                })
            });
            if let Some(takes) = takes {
                return Err(invalid(
                    s.line,
                    format!(
                        "`{}` is {} {found} input of {fmu_name} and takes {takes}; its start {} \
                         does not fit",
                        s.variable,
                        article(found),
                        s.start.unwrap_or_default()
                    ),
                ));
            }
            inputs.references.push(variable.value_reference);
            inputs.types.push(found);
            inputs.ranges.push(variable.range);
        }

        let mut real_parameters = (Vec::new(), Vec::new());
        let mut integer_parameters = (Vec::new(), Vec::new());
        let mut boolean_parameters = (Vec::new(), Vec::new());
        let mut string_parameters = (Vec::new(), Vec::new());
        for p in &self.parameters {
            let variable = find(&p.variable, p.line)?;
            if variable.variability == Variability::Constant {
                return Err(invalid(
                    p.line,
                    format!(
                        "`{}` is a constant of {fmu_name}: FMI lets no one set it",
                        p.variable
                    ),
                ));
            }
            if let Some(s) = self.subscribe.iter().find(|s| s.variable == p.variable) {
                return Err(invalid(
                    p.line,
                    format!(
                        "`{}` is fed by `{}.{}` (line {}) and set under [parameters] too; give \
                         its value before the first update as that subscription's `start`",
                        p.variable, s.class, s.attribute, s.line
                    ),
                ));
            }
            // FMI 2.0 lets start values be set before initialization for parameters, inputs
            // and variables whose start is their initial value or a guess of it.
            let settable = matches!(variable.causality, Causality::Parameter | Causality::Input)
                || matches!(variable.initial, Some(Initial::Exact | Initial::Approx));
            if !settable {
                return Err(invalid(
                    p.line,
                    format!(
                        "`{}` is {} of {fmu_name} without initial=\"exact\" or \"approx\"; only \
                         parameters, inputs and variables with a start value take one",
                        p.variable,
                        causality_phrase(variable.causality)
                    ),
                ));
            }
            let found = variable.kind.value_type();
            let refuse = |takes: &str| {
                invalid(
                    p.line,
                    format!(
                        "`{}` is {} {found} variable of {fmu_name} and takes {takes}; {} does not \
                         fit",
                        p.variable,
                        article(found),
                        p.value
                    ),
                )
            };
            let reference = variable.value_reference;
            if let ParameterValue::Number(value) = p.value
                && let Some(range) = variable.range.describe()
                && !variable.range.contains(value)
            {
                return Err(refuse(&range));
            }
            match (&p.value, found) {
                (ParameterValue::Number(value), ValueType::Real) => {
                    real_parameters.0.push(reference);
                    real_parameters.1.push(*value);
                }
                (ParameterValue::Number(value), ValueType::Integer) => {
                    if let Some(takes) = unfit(found, *value) {
                        return Err(refuse(takes));
                    }
                    integer_parameters.0.push(reference);
                    // Whole and within i32: `unfit` said so.
                    integer_parameters.1.push(*value as i32);
                }
                (ParameterValue::Number(value), ValueType::Boolean) => {
                    if unfit(found, *value).is_some() {
                        return Err(refuse(BOOLEAN_VALUES));
                    }
                    boolean_parameters.0.push(reference);
                    boolean_parameters.1.push(*value != 0.0);
                }
                (ParameterValue::Boolean(value), ValueType::Boolean) => {
                    boolean_parameters.0.push(reference);
                    boolean_parameters.1.push(*value);
                }
                (ParameterValue::Text(text), ValueType::String) => {
                    // The FMU gets a C string: an inner NUL would cut it short unseen.
                    if text.contains('\0') {
                        return Err(refuse("a string without NUL characters"));
                    }
                    string_parameters.0.push(reference);
                    string_parameters.1.push(text.clone());
                }
                (_, ValueType::Real) => return Err(refuse("a number")),
                (_, ValueType::Integer) => {
                    return Err(refuse("a whole number from -2147483648 to 2147483647"));
                }
                (_, ValueType::Boolean) => return Err(refuse(BOOLEAN_VALUES)),
                (_, ValueType::String) => return Err(refuse("a string, in quotes")),
            }
        }
        Ok(Resolved {
            outputs,
            inputs,
            real_parameters,
            integer_parameters,
            boolean_parameters,
            string_parameters,
        })
    }
}

fn derive_classes(
    publish: &[Publication],
    subscribe: &[Subscription],
) -> Vec<(String, Vec<String>)> {
    let mut classes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let paths = publish
        .iter()
        .map(|p| (&p.class, &p.attribute))
        .chain(subscribe.iter().map(|s| (&s.class, &s.attribute)));
    for (class, attribute) in paths {
        let attributes = classes.entry(class).or_default();
        if !attributes.contains(attribute) {
            attributes.push(attribute.clone());
        }
    }
    classes
        .into_iter()
        .map(|(class, mut attributes)| {
            attributes.sort();
            (class.to_owned(), attributes)
        })
        .collect()
}

fn check_declared(
    source: &Source<'_>,
    raw: &RawConfig,
    classes: &[(String, Vec<String>)],
) -> Result<(), ConfigError> {
    let attributes = raw
        .publish
        .iter()
        .map(|p| &p.attribute)
        .chain(raw.subscribe.iter().map(|s| &s.attribute));
    for attribute in attributes {
        let (class, name) = source.attribute_path(attribute)?;
        let declared = classes
            .iter()
            .any(|(c, list)| *c == class && list.contains(&name));
        if !declared {
            return Err(source.error(
                attribute.span(),
                format_args!(
                    "attribute `{}` is not in the [[object_class]] list; add `{name}` to class \
                     `{class}` there",
                    attribute.get_ref()
                ),
            ));
        }
    }
    for class in &raw.object_class {
        if class.attributes.is_empty() {
            return Err(source.error(
                class.name.span(),
                format_args!("object class `{}` has no attributes", class.name.get_ref()),
            ));
        }
    }
    Ok(())
}

fn causality_phrase(causality: Causality) -> &'static str {
    match causality {
        Causality::Parameter => "a parameter",
        Causality::CalculatedParameter => "a calculated parameter",
        Causality::Input => "an input",
        Causality::Output => "an output",
        Causality::Local => "a local variable",
        Causality::Independent => "the independent variable",
    }
}

/// What to say after "not a variable": every name of a small FMU; for a large one (a tool's
/// export has thousands) the few closest to `name`, so that the message stays readable.
fn name_hint(name: &str, description: &ModelDescription) -> String {
    const LIST_ALL: usize = 20;
    const CLOSEST: usize = 5;
    let names: Vec<&str> = description
        .variables
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    if names.len() <= LIST_ALL {
        return format!("it has {}", names.join(", "));
    }
    let wanted = name.to_lowercase();
    let mut ranked: Vec<(usize, &str)> = names
        .iter()
        .map(|candidate| {
            (
                edit_distance(&wanted, &candidate.to_lowercase()),
                *candidate,
            )
        })
        .collect();
    ranked.sort_unstable();
    let closest: Vec<String> = ranked
        .iter()
        .take(CLOSEST)
        .map(|(_, n)| format!("`{n}`"))
        .collect();
    format!(
        "the closest of its {} variables are {}",
        names.len(),
        closest.join(", ")
    )
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASS: &str = r#"
fmu = "oscillator_mass.fmu"
instance = "mass"
federation = "oscillator"
expect = ["mass", "spring"]

[experiment]
stop = "2s"

[step]
size = "10ms"
fastest_eigenvalue = 10.0

[parameters]
mass = 1.0

[[publish]]
variable = "x"
attribute = "Mass.State.x"

[[subscribe]]
attribute = "Spring.State.force"
variable = "force"
start = -100.0
"#;

    /// A plant with a constant, a local variable with a guessed start and an input.
    const PLANT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription fmiVersion="2.0" modelName="Plant" guid="{0}">
  <CoSimulation modelIdentifier="Plant"/>
  <TypeDefinitions>
    <SimpleType name="Flow"><Real unit="m3/s" min="0"/></SimpleType>
  </TypeDefinitions>
  <ModelVariables>
    <ScalarVariable name="g" valueReference="1" causality="local" variability="constant">
      <Real start="9.81"/>
    </ScalarVariable>
    <ScalarVariable name="level" valueReference="2" causality="local" initial="approx">
      <Real start="1" min="0" max="2"/>
    </ScalarVariable>
    <ScalarVariable name="flow" valueReference="3" causality="local">
      <Real/>
    </ScalarVariable>
    <ScalarVariable name="inflow" valueReference="4" causality="input">
      <Real declaredType="Flow" start="0"/>
    </ScalarVariable>
  </ModelVariables>
  <ModelStructure/>
</fmiModelDescription>"#;

    fn resolve_plant(parameters: &str) -> Result<Resolved, ConfigError> {
        let text = format!(
            "fmu = \"plant.fmu\"\ninstance = \"plant\"\nfederation = \"f\"\n\n[parameters]\n\
             {parameters}\n\n[[subscribe]]\nattribute = \"Feed.State.flow\"\n\
             variable = \"inflow\"\n"
        );
        let config = AdapterConfig::parse(&text, "plant.toml", Path::new("/cfg")).unwrap();
        let description = ModelDescription::parse(PLANT).unwrap();
        config.resolve(&description)
    }

    #[test]
    fn start_values_go_where_fmi_allows_them_and_nowhere_else() {
        // A guessed start (initial="approx") may be set before initialization.
        let resolved = resolve_plant("level = 1.5").unwrap();
        assert_eq!(resolved.real_parameters, (vec![2], vec![1.5]));
        // The declared type's min reaches the input, for the checks of reflected values.
        assert_eq!(
            resolved.inputs.ranges,
            [ValueRange {
                min: Some(0.0),
                max: None
            }]
        );
        let refused = |parameters: &str, expected: &str| {
            let message = resolve_plant(parameters).unwrap_err().to_string();
            assert!(
                message.contains("line 6:") && message.contains(expected),
                "{parameters}: {message}"
            );
        };
        refused(
            "g = 9.8",
            "`g` is a constant of plant.fmu: FMI lets no one set it",
        );
        refused("flow = 1.0", "without initial=\"exact\" or \"approx\"");
        refused(
            "level = 2.5",
            "`level` is a Real variable of plant.fmu and takes values from 0 to 2; 2.5 does not fit",
        );
        refused(
            "inflow = 1.0",
            "`inflow` is fed by `Feed.State.flow` (line 10) and set under [parameters] too",
        );
    }

    #[test]
    fn a_subscription_start_outside_the_inputs_range_is_refused() {
        let text = "fmu = \"plant.fmu\"\ninstance = \"plant\"\nfederation = \"f\"\n\n\
                    [[subscribe]]\nattribute = \"Feed.State.flow\"\nvariable = \"inflow\"\n\
                    start = -1.0\n";
        let config = AdapterConfig::parse(text, "plant.toml", Path::new("/cfg")).unwrap();
        let description = ModelDescription::parse(PLANT).unwrap();
        let message = config.resolve(&description).unwrap_err().to_string();
        assert!(
            message.contains("line 7:")
                && message.contains("takes values of at least 0; its start -1 does not fit"),
            "{message}"
        );
    }

    #[test]
    fn parses_and_derives_the_object_model() {
        let config = AdapterConfig::parse(MASS, "mass.toml", Path::new("/cfg")).unwrap();
        assert_eq!(config.fmu, Path::new("/cfg/oscillator_mass.fmu"));
        assert_eq!(config.stop, SimTime::from_secs(2).unwrap());
        assert_eq!(
            config.step_size,
            Some(SimDuration::from_millis(10).unwrap())
        );
        assert_eq!(config.parameters[0].line, 15);
        assert_eq!(config.publish[0].line, 18);
        assert_eq!(config.subscribe[0].line, 23);
        assert_eq!(config.subscribe[0].start, Some(-100.0));
        assert_eq!(
            config.object_classes,
            vec![
                ("Mass.State".to_owned(), vec!["x".to_owned()]),
                ("Spring.State".to_owned(), vec!["force".to_owned()]),
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let text = MASS.replace("size = \"10ms\"", "size = \"ten\"");
        let error = AdapterConfig::parse(&text, "mass.toml", Path::new("")).unwrap_err();
        assert!(
            error.to_string().starts_with("mass.toml, line 11: size"),
            "{error}"
        );

        let text = MASS.replace("attribute = \"Mass.State.x\"", "attribute = \"x\"");
        let error = AdapterConfig::parse(&text, "mass.toml", Path::new("")).unwrap_err();
        assert!(error.to_string().contains("line 19"), "{error}");

        let text = MASS.replace("[step]", "[step]\nsizes = 1");
        let error = AdapterConfig::parse(&text, "mass.toml", Path::new("")).unwrap_err();
        assert!(matches!(error, ConfigError::Syntax { .. }), "{error}");

        let text = MASS.replace("\"mass\", \"spring\"", "\"spring\"");
        let error = AdapterConfig::parse(&text, "mass.toml", Path::new("")).unwrap_err();
        assert!(error.to_string().contains("line 5"), "{error}");
    }

    #[test]
    fn tolerance_and_times_are_checked_where_they_can_be() {
        let with_experiment = |experiment: &str| {
            let text = MASS.replace("[experiment]\nstop = \"2s\"", experiment);
            AdapterConfig::parse(&text, "mass.toml", Path::new(""))
        };
        let config = with_experiment("[experiment]\ntolerance = 1e-6").unwrap();
        assert_eq!(config.tolerance, Some(1e-6));
        for bad in ["0.0", "-1e-6", "nan", "inf"] {
            let message = with_experiment(&format!("[experiment]\ntolerance = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(
                message.contains("line 8") && message.contains("must be a positive number"),
                "{bad}: {message}"
            );
        }
        // Both times given: checked at once, naming the stop's line.
        let message = with_experiment("[experiment]\nstart = \"3s\"\nstop = \"2s\"")
            .unwrap_err()
            .to_string();
        assert!(message.contains("line 9") && message.contains("must come after"));

        // A start alone may be after the default stop: the FMU may suggest a later stop.
        let config = with_experiment("[experiment]\nstart = \"3s\"").unwrap();
        let later = ModelDescription::parse(&PLANT.replace(
            "<ModelVariables>",
            "<DefaultExperiment stopTime=\"5\" tolerance=\"1e-3\"/>\n  <ModelVariables>",
        ))
        .unwrap();
        let completed = config.with_model_defaults(&later).unwrap();
        assert_eq!(
            (completed.start, completed.stop, completed.tolerance),
            (
                SimTime::from_secs(3).unwrap(),
                SimTime::from_secs(5).unwrap(),
                Some(1e-3)
            )
        );
        // Without one, the default stop of 1 s comes before it.
        let none = ModelDescription::parse(PLANT).unwrap();
        let message = config.with_model_defaults(&none).unwrap_err().to_string();
        assert!(message.contains("set stop under [experiment]"), "{message}");
    }

    #[test]
    fn an_unknown_name_in_a_large_fmu_gets_the_closest_names() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("spring.c", "spring.c"), 0);
        let variables: String = (0..500)
            .map(|i| {
                format!(
                    "<ScalarVariable name=\"body{i}.m\" valueReference=\"{i}\" \
                     causality=\"parameter\" variability=\"fixed\"><Real start=\"1\"/>\
                     </ScalarVariable>"
                )
            })
            .collect();
        let xml = PLANT.replace("<ModelVariables>", &format!("<ModelVariables>{variables}"));
        let description = ModelDescription::parse(&xml).unwrap();
        let hint = name_hint("Body42.M", &description);
        assert!(
            hint.starts_with("the closest of its 504 variables are `body42.m`"),
            "{hint}"
        );
        assert_eq!(hint.matches('`').count(), 10, "five names: {hint}");
        let small = ModelDescription::parse(PLANT).unwrap();
        assert_eq!(name_hint("x", &small), "it has g, level, flow, inflow");
    }

    #[test]
    fn an_attribute_takes_one_output() {
        let text = MASS.replace(
            "[[subscribe]]",
            "[[publish]]\nvariable = \"v\"\nattribute = \"Mass.State.x\"\n\n[[subscribe]]",
        );
        let message = AdapterConfig::parse(&text, "mass.toml", Path::new(""))
            .unwrap_err()
            .to_string();
        assert!(
            message
                .contains("line 23: attribute `Mass.State.x` already carries output `x` (line 18)"),
            "{message}"
        );
    }

    #[test]
    fn dotted_parameter_names_may_be_written_bare() {
        let with_parameters = |parameters: &str| {
            let text = MASS.replace("mass = 1.0", parameters);
            AdapterConfig::parse(&text, "mass.toml", Path::new(""))
        };
        let config = with_parameters(
            "spring.c = 1e3\n\"spring.d\" = 2\nbody.m = true\n\n[parameters.table]\nfile = \"a.csv\"",
        )
        .unwrap();
        let names: Vec<(&str, &ParameterValue, usize)> = config
            .parameters
            .iter()
            .map(|p| (p.variable.as_str(), &p.value, p.line))
            .collect();
        assert_eq!(
            names,
            [
                ("body.m", &ParameterValue::Boolean(true), 17),
                ("spring.c", &ParameterValue::Number(1e3), 15),
                ("spring.d", &ParameterValue::Number(2.0), 16),
                ("table.file", &ParameterValue::Text("a.csv".to_owned()), 20),
            ]
        );
        let message = with_parameters("spring.c = 1\n\"spring.c\" = 2")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("`spring.c` is set twice under [parameters] (first on line"),
            "{message}"
        );
        for (value, expected) in [
            ("[1, 2]", "expected a number, true or false, or a string"),
            // toml's own message, with the line and a caret under the date.
            ("1979-05-27", "line 15, column 12"),
        ] {
            let message = with_parameters(&format!("spring.c = {value}"))
                .unwrap_err()
                .to_string();
            assert!(message.contains(expected), "{value}: {message}");
        }
    }
}
