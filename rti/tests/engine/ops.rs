//! A byte-driven interpreter of engine operations, shared by the `engine_handler` fuzz target
//! (`fuzz/fuzz_targets/engine_handler.rs`) and the randomized tests in `fuzz.rs`.
//!
//! A program is one configuration byte (which engine: no policy, the default deny-all policy, or
//! a policy with a few grants) followed by operations, each an opcode byte and its arguments:
//!
//! | opcode % 8 | operation | arguments |
//! |---|---|---|
//! | 0 | open a trusted connection | connection |
//! | 1 | open an authenticated connection | connection, identity |
//! | 2 | close a connection | connection |
//! | 3 | handle an encoded `ClientMessage` | connection, length, body |
//! | 4, 6, 7 | handle a request built by [`synthesize`] | connection, id, request bytes |
//! | 5 | let wall-clock time pass | tens of milliseconds |
//!
//! A connection byte names one of `1..=CONNECTIONS`. A length is one byte, or `0xff` and two
//! little-endian bytes; a body that does not decode (with `decode_body`) is skipped. An id byte
//! of 0 makes the request best-effort, `0xff` makes it `u64::MAX`, anything else a counter.
//! A missing argument byte reads as zero. After every operation the interpreter drains the
//! engine's transmits and audit events and checks what must hold whatever the input:
//!
//! - a handled request on an open connection is answered by exactly one response, with its id,
//!   to that connection, before any callback to that connection, unless its id is
//!   `ClientMessage::BEST_EFFORT` or it succeeded and succeeds quietly
//!   (`Request::answered_on_success`), when it is answered by nothing; so are a request on a
//!   closed connection and every other operation;
//! - nothing is sent to a closed connection;
//! - every message the engine sends survives the frame codec unchanged;
//! - a federate's grants never go back in time.
//!
//! Nothing here knows about proptest or libFuzzer: a failed check is a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fedtwin_core::codec::{DEFAULT_MAX_FRAME, HEADER_LEN, decode_body, decode_frame, encode_frame};
use fedtwin_core::message::{
    AdvanceKind, Callback, ClientMessage, Payload, Request, Response, ServerMessage,
};
use fedtwin_core::model::{
    AttributeHandle, InteractionClassHandle, ObjectClassHandle, ObjectInstanceHandle,
    ParameterHandle,
};
use fedtwin_core::{ObjectModel, SimDuration, SimTime};
use fedtwin_rti::policy::Policy;
use fedtwin_rti::tls::{Identity, Role};
use fedtwin_rti::{ConnectionId, Engine, EngineError, Peer};

/// Connection ids a program can name: `1..=CONNECTIONS`.
pub(crate) const CONNECTIONS: u8 = 6;

const CONNECT: u8 = 0;
const CONNECT_PEER: u8 = 1;
const DISCONNECT: u8 = 2;
const SEND: u8 = 3;
const SYNTHESIZE: u8 = 4;
const TICK: u8 = 5;
/// Opcodes 6 and 7 synthesize too, so that random bytes mostly make requests.
const OPCODES: u8 = 8;

/// Federate and identity names; the last is not a valid name.
const NAMES: [&str; 5] = ["alpha", "beta", "gamma", "ops", " padded"];
/// Federation names; `city` is the one the permissive policy grants, the last is invalid.
const FEDERATIONS: [&str; 3] = ["city", "town", ""];
const LABELS: [&str; 3] = ["ready", "done", ""];
const OBJECT_NAMES: [&str; 3] = ["bus-1", "Grid.Bus-1", "\u{7}"];
/// Times at the edges of the axis; small ones come from the byte itself.
const TIMES: [i64; 8] = [
    i64::MIN,
    i64::MIN + 1,
    -1,
    0,
    1_000,
    i64::MAX - 1,
    i64::MAX,
    1 << 62,
];
const LOOKAHEADS: [u64; 6] = [
    0,
    1_000,
    i64::MAX as u64 - 1,
    i64::MAX as u64,
    i64::MAX as u64 + 1,
    u64::MAX,
];
/// Eigenvalues and safety factors: the invalid ones (NaN, infinite, zero, out of range), the
/// extremes whose stability bound overflows the tick count, and ordinary ones.
const EIGENVALUES: [f64; 10] = [
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    0.0,
    -0.0,
    -5.0,
    10.0,
    f64::MIN_POSITIVE,
    5e-324,
    f64::MAX,
];
const ALPHAS: [f64; 8] = [
    f64::NAN,
    0.0,
    -0.5,
    0.5,
    1.0,
    1.000_000_1,
    f64::INFINITY,
    5e-324,
];
const ADVANCE_KINDS: [AdvanceKind; 5] = [
    AdvanceKind::TimeAdvance,
    AdvanceKind::TimeAdvanceAvailable,
    AdvanceKind::NextEvent,
    AdvanceKind::NextEventAvailable,
    AdvanceKind::FlushQueue,
];

