//! Scenario benches: the time-advance round trip of a federate over each transport, next to a
//! raw quinn stream round trip measured in the same run on the same machine.
//!
//! ```text
//! cargo run --release -p fedtwin-benches --bin fedtwin-bench -- [FILTER] [--steps N] [--quick]
//! ```
//!
//! `FILTER` keeps the scenarios whose `scenario/transport/N` label contains it (`quic`,
//! `raw-quinn`, `advance/embedded`, `lockstep/quic/32`). Each scenario runs [`WARM_UP`] round
//! trips unmeasured, then `N` measured ones (default [`DEFAULT_STEPS`]) or as many as fit in
//! [`TIME_LIMIT`], and prints one line. `--quick` makes a pass of about 20 s: [`QUICK_WARM_UP`],
//! [`QUICK_STEPS`], [`QUICK_TIME_LIMIT`] and [`QUICK_SCALE_STEPS`] (`--steps` still wins). The
//! default pass takes about a minute and a half on two cores. Lines:
//!
//! | column | meaning |
//! |---|---|
//! | `scenario`, `transport` | what ran, over what |
//! | `N` | federates (`raw-*`: clients) |
//! | `steps` | measured round trips; with several federates the mean steps per federate; `raw-barrier`: rounds; `phold`: events handled, all federates together |
//! | `seconds` | wall time of the measured loop (several federates: first start to last end) |
//! | `grants_per_s` | grants (all federates together) per second (`raw-*`: echoes; `phold`: events) |
//! | `us_per_step` | `seconds / steps`; for `pingpong` the median step (same as `median_us`) |
//! | `median_us`, `p90_us` | of the round trips, each timed on its own with [`Instant`]; with several federates, those of `f0` (`phold`: its NER calls) |
//! | `kib_per_federate` | `scale` only, a trailing tenth column: the process's peak RSS (`VmHWM` in `/proc/self/status`, reset through `/proc/self/clear_refs` before the scenario when the kernel allows) divided by `N` |
//!
//! # Scenarios
//!
//! * `raw-quinn/quic`: the floor. An echo server and a client, each on its own thread with its
//!   own current-thread runtime (as the daemon and the SDK's QUIC link thread run), over
//!   loopback with the TLS configurations fedtwin uses; one bidirectional stream; the client
//!   writes [`MESSAGE_LEN`] bytes and waits for their echo.
//! * `raw-quinn-handoff/quic`: the same echo behind the async SDK's link structure: the timing
//!   thread hands each message to a QUIC I/O thread and parks until the echo comes back from
//!   it. It tells the cost of those two hand-offs, which the blocking SDK no longer pays.
//! * `raw-barrier/udp`, `raw-barrier/quic` (N = 2, 8, 32): the floors of the ring. `N` client
//!   threads, each with its own socket (`quic`: its own endpoint, connection and current-thread
//!   runtime, as a blocking federate), and a server thread (`quic`: one current-thread runtime
//!   for all connections, as the daemon) that takes one [`MESSAGE_LEN`]-byte message from every
//!   client, then answers each: every federate's request, then every grant, with no RTI.
//!   `grants_per_s` counts all clients' echoes; `steps` are rounds.
//! * `advance/quic`: the daemon in a child process (this executable run with the hidden
//!   `--serve-daemon DIR` argument, serving as `fedtwin rti` does, on a current-thread
//!   runtime) and one federate, regulating with a lookahead of one tick and constrained, timing
//!   the blocking `advance_to(t + 1 tick)`: the request and its grant. Every `quic` scenario
//!   starts a daemon process of its own and stops it at the end by closing its standard input;
//!   a daemon also stops when the bench dies, and is killed if it does not stop in time.
//! * `advance/quic-inproc`: the same with the daemon on a thread of the bench's process, to
//!   show what the process boundary costs.
//! * `advance/embedded`: the same federate against the embedded RTI.
//!
//! The multi-federate scenarios below run each federate on a thread of its own (blocking API)
//! unless said otherwise; over `quic` each has its own connection (and certificate, named
//! `f<i>`) to the daemon process. All are regulating with a lookahead of one step
//! ([`RING_STEP`], 1 ms) and constrained. Embedded they keep the SDK's default poll before
//! parking; over QUIC each waits on its own connection's sockets. They start together: `f0`
//! registers the [`START`] sync point for all once all have joined, then each synchronizes.
//!
//! * `lockstep/*` (N = 2, 8, 32): a ring. Federate `i` updates one `f64` of its object each
//!   step, stamped `t + step`, and subscribes to federate `i + 1`'s (one object class per
//!   federate), then TAR(`t + step`). `warm_up / 10` unmeasured steps, then `steps` or
//!   `TIME_LIMIT`.
//! * `events/*`: the same ring with one interaction per step and NER(`t + step`).
//! * `pingpong/*` (N = 2): `f0` sends `Ping(k)` stamped `t + step` and TAR(`t + step`); `f1`
//!   answers each ping in its next step with `Pong(k)`, stamped one step later again. Each step
//!   carries one message each way and a grant to each side; `us_per_step` is the median of
//!   `f0`'s steps. `warm_up / 10` unmeasured steps, then `steps` or `TIME_LIMIT`.
//! * `phold/*` (N = 8): PHOLD with [`PHOLD_POPULATION`] events per federate. Each event handled
//!   at its timestamp sends one new one to a uniformly random federate (seeded xorshift, the
//!   sender included, whose events stay local) stamped now + lookahead + exponential (mean
//!   [`PHOLD_MEAN_DELAY`]); each federate loops on NER(its next local event) up to a simulated
//!   end sized for about `steps` events per federate, or `TIME_LIMIT`.
//! * `scale/embedded` (N = 1 000): async federates on one two-worker multi-thread runtime,
//!   no spin, no data, each making [`SCALE_STEPS`] TAR steps (or `TIME_LIMIT`); prints the
//!   extra `kib_per_federate` column.
//!
//! A scenario that has not finished after [`WATCHDOG`] fails the run with a message instead of
//! hanging; network waits the bench drives itself give up after [`NETWORK_TIMEOUT`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs;
use std::future::{Future, IntoFuture};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use federate_sdk::{
    Connector, EmbeddedRti, Error as SdkError, Federate, ObjectModel, RtiError, SimDuration,
    SimTime, TlsFiles, Values, blocking,
};
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

/// `--quick`: warm-up round trips.
const QUICK_WARM_UP: usize = 100;
/// `--quick`: measured round trips (ring steps, PHOLD events) per scenario.
const QUICK_STEPS: usize = 5_000;
/// `--quick`: a scenario stops measuring after this long.
const QUICK_TIME_LIMIT: Duration = Duration::from_millis(800);
/// Steps of each federate in `scale`, and with `--quick`.
const SCALE_STEPS: usize = 300;
const QUICK_SCALE_STEPS: usize = 100;
/// The step and lookahead of the ring, PHOLD and scale scenarios: one millisecond.
const RING_STEP: SimDuration = SimDuration::from_ticks(1_000_000);
/// PHOLD: events in flight per federate.
const PHOLD_POPULATION: usize = 4;
/// PHOLD: mean of the exponential part of an event's delay, in seconds.
const PHOLD_MEAN_DELAY: f64 = 1e-3;
/// The sync point at which the federates of a scenario start together.
const START: &str = "start";
/// The hidden first argument that makes this executable the daemon of a QUIC scenario.
const SERVE_DAEMON: &str = "--serve-daemon";

const USAGE: &str = "usage: fedtwin-bench [FILTER] [--steps N] [--quick]";

