//! The same federate API for code without an async runtime.
//!
//! Each call runs the async call to completion on a small current-thread runtime owned by the
//! federate. Over QUIC that runtime also carries the connection: the federate's own thread does
//! the network I/O while it waits for the RTI, so a grant reaches it without a hand-off between
//! threads, and a small keeper thread drives the connection between calls (acknowledgements,
//! keep-alives, resuming after a partition) while the simulator computes. Do not call these
//! from inside an async runtime: use [`crate::Federate`] there.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use fedtwin_core::{ObjectModel, SimDuration, SimTime};
use tokio::runtime::Runtime;

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
        let rti = rti.into();
        let quic = matches!(rti, Connector::Quic(_));
        let mut builder = tokio::runtime::Builder::new_current_thread();
        if quic {
            // The connection's sockets and timers live on this runtime; in one process the
            // runtime only ever waits on channels, which needs neither.
            builder.enable_all();
        }
        let runtime = Arc::new(builder.build().map_err(|e| Error::Runtime(e.to_string()))?);
        let joining = if quic { self.drive_on_caller() } else { self };
        let mut inner = runtime.block_on(joining.join(rti))?;
        let session = inner.take_session_task();
        let keeper = match session {
            Some(_) => Some(Keeper::start(runtime.clone())?),
            None => None,
        };
        Ok(Federate {
            inner,
            driver: Driver {
                runtime,
                keeper,
                session,
            },
        })
    }
}

/// A joined federate with blocking calls. See [`crate::Federate`] for each call's meaning.
#[derive(Debug)]
pub struct Federate {
    inner: federate::Federate,
    // Declared after `inner`, so dropped after it: the connection's task sees the link close
    // and ends the connection politely before the runtime goes.
    driver: Driver,
}

/// The federate's runtime and, over QUIC, what carries its connection.
#[derive(Debug)]
struct Driver {
    runtime: Arc<Runtime>,
    keeper: Option<Keeper>,
    /// The task carrying the QUIC connection on `runtime`.
    session: Option<tokio::task::JoinHandle<()>>,
}

impl Driver {
    /// Runs a call that does not wait for the RTI inside the runtime, so that the requests it
    /// queues wake the connection's task without a system call; they go out with the next
    /// call that waits (or the keeper's next turn), batched with it.
    fn run<T>(&self, call: impl FnOnce() -> T) -> T {
        if self.session.is_some() {
            self.runtime.block_on(async { call() })
        } else {
            call()
        }
    }

