//! The messages between a federate and the RTI, identical on every transport.
//!
//! A federate sends [`ClientMessage`]s, each a numbered [`Request`]. The RTI answers every
//! request exactly once, in order, with a [`ServerMessage::Response`], and pushes
//! [`Callback`]s (grants, reflections, interactions, synchronization) in between.
//! Requests that only hand data over (updates, interactions) may be pipelined: the client does
//! not have to wait for their responses before sending the next request. The one exception to
//! "every request is answered" is a best-effort message ([`ClientMessage::BEST_EFFORT`] as its
//! id), which gets no response at all.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{
    AttributeHandle, FederateHandle, InteractionClassHandle, ObjectClassHandle,
    ObjectInstanceHandle, ObjectModel, ParameterHandle,
};
use crate::time::{SimDuration, SimTime};

/// An opaque value (an attribute or parameter), shared rather than copied when one update fans
/// out to many subscribers. Encoded as a byte string on the wire.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Payload(Arc<[u8]>);

impl Payload {
    /// Wraps bytes.
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Self {
        Self(bytes.into())
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values can be large and private; their size is what a log needs.
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes.into())
    }
}

impl From<&[u8]> for Payload {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.into())
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: serde_bytes_shim::ByteBuf = Deserialize::deserialize(deserializer)?;
        Ok(Self(bytes.0.into()))
    }
}

/// A minimal byte-buffer visitor so that payloads decode as one byte string, not as a sequence
/// of single bytes (which postcard would encode one varint per byte).
mod serde_bytes_shim {
    use std::fmt;

    use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

    pub(super) struct ByteBuf(pub(super) Vec<u8>);

    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_byte_buf(ByteBufVisitor)
        }
    }

    struct ByteBufVisitor;

    impl<'de> Visitor<'de> for ByteBufVisitor {
        type Value = ByteBuf;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
            Ok(ByteBuf(v.to_vec()))
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
            Ok(ByteBuf(v))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(ByteBuf(out))
        }
    }
}

/// How a federate asks to advance its logical time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AdvanceKind {
    /// Time advance request: granted at `t` once no message stamped `<= t` can still arrive.
    TimeAdvance,
    /// Time advance request available: granted at `t` once none stamped `< t` can still arrive.
    TimeAdvanceAvailable,
    /// Next event request: granted at the earlier of `t` and the next message's timestamp.
    NextEvent,
    /// Next event request available: like [`AdvanceKind::NextEvent`], allowing ties at the grant.
    NextEventAvailable,
    /// Flush queue request: every queued message now, then a grant as early as is safe.
    FlushQueue,
}

impl AdvanceKind {
    /// The HLA abbreviation (TAR, TARA, NER, NERA, FQR).
    pub fn abbreviation(self) -> &'static str {
        match self {
            Self::TimeAdvance => "TAR",
            Self::TimeAdvanceAvailable => "TARA",
            Self::NextEvent => "NER",
            Self::NextEventAvailable => "NERA",
            Self::FlushQueue => "FQR",
        }
    }

    /// Whether the grant may come while messages at the grant time can still arrive.
    pub fn is_available(self) -> bool {
        matches!(
            self,
            Self::TimeAdvanceAvailable | Self::NextEventAvailable | Self::FlushQueue
        )
    }

    /// Whether the grant time may be earlier than the request (the next event variants).
    pub fn is_next_event(self) -> bool {
        matches!(self, Self::NextEvent | Self::NextEventAvailable)
    }
}

impl fmt::Display for AdvanceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.abbreviation())
    }
}

/// In which order a message was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Order {
    /// Timestamp order: delivered by (timestamp, sender, sequence), never below the receiver's time.
    Timestamp,
    /// Receive order: delivered as it arrived.
    Receive,
}

/// A request, numbered by the client so that its response can be matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMessage {
    /// Chosen by the client; echoed in the response. [`ClientMessage::BEST_EFFORT`] asks for
    /// no response at all (a refusal is only logged by the RTI).
    pub id: u64,
    /// What is asked.
    pub request: Request,
}

