//! Faults with real processes: a federate killed with SIGKILL is detected by the daemon's idle
//! timeout, and the federation's loss policy applies.

mod common;

use std::process::{Child, Command};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{BIN, Daemon, Scratch, federation_setup};
use federate_sdk::{Delivery, Error, Federate, RtiError, SimDuration, SimTime};

/// What the surviving federate saw after its partner was killed.
type Outcome = Result<Vec<String>, Error>;

/// Joins as `pong`, starts together with `ping` and steps until a step fails or reports a lost
/// federate; then advances far ahead (it must not wait for the lost one) and resigns. `running`
/// is told once a few steps were granted. Returns the lost federates' names.
fn survivor(
    daemon_address: String,
    certs: std::path::PathBuf,
    running: mpsc::Sender<()>,
) -> Outcome {
    let step = SimDuration::from_millis(1)?;
    let connector = federate_sdk::Connector::quic(
        &daemon_address,
        federate_sdk::TlsFiles::in_dir(&certs, "pong"),
    )?;
    let mut pong = Federate::builder("ping-pong", "pong")
        .create_federation(ping_pong::model())
        .time_regulating(step)
        .time_constrained()
        .join_blocking(connector)?;
    pong.publish_interaction("Pong")?;
    pong.subscribe_interaction("Ping")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match pong.register_sync_point("start", &["ping", "pong"]) {
            Err(Error::Refused {
                source: RtiError::FederateNotFound(_),
                ..
            }) if std::time::Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            other => break other?,
        }
    }
    pong.synchronize("start")?;

    let mut lost = Vec::new();
    for granted in 1..=100_000u32 {
        let grant = match pong.step(step) {
            Err(halted @ Error::Halted(_)) => {
                // Resigning still works in a halted federation.
                pong.resign()?;
                return Err(halted);
            }
            other => other?,
        };
        if granted == 20 {
            let _ = running.send(());
        }
        lost.extend(grant.deliveries.into_iter().filter_map(|d| match d {
            Delivery::FederateLost { federate, .. } => Some(federate),
            _ => None,
        }));
        if !lost.is_empty() {
            break;
        }
    }
    let far = SimTime::from_secs(1_000_000)?;
    let grant = pong.advance_to(far)?;
    if grant.time != far {
        return Err(Error::Protocol(format!(
            "granted {} instead of {far}",
            grant.time
        )));
    }
    pong.resign()?;
    Ok(lost)
}

/// Runs `ping` as a child process and the survivor on a thread, kills `ping` with SIGKILL once
/// both run, and returns what the survivor saw. Every wait is bounded.
fn kill_ping_under(policy: &str, name: &str) -> Outcome {
    let scratch = Scratch::new(name);
    let (certs, config) = federation_setup(&scratch);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[limits]\nidle_timeout = \"1s\"\n[faults]\non_federate_lost = \"{policy}\"\n\
         resume_grace = \"2s\"\n"
    ));
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config);

    let (running, started) = mpsc::channel();
    let (finished, outcome) = mpsc::channel();
    let (address, survivor_certs) = (daemon.address.clone(), certs.clone());
    thread::spawn(move || {
        let _ = finished.send(survivor(address, survivor_certs, running));
    });
    let mut ping: Child = Command::new(BIN)
        .args([
            "example",
            "ping-pong",
            "--side",
            "ping",
            "--steps",
            "100000",
            "--step",
            "1ms",
        ])
        .args(["--rti", &daemon.address, "--certs"])
        .arg(&certs)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ping starts");

    let both_run = started.recv_timeout(Duration::from_secs(60));
    let pid = ping.id().to_string();
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    let _ = ping.wait();
    both_run.expect("the survivor was granted 20 steps with ping running");

    let outcome = outcome.recv_timeout(Duration::from_secs(30)).expect(
        "the survivor neither finished nor failed within 30 s: the loss policy did not apply",
    );
    daemon.stop();
    outcome
}

#[test]
fn a_killed_federate_is_resigned_and_the_survivor_runs_on() {
    let lost = kill_ping_under("resign", "lost-resign").expect("the survivor runs on");
    assert_eq!(lost, vec!["ping".to_owned()]);
}

#[test]
fn a_killed_federate_halts_the_federation_with_a_clear_error() {
    let error = kill_ping_under("halt", "lost-halt").expect_err("the federation halts");
    let message = error.to_string();
    assert!(matches!(error, Error::Halted(_)), "{message}");
    assert!(
        message.contains("`ping`") && message.contains("resign"),
        "{message}"
    );
}
