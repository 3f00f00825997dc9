//! The connection under a federate, whatever the transport.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use fedtwin_core::codec::{DEFAULT_MAX_FRAME, FrameReader, encode_batch, encode_frame};
use fedtwin_core::message::{ClientMessage, Request, ResumeToken, ServerMessage};
use fedtwin_rti::daemon::close_code;
use fedtwin_rti::tls::{self, TlsFiles};
use fedtwin_rti::{EmbeddedRti, EmbeddedSender};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{
    UnboundedReceiver, UnboundedSender, WeakUnboundedSender, unbounded_channel,
};
use tracing::{debug, info, warn};

use crate::error::{Error, Result};

/// Where a federate finds its RTI.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Connector {
    /// An RTI in this process.
    Embedded(EmbeddedRti),
    /// An RTI daemon over QUIC.
    Quic(QuicTarget),
}

/// A daemon's address and this federate's credentials.
#[derive(Debug, Clone)]
pub struct QuicTarget {
    /// The daemon's address.
    pub address: SocketAddr,
    /// The name in the daemon's certificate (by convention `rti`).
    pub server_name: String,
    /// This federate's certificate, key and the federation CA.
    pub tls: TlsFiles,
    /// Accept a classical key exchange if the daemon offers no post-quantum group.
    pub allow_classical: bool,
    /// How long a silent connection lives; keep-alives go out at a third of it.
    pub idle_timeout: Duration,
}

impl Connector {
    /// A daemon at `quic://host:port`, reached with the certificate and key in `tls`.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] if the address is not `quic://host:port` or does not resolve.
    pub fn quic(url: &str, tls: TlsFiles) -> Result<Self> {
        let rest = url.strip_prefix("quic://").ok_or_else(|| {
            Error::Connect(format!(
                "`{url}` is not an RTI address: write quic://host:port"
            ))
        })?;
        let address = rest
            .to_socket_addrs()
            .map_err(|e| Error::Connect(format!("cannot resolve `{rest}`: {e}")))?
            .next()
            .ok_or_else(|| Error::Connect(format!("`{rest}` resolves to no address")))?;
        Ok(Self::Quic(QuicTarget {
            address,
            server_name: "rti".to_owned(),
            tls,
            allow_classical: false,
            idle_timeout: Duration::from_secs(10),
        }))
    }
}

impl From<EmbeddedRti> for Connector {
    fn from(rti: EmbeddedRti) -> Self {
        Self::Embedded(rti)
    }
}

impl From<&EmbeddedRti> for Connector {
    fn from(rti: &EmbeddedRti) -> Self {
        Self::Embedded(rti.clone())
    }
}

/// Sends requests; each transport provides one.
trait Outgoing: Send {
    fn send(&self, message: ClientMessage) -> Result<()>;

    /// Sends a best-effort message, which may be lost; by default as any other.
    fn send_best_effort(&self, message: ClientMessage) -> Result<()> {
        self.send(message)
    }
}

impl Outgoing for EmbeddedSender {
    fn send(&self, message: ClientMessage) -> Result<()> {
        EmbeddedSender::send(self, message).map_err(|_| Error::Disconnected)
    }
}

/// Requests for the QUIC I/O thread, and why the connection ended once it has.
struct QuicOutgoing {
    requests: UnboundedSender<ClientMessage>,
    datagrams: UnboundedSender<ClientMessage>,
    closed: Arc<Mutex<Option<Closure>>>,
}

impl Outgoing for QuicOutgoing {
    fn send(&self, message: ClientMessage) -> Result<()> {
        self.requests
            .send(message)
            .map_err(|_| closed_error(&self.closed))
    }

    fn send_best_effort(&self, message: ClientMessage) -> Result<()> {
        self.datagrams
            .send(message)
            .map_err(|_| closed_error(&self.closed))
    }
}

/// An open connection: requests out, responses and callbacks in.
pub(crate) struct Link {
    outgoing: Box<dyn Outgoing>,
    incoming: UnboundedReceiver<ServerMessage>,
    spin: Duration,
    /// Why a network connection ended, once it has.
    closed: Option<Arc<Mutex<Option<Closure>>>>,
    /// The task carrying a QUIC connection on the caller's runtime ([`Drive::Caller`]).
    session: Option<tokio::task::JoinHandle<()>>,
}

