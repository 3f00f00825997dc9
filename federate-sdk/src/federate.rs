//! The async federate.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use fedtwin_core::codec::MAX_VALUE_BYTES;
use fedtwin_core::message::{
    AdvanceKind, Callback, ClientMessage, Payload, Request, Response, ServerMessage,
};
use fedtwin_core::model::{
    AttributeHandle, InteractionClassHandle, ObjectClassHandle, ObjectInstanceHandle,
    ParameterHandle,
};
use fedtwin_core::{ObjectModel, RtiError, SimDuration, SimTime};
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::link::{Connector, Drive, Link};
use crate::values::{Delivery, Grant, Interaction, ObjectInstance, Received, Reflection, Values};

/// How a federate joins: federation, name, object model and time management.
///
/// # Examples
///
/// ```
/// use federate_sdk::{Federate, ObjectModel, SimDuration};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rti = federate_sdk::EmbeddedRti::start()?;
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// runtime.block_on(async {
///     let model = ObjectModel::new().with_object_class("Grid.Bus", ["voltage"]);
///     let mut grid = Federate::builder("demo", "grid")
///         .create_federation(model)
///         .time_regulating(SimDuration::from_millis(10)?)
///         .time_constrained()
///         .join(&rti)
///         .await?;
///     let grant = grid.step(SimDuration::from_millis(10)?).await?;
///     assert_eq!(grant.time, grid.time());
///     grid.resign().await?;
///     Ok(())
/// })
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct FederateBuilder {
    federation: String,
    name: String,
    model: Option<ObjectModel>,
    lookahead: Option<SimDuration>,
    constrained: bool,
    fastest_eigenvalue: Option<f64>,
    /// The dynamics are declared for a lock-step federate that checks its own steps.
    lock_step: bool,
    spin: Duration,
    drive: Drive,
}

impl FederateBuilder {
    pub(crate) fn new(federation: &str, name: &str) -> Self {
        Self {
            federation: federation.to_owned(),
            name: name.to_owned(),
            model: None,
            lookahead: None,
            constrained: false,
            fastest_eigenvalue: None,
            lock_step: false,
            spin: Duration::from_micros(20),
            drive: Drive::Thread,
        }
    }

    /// Creates the federation with this object model, or, if it exists, merges the model into
    /// the federation's (new classes and members are added; nothing is removed or renumbered).
    pub fn create_federation(mut self, model: ObjectModel) -> Self {
        self.model = Some(model);
        self
    }

    /// Makes the federate time-regulating: it promises never to send a timestamped message
    /// earlier than its logical time plus `lookahead`.
    pub fn time_regulating(mut self, lookahead: SimDuration) -> Self {
        self.lookahead = Some(lookahead);
        self
    }

    /// Makes the federate time-constrained: it receives timestamped messages in timestamp
    /// order and never one from its past.
    pub fn time_constrained(mut self) -> Self {
        self.constrained = true;
        self
    }

    /// Declares the federate's fastest dynamics (`|lambda|` in 1/s, or `1 / time constant`):
    /// the RTI then refuses a lookahead or step that breaks the stability rule
    /// `step + lookahead <= alpha * 2 / |lambda_max|` among coupled federates.
    pub fn fastest_eigenvalue(mut self, lambda: f64) -> Self {
        self.fastest_eigenvalue = Some(lambda);
        self.lock_step = false;
        self
    }

    /// Declares the fastest dynamics of a lock-step federate, which checks its own steps
    /// against [`Federate::coupled_dynamics`] (the FMI adapter does): the RTI refuses none of
    /// its steps for them and tells them to the federates coupled with it that ask.
    pub fn lock_step_dynamics(mut self, lambda: f64) -> Self {
        self.fastest_eigenvalue = Some(lambda);
        self.lock_step = true;
        self
    }

    /// How long to poll (yielding the CPU) for the RTI's answer before parking the thread
    /// (default 20 us). Zero suits many federates sharing few cores.
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// Over QUIC, carries the connection as a task on the tokio runtime that joins instead of
    /// on a thread of its own: a message then needs no hand-off between threads (about 20 us
    /// less per round trip on the bench machine). Acknowledgements, keep-alives and session
    /// resume run on that runtime, so it must keep running: a multi-thread runtime, or one
    /// that is never blocked for long (the idle timeout closes a connection left unserved).
    /// No effect on an embedded RTI. The blocking federate always does this, on its own
    /// runtime.
    pub fn io_on_runtime(self) -> Self {
        self.drive_on_caller()
    }

    /// Carries a QUIC connection on the runtime that joins (the blocking federate's own).
    pub(crate) fn drive_on_caller(mut self) -> Self {
        self.drive = Drive::Caller;
        self
    }

