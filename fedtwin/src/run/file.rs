//! `federation.toml`: one file describing a whole run. See the README's "Running a
//! federation" for the reference; every error names the file and the line at fault.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use federate_sdk::hosted::HostedFn;
use federate_sdk::{ObjectModel, SimDuration, SimTime};
use fedtwin_core::LossPolicy;
use fedtwin_fmi::AdapterConfig;
use fedtwin_recorder::{PlayerTable, RecordSpec};
use serde::Deserialize;
use toml::Spanned;

/// A built-in crate's object model.
type ModelFn = fn() -> ObjectModel;

/// A built-in crate's `FEDERATES`.
type Table = &'static [(&'static str, HostedFn)];

/// The built-in federates: `builtin = "<crate>/<name>"`, with the crate's object model when
/// the runner knows it (it then joins the run's model, so that these federates mix with FMUs
/// and players without a `[[object_class]]` list in the file).
const BUILTINS: &[(&str, Table, Option<ModelFn>)] = &[
    ("ping-pong", ping_pong::FEDERATES, Some(ping_pong::model)),
    ("smart-grid", smart_grid::FEDERATES, Some(smart_grid::model)),
    (
        "federated-learning",
        federated_learning::FEDERATES,
        Some(federated_learning::model),
    ),
];

/// Why a federation file was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or an unknown or missing key; the parser's message shows the line.
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    /// A value is wrong.
    #[error("{file}, line {line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
}

/// A checked federation file.
#[derive(Debug)]
pub(crate) struct FederationFile {
    pub(crate) name: String,
    pub(crate) start: SimTime,
    pub(crate) stop: SimTime,
    pub(crate) on_federate_lost: LossPolicy,
    pub(crate) federates: Vec<FederateSpec>,
    /// The recorder's federate name.
    pub(crate) recorder: String,
    pub(crate) record: RecordSpec,
    /// The run's object model; `None` when nothing in the file declares a class and no known
    /// built-in does either (the built-ins then create the federation with their own).
    pub(crate) model: Option<ObjectModel>,
}

/// One `[[federate]]`.
#[derive(Debug)]
pub(crate) struct FederateSpec {
    pub(crate) name: String,
    pub(crate) kind: Kind,
}

/// How a federate runs.
pub(crate) enum Kind {
    Builtin {
        builtin: String,
        run: HostedFn,
        params: toml::Table,
    },
    Fmu(Box<AdapterConfig>),
    Command(Vec<String>),
    Player {
        table: PlayerTable,
        class: String,
        lookahead: Option<SimDuration>,
    },
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin { builtin, .. } => write!(f, "Builtin({builtin})"),
            Self::Fmu(config) => write!(f, "Fmu({})", config.file),
            Self::Command(command) => write!(f, "Command({command:?})"),
            Self::Player { table, class, .. } => {
                write!(f, "Player({} as {class})", table.file.display())
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    federation: RawFederation,
    #[serde(default)]
    object_class: Vec<RawClass>,
    #[serde(default)]
    interaction_class: Vec<RawInteraction>,
    #[serde(default)]
    federate: Vec<RawFederate>,
    record: Option<RawRecord>,
    prepare: Option<RawPrepare>,
    step: Option<RawStep>,
}

/// `[step]`: the step controller of every FMU federate, over their adapter files' `[step]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    size: Option<Spanned<String>>,
    min: Option<Spanned<String>>,
    max: Option<Spanned<String>>,
    alpha: Option<Spanned<f64>>,
    override_stability: Option<bool>,
}

/// The checked `[step]`.
#[derive(Debug, Default)]
struct StepDefaults {
    size: Option<SimDuration>,
    min: Option<SimDuration>,
    max: Option<SimDuration>,
    alpha: Option<f64>,
    override_stability: Option<bool>,
}

