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
//!
//! # Sessions
//!
//! With a resume grace period, each connection starts a *session* that can outlive it. The
//! daemon numbers the messages it sends in a session (implicitly: the n-th message is number
//! n) and keeps those the federate has not acknowledged ([`Request::Ack`], sent every few
//! dozen messages). A connection that times out or is reset suspends its session instead of
//! losing the federate: the engine still holds the federate's bound in every GALT (time
//! management stays consistent during a partition, others wait), and messages for it queue.
//! A new connection from the same certificate identity that presents the session's token
//! ([`Request::Resume`]) within the grace period takes the session over: the daemon sends
//! again everything after what the federate says it received, in order, and tells it the last
//! request it handled so that the federate resends the rest; requests with ids already handled
//! are dropped, so nothing is applied twice. Past the grace period, or when more messages
//! queue than the resume buffer holds, the federation's loss policy applies. A connection
//! closed on purpose (the federate's application close, a finished stream, a malformed frame)
//! ends its session at once.
//!
//! # Revocation
//!
//! The daemon refuses a certificate that its revocation list revokes (see [`tls`] and
//! [`TlsFiles::crl`]). It reads the list's file every [`REVOCATION_POLL`] and, when the contents
//! changed, builds a new server configuration for the connections that follow; a list that
//! cannot be read or checked is logged and the previous one kept. An open connection whose
//! certificate the new list revokes is closed with [`close_code::REVOKED`]. Deleting the file
//! keeps the list last loaded: a revocation is not undone by a missing file.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fedtwin_core::RtiError;
use fedtwin_core::codec::{CodecError, FrameReader, decode_body, encode_batch};
use fedtwin_core::message::{ClientMessage, Request, ResumeToken, ServerMessage};
use quinn::VarInt;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::{oneshot, watch};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::audit::{AuditError, AuditEvent, AuditKind, AuditLog, AuditWriter};
use crate::engine::{ConnectionId, Engine, FaultSettings, Peer};
use crate::policy::Policy;
use crate::tls::{self, Revocations, TlsError, TlsFiles};

/// Application close codes on the QUIC connection.
pub mod close_code {
    /// The RTI shuts down.
    pub const SHUTDOWN: u32 = 1;
    /// The peer sent a frame that could not be decoded.
    pub const MALFORMED: u32 = 2;
    /// The peer broke the protocol (for example, no stream opened).
    pub const PROTOCOL: u32 = 3;
    /// The peer's certificate was revoked while it was connected.
    pub const REVOKED: u32 = 4;
    /// A message for the peer does not fit in a frame (one it would refuse to read).
    pub const TOO_LARGE: u32 = 5;
    /// The peer left [`MAX_UNREAD`](super::MAX_UNREAD) messages unread.
    pub const UNREAD: u32 = 6;
    /// The connection's session resumed on another connection.
    pub const SUPERSEDED: u32 = 7;
}

/// How many messages may wait for one connection. The SDK reads its connection all the time,
/// whatever the simulator does, so only a peer that is stuck (stopped, or reading nothing on
/// purpose, while the network keeps it alive), or whose link cannot carry what the federation
/// sends it, gets here: it is then lost, with this reason, rather than the daemon holding
/// everything the others send it.
pub const MAX_UNREAD: usize = 1 << 18;

/// How often the daemon looks for a changed revocation list.
pub const REVOCATION_POLL: Duration = Duration::from_secs(2);

/// What the daemon needs to run.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The daemon's certificate, key, the federation CA and the revocation list, which the
    /// daemon reloads when it changes.
    pub tls: TlsFiles,
    /// Accept classical key exchange when a client offers no post-quantum group.
    pub allow_classical: bool,
    /// Who may do what; `None` lets every authenticated federate do everything but administer
    /// (destroy, stability rule, status), which needs the admin role.
    pub policy: Option<Policy>,
    /// Where the audit log goes; `None` keeps no audit log.
    pub audit: Option<PathBuf>,
    /// Largest frame accepted or sent.
    pub max_frame: usize,
    /// A connection silent this long is closed (the federate is lost).
    pub idle_timeout: Duration,
    /// What happens when a federate is lost, and when a stalled federation is reported.
    pub faults: FaultSettings,
    /// How long a session whose connection was lost waits for the federate to resume it
    /// before the loss policy applies; zero turns sessions off.
    pub resume_grace: Duration,
    /// How many unacknowledged messages a session keeps; a suspended session that needs more
    /// is lost.
    pub resume_buffer: usize,
}

impl DaemonConfig {
    /// The default resume grace period.
    pub const DEFAULT_RESUME_GRACE: Duration = Duration::from_secs(10);
    /// The default resume buffer, in messages.
    pub const DEFAULT_RESUME_BUFFER: usize = 100_000;
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
        source: io::Error,
    },
    /// A setting out of range.
    #[error("invalid setting: {0}")]
    Config(String),
}

enum Input {
    Open {
        connection: ConnectionId,
        peer: Peer,
        writer: Writer,
    },
    Message(ConnectionId, ClientMessage),
    /// A connection ended; `lost` when by timeout or reset rather than on purpose.
    Close {
        connection: ConnectionId,
        lost: bool,
    },
    Audit(AuditEvent),
    Shutdown(oneshot::Sender<()>),
}

/// The revocation list in force, shared with every connection so that each can tell when its
/// own certificate is revoked.
type Published = Option<Arc<Revocations>>;

