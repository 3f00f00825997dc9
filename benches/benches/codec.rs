//! Frame encode/decode of typical messages, and the timestamp-ordered queue: many messages
//! queued for one constrained federate, then delivered by one grant.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fedtwin_core::codec::{DEFAULT_MAX_FRAME, decode_frame, encode_frame};
use fedtwin_core::message::{
    AdvanceKind, Callback, ClientMessage, Order, Payload, Request, ServerMessage,
};
use fedtwin_core::model::{
    AttributeHandle, InteractionClassHandle, ObjectInstanceHandle, ParameterHandle,
};
use fedtwin_core::{ObjectModel, SimDuration, SimTime};
use fedtwin_rti::{ConnectionId, Engine};

/// An update of one f64 attribute, as a lock-step federate sends every step.
fn update() -> ClientMessage {
    ClientMessage {
        id: 42,
        request: Request::UpdateAttributes {
            object: ObjectInstanceHandle(7),
            values: vec![(
                AttributeHandle(0),
                Payload::from(1.02f64.to_le_bytes().to_vec()),
            )],
            timestamp: Some(SimTime::from_ticks(1_000_000)),
        },
    }
}

/// The reflection a subscriber receives for it.
fn reflect() -> ServerMessage {
    ServerMessage::Callback(Callback::Reflect {
        object: ObjectInstanceHandle(7),
        class: fedtwin_core::model::ObjectClassHandle(0),
        values: vec![(
            AttributeHandle(0),
            Payload::from(1.02f64.to_le_bytes().to_vec()),
        )],
        timestamp: Some(SimTime::from_ticks(1_000_000)),
        order: Order::Timestamp,
        sender: "grid".into(),
    })
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group.measurement_time(Duration::from_secs(2));
    let mut buffer = Vec::with_capacity(256);
    let advance = ClientMessage {
        id: 43,
        request: Request::Advance {
            kind: AdvanceKind::TimeAdvance,
            time: SimTime::from_ticks(2),
        },
    };
    for (name, message) in [("update", update()), ("advance", advance)] {
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| {
                buffer.clear();
                encode_frame(black_box(&message), &mut buffer, DEFAULT_MAX_FRAME)
            })
        });
        buffer.clear();
        let _ = encode_frame(&message, &mut buffer, DEFAULT_MAX_FRAME);
        let frame = buffer.clone();
        group.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| decode_frame::<ClientMessage>(black_box(&frame), DEFAULT_MAX_FRAME))
        });
    }
    let reflection = reflect();
    group.bench_function(BenchmarkId::new("encode", "reflect"), |b| {
        b.iter(|| {
            buffer.clear();
            encode_frame(black_box(&reflection), &mut buffer, DEFAULT_MAX_FRAME)
        })
    });
    group.finish();
}

/// A sender and a constrained receiver; the sender queues `n` interactions at distinct
/// timestamps, then one grant delivers them all in order. Reported per message.
fn tso_queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("tso_queue");
    group.measurement_time(Duration::from_secs(3));
    for n in [10u64, 1_000, 100_000] {
        group.throughput(Throughput::Elements(n));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let (mut engine, sender, receiver) = federation();
                    let start = Instant::now();
                    for k in 0..n {
                        // Reverse order: every insert lands before the queue's head.
                        let at = SimTime::from_ticks(10 + (n - k) as i64);
                        handle(&mut engine, sender, k + 10, interaction(at));
                    }
                    let grant = Request::Advance {
                        kind: AdvanceKind::TimeAdvance,
                        time: SimTime::from_ticks(5 + n as i64 + 10),
                    };
                    handle(&mut engine, receiver, 1, grant);
                    handle(
                        &mut engine,
                        sender,
                        1,
                        Request::Advance {
                            kind: AdvanceKind::TimeAdvance,
                            time: SimTime::from_ticks(n as i64 + 100),
                        },
                    );
                    total += start.elapsed();
                    let delivered = std::iter::from_fn(|| engine.poll_transmit()).count();
                    assert!(delivered as u64 >= n, "only {delivered} of {n} delivered");
                }
                total
            })
        });
    }
    group.finish();
}

fn interaction(at: SimTime) -> Request {
    Request::SendInteraction {
        class: InteractionClassHandle(0),
        parameters: vec![(
            ParameterHandle(0),
            Payload::from(vec![1, 2, 3, 4, 5, 6, 7, 8]),
        )],
        timestamp: Some(at),
    }
}

fn handle(engine: &mut Engine, connection: ConnectionId, id: u64, request: Request) {
    engine.handle(Instant::now(), connection, ClientMessage { id, request });
}

fn federation() -> (Engine, ConnectionId, ConnectionId) {
    let mut engine = Engine::new();
    let (sender, receiver) = (ConnectionId(1), ConnectionId(2));
    let model = ObjectModel::new().with_interaction_class("Ping", ["n"]);
    for connection in [sender, receiver] {
        engine.connect(connection).expect("fresh connection");
    }
    let setup = [
        (
            sender,
            Request::CreateFederation {
                federation: "bench".into(),
                model,
                if_missing: false,
            },
        ),
        (
            sender,
            Request::Join {
                federation: "bench".into(),
                federate: "sender".into(),
            },
        ),
        (
            receiver,
            Request::Join {
                federation: "bench".into(),
                federate: "receiver".into(),
            },
        ),
        (
            sender,
            Request::EnableTimeRegulation {
                lookahead: SimDuration::from_ticks(10),
            },
        ),
        (
            sender,
            Request::PublishInteraction {
                class: InteractionClassHandle(0),
            },
        ),
        (receiver, Request::EnableTimeConstrained),
        (
            receiver,
            Request::SubscribeInteraction {
                class: InteractionClassHandle(0),
            },
        ),
    ];
    for (connection, request) in setup {
        handle(&mut engine, connection, 1, request);
    }
    while let Some(transmit) = engine.poll_transmit() {
        if let ServerMessage::Response {
            result: Err(error), ..
        } = transmit.message
        {
            panic!("setup refused: {error}");
        }
    }
    while engine.poll_audit().is_some() {}
    (engine, sender, receiver)
}

criterion_group!(benches, codec, tso_queue);
criterion_main!(benches);
