//! Scenario benches: the time-advance round trip of a federate over each transport, next to a
//! raw quinn stream round trip measured in the same run on the same machine.
//!
//! ```text
//! cargo run --release -p fedtwin-benches --bin fedtwin-bench -- [FILTER] [--steps N]
//! ```
//!
//! `FILTER` keeps the scenarios whose `scenario/transport` label contains it (`quic`,
//! `raw-quinn`, `advance/embedded`). Each scenario runs [`WARM_UP`] round trips unmeasured, then
//! `N` measured ones (default [`DEFAULT_STEPS`]) or as many as fit in [`TIME_LIMIT`], and prints
//! one line:
//!
//! | column | meaning |
//! |---|---|
//! | `scenario`, `transport` | what ran, over what |
//! | `N` | federates (for `raw-quinn`: clients) |
//! | `steps` | measured round trips |
//! | `seconds` | wall time of the measured loop |
//! | `grants_per_s`, `us_per_step` | `steps / seconds` and its inverse (`raw-quinn`: echoes) |
//! | `median_us`, `p90_us` | of the round trips, each timed on its own with [`Instant`] |
//!
//! # Scenarios
//!
//! * `raw-quinn/quic`: the floor. An echo server and a client, each on its own thread with its
//!   own current-thread runtime (as the daemon and the SDK's QUIC link thread run), over
//!   loopback with the TLS configurations fedtwin uses; one bidirectional stream; the client
//!   writes [`MESSAGE_LEN`] bytes and waits for their echo.
//! * `raw-quinn-handoff/quic`: the same echo behind the SDK's link structure: the timing thread
//!   hands each message to a QUIC I/O thread and parks until the echo comes back from it. It
//!   tells the cost of those two hand-offs apart from the daemon's.
//! * `advance/quic`: the daemon in this process on its own thread, as `fedtwin rti` runs it, and
//!   one federate, regulating with a lookahead of one tick and constrained, timing the blocking
//!   `advance_to(t + 1 tick)`: request, response and grant.
//! * `advance/embedded`: the same federate against the embedded RTI.
//! * `advance-nospin/*`: the same with the SDK's spin before parking turned off
//!   (`.spin(Duration::ZERO)`).
//!
//! A scenario that has not finished after [`WATCHDOG`] fails the run with a message instead of
//! hanging; network waits the bench drives itself give up after [`NETWORK_TIMEOUT`].

use std::fs;
use std::future::{Future, IntoFuture};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use federate_sdk::{Connector, EmbeddedRti, Federate, ObjectModel, SimDuration, TlsFiles};
use fedtwin_core::codec::DEFAULT_MAX_FRAME;
use fedtwin_rti::daemon::{self, DaemonConfig};
use fedtwin_rti::tls::{self, Role};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// Round trips run before measuring: connections, caches, allocators and clocks settle.
const WARM_UP: usize = 1_000;
/// Measured round trips per scenario unless `--steps` says otherwise.
const DEFAULT_STEPS: usize = 20_000;
/// A scenario stops measuring after this long even if it has not made all its steps.
const TIME_LIMIT: Duration = Duration::from_secs(5);
/// A scenario still running after this long is taken as hung and fails the run.
const WATCHDOG: Duration = Duration::from_secs(30);
/// How long the bench waits for a network step it drives itself: a listen, a handshake, an echo.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(5);
/// QUIC idle timeout on every endpoint, the SDK's default (keep-alives go at a third of it).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of each raw echo.
const MESSAGE_LEN: usize = 16;
/// Certificate name of the server end: the daemon or the echo server (the SDK expects `rti`).
const SERVER: &str = "rti";
/// Certificate name of the client end, which is also the federate's name.
const CLIENT: &str = "bench";
/// The federation the federate joins.
const FEDERATION: &str = "bench";
/// The federate's lookahead and the length of each time step.
const STEP: SimDuration = SimDuration::from_ticks(1);

const USAGE: &str = "usage: fedtwin-bench [FILTER] [--steps N]";

/// One scenario: its label and the function that runs it.
struct Scenario {
    name: &'static str,
    transport: &'static str,
    federates: usize,
    run: fn(&Setup) -> Result<Measurement, String>,
}

