//! The real daemon as a child process on 127.0.0.1, real federates, real certificates.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use federate_sdk::{Error, Federate, RtiError, SimDuration, SimTime, TlsFiles};
use fedtwin_rti::tls::{self, Role};

mod common;

use common::{BIN, Daemon, Scratch, federation_setup, fedtwin, ok};

#[test]
fn two_processes_play_ping_pong_through_the_daemon_and_the_audit_log_holds() {
    let scratch = Scratch::new("pingpong");
    let (certs, config) = federation_setup(&scratch);
    let daemon = Daemon::start(&config);

    let side = |name: &str| {
        Command::new(BIN)
            .args([
                "example",
                "ping-pong",
                "--steps",
                "6",
                "--rti",
                &daemon.address,
                "--side",
                name,
            ])
            .arg("--certs")
            .arg(&certs)
            .output()
            .unwrap()
    };
    let (ping, pong) = std::thread::scope(|s| {
        let ping = s.spawn(|| side("ping"));
        let pong = s.spawn(|| side("pong"));
        (ping.join().unwrap(), pong.join().unwrap())
    });
    let ping = ok(&ping);
    let pong = ok(&pong);
    assert!(
        ping.contains("ping granted     0.2s  received count 1 stamped 0.2s"),
        "{ping}"
    );
    assert!(ping.contains("received count 5 stamped 0.6s"), "{ping}");
    assert!(
        pong.contains("pong granted     0.1s  received count 0 stamped 0.1s"),
        "{pong}"
    );

    // The admin sees the (now empty) federation; the key exchange was post-quantum.
    let status = daemon.status_as(&certs, "ops");
    assert!(
        status.contains("federation ping-pong: 0 federates"),
        "{status}"
    );

    daemon.stop();
    let audit = scratch.path("audit.log");
    let verified = ok(&fedtwin(&["audit", "verify", audit.to_str().unwrap()]));
    assert!(verified.starts_with("ok: "), "{verified}");
    // The last hash, kept elsewhere, anchors the log: found while the log holds that record.
    let last_hash = verified.trim().rsplit(' ').next().unwrap().to_owned();
    let path = audit.to_str().unwrap();
    let anchored = ok(&fedtwin(&["audit", "verify", path, "--anchor", &last_hash]));
    assert!(anchored.contains("anchor found at record"), "{anchored}");
    let missing = fedtwin(&["audit", "verify", path, "--anchor", &"0".repeat(64)]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("was rewritten, or cut before"),
        "{missing:?}"
    );
    let text = std::fs::read_to_string(&audit).unwrap();
    for kind in [
        "DaemonStart",
        "Join",
        "Resign",
        "SyncPointRegistered",
        "DaemonStop",
    ] {
        assert!(text.contains(kind), "no {kind} record in\n{text}");
    }

    // Edit one record in the middle: verification fails and names it.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let middle = lines.len() / 2;
    lines[middle] = lines[middle]
        .replacen("\"Join\"", "\"Resign\"", 1)
        .replacen("ping", "pong", 1);
    std::fs::write(&audit, lines.join("\n") + "\n").unwrap();
    let tampered = fedtwin(&["audit", "verify", audit.to_str().unwrap()]);
    assert!(!tampered.status.success());
    let message = String::from_utf8_lossy(&tampered.stderr);
    assert!(
        message.contains(&format!("line {}", middle + 1)),
        "{message}"
    );

    // Remove a record: also detected.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(1);
    std::fs::write(&audit, lines.join("\n") + "\n").unwrap();
    assert!(
        !fedtwin(&["audit", "verify", audit.to_str().unwrap()])
            .status
            .success()
    );

    // A record being written as the log is read (a live daemon's) is read again, not taken
    // for damage; one that stays cut off is.
    let (head, tail) = text.split_at(text.len() - 40);
    std::fs::write(&audit, head).unwrap();
    let writer = std::thread::spawn({
        let audit = audit.clone();
        let tail = tail.to_owned();
        move || {
            std::thread::sleep(Duration::from_millis(100));
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(audit)
                .unwrap();
            std::io::Write::write_all(&mut file, tail.as_bytes()).unwrap();
        }
    });
    let live = fedtwin(&["audit", "verify", audit.to_str().unwrap()]);
    writer.join().unwrap();
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    std::fs::write(&audit, head).unwrap();
    let cut = fedtwin(&["audit", "verify", audit.to_str().unwrap()]);
    assert!(!cut.status.success());
    assert!(String::from_utf8_lossy(&cut.stderr).contains("malformed"));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn rogue_clients_are_refused_and_the_daemon_keeps_serving() {
    let scratch = Scratch::new("rogue");
    let (certs, config) = federation_setup(&scratch);
    let daemon = Daemon::start(&config);
    let join = |identity: &str, certs: &Path| {
        Federate::builder("ping-pong", identity)
            .create_federation(ping_pong::model())
            .join_blocking(daemon.connector(certs, identity))
    };

    // A certificate from another CA.
    let other = scratch.path("other-ca");
    tls::init_ca(&other, 30).unwrap();
    tls::issue_for_days(&other, "ping", Role::Federate, 30).unwrap();
    std::fs::copy(certs.join("ca.pem"), other.join("ca.pem")).unwrap();
    let refused = join("ping", &other).unwrap_err();
    assert!(
        matches!(refused, Error::Closed(_) | Error::Connect(_)),
        "{refused}"
    );

    // An expired certificate from the right CA.
    let expired = scratch.path("expired");
    std::fs::create_dir_all(&expired).unwrap();
    for file in ["ca.pem", "ca.key"] {
        std::fs::copy(certs.join(file), expired.join(file)).unwrap();
    }
    let now = time::OffsetDateTime::now_utc();
    tls::issue(
        &expired,
        "pong",
        Role::Federate,
        now - time::Duration::days(10),
        now - time::Duration::days(1),
    )
    .unwrap();
    let refused = join("pong", &expired).unwrap_err();
    assert!(
        matches!(refused, Error::Closed(_) | Error::Connect(_)),
        "{refused}"
    );

    // No certificate at all, on a raw QUIC connection.
    runtime().block_on(async {
        let result = raw_exchange(&daemon.address, &certs, None, b"\x00\x00\x00\x00").await;
        assert!(
            result.is_err(),
            "a client without certificate got an answer"
        );
    });

    // A valid certificate joining under another name.
    let impostor = Federate::builder("ping-pong", "pong")
        .create_federation(ping_pong::model())
        .join_blocking(daemon.connector(&certs, "ping"))
        .unwrap_err();
    assert!(
        matches!(
            impostor,
            Error::Refused {
                source: RtiError::IdentityMismatch { .. },
                ..
            }
        ),
        "{impostor}"
    );

    // A valid certificate without permission: mallory may join but not create or publish.
    let denied = join("mallory", &certs).unwrap_err();
    assert!(
        matches!(
            denied,
            Error::Refused {
                source: RtiError::Denied { .. },
                ..
            }
        ),
        "{denied}"
    );
    let mut ping = join("ping", &certs).unwrap();
    let mut mallory = Federate::builder("ping-pong", "mallory")
        .join_blocking(daemon.connector(&certs, "mallory"))
        .unwrap();
    let denied = mallory.publish_interaction("Ping").unwrap_err();
    assert_eq!(
        denied.to_string(),
        "publish interaction refused: `mallory` may not send `Ping` in federation `ping-pong`: \
         grant it in the RTI's policy"
    );
    // Nor hold the others' time back (nor bound their steps with made-up dynamics).
    let denied = runtime()
        .block_on(
            mallory
                .as_async()
                .enable_time_regulation(SimDuration::from_secs(1).unwrap()),
        )
        .unwrap_err();
    assert!(
        denied.to_string().contains(
            "`mallory` may not regulate time (or declare dynamics) in federation `ping-pong`"
        ),
        "{denied}"
    );

    // Malformed frames on a raw stream close that connection only.
    runtime().block_on(async {
        let garbage = b"\x03\x00\x00\x00\xff\xff\xff";
        let result = raw_exchange(&daemon.address, &certs, Some("pong"), garbage).await;
        let message = result.expect_err("garbage must not be answered");
        assert!(message.contains("malformed"), "{message}");
        let oversized = u32::MAX.to_le_bytes();
        let result = raw_exchange(&daemon.address, &certs, Some("pong"), &oversized).await;
        assert!(result.expect_err("oversized").contains("exceeds the limit"));
    });
    // The others go on.
    ping.advance_to(SimTime::from_secs(1).unwrap()).unwrap();
    assert_eq!(ping.galt().unwrap(), None);
    mallory.resign().unwrap();
    ping.resign().unwrap();
}

/// Opens a raw QUIC connection (with the named certificate, or none), writes `bytes` on a
/// stream and waits for anything back. `Err` carries why the connection ended.
async fn raw_exchange(
    address: &str,
    certs: &Path,
    identity: Option<&str>,
    bytes: &[u8],
) -> Result<Vec<u8>, String> {
    let address: std::net::SocketAddr = address.trim_start_matches("quic://").parse().unwrap();
    let config = match identity {
        Some(name) => tls::client_config(&TlsFiles::in_dir(certs, name), false).unwrap(),
        None => {
            let mut roots = rustls::RootCertStore::empty();
            let pem = std::fs::read(certs.join("ca.pem")).unwrap();
            use rustls_pki_types::pem::PemObject;
            roots
                .add(rustls_pki_types::CertificateDer::from_pem_slice(&pem).unwrap())
                .unwrap();
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            crypto.alpn_protocols = vec![tls::ALPN.to_vec()];
            let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
            quinn::ClientConfig::new(Arc::new(quic))
        }
    };
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let exchange = async {
        let connection = endpoint
            .connect_with(config, address, "rti")
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(bytes).await.map_err(|e| e.to_string())?;
        let mut buffer = vec![0; 1024];
        match recv.read(&mut buffer).await {
            Ok(Some(n)) => Ok(buffer[..n].to_vec()),
            Ok(None) => Err("stream finished".to_owned()),
            Err(quinn::ReadError::ConnectionLost(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| Err("timed out".to_owned()))
}

/// Anyone who reaches the port can have handshakes refused: a flood of them is audited, one by
/// one or as counts, none lost, and the daemon keeps serving.
#[test]
fn a_flood_of_refused_handshakes_is_audited_with_counts() {
    const FLOOD: usize = 60;
    let scratch = Scratch::new("flood");
    let (certs, config) = federation_setup(&scratch);
    let daemon = Daemon::start(&config);
    runtime().block_on(async {
        let mut flood = tokio::task::JoinSet::new();
        for _ in 0..FLOOD {
            let (address, certs) = (daemon.address.clone(), certs.clone());
            flood.spawn(async move { raw_exchange(&address, &certs, None, b"\0\0\0\0").await });
        }
        while let Some(result) = flood.join_next().await {
            assert!(
                result.unwrap().is_err(),
                "a client without certificate got an answer"
            );
        }
    });
    let ping = Federate::builder("ping-pong", "ping")
        .create_federation(ping_pong::model())
        .join_blocking(daemon.connector(&certs, "ping"))
        .unwrap();
    ping.resign().unwrap();
    daemon.stop();

    let audit = scratch.path("audit.log");
    ok(&fedtwin(&["audit", "verify", audit.to_str().unwrap()]));
    let text = std::fs::read_to_string(&audit).unwrap();
    let refused: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("\"kind\":\"ConnectionRefused\""))
        .collect();
    let counted: usize = refused
        .iter()
        .filter_map(|line| {
            let (_, rest) = line.split_once("\"detail\":\"")?;
            let (count, _) = rest.split_once(" more connection(s) refused within")?;
            count.parse::<usize>().ok()
        })
        .sum();
    let one_by_one = refused
        .iter()
        .filter(|line| !line.contains("more connection(s) refused"))
        .count();
    // None lost, however they fell into windows (the rate itself is the daemon's unit test's).
    assert_eq!(one_by_one + counted, FLOOD, "{text}");
}

#[test]
fn a_simulator_written_for_embedded_runs_unchanged_against_the_daemon() {
    let scratch = Scratch::new("same-api");
    let (certs, config) = federation_setup(&scratch);
    let daemon = Daemon::start(&config);
    let step = SimDuration::from_millis(100).unwrap();
    let embedded = ping_pong::run(5, step).unwrap();
    let ping = daemon.connector(&certs, "ping");
    let pong = daemon.connector(&certs, "pong");
    let lines = std::thread::scope(|s| {
        let pong = s.spawn(|| ping_pong::play(&pong, ping_pong::Role::Pong, 5, step));
        let mut lines = ping_pong::play(&ping, ping_pong::Role::Ping, 5, step).unwrap();
        lines.extend(pong.join().unwrap().unwrap());
        lines
    });
    let mut lines = lines;
    lines.sort_by_key(|l| (l.time, l.federate != "ping"));
    assert_eq!(
        lines, embedded,
        "QUIC and embedded runs give the same grants and deliveries"
    );
}

#[test]
fn best_effort_datagrams_arrive_and_status_shows_the_key_exchange() {
    let scratch = Scratch::new("datagrams");
    let (certs, config) = federation_setup(&scratch);
    let daemon = Daemon::start(&config);
    let join = |identity: &str| {
        Federate::builder("ping-pong", identity)
            .create_federation(ping_pong::model())
            .join_blocking(daemon.connector(&certs, identity))
            .unwrap()
    };
    let mut ping = join("ping");
    let mut pong = join("pong");
    ping.publish_interaction("Ping").unwrap();
    pong.subscribe_interaction("Ping").unwrap();
    for count in 0..20u64 {
        let values = federate_sdk::Values::new().with("count", &count).unwrap();
        ping.send_interaction_best_effort("Ping", values).unwrap();
    }
    // A round trip on the ordered stream, then wait (bounded) for the datagrams.
    ping.galt().unwrap();
    let mut counts = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while counts.len() < 20 && std::time::Instant::now() < deadline {
        for delivery in pong.take_deliveries().unwrap() {
            if let federate_sdk::Delivery::Interaction(i) = delivery {
                assert_eq!(i.order, federate_sdk::Order::Receive);
                counts.push(i.parameters.get::<u64>("count").unwrap());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Loopback does not drop datagrams in practice; best effort promises no more than some.
    assert!(!counts.is_empty(), "no best-effort message arrived");
    assert!(counts.iter().all(|c| *c < 20));

    let status = daemon.status_as(&certs, "ops");
    assert!(
        status.contains("federation ping-pong: 2 federates"),
        "{status}"
    );
    let ping_line = status
        .lines()
        .find(|l| l.trim_start().starts_with("ping "))
        .unwrap();
    assert!(ping_line.contains("X25519MLKEM768"), "{status}");
    // A federate identity without administer rights sees nothing.
    let hidden = daemon.status_as(&certs, "mallory");
    assert!(
        hidden.contains("no federations visible to `mallory`"),
        "{hidden}"
    );
    ping.resign().unwrap();
    pong.resign().unwrap();
}

#[test]
fn a_blocking_federate_that_computes_past_the_idle_timeout_stays_connected() {
    // A blocking federate carries its connection on its own thread while it waits for the
    // RTI; between calls its keeper does. Without the keeper, two seconds of computing would
    // outlast the one-second idle timeout, and with sessions off the daemon would lose it.
    let scratch = Scratch::new("keeper");
    let (certs, config) = federation_setup(&scratch);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[limits]\nidle_timeout = \"1s\"\n[faults]\nresume_grace = \"0s\"\n");
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config);
    let mut connector = daemon.connector(&certs, "ping");
    if let federate_sdk::Connector::Quic(target) = &mut connector {
        target.idle_timeout = Duration::from_secs(1);
    }
    let mut ping = Federate::builder("ping-pong", "ping")
        .create_federation(ping_pong::model())
        .time_regulating(SimDuration::from_millis(1).unwrap())
        .join_blocking(connector)
        .unwrap();
    ping.publish_interaction("Ping").unwrap();
    // The simulator computes.
    std::thread::sleep(Duration::from_millis(2500));
    let five_ms = SimTime::from_ticks(5_000_000);
    let grant = ping
        .advance_to(five_ms)
        .expect("still connected after computing past the idle timeout");
    assert_eq!(grant.time, five_ms);
    ping.resign().unwrap();
    daemon.stop();
    let audit = std::fs::read_to_string(scratch.path("audit.log")).unwrap();
    assert!(audit.contains("\"Resign\""), "{audit}");
    assert!(
        !audit.contains("\"Lost\""),
        "the daemon lost the federate:\n{audit}"
    );
}

/// Async federates whose connections run as tasks on the caller's (multi-thread) runtime rather
/// than on I/O threads of their own: the same timestamped exchange, in order, against the
/// daemon.
#[test]
fn async_federates_with_io_on_the_runtime_exchange_in_timestamp_order() {
    let scratch = Scratch::new("io-on-runtime");
    let (certs, config) = federation_setup(&scratch);
    let daemon = Daemon::start(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let step = SimDuration::from_millis(10).unwrap();
    let join = |identity: &'static str| {
        Federate::builder("ping-pong", identity)
            .create_federation(ping_pong::model())
            .time_regulating(step)
            .time_constrained()
            .io_on_runtime()
            .join(daemon.connector(&certs, identity))
    };
    let received = runtime.block_on(async {
        let (ping, pong) = tokio::join!(join("ping"), join("pong"));
        let (mut ping, mut pong) = (ping.unwrap(), pong.unwrap());
        ping.publish_interaction("Ping").await.unwrap();
        pong.subscribe_interaction("Ping").await.unwrap();
        let sender = tokio::spawn(async move {
            for count in 0..50u64 {
                let at = ping.time().checked_add(step).unwrap();
                let values = federate_sdk::Values::new().with("count", &count).unwrap();
                ping.send_interaction("Ping", values, Some(at)).unwrap();
                ping.step(step).await.unwrap();
            }
            ping.resign().await.unwrap();
        });
        let mut received = Vec::new();
        for _ in 0..50 {
            let grant = pong.step(step).await.unwrap();
            for interaction in grant.interactions() {
                let count: u64 = interaction.parameters.get("count").unwrap();
                received.push((interaction.timestamp, count));
            }
        }
        sender.await.unwrap();
        pong.resign().await.unwrap();
        received
    });
    let expected: Vec<_> = (0..50u64)
        .map(|count| {
            let at = SimTime::ZERO
                .checked_add(SimDuration::from_millis(10 * (count + 1)).unwrap())
                .unwrap();
            (Some(at), count)
        })
        .collect();
    assert_eq!(received, expected);
}

/// A call dropped before its answer came (a timeout around it) leaves nothing behind: its late
/// answer is not taken for the next call's, nor does it fail the next call as unknown.
#[test]
fn a_call_dropped_before_its_answer_does_not_confuse_the_next() {
    let scratch = Scratch::new("cancelled-call");
    let (certs, config) = federation_setup(&scratch);
    let daemon = Daemon::start(&config);
    let runtime = runtime();
    runtime.block_on(async {
        // No spinning: a poll then returns as soon as no answer is in, rather than waiting a
        // little for it (which a daemon on loopback can beat).
        let mut ping = Federate::builder("ping-pong", "ping")
            .spin(Duration::ZERO)
            .create_federation(ping_pong::model())
            .join(daemon.connector(&certs, "ping"))
            .await
            .unwrap();
        // Polled once, then dropped: the request goes out, its answer is not back yet. Should
        // the thread be descheduled long enough for it to come back, try again.
        let mut dropped_unanswered = false;
        for attempt in 0..10 {
            let label = format!("first-{attempt}");
            let mut call = Box::pin(ping.register_sync_point(&label, &[]));
            let polled =
                std::future::poll_fn(|cx| std::task::Poll::Ready(call.as_mut().poll(cx))).await;
            drop(call);
            if polled.is_pending() {
                dropped_unanswered = true;
                break;
            }
        }
        assert!(
            dropped_unanswered,
            "every call was answered within one poll"
        );
        // Let the first answer arrive while no call waits, then make another call.
        tokio::time::sleep(Duration::from_millis(200)).await;
        ping.publish_interaction("Ping").await.unwrap();
        // The second point is new: had the first answer been taken for it, this would fail.
        ping.register_sync_point("second", &[]).await.unwrap();
        let exists = ping.register_sync_point("second", &[]).await.unwrap_err();
        assert!(exists.to_string().contains("second"), "{exists}");
        ping.resign().await.unwrap();
    });
}

/// Polls `done` every 50 ms until it returns something, failing after `bound`.
fn within<T>(bound: Duration, what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + bound;
    loop {
        if let Some(value) = done() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} within {bound:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many records of `kind` the audit log holds; each also contains `detail`.
fn audited(audit: &Path, kind: &str, detail: &str) -> usize {
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    text.lines()
        .filter(|line| line.contains(&format!("\"kind\":\"{kind}\"")) && line.contains(detail))
        .count()
}

/// Issuing a name again is refused unless `--replace`, which revokes the earlier certificate
/// first: a holder of the old key can no longer join, the new one can.
#[test]
fn issuing_a_name_again_needs_replace_which_revokes_the_earlier_certificate() {
    let scratch = Scratch::new("reissue");
    let (certs, config) = federation_setup(&scratch);
    let dir = certs.to_str().unwrap();
    // The holder of the first certificate keeps its own copy.
    let old = scratch.path("old");
    std::fs::create_dir_all(&old).unwrap();
    for file in ["ca.pem", "ping.pem", "ping.key"] {
        std::fs::copy(certs.join(file), old.join(file)).unwrap();
    }

    let again = fedtwin(&["certs", "issue", "--dir", dir, "--name", "ping"]);
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("`ping` has a certificate") && stderr.contains("--replace"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(certs.join("ping.pem")).unwrap(),
        std::fs::read(old.join("ping.pem")).unwrap()
    );
    let reserved = fedtwin(&["certs", "issue", "--dir", dir, "--name", "crl"]);
    assert_eq!(reserved.status.code(), Some(1));
    assert!(certs.join("crl.pem").is_file() && !certs.join("crl.key").exists());

    let out = ok(&fedtwin(&[
        "certs",
        "issue",
        "--dir",
        dir,
        "--name",
        "ping",
        "--replace",
    ]));
    assert!(
        out.contains("revoked the earlier certificate of `ping`") && out.contains("issued `ping`"),
        "{out}"
    );

    let daemon = Daemon::start(&config);
    let join = |certs: &Path| {
        Federate::builder("ping-pong", "ping")
            .create_federation(ping_pong::model())
            .join_blocking(daemon.connector(certs, "ping"))
    };
    let refused = join(&old).unwrap_err();
    assert!(
        matches!(refused, Error::CertificateRevoked(_)),
        "the old certificate: {refused:?}"
    );
    join(&certs).unwrap().resign().unwrap();
    daemon.stop();
}

#[test]
fn a_revoked_federate_is_refused_by_name_and_the_others_still_join() {
    let scratch = Scratch::new("revoked");
    let (certs, config) = federation_setup(&scratch);
    let dir = certs.to_str().unwrap();
    // `certs init` wrote an empty list; revoking appends to it.
    assert!(certs.join("crl.pem").is_file());
    let out = ok(&fedtwin(&[
        "certs",
        "revoke",
        "--dir",
        dir,
        "mallory",
        "--reason",
        "key-compromise",
    ]));
    assert!(out.contains("revoked `mallory`"), "{out}");

    // An unknown name is a clear error, and changes nothing.
    let list = std::fs::read(certs.join("crl.pem")).unwrap();
    let unknown = fedtwin(&["certs", "revoke", "--dir", dir, "nobody"]);
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("no certificate `nobody`") && stderr.contains(dir),
        "{stderr}"
    );
    assert_eq!(std::fs::read(certs.join("crl.pem")).unwrap(), list);

    let daemon = Daemon::start(&config);
    let join = |identity: &str| {
        Federate::builder("ping-pong", identity)
            .create_federation(ping_pong::model())
            .join_blocking(daemon.connector(&certs, identity))
    };
    let refused = join("mallory").unwrap_err();
    let Error::CertificateRevoked(message) = &refused else {
        panic!("expected a revocation, got {refused:?}");
    };
    assert!(
        message.contains("refused this federate's certificate: it is revoked")
            && message.contains("fedtwin certs issue"),
        "{message}"
    );
    let ping = join("ping").unwrap();
    ping.resign().unwrap();
    daemon.stop();

    let audit = scratch.path("audit.log");
    assert_eq!(
        audited(&audit, "ConnectionRefused", "certificate revoked"),
        1
    );
    ok(&fedtwin(&["audit", "verify", audit.to_str().unwrap()]));
}

#[test]
fn revoking_while_the_daemon_runs_refuses_the_next_connection_and_closes_the_open_one() {
    let scratch = Scratch::new("revoke-live");
    let (certs, config) = federation_setup(&scratch);
    let dir = certs.to_str().unwrap();
    let audit = scratch.path("audit.log");
    let daemon = Daemon::start(&config);
    let join = |identity: &str| {
        Federate::builder("ping-pong", identity)
            .create_federation(ping_pong::model())
            .join_blocking(daemon.connector(&certs, identity))
    };
    let mut ping = join("ping").unwrap();
    let mut pong = join("pong").unwrap();

    ok(&fedtwin(&[
        "certs", "revoke", "--dir", dir, "--name", "pong",
    ]));
    within(
        Duration::from_secs(10),
        "the daemon reloads the list",
        || (audited(&audit, "RevocationsReloaded", "1 certificate(s) revoked") == 1).then_some(()),
    );

    // The open connection is closed, with the reason, on pong's next call.
    let closed = within(Duration::from_secs(5), "pong's connection closes", || {
        pong.galt().err()
    });
    assert!(matches!(closed, Error::CertificateRevoked(_)), "{closed}");
    assert_eq!(
        audited(&audit, "CertificateRevoked", "\"identity\":\"pong\""),
        1
    );
    // A new connection is refused; ping goes on.
    let refused = join("pong").unwrap_err();
    assert!(matches!(refused, Error::CertificateRevoked(_)), "{refused}");
    ping.galt().unwrap();

    // A federate that has the list refuses a daemon whose certificate it revokes.
    ok(&fedtwin(&["certs", "revoke", "--dir", dir, "rti"]));
    within(
        Duration::from_secs(10),
        "the daemon reloads the list again",
        || (audited(&audit, "RevocationsReloaded", "2 certificate(s) revoked") == 1).then_some(()),
    );
    let refused = Federate::builder("ping-pong", "ping")
        .join_blocking(daemon.connector(&certs, "ping"))
        .unwrap_err();
    let Error::CertificateRevoked(message) = &refused else {
        panic!("expected a revocation, got {refused:?}");
    };
    assert!(
        message.contains("presented a revoked certificate"),
        "{message}"
    );
    drop(ping);
    daemon.stop();
    ok(&fedtwin(&["audit", "verify", audit.to_str().unwrap()]));
}

#[test]
fn an_unusable_list_written_while_the_daemon_runs_leaves_the_one_in_force() {
    let scratch = Scratch::new("bad-reload");
    let (certs, config) = federation_setup(&scratch);
    let older = scratch.path("older-crl.pem");
    std::fs::copy(certs.join("crl.pem"), &older).unwrap();
    tls::revoke(&certs, "mallory", tls::RevocationReason::default()).unwrap();
    let log = scratch.path("daemon.log");
    let daemon = Daemon::start_logging(&config, std::fs::File::create(&log).unwrap());
    let logged = |text: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(text)
            .then_some(())
    };
    // The federates check the daemon against a good copy of the list.
    let saved = scratch.path("saved-crl.pem");
    std::fs::copy(certs.join("crl.pem"), &saved).unwrap();
    let join = |identity: &str| {
        let files = TlsFiles {
            crl: Some(saved.clone()),
            ..TlsFiles::in_dir(&certs, identity)
        };
        Federate::builder("ping-pong", identity)
            .create_federation(ping_pong::model())
            .join_blocking(federate_sdk::Connector::quic(&daemon.address, files).unwrap())
    };

    std::fs::write(certs.join("crl.pem"), "garbage\n").unwrap();
    within(
        Duration::from_secs(10),
        "the daemon rejects the list",
        || logged("revocation list not reloaded"),
    );
    let refused = join("mallory").unwrap_err();
    assert!(matches!(refused, Error::CertificateRevoked(_)), "{refused}");

    std::fs::remove_file(certs.join("crl.pem")).unwrap();
    within(
        Duration::from_secs(10),
        "the daemon notices the removal",
        || logged("revocation list removed"),
    );
    let refused = join("mallory").unwrap_err();
    assert!(matches!(refused, Error::CertificateRevoked(_)), "{refused}");

    // A valid but older list, from before mallory's revocation, does not take it back.
    std::fs::copy(&older, certs.join("crl.pem")).unwrap();
    within(
        Duration::from_secs(10),
        "the daemon refuses the older list",
        || logged("lacks revocations of the one in force"),
    );
    let refused = join("mallory").unwrap_err();
    assert!(matches!(refused, Error::CertificateRevoked(_)), "{refused}");
    join("ping").unwrap().resign().unwrap();
    daemon.stop();
}

#[test]
fn an_unusable_revocation_list_stops_the_daemon_at_start_naming_the_file() {
    let scratch = Scratch::new("bad-list");
    let (certs, config) = federation_setup(&scratch);
    let start = |config: &Path| {
        Command::new(BIN)
            .args(["rti", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .output()
            .unwrap()
    };

    std::fs::write(certs.join("crl.pem"), "garbage\n").unwrap();
    let output = start(&config);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("crl.pem") && stderr.contains("not a usable certificate revocation list"),
        "{stderr}"
    );

    // A list named in rti.toml must exist.
    let named = scratch.path("named.toml");
    std::fs::write(&named, "[tls]\ndir = \"certs\"\ncrl = \"revoked.pem\"\n").unwrap();
    let output = start(&named);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("revoked.pem"), "{stderr}");

    // The daemon's own certificate revoked: peers would refuse it.
    std::fs::remove_file(certs.join("crl.pem")).unwrap();
    tls::revoke(&certs, "rti", tls::RevocationReason::Superseded).unwrap();
    let output = start(&config);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("rti.pem") && stderr.contains("is revoked"),
        "{stderr}"
    );
}
