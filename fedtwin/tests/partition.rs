//! Partitions with real sockets: `ping` reaches the daemon (a child process) through a UDP
//! relay that drops every packet for a while. Shorter than the grace period, the session
//! resumes and the run delivers exactly the trace of an undisturbed run; longer, the loss
//! policy applies and the partitioned federate gets a typed error instead of a hang.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Daemon, Scratch, federation_setup};
use federate_sdk::{Connector, Error, SimDuration};
use ping_pong::{GrantLine, Role};

/// A UDP relay on loopback between QUIC clients and the daemon. After `cut_after` datagrams
/// from clients it drops everything, both ways, for `cut_for`.
struct Relay {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
}

impl Relay {
    fn start(upstream: SocketAddr, cut_after: u64, cut_for: Duration) -> Self {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        front
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let address = front.local_addr().unwrap();
        let front = Arc::new(front);
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let cut: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let cutting = {
            let cut = cut.clone();
            move || {
                cut.lock()
                    .unwrap()
                    .is_some_and(|until| Instant::now() < until)
            }
        };
        let (stop_front, dropped_front) = (stop.clone(), dropped.clone());
        thread::spawn(move || {
            let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut seen = 0u64;
            let mut buffer = [0u8; 65536];
            while !stop_front.load(Ordering::Relaxed) {
                let Ok((n, client)) = front.recv_from(&mut buffer) else {
                    continue;
                };
                seen += 1;
                if seen == cut_after {
                    *cut.lock().unwrap() = Some(Instant::now() + cut_for);
                }
                if cutting() {
                    dropped_front.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let socket = clients.entry(client).or_insert_with(|| {
                    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                    socket.connect(upstream).unwrap();
                    socket
                        .set_read_timeout(Some(Duration::from_millis(20)))
                        .unwrap();
                    let socket = Arc::new(socket);
                    let (back, front, stop) = (socket.clone(), front.clone(), stop_front.clone());
                    let (cutting, dropped) = (cutting.clone(), dropped_front.clone());
                    thread::spawn(move || {
                        let mut buffer = [0u8; 65536];
                        while !stop.load(Ordering::Relaxed) {
                            let Ok(n) = back.recv(&mut buffer) else {
                                continue;
                            };
                            if cutting() {
                                dropped.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            let _ = front.send_to(&buffer[..n], client);
                        }
                    });
                    socket
                });
                let _ = socket.send(&buffer[..n]);
            }
        });
        Self {
            address,
            stop,
            dropped,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

const STEPS: u32 = 1000;

fn step() -> SimDuration {
    SimDuration::from_millis(10).unwrap()
}

/// A connector with a one-second idle timeout, so that both ends notice the cut quickly.
fn quick(mut connector: Connector) -> Connector {
    if let Connector::Quic(target) = &mut connector {
        target.idle_timeout = Duration::from_secs(1);
    }
    connector
}

/// Starts a daemon with `resume_grace`, runs `pong` directly and `ping` through a relay that
/// cuts the link for `cut_for` once the run is under way, and returns both sides' outcomes,
/// the relay's drop count and the audit log.
/// Both sides' outcomes, the datagrams the relay dropped and the daemon's audit log.
type CutRun = (
    Result<Vec<GrantLine>, Error>,
    Result<Vec<GrantLine>, Error>,
    u64,
    String,
);

fn run_with_cut(name: &str, resume_grace: &str, cut_for: Duration) -> CutRun {
    let scratch = Scratch::new(name);
    let (certs, config) = federation_setup(&scratch);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[limits]\nidle_timeout = \"1s\"\n[faults]\non_federate_lost = \"resign\"\n\
         resume_grace = \"{resume_grace}\"\n"
    ));
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config);
    let upstream: SocketAddr = daemon
        .address
        .strip_prefix("quic://")
        .unwrap()
        .parse()
        .unwrap();
    // A few hundred datagrams in: joined, synchronized and exchanging.
    let relay = Relay::start(upstream, 300, cut_for);

    let pong_connector = quick(daemon.connector(&certs, "pong"));
    let pong = thread::spawn(move || ping_pong::play(&pong_connector, Role::Pong, STEPS, step()));
    let ping_connector = quick(
        Connector::quic(
            &format!("quic://{}", relay.address),
            federate_sdk::TlsFiles::in_dir(&certs, "ping"),
        )
        .unwrap(),
    );
    let ping = ping_pong::play(&ping_connector, Role::Ping, STEPS, step());
    let pong = pong.join().expect("pong does not panic");
    let dropped = relay.dropped.load(Ordering::Relaxed);
    drop(relay);
    daemon.stop();
    let audit = std::fs::read_to_string(scratch.path("audit.log")).unwrap_or_default();
    (ping, pong, dropped, audit)
}

#[test]
fn a_partition_shorter_than_the_grace_period_changes_nothing() {
    let (ping, pong, dropped, audit) =
        run_with_cut("partition-resume", "20s", Duration::from_secs(3));
    let mut lines = ping.expect("ping resumes and finishes");
    lines.extend(pong.expect("pong finishes"));
    lines.sort_by_key(|l| (l.time, l.federate != "ping"));
    assert!(dropped > 0, "the relay cut the link");
    assert!(
        audit.contains("\"Suspended\"") && audit.contains("\"Resumed\""),
        "the audit log records the suspension and the resume:\n{audit}"
    );
    assert!(!audit.contains("\"Lost\""), "nobody was lost:\n{audit}");
    // The same federation, undisturbed, in one process: every grant and every delivery with
    // its timestamp must be the same.
    let undisturbed = ping_pong::run(STEPS, step()).unwrap();
    assert_eq!(lines.len(), undisturbed.len());
    assert!(lines == undisturbed, "the resumed run's trace differs");
}

#[test]
fn a_partition_longer_than_the_grace_period_applies_the_loss_policy() {
    let (ping, pong, dropped, audit) = run_with_cut("partition-lost", "1s", Duration::from_secs(6));
    assert!(dropped > 0, "the relay cut the link");
    let error = ping.expect_err("ping cannot resume");
    let message = error.to_string();
    assert!(
        matches!(error, Error::Closed(_)) && message.contains("not resumed")
            || message.contains("session not resumed"),
        "a typed error that says the session was not resumed: {message}"
    );
    // Under `resign` the survivor runs on to its end without the lost federate.
    let pong = pong.expect("pong runs on");
    assert_eq!(pong.len(), STEPS as usize);
    assert!(
        audit.contains("\"Lost\"") && audit.contains("did not resume within 1000 ms"),
        "the audit log names the loss and why:\n{audit}"
    );
}
