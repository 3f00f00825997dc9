//! `modelDescription.xml` of an FMI 2.0 Co-Simulation FMU, read tolerantly.
//!
//! Real exporters write more than the schema asks for, and sometimes other than it: namespace
//! declarations (`xmlns:xsi`, `xsi:noNamespaceSchemaLocation`), attributes of newer or vendor
//! versions of the standard, `<VendorAnnotations>`, `<Annotations>` and tool-specific elements in
//! odd places, a byte-order mark, a DOCTYPE, or a Latin-1 file. The parser takes what fedtwin
//! needs and skips everything it does not know. What it does need must be there and well-formed:
//! a missing or malformed required attribute is a [`DescriptionError`] that names the element and
//! its line, so a user can open the file and see what the exporter wrote.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use roxmltree::{Document, Node, ParsingOptions};

/// Why `modelDescription.xml` could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptionError {
    /// The file is not well-formed XML.
    #[error(
        "modelDescription.xml is not well-formed XML (line {line}, column {column}): {message}; \
         the exporter wrote a broken file, export the FMU again"
    )]
    Xml {
        /// 1-based line of the error.
        line: u32,
        /// 1-based column of the error.
        column: u32,
        /// What the XML parser found.
        message: String,
    },
    /// The root element is not `<fmiModelDescription>`.
    #[error("the root element of modelDescription.xml is <{found}>, not <fmiModelDescription>")]
    NotModelDescription {
        /// The root element found.
        found: String,
    },
    /// The FMU is not an FMI 2.0 FMU.
    #[error(
        "fmiVersion=\"{version}\" (line {line}) is not supported: fedtwin loads FMI 2.0 \
         Co-Simulation FMUs; export the model as FMI 2.0 Co-Simulation"
    )]
    UnsupportedVersion {
        /// The `fmiVersion` attribute as written.
        version: String,
        /// Line of the `<fmiModelDescription>` element.
        line: u32,
    },
    /// The FMU has no `<CoSimulation>` element (a Model Exchange-only FMU).
    #[error(
        "the FMU declares no <CoSimulation> interface (it is Model Exchange only); export it as \
         FMI 2.0 Co-Simulation"
    )]
    NotCoSimulation,
    /// A required attribute is missing.
    #[error("<{element}> at line {line} lacks the required attribute `{attribute}`")]
    MissingAttribute {
        /// The element.
        element: String,
        /// The missing attribute.
        attribute: &'static str,
        /// Line of the element.
        line: u32,
    },
    /// An attribute's value is not of the kind FMI 2.0 defines for it.
    #[error("<{element}> at line {line}: {attribute}=\"{value}\" is not {expected}")]
    InvalidAttribute {
        /// The element.
        element: String,
        /// The attribute.
        attribute: &'static str,
        /// The value as written.
        value: String,
        /// What the attribute must be, in words.
        expected: &'static str,
        /// Line of the element.
        line: u32,
    },
    /// A required child element is missing.
    #[error("<{element}> at line {line} lacks {missing}")]
    MissingElement {
        /// The element.
        element: String,
        /// The missing child, in words.
        missing: &'static str,
        /// Line of the element.
        line: u32,
    },
}

/// What an FMI 2.0 Co-Simulation FMU says about itself.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ModelDescription {
    /// The `fmiVersion` attribute (starts with `2.`).
    pub fmi_version: String,
    /// The model's name.
    pub model_name: String,
    /// The GUID that `fmi2Instantiate` must be given, exactly as written.
    pub guid: String,
    /// The tool that exported the FMU, when it says.
    pub generation_tool: Option<String>,
    /// The model's description, when it has one.
    pub description: Option<String>,
    /// The Co-Simulation interface.
    pub co_simulation: CoSimulation,
    /// The experiment the exporter suggests, when it suggests one.
    pub default_experiment: Option<DefaultExperiment>,
    /// The model's variables, in file order (FMI's 1-based indices point into this list).
    pub variables: Vec<ScalarVariable>,
    /// Indices into [`variables`](Self::variables) of the model's outputs, from
    /// `<ModelStructure><Outputs>` (0-based; empty when the file lists none).
    pub outputs: Vec<usize>,
}

/// The `<CoSimulation>` element: the binary's name and its capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoSimulation {
    /// Base name of the shared library in `binaries/<platform>/`.
    pub model_identifier: String,
    /// Whether the step size may change from one step to the next.
    pub can_handle_variable_communication_step_size: bool,
    /// Whether `fmi2GetFMUstate`/`fmi2SetFMUstate` work (needed to retry a discarded step).
    pub can_get_and_set_fmu_state: bool,
    /// Whether the FMU can have only one instance in a process.
    pub can_be_instantiated_only_once_per_process: bool,
    /// Whether the FMU needs its exporting tool running next to it.
    pub needs_execution_tool: bool,
}

/// The `<DefaultExperiment>` element: the exporter's suggestion, in FMI's `f64` seconds.
///
/// Convert with [`to_sim_time`](crate::to_sim_time) at the boundary, once.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct DefaultExperiment {
    /// Suggested start time.
    pub start_time: Option<f64>,
    /// Suggested stop time.
    pub stop_time: Option<f64>,
    /// Suggested communication step size.
    pub step_size: Option<f64>,
    /// Suggested relative tolerance of the FMU's internal solver.
    pub tolerance: Option<f64>,
}

