//! Federated learning: hospital federates train a small model on private data; an aggregator
//! averages their parameters (FedAvg) each round.

use federate_sdk::hosted::HostedFn;

/// The federates this example offers to `fedtwin run` (`builtin = "federated-learning/<name>"`).
pub const FEDERATES: &[(&str, HostedFn)] = &[];
