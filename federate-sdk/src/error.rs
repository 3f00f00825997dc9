//! The one error type of the SDK.

use fedtwin_core::model::ModelError;
use fedtwin_core::{RtiError, TimeError};

/// Everything that can go wrong in a federate call. Each message says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The RTI (or the SDK, checking the same rule first) refused a request; nothing changed.
    #[error("{request} refused: {source}")]
    Refused {
        /// The request, in words.
        request: &'static str,
        /// The RTI's reason.
        #[source]
        source: RtiError,
    },
    /// An update or interaction carries more value bytes than a frame can deliver; nothing
    /// was sent.
    #[error(
        "{what} carries {bytes} bytes of values; at most {max} fit in one message: send the \
         data in parts, or by reference (a file or URL)"
    )]
    TooLarge {
        /// The update or interaction, in words.
        what: String,
        /// The value bytes it carries.
        bytes: usize,
        /// The most allowed ([`fedtwin_core::codec::MAX_VALUE_BYTES`]).
        max: usize,
    },
    /// A pipelined request (an update or interaction, not waited for) was refused; reported
    /// by the next call.
    #[error("an earlier {request} was refused: {source}")]
    EarlierRefused {
        /// The request, in words.
        request: &'static str,
        /// The RTI's reason.
        #[source]
        source: RtiError,
    },
    /// A class, attribute or parameter name that the federation's object model lacks.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A value could not be serialized.
    #[error("cannot encode the value of `{name}`: {message}")]
    Encode {
        /// Attribute or parameter name.
        name: String,
        /// The serializer's message.
        message: String,
    },
    /// A received value is not of the type asked for.
    #[error("cannot decode `{name}` as {type_name}: {message}")]
    Decode {
        /// Attribute or parameter name.
        name: String,
        /// The type asked for.
        type_name: &'static str,
        /// The deserializer's message.
        message: String,
    },
    /// The message carries no value of that name.
    #[error("no value for `{0}` in this message: is it subscribed and sent?")]
    MissingValue(String),
    /// Updating or deleting an object this federate did not register.
    #[error("object `{0}` is not owned by this federate")]
    NotOwned(String),
    /// Sending what this federate has not published.
    #[error("`{0}` is not published by this federate: publish it first")]
    NotPublished(String),
    /// An advance was started and not finished (its future was dropped).
    #[error("a time advance is still pending: call `wait_for_grant` to collect it")]
    AdvancePending,
    /// Invalid time arithmetic, such as a step past the end of time.
    #[error(transparent)]
    Time(#[from] TimeError),
    /// The connection to the RTI is gone.
    #[error("the connection to the RTI closed")]
    Disconnected,
    /// The federation halted after a fault (a federate was lost under the `halt` policy); the
    /// message names the cause. Nothing but resigning works any more.
    #[error("the federation halted: {0}; resign, then destroy and create the federation again")]
    Halted(String),
    /// The RTI (or the network) ended the connection, for the reason given.
    #[error("{0}")]
    Closed(String),
    /// A certificate was refused because it is revoked: the RTI refused this federate's (in
    /// the handshake, or by closing a connection open when the revocation came), or this
    /// federate refused the RTI's. The message says which and what to do. Reconnecting with
    /// the same certificate cannot succeed.
    #[error("{0}")]
    CertificateRevoked(String),
    /// The RTI could not be reached or its address is invalid.
    #[error("cannot connect to the RTI: {0}")]
    Connect(String),
    /// The RTI answered something the SDK did not expect.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The blocking API could not start its runtime.
    #[error("cannot start the federate's runtime: {0}")]
    Runtime(String),
}

/// The SDK's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