/// Who carries a QUIC connection's I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drive {
    /// A thread of its own, which keeps the connection alive whatever the federate does.
    Thread,
    /// A task on the runtime that opens the link, run whenever the federate waits on that
    /// runtime: no hand-off between threads per message. Whoever owns the runtime must also
    /// drive it now and then between calls (keep-alives, acknowledgements).
    Caller,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("spin", &self.spin)
            .finish_non_exhaustive()
    }
}

impl Link {
    pub(crate) async fn open(connector: &Connector, spin: Duration, drive: Drive) -> Result<Self> {
        match connector {
            Connector::Embedded(rti) => {
                let connection = rti.connect().map_err(|_| Error::Disconnected)?;
                Ok(Self {
                    outgoing: Box::new(connection.sender),
                    incoming: connection.receiver,
                    spin,
                    closed: None,
                    session: None,
                })
            }
            Connector::Quic(target) => open_quic(target.clone(), spin, drive).await,
        }
    }

    /// The task carrying the connection, when it runs on the caller's runtime: whoever owns
    /// that runtime lets it finish (and close the connection politely) after the link drops.
    pub(crate) fn take_session_task(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        self.session.take()
    }

    fn disconnected(&self) -> Error {
        match &self.closed {
            Some(closed) => closed_error(closed),
            None => Error::Disconnected,
        }
    }

    pub(crate) fn send(&self, message: ClientMessage) -> Result<()> {
        self.outgoing.send(message)
    }

    pub(crate) fn send_best_effort(&self, message: ClientMessage) -> Result<()> {
        self.outgoing.send_best_effort(message)
    }

    /// The next message. Polls for a few microseconds before parking, yielding the CPU between
    /// polls: waking a parked thread costs far more than a grant usually takes to arrive, but
    /// a busy spin would starve the very thread (the RTI's, or the QUIC I/O thread) that is
    /// about to deliver it when both share a core (measured with `fedtwin-bench`).
    pub(crate) async fn recv(&mut self) -> Result<ServerMessage> {
        if !self.spin.is_zero() {
            let start = Instant::now();
            loop {
                match self.incoming.try_recv() {
                    Ok(message) => return Ok(message),
                    Err(TryRecvError::Disconnected) => return Err(self.disconnected()),
                    Err(TryRecvError::Empty) => {}
                }
                if start.elapsed() >= self.spin {
                    break;
                }
                std::thread::yield_now();
            }
        }
        match self.incoming.recv().await {
            Some(message) => Ok(message),
            None => Err(self.disconnected()),
        }
    }

    /// A message that has already arrived, if any.
    pub(crate) fn try_recv(&mut self) -> Result<Option<ServerMessage>> {
        match self.incoming.try_recv() {
            Ok(message) => Ok(Some(message)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(self.disconnected()),
        }
    }
}

fn closed_error(closed: &Mutex<Option<Closure>>) -> Error {
    match closed.lock().ok().and_then(|reason| reason.clone()) {
        Some(Closure::Closed(reason)) => Error::Closed(reason),
        Some(Closure::Revoked(reason)) => Error::CertificateRevoked(reason),
        None => Error::Disconnected,
    }
}

/// Why a QUIC session ended, kept for every later call of the federate.
#[derive(Debug, Clone)]
enum Closure {
    /// The daemon, the network or the protocol ended it, for the reason given.
    Closed(String),
    /// A certificate was refused as revoked; the reason says whose.
    Revoked(String),
}

/// Connects and carries the connection's I/O on a thread of its own, which keeps
/// acknowledgements and keep-alives going while the simulator computes between calls, or as a
/// task on the caller's runtime ([`Drive::Caller`]). When the daemon keeps sessions, the same
/// thread or task resumes a lost connection within the grace period: the federate sees nothing
/// but a delay.
async fn open_quic(target: QuicTarget, spin: Duration, drive: Drive) -> Result<Link> {
    let (ready, connected) = tokio::sync::oneshot::channel();
    let (requests, outgoing) = unbounded_channel();
    let (datagrams, best_effort) = unbounded_channel();
    let (deliver, incoming) = unbounded_channel();
    let on_stream = requests.downgrade();
    let closed = Arc::new(Mutex::new(None));
    let closed_by_io = closed.clone();
    let session = async move {
        match connect(&target).await {
            Ok(first) => {
                let _ = ready.send(Ok(()));
                let mut channels = Channels {
                    outgoing,
                    best_effort,
                    on_stream,
                    deliver,
                };
                let why = run_session(&target, first, &mut channels).await;
                if let Some(why) = why {
                    debug!(reason = ?why, "connection to the RTI ended");
                    if let Ok(mut slot) = closed_by_io.lock() {
                        slot.get_or_insert(why);
                    }
                }
                // Only now may the federate see the channels close: the reason is in.
                drop(channels);
            }
            Err(error) => {
                let _ = ready.send(Err(error));
            }
        }
    };
    let (task, spin) = match drive {
        // Polling the channel would keep the runtime, and so the I/O, from running.
        Drive::Caller => (Some(tokio::spawn(session)), Duration::ZERO),
        Drive::Thread => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::Runtime(e.to_string()))?;
            std::thread::Builder::new()
                .name("fedtwin-quic".into())
                .spawn(move || runtime.block_on(session))
                .map_err(|e| Error::Runtime(e.to_string()))?;
            (None, spin)
        }
    };
    connected
        .await
        .map_err(|_| Error::Connect("the connection thread ended".into()))??;
    Ok(Link {
        outgoing: Box::new(QuicOutgoing {
            requests,
            datagrams,
            closed: closed.clone(),
        }),
        incoming,
        spin,
        closed: Some(closed),
        session: task,
    })
}