    /// Connects, creates the federation if asked, joins and enables time management.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] naming the refused step (for example a federate name in use),
    /// [`Error::Disconnected`] if the RTI is gone, [`Error::Connect`] or [`Error::Closed`] if
    /// it cannot be reached or refuses the connection, [`Error::CertificateRevoked`] if it
    /// refuses this federate's certificate as revoked (or this federate the RTI's).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped join may leave the federate joined until the connection,
    /// dropped with it, closes.
    pub async fn join(mut self, rti: impl Into<Connector>) -> Result<Federate> {
        let link = Link::open(&rti.into(), self.spin, self.drive).await?;
        let mut federate = Federate {
            link,
            state: State::default(),
            name: self.name.clone(),
            federation: self.federation.clone(),
            model: Arc::new(ObjectModel::new()),
            names: Names::default(),
        };
        if let Some(model) = self.model.take() {
            federate
                .call(Request::CreateFederation {
                    federation: self.federation.clone(),
                    model,
                    if_missing: true,
                })
                .await?;
        }
        let joined = federate
            .call(Request::Join {
                federation: self.federation.clone(),
                federate: self.name.clone(),
            })
            .await?;
        let Response::Joined { model, time, .. } = joined else {
            return Err(unexpected("join", &joined));
        };
        federate.names = Names::new(&model);
        federate.model = Arc::new(model);
        federate.state.time = time;
        if let Err(error) = self.set_up(&mut federate).await {
            // Joined but not as asked: leave, rather than be dropped and counted lost (which
            // halts a federation under `halt` and keeps the name taken for a resume's grace).
            if let Err(resign) = federate.resign().await {
                debug!(%resign, "resigning after a failed join");
            }
            return Err(error);
        }
        info!(federation = %self.federation, federate = %self.name, "joined");
        Ok(federate)
    }

    /// What the builder asks for after the join: dynamics, regulation, constraint.
    async fn set_up(&self, federate: &mut Federate) -> Result<()> {
        if let Some(lambda) = self.fastest_eigenvalue {
            federate.declare(lambda, self.lock_step).await?;
        }
        if let Some(lookahead) = self.lookahead {
            federate.enable_time_regulation(lookahead).await?;
        }
        if self.constrained {
            federate.enable_time_constrained().await?;
        }
        Ok(())
    }
}

/// A joined federate. Methods take `&mut self`: one call at a time, as the protocol wants.
///
/// Updates and interactions are pipelined: they return once sent, and a refusal by the RTI
/// (rare, since the SDK checks the same rules first) is reported by the next call as
/// [`Error::EarlierRefused`].
#[derive(Debug)]
pub struct Federate {
    link: Link,
    state: State,
    name: String,
    federation: String,
    model: Arc<ObjectModel>,
    names: Names,
}

/// Everything learned from the RTI's messages.
#[derive(Debug, Default)]
struct State {
    next_request: u64,
    /// The request whose response a call is waiting for, and that response once it came.
    awaiting: Option<u64>,
    answer: Option<std::result::Result<Response, RtiError>>,
    /// Pipelined requests not known to have succeeded, oldest first. They are answered only
    /// when refused; a later answer, or the grant of a later advance, confirms them.
    unanswered: VecDeque<(u64, &'static str)>,
    /// The id of the last advance request, whose grant confirms everything sent before it.
    advance_request: u64,
    /// The first refusal of a pipelined request, reported by the next call.
    deferred: Option<Error>,
    time: SimTime,
    bound: Option<SimTime>,
    lookahead: Option<SimDuration>,
    constrained: bool,
    advancing: bool,
    granted: Option<SimTime>,
    deliveries: Vec<Delivery>,
    objects: HashMap<ObjectInstanceHandle, ObjectInstance>,
    owned: HashMap<ObjectInstanceHandle, ObjectClassHandle>,
    published: HashMap<ObjectClassHandle, BTreeSet<AttributeHandle>>,
    published_interactions: BTreeSet<InteractionClassHandle>,
    announced: BTreeMap<String, Payload>,
    synchronized: BTreeSet<String>,
    /// Why the federation halted, once the RTI said so.
    halted: Option<String>,
}

/// Shared names of the object model, so that deliveries carry names without allocating.
#[derive(Debug, Default)]
struct Names {
    classes: Vec<Arc<str>>,
    attributes: Vec<Vec<Arc<str>>>,
    interactions: Vec<Arc<str>>,
    parameters: Vec<Vec<Arc<str>>>,
}

impl Names {
    fn new(model: &ObjectModel) -> Self {
        let names = |list: &[String]| list.iter().map(|n| Arc::from(n.as_str())).collect();
        Self {
            classes: model
                .object_classes
                .iter()
                .map(|c| Arc::from(c.name.as_str()))
                .collect(),
            attributes: model
                .object_classes
                .iter()
                .map(|c| names(&c.attributes))
                .collect(),
            interactions: model
                .interaction_classes
                .iter()
                .map(|c| Arc::from(c.name.as_str()))
                .collect(),
            parameters: model
                .interaction_classes
                .iter()
                .map(|c| names(&c.parameters))
                .collect(),
        }
    }

