//! Small federations with hand-checked outcomes.

use fedtwin_core::message::{AdvanceKind, Callback, Order, Payload, Request, Response};
use fedtwin_core::model::{
    AttributeHandle, InteractionClassHandle, ObjectClassHandle, ParameterHandle,
};
use fedtwin_core::{ObjectModel, SimDuration, SimTime};
use fedtwin_rti::FederateState;

use crate::harness::Harness;

fn t(ticks: i64) -> SimTime {
    SimTime::from_ticks(ticks)
}

fn model() -> ObjectModel {
    ObjectModel::new()
        .with_object_class("Grid.Bus", ["voltage", "angle"])
        .with_interaction_class("Ping", ["n"])
}

const PING: InteractionClassHandle = InteractionClassHandle(0);

fn advance(kind: AdvanceKind, ticks: i64) -> Request {
    Request::Advance {
        kind,
        time: t(ticks),
    }
}

fn granted(callbacks: &[Callback]) -> Option<SimTime> {
    callbacks.iter().find_map(|c| match c {
        Callback::TimeAdvanceGrant { time, .. } => Some(*time),
        _ => None,
    })
}

/// Two zero-lookahead federates: with TAR each waits for the other forever, and the stall
/// report names the cycle; with TARA both are granted.
#[test]
fn zero_lookahead_tar_deadlocks_visibly_and_tara_completes() {
    let mut h = Harness::new();
    h.create("zero", model());
    let a = h.join("zero", "a", Some(SimDuration::ZERO), true);
    let b = h.join("zero", "b", Some(SimDuration::ZERO), true);
    h.request(a, advance(AdvanceKind::TimeAdvance, 1)).unwrap();
    h.request(b, advance(AdvanceKind::TimeAdvance, 1)).unwrap();
    assert_eq!(granted(&h.callbacks(a)), None);
    assert_eq!(granted(&h.callbacks(b)), None);

    let report = h.engine.stall_report("zero").unwrap();
    assert_eq!(report.waits.len(), 2);
    assert_eq!(report.cycle, Some(vec!["a".to_owned(), "b".to_owned()]));
    assert_eq!(report.chain("a"), vec!["a", "b", "a"]);
    assert!(
        report.to_string().contains("wait-for cycle: a -> b -> a"),
        "{report}"
    );

    let mut h = Harness::new();
    h.create("zero", model());
    let a = h.join("zero", "a", Some(SimDuration::ZERO), true);
    let b = h.join("zero", "b", Some(SimDuration::ZERO), true);
    for step in 1..=5 {
        h.request(a, advance(AdvanceKind::TimeAdvanceAvailable, step))
            .unwrap();
        h.request(b, advance(AdvanceKind::TimeAdvanceAvailable, step))
            .unwrap();
        assert_eq!(granted(&h.callbacks(a)), Some(t(step)));
        assert_eq!(granted(&h.callbacks(b)), Some(t(step)));
    }
    assert_eq!(h.engine.stall_report("zero").unwrap().waits, vec![]);
}

/// Zero lookahead with NERA: a message sent at the current time is received before the
/// receiver moves past it.
#[test]
fn zero_lookahead_nera_exchanges_messages_at_the_same_time() {
    let mut h = Harness::new();
    h.create("zero", model());
    let a = h.join("zero", "a", Some(SimDuration::ZERO), true);
    let b = h.join("zero", "b", Some(SimDuration::ZERO), true);
    h.request(a, Request::PublishInteraction { class: PING })
        .unwrap();
    h.request(b, Request::SubscribeInteraction { class: PING })
        .unwrap();
    h.request(b, advance(AdvanceKind::NextEventAvailable, 50))
        .unwrap();
    assert_eq!(granted(&h.callbacks(b)), None);
    let ping = Request::SendInteraction {
        class: PING,
        parameters: vec![(ParameterHandle(0), Payload::from(vec![1]))],
        timestamp: Some(t(0)),
    };
    h.request(a, ping).unwrap();
    let got = h.callbacks(b);
    assert!(
        matches!(
            got.as_slice(),
            [Callback::ReceiveInteraction { order: Order::Timestamp, .. }, Callback::TimeAdvanceGrant { time, .. }]
                if *time == t(0)
        ),
        "{got:?}"
    );
}