impl ClientMessage {
    /// The id of a best-effort message: sent without a response, possibly as a datagram that
    /// the network may drop.
    pub const BEST_EFFORT: u64 = 0;
}

/// Everything a federate can ask of the RTI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Create a federation. With `if_missing`, an existing federation with an equal object model
    /// is accepted.
    CreateFederation {
        /// Federation name.
        federation: String,
        /// Classes the federation exchanges.
        model: ObjectModel,
        /// Accept an existing federation of the same name and model.
        if_missing: bool,
    },
    /// Destroy a federation that nobody has joined.
    DestroyFederation {
        /// Federation name.
        federation: String,
    },
    /// Join a federation under a name unique in it.
    Join {
        /// Federation name.
        federation: String,
        /// This federate's name.
        federate: String,
    },
    /// Leave the federation, deleting the objects this federate owns.
    Resign,
    /// Publish attributes of a class (added to those already published).
    PublishObjectClass {
        /// Class.
        class: ObjectClassHandle,
        /// Attributes.
        attributes: Vec<AttributeHandle>,
    },
    /// Stop publishing a class.
    UnpublishObjectClass {
        /// Class.
        class: ObjectClassHandle,
    },
    /// Subscribe to attributes of a class (added to those already subscribed).
    SubscribeObjectClass {
        /// Class.
        class: ObjectClassHandle,
        /// Attributes.
        attributes: Vec<AttributeHandle>,
    },
    /// Stop subscribing to a class.
    UnsubscribeObjectClass {
        /// Class.
        class: ObjectClassHandle,
    },
    /// Publish an interaction class.
    PublishInteraction {
        /// Class.
        class: InteractionClassHandle,
    },
    /// Stop publishing an interaction class.
    UnpublishInteraction {
        /// Class.
        class: InteractionClassHandle,
    },
    /// Subscribe to an interaction class.
    SubscribeInteraction {
        /// Class.
        class: InteractionClassHandle,
    },
    /// Stop subscribing to an interaction class.
    UnsubscribeInteraction {
        /// Class.
        class: InteractionClassHandle,
    },
    /// Register an object instance of a published class.
    RegisterObject {
        /// Class.
        class: ObjectClassHandle,
        /// Instance name, unique in the federation; the RTI picks one when absent.
        name: Option<String>,
    },
    /// Delete an owned object instance.
    DeleteObject {
        /// Instance.
        object: ObjectInstanceHandle,
        /// Timestamp, for a timestamp-ordered deletion.
        timestamp: Option<SimTime>,
    },
    /// Update attribute values of an owned instance.
    UpdateAttributes {
        /// Instance.
        object: ObjectInstanceHandle,
        /// New values.
        values: Vec<(AttributeHandle, Payload)>,
        /// Timestamp; absent for receive order.
        timestamp: Option<SimTime>,
    },
    /// Send an interaction.
    SendInteraction {
        /// Class.
        class: InteractionClassHandle,
        /// Parameter values.
        parameters: Vec<(ParameterHandle, Payload)>,
        /// Timestamp; absent for receive order.
        timestamp: Option<SimTime>,
    },
    /// Become time-regulating with a lookahead.
    EnableTimeRegulation {
        /// Lookahead.
        lookahead: SimDuration,
    },
    /// Stop being time-regulating.
    DisableTimeRegulation,
    /// Become time-constrained; confirmed by [`Callback::TimeConstrainedEnabled`].
    EnableTimeConstrained,
    /// Stop being time-constrained; queued timestamped messages are delivered at once.
    DisableTimeConstrained,
    /// Change the lookahead. A lower value takes effect as the federate advances.
    ModifyLookahead {
        /// New lookahead.
        lookahead: SimDuration,
    },
    /// Ask to advance; answered by [`Callback::TimeAdvanceGrant`].
    Advance {
        /// TAR, TARA, NER, NERA or flush queue.
        kind: AdvanceKind,
        /// Requested time.
        time: SimTime,
    },
    /// Ask for this federate's greatest available logical time.
    QueryGalt,
    /// Register a synchronization point, announced to `federates` (all joined when empty).
    RegisterSyncPoint {
        /// Label, unique among the federation's active points.
        label: String,
        /// Opaque tag handed to every announced federate.
        tag: Payload,
        /// Names of the federates that must achieve it; empty means the whole federation.
        federates: Vec<String>,
    },
    /// Report that this federate reached a synchronization point.
    AchieveSyncPoint {
        /// Label.
        label: String,
    },
    /// The status of every federation this identity may administer.
    Status,
    /// Declare this federate's fastest dynamics: the RTI then checks its lookahead and steps
    /// (and those of the federates coupled with it) against the stability bound.
    DeclareDynamics {
        /// Magnitude of the fastest eigenvalue, 1/s.
        fastest_eigenvalue: f64,
        /// The federate steps in lock-step and checks its steps itself, against
        /// [`Request::QueryCoupledDynamics`]: the RTI keeps the declaration for the federates
        /// coupled with it to ask for, and checks no step or lookahead because of it.
        lock_step: bool,
    },
    /// The fastest dynamics declared among the federates coupled with this one by
    /// subscriptions, this one included.
    QueryCoupledDynamics,
    /// Set the federation's stability rule (needs the administer permission).
    SetStability {
        /// Safety factor in (0, 1].
        alpha: f64,
        /// Let unstable steps through with a warning, for experiments.
        override_stability: bool,
    },
    /// Session layer, sent best-effort: the federate has received the first `received`
    /// messages of its session, which the RTI may stop keeping for a resume.
    Ack {
        /// Messages received in this session so far.
        received: u64,
    },
    /// Session layer, the first request on a new connection: continue the session of `token`
    /// (same certificate identity) after a lost connection. The RTI answers
    /// [`ServerMessage::Resumed`], then sends again every message after the first `received`.
    Resume {
        /// The token from [`ServerMessage::Session`].
        token: ResumeToken,
        /// Messages of the session the federate received before the connection was lost.
        received: u64,
    },
}

