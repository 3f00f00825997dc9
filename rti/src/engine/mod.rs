//! The federation engine: a sans-IO state machine.
//!
//! The engine owns no socket, thread or clock. A driver tells it that a connection opened
//! ([`Engine::connect`]), hands it each decoded message with the current instant
//! ([`Engine::handle`]) and reports closed connections ([`Engine::disconnect`]); after each
//! call it drains [`Engine::poll_transmit`] and sends what comes out. The same engine therefore
//! runs behind in-process channels, behind QUIC and inside deterministic tests.
//!
//! Every request is answered exactly once, in the order received (best-effort messages, with id
//! [`ClientMessage::BEST_EFFORT`], not at all); callbacks caused by a request
//! are queued in a deterministic order that depends only on the inputs.

mod federation;
mod time;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedtwin_core::message::{Callback, ClientMessage, Request, Response, ServerMessage};
use fedtwin_core::{LossPolicy, ObjectModel, RtiError};
use tracing::{debug, info, warn};

use crate::audit::{AuditEvent, AuditKind};
use crate::policy::{Permission, Policy};
use crate::tls::Identity;

use federation::{Federation, valid_name};
use fedtwin_core::status::{FederationStatus, StallReport};
use time::FederateId;

/// A driver's name for one federate connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// A message for the driver to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    /// To whom.
    pub connection: ConnectionId,
    /// What.
    pub message: ServerMessage,
}

/// Messages waiting for the driver, and audit events for it to record.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    transmits: VecDeque<Transmit>,
    audit: VecDeque<AuditEvent>,
}

impl Outbox {
    /// Moves everything `other` holds to the end of this one.
    fn append(&mut self, other: &mut Outbox) {
        self.transmits.append(&mut other.transmits);
        self.audit.append(&mut other.audit);
    }

    pub(crate) fn audit(
        &mut self,
        kind: AuditKind,
        federation: &str,
        federate: Option<&str>,
        detail: String,
    ) {
        self.audit.push_back(AuditEvent {
            kind,
            identity: None,
            federation: Some(federation.to_owned()),
            federate: federate.map(str::to_owned),
            detail,
        });
    }

    pub(crate) fn push(&mut self, connection: ConnectionId, callback: Callback) {
        self.transmits.push_back(Transmit {
            connection,
            message: ServerMessage::Callback(callback),
        });
    }

    fn respond(&mut self, connection: ConnectionId, id: u64, result: Result<Response, RtiError>) {
        if id == ClientMessage::BEST_EFFORT {
            // Nobody waits for this answer; a refusal has been logged already.
            return;
        }
        self.transmits.push_back(Transmit {
            connection,
            message: ServerMessage::Response { id, result },
        });
    }
}

#[derive(Debug, Default)]
struct Session {
    joined: Option<(u64, FederateId)>,
    /// Shared so that handling a request does not copy the identity's strings.
    peer: Arc<Peer>,
}

/// Who is at the other end of a connection, as the transport established it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// Identity from the verified certificate; `None` for a trusted in-process connection.
    pub identity: Option<Identity>,
    /// The TLS key exchange group, for status displays.
    pub key_exchange: Option<String>,
}

/// Refusal of a driver call (not of a federate's request: those are answered on the wire).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The driver used a connection id twice.
    #[error("connection {0:?} is already open")]
    ConnectionExists(ConnectionId),
}

/// How the engine reacts to faults: lost federates and stalled federations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSettings {
    /// What happens to a federation whose federate is lost, unless overridden below.
    pub on_federate_lost: LossPolicy,
    /// Per-federation overrides of `on_federate_lost`, by federation name.
    pub per_federation: BTreeMap<String, LossPolicy>,
    /// A federation with advancing federates that grants nothing for this long is reported
    /// once (see [`Engine::poll_stall_report`]); `None` reports nothing.
    pub stall_after: Option<Duration>,
}

impl FaultSettings {
    /// The default time without a grant after which a federation is reported as stalled.
    pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(30);

    /// The loss policy of federation `federation`.
    pub fn loss_policy(&self, federation: &str) -> LossPolicy {
        self.per_federation
            .get(federation)
            .copied()
            .unwrap_or(self.on_federate_lost)
    }
}

impl Default for FaultSettings {
    fn default() -> Self {
        Self {
            on_federate_lost: LossPolicy::Resign,
            per_federation: BTreeMap::new(),
            stall_after: Some(Self::DEFAULT_STALL_AFTER),
        }
    }
}

