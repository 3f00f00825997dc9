//! The SDK against a real embedded RTI: federates on their own threads and tasks.

use std::thread;

use federate_sdk::{
    Delivery, EmbeddedRti, Error, Federate, ObjectModel, Order, RtiError, SimDuration, SimTime,
    Values,
};

fn model() -> ObjectModel {
    ObjectModel::new()
        .with_object_class("Grid.Bus", ["voltage", "angle"])
        .with_interaction_class("Grid.Trip", ["breaker"])
}

fn secs(s: i64) -> SimTime {
    SimTime::from_secs(s).unwrap()
}

fn one_second() -> SimDuration {
    SimDuration::from_secs(1).unwrap()
}

/// A producer on one thread and a consumer on another, lock-stepping ten steps: the consumer
/// sees every value at the step it was stamped for, in timestamp order.
#[test]
fn blocking_federates_exchange_timestamped_values_on_threads() {
    let rti = EmbeddedRti::start().unwrap();
    let mut grid = Federate::builder("lockstep", "grid")
        .create_federation(model())
        .time_regulating(one_second())
        .time_constrained()
        .join_blocking(&rti)
        .unwrap();
    let mut meter = Federate::builder("lockstep", "meter")
        .create_federation(model())
        .time_regulating(one_second())
        .time_constrained()
        .join_blocking(&rti)
        .unwrap();
    grid.publish(&["Grid.Bus.voltage"]).unwrap();
    meter
        .subscribe(&["Grid.Bus.voltage", "Grid.Bus.angle"])
        .unwrap();
    let bus = grid.register_object("Grid.Bus", Some("bus1")).unwrap();

    let producer = thread::spawn(move || {
        for step in 0..10 {
            let at = grid.time().checked_add(one_second()).unwrap();
            let values = Values::new()
                .with("voltage", &(1.0 + f64::from(step) / 100.0))
                .unwrap();
            grid.update(&bus, values, Some(at)).unwrap();
            let grant = grid.step(one_second()).unwrap();
            assert_eq!(grant.time, at);
        }
        grid.resign().unwrap();
    });

    let mut seen = Vec::new();
    let mut discovered = false;
    for _ in 0..10 {
        let grant = meter.step(one_second()).unwrap();
        for delivery in grant.deliveries {
            match delivery {
                Delivery::Discovered { object, owner } => {
                    assert_eq!((&*object.name, &*owner), ("bus1", "grid"));
                    discovered = true;
                }
                Delivery::Reflection(r) => {
                    assert_eq!(r.order, Order::Timestamp);
                    assert_eq!(r.timestamp, Some(grant.time));
                    assert!(r.values.try_get::<f64>("angle").unwrap().is_none());
                    seen.push((grant.time, r.values.get::<f64>("voltage").unwrap()));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    producer.join().unwrap();
    assert!(discovered);
    let expected: Vec<(SimTime, f64)> = (0..10)
        .map(|s| (secs(s + 1), 1.0 + f64::from(s as i32) / 100.0))
        .collect();
    assert_eq!(seen, expected);
    meter.resign().unwrap();
}

/// The async API on a multi-threaded runtime: next-event stepping jumps to the next message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_next_event_jumps_to_the_next_interaction() {
    let rti = EmbeddedRti::start().unwrap();
    let mut breaker = Federate::builder("events", "breaker")
        .create_federation(model())
        .time_regulating(one_second())
        .join(&rti)
        .await
        .unwrap();
    let mut relay = Federate::builder("events", "relay")
        .create_federation(model())
        .time_constrained()
        .join(&rti)
        .await
        .unwrap();
    breaker.publish_interaction("Grid.Trip").await.unwrap();
    relay.subscribe_interaction("Grid.Trip").await.unwrap();
    let trip = Values::new().with("breaker", "B7").unwrap();
    breaker
        .send_interaction("Grid.Trip", trip, Some(secs(42)))
        .unwrap();
    breaker.advance_to(secs(100)).await.unwrap();

    let grant = relay.next_event(secs(1_000)).await.unwrap();
    assert_eq!(grant.time, secs(42));
    let trip = grant.interactions().next().unwrap();
    assert_eq!(trip.parameters.get::<String>("breaker").unwrap(), "B7");
    assert_eq!(&*trip.sender, "breaker");
    // Nothing else is queued, but the breaker may still send from 101 on: the relay waits
    // until the breaker leaves, then runs to its requested time.
    assert_eq!(relay.galt().await.unwrap(), Some(secs(101)));
    let (grant, resigned) = tokio::join!(relay.next_event(secs(1_000)), breaker.resign());
    resigned.unwrap();
    assert_eq!(grant.unwrap().time, secs(1_000));
}

#[test]
fn bad_input_gets_typed_errors() {
    let rti = EmbeddedRti::start().unwrap();
    let mut f = Federate::builder("errors", "f")
        .create_federation(model())
        .time_regulating(SimDuration::from_secs(5).unwrap())
        .join_blocking(&rti)
        .unwrap();

    // Unknown names are named.
    let err = f.publish(&["Grid.Bus.current"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "object class `Grid.Bus` has no attribute `current`"
    );
    assert!(matches!(
        f.publish_interaction("Grid.Close"),
        Err(Error::Model(_))
    ));

    // Sending what is not published.
    f.publish(&["Grid.Bus.voltage"]).unwrap();
    let bus = f.register_object("Grid.Bus", None).unwrap();
    let angle = Values::new().with("angle", &0.1).unwrap();
    assert!(matches!(
        f.update(&bus, angle, None),
        Err(Error::NotPublished(ref what)) if what == "Grid.Bus.angle"
    ));
    assert!(matches!(
        f.send_interaction("Grid.Trip", Values::new(), None),
        Err(Error::NotPublished(_))
    ));

    // Below the bound: refused with the call, with the RTI's own error.
    let v = Values::new().with("voltage", &1.0).unwrap();
    let err = f.update(&bus, v, Some(secs(4))).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused { source: RtiError::SendBelowBound { timestamp, bound }, .. }
                if timestamp == secs(4) && bound == secs(5)
        ),
        "{err}"
    );

    // A refusal only the RTI can see (a value given twice) comes back with the next call.
    f.publish_interaction("Grid.Trip").unwrap();
    let twice = Values::new()
        .with("breaker", "a")
        .unwrap()
        .with("breaker", "b")
        .unwrap();
    f.send_interaction("Grid.Trip", twice, None).unwrap();
    let err = f.galt().unwrap_err();
    assert!(
        matches!(
            err,
            Error::EarlierRefused {
                source: RtiError::DuplicateValue(_),
                ..
            }
        ),
        "{err}"
    );

    // Advancing into the past, and past the end of time.
    f.advance_to(secs(10)).unwrap();
    assert!(matches!(
        f.advance_to(secs(9)),
        Err(Error::Refused {
            source: RtiError::TimeInPast { .. },
            ..
        })
    ));
    assert!(matches!(
        f.step(SimDuration::from_ticks(u64::MAX)),
        Err(Error::Time(_))
    ));

    // The same name twice in a federation.
    let taken = Federate::builder("errors", "f")
        .join_blocking(&rti)
        .unwrap_err();
    assert!(matches!(
        taken,
        Error::Refused {
            source: RtiError::FederateNameInUse { .. },
            ..
        }
    ));
    // A federation that does not exist.
    let missing = Federate::builder("nowhere", "g")
        .join_blocking(&rti)
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "join refused: no federation named `nowhere`: create it first"
    );
}

/// A start barrier: nobody passes the synchronization point until everyone reached it.
#[test]
fn synchronization_point_releases_everyone_together() {
    let rti = EmbeddedRti::start().unwrap();
    let names = ["a", "b", "c"];
    let mut federates: Vec<_> = names
        .iter()
        .map(|n| {
            Federate::builder("sync", n)
                .create_federation(model())
                .join_blocking(&rti)
                .unwrap()
        })
        .collect();
    federates[0].register_sync_point("start", &[]).unwrap();
    let handles: Vec<_> = federates
        .into_iter()
        .map(|mut f| thread::spawn(move || f.synchronize("start").map(|()| f)))
        .collect();
    for handle in handles {
        handle.join().unwrap().unwrap().resign().unwrap();
    }
    let status = rti.status("sync").unwrap().unwrap();
    assert!(status.federates.is_empty() && status.sync_points.is_empty());
}

/// Dropping the RTI makes pending and later calls fail with a typed error, not hang.
#[test]
fn a_stopped_rti_is_reported_not_waited_for() {
    let rti = EmbeddedRti::start().unwrap();
    let mut f = Federate::builder("gone", "f")
        .create_federation(model())
        .join_blocking(&rti)
        .unwrap();
    drop(rti);
    assert!(matches!(f.advance_to(secs(1)), Err(Error::Disconnected)));
}

/// Whoever is missing from the start barrier — even the alphabetically first, which used to be
/// the only one to register it — every participant gives up in time, naming it.
#[test]
fn a_start_barrier_missing_its_first_participant_fails_in_time_naming_it() {
    let rti = EmbeddedRti::start().unwrap();
    let (done, results) = std::sync::mpsc::channel();
    for name in ["b", "c"] {
        let rti = rti.clone();
        let done = done.clone();
        thread::spawn(move || {
            let mut federate = Federate::builder("barrier", name)
                .create_federation(model())
                .join_blocking(&rti)
                .unwrap();
            let result = federate_sdk::hosted::start_barrier_within(
                &mut federate,
                &["a", "b", "c"],
                std::time::Duration::from_millis(300),
                |_| Ok(()),
            );
            done.send((name, result.map_err(|e| e.to_string())))
                .unwrap();
        });
    }
    for _ in 0..2 {
        let (name, result) = results
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a participant still waits at the barrier");
        let error = result.unwrap_err();
        assert!(error.contains("`a` did not join"), "{name}: {error}");
    }
}

/// A leftover point of the barrier's name without this federate among its members is never
/// announced to it: the barrier says so in time instead of waiting forever.
#[test]
fn a_start_barrier_behind_a_leftover_point_of_its_name_fails_in_time() {
    let rti = EmbeddedRti::start().unwrap();
    let join = |name: &str| {
        Federate::builder("leftover", name)
            .create_federation(model())
            .join_blocking(&rti)
            .unwrap()
    };
    let mut old = join("old");
    old.register_sync_point("ready", &["old"]).unwrap();
    let mut new = join("new");
    let error = federate_sdk::hosted::start_barrier_within(
        &mut new,
        &["new"],
        std::time::Duration::from_millis(300),
        |_| Ok(()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("`ready` point was not announced to `new`"),
        "{error}"
    );
    old.resign().unwrap();
}

/// A refused update not yet reported does not keep its federate from resigning: it leaves
/// (the others are not told it was lost, and go on) and the refusal comes back from `resign`.
#[test]
fn a_federate_resigns_even_with_a_refusal_still_to_report() {
    // Under `halt` a federate dropped without resigning would stop the federation.
    let rti = EmbeddedRti::start_with(fedtwin_rti::FaultSettings {
        on_federate_lost: fedtwin_core::LossPolicy::Halt,
        ..fedtwin_rti::FaultSettings::default()
    })
    .unwrap();
    let mut grid = Federate::builder("leaving", "grid")
        .create_federation(model())
        .time_regulating(one_second())
        .join_blocking(&rti)
        .unwrap();
    let mut meter = Federate::builder("leaving", "meter")
        .create_federation(model())
        .time_constrained()
        .join_blocking(&rti)
        .unwrap();
    grid.publish(&["Grid.Bus.voltage"]).unwrap();
    let bus = grid.register_object("Grid.Bus", None).unwrap();
    // The RTI refuses a value named twice; updates are only answered when refused.
    let twice = Values::new()
        .with("voltage", &1.0)
        .unwrap()
        .with("voltage", &2.0)
        .unwrap();
    grid.update(&bus, twice, None).unwrap();
    let error = grid.resign().unwrap_err();
    assert!(
        matches!(
            error,
            Error::EarlierRefused {
                source: RtiError::DuplicateValue(_),
                ..
            }
        ),
        "{error}"
    );
    let status = rti.status("leaving").unwrap().unwrap();
    let names: Vec<_> = status.federates.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["meter"]);
    assert_eq!(meter.advance_to(secs(5)).unwrap().time, secs(5));
    meter.resign().unwrap();
}

/// A label can serve again once its point completed: the second round waits for everyone
/// again instead of passing at once on the first round's completion.
#[test]
fn a_synchronization_label_can_be_used_for_a_second_round() {
    let rti = EmbeddedRti::start().unwrap();
    let mut a = Federate::builder("rounds", "a")
        .create_federation(model())
        .join_blocking(&rti)
        .unwrap();
    let mut b = Federate::builder("rounds", "b")
        .create_federation(model())
        .join_blocking(&rti)
        .unwrap();
    for round in 0..2 {
        a.register_sync_point("step", &["a", "b"]).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        let waiter = thread::spawn(move || {
            a.synchronize("step").unwrap();
            done.send(()).unwrap();
            a
        });
        // `b` has not reached the point: `a` must still be waiting.
        assert!(
            finished
                .recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "round {round}: `a` passed the point before `b` reached it"
        );
        b.synchronize("step").unwrap();
        finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        a = waiter.join().unwrap();
    }
    a.resign().unwrap();
    b.resign().unwrap();
}

/// A join refused after the federate is in (here its declared dynamics) leaves the federation
/// again: the others are not told it was lost, which under `halt` would stop them.
#[test]
fn a_join_refused_halfway_leaves_instead_of_being_lost() {
    let rti = EmbeddedRti::start_with(fedtwin_rti::FaultSettings {
        on_federate_lost: fedtwin_core::LossPolicy::Halt,
        ..fedtwin_rti::FaultSettings::default()
    })
    .unwrap();
    let mut grid = Federate::builder("halfway", "grid")
        .create_federation(model())
        .time_regulating(one_second())
        .time_constrained()
        .join_blocking(&rti)
        .unwrap();
    let refused = Federate::builder("halfway", "meter")
        .fastest_eigenvalue(f64::NAN)
        .time_regulating(one_second())
        .join_blocking(&rti)
        .unwrap_err();
    assert!(matches!(refused, Error::Refused { .. }), "{refused}");
    let status = rti.status("halfway").unwrap().unwrap();
    let names: Vec<_> = status.federates.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["grid"]);
    assert_eq!(grid.advance_to(secs(3)).unwrap().time, secs(3));
    // The name is free again.
    Federate::builder("halfway", "meter")
        .join_blocking(&rti)
        .unwrap()
        .resign()
        .unwrap();
    grid.resign().unwrap();
}