/// Runs the daemon until `shutdown` completes. `ready` is told the bound address once the
/// daemon accepts connections.
///
/// Must run inside a tokio runtime with I/O and time enabled.
///
/// # Errors
///
/// [`DaemonError`] if the daemon cannot start (among others when its revocation list is
/// unusable or revokes the daemon's own certificate); once running it logs faults and goes on.
pub async fn serve(
    config: DaemonConfig,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), DaemonError> {
    let (crl_bytes, revocations) = Revocations::read(&config.tls)?.unzip();
    if let Some(revocations) = &revocations {
        revocations.check_own(&config.tls)?;
    }
    // The certificates first: without them, a missing list is not the news.
    let server_config = quic_server_config(&config, revocations.as_ref())?;
    if let Some(revocations) = &revocations {
        info!(
            crl = %revocations.path().display(),
            revoked = revocations.len(),
            "certificate revocation list loaded"
        );
    } else {
        // `certs init` writes one; a folder without it checks no revocation at all.
        warn!(
            crl = %config.tls.crl_path().display(),
            "no certificate revocation list: revoked certificates are accepted until one is \
             written there (`fedtwin certs revoke`)"
        );
    }

    let mut audit = match &config.audit {
        Some(path) => Some(Audit::new(AuditWriter::start(AuditLog::open(path)?)?)),
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
        warn!(
            "no policy configured: every federate with a valid certificate may take part in \
             anything; only the admin role may administer"
        );
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
    let sessions = Sessions::new(config.resume_grace, config.resume_buffer);
    let engine_task = tokio::spawn(run_engine(engine, sessions, inputs, audit));
    let (publish, published) = watch::channel(revocations.map(Arc::new));
    let watcher = tokio::spawn(
        watch_revocations(
            endpoint.clone(),
            config.clone(),
            crl_bytes,
            publish,
            to_engine.clone(),
        )
        .in_current_span(),
    );
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
            serve_connection(
                incoming,
                connection,
                to_engine.clone(),
                published.clone(),
                config.max_frame,
            )
            .instrument(span),
        );
    }

    info!("RTI shutting down");
    watcher.abort();
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

/// The QUIC server configuration: TLS from [`tls::server_config_with`] and the idle timeout.
fn quic_server_config(
    config: &DaemonConfig,
    revocations: Option<&Revocations>,
) -> Result<quinn::ServerConfig, DaemonError> {
    let mut server_config =
        tls::server_config_with(&config.tls, config.allow_classical, revocations)?;
    let idle = quinn::IdleTimeout::try_from(config.idle_timeout)
        .map_err(|_| DaemonError::Config(format!("idle timeout {:?}", config.idle_timeout)))?;
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(config.idle_timeout / 3));
    server_config.transport_config(Arc::new(transport));
    Ok(server_config)
}