/// One QUIC connection to the daemon and its protocol stream.
struct Connected {
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

async fn connect(target: &QuicTarget) -> Result<Connected> {
    let mut config = tls::client_config(&target.tls, target.allow_classical)
        .map_err(|e| Error::Connect(e.to_string()))?;
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(target.idle_timeout)
        .map_err(|_| Error::Connect(format!("idle timeout {:?} too long", target.idle_timeout)))?;
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(target.idle_timeout / 3));
    config.transport_config(Arc::new(transport));
    let bind: SocketAddr = if target.address.is_ipv6() {
        SocketAddr::from(([0u16; 8], 0))
    } else {
        SocketAddr::from(([0u8; 4], 0))
    };
    let endpoint = quinn::Endpoint::client(bind)
        .map_err(|e| Error::Connect(format!("no local socket: {e}")))?;
    let connecting = endpoint
        .connect_with(config, target.address, &target.server_name)
        .map_err(|e| Error::Connect(e.to_string()))?;
    let connection = connecting.await.map_err(|e| connect_error(&e, target))?;
    if let Some(group) = tls::negotiated_group(&connection) {
        debug!(%group, "connected to the RTI");
    }
    let (send, recv) = connection
        .open_bi()
        .await
        .map_err(|e| connect_error(&e, target))?;
    Ok(Connected {
        endpoint,
        connection,
        send,
        recv,
    })
}

/// The federate's side of the I/O thread.
struct Channels {
    outgoing: UnboundedReceiver<ClientMessage>,
    best_effort: UnboundedReceiver<ClientMessage>,
    /// Where a best-effort message too large for a datagram goes instead. Weak, so that the
    /// stream ends when the federate drops its sender.
    on_stream: WeakUnboundedSender<ClientMessage>,
    deliver: UnboundedSender<ServerMessage>,
}

/// The session as the federate sees it, kept across connections.
#[derive(Default)]
struct SessionState {
    /// The token and grace period, once the daemon sent them.
    token: Option<(ResumeToken, Duration)>,
    /// Whether the daemon keeps sessions; unknown until its first message, which says so.
    sessions: Option<bool>,
    /// Messages of the session received (and delivered) so far.
    received: u64,
    /// The count last acknowledged.
    acked: u64,
    /// Requests sent and not yet confirmed (by an answer to them or to a later request, or by
    /// the daemon's `Handled`), by id: those the daemon did not handle are sent again after a
    /// resume.
    unanswered: BTreeMap<u64, ClientMessage>,
}

impl SessionState {
    /// Forgets the requests up to `last`: the daemon has handled them.
    fn confirm(&mut self, last: u64) {
        self.unanswered = self.unanswered.split_off(&last.saturating_add(1));
    }

    fn keep(&mut self, message: &ClientMessage) {
        if self.sessions != Some(false) && message.id != ClientMessage::BEST_EFFORT {
            self.unanswered.insert(message.id, message.clone());
        }
    }
}

/// The session state, shared by the reading and writing halves of a connection. A mutex
/// rather than a `RefCell` only so that the session's future may be spawned on a runtime;
/// both halves run on one thread, so it is never contended.
struct Kept(Mutex<SessionState>);