/// Every scenario, in the order they run and print.
const SCENARIOS: [Scenario; 6] = [
    Scenario {
        name: "raw-quinn",
        transport: "quic",
        federates: 1,
        run: raw_quinn,
    },
    Scenario {
        name: "raw-quinn-handoff",
        transport: "quic",
        federates: 1,
        run: raw_quinn_handoff,
    },
    Scenario {
        name: "advance",
        transport: "quic",
        federates: 1,
        run: advance_quic,
    },
    Scenario {
        name: "advance-nospin",
        transport: "quic",
        federates: 1,
        run: advance_quic_no_spin,
    },
    Scenario {
        name: "advance",
        transport: "embedded",
        federates: 1,
        run: advance_embedded,
    },
    Scenario {
        name: "advance-nospin",
        transport: "embedded",
        federates: 1,
        run: advance_embedded_no_spin,
    },
];

impl Scenario {
    fn label(&self) -> String {
        format!("{}/{}", self.name, self.transport)
    }
}

/// What the command line asked for.
#[derive(Debug)]
struct Options {
    filter: Option<String>,
    steps: usize,
}

/// How many round trips a scenario makes, and for how long at most.
#[derive(Debug, Clone, Copy)]
struct Budget {
    warm_up: usize,
    steps: usize,
    limit: Duration,
}

/// What every scenario gets: the certificate directory and the budget.
#[derive(Debug, Clone)]
struct Setup {
    certificates: PathBuf,
    budget: Budget,
}

impl Setup {
    fn server_tls(&self) -> TlsFiles {
        TlsFiles::in_dir(&self.certificates, SERVER)
    }

    fn client_tls(&self) -> TlsFiles {
        TlsFiles::in_dir(&self.certificates, CLIENT)
    }
}

/// The measured round trips of one scenario, sorted, and the wall time they took.
#[derive(Debug)]
struct Measurement {
    sorted: Vec<Duration>,
    seconds: f64,
}

