//! The embedded RTI's stall alarm: a zero-lookahead deadlock in one process is logged, once,
//! with the wait-for cycle by name. (A test binary of its own: it installs the process-wide
//! log subscriber that the RTI's thread writes to.)

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fedtwin_core::SimDuration;
use fedtwin_core::message::{AdvanceKind, ClientMessage, Request};
use fedtwin_core::{ObjectModel, SimTime};
use fedtwin_rti::{EmbeddedRti, FaultSettings};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_zero_lookahead_deadlock_is_logged_once_with_its_cycle() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .init();

    let rti = EmbeddedRti::start_with(FaultSettings {
        stall_after: Some(Duration::from_millis(200)),
        ..FaultSettings::default()
    })
    .unwrap();
    let send = |connection: &fedtwin_rti::EmbeddedConnection, id, request| {
        connection
            .sender
            .send(ClientMessage { id, request })
            .unwrap();
    };
    let a = rti.connect().unwrap();
    let b = rti.connect().unwrap();
    send(
        &a,
        1,
        Request::CreateFederation {
            federation: "deadlock".into(),
            model: ObjectModel::new(),
            if_missing: true,
        },
    );
    for (connection, name) in [(&a, "alpha"), (&b, "beta")] {
        send(
            connection,
            2,
            Request::Join {
                federation: "deadlock".into(),
                federate: name.into(),
            },
        );
        send(
            connection,
            3,
            Request::EnableTimeRegulation {
                lookahead: SimDuration::from_ticks(0),
            },
        );
        send(connection, 4, Request::EnableTimeConstrained);
    }
    // Both ask for time 10 with zero lookahead: each one's GALT is the other's bound, 10, and
    // TAR needs t < GALT. Nobody can ever be granted.
    let ten = SimTime::from_ticks(10);
    for connection in [&a, &b] {
        send(
            connection,
            5,
            Request::Advance {
                kind: AdvanceKind::TimeAdvance,
                time: ten,
            },
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
        if text.contains("who waits for whom") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        text.contains("who waits for whom"),
        "no stall logged:\n{text}"
    );
    assert!(
        text.contains("alpha") && text.contains("beta") && text.contains("cycle"),
        "the report names the cycle:\n{text}"
    );
    // Once per stall: a second second of silence adds no second report.
    std::thread::sleep(Duration::from_millis(700));
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    assert_eq!(text.matches("who waits for whom").count(), 1, "{text}");
    drop((a, b));
}