/// One `<ScalarVariable>`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScalarVariable {
    /// The variable's name (`a.b[2].c` style).
    pub name: String,
    /// The handle the FMU's get and set functions take.
    pub value_reference: u32,
    /// What the variable is for.
    pub causality: Causality,
    /// When the variable may change.
    pub variability: Variability,
    /// How its start value is meant, when the file says.
    pub initial: Option<Initial>,
    /// Its type and start value.
    pub kind: VariableKind,
    /// The smallest and largest values it takes (`min`/`max` of a Real, Integer or
    /// Enumeration, from the variable or its declared type), where the file says.
    pub range: ValueRange,
    /// 1-based line of the element in the file.
    pub line: u32,
}

/// The `min` and `max` of a variable; either may be absent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ValueRange {
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
}

impl ValueRange {
    /// Whether `value` lies within the range (NaN does not).
    pub fn contains(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }

    /// `value`, or the bound it lies outside of by no more than rounding could explain
    /// (1e-9 relative, at least 1e-12 absolute).
    pub fn snap(&self, value: f64) -> f64 {
        let near = |bound: f64| (value - bound).abs() <= (bound.abs() * 1e-9).max(1e-12);
        match (self.min, self.max) {
            (Some(min), _) if value < min && near(min) => min,
            (_, Some(max)) if value > max && near(max) => max,
            _ => value,
        }
    }

    /// "from 0.5 to 1", "at least 0", "at most 10", for messages; `None` for no range.
    pub fn describe(&self) -> Option<String> {
        match (self.min, self.max) {
            (Some(min), Some(max)) => Some(format!("values from {min} to {max}")),
            (Some(min), None) => Some(format!("values of at least {min}")),
            (None, Some(max)) => Some(format!("values of at most {max}")),
            (None, None) => None,
        }
    }
}

/// `causality` of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Causality {
    /// Independent parameter, set before initialization.
    Parameter,
    /// Parameter computed from other parameters.
    CalculatedParameter,
    /// Input from the environment.
    Input,
    /// Output to the environment.
    Output,
    /// Internal variable (the default).
    Local,
    /// The independent variable, time.
    Independent,
}

/// `variability` of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Variability {
    /// Never changes.
    Constant,
    /// Fixed after initialization.
    Fixed,
    /// Changes only at events, set from outside.
    Tunable,
    /// Changes only at events.
    Discrete,
    /// May change at any time (the default).
    Continuous,
}

/// `initial` of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Initial {
    /// The start value is the initial value.
    Exact,
    /// The start value is a guess for an iteration.
    Approx,
    /// The initial value is computed by the FMU.
    Calculated,
}

/// The type of a variable and its start value.
///
/// Enumerations are read and written with the Integer functions.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum VariableKind {
    /// `<Real>`.
    Real {
        /// Start value.
        start: Option<f64>,
        /// Unit, from the variable or from its declared type.
        unit: Option<String>,
    },
    /// `<Integer>`.
    Integer {
        /// Start value.
        start: Option<i32>,
    },
    /// `<Boolean>`.
    Boolean {
        /// Start value.
        start: Option<bool>,
    },
    /// `<String>`.
    String {
        /// Start value.
        start: Option<String>,
    },
    /// `<Enumeration>`, an integer.
    Enumeration {
        /// Start value.
        start: Option<i32>,
    },
}

/// Which family of FMI get/set functions reaches a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ValueType {
    /// `fmi2GetReal`/`fmi2SetReal`.
    Real,
    /// `fmi2GetInteger`/`fmi2SetInteger` (also enumerations).
    Integer,
    /// `fmi2GetBoolean`/`fmi2SetBoolean`.
    Boolean,
    /// `fmi2GetString`/`fmi2SetString`.
    String,
}

impl ModelDescription {
    /// Parses the text of `modelDescription.xml`.
    ///
    /// # Errors
    ///
    /// A [`DescriptionError`] naming the element and line of the first problem.
    pub fn parse(xml: &str) -> Result<Self, DescriptionError> {
        let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
        let options = ParsingOptions {
            allow_dtd: true,
            ..ParsingOptions::default()
        };
        let doc = Document::parse_with_options(xml, options).map_err(|e| {
            let pos = e.pos();
            DescriptionError::Xml {
                line: pos.row,
                column: pos.col,
                message: e.to_string(),
            }
        })?;
        Parser { doc: &doc }.model_description()
    }

    /// Parses the bytes of `modelDescription.xml`: UTF-8 (with or without a byte-order mark), or
    /// Latin-1 as a few older exporters write.
    ///
    /// # Errors
    ///
    /// As [`ModelDescription::parse`].
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, DescriptionError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::parse(text),
            Err(_) => {
                let text: String = bytes.iter().map(|&b| char::from(b)).collect();
                Self::parse(&text)
            }
        }
    }

    /// The variable with this name.
    pub fn variable(&self, name: &str) -> Option<&ScalarVariable> {
        self.variables.iter().find(|v| v.name == name)
    }
}

impl FromStr for ModelDescription {
    type Err = DescriptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl VariableKind {
    /// The family of get/set functions that reaches a variable of this type.
    pub fn value_type(&self) -> ValueType {
        match self {
            VariableKind::Real { .. } => ValueType::Real,
            VariableKind::Integer { .. } | VariableKind::Enumeration { .. } => ValueType::Integer,
            VariableKind::Boolean { .. } => ValueType::Boolean,
            VariableKind::String { .. } => ValueType::String,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueType::Real => "Real",
            ValueType::Integer => "Integer",
            ValueType::Boolean => "Boolean",
            ValueType::String => "String",
        })
    }
}

/// Walks one parsed document.
struct Parser<'a, 'input> {
    doc: &'a Document<'input>,
}

