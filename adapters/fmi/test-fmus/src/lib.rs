//! Test FMUs built by the workspace itself: one Rust `cdylib` that exports the FMI 2.0
//! Co-Simulation C API and serves several small models with known solutions, plus the code that
//! packs it into `.fmu` archives.
//!
//! The models ([`TestModel`]) cover what an FMU adapter and a step controller must handle:
//! an exact solution to compare against ([`TestModel::Dahlquist`]), a stiff-enough oscillator
//! and its split into two coupled FMUs whose coupled solution converges to the whole one
//! ([`oscillator_exact`]), a step rejected with `fmi2Discard`, early termination, a solver
//! failure and a panic inside the library; and a price-driven home battery
//! ([`TestModel::Battery`]) for the smart-grid example.
//!
//! The `fmi2*` functions are also plain `pub unsafe extern "C"` items of the `rlib`, so tests may
//! call them directly; a master loads them from the archive written by [`pack`].
//!
//! Only x86_64 Linux (`linux64`) is supported.

#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod fmi2;
mod instance;
mod model;
mod pack;

pub use fmi2::*;
pub use model::{
    Causality, DefaultExperiment, Initial, TestModel, ValueType, Variability, Variable,
    oscillator_exact, vr,
};
pub use pack::{
    MODEL_IDENTIFIER, PackError, cdylib_path, model_description, pack, pack_with_description,
    platform,
};
