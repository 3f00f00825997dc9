//! The RTI as a network daemon: the engine behind QUIC with mutual TLS.
//!
//! Everything runs on one current-thread tokio runtime: a task per connection reads frames
//! from the federate's stream, one task owns the [`Engine`], and a task per connection
//! writes what the engine sends, batching whatever is ready into one write. Keeping all of it
//! on one thread avoids cross-thread wake-ups, which cost more than a loopback round trip on
//! small virtual machines.
//!
//! A connection is authenticated by the TLS handshake (a certificate signed by the
//! federation's CA); its certificate's name is its identity and every call is checked against
//! the [`Policy`]. Malformed frames close the offending connection with a reason and affect
//! no one else.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedtwin_core::codec::{CodecError, FrameReader, decode_body, encode_batch};
use fedtwin_core::message::{ClientMessage, ServerMessage};
use quinn::VarInt;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::audit::{AuditError, AuditEvent, AuditKind, AuditLog};
use crate::engine::{ConnectionId, Engine, FaultSettings, Peer};
use crate::policy::Policy;
use crate::tls::{self, TlsError, TlsFiles};

/// Application close codes on the QUIC connection.
pub mod close_code {
    /// The RTI shuts down.
    pub const SHUTDOWN: u32 = 1;
    /// The peer sent a frame that could not be decoded.
    pub const MALFORMED: u32 = 2;
    /// The peer broke the protocol (for example, no stream opened).
    pub const PROTOCOL: u32 = 3;
}

/// What the daemon needs to run.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The daemon's certificate, key and the federation CA.
    pub tls: TlsFiles,
    /// Accept classical key exchange when a client offers no post-quantum group.
    pub allow_classical: bool,
    /// Who may do what; `None` lets every authenticated federate do everything.
    pub policy: Option<Policy>,
    /// Where the audit log goes; `None` keeps no audit log.
    pub audit: Option<PathBuf>,
    /// Largest frame accepted or sent.
    pub max_frame: usize,
    /// A connection silent this long is closed (the federate is lost).
    pub idle_timeout: Duration,
    /// What happens when a federate is lost, and when a stalled federation is reported.
    pub faults: FaultSettings,
}

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// Certificates or keys.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Binding the socket.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A setting out of range.
    #[error("invalid setting: {0}")]
    Config(String),
}

enum Input {
    Open {
        connection: ConnectionId,
        peer: Peer,
        writer: UnboundedSender<ServerMessage>,
    },
    Message(ConnectionId, ClientMessage),
    Close(ConnectionId),
    Audit(AuditEvent),
    Shutdown(oneshot::Sender<()>),
}

/// Runs the daemon until `shutdown` completes. `ready` is told the bound address once the
/// daemon accepts connections.
///
/// Must run inside a tokio runtime with I/O and time enabled.
///
/// # Errors
///
/// [`DaemonError`] if the daemon cannot start; once running it logs faults and goes on.
pub async fn serve(
    config: DaemonConfig,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), DaemonError> {
    let mut server_config = tls::server_config(&config.tls, config.allow_classical)?;
    let idle = quinn::IdleTimeout::try_from(config.idle_timeout)
        .map_err(|_| DaemonError::Config(format!("idle timeout {:?}", config.idle_timeout)))?;
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(config.idle_timeout / 3));
    server_config.transport_config(Arc::new(transport));

    let mut audit = match &config.audit {
        Some(path) => Some(AuditLog::open(path)?),
        None => None,
    };
    let endpoint = quinn::Endpoint::server(server_config, config.listen).map_err(|source| {
        DaemonError::Bind {
            address: config.listen,
            source,
        }
    })?;
    let address = endpoint.local_addr().map_err(|source| DaemonError::Bind {
        address: config.listen,
        source,
    })?;
    if config.policy.is_none() {
        warn!("no policy configured: every federate with a valid certificate may do anything");
    }
    record(
        &mut audit,
        daemon_event(AuditKind::DaemonStart, format!("listening on {address}")),
    );
    info!(%address, "RTI listening");

    let mut engine = match config.policy.clone() {
        Some(policy) => Engine::with_policy(policy),
        None => Engine::new(),
    };
    engine.set_fault_settings(config.faults.clone());
    let (to_engine, inputs) = unbounded_channel();
    let engine_task = tokio::spawn(run_engine(engine, inputs, audit));
    ready(address);

    let mut next_connection = 1u64;
    tokio::pin!(shutdown);
    loop {
        let incoming = tokio::select! {
            () = &mut shutdown => break,
            incoming = endpoint.accept() => incoming,
        };
        let Some(incoming) = incoming else { break };
        let connection = ConnectionId(next_connection);
        next_connection += 1;
        let span = info_span!("connection", id = connection.0, remote = %incoming.remote_address());
        tokio::spawn(
            serve_connection(incoming, connection, to_engine.clone(), config.max_frame)
                .instrument(span),
        );
    }

    info!("RTI shutting down");
    let (done, finished) = oneshot::channel();
    if to_engine.send(Input::Shutdown(done)).is_ok() {
        let _ = finished.await;
    }
    endpoint.close(
        VarInt::from_u32(close_code::SHUTDOWN),
        b"the RTI is shutting down",
    );
    // Give the close frames a moment to leave; a peer that is gone does not hold us.
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    drop(to_engine);
    let _ = engine_task.await;
    Ok(())
}

