//! Engine tests through its public, sans-IO interface: one binary, several modules.

mod harness;
mod properties;
mod refusals;
mod scenarios;
