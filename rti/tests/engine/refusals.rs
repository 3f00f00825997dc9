//! Every refusal is typed, names what was wrong, and changes nothing.

use fedtwin_core::message::{AdvanceKind, Callback, Order, Payload, Request, Response};
use fedtwin_core::model::{
    AttributeHandle, InteractionClassHandle, ObjectClassHandle, ObjectInstanceHandle,
    ParameterHandle,
};
use fedtwin_core::{ObjectModel, RtiError, SimDuration, SimTime};

use crate::harness::Harness;

fn model() -> ObjectModel {
    ObjectModel::new()
        .with_object_class("Grid.Bus", ["voltage", "angle"])
        .with_interaction_class("Grid.Trip", ["breaker"])
}

fn t(ticks: i64) -> SimTime {
    SimTime::from_ticks(ticks)
}

fn lookahead(ticks: u64) -> Option<SimDuration> {
    Some(SimDuration::from_ticks(ticks))
}

const BUS: ObjectClassHandle = ObjectClassHandle(0);
const VOLTAGE: AttributeHandle = AttributeHandle(0);
const ANGLE: AttributeHandle = AttributeHandle(1);
const TRIP: InteractionClassHandle = InteractionClassHandle(0);
const BREAKER: ParameterHandle = ParameterHandle(0);

fn trip(timestamp: Option<SimTime>) -> Request {
    Request::SendInteraction {
        class: TRIP,
        parameters: vec![(BREAKER, Payload::from(vec![1]))],
        timestamp,
    }
}

#[test]
fn send_below_bound_is_refused_and_delivers_nothing() {
    let mut h = Harness::new();
    h.create("grid", model());
    let sender = h.join("grid", "sender", lookahead(5), true);
    let receiver = h.join("grid", "receiver", None, true);
    h.request(sender, Request::PublishInteraction { class: TRIP })
        .unwrap();
    h.request(receiver, Request::SubscribeInteraction { class: TRIP })
        .unwrap();

    assert_eq!(
        h.request(sender, trip(Some(t(4)))),
        Err(RtiError::SendBelowBound {
            timestamp: t(4),
            bound: t(5)
        })
    );
    h.request(
        receiver,
        Request::Advance {
            kind: AdvanceKind::TimeAdvance,
            time: t(100),
        },
    )
    .unwrap();
    assert!(
        h.callbacks(receiver).is_empty(),
        "nothing may arrive before the sender moves"
    );

    // At the bound the send is accepted and delivered in timestamp order before the grant.
    assert_eq!(h.request(sender, trip(Some(t(5)))), Ok(Response::Done));
    h.request(
        sender,
        Request::Advance {
            kind: AdvanceKind::TimeAdvance,
            time: t(200),
        },
    )
    .unwrap();
    let delivered = h.callbacks(receiver);
    assert!(
        matches!(
            delivered.as_slice(),
            [
                Callback::ReceiveInteraction { timestamp: Some(ts), order: Order::Timestamp, .. },
                Callback::TimeAdvanceGrant { time, .. },
            ] if *ts == t(5) && *time == t(100)
        ),
        "{delivered:?}"
    );
}

#[test]
fn joining_twice_is_refused() {
    let mut h = Harness::new();
    h.create("grid", model());
    let first = h.join("grid", "pv", None, false);
    let join = |name: &str| Request::Join {
        federation: "grid".into(),
        federate: name.into(),
    };
    assert_eq!(
        h.request(first, join("other")),
        Err(RtiError::AlreadyJoined("grid".into()))
    );
    let second = h.connect();
    assert_eq!(
        h.request(second, join("pv")),
        Err(RtiError::FederateNameInUse {
            federation: "grid".into(),
            federate: "pv".into()
        })
    );
    assert_eq!(
        h.request(
            second,
            Request::Join {
                federation: "nope".into(),
                federate: "x".into()
            }
        ),
        Err(RtiError::FederationNotFound("nope".into()))
    );
    assert_eq!(
        h.request(second, join(" padded")),
        Err(RtiError::InvalidName(" padded".into()))
    );
    // After a resign the name is free again.
    h.request(first, Request::Resign).unwrap();
    assert!(matches!(
        h.request(second, join("pv")),
        Ok(Response::Joined { .. })
    ));
}

