//! Ping-pong: two federates in lock-step, each answering the other's last value.
//!
//! `ping` sends `Ping(count)` stamped one lookahead ahead; `pong` receives it at that grant and
//! answers `Pong(count + 1)`, which `ping` receives one step later, and so on. Both federates
//! are time-regulating and time-constrained with the same lookahead and step, so every exchange
//! crosses the RTI's time management. They start together at a synchronization point, whether
//! they run on two threads of one process or in two processes against a daemon.

#![warn(missing_docs)]

use std::thread;
use std::time::{Duration, Instant};

use federate_sdk::hosted::{self, Hosted, HostedFn, HostedResult};
use federate_sdk::{
    Connector, EmbeddedRti, Error, Federate, ObjectModel, RtiError, SimDuration, SimTime, Values,
    blocking,
};

/// The federates this example offers to `fedtwin run` (`builtin = "ping-pong/ping"` and
/// `"ping-pong/pong"`). Parameters: `step` (step and lookahead, default `"100ms"`). Each runs
/// from the start barrier to the stop time; the federate names are free, the two roles find
/// each other through the `Ping` and `Pong` interactions.
pub const FEDERATES: &[(&str, HostedFn)] = &[("ping", hosted_ping), ("pong", hosted_pong)];

/// Parameters of a hosted ping or pong.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "default_step")]
    step: String,
}

fn default_step() -> String {
    "100ms".to_owned()
}

fn hosted_ping(hosted: Hosted) -> HostedResult {
    play_hosted(&hosted, Role::Ping)
}

fn hosted_pong(hosted: Hosted) -> HostedResult {
    play_hosted(&hosted, Role::Pong)
}

/// One side under a runner: same exchange as [`play`], with the runner's names, start barrier
/// and stop time.
fn play_hosted(hosted: &Hosted, role: Role) -> HostedResult {
    let params: Params = hosted.params()?;
    let step: SimDuration = params.step.parse().map_err(|e| {
        format!(
            "federate `{}`: step = \"{}\": {e}",
            hosted.name, params.step
        )
    })?;
    if step.is_zero() {
        return Err(format!("federate `{}`: step must be positive", hosted.name).into());
    }
    let (sends, receives) = match role {
        Role::Ping => ("Ping", "Pong"),
        Role::Pong => ("Pong", "Ping"),
    };
    let mut federate = Federate::builder(&hosted.federation, &hosted.name)
        .create_federation(hosted.model_or(model()))
        .time_regulating(step)
        .time_constrained()
        .join_blocking(hosted.connector.clone())?;
    federate.publish_interaction(sends)?;
    federate.subscribe_interaction(receives)?;
    let expected: Vec<&str> = hosted.expect.iter().map(String::as_str).collect();
    hosted::start_barrier(&mut federate, &expected, |_| Ok(()))?;

    let mut to_send = (role == Role::Ping).then_some(0u64);
    let (mut steps, mut last) = (0u64, None);
    while federate.time() < hosted.stop {
        if let Some(count) = to_send.take() {
            let at = federate.time().checked_add(step)?;
            federate.send_interaction(sends, Values::new().with("count", &count)?, Some(at))?;
        }
        let grant = federate.step(step)?;
        steps += 1;
        for interaction in grant.interactions() {
            let count: u64 = interaction.parameters.get("count")?;
            last = Some(count);
            to_send = Some(count + 1);
        }
    }
    let time = federate.time();
    federate.resign()?;
    Ok(match last {
        Some(count) => format!("{steps} steps to {time}, last count received {count}"),
        None => format!("{steps} steps to {time}, nothing received"),
    })
}

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

/// Which side to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves first; publishes `Ping`.
    Ping,
    /// Answers; publishes `Pong`.
    Pong,
}

impl Role {
    /// The federate name (and, against a daemon, the certificate name).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Pong => "pong",
        }
    }
}

/// The federation's object model.
pub fn model() -> ObjectModel {
    ObjectModel::new()
        .with_interaction_class("Ping", ["count"])
        .with_interaction_class("Pong", ["count"])
}

/// Runs both sides on threads of this process against a fresh embedded RTI and returns every
/// grant, in time order (ping first at equal times).
///
/// # Errors
///
/// Any federate error; a failing federate makes the run fail rather than hang.
pub fn run(steps: u32, step: SimDuration) -> Result<Vec<GrantLine>, Error> {
    let rti = EmbeddedRti::start().map_err(|e| Error::Runtime(e.to_string()))?;
    run_both(&Connector::from(rti), steps, step)
}

/// Runs both sides on threads of this process against `rti`.
///
/// # Errors
///
/// Any federate error.
pub fn run_both(rti: &Connector, steps: u32, step: SimDuration) -> Result<Vec<GrantLine>, Error> {
    let pong_rti = rti.clone();
    let pong = thread::spawn(move || play(&pong_rti, Role::Pong, steps, step));
    let mut lines = play(rti, Role::Ping, steps, step)?;
    let pong_lines = pong
        .join()
        .map_err(|_| Error::Protocol("the pong thread panicked".into()))??;
    lines.extend(pong_lines);
    lines.sort_by_key(|l| (l.time, l.federate != "ping"));
    Ok(lines)
}

/// Plays one side: joins, waits for the other side at the `start` point, then takes `steps`
/// steps, each sending the answer to the last count received.
///
/// # Errors
///
/// Any federate error, or [`Error::Protocol`] if the other side does not join within a minute.
pub fn play(
    rti: &Connector,
    role: Role,
    steps: u32,
    step: SimDuration,
) -> Result<Vec<GrantLine>, Error> {
    let (sends, receives) = match role {
        Role::Ping => ("Ping", "Pong"),
        Role::Pong => ("Pong", "Ping"),
    };
    let mut federate = Federate::builder("ping-pong", role.name())
        .create_federation(model())
        .time_regulating(step)
        .time_constrained()
        .join_blocking(rti.clone())?;
    federate.publish_interaction(sends)?;
    federate.subscribe_interaction(receives)?;
    if role == Role::Pong {
        register_start(&mut federate)?;
    }
    federate.synchronize("start")?;

    let mut lines = Vec::new();
    let mut to_send = (role == Role::Ping).then_some(0u64);
    for _ in 0..steps {
        if let Some(count) = to_send.take() {
            let at = federate.time().checked_add(step)?;
            federate.send_interaction(sends, Values::new().with("count", &count)?, Some(at))?;
        }
        let grant = federate.step(step)?;
        let mut received = Vec::new();
        for interaction in grant.interactions() {
            let count: u64 = interaction.parameters.get("count")?;
            received.push((count, interaction.timestamp.unwrap_or(grant.time)));
            to_send = Some(count + 1);
        }
        lines.push(GrantLine {
            federate: role.name(),
            time: grant.time,
            received,
        });
    }
    federate.resign()?;
    Ok(lines)
}

/// Registers the start point for both sides, retrying until `ping` has joined.
fn register_start(federate: &mut blocking::Federate) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match federate.register_sync_point("start", &["ping", "pong"]) {
            Err(Error::Refused {
                source: RtiError::FederateNotFound(_),
                ..
            }) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(Error::Refused {
                source: RtiError::FederateNotFound(name),
                ..
            }) => {
                return Err(Error::Protocol(format!(
                    "`{name}` did not join within a minute"
                )));
            }
            other => return other,
        }
    }
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
