//! The recorder federate: subscribes, advances to the stop time, keeps what it receives.
//!
//! The recorder is time-constrained and not time-regulating: it receives every timestamped
//! value in time order and holds nobody back. It advances with next-event requests (NER) to the
//! stop time, so that it is granted once per timestamp with something for it, and records each
//! value at its timestamp; values sent without a timestamp (such as the initial values of the
//! start barrier) are recorded at the recorder's time when they arrive.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use federate_sdk::hosted::{self, START_TIMEOUT};
use federate_sdk::{
    Connector, Delivery, Error as FederateError, Federate, ObjectInstanceHandle, ObjectModel,
    RtiError, SimTime, blocking,
};
use tracing::{debug, info};

use crate::recording::Recording;
use crate::{decode_number, format_number};

/// What to record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordSpec {
    /// Attributes as `Class.attribute`; every object of the class gets a column
    /// `<object name>.<attribute>`.
    pub attributes: Vec<String>,
    /// Interaction classes.
    pub interactions: Vec<String>,
}

/// How the recorder takes part in the federation.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// The federation.
    pub federation: String,
    /// The recorder's federate name.
    pub name: String,
    /// Where the RTI is.
    pub connector: Connector,
    /// When to stop recording.
    pub stop: SimTime,
    /// The federates of the start barrier (the recorder included); empty: no barrier.
    pub expect: Vec<String>,
    /// The model to create the federation with; `None` joins one that others create, waiting
    /// up to [`START_TIMEOUT`] for it to exist.
    pub model: Option<ObjectModel>,
    /// What to record.
    pub spec: RecordSpec,
}

/// Why the recorder stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// A recorded attribute or interaction is not in the federation's object model.
    #[error("cannot record `{name}`: {source}")]
    Unknown {
        /// The attribute path or interaction class.
        name: String,
        /// The model's complaint.
        #[source]
        source: federate_sdk::Error,
    },
    /// The federation refused or lost the recorder.
    #[error(transparent)]
    Federate(#[from] FederateError),
}

/// Runs the recorder until the stop time, adding what it receives to `recording` as it goes
/// (so that a caller interrupting the run still has everything received so far). `on_grant` is
/// called with each grant's time. Returns a one-line summary.
///
/// # Errors
///
/// [`RecorderError`]; the recorder resigns before returning one after joining.
pub fn run(
    config: &RecorderConfig,
    recording: &Mutex<Recording>,
    mut on_grant: impl FnMut(SimTime),
) -> Result<String, RecorderError> {
    let mut federate = join(config)?;
    let outcome = record(config, &mut federate, recording, &mut on_grant);
    match outcome {
        Ok(summary) => {
            federate.resign()?;
            Ok(summary)
        }
        Err(error) => {
            let _ = federate.resign();
            Err(error)
        }
    }
}

fn join(config: &RecorderConfig) -> Result<blocking::Federate, RecorderError> {
    let builder = Federate::builder(&config.federation, &config.name).time_constrained();
    if let Some(model) = &config.model {
        return Ok(builder
            .create_federation(model.clone())
            .join_blocking(config.connector.clone())?);
    }
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match builder.clone().join_blocking(config.connector.clone()) {
            Err(FederateError::Refused {
                source: RtiError::FederationNotFound(_),
                ..
            }) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            other => return Ok(other?),
        }
    }
}

fn record(
    config: &RecorderConfig,
    federate: &mut blocking::Federate,
    recording: &Mutex<Recording>,
    on_grant: &mut impl FnMut(SimTime),
) -> Result<String, RecorderError> {
    // Check every name against the federation's model first, so that the error names the
    // recorded item rather than a subscription call.
    for path in &config.spec.attributes {
        federate
            .model()
            .resolve_attribute(path)
            .map_err(|e| RecorderError::Unknown {
                name: path.clone(),
                source: e.into(),
            })?;
    }
    for class in &config.spec.interactions {
        federate
            .model()
            .interaction_class(class)
            .map_err(|e| RecorderError::Unknown {
                name: class.clone(),
                source: e.into(),
            })?;
    }
    if !config.spec.attributes.is_empty() {
        let paths: Vec<&str> = config.spec.attributes.iter().map(String::as_str).collect();
        federate.subscribe(&paths)?;
    }
    for class in &config.spec.interactions {
        federate.subscribe_interaction(class)?;
    }
    let expected: Vec<&str> = config.expect.iter().map(String::as_str).collect();
    hosted::start_barrier(federate, &expected, |_| Ok(()))?;
    let mut names = Names::default();
    let initial = federate.take_deliveries()?;
    keep(config, recording, &mut names, federate.time(), &initial);
    on_grant(federate.time());

    let mut grants = 0u64;
    while federate.time() < config.stop {
        let grant = federate.next_event(config.stop)?;
        grants += 1;
        keep(config, recording, &mut names, grant.time, &grant.deliveries);
        lock(recording).grant(grant.time);
        on_grant(grant.time);
    }
    let recording = lock(recording);
    info!(recorder = %config.name, grants, rows = recording.rows(), "recording finished");
    Ok(format!(
        "recorded {} rows of {} columns in {grants} grants",
        recording.rows(),
        recording.columns().count()
    ))
}

/// A poisoned lock only means another thread panicked while holding it; the data is still the
/// best record there is.
fn lock(recording: &Mutex<Recording>) -> std::sync::MutexGuard<'_, Recording> {
    recording.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Object names by handle, as discovered. Kept after an object is removed: a removal (such as
/// the one that comes with its owner resigning) is delivered in receive order and can overtake
/// timestamped reflections of the object still queued for the recorder, which the SDK then
/// delivers under the handle's name instead of the object's.
#[derive(Debug, Default)]
struct Names(HashMap<ObjectInstanceHandle, Arc<str>>);

/// Adds deliveries received at `now` to the recording.
fn keep(
    config: &RecorderConfig,
    recording: &Mutex<Recording>,
    names: &mut Names,
    now: SimTime,
    deliveries: &[Delivery],
) {
    let mut recording = lock(recording);
    for delivery in deliveries {
        match delivery {
            Delivery::Discovered { object, .. } => {
                names.0.insert(object.handle, object.name.clone());
            }
            Delivery::Reflection(reflection) => {
                let time = reflection.timestamp.unwrap_or(now);
                for (attribute, payload) in reflection.values.iter() {
                    let path = format!("{}.{attribute}", reflection.object.class);
                    if !config.spec.attributes.contains(&path) {
                        continue;
                    }
                    let Some(value) = decode_number(payload.as_bytes()) else {
                        debug!(%path, "not a number; not recorded");
                        continue;
                    };
                    let object = names
                        .0
                        .get(&reflection.object.handle)
                        .unwrap_or(&reflection.object.name);
                    let column = format!("{object}.{attribute}");
                    recording.signal(time, &column, &path, value);
                }
            }
            Delivery::Interaction(interaction) => {
                let time = interaction.timestamp.unwrap_or(now);
                let parameters: BTreeMap<String, String> = interaction
                    .parameters
                    .iter()
                    .map(|(name, payload)| {
                        let bytes = payload.as_bytes();
                        let text = decode_number(bytes).map_or_else(|| hex(bytes), format_number);
                        (name.to_owned(), text)
                    })
                    .collect();
                recording.interaction(time, &interaction.class, &interaction.sender, parameters);
            }
            _ => {}
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{digits}")
}