/// A federation CA and certificates for [`SERVER`] and [`CLIENT`] in a scratch directory, which
/// is removed when this is dropped.
#[derive(Debug)]
struct Certificates {
    dir: PathBuf,
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let selected: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|scenario| options.selects(scenario))
        .collect();
    if selected.is_empty() {
        let known: Vec<String> = SCENARIOS.iter().map(Scenario::label).collect();
        eprintln!(
            "error: no scenario matches `{}`; there are {}",
            options.filter.as_deref().unwrap_or_default(),
            known.join(", ")
        );
        return ExitCode::from(2);
    }

    let certificates = match Certificates::create() {
        Ok(certificates) => certificates,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let setup = Setup {
        certificates: certificates.dir.clone(),
        budget: Budget {
            warm_up: WARM_UP,
            steps: options.steps,
            limit: TIME_LIMIT,
        },
    };

    println!("scenario transport N steps seconds grants_per_s us_per_step median_us p90_us");
    let mut failed = false;
    for scenario in selected {
        match run_watched(scenario, &setup) {
            Watched::Finished(Ok(measurement)) => println!("{}", report(scenario, &measurement)),
            Watched::Finished(Err(message)) => {
                eprintln!("error: {}: {message}", scenario.label());
                failed = true;
            }
            Watched::Hung => {
                // The stuck threads cannot be stopped; returning ends the process with them.
                eprintln!(
                    "error: {}: not finished after {WATCHDOG:?}; a round trip hangs",
                    scenario.label()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// How a scenario run under the watchdog ended.
enum Watched {
    Finished(Result<Measurement, String>),
    Hung,
}

/// Runs a scenario on a thread of its own and waits at most [`WATCHDOG`] for it.
fn run_watched(scenario: &Scenario, setup: &Setup) -> Watched {
    let (done, outcome) = mpsc::channel();
    let run = scenario.run;
    let setup = setup.clone();
    let spawned = thread::Builder::new()
        .name(format!("bench-{}", scenario.name))
        .spawn(move || {
            let _ = done.send(run(&setup));
        });
    if let Err(error) = spawned {
        return Watched::Finished(Err(format!("cannot start a thread: {error}")));
    }
    match outcome.recv_timeout(WATCHDOG) {
        Ok(result) => Watched::Finished(result),
        Err(RecvTimeoutError::Disconnected) => {
            Watched::Finished(Err("the scenario thread panicked".to_owned()))
        }
        Err(RecvTimeoutError::Timeout) => Watched::Hung,
    }
}

/// One output line.
fn report(scenario: &Scenario, measurement: &Measurement) -> String {
    let steps = measurement.sorted.len();
    format!(
        "{} {} {} {} {:.2} {:.0} {:.1} {:.1} {:.1}",
        scenario.name,
        scenario.transport,
        scenario.federates,
        steps,
        measurement.seconds,
        steps as f64 / measurement.seconds,
        measurement.seconds * 1e6 / steps as f64,
        micros(measurement.percentile(50)),
        micros(measurement.percentile(90)),
    )
}

// Scenarios.

/// `raw-quinn/quic`: an echo over one quinn stream, server and client on threads of their own.
fn raw_quinn(setup: &Setup) -> Result<Measurement, String> {
    let server = EchoServer::start(setup)?;
    let client_config = echo_client_config(setup)?;
    let address = server.address;
    let budget = setup.budget;
    let client = thread::Builder::new()
        .name("bench-echo-client".into())
        .spawn(move || on_current_thread(echo_client(client_config, address, budget)))
        .map_err(|e| format!("cannot start the echo client thread: {e}"))?;
    // On a client error the server is left to end on its own (at the latest by idle timeout).
    let measurement = joined(client, "echo client")?;
    server.finish()?;
    Ok(measurement)
}

/// `raw-quinn-handoff/quic`: the raw echo behind the SDK's link structure. The timing thread
/// hands each message to a QUIC I/O thread over an unbounded tokio channel and waits for the
/// echo on another, parking at once, as a blocking federate does with no spin. Its distance to
/// `raw-quinn` is the cost of the two extra thread hand-offs; its distance to
/// `advance-nospin/quic` is the daemon's and the protocol's.
fn raw_quinn_handoff(setup: &Setup) -> Result<Measurement, String> {
    let server = EchoServer::start(setup)?;
    let client_config = echo_client_config(setup)?;
    let address = server.address;
    let (requests, outgoing) = unbounded_channel();
    let (deliver, mut replies) = unbounded_channel();
    let io = thread::Builder::new()
        .name("bench-echo-io".into())
        .spawn(move || on_current_thread(echo_relay(client_config, address, outgoing, deliver)))
        .map_err(|e| format!("cannot start the echo I/O thread: {e}"))?;

    // Like the blocking federate's runtime: no drivers, it only waits on channels.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let message = [0x5a; MESSAGE_LEN];
    let mut meter = Meter::new(&setup.budget);
    let mut cut_short = false;
    while meter.more() {
        let start = Instant::now();
        if requests.send(message).is_err() {
            cut_short = true;
            break;
        }
        // The relay gives up after `NETWORK_TIMEOUT` and then closes this channel.
        let Some(echo) = runtime.block_on(replies.recv()) else {
            cut_short = true;
            break;
        };
        meter.record(start.elapsed());
        if echo != message {
            return Err("the echo differs from the message".to_owned());
        }
    }
    let measurement = meter.finish();

    // A closed channel ends the relay, which says why it ended early if it did.
    drop(requests);
    joined(io, "echo I/O")?;
    if cut_short {
        return Err("the echo I/O thread ended early".to_owned());
    }
    server.finish()?;
    Ok(measurement)
}

/// `advance/quic`: one federate against the daemon, with the SDK's default spin.
fn advance_quic(setup: &Setup) -> Result<Measurement, String> {
    advance_over_quic(setup, None)
}

/// `advance-nospin/quic`: as [`advance_quic`], parking at once while waiting for the RTI.
fn advance_quic_no_spin(setup: &Setup) -> Result<Measurement, String> {
    advance_over_quic(setup, Some(Duration::ZERO))
}

/// `advance/embedded`: one federate against the embedded RTI, with the SDK's default spin.
fn advance_embedded(setup: &Setup) -> Result<Measurement, String> {
    advance_over_embedded(setup, None)
}

/// `advance-nospin/embedded`: as [`advance_embedded`], parking at once while waiting.
fn advance_embedded_no_spin(setup: &Setup) -> Result<Measurement, String> {
    advance_over_embedded(setup, Some(Duration::ZERO))
}

// Scenario building blocks.

fn advance_over_quic(setup: &Setup, spin: Option<Duration>) -> Result<Measurement, String> {
    let daemon = Daemon::start(setup.server_tls())?;
    let url = format!("quic://{}", daemon.address);
    let connector =
        Connector::quic(&url, setup.client_tls()).map_err(|e| format!("connector: {e}"))?;
    let measurement = advance_loop(connector, spin, &setup.budget)?;
    daemon.stop()?;
    Ok(measurement)
}

fn advance_over_embedded(setup: &Setup, spin: Option<Duration>) -> Result<Measurement, String> {
    let rti = EmbeddedRti::start().map_err(|e| format!("cannot start the embedded RTI: {e}"))?;
    advance_loop(Connector::from(&rti), spin, &setup.budget)
}

/// Joins one regulating and constrained federate and times each `advance_to(t + STEP)`. With
/// no other regulating federate its GALT is unbounded, so every request is granted at once:
/// the time is the round trip of the request, its response and the grant.
fn advance_loop(
    connector: Connector,
    spin: Option<Duration>,
    budget: &Budget,
) -> Result<Measurement, String> {
    let mut builder = Federate::builder(FEDERATION, CLIENT)
        .create_federation(ObjectModel::new())
        .time_regulating(STEP)
        .time_constrained();
    if let Some(spin) = spin {
        builder = builder.spin(spin);
    }
    let mut federate = builder
        .join_blocking(connector)
        .map_err(|e| format!("join: {e}"))?;

    let mut meter = Meter::new(budget);
    while meter.more() {
        let target = federate
            .time()
            .checked_add(STEP)
            .map_err(|e| format!("next time: {e}"))?;
        let start = Instant::now();
        let grant = federate
            .advance_to(target)
            .map_err(|e| format!("advance to {target}: {e}"))?;
        meter.record(start.elapsed());
        if grant.time != target {
            return Err(format!("asked for {target}, granted {}", grant.time));
        }
    }
    let measurement = meter.finish();

    federate.resign().map_err(|e| format!("resign: {e}"))?;
    Ok(measurement)
}

/// The echo server on a thread of its own with a current-thread runtime.
struct EchoServer {
    address: SocketAddr,
    thread: thread::JoinHandle<Result<(), String>>,
}

impl EchoServer {
    /// Starts the server on 127.0.0.1 with a free port, with the TLS configuration the daemon
    /// uses, and waits until it listens.
    fn start(setup: &Setup) -> Result<Self, String> {
        let mut config = tls::server_config(&setup.server_tls(), false)
            .map_err(|e| format!("echo server TLS: {e}"))?;
        config.transport_config(transport_config()?);
        let (listening, address) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("bench-echo-server".into())
            .spawn(move || on_current_thread(echo_server(config, listening)))
            .map_err(|e| format!("cannot start the echo server thread: {e}"))?;
        match address.recv_timeout(NETWORK_TIMEOUT) {
            Ok(address) => Ok(Self { address, thread }),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "the echo server did not listen within {NETWORK_TIMEOUT:?}"
            )),
            // The server thread ended before listening: it says why.
            Err(RecvTimeoutError::Disconnected) => Err(match joined(thread, "echo server") {
                Err(message) => message,
                Ok(()) => "the echo server ended before listening".to_owned(),
            }),
        }
    }

    /// Waits for the server to end, which it does once its client has finished.
    fn finish(self) -> Result<(), String> {
        joined(self.thread, "echo server")
    }
}

/// The TLS configuration the SDK uses, with the SDK's transport settings.
fn echo_client_config(setup: &Setup) -> Result<quinn::ClientConfig, String> {
    let mut config = tls::client_config(&setup.client_tls(), false)
        .map_err(|e| format!("echo client TLS: {e}"))?;
    config.transport_config(transport_config()?);
    Ok(config)
}

/// Echoes [`MESSAGE_LEN`]-byte messages on the first stream of the first connection until the
/// client finishes the stream.
async fn echo_server(
    config: quinn::ServerConfig,
    listening: mpsc::Sender<SocketAddr>,
) -> Result<(), String> {
    let endpoint = quinn::Endpoint::server(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(|e| format!("echo server cannot listen: {e}"))?;
    let address = endpoint
        .local_addr()
        .map_err(|e| format!("echo server address: {e}"))?;
    let _ = listening.send(address);

    let incoming = within("accepting a connection", endpoint.accept())
        .await?
        .ok_or("the echo server's endpoint closed")?;
    let connection = within("the server handshake", incoming)
        .await?
        .map_err(|e| format!("echo server handshake: {e}"))?;
    let (mut send, mut recv) = within("accepting the stream", connection.accept_bi())
        .await?
        .map_err(|e| format!("echo server stream: {e}"))?;

    // No timeout per message: the client times its own waits and the watchdog covers the rest.
    let mut message = [0u8; MESSAGE_LEN];
    loop {
        match recv.read_exact(&mut message).await {
            Ok(()) => send
                .write_all(&message)
                .await
                .map_err(|e| format!("echo server write: {e}"))?,
            Err(quinn::ReadExactError::FinishedEarly(0)) => break,
            Err(e) => return Err(format!("echo server read: {e}")),
        }
    }
    send.finish()
        .map_err(|e| format!("echo server finish: {e}"))?;

    // The client closes the connection once it has read the end of the stream.
    let _ = within("the client's close", connection.closed()).await;
    let _ = within("the server going idle", endpoint.wait_idle()).await;
    Ok(())
}

/// Connects to the echo server and times each echo.
async fn echo_client(
    config: quinn::ClientConfig,
    server: SocketAddr,
    budget: Budget,
) -> Result<Measurement, String> {
    let (endpoint, connection, mut send, mut recv) = echo_connect(config, server).await?;

    let message = [0x5a; MESSAGE_LEN];
    let mut echo = [0u8; MESSAGE_LEN];
    let mut meter = Meter::new(&budget);
    while meter.more() {
        let start = Instant::now();
        within("an echo", async {
            send.write_all(&message)
                .await
                .map_err(|e| format!("echo client write: {e}"))?;
            recv.read_exact(&mut echo)
                .await
                .map_err(|e| format!("echo client read: {e}"))
        })
        .await??;
        meter.record(start.elapsed());
        if echo != message {
            return Err("the echo differs from the message".to_owned());
        }
    }
    let measurement = meter.finish();

    // End cleanly: finish our side, read the server's end, close, let the close frame leave.
    send.finish()
        .map_err(|e| format!("echo client finish: {e}"))?;
    within("the end of the echo stream", recv.read_to_end(MESSAGE_LEN))
        .await?
        .map_err(|e| format!("echo client end of stream: {e}"))?;
    connection.close(0u32.into(), b"done");
    let _ = within("the client going idle", endpoint.wait_idle()).await;
    Ok(measurement)
}

/// The QUIC I/O thread of `raw-quinn-handoff`: moves messages from `outgoing` to the stream
/// and echoes from the stream to `deliver`, as the SDK's link thread moves frames.
async fn echo_relay(
    config: quinn::ClientConfig,
    server: SocketAddr,
    mut outgoing: UnboundedReceiver<[u8; MESSAGE_LEN]>,
    deliver: UnboundedSender<[u8; MESSAGE_LEN]>,
) -> Result<(), String> {
    let (endpoint, connection, mut send, mut recv) = echo_connect(config, server).await?;
    let writing = async {
        while let Some(message) = outgoing.recv().await {
            send.write_all(&message)
                .await
                .map_err(|e| format!("echo relay write: {e}"))?;
        }
        send.finish().map_err(|e| format!("echo relay finish: {e}"))
    };
    let reading = async {
        let mut echo = [0u8; MESSAGE_LEN];
        loop {
            match within("an echo", recv.read_exact(&mut echo)).await? {
                // Once the timing thread has gone, read on to the end of the stream.
                Ok(()) => {
                    let _ = deliver.send(echo);
                }
                Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(()),
                Err(e) => return Err(format!("echo relay read: {e}")),
            }
        }
    };
    // Dropping `deliver` on an error tells the timing thread at once.
    let relayed = tokio::try_join!(writing, reading).map(|_| ());
    drop(deliver);
    connection.close(0u32.into(), b"done");
    let _ = within("the relay going idle", endpoint.wait_idle()).await;
    relayed
}

/// Connects to the echo server and opens the stream.
async fn echo_connect(
    config: quinn::ClientConfig,
    server: SocketAddr,
) -> Result<
    (
        quinn::Endpoint,
        quinn::Connection,
        quinn::SendStream,
        quinn::RecvStream,
    ),
    String,
> {
    let endpoint = quinn::Endpoint::client(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        .map_err(|e| format!("echo client socket: {e}"))?;
    let connecting = endpoint
        .connect_with(config, server, SERVER)
        .map_err(|e| format!("echo client connect: {e}"))?;
    let connection = within("the client handshake", connecting)
        .await?
        .map_err(|e| format!("echo client handshake: {e}"))?;
    let (send, recv) = within("opening the stream", connection.open_bi())
        .await?
        .map_err(|e| format!("echo client stream: {e}"))?;
    Ok((endpoint, connection, send, recv))
}

/// The RTI daemon on a thread of its own with a current-thread runtime, as `fedtwin rti` runs
/// it. Dropping it without [`Daemon::stop`] also shuts the daemon down.
struct Daemon {
    address: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    finished: mpsc::Receiver<Result<(), String>>,
}

impl Daemon {
    /// Starts the daemon on 127.0.0.1 with a free port, no policy and no audit log, and waits
    /// until it listens.
    fn start(tls: TlsFiles) -> Result<Self, String> {
        let config = DaemonConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tls,
            allow_classical: false,
            policy: None,
            audit: None,
            max_frame: DEFAULT_MAX_FRAME,
            idle_timeout: IDLE_TIMEOUT,
            faults: fedtwin_rti::FaultSettings::default(),
        };
        let (ready, address) = mpsc::channel();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let (done, finished) = mpsc::channel();
        thread::Builder::new()
            .name("bench-rti".into())
            .spawn(move || {
                let outcome = on_current_thread(async move {
                    let stopped = async {
                        // A dropped sender also means stop.
                        let _ = stop.await;
                    };
                    daemon::serve(config, stopped, move |address| {
                        let _ = ready.send(address);
                    })
                    .await
                    .map_err(|e| format!("daemon: {e}"))
                });
                let _ = done.send(outcome);
            })
            .map_err(|e| format!("cannot start the daemon thread: {e}"))?;

        match address.recv_timeout(NETWORK_TIMEOUT) {
            Ok(address) => Ok(Self {
                address,
                shutdown,
                finished,
            }),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "the daemon did not listen within {NETWORK_TIMEOUT:?}"
            )),
            // The daemon ended before listening: it says why.
            Err(RecvTimeoutError::Disconnected) => {
                Err(match finished.recv_timeout(NETWORK_TIMEOUT) {
                    Ok(Err(message)) => message,
                    _ => "the daemon ended before listening".to_owned(),
                })
            }
        }
    }

    /// Shuts the daemon down and waits for it to end.
    fn stop(self) -> Result<(), String> {
        let _ = self.shutdown.send(());
        // The daemon gives its close frames up to 2 s to leave.
        match self.finished.recv_timeout(NETWORK_TIMEOUT) {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "the daemon did not stop within {NETWORK_TIMEOUT:?}"
            )),
        }
    }
}

