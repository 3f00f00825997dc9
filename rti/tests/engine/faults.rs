//! Lost federates under each loss policy, and the stall alarm, with a simulated clock.

use std::collections::BTreeMap;
use std::time::Duration;

use fedtwin_core::message::{AdvanceKind, Callback, Request, Response};
use fedtwin_core::{LossPolicy, ObjectModel, RtiError, SimDuration, SimTime};
use fedtwin_rti::FaultSettings;
use fedtwin_rti::audit::AuditKind;

use crate::harness::Harness;

fn model() -> ObjectModel {
    ObjectModel::new().with_interaction_class("Ping", ["n"])
}

fn advance(ticks: i64) -> Request {
    Request::Advance {
        kind: AdvanceKind::TimeAdvance,
        time: SimTime::from_ticks(ticks),
    }
}

fn granted(callbacks: &[Callback]) -> Option<SimTime> {
    callbacks.iter().find_map(|c| match c {
        Callback::TimeAdvanceGrant { time, .. } => Some(*time),
        _ => None,
    })
}

/// A harness with `settings`, federation `name` and regulating, constrained federates `a` and
/// `b` (lookahead 10 ticks); `b` waits for a grant at 100 that `a` holds back.
fn waiting_pair(
    settings: FaultSettings,
    name: &str,
) -> (
    Harness,
    fedtwin_rti::ConnectionId,
    fedtwin_rti::ConnectionId,
) {
    let mut h = Harness::new();
    h.engine.set_fault_settings(settings);
    h.create(name, model());
    let lookahead = Some(SimDuration::from_ticks(10));
    let a = h.join(name, "a", lookahead, true);
    let b = h.join(name, "b", lookahead, true);
    assert_eq!(h.request(b, advance(100)), Ok(Response::Pending));
    assert_eq!(granted(&h.callbacks(b)), None, "a holds b back");
    (h, a, b)
}

/// Disconnects `connection` and returns the kinds of the audit events that caused.
fn lose(h: &mut Harness, connection: fedtwin_rti::ConnectionId) -> Vec<AuditKind> {
    h.engine.disconnect(h.now, connection);
    let mut kinds = Vec::new();
    while let Some(event) = h.engine.poll_audit() {
        kinds.push(event.kind);
    }
    h.drain();
    kinds
}

#[test]
fn under_resign_the_others_are_told_and_time_goes_on() {
    let (mut h, a, b) = waiting_pair(FaultSettings::default(), "f");
    assert_eq!(lose(&mut h, a), vec![AuditKind::Lost]);

    let callbacks = h.callbacks(b);
    let lost = callbacks
        .iter()
        .position(|c| matches!(c, Callback::FederateLost { federate, .. } if federate == "a"));
    let grant = callbacks
        .iter()
        .position(|c| matches!(c, Callback::TimeAdvanceGrant { .. }));
    assert!(
        lost.is_some() && lost < grant,
        "told, then granted: {callbacks:?}"
    );
    assert_eq!(granted(&callbacks), Some(SimTime::from_ticks(100)));
    assert_eq!(h.request(b, Request::QueryGalt), Ok(Response::Galt(None)));
}

#[test]
fn under_halt_every_later_request_is_refused_but_resigning_and_destroying_work() {
    let settings = FaultSettings {
        on_federate_lost: LossPolicy::Halt,
        ..FaultSettings::default()
    };
    let (mut h, a, b) = waiting_pair(settings, "f");
    assert_eq!(lose(&mut h, a), vec![AuditKind::Lost]);

    let callbacks = h.callbacks(b);
    assert_eq!(
        granted(&callbacks),
        None,
        "a halted federation grants nothing"
    );
    let reason = callbacks
        .iter()
        .find_map(|c| match c {
            Callback::FederationHalted { reason } => Some(reason.clone()),
            _ => None,
        })
        .expect("b is told the federation halted");
    assert!(reason.contains("`a`"), "{reason}");

    let refused = h.request(b, Request::QueryGalt).unwrap_err();
    assert!(matches!(&refused, RtiError::FederationHalted(r) if r == &reason));
    let message = refused.to_string();
    assert!(
        message.contains("`a`") && message.contains("resign"),
        "{message}"
    );
    let late = h.connect();
    let join = Request::Join {
        federation: "f".into(),
        federate: "c".into(),
    };
    assert!(matches!(
        h.request(late, join),
        Err(RtiError::FederationHalted(_))
    ));

    assert_eq!(h.request(b, Request::Resign), Ok(Response::Done));
    let destroy = Request::DestroyFederation {
        federation: "f".into(),
    };
    assert_eq!(h.request(late, destroy), Ok(Response::Done));
}