impl Request {
    /// Whether the RTI answers this request when it succeeds. Updates, interactions and
    /// advance requests are answered only when refused: the RTI handles a connection's
    /// requests in order, so any later answer, and for an advance its grant, says that they
    /// succeeded. A federate in lock-step then gets one message per step (the grant with what
    /// it delivers) rather than three.
    pub fn answered_on_success(&self) -> bool {
        !matches!(
            self,
            Self::UpdateAttributes { .. } | Self::SendInteraction { .. } | Self::Advance { .. }
        )
    }

    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreateFederation { .. } => "create federation",
            Self::DestroyFederation { .. } => "destroy federation",
            Self::Join { .. } => "join",
            Self::Resign => "resign",
            Self::PublishObjectClass { .. } => "publish object class",
            Self::UnpublishObjectClass { .. } => "unpublish object class",
            Self::SubscribeObjectClass { .. } => "subscribe object class",
            Self::UnsubscribeObjectClass { .. } => "unsubscribe object class",
            Self::PublishInteraction { .. } => "publish interaction",
            Self::UnpublishInteraction { .. } => "unpublish interaction",
            Self::SubscribeInteraction { .. } => "subscribe interaction",
            Self::UnsubscribeInteraction { .. } => "unsubscribe interaction",
            Self::RegisterObject { .. } => "register object",
            Self::DeleteObject { .. } => "delete object",
            Self::UpdateAttributes { .. } => "update attributes",
            Self::SendInteraction { .. } => "send interaction",
            Self::EnableTimeRegulation { .. } => "enable time regulation",
            Self::DisableTimeRegulation => "disable time regulation",
            Self::EnableTimeConstrained => "enable time constrained",
            Self::DisableTimeConstrained => "disable time constrained",
            Self::ModifyLookahead { .. } => "modify lookahead",
            Self::Advance { .. } => "advance",
            Self::QueryGalt => "query GALT",
            Self::RegisterSyncPoint { .. } => "register synchronization point",
            Self::AchieveSyncPoint { .. } => "achieve synchronization point",
            Self::Status => "status",
            Self::DeclareDynamics { .. } => "declare dynamics",
            Self::QueryCoupledDynamics => "query coupled dynamics",
            Self::SetStability { .. } => "set stability",
            Self::Ack { .. } => "acknowledge",
            Self::Resume { .. } => "resume",
        }
    }
}

