//! The engine behind in-process channels: a whole federation in one process, with no network
//! and no certificates.
//!
//! One thread runs the [`Engine`]; federates reach it through a multi-producer crossbeam
//! channel and receive on their own unbounded tokio channel, which both async code (`recv`)
//! and blocking code can wait on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use fedtwin_core::message::{ClientMessage, ServerMessage};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tracing::{debug, info, info_span, warn};

use crate::engine::{ConnectionId, Engine, FaultSettings};
use fedtwin_core::status::{FederationStatus, StallReport};

type Inspection = Box<dyn FnOnce(&Engine, Instant) + Send>;

enum Inbound {
    Open {
        connection: ConnectionId,
        outbound: UnboundedSender<ServerMessage>,
    },
    Message(ConnectionId, ClientMessage),
    Close(ConnectionId),
    Inspect(Inspection),
    Shutdown,
}

/// The RTI has stopped; nothing more can be sent to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the embedded RTI has shut down")]
pub struct Stopped;

/// A running embedded RTI. Cheap to clone; the engine thread stops when the last clone is
/// dropped (open connections then see their channel close).
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
    inbound: Sender<Inbound>,
    next_connection: AtomicU64,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedRti {
    /// Starts the engine on its own thread.
    ///
    /// # Errors
    ///
    /// The operating system refused to start a thread.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(FaultSettings::default())
    }

    /// Starts the engine with these fault settings: the loss policy for a federate whose
    /// connection closes without resigning, and the stall alarm, which logs who waits for whom
    /// (a `warn` per stall) when a federation grants nothing for
    /// [`FaultSettings::stall_after`].
    ///
    /// # Errors
    ///
    /// The operating system refused to start a thread.
    pub fn start_with(faults: FaultSettings) -> std::io::Result<Self> {
        let (inbound, receiver) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("fedtwin-rti".into())
            .spawn(move || run(&receiver, faults))?;
        info!("embedded RTI started");
        Ok(Self {
            inner: Arc::new(Inner {
                inbound,
                next_connection: AtomicU64::new(1),
                thread: Some(thread),
            }),
        })
    }

    /// Opens a connection, as a federate process would open one to a daemon.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the engine thread has ended.
    pub fn connect(&self) -> Result<EmbeddedConnection, Stopped> {
        let connection = ConnectionId(self.inner.next_connection.fetch_add(1, Ordering::Relaxed));
        let (outbound, receiver) = unbounded_channel();
        self.inner
            .inbound
            .send(Inbound::Open {
                connection,
                outbound,
            })
            .map_err(|_| Stopped)?;
        Ok(EmbeddedConnection {
            sender: EmbeddedSender {
                connection,
                inbound: self.inner.inbound.clone(),
            },
            receiver,
        })
    }

    /// The status of a federation, `None` if there is none of that name.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the engine thread has ended.
    pub fn status(&self, federation: &str) -> Result<Option<FederationStatus>, Stopped> {
        let name = federation.to_owned();
        self.inspect(move |engine, now| engine.status(&name, now))
    }

    /// Who waits for whom in a federation, `None` if there is none of that name.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the engine thread has ended.
    pub fn stall_report(&self, federation: &str) -> Result<Option<StallReport>, Stopped> {
        let name = federation.to_owned();
        self.inspect(move |engine, _| engine.stall_report(&name))
    }

    /// Names of the federations.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the engine thread has ended.
    pub fn federations(&self) -> Result<Vec<String>, Stopped> {
        self.inspect(|engine, _| engine.federations().map(str::to_owned).collect())
    }

    fn inspect<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Engine, Instant) -> T + Send + 'static,
    ) -> Result<T, Stopped> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let inspection: Inspection = Box::new(move |engine, now| {
            let _ = reply.send(query(engine, now));
        });
        self.inner
            .inbound
            .send(Inbound::Inspect(inspection))
            .map_err(|_| Stopped)?;
        answer.recv().map_err(|_| Stopped)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.inbound.send(Inbound::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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
    inbound: Sender<Inbound>,
}

