//! The engine behind in-process channels: a whole federation in one process, with no network
//! and no certificates.
//!
//! The [`Engine`] has no thread of its own: it runs on the threads of the federates that send.
//! A request goes into one queue; the sender that finds the engine free handles everything
//! queued and delivers the responses and grants before it returns, and a sender that finds it
//! busy leaves its request to the thread inside. Each federate receives on its own unbounded
//! tokio channel, which both async code (`recv`) and blocking code can wait on. Handing every
//! request to an engine thread instead cost two thread wake-ups per round trip, most of an
//! embedded step (`fedtwin-bench pingpong`: 5.9 µs with an engine thread, 3.6 µs without). A
//! small thread only checks for stalls, four times a second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use fedtwin_core::message::{ClientMessage, ServerMessage};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tracing::{Span, debug, info, info_span, warn};

use crate::engine::{ConnectionId, Engine, FaultSettings};
use fedtwin_core::status::{FederationStatus, StallReport};

/// The RTI has stopped; nothing more can be sent to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the embedded RTI has shut down")]
pub struct Stopped;

/// A running embedded RTI. Cheap to clone; the RTI stops when the last clone is dropped (open
/// connections then see their channel close).
///
/// # Examples
///
/// ```
/// let rti = fedtwin_rti::EmbeddedRti::start()?;
/// let connection = rti.connect()?;
/// # drop(connection);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct EmbeddedRti {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    next_connection: AtomicU64,
    /// Dropped to stop the stall checker.
    stop_checker: Option<Sender<()>>,
    checker: Option<JoinHandle<()>>,
}

/// What the engine is asked to do, queued for whichever thread holds it.
enum Inbound {
    Open {
        connection: ConnectionId,
        outbound: UnboundedSender<ServerMessage>,
    },
    Message(ConnectionId, ClientMessage),
    Close(ConnectionId),
    Inspect(Inspection),
    Tick,
    Shutdown,
}

type Inspection = Box<dyn FnOnce(&Engine, Instant) + Send>;

/// The engine and where its messages go, shared by the RTI's handles and every sender.
///
/// Requests go into one queue, and the thread that finds the engine free handles everything
/// queued, its own and others', before it lets go: nobody ever sleeps on the lock, and the
/// queue keeps the order in which requests were sent.
struct Shared {
    queue: Sender<Inbound>,
    pending: Receiver<Inbound>,
    state: Mutex<State>,
    stopped: AtomicBool,
    span: Span,
}

struct State {
    engine: Engine,
    outbound: HashMap<ConnectionId, UnboundedSender<ServerMessage>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn submit(&self, inbound: Inbound) -> Result<(), Stopped> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(Stopped);
        }
        self.queue.send(inbound).map_err(|_| Stopped)?;
        loop {
            // Pairs with the same fence in the holder, which checks the queue again after
            // letting go: either it sees this request or this thread sees the engine free.
            fence(Ordering::SeqCst);
            if self.pending.is_empty() {
                return Ok(());
            }
            match self.state.try_lock() {
                Ok(mut state) => self.drain(&mut state),
                Err(TryLockError::WouldBlock) => return Ok(()),
                Err(TryLockError::Poisoned(poisoned)) => {
                    // The engine panicked: nothing it holds can be trusted any more. Closing
                    // the channels ends every federate's wait.
                    self.stopped.store(true, Ordering::Release);
                    poisoned.into_inner().outbound.clear();
                    return Err(Stopped);
                }
            }
        }
    }

    /// Handles everything queued, then delivers what the engine sent. Holding the lock while
    /// delivering keeps every federate's messages in the engine's order.
    fn drain(&self, state: &mut State) {
        let _span = self.span.enter();
        let State { engine, outbound } = state;
        while let Ok(inbound) = self.pending.try_recv() {
            if self.stopped.load(Ordering::Acquire) {
                continue;
            }
            let now = Instant::now();
            match inbound {
                Inbound::Open {
                    connection,
                    outbound: channel,
                } => {
                    // Ids come from a counter, so the engine never finds one twice.
                    if engine.connect(connection).is_ok() {
                        outbound.insert(connection, channel);
                    }
                }
                Inbound::Message(connection, message) => engine.handle(now, connection, message),
                Inbound::Close(connection) => {
                    engine.disconnect(now, connection);
                    outbound.remove(&connection);
                }
                Inbound::Inspect(query) => query(engine, now),
                Inbound::Tick => {
                    engine.handle_timeout(now);
                    while let Some(report) = engine.poll_stall_report() {
                        warn!(federation = %report.federation, "no grant for a while; who waits for whom:\n{report}");
                    }
                }
                Inbound::Shutdown => {
                    self.stopped.store(true, Ordering::Release);
                    // Closing the channels tells every federate; the engine's memory goes
                    // now rather than with the last sender.
                    outbound.clear();
                    *engine = Engine::new();
                    debug!("embedded RTI stopped");
                }
            }
            while let Some(transmit) = engine.poll_transmit() {
                if let Some(channel) = outbound.get(&transmit.connection) {
                    // A federate that dropped its receiver is closing; its close follows.
                    let _ = channel.send(transmit.message);
                }
            }
            // In one process there is nobody to audit against; the events go to the log only.
            while let Some(event) = engine.poll_audit() {
                debug!(?event, "audit event");
            }
        }
    }

    fn inspect<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Engine, Instant) -> T + Send + 'static,
    ) -> Result<T, Stopped> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.submit(Inbound::Inspect(Box::new(move |engine, now| {
            let _ = reply.send(query(engine, now));
        })))?;
        // Answered by now, or soon by the thread that holds the engine.
        answer.recv().map_err(|_| Stopped)
    }
}