/// A successful answer to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// Done; nothing to report.
    Done,
    /// Joined.
    Joined {
        /// This federate's handle.
        federate: FederateHandle,
        /// The federation's object model, for resolving names.
        model: ObjectModel,
        /// Logical time at join.
        time: SimTime,
    },
    /// Object registered.
    ObjectRegistered {
        /// Its handle.
        object: ObjectInstanceHandle,
        /// Its name.
        name: String,
    },
    /// Time regulation enabled or its lookahead changed.
    Regulation {
        /// The federate's logical time.
        time: SimTime,
        /// Its bound now: no timestamped send below this.
        bound: SimTime,
    },
    /// The advance or constrained request is accepted; its grant comes as a callback.
    Pending,
    /// The GALT, `None` when no federate can constrain this one.
    Galt(Option<SimTime>),
    /// The fastest declared dynamics among the coupled federates: its federate's name and
    /// `|lambda|` in 1/s, `None` when none of them declared any.
    CoupledDynamics(Option<(String, f64)>),
    /// Federations and who waits for whom in each.
    Status {
        /// Each federation's state.
        federations: Vec<crate::status::FederationStatus>,
        /// Each federation's waits.
        stalls: Vec<crate::status::StallReport>,
    },
}

/// Something the RTI tells a federate unasked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Callback {
    /// The pending advance is granted.
    TimeAdvanceGrant {
        /// New logical time.
        time: SimTime,
        /// The federate's bound from now on when it is regulating: no timestamped send below it.
        bound: Option<SimTime>,
    },
    /// The federate is now time-constrained.
    TimeConstrainedEnabled {
        /// Its logical time.
        time: SimTime,
    },
    /// An object of a subscribed class exists.
    DiscoverObject {
        /// Instance.
        object: ObjectInstanceHandle,
        /// Class.
        class: ObjectClassHandle,
        /// Instance name.
        name: String,
        /// Owning federate's name.
        owner: Arc<str>,
    },
    /// New values of subscribed attributes.
    Reflect {
        /// Instance.
        object: ObjectInstanceHandle,
        /// Its class.
        class: ObjectClassHandle,
        /// Values, in the order sent.
        values: Vec<(AttributeHandle, Payload)>,
        /// Timestamp, when sent with one.
        timestamp: Option<SimTime>,
        /// Delivery order.
        order: Order,
        /// Sender's name.
        sender: Arc<str>,
    },
    /// An interaction of a subscribed class.
    ReceiveInteraction {
        /// Class.
        class: InteractionClassHandle,
        /// Parameter values.
        parameters: Vec<(ParameterHandle, Payload)>,
        /// Timestamp, when sent with one.
        timestamp: Option<SimTime>,
        /// Delivery order.
        order: Order,
        /// Sender's name.
        sender: Arc<str>,
    },
    /// A discovered object is gone.
    RemoveObject {
        /// Instance.
        object: ObjectInstanceHandle,
        /// Timestamp, for a timestamp-ordered deletion.
        timestamp: Option<SimTime>,
        /// Delivery order.
        order: Order,
        /// Name of the federate that deleted it (or whose resignation did).
        sender: Arc<str>,
    },
    /// A synchronization point to reach.
    AnnounceSyncPoint {
        /// Label.
        label: String,
        /// The registrant's tag.
        tag: Payload,
    },
    /// Every federate in the point's set achieved it.
    FederationSynchronized {
        /// Label.
        label: String,
    },
    /// Another federate was lost (its connection closed without resigning) and was resigned
    /// by the RTI: its objects are gone and time goes on without it.
    FederateLost {
        /// The lost federate's name.
        federate: String,
        /// What happened, in words.
        reason: String,
    },
    /// The federation halted after a fault: every later request except resigning is refused.
    FederationHalted {
        /// Why, naming the lost federate.
        reason: String,
    },
}