/// Counts round trips against a [`Budget`] and keeps the durations of the measured ones.
struct Meter {
    budget: Budget,
    warmed: usize,
    samples: Vec<Duration>,
    measuring_since: Option<Instant>,
}

impl Meter {
    fn new(budget: &Budget) -> Self {
        Self {
            budget: *budget,
            warmed: 0,
            samples: Vec::with_capacity(budget.steps),
            measuring_since: (budget.warm_up == 0).then(Instant::now),
        }
    }

    /// Whether another round trip is due.
    fn more(&self) -> bool {
        match self.measuring_since {
            None => true,
            Some(since) => {
                self.samples.len() < self.budget.steps && since.elapsed() < self.budget.limit
            }
        }
    }

    /// Records one round trip; those of the warm-up are dropped.
    fn record(&mut self, round_trip: Duration) {
        if self.measuring_since.is_some() {
            self.samples.push(round_trip);
            return;
        }
        self.warmed += 1;
        if self.warmed >= self.budget.warm_up {
            self.measuring_since = Some(Instant::now());
        }
    }

    fn finish(mut self) -> Measurement {
        let seconds = self
            .measuring_since
            .map_or(0.0, |since| since.elapsed().as_secs_f64());
        self.samples.sort_unstable();
        Measurement {
            sorted: self.samples,
            seconds,
        }
    }
}

