//! The connection under a federate, whatever the transport.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fedtwin_core::codec::{DEFAULT_MAX_FRAME, FrameReader, encode_batch};
use fedtwin_core::message::{ClientMessage, ServerMessage};
use fedtwin_rti::tls::{self, TlsFiles};
use fedtwin_rti::{EmbeddedRti, EmbeddedSender};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tracing::{debug, warn};

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
    closed: Arc<Mutex<Option<String>>>,
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
    closed: Option<Arc<Mutex<Option<String>>>>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("spin", &self.spin)
            .finish_non_exhaustive()
    }
}

impl Link {
    pub(crate) async fn open(connector: &Connector, spin: Duration) -> Result<Self> {
        match connector {
            Connector::Embedded(rti) => {
                let connection = rti.connect().map_err(|_| Error::Disconnected)?;
                Ok(Self {
                    outgoing: Box::new(connection.sender),
                    incoming: connection.receiver,
                    spin,
                    closed: None,
                })
            }
            Connector::Quic(target) => open_quic(target.clone(), spin).await,
        }
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

fn closed_error(closed: &Mutex<Option<String>>) -> Error {
    match closed.lock().ok().and_then(|reason| reason.clone()) {
        Some(reason) => Error::Closed(reason),
        None => Error::Disconnected,
    }
}

/// Connects on a thread of its own, which then carries the connection's I/O: keep-alives and
/// acknowledgements go on while the simulator computes between calls.
async fn open_quic(target: QuicTarget, spin: Duration) -> Result<Link> {
    let (ready, connected) = tokio::sync::oneshot::channel();
    let (requests, outgoing) = unbounded_channel();
    let (datagrams, best_effort) = unbounded_channel();
    let (deliver, incoming) = unbounded_channel();
    let on_stream = requests.clone();
    let closed = Arc::new(Mutex::new(None));
    let closed_by_io = closed.clone();
    std::thread::Builder::new()
        .name("fedtwin-quic".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready.send(Err(Error::Runtime(e.to_string())));
                    return;
                }
            };
            runtime.block_on(async move {
                match connect(&target).await {
                    Ok((endpoint, connection, send, recv)) => {
                        let _ = ready.send(Ok(()));
                        let channels = Channels {
                            outgoing,
                            best_effort,
                            on_stream,
                            deliver,
                        };
                        carry(connection, send, recv, channels, &closed_by_io).await;
                        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle())
                            .await;
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                    }
                }
            });
        })
        .map_err(|e| Error::Runtime(e.to_string()))?;
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
    })
}

async fn connect(
    target: &QuicTarget,
) -> Result<(
    quinn::Endpoint,
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
)> {
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
    let connection = connecting
        .await
        .map_err(|e| Error::Connect(describe(&e, target)))?;
    if let Some(group) = tls::negotiated_group(&connection) {
        debug!(%group, "connected to the RTI");
    }
    let (send, recv) = connection
        .open_bi()
        .await
        .map_err(|e| Error::Connect(describe(&e, target)))?;
    Ok((endpoint, connection, send, recv))
}

/// The federate's side of the I/O thread.
struct Channels {
    outgoing: UnboundedReceiver<ClientMessage>,
    best_effort: UnboundedReceiver<ClientMessage>,
    /// Where a best-effort message too large for a datagram goes instead.
    on_stream: UnboundedSender<ClientMessage>,
    deliver: UnboundedSender<ServerMessage>,
}

/// Moves frames between the federate's channels and the QUIC stream (and best-effort
/// messages to datagrams) until either side ends.
async fn carry(
    connection: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    channels: Channels,
    closed: &Mutex<Option<String>>,
) {
    let Channels {
        mut outgoing,
        mut best_effort,
        on_stream,
        deliver,
    } = channels;
    let datagram_connection = connection.clone();
    let datagrams = async {
        while let Some(message) = best_effort.recv().await {
            let Ok(bytes) = postcard::to_stdvec(&message) else {
                continue;
            };
            let fits = datagram_connection
                .max_datagram_size()
                .is_some_and(|max| bytes.len() <= max);
            if !fits {
                // Too large for one datagram (or datagrams are off): the stream carries it.
                let _ = on_stream.send(message);
                continue;
            }
            if let Err(error) = datagram_connection.send_datagram(bytes.into()) {
                debug!(%error, "best-effort message dropped");
            }
        }
        std::future::pending::<Option<String>>().await
    };
    let reading = async {
        let mut reader = FrameReader::new(DEFAULT_MAX_FRAME);
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match recv.read(&mut buffer).await {
                Ok(Some(n)) => {
                    reader.extend(&buffer[..n]);
                    loop {
                        match reader.next_message::<ServerMessage>() {
                            Ok(Some(message)) => {
                                if deliver.send(message).is_err() {
                                    return None;
                                }
                            }
                            Ok(None) => break,
                            Err(error) => {
                                return Some(format!("malformed frame from the RTI: {error}"));
                            }
                        }
                    }
                }
                Ok(None) => return Some("the RTI ended the stream".to_owned()),
                Err(quinn::ReadError::ConnectionLost(error)) => return Some(reason(&error)),
                Err(error) => return Some(format!("stream error: {error}")),
            }
        }
    };
    let writing = async {
        let mut buffer = Vec::with_capacity(64 * 1024);
        while let Some(message) = outgoing.recv().await {
            let more = || outgoing.try_recv().ok();
            for error in encode_batch(message, more, &mut buffer, DEFAULT_MAX_FRAME) {
                warn!(%error, "request not sent");
            }
            if let Err(error) = send.write_all(&buffer).await {
                return Some(match error {
                    quinn::WriteError::ConnectionLost(error) => reason(&error),
                    other => format!("stream error: {other}"),
                });
            }
        }
        // The federate is gone: end politely.
        let _ = send.finish();
        connection.close(
            quinn::VarInt::from_u32(0),
            b"federate closed the connection",
        );
        None
    };
    let ended = tokio::select! {
        why = reading => why,
        why = writing => why,
        why = datagrams => why,
    };
    if let Some(why) = ended {
        debug!(reason = %why, "connection to the RTI ended");
        if let Ok(mut slot) = closed.lock() {
            slot.get_or_insert(why);
        }
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