/// Values too large for one message are refused by the call that carries them, naming the
/// sizes, and nothing is sent: the federate goes on.
#[test]
fn values_too_large_for_a_message_are_refused_with_the_call() {
    let rti = EmbeddedRti::start().unwrap();
    let mut grid = Federate::builder("large", "grid")
        .create_federation(model())
        .join_blocking(&rti)
        .unwrap();
    grid.publish(&["Grid.Bus.voltage"]).unwrap();
    grid.publish_interaction("Grid.Trip").unwrap();
    let bus = grid.register_object("Grid.Bus", Some("bus1")).unwrap();
    let huge = vec![7u8; fedtwin_core::codec::MAX_VALUE_BYTES + 1];
    let values = Values::new().with("voltage", &huge).unwrap();
    let error = grid.update(&bus, values, None).unwrap_err();
    assert!(
        matches!(error, Error::TooLarge { bytes, max, .. } if bytes > max),
        "{error}"
    );
    assert!(error.to_string().contains("`bus1`"), "{error}");
    let parameters = Values::new().with("breaker", &huge).unwrap();
    let error = grid
        .send_interaction("Grid.Trip", parameters, None)
        .unwrap_err();
    assert!(matches!(error, Error::TooLarge { .. }), "{error}");
    // A value that fits still goes.
    let fits = Values::new().with("voltage", &1.0).unwrap();
    grid.update(&bus, fits, None).unwrap();
    grid.resign().unwrap();
}