    fn class(&self, class: ObjectClassHandle) -> Arc<str> {
        self.classes
            .get(class.0 as usize)
            .cloned()
            .unwrap_or_else(|| class.to_string().into())
    }

    fn attribute(&self, class: ObjectClassHandle, attribute: AttributeHandle) -> Arc<str> {
        self.attributes
            .get(class.0 as usize)
            .and_then(|a| a.get(attribute.0 as usize))
            .cloned()
            .unwrap_or_else(|| attribute.to_string().into())
    }

    fn interaction(&self, class: InteractionClassHandle) -> Arc<str> {
        self.interactions
            .get(class.0 as usize)
            .cloned()
            .unwrap_or_else(|| class.to_string().into())
    }

    fn parameter(&self, class: InteractionClassHandle, parameter: ParameterHandle) -> Arc<str> {
        self.parameters
            .get(class.0 as usize)
            .and_then(|p| p.get(parameter.0 as usize))
            .cloned()
            .unwrap_or_else(|| parameter.to_string().into())
    }
}

impl Federate {
    /// Starts describing a federate named `name` in federation `federation`.
    pub fn builder(federation: &str, name: &str) -> FederateBuilder {
        FederateBuilder::new(federation, name)
    }

    /// This federate's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The federation's name.
    pub fn federation(&self) -> &str {
        &self.federation
    }

    /// The federation's object model.
    pub fn model(&self) -> &ObjectModel {
        &self.model
    }

    /// Logical time: the last grant.
    pub fn time(&self) -> SimTime {
        self.state.time
    }

    /// The earliest timestamp this federate may send with, when regulating.
    pub fn bound(&self) -> Option<SimTime> {
        self.state.bound
    }

    /// The lookahead, when regulating.
    pub fn lookahead(&self) -> Option<SimDuration> {
        self.state.lookahead
    }

    /// Publishes attributes given by full name, e.g. `["Grid.Bus.voltage"]`.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] for an unknown name, [`Error::Refused`] if the RTI refuses.
    pub async fn publish(&mut self, attributes: &[&str]) -> Result<()> {
        for (class, handles) in self.group_attributes(attributes)? {
            self.call(Request::PublishObjectClass {
                class,
                attributes: handles.clone(),
            })
            .await?;
            self.state
                .published
                .entry(class)
                .or_default()
                .extend(handles);
        }
        Ok(())
    }

    /// Subscribes to attributes given by full name. Existing objects of their classes are
    /// discovered at once.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] for an unknown name, [`Error::Refused`] if the RTI refuses.
    pub async fn subscribe(&mut self, attributes: &[&str]) -> Result<()> {
        for (class, handles) in self.group_attributes(attributes)? {
            self.call(Request::SubscribeObjectClass {
                class,
                attributes: handles,
            })
            .await?;
        }
        Ok(())
    }

    /// Publishes an interaction class.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] for an unknown class, [`Error::Refused`] if the RTI refuses.
    pub async fn publish_interaction(&mut self, class: &str) -> Result<()> {
        let class = self.model.interaction_class(class)?;
        self.call(Request::PublishInteraction { class }).await?;
        self.state.published_interactions.insert(class);
        Ok(())
    }

    /// Subscribes to an interaction class.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] for an unknown class, [`Error::Refused`] if the RTI refuses.
    pub async fn subscribe_interaction(&mut self, class: &str) -> Result<()> {
        let class = self.model.interaction_class(class)?;
        self.call(Request::SubscribeInteraction { class }).await?;
        Ok(())
    }

    /// Registers an object of a published class; the RTI names it when `name` is `None`.
    ///
    /// # Errors
    ///
    /// [`Error::Model`], or [`Error::Refused`] (class not published, name in use).
    pub async fn register_object(
        &mut self,
        class: &str,
        name: Option<&str>,
    ) -> Result<ObjectInstance> {
        let class_handle = self.model.object_class(class)?;
        let response = self
            .call(Request::RegisterObject {
                class: class_handle,
                name: name.map(str::to_owned),
            })
            .await?;
        let Response::ObjectRegistered { object, name } = response else {
            return Err(unexpected("register object", &response));
        };
        self.state.owned.insert(object, class_handle);
        Ok(ObjectInstance {
            handle: object,
            class: self.names.class(class_handle),
            name: name.into(),
        })
    }

    /// Deletes an owned object; subscribers see it removed (in timestamp order when a
    /// timestamp is given by a regulating federate).
    ///
    /// # Errors
    ///
    /// [`Error::NotOwned`], or [`Error::Refused`] for a timestamp below the bound.
    pub async fn delete_object(
        &mut self,
        object: &ObjectInstance,
        timestamp: Option<SimTime>,
    ) -> Result<()> {
        if !self.state.owned.contains_key(&object.handle) {
            return Err(Error::NotOwned(object.name.to_string()));
        }
        self.check_bound("delete object", timestamp)?;
        self.call(Request::DeleteObject {
            object: object.handle,
            timestamp,
        })
        .await?;
        self.state.owned.remove(&object.handle);
        Ok(())
    }

