//! The fuzz targets' engine interpreter (`ops.rs`), run on every `cargo test`: random bytes, a
//! valid federation lifecycle, and that lifecycle with well-formed nonsense spliced in and its
//! bytes mutated. Whatever arrives, the engine answers each request once and never panics.

use fedtwin_core::message::{AdvanceKind, Payload, Request};
use fedtwin_core::model::{
    AttributeHandle, InteractionClassHandle, ObjectClassHandle, ObjectInstanceHandle,
    ParameterHandle,
};
use fedtwin_core::{SimDuration, SimTime};
use proptest::prelude::*;

use crate::ops::{self, CONNECTIONS, EngineKind, Program};

const ENGINES: [EngineKind; 3] = [
    EngineKind::Open,
    EngineKind::DenyAll,
    EngineKind::Permissive,
];

/// Connections 1 and 2 are trusted, 3 is authenticated as `alpha`, 4 as the admin `ops`.
fn setup(engine: EngineKind) -> Program {
    let mut program = Program::new(engine);
    program
        .connect(1)
        .connect(2)
        .connect_peer(3, 0, false)
        .connect_peer(4, 3, true);
    let create = Request::CreateFederation {
        federation: "city".into(),
        model: ops::model(),
        if_missing: false,
    };
    program.send(1, 1, create);
    for (connection, federate) in [(1, "gamma"), (2, "beta"), (3, "alpha")] {
        let join = Request::Join {
            federation: "city".into(),
            federate: federate.into(),
        };
        program.send(connection, 2, join);
    }

    let bus = ObjectClassHandle(0);
    let trip = InteractionClassHandle(0);
    let both = vec![AttributeHandle(0), AttributeHandle(1)];
    program
        .send(1, 3, publish(bus, both.clone()))
        .send(1, 4, Request::PublishInteraction { class: trip })
        .send(2, 3, subscribe(bus, both))
        .send(2, 4, Request::SubscribeInteraction { class: trip })
        .send(3, 3, subscribe(bus, vec![AttributeHandle(0)]))
        .send(3, 4, publish(bus, vec![AttributeHandle(1)]));

    let lookahead = SimDuration::from_ticks(1_000);
    program
        .send(1, 5, Request::EnableTimeRegulation { lookahead })
        .send(2, 5, Request::EnableTimeConstrained)
        .send(3, 5, Request::EnableTimeRegulation { lookahead })
        .send(3, 6, Request::EnableTimeConstrained);
    program
}

/// Objects, messages in both orders, a synchronization point and every kind of advance.
fn exchange(program: &mut Program) {
    let register = Request::RegisterObject {
        class: ObjectClassHandle(0),
        name: Some("bus-1".into()),
    };
    let update = Request::UpdateAttributes {
        object: ObjectInstanceHandle(1),
        values: vec![(AttributeHandle(0), Payload::from(vec![1, 2]))],
        timestamp: Some(SimTime::from_ticks(2_000)),
    };
    let interaction = Request::SendInteraction {
        class: InteractionClassHandle(0),
        parameters: vec![(ParameterHandle(1), Payload::from(vec![3]))],
        timestamp: None,
    };
    let sync_point = Request::RegisterSyncPoint {
        label: "ready".into(),
        tag: Payload::default(),
        federates: vec![],
    };
    program
        .send(1, 10, register)
        .send(1, 11, update)
        .send(1, 12, interaction)
        .send(2, 10, sync_point);
    for connection in 1..=3 {
        let achieve = Request::AchieveSyncPoint {
            label: "ready".into(),
        };
        program.send(connection, 20, achieve);
    }

    for (kind, time) in [
        (AdvanceKind::TimeAdvance, 1_000),
        (AdvanceKind::NextEvent, 5_000),
        (AdvanceKind::TimeAdvanceAvailable, 5_000),
        (AdvanceKind::FlushQueue, 9_000),
        (AdvanceKind::NextEventAvailable, i64::MAX),
    ] {
        let time = SimTime::from_ticks(time);
        for connection in 1..=3 {
            program.send(connection, 30, Request::Advance { kind, time });
        }
        program.tick(10).send(4, 31, Request::Status);
    }
}

