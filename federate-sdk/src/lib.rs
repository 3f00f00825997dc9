//! What a simulator links to take part in a fedtwin federation.
//!
//! A federate joins a federation through a [`FederateBuilder`], declares what it publishes and
//! subscribes to by name (`Grid.Bus.voltage`), sends typed values ([`Values`]) with or without
//! a timestamp, and advances its logical time with [`Federate::advance_to`] (TAR),
//! [`Federate::next_event`] (NER), their "available" variants, [`Federate::flush_queue`] or the
//! lock-step helper [`Federate::step`]. Each advance returns a [`Grant`] with everything
//! delivered before it.
//!
//! [`Federate`] is async (tokio); [`blocking::Federate`] offers the same calls for plain
//! threads. The RTI is reached through a [`Connector`]: today an [`EmbeddedRti`] in the same
//! process, with the same API for every transport.
//!
//! ```
//! use federate_sdk::{EmbeddedRti, Federate, ObjectModel, SimDuration, SimTime, Values};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rti = EmbeddedRti::start()?;
//! let model = ObjectModel::new().with_interaction_class("Ping", ["n"]);
//! let mut a = Federate::builder("demo", "a")
//!     .create_federation(model.clone())
//!     .time_regulating(SimDuration::from_ticks(1))
//!     .join_blocking(&rti)?;
//! let mut b = Federate::builder("demo", "b")
//!     .create_federation(model)
//!     .time_constrained()
//!     .join_blocking(&rti)?;
//! a.publish_interaction("Ping")?;
//! b.subscribe_interaction("Ping")?;
//! a.send_interaction("Ping", Values::new().with("n", &7u32)?, Some(SimTime::from_ticks(5)))?;
//! a.advance_to(SimTime::from_ticks(10))?;
//! let grant = b.advance_to(SimTime::from_ticks(5))?;
//! let ping = grant.interactions().next().expect("delivered before the grant");
//! assert_eq!(ping.parameters.get::<u32>("n")?, 7);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod admin;
pub mod blocking;
mod error;
mod federate;
pub mod hosted;
mod link;
mod values;

pub use admin::Admin;
pub use error::{Error, Result};
pub use federate::{Federate, FederateBuilder};
pub use fedtwin_core::message::{AdvanceKind, Order};
pub use fedtwin_core::model::ObjectInstanceHandle;
pub use fedtwin_core::{ObjectModel, RtiError, SimDuration, SimTime, TimeError};
pub use fedtwin_rti::tls::TlsFiles;
pub use fedtwin_rti::{EmbeddedRti, FederateState, FederateStatus, FederationStatus, StallReport};
pub use link::{Connector, QuicTarget};
pub use values::{Delivery, Grant, Interaction, ObjectInstance, Received, Reflection, Values};