    /// Updates attributes of an owned object. Pipelined: returns once sent.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwned`], [`Error::Model`], [`Error::NotPublished`], [`Error::Refused`] for a
    /// timestamp below the bound, or an earlier pipelined refusal.
    pub fn update(
        &mut self,
        object: &ObjectInstance,
        values: Values,
        timestamp: Option<SimTime>,
    ) -> Result<()> {
        self.take_deferred()?;
        let request = self.update_request(object, values, timestamp)?;
        self.pipeline("update attributes", request)
    }

    /// Updates attributes in receive order, best effort: over QUIC as a datagram that the
    /// network may drop, with no answer from the RTI. For high-rate values where the latest
    /// matters and a loss is harmless (telemetry, visualisation).
    ///
    /// # Errors
    ///
    /// As [`Federate::update`], checked here; the RTI's own refusals are only logged by it.
    pub fn update_best_effort(&mut self, object: &ObjectInstance, values: Values) -> Result<()> {
        let request = self.update_request(object, values, None)?;
        self.link.send_best_effort(ClientMessage {
            id: ClientMessage::BEST_EFFORT,
            request,
        })
    }

    /// Sends an interaction of a published class. Pipelined: returns once sent.
    ///
    /// # Errors
    ///
    /// [`Error::Model`], [`Error::NotPublished`], [`Error::Refused`] for a timestamp below
    /// the bound, or an earlier pipelined refusal.
    pub fn send_interaction(
        &mut self,
        class: &str,
        parameters: Values,
        timestamp: Option<SimTime>,
    ) -> Result<()> {
        self.take_deferred()?;
        let request = self.interaction_request(class, parameters, timestamp)?;
        self.pipeline("send interaction", request)
    }

    /// Sends an interaction in receive order, best effort (see
    /// [`Federate::update_best_effort`]).
    ///
    /// # Errors
    ///
    /// As [`Federate::send_interaction`], checked here.
    pub fn send_interaction_best_effort(&mut self, class: &str, parameters: Values) -> Result<()> {
        let request = self.interaction_request(class, parameters, None)?;
        self.link.send_best_effort(ClientMessage {
            id: ClientMessage::BEST_EFFORT,
            request,
        })
    }

    /// Checks an update the way the RTI will and encodes it.
    fn update_request(
        &self,
        object: &ObjectInstance,
        values: Values,
        timestamp: Option<SimTime>,
    ) -> Result<Request> {
        let Some(&class) = self.state.owned.get(&object.handle) else {
            return Err(Error::NotOwned(object.name.to_string()));
        };
        let published = self.state.published.get(&class);
        check_size(&format!("the update of `{}`", object.name), &values)?;
        let mut encoded = Vec::with_capacity(values.0.len());
        for (name, payload) in values.0 {
            let attribute = self.model.attribute(class, &name)?;
            if !published.is_some_and(|p| p.contains(&attribute)) {
                return Err(Error::NotPublished(format!("{}.{name}", object.class)));
            }
            encoded.push((attribute, payload));
        }
        self.check_bound("update attributes", timestamp)?;
        Ok(Request::UpdateAttributes {
            object: object.handle,
            values: encoded,
            timestamp,
        })
    }

    /// Checks an interaction the way the RTI will and encodes it.
    fn interaction_request(
        &self,
        class: &str,
        parameters: Values,
        timestamp: Option<SimTime>,
    ) -> Result<Request> {
        let class_handle = self.model.interaction_class(class)?;
        if !self.state.published_interactions.contains(&class_handle) {
            return Err(Error::NotPublished(class.to_owned()));
        }
        check_size(&format!("the interaction `{class}`"), &parameters)?;
        let mut encoded = Vec::with_capacity(parameters.0.len());
        for (name, payload) in parameters.0 {
            encoded.push((self.model.parameter(class_handle, &name)?, payload));
        }
        self.check_bound("send interaction", timestamp)?;
        Ok(Request::SendInteraction {
            class: class_handle,
            parameters: encoded,
            timestamp,
        })
    }

    /// Becomes time-regulating with `lookahead`.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] if already regulating or advancing.
    pub async fn enable_time_regulation(&mut self, lookahead: SimDuration) -> Result<()> {
        let response = self
            .call(Request::EnableTimeRegulation { lookahead })
            .await?;
        let Response::Regulation { bound, .. } = response else {
            return Err(unexpected("enable time regulation", &response));
        };
        self.state.bound = Some(bound);
        self.state.lookahead = Some(lookahead);
        Ok(())
    }

    /// Declares this federate's fastest dynamics, `|lambda|` in 1/s.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] with [`RtiError::Unstable`] if the current lookahead already breaks
    /// the stability rule, or the value is not a finite non-zero number.
    pub async fn declare_dynamics(&mut self, fastest_eigenvalue: f64) -> Result<()> {
        self.declare(fastest_eigenvalue, false).await
    }

