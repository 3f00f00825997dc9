//! FMI 2.0 Co-Simulation FMUs for fedtwin: open an `.fmu`, read its model description, load its
//! binary and run it step by step.
//!
//! The loader is our own, on `libloading`: [`Fmu::open`] unpacks the archive into a private
//! temporary directory (refusing entries that would land outside it), parses
//! `modelDescription.xml` tolerantly ([`ModelDescription`]) and locates
//! `binaries/<platform>/<modelIdentifier>.<so|dylib|dll>`. [`Instance::new`] loads the library,
//! resolves every FMI 2.0 Co-Simulation function and instantiates the model; its methods wrap
//! the FMI calls with typed errors that quote the FMU's own log messages.
//!
//! FMI counts time in `f64` seconds, fedtwin in integer ticks ([`fedtwin_core::SimTime`]). The
//! conversion happens once, at this boundary, with [`to_sim_time`] and [`to_sim_duration`].
//!
//! ```no_run
//! use fedtwin_fmi::{Fmu, Instance, StepOutcome};
//!
//! # fn main() -> Result<(), fedtwin_fmi::FmiError> {
//! let fmu = Fmu::open("decay.fmu".as_ref())?;
//! let x = fmu.description().variable("x").map(|v| v.value_reference).unwrap_or(0);
//! let mut instance = Instance::new(&fmu, "decay", false)?;
//! instance.setup_experiment(None, 0.0, Some(1.0))?;
//! instance.enter_initialization_mode()?;
//! instance.exit_initialization_mode()?;
//! let outcome = instance.do_step(0.0, 0.1)?;
//! assert_eq!(outcome, StepOutcome::Completed);
//! println!("x(0.1) = {}", instance.get_real(&[x])?[0]);
//! instance.terminate()?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod archive;
pub mod config;
mod error;
pub mod federate;
mod fmu;
mod functions;
mod instance;
mod logging;
pub mod model_description;

use fedtwin_core::{SimDuration, SimTime};

pub use config::{AdapterConfig, ConfigError};
pub use error::{FmiError, Status};
pub use federate::{AdapterError, RunSummary, run, run_until, run_with};
pub use fmu::{Fmu, platform};
pub use instance::{FmuState, Instance, StepOutcome};
pub use model_description::{DescriptionError, ModelDescription};

/// An FMI time in seconds as a [`SimTime`], rounded to the nearest tick: the one place where an
/// FMU's `f64` time enters fedtwin.
///
/// # Errors
///
/// [`FmiError::Time`] for NaN, infinities and times out of range.
pub fn to_sim_time(seconds: f64) -> Result<SimTime, FmiError> {
    SimTime::from_secs_f64(seconds).map_err(|source| FmiError::Time {
        what: "FMI time",
        value: seconds,
        source,
    })
}

/// An FMI step size or other span in seconds as a [`SimDuration`], rounded to the nearest tick.
///
/// # Errors
///
/// [`FmiError::Time`] for negative, non-finite or out-of-range values.
pub fn to_sim_duration(seconds: f64) -> Result<SimDuration, FmiError> {
    SimDuration::from_secs_f64(seconds).map_err(|source| FmiError::Time {
        what: "FMI duration",
        value: seconds,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_once_to_ticks() {
        assert_eq!(to_sim_time(0.0).unwrap(), SimTime::ZERO);
        assert_eq!(
            to_sim_time(1.5).unwrap(),
            SimTime::from_millis(1500).unwrap()
        );
        // 0.1 + 0.2 is 0.30000000000000004 in f64, but the same tick as 0.3.
        assert_eq!(to_sim_time(0.1 + 0.2).unwrap(), to_sim_time(0.3).unwrap());
        assert_eq!(
            to_sim_duration(0.01).unwrap(),
            SimDuration::from_millis(10).unwrap()
        );
        assert!(matches!(to_sim_time(f64::NAN), Err(FmiError::Time { .. })));
        assert!(matches!(to_sim_duration(-1.0), Err(FmiError::Time { .. })));
        assert!(matches!(to_sim_time(1e300), Err(FmiError::Time { .. })));
    }
}