/// Reads the revocation list every [`REVOCATION_POLL`]; when its contents change, gives the
/// endpoint a server configuration that checks the new list and publishes the list to the
/// open connections. An unusable list is logged and the one in force kept.
async fn watch_revocations(
    endpoint: quinn::Endpoint,
    config: DaemonConfig,
    mut loaded: Option<Vec<u8>>,
    publish: watch::Sender<Published>,
    to_engine: UnboundedSender<Input>,
) {
    let path = config.tls.crl_path();
    let mut poll = tokio::time::interval(REVOCATION_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await; // the first tick is immediate
    loop {
        poll.tick().await;
        // The file is small: comparing its bytes catches every change, however close in time.
        let now = match std::fs::read(&path) {
            Ok(pem) => Some(pem),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(error) => {
                debug!(%error, crl = %path.display(), "revocation list unreadable for now");
                continue;
            }
        };
        if now == loaded {
            continue;
        }
        let Some(pem) = now else {
            warn!(crl = %path.display(), "revocation list removed; keeping the one in force");
            loaded = None;
            continue;
        };
        loaded = Some(pem.clone());
        let revocations = match Revocations::from_pem(&config.tls, &pem) {
            Ok(revocations) => revocations,
            Err(error) => {
                warn!(%error, "revocation list not reloaded; keeping the one in force");
                continue;
            }
        };
        // Revocations only accumulate: a list without some of those in force (an old copy
        // restored from a backup, say) would let revoked certificates back in.
        let dropped = publish
            .borrow()
            .as_ref()
            .map_or(0, |current| current.missing_from(&revocations));
        if dropped > 0 {
            warn!(
                crl = %path.display(),
                dropped,
                "revocation list not reloaded: it lacks revocations of the one in force; \
                 keeping that one (restart the daemon to start from the file)"
            );
            continue;
        }
        let server_config = match quic_server_config(&config, Some(&revocations)) {
            Ok(server_config) => server_config,
            Err(error) => {
                warn!(%error, "revocation list not reloaded; keeping the one in force");
                continue;
            }
        };
        if let Err(error) = revocations.check_own(&config.tls) {
            warn!(
                %error,
                "the daemon's own certificate is revoked; federates that check the list will \
                 refuse it"
            );
        }
        endpoint.set_server_config(Some(server_config));
        info!(
            crl = %path.display(),
            revoked = revocations.len(),
            "certificate revocation list reloaded"
        );
        let _ = to_engine.send(Input::Audit(daemon_event(
            AuditKind::RevocationsReloaded,
            format!(
                "{}: {} certificate(s) revoked",
                path.display(),
                revocations.len()
            ),
        )));
        publish.send_replace(Some(Arc::new(revocations)));
    }
}

/// How often the engine's timers and the sessions' grace periods are checked: stalls are
/// reported, and suspended sessions lost, within this of coming due.
const TIMER_TICK: Duration = Duration::from_millis(250);

/// Owns the engine: feeds it inputs and timer ticks, hands its transmits to the sessions,
/// records its audit events and logs its stall reports.
async fn run_engine(
    mut engine: Engine,
    mut sessions: Sessions,
    mut inputs: UnboundedReceiver<Input>,
    mut audit: Option<Audit>,
) {
    let mut timer = tokio::time::interval(TIMER_TICK);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let input = tokio::select! {
            input = inputs.recv() => match input {
                Some(input) => input,
                None => break,
            },
            _ = timer.tick() => {
                let now = Instant::now();
                engine.handle_timeout(now);
                while let Some(report) = engine.poll_stall_report() {
                    warn!(federation = %report.federation, "no grant for a while; who waits for whom:\n{report}");
                }
                sessions.expire(now, &mut engine);
                sessions.route(now, &mut engine);
                drain_audit(&mut engine, &mut sessions, &mut audit);
                if let Some(audit) = &mut audit {
                    audit.summarize_refusals(now);
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
                let identity = peer
                    .identity
                    .as_ref()
                    .map(|i| i.name.clone())
                    .unwrap_or_default();
                if engine.connect_peer(connection, peer).is_ok() {
                    sessions.open(connection, identity, writer);
                }
            }
            Input::Message(link, message) => sessions.handle(now, link, message, &mut engine),
            Input::Close { connection, lost } => sessions.close(now, connection, lost, &mut engine),
            Input::Audit(event) => record(&mut audit, event),
            Input::Shutdown(done) => {
                // Writers close their streams when dropped; the endpoint close tells the peers.
                sessions.clear();
                drain_audit(&mut engine, &mut sessions, &mut audit);
                if let Some(mut audit) = audit.take() {
                    audit.summarize_refusals(now + REFUSALS_WINDOW);
                    audit.record(daemon_event(AuditKind::DaemonStop, "shutdown".into()));
                    // Blocks this thread for the last sync, once, so that the stop record is on
                    // disk before the daemon says it stopped.
                    if let Some(last_hash) = audit.writer.finish() {
                        info!(
                            %last_hash,
                            "audit log closed; keep this hash elsewhere to detect a later \
                             rewrite (fedtwin audit verify --anchor)"
                        );
                    }
                }
                let _ = done.send(());
                break;
            }
        }
        sessions.route(now, &mut engine);
        drain_audit(&mut engine, &mut sessions, &mut audit);
    }
}

fn drain_audit(engine: &mut Engine, sessions: &mut Sessions, audit: &mut Option<Audit>) {
    while let Some(event) = sessions.audit.pop_front() {
        record(audit, event);
    }
    while let Some(event) = engine.poll_audit() {
        record(audit, event);
    }
}

/// How many requests the daemon handles between telling a federate so
/// ([`ServerMessage::Handled`]).
const CONFIRM_EVERY: u64 = 64;

/// A federate's session: what outlives its connection for the grace period.
struct Session {
    /// Certificate name; only the same identity may resume the session.
    identity: String,
    token: Option<ResumeToken>,
    /// The connection carrying the session now and its writer; `None` while suspended.
    link: Option<(ConnectionId, Writer)>,
    /// Messages sent in the session: the last one's number.
    sent: u64,
    /// The messages not acknowledged yet, numbered `sent - unacked.len() + 1 ..= sent`.
    unacked: VecDeque<ServerMessage>,
    /// Whether `unacked` is complete; a federate that never acknowledges stops being kept.
    keeping: bool,
    /// The highest request id handed to the engine: later duplicates are dropped.
    last_request: u64,
    /// Requests handed to the engine since the federate was last told they were handled.
    unconfirmed: u64,
    /// When the connection was lost, while suspended.
    suspended_at: Option<Instant>,
}

/// The daemon's sessions, keyed by the engine's connection id (the id of the session's first
/// connection), and the routes from each live connection to its session.
struct Sessions {
    grace: Duration,
    buffer: usize,
    sessions: HashMap<ConnectionId, Session>,
    links: HashMap<ConnectionId, ConnectionId>,
    tokens: HashMap<ResumeToken, ConnectionId>,
    audit: VecDeque<AuditEvent>,
}

impl Sessions {
    fn new(grace: Duration, buffer: usize) -> Self {
        Self {
            grace,
            buffer,
            sessions: HashMap::new(),
            links: HashMap::new(),
            tokens: HashMap::new(),
            audit: VecDeque::new(),
        }
    }

    fn enabled(&self) -> bool {
        !self.grace.is_zero()
    }

    fn open(&mut self, id: ConnectionId, identity: String, writer: Writer) {
        let token = if self.enabled() {
            match new_token() {
                Some(token) => {
                    let grace_ms = u64::try_from(self.grace.as_millis()).unwrap_or(u64::MAX);
                    let _ = writer.send(ServerMessage::Session { token, grace_ms });
                    self.tokens.insert(token, id);
                    Some(token)
                }
                None => {
                    warn!("no randomness for a resume token; this session cannot be resumed");
                    None
                }
            }
        } else {
            None
        };
        self.links.insert(id, id);
        self.sessions.insert(
            id,
            Session {
                identity,
                token,
                link: Some((id, writer)),
                sent: 0,
                unacked: VecDeque::new(),
                keeping: token.is_some(),
                last_request: 0,
                unconfirmed: 0,
                suspended_at: None,
            },
        );
    }

    fn handle(
        &mut self,
        now: Instant,
        link: ConnectionId,
        message: ClientMessage,
        engine: &mut Engine,
    ) {
        let Some(&id) = self.links.get(&link) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        match message.request {
            Request::Ack { received } => {
                let base = session.sent - session.unacked.len() as u64;
                let done = received
                    .saturating_sub(base)
                    .min(session.unacked.len() as u64);
                session.unacked.drain(..done as usize);
            }
            Request::Resume { token, received } => {
                if let Err(reason) = self.resume(now, link, token, received, engine) {
                    warn!(%reason, "resume refused");
                    if let Some(session) = self.sessions.get(&link)
                        && let Some((_, writer)) = &session.link
                    {
                        let _ = writer.send(ServerMessage::Response {
                            id: message.id,
                            result: Err(RtiError::ResumeRefused(reason)),
                        });
                    }
                }
            }
            _ => {
                let request = message.id;
                if request != ClientMessage::BEST_EFFORT {
                    if request <= session.last_request {
                        debug!(id = request, "request already handled; dropped");
                        return;
                    }
                    session.last_request = request;
                    session.unconfirmed += 1;
                }
                engine.handle(now, id, message);
                // Requests that succeed quietly confirm nothing: say now and then how far the
                // engine got, so that the federate can forget what it keeps to resend.
                if session.unconfirmed >= CONFIRM_EVERY
                    && session.token.is_some()
                    && let Some((_, writer)) = &session.link
                {
                    session.unconfirmed = 0;
                    let _ = writer.send(ServerMessage::Handled {
                        last_request: session.last_request,
                    });
                }
            }
        }
    }

    /// Moves the session of `token` onto `link`, a fresh connection.
    fn resume(
        &mut self,
        now: Instant,
        link: ConnectionId,
        token: ResumeToken,
        received: u64,
        engine: &mut Engine,
    ) -> Result<(), String> {
        let fresh = self
            .sessions
            .get(&link)
            .filter(|s| self.links.get(&link) == Some(&link) && s.sent == 0 && s.last_request == 0)
            .ok_or("resume must be the first request on a new connection")?;
        let identity = fresh.identity.clone();
        let &target = self
            .tokens
            .get(&token)
            .ok_or("unknown session: it ended, or its grace period passed")?;
        let session = self
            .sessions
            .get(&target)
            .ok_or("unknown session: it ended, or its grace period passed")?;
        if session.identity != identity {
            self.audit.push_back(daemon_event(
                AuditKind::Denied,
                format!(
                    "`{identity}` presented the resume token of `{}`",
                    session.identity
                ),
            ));
            return Err(format!(
                "the session belongs to `{}`, not `{identity}`",
                session.identity
            ));
        }
        let base = session.sent - session.unacked.len() as u64;
        if !session.keeping || received < base || received > session.sent {
            return Err(format!(
                "messages after number {received} are no longer kept (kept: {}..={})",
                base + 1,
                session.sent
            ));
        }
        // The fresh connection's own session ends: it never did anything.
        let Some(fresh) = self.sessions.remove(&link) else {
            return Err("connection closed".into());
        };
        if let Some(token) = fresh.token {
            self.tokens.remove(&token);
        }
        // The engine knows the fresh connection too; from now on its traffic is the resumed
        // session's (under that session's id).
        engine.disconnect(now, link);
        let Some((_, writer)) = fresh.link else {
            return Err("connection closed".into());
        };
        let Some(session) = self.sessions.get_mut(&target) else {
            return Err("unknown session".into());
        };
        if let Some((old, old_writer)) = session.link.take() {
            // The federate saw its connection fail before we did: the new one takes over and
            // the old one's end is ignored. Closed now, it holds nothing until its timeout.
            self.links.remove(&old);
            old_writer.close(
                close_code::SUPERSEDED,
                "the session moved to a new connection",
            );
        }
        self.links.insert(link, target);
        let _ = writer.send(ServerMessage::Resumed {
            last_request: session.last_request,
        });
        let skip = (received - base) as usize;
        for message in session.unacked.iter().skip(skip) {
            let _ = writer.send(message.clone());
        }
        let away = session
            .suspended_at
            .take()
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        info!(
            identity = %session.identity,
            resent = session.unacked.len() - skip,
            away_ms = away.as_millis() as u64,
            "session resumed"
        );
        self.audit.push_back(session_event(
            AuditKind::Resumed,
            &session.identity,
            format!(
                "after {} ms; {} messages sent again",
                away.as_millis(),
                session.unacked.len() - skip
            ),
        ));
        session.link = Some((link, writer));
        Ok(())
    }

    fn close(&mut self, now: Instant, link: ConnectionId, lost: bool, engine: &mut Engine) {
        let Some(id) = self.links.remove(&link) else {
            return; // a connection whose session moved on
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if lost && session.keeping && session.token.is_some() {
            session.link = None;
            session.suspended_at = Some(now);
            warn!(
                identity = %session.identity,
                grace_ms = self.grace.as_millis() as u64,
                "connection lost; keeping the session for a resume"
            );
            self.audit.push_back(session_event(
                AuditKind::Suspended,
                &session.identity,
                format!("connection lost; grace {} ms", self.grace.as_millis()),
            ));
            return;
        }
        self.end(id);
        engine.disconnect(now, id);
    }

    fn end(&mut self, id: ConnectionId) {
        if let Some(session) = self.sessions.remove(&id) {
            if let Some(token) = session.token {
                self.tokens.remove(&token);
            }
            if let Some((link, _)) = session.link {
                self.links.remove(&link);
            }
        }
    }

    /// Loses the suspended sessions whose grace period has passed.
    fn expire(&mut self, now: Instant, engine: &mut Engine) {
        let grace = self.grace;
        let expired: Vec<ConnectionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.suspended_at
                    .is_some_and(|at| now.saturating_duration_since(at) >= grace)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.end(id);
            engine.lose(
                now,
                id,
                &format!(
                    "its connection was lost and it did not resume within {} ms",
                    grace.as_millis()
                ),
            );
        }
    }

    /// Hands the engine's transmits to the sessions: numbered, kept until acknowledged, and
    /// written if the session has a connection. A suspended session that would keep more than
    /// the buffer holds is lost, and what its loss causes is routed in turn.
    fn route(&mut self, now: Instant, engine: &mut Engine) {
        loop {
            let mut overflowed = Vec::new();
            let mut unread = Vec::new();
            while let Some(transmit) = engine.poll_transmit() {
                let Some(session) = self.sessions.get_mut(&transmit.connection) else {
                    continue;
                };
                if session.keeping && session.unacked.len() >= self.buffer {
                    if session.link.is_none() {
                        overflowed.push(transmit.connection);
                        continue;
                    }
                    warn!(
                        identity = %session.identity,
                        "the federate acknowledges nothing; its session can no longer be resumed"
                    );
                    session.keeping = false;
                    session.unacked = VecDeque::new();
                }
                session.sent += 1;
                if session.keeping {
                    session.unacked.push_back(transmit.message.clone());
                }
                if let Some((_, writer)) = &session.link
                    && !writer.send(transmit.message)
                {
                    unread.push(transmit.connection);
                }
            }
            unread.dedup();
            for id in unread {
                if let Some(session) = self.sessions.get(&id)
                    && let Some((_, writer)) = &session.link
                {
                    let reason = format!(
                        "it left {} messages unread (stuck, or too slow a link)",
                        writer.limit
                    );
                    warn!(identity = %session.identity, "{reason}; closing its connection");
                    writer.close(close_code::UNREAD, &reason);
                    self.end(id);
                    engine.lose(now, id, &reason);
                }
            }
            if overflowed.is_empty() {
                return;
            }
            overflowed.dedup();
            for id in overflowed {
                if self.sessions.contains_key(&id) {
                    self.end(id);
                    engine.lose(
                        now,
                        id,
                        &format!(
                            "its connection was lost and more than {} messages queued for it",
                            self.buffer
                        ),
                    );
                }
            }
        }
    }

    fn clear(&mut self) {
        self.sessions.clear();
        self.links.clear();
        self.tokens.clear();
    }
}

fn session_event(kind: AuditKind, identity: &str, detail: String) -> AuditEvent {
    AuditEvent {
        identity: Some(identity.to_owned()),
        ..daemon_event(kind, detail)
    }
}

/// 128 random bits from the operating system's generator.
fn new_token() -> Option<ResumeToken> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(ResumeToken(bytes))
}