impl StepDefaults {
    fn parse(source: &Source<'_>, raw: Option<&RawStep>) -> Result<Self, FileError> {
        let Some(raw) = raw else {
            return Ok(Self::default());
        };
        let duration = |value: &Option<Spanned<String>>, key: &str| {
            value
                .as_ref()
                .map(|value| source.positive_duration(value, key))
                .transpose()
        };
        let alpha = match &raw.alpha {
            Some(alpha) if !(*alpha.get_ref() > 0.0 && *alpha.get_ref() <= 1.0) => {
                return Err(source.error(alpha.span(), "alpha must be in (0, 1]"));
            }
            alpha => alpha.as_ref().map(|a| *a.get_ref()),
        };
        let defaults = Self {
            size: duration(&raw.size, "size")?,
            min: duration(&raw.min, "min")?,
            max: duration(&raw.max, "max")?,
            alpha,
            override_stability: raw.override_stability,
        };
        if let (Some(min), Some(max), Some(span)) = (defaults.min, defaults.max, &raw.max)
            && min > max
        {
            return Err(source.error(
                span.span(),
                format_args!("max = {max} is below min = {min}"),
            ));
        }
        Ok(defaults)
    }

    /// Puts these settings over an adapter file's own.
    fn apply(&self, config: &mut AdapterConfig) {
        if self.size.is_some() {
            config.step_size = self.size;
        }
        if let Some(min) = self.min {
            config.step.min_step = min;
        }
        if let Some(max) = self.max {
            config.step.max_step = max;
        }
        if let Some(alpha) = self.alpha {
            config.step.alpha = alpha;
        }
        if let Some(override_stability) = self.override_stability {
            config.step.override_stability = override_stability;
        }
    }
}

/// `[prepare]`: what the runner makes before checking the federates.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrepare {
    /// Test FMUs of the workspace (`adapters/fmi/test-fmus`) to pack into the file's folder, so
    /// that an example needs no separate packing step.
    #[serde(default)]
    test_fmus: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFederation {
    name: Spanned<String>,
    start: Option<Spanned<String>>,
    stop: Spanned<String>,
    on_federate_lost: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    name: Spanned<String>,
    attributes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInteraction {
    name: Spanned<String>,
    #[serde(default)]
    parameters: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFederate {
    name: Spanned<String>,
    builtin: Option<Spanned<String>>,
    fmu: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    player: Option<Spanned<String>>,
    class: Option<Spanned<String>>,
    lookahead: Option<Spanned<String>>,
    step: Option<Spanned<String>>,
    params: Option<Spanned<toml::Table>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    name: Option<Spanned<String>>,
    #[serde(default)]
    attributes: Vec<Spanned<String>>,
    #[serde(default)]
    interactions: Vec<Spanned<String>>,
}

/// Turns byte spans into 1-based lines and errors that name the file.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        fedtwin_core::line_at(self.text.as_bytes(), span.start)
    }

    fn error(&self, span: Range<usize>, message: impl fmt::Display) -> FileError {
        FileError::Invalid {
            file: self.file.to_owned(),
            line: self.line(span),
            message: message.to_string(),
        }
    }

    fn positive_duration(
        &self,
        value: &Spanned<String>,
        key: &str,
    ) -> Result<SimDuration, FileError> {
        let span: SimDuration = value.get_ref().parse().map_err(|e| {
            self.error(
                value.span(),
                format_args!("{key} = \"{}\" is not a duration: {e}", value.get_ref()),
            )
        })?;
        if span.is_zero() {
            return Err(self.error(value.span(), format_args!("{key} must be positive")));
        }
        Ok(span)
    }

    fn time(&self, value: &Spanned<String>, key: &str) -> Result<SimTime, FileError> {
        value.get_ref().parse().map_err(|e| {
            self.error(
                value.span(),
                format_args!("{key} = \"{}\" is not a time: {e}", value.get_ref()),
            )
        })
    }
}

