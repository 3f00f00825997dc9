//! Engine tests through its public, sans-IO interface: one binary, several modules.

mod audit;
mod faults;
mod fuzz;
mod harness;
mod models;
mod ops;
mod properties;
mod refusals;
mod scenarios;