impl Kept {
    fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How many messages the federate receives between acknowledgements: the daemon keeps about
/// this many for a resume while connected.
const ACK_EVERY: u64 = 64;

/// Carries connections until the federate leaves or a lost connection cannot be resumed;
/// returns why the session ended, if not by the federate's wish.
async fn run_session(
    target: &QuicTarget,
    first: Connected,
    channels: &mut Channels,
) -> Option<Closure> {
    let state = Kept(Mutex::new(SessionState::default()));
    let mut current = first;
    let mut reader = FrameReader::new(DEFAULT_MAX_FRAME);
    loop {
        let ended = carry(&mut current, &mut reader, channels, &state).await;
        let Ended::Lost(why) = ended else {
            let _ =
                tokio::time::timeout(Duration::from_secs(1), current.endpoint.wait_idle()).await;
            return match ended {
                Ended::Closed(why) => Some(Closure::Closed(why)),
                Ended::Revoked(why) => Some(Closure::Revoked(why)),
                _ => None,
            };
        };
        let Some((token, grace)) = state.lock().token else {
            return Some(Closure::Closed(why));
        };
        warn!(reason = %why, grace_ms = grace.as_millis() as u64, "connection to the RTI lost; resuming");
        let deadline = Instant::now() + grace;
        let mut pause = Duration::from_millis(50);
        let resumed = loop {
            let received = state.lock().received;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(Closure::Closed(format!(
                    "{why}; not resumed within the grace period of {} ms",
                    grace.as_millis()
                )));
            }
            match tokio::time::timeout(left, resume(target, token, received)).await {
                Ok(Ok(resumed)) => break Ok(resumed),
                Ok(Err(Retry::Refused(reason))) => {
                    break Err(Closure::Closed(format!("{why}; {reason}")));
                }
                Ok(Err(Retry::Revoked(reason))) => break Err(Closure::Revoked(reason)),
                Ok(Err(Retry::Again(reason))) => {
                    debug!(%reason, "resume attempt failed");
                    tokio::time::sleep(pause.min(left)).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(_) => {}
            }
        };
        let (mut next, next_reader, last_request) = match resumed {
            Ok(resumed) => resumed,
            Err(why) => return Some(why),
        };
        // Requests the daemon never saw go again, before anything newer and in id order: the
        // daemon drops ids it has handled, so a newer one first would hide them.
        let mut buffer = Vec::new();
        for message in state
            .lock()
            .unanswered
            .range(last_request.saturating_add(1)..)
            .map(|(_, m)| m)
        {
            if let Err(error) = encode_frame(message, &mut buffer, DEFAULT_MAX_FRAME) {
                warn!(%error, "request not sent again");
            }
        }
        if let Err(error) = next.send.write_all(&buffer).await {
            return Some(Closure::Closed(format!(
                "{why}; the resumed connection failed: {error}"
            )));
        }
        info!(
            resent = state
                .lock()
                .unanswered
                .range(last_request.saturating_add(1)..)
                .count(),
            "session resumed"
        );
        std::mem::swap(&mut current, &mut next);
        drop(next);
        reader = next_reader;
    }
}

/// Why a resume attempt failed.
enum Retry {
    /// The daemon could not be reached: try again within the grace period.
    Again(String),
    /// The daemon refused: the session is over.
    Refused(String),
    /// A certificate was refused as revoked: the session is over.
    Revoked(String),
}

/// Opens a new connection and asks the daemon to continue the session of `token`. Returns the
/// connection, its reader (which may already hold messages sent again) and the last request
/// the daemon handled.
async fn resume(
    target: &QuicTarget,
    token: ResumeToken,
    received: u64,
) -> std::result::Result<(Connected, FrameReader, u64), Retry> {
    let mut connected = connect(target).await.map_err(|e| match e {
        Error::CertificateRevoked(reason) => Retry::Revoked(reason),
        other => Retry::Again(other.to_string()),
    })?;
    let mut frame = Vec::new();
    encode_frame(
        &ClientMessage {
            id: ClientMessage::BEST_EFFORT,
            request: Request::Resume { token, received },
        },
        &mut frame,
        DEFAULT_MAX_FRAME,
    )
    .map_err(|e| Retry::Refused(e.to_string()))?;
    connected
        .send
        .write_all(&frame)
        .await
        .map_err(|e| Retry::Again(e.to_string()))?;
    let mut reader = FrameReader::new(DEFAULT_MAX_FRAME);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        loop {
            match reader.next_message::<ServerMessage>() {
                // The new connection's own session, which the resume replaces.
                Ok(Some(ServerMessage::Session { .. } | ServerMessage::Handled { .. })) => {}
                Ok(Some(ServerMessage::Resumed { last_request })) => {
                    return Ok((connected, reader, last_request));
                }
                Ok(Some(ServerMessage::Response {
                    result: Err(error), ..
                })) => return Err(Retry::Refused(error.to_string())),
                Ok(Some(other)) => {
                    return Err(Retry::Refused(format!(
                        "unexpected answer to a resume: {other:?}"
                    )));
                }
                Ok(None) => break,
                Err(error) => {
                    return Err(Retry::Refused(format!(
                        "malformed frame from the RTI: {error}"
                    )));
                }
            }
        }
        match connected.recv.read(&mut buffer).await {
            Ok(Some(n)) => reader.extend(&buffer[..n]),
            Ok(None) => return Err(Retry::Again("the RTI ended the stream".into())),
            Err(quinn::ReadError::ConnectionLost(error)) => {
                return Err(match revocation(&error, target) {
                    Some(reason) => Retry::Revoked(reason),
                    None => Retry::Again(error.to_string()),
                });
            }
            Err(error) => return Err(Retry::Again(error.to_string())),
        }
    }
}