impl EmbeddedSender {
    /// Sends a request.
    ///
    /// # Errors
    ///
    /// [`Stopped`] if the engine thread has ended.
    pub fn send(&self, message: ClientMessage) -> Result<(), Stopped> {
        self.inbound
            .send(Inbound::Message(self.connection, message))
            .map_err(|_| Stopped)
    }
}

impl Drop for EmbeddedSender {
    fn drop(&mut self) {
        let _ = self.inbound.send(Inbound::Close(self.connection));
    }
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Open { connection, .. } => write!(f, "Open({connection:?})"),
            Self::Message(connection, message) => write!(f, "Message({connection:?}, {message:?})"),
            Self::Close(connection) => write!(f, "Close({connection:?})"),
            Self::Inspect(_) => f.write_str("Inspect"),
            Self::Shutdown => f.write_str("Shutdown"),
        }
    }
}

/// How long the engine thread polls for the next message before it parks. Waking a parked
/// thread costs tens of microseconds on a virtual machine, more than a federate usually takes
/// to send its next request; yielding between polls leaves the core to the federates that
/// share it (`fedtwin-bench pingpong embedded`: 9.5 µs per step parked, see the README).
const SPIN: Duration = Duration::from_micros(20);

/// A message that arrives within [`SPIN`], if any.
fn spin(receiver: &Receiver<Inbound>) -> Option<Inbound> {
    let start = Instant::now();
    loop {
        match receiver.try_recv() {
            Ok(inbound) => return Some(inbound),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
            Err(crossbeam_channel::TryRecvError::Empty) => {}
        }
        if start.elapsed() >= SPIN {
            return None;
        }
        std::thread::yield_now();
    }
}

/// How often the embedded RTI checks for stalled federations.
const STALL_CHECK_TICK: Duration = Duration::from_millis(250);

fn run(receiver: &Receiver<Inbound>, faults: FaultSettings) {
    let _span = info_span!("rti", transport = "embedded").entered();
    let mut engine = Engine::new();
    engine.set_fault_settings(faults);
    let mut outbound = std::collections::HashMap::new();
    // The stall check scans each federation, so it runs on a tick rather than per message.
    let mut next_check = Instant::now() + STALL_CHECK_TICK;
    loop {
        let inbound = match spin(receiver) {
            Some(inbound) => Some(inbound),
            None => match receiver.recv_deadline(next_check) {
                Ok(inbound) => Some(inbound),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        if Instant::now() >= next_check {
            engine.handle_timeout(Instant::now());
            while let Some(report) = engine.poll_stall_report() {
                warn!(federation = %report.federation, "no grant for a while; who waits for whom:\n{report}");
            }
            next_check = Instant::now() + STALL_CHECK_TICK;
        }
        let Some(inbound) = inbound else { continue };
        let now = Instant::now();
        match inbound {
            Inbound::Open {
                connection,
                outbound: channel,
            } => {
                if engine.connect(connection).is_ok() {
                    outbound.insert(connection, channel);
                }
            }
            Inbound::Message(connection, message) => engine.handle(now, connection, message),
            Inbound::Close(connection) => {
                engine.disconnect(now, connection);
                outbound.remove(&connection);
            }
            Inbound::Inspect(query) => query(&engine, now),
            Inbound::Shutdown => break,
        }
        while let Some(transmit) = engine.poll_transmit() {
            if let Some(channel) = outbound.get(&transmit.connection) {
                // A federate that dropped its receiver is closing; its Close follows.
                let _ = channel.send(transmit.message);
            }
        }
        // In one process there is nobody to audit against; the events go to the log only.
        while let Some(event) = engine.poll_audit() {
            debug!(?event, "audit event");
        }
    }
    debug!("embedded RTI stopped");
}
