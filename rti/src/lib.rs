//! The fedtwin RTI: a federation engine that is a pure state machine, and the runtimes that
//! drive it.
//!
//! - [`Engine`]: federation, declaration, object and time management and synchronization
//!   points, with no I/O inside (see the [`engine`] module for the driver contract).
//! - [`EmbeddedRti`]: the engine on a thread behind in-process channels, started with one call.
//!
//! Time semantics follow the project's design brief: integer [`fedtwin_core::SimTime`],
//! conservative grants from lookahead bounds, and timestamp-ordered delivery by
//! (timestamp, sender, sequence).

#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod audit;
pub mod config;
pub mod daemon;
pub mod embedded;
pub mod engine;
pub mod policy;
pub mod tls;

pub use embedded::{EmbeddedConnection, EmbeddedRti, EmbeddedSender, Stopped};
pub use engine::{ConnectionId, Engine, EngineError, FaultSettings, Peer, Transmit};
pub use fedtwin_core::status::{
    FederateState, FederateStatus, FederationStatus, StallReport, WaitFor,
};