impl FederationFile {
    /// Reads and checks a federation file, with the FMU adapter files and player CSVs it
    /// names (relative to its folder).
    pub(crate) fn load(path: &Path) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        Self::parse(&text, &path.display().to_string(), base)
    }

    /// Parses and checks `text`, named `file` in messages; relative paths are taken from
    /// `base`.
    pub(crate) fn parse(text: &str, file: &str, base: &Path) -> Result<Self, FileError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| FileError::Syntax {
            file: file.to_owned(),
            message: e.to_string(),
        })?;
        let source = Source { file, text };
        if let Some(prepare) = &raw.prepare {
            for name in &prepare.test_fmus {
                let model =
                    fedtwin_test_fmus::TestModel::from_name(name.get_ref()).ok_or_else(|| {
                        let known: Vec<&str> = fedtwin_test_fmus::TestModel::ALL
                            .iter()
                            .map(|m| m.name())
                            .collect();
                        source.error(
                            name.span(),
                            format_args!(
                                "no test FMU `{}`; the test FMUs are {}",
                                name.get_ref(),
                                known.join(", ")
                            ),
                        )
                    })?;
                fedtwin_test_fmus::pack(model, base).map_err(|e| {
                    source.error(
                        name.span(),
                        format_args!("cannot pack `{}`: {e}", name.get_ref()),
                    )
                })?;
            }
        }
        let relative = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        // [federation]
        let name = raw.federation.name.get_ref().clone();
        if name.is_empty() {
            return Err(source.error(raw.federation.name.span(), "name must not be empty"));
        }
        let start = match &raw.federation.start {
            Some(start) => {
                let time = source.time(start, "start")?;
                if time != SimTime::ZERO {
                    // Federation time begins at zero when the federation is created; a later
                    // start would need every federate to agree on an offset first.
                    return Err(source.error(
                        start.span(),
                        "start must be \"0s\" for now: federation time begins at zero",
                    ));
                }
                time
            }
            None => SimTime::ZERO,
        };
        let stop = source.time(&raw.federation.stop, "stop")?;
        if stop <= start || stop.is_end() {
            return Err(source.error(
                raw.federation.stop.span(),
                format_args!("stop = {stop} must be a finite time after start = {start}"),
            ));
        }
        let on_federate_lost = match &raw.federation.on_federate_lost {
            None => LossPolicy::Halt,
            Some(value) => match value.get_ref().as_str() {
                "halt" => LossPolicy::Halt,
                "resign" => LossPolicy::Resign,
                other => {
                    return Err(source.error(
                        value.span(),
                        format_args!(
                            "on_federate_lost = \"{other}\": write \"halt\" or \"resign\""
                        ),
                    ));
                }
            },
        };

        let steps = StepDefaults::parse(&source, raw.step.as_ref())?;

        // [record]
        let (recorder, record) = match &raw.record {
            Some(record) => {
                let mut spec = RecordSpec::default();
                for attribute in &record.attributes {
                    match attribute.get_ref().rsplit_once('.') {
                        Some((class, name)) if !class.is_empty() && !name.is_empty() => {}
                        _ => {
                            return Err(source.error(
                                attribute.span(),
                                format_args!(
                                    "attribute `{}` needs a class: write `Class.attribute`, \
                                     e.g. `Grid.Load.load_kw`",
                                    attribute.get_ref()
                                ),
                            ));
                        }
                    }
                    if spec.attributes.contains(attribute.get_ref()) {
                        return Err(source.error(
                            attribute.span(),
                            format_args!("`{}` is recorded twice", attribute.get_ref()),
                        ));
                    }
                    spec.attributes.push(attribute.get_ref().clone());
                }
                for class in &record.interactions {
                    if class.get_ref().is_empty() || spec.interactions.contains(class.get_ref()) {
                        return Err(source.error(
                            class.span(),
                            format_args!("interaction `{}` is empty or twice", class.get_ref()),
                        ));
                    }
                    spec.interactions.push(class.get_ref().clone());
                }
                let name = record
                    .name
                    .as_ref()
                    .map_or_else(|| "recorder".to_owned(), |n| n.get_ref().clone());
                (name, spec)
            }
            None => ("recorder".to_owned(), RecordSpec::default()),
        };

        // [[federate]]
        if raw.federate.is_empty() {
            return Err(source.error(
                raw.federation.name.span(),
                "the federation has no [[federate]]: add at least one",
            ));
        }
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        names.insert(recorder.clone(), 0);
        let mut model = ModelBuilder::default();
        for class in &raw.object_class {
            model.object_class(class.name.get_ref(), &class.attributes);
        }
        for class in &raw.interaction_class {
            model.interaction_class(class.name.get_ref(), &class.parameters);
        }
        let mut federates = Vec::with_capacity(raw.federate.len());
        for federate in &raw.federate {
            let name = federate.name.get_ref().clone();
            let line = source.line(federate.name.span());
            if name.is_empty() || name.contains(['/', '\\', ',']) {
                return Err(source.error(
                    federate.name.span(),
                    format_args!("federate name `{name}` must be non-empty, without / \\ or ,"),
                ));
            }
            if let Some(first) = names.insert(name.clone(), line) {
                let message = if name == recorder {
                    format!(
                        "`{name}` is the recorder's name; rename the federate or set [record] \
                         name"
                    )
                } else {
                    format!("federate `{name}` is defined twice (first on line {first})")
                };
                return Err(source.error(federate.name.span(), message));
            }
            let kind = federate_kind(&source, federate, &name, &relative, &steps, &mut model)?;
            federates.push(FederateSpec { name, kind });
        }

        // Each FMU's step controller counts the declared dynamics of the FMUs coupled with it.
        let mut fmus: Vec<(String, &mut AdapterConfig)> = federates
            .iter_mut()
            .filter_map(|f| match &mut f.kind {
                Kind::Fmu(config) => Some((f.name.clone(), &mut **config)),
                _ => None,
            })
            .collect();
        fedtwin_fmi::config::couple(&mut fmus);

        // Only when every federate's classes are known can the recorded names be checked
        // now; otherwise the recorder checks them against the federation once joined.
        let complete = federates.iter().all(|f| match &f.kind {
            Kind::Builtin { builtin, .. } => builtin_model_known(builtin),
            Kind::Command(_) => false,
            Kind::Fmu(_) | Kind::Player { .. } => true,
        });
        let model = model.build();
        if let Some(Err(e)) = model.as_ref().map(ObjectModel::validate) {
            return Err(source.error(
                raw.federation.name.span(),
                format_args!("the federation's object model is invalid: {e}"),
            ));
        }
        if let (true, Some(record)) = (complete, &raw.record) {
            let known = model.clone().unwrap_or_default();
            for attribute in &record.attributes {
                if let Err(e) = known.resolve_attribute(attribute.get_ref()) {
                    return Err(source.error(
                        attribute.span(),
                        format_args!("cannot record `{}`: {e}", attribute.get_ref()),
                    ));
                }
            }
            for class in &record.interactions {
                if let Err(e) = known.interaction_class(class.get_ref()) {
                    return Err(source.error(
                        class.span(),
                        format_args!("cannot record `{}`: {e}", class.get_ref()),
                    ));
                }
            }
        }
        Ok(Self {
            name,
            start,
            stop,
            on_federate_lost,
            federates,
            recorder,
            record,
            model,
        })
    }

    /// Every federate of the run, the recorder included: the start barrier's list.
    pub(crate) fn expect(&self) -> Vec<String> {
        let mut names: Vec<String> = self.federates.iter().map(|f| f.name.clone()).collect();
        names.push(self.recorder.clone());
        names
    }
}