/// The federation engine. See the module documentation.
#[derive(Debug, Default)]
pub struct Engine {
    federations: HashMap<u64, Federation>,
    /// Names to keys, ordered so that listings are deterministic.
    names: BTreeMap<String, u64>,
    next_federation: u64,
    sessions: HashMap<ConnectionId, Session>,
    /// `None`: every authenticated identity may do everything.
    policy: Option<Policy>,
    outbox: Outbox,
    /// Callbacks produced while handling a request, queued after its response.
    scratch: Outbox,
    faults: FaultSettings,
    /// Stall reports for the driver to log, oldest first.
    stalls: VecDeque<StallReport>,
}

impl Engine {
    /// An engine with no federations.
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine that checks every authenticated call against `policy` (default deny).
    pub fn with_policy(policy: Policy) -> Self {
        Self {
            policy: Some(policy),
            ..Self::default()
        }
    }

    /// Replaces the fault settings. Federations already halted stay halted.
    pub fn set_fault_settings(&mut self, settings: FaultSettings) {
        self.faults = settings;
    }

    /// The fault settings in force.
    pub fn fault_settings(&self) -> &FaultSettings {
        &self.faults
    }

    /// A trusted in-process connection opened (no identity, no checks). The driver chooses
    /// unique ids.
    ///
    /// # Errors
    ///
    /// [`EngineError::ConnectionExists`] if `connection` is already open.
    pub fn connect(&mut self, connection: ConnectionId) -> Result<(), EngineError> {
        self.connect_peer(connection, Peer::default())
    }

    /// A connection from an authenticated peer opened. Calls from it are checked against the
    /// policy, and it may join only under its certificate's name.
    ///
    /// # Errors
    ///
    /// [`EngineError::ConnectionExists`] if `connection` is already open.
    pub fn connect_peer(
        &mut self,
        connection: ConnectionId,
        peer: Peer,
    ) -> Result<(), EngineError> {
        if self.sessions.contains_key(&connection) {
            return Err(EngineError::ConnectionExists(connection));
        }
        self.sessions.insert(
            connection,
            Session {
                joined: None,
                peer: Arc::new(peer),
            },
        );
        Ok(())
    }

    /// A connection closed or was lost. Its federate, if any, is lost, and the federation's
    /// [`LossPolicy`] applies: under `resign` the federate resigns, its objects are deleted,
    /// the others receive [`Callback::FederateLost`] and time goes on without it; under
    /// `halt` every other federate receives [`Callback::FederationHalted`] and the federation
    /// refuses every later request but resigning.
    pub fn disconnect(&mut self, now: Instant, connection: ConnectionId) {
        self.lose(now, connection, "its connection closed without resigning");
    }

    /// Like [`Engine::disconnect`], with the reason the driver gave up on the connection (for
    /// example, a partition that outlasted the grace period), quoted in the loss callbacks,
    /// the log and the audit record.
    pub fn lose(&mut self, now: Instant, connection: ConnectionId, why: &str) {
        let Some(session) = self.sessions.remove(&connection) else {
            return;
        };
        let audit_from = self.outbox.audit.len();
        if let Some((key, id)) = session.joined
            && let Some(federation) = self.federations.get_mut(&key)
        {
            let name = federation.federate_name(id);
            let reason = format!("federate `{name}` was lost: {why}");
            let policy = if federation.halted().is_some() {
                // Nothing runs any more; the lost federate only leaves.
                LossPolicy::Resign
            } else {
                self.faults.loss_policy(federation.name())
            };
            self.outbox.audit(
                AuditKind::Lost,
                federation.name(),
                Some(&name),
                format!("{why}; policy {policy}"),
            );
            match policy {
                LossPolicy::Resign => {
                    warn!(
                        ?connection,
                        federation = federation.name(),
                        federate = %name,
                        why,
                        "federate lost; resigning it"
                    );
                    if federation.halted().is_none() {
                        let lost = Callback::FederateLost {
                            federate: name.to_string(),
                            reason: reason.clone(),
                        };
                        federation.tell_others(id, &lost, &mut self.outbox);
                    }
                }
                LossPolicy::Halt => {
                    warn!(
                        ?connection,
                        federation = federation.name(),
                        federate = %name,
                        why,
                        "federate lost; halting the federation"
                    );
                    let halted = Callback::FederationHalted {
                        reason: reason.clone(),
                    };
                    federation.tell_others(id, &halted, &mut self.outbox);
                    federation.halt(reason);
                }
            }
            federation.resign(id, now, &mut self.outbox);
        }
        self.stamp_audit(&session.peer, audit_from);
    }