/// Leaves in every way: a deletion, a resignation, a lost connection, a refused destruction.
fn teardown(program: &mut Program) {
    let delete = Request::DeleteObject {
        object: ObjectInstanceHandle(1),
        timestamp: Some(SimTime::from_ticks(i64::MAX)),
    };
    let destroy = Request::DestroyFederation {
        federation: "city".into(),
    };
    program
        .send(1, 40, delete)
        .send(2, 40, Request::QueryGalt)
        .send(3, 40, Request::DisableTimeConstrained)
        .send(3, 41, Request::Resign)
        .disconnect(1)
        .send(4, 40, destroy.clone())
        .send(2, 41, Request::Resign)
        .send(4, 41, destroy);
}

fn publish(class: ObjectClassHandle, attributes: Vec<AttributeHandle>) -> Request {
    Request::PublishObjectClass { class, attributes }
}

fn subscribe(class: ObjectClassHandle, attributes: Vec<AttributeHandle>) -> Request {
    Request::SubscribeObjectClass { class, attributes }
}

/// Flips, truncates, deletes and inserts bytes: `(kind, position, value)` each.
fn mutate(bytes: &mut Vec<u8>, mutations: &[(u8, u16, u8)]) {
    for &(kind, position, value) in mutations {
        if bytes.is_empty() {
            return;
        }
        let at = usize::from(position) % bytes.len();
        match kind % 4 {
            0 => bytes[at] ^= value | 1,
            1 => bytes.truncate(at),
            2 => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, value),
        }
    }
}

#[test]
fn a_valid_lifecycle_reaches_deep_into_the_engine() {
    let mut program = setup(EngineKind::Open);
    exchange(&mut program);
    teardown(&mut program);
    let summary = ops::run(&program.into_bytes());

    // Almost everything is accepted: only the destruction while federates remain is refused.
    // The 17 updates, interactions and advances among them succeed quietly.
    assert_eq!((summary.handled, summary.answered), (48, 31), "{summary:?}");
    assert_eq!(summary.accepted, summary.handled - 1, "{summary:?}");
    assert!(summary.callbacks >= 20, "{summary:?}");
}

#[test]
fn every_request_kind_at_the_edges_is_answered() {
    // Each kind with all-zero, all-0xff and mid-range arguments, before join, after join and
    // from an authenticated peer, under each engine.
    for engine in ENGINES {
        let mut program = setup(engine);
        program.connect(5);
        for kind in 0..28 {
            for argument in [0x00, 0x7f, 0x80, 0xf3, 0xff] {
                let mut seed = vec![argument; 12];
                seed[0] = kind;
                for connection in [5, 1, 3] {
                    program.send(connection, u64::MAX, ops::synthesize(&seed));
                }
            }
        }
        let summary = ops::run(&program.into_bytes());
        assert!(summary.handled > 28 * 5 * 3, "{summary:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // Half of the programs start from nothing, half after the valid setup (whose first byte
    // picks the engine), where random requests meet joined, regulating federates.
    #[test]
    fn arbitrary_programs_never_panic(
        after_setup in any::<bool>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        if after_setup && !bytes.is_empty() {
            let mut program = setup(ENGINES[usize::from(bytes[0]) % ENGINES.len()]).into_bytes();
            program.extend_from_slice(&bytes[1..]);
            ops::run(&program);
        } else {
            ops::run(&bytes);
        }
    }

    // Well-formed requests in a nonsensical order (before join, out-of-range handles, times at
    // the ends of the axis) between a valid setup and teardown, then a few bytes mutated so that
    // some requests change their values and some stop decoding.
    #[test]
    fn mutated_valid_programs_never_panic(
        engine in 0..ENGINES.len(),
        nonsense in proptest::collection::vec(
            (1..=CONNECTIONS, proptest::collection::vec(any::<u8>(), 1..10)),
            0..32,
        ),
        mutations in proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 0..6),
    ) {
        let mut program = setup(ENGINES[engine]);
        for (id, (connection, seed)) in nonsense.iter().enumerate() {
            program.send(*connection, id as u64, ops::synthesize(seed));
        }
        exchange(&mut program);
        teardown(&mut program);
        let mut bytes = program.into_bytes();
        mutate(&mut bytes, &mutations);
        ops::run(&bytes);
    }
}
