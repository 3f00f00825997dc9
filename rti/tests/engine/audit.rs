//! Who the engine names as the actor of each audit event, whenever its driver drains them.

use std::time::Instant;

use fedtwin_core::ObjectModel;
use fedtwin_core::message::{ClientMessage, Request};
use fedtwin_rti::audit::{AuditEvent, AuditKind};
use fedtwin_rti::tls::{Identity, Role};
use fedtwin_rti::{ConnectionId, Engine, Peer};

fn peer(name: &str) -> Peer {
    Peer {
        identity: Some(Identity {
            name: name.to_owned(),
            role: Role::Admin,
        }),
        key_exchange: None,
    }
}

fn send(engine: &mut Engine, connection: u64, id: u64, request: Request) {
    engine.handle(
        Instant::now(),
        ConnectionId(connection),
        ClientMessage { id, request },
    );
    while engine.poll_transmit().is_some() {}
}

fn create() -> Request {
    Request::CreateFederation {
        federation: "f".into(),
        model: ObjectModel::new(),
        if_missing: false,
    }
}

fn join(federate: &str) -> Request {
    Request::Join {
        federation: "f".into(),
        federate: federate.into(),
    }
}

#[test]
fn each_event_names_the_identity_whose_call_caused_it_even_when_drained_late() {
    let mut engine = Engine::new();
    engine.connect_peer(ConnectionId(1), peer("alice")).unwrap();
    engine.connect(ConnectionId(2)).unwrap();
    engine.connect_peer(ConnectionId(3), peer("bob")).unwrap();
    // Nothing is drained until the end: an anonymous call in between must neither take a
    // name nor lend its absence of one to the calls around it.
    send(&mut engine, 1, 1, create());
    send(&mut engine, 1, 2, join("alice"));
    send(&mut engine, 2, 1, join("trusted"));
    send(&mut engine, 3, 1, join("bob"));
    send(&mut engine, 3, 2, Request::Resign);

    let events: Vec<AuditEvent> = std::iter::from_fn(|| engine.poll_audit()).collect();
    let joins: Vec<(Option<&str>, Option<&str>)> = events
        .iter()
        .filter(|e| e.kind == AuditKind::Join)
        .map(|e| (e.federate.as_deref(), e.identity.as_deref()))
        .collect();
    assert_eq!(
        joins,
        [
            (Some("alice"), Some("alice")),
            (Some("trusted"), None),
            (Some("bob"), Some("bob")),
        ],
        "{events:?}"
    );
    let resign = events.iter().find(|e| e.kind == AuditKind::Resign);
    assert_eq!(
        resign.and_then(|e| e.identity.as_deref()),
        Some("bob"),
        "{events:?}"
    );
}

/// Joining under another identity's name and changing a federation's stability rule are on
/// the record, with who tried or did it.
#[test]
fn impersonation_attempts_and_stability_changes_are_audited() {
    let mut engine = Engine::new();
    engine.connect_peer(ConnectionId(1), peer("alice")).unwrap();
    engine
        .connect_peer(ConnectionId(2), peer("mallory"))
        .unwrap();
    send(&mut engine, 1, 1, create());
    send(&mut engine, 1, 2, join("alice"));
    send(&mut engine, 2, 1, join("alice"));
    send(
        &mut engine,
        1,
        3,
        Request::SetStability {
            alpha: 0.5,
            override_stability: true,
        },
    );

    let events: Vec<AuditEvent> = std::iter::from_fn(|| engine.poll_audit()).collect();
    let denied = events
        .iter()
        .find(|e| e.kind == AuditKind::Denied)
        .unwrap_or_else(|| panic!("no denial in {events:?}"));
    assert_eq!(
        (denied.identity.as_deref(), denied.federation.as_deref()),
        (Some("mallory"), Some("f"))
    );
    assert!(denied.detail.contains("alice"), "{denied:?}");
    let changed = events
        .iter()
        .find(|e| e.kind == AuditKind::StabilityChanged)
        .unwrap_or_else(|| panic!("no stability change in {events:?}"));
    assert_eq!(
        (changed.identity.as_deref(), changed.federate.as_deref()),
        (Some("alice"), Some("alice"))
    );
    assert_eq!(changed.detail, "alpha 0.5, override true");
}

/// Without a policy the certificate's role decides administering: a federate may neither
/// destroy a federation nor change its stability rule, an admin may; each denial is recorded.
#[test]
fn without_a_policy_only_admins_administer() {
    use fedtwin_core::RtiError;
    use fedtwin_core::message::{Response, ServerMessage};

    let mut engine = Engine::new();
    let federate = Peer {
        identity: Some(Identity {
            name: "plant".to_owned(),
            role: Role::Federate,
        }),
        key_exchange: None,
    };
    engine.connect_peer(ConnectionId(1), federate).unwrap();
    engine.connect_peer(ConnectionId(2), peer("ops")).unwrap();
    let answer = |engine: &mut Engine, connection: u64, id: u64, request: Request| {
        engine.handle(
            Instant::now(),
            ConnectionId(connection),
            ClientMessage { id, request },
        );
        std::iter::from_fn(|| engine.poll_transmit())
            .find_map(|t| match t.message {
                ServerMessage::Response { id: i, result } if i == id => Some(result),
                _ => None,
            })
            .expect("an answer")
    };
    answer(&mut engine, 1, 1, create()).unwrap();
    answer(&mut engine, 1, 2, join("plant")).unwrap();
    let stability = Request::SetStability {
        alpha: 0.5,
        override_stability: true,
    };
    let denied = answer(&mut engine, 1, 3, stability).unwrap_err();
    assert!(matches!(denied, RtiError::Denied { .. }), "{denied}");
    let destroy = Request::DestroyFederation {
        federation: "f".into(),
    };
    let denied = answer(&mut engine, 1, 4, destroy.clone()).unwrap_err();
    assert!(
        denied.to_string().contains("`plant` may not administer"),
        "{denied}"
    );
    let denials = std::iter::from_fn(|| engine.poll_audit())
        .filter(|e| e.kind == AuditKind::Denied && e.identity.as_deref() == Some("plant"))
        .count();
    assert_eq!(denials, 2);

    // The admin may, once the federation is empty.
    answer(&mut engine, 1, 5, Request::Resign).unwrap();
    assert!(matches!(
        answer(&mut engine, 2, 1, destroy),
        Ok(Response::Done)
    ));
}