/// What the RTI sends to a federate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// The answer to request `id`.
    Response {
        /// The request's id.
        id: u64,
        /// Success or a typed refusal.
        result: Result<Response, RtiError>,
    },
    /// Unasked information.
    Callback(Callback),
    /// Session layer, first on every new connection to a daemon that keeps sessions: the token
    /// that resumes this session on a new connection within `grace_ms` of losing this one.
    /// Not counted among the session's messages.
    Session {
        /// Secret to present in [`Request::Resume`]; bound to the certificate identity.
        token: ResumeToken,
        /// How long the RTI keeps a lost session, in milliseconds.
        grace_ms: u64,
    },
    /// Session layer: the answer to [`Request::Resume`]. Requests with ids above
    /// `last_request` did not reach the RTI and must be sent again. Not counted.
    Resumed {
        /// The highest request id the RTI handled in this session.
        last_request: u64,
    },
    /// Session layer: every request up to `last_request` has been handled, so the federate
    /// need not keep them to send again after a resume. Sent now and then, as requests that
    /// succeed quietly ([`Request::answered_on_success`]) confirm nothing themselves. Not
    /// counted.
    Handled {
        /// The highest request id the RTI handled in this session.
        last_request: u64,
    },
}

/// The secret that resumes a session on a new connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResumeToken(pub [u8; 16]);

impl fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A secret: never in logs.
        f.write_str("ResumeToken(..)")
    }
}