impl<'a, 'input> Parser<'a, 'input> {
    fn model_description(&self) -> Result<ModelDescription, DescriptionError> {
        let root = self.doc.root_element();
        if root.tag_name().name() != "fmiModelDescription" {
            return Err(DescriptionError::NotModelDescription {
                found: root.tag_name().name().to_owned(),
            });
        }

        // The version first: a 1.0 or 3.0 file has other required attributes, and complaining
        // about those would hide the real problem.
        let fmi_version = self.required(root, "fmiVersion")?;
        if !fmi_version.trim().starts_with("2.") {
            return Err(DescriptionError::UnsupportedVersion {
                version: fmi_version.to_owned(),
                line: self.line(root),
            });
        }
        let model_name = self.required(root, "modelName")?.to_owned();
        let guid = self.required(root, "guid")?.to_owned();
        let generation_tool = root.attribute("generationTool").map(str::to_owned);
        let description = root.attribute("description").map(str::to_owned);

        let co_simulation = match child(root, "CoSimulation") {
            Some(node) => self.co_simulation(node)?,
            None => return Err(DescriptionError::NotCoSimulation),
        };
        let default_experiment = child(root, "DefaultExperiment")
            .map(|node| self.default_experiment(node))
            .transpose()?;

        let (units, ranges) = match child(root, "TypeDefinitions") {
            Some(node) => (declared_units(node), declared_ranges(node)),
            None => (BTreeMap::new(), BTreeMap::new()),
        };
        let variables = match child(root, "ModelVariables") {
            Some(node) => self.variables(node, &units, &ranges)?,
            None => Vec::new(),
        };
        let outputs = match child(root, "ModelStructure").and_then(|n| child(n, "Outputs")) {
            Some(node) => self.outputs(node, variables.len())?,
            None => Vec::new(),
        };

        Ok(ModelDescription {
            fmi_version: fmi_version.to_owned(),
            model_name,
            guid,
            generation_tool,
            description,
            co_simulation,
            default_experiment,
            variables,
            outputs,
        })
    }

    fn co_simulation(&self, node: Node<'a, 'input>) -> Result<CoSimulation, DescriptionError> {
        let model_identifier = self.required(node, "modelIdentifier")?;
        // The identifier names a file inside the archive: refuse anything that would make the
        // loader look elsewhere.
        let is_file_name = !model_identifier.is_empty()
            && !model_identifier.contains(['/', '\\', '\0'])
            && !model_identifier.starts_with('.');
        if !is_file_name {
            return Err(self.invalid(
                node,
                "modelIdentifier",
                model_identifier,
                "a plain file name (a C identifier)",
            ));
        }
        Ok(CoSimulation {
            model_identifier: model_identifier.to_owned(),
            can_handle_variable_communication_step_size: self
                .flag(node, "canHandleVariableCommunicationStepSize")?,
            can_get_and_set_fmu_state: self.flag(node, "canGetAndSetFMUstate")?,
            can_be_instantiated_only_once_per_process: self
                .flag(node, "canBeInstantiatedOnlyOncePerProcess")?,
            needs_execution_tool: self.flag(node, "needsExecutionTool")?,
        })
    }

    fn default_experiment(
        &self,
        node: Node<'a, 'input>,
    ) -> Result<DefaultExperiment, DescriptionError> {
        Ok(DefaultExperiment {
            start_time: self.optional_real(node, "startTime")?,
            stop_time: self.optional_real(node, "stopTime")?,
            step_size: self.optional_real(node, "stepSize")?,
            tolerance: self.optional_real(node, "tolerance")?,
        })
    }

    fn variables(
        &self,
        node: Node<'a, 'input>,
        units: &BTreeMap<&str, &str>,
        ranges: &BTreeMap<&str, ValueRange>,
    ) -> Result<Vec<ScalarVariable>, DescriptionError> {
        node.children()
            .filter(|n| n.has_tag_name("ScalarVariable"))
            .map(|n| self.variable(n, units, ranges))
            .collect()
    }

    fn variable(
        &self,
        node: Node<'a, 'input>,
        units: &BTreeMap<&str, &str>,
        ranges: &BTreeMap<&str, ValueRange>,
    ) -> Result<ScalarVariable, DescriptionError> {
        let name = self.required(node, "name")?.to_owned();
        let value_reference = self.required(node, "valueReference")?;
        let value_reference = value_reference.trim().parse::<u32>().map_err(|_| {
            self.invalid(
                node,
                "valueReference",
                value_reference,
                "an unsigned 32-bit integer",
            )
        })?;
        let causality = match node.attribute("causality").map(str::trim) {
            None => Causality::Local,
            Some("parameter") => Causality::Parameter,
            Some("calculatedParameter") => Causality::CalculatedParameter,
            Some("input") => Causality::Input,
            Some("output") => Causality::Output,
            Some("local") => Causality::Local,
            Some("independent") => Causality::Independent,
            Some(other) => {
                return Err(self.invalid(
                    node,
                    "causality",
                    other,
                    "one of parameter, calculatedParameter, input, output, local, independent",
                ));
            }
        };
        let variability = match node.attribute("variability").map(str::trim) {
            None => Variability::Continuous,
            Some("constant") => Variability::Constant,
            Some("fixed") => Variability::Fixed,
            Some("tunable") => Variability::Tunable,
            Some("discrete") => Variability::Discrete,
            Some("continuous") => Variability::Continuous,
            Some(other) => {
                return Err(self.invalid(
                    node,
                    "variability",
                    other,
                    "one of constant, fixed, tunable, discrete, continuous",
                ));
            }
        };
        let initial = match node.attribute("initial").map(str::trim) {
            None => None,
            Some("exact") => Some(Initial::Exact),
            Some("approx") => Some(Initial::Approx),
            Some("calculated") => Some(Initial::Calculated),
            Some(other) => {
                return Err(self.invalid(
                    node,
                    "initial",
                    other,
                    "one of exact, approx, calculated",
                ));
            }
        };

        // The first child of a known type decides; annotations and vendor elements are skipped.
        let (typed, kind) = node
            .children()
            .filter(Node::is_element)
            .find_map(|n| self.variable_kind(n, units).transpose().map(|k| (n, k)))
            .map(|(n, kind)| kind.map(|kind| (n, kind)))
            .transpose()?
            .ok_or_else(|| DescriptionError::MissingElement {
                element: format!("ScalarVariable name=\"{name}\""),
                missing: "a type element (<Real>, <Integer>, <Boolean>, <String> or <Enumeration>)",
                line: self.line(node),
            })?;
        // Only numbers have a range: from the type element, else from its declared type.
        let range = if matches!(
            kind,
            VariableKind::Boolean { .. } | VariableKind::String { .. }
        ) {
            ValueRange::default()
        } else {
            let declared = typed
                .attribute("declaredType")
                .and_then(|t| ranges.get(t).copied())
                .unwrap_or_default();
            let own = range_of(typed);
            ValueRange {
                min: own.min.or(declared.min),
                max: own.max.or(declared.max),
            }
        };
        Ok(ScalarVariable {
            range,
            name,
            value_reference,
            causality,
            variability,
            initial,
            kind,
            line: self.line(node),
        })
    }