#[test]
fn unknown_classes_and_attributes_are_refused() {
    let mut h = Harness::new();
    h.create("grid", model());
    let c = h.join("grid", "pv", None, false);
    let refused = h.request(
        c,
        Request::PublishObjectClass {
            class: ObjectClassHandle(7),
            attributes: vec![VOLTAGE],
        },
    );
    assert!(
        matches!(refused, Err(RtiError::UnknownHandle { ref kind, .. }) if kind == "object class")
    );
    let refused = h.request(
        c,
        Request::SubscribeObjectClass {
            class: BUS,
            attributes: vec![AttributeHandle(9)],
        },
    );
    assert!(
        matches!(refused, Err(RtiError::UnknownHandle { ref kind, .. }) if kind == "attribute")
    );
    let refused = h.request(
        c,
        Request::PublishInteraction {
            class: InteractionClassHandle(3),
        },
    );
    assert!(matches!(refused, Err(RtiError::UnknownHandle { .. })));
}

#[test]
fn advancing_while_advancing_is_refused() {
    let mut h = Harness::new();
    h.create("grid", model());
    let a = h.join("grid", "a", lookahead(1), true);
    let _b = h.join("grid", "b", lookahead(1), true);
    h.request(
        a,
        Request::Advance {
            kind: AdvanceKind::TimeAdvance,
            time: t(10),
        },
    )
    .unwrap();
    assert_eq!(
        h.request(
            a,
            Request::Advance {
                kind: AdvanceKind::NextEvent,
                time: t(20)
            }
        ),
        Err(RtiError::AdvancePending(AdvanceKind::TimeAdvance))
    );
    assert!(matches!(
        h.request(
            a,
            Request::EnableTimeRegulation {
                lookahead: SimDuration::ZERO
            }
        ),
        Err(RtiError::AlreadyEnabled(_))
    ));
}

#[test]
fn advancing_into_the_past_is_refused() {
    let mut h = Harness::new();
    h.create("grid", model());
    let a = h.join("grid", "a", None, false);
    h.request(
        a,
        Request::Advance {
            kind: AdvanceKind::TimeAdvance,
            time: t(10),
        },
    )
    .unwrap();
    assert!(matches!(
        h.callbacks(a).as_slice(),
        [Callback::TimeAdvanceGrant { .. }]
    ));
    assert_eq!(
        h.request(
            a,
            Request::Advance {
                kind: AdvanceKind::TimeAdvance,
                time: t(9)
            }
        ),
        Err(RtiError::TimeInPast {
            requested: t(9),
            current: t(10)
        })
    );
}

#[test]
fn requests_before_join_are_refused() {
    let mut h = Harness::new();
    h.create("grid", model());
    let c = h.connect();
    assert_eq!(
        h.request(c, Request::PublishInteraction { class: TRIP }),
        Err(RtiError::NotJoined("publish interaction".into()))
    );
    assert_eq!(
        h.request(c, Request::Resign),
        Err(RtiError::NotJoined("resign".into()))
    );
}

