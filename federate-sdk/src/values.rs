//! Typed values: what a federate sends and what it receives.

use std::any::type_name;
use std::sync::Arc;

use fedtwin_core::SimTime;
use fedtwin_core::message::{Order, Payload};
use fedtwin_core::model::ObjectInstanceHandle;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Named values to send: attributes of an object or parameters of an interaction. Each value
/// is serialized with postcard.
///
/// # Examples
///
/// ```
/// let values = federate_sdk::Values::new().with("voltage", &1.02)?.with("tripped", &false)?;
/// assert_eq!(values.len(), 2);
/// # Ok::<(), federate_sdk::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Values(pub(crate) Vec<(String, Payload)>);

impl Values {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value (builder style).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the value cannot be serialized.
    pub fn with<T: Serialize + ?Sized>(mut self, name: &str, value: &T) -> Result<Self> {
        self.insert(name, value)?;
        Ok(self)
    }

    /// Adds a value.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the value cannot be serialized.
    pub fn insert<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<&mut Self> {
        let bytes = postcard::to_stdvec(value).map_err(|e| Error::Encode {
            name: name.to_owned(),
            message: e.to_string(),
        })?;
        self.0.push((name.to_owned(), Payload::from(bytes)));
        Ok(self)
    }

    /// Adds raw bytes, for values encoded by the caller.
    pub fn with_bytes(mut self, name: &str, bytes: impl Into<Payload>) -> Self {
        self.0.push((name.to_owned(), bytes.into()));
        self
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Named values received in a reflection or interaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Received(pub(crate) Vec<(Arc<str>, Payload)>);

impl Received {
    /// The value of `name`, decoded as `T`.
    ///
    /// # Errors
    ///
    /// [`Error::MissingValue`] if absent, [`Error::Decode`] if not a `T`.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        self.try_get(name)?
            .ok_or_else(|| Error::MissingValue(name.to_owned()))
    }

    /// The value of `name` decoded as `T`, or `None` if this message does not carry it.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] if present but not a `T`.
    pub fn try_get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let Some(payload) = self.bytes(name) else {
            return Ok(None);
        };
        let (value, rest) =
            postcard::take_from_bytes(payload.as_bytes()).map_err(|e| Error::Decode {
                name: name.to_owned(),
                type_name: type_name::<T>(),
                message: e.to_string(),
            })?;
        if !rest.is_empty() {
            return Err(Error::Decode {
                name: name.to_owned(),
                type_name: type_name::<T>(),
                message: format!("{} bytes left over", rest.len()),
            });
        }
        Ok(Some(value))
    }

    /// The raw bytes of `name`.
    pub fn bytes(&self, name: &str) -> Option<&Payload> {
        self.0.iter().find(|(n, _)| &**n == name).map(|(_, p)| p)
    }

    /// Names and raw values, in the order sent.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Payload)> {
        self.0.iter().map(|(n, p)| (&**n, p))
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An object instance, registered by this federate or discovered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectInstance {
    /// Its handle.
    pub handle: ObjectInstanceHandle,
    /// Its class name.
    pub class: Arc<str>,
    /// Its instance name.
    pub name: Arc<str>,
}

/// Something delivered to this federate.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Delivery {
    /// New attribute values of a discovered object.
    Reflection(Reflection),
    /// An interaction.
    Interaction(Interaction),
    /// An object of a subscribed class became known.
    Discovered {
        /// The object.
        object: ObjectInstance,
        /// Its owner's name.
        owner: Arc<str>,
    },
    /// A known object was deleted (or its owner left).
    Removed {
        /// The object.
        object: ObjectInstance,
        /// Timestamp of a timestamp-ordered deletion.
        timestamp: Option<SimTime>,
        /// Who deleted it.
        sender: Arc<str>,
    },
    /// Another federate was lost (its connection closed without resigning) and the RTI
    /// resigned it: its objects are gone (each reported as [`Delivery::Removed`]) and time goes
    /// on without it.
    FederateLost {
        /// The lost federate's name.
        federate: String,
        /// What happened, in words.
        reason: String,
    },
}

/// Attribute values of one object from one update.
#[derive(Debug, Clone, PartialEq)]
pub struct Reflection {
    /// The object.
    pub object: ObjectInstance,
    /// The subscribed attributes that the update carried.
    pub values: Received,
    /// Timestamp, when sent with one.
    pub timestamp: Option<SimTime>,
    /// Delivered in timestamp or receive order.
    pub order: Order,
    /// Sender's federate name.
    pub sender: Arc<str>,
}

/// One received interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    /// Interaction class name.
    pub class: Arc<str>,
    /// Parameter values.
    pub parameters: Received,
    /// Timestamp, when sent with one.
    pub timestamp: Option<SimTime>,
    /// Delivered in timestamp or receive order.
    pub order: Order,
    /// Sender's federate name.
    pub sender: Arc<str>,
}

/// A time advance grant and what was delivered since the previous call.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// The federate's new logical time.
    pub time: SimTime,
    /// Everything delivered before the grant, in delivery order.
    pub deliveries: Vec<Delivery>,
}

impl Grant {
    /// The reflections among the deliveries.
    pub fn reflections(&self) -> impl Iterator<Item = &Reflection> {
        self.deliveries.iter().filter_map(|d| match d {
            Delivery::Reflection(r) => Some(r),
            _ => None,
        })
    }

    /// The interactions among the deliveries.
    pub fn interactions(&self) -> impl Iterator<Item = &Interaction> {
        self.deliveries.iter().filter_map(|d| match d {
            Delivery::Interaction(i) => Some(i),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_with_types() {
        let sent = Values::new()
            .with("v", &1.5f64)
            .unwrap()
            .with("n", &7u32)
            .unwrap();
        let received = Received(
            sent.0
                .iter()
                .map(|(n, p)| (Arc::from(n.as_str()), p.clone()))
                .collect(),
        );
        assert_eq!(received.get::<f64>("v").unwrap(), 1.5);
        assert_eq!(received.get::<u32>("n").unwrap(), 7);
        assert!(matches!(
            received.get::<f64>("x"),
            Err(Error::MissingValue(_))
        ));
        assert_eq!(received.try_get::<f64>("x").unwrap(), None);
        // A u32 (one varint byte) is not an f64 (eight bytes).
        assert!(matches!(
            received.get::<f64>("n"),
            Err(Error::Decode { .. })
        ));
        // An f64 read as a u8 leaves bytes over.
        assert!(matches!(received.get::<u8>("v"), Err(Error::Decode { .. })));
    }
}