const PERMISSIVE_POLICY: &str = r#"
    [[rules]]
    identities = ["alpha", "beta"]
    federations = ["city"]
    create = true
    join = true
    publish = ["Grid.*"]
    subscribe = ["Grid.Bus.*", "Grid.Trip"]
    send = ["Grid.Trip"]
    sync_points = true
    regulate = true

    [[rules]]
    identities = ["gamma"]
    join = true
    subscribe = ["*"]
"#;

/// Which engine a program drives: its first byte, modulo 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EngineKind {
    /// `Engine::new()`: authenticated peers may do anything but join under another name.
    Open = 0,
    /// `Engine::with_policy(Policy::default())`: authenticated peers may do nothing.
    DenyAll = 1,
    /// A policy with a few grants, so that checks pass for some requests and fail for others.
    Permissive = 2,
}

/// What a program did, for tests that check that a valid program reaches deep into the engine.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Requests handled on an open connection.
    pub(crate) handled: usize,
    /// Of those, the ones answered (all but the best-effort ones and quiet successes).
    pub(crate) answered: usize,
    /// Of the handled requests, the ones that succeeded (answered or quietly).
    pub(crate) accepted: usize,
    /// Callbacks sent.
    pub(crate) callbacks: usize,
}

/// Runs a program (see the module documentation), panicking if a check fails.
pub(crate) fn run(program: &[u8]) -> Summary {
    let mut input = Input(program);
    let mut driver = Driver::new(engine_kind(input.byte()));
    while let Some(opcode) = input.next() {
        match opcode % OPCODES {
            CONNECT => driver.connect(input.connection(), Peer::default()),
            CONNECT_PEER => {
                let connection = input.connection();
                driver.connect(connection, peer(input.byte()));
            }
            DISCONNECT => driver.disconnect(input.connection()),
            SEND => {
                let connection = input.connection();
                let len = input.length();
                if let Ok(message) = decode_body::<ClientMessage>(input.take(len)) {
                    driver.handle(connection, message);
                }
            }
            SYNTHESIZE | 6 | 7 => {
                let connection = input.connection();
                let id = match input.byte() {
                    0 => ClientMessage::BEST_EFFORT,
                    0xff => u64::MAX,
                    _ => driver.summary.handled as u64 + 1,
                };
                let request = synthesize_from(&mut input);
                driver.handle(connection, ClientMessage { id, request });
            }
            TICK => driver.now += Duration::from_millis(u64::from(input.byte()) * 10),
            _ => unreachable!("opcode modulo {OPCODES}"),
        }
    }

    // Everyone leaves; federates resign and their objects go.
    for connection in driver.open.clone() {
        driver.disconnect(connection);
    }
    driver.summary
}

/// A request built from a few bytes: a kind and then small arguments that favour the handles,
/// names and times at the edges of what the engine accepts. Missing bytes read as zero.
pub(crate) fn synthesize(bytes: &[u8]) -> Request {
    synthesize_from(&mut Input(bytes))
}

/// Writes programs in the interpreter's format.
#[derive(Debug, Clone)]
pub(crate) struct Program(Vec<u8>);

impl Program {
    pub(crate) fn new(engine: EngineKind) -> Self {
        Self(vec![engine as u8])
    }

    pub(crate) fn connect(&mut self, connection: u8) -> &mut Self {
        self.0.extend_from_slice(&[CONNECT, connection - 1]);
        self
    }

    /// Opens a connection authenticated as `NAMES[name]`, as an admin if asked.
    pub(crate) fn connect_peer(&mut self, connection: u8, name: u8, admin: bool) -> &mut Self {
        let identity = name | if admin { 0x80 } else { 0 };
        self.0
            .extend_from_slice(&[CONNECT_PEER, connection - 1, identity]);
        self
    }

    pub(crate) fn disconnect(&mut self, connection: u8) -> &mut Self {
        self.0.extend_from_slice(&[DISCONNECT, connection - 1]);
        self
    }

