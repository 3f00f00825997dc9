//! The embedded RTI runs its engine on the threads of the federates that send. Many threads
//! sending at once must lose nothing and keep each sender's order; a stopped RTI must say so.

use std::time::{Duration, Instant};

use fedtwin_core::message::{ClientMessage, Request, ServerMessage};
use fedtwin_rti::{EmbeddedConnection, EmbeddedRti, Stopped};
use tokio::sync::mpsc::error::TryRecvError;

/// The next message within `limit`, or a test failure naming what was awaited (never a hang).
fn next_within(connection: &mut EmbeddedConnection, limit: Duration, what: &str) -> ServerMessage {
    let deadline = Instant::now() + limit;
    loop {
        match connection.receiver.try_recv() {
            Ok(message) => return message,
            Err(TryRecvError::Disconnected) => panic!("channel closed while waiting for {what}"),
            Err(TryRecvError::Empty) => {}
        }
        assert!(
            Instant::now() < deadline,
            "nothing within {limit:?}: {what}"
        );
        std::thread::yield_now();
    }
}

#[test]
fn concurrent_senders_get_every_answer_in_their_own_order() {
    const THREADS: usize = 8;
    const REQUESTS: u64 = 5_000;
    let rti = EmbeddedRti::start().unwrap();
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let mut connection = rti.connect().unwrap();
            std::thread::spawn(move || {
                // Resigning without having joined is refused with a response carrying the id:
                // one answer per request, whoever handles it.
                for id in 1..=REQUESTS {
                    connection
                        .sender
                        .send(ClientMessage {
                            id,
                            request: Request::Resign,
                        })
                        .unwrap();
                    if id % 7 == 0 {
                        std::thread::yield_now();
                    }
                }
                for expected in 1..=REQUESTS {
                    let message = next_within(
                        &mut connection,
                        Duration::from_secs(30),
                        &format!("the answer to request {expected}"),
                    );
                    match message {
                        ServerMessage::Response { id, result } => {
                            assert_eq!(id, expected, "answers out of order");
                            assert!(result.is_err(), "resigning unjoined must be refused");
                        }
                        other => panic!("unexpected message {other:?}"),
                    }
                }
                assert!(
                    connection.receiver.try_recv().is_err(),
                    "more answers than requests"
                );
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
}

#[test]
fn a_stopped_rti_closes_channels_and_refuses_requests() {
    let rti = EmbeddedRti::start().unwrap();
    let mut connection = rti.connect().unwrap();
    assert_eq!(rti.federations().unwrap(), Vec::<String>::new());
    drop(rti);
    assert_eq!(
        connection.receiver.blocking_recv(),
        None,
        "the federate's channel closes with the RTI"
    );
    assert_eq!(
        connection.sender.send(ClientMessage {
            id: 1,
            request: Request::Resign,
        }),
        Err(Stopped)
    );
}
