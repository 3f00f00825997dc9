//! Smart-grid federation: a utility grid twin, an EV-charging twin and prosumer battery twins
//! owned by different parties, coordinated only by the price the utility publishes.

use federate_sdk::hosted::HostedFn;

/// The federates this example offers to `fedtwin run` (`builtin = "smart-grid/<name>"`).
pub const FEDERATES: &[(&str, HostedFn)] = &[];