#[test]
fn object_ownership_and_publication_are_enforced() {
    let mut h = Harness::new();
    h.create("grid", model());
    let owner = h.join("grid", "owner", None, false);
    let other = h.join("grid", "other", None, false);
    assert_eq!(
        h.request(
            owner,
            Request::RegisterObject {
                class: BUS,
                name: None
            }
        ),
        Err(RtiError::NotPublished("Grid.Bus".into()))
    );
    h.request(
        owner,
        Request::PublishObjectClass {
            class: BUS,
            attributes: vec![VOLTAGE],
        },
    )
    .unwrap();
    let Ok(Response::ObjectRegistered { object, name }) = h.request(
        owner,
        Request::RegisterObject {
            class: BUS,
            name: Some("bus1".into()),
        },
    ) else {
        panic!("registration failed");
    };
    assert_eq!(name, "bus1");
    assert_eq!(
        h.request(
            owner,
            Request::RegisterObject {
                class: BUS,
                name: Some("bus1".into())
            }
        ),
        Err(RtiError::ObjectNameInUse("bus1".into()))
    );
    let update = |attribute| Request::UpdateAttributes {
        object,
        values: vec![(attribute, Payload::from(vec![0]))],
        timestamp: None,
    };
    assert_eq!(
        h.request(owner, update(ANGLE)),
        Err(RtiError::NotPublished("Grid.Bus.angle".into()))
    );
    assert_eq!(
        h.request(other, update(VOLTAGE)),
        Err(RtiError::NotOwner {
            object: "bus1".into(),
            owner: "owner".into()
        })
    );
    let twice = Request::UpdateAttributes {
        object,
        values: vec![(VOLTAGE, Payload::default()), (VOLTAGE, Payload::default())],
        timestamp: None,
    };
    assert_eq!(
        h.request(owner, twice),
        Err(RtiError::DuplicateValue("Grid.Bus.voltage".into()))
    );
    assert_eq!(
        h.request(
            owner,
            Request::DeleteObject {
                object: ObjectInstanceHandle(99),
                timestamp: None
            }
        ),
        Err(RtiError::ObjectNotFound("object#99".into()))
    );
}

#[test]
fn federation_lifecycle_refusals() {
    let mut h = Harness::new();
    h.create("grid", model());
    let c = h.connect();
    let create = |if_missing, model| Request::CreateFederation {
        federation: "grid".into(),
        model,
        if_missing,
    };
    assert_eq!(
        h.request(c, create(false, model())),
        Err(RtiError::FederationExists("grid".into()))
    );
    assert_eq!(h.request(c, create(true, model())), Ok(Response::Done));
    // A model that adds nothing is no change (merging is tested in `models`).
    assert_eq!(
        h.request(c, create(true, ObjectModel::new())),
        Ok(Response::Done)
    );
    let bad_model = ObjectModel::new().with_object_class("A", ["x", "x"]);
    let refused = h.request(
        c,
        Request::CreateFederation {
            federation: "other".into(),
            model: bad_model,
            if_missing: false,
        },
    );
    assert!(matches!(refused, Err(RtiError::InvalidObjectModel(_))));

    let _pv = h.join("grid", "pv", None, false);
    assert_eq!(
        h.request(
            c,
            Request::DestroyFederation {
                federation: "grid".into()
            }
        ),
        Err(RtiError::FederatesStillJoined {
            federation: "grid".into(),
            federates: vec!["pv".into()]
        })
    );
    assert_eq!(
        h.request(
            c,
            Request::DestroyFederation {
                federation: "none".into()
            }
        ),
        Err(RtiError::FederationNotFound("none".into()))
    );
}

#[test]
fn synchronization_point_refusals() {
    let mut h = Harness::new();
    h.create("grid", model());
    let a = h.join("grid", "a", None, false);
    let register = |label: &str, federates: Vec<String>| Request::RegisterSyncPoint {
        label: label.into(),
        tag: Payload::default(),
        federates,
    };
    assert_eq!(
        h.request(a, register("start", vec!["ghost".into()])),
        Err(RtiError::FederateNotFound("ghost".into()))
    );
    h.request(a, register("start", vec![])).unwrap();
    assert_eq!(
        h.request(a, register("start", vec![])),
        Err(RtiError::SyncPointExists("start".into()))
    );
    assert_eq!(
        h.request(
            a,
            Request::AchieveSyncPoint {
                label: "nope".into()
            }
        ),
        Err(RtiError::SyncPointNotFound("nope".into()))
    );
}