#[test]
fn a_federation_override_beats_the_default_policy() {
    let settings = FaultSettings {
        on_federate_lost: LossPolicy::Halt,
        per_federation: BTreeMap::from([("lab".to_owned(), LossPolicy::Resign)]),
        ..FaultSettings::default()
    };
    let (mut h, a, b) = waiting_pair(settings, "lab");
    lose(&mut h, a);
    let callbacks = h.callbacks(b);
    assert!(
        callbacks
            .iter()
            .any(|c| matches!(c, Callback::FederateLost { .. })),
        "{callbacks:?}"
    );
    assert_eq!(granted(&callbacks), Some(SimTime::from_ticks(100)));
}

#[test]
fn a_stall_is_reported_once_and_rearmed_by_the_next_grant() {
    let start = std::time::Instant::now();
    let (mut h, a, _b) = {
        let mut h = Harness::new();
        h.now = start;
        h.engine.set_fault_settings(FaultSettings::default());
        h.create("f", model());
        let lookahead = Some(SimDuration::from_ticks(10));
        let a = h.join("f", "a", lookahead, true);
        let b = h.join("f", "b", lookahead, true);
        assert_eq!(
            h.engine.poll_timeout(),
            None,
            "nobody advances: nothing can stall"
        );
        h.request(b, advance(100)).unwrap();
        (h, a, b)
    };
    let s = Duration::from_secs;
    assert_eq!(h.engine.poll_timeout(), Some(start + s(30)));
    h.engine.handle_timeout(start + s(29));
    assert_eq!(h.engine.poll_stall_report(), None);

    h.engine.handle_timeout(start + s(30));
    let report = h.engine.poll_stall_report().expect("a stall is reported");
    assert_eq!(report.federation, "f");
    assert_eq!(report.waits.len(), 1);
    assert_eq!(report.chain("b"), vec!["b", "a"]);
    let text = report.to_string();
    assert!(
        text.contains("b waits on") && text.contains("held by a"),
        "{text}"
    );
    assert_eq!(h.engine.poll_stall_report(), None);

    // Once per stall.
    h.engine.handle_timeout(start + s(60));
    assert_eq!(h.engine.poll_stall_report(), None);
    assert_eq!(h.engine.poll_timeout(), None);

    // A grant re-arms the alarm, counted from the grant.
    h.now = start + s(61);
    h.request(a, advance(5)).unwrap();
    assert_eq!(granted(&h.callbacks(a)), Some(SimTime::from_ticks(5)));
    assert_eq!(h.engine.poll_timeout(), Some(start + s(91)));
    h.engine.handle_timeout(start + s(90));
    assert_eq!(h.engine.poll_stall_report(), None);
    h.engine.handle_timeout(start + s(91));
    assert!(h.engine.poll_stall_report().is_some());
}

#[test]
fn a_deadlock_is_reported_with_its_cycle_and_no_setting_means_no_report() {
    let mut h = Harness::new();
    h.create("zero", model());
    let a = h.join("zero", "a", Some(SimDuration::ZERO), true);
    let b = h.join("zero", "b", Some(SimDuration::ZERO), true);
    h.request(a, advance(1)).unwrap();
    h.request(b, advance(1)).unwrap();
    h.engine.handle_timeout(h.now + Duration::from_secs(31));
    let report = h
        .engine
        .poll_stall_report()
        .expect("the deadlock is reported");
    assert_eq!(report.cycle, Some(vec!["a".to_owned(), "b".to_owned()]));
    assert!(report.to_string().contains("wait-for cycle: a -> b -> a"));

    let mut quiet = Harness::new();
    quiet.engine.set_fault_settings(FaultSettings {
        stall_after: None,
        ..FaultSettings::default()
    });
    quiet.create("zero", model());
    let a = quiet.join("zero", "a", Some(SimDuration::ZERO), true);
    quiet.request(a, advance(1)).unwrap();
    let b = quiet.join("zero", "b", Some(SimDuration::ZERO), true);
    quiet.request(b, advance(1)).unwrap();
    quiet
        .engine
        .handle_timeout(quiet.now + Duration::from_secs(3600));
    assert_eq!(quiet.engine.poll_timeout(), None);
    assert_eq!(quiet.engine.poll_stall_report(), None);
}