    async fn declare(&mut self, fastest_eigenvalue: f64, lock_step: bool) -> Result<()> {
        self.call(Request::DeclareDynamics {
            fastest_eigenvalue,
            lock_step,
        })
        .await
        .map(|_| ())
    }

    /// The fastest dynamics declared among the federates coupled with this one by
    /// subscriptions, this one included: the declaring federate's name and `|lambda|` in 1/s.
    /// A lock-step federate checks its step against it once its partners have joined and
    /// declared their publications and subscriptions (after a start barrier).
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`].
    pub async fn coupled_dynamics(&mut self) -> Result<Option<(String, f64)>> {
        match self.call(Request::QueryCoupledDynamics).await? {
            Response::CoupledDynamics(fastest) => Ok(fastest),
            other => Err(unexpected("query coupled dynamics", &other)),
        }
    }

    /// Stops being time-regulating.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] if not regulating.
    pub async fn disable_time_regulation(&mut self) -> Result<()> {
        self.call(Request::DisableTimeRegulation).await?;
        self.state.bound = None;
        self.state.lookahead = None;
        Ok(())
    }

    /// Changes the lookahead. A lower lookahead takes effect as the federate advances: the
    /// bound already promised never moves back.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] if not regulating.
    pub async fn modify_lookahead(&mut self, lookahead: SimDuration) -> Result<()> {
        let response = self.call(Request::ModifyLookahead { lookahead }).await?;
        let Response::Regulation { bound, .. } = response else {
            return Err(unexpected("modify lookahead", &response));
        };
        self.state.bound = Some(bound);
        self.state.lookahead = Some(lookahead);
        Ok(())
    }

    /// Becomes time-constrained, waiting until the RTI confirms (at once unless this federate
    /// is ahead of what others may still send).
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] if already constrained or advancing.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the request stays pending at the RTI.
    pub async fn enable_time_constrained(&mut self) -> Result<()> {
        self.call(Request::EnableTimeConstrained).await?;
        self.wait(|s| s.constrained).await
    }

    /// Stops being time-constrained; queued timestamped messages are delivered at once.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] if not constrained.
    pub async fn disable_time_constrained(&mut self) -> Result<()> {
        self.call(Request::DisableTimeConstrained).await?;
        self.state.constrained = false;
        Ok(())
    }

    /// Time advance request (TAR): granted at `time` once every timestamped message stamped at
    /// or before `time` has been delivered.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] for a time in the past, [`Error::Disconnected`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if dropped after sending, the advance stays pending and
    /// [`Federate::wait_for_grant`] collects its grant.
    pub async fn advance_to(&mut self, time: SimTime) -> Result<Grant> {
        self.advance(AdvanceKind::TimeAdvance, time).await
    }

    /// Time advance request available (TARA): like [`Federate::advance_to`], but messages
    /// stamped exactly `time` may still arrive after the grant. Needed with zero lookahead.
    ///
    /// # Errors
    ///
    /// As [`Federate::advance_to`].
    ///
    /// # Cancel safety
    ///
    /// As [`Federate::advance_to`].
    pub async fn advance_to_available(&mut self, time: SimTime) -> Result<Grant> {
        self.advance(AdvanceKind::TimeAdvanceAvailable, time).await
    }

    /// Next event request (NER): granted at the earlier of `time` and the next timestamped
    /// message, with the messages stamped at the grant.
    ///
    /// # Errors
    ///
    /// As [`Federate::advance_to`].
    ///
    /// # Cancel safety
    ///
    /// As [`Federate::advance_to`].
    pub async fn next_event(&mut self, time: SimTime) -> Result<Grant> {
        self.advance(AdvanceKind::NextEvent, time).await
    }

    /// Next event request available (NERA): like [`Federate::next_event`], allowing more
    /// messages at the grant time to follow. Needed with zero lookahead.
    ///
    /// # Errors
    ///
    /// As [`Federate::advance_to`].
    ///
    /// # Cancel safety
    ///
    /// As [`Federate::advance_to`].
    pub async fn next_event_available(&mut self, time: SimTime) -> Result<Grant> {
        self.advance(AdvanceKind::NextEventAvailable, time).await
    }

    /// Flush queue request: every queued timestamped message now, then a grant at the
    /// earliest of `time`, those messages' timestamps and what others may still send.
    ///
    /// # Errors
    ///
    /// As [`Federate::advance_to`].
    ///
    /// # Cancel safety
    ///
    /// As [`Federate::advance_to`].
    pub async fn flush_queue(&mut self, time: SimTime) -> Result<Grant> {
        self.advance(AdvanceKind::FlushQueue, time).await
    }

    /// One lock-step step: a time advance request to the current time plus `step`.
    ///
    /// # Errors
    ///
    /// [`Error::Time`] if that passes the end of time, else as [`Federate::advance_to`].
    ///
    /// # Cancel safety
    ///
    /// As [`Federate::advance_to`].
    pub async fn step(&mut self, step: SimDuration) -> Result<Grant> {
        let time = self.state.time.checked_add(step)?;
        self.advance_to(time).await
    }

    /// Waits for the grant of an advance whose call was cancelled.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] if no advance is pending, [`Error::Disconnected`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_for_grant(&mut self) -> Result<Grant> {
        if !self.state.advancing {
            return Err(Error::Protocol("no time advance is pending".into()));
        }
        self.state.awaiting = Some(self.state.advance_request);
        self.await_grant().await
    }

    /// The GALT: no timestamped message below it can still arrive. `None` means nothing
    /// constrains this federate.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`].
    pub async fn galt(&mut self) -> Result<Option<SimTime>> {
        match self.call(Request::QueryGalt).await? {
            Response::Galt(galt) => Ok(galt),
            other => Err(unexpected("query GALT", &other)),
        }
    }

