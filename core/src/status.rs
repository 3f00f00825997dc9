//! Read-only views of a federation for status displays and stall diagnosis.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::message::AdvanceKind;
use crate::time::{SimDuration, SimTime};

/// A federation at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FederationStatus {
    /// Federation name.
    pub name: String,
    /// Joined federates, by name.
    pub federates: Vec<FederateStatus>,
    /// Registered object instances.
    pub objects: usize,
    /// Labels of synchronization points still waiting.
    pub sync_points: Vec<String>,
    /// Wall time since the federation last granted an advance (or was created).
    pub since_last_grant: Option<Duration>,
}

/// One federate's time-management state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FederateStatus {
    /// Name.
    pub name: String,
    /// Logical time (last grant).
    pub time: SimTime,
    /// Lookahead, when regulating.
    pub lookahead: Option<SimDuration>,
    /// Bound, when regulating: it will send nothing timestamped below this.
    pub bound: Option<SimTime>,
    /// Greatest available logical time (`None`: nobody constrains it).
    pub galt: Option<SimTime>,
    /// Whether it receives timestamped messages in timestamp order.
    pub constrained: bool,
    /// Granted or advancing.
    pub state: FederateState,
    /// Timestamped messages queued for it.
    pub queued: usize,
    /// Timestamp of the earliest of those.
    pub earliest_queued: Option<SimTime>,
    /// Certificate identity of its connection, when authenticated.
    pub identity: Option<String>,
    /// Key exchange group of its connection's TLS handshake (e.g. `X25519MLKEM768`).
    pub key_exchange: Option<String>,
}

/// Whether a federate is granted or waiting for a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FederateState {
    /// At its logical time, free to act.
    Granted,
    /// Waiting for a grant.
    Advancing {
        /// How it asked.
        kind: AdvanceKind,
        /// The time it asked for.
        time: SimTime,
    },
}

/// Why federates are waiting: who holds each one's GALT back, and any wait-for cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StallReport {
    /// Federation name.
    pub federation: String,
    /// Every advancing time-constrained federate.
    pub waits: Vec<WaitFor>,
    /// Federates that wait for each other in a ring, in order, if any: a deadlock such as
    /// zero-lookahead federates that all asked with TAR.
    pub cycle: Option<Vec<String>>,
}

/// One federate waiting for a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitFor {
    /// The waiting federate.
    pub federate: String,
    /// How it asked.
    pub kind: AdvanceKind,
    /// What it asked for.
    pub requested: SimTime,
    /// Its GALT now (`None`: infinite).
    pub galt: Option<SimTime>,
    /// The federate whose bound sets that GALT.
    pub held_by: Option<String>,
}

impl StallReport {
    /// The chain of federates that `federate` waits for, ending at a federate that is not
    /// waiting (the one that must act) or where the chain closes into a cycle.
    pub fn chain(&self, federate: &str) -> Vec<String> {
        let mut chain = vec![federate.to_owned()];
        let mut current = federate;
        while let Some(next) = self
            .waits
            .iter()
            .find(|w| w.federate == current)
            .and_then(|w| w.held_by.as_deref())
        {
            let closes = chain.iter().any(|c| c == next);
            chain.push(next.to_owned());
            if closes {
                break;
            }
            current = next;
        }
        chain
    }
}

impl fmt::Display for StallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "federation `{}`:", self.federation)?;
        for wait in &self.waits {
            let galt = wait
                .galt
                .map_or_else(|| "infinite".to_owned(), |g| g.to_string());
            let holder = wait.held_by.as_deref().unwrap_or("nobody");
            writeln!(
                f,
                "  {} waits on {}({}) with GALT {} held by {}",
                wait.federate, wait.kind, wait.requested, galt, holder
            )?;
        }
        if let Some(cycle) = &self.cycle
            && let Some(first) = cycle.first()
        {
            writeln!(f, "  wait-for cycle: {} -> {first}", cycle.join(" -> "))?;
        }
        Ok(())
    }
}