impl EmbeddedRti {
    /// Starts an RTI in this process.
    ///
    /// # Errors
    ///
    /// The operating system refused to start the stall checker's thread.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(FaultSettings::default())
    }

    /// Starts an RTI with these fault settings: the loss policy for a federate whose
    /// connection closes without resigning, and the stall alarm, which logs who waits for whom
    /// (a `warn` per stall) when a federation grants nothing for
    /// [`FaultSettings::stall_after`].
    ///
    /// # Errors
    ///
    /// The operating system refused to start the stall checker's thread.
    pub fn start_with(faults: FaultSettings) -> std::io::Result<Self> {
        let mut engine = Engine::new();
        engine.set_fault_settings(faults);
        let (queue, pending) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            queue,
            pending,
            state: Mutex::new(State {
                engine,
                outbound: HashMap::new(),
            }),
            stopped: AtomicBool::new(false),
            span: info_span!("rti", transport = "embedded"),
        });
        let (stop_checker, stopping) = crossbeam_channel::bounded::<()>(0);
        let checked = shared.clone();
        // The check scans each federation, so it runs on a tick rather than per message.
        let checker = std::thread::Builder::new()
            .name("fedtwin-rti".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopping.recv_timeout(STALL_CHECK_TICK) {
                    if checked.submit(Inbound::Tick).is_err() {
                        break;
                    }
                }
            })?;
        info!("embedded RTI started");
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                next_connection: AtomicU64::new(1),
                stop_checker: Some(stop_checker),
                checker: Some(checker),
            }),
        })
    }

    /// Opens a connection, as a federate process would open one to a daemon.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the RTI has stopped.
    pub fn connect(&self) -> Result<EmbeddedConnection, Stopped> {
        let connection = ConnectionId(self.inner.next_connection.fetch_add(1, Ordering::Relaxed));
        let (outbound, receiver) = unbounded_channel();
        self.inner.shared.submit(Inbound::Open {
            connection,
            outbound,
        })?;
        Ok(EmbeddedConnection {
            sender: EmbeddedSender {
                connection,
                shared: self.inner.shared.clone(),
            },
            receiver,
        })
    }

    /// The status of a federation, `None` if there is none of that name.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the RTI has stopped.
    pub fn status(&self, federation: &str) -> Result<Option<FederationStatus>, Stopped> {
        let name = federation.to_owned();
        self.inner
            .shared
            .inspect(move |engine, now| engine.status(&name, now))
    }

    /// Who waits for whom in a federation, `None` if there is none of that name.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the RTI has stopped.
    pub fn stall_report(&self, federation: &str) -> Result<Option<StallReport>, Stopped> {
        let name = federation.to_owned();
        self.inner
            .shared
            .inspect(move |engine, _| engine.stall_report(&name))
    }

    /// Names of the federations.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the RTI has stopped.
    pub fn federations(&self) -> Result<Vec<String>, Stopped> {
        self.inner
            .shared
            .inspect(|engine, _| engine.federations().map(str::to_owned).collect())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.stop_checker.take());
        if let Some(checker) = self.checker.take() {
            let _ = checker.join();
        }
        let _ = self.shared.submit(Inbound::Shutdown);
    }
}

/// One federate's connection to an [`EmbeddedRti`].
#[derive(Debug)]
pub struct EmbeddedConnection {
    /// The sending half; dropping it closes the connection.
    pub sender: EmbeddedSender,
    /// What the RTI sends; `None` once the RTI has shut down.
    pub receiver: UnboundedReceiver<ServerMessage>,
}

/// The sending half of an [`EmbeddedConnection`]. Dropping it tells the RTI the connection
/// closed, which resigns its federate if it had not resigned.
#[derive(Debug)]
pub struct EmbeddedSender {
    connection: ConnectionId,
    shared: Arc<Shared>,
}

impl EmbeddedSender {
    /// Sends a request. When no other thread is inside the RTI, it is handled on the calling
    /// thread, and its response and the grants and callbacks it causes are in their
    /// receivers' channels when this returns; otherwise the thread inside handles it.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the RTI has stopped.
    pub fn send(&self, message: ClientMessage) -> Result<(), Stopped> {
        self.shared
            .submit(Inbound::Message(self.connection, message))
    }
}

impl Drop for EmbeddedSender {
    fn drop(&mut self) {
        let _ = self.shared.submit(Inbound::Close(self.connection));
    }
}

/// How often the embedded RTI checks for stalled federations.
const STALL_CHECK_TICK: Duration = Duration::from_millis(250);