/// NER is granted at the earliest queued message, TAR at its request, and the queue is
/// delivered in (timestamp, sender, sequence) order whatever the arrival order.
#[test]
fn next_event_and_delivery_order() {
    let mut h = Harness::new();
    h.create("grid", model());
    let zed = h.join("grid", "zed", Some(SimDuration::from_ticks(10)), false);
    let amy = h.join("grid", "amy", Some(SimDuration::from_ticks(10)), false);
    let rx = h.join("grid", "rx", None, true);
    for c in [zed, amy] {
        h.request(c, Request::PublishInteraction { class: PING })
            .unwrap();
    }
    h.request(rx, Request::SubscribeInteraction { class: PING })
        .unwrap();
    let ping = |n: u8, at: i64| Request::SendInteraction {
        class: PING,
        parameters: vec![(ParameterHandle(0), Payload::from(vec![n]))],
        timestamp: Some(t(at)),
    };
    // zed sends first, but amy's message at the same time sorts before it by name.
    h.request(zed, ping(1, 30)).unwrap();
    h.request(zed, ping(2, 20)).unwrap();
    h.request(amy, ping(3, 30)).unwrap();
    h.request(amy, ping(4, 20)).unwrap();
    h.request(rx, advance(AdvanceKind::NextEvent, 100)).unwrap();
    // Both senders are granted at 0 with bound 10: GALT 10 holds rx back.
    assert_eq!(granted(&h.callbacks(rx)), None);
    let status = h.engine.status("grid", h.now).unwrap();
    let rx_status = status.federates.iter().find(|f| f.name == "rx").unwrap();
    assert_eq!(rx_status.earliest_queued, Some(t(20)));
    assert_eq!(
        rx_status.state,
        FederateState::Advancing {
            kind: AdvanceKind::NextEvent,
            time: t(100)
        }
    );

    for c in [zed, amy] {
        h.request(c, advance(AdvanceKind::TimeAdvance, 25)).unwrap();
    }
    let order = |callbacks: &[Callback]| -> Vec<(u8, String)> {
        callbacks
            .iter()
            .filter_map(|c| match c {
                Callback::ReceiveInteraction {
                    parameters, sender, ..
                } => Some((parameters[0].1.as_bytes()[0], sender.to_string())),
                _ => None,
            })
            .collect()
    };
    let got = h.callbacks(rx);
    assert_eq!(order(&got), vec![(4, "amy".into()), (2, "zed".into())]);
    assert_eq!(granted(&got), Some(t(20)));

    // The senders' bounds are now 35: TAR(30) is granted with both messages stamped 30.
    h.request(rx, advance(AdvanceKind::TimeAdvance, 30))
        .unwrap();
    let got = h.callbacks(rx);
    assert_eq!(order(&got), vec![(3, "amy".into()), (1, "zed".into())]);
    assert_eq!(granted(&got), Some(t(30)));
}

/// Subscribers discover objects, receive only subscribed attributes, and see objects removed
/// when their owner resigns.
#[test]
fn objects_are_discovered_reflected_and_removed() {
    let mut h = Harness::new();
    h.create("grid", model());
    let owner = h.join("grid", "owner", None, false);
    let late = h.join("grid", "late", None, false);
    let early = h.join("grid", "early", None, false);
    let bus = ObjectClassHandle(0);
    let (voltage, angle) = (AttributeHandle(0), AttributeHandle(1));
    h.request(
        early,
        Request::SubscribeObjectClass {
            class: bus,
            attributes: vec![voltage],
        },
    )
    .unwrap();
    h.request(
        owner,
        Request::PublishObjectClass {
            class: bus,
            attributes: vec![voltage, angle],
        },
    )
    .unwrap();
    let Ok(Response::ObjectRegistered { object, .. }) = h.request(
        owner,
        Request::RegisterObject {
            class: bus,
            name: Some("bus7".into()),
        },
    ) else {
        panic!("register failed")
    };
    assert!(matches!(
        h.callbacks(early).as_slice(),
        [Callback::DiscoverObject { name, owner, .. }] if name == "bus7" && &**owner == "owner"
    ));
    h.request(
        late,
        Request::SubscribeObjectClass {
            class: bus,
            attributes: vec![angle],
        },
    )
    .unwrap();
    assert!(matches!(
        h.callbacks(late).as_slice(),
        [Callback::DiscoverObject { .. }]
    ));

    h.request(
        owner,
        Request::UpdateAttributes {
            object,
            values: vec![
                (voltage, Payload::from(vec![1])),
                (angle, Payload::from(vec![2])),
            ],
            timestamp: None,
        },
    )
    .unwrap();
    let reflected = |callbacks: Vec<Callback>| match callbacks.as_slice() {
        [
            Callback::Reflect {
                values,
                order: Order::Receive,
                ..
            },
        ] => values.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        other => panic!("expected one reflection, got {other:?}"),
    };
    assert_eq!(reflected(h.callbacks(early)), vec![voltage]);
    assert_eq!(reflected(h.callbacks(late)), vec![angle]);

    h.request(owner, Request::Resign).unwrap();
    for c in [early, late] {
        assert!(
            matches!(h.callbacks(c).as_slice(), [Callback::RemoveObject { object: o, .. }] if *o == object)
        );
    }
    assert_eq!(h.engine.status("grid", h.now).unwrap().objects, 0);
}