/// One scenario: its label and the function that runs it.
struct Scenario {
    name: &'static str,
    transport: &'static str,
    federates: usize,
    run: fn(&Setup, usize) -> Result<Measurement, String>,
}

/// Every scenario, in the order they run and print.
const SCENARIOS: [Scenario; 29] = [
    Scenario {
        name: "raw-udp",
        transport: "udp",
        federates: 1,
        run: raw_udp,
    },
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
        name: "raw-barrier",
        transport: "udp",
        federates: 2,
        run: raw_barrier_udp,
    },
    Scenario {
        name: "raw-barrier",
        transport: "udp",
        federates: 8,
        run: raw_barrier_udp,
    },
    Scenario {
        name: "raw-barrier",
        transport: "udp",
        federates: 32,
        run: raw_barrier_udp,
    },
    Scenario {
        name: "raw-barrier",
        transport: "quic",
        federates: 2,
        run: raw_barrier_quinn,
    },
    Scenario {
        name: "raw-barrier",
        transport: "quic",
        federates: 8,
        run: raw_barrier_quinn,
    },
    Scenario {
        name: "raw-barrier",
        transport: "quic",
        federates: 32,
        run: raw_barrier_quinn,
    },
    Scenario {
        name: "advance",
        transport: "quic",
        federates: 1,
        run: advance_quic,
    },
    Scenario {
        name: "advance",
        transport: "quic-inproc",
        federates: 1,
        run: advance_quic_in_process,
    },
    Scenario {
        name: "advance",
        transport: "embedded",
        federates: 1,
        run: advance_embedded,
    },
    Scenario {
        name: "lockstep",
        transport: "embedded",
        federates: 2,
        run: lockstep_embedded,
    },
    Scenario {
        name: "lockstep",
        transport: "embedded",
        federates: 8,
        run: lockstep_embedded,
    },
    Scenario {
        name: "lockstep",
        transport: "embedded",
        federates: 32,
        run: lockstep_embedded,
    },
    Scenario {
        name: "lockstep",
        transport: "quic",
        federates: 2,
        run: lockstep_quic,
    },
    Scenario {
        name: "lockstep",
        transport: "quic",
        federates: 8,
        run: lockstep_quic,
    },
    Scenario {
        name: "lockstep",
        transport: "quic",
        federates: 32,
        run: lockstep_quic,
    },
    Scenario {
        name: "events",
        transport: "embedded",
        federates: 2,
        run: events_embedded,
    },
    Scenario {
        name: "events",
        transport: "embedded",
        federates: 8,
        run: events_embedded,
    },
    Scenario {
        name: "events",
        transport: "embedded",
        federates: 32,
        run: events_embedded,
    },
    Scenario {
        name: "events",
        transport: "quic",
        federates: 2,
        run: events_quic,
    },
    Scenario {
        name: "events",
        transport: "quic",
        federates: 8,
        run: events_quic,
    },
    Scenario {
        name: "events",
        transport: "quic",
        federates: 32,
        run: events_quic,
    },
    Scenario {
        name: "pingpong",
        transport: "embedded",
        federates: 2,
        run: pingpong_embedded,
    },
    Scenario {
        name: "pingpong",
        transport: "quic",
        federates: 2,
        run: pingpong_quic,
    },
    Scenario {
        name: "phold",
        transport: "embedded",
        federates: 8,
        run: phold_embedded,
    },
    Scenario {
        name: "phold",
        transport: "quic",
        federates: 8,
        run: phold_quic,
    },
    Scenario {
        name: "scale",
        transport: "embedded",
        federates: 1_000,
        run: scale_embedded,
    },
];

impl Scenario {
    fn label(&self) -> String {
        format!("{}/{}/{}", self.name, self.transport, self.federates)
    }
}

/// What the command line asked for.
#[derive(Debug)]
struct Options {
    filter: Option<String>,
    steps: Option<usize>,
    quick: bool,
}

/// How many round trips a scenario makes, and for how long at most.
#[derive(Debug, Clone, Copy)]
struct Budget {
    warm_up: usize,
    steps: usize,
    limit: Duration,
    /// Steps of each federate in `scale`.
    scale_steps: usize,
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
    /// The `steps` column: round trips, mean steps per federate, or events (`phold`).
    steps: usize,
    /// Grants (`phold`: events) in `seconds`, for the `grants_per_s` column.
    grants: u64,
    /// Trailing columns of this scenario only (`scale`: `kib_per_federate`).
    extra: Option<String>,
    /// The `us_per_step` column is the median step rather than `seconds / steps` (`pingpong`).
    median_per_step: bool,
}