/// How often the engine's timers are checked: stalls are reported within this of coming due.
const TIMER_TICK: Duration = Duration::from_secs(1);

/// Owns the engine: feeds it inputs and timer ticks, hands its transmits to the writers,
/// records its audit events and logs its stall reports.
async fn run_engine(
    mut engine: Engine,
    mut inputs: UnboundedReceiver<Input>,
    mut audit: Option<AuditLog>,
) {
    let mut writers: HashMap<ConnectionId, UnboundedSender<ServerMessage>> = HashMap::new();
    let mut timer = tokio::time::interval(TIMER_TICK);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let input = tokio::select! {
            input = inputs.recv() => match input {
                Some(input) => input,
                None => break,
            },
            _ = timer.tick() => {
                engine.handle_timeout(Instant::now());
                while let Some(report) = engine.poll_stall_report() {
                    warn!(federation = %report.federation, "no grant for a while; who waits for whom:\n{report}");
                }
                continue;
            }
        };
        let now = Instant::now();
        match input {
            Input::Open {
                connection,
                peer,
                writer,
            } => {
                if engine.connect_peer(connection, peer).is_ok() {
                    writers.insert(connection, writer);
                }
            }
            Input::Message(connection, message) => engine.handle(now, connection, message),
            Input::Close(connection) => {
                engine.disconnect(now, connection);
                writers.remove(&connection);
            }
            Input::Audit(event) => record(&mut audit, event),
            Input::Shutdown(done) => {
                // Writers close their streams when dropped; the endpoint close tells the peers.
                writers.clear();
                record(
                    &mut audit,
                    daemon_event(AuditKind::DaemonStop, "shutdown".into()),
                );
                let _ = done.send(());
                break;
            }
        }
        while let Some(transmit) = engine.poll_transmit() {
            if let Some(writer) = writers.get(&transmit.connection) {
                let _ = writer.send(transmit.message);
            }
        }
        while let Some(event) = engine.poll_audit() {
            record(&mut audit, event);
        }
    }
}