    /// Deliveries that have arrived without an advance (receive-order messages, discoveries),
    /// without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`], or an earlier pipelined refusal.
    pub fn take_deliveries(&mut self) -> Result<Vec<Delivery>> {
        self.poll()?;
        self.check_halted()?;
        self.take_deferred()?;
        Ok(std::mem::take(&mut self.state.deliveries))
    }

    /// Whether `label` has been announced to this federate (or already reached), from what
    /// has arrived so far, without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`], or the federation's halt.
    pub fn sync_point_announced(&mut self, label: &str) -> Result<bool> {
        self.poll()?;
        self.check_halted()?;
        Ok(self.state.announced.contains_key(label) || self.state.synchronized.contains(label))
    }

    /// Registers a synchronization point for `federates` (empty: the whole federation,
    /// including federates that join later).
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] if the label is in use or a federate is unknown.
    pub async fn register_sync_point(&mut self, label: &str, federates: &[&str]) -> Result<()> {
        self.call(Request::RegisterSyncPoint {
            label: label.to_owned(),
            tag: Payload::default(),
            federates: federates.iter().map(|f| (*f).to_owned()).collect(),
        })
        .await?;
        Ok(())
    }

    /// Waits until `label` is announced to this federate.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_for_sync_point(&mut self, label: &str) -> Result<()> {
        self.wait(|s| s.announced.contains_key(label) || s.synchronized.contains(label))
            .await
    }

    /// Reports reaching `label` (waiting for its announcement first) and waits until the
    /// whole synchronization set has.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] if this federate is not in the point's set.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe while waiting for the announcement; after that the achievement is sent and
    /// a second call is refused.
    pub async fn synchronize(&mut self, label: &str) -> Result<()> {
        self.wait_for_sync_point(label).await?;
        self.call(Request::AchieveSyncPoint {
            label: label.to_owned(),
        })
        .await?;
        self.wait(|s| s.synchronized.contains(label)).await?;
        // The RTI forgets a completed point, so the label may be registered again: a later
        // round must wait for its own announcement and completion.
        self.state.announced.remove(label);
        self.state.synchronized.remove(label);
        Ok(())
    }

    /// Leaves the federation; objects this federate owns are deleted.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] or [`Error::Disconnected`]; [`Error::EarlierRefused`] when a
    /// pipelined request was refused and not yet reported: the federate has resigned all the
    /// same.
    pub async fn resign(mut self) -> Result<()> {
        // A refusal still to be reported must not keep the federate from leaving: dropped
        // without resigning, the RTI would count it lost (and halt a federation under `halt`).
        let earlier = self.take_deferred();
        self.call_quietly(Request::Resign).await?;
        info!(federation = %self.federation, federate = %self.name, "resigned");
        earlier.and_then(|()| self.take_deferred())
    }

    /// An advance is answered only if refused; otherwise its grant is the answer. Pipelined
    /// refusals that arrive meanwhile are left for the next call.
    async fn advance(&mut self, kind: AdvanceKind, time: SimTime) -> Result<Grant> {
        if self.state.advancing {
            return Err(Error::AdvancePending);
        }
        self.take_deferred()?;
        self.state.answer = None;
        let id = self.send(Request::Advance { kind, time })?;
        self.state.advance_request = id;
        self.state.awaiting = Some(id);
        self.state.advancing = true;
        self.await_grant().await
    }

    /// Waits for the pending advance's grant or refusal.
    async fn await_grant(&mut self) -> Result<Grant> {
        let waited = self
            .wait(|s| s.granted.is_some() || s.answer.as_ref().is_some_and(|a| a.is_err()))
            .await;
        self.state.awaiting = None;
        let answer = self.state.answer.take();
        if let Err(error) = waited {
            self.state.advancing = false;
            return Err(error);
        }
        match answer {
            Some(Err(RtiError::FederationHalted(reason))) => {
                self.state.advancing = false;
                Err(Error::Halted(reason))
            }
            Some(Err(source)) => {
                self.state.advancing = false;
                Err(Error::Refused {
                    request: "advance",
                    source,
                })
            }
            _ => Ok(self.collect_grant()),
        }
    }

    fn collect_grant(&mut self) -> Grant {
        let time = self.state.granted.take().unwrap_or(self.state.time);
        self.state.advancing = false;
        self.state.time = time;
        Grant {
            time,
            deliveries: std::mem::take(&mut self.state.deliveries),
        }
    }

    /// Sends a request and waits for its response. A pipelined refusal that arrived
    /// meanwhile is reported instead, so that it surfaces as early as possible.
    async fn call(&mut self, request: Request) -> Result<Response> {
        let response = self.call_quietly(request).await?;
        self.take_deferred()?;
        Ok(response)
    }

    /// [`Federate::call`] leaving pipelined refusals that arrive meanwhile for the next call:
    /// for requests whose outcome must not be lost, such as an advance.
    async fn call_quietly(&mut self, request: Request) -> Result<Response> {
        self.take_deferred()?;
        // An answer left by a call whose future was dropped is not this call's.
        self.state.answer = None;
        let what = request.name();
        let id = self.send(request)?;
        self.state.awaiting = Some(id);
        let waited = self.wait(|s| s.answer.is_some()).await;
        self.state.awaiting = None;
        waited?;
        match self.state.answer.take() {
            Some(Ok(response)) => Ok(response),
            Some(Err(RtiError::FederationHalted(reason))) => Err(Error::Halted(reason)),
            Some(Err(source)) => Err(Error::Refused {
                request: what,
                source,
            }),
            None => Err(Error::Protocol(format!("no response to {what}"))),
        }
    }

    /// Sends a request whose response is only checked later.
    fn pipeline(&mut self, what: &'static str, request: Request) -> Result<()> {
        let id = self.send(request)?;
        if self.state.unanswered.len() >= KEPT_UNCONFIRMED {
            // A federate that only sends never hears back when all goes well; its oldest
            // requests are forgotten, and a refusal of one is reported without its name.
            self.state.unanswered.pop_front();
        }
        self.state.unanswered.push_back((id, what));
        // Absorb what has arrived so that responses do not pile up in a long send loop.
        self.poll()
    }

    fn send(&mut self, request: Request) -> Result<u64> {
        if !matches!(request, Request::Resign) {
            self.check_halted()?;
        }
        self.state.next_request += 1;
        let id = self.state.next_request;
        self.link.send(ClientMessage { id, request })?;
        Ok(id)
    }

    /// Absorbs messages until `done`. A halted federation ends the wait with
    /// [`Error::Halted`]: nothing it waits for can come any more. The response to the request
    /// being answered (a resignation) is still waited for.
    async fn wait(&mut self, done: impl Fn(&State) -> bool) -> Result<()> {
        while !done(&self.state) {
            // A resignation still waits for its answer; an advance waits for nothing more.
            if self.state.awaiting.is_none() || self.state.advancing {
                self.check_halted()?;
            }
            let message = self.link.recv().await?;
            self.state.absorb(message, &self.names)?;
        }
        Ok(())
    }

    fn check_halted(&self) -> Result<()> {
        match &self.state.halted {
            Some(reason) => Err(Error::Halted(reason.clone())),
            None => Ok(()),
        }
    }

    /// See [`Link::take_session_task`].
    pub(crate) fn take_session_task(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        self.link.take_session_task()
    }

    fn poll(&mut self) -> Result<()> {
        while let Some(message) = self.link.try_recv()? {
            self.state.absorb(message, &self.names)?;
        }
        Ok(())
    }

    fn take_deferred(&mut self) -> Result<()> {
        match self.state.deferred.take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// The rule the RTI applies to timestamped sends, checked here first so that the error
    /// comes with the call that caused it.
    fn check_bound(&self, request: &'static str, timestamp: Option<SimTime>) -> Result<()> {
        if let (Some(timestamp), Some(bound)) = (timestamp, self.state.bound)
            && timestamp < bound
        {
            return Err(Error::Refused {
                request,
                source: RtiError::SendBelowBound { timestamp, bound },
            });
        }
        Ok(())
    }

    fn group_attributes(
        &self,
        attributes: &[&str],
    ) -> Result<BTreeMap<ObjectClassHandle, Vec<AttributeHandle>>> {
        let mut grouped: BTreeMap<ObjectClassHandle, Vec<AttributeHandle>> = BTreeMap::new();
        for path in attributes {
            let (class, attribute) = self.model.resolve_attribute(path)?;
            grouped.entry(class).or_default().push(attribute);
        }
        Ok(grouped)
    }
}