/// An owner that resigns with timestamped updates still queued for a constrained subscriber:
/// the removal comes after them, in timestamp order, never before its object's last update.
#[test]
fn a_removal_at_resign_follows_the_queued_updates_of_its_object() {
    let mut h = Harness::new();
    h.create("grid", model());
    let owner = h.join("grid", "owner", Some(SimDuration::from_ticks(1)), false);
    let watcher = h.join("grid", "watcher", None, true);
    let bus = ObjectClassHandle(0);
    let voltage = AttributeHandle(0);
    h.request(
        watcher,
        Request::SubscribeObjectClass {
            class: bus,
            attributes: vec![voltage],
        },
    )
    .unwrap();
    h.request(
        owner,
        Request::PublishObjectClass {
            class: bus,
            attributes: vec![voltage],
        },
    )
    .unwrap();
    let Ok(Response::ObjectRegistered { object, .. }) = h.request(
        owner,
        Request::RegisterObject {
            class: bus,
            name: Some("bus7".into()),
        },
    ) else {
        panic!("register failed")
    };
    for at in [5, 8] {
        h.request(
            owner,
            Request::UpdateAttributes {
                object,
                values: vec![(voltage, Payload::from(vec![at as u8]))],
                timestamp: Some(t(at)),
            },
        )
        .unwrap();
    }
    h.callbacks(watcher);
    h.request(owner, Request::Resign).unwrap();
    assert!(
        h.callbacks(watcher).is_empty(),
        "nothing overtakes the queued updates"
    );
    h.request(watcher, advance(AdvanceKind::TimeAdvance, 10))
        .unwrap();
    let delivered: Vec<(&str, Option<SimTime>)> = h
        .callbacks(watcher)
        .iter()
        .map(|c| match c {
            Callback::Reflect { timestamp, .. } => ("reflect", *timestamp),
            Callback::RemoveObject {
                timestamp, order, ..
            } => {
                assert_eq!(*order, Order::Timestamp);
                ("remove", *timestamp)
            }
            Callback::TimeAdvanceGrant { time, .. } => ("grant", Some(*time)),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        delivered,
        vec![
            ("reflect", Some(t(5))),
            ("reflect", Some(t(8))),
            ("remove", Some(t(8))),
            ("grant", Some(t(10))),
        ]
    );
}

/// A synchronization point releases everyone only when the last member achieves it, and a
/// resigning member no longer holds it.
#[test]
fn synchronization_points_gather_the_federation() {
    let mut h = Harness::new();
    h.create("grid", model());
    let a = h.join("grid", "a", None, false);
    let b = h.join("grid", "b", None, false);
    h.request(
        a,
        Request::RegisterSyncPoint {
            label: "start".into(),
            tag: Payload::default(),
            federates: vec![],
        },
    )
    .unwrap();
    let c = h.join("grid", "c", None, false);
    for x in [a, b] {
        assert!(matches!(
            h.callbacks(x).as_slice(),
            [Callback::AnnounceSyncPoint { .. }]
        ));
    }
    // The late joiner was announced as part of joining.
    assert!(h.engine.status("grid", h.now).unwrap().sync_points == vec!["start".to_owned()]);
    h.request(
        a,
        Request::AchieveSyncPoint {
            label: "start".into(),
        },
    )
    .unwrap();
    h.request(
        b,
        Request::AchieveSyncPoint {
            label: "start".into(),
        },
    )
    .unwrap();
    assert!(h.callbacks(a).is_empty());
    assert_eq!(
        h.request(
            a,
            Request::AchieveSyncPoint {
                label: "start".into()
            }
        ),
        Err(fedtwin_core::RtiError::SyncPointAlreadyAchieved(
            "start".into()
        ))
    );
    h.request(c, Request::Resign).unwrap();
    for x in [a, b] {
        assert!(matches!(
            h.callbacks(x).as_slice(),
            [Callback::FederationSynchronized { label }] if label == "start"
        ));
    }
}

/// A lowered lookahead does not let the bound fall; the federate outgrows the old promise.
#[test]
fn lowered_lookahead_keeps_earlier_promises() {
    let mut h = Harness::new();
    h.create("grid", model());
    let a = h.join("grid", "a", Some(SimDuration::from_ticks(10)), true);
    let b = h.join("grid", "b", None, true);
    assert_eq!(
        h.request(
            a,
            Request::ModifyLookahead {
                lookahead: SimDuration::from_ticks(1)
            }
        ),
        Ok(Response::Regulation {
            time: t(0),
            bound: t(10)
        })
    );
    h.request(b, advance(AdvanceKind::TimeAdvance, 9)).unwrap();
    assert_eq!(granted(&h.callbacks(b)), Some(t(9)));
    assert_eq!(
        h.request(b, Request::QueryGalt),
        Ok(Response::Galt(Some(t(10))))
    );
    h.request(a, advance(AdvanceKind::TimeAdvance, 20)).unwrap();
    assert_eq!(
        h.request(b, Request::QueryGalt),
        Ok(Response::Galt(Some(t(21))))
    );
}

/// Event mode: with declared dynamics, lookaheads and TAR steps of coupled federates are
/// checked against alpha * 2 / |lambda_max|; uncoupled federates are not; the override lets
/// the step through.
#[test]
fn stability_rule_checks_steps_of_coupled_federates() {
    let mut h = Harness::new();
    h.create("grid", model());
    let ms = |m: u64| SimDuration::from_millis(m).unwrap();
    let grid = h.join("grid", "grid", Some(ms(100)), true);
    let meter = h.join("grid", "meter", None, true);
    let loner = h.join("grid", "loner", Some(ms(900)), false);
    let bus = ObjectClassHandle(0);
    h.request(
        grid,
        Request::PublishObjectClass {
            class: bus,
            attributes: vec![AttributeHandle(0)],
        },
    )
    .unwrap();
    h.request(
        meter,
        Request::SubscribeObjectClass {
            class: bus,
            attributes: vec![AttributeHandle(0)],
        },
    )
    .unwrap();
    // |lambda| = 5: bound 0.9 * 2 / 5 = 0.36 s.
    assert_eq!(
        h.request(
            grid,
            Request::DeclareDynamics {
                fastest_eigenvalue: -5.0,
                lock_step: false,
            }
        ),
        Ok(Response::Done)
    );
    let at = |m: i64| SimTime::from_millis(m).unwrap();
    // 0.2 s step + 0.1 s lookahead fits.
    assert_eq!(
        h.request(grid, advance(AdvanceKind::TimeAdvance, 0)),
        Ok(Response::Pending)
    );
    let _ = h.callbacks(grid);
    let refused = h.request(meter, Request::EnableTimeRegulation { lookahead: ms(400) });
    let Err(fedtwin_core::RtiError::Unstable(message)) = refused else {
        panic!("expected a stability refusal, got {refused:?}")
    };
    assert!(
        message.contains("`grid`") && message.contains("0.36s"),
        "{message}"
    );
    assert!(matches!(
        h.request(meter, Request::EnableTimeRegulation { lookahead: ms(100) }),
        Ok(Response::Regulation { .. })
    ));
    let refused = h.request(
        meter,
        Request::Advance {
            kind: AdvanceKind::TimeAdvance,
            time: at(300),
        },
    );
    assert!(
        matches!(refused, Err(fedtwin_core::RtiError::Unstable(_))),
        "{refused:?}"
    );
    assert_eq!(
        h.request(
            meter,
            Request::Advance {
                kind: AdvanceKind::TimeAdvance,
                time: at(200)
            }
        ),
        Ok(Response::Pending)
    );
    // Not coupled to `grid`: no check.
    assert_eq!(
        h.request(
            loner,
            Request::Advance {
                kind: AdvanceKind::TimeAdvance,
                time: at(5_000)
            }
        ),
        Ok(Response::Pending)
    );
    // The override lets an unstable lookahead through.
    assert!(matches!(
        h.request(
            grid,
            Request::SetStability {
                alpha: 0.0,
                override_stability: true
            }
        ),
        Err(fedtwin_core::RtiError::Unstable(_))
    ));
    h.request(
        grid,
        Request::SetStability {
            alpha: 0.9,
            override_stability: true,
        },
    )
    .unwrap();
    assert!(matches!(
        h.request(
            grid,
            Request::ModifyLookahead {
                lookahead: ms(2_000)
            }
        ),
        Ok(Response::Regulation { .. })
    ));
}

/// A lock-step federate's declaration is for its partners to ask for: the RTI refuses none of
/// its steps, nor any partner's, because of it.
#[test]
fn lock_step_dynamics_are_reported_to_coupled_federates_and_refuse_nothing() {
    let mut h = Harness::new();
    h.create("grid", model());
    let ms = |m: u64| SimDuration::from_millis(m).unwrap();
    let spring = h.join("grid", "spring", Some(ms(50)), true);
    let mass = h.join("grid", "mass", Some(ms(50)), true);
    let loner = h.join("grid", "loner", None, false);
    let bus = ObjectClassHandle(0);
    let declare = |lambda, lock_step| Request::DeclareDynamics {
        fastest_eigenvalue: lambda,
        lock_step,
    };
    assert_eq!(h.request(spring, declare(100.0, true)), Ok(Response::Done));
    assert_eq!(h.request(mass, declare(10.0, true)), Ok(Response::Done));
    let query = Request::QueryCoupledDynamics;
    // Not coupled yet: each sees its own.
    assert_eq!(
        h.request(mass, query.clone()),
        Ok(Response::CoupledDynamics(Some(("mass".into(), 10.0))))
    );
    assert_eq!(
        h.request(loner, query.clone()),
        Ok(Response::CoupledDynamics(None))
    );
    let publish = Request::PublishObjectClass {
        class: bus,
        attributes: vec![AttributeHandle(0)],
    };
    h.request(spring, publish).unwrap();
    let subscribe = Request::SubscribeObjectClass {
        class: bus,
        attributes: vec![AttributeHandle(0)],
    };
    h.request(mass, subscribe).unwrap();
    for federate in [mass, spring] {
        assert_eq!(
            h.request(federate, query.clone()),
            Ok(Response::CoupledDynamics(Some(("spring".into(), 100.0))))
        );
    }
    // 50 ms steps with 50 ms lookahead break 0.9 * 2 / 100 = 18 ms, but a lock-step
    // declaration refuses nothing: the adapters check themselves.
    let at = |m: i64| SimTime::from_millis(m).unwrap();
    let tar = |m| Request::Advance {
        kind: AdvanceKind::TimeAdvance,
        time: at(m),
    };
    assert_eq!(h.request(mass, tar(50)), Ok(Response::Pending));
    assert_eq!(h.request(spring, tar(50)), Ok(Response::Pending));
    // Declared again in event mode, the same numbers are checked and refused.
    let refused = h.request(mass, declare(100.0, false));
    assert!(
        matches!(refused, Err(fedtwin_core::RtiError::Unstable(_))),
        "{refused:?}"
    );
    assert_eq!(
        h.request(mass, query),
        Ok(Response::CoupledDynamics(Some(("spring".into(), 100.0))))
    );
    // An event-mode federate with fast dynamics coupled to the mass: its own steps are checked,
    // the lock-step mass's still are not (the refused declaration above left it lock-step).
    let grid = h.join("grid", "grid", Some(ms(5)), true);
    let subscribe = Request::SubscribeObjectClass {
        class: bus,
        attributes: vec![AttributeHandle(0)],
    };
    h.request(grid, subscribe).unwrap();
    let publish = Request::PublishObjectClass {
        class: bus,
        attributes: vec![AttributeHandle(0)],
    };
    h.request(mass, publish).unwrap();
    assert_eq!(h.request(grid, declare(100.0, false)), Ok(Response::Done));
    let _ = h.callbacks(mass);
    assert_eq!(h.request(mass, tar(100)), Ok(Response::Pending));
    let refused = h.request(grid, tar(50));
    assert!(
        matches!(refused, Err(fedtwin_core::RtiError::Unstable(_))),
        "{refused:?}"
    );
}