/// A refusal by the RTI. It changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum RtiError {
    /// A federation of that name exists.
    #[error("federation `{0}` already exists")]
    FederationExists(String),
    /// The object model is invalid.
    #[error("invalid object model: {0}")]
    InvalidObjectModel(String),
    /// No federation of that name.
    #[error("no federation named `{0}`: create it first")]
    FederationNotFound(String),
    /// Destroying a federation that federates are still in.
    #[error("federation `{federation}` still has joined federates: {federates:?}")]
    FederatesStillJoined {
        /// Federation.
        federation: String,
        /// Names of those still joined.
        federates: Vec<String>,
    },
    /// The federate name is taken in this federation.
    #[error("a federate named `{federate}` has already joined `{federation}`")]
    FederateNameInUse {
        /// Federation.
        federation: String,
        /// Name.
        federate: String,
    },
    /// The name is empty or otherwise unusable.
    #[error("`{0}` is not a valid name")]
    InvalidName(String),
    /// This connection has joined already.
    #[error("this connection has already joined federation `{0}`: resign first")]
    AlreadyJoined(String),
    /// The request needs a joined federate.
    #[error("`{0}` needs a joined federate: join a federation first")]
    NotJoined(String),
    /// A handle outside the object model.
    #[error("unknown {kind} {handle}")]
    UnknownHandle {
        /// What kind of handle.
        kind: String,
        /// The handle, printed.
        handle: String,
    },
    /// No such object instance.
    #[error("no object instance {0}")]
    ObjectNotFound(String),
    /// The object name is taken.
    #[error("an object named `{0}` already exists")]
    ObjectNameInUse(String),
    /// The sender does not own the instance.
    #[error("object `{object}` is owned by `{owner}`, not by this federate")]
    NotOwner {
        /// Instance name.
        object: String,
        /// Its owner.
        owner: String,
    },
    /// The class or attribute is not published by this federate.
    #[error("`{0}` is not published by this federate: publish it first")]
    NotPublished(String),
    /// A timestamped send below the sender's bound.
    #[error(
        "timestamp {timestamp} is below this federate's bound {bound} (logical time plus lookahead): send at {bound} or later"
    )]
    SendBelowBound {
        /// The refused timestamp.
        timestamp: SimTime,
        /// The earliest permitted timestamp.
        bound: SimTime,
    },
    /// A requested time earlier than allowed.
    #[error("requested time {requested} is earlier than the federate's logical time {current}")]
    TimeInPast {
        /// The refused time.
        requested: SimTime,
        /// The federate's logical time.
        current: SimTime,
    },
    /// A time advance is already pending.
    #[error("a {0} is already pending: wait for its grant")]
    AdvancePending(AdvanceKind),
    /// Enabling constrained is pending.
    #[error("enabling time-constrained is pending: wait for its confirmation")]
    ConstrainedPending,
    /// Already in the requested time mode.
    #[error("time {0} is already enabled")]
    AlreadyEnabled(String),
    /// Not in the required time mode.
    #[error("time {0} is not enabled")]
    NotEnabled(String),
    /// A synchronization point label is in use.
    #[error("synchronization point `{0}` is already registered")]
    SyncPointExists(String),
    /// No such synchronization point (or this federate is not in its set).
    #[error("no synchronization point `{0}` announced to this federate")]
    SyncPointNotFound(String),
    /// The point was already achieved by this federate.
    #[error("synchronization point `{0}` was already achieved by this federate")]
    SyncPointAlreadyAchieved(String),
    /// A named federate is not joined.
    #[error("no federate named `{0}` has joined this federation")]
    FederateNotFound(String),
    /// Time arithmetic overflowed.
    #[error("time overflow: {0}")]
    TimeOverflow(String),
    /// The same attribute or parameter given twice in one message.
    #[error("`{0}` is given twice in one message")]
    DuplicateValue(String),
    /// The policy does not grant this identity what it asked.
    #[error(
        "`{identity}` may not {permission} in federation `{federation}`: grant it in the RTI's policy"
    )]
    Denied {
        /// Certificate identity.
        identity: String,
        /// What was asked, in words.
        permission: String,
        /// Federation (`*` for all).
        federation: String,
    },
    /// Joining under a name other than the certificate's.
    #[error("the certificate is issued to `{certificate}`, which cannot join as `{requested}`")]
    IdentityMismatch {
        /// Name in the certificate.
        certificate: String,
        /// Name asked for.
        requested: String,
    },
    /// The RTI is shutting down.
    #[error("the RTI is shutting down")]
    ShuttingDown,
    /// A lookahead or step that breaks the stability rule, or invalid dynamics or settings;
    /// the message has the numbers.
    #[error("{0}")]
    Unstable(String),
    /// A resume was refused; the message says why. The session is not continued.
    #[error("session not resumed: {0}")]
    ResumeRefused(String),
    /// A session-layer request on a connection without one (in-process connections).
    #[error("`{0}` is handled by the network transport; this connection has no session layer")]
    NoSessionLayer(String),
    /// The federation halted after a fault; the message says why.
    #[error("the federation halted: {0}; resign, then destroy and create the federation again")]
    FederationHalted(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_encodes_as_one_byte_string() {
        let payload = Payload::from(vec![7u8; 300]);
        let bytes = postcard::to_stdvec(&payload).unwrap();
        // A two-byte varint length and the raw bytes: not one varint per byte.
        assert_eq!(bytes.len(), 302);
        let back: Payload = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, payload);
    }

    #[test]
    fn payload_debug_hides_contents() {
        assert_eq!(
            format!("{:?}", Payload::from(&b"secret"[..])),
            "Payload(6 bytes)"
        );
    }

    #[test]
    fn advance_kinds_classify() {
        assert!(AdvanceKind::NextEventAvailable.is_available());
        assert!(AdvanceKind::NextEventAvailable.is_next_event());
        assert!(!AdvanceKind::TimeAdvance.is_available());
        assert_eq!(AdvanceKind::FlushQueue.to_string(), "FQR");
    }
}