async fn serve_connection(
    incoming: quinn::Incoming,
    id: ConnectionId,
    to_engine: UnboundedSender<Input>,
    max_frame: usize,
) {
    let remote = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            warn!(%error, "handshake refused");
            let _ = to_engine.send(Input::Audit(daemon_event(
                AuditKind::ConnectionRefused,
                format!("{remote}: {error}"),
            )));
            return;
        }
    };
    let identity = match tls::peer_identity(&connection) {
        Ok(identity) => identity,
        Err(error) => {
            warn!(%error, "certificate without a usable identity");
            connection.close(
                VarInt::from_u32(close_code::PROTOCOL),
                error.to_string().as_bytes(),
            );
            let _ = to_engine.send(Input::Audit(daemon_event(
                AuditKind::ConnectionRefused,
                format!("{remote}: {error}"),
            )));
            return;
        }
    };
    let key_exchange = tls::negotiated_group(&connection);
    info!(identity = %identity.name, key_exchange = key_exchange.as_deref().unwrap_or("unknown"), "connected");

    let (send, mut recv) = match connection.accept_bi().await {
        Ok(streams) => streams,
        Err(error) => {
            debug!(%error, "connection ended before opening its stream");
            return;
        }
    };
    let (writer, outgoing) = unbounded_channel();
    let peer = Peer {
        identity: Some(identity),
        key_exchange,
    };
    if to_engine
        .send(Input::Open {
            connection: id,
            peer,
            writer,
        })
        .is_err()
    {
        return;
    }
    tokio::spawn(write_frames(send, outgoing, max_frame).in_current_span());
    tokio::spawn(read_datagrams(connection.clone(), id, to_engine.clone()).in_current_span());

    let mut reader = FrameReader::new(max_frame);
    let mut buffer = vec![0u8; 64 * 1024];
    let outcome = loop {
        match recv.read(&mut buffer).await {
            Ok(Some(n)) => {
                reader.extend(&buffer[..n]);
                match forward_frames(&mut reader, id, &to_engine) {
                    Ok(()) => {}
                    Err(error) => break Err(error),
                }
            }
            Ok(None) => break reader.finish(),
            Err(error) => {
                debug!(%error, "stream ended");
                break Ok(());
            }
        }
    };
    if let Err(error) = outcome {
        warn!(%error, "malformed input; closing the connection");
        connection.close(
            VarInt::from_u32(close_code::MALFORMED),
            error.to_string().as_bytes(),
        );
    }
    let _ = to_engine.send(Input::Close(id));
}

/// Best-effort messages arrive as datagrams, one message each. They carry no response, so a
/// malformed one is a protocol violation that closes the connection, as on the stream.
async fn read_datagrams(
    connection: quinn::Connection,
    id: ConnectionId,
    to_engine: UnboundedSender<Input>,
) {
    while let Ok(datagram) = connection.read_datagram().await {
        match decode_body::<ClientMessage>(&datagram) {
            Ok(message) if message.id == ClientMessage::BEST_EFFORT => {
                if to_engine.send(Input::Message(id, message)).is_err() {
                    return;
                }
            }
            Ok(_) => {
                warn!("datagram with a request id; only best-effort messages may be datagrams");
                connection.close(VarInt::from_u32(close_code::PROTOCOL), b"numbered datagram");
                return;
            }
            Err(error) => {
                warn!(%error, "malformed datagram; closing the connection");
                connection.close(
                    VarInt::from_u32(close_code::MALFORMED),
                    error.to_string().as_bytes(),
                );
                return;
            }
        }
    }
}

fn forward_frames(
    reader: &mut FrameReader,
    id: ConnectionId,
    to_engine: &UnboundedSender<Input>,
) -> Result<(), CodecError> {
    while let Some(message) = reader.next_message::<ClientMessage>()? {
        if to_engine.send(Input::Message(id, message)).is_err() {
            break;
        }
    }
    Ok(())
}

/// Writes the engine's messages, everything ready at once in one write.
async fn write_frames(
    mut send: quinn::SendStream,
    mut outgoing: UnboundedReceiver<ServerMessage>,
    max_frame: usize,
) {
    let mut buffer = Vec::with_capacity(64 * 1024);
    while let Some(message) = outgoing.recv().await {
        for error in encode_batch(message, || outgoing.try_recv().ok(), &mut buffer, max_frame) {
            warn!(%error, "message not sent");
        }
        if let Err(error) = send.write_all(&buffer).await {
            debug!(%error, "peer stream closed");
            return;
        }
    }
    let _ = send.finish();
}

fn record(audit: &mut Option<AuditLog>, event: AuditEvent) {
    if let Some(log) = audit
        && let Err(error) = log.append(event)
    {
        warn!(%error, "audit record not written");
    }
}

fn daemon_event(kind: AuditKind, detail: String) -> AuditEvent {
    AuditEvent {
        kind,
        identity: None,
        federation: None,
        federate: None,
        detail,
    }
}
