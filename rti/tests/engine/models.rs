//! Object models brought by several parties: the federation's model grows, handles stay.

use fedtwin_core::message::{Callback, Request, Response};
use fedtwin_core::model::{AttributeHandle, ObjectClassHandle, ParameterHandle};
use fedtwin_core::{ObjectModel, RtiError};
use fedtwin_rti::ConnectionId;

use crate::harness::Harness;

fn create(model: ObjectModel, if_missing: bool) -> Request {
    Request::CreateFederation {
        federation: "grid".into(),
        model,
        if_missing,
    }
}

fn join(h: &mut Harness, c: ConnectionId, name: &str) -> ObjectModel {
    match h.request(
        c,
        Request::Join {
            federation: "grid".into(),
            federate: name.into(),
        },
    ) {
        Ok(Response::Joined { model, .. }) => model,
        other => panic!("join of {name}: {other:?}"),
    }
}

fn utility_model() -> ObjectModel {
    ObjectModel::new()
        .with_object_class("Grid.Bus", ["voltage"])
        .with_interaction_class("Grid.Trip", ["breaker"])
}

fn charging_model() -> ObjectModel {
    ObjectModel::new()
        .with_object_class("Ev.Charger", ["kw"])
        .with_object_class("Grid.Bus", ["voltage", "angle"])
        .with_interaction_class("Grid.Trip", ["breaker", "reason"])
}

#[test]
fn a_later_party_extends_the_model_and_earlier_federates_keep_their_handles() {
    let mut h = Harness::new();
    let utility = h.connect();
    assert_eq!(
        h.request(utility, create(utility_model(), true)),
        Ok(Response::Done)
    );
    assert_eq!(join(&mut h, utility, "utility"), utility_model());

    let charging = h.connect();
    assert_eq!(
        h.request(charging, create(charging_model(), true)),
        Ok(Response::Done)
    );
    let merged = join(&mut h, charging, "charging");
    assert_eq!(
        merged,
        ObjectModel::new()
            .with_object_class("Grid.Bus", ["voltage", "angle"])
            .with_object_class("Ev.Charger", ["kw"])
            .with_interaction_class("Grid.Trip", ["breaker", "reason"])
    );
    // Creating again with a part of the model, or all of it, changes nothing; creating
    // without `if_missing` is still refused.
    assert_eq!(
        h.request(utility, create(utility_model(), true)),
        Ok(Response::Done)
    );
    assert_eq!(
        h.request(charging, create(ObjectModel::new(), true)),
        Ok(Response::Done)
    );
    assert_eq!(
        h.request(charging, create(charging_model(), false)),
        Err(RtiError::FederationExists("grid".into()))
    );
    let late = h.connect();
    assert_eq!(join(&mut h, late, "late"), merged);

    // The utility publishes the bus with the handles it was given; the charging federate
    // subscribes to the attribute the utility does not know.
    let bus = ObjectClassHandle(0);
    let publish = Request::PublishObjectClass {
        class: bus,
        attributes: vec![AttributeHandle(0)],
    };
    assert_eq!(h.request(utility, publish), Ok(Response::Done));
    let subscribe = Request::SubscribeObjectClass {
        class: bus,
        attributes: vec![AttributeHandle(0), AttributeHandle(1)],
    };
    assert_eq!(h.request(charging, subscribe), Ok(Response::Done));
    let registered = h.request(
        utility,
        Request::RegisterObject {
            class: bus,
            name: Some("bus1".into()),
        },
    );
    let Ok(Response::ObjectRegistered { object, .. }) = registered else {
        panic!("register: {registered:?}");
    };
    let update = Request::UpdateAttributes {
        object,
        values: vec![(AttributeHandle(0), vec![1].into())],
        timestamp: None,
    };
    assert_eq!(h.request(utility, update), Ok(Response::Done));
    let reflected = h.callbacks(charging);
    assert!(
        reflected.iter().any(|c| matches!(
            c,
            Callback::Reflect { values, .. } if values.len() == 1 && values[0].0 == AttributeHandle(0)
        )),
        "{reflected:?}"
    );

    // An interaction with a parameter the utility joined too early to know reaches it
    // without that parameter, and reaches a later joiner whole.
    let trip = fedtwin_core::model::InteractionClassHandle(0);
    for c in [utility, late] {
        let subscribed = h.request(c, Request::SubscribeInteraction { class: trip });
        assert_eq!(subscribed, Ok(Response::Done));
    }
    let published = h.request(charging, Request::PublishInteraction { class: trip });
    assert_eq!(published, Ok(Response::Done));
    let send = Request::SendInteraction {
        class: trip,
        parameters: vec![
            (ParameterHandle(0), vec![7].into()),
            (ParameterHandle(1), vec![8].into()),
        ],
        timestamp: None,
    };
    assert_eq!(h.request(charging, send), Ok(Response::Done));
    let mut parameters = |c| -> Vec<Vec<ParameterHandle>> {
        h.callbacks(c)
            .into_iter()
            .filter_map(|callback| match callback {
                Callback::ReceiveInteraction { parameters, .. } => {
                    Some(parameters.into_iter().map(|(p, _)| p).collect())
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(parameters(utility), [vec![ParameterHandle(0)]]);
    assert_eq!(
        parameters(late),
        [vec![ParameterHandle(0), ParameterHandle(1)]]
    );
}

#[test]
fn a_merge_that_would_make_the_model_too_large_is_refused_and_changes_nothing() {
    let mut h = Harness::new();
    let c = h.connect();
    let names = |prefix: &'static str, n: usize| (0..n).map(move |i| format!("{prefix}{i}"));
    let big = ObjectModel::new().with_object_class("Grid.Bus", names("a", 60_000));
    assert_eq!(h.request(c, create(big.clone(), true)), Ok(Response::Done));
    let more = ObjectModel::new().with_object_class("Grid.Bus", names("b", 6_000));
    let refused = h.request(c, create(more, true));
    assert!(
        matches!(&refused, Err(RtiError::InvalidObjectModel(m)) if m.contains("at most 65536")),
        "{refused:?}"
    );
    assert_eq!(join(&mut h, c, "after"), big);
}