/// How one connection ended.
enum Ended {
    /// The federate left (or dropped its handle): nothing to report.
    Left,
    /// The daemon or the protocol ended it; the session is over.
    Closed(String),
    /// This federate's certificate was revoked; the session is over.
    Revoked(String),
    /// Timed out or reset: possibly a partition, so the session may resume.
    Lost(String),
}

/// Moves frames between the federate's channels and the QUIC stream (and best-effort
/// messages to datagrams) until either side ends.
async fn carry(
    current: &mut Connected,
    reader: &mut FrameReader,
    channels: &mut Channels,
    state: &Kept,
) -> Ended {
    let Channels {
        outgoing,
        best_effort,
        on_stream,
        deliver,
    } = channels;
    let Connected {
        connection,
        send,
        recv,
        ..
    } = current;
    let connection = &*connection;
    let ack_due = tokio::sync::Notify::new();
    let datagrams = async {
        while let Some(message) = best_effort.recv().await {
            let Ok(bytes) = postcard::to_stdvec(&message) else {
                continue;
            };
            let fits = connection
                .max_datagram_size()
                .is_some_and(|max| bytes.len() <= max);
            if !fits {
                // Too large for one datagram (or datagrams are off): the stream carries it.
                if let Some(stream) = on_stream.upgrade() {
                    let _ = stream.send(message);
                }
                continue;
            }
            if let Err(error) = connection.send_datagram(bytes.into()) {
                debug!(%error, "best-effort message dropped");
            }
        }
        std::future::pending::<Ended>().await
    };
    let reading = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            loop {
                match reader.next_message::<ServerMessage>() {
                    Ok(Some(message)) => {
                        let mut state = state.lock();
                        match message {
                            ServerMessage::Session { token, grace_ms } => {
                                state.sessions = Some(true);
                                state.token = Some((token, Duration::from_millis(grace_ms)));
                                continue;
                            }
                            ServerMessage::Resumed { .. } => continue,
                            ServerMessage::Handled { last_request } => {
                                state.confirm(last_request);
                                continue;
                            }
                            ServerMessage::Response { id, .. } => {
                                // Handled in order: earlier quiet requests succeeded too.
                                state.confirm(id);
                            }
                            ServerMessage::Callback(_) => {}
                        }
                        if state.sessions.is_none() {
                            // The daemon's first message was not a session token: it keeps no
                            // sessions, so nothing needs keeping here either.
                            state.sessions = Some(false);
                            state.unanswered.clear();
                        }
                        state.received += 1;
                        if state.token.is_some() && state.received - state.acked >= ACK_EVERY {
                            ack_due.notify_one();
                        }
                        if deliver.send(message).is_err() {
                            return Ended::Left;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        return Ended::Closed(format!("malformed frame from the RTI: {error}"));
                    }
                }
            }
            match recv.read(&mut buffer).await {
                Ok(Some(n)) => reader.extend(&buffer[..n]),
                Ok(None) => return Ended::Closed("the RTI ended the stream".to_owned()),
                Err(quinn::ReadError::ConnectionLost(error)) => return ended(&error),
                Err(error) => return Ended::Closed(format!("stream error: {error}")),
            }
        }
    };
    let writing = async {
        let mut buffer = Vec::with_capacity(64 * 1024);
        loop {
            let first = tokio::select! {
                message = outgoing.recv() => match message {
                    Some(message) => message,
                    None => break,
                },
                () = ack_due.notified() => {
                    let mut state = state.lock();
                    state.acked = state.received;
                    ClientMessage {
                        id: ClientMessage::BEST_EFFORT,
                        request: Request::Ack { received: state.received },
                    }
                }
            };
            state.lock().keep(&first);
            let more = || {
                let message = outgoing.try_recv().ok()?;
                state.lock().keep(&message);
                Some(message)
            };
            if let Some(error) = encode_batch(first, more, &mut buffer, DEFAULT_MAX_FRAME).first() {
                // Skipped, the request would leave its call waiting forever; the SDK refuses
                // oversized values before this, so only an oversized object model gets here.
                let _ = send.finish();
                connection.close(quinn::VarInt::from_u32(0), b"federate request too large");
                return Ended::Closed(format!("a request cannot be sent to the RTI: {error}"));
            }
            if let Err(error) = send.write_all(&buffer).await {
                return match error {
                    quinn::WriteError::ConnectionLost(error) => ended(&error),
                    other => Ended::Closed(format!("stream error: {other}")),
                };
            }
        }
        // The federate is gone: end politely. Closing drops what the stream still buffers, so
        // let the daemon read it to the end first (briefly: it may be gone too).
        if send.finish().is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
        }
        connection.close(
            quinn::VarInt::from_u32(0),
            b"federate closed the connection",
        );
        Ended::Left
    };
    tokio::select! {
        why = reading => why,
        why = writing => why,
        why = datagrams => why,
    }
}