async fn serve_connection(
    incoming: quinn::Incoming,
    id: ConnectionId,
    to_engine: UnboundedSender<Input>,
    mut revocations: watch::Receiver<Published>,
    max_frame: usize,
) {
    let remote = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            let detail = if tls::is_revocation(&error) {
                warn!(%error, "handshake refused: the client's certificate is revoked");
                format!("{remote}: certificate revoked: {error}")
            } else {
                warn!(%error, "handshake refused");
                format!("{remote}: {error}")
            };
            let _ = to_engine.send(Input::Audit(daemon_event(
                AuditKind::ConnectionRefused,
                detail,
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
    // Without a serial the connection cannot be matched against later lists (it passed the
    // handshake's check, so this is a certificate x509-parser cannot read).
    let serial = match tls::peer_serial(&connection) {
        Ok(serial) => Some(serial),
        Err(error) => {
            warn!(
                %error,
                "no serial number in the peer certificate; a later revocation will not close \
                 this connection"
            );
            None
        }
    };
    let peer_name = identity.name.clone();
    let mut watching = serial.is_some();
    // A list published while this handshake ran on the previous configuration.
    if let Some(serial) = &serial
        && revocations
            .borrow_and_update()
            .as_ref()
            .is_some_and(|list| list.contains(serial))
    {
        close_revoked(&connection, &peer_name, &to_engine);
    }

    let (send, mut recv) = match connection.accept_bi().await {
        Ok(streams) => streams,
        Err(error) => {
            debug!(%error, "connection ended before opening its stream");
            return;
        }
    };
    let (writer, outgoing) = Writer::new(MAX_UNREAD, Some(connection.clone()));
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
    tokio::spawn(write_frames(send, connection.clone(), outgoing, max_frame).in_current_span());
    tokio::spawn(read_datagrams(connection.clone(), id, to_engine.clone()).in_current_span());

    let mut reader = FrameReader::new(max_frame);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut lost = false;
    let outcome = loop {
        let read = tokio::select! {
            read = recv.read(&mut buffer) => read,
            changed = revocations.changed(), if watching => {
                if changed.is_err() {
                    watching = false; // the daemon is stopping
                } else if let Some(serial) = &serial
                    && revocations
                        .borrow_and_update()
                        .as_ref()
                        .is_some_and(|list| list.contains(serial))
                {
                    close_revoked(&connection, &peer_name, &to_engine);
                }
                continue;
            }
        };
        match read {
            Ok(Some(n)) => {
                reader.extend(&buffer[..n]);
                match forward_frames(&mut reader, id, &to_engine) {
                    Ok(()) => {}
                    Err(error) => break Err(error),
                }
            }
            Ok(None) => break reader.finish(),
            Err(error) => {
                // A timeout or reset may be a partition: the session waits for a resume. An
                // application close is the federate leaving.
                lost = matches!(
                    error,
                    quinn::ReadError::ConnectionLost(
                        quinn::ConnectionError::TimedOut | quinn::ConnectionError::Reset
                    )
                );
                debug!(%error, lost, "stream ended");
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
    let _ = to_engine.send(Input::Close {
        connection: id,
        lost,
    });
}

/// Closes a connection whose certificate a newly loaded list revokes, and records it. The
/// session ends with the connection (a local close is no partition), so the loss policy
/// applies to the federate at once.
fn close_revoked(
    connection: &quinn::Connection,
    identity: &str,
    to_engine: &UnboundedSender<Input>,
) {
    warn!(identity, "certificate revoked; closing its connection");
    connection.close(
        VarInt::from_u32(close_code::REVOKED),
        b"certificate revoked: ask the federation's administrator for a new one",
    );
    let _ = to_engine.send(Input::Audit(session_event(
        AuditKind::CertificateRevoked,
        identity,
        format!("{}: open connection closed", connection.remote_address()),
    )));
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

/// Writes the engine's messages, everything ready at once in one write. A message that cannot
/// be encoded within `max_frame` closes the connection, naming why: skipped, it would leave a
/// gap the federate never learns of (and the session's numbering one off).
async fn write_frames(
    mut send: quinn::SendStream,
    connection: quinn::Connection,
    mut outgoing: Outgoing,
    max_frame: usize,
) {
    let mut buffer = Vec::with_capacity(64 * 1024);
    while let Some(message) = outgoing.recv().await {
        let errors = encode_batch(message, || outgoing.try_recv(), &mut buffer, max_frame);
        if let Some(error) = errors.first() {
            warn!(%error, "a message for the federate cannot be sent; closing its connection");
            let reason = format!("the RTI cannot send a message to this federate: {error}");
            connection.close(VarInt::from_u32(close_code::TOO_LARGE), reason.as_bytes());
            return;
        }
        if let Err(error) = send.write_all(&buffer).await {
            debug!(%error, "peer stream closed");
            return;
        }
    }
    let _ = send.finish();
}

/// The engine's end of a connection's outgoing queue: unbounded in memory, bounded by count.
#[derive(Debug)]
struct Writer {
    queue: UnboundedSender<ServerMessage>,
    unread: Arc<AtomicUsize>,
    limit: usize,
    /// Closes the connection when the peer reads too little (`None` in tests).
    connection: Option<quinn::Connection>,
}

/// The writer task's end of the queue.
#[derive(Debug)]
struct Outgoing {
    queue: UnboundedReceiver<ServerMessage>,
    unread: Arc<AtomicUsize>,
}

impl Writer {
    fn new(limit: usize, connection: Option<quinn::Connection>) -> (Self, Outgoing) {
        let (queue, outgoing) = unbounded_channel();
        let unread = Arc::new(AtomicUsize::new(0));
        let writer = Self {
            queue,
            unread: Arc::clone(&unread),
            limit,
            connection,
        };
        (
            writer,
            Outgoing {
                queue: outgoing,
                unread,
            },
        )
    }

    /// Queues `message`; `false` if `limit` messages already wait (it is not queued). A writer
    /// whose connection has gone takes anything, as a channel with no receiver does.
    fn send(&self, message: ServerMessage) -> bool {
        if self.unread.fetch_add(1, Ordering::Relaxed) >= self.limit {
            self.unread.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        if self.queue.send(message).is_err() {
            // The writer task has ended; the connection's close is on its way to the engine.
            self.unread.fetch_sub(1, Ordering::Relaxed);
        }
        true
    }

    fn close(&self, code: u32, reason: &str) {
        if let Some(connection) = &self.connection {
            connection.close(VarInt::from_u32(code), reason.as_bytes());
        }
    }
}

impl Outgoing {
    async fn recv(&mut self) -> Option<ServerMessage> {
        let message = self.queue.recv().await?;
        self.unread.fetch_sub(1, Ordering::Relaxed);
        Some(message)
    }

    fn try_recv(&mut self) -> Option<ServerMessage> {
        let message = self.queue.try_recv().ok()?;
        self.unread.fetch_sub(1, Ordering::Relaxed);
        Some(message)
    }
}

fn record(audit: &mut Option<Audit>, event: AuditEvent) {
    if let Some(audit) = audit {
        audit.record(event);
    }
}

/// How many refused connections are recorded one by one per [`REFUSALS_WINDOW`]; the rest are
/// counted in one record. Anyone who can reach the port can have handshakes refused: without a
/// bound, a flood of them would fill the disk with records.
const REFUSALS_PER_WINDOW: u32 = 20;
const REFUSALS_WINDOW: Duration = Duration::from_secs(1);

/// The daemon's audit log: its writer thread, and the count of refused connections not
/// recorded one by one.
struct Audit {
    writer: AuditWriter,
    window_start: Instant,
    recorded: u32,
    suppressed: u64,
    last_suppressed: String,
}

impl Audit {
    fn new(writer: AuditWriter) -> Self {
        Self {
            writer,
            window_start: Instant::now(),
            recorded: 0,
            suppressed: 0,
            last_suppressed: String::new(),
        }
    }

    /// Queues `event`; a refused connection only within the window's share.
    fn record(&mut self, event: AuditEvent) {
        if event.kind == AuditKind::ConnectionRefused {
            self.refused(Instant::now(), event);
        } else {
            self.writer.record(event);
        }
    }

    fn refused(&mut self, now: Instant, event: AuditEvent) {
        self.summarize_refusals(now);
        if self.recorded < REFUSALS_PER_WINDOW {
            self.recorded += 1;
            self.writer.record(event);
        } else {
            self.suppressed += 1;
            self.last_suppressed = event.detail;
        }
    }

    /// Once the window is over: one record for the refusals it did not record, and a new
    /// window.
    fn summarize_refusals(&mut self, now: Instant) {
        if now.saturating_duration_since(self.window_start) < REFUSALS_WINDOW {
            return;
        }
        if self.suppressed > 0 {
            warn!(
                refused = self.suppressed,
                "many connections refused; recorded in the audit log as a count"
            );
            self.writer.record(daemon_event(
                AuditKind::ConnectionRefused,
                format!(
                    "{} more connection(s) refused within {:?}, not recorded one by one; the \
                     last: {}",
                    self.suppressed, REFUSALS_WINDOW, self.last_suppressed
                ),
            ));
        }
        self.window_start = now;
        self.recorded = 0;
        self.suppressed = 0;
        self.last_suppressed.clear();
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

#[cfg(test)]
mod tests {
    use fedtwin_core::ObjectModel;
    use fedtwin_core::message::{Callback, Response};

    use super::*;
    use crate::tls::{Identity, Role};

    /// Sessions and an engine driven by hand: each connection's writer is a channel whose
    /// receiver the test reads.
    struct Fixture {
        engine: Engine,
        sessions: Sessions,
        now: Instant,
        next_id: u64,
    }

    impl Fixture {
        fn new(grace: Duration, buffer: usize) -> Self {
            Self {
                engine: Engine::new(),
                sessions: Sessions::new(grace, buffer),
                now: Instant::now(),
                next_id: 0,
            }
        }

        fn open(&mut self, link: u64, identity: &str) -> Outgoing {
            self.open_with_limit(link, identity, usize::MAX)
        }

        fn open_with_limit(&mut self, link: u64, identity: &str, limit: usize) -> Outgoing {
            let (writer, received) = Writer::new(limit, None);
            let peer = Peer {
                identity: Some(Identity {
                    name: identity.into(),
                    role: Role::Federate,
                }),
                key_exchange: None,
            };
            self.engine
                .connect_peer(ConnectionId(link), peer)
                .expect("fresh connection id");
            self.sessions
                .open(ConnectionId(link), identity.into(), writer);
            received
        }

        fn send(&mut self, link: u64, id: u64, request: Request) {
            self.sessions.handle(
                self.now,
                ConnectionId(link),
                ClientMessage { id, request },
                &mut self.engine,
            );
            self.sessions.route(self.now, &mut self.engine);
        }

        fn request(&mut self, link: u64, request: Request) {
            self.next_id += 1;
            self.send(link, self.next_id, request);
        }

        fn close(&mut self, link: u64, lost: bool) {
            self.sessions
                .close(self.now, ConnectionId(link), lost, &mut self.engine);
            self.sessions.route(self.now, &mut self.engine);
        }

        /// Two federates of `f`, `ping` on connection 1 and `pong` on 2, both regulating.
        fn joined_pair(&mut self) -> [Outgoing; 2] {
            let ping = self.open(1, "ping");
            let pong = self.open(2, "pong");
            self.request(
                1,
                Request::CreateFederation {
                    federation: "f".into(),
                    model: ObjectModel::new().with_interaction_class("Ping", ["n"]),
                    if_missing: true,
                },
            );
            for (link, name) in [(1, "ping"), (2, "pong")] {
                self.request(
                    link,
                    Request::Join {
                        federation: "f".into(),
                        federate: name.into(),
                    },
                );
                self.request(
                    link,
                    Request::EnableTimeRegulation {
                        lookahead: fedtwin_core::SimDuration::from_ticks(1),
                    },
                );
            }
            [ping, pong]
        }
    }

    fn drain(received: &mut Outgoing) -> Vec<ServerMessage> {
        std::iter::from_fn(|| received.try_recv()).collect()
    }

    fn token(messages: &[ServerMessage]) -> ResumeToken {
        match messages.first() {
            Some(ServerMessage::Session { token, .. }) => *token,
            other => panic!("a session starts with its token, not {other:?}"),
        }
    }

    fn counted(messages: &[ServerMessage]) -> u64 {
        messages
            .iter()
            .filter(|m| {
                !matches!(
                    m,
                    ServerMessage::Session { .. } | ServerMessage::Handled { .. }
                )
            })
            .count() as u64
    }

    #[test]
    fn a_resumed_session_gets_what_it_missed_once_and_in_order() {
        let mut f = Fixture::new(Duration::from_secs(10), 1000);
        let [mut ping, _pong] = f.joined_pair();
        let before = drain(&mut ping);
        let token = token(&before);
        // Ping saw all but its last message (its regulation answer) before the link died.
        let received = counted(&before) - 1;
        f.close(1, true);
        // Pong's regulation change and a sync point reach the suspended session meanwhile.
        f.request(
            2,
            Request::RegisterSyncPoint {
                label: "go".into(),
                tag: Vec::new().into(),
                federates: vec![],
            },
        );
        let mut resumed = f.open(3, "ping");
        f.send(
            3,
            ClientMessage::BEST_EFFORT,
            Request::Resume { token, received },
        );
        let after = drain(&mut resumed);
        assert!(matches!(after[0], ServerMessage::Session { .. }));
        let ServerMessage::Resumed { last_request } = after[1] else {
            panic!("resume answered with {:?}", after[1]);
        };
        // Ids 1 to 3 were ping's (create, join, regulation); 4 and 5 pong's.
        assert_eq!(
            last_request, 3,
            "ping's last request (its regulation) was handled"
        );
        assert_eq!(
            after[2],
            before[before.len() - 1],
            "the one it missed comes again"
        );
        assert!(
            matches!(
                after[3],
                ServerMessage::Callback(Callback::AnnounceSyncPoint { .. })
            ),
            "then what queued while it was away: {:?}",
            &after[3..]
        );
        // A request the RTI handled already is not applied twice; a new one is.
        f.send(3, 3, Request::QueryGalt);
        assert!(drain(&mut resumed).is_empty(), "duplicate dropped");
        f.send(3, 6, Request::QueryGalt);
        assert!(matches!(
            drain(&mut resumed).as_slice(),
            [ServerMessage::Response {
                id: 6,
                result: Ok(Response::Galt(_))
            }]
        ));
        // The old connection's late end changes nothing.
        f.close(1, false);
        f.request(3, Request::QueryGalt);
        assert_eq!(drain(&mut resumed).len(), 1);
    }

    #[test]
    fn only_the_same_identity_may_resume_a_session() {
        let mut f = Fixture::new(Duration::from_secs(10), 1000);
        let [mut ping, _pong] = f.joined_pair();
        let token = token(&drain(&mut ping));
        f.close(1, true);
        let mut mallory = f.open(3, "mallory");
        f.send(3, 9, Request::Resume { token, received: 0 });
        let answer = drain(&mut mallory);
        assert!(
            matches!(
                &answer[1],
                ServerMessage::Response { id: 9, result: Err(RtiError::ResumeRefused(reason)) }
                    if reason.contains("belongs to `ping`")
            ),
            "{answer:?}"
        );
        assert_eq!(
            f.sessions.audit.back().map(|e| &e.kind),
            Some(&AuditKind::Denied)
        );
        // The real owner still can.
        let mut ping = f.open(4, "ping");
        f.send(4, 0, Request::Resume { token, received: 0 });
        assert!(matches!(drain(&mut ping)[1], ServerMessage::Resumed { .. }));
    }

    #[test]
    fn past_the_grace_period_the_loss_policy_applies() {
        let mut f = Fixture::new(Duration::from_secs(2), 1000);
        let [mut ping, mut pong] = f.joined_pair();
        let token = token(&drain(&mut ping));
        drain(&mut pong);
        f.close(1, true);
        f.sessions
            .expire(f.now + Duration::from_secs(1), &mut f.engine);
        f.sessions.route(f.now, &mut f.engine);
        assert!(drain(&mut pong).is_empty(), "still within the grace period");
        f.sessions
            .expire(f.now + Duration::from_secs(2), &mut f.engine);
        f.sessions.route(f.now, &mut f.engine);
        let told = drain(&mut pong);
        assert!(
            matches!(
                told.as_slice(),
                [ServerMessage::Callback(Callback::FederateLost { federate, reason })]
                    if federate == "ping" && reason.contains("did not resume within 2000 ms")
            ),
            "{told:?}"
        );
        let mut late = f.open(3, "ping");
        f.send(3, 1, Request::Resume { token, received: 0 });
        assert!(matches!(
            &drain(&mut late)[1],
            ServerMessage::Response {
                result: Err(RtiError::ResumeRefused(_)),
                ..
            }
        ));
    }

    #[test]
    fn refused_connections_beyond_the_rate_are_recorded_as_one_count() {
        let path = std::env::temp_dir().join(format!(
            "fedtwin-refusals-{}-{:?}.log",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        let mut audit = Audit::new(AuditWriter::start(AuditLog::open(&path).unwrap()).unwrap());
        let start = audit.window_start;
        let refused = |i: usize| daemon_event(AuditKind::ConnectionRefused, format!("client {i}"));
        for i in 0..30 {
            audit.refused(start, refused(i));
        }
        // The next window opens with a count of the last one's rest, then records again.
        audit.refused(start + REFUSALS_WINDOW, refused(30));
        audit.summarize_refusals(start + REFUSALS_WINDOW * 3);
        audit.writer.finish();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let details: Vec<&str> = text
            .lines()
            .map(|line| {
                let (_, rest) = line.split_once("\"detail\":\"").unwrap();
                rest.split_once('"').unwrap().0
            })
            .collect();
        assert_eq!(details.len(), 22, "{text}");
        assert_eq!(details[19], "client 19");
        assert!(
            details[20].starts_with(
                "10 more connection(s) refused within 1s, not recorded one by one; the last: \
                 client 29"
            ),
            "{}",
            details[20]
        );
        assert_eq!(details[21], "client 30");
    }

    #[test]
    fn a_federate_that_leaves_too_much_unread_is_lost_naming_why() {
        let mut f = Fixture::new(Duration::from_secs(60), 1000);
        let mut ping = f.open(1, "ping");
        let _pong = f.open_with_limit(2, "pong", 8);
        f.request(
            1,
            Request::CreateFederation {
                federation: "f".into(),
                model: ObjectModel::new(),
                if_missing: true,
            },
        );
        for (link, name) in [(1, "ping"), (2, "pong")] {
            f.request(
                link,
                Request::Join {
                    federation: "f".into(),
                    federate: name.into(),
                },
            );
        }
        // Every point is announced to pong too, which reads nothing.
        for label in 0..10 {
            f.request(
                1,
                Request::RegisterSyncPoint {
                    label: label.to_string(),
                    tag: Vec::new().into(),
                    federates: vec![],
                },
            );
        }
        let told = drain(&mut ping);
        assert!(
            told.iter().any(|m| matches!(
                m,
                ServerMessage::Callback(Callback::FederateLost { federate, reason })
                    if federate == "pong" && reason.contains("left 8 messages unread")
            )),
            "{told:?}"
        );
        assert!(
            std::iter::from_fn(|| f.engine.poll_audit())
                .any(|e| e.kind == AuditKind::Lost && e.detail.contains("unread")),
            "the loss is audited"
        );
    }

    #[test]
    fn a_suspended_session_that_overflows_its_buffer_is_lost() {
        let mut f = Fixture::new(Duration::from_secs(60), 3);
        let [mut ping, mut pong] = f.joined_pair();
        drain(&mut ping);
        f.send(1, 0, Request::Ack { received: 100 });
        drain(&mut pong);
        f.close(1, true);
        for label in ["a", "b", "c", "d"] {
            f.request(
                2,
                Request::RegisterSyncPoint {
                    label: label.into(),
                    tag: Vec::new().into(),
                    federates: vec![],
                },
            );
        }
        let told = drain(&mut pong);
        assert!(
            told.iter().any(|m| matches!(
                m,
                ServerMessage::Callback(Callback::FederateLost { reason, .. })
                    if reason.contains("more than 3 messages")
            )),
            "{told:?}"
        );
    }

    #[test]
    fn quiet_successes_are_confirmed_every_so_many_requests() {
        let mut f = Fixture::new(Duration::from_secs(10), 1000);
        let [mut ping, _pong] = f.joined_pair();
        let class = fedtwin_core::model::InteractionClassHandle(0);
        f.request(1, Request::PublishInteraction { class });
        // ping's session has had create, join, regulation and publish: 4 requests so far.
        let first = f.next_id + 1;
        for _ in 0..70 {
            f.request(
                1,
                Request::SendInteraction {
                    class,
                    parameters: Vec::new(),
                    timestamp: None,
                },
            );
        }
        let messages = drain(&mut ping);
        let handled: Vec<u64> = messages
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Handled { last_request } => Some(*last_request),
                _ => None,
            })
            .collect();
        assert_eq!(handled, vec![first + 59], "at the session's 64th request");
        assert!(
            !messages
                .iter()
                .any(|m| matches!(m, ServerMessage::Response { id, .. } if *id >= first)),
            "interactions that succeed are not answered: {messages:?}"
        );
    }

    #[test]
    fn a_connection_closed_on_purpose_ends_its_session_at_once() {
        let mut f = Fixture::new(Duration::from_secs(60), 1000);
        let [_ping, mut pong] = f.joined_pair();
        drain(&mut pong);
        f.close(1, false);
        assert!(matches!(
            drain(&mut pong).as_slice(),
            [ServerMessage::Callback(Callback::FederateLost { .. })]
        ));
    }
}