    /// The type of a variable from one of its children, `None` for a child that is no type.
    fn variable_kind(
        &self,
        node: Node<'a, 'input>,
        units: &BTreeMap<&str, &str>,
    ) -> Result<Option<VariableKind>, DescriptionError> {
        let kind = match node.tag_name().name() {
            "Real" => {
                let unit = node
                    .attribute("unit")
                    .or_else(|| {
                        node.attribute("declaredType")
                            .and_then(|t| units.get(t).copied())
                    })
                    .map(str::to_owned);
                VariableKind::Real {
                    start: self.optional_real(node, "start")?,
                    unit,
                }
            }
            "Integer" => VariableKind::Integer {
                start: self.optional_integer(node, "start")?,
            },
            "Enumeration" => VariableKind::Enumeration {
                start: self.optional_integer(node, "start")?,
            },
            "Boolean" => VariableKind::Boolean {
                start: node
                    .attribute("start")
                    .map(|v| self.boolean(node, "start", v))
                    .transpose()?,
            },
            "String" => VariableKind::String {
                start: node.attribute("start").map(str::to_owned),
            },
            _ => return Ok(None),
        };
        Ok(Some(kind))
    }

    fn outputs(
        &self,
        node: Node<'a, 'input>,
        count: usize,
    ) -> Result<Vec<usize>, DescriptionError> {
        let mut outputs = Vec::new();
        for unknown in node.children().filter(|n| n.has_tag_name("Unknown")) {
            let index = self.required(unknown, "index")?;
            match index.trim().parse::<usize>() {
                Ok(i) if (1..=count).contains(&i) => outputs.push(i - 1),
                _ => {
                    return Err(self.invalid(
                        unknown,
                        "index",
                        index,
                        "the 1-based index of a <ScalarVariable> in <ModelVariables>",
                    ));
                }
            }
        }
        Ok(outputs)
    }

    fn required(
        &self,
        node: Node<'a, 'input>,
        attribute: &'static str,
    ) -> Result<&'a str, DescriptionError> {
        node.attribute(attribute)
            .ok_or_else(|| DescriptionError::MissingAttribute {
                element: node.tag_name().name().to_owned(),
                attribute,
                line: self.line(node),
            })
    }

    /// An optional `xs:boolean` attribute that defaults to false.
    fn flag(
        &self,
        node: Node<'a, 'input>,
        attribute: &'static str,
    ) -> Result<bool, DescriptionError> {
        match node.attribute(attribute) {
            None => Ok(false),
            Some(value) => self.boolean(node, attribute, value),
        }
    }

    /// `xs:boolean`: `true`, `false`, `1` or `0`.
    fn boolean(
        &self,
        node: Node<'a, 'input>,
        attribute: &'static str,
        value: &str,
    ) -> Result<bool, DescriptionError> {
        match value.trim() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(self.invalid(node, attribute, value, "a boolean (true or false)")),
        }
    }

    fn optional_real(
        &self,
        node: Node<'a, 'input>,
        attribute: &'static str,
    ) -> Result<Option<f64>, DescriptionError> {
        let Some(value) = node.attribute(attribute) else {
            return Ok(None);
        };
        parse_real(value)
            .map(Some)
            .ok_or_else(|| self.invalid(node, attribute, value, "a real number"))
    }

    fn optional_integer(
        &self,
        node: Node<'a, 'input>,
        attribute: &'static str,
    ) -> Result<Option<i32>, DescriptionError> {
        let Some(value) = node.attribute(attribute) else {
            return Ok(None);
        };
        parse_integer(value)
            .map(Some)
            .ok_or_else(|| self.invalid(node, attribute, value, "a 32-bit integer"))
    }

    fn invalid(
        &self,
        node: Node<'a, 'input>,
        attribute: &'static str,
        value: &str,
        expected: &'static str,
    ) -> DescriptionError {
        DescriptionError::InvalidAttribute {
            element: node.tag_name().name().to_owned(),
            attribute,
            value: value.to_owned(),
            expected,
            line: self.line(node),
        }
    }

    fn line(&self, node: Node<'a, 'input>) -> u32 {
        self.doc.text_pos_at(node.range().start).row
    }
}

