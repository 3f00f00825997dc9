//! One federation: its federates, declarations, objects, timestamp-ordered queues and
//! synchronization points.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedtwin_core::message::{AdvanceKind, Callback, Order, Payload, Request, Response};
use fedtwin_core::model::{
    AttributeHandle, InteractionClassHandle, ObjectClassHandle, ObjectInstanceHandle,
    ParameterHandle,
};
use fedtwin_core::step::{Coupled, Dynamics, StepSettings, check_step, fastest};
use fedtwin_core::{ObjectModel, RtiError, SimDuration, SimTime};
use tracing::{debug, info, warn};

use super::time::{Constrained, FederateId, TimeManager};
use super::{ConnectionId, Outbox, Peer};
use crate::audit::AuditKind;
use fedtwin_core::status::{FederateState, FederateStatus, FederationStatus, StallReport, WaitFor};

/// Position of a message in a receiver's timestamp-ordered queue: (timestamp, sender name,
/// sender's sequence number). Names, not join-order handles, break ties, so the delivered
/// order does not depend on who joined first.
type QueueKey = (SimTime, Arc<str>, u64);

#[derive(Debug)]
struct Federate {
    name: Arc<str>,
    connection: ConnectionId,
    queue: BTreeMap<QueueKey, Callback>,
    /// Timestamped messages sent so far, which is also the sequence number of the last one.
    sent: u64,
    owned: BTreeSet<ObjectInstanceHandle>,
    peer: Peer,
    /// The object model as it was when the federate joined: a later merge may append
    /// parameters it has no names for, which it is then not sent.
    model: Arc<ObjectModel>,
}

#[derive(Debug, Default)]
struct ClassDeclarations {
    publishers: BTreeMap<FederateId, BTreeSet<AttributeHandle>>,
    subscribers: BTreeMap<FederateId, BTreeSet<AttributeHandle>>,
}

#[derive(Debug, Default)]
struct InteractionDeclarations {
    publishers: BTreeSet<FederateId>,
    subscribers: BTreeSet<FederateId>,
}

#[derive(Debug)]
struct Object {
    class: ObjectClassHandle,
    name: String,
    owner: FederateId,
}

#[derive(Debug)]
struct SyncPoint {
    tag: Payload,
    members: BTreeSet<FederateId>,
    waiting: BTreeSet<FederateId>,
    /// Announced to every federate, including those that join later.
    whole_federation: bool,
}

/// A message to hand to one receiver, built per receiver because its order depends on them.
type MakeCallback<'a> = &'a dyn Fn(FederateId, Order) -> Option<Callback>;

#[derive(Debug)]
pub(crate) struct Federation {
    name: String,
    model: Arc<ObjectModel>,
    federates: Vec<Option<Federate>>,
    by_name: HashMap<Arc<str>, FederateId>,
    time: TimeManager,
    classes: Vec<ClassDeclarations>,
    interactions: Vec<InteractionDeclarations>,
    objects: HashMap<ObjectInstanceHandle, Object>,
    object_names: HashMap<String, ObjectInstanceHandle>,
    next_object: u64,
    sync_points: BTreeMap<String, SyncPoint>,
    last_grant: Option<Instant>,
    /// The last grant or accepted advance request: a stall is counted from here.
    progress: Instant,
    /// The current stall was reported; the next grant re-arms the report.
    stall_reported: bool,
    /// Why the federation halted, once it has.
    halted: Option<String>,
    /// Declared fastest dynamics; empty in most federations, which then skip every check.
    dynamics: BTreeMap<FederateId, Dynamics>,
    /// Dynamics declared by lock-step federates, which check their own steps: only queried
    /// ([`Request::QueryCoupledDynamics`]), never used to refuse a step.
    lock_step_dynamics: BTreeMap<FederateId, Dynamics>,
    /// Safety factor and override of the stability rule.
    alpha: f64,
    override_stability: bool,
}

impl Federation {
    pub(crate) fn new(name: String, model: ObjectModel, now: Instant) -> Self {
        let classes = model
            .object_classes
            .iter()
            .map(|_| ClassDeclarations::default())
            .collect();
        let interactions = model
            .interaction_classes
            .iter()
            .map(|_| InteractionDeclarations::default())
            .collect();
        Self {
            name,
            model: Arc::new(model),
            federates: Vec::new(),
            by_name: HashMap::new(),
            time: TimeManager::default(),
            classes,
            interactions,
            objects: HashMap::new(),
            object_names: HashMap::new(),
            next_object: 1,
            sync_points: BTreeMap::new(),
            last_grant: Some(now),
            progress: now,
            stall_reported: false,
            halted: None,
            dynamics: BTreeMap::new(),
            lock_step_dynamics: BTreeMap::new(),
            alpha: StepSettings::default().alpha,
            override_stability: false,
        }
    }

    pub(crate) fn model(&self) -> &ObjectModel {
        &self.model
    }