    /// Lets the connection's task take in what has arrived.
    fn catch_up(&self) {
        if self.session.is_some() {
            self.runtime.block_on(catch_up());
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        drop(self.keeper.take());
        // The link has dropped (see `Federate`): let the task close the connection, so that
        // the RTI sees the federate leave rather than lose it. Within an async runtime,
        // blocking is not allowed; the RTI then notices the loss by its idle timeout.
        if let Some(session) = self.session.take()
            && tokio::runtime::Handle::try_current().is_err()
        {
            let _ = self.runtime.block_on(async {
                // The timer must be made inside the runtime.
                tokio::time::timeout(Duration::from_secs(2), session).await
            });
        }
    }
}

/// Yields to the runtime a few times: once for it to poll the sockets and timers, then for
/// the tasks they woke (the endpoint, the connection, the session) to run.
async fn catch_up() {
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
}

/// How often the keeper drives an idle connection. Below the 25 ms within which QUIC peers
/// expect acknowledgements, so the RTI never retransmits to a federate that is computing.
const KEEPER_TICK: Duration = Duration::from_millis(5);

/// Drives the federate's runtime between calls. While the federate waits in a call, it owns
/// the runtime and the keeper's turn passes without effect.
#[derive(Debug)]
struct Keeper {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Keeper {
    fn start(runtime: Arc<Runtime>) -> Result<Self> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fedtwin-keeper".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(KEEPER_TICK)
                {
                    runtime.block_on(catch_up());
                }
            })
            .map_err(|e| Error::Runtime(e.to_string()))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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
        self.driver.runtime.block_on(self.inner.publish(attributes))
    }

    /// See [`crate::Federate::subscribe`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn subscribe(&mut self, attributes: &[&str]) -> Result<()> {
        self.driver
            .runtime
            .block_on(self.inner.subscribe(attributes))
    }

    /// See [`crate::Federate::publish_interaction`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn publish_interaction(&mut self, class: &str) -> Result<()> {
        self.driver
            .runtime
            .block_on(self.inner.publish_interaction(class))
    }

    /// See [`crate::Federate::subscribe_interaction`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn subscribe_interaction(&mut self, class: &str) -> Result<()> {
        self.driver
            .runtime
            .block_on(self.inner.subscribe_interaction(class))
    }

    /// See [`crate::Federate::register_object`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn register_object(&mut self, class: &str, name: Option<&str>) -> Result<ObjectInstance> {
        self.driver
            .runtime
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
        self.driver
            .runtime
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
        let inner = &mut self.inner;
        self.driver.run(|| inner.update(object, values, timestamp))
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
        let inner = &mut self.inner;
        self.driver
            .run(|| inner.send_interaction(class, parameters, timestamp))
    }

    /// See [`crate::Federate::update_best_effort`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn update_best_effort(&mut self, object: &ObjectInstance, values: Values) -> Result<()> {
        let inner = &mut self.inner;
        self.driver.run(|| inner.update_best_effort(object, values))
    }

    /// See [`crate::Federate::send_interaction_best_effort`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn send_interaction_best_effort(&mut self, class: &str, parameters: Values) -> Result<()> {
        let inner = &mut self.inner;
        self.driver
            .run(|| inner.send_interaction_best_effort(class, parameters))
    }

    /// See [`crate::Federate::modify_lookahead`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn modify_lookahead(&mut self, lookahead: SimDuration) -> Result<()> {
        self.driver
            .runtime
            .block_on(self.inner.modify_lookahead(lookahead))
    }

    /// See [`crate::Federate::advance_to`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn advance_to(&mut self, time: SimTime) -> Result<Grant> {
        self.driver.runtime.block_on(self.inner.advance_to(time))
    }

    /// See [`crate::Federate::advance_to_available`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn advance_to_available(&mut self, time: SimTime) -> Result<Grant> {
        self.driver
            .runtime
            .block_on(self.inner.advance_to_available(time))
    }

    /// See [`crate::Federate::next_event`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn next_event(&mut self, time: SimTime) -> Result<Grant> {
        self.driver.runtime.block_on(self.inner.next_event(time))
    }

    /// See [`crate::Federate::next_event_available`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn next_event_available(&mut self, time: SimTime) -> Result<Grant> {
        self.driver
            .runtime
            .block_on(self.inner.next_event_available(time))
    }

    /// See [`crate::Federate::flush_queue`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn flush_queue(&mut self, time: SimTime) -> Result<Grant> {
        self.driver.runtime.block_on(self.inner.flush_queue(time))
    }

    /// See [`crate::Federate::step`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn step(&mut self, step: SimDuration) -> Result<Grant> {
        self.driver.runtime.block_on(self.inner.step(step))
    }

    /// See [`crate::Federate::galt`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn galt(&mut self) -> Result<Option<SimTime>> {
        self.driver.runtime.block_on(self.inner.galt())
    }

    /// See [`crate::Federate::coupled_dynamics`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn coupled_dynamics(&mut self) -> Result<Option<(String, f64)>> {
        self.driver.runtime.block_on(self.inner.coupled_dynamics())
    }

    /// See [`crate::Federate::take_deliveries`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn take_deliveries(&mut self) -> Result<Vec<Delivery>> {
        self.driver.catch_up();
        self.inner.take_deliveries()
    }

    /// See [`crate::Federate::register_sync_point`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn register_sync_point(&mut self, label: &str, federates: &[&str]) -> Result<()> {
        self.driver
            .runtime
            .block_on(self.inner.register_sync_point(label, federates))
    }

    /// See [`crate::Federate::sync_point_announced`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn sync_point_announced(&mut self, label: &str) -> Result<bool> {
        self.driver.catch_up();
        self.inner.sync_point_announced(label)
    }

    /// See [`crate::Federate::synchronize`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn synchronize(&mut self, label: &str) -> Result<()> {
        self.driver.runtime.block_on(self.inner.synchronize(label))
    }

    /// See [`crate::Federate::resign`].
    ///
    /// # Errors
    ///
    /// As there.
    pub fn resign(self) -> Result<()> {
        let Self { inner, driver } = self;
        driver.runtime.block_on(inner.resign())
    }
}