    /// Checks every federation for a stall: advancing federates and no grant for
    /// [`FaultSettings::stall_after`]. Each stall is reported once through
    /// [`Engine::poll_stall_report`]; the next grant in that federation re-arms the check.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(after) = self.faults.stall_after else {
            return;
        };
        for key in self.names.values() {
            let Some(federation) = self.federations.get_mut(key) else {
                continue;
            };
            if federation
                .stall_deadline(after)
                .is_some_and(|deadline| deadline <= now)
            {
                federation.mark_stall_reported();
                let report = federation.stall_report();
                debug!(federation = federation.name(), "federation stalled");
                self.stalls.push_back(report);
            }
        }
    }

    /// When [`Engine::handle_timeout`] should next be called, if a stall can come due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let after = self.faults.stall_after?;
        self.federations
            .values()
            .filter_map(|f| f.stall_deadline(after))
            .min()
    }

    /// The next stall report for the driver to log, if any: who waits, who holds each GALT and
    /// the wait-for cycle.
    pub fn poll_stall_report(&mut self) -> Option<StallReport> {
        self.stalls.pop_front()
    }

    /// Handles one request from `connection`. The response and any callbacks are queued for
    /// [`Engine::poll_transmit`].
    pub fn handle(&mut self, now: Instant, connection: ConnectionId, message: ClientMessage) {
        let Some(session) = self.sessions.get_mut(&connection) else {
            debug!(
                ?connection,
                "message from a connection that is not open; dropped"
            );
            return;
        };
        let ClientMessage { id, request } = message;
        let name = request.name();
        let joined = session.joined;
        let peer = Arc::clone(&session.peer);
        let audit_from = self.outbox.audit.len();
        if let Err(denied) = self.authorize(&peer, joined, &request) {
            warn!(identity = ?peer.identity.as_ref().map(|i| &i.name), %denied, "request denied");
            match (&denied, &request) {
                (RtiError::Denied { federation, .. }, _)
                // Joining under another's name is an attempted impersonation: on the record.
                | (RtiError::IdentityMismatch { .. }, Request::Join { federation, .. }) => {
                    self.outbox
                        .audit(AuditKind::Denied, federation, None, denied.to_string());
                }
                _ => {}
            }
            self.outbox.respond(connection, id, Err(denied));
            self.stamp_audit(&peer, audit_from);
            return;
        }
        let result = match (request, joined) {
            (Request::Ack { .. } | Request::Resume { .. }, _) => {
                Err(RtiError::NoSessionLayer(name.to_owned()))
            }
            (
                Request::CreateFederation {
                    federation,
                    model,
                    if_missing,
                },
                _,
            ) => self.create_federation(federation, model, if_missing, now),
            (Request::DestroyFederation { federation }, _) => self.destroy_federation(&federation),
            (
                Request::Join {
                    federation,
                    federate,
                },
                None,
            ) => self.join(connection, &peer, &federation, &federate),
            (Request::Status, _) => Ok(self.status_for(&peer, now)),
            (Request::Resign, Some((key, federate))) => {
                if let Some(s) = self.sessions.get_mut(&connection) {
                    s.joined = None;
                }
                if let Some(federation) = self.federations.get_mut(&key) {
                    let name = federation.federate_name(federate);
                    self.outbox.audit(
                        AuditKind::Resign,
                        federation.name(),
                        Some(&name),
                        String::new(),
                    );
                    federation.resign(federate, now, &mut self.outbox);
                }
                Ok(Response::Done)
            }
            (_, None) => Err(RtiError::NotJoined(name.to_owned())),
            (request, Some((key, federate))) => match self.federations.get_mut(&key) {
                Some(federation) if federation.halted().is_some() => Err(
                    RtiError::FederationHalted(federation.halted().unwrap_or_default().to_owned()),
                ),
                Some(federation) => {
                    let advance = matches!(request, Request::Advance { .. });
                    let answered = request.answered_on_success();
                    let result = federation.handle(federate, request, &mut self.scratch);
                    if advance && result.is_ok() {
                        federation.note_progress(now);
                    }
                    if let Err(error) = &result {
                        debug!(%error, request = name, "request refused");
                    }
                    // The answer first, then what the request caused, then the grants that it
                    // made possible.
                    if answered || result.is_err() {
                        self.outbox.respond(connection, id, result);
                    }
                    self.outbox.append(&mut self.scratch);
                    federation.settle(now, &mut self.outbox);
                    self.stamp_audit(&peer, audit_from);
                    return;
                }
                None => Err(RtiError::NotJoined(name.to_owned())),
            },
        };
        if let Err(error) = &result {
            debug!(%error, request = name, "request refused");
        }
        self.outbox.respond(connection, id, result);
        self.outbox.append(&mut self.scratch);
        self.stamp_audit(&peer, audit_from);
    }

    /// The next audit event to record, if any.
    pub fn poll_audit(&mut self) -> Option<AuditEvent> {
        self.outbox.audit.pop_front()
    }

    /// Checks a request against the policy. Trusted connections pass everything; without a
    /// policy, certified ones pass everything but administering, which needs the admin role
    /// (and nobody may join under another name than the certificate's).
    fn authorize(
        &self,
        peer: &Peer,
        joined: Option<(u64, FederateId)>,
        request: &Request,
    ) -> Result<(), RtiError> {
        let Some(identity) = &peer.identity else {
            return Ok(());
        };
        if let Request::Join { federate, .. } = request
            && federate != &identity.name
        {
            return Err(RtiError::IdentityMismatch {
                certificate: identity.name.clone(),
                requested: federate.clone(),
            });
        }
        let joined_federation = joined.and_then(|(key, _)| self.federations.get(&key));
        let Some(policy) = &self.policy else {
            // Without a policy the certificate's role stands in for one: anyone certified may
            // take part, but only an admin may administer (as only an admin sees the status).
            let administered = match request {
                Request::DestroyFederation { federation } => Some(federation.as_str()),
                Request::SetStability { .. } => joined_federation.map(Federation::name),
                _ => None,
            };
            return match administered {
                Some(federation) if identity.role != crate::tls::Role::Admin => {
                    Err(RtiError::Denied {
                        identity: identity.name.clone(),
                        permission: Permission::Administer.to_string(),
                        federation: federation.to_owned(),
                    })
                }
                _ => Ok(()),
            };
        };
        let model = joined_federation.map(Federation::model);
        let check = |federation: &str, permission: Permission<'_>| {
            if policy.allows(identity, federation, permission) {
                Ok(())
            } else {
                Err(RtiError::Denied {
                    identity: identity.name.clone(),
                    permission: permission.to_string(),
                    federation: federation.to_owned(),
                })
            }
        };
        let here = joined_federation.map_or("", Federation::name);
        match request {
            Request::CreateFederation { federation, .. } => check(federation, Permission::Create),
            Request::DestroyFederation { federation } => check(federation, Permission::Administer),
            Request::Join { federation, .. } => check(federation, Permission::Join),
            Request::PublishObjectClass { class, attributes }
            | Request::SubscribeObjectClass { class, attributes } => {
                let Some(def) = model.and_then(|m| m.object_class_def(*class).ok()) else {
                    return Ok(()); // the engine refuses the unknown handle itself
                };
                let publish = matches!(request, Request::PublishObjectClass { .. });
                for attribute in attributes {
                    let Some(attribute) = def.attributes.get(attribute.0 as usize) else {
                        continue;
                    };
                    let path = format!("{}.{attribute}", def.name);
                    let permission = if publish {
                        Permission::Publish(&path)
                    } else {
                        Permission::Subscribe(&path)
                    };
                    check(here, permission)?;
                }
                Ok(())
            }
            Request::PublishInteraction { class } | Request::SubscribeInteraction { class } => {
                let Some(def) = model.and_then(|m| m.interaction_class_def(*class).ok()) else {
                    return Ok(());
                };
                if matches!(request, Request::PublishInteraction { .. }) {
                    check(here, Permission::Send(&def.name))
                } else {
                    check(here, Permission::Subscribe(&def.name))
                }
            }
            // Not joined: the engine refuses these as such, which says more than a denial.
            Request::RegisterSyncPoint { .. }
            | Request::SetStability { .. }
            | Request::EnableTimeRegulation { .. }
            | Request::DeclareDynamics { .. }
                if joined_federation.is_none() =>
            {
                Ok(())
            }
            Request::RegisterSyncPoint { .. } => check(here, Permission::SyncPoints),
            Request::SetStability { .. } => check(here, Permission::Administer),
            Request::EnableTimeRegulation { .. } | Request::DeclareDynamics { .. } => {
                check(here, Permission::Regulate)
            }
            // Status is filtered per federation instead of refused.
            _ => Ok(()),
        }
    }

    /// Every federation `peer` may administer, with who waits for whom.
    fn status_for(&self, peer: &Peer, now: Instant) -> Response {
        let visible = |name: &str| match (&peer.identity, &self.policy) {
            (None, _) => true,
            (Some(identity), Some(policy)) => policy.allows(identity, name, Permission::Administer),
            (Some(identity), None) => identity.role == crate::tls::Role::Admin,
        };
        let federations: Vec<&Federation> = self
            .names
            .iter()
            .filter(|(name, _)| visible(name))
            .filter_map(|(_, key)| self.federations.get(key))
            .collect();
        Response::Status {
            federations: federations.iter().map(|f| f.status(now)).collect(),
            stalls: federations.iter().map(|f| f.stall_report()).collect(),
        }
    }

    /// Fills in the acting identity on the audit events queued by the current call, those from
    /// index `from` on. Only those: events of anonymous peers keep no identity, and a caller
    /// that drains the audit queue late must not make every call walk what is still queued.
    fn stamp_audit(&mut self, peer: &Peer, from: usize) {
        let Some(identity) = peer.identity.as_ref().map(|i| &i.name) else {
            return;
        };
        for event in self.outbox.audit.range_mut(from..) {
            if event.identity.is_none() {
                event.identity = Some(identity.clone());
            }
        }
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.transmits.pop_front()
    }

    /// Names of the federations, in order.
    pub fn federations(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    /// A federation's status.
    pub fn status(&self, federation: &str, now: Instant) -> Option<FederationStatus> {
        self.federation(federation).map(|f| f.status(now))
    }

    /// Who waits for whom in a federation.
    pub fn stall_report(&self, federation: &str) -> Option<StallReport> {
        self.federation(federation).map(Federation::stall_report)
    }

    fn federation(&self, name: &str) -> Option<&Federation> {
        self.names
            .get(name)
            .and_then(|key| self.federations.get(key))
    }

    fn create_federation(
        &mut self,
        name: String,
        model: ObjectModel,
        if_missing: bool,
        now: Instant,
    ) -> Result<Response, RtiError> {
        if !valid_name(&name) {
            return Err(RtiError::InvalidName(name));
        }
        model
            .validate()
            .map_err(|e| RtiError::InvalidObjectModel(e.to_string()))?;
        if let Some(&key) = self.names.get(&name) {
            if !if_missing {
                return Err(RtiError::FederationExists(name));
            }
            let Some(existing) = self.federations.get_mut(&key) else {
                return Err(RtiError::FederationNotFound(name));
            };
            // Each party brings the classes it knows, as HLA federates bring FOM modules.
            let added = existing.merge_model(&model)?;
            if !added.is_empty() {
                // The first names say what came; a large model must not make a huge record.
                const SHOWN: usize = 20;
                let mut detail = added[..added.len().min(SHOWN)].join(", ");
                if added.len() > SHOWN {
                    detail.push_str(&format!(" and {} more", added.len() - SHOWN));
                }
                info!(federation = %name, added = %detail, "object model extended");
                self.outbox.audit(
                    AuditKind::ModelExtended,
                    &name,
                    None,
                    format!("added {detail}"),
                );
            }
            return Ok(Response::Done);
        }
        let key = self.next_federation;
        self.next_federation += 1;
        info!(federation = %name, "federation created");
        self.outbox
            .audit(AuditKind::FederationCreated, &name, None, String::new());
        self.federations
            .insert(key, Federation::new(name.clone(), model, now));
        self.names.insert(name, key);
        Ok(Response::Done)
    }

    fn destroy_federation(&mut self, name: &str) -> Result<Response, RtiError> {
        let Some(&key) = self.names.get(name) else {
            return Err(RtiError::FederationNotFound(name.to_owned()));
        };
        let Some(federation) = self.federations.get(&key) else {
            return Err(RtiError::FederationNotFound(name.to_owned()));
        };
        if !federation.is_empty() {
            return Err(RtiError::FederatesStillJoined {
                federation: name.to_owned(),
                federates: federation.federate_names(),
            });
        }
        self.federations.remove(&key);
        self.names.remove(name);
        info!(federation = %name, "federation destroyed");
        self.outbox
            .audit(AuditKind::FederationDestroyed, name, None, String::new());
        Ok(Response::Done)
    }

    fn join(
        &mut self,
        connection: ConnectionId,
        peer: &Peer,
        federation: &str,
        federate: &str,
    ) -> Result<Response, RtiError> {
        let Some(&key) = self.names.get(federation) else {
            return Err(RtiError::FederationNotFound(federation.to_owned()));
        };
        let Some(target) = self.federations.get_mut(&key) else {
            return Err(RtiError::FederationNotFound(federation.to_owned()));
        };
        if let Some(reason) = target.halted() {
            return Err(RtiError::FederationHalted(reason.to_owned()));
        }
        let (id, response) = target.join(federate, connection, peer, &mut self.scratch)?;
        self.scratch
            .audit(AuditKind::Join, federation, Some(federate), String::new());
        if let Some(session) = self.sessions.get_mut(&connection) {
            session.joined = Some((key, id));
        }
        Ok(response)
    }
}