    /// Merges a joining party's model into the federation's (see [`ObjectModel::merge`]) and
    /// returns what was added. Existing handles keep their meaning, so federates already
    /// joined go on with the model they were given; later joiners get the merged one.
    ///
    /// # Errors
    ///
    /// [`RtiError::InvalidObjectModel`] when the merged model would be too large; nothing
    /// changes then.
    pub(crate) fn merge_model(&mut self, module: &ObjectModel) -> Result<Vec<String>, RtiError> {
        let mut model = (*self.model).clone();
        let added = model.merge(module);
        if model.name_count() > ObjectModel::MAX_NAMES {
            return Err(RtiError::InvalidObjectModel(format!(
                "merged with the federation's, {}",
                fedtwin_core::model::ModelError::TooLarge(model.name_count())
            )));
        }
        if !added.is_empty() {
            self.classes
                .resize_with(model.object_classes.len(), ClassDeclarations::default);
            self.interactions.resize_with(
                model.interaction_classes.len(),
                InteractionDeclarations::default,
            );
            self.model = Arc::new(model);
        }
        Ok(added)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn federate_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.keys().map(|n| n.to_string()).collect();
        names.sort();
        names
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Why the federation halted, if it has.
    pub(crate) fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    /// Stops the federation: nothing is granted any more.
    pub(crate) fn halt(&mut self, reason: String) {
        warn!(federation = %self.name, %reason, "federation halted");
        self.halted = Some(reason);
    }

    /// Sends `callback` to every federate but `except`.
    pub(crate) fn tell_others(&self, except: FederateId, callback: &Callback, out: &mut Outbox) {
        for (id, federate) in self.federates.iter().enumerate() {
            if let Some(federate) = federate
                && id != except as usize
            {
                out.push(federate.connection, callback.clone());
            }
        }
    }

    /// An advance was accepted: the federation is not stalled before `now`.
    pub(crate) fn note_progress(&mut self, now: Instant) {
        self.progress = self.progress.max(now);
    }

    /// When the federation counts as stalled if nothing is granted meanwhile: `None` when no
    /// federate is advancing, the stall was reported already, or the federation halted.
    pub(crate) fn stall_deadline(&self, after: Duration) -> Option<Instant> {
        if self.stall_reported || self.halted.is_some() {
            return None;
        }
        let advancing = (0..self.federates.len()).any(|id| {
            self.federates[id].is_some() && self.time.advance(id as FederateId).is_some()
        });
        advancing.then(|| self.progress + after)
    }

    /// The current stall was reported.
    pub(crate) fn mark_stall_reported(&mut self) {
        self.stall_reported = true;
    }

    pub(crate) fn join(
        &mut self,
        name: &str,
        connection: ConnectionId,
        peer: &Peer,
        out: &mut Outbox,
    ) -> Result<(FederateId, Response), RtiError> {
        if !valid_name(name) {
            return Err(RtiError::InvalidName(name.to_owned()));
        }
        if self.by_name.contains_key(name) {
            return Err(RtiError::FederateNameInUse {
                federation: self.name.clone(),
                federate: name.to_owned(),
            });
        }
        let id = FederateId::try_from(self.federates.len())
            .map_err(|_| RtiError::InvalidName("federate handle space exhausted".into()))?;
        let name: Arc<str> = name.into();
        self.federates.push(Some(Federate {
            name: name.clone(),
            connection,
            queue: BTreeMap::new(),
            sent: 0,
            owned: BTreeSet::new(),
            peer: peer.clone(),
            model: self.model.clone(),
        }));
        self.by_name.insert(name.clone(), id);
        self.time.add(id, SimTime::ZERO);
        info!(federation = %self.name, federate = %name, "federate joined");

        for (label, point) in &mut self.sync_points {
            if point.whole_federation {
                point.members.insert(id);
                point.waiting.insert(id);
                out.push(
                    connection,
                    Callback::AnnounceSyncPoint {
                        label: label.clone(),
                        tag: point.tag.clone(),
                    },
                );
            }
        }
        let response = Response::Joined {
            federate: fedtwin_core::model::FederateHandle(id),
            model: (*self.model).clone(),
            time: SimTime::ZERO,
        };
        Ok((id, response))
    }

    /// Removes a federate, deleting its objects. Time goes on without it.
    pub(crate) fn resign(&mut self, id: FederateId, now: Instant, out: &mut Outbox) {
        let Some(federate) = self.federates.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        // Sequence numbers after the federate's last timestamped message.
        let mut seq = federate.sent;
        for object in &federate.owned {
            if let Some(removed) = self.objects.remove(object) {
                self.object_names.remove(&removed.name);
                let subscribers: Vec<FederateId> = self.classes[removed.class.0 as usize]
                    .subscribers
                    .keys()
                    .copied()
                    .filter(|&s| s != id)
                    .collect();
                for subscriber in subscribers {
                    // A constrained subscriber may still have this federate's timestamped
                    // messages queued: the removal goes behind the last of them, so that no
                    // update arrives after its object was removed.
                    let last = self
                        .federates
                        .get(subscriber as usize)
                        .and_then(Option::as_ref)
                        .and_then(|s| {
                            s.queue
                                .keys()
                                .filter(|(_, sender, _)| *sender == federate.name)
                                .map(|(time, _, _)| *time)
                                .max()
                        });
                    let callback = |timestamp, order| Callback::RemoveObject {
                        object: *object,
                        timestamp,
                        order,
                        sender: federate.name.clone(),
                    };
                    match last {
                        Some(time) => {
                            seq += 1;
                            let key = (time, federate.name.clone(), seq);
                            self.enqueue(subscriber, key, callback(Some(time), Order::Timestamp));
                        }
                        None => self.send_now(subscriber, callback(None, Order::Receive), out),
                    }
                }
            }
        }
        for class in &mut self.classes {
            class.publishers.remove(&id);
            class.subscribers.remove(&id);
        }
        for class in &mut self.interactions {
            class.publishers.remove(&id);
            class.subscribers.remove(&id);
        }
        self.by_name.remove(&federate.name);
        self.time.remove(id);
        self.dynamics.remove(&id);
        self.lock_step_dynamics.remove(&id);
        let labels: Vec<String> = self.sync_points.keys().cloned().collect();
        for label in labels {
            if let Some(point) = self.sync_points.get_mut(&label) {
                point.members.remove(&id);
                point.waiting.remove(&id);
            }
            self.check_synchronized(&label, out);
        }
        info!(federation = %self.name, federate = %federate.name, "federate resigned");
        self.settle(now, out);
    }

    /// Handles a request of joined federate `id`. Federation-level requests (create, join, ...)
    /// are the engine's.
    pub(crate) fn handle(
        &mut self,
        id: FederateId,
        request: Request,
        out: &mut Outbox,
    ) -> Result<Response, RtiError> {
        match request {
            Request::PublishObjectClass { class, attributes } => {
                self.declare_attributes(id, class, attributes, true)
            }
            Request::SubscribeObjectClass { class, attributes } => {
                let first = !self.class(class)?.subscribers.contains_key(&id);
                let response = self.declare_attributes(id, class, attributes, false)?;
                if first && self.class(class)?.subscribers.contains_key(&id) {
                    self.discover_existing(id, class, out);
                }
                Ok(response)
            }
            Request::UnpublishObjectClass { class } => {
                self.class_mut(class)?.publishers.remove(&id);
                Ok(Response::Done)
            }
            Request::UnsubscribeObjectClass { class } => {
                self.class_mut(class)?.subscribers.remove(&id);
                Ok(Response::Done)
            }
            Request::PublishInteraction { class } => {
                self.interaction_mut(class)?.publishers.insert(id);
                Ok(Response::Done)
            }
            Request::UnpublishInteraction { class } => {
                self.interaction_mut(class)?.publishers.remove(&id);
                Ok(Response::Done)
            }
            Request::SubscribeInteraction { class } => {
                self.interaction_mut(class)?.subscribers.insert(id);
                Ok(Response::Done)
            }
            Request::UnsubscribeInteraction { class } => {
                self.interaction_mut(class)?.subscribers.remove(&id);
                Ok(Response::Done)
            }
            Request::RegisterObject { class, name } => self.register_object(id, class, name, out),
            Request::DeleteObject { object, timestamp } => {
                self.delete_object(id, object, timestamp, out)
            }
            Request::UpdateAttributes {
                object,
                values,
                timestamp,
            } => self.update_attributes(id, object, values, timestamp, out),
            Request::SendInteraction {
                class,
                parameters,
                timestamp,
            } => self.send_interaction(id, class, parameters, timestamp, out),
            Request::EnableTimeRegulation { lookahead } => {
                self.check_stability(id, SimDuration::ZERO, lookahead)?;
                let (time, bound) = self.time.enable_regulation(id, lookahead)?;
                Ok(Response::Regulation { time, bound })
            }
            Request::DisableTimeRegulation => {
                self.time.disable_regulation(id)?;
                Ok(Response::Done)
            }
            Request::ModifyLookahead { lookahead } => {
                self.check_stability(id, SimDuration::ZERO, lookahead)?;
                self.modify_lookahead(id, lookahead)
            }
            Request::DeclareDynamics {
                fastest_eigenvalue,
                lock_step: true,
            } => {
                let dynamics = Dynamics::from_eigenvalue(fastest_eigenvalue)
                    .map_err(|e| RtiError::Unstable(e.to_string()))?;
                self.dynamics.remove(&id);
                self.lock_step_dynamics.insert(id, dynamics);
                Ok(Response::Done)
            }
            Request::QueryCoupledDynamics => {
                Ok(Response::CoupledDynamics(self.coupled_dynamics(id)))
            }
            Request::DeclareDynamics {
                fastest_eigenvalue,
                lock_step: false,
            } => {
                let dynamics = Dynamics::from_eigenvalue(fastest_eigenvalue)
                    .map_err(|e| RtiError::Unstable(e.to_string()))?;
                // A refused declaration changes nothing, a lock-step one included.
                let previous_lock_step = self.lock_step_dynamics.remove(&id);
                let previous = self.dynamics.insert(id, dynamics);
                let lookahead = self.time.lookahead(id).unwrap_or(SimDuration::ZERO);
                if let Err(error) = self.check_stability(id, SimDuration::ZERO, lookahead) {
                    match previous {
                        Some(previous) => self.dynamics.insert(id, previous),
                        None => self.dynamics.remove(&id),
                    };
                    if let Some(lock_step) = previous_lock_step {
                        self.lock_step_dynamics.insert(id, lock_step);
                    }
                    return Err(error);
                }
                Ok(Response::Done)
            }
            Request::SetStability {
                alpha,
                override_stability,
            } => {
                let settings = StepSettings {
                    alpha,
                    ..StepSettings::default()
                };
                settings
                    .validate()
                    .map_err(|e| RtiError::Unstable(e.to_string()))?;
                self.alpha = alpha;
                self.override_stability = override_stability;
                if override_stability {
                    warn!(federation = %self.name, "stability override on: unstable steps are let through");
                }
                // It changes which steps every federate may take: an administrative act.
                let federate = self.federate_name(id);
                out.audit(
                    AuditKind::StabilityChanged,
                    &self.name,
                    Some(&federate),
                    format!("alpha {alpha}, override {override_stability}"),
                );
                Ok(Response::Done)
            }
            Request::EnableTimeConstrained => {
                if self.time.enable_constrained(id)?
                    && let Some(connection) = self.connection(id)
                {
                    let time = self.time.time(id);
                    out.push(connection, Callback::TimeConstrainedEnabled { time });
                }
                Ok(Response::Pending)
            }
            Request::DisableTimeConstrained => {
                self.time.disable_constrained(id)?;
                self.release_queue(id, out);
                Ok(Response::Done)
            }
            Request::Advance {
                kind: AdvanceKind::FlushQueue,
                time,
            } => self.flush_queue(id, time, out),
            Request::Advance { kind, time } => {
                if matches!(
                    kind,
                    AdvanceKind::TimeAdvance | AdvanceKind::TimeAdvanceAvailable
                ) && !self.dynamics.is_empty()
                {
                    let step = time
                        .duration_since(self.time.time(id))
                        .unwrap_or(SimDuration::ZERO);
                    let lookahead = self.time.lookahead(id).unwrap_or(SimDuration::ZERO);
                    self.check_stability(id, step, lookahead)?;
                }
                self.time.request_advance(id, kind, time)?;
                Ok(Response::Pending)
            }
            Request::QueryGalt => Ok(Response::Galt(self.time.galt(id))),
            Request::RegisterSyncPoint {
                label,
                tag,
                federates,
            } => self.register_sync_point(label, tag, federates, out),
            Request::AchieveSyncPoint { label } => self.achieve_sync_point(id, label, out),
            // Join is the only other request the engine passes on: this one has joined.
            _ => Err(RtiError::AlreadyJoined(self.name.clone())),
        }
    }

    /// Grants every advance that has become safe and confirms pending constrained requests.
    /// Called after every input that may move a bound or a queue.
    pub(crate) fn settle(&mut self, now: Instant, out: &mut Outbox) {
        if self.halted.is_some() {
            return;
        }
        loop {
            for (id, time) in self.time.poll_constrained() {
                if let Some(connection) = self.connection(id) {
                    out.push(connection, Callback::TimeConstrainedEnabled { time });
                }
            }
            let Some((id, time)) = self.time.next_grant() else {
                break;
            };
            let Some(federate) = self.federates.get_mut(id as usize).and_then(Option::as_mut)
            else {
                break;
            };
            while let Some(entry) = federate.queue.first_entry() {
                if entry.key().0 > time {
                    break;
                }
                out.push(federate.connection, entry.remove());
            }
            let earliest = federate.queue.first_key_value().map(|(k, _)| k.0);
            let connection = federate.connection;
            self.time.set_earliest_queued(id, earliest);
            self.time.complete_grant(id, time);
            let bound = self.time.bound(id);
            debug!(federation = %self.name, federate = %federate.name, sim_time = %time, "granted");
            out.push(connection, Callback::TimeAdvanceGrant { time, bound });
            self.last_grant = Some(now);
            self.progress = self.progress.max(now);
            self.stall_reported = false;
        }
    }

    /// The step controller's rule for a step of `id` with coupling delay `delay`, over the
    /// federates coupled with it by subscriptions. With the override, a breach is logged and
    /// let through.
    fn check_stability(
        &self,
        id: FederateId,
        step: SimDuration,
        delay: SimDuration,
    ) -> Result<(), RtiError> {
        // A lock-step federate checks its own steps (its lookahead is its step, which this
        // rule would count twice) with its own safety factor.
        if self.dynamics.is_empty() || self.lock_step_dynamics.contains_key(&id) {
            return Ok(());
        }
        let names = self.coupled_names(id);
        let coupled = self.coupled(&names, false);
        match check_step(self.alpha, &coupled, step, delay) {
            Ok(()) => Ok(()),
            Err(error) if self.override_stability => {
                warn!(federation = %self.name, %error, "unstable step let through by the override");
                Ok(())
            }
            Err(error) => Err(RtiError::Unstable(error.to_string())),
        }
    }

    /// The fastest dynamics declared, in either mode, among `id` and the federates coupled
    /// with it, with the declaring federate's name.
    fn coupled_dynamics(&self, id: FederateId) -> Option<(String, f64)> {
        let names = self.coupled_names(id);
        let coupled = self.coupled(&names, true);
        fastest(&coupled).map(|(name, dynamics)| (name.to_owned(), dynamics.eigenvalue()))
    }

    /// [`Federation::coupled_with`] with names, which [`Coupled`] borrows.
    fn coupled_names(&self, id: FederateId) -> Vec<(FederateId, Arc<str>)> {
        self.coupled_with(id)
            .into_iter()
            .map(|k| (k, self.federate_name(k)))
            .collect()
    }

    /// The step controller's view of `names`: their event-mode dynamics, and with `lock_step`
    /// those that lock-step federates declared too.
    fn coupled<'a>(
        &self,
        names: &'a [(FederateId, Arc<str>)],
        lock_step: bool,
    ) -> Vec<Coupled<'a>> {
        names
            .iter()
            .map(|(k, name)| Coupled {
                name,
                dynamics: self
                    .dynamics
                    .get(k)
                    .or_else(|| lock_step.then(|| self.lock_step_dynamics.get(k)).flatten())
                    .copied(),
                max_step: None,
            })
            .collect()
    }

    /// `id` and every federate that publishes what it subscribes to or subscribes to what it
    /// publishes.
    fn coupled_with(&self, id: FederateId) -> BTreeSet<FederateId> {
        let mut coupled = BTreeSet::from([id]);
        for class in &self.classes {
            if class.subscribers.contains_key(&id) {
                coupled.extend(class.publishers.keys());
            }
            if class.publishers.contains_key(&id) {
                coupled.extend(class.subscribers.keys());
            }
        }
        for class in &self.interactions {
            if class.subscribers.contains(&id) {
                coupled.extend(&class.publishers);
            }
            if class.publishers.contains(&id) {
                coupled.extend(&class.subscribers);
            }
        }
        coupled
    }

    fn modify_lookahead(
        &mut self,
        id: FederateId,
        lookahead: SimDuration,
    ) -> Result<Response, RtiError> {
        self.time.modify_lookahead(id, lookahead)?;
        let bound = self.time.bound(id).unwrap_or(SimTime::END);
        Ok(Response::Regulation {
            time: self.time.time(id),
            bound,
        })
    }

    fn flush_queue(
        &mut self,
        id: FederateId,
        time: SimTime,
        out: &mut Outbox,
    ) -> Result<Response, RtiError> {
        self.time.check_advance(id, time)?;
        let mut grant = time;
        if self.time.constrained(id) == Constrained::Yes {
            let galt = self.time.galt(id);
            let federate = self.federate_mut(id)?;
            let connection = federate.connection;
            let queue = std::mem::take(&mut federate.queue);
            if let Some(((first, _, _), _)) = queue.first_key_value() {
                grant = grant.min(*first);
            }
            for (_, callback) in queue {
                out.push(connection, callback);
            }
            self.time.set_earliest_queued(id, None);
            if let Some(galt) = galt {
                grant = grant.min(galt);
            }
            grant = grant.max(self.time.time(id));
        }
        self.time
            .request_advance(id, AdvanceKind::FlushQueue, grant)?;
        Ok(Response::Pending)
    }

    fn declare_attributes(
        &mut self,
        id: FederateId,
        class: ObjectClassHandle,
        attributes: Vec<AttributeHandle>,
        publish: bool,
    ) -> Result<Response, RtiError> {
        let def = self
            .model
            .object_class_def(class)
            .map_err(|_| unknown("object class", class))?;
        if let Some(bad) = attributes
            .iter()
            .find(|a| a.0 as usize >= def.attributes.len())
        {
            return Err(unknown("attribute", bad));
        }
        let declarations = self.class_mut(class)?;
        let table = if publish {
            &mut declarations.publishers
        } else {
            &mut declarations.subscribers
        };
        if attributes.is_empty() {
            // As in HLA, declaring the empty set withdraws the declaration.
            table.remove(&id);
        } else {
            table.entry(id).or_default().extend(attributes);
        }
        Ok(Response::Done)
    }

    fn discover_existing(&mut self, id: FederateId, class: ObjectClassHandle, out: &mut Outbox) {
        let Some(connection) = self.connection(id) else {
            return;
        };
        let mut found: Vec<(&ObjectInstanceHandle, &Object)> = self
            .objects
            .iter()
            .filter(|(_, o)| o.class == class && o.owner != id)
            .collect();
        found.sort_by_key(|(handle, _)| **handle);
        for (handle, object) in found {
            let owner = self.federate_name(object.owner);
            out.push(
                connection,
                Callback::DiscoverObject {
                    object: *handle,
                    class,
                    name: object.name.clone(),
                    owner,
                },
            );
        }
    }

    fn register_object(
        &mut self,
        id: FederateId,
        class: ObjectClassHandle,
        name: Option<String>,
        out: &mut Outbox,
    ) -> Result<Response, RtiError> {
        let class_name = self
            .model
            .object_class_def(class)
            .map_err(|_| unknown("object class", class))?
            .name
            .clone();
        if !self.class(class)?.publishers.contains_key(&id) {
            return Err(RtiError::NotPublished(class_name));
        }
        let handle = ObjectInstanceHandle(self.next_object);
        let name = name.unwrap_or_else(|| format!("{class_name}-{}", handle.0));
        if !valid_name(&name) {
            return Err(RtiError::InvalidName(name));
        }
        if self.object_names.contains_key(&name) {
            return Err(RtiError::ObjectNameInUse(name));
        }
        self.next_object += 1;
        self.objects.insert(
            handle,
            Object {
                class,
                name: name.clone(),
                owner: id,
            },
        );
        self.object_names.insert(name.clone(), handle);
        let owner = self.federate_mut(id)?;
        owner.owned.insert(handle);
        let owner_name = owner.name.clone();
        let callback = Callback::DiscoverObject {
            object: handle,
            class,
            name: name.clone(),
            owner: owner_name,
        };
        let subscribers: Vec<FederateId> = self.class(class)?.subscribers.keys().copied().collect();
        for subscriber in subscribers.into_iter().filter(|&s| s != id) {
            self.send_now(subscriber, callback.clone(), out);
        }
        debug!(federation = %self.name, object = %name, "object registered");
        Ok(Response::ObjectRegistered {
            object: handle,
            name,
        })
    }

    fn delete_object(
        &mut self,
        id: FederateId,
        object: ObjectInstanceHandle,
        timestamp: Option<SimTime>,
        out: &mut Outbox,
    ) -> Result<Response, RtiError> {
        let class = self.owned_object(id, object)?.class;
        let key = self.timestamp_key(id, timestamp)?;
        let Some(removed) = self.objects.remove(&object) else {
            return Err(RtiError::ObjectNotFound(object.to_string()));
        };
        self.object_names.remove(&removed.name);
        let sender = self.federate_mut(id)?;
        sender.owned.remove(&object);
        let sender = sender.name.clone();
        let subscribers: Vec<FederateId> = self.class(class)?.subscribers.keys().copied().collect();
        let make = |_: FederateId, order| {
            Some(Callback::RemoveObject {
                object,
                timestamp,
                order,
                sender: sender.clone(),
            })
        };
        self.fan_out(id, &subscribers, key, &make, out);
        Ok(Response::Done)
    }

    fn update_attributes(
        &mut self,
        id: FederateId,
        object: ObjectInstanceHandle,
        values: Vec<(AttributeHandle, Payload)>,
        timestamp: Option<SimTime>,
        out: &mut Outbox,
    ) -> Result<Response, RtiError> {
        let class = self.owned_object(id, object)?.class;
        let def = self
            .model
            .object_class_def(class)
            .map_err(|_| unknown("object class", class))?;
        let published = self.class(class)?.publishers.get(&id);
        let mut seen = BTreeSet::new();
        for (attribute, _) in &values {
            let Some(attribute_name) = def.attributes.get(attribute.0 as usize) else {
                return Err(unknown("attribute", attribute));
            };
            if !published.is_some_and(|p| p.contains(attribute)) {
                return Err(RtiError::NotPublished(format!(
                    "{}.{attribute_name}",
                    def.name
                )));
            }
            if !seen.insert(*attribute) {
                return Err(RtiError::DuplicateValue(format!(
                    "{}.{attribute_name}",
                    def.name
                )));
            }
        }
        let key = self.timestamp_key(id, timestamp)?;
        let sender = self.federate_name(id);
        let declarations = self.class(class)?;
        let subscribers: Vec<FederateId> = declarations.subscribers.keys().copied().collect();
        let make = |receiver: FederateId, order| {
            let wanted = declarations.subscribers.get(&receiver)?;
            let values: Vec<(AttributeHandle, Payload)> = values
                .iter()
                .filter(|(a, _)| wanted.contains(a))
                .cloned()
                .collect();
            (!values.is_empty()).then(|| Callback::Reflect {
                object,
                class,
                values,
                timestamp,
                order,
                sender: sender.clone(),
            })
        };
        // The closure borrows the declarations; collect the callbacks before delivering.
        let deliveries = self.prepare(id, &subscribers, key.is_some(), &make);
        self.deliver_prepared(deliveries, key, out);
        Ok(Response::Done)
    }

    fn send_interaction(
        &mut self,
        id: FederateId,
        class: InteractionClassHandle,
        parameters: Vec<(ParameterHandle, Payload)>,
        timestamp: Option<SimTime>,
        out: &mut Outbox,
    ) -> Result<Response, RtiError> {
        let def = self
            .model
            .interaction_class_def(class)
            .map_err(|_| unknown("interaction class", class))?;
        let declarations = self.interaction(class)?;
        if !declarations.publishers.contains(&id) {
            return Err(RtiError::NotPublished(def.name.clone()));
        }
        let mut seen = BTreeSet::new();
        for (parameter, _) in &parameters {
            let Some(parameter_name) = def.parameters.get(parameter.0 as usize) else {
                return Err(unknown("parameter", parameter));
            };
            if !seen.insert(*parameter) {
                return Err(RtiError::DuplicateValue(format!(
                    "{}.{parameter_name}",
                    def.name
                )));
            }
        }
        let defined = def.parameters.len();
        let subscribers: Vec<FederateId> = declarations.subscribers.iter().copied().collect();
        // Subscribers that joined before the class gained parameters know fewer of them.
        let known: HashMap<FederateId, usize> = subscribers
            .iter()
            .filter_map(|&s| {
                let model = &self.federates.get(s as usize)?.as_ref()?.model;
                if Arc::ptr_eq(model, &self.model) {
                    return None;
                }
                let known = model
                    .interaction_classes
                    .get(class.0 as usize)
                    .map_or(0, |c| c.parameters.len());
                (known < defined).then_some((s, known))
            })
            .collect();
        let key = self.timestamp_key(id, timestamp)?;
        let sender = self.federate_name(id);
        let make = |receiver: FederateId, order| {
            let parameters = match known.get(&receiver) {
                Some(&known) => parameters
                    .iter()
                    .filter(|(p, _)| (p.0 as usize) < known)
                    .cloned()
                    .collect(),
                None => parameters.clone(),
            };
            Some(Callback::ReceiveInteraction {
                class,
                parameters,
                timestamp,
                order,
                sender: sender.clone(),
            })
        };
        self.fan_out(id, &subscribers, key, &make, out);
        Ok(Response::Done)
    }

    /// The queue key of a timestamped send, after checking it against the sender's bound, or
    /// `None` for a receive-order send (no timestamp, or a sender that is not regulating).
    fn timestamp_key(
        &mut self,
        id: FederateId,
        timestamp: Option<SimTime>,
    ) -> Result<Option<QueueKey>, RtiError> {
        let Some(timestamp) = timestamp else {
            return Ok(None);
        };
        let Some(bound) = self.time.bound(id) else {
            return Ok(None);
        };
        if timestamp < bound {
            return Err(RtiError::SendBelowBound { timestamp, bound });
        }
        let federate = self.federate_mut(id)?;
        federate.sent += 1;
        Ok(Some((timestamp, federate.name.clone(), federate.sent)))
    }

    fn fan_out(
        &mut self,
        sender: FederateId,
        receivers: &[FederateId],
        key: Option<QueueKey>,
        make: MakeCallback<'_>,
        out: &mut Outbox,
    ) {
        let deliveries = self.prepare(sender, receivers, key.is_some(), make);
        self.deliver_prepared(deliveries, key, out);
    }

    /// Builds each receiver's callback: timestamp order for constrained receivers of a
    /// timestamped message, receive order otherwise.
    fn prepare(
        &self,
        sender: FederateId,
        receivers: &[FederateId],
        timestamped: bool,
        make: MakeCallback<'_>,
    ) -> Vec<(FederateId, bool, Callback)> {
        receivers
            .iter()
            .filter(|&&r| r != sender)
            .filter_map(|&r| {
                let queued = timestamped && self.time.constrained(r) == Constrained::Yes;
                let order = if queued {
                    Order::Timestamp
                } else {
                    Order::Receive
                };
                make(r, order).map(|callback| (r, queued, callback))
            })
            .collect()
    }

    fn deliver_prepared(
        &mut self,
        deliveries: Vec<(FederateId, bool, Callback)>,
        key: Option<QueueKey>,
        out: &mut Outbox,
    ) {
        for (receiver, queued, callback) in deliveries {
            match (&key, queued) {
                (Some(key), true) => self.enqueue(receiver, key.clone(), callback),
                _ => self.send_now(receiver, callback, out),
            }
        }
    }

    fn enqueue(&mut self, receiver: FederateId, key: QueueKey, callback: Callback) {
        let Some(federate) = self
            .federates
            .get_mut(receiver as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        let timestamp = key.0;
        federate.queue.insert(key, callback);
        let earliest = federate.queue.first_key_value().map(|(k, _)| k.0);
        if earliest == Some(timestamp) {
            self.time.set_earliest_queued(receiver, earliest);
        }
    }

    fn send_now(&self, receiver: FederateId, callback: Callback, out: &mut Outbox) {
        if let Some(connection) = self.connection(receiver) {
            out.push(connection, callback);
        }
    }

    /// Delivers everything queued for `id` at once, in receive order (it stopped being
    /// constrained).
    fn release_queue(&mut self, id: FederateId, out: &mut Outbox) {
        let Some(federate) = self.federates.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        for (_, mut callback) in std::mem::take(&mut federate.queue) {
            set_order(&mut callback, Order::Receive);
            out.push(federate.connection, callback);
        }
        self.time.set_earliest_queued(id, None);
    }

    fn register_sync_point(
        &mut self,
        label: String,
        tag: Payload,
        federates: Vec<String>,
        out: &mut Outbox,
    ) -> Result<Response, RtiError> {
        if label.is_empty() {
            return Err(RtiError::InvalidName(label));
        }
        if self.sync_points.contains_key(&label) {
            return Err(RtiError::SyncPointExists(label));
        }
        let whole_federation = federates.is_empty();
        let members: BTreeSet<FederateId> = if whole_federation {
            self.by_name.values().copied().collect()
        } else {
            federates
                .iter()
                .map(|name| {
                    self.by_name
                        .get(name.as_str())
                        .copied()
                        .ok_or_else(|| RtiError::FederateNotFound(name.clone()))
                })
                .collect::<Result<_, _>>()?
        };
        for &member in &members {
            self.send_now(
                member,
                Callback::AnnounceSyncPoint {
                    label: label.clone(),
                    tag: tag.clone(),
                },
                out,
            );
        }
        info!(federation = %self.name, %label, members = members.len(), "synchronization point registered");
        out.audit(
            AuditKind::SyncPointRegistered,
            &self.name,
            None,
            label.clone(),
        );
        let point = SyncPoint {
            tag,
            waiting: members.clone(),
            members,
            whole_federation,
        };
        self.sync_points.insert(label, point);
        Ok(Response::Done)
    }

    fn achieve_sync_point(
        &mut self,
        id: FederateId,
        label: String,
        out: &mut Outbox,
    ) -> Result<Response, RtiError> {
        let Some(point) = self
            .sync_points
            .get_mut(&label)
            .filter(|p| p.members.contains(&id))
        else {
            return Err(RtiError::SyncPointNotFound(label));
        };
        if !point.waiting.remove(&id) {
            return Err(RtiError::SyncPointAlreadyAchieved(label));
        }
        self.check_synchronized(&label, out);
        Ok(Response::Done)
    }

    fn check_synchronized(&mut self, label: &str, out: &mut Outbox) {
        let Some(point) = self.sync_points.get(label) else {
            return;
        };
        if !point.waiting.is_empty() {
            return;
        }
        if let Some(point) = self.sync_points.remove(label) {
            for member in point.members {
                self.send_now(
                    member,
                    Callback::FederationSynchronized {
                        label: label.to_owned(),
                    },
                    out,
                );
            }
            info!(federation = %self.name, %label, "federation synchronized");
            out.audit(
                AuditKind::FederationSynchronized,
                &self.name,
                None,
                label.to_owned(),
            );
        }
    }

    pub(crate) fn status(&self, now: Instant) -> FederationStatus {
        let mut federates: Vec<FederateStatus> = self
            .federates
            .iter()
            .enumerate()
            .filter_map(|(id, f)| f.as_ref().map(|f| (id as FederateId, f)))
            .map(|(id, f)| FederateStatus {
                name: f.name.to_string(),
                time: self.time.time(id),
                lookahead: self.time.lookahead(id),
                bound: self.time.bound(id),
                galt: self.time.galt(id),
                constrained: self.time.constrained(id) == Constrained::Yes,
                state: match self.time.advance(id) {
                    Some((kind, time)) => FederateState::Advancing { kind, time },
                    None => FederateState::Granted,
                },
                queued: f.queue.len(),
                earliest_queued: f.queue.first_key_value().map(|(k, _)| k.0),
                identity: f.peer.identity.as_ref().map(|i| i.name.clone()),
                key_exchange: f.peer.key_exchange.clone(),
            })
            .collect();
        federates.sort_by(|a, b| a.name.cmp(&b.name));
        FederationStatus {
            name: self.name.clone(),
            federates,
            objects: self.objects.len(),
            sync_points: self.sync_points.keys().cloned().collect(),
            since_last_grant: self.last_grant.map(|t| now.saturating_duration_since(t)),
        }
    }

    /// Who waits for whom: every advancing constrained federate that cannot be granted yet,
    /// the federate whose bound holds its GALT, and the wait-for cycle if there is one.
    pub(crate) fn stall_report(&self) -> StallReport {
        let mut waits = Vec::new();
        let mut held_by: BTreeMap<FederateId, FederateId> = BTreeMap::new();
        for (id, federate) in self.federates.iter().enumerate() {
            let (id, Some(federate)) = (id as FederateId, federate) else {
                continue;
            };
            let Some((kind, time)) = self.time.advance(id) else {
                continue;
            };
            if self.time.constrained(id) != Constrained::Yes {
                continue;
            }
            let source = self.time.galt_source(id);
            if let Some(source) = source {
                held_by.insert(id, source.federate);
            }
            waits.push(WaitFor {
                federate: federate.name.to_string(),
                kind,
                requested: time,
                galt: source.map(|s| s.galt),
                held_by: source.map(|s| self.federate_name(s.federate).to_string()),
            });
        }
        let cycle = find_cycle(&held_by).map(|ids| {
            ids.into_iter()
                .map(|id| self.federate_name(id).to_string())
                .collect()
        });
        StallReport {
            federation: self.name.clone(),
            waits,
            cycle,
        }
    }

    fn connection(&self, id: FederateId) -> Option<ConnectionId> {
        self.federates
            .get(id as usize)
            .and_then(Option::as_ref)
            .map(|f| f.connection)
    }

    pub(crate) fn federate_name(&self, id: FederateId) -> Arc<str> {
        self.federates
            .get(id as usize)
            .and_then(Option::as_ref)
            .map_or_else(|| Arc::from("<resigned>"), |f| f.name.clone())
    }

    fn federate_mut(&mut self, id: FederateId) -> Result<&mut Federate, RtiError> {
        self.federates
            .get_mut(id as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| RtiError::NotJoined("this request".into()))
    }

    fn owned_object(
        &self,
        id: FederateId,
        object: ObjectInstanceHandle,
    ) -> Result<&Object, RtiError> {
        let found = self
            .objects
            .get(&object)
            .ok_or_else(|| RtiError::ObjectNotFound(object.to_string()))?;
        if found.owner != id {
            return Err(RtiError::NotOwner {
                object: found.name.clone(),
                owner: self.federate_name(found.owner).to_string(),
            });
        }
        Ok(found)
    }

    fn class(&self, class: ObjectClassHandle) -> Result<&ClassDeclarations, RtiError> {
        self.classes
            .get(class.0 as usize)
            .ok_or_else(|| unknown("object class", class))
    }

    fn class_mut(&mut self, class: ObjectClassHandle) -> Result<&mut ClassDeclarations, RtiError> {
        self.classes
            .get_mut(class.0 as usize)
            .ok_or_else(|| unknown("object class", class))
    }

    fn interaction(
        &self,
        class: InteractionClassHandle,
    ) -> Result<&InteractionDeclarations, RtiError> {
        self.interactions
            .get(class.0 as usize)
            .ok_or_else(|| unknown("interaction class", class))
    }

    fn interaction_mut(
        &mut self,
        class: InteractionClassHandle,
    ) -> Result<&mut InteractionDeclarations, RtiError> {
        self.interactions
            .get_mut(class.0 as usize)
            .ok_or_else(|| unknown("interaction class", class))
    }
}

fn unknown(kind: &str, handle: impl std::fmt::Display) -> RtiError {
    RtiError::UnknownHandle {
        kind: kind.to_owned(),
        handle: handle.to_string(),
    }
}

fn set_order(callback: &mut Callback, new: Order) {
    match callback {
        Callback::Reflect { order, .. }
        | Callback::ReceiveInteraction { order, .. }
        | Callback::RemoveObject { order, .. } => *order = new,
        _ => {}
    }
}

/// Names are non-empty, printable and free of surrounding white space.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name.trim() == name
        && !name.chars().any(char::is_control)
}

/// The first cycle in a functional graph (each node waits for at most one other), in order.
fn find_cycle(next: &BTreeMap<FederateId, FederateId>) -> Option<Vec<FederateId>> {
    for &start in next.keys() {
        let mut path = Vec::new();
        let mut node = start;
        while let Some(&following) = next.get(&node) {
            if let Some(position) = path.iter().position(|&n| n == node) {
                return Some(path[position..].to_vec());
            }
            path.push(node);
            node = following;
        }
    }
    None
}
