//! The federation object model: which object classes (with attributes) and interaction classes
//! (with parameters) a federation exchanges, and the compact handles used on the wire.
//!
//! Names are dotted, such as `Grid.Bus` for a class and `Grid.Bus.voltage` for one of its
//! attributes. Classes are flat: `Grid.Bus` is not a subclass of `Grid` (see the README's
//! limitations). Handles are indices into the model, fixed when the federation is created, so a
//! federate resolves names once at join and sends small integers afterwards.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident($inner:ty), $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "#{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

handle!(
    /// An object class: its index in [`ObjectModel::object_classes`].
    ObjectClassHandle(u32),
    "class"
);
handle!(
    /// An attribute: its index in its class's attribute list.
    AttributeHandle(u32),
    "attribute"
);
handle!(
    /// An interaction class: its index in [`ObjectModel::interaction_classes`].
    InteractionClassHandle(u32),
    "interaction"
);
handle!(
    /// A parameter: its index in its interaction class's parameter list.
    ParameterHandle(u32),
    "parameter"
);
handle!(
    /// An object instance, unique within its federation for the federation's lifetime.
    ObjectInstanceHandle(u64),
    "object"
);
handle!(
    /// A joined federate, unique within its federation for the federation's lifetime.
    FederateHandle(u32),
    "federate"
);

/// An object class and its attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectClass {
    /// Dotted class name, e.g. `Grid.Bus`.
    pub name: String,
    /// Attribute names, e.g. `voltage`; the position is the [`AttributeHandle`].
    pub attributes: Vec<String>,
}

/// An interaction class and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractionClass {
    /// Dotted class name, e.g. `Grid.Trip`.
    pub name: String,
    /// Parameter names; the position is the [`ParameterHandle`].
    pub parameters: Vec<String>,
}

/// The classes a federation exchanges.
///
/// # Examples
///
/// ```
/// use fedtwin_core::model::ObjectModel;
///
/// let model = ObjectModel::new()
///     .with_object_class("Grid.Bus", ["voltage", "angle"])
///     .with_interaction_class("Grid.Trip", ["breaker"]);
/// model.validate()?;
/// let (class, attribute) = model.resolve_attribute("Grid.Bus.angle")?;
/// assert_eq!((class.0, attribute.0), (0, 1));
/// # Ok::<(), fedtwin_core::model::ModelError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectModel {
    /// Object classes; the position is the [`ObjectClassHandle`].
    pub object_classes: Vec<ObjectClass>,
    /// Interaction classes; the position is the [`InteractionClassHandle`].
    pub interaction_classes: Vec<InteractionClass>,
}

/// A name that the object model does not define, or a model that is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// No object class of that name.
    #[error("unknown object class `{0}`: add it to the federation's object model")]
    UnknownObjectClass(String),
    /// The class has no attribute of that name.
    #[error("object class `{class}` has no attribute `{attribute}`")]
    UnknownAttribute {
        /// Class name.
        class: String,
        /// Attribute name.
        attribute: String,
    },
    /// No interaction class of that name.
    #[error("unknown interaction class `{0}`: add it to the federation's object model")]
    UnknownInteractionClass(String),
    /// The interaction class has no parameter of that name.
    #[error("interaction class `{class}` has no parameter `{parameter}`")]
    UnknownParameter {
        /// Class name.
        class: String,
        /// Parameter name.
        parameter: String,
    },
    /// A name is given twice where names must be unique.
    #[error("`{0}` is defined twice in the object model")]
    Duplicate(String),
    /// The model names more classes and members than [`ObjectModel::MAX_NAMES`].
    #[error("the object model names {0} classes and members; at most {max} are allowed", max = ObjectModel::MAX_NAMES)]
    TooLarge(usize),
    /// A name is empty, has empty dotted parts, or (for attributes and parameters) a dot.
    #[error("`{0}` is not a valid name: use non-empty dotted identifiers such as `Grid.Bus`")]
    InvalidName(String),
    /// An attribute path without a class part.
    #[error("`{0}` does not name an attribute: write `Class.attribute`, e.g. `Grid.Bus.voltage`")]
    NotAnAttributePath(String),
}