/// The first child element with this (local) name.
fn child<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

/// Units of the Real types in `<TypeDefinitions>`, by type name. A malformed type definition is
/// skipped: it only matters through a variable that names it, and that variable then has no unit.
fn declared_units<'a>(node: Node<'a, '_>) -> BTreeMap<&'a str, &'a str> {
    node.children()
        .filter(|n| n.has_tag_name("SimpleType"))
        .filter_map(|simple| {
            let name = simple.attribute("name")?;
            let real = child(simple, "Real")?;
            Some((name, real.attribute("unit")?))
        })
        .collect()
}

/// `min`/`max` of the Real, Integer and Enumeration types in `<TypeDefinitions>`, by type name.
fn declared_ranges<'a>(node: Node<'a, '_>) -> BTreeMap<&'a str, ValueRange> {
    node.children()
        .filter(|n| n.has_tag_name("SimpleType"))
        .filter_map(|simple| {
            let name = simple.attribute("name")?;
            let typed = simple
                .children()
                .find(|n| matches!(n.tag_name().name(), "Real" | "Integer" | "Enumeration"))?;
            let mut range = range_of(typed);
            if typed.has_tag_name("Enumeration") {
                // By default an enumeration takes the values of its items, smallest to largest.
                let items = typed
                    .children()
                    .filter(|n| n.has_tag_name("Item"))
                    .filter_map(|item| item.attribute("value").and_then(parse_integer));
                let (low, high) = items.fold((None, None), |(low, high), v| {
                    (
                        Some(low.map_or(v, |l: i32| l.min(v))),
                        Some(high.map_or(v, |h: i32| h.max(v))),
                    )
                });
                range.min = range.min.or(low.map(f64::from));
                range.max = range.max.or(high.map(f64::from));
            }
            Some((name, range))
        })
        .collect()
}

/// The `min`/`max` attributes of a type element. Values that do not parse are left out: the
/// range only adds checks, and a tool's odd spelling of one must not make the FMU unusable.
fn range_of(node: Node<'_, '_>) -> ValueRange {
    let bound = |name| {
        node.attribute(name)
            .and_then(parse_real)
            .filter(|v| !v.is_nan())
    };
    ValueRange {
        min: bound("min"),
        max: bound("max"),
    }
}

/// `xs:double`: also `INF`, `-INF` and `NaN`, and surrounding whitespace.
fn parse_real(value: &str) -> Option<f64> {
    value.trim().parse::<f64>().ok()
}

