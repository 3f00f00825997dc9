//! The same federate API for code without an async runtime.
//!
//! Each call runs the async call to completion on a small current-thread runtime owned by the
//! federate. Do not call these from inside an async runtime: use [`crate::Federate`] there.

use fedtwin_core::{ObjectModel, SimDuration, SimTime};

use crate::error::{Error, Result};
use crate::link::Connector;
use crate::values::{Delivery, Grant, ObjectInstance, Values};
use crate::{FederateBuilder, federate};

impl FederateBuilder {
    /// Joins like [`FederateBuilder::join`], returning a blocking federate.
    ///
    /// # Errors
    ///
    /// As [`FederateBuilder::join`], and [`Error::Runtime`] if the runtime cannot start.
    ///
    /// # Panics
    ///
    /// When called from within an async runtime (tokio forbids nested blocking).
    pub fn join_blocking(self, rti: impl Into<Connector>) -> Result<Federate> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        let inner = runtime.block_on(self.join(rti))?;
        Ok(Federate { runtime, inner })
    }
}

/// A joined federate with blocking calls. See [`crate::Federate`] for each call's meaning.
#[derive(Debug)]
pub struct Federate {
    runtime: tokio::runtime::Runtime,
    inner: federate::Federate,
}

impl Federate {
    /// This federate's name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The federation's object model.
    pub fn model(&self) -> &ObjectModel {
        self.inner.model()
    }

    /// Logical time.
    pub fn time(&self) -> SimTime {
        self.inner.time()
    }

    /// The earliest timestamp this federate may send with, when regulating.
    pub fn bound(&self) -> Option<SimTime> {
        self.inner.bound()
    }

    /// The async federate inside.
    pub fn as_async(&mut self) -> &mut federate::Federate {
        &mut self.inner
    }

    /// See [`crate::Federate::publish`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn publish(&mut self, attributes: &[&str]) -> Result<()> {
        self.runtime.block_on(self.inner.publish(attributes))
    }

    /// See [`crate::Federate::subscribe`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn subscribe(&mut self, attributes: &[&str]) -> Result<()> {
        self.runtime.block_on(self.inner.subscribe(attributes))
    }

    /// See [`crate::Federate::publish_interaction`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn publish_interaction(&mut self, class: &str) -> Result<()> {
        self.runtime.block_on(self.inner.publish_interaction(class))
    }

    /// See [`crate::Federate::subscribe_interaction`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn subscribe_interaction(&mut self, class: &str) -> Result<()> {
        self.runtime
            .block_on(self.inner.subscribe_interaction(class))
    }

    /// See [`crate::Federate::register_object`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn register_object(&mut self, class: &str, name: Option<&str>) -> Result<ObjectInstance> {
        self.runtime
            .block_on(self.inner.register_object(class, name))
    }

    /// See [`crate::Federate::delete_object`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn delete_object(
        &mut self,
        object: &ObjectInstance,
        timestamp: Option<SimTime>,
    ) -> Result<()> {
        self.runtime
            .block_on(self.inner.delete_object(object, timestamp))
    }

    /// See [`crate::Federate::update`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn update(
        &mut self,
        object: &ObjectInstance,
        values: Values,
        timestamp: Option<SimTime>,
    ) -> Result<()> {
        self.inner.update(object, values, timestamp)
    }

    /// See [`crate::Federate::send_interaction`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn send_interaction(
        &mut self,
        class: &str,
        parameters: Values,
        timestamp: Option<SimTime>,
    ) -> Result<()> {
        self.inner.send_interaction(class, parameters, timestamp)
    }

    /// See [`crate::Federate::update_best_effort`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn update_best_effort(&mut self, object: &ObjectInstance, values: Values) -> Result<()> {
        self.inner.update_best_effort(object, values)
    }

    /// See [`crate::Federate::send_interaction_best_effort`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn send_interaction_best_effort(&mut self, class: &str, parameters: Values) -> Result<()> {
        self.inner.send_interaction_best_effort(class, parameters)
    }

    /// See [`crate::Federate::modify_lookahead`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn modify_lookahead(&mut self, lookahead: SimDuration) -> Result<()> {
        self.runtime
            .block_on(self.inner.modify_lookahead(lookahead))
    }

    /// See [`crate::Federate::advance_to`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn advance_to(&mut self, time: SimTime) -> Result<Grant> {
        self.runtime.block_on(self.inner.advance_to(time))
    }

    /// See [`crate::Federate::advance_to_available`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn advance_to_available(&mut self, time: SimTime) -> Result<Grant> {
        self.runtime.block_on(self.inner.advance_to_available(time))
    }

    /// See [`crate::Federate::next_event`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn next_event(&mut self, time: SimTime) -> Result<Grant> {
        self.runtime.block_on(self.inner.next_event(time))
    }

    /// See [`crate::Federate::next_event_available`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn next_event_available(&mut self, time: SimTime) -> Result<Grant> {
        self.runtime.block_on(self.inner.next_event_available(time))
    }

    /// See [`crate::Federate::flush_queue`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn flush_queue(&mut self, time: SimTime) -> Result<Grant> {
        self.runtime.block_on(self.inner.flush_queue(time))
    }

    /// See [`crate::Federate::step`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn step(&mut self, step: SimDuration) -> Result<Grant> {
        self.runtime.block_on(self.inner.step(step))
    }

    /// See [`crate::Federate::galt`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn galt(&mut self) -> Result<Option<SimTime>> {
        self.runtime.block_on(self.inner.galt())
    }

    /// See [`crate::Federate::take_deliveries`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn take_deliveries(&mut self) -> Result<Vec<Delivery>> {
        self.inner.take_deliveries()
    }

    /// See [`crate::Federate::register_sync_point`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn register_sync_point(&mut self, label: &str, federates: &[&str]) -> Result<()> {
        self.runtime
            .block_on(self.inner.register_sync_point(label, federates))
    }

    /// See [`crate::Federate::synchronize`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn synchronize(&mut self, label: &str) -> Result<()> {
        self.runtime.block_on(self.inner.synchronize(label))
    }

    /// See [`crate::Federate::resign`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn resign(self) -> Result<()> {
        let Self { runtime, inner } = self;
        runtime.block_on(inner.resign())
    }
}