/// A lost connection may be a partition worth resuming; a closed one is final.
fn ended(error: &quinn::ConnectionError) -> Ended {
    if let Some(reason) = refused_as_revoked(error) {
        return Ended::Revoked(reason);
    }
    match error {
        quinn::ConnectionError::TimedOut | quinn::ConnectionError::Reset => {
            Ended::Lost(reason(error))
        }
        other => Ended::Closed(reason(other)),
    }
}

fn reason(error: &quinn::ConnectionError) -> String {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            format!(
                "the RTI closed the connection: {}",
                String::from_utf8_lossy(&close.reason)
            )
        }
        quinn::ConnectionError::ConnectionClosed(close) => {
            format!("the RTI refused the connection: {close}")
        }
        quinn::ConnectionError::TimedOut => "no answer from the RTI within the idle timeout".into(),
        other => format!("connection to the RTI lost: {other}"),
    }
}

fn describe(error: &quinn::ConnectionError, target: &QuicTarget) -> String {
    format!("{} ({})", reason(error), target.address)
}

/// The error of a failed handshake or connection: [`Error::CertificateRevoked`] when a
/// certificate was refused as revoked, else [`Error::Connect`].
fn connect_error(error: &quinn::ConnectionError, target: &QuicTarget) -> Error {
    match revocation(error, target) {
        Some(reason) => Error::CertificateRevoked(reason),
        None => Error::Connect(describe(error, target)),
    }
}

/// What to tell the federate when `error` is a revocation, on either side.
fn revocation(error: &quinn::ConnectionError, target: &QuicTarget) -> Option<String> {
    if let quinn::ConnectionError::TransportError(_) = error
        && tls::is_revocation(error)
    {
        // This end's own check failed: the daemon's certificate is in our list.
        return Some(format!(
            "the RTI at {} presented a revoked certificate: `{}` lists it; ask the \
             federation's administrator which daemon to trust",
            target.address,
            target.tls.crl_path().display()
        ));
    }
    refused_as_revoked(error).map(|reason| format!("{reason} ({})", target.address))
}

/// The daemon refused this federate's certificate as revoked, in the handshake or, for a
/// connection open when the revocation came, by closing it.
fn refused_as_revoked(error: &quinn::ConnectionError) -> Option<String> {
    let closed_as_revoked = matches!(
        error,
        quinn::ConnectionError::ApplicationClosed(close)
            if close.error_code == quinn::VarInt::from_u32(close_code::REVOKED)
    );
    let refused =
        matches!(error, quinn::ConnectionError::ConnectionClosed(_)) && tls::is_revocation(error);
    (closed_as_revoked || refused).then(|| {
        "the RTI refused this federate's certificate: it is revoked (listed in the federation's \
         certificate revocation list); ask the federation's administrator for a new one \
         (`fedtwin certs issue --replace`)"
            .to_owned()
    })
}