impl ObjectModel {
    /// The most classes and members (attributes, parameters) a model may name, merged
    /// models included: far beyond any real federation, and well within a frame.
    pub const MAX_NAMES: usize = 65_536;

    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many classes and members the model names.
    pub fn name_count(&self) -> usize {
        let objects = self
            .object_classes
            .iter()
            .map(|c| 1 + c.attributes.len())
            .sum::<usize>();
        let interactions = self
            .interaction_classes
            .iter()
            .map(|c| 1 + c.parameters.len())
            .sum::<usize>();
        objects + interactions
    }

    /// Adds an object class with attributes (builder style).
    pub fn with_object_class<I, S>(mut self, name: &str, attributes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.object_classes.push(ObjectClass {
            name: name.to_owned(),
            attributes: attributes.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Adds an interaction class with parameters (builder style).
    pub fn with_interaction_class<I, S>(mut self, name: &str, parameters: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.interaction_classes.push(InteractionClass {
            name: name.to_owned(),
            parameters: parameters.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Checks that names are well formed and unique.
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidName`] or [`ModelError::Duplicate`] naming the first offender.
    pub fn validate(&self) -> Result<(), ModelError> {
        let names = self.name_count();
        if names > Self::MAX_NAMES {
            return Err(ModelError::TooLarge(names));
        }
        let mut classes = std::collections::BTreeSet::new();
        for class in &self.object_classes {
            check_dotted(&class.name)?;
            if !classes.insert(class.name.as_str()) {
                return Err(ModelError::Duplicate(class.name.clone()));
            }
            check_members(&class.name, &class.attributes)?;
        }
        let mut interactions = std::collections::BTreeSet::new();
        for class in &self.interaction_classes {
            check_dotted(&class.name)?;
            if !interactions.insert(class.name.as_str()) {
                return Err(ModelError::Duplicate(class.name.clone()));
            }
            check_members(&class.name, &class.parameters)?;
        }
        Ok(())
    }

    /// Merges another federate's model into this one, as HLA merges FOM modules: classes it
    /// does not have are appended, and a class both define gets the attributes (parameters)
    /// it lacks appended. Nothing is removed or reordered, so every handle of this model keeps
    /// its meaning. Returns what was added, as `Class` and `Class.member` names, in order.
    ///
    /// Both models should be valid ([`ObjectModel::validate`]); the result then is too.
    pub fn merge(&mut self, module: &ObjectModel) -> Vec<String> {
        let mut added = Vec::new();
        merge_classes(
            &mut self.object_classes,
            &module.object_classes,
            |c| (&c.name, &mut c.attributes),
            &mut added,
        );
        merge_classes(
            &mut self.interaction_classes,
            &module.interaction_classes,
            |c| (&c.name, &mut c.parameters),
            &mut added,
        );
        added
    }

    /// The object class named `name`.
    ///
    /// # Errors
    ///
    /// [`ModelError::UnknownObjectClass`].
    pub fn object_class(&self, name: &str) -> Result<ObjectClassHandle, ModelError> {
        self.object_classes
            .iter()
            .position(|c| c.name == name)
            .map(|i| ObjectClassHandle(i as u32))
            .ok_or_else(|| ModelError::UnknownObjectClass(name.to_owned()))
    }

    /// The interaction class named `name`.
    ///
    /// # Errors
    ///
    /// [`ModelError::UnknownInteractionClass`].
    pub fn interaction_class(&self, name: &str) -> Result<InteractionClassHandle, ModelError> {
        self.interaction_classes
            .iter()
            .position(|c| c.name == name)
            .map(|i| InteractionClassHandle(i as u32))
            .ok_or_else(|| ModelError::UnknownInteractionClass(name.to_owned()))
    }

    /// The attribute `name` of `class`.
    ///
    /// # Errors
    ///
    /// [`ModelError::UnknownAttribute`], or [`ModelError::UnknownObjectClass`] for a bad handle.
    pub fn attribute(
        &self,
        class: ObjectClassHandle,
        name: &str,
    ) -> Result<AttributeHandle, ModelError> {
        let def = self.object_class_def(class)?;
        def.attributes
            .iter()
            .position(|a| a == name)
            .map(|i| AttributeHandle(i as u32))
            .ok_or_else(|| ModelError::UnknownAttribute {
                class: def.name.clone(),
                attribute: name.to_owned(),
            })
    }

    /// The parameter `name` of interaction `class`.
    ///
    /// # Errors
    ///
    /// [`ModelError::UnknownParameter`], or [`ModelError::UnknownInteractionClass`].
    pub fn parameter(
        &self,
        class: InteractionClassHandle,
        name: &str,
    ) -> Result<ParameterHandle, ModelError> {
        let def = self.interaction_class_def(class)?;
        def.parameters
            .iter()
            .position(|p| p == name)
            .map(|i| ParameterHandle(i as u32))
            .ok_or_else(|| ModelError::UnknownParameter {
                class: def.name.clone(),
                parameter: name.to_owned(),
            })
    }

    /// Resolves a full attribute path such as `Grid.Bus.voltage`.
    ///
    /// # Errors
    ///
    /// [`ModelError::NotAnAttributePath`], [`ModelError::UnknownObjectClass`] or
    /// [`ModelError::UnknownAttribute`].
    pub fn resolve_attribute(
        &self,
        path: &str,
    ) -> Result<(ObjectClassHandle, AttributeHandle), ModelError> {
        let (class, attribute) = path
            .rsplit_once('.')
            .ok_or_else(|| ModelError::NotAnAttributePath(path.to_owned()))?;
        let class = self.object_class(class)?;
        Ok((class, self.attribute(class, attribute)?))
    }

    /// The definition behind an object class handle.
    ///
    /// # Errors
    ///
    /// [`ModelError::UnknownObjectClass`] when the handle is out of range.
    pub fn object_class_def(&self, class: ObjectClassHandle) -> Result<&ObjectClass, ModelError> {
        self.object_classes
            .get(class.0 as usize)
            .ok_or_else(|| ModelError::UnknownObjectClass(class.to_string()))
    }

    /// The definition behind an interaction class handle.
    ///
    /// # Errors
    ///
    /// [`ModelError::UnknownInteractionClass`] when the handle is out of range.
    pub fn interaction_class_def(
        &self,
        class: InteractionClassHandle,
    ) -> Result<&InteractionClass, ModelError> {
        self.interaction_classes
            .get(class.0 as usize)
            .ok_or_else(|| ModelError::UnknownInteractionClass(class.to_string()))
    }
}

/// Merges one kind of class (see [`ObjectModel::merge`]); `parts` gives a class's name and
/// members.
fn merge_classes<C: Clone>(
    into: &mut Vec<C>,
    from: &[C],
    parts: fn(&mut C) -> (&String, &mut Vec<String>),
    added: &mut Vec<String>,
) {
    // An index, not a search per class: models may hold thousands of classes.
    let mut index: std::collections::HashMap<String, usize> = into
        .iter_mut()
        .enumerate()
        .map(|(i, c)| (parts(c).0.clone(), i))
        .collect();
    for class in from {
        let mut class = class.clone();
        let (name, members) = parts(&mut class);
        match index.get(name) {
            Some(&i) => merge_members(name, parts(&mut into[i]).1, members, added),
            None => {
                added.push(name.clone());
                added.extend(members.iter().map(|m| format!("{name}.{m}")));
                index.insert(name.clone(), into.len());
                into.push(class);
            }
        }
    }
}

/// Appends the members of `from` that `into` lacks, noting each as `Class.member`.
fn merge_members(class: &str, into: &mut Vec<String>, from: &[String], added: &mut Vec<String>) {
    // A set, not `contains`: a model may carry thousands of members.
    let mut have: std::collections::HashSet<String> = into.iter().cloned().collect();
    for member in from {
        if have.insert(member.clone()) {
            added.push(format!("{class}.{member}"));
            into.push(member.clone());
        }
    }
}

fn check_dotted(name: &str) -> Result<(), ModelError> {
    if name.is_empty() || name.split('.').any(|part| !is_identifier(part)) {
        return Err(ModelError::InvalidName(name.to_owned()));
    }
    Ok(())
}

fn check_members(class: &str, members: &[String]) -> Result<(), ModelError> {
    let mut seen = std::collections::BTreeSet::new();
    for member in members {
        if !is_identifier(member) {
            return Err(ModelError::InvalidName(format!("{class}.{member}")));
        }
        if !seen.insert(member.as_str()) {
            return Err(ModelError::Duplicate(format!("{class}.{member}")));
        }
    }
    Ok(())
}

fn is_identifier(part: &str) -> bool {
    !part.is_empty()
        && part
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> ObjectModel {
        ObjectModel::new()
            .with_object_class("Grid.Bus", ["voltage", "angle"])
            .with_interaction_class("Grid.Trip", ["breaker"])
    }

    #[test]
    fn merging_appends_what_is_missing_and_keeps_every_handle() {
        let mut model = grid();
        let before = model.clone();
        let module = ObjectModel::new()
            .with_object_class("Ev.Charger", ["kw"])
            .with_object_class("Grid.Bus", ["angle", "frequency"])
            .with_interaction_class("Grid.Trip", ["breaker", "reason"]);
        let added = model.merge(&module);
        assert_eq!(
            added,
            [
                "Ev.Charger",
                "Ev.Charger.kw",
                "Grid.Bus.frequency",
                "Grid.Trip.reason"
            ]
        );
        assert_eq!(model.validate(), Ok(()));
        for path in ["Grid.Bus.voltage", "Grid.Bus.angle"] {
            assert_eq!(
                model.resolve_attribute(path),
                before.resolve_attribute(path)
            );
        }
        let trip = model.interaction_class("Grid.Trip").unwrap();
        assert_eq!(trip, before.interaction_class("Grid.Trip").unwrap());
        assert_eq!(model.parameter(trip, "breaker"), Ok(ParameterHandle(0)));
        assert_eq!(model.parameter(trip, "reason"), Ok(ParameterHandle(1)));
        assert_eq!(
            model.resolve_attribute("Ev.Charger.kw"),
            Ok((ObjectClassHandle(1), AttributeHandle(0)))
        );
        // Merging again, or merging a part of it, adds nothing.
        assert!(model.merge(&module).is_empty());
        assert!(model.merge(&grid()).is_empty());
        let merged = model.clone();
        assert!(model.merge(&ObjectModel::new()).is_empty());
        assert_eq!(model, merged);
    }

    #[test]
    fn resolves_names_to_handles() {
        let model = grid();
        assert_eq!(
            model.resolve_attribute("Grid.Bus.voltage"),
            Ok((ObjectClassHandle(0), AttributeHandle(0)))
        );
        let trip = model.interaction_class("Grid.Trip").unwrap();
        assert_eq!(model.parameter(trip, "breaker"), Ok(ParameterHandle(0)));
    }

    #[test]
    fn unknown_names_are_named_in_the_error() {
        let model = grid();
        assert_eq!(
            model.resolve_attribute("Grid.Bus.current"),
            Err(ModelError::UnknownAttribute {
                class: "Grid.Bus".into(),
                attribute: "current".into()
            })
        );
        assert_eq!(
            model.resolve_attribute("Grid.Line.current"),
            Err(ModelError::UnknownObjectClass("Grid.Line".into()))
        );
        assert_eq!(
            model.resolve_attribute("voltage"),
            Err(ModelError::NotAnAttributePath("voltage".into()))
        );
        assert!(model.object_class_def(ObjectClassHandle(9)).is_err());
    }

    #[test]
    fn validation_rejects_duplicates_and_bad_names() {
        assert!(grid().validate().is_ok());
        let dup = grid().with_object_class("Grid.Bus", ["x"]);
        assert_eq!(
            dup.validate(),
            Err(ModelError::Duplicate("Grid.Bus".into()))
        );
        let dup_attr = ObjectModel::new().with_object_class("A", ["x", "x"]);
        assert_eq!(
            dup_attr.validate(),
            Err(ModelError::Duplicate("A.x".into()))
        );
        let empty_part = ObjectModel::new().with_object_class("Grid..Bus", ["x"]);
        assert!(matches!(
            empty_part.validate(),
            Err(ModelError::InvalidName(_))
        ));
        let dotted_attr = ObjectModel::new().with_object_class("A", ["x.y"]);
        assert!(matches!(
            dotted_attr.validate(),
            Err(ModelError::InvalidName(_))
        ));
    }
}
