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

/// The 1-based line of the byte at `offset` in a text file's `bytes` (the last line past the
/// end), for error messages that point into configuration files and logs.
pub fn line_at(bytes: &[u8], offset: usize) -> usize {
    let end = offset.min(bytes.len());
    bytes[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_are_counted_from_one() {
        let text = b"a = 1\nb = 2\n";
        assert_eq!(super::line_at(text, 0), 1);
        assert_eq!(super::line_at(text, 6), 2);
        assert_eq!(super::line_at(text, 100), 3);
    }
}