impl Measurement {
    /// The nearest-rank percentile `p` (0 to 100) of the round trips.
    fn percentile(&self, p: usize) -> Duration {
        let rank = (p * self.sorted.len()).div_ceil(100).max(1);
        self.sorted.get(rank - 1).copied().unwrap_or(Duration::ZERO)
    }
}

impl Options {
    /// Reads `[FILTER] [--steps N]`; `None` when help was asked for.
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Self>, String> {
        let mut options = Self {
            filter: None,
            steps: DEFAULT_STEPS,
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => return Ok(None),
                "--steps" => {
                    let value = args.next().ok_or("--steps needs a number")?;
                    options.steps = value
                        .parse()
                        .ok()
                        .filter(|steps| *steps > 0)
                        .ok_or(format!("--steps takes a positive number, not `{value}`"))?;
                }
                flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
                filter if options.filter.is_none() => options.filter = Some(filter.to_owned()),
                extra => return Err(format!("unexpected argument `{extra}`")),
            }
        }
        Ok(Some(options))
    }

    fn selects(&self, scenario: &Scenario) -> bool {
        self.filter
            .as_deref()
            .is_none_or(|filter| scenario.label().contains(filter))
    }
}

impl Certificates {
    /// Makes the CA and the two certificates, valid for a day, in a fresh scratch directory.
    fn create() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("fedtwin-bench-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        // Built first so that a failure below still removes the directory.
        let certificates = Self { dir };
        tls::init_ca(&certificates.dir, 1).map_err(|e| format!("federation CA: {e}"))?;
        for name in [SERVER, CLIENT] {
            tls::issue_for_days(&certificates.dir, name, Role::Federate, 1)
                .map_err(|e| format!("certificate for `{name}`: {e}"))?;
        }
        Ok(certificates)
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

// Helpers.

/// The transport settings the daemon and the SDK use: idle timeout and keep-alives.
fn transport_config() -> Result<Arc<quinn::TransportConfig>, String> {
    let idle = quinn::IdleTimeout::try_from(IDLE_TIMEOUT)
        .map_err(|_| format!("idle timeout {IDLE_TIMEOUT:?} out of range"))?;
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(IDLE_TIMEOUT / 3));
    Ok(Arc::new(transport))
}

/// Runs `future` to completion on a new current-thread runtime with I/O and timers.
fn on_current_thread<T>(future: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?
        .block_on(future)
}

/// `future`'s output, or an error naming `what` if it takes longer than [`NETWORK_TIMEOUT`].
async fn within<T>(what: &str, future: impl IntoFuture<Output = T>) -> Result<T, String> {
    tokio::time::timeout(NETWORK_TIMEOUT, future)
        .await
        .map_err(|_| format!("no progress on {what} within {NETWORK_TIMEOUT:?}"))
}

/// The result of a scenario's helper thread.
fn joined<T>(thread: thread::JoinHandle<Result<T, String>>, what: &str) -> Result<T, String> {
    thread
        .join()
        .map_err(|_| format!("the {what} thread panicked"))?
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