/// `xs:int`, also written as a real with no fractional part (`1.0`, `1e3`) by some exporters.
fn parse_integer(value: &str) -> Option<i32> {
    let value = value.trim();
    if let Ok(i) = value.parse::<i32>() {
        return Some(i);
    }
    let real = value.parse::<f64>().ok()?;
    let in_range = (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&real);
    (in_range && real.fract() == 0.0).then_some(real as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription fmiVersion="2.0" modelName="decay" guid="{1234}">
  <CoSimulation modelIdentifier="decay"/>
  <ModelVariables>
    <ScalarVariable name="x" valueReference="0" causality="output">
      <Real start="1"/>
    </ScalarVariable>
  </ModelVariables>
</fmiModelDescription>
"#;

    #[test]
    fn minimal_description() {
        let md = ModelDescription::parse(MINIMAL).unwrap();
        assert_eq!(md.fmi_version, "2.0");
        assert_eq!(md.model_name, "decay");
        assert_eq!(md.guid, "{1234}");
        assert_eq!(md.generation_tool, None);
        assert_eq!(md.co_simulation.model_identifier, "decay");
        assert!(!md.co_simulation.can_get_and_set_fmu_state);
        assert!(!md.co_simulation.can_handle_variable_communication_step_size);
        assert_eq!(md.default_experiment, None);
        assert_eq!(md.variables.len(), 1);
        let x = &md.variables[0];
        assert_eq!(x.name, "x");
        assert_eq!(x.value_reference, 0);
        assert_eq!(x.causality, Causality::Output);
        assert_eq!(x.variability, Variability::Continuous);
        assert_eq!(x.initial, None);
        assert_eq!(
            x.kind,
            VariableKind::Real {
                start: Some(1.0),
                unit: None
            }
        );
        assert_eq!(x.line, 5);
        assert!(md.outputs.is_empty());
    }

    #[test]
    fn defaults_for_causality_and_variability() {
        let xml = MINIMAL.replace(r#" causality="output""#, "");
        let md = ModelDescription::parse(&xml).unwrap();
        assert_eq!(md.variables[0].causality, Causality::Local);
        assert_eq!(md.variables[0].variability, Variability::Continuous);
    }

    /// Shaped like a Dymola export: schema namespace, vendor annotations, unknown attributes and
    /// elements everywhere, unit definitions, declared types and a model structure.
    const DYMOLA_LIKE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:noNamespaceSchemaLocation="fmiModelDescription.xsd"
  fmiVersion="2.0"
  modelName="Plant.Tank"
  guid="{a1b2c3d4-0000-1111-2222-333344445555}"
  description="A tank"
  generationTool="Dymola Version 2023x, 2022-10-07"
  generationDateAndTime="2024-01-01T00:00:00Z"
  variableNamingConvention="structured"
  numberOfEventIndicators="2"
  dymolaSpecialFlag="yes">
  <CoSimulation
    modelIdentifier="Plant_Tank"
    canHandleVariableCommunicationStepSize="true"
    canInterpolateInputs="true"
    maxOutputDerivativeOrder="1"
    canGetAndSetFMUstate="true"
    canSerializeFMUstate="true"
    providesDirectionalDerivative="false"
    canNotUseMemoryManagementFunctions="false">
    <SourceFiles><File name="all.c"/></SourceFiles>
  </CoSimulation>
  <UnitDefinitions>
    <Unit name="m3"><BaseUnit m="3"/></Unit>
    <Unit name="m3/s"><BaseUnit m="3" s="-1"/></Unit>
  </UnitDefinitions>
  <TypeDefinitions>
    <SimpleType name="Modelica.SIunits.Volume">
      <Real quantity="Volume" unit="m3" min="0"/>
    </SimpleType>
    <SimpleType name="Modes">
      <Enumeration><Item name="off" value="1"/><Item name="on" value="2"/></Enumeration>
    </SimpleType>
  </TypeDefinitions>
  <LogCategories>
    <Category name="logEvents" description="events"/>
  </LogCategories>
  <DefaultExperiment startTime="0.0" stopTime="10" tolerance="0.0001"/>
  <VendorAnnotations>
    <Tool name="Dymola"><Settings><Setting name="x" value="1"/></Settings></Tool>
  </VendorAnnotations>
  <ModelVariables>
    <!-- Index = 1 -->
    <ScalarVariable name="volume" valueReference="33554432" causality="output"
        variability="continuous" initial="calculated" canHandleMultipleSetPerTimeInstant="true">
      <Real declaredType="Modelica.SIunits.Volume"/>
      <Annotations><Tool name="Dymola"><Data hidden="false"/></Tool></Annotations>
    </ScalarVariable>
    <!-- Index = 2 -->
    <ScalarVariable name="inflow" valueReference="352321536" causality="input">
      <Real unit="m3/s" start="0.5" min="0" relativeQuantity="false"/>
    </ScalarVariable>
    <DymolaExtension foo="bar"/>
    <!-- Index = 3 -->
    <ScalarVariable name="mode" valueReference="7" causality="parameter" variability="fixed"
        initial="exact">
      <Enumeration declaredType="Modes" start="2"/>
    </ScalarVariable>
    <!-- Index = 4 -->
    <ScalarVariable name="alarm" valueReference="8" causality="output" variability="discrete">
      <Boolean/>
    </ScalarVariable>
  </ModelVariables>
  <ModelStructure>
    <Outputs>
      <Unknown index="1" dependencies="2" dependenciesKind="dependent"/>
      <Unknown index="4"/>
    </Outputs>
    <InitialUnknowns><Unknown index="1"/></InitialUnknowns>
  </ModelStructure>
</fmiModelDescription>
"#;

    #[test]
    fn dymola_like_description() {
        let md = ModelDescription::parse(DYMOLA_LIKE).unwrap();
        assert_eq!(md.model_name, "Plant.Tank");
        assert_eq!(md.guid, "{a1b2c3d4-0000-1111-2222-333344445555}");
        assert_eq!(
            md.generation_tool.as_deref(),
            Some("Dymola Version 2023x, 2022-10-07")
        );
        assert_eq!(md.description.as_deref(), Some("A tank"));

        let cs = &md.co_simulation;
        assert_eq!(cs.model_identifier, "Plant_Tank");
        assert!(cs.can_handle_variable_communication_step_size);
        assert!(cs.can_get_and_set_fmu_state);
        assert!(!cs.can_be_instantiated_only_once_per_process);
        assert!(!cs.needs_execution_tool);

        let experiment = md.default_experiment.unwrap();
        assert_eq!(experiment.start_time, Some(0.0));
        assert_eq!(experiment.stop_time, Some(10.0));
        assert_eq!(experiment.step_size, None);
        assert_eq!(experiment.tolerance, Some(1e-4));

        let names: Vec<_> = md.variables.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["volume", "inflow", "mode", "alarm"]);
        let volume = md.variable("volume").unwrap();
        assert_eq!(volume.value_reference, 33_554_432);
        assert_eq!(volume.initial, Some(Initial::Calculated));
        assert_eq!(
            volume.kind,
            VariableKind::Real {
                start: None,
                unit: Some("m3".into())
            },
            "the unit comes from the declared type"
        );
        let inflow = md.variable("inflow").unwrap();
        assert_eq!(inflow.causality, Causality::Input);
        assert_eq!(
            inflow.kind,
            VariableKind::Real {
                start: Some(0.5),
                unit: Some("m3/s".into())
            }
        );
        assert_eq!(
            inflow.range,
            ValueRange {
                min: Some(0.0),
                max: None
            }
        );
        let volume = md.variable("volume").unwrap();
        assert_eq!(volume.range.min, Some(0.0), "min from the declared type");
        let mode = md.variable("mode").unwrap();
        assert_eq!(mode.variability, Variability::Fixed);
        assert_eq!(mode.kind, VariableKind::Enumeration { start: Some(2) });
        assert_eq!(
            mode.range,
            ValueRange {
                min: Some(1.0),
                max: Some(2.0)
            },
            "an enumeration takes its items' values"
        );
        assert!(!mode.range.contains(3.0) && mode.range.contains(2.0));
        // Rounding next to a bound snaps to it; anything more stays out.
        assert_eq!(inflow.range.snap(-1e-17), 0.0);
        assert_eq!(inflow.range.snap(-1e-3), -1e-3);
        assert_eq!(mode.range.snap(2.000_000_000_1), 2.0);
        assert_eq!(mode.range.snap(1.5), 1.5);
        assert_eq!(mode.kind.value_type(), ValueType::Integer);
        let alarm = md.variable("alarm").unwrap();
        assert_eq!(alarm.kind, VariableKind::Boolean { start: None });
        assert_eq!(alarm.variability, Variability::Discrete);

        assert_eq!(md.outputs, [0, 3]);
    }

    /// Shaped like an OpenModelica export: ME and CS side by side, `fmiVersion="2.0"` with extra
    /// attributes, integer starts, string variables, a time variable and a `<ModelStructure>`
    /// with derivatives.
    const OPENMODELICA_LIKE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription
  fmiVersion="2.0"
  modelName="BouncingBall"
  guid="{8c4e810f-3df3-4a00-8276-176fa3c9f008}"
  description=""
  generationTool="OpenModelica Compiler OMCompiler v1.22.0"
  generationDateAndTime="2024-02-02T10:00:00Z"
  variableNamingConvention="structured"
  numberOfEventIndicators="1">
  <ModelExchange modelIdentifier="BouncingBall" needsExecutionTool="false"/>
  <CoSimulation
    modelIdentifier="BouncingBall"
    needsExecutionTool="false"
    canHandleVariableCommunicationStepSize="true"
    canInterpolateInputs="false"
    canRunAsynchronuously="false"
    canBeInstantiatedOnlyOncePerProcess="false"
    canNotUseMemoryManagementFunctions="false"
    canGetAndSetFMUstate="false"
    canSerializeFMUstate="false"/>
  <LogCategories>
    <Category name="logEvents" />
    <Category name="logStatusError" />
  </LogCategories>
  <DefaultExperiment startTime="0.0" stopTime="1.0" tolerance="1e-06" stepSize="0.002"/>
  <ModelVariables>
  <!-- Index of variable = "1" -->
  <ScalarVariable
    name="h"
    valueReference="0"
    description="height"
    variability="continuous"
    causality="output"
    initial="exact">
    <Real start="1.0" unit="m"/>
  </ScalarVariable>
  <!-- Index of variable = "2" -->
  <ScalarVariable
    name="der(h)"
    valueReference="1"
    variability="continuous"
    causality="local"
    initial="calculated">
    <Real derivative="1"/>
  </ScalarVariable>
  <!-- Index of variable = "3" -->
  <ScalarVariable
    name="bounces"
    valueReference="0"
    variability="discrete"
    causality="local"
    initial="exact">
    <Integer start="0.0"/>
  </ScalarVariable>
  <!-- Index of variable = "4" -->
  <ScalarVariable
    name="label"
    valueReference="0"
    variability="fixed"
    causality="parameter"
    initial="exact">
    <String start="ball &amp; floor"/>
  </ScalarVariable>
  <!-- Index of variable = "5" -->
  <ScalarVariable
    name="time"
    valueReference="2"
    causality="independent">
    <Real/>
  </ScalarVariable>
  </ModelVariables>
  <ModelStructure>
    <Outputs>
      <Unknown index="1" dependencies="" dependenciesKind="" />
    </Outputs>
    <Derivatives>
      <Unknown index="2" dependencies="" dependenciesKind="" />
    </Derivatives>
    <InitialUnknowns>
      <Unknown index="2" dependencies="" dependenciesKind="" />
    </InitialUnknowns>
  </ModelStructure>
</fmiModelDescription>
"#;

    #[test]
    fn openmodelica_like_description() {
        let md = ModelDescription::parse(OPENMODELICA_LIKE).unwrap();
        assert_eq!(md.model_name, "BouncingBall");
        assert!(md.generation_tool.unwrap().starts_with("OpenModelica"));
        assert!(!md.co_simulation.can_get_and_set_fmu_state);
        assert!(md.co_simulation.can_handle_variable_communication_step_size);
        let experiment = md.default_experiment.unwrap();
        assert_eq!(experiment.step_size, Some(0.002));
        assert_eq!(experiment.tolerance, Some(1e-6));
        assert_eq!(md.variables.len(), 5);
        assert_eq!(
            md.variables[0].kind,
            VariableKind::Real {
                start: Some(1.0),
                unit: Some("m".into())
            }
        );
        assert_eq!(
            md.variables[2].kind,
            VariableKind::Integer { start: Some(0) }
        );
        assert_eq!(
            md.variables[3].kind,
            VariableKind::String {
                start: Some("ball & floor".into())
            }
        );
        assert_eq!(md.variables[4].causality, Causality::Independent);
        assert_eq!(md.outputs, [0]);
    }

    #[test]
    fn byte_order_mark_doctype_and_latin1_are_accepted() {
        let with_bom = format!("\u{feff}{MINIMAL}");
        assert!(ModelDescription::parse(&with_bom).is_ok());

        let with_doctype = MINIMAL.replace(
            "<fmiModelDescription",
            "<!DOCTYPE fmiModelDescription>\n<fmiModelDescription",
        );
        assert!(ModelDescription::parse(&with_doctype).is_ok());

        // "Wärme" in Latin-1: 0xE4 is not valid UTF-8 on its own.
        let latin1 = MINIMAL
            .replace("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"")
            .replace("decay\" guid", "W\u{e4}rme\" guid");
        let bytes: Vec<u8> = latin1.chars().map(|c| c as u8).collect();
        assert!(std::str::from_utf8(&bytes).is_err());
        let md = ModelDescription::parse_bytes(&bytes).unwrap();
        assert_eq!(md.model_name, "Wärme");
    }

    #[test]
    fn xs_boolean_and_lenient_numbers() {
        let xml = MINIMAL
            .replace(
                r#"<CoSimulation modelIdentifier="decay"/>"#,
                r#"<CoSimulation modelIdentifier="decay" canGetAndSetFMUstate="1"
                    needsExecutionTool=" false "/>
                   <DefaultExperiment stopTime=" 1E+001 " tolerance="INF"/>"#,
            )
            .replace(r#"<Real start="1"/>"#, r#"<Real start="-INF"/>"#);
        let md = ModelDescription::parse(&xml).unwrap();
        assert!(md.co_simulation.can_get_and_set_fmu_state);
        assert!(!md.co_simulation.needs_execution_tool);
        let experiment = md.default_experiment.unwrap();
        assert_eq!(experiment.stop_time, Some(10.0));
        assert_eq!(experiment.tolerance, Some(f64::INFINITY));
        assert_eq!(
            md.variables[0].kind,
            VariableKind::Real {
                start: Some(f64::NEG_INFINITY),
                unit: None
            }
        );
    }

    #[test]
    fn missing_guid_names_element_and_line() {
        let xml = MINIMAL.replace(r#" guid="{1234}""#, "");
        let err = ModelDescription::parse(&xml).unwrap_err();
        assert_eq!(
            err,
            DescriptionError::MissingAttribute {
                element: "fmiModelDescription".into(),
                attribute: "guid",
                line: 2,
            }
        );
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn fmi_1_and_3_are_refused() {
        for version in ["1.0", "3.0"] {
            let xml = MINIMAL.replace(r#"fmiVersion="2.0""#, &format!(r#"fmiVersion="{version}""#));
            let err = ModelDescription::parse(&xml).unwrap_err();
            assert_eq!(
                err,
                DescriptionError::UnsupportedVersion {
                    version: version.into(),
                    line: 2
                }
            );
            assert!(err.to_string().contains("FMI 2.0 Co-Simulation"), "{err}");
        }
        let xml = MINIMAL.replace(r#"fmiVersion="2.0""#, r#"fmiVersion="2.0.4""#);
        assert_eq!(ModelDescription::parse(&xml).unwrap().fmi_version, "2.0.4");
    }

    #[test]
    fn missing_value_reference_names_element_and_line() {
        let xml = MINIMAL.replace(r#" valueReference="0""#, "");
        let err = ModelDescription::parse(&xml).unwrap_err();
        assert_eq!(
            err,
            DescriptionError::MissingAttribute {
                element: "ScalarVariable".into(),
                attribute: "valueReference",
                line: 5,
            }
        );
        assert_eq!(
            err.to_string(),
            "<ScalarVariable> at line 5 lacks the required attribute `valueReference`"
        );
    }

    #[test]
    fn bad_boolean_names_element_and_line() {
        let xml = MINIMAL.replace(
            r#"<CoSimulation modelIdentifier="decay"/>"#,
            r#"<CoSimulation modelIdentifier="decay" canGetAndSetFMUstate="yes"/>"#,
        );
        let err = ModelDescription::parse(&xml).unwrap_err();
        assert_eq!(
            err,
            DescriptionError::InvalidAttribute {
                element: "CoSimulation".into(),
                attribute: "canGetAndSetFMUstate",
                value: "yes".into(),
                expected: "a boolean (true or false)",
                line: 3,
            }
        );
    }

    #[test]
    fn other_errors() {
        // Model Exchange only.
        let xml = MINIMAL.replace("CoSimulation", "ModelExchange");
        assert_eq!(
            ModelDescription::parse(&xml).unwrap_err(),
            DescriptionError::NotCoSimulation
        );

        // Not XML at all.
        let err = ModelDescription::parse("<fmiModelDescription").unwrap_err();
        assert!(
            matches!(err, DescriptionError::Xml { line: 1, .. }),
            "{err:?}"
        );

        // Another root.
        let err = ModelDescription::parse("<html/>").unwrap_err();
        assert_eq!(
            err,
            DescriptionError::NotModelDescription {
                found: "html".into()
            }
        );

        // A variable without a type.
        let xml = MINIMAL.replace(r#"<Real start="1"/>"#, "<Annotations/>");
        let err = ModelDescription::parse(&xml).unwrap_err();
        assert!(
            matches!(err, DescriptionError::MissingElement { line: 5, .. }),
            "{err:?}"
        );

        // A value reference that is no unsigned integer.
        let xml = MINIMAL.replace(r#"valueReference="0""#, r#"valueReference="-1""#);
        let err = ModelDescription::parse(&xml).unwrap_err();
        assert!(
            matches!(
                err,
                DescriptionError::InvalidAttribute {
                    attribute: "valueReference",
                    line: 5,
                    ..
                }
            ),
            "{err:?}"
        );

        // A model identifier that would make the loader leave the archive.
        let xml = MINIMAL.replace(r#"modelIdentifier="decay""#, r#"modelIdentifier="../../x""#);
        let err = ModelDescription::parse(&xml).unwrap_err();
        assert!(
            matches!(
                err,
                DescriptionError::InvalidAttribute {
                    attribute: "modelIdentifier",
                    line: 3,
                    ..
                }
            ),
            "{err:?}"
        );

        // An output index past the variables.
        let xml = MINIMAL.replace(
            "</ModelVariables>",
            "</ModelVariables><ModelStructure><Outputs><Unknown index=\"2\"/></Outputs></ModelStructure>",
        );
        let err = ModelDescription::parse(&xml).unwrap_err();
        assert!(
            matches!(
                err,
                DescriptionError::InvalidAttribute {
                    attribute: "index",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn integers_written_as_reals() {
        assert_eq!(parse_integer("3"), Some(3));
        assert_eq!(parse_integer(" -2.0 "), Some(-2));
        assert_eq!(parse_integer("1e3"), Some(1000));
        assert_eq!(parse_integer("1.5"), None);
        assert_eq!(parse_integer("1e10"), None);
        assert_eq!(parse_integer("x"), None);
    }
}