fn federate_kind(
    source: &Source<'_>,
    federate: &RawFederate,
    name: &str,
    relative: &impl Fn(&str) -> PathBuf,
    steps: &StepDefaults,
    model: &mut ModelBuilder,
) -> Result<Kind, FileError> {
    let given: Vec<&str> = [
        federate.builtin.as_ref().map(|_| "builtin"),
        federate.fmu.as_ref().map(|_| "fmu"),
        federate.command.as_ref().map(|_| "command"),
        federate.player.as_ref().map(|_| "player"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() != 1 {
        return Err(source.error(
            federate.name.span(),
            format_args!(
                "federate `{name}` needs exactly one of builtin, fmu, command or player (has {})",
                if given.is_empty() {
                    "none".to_owned()
                } else {
                    given.join(", ")
                }
            ),
        ));
    }
    let only = |key: &str, value: Option<Range<usize>>, kind: &str| match value {
        Some(span) => Err(source.error(
            span,
            format_args!("`{key}` belongs to {kind} federates; federate `{name}` is not one"),
        )),
        None => Ok(()),
    };
    if federate.builtin.is_none() {
        only(
            "params",
            federate.params.as_ref().map(Spanned::span),
            "builtin",
        )?;
    }
    if federate.fmu.is_none() {
        // A builtin takes its step under `params`; a player and a command have none to set.
        only("step", federate.step.as_ref().map(Spanned::span), "fmu")?;
    }
    if federate.player.is_none() {
        only(
            "class",
            federate.class.as_ref().map(Spanned::span),
            "player",
        )?;
        only(
            "lookahead",
            federate.lookahead.as_ref().map(Spanned::span),
            "player",
        )?;
    }

    if let Some(builtin) = &federate.builtin {
        let (run, known_model) = lookup(source, builtin)?;
        if let Some(known) = known_model {
            model.merge(&known());
        }
        return Ok(Kind::Builtin {
            builtin: builtin.get_ref().clone(),
            run,
            params: federate
                .params
                .as_ref()
                .map(|p| p.get_ref().clone())
                .unwrap_or_default(),
        });
    }
    if let Some(fmu) = &federate.fmu {
        let path = relative(fmu.get_ref());
        if !path.is_file() {
            return Err(source.error(
                fmu.span(),
                format_args!(
                    "federate `{name}`: adapter file {} not found",
                    path.display()
                ),
            ));
        }
        let mut config = AdapterConfig::load(&path)
            .map_err(|e| source.error(fmu.span(), format_args!("federate `{name}`: {e}")))?;
        steps.apply(&mut config);
        if let Some(step) = &federate.step {
            // The adapter checks it against the stability bound when it starts.
            config.step_size = Some(source.positive_duration(step, "step")?);
        }
        if !config.fmu.is_file() {
            return Err(source.error(
                fmu.span(),
                format_args!(
                    "federate `{name}`: FMU {} (named in {}) not found",
                    config.fmu.display(),
                    path.display()
                ),
            ));
        }
        for (class, attributes) in &config.object_classes {
            model.object_class(class, attributes);
        }
        return Ok(Kind::Fmu(Box::new(config)));
    }
    if let Some(command) = &federate.command {
        if command.get_ref().first().is_none_or(String::is_empty) {
            return Err(source.error(
                command.span(),
                "command must name a program, e.g. [\"python3\", \"weather.py\"]",
            ));
        }
        return Ok(Kind::Command(command.get_ref().clone()));
    }
    let Some(player) = &federate.player else {
        return Err(source.error(federate.name.span(), "no federate kind"));
    };
    let Some(class) = &federate.class else {
        return Err(source.error(
            player.span(),
            format_args!(
                "player `{name}` needs `class`: the object class whose attributes its columns \
                 are"
            ),
        ));
    };
    if class.get_ref().is_empty() {
        return Err(source.error(class.span(), "class must not be empty"));
    }
    let path = relative(player.get_ref());
    let table = PlayerTable::load(&path)
        .map_err(|e| source.error(player.span(), format_args!("federate `{name}`: {e}")))?;
    let lookahead = match &federate.lookahead {
        Some(text) => {
            let l: SimDuration = text.get_ref().parse().map_err(|e| {
                source.error(
                    text.span(),
                    format_args!("lookahead = \"{}\" is not a duration: {e}", text.get_ref()),
                )
            })?;
            if l.is_zero() {
                return Err(source.error(text.span(), "lookahead must be positive"));
            }
            Some(l)
        }
        None => None,
    };
    model.object_class(class.get_ref(), &table.columns);
    Ok(Kind::Player {
        table,
        class: class.get_ref().clone(),
        lookahead,
    })
}

fn lookup(
    source: &Source<'_>,
    builtin: &Spanned<String>,
) -> Result<(HostedFn, Option<ModelFn>), FileError> {
    let text = builtin.get_ref();
    let found = text.split_once('/').and_then(|(krate, name)| {
        BUILTINS
            .iter()
            .find(|(k, _, _)| *k == krate)
            .and_then(|(_, table, model)| {
                table
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, run)| (*run, *model))
            })
    });
    found.ok_or_else(|| {
        let known: Vec<String> = BUILTINS
            .iter()
            .flat_map(|(krate, table, _)| table.iter().map(move |(n, _)| format!("{krate}/{n}")))
            .collect();
        source.error(
            builtin.span(),
            format_args!(
                "unknown builtin `{text}`; known: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        )
    })
}

/// Whether the runner knows the object model of `builtin`'s crate.
pub(crate) fn builtin_model_known(builtin: &str) -> bool {
    builtin.split_once('/').is_some_and(|(krate, _)| {
        BUILTINS
            .iter()
            .any(|(k, _, model)| *k == krate && model.is_some())
    })
}

/// The union of the classes every part of the run declares, in first-mention order; a class
/// named twice gets the union of its attributes.
#[derive(Debug, Default)]
struct ModelBuilder {
    objects: Vec<(String, Vec<String>)>,
    interactions: Vec<(String, Vec<String>)>,
}

impl ModelBuilder {
    fn object_class(&mut self, name: &str, attributes: &[String]) {
        add(&mut self.objects, name, attributes);
    }

    fn interaction_class(&mut self, name: &str, parameters: &[String]) {
        add(&mut self.interactions, name, parameters);
    }

    fn merge(&mut self, model: &ObjectModel) {
        for class in &model.object_classes {
            self.object_class(&class.name, &class.attributes);
        }
        for class in &model.interaction_classes {
            self.interaction_class(&class.name, &class.parameters);
        }
    }

    fn build(self) -> Option<ObjectModel> {
        if self.objects.is_empty() && self.interactions.is_empty() {
            return None;
        }
        let model = self
            .objects
            .iter()
            .fold(ObjectModel::new(), |m, (name, a)| {
                m.with_object_class(name, a.iter().map(String::as_str))
            });
        Some(self.interactions.iter().fold(model, |m, (name, p)| {
            m.with_interaction_class(name, p.iter().map(String::as_str))
        }))
    }
}

fn add(classes: &mut Vec<(String, Vec<String>)>, name: &str, members: &[String]) {
    let index = match classes.iter().position(|(n, _)| n == name) {
        Some(index) => index,
        None => {
            classes.push((name.to_owned(), Vec::new()));
            classes.len() - 1
        }
    };
    let list = &mut classes[index].1;
    for member in members {
        if !list.contains(member) {
            list.push(member.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FederationFile, FileError> {
        FederationFile::parse(text, "federation.toml", Path::new(""))
    }

    const PING_PONG: &str = r#"
[federation]
name = "games"
stop = "1.5min"
on_federate_lost = "resign"

[[object_class]]
name = "Score.Board"
attributes = ["points"]

[[federate]]
name = "a"
builtin = "ping-pong/ping"
[federate.params]
step = "1s"

[[federate]]
name = "b"
builtin = "ping-pong/pong"

[record]
attributes = ["Score.Board.points"]
interactions = ["Ping", "Pong"]
"#;

    #[test]
    fn reads_federates_record_and_the_run_model() {
        let file = parse(PING_PONG).unwrap();
        assert_eq!(file.name, "games");
        assert_eq!(file.stop, SimTime::from_secs(90).unwrap());
        assert_eq!(file.on_federate_lost, LossPolicy::Resign);
        assert_eq!(file.expect(), ["a", "b", "recorder"]);
        assert!(matches!(
            &file.federates[0].kind,
            Kind::Builtin { params, .. } if params.get("step").is_some()
        ));
        let model = file.model.unwrap();
        let names: Vec<&str> = model
            .object_classes
            .iter()
            .map(|c| c.name.as_str())
            .chain(model.interaction_classes.iter().map(|c| c.name.as_str()))
            .collect();
        assert_eq!(names, ["Score.Board", "Ping", "Pong"]);
    }

    #[test]
    fn checks_recorded_names_when_every_model_is_known() {
        let text = PING_PONG.replace(
            "interactions = [\"Ping\", \"Pong\"]",
            "interactions = [\"Pang\"]",
        );
        let error = parse(&text).unwrap_err().to_string();
        assert!(
            error.starts_with("federation.toml, line 23: cannot record `Pang`"),
            "{error}"
        );
    }

    #[test]
    fn refuses_what_a_kind_does_not_take() {
        let text = PING_PONG.replace("[federate.params]\nstep = \"1s\"", "class = \"X.Y\"");
        let error = parse(&text).unwrap_err().to_string();
        assert!(
            error.contains("line 14: `class` belongs to player federates"),
            "{error}"
        );
        // A builtin's step goes under its params; beside them it would be ignored.
        let text = PING_PONG.replace("[federate.params]\nstep = \"1s\"", "step = \"1s\"");
        let error = parse(&text).unwrap_err().to_string();
        assert!(
            error.contains("line 14: `step` belongs to fmu federates"),
            "{error}"
        );

        let text = PING_PONG.replace("name = \"b\"", "name = \"recorder\"");
        let error = parse(&text).unwrap_err().to_string();
        assert!(error.contains("the recorder's name"), "{error}");

        let text = PING_PONG.replace("\"resign\"", "\"retry\"");
        let error = parse(&text).unwrap_err().to_string();
        assert!(error.contains("line 5: on_federate_lost"), "{error}");
    }
}
