//! Shared vocabulary of fedtwin: simulation time, the object model, the wire messages between
//! federates and the RTI, and their frame codec.
//!
//! Everything here is plain data with no I/O, so the RTI engine, the transports and the
//! federate SDK agree on one definition of each concept.

#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod codec;
pub mod fault;
pub mod message;
pub mod model;
pub mod status;
pub mod step;
pub mod time;

pub use fault::LossPolicy;
pub use message::{
    AdvanceKind, Callback, ClientMessage, Order, Payload, Request, Response, RtiError,
    ServerMessage,
};
pub use model::ObjectModel;
pub use time::{SimDuration, SimTime, TimeError};