/// A federation CA and certificates for [`SERVER`] and [`CLIENT`] in a scratch directory, which
/// is removed when this is dropped.
#[derive(Debug)]
struct Certificates {
    dir: PathBuf,
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some(SERVE_DAEMON) {
        return serve_daemon(args.nth(1));
    }
    let options = match Options::parse(args) {
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
        budget: options.budget(),
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
    let federates = scenario.federates;
    let setup = setup.clone();
    let spawned = thread::Builder::new()
        .name(format!("bench-{}", scenario.name))
        .spawn(move || {
            let _ = done.send(run(&setup, federates));
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
    let steps = measurement.steps.max(1);
    let per_step = if measurement.median_per_step {
        micros(measurement.percentile(50))
    } else {
        measurement.seconds * 1e6 / steps as f64
    };
    let mut line = format!(
        "{} {} {} {} {:.2} {:.0} {:.1} {:.1} {:.1}",
        scenario.name,
        scenario.transport,
        scenario.federates,
        measurement.steps,
        measurement.seconds,
        measurement.grants as f64 / measurement.seconds,
        per_step,
        micros(measurement.percentile(50)),
        micros(measurement.percentile(90)),
    );
    if let Some(extra) = &measurement.extra {
        line.push(' ');
        line.push_str(extra);
    }
    line
}

// Scenarios.

/// `raw-udp/udp`: the network's floor. A [`MESSAGE_LEN`]-byte datagram echoed over loopback by
/// a thread with a blocking socket, the client on this thread: no TLS, no QUIC, no runtime.
fn raw_udp(setup: &Setup, _federates: usize) -> Result<Measurement, String> {
    let io = |what: &str, e: io::Error| format!("raw UDP {what}: {e}");
    let server = loopback_udp().map_err(|e| io("socket", e))?;
    let address = server.local_addr().map_err(|e| io("address", e))?;
    let echo = thread::Builder::new()
        .name("bench-udp-echo".into())
        .spawn(move || {
            let mut buffer = [0u8; MESSAGE_LEN];
            // An empty datagram ends the echo; so does a client gone silent (the read times out).
            while let Ok((n, from)) = server.recv_from(&mut buffer) {
                if n == 0 || server.send_to(&buffer[..n], from).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("cannot start the UDP echo thread: {e}"))?;

    let client = loopback_udp().map_err(|e| io("socket", e))?;
    client.connect(address).map_err(|e| io("connect", e))?;
    let message = [7u8; MESSAGE_LEN];
    let mut buffer = [0u8; MESSAGE_LEN];
    let mut round_trip = || -> Result<Duration, String> {
        let start = Instant::now();
        client.send(&message).map_err(|e| io("send", e))?;
        client
            .recv(&mut buffer)
            .map_err(|e| io("receive (lost datagram?)", e))?;
        Ok(start.elapsed())
    };
    let budget = setup.budget;
    for _ in 0..budget.warm_up {
        round_trip()?;
    }
    let mut samples = Vec::with_capacity(budget.steps);
    let began = Instant::now();
    while samples.len() < budget.steps && began.elapsed() < budget.limit {
        samples.push(round_trip()?);
    }
    let seconds = began.elapsed().as_secs_f64();
    let _ = client.send(&[]);
    let _ = echo.join();
    samples.sort_unstable();
    Ok(Measurement {
        steps: samples.len(),
        grants: samples.len() as u64,
        sorted: samples,
        seconds,
        extra: None,
        median_per_step: false,
    })
}

/// `raw-quinn/quic`: an echo over one quinn stream, server and client on threads of their own.
fn raw_quinn(setup: &Setup, _federates: usize) -> Result<Measurement, String> {
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
fn raw_quinn_handoff(setup: &Setup, _federates: usize) -> Result<Measurement, String> {
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

/// A round of `raw-barrier`: every client's message, then an echo to each. The first byte of a
/// message is [`LAST_ROUND`] when the round is the last.
const LAST_ROUND: u8 = 1;

/// `raw-barrier/udp`: the network's floor for the ring. `N` client threads with a blocking
/// socket each; a server thread with one blocking socket takes one datagram from every client,
/// then answers each: the pattern of a lock-step federation's step (every federate's request,
/// then every grant) with nothing but the kernel's UDP path. Client `f0` decides the last round
/// and times its round trips; `grants_per_s` counts all clients' echoes.
fn raw_barrier_udp(setup: &Setup, clients: usize) -> Result<Measurement, String> {
    let io = |what: &str, e: io::Error| format!("raw UDP barrier {what}: {e}");
    let server = loopback_udp().map_err(|e| io("socket", e))?;
    let address = server.local_addr().map_err(|e| io("address", e))?;
    let echo = thread::Builder::new()
        .name("bench-udp-barrier".into())
        .spawn(move || -> Result<(), String> {
            let mut senders = Vec::with_capacity(clients);
            let mut buffer = [0u8; MESSAGE_LEN];
            loop {
                senders.clear();
                let mut last = false;
                while senders.len() < clients {
                    let (n, from) = server
                        .recv_from(&mut buffer)
                        .map_err(|e| io("server receive", e))?;
                    last |= n > 0 && buffer[0] == LAST_ROUND;
                    senders.push(from);
                }
                buffer[0] = u8::from(last);
                for to in &senders {
                    server
                        .send_to(&buffer, to)
                        .map_err(|e| io("server send", e))?;
                }
                if last {
                    return Ok(());
                }
            }
        })
        .map_err(|e| format!("cannot start the UDP barrier thread: {e}"))?;

    let budget = setup.budget;
    let mut threads = Vec::with_capacity(clients);
    for index in 0..clients {
        let client = loopback_udp().map_err(|e| io("socket", e))?;
        client.connect(address).map_err(|e| io("connect", e))?;
        let thread = thread::Builder::new()
            .name(format!("bench-f{index}"))
            .spawn(move || {
                let mut meter = Meter::new(&budget);
                let mut message = [0u8; MESSAGE_LEN];
                loop {
                    // Only `f0` ends the run, with a round past its budget, which it does not
                    // count; the others follow.
                    let ending = index == 0 && !meter.more();
                    message[0] = u8::from(ending);
                    let start = Instant::now();
                    client.send(&message).map_err(|e| io("send", e))?;
                    client
                        .recv(&mut message)
                        .map_err(|e| io("receive (lost datagram?)", e))?;
                    if !ending {
                        meter.record(start.elapsed());
                    }
                    if message[0] == LAST_ROUND {
                        return Ok(meter.finish());
                    }
                }
            })
            .map_err(|e| format!("cannot start a UDP client thread: {e}"))?;
        threads.push(thread);
    }
    barrier_measurement(threads, clients, || joined(echo, "UDP barrier server"))
}

/// `raw-barrier/quic`: the same rounds over quinn, the floor for `lockstep/quic`. Each client
/// on a thread with its own current-thread runtime, endpoint and connection (as a blocking
/// federate); the server's connections share one current-thread runtime (as the daemon's) and
/// meet at a barrier each round.
fn raw_barrier_quinn(setup: &Setup, clients: usize) -> Result<Measurement, String> {
    let config = echo_server_config(setup)?;
    let (listening, address) = mpsc::channel();
    let server = thread::Builder::new()
        .name("bench-quinn-barrier".into())
        .spawn(move || on_current_thread(barrier_server(config, clients, listening)))
        .map_err(|e| format!("cannot start the barrier server thread: {e}"))?;
    let address = match address.recv_timeout(NETWORK_TIMEOUT) {
        Ok(address) => address,
        Err(_) => {
            return Err(match joined(server, "barrier server") {
                Err(message) => message,
                Ok(()) => "the barrier server ended before listening".to_owned(),
            });
        }
    };
    let budget = setup.budget;
    let mut threads = Vec::with_capacity(clients);
    for index in 0..clients {
        let config = echo_client_config(setup)?;
        let thread = thread::Builder::new()
            .name(format!("bench-f{index}"))
            .spawn(move || on_current_thread(barrier_client(config, address, index, budget)))
            .map_err(|e| format!("cannot start a barrier client thread: {e}"))?;
        threads.push(thread);
    }
    barrier_measurement(threads, clients, || joined(server, "barrier server"))
}

/// Accepts `clients` connections and runs rounds until a client marks one [`LAST_ROUND`].
async fn barrier_server(
    config: quinn::ServerConfig,
    clients: usize,
    listening: mpsc::Sender<SocketAddr>,
) -> Result<(), String> {
    let endpoint = quinn::Endpoint::server(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(|e| format!("barrier server cannot listen: {e}"))?;
    let address = endpoint
        .local_addr()
        .map_err(|e| format!("barrier server address: {e}"))?;
    let _ = listening.send(address);

    let barrier = Arc::new(tokio::sync::Barrier::new(clients));
    let last = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut connections = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let incoming = within("accepting a connection", endpoint.accept())
            .await?
            .ok_or("the barrier server's endpoint closed")?;
        let barrier = barrier.clone();
        let last = last.clone();
        connections.spawn(async move {
            let connection = within("the server handshake", incoming)
                .await?
                .map_err(|e| format!("barrier server handshake: {e}"))?;
            let (mut send, mut recv) = within("accepting the stream", connection.accept_bi())
                .await?
                .map_err(|e| format!("barrier server stream: {e}"))?;
            let mut message = [0u8; MESSAGE_LEN];
            loop {
                within("a client's message", recv.read_exact(&mut message))
                    .await?
                    .map_err(|e| format!("barrier server read: {e}"))?;
                if message[0] == LAST_ROUND {
                    last.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                // Every message of the round is in (and every flag set) once the barrier opens.
                barrier.wait().await;
                let ending = last.load(std::sync::atomic::Ordering::Relaxed);
                message[0] = u8::from(ending);
                send.write_all(&message)
                    .await
                    .map_err(|e| format!("barrier server write: {e}"))?;
                if ending {
                    break;
                }
            }
            send.finish()
                .map_err(|e| format!("barrier server finish: {e}"))?;
            // The client closes the connection once it has read the end of the stream.
            let _ = within("the client's close", connection.closed()).await;
            Ok::<(), String>(())
        });
    }
    while let Some(ended) = connections.join_next().await {
        ended.map_err(|e| format!("a barrier server task failed: {e}"))??;
    }
    let _ = within("the server going idle", endpoint.wait_idle()).await;
    Ok(())
}

/// One client of `raw-barrier/quic`: rounds until the server marks one [`LAST_ROUND`]; `f0`
/// (`index` 0) asks for it once its budget is spent.
async fn barrier_client(
    config: quinn::ClientConfig,
    server: SocketAddr,
    index: usize,
    budget: Budget,
) -> Result<Measurement, String> {
    let (endpoint, connection, mut send, mut recv) = echo_connect(config, server).await?;
    let mut meter = Meter::new(&budget);
    let mut message = [0u8; MESSAGE_LEN];
    loop {
        // As in `raw_barrier_udp`: `f0`'s last round is past its budget and not counted.
        let ending = index == 0 && !meter.more();
        message[0] = u8::from(ending);
        let start = Instant::now();
        let sent = message;
        exchange(&mut send, &mut recv, &sent, &mut message, "barrier client").await?;
        if !ending {
            meter.record(start.elapsed());
        }
        if message[0] == LAST_ROUND {
            break;
        }
    }
    let measurement = meter.finish();
    hang_up(endpoint, connection, send, recv, "barrier client").await?;
    Ok(measurement)
}

/// `f0`'s measurement of a `raw-barrier` run, with every client's echoes counted: all clients
/// make the same rounds. Every thread is joined, and the server last.
fn barrier_measurement(
    threads: Vec<thread::JoinHandle<Result<Measurement, String>>>,
    clients: usize,
    server: impl FnOnce() -> Result<(), String>,
) -> Result<Measurement, String> {
    let outcomes: Vec<Result<Measurement, String>> = threads
        .into_iter()
        .enumerate()
        .map(|(index, thread)| joined(thread, &format!("f{index} client")))
        .collect();
    server()?;
    let mut outcomes = outcomes.into_iter();
    let mut first = outcomes.next().ok_or("no client ran")??;
    for outcome in outcomes {
        outcome?;
    }
    first.grants = first.steps as u64 * clients as u64;
    Ok(first)
}

/// `advance/quic`: one federate against the daemon.
fn advance_quic(setup: &Setup, _federates: usize) -> Result<Measurement, String> {
    advance_over_quic(setup, Placement::Process)
}

/// `advance/quic-inproc`: as [`advance_quic`] with the daemon on a thread of this process.
fn advance_quic_in_process(setup: &Setup, _federates: usize) -> Result<Measurement, String> {
    advance_over_quic(setup, Placement::Thread)
}

/// `advance/embedded`: one federate against the embedded RTI.
fn advance_embedded(setup: &Setup, _federates: usize) -> Result<Measurement, String> {
    advance_over_embedded(setup)
}

/// `lockstep/embedded`: a ring of federates exchanging one attribute per step with TAR.
fn lockstep_embedded(setup: &Setup, federates: usize) -> Result<Measurement, String> {
    ring(setup, Transport::Embedded, federates, RingMode::Lockstep)
}

/// `lockstep/quic`: [`lockstep_embedded`] against the daemon, one connection per federate.
fn lockstep_quic(setup: &Setup, federates: usize) -> Result<Measurement, String> {
    ring(setup, Transport::Quic, federates, RingMode::Lockstep)
}

/// `events/embedded`: the ring with one interaction per step and NER.
fn events_embedded(setup: &Setup, federates: usize) -> Result<Measurement, String> {
    ring(setup, Transport::Embedded, federates, RingMode::Events)
}

/// `events/quic`: [`events_embedded`] against the daemon.
fn events_quic(setup: &Setup, federates: usize) -> Result<Measurement, String> {
    ring(setup, Transport::Quic, federates, RingMode::Events)
}

/// `pingpong/embedded`: two federates, one interaction each way per step.
fn pingpong_embedded(setup: &Setup, _federates: usize) -> Result<Measurement, String> {
    pingpong(setup, Transport::Embedded)
}

/// `pingpong/quic`: [`pingpong_embedded`] against the daemon.
fn pingpong_quic(setup: &Setup, _federates: usize) -> Result<Measurement, String> {
    pingpong(setup, Transport::Quic)
}

/// `phold/embedded`: PHOLD over NER.
fn phold_embedded(setup: &Setup, federates: usize) -> Result<Measurement, String> {
    phold(setup, Transport::Embedded, federates)
}

/// `phold/quic`: [`phold_embedded`] against the daemon.
fn phold_quic(setup: &Setup, federates: usize) -> Result<Measurement, String> {
    phold(setup, Transport::Quic, federates)
}

/// `scale/embedded`: many async federates on one two-worker runtime, TAR steps only.
fn scale_embedded(setup: &Setup, federates: usize) -> Result<Measurement, String> {
    // Best effort: resets the peak RSS (VmHWM) to the current RSS, so that the peak read at
    // the end is this scenario's rather than an earlier one's.
    let _ = fs::write("/proc/self/clear_refs", "5");
    let rti = EmbeddedRti::start().map_err(|e| format!("cannot start the embedded RTI: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let budget = setup.budget;
    let runs = runtime.block_on(scale_run(rti.clone(), federates, budget))?;
    drop(runtime);
    let peak_kib = peak_rss_kib()?;
    let mut measurement = combine(runs, federates, false)?;
    measurement.extra = Some(format!("{:.1}", peak_kib as f64 / federates as f64));
    Ok(measurement)
}

// Multi-federate building blocks.

/// The transport of a multi-federate scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Embedded,
    Quic,
}

/// What the ring federates exchange each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RingMode {
    /// One `f64` attribute update stamped `t + step`, then TAR(`t + step`).
    Lockstep,
    /// One interaction stamped `t + step`, then NER(`t + step`).
    Events,
}

/// The RTI of a multi-federate scenario and a connector for each federate.
struct Rig {
    connectors: Vec<Connector>,
    daemon: Option<Daemon>,
    // Kept alive for the scenario's length.
    _embedded: Option<EmbeddedRti>,
}

impl Rig {
    /// A fresh embedded RTI, or the daemon in this process with a certificate per federate.
    fn open(setup: &Setup, transport: Transport, names: &[String]) -> Result<Self, String> {
        match transport {
            Transport::Embedded => {
                let rti = EmbeddedRti::start()
                    .map_err(|e| format!("cannot start the embedded RTI: {e}"))?;
                Ok(Self {
                    connectors: names.iter().map(|_| Connector::from(&rti)).collect(),
                    daemon: None,
                    _embedded: Some(rti),
                })
            }
            Transport::Quic => {
                for name in names {
                    let files = TlsFiles::in_dir(&setup.certificates, name);
                    if !files.cert.exists() {
                        tls::issue_for_days(&setup.certificates, name, Role::Federate, 1)
                            .map_err(|e| format!("certificate for `{name}`: {e}"))?;
                    }
                }
                let daemon = Daemon::start(&setup.certificates, Placement::Process)?;
                let url = format!("quic://{}", daemon.address());
                let connectors = names
                    .iter()
                    .map(|name| {
                        Connector::quic(&url, TlsFiles::in_dir(&setup.certificates, name))
                            .map_err(|e| format!("connector: {e}"))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Self {
                    connectors,
                    daemon: Some(daemon),
                    _embedded: None,
                })
            }
        }
    }

    fn finish(self) -> Result<(), String> {
        match self.daemon {
            Some(daemon) => daemon.stop(),
            None => Ok(()),
        }
    }
}

/// What one federate of a multi-federate scenario did in its measured part.
struct Run {
    start: Instant,
    end: Instant,
    grants: u64,
    events: u64,
    /// The duration of each measured advance; kept by federate 0 only.
    samples: Vec<Duration>,
}

/// Federate names `f0`, `f1`, ...
fn federate_names(federates: usize) -> Vec<String> {
    (0..federates).map(|i| format!("f{i}")).collect()
}

/// Runs `member(index, connector)` for every federate on a thread of its own and collects
/// their runs, in index order.
fn on_threads(
    connectors: Vec<Connector>,
    member: impl Fn(usize, Connector) -> Result<Run, String> + Send + Sync + Clone + 'static,
) -> Result<Vec<Run>, String> {
    let mut threads = Vec::with_capacity(connectors.len());
    for (index, connector) in connectors.into_iter().enumerate() {
        let member = member.clone();
        let thread = thread::Builder::new()
            .name(format!("bench-f{index}"))
            .spawn(move || member(index, connector))
            .map_err(|e| format!("cannot start a federate thread: {e}"))?;
        threads.push(thread);
    }
    // Every thread is joined before an error is returned: a failing federate resigns by
    // dropping its connection, so the others go on and end.
    let outcomes: Vec<Result<Run, String>> = threads
        .into_iter()
        .enumerate()
        .map(|(index, thread)| joined(thread, &format!("f{index} federate")))
        .collect();
    outcomes.into_iter().collect()
}

/// One measurement from every federate's run: wall time from the first start to the last
/// end, grants (or events) summed, the samples of federate 0. `steps` is the mean number of
/// grants per federate, or with `count_events` the total number of events.
fn combine(runs: Vec<Run>, federates: usize, count_events: bool) -> Result<Measurement, String> {
    let start = runs
        .iter()
        .map(|run| run.start)
        .min()
        .ok_or("no federate ran")?;
    let end = runs
        .iter()
        .map(|run| run.end)
        .max()
        .ok_or("no federate ran")?;
    let grants: u64 = runs.iter().map(|run| run.grants).sum();
    let events: u64 = runs.iter().map(|run| run.events).sum();
    let mut sorted: Vec<Duration> = runs.into_iter().flat_map(|run| run.samples).collect();
    sorted.sort_unstable();
    let (steps, grants) = if count_events {
        (usize::try_from(events).unwrap_or(usize::MAX), events)
    } else {
        let mean = (grants as f64 / federates as f64).round() as usize;
        (mean, grants)
    };
    if steps == 0 {
        return Err("no measured step".to_owned());
    }
    Ok(Measurement {
        sorted,
        seconds: end.duration_since(start).as_secs_f64(),
        steps,
        grants,
        extra: None,
        median_per_step: false,
    })
}

/// Joins a regulating (lookahead [`RING_STEP`]) and constrained federate; parks at once
/// while waiting when more than two federates share the cores.
fn join_member(
    connector: Connector,
    name: &str,
    model: ObjectModel,
) -> Result<blocking::Federate, String> {
    // Embedded, every federate keeps the SDK's default poll before parking (with 8 threads on
    // two cores it still gives 4x the grants of parking at once, as polls yield the core).
    // Over QUIC a blocking federate waits on its connection's sockets and never polls.
    Federate::builder(FEDERATION, name)
        .create_federation(model)
        .time_regulating(RING_STEP)
        .time_constrained()
        .join_blocking(connector)
        .map_err(|e| format!("{name} join: {e}"))
}

/// The start barrier: `f0` registers [`START`] for every federate once all have joined
/// (retrying while some are missing, as ping-pong does), then each synchronizes.
fn start_together(federate: &mut blocking::Federate, names: &[String]) -> Result<(), String> {
    if federate.name() == names[0] {
        let everyone: Vec<&str> = names.iter().map(String::as_str).collect();
        let deadline = Instant::now() + WATCHDOG;
        loop {
            match federate.register_sync_point(START, &everyone) {
                Ok(()) => break,
                Err(SdkError::Refused {
                    source: RtiError::FederateNotFound(_),
                    ..
                }) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("register `{START}`: {e}")),
            }
        }
    }
    federate
        .synchronize(START)
        .map_err(|e| format!("{} synchronize: {e}", federate.name()))
}

/// The ring's model: an object class `Node<i>` with `value` and an interaction class
/// `Msg<i>` with `value` per federate, so that each subscribes to its neighbour's only.
fn ring_model(federates: usize) -> ObjectModel {
    (0..federates).fold(ObjectModel::new(), |model, i| {
        model
            .with_object_class(&format!("Node{i}"), ["value"])
            .with_interaction_class(&format!("Msg{i}"), ["value"])
    })
}

/// `lockstep` and `events`: federate `i` sends on `Node<i>`/`Msg<i>` and receives those of
/// `i + 1` (mod N). Each federate makes `warm_up / 10` unmeasured steps, then measures until it
/// has made `steps` or `limit` has passed.
fn ring(
    setup: &Setup,
    transport: Transport,
    federates: usize,
    mode: RingMode,
) -> Result<Measurement, String> {
    let names = Arc::new(federate_names(federates));
    let rig = Rig::open(setup, transport, &names)?;
    let budget = setup.budget;
    let connectors = rig.connectors.clone();
    let runs = on_threads(connectors, move |index, connector| {
        ring_member(connector, index, &names, mode, &budget)
    })?;
    rig.finish()?;
    combine(runs, federates, false)
}

fn ring_member(
    connector: Connector,
    index: usize,
    names: &[String],
    mode: RingMode,
    budget: &Budget,
) -> Result<Run, String> {
    let federates = names.len();
    let name = &names[index];
    let neighbour = (index + 1) % federates;
    let mut federate = join_member(connector, name, ring_model(federates))?;
    let fail = |what: &str, e: federate_sdk::Error| format!("{name} {what}: {e}");
    let object = match mode {
        RingMode::Lockstep => {
            federate
                .publish(&[&format!("Node{index}.value")])
                .map_err(|e| fail("publish", e))?;
            federate
                .subscribe(&[&format!("Node{neighbour}.value")])
                .map_err(|e| fail("subscribe", e))?;
            Some(
                federate
                    .register_object(&format!("Node{index}"), None)
                    .map_err(|e| fail("register object", e))?,
            )
        }
        RingMode::Events => {
            federate
                .publish_interaction(&format!("Msg{index}"))
                .map_err(|e| fail("publish", e))?;
            federate
                .subscribe_interaction(&format!("Msg{neighbour}"))
                .map_err(|e| fail("subscribe", e))?;
            None
        }
    };
    let class = format!("Msg{index}");
    start_together(&mut federate, names)?;

    let warm_up = budget.warm_up / 10;
    let mut start = Instant::now();
    let mut deadline = start + budget.limit;
    let mut grants = 0u64;
    let mut received = 0u64;
    let mut samples = Vec::new();
    for step in 0usize.. {
        if step == warm_up {
            start = Instant::now();
            deadline = start + budget.limit;
        }
        if step >= warm_up && (step - warm_up >= budget.steps || Instant::now() >= deadline) {
            break;
        }
        let target = federate
            .time()
            .checked_add(RING_STEP)
            .map_err(|e| format!("{name} next time: {e}"))?;
        let values = Values::new()
            .with("value", &(step as f64))
            .map_err(|e| fail("value", e))?;
        let began = Instant::now();
        let grant = match &object {
            Some(object) => {
                federate
                    .update(object, values, Some(target))
                    .map_err(|e| fail("update", e))?;
                federate
                    .advance_to(target)
                    .map_err(|e| fail("advance", e))?
            }
            None => {
                federate
                    .send_interaction(&class, values, Some(target))
                    .map_err(|e| fail("send interaction", e))?;
                federate
                    .next_event(target)
                    .map_err(|e| fail("next event", e))?
            }
        };
        let took = began.elapsed();
        if step >= warm_up {
            grants += 1;
            received += (grant.reflections().count() + grant.interactions().count()) as u64;
            if index == 0 {
                samples.push(took);
            }
        }
    }
    let end = Instant::now();
    federate.resign().map_err(|e| fail("resign", e))?;
    if grants > 2 && received == 0 {
        return Err(format!("{name} received nothing from its neighbour"));
    }
    Ok(Run {
        start,
        end,
        grants,
        events: received,
        samples,
    })
}

/// `pingpong`: `f0` sends `Ping(k)` at step `k`, stamped `t + step`, then TAR(`t + step`);
/// `f1` receives it with that grant and answers `Pong(k)` in its next step, stamped one step
/// later again, which `f0` receives with the grant that ends its step `k + 1`. So each step
/// carries one message each way through the RTI and one grant to each side; the `us_per_step`
/// column is the median of `f0`'s step times (send and advance). Both use the SDK's default
/// spin. `warm_up / 10` unmeasured steps, then `steps` or `limit`.
fn pingpong(setup: &Setup, transport: Transport) -> Result<Measurement, String> {
    let names = Arc::new(federate_names(2));
    let rig = Rig::open(setup, transport, &names)?;
    let budget = setup.budget;
    let connectors = rig.connectors.clone();
    let runs = on_threads(connectors, move |index, connector| {
        pingpong_member(connector, index, &names, &budget)
    })?;
    rig.finish()?;
    let mut measurement = combine(runs, 2, false)?;
    measurement.median_per_step = true;
    Ok(measurement)
}

fn pingpong_member(
    connector: Connector,
    index: usize,
    names: &[String],
    budget: &Budget,
) -> Result<Run, String> {
    let name = &names[index];
    let model = ObjectModel::new()
        .with_interaction_class("Ping", ["count"])
        .with_interaction_class("Pong", ["count"]);
    let mut federate = join_member(connector, name, model)?;
    let fail = |what: &str, e: federate_sdk::Error| format!("{name} {what}: {e}");
    let (sends, receives) = if index == 0 {
        ("Ping", "Pong")
    } else {
        ("Pong", "Ping")
    };
    federate
        .publish_interaction(sends)
        .map_err(|e| fail("publish", e))?;
    federate
        .subscribe_interaction(receives)
        .map_err(|e| fail("subscribe", e))?;
    start_together(&mut federate, names)?;

    let warm_up = budget.warm_up / 10;
    let mut start = Instant::now();
    let mut deadline = start + budget.limit;
    let mut grants = 0u64;
    let mut received = 0u64;
    let mut samples = Vec::new();
    // `f1`: the ping to answer in this step, received with the last grant.
    let mut to_answer: Option<u64> = None;
    for step in 0u64.. {
        if step == warm_up as u64 {
            start = Instant::now();
            deadline = start + budget.limit;
        }
        let measured = step >= warm_up as u64;
        if measured && (step - warm_up as u64 >= budget.steps as u64 || Instant::now() >= deadline)
        {
            break;
        }
        let target = federate
            .time()
            .checked_add(RING_STEP)
            .map_err(|e| format!("{name} next time: {e}"))?;
        let began = Instant::now();
        let count = if index == 0 {
            Some(step)
        } else {
            to_answer.take()
        };
        if let Some(count) = count {
            let values = Values::new()
                .with("count", &count)
                .map_err(|e| fail("value", e))?;
            federate
                .send_interaction(sends, values, Some(target))
                .map_err(|e| fail("send interaction", e))?;
        }
        let grant = federate
            .advance_to(target)
            .map_err(|e| fail("advance", e))?;
        let took = began.elapsed();

        let mut got = 0u64;
        for interaction in grant.interactions() {
            let count: u64 = interaction
                .parameters
                .get("count")
                .map_err(|e| fail("count", e))?;
            // `f0` gets the answer to the ping of its previous step; `f1` the ping of this one.
            let expected = if index == 0 {
                step.checked_sub(1)
            } else {
                Some(step)
            };
            if Some(count) != expected {
                return Err(format!("{name} got {receives}({count}) at step {step}"));
            }
            to_answer = Some(count);
            got += 1;
        }
        if measured {
            grants += 1;
            received += got;
            if index == 0 {
                samples.push(took);
            }
        }
    }
    let end = Instant::now();
    federate.resign().map_err(|e| fail("resign", e))?;
    if grants > 2 && received == 0 {
        return Err(format!("{name} received nothing from its partner"));
    }
    Ok(Run {
        start,
        end,
        grants,
        events: received,
        samples,
    })
}

/// PHOLD's model: an interaction class `Ev<i>` per federate, which only federate `i`
/// subscribes to.
fn phold_model(federates: usize) -> ObjectModel {
    (0..federates).fold(ObjectModel::new(), |model, i| {
        model.with_interaction_class(&format!("Ev{i}"), ["from"])
    })
}

/// `phold`: [`PHOLD_POPULATION`] events per federate. Handling an event at its timestamp sends
/// one new event to a uniformly random federate (itself included: then it stays in its local
/// queue) stamped now + lookahead + exponential([`PHOLD_MEAN_DELAY`]). Each federate loops on
/// NER(its next local event) until the simulated end, chosen so that about `steps` events
/// per federate happen, or until `limit` has passed. No warm-up.
fn phold(setup: &Setup, transport: Transport, federates: usize) -> Result<Measurement, String> {
    let names = Arc::new(federate_names(federates));
    let rig = Rig::open(setup, transport, &names)?;
    let budget = setup.budget;
    // Each event takes lookahead + mean delay of simulated time, so the federation handles
    // about `population / that` events per simulated second.
    let mean_delay = RING_STEP.as_secs_f64() + PHOLD_MEAN_DELAY;
    let population = (PHOLD_POPULATION * federates) as f64;
    let events = (budget.steps * federates) as f64;
    let end = SimTime::from_secs_f64(events * mean_delay / population)
        .map_err(|e| format!("end time: {e}"))?;
    let connectors = rig.connectors.clone();
    let runs = on_threads(connectors, move |index, connector| {
        phold_member(connector, index, &names, end, &budget)
    })?;
    rig.finish()?;
    combine(runs, federates, true)
}

fn phold_member(
    connector: Connector,
    index: usize,
    names: &[String],
    end: SimTime,
    budget: &Budget,
) -> Result<Run, String> {
    let federates = names.len();
    let name = &names[index];
    let mut federate = join_member(connector, name, phold_model(federates))?;
    let fail = |what: &str, e: federate_sdk::Error| format!("{name} {what}: {e}");
    let classes: Vec<String> = (0..federates).map(|i| format!("Ev{i}")).collect();
    for (other, class) in classes.iter().enumerate() {
        if other != index {
            federate
                .publish_interaction(class)
                .map_err(|e| fail("publish", e))?;
        }
    }
    federate
        .subscribe_interaction(&classes[index])
        .map_err(|e| fail("subscribe", e))?;
    let values = Values::new()
        .with("from", &(index as u32))
        .map_err(|e| fail("value", e))?;

    let mut rng = XorShift::new(index as u64);
    let delay = |rng: &mut XorShift| {
        SimDuration::from_secs_f64(RING_STEP.as_secs_f64() + rng.exponential(PHOLD_MEAN_DELAY))
            .map_err(|e| format!("{name} delay: {e}"))
    };
    let mut local = BinaryHeap::new();
    for _ in 0..PHOLD_POPULATION {
        let at = SimTime::ZERO
            .checked_add(delay(&mut rng)?)
            .map_err(|e| format!("{name} time: {e}"))?;
        local.push(Reverse(at));
    }
    start_together(&mut federate, names)?;

    let start = Instant::now();
    let deadline = start + budget.limit;
    let mut grants = 0u64;
    let mut events = 0u64;
    let mut samples = Vec::new();
    while federate.time() < end && Instant::now() < deadline {
        let next = local.peek().map_or(end, |Reverse(at)| (*at).min(end));
        let began = Instant::now();
        let grant = federate
            .next_event(next)
            .map_err(|e| fail("next event", e))?;
        if index == 0 {
            samples.push(began.elapsed());
        }
        grants += 1;
        let now = grant.time;
        let mut due = grant.interactions().count();
        while local.peek().is_some_and(|Reverse(at)| *at <= now) {
            local.pop();
            due += 1;
        }
        events += due as u64;
        for _ in 0..due {
            let to = rng.below(federates);
            let at = now
                .checked_add(delay(&mut rng)?)
                .map_err(|e| format!("{name} time: {e}"))?;
            if to == index {
                local.push(Reverse(at));
            } else {
                federate
                    .send_interaction(&classes[to], values.clone(), Some(at))
                    .map_err(|e| fail("send interaction", e))?;
            }
        }
    }
    let end = Instant::now();
    federate.resign().map_err(|e| fail("resign", e))?;
    Ok(Run {
        start,
        end,
        grants,
        events,
        samples,
    })
}

/// `scale`: joins every federate (regulating with lookahead [`RING_STEP`], constrained, no
/// spin), `f0` registers [`START`] for all, and each task synchronizes and makes
/// `scale_steps` TAR steps or as many as fit in `limit`.
async fn scale_run(rti: EmbeddedRti, federates: usize, budget: Budget) -> Result<Vec<Run>, String> {
    let names = federate_names(federates);
    let mut joining = tokio::task::JoinSet::new();
    for (index, name) in names.iter().enumerate() {
        let builder = Federate::builder(FEDERATION, name)
            .create_federation(ObjectModel::new())
            .time_regulating(RING_STEP)
            .time_constrained()
            .spin(Duration::ZERO);
        let connector = Connector::from(&rti);
        joining.spawn(async move { (index, builder.join(connector).await) });
    }
    let mut joined: Vec<Option<Federate>> = (0..federates).map(|_| None).collect();
    while let Some(outcome) = joining.join_next().await {
        let (index, federate) = outcome.map_err(|e| format!("a join task failed: {e}"))?;
        joined[index] = Some(federate.map_err(|e| format!("f{index} join: {e}"))?);
    }
    let mut members: Vec<Federate> = joined.into_iter().flatten().collect();
    let everyone: Vec<&str> = names.iter().map(String::as_str).collect();
    members[0]
        .register_sync_point(START, &everyone)
        .await
        .map_err(|e| format!("register `{START}`: {e}"))?;

    let mut stepping = tokio::task::JoinSet::new();
    for (index, mut federate) in members.into_iter().enumerate() {
        stepping.spawn(async move {
            let fail = |what: &str, e: federate_sdk::Error| format!("f{index} {what}: {e}");
            federate
                .synchronize(START)
                .await
                .map_err(|e| fail("synchronize", e))?;
            let start = Instant::now();
            let deadline = start + budget.limit;
            let mut grants = 0u64;
            let mut samples = Vec::new();
            while (grants as usize) < budget.scale_steps && Instant::now() < deadline {
                let began = Instant::now();
                federate
                    .step(RING_STEP)
                    .await
                    .map_err(|e| fail("step", e))?;
                if index == 0 {
                    samples.push(began.elapsed());
                }
                grants += 1;
            }
            let end = Instant::now();
            federate.resign().await.map_err(|e| fail("resign", e))?;
            Ok::<_, String>(Run {
                start,
                end,
                grants,
                events: 0,
                samples,
            })
        });
    }
    let mut runs = Vec::with_capacity(federates);
    while let Some(outcome) = stepping.join_next().await {
        runs.push(outcome.map_err(|e| format!("a federate task failed: {e}"))??);
    }
    Ok(runs)
}

/// The process's peak resident set size (`VmHWM` in `/proc/self/status`), in KiB.
fn peak_rss_kib() -> Result<u64, String> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM in /proc/self/status".to_owned())
}

/// xorshift64*: small, fast and deterministic for a seed.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Never zero, and distinct seeds land far apart.
        Self((seed.wrapping_add(1)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `(0, 1]`.
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with the given mean.
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.unit().ln()
    }
}

// Scenario building blocks.

fn advance_over_quic(setup: &Setup, placement: Placement) -> Result<Measurement, String> {
    let daemon = Daemon::start(&setup.certificates, placement)?;
    let url = format!("quic://{}", daemon.address());
    let connector =
        Connector::quic(&url, setup.client_tls()).map_err(|e| format!("connector: {e}"))?;
    let measurement = advance_loop(connector, &setup.budget)?;
    daemon.stop()?;
    Ok(measurement)
}

fn advance_over_embedded(setup: &Setup) -> Result<Measurement, String> {
    let rti = EmbeddedRti::start().map_err(|e| format!("cannot start the embedded RTI: {e}"))?;
    advance_loop(Connector::from(&rti), &setup.budget)
}

/// Joins one regulating and constrained federate and times each `advance_to(t + STEP)`. With
/// no other regulating federate its GALT is unbounded, so every request is granted at once:
/// the time is the round trip of the request and its grant.
fn advance_loop(connector: Connector, budget: &Budget) -> Result<Measurement, String> {
    let mut federate = Federate::builder(FEDERATION, CLIENT)
        .create_federation(ObjectModel::new())
        .time_regulating(STEP)
        .time_constrained()
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
        let config = echo_server_config(setup)?;
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

/// The TLS configuration the daemon uses, with its transport settings.
fn echo_server_config(setup: &Setup) -> Result<quinn::ServerConfig, String> {
    let mut config = tls::server_config(&setup.server_tls(), false)
        .map_err(|e| format!("echo server TLS: {e}"))?;
    config.transport_config(transport_config()?);
    Ok(config)
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
        exchange(&mut send, &mut recv, &message, &mut echo, "echo client").await?;
        meter.record(start.elapsed());
        if echo != message {
            return Err("the echo differs from the message".to_owned());
        }
    }
    let measurement = meter.finish();
    hang_up(endpoint, connection, send, recv, "echo client").await?;
    Ok(measurement)
}

/// Writes `message` on the stream and reads its answer into `reply`, within
/// [`NETWORK_TIMEOUT`].
async fn exchange(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    message: &[u8; MESSAGE_LEN],
    reply: &mut [u8; MESSAGE_LEN],
    who: &str,
) -> Result<(), String> {
    within("an echo", async {
        send.write_all(message)
            .await
            .map_err(|e| format!("{who} write: {e}"))?;
        recv.read_exact(reply)
            .await
            .map_err(|e| format!("{who} read: {e}"))
    })
    .await?
}

/// Ends a client's stream cleanly: finishes this side, reads the server's end, closes the
/// connection and lets the close frame leave.
async fn hang_up(
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    who: &str,
) -> Result<(), String> {
    send.finish().map_err(|e| format!("{who} finish: {e}"))?;
    within("the end of the stream", recv.read_to_end(MESSAGE_LEN))
        .await?
        .map_err(|e| format!("{who} end of stream: {e}"))?;
    connection.close(0u32.into(), b"done");
    let _ = within("the client going idle", endpoint.wait_idle()).await;
    Ok(())
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

/// Where a scenario's RTI daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// A child process of this bench ([`SERVE_DAEMON`]): federates and daemon share no
    /// process, as in a deployment.
    Process,
    /// A thread of this process (the `quic-inproc` lines).
    Thread,
}

/// The RTI daemon of a QUIC scenario, in a child process or on a thread of this one.
enum Daemon {
    Process(DaemonProcess),
    Thread(DaemonThread),
}

impl Daemon {
    /// Starts the daemon on 127.0.0.1 with a free port, no policy and no audit log, with the
    /// [`SERVER`] certificate in `certificates`, and waits until it listens.
    fn start(certificates: &Path, placement: Placement) -> Result<Self, String> {
        match placement {
            Placement::Process => DaemonProcess::start(certificates).map(Self::Process),
            Placement::Thread => {
                DaemonThread::start(TlsFiles::in_dir(certificates, SERVER)).map(Self::Thread)
            }
        }
    }

    fn address(&self) -> SocketAddr {
        match self {
            Self::Process(daemon) => daemon.address,
            Self::Thread(daemon) => daemon.address,
        }
    }

    /// Shuts the daemon down and waits for it to end.
    fn stop(self) -> Result<(), String> {
        match self {
            Self::Process(daemon) => daemon.stop(),
            Self::Thread(daemon) => daemon.stop(),
        }
    }
}

/// The daemon's settings in both placements.
fn daemon_config(tls: TlsFiles) -> DaemonConfig {
    DaemonConfig {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        tls,
        allow_classical: false,
        policy: None,
        audit: None,
        max_frame: DEFAULT_MAX_FRAME,
        idle_timeout: IDLE_TIMEOUT,
        faults: fedtwin_rti::FaultSettings::default(),
        // Sessions on, as a daemon runs by default: their bookkeeping is part of the cost.
        resume_grace: DaemonConfig::DEFAULT_RESUME_GRACE,
        resume_buffer: DaemonConfig::DEFAULT_RESUME_BUFFER,
    }
}

/// `fedtwin-bench --serve-daemon DIR`, the child side of [`DaemonProcess`]: serves with the
/// [`SERVER`] certificate in `DIR` on a current-thread runtime, as `fedtwin rti` does, prints
/// the bound address on a line of its own once it listens, and stops when its standard input
/// closes: when the bench says so, and also when the bench dies, so no daemon outlives it.
fn serve_daemon(dir: Option<String>) -> ExitCode {
    let Some(dir) = dir else {
        eprintln!("error: {SERVE_DAEMON} needs the certificate directory");
        return ExitCode::from(2);
    };
    let config = daemon_config(TlsFiles::in_dir(Path::new(&dir), SERVER));
    let (closed, stop) = tokio::sync::oneshot::channel::<()>();
    let watching = thread::Builder::new()
        .name("bench-rti-stdin".into())
        .spawn(move || {
            // Blocks until end of file (or an error): either way the bench is done with us.
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            let _ = closed.send(());
        });
    if let Err(error) = watching {
        eprintln!("error: cannot start a thread: {error}");
        return ExitCode::FAILURE;
    }
    let served = on_current_thread(async move {
        let stopped = async {
            let _ = stop.await;
        };
        daemon::serve(config, stopped, |address| {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{address}");
            let _ = out.flush();
        })
        .await
        .map_err(|e| format!("daemon: {e}"))
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The daemon in a child process: this executable run with [`SERVE_DAEMON`]. Closing its
/// standard input stops it; dropping this without [`DaemonProcess::stop`] kills it.
struct DaemonProcess {
    address: SocketAddr,
    child: Child,
    /// Closed (dropped) to tell the child to stop.
    stdin: Option<ChildStdin>,
}

impl DaemonProcess {
    fn start(certificates: &Path) -> Result<Self, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this executable to start the daemon: {e}"))?;
        let mut child = Command::new(exe)
            .arg(SERVE_DAEMON)
            .arg(certificates)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the daemon process: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        // Built before anything else can fail, so that its `Drop` kills the child.
        let mut daemon = Self {
            address: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            child,
            stdin,
        };
        let stdout = stdout.ok_or("the daemon process has no standard output")?;

        // The first line is the address; read on a thread so that the wait has a deadline.
        let (line, read) = mpsc::channel();
        thread::Builder::new()
            .name("bench-rti-address".into())
            .spawn(move || {
                let mut address = String::new();
                let _ = line.send(
                    BufReader::new(stdout)
                        .read_line(&mut address)
                        .map(|_| address),
                );
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        let address = match read.recv_timeout(NETWORK_TIMEOUT) {
            Ok(Ok(address)) => address,
            Ok(Err(e)) => return Err(format!("cannot read the daemon's address: {e}")),
            Err(_) => {
                return Err(format!(
                    "the daemon process did not listen within {NETWORK_TIMEOUT:?}"
                ));
            }
        };
        // An empty line: the child ended before listening and said why on standard error.
        daemon.address = address.trim().parse().map_err(|_| {
            format!(
                "the daemon process did not start (it printed `{}`)",
                address.trim()
            )
        })?;
        Ok(daemon)
    }

    /// Closes the child's standard input and waits for it to exit; kills it if it has not
    /// within [`NETWORK_TIMEOUT`].
    fn stop(mut self) -> Result<(), String> {
        drop(self.stdin.take());
        // The daemon gives its close frames up to 2 s to leave.
        let deadline = Instant::now() + NETWORK_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("the daemon process ended with {status}")),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                // `Drop` kills it.
                Ok(None) => {
                    return Err(format!(
                        "the daemon process did not stop within {NETWORK_TIMEOUT:?}"
                    ));
                }
                Err(e) => return Err(format!("cannot wait for the daemon process: {e}")),
            }
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        // Nothing to do for a child that has exited (and been reaped by `stop`).
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The RTI daemon on a thread of this process with a current-thread runtime, as `fedtwin rti`
/// runs it. Dropping it without [`DaemonThread::stop`] also shuts the daemon down.
struct DaemonThread {
    address: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    finished: mpsc::Receiver<Result<(), String>>,
}

impl DaemonThread {
    fn start(tls: TlsFiles) -> Result<Self, String> {
        let config = daemon_config(tls);
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
        let steps = self.samples.len();
        Measurement {
            sorted: self.samples,
            seconds,
            steps,
            grants: steps as u64,
            extra: None,
            median_per_step: false,
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
            steps: None,
            quick: false,
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => return Ok(None),
                "--quick" => options.quick = true,
                "--steps" => {
                    let value = args.next().ok_or("--steps needs a number")?;
                    options.steps = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|steps| *steps > 0)
                            .ok_or(format!("--steps takes a positive number, not `{value}`"))?,
                    );
                }
                flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
                filter if options.filter.is_none() => options.filter = Some(filter.to_owned()),
                extra => return Err(format!("unexpected argument `{extra}`")),
            }
        }
        Ok(Some(options))
    }

    /// The budget of every scenario: the defaults, or the `--quick` ones; `--steps` wins.
    fn budget(&self) -> Budget {
        let budget = if self.quick {
            Budget {
                warm_up: QUICK_WARM_UP,
                steps: QUICK_STEPS,
                limit: QUICK_TIME_LIMIT,
                scale_steps: QUICK_SCALE_STEPS,
            }
        } else {
            Budget {
                warm_up: WARM_UP,
                steps: DEFAULT_STEPS,
                limit: TIME_LIMIT,
                scale_steps: SCALE_STEPS,
            }
        };
        Budget {
            steps: self.steps.unwrap_or(budget.steps),
            ..budget
        }
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

/// A blocking UDP socket on 127.0.0.1 with a free port, whose reads give up after
/// [`NETWORK_TIMEOUT`] (a lost datagram fails the scenario instead of hanging it).
fn loopback_udp() -> io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.set_read_timeout(Some(NETWORK_TIMEOUT))?;
    Ok(socket)
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