/// How many unconfirmed pipelined requests a federate remembers by name.
const KEPT_UNCONFIRMED: usize = 1 << 16;

impl State {
    fn absorb(&mut self, message: ServerMessage, names: &Names) -> Result<()> {
        match message {
            ServerMessage::Response { id, result } => self.on_response(id, result),
            ServerMessage::Callback(callback) => {
                self.on_callback(callback, names);
                Ok(())
            }
            // The link's session layer consumes these.
            ServerMessage::Session { .. }
            | ServerMessage::Resumed { .. }
            | ServerMessage::Handled { .. } => Ok(()),
        }
    }

    fn on_response(
        &mut self,
        id: u64,
        result: std::result::Result<Response, RtiError>,
    ) -> Result<()> {
        // Requests are handled in order: this answer confirms every quiet one before it.
        while self
            .unanswered
            .front()
            .is_some_and(|(earlier, _)| *earlier < id)
        {
            self.unanswered.pop_front();
        }
        if self.awaiting == Some(id) {
            self.answer = Some(result);
            return Ok(());
        }
        let what = match self.unanswered.front() {
            Some((expected, what)) if *expected == id => {
                let what = *what;
                self.unanswered.pop_front();
                what
            }
            // Beyond what is kept (see `pipeline`): still a pipelined request's refusal.
            _ if id <= self.next_request && result.is_err() => "an earlier update or interaction",
            _ if id <= self.next_request => {
                // The answer to a call whose future was dropped before it came.
                debug!(id, "answer to a cancelled call dropped");
                return Ok(());
            }
            _ => return Err(Error::Protocol(format!("response to unknown request {id}"))),
        };
        if let Err(source) = result {
            debug!(%source, request = what, "pipelined request refused");
            self.deferred.get_or_insert(Error::EarlierRefused {
                request: what,
                source,
            });
        }
        Ok(())
    }

