//! Ping-pong: two federates in lock-step, each answering the other's last value.
//!
//! `ping` sends `Ping(count)` stamped one lookahead ahead; `pong` receives it at that grant and
//! answers `Pong(count + 1)`, which `ping` receives one step later, and so on. Both federates
//! are time-regulating and time-constrained with the same lookahead and step, each on its own
//! thread, so every exchange crosses the RTI's time management.

#![warn(missing_docs)]

use std::thread;

use federate_sdk::{EmbeddedRti, Error, Federate, ObjectModel, SimDuration, SimTime, Values};

/// One grant seen by one federate.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantLine {
    /// The federate.
    pub federate: &'static str,
    /// Its new logical time.
    pub time: SimTime,
    /// The counts it received with this grant, with their timestamps.
    pub received: Vec<(u64, SimTime)>,
}

/// The federation's object model.
pub fn model() -> ObjectModel {
    ObjectModel::new()
        .with_interaction_class("Ping", ["count"])
        .with_interaction_class("Pong", ["count"])
}

/// Runs `steps` lock-steps of `step` each on a fresh embedded RTI and returns every grant,
/// ping's and pong's interleaved in time order (ping first at equal times).
///
/// # Errors
///
/// Any federate error; a failing federate makes the run fail rather than hang.
pub fn run(steps: u32, step: SimDuration) -> Result<Vec<GrantLine>, Error> {
    let rti = EmbeddedRti::start().map_err(|e| Error::Runtime(e.to_string()))?;
    let join = |name: &str| {
        Federate::builder("ping-pong", name)
            .create_federation(model())
            .time_regulating(step)
            .time_constrained()
            .join_blocking(&rti)
    };
    let mut ping = join("ping")?;
    let mut pong = join("pong")?;
    ping.publish_interaction("Ping")?;
    ping.subscribe_interaction("Pong")?;
    pong.publish_interaction("Pong")?;
    pong.subscribe_interaction("Ping")?;

    let pong_thread = thread::spawn(move || {
        play(&mut pong, "pong", "Pong", steps, step, None).and_then(|lines| {
            pong.resign()?;
            Ok(lines)
        })
    });
    let mut lines = play(&mut ping, "ping", "Ping", steps, step, Some(0))?;
    ping.resign()?;
    let pong_lines = pong_thread
        .join()
        .map_err(|_| Error::Protocol("the pong thread panicked".into()))??;
    lines.extend(pong_lines);
    lines.sort_by_key(|l| (l.time, l.federate != "ping"));
    Ok(lines)
}

/// One federate's loop: send the answer to the last count received, then step.
fn play(
    federate: &mut federate_sdk::blocking::Federate,
    name: &'static str,
    class: &str,
    steps: u32,
    step: SimDuration,
    serve: Option<u64>,
) -> Result<Vec<GrantLine>, Error> {
    let mut lines = Vec::new();
    let mut to_send = serve;
    for _ in 0..steps {
        if let Some(count) = to_send.take() {
            let at = federate.time().checked_add(step)?;
            federate.send_interaction(class, Values::new().with("count", &count)?, Some(at))?;
        }
        let grant = federate.step(step)?;
        let mut received = Vec::new();
        for interaction in grant.interactions() {
            let count: u64 = interaction.parameters.get("count")?;
            received.push((count, interaction.timestamp.unwrap_or(grant.time)));
            to_send = Some(count + 1);
        }
        lines.push(GrantLine {
            federate: name,
            time: grant.time,
            received,
        });
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ball_goes_back_and_forth_one_step_per_hop() {
        let step = SimDuration::from_millis(100).unwrap();
        let lines = run(6, step).unwrap();
        assert_eq!(lines.len(), 12);
        let received: Vec<(&str, u64, SimTime)> = lines
            .iter()
            .flat_map(|l| l.received.iter().map(move |(c, t)| (l.federate, *c, *t)))
            .collect();
        let ms = |m| SimTime::from_millis(m).unwrap();
        // Ping serves 0 stamped 0.1 s; pong answers 1 stamped 0.2 s; and so on.
        assert_eq!(
            received,
            vec![
                ("pong", 0, ms(100)),
                ("ping", 1, ms(200)),
                ("pong", 2, ms(300)),
                ("ping", 3, ms(400)),
                ("pong", 4, ms(500)),
                ("ping", 5, ms(600)),
            ]
        );
        for line in &lines {
            for (_, stamped) in &line.received {
                assert_eq!(
                    *stamped, line.time,
                    "delivered at the grant it was stamped for"
                );
            }
        }
    }
}