    pub(crate) fn send(&mut self, connection: u8, id: u64, request: Request) -> &mut Self {
        let mut frame = Vec::new();
        encode_frame(
            &ClientMessage { id, request },
            &mut frame,
            DEFAULT_MAX_FRAME,
        )
        .expect("a request encodes");
        let body = &frame[HEADER_LEN..];
        self.0.extend_from_slice(&[SEND, connection - 1]);
        match u8::try_from(body.len()) {
            Ok(len) if len < 0xff => self.0.push(len),
            _ => {
                let len = u16::try_from(body.len()).expect("test requests are small");
                self.0.push(0xff);
                self.0.extend_from_slice(&len.to_le_bytes());
            }
        }
        self.0.extend_from_slice(body);
        self
    }

    pub(crate) fn tick(&mut self, tens_of_millis: u8) -> &mut Self {
        self.0.extend_from_slice(&[TICK, tens_of_millis]);
        self
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// The object model of the federations that programs create.
pub(crate) fn model() -> ObjectModel {
    ObjectModel::new()
        .with_object_class("Grid.Bus", ["voltage", "angle"])
        .with_object_class("Home.Battery", ["soc"])
        .with_interaction_class("Grid.Trip", ["breaker", "reason"])
        .with_interaction_class("Home.Alarm", ["level"])
}

/// The engine, the connections the program opened and what each federate was granted.
struct Driver {
    engine: Engine,
    now: Instant,
    open: BTreeSet<ConnectionId>,
    /// Logical time of each joined connection's federate, from its join and grants.
    times: BTreeMap<ConnectionId, SimTime>,
    summary: Summary,
}

impl Driver {
    fn new(kind: EngineKind) -> Self {
        let engine = match kind {
            EngineKind::Open => Engine::new(),
            EngineKind::DenyAll => Engine::with_policy(Policy::default()),
            EngineKind::Permissive => {
                // Parsed once: the fuzzer runs thousands of programs a second.
                static POLICY: OnceLock<Policy> = OnceLock::new();
                let policy = POLICY.get_or_init(|| {
                    Policy::from_toml(PERMISSIVE_POLICY).expect("the test policy parses")
                });
                Engine::with_policy(policy.clone())
            }
        };
        Self {
            engine,
            now: Instant::now(),
            open: BTreeSet::new(),
            times: BTreeMap::new(),
            summary: Summary::default(),
        }
    }

    fn connect(&mut self, connection: ConnectionId, peer: Peer) {
        let result = self.engine.connect_peer(connection, peer);
        if self.open.insert(connection) {
            assert_eq!(result, Ok(()), "opening a new connection");
        } else {
            assert_eq!(result, Err(EngineError::ConnectionExists(connection)));
        }
        let responses = self.drain(None);
        assert!(
            responses.is_empty(),
            "opening a connection answered {responses:?}"
        );
    }

    fn disconnect(&mut self, connection: ConnectionId) {
        self.engine.disconnect(self.now, connection);
        self.open.remove(&connection);
        self.times.remove(&connection);
        let responses = self.drain(None);
        assert!(
            responses.is_empty(),
            "closing a connection answered {responses:?}"
        );
    }

    fn handle(&mut self, connection: ConnectionId, message: ClientMessage) {
        let id = message.id;
        let name = message.request.name();
        let answered = message.request.answered_on_success();
        let resign = matches!(message.request, Request::Resign);
        self.engine.handle(self.now, connection, message);
        if !self.open.contains(&connection) {
            let responses = self.drain(None);
            assert!(
                responses.is_empty(),
                "a closed connection was answered {responses:?}"
            );
            return;
        }

        self.summary.handled += 1;
        if resign {
            self.times.remove(&connection);
        }
        if id == ClientMessage::BEST_EFFORT {
            let responses = self.drain(None);
            assert!(
                responses.is_empty(),
                "best-effort {name} answered {responses:?}"
            );
            return;
        }
        let responses = self.drain(answered.then_some(connection));
        if !answered && responses.is_empty() {
            // Succeeded quietly.
            self.summary.accepted += 1;
            return;
        }
        assert_eq!(
            responses.len(),
            1,
            "{name} {id} on {connection:?} must be answered exactly once: {responses:?}"
        );
        let (to, answered_id, accepted) = responses[0];
        assert_eq!(
            (to, answered_id),
            (connection, id),
            "answered the wrong request"
        );
        assert!(
            answered || !accepted,
            "{name} {id} succeeded and was answered, though it should succeed quietly"
        );
        self.summary.answered += 1;
        if accepted {
            self.summary.accepted += 1;
        }
    }

    /// Drains transmits and audit events, checking each transmit; returns the responses as
    /// (connection, id, success). With `first_to`, the first message to that connection must
    /// be a response.
    fn drain(&mut self, first_to: Option<ConnectionId>) -> Vec<(ConnectionId, u64, bool)> {
        let mut responses = Vec::new();
        let mut first = first_to;
        while let Some(transmit) = self.engine.poll_transmit() {
            let connection = transmit.connection;
            assert!(
                self.open.contains(&connection),
                "sent to closed {connection:?}: {:?}",
                transmit.message
            );
            assert_round_trip(&transmit.message);
            if first == Some(connection) {
                first = None;
                assert!(
                    matches!(transmit.message, ServerMessage::Response { .. }),
                    "a callback preceded the response on {connection:?}: {:?}",
                    transmit.message
                );
            }
            match transmit.message {
                ServerMessage::Response { id, result } => {
                    if let Ok(Response::Joined { time, .. }) = &result {
                        self.times.insert(connection, *time);
                    }
                    responses.push((connection, id, result.is_ok()));
                }
                ServerMessage::Callback(callback) => {
                    self.summary.callbacks += 1;
                    if let Callback::TimeAdvanceGrant { time, .. } = callback {
                        let before = self.times.insert(connection, time);
                        assert!(
                            before.is_none_or(|before| before <= time),
                            "{connection:?} granted {time:?} after {before:?}"
                        );
                    }
                }
                other => panic!("the engine sent a session message: {other:?}"),
            }
        }
        while self.engine.poll_audit().is_some() {}
        responses
    }
}

/// A message the engine sends must encode within the default frame limit and decode back to
/// the same message (compared encoded, so that a NaN equals itself).
fn assert_round_trip(message: &ServerMessage) {
    let mut frame = Vec::new();
    encode_frame(message, &mut frame, DEFAULT_MAX_FRAME).expect("the engine's message encodes");
    let (decoded, used) = decode_frame::<ServerMessage>(&frame, DEFAULT_MAX_FRAME)
        .expect("the engine's message decodes")
        .expect("the frame is whole");
    assert_eq!(used, frame.len(), "{message:?}");
    let mut again = Vec::new();
    encode_frame(&decoded, &mut again, DEFAULT_MAX_FRAME).expect("a decoded message encodes");
    assert_eq!(
        again, frame,
        "{message:?} changed in the codec: {decoded:?}"
    );
}

fn engine_kind(byte: u8) -> EngineKind {
    match byte % 3 {
        0 => EngineKind::Open,
        1 => EngineKind::DenyAll,
        _ => EngineKind::Permissive,
    }
}

/// An authenticated peer: the low bits pick the name, the top bit the admin role.
fn peer(byte: u8) -> Peer {
    let role = if byte & 0x80 == 0 {
        Role::Federate
    } else {
        Role::Admin
    };
    Peer {
        identity: Some(Identity {
            name: pick(&NAMES, byte & 0x7f).to_owned(),
            role,
        }),
        key_exchange: (byte & 0x40 != 0).then(|| "X25519MLKEM768".to_owned()),
    }
}

fn synthesize_from(input: &mut Input<'_>) -> Request {
    let kind = input.byte();
    match kind % 29 {
        0 => Request::CreateFederation {
            federation: pick(&FEDERATIONS, input.byte()).to_owned(),
            model: some_model(input.byte()),
            if_missing: input.byte() & 1 == 1,
        },
        1 => Request::DestroyFederation {
            federation: pick(&FEDERATIONS, input.byte()).to_owned(),
        },
        2 => Request::Join {
            federation: pick(&FEDERATIONS, input.byte()).to_owned(),
            federate: pick(&NAMES, input.byte()).to_owned(),
        },
        3 => Request::Resign,
        4 => Request::PublishObjectClass {
            class: ObjectClassHandle(input.handle()),
            attributes: input.list(|input| AttributeHandle(input.handle())),
        },
        5 => Request::UnpublishObjectClass {
            class: ObjectClassHandle(input.handle()),
        },
        6 => Request::SubscribeObjectClass {
            class: ObjectClassHandle(input.handle()),
            attributes: input.list(|input| AttributeHandle(input.handle())),
        },
        7 => Request::UnsubscribeObjectClass {
            class: ObjectClassHandle(input.handle()),
        },
        8 => Request::PublishInteraction {
            class: InteractionClassHandle(input.handle()),
        },
        9 => Request::UnpublishInteraction {
            class: InteractionClassHandle(input.handle()),
        },
        10 => Request::SubscribeInteraction {
            class: InteractionClassHandle(input.handle()),
        },
        11 => Request::UnsubscribeInteraction {
            class: InteractionClassHandle(input.handle()),
        },
        12 => Request::RegisterObject {
            class: ObjectClassHandle(input.handle()),
            name: input.option(|input| pick(&OBJECT_NAMES, input.byte()).to_owned()),
        },
        13 => Request::DeleteObject {
            object: input.object(),
            timestamp: input.option(Input::time),
        },
        14 => Request::UpdateAttributes {
            object: input.object(),
            values: input.list(|input| (AttributeHandle(input.handle()), input.payload())),
            timestamp: input.option(Input::time),
        },
        15 => Request::SendInteraction {
            class: InteractionClassHandle(input.handle()),
            parameters: input.list(|input| (ParameterHandle(input.handle()), input.payload())),
            timestamp: input.option(Input::time),
        },
        16 => Request::EnableTimeRegulation {
            lookahead: input.lookahead(),
        },
        17 => Request::DisableTimeRegulation,
        18 => Request::EnableTimeConstrained,
        19 => Request::DisableTimeConstrained,
        20 => Request::ModifyLookahead {
            lookahead: input.lookahead(),
        },
        21 => Request::Advance {
            kind: pick(&ADVANCE_KINDS, input.byte()),
            time: input.time(),
        },
        22 => Request::QueryGalt,
        23 => Request::RegisterSyncPoint {
            label: pick(&LABELS, input.byte()).to_owned(),
            tag: input.payload(),
            federates: input.list(|input| pick(&NAMES, input.byte()).to_owned()),
        },
        24 => Request::AchieveSyncPoint {
            label: pick(&LABELS, input.byte()).to_owned(),
        },
        25 => Request::Status,
        26 => Request::DeclareDynamics {
            fastest_eigenvalue: pick(&EIGENVALUES, input.byte()),
            lock_step: input.byte() & 1 == 1,
        },
        27 => Request::QueryCoupledDynamics,
        _ => Request::SetStability {
            alpha: pick(&ALPHAS, input.byte()),
            override_stability: input.byte() & 1 == 1,
        },
    }
}

/// The federation model, another valid one, an invalid one or an empty one.
fn some_model(byte: u8) -> ObjectModel {
    match byte % 4 {
        0 => model(),
        1 => ObjectModel::new().with_object_class("Grid.Bus", ["voltage"]),
        2 => ObjectModel::new().with_object_class("Grid..Bus", ["voltage", "voltage"]),
        _ => ObjectModel::new(),
    }
}

fn pick<T: Copy>(choices: &[T], byte: u8) -> T {
    choices[usize::from(byte) % choices.len()]
}

/// The unread part of a program.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn byte(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }

    fn take(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        taken
    }

    fn connection(&mut self) -> ConnectionId {
        ConnectionId(u64::from(self.byte() % CONNECTIONS) + 1)
    }

    fn length(&mut self) -> usize {
        match self.byte() {
            0xff => usize::from(u16::from_le_bytes([self.byte(), self.byte()])),
            len => usize::from(len),
        }
    }

    /// A class, attribute or parameter handle: mostly in range, sometimes far out.
    fn handle(&mut self) -> u32 {
        match self.byte() {
            byte @ 0..0xf0 => u32::from(byte % 4),
            byte => [4, 0xffff, u32::MAX - 1, u32::MAX][usize::from(byte % 4)],
        }
    }

    /// An object instance handle: the engine numbers them from 1.
    fn object(&mut self) -> ObjectInstanceHandle {
        ObjectInstanceHandle(match self.byte() {
            byte @ 0..0xf0 => u64::from(byte % 6),
            byte => [0, 1 << 63, u64::MAX - 1, u64::MAX][usize::from(byte % 4)],
        })
    }

    fn time(&mut self) -> SimTime {
        SimTime::from_ticks(match self.byte() {
            byte @ 0..0x80 => i64::from(byte % 32) * 500,
            byte => pick(&TIMES, byte),
        })
    }

    fn lookahead(&mut self) -> SimDuration {
        SimDuration::from_ticks(match self.byte() {
            byte @ 0..0x80 => u64::from(byte % 8) * 500,
            byte => pick(&LOOKAHEADS, byte),
        })
    }

    fn payload(&mut self) -> Payload {
        Payload::from(vec![0xab; usize::from(self.byte() % 4)])
    }

    fn option<T>(&mut self, value: impl FnOnce(&mut Self) -> T) -> Option<T> {
        (self.byte() & 1 == 1).then(|| value(self))
    }

    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let len = self.byte() % 4;
        (0..len).map(|_| item(self)).collect()
    }
}