    fn on_callback(&mut self, callback: Callback, names: &Names) {
        match callback {
            Callback::TimeAdvanceGrant { time, bound } => {
                // Granted, so the advance and all sent before it succeeded.
                let advance = self.advance_request;
                self.unanswered.retain(|(id, _)| *id > advance);
                self.granted = Some(time);
                if bound.is_some() {
                    self.bound = bound;
                }
            }
            Callback::TimeConstrainedEnabled { .. } => self.constrained = true,
            Callback::DiscoverObject {
                object,
                class,
                name,
                owner,
            } => {
                let instance = ObjectInstance {
                    handle: object,
                    class: names.class(class),
                    name: name.into(),
                };
                self.objects.insert(object, instance.clone());
                self.deliveries.push(Delivery::Discovered {
                    object: instance,
                    owner,
                });
            }
            Callback::Reflect {
                object,
                class,
                values,
                timestamp,
                order,
                sender,
            } => {
                let object = self
                    .objects
                    .get(&object)
                    .cloned()
                    .unwrap_or_else(|| ObjectInstance {
                        handle: object,
                        class: names.class(class),
                        name: object.to_string().into(),
                    });
                let values = values
                    .into_iter()
                    .map(|(attribute, payload)| (names.attribute(class, attribute), payload))
                    .collect();
                self.deliveries.push(Delivery::Reflection(Reflection {
                    object,
                    values: Received(values),
                    timestamp,
                    order,
                    sender,
                }));
            }
            Callback::ReceiveInteraction {
                class,
                parameters,
                timestamp,
                order,
                sender,
            } => {
                let parameters = parameters
                    .into_iter()
                    .map(|(parameter, payload)| (names.parameter(class, parameter), payload))
                    .collect();
                self.deliveries.push(Delivery::Interaction(Interaction {
                    class: names.interaction(class),
                    parameters: Received(parameters),
                    timestamp,
                    order,
                    sender,
                }));
            }
            Callback::RemoveObject {
                object,
                timestamp,
                sender,
                ..
            } => {
                let instance = self
                    .objects
                    .remove(&object)
                    .unwrap_or_else(|| ObjectInstance {
                        handle: object,
                        class: "?".into(),
                        name: object.to_string().into(),
                    });
                self.deliveries.push(Delivery::Removed {
                    object: instance,
                    timestamp,
                    sender,
                });
            }
            Callback::AnnounceSyncPoint { label, tag } => {
                // A new round of a label used before.
                self.synchronized.remove(&label);
                self.announced.insert(label, tag);
            }
            Callback::FederationSynchronized { label } => {
                self.synchronized.insert(label);
            }
            Callback::FederateLost { federate, reason } => {
                warn!(%federate, %reason, "federate lost");
                self.deliveries
                    .push(Delivery::FederateLost { federate, reason });
            }
            Callback::FederationHalted { reason } => {
                warn!(%reason, "federation halted");
                self.halted = Some(reason);
            }
            other => debug!(
                ?other,
                "callback not understood by this SDK version; ignored"
            ),
        }
    }
}

/// Refuses values too large to be delivered in one frame ([`MAX_VALUE_BYTES`]).
fn check_size(what: &str, values: &Values) -> Result<()> {
    let bytes: usize = values.0.iter().map(|(_, payload)| payload.len()).sum();
    if bytes > MAX_VALUE_BYTES {
        return Err(Error::TooLarge {
            what: what.to_owned(),
            bytes,
            max: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

fn unexpected(what: &str, response: &Response) -> Error {
    Error::Protocol(format!("unexpected answer to {what}: {response:?}"))
}
