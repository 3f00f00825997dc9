//! The one error type of the FMI adapter.

use std::fmt;
use std::io;
use std::path::PathBuf;

use fedtwin_core::TimeError;

use crate::model_description::{DescriptionError, ValueType};

/// Why an FMU could not be opened, loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FmiError {
    /// A file system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done, in words ("read", "create the directory", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file is not a zip archive, or a broken one.
    #[error(
        "{} is not a valid FMU: an FMU is a zip archive and this one cannot be read ({source}); \
         check that the file is complete and really an .fmu",
        path.display()
    )]
    MalformedArchive {
        /// The archive.
        path: PathBuf,
        /// What the zip reader found.
        #[source]
        source: zip::result::ZipError,
    },
    /// An archive entry would be written outside the extraction directory (zip slip).
    #[error(
        "{} contains the entry `{entry}`, whose path leaves the archive (absolute or with `..`); \
         refusing to unpack it: the FMU is broken or hostile",
        archive.display()
    )]
    UnsafeEntry {
        /// The archive.
        archive: PathBuf,
        /// The entry's name as stored.
        entry: String,
    },
    /// The archive has no `modelDescription.xml` at its root.
    #[error(
        "{} has no modelDescription.xml at its root, so it is not an FMU; if the archive wraps \
         everything in a folder, zip the folder's contents instead",
        archive.display()
    )]
    MissingModelDescription {
        /// The archive.
        archive: PathBuf,
    },
    /// `modelDescription.xml` is not a valid FMI 2.0 Co-Simulation description.
    #[error("{}: {source}", archive.display())]
    ModelDescription {
        /// The archive.
        archive: PathBuf,
        /// The first problem in the description.
        #[source]
        source: DescriptionError,
    },
    /// The archive has no shared library for this platform.
    #[error(
        "the FMU has no binary for this platform ({platform}): expected {expected_path}; {}",
        available_text(available)
    )]
    NoBinary {
        /// This platform's FMI name (`linux64`, `darwin64`, `win64`, ...).
        platform: String,
        /// Where the binary should be inside the archive.
        expected_path: String,
        /// The platforms the archive has a `binaries/` folder for.
        available: Vec<String>,
    },
    /// FMI 2.0 defines no binary folder for this operating system or word size.
    #[error(
        "FMI 2.0 defines no binary platform for {os} with {bits}-bit pointers; run the FMU on \
         Linux, macOS or Windows"
    )]
    UnsupportedPlatform {
        /// `std::env::consts::OS`.
        os: &'static str,
        /// Pointer width in bits.
        bits: u32,
    },
    /// The shared library could not be loaded.
    #[error(
        "cannot load the FMU's library {}: {source}; the binary may be for another architecture \
         or need libraries this machine lacks (try `ldd` on it), or the temporary directory may \
         be mounted noexec (point TMPDIR elsewhere)",
        path.display()
    )]
    LoadLibrary {
        /// The library.
        path: PathBuf,
        /// The dynamic loader's error.
        #[source]
        source: libloading::Error,
    },
    /// The library lacks a function that every FMI 2.0 Co-Simulation FMU must export.
    #[error(
        "the FMU's library {} does not export `{symbol}`, which FMI 2.0 Co-Simulation requires \
         (every function must be exported, even unsupported ones); the FMU is incomplete",
        library.display()
    )]
    MissingSymbol {
        /// The missing function.
        symbol: &'static str,
        /// The library.
        library: PathBuf,
        /// The dynamic loader's error.
        #[source]
        source: libloading::Error,
    },
    /// `fmi2GetVersion` or `fmi2GetTypesPlatform` returned something other than FMI 2.0 expects.
    #[error(
        "{function} returned \"{found}\", expected \"{expected}\": the library does not match an \
         FMI 2.0 FMU with standard types"
    )]
    Incompatible {
        /// The function asked.
        function: &'static str,
        /// What it returned.
        found: String,
        /// What FMI 2.0 requires.
        expected: &'static str,
    },
    /// `fmi2Instantiate` returned no instance.
    #[error("fmi2Instantiate failed for instance `{instance}`{}", quoted(message))]
    Instantiate {
        /// The instance name.
        instance: String,
        /// The FMU's last log message, when it logged one.
        message: Option<String>,
    },
    /// An FMI function returned `fmi2Error`, `fmi2Fatal` or another status that means failure.
    #[error("{function} returned {status}{}", quoted(message))]
    Failed {
        /// The FMI function.
        function: &'static str,
        /// Its status.
        status: Status,
        /// The FMU's own explanation: its last log message during the call, when it logged one.
        message: Option<String>,
    },
    /// A call that FMI 2.0 forbids in the instance's current state (it could crash the FMU).
    #[error("{function} cannot be called now: {reason}")]
    InvalidCall {
        /// The FMI function.
        function: &'static str,
        /// Why not, and what to do instead.
        reason: String,
    },
    /// Arguments the FMU must not see (mismatched lengths, unknown value references, NUL bytes).
    #[error("{function}: {reason}")]
    InvalidArgument {
        /// The FMI function.
        function: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A value reference that the model description does not define for this type.
    #[error(
        "{function}: value reference {value_reference} is not a {value_type} variable of this \
         FMU; take value references from its model description"
    )]
    UnknownValueReference {
        /// The FMI function.
        function: &'static str,
        /// The value reference.
        value_reference: u32,
        /// The type the function reads or writes.
        value_type: ValueType,
    },
    /// The FMU does not declare a capability the call needs.
    #[error("the FMU `{model}` does not support {capability}")]
    Unsupported {
        /// The model name.
        model: String,
        /// The capability, in words (with the attribute that declares it).
        capability: &'static str,
    },
    /// An FMI time could not become a [`fedtwin_core::SimTime`].
    #[error("{what} = {value} s cannot be a simulation time: {source}")]
    Time {
        /// Which time, in words.
        what: &'static str,
        /// The value in seconds.
        value: f64,
        /// Why not.
        #[source]
        source: TimeError,
    },
}

/// `fmi2Status`: what an FMI function reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Status {
    /// All well.
    Ok,
    /// Something is not quite right, but the computation continues.
    Warning,
    /// The result is not usable (for `fmi2DoStep`: the step was not completed).
    Discard,
    /// The instance failed; only diagnostics and freeing it remain possible.
    Error,
    /// Every instance of the FMU is corrupted; no function may be called anymore.
    Fatal,
    /// An asynchronous step is still running.
    Pending,
    /// A value outside the enumeration.
    Unknown(i32),
}

impl Status {
    /// The status for the C value.
    pub fn from_raw(raw: i32) -> Self {
        match raw {
            0 => Status::Ok,
            1 => Status::Warning,
            2 => Status::Discard,
            3 => Status::Error,
            4 => Status::Fatal,
            5 => Status::Pending,
            other => Status::Unknown(other),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Ok => f.write_str("fmi2OK"),
            Status::Warning => f.write_str("fmi2Warning"),
            Status::Discard => f.write_str("fmi2Discard"),
            Status::Error => f.write_str("fmi2Error"),
            Status::Fatal => f.write_str("fmi2Fatal"),
            Status::Pending => f.write_str("fmi2Pending"),
            Status::Unknown(raw) => write!(f, "the unknown status {raw}"),
        }
    }
}

fn available_text(available: &[String]) -> String {
    if available.is_empty() {
        "the archive has no binaries at all (a source-only FMU, which fedtwin cannot compile); \
         export it with binaries for this platform"
            .to_owned()
    } else {
        format!(
            "the archive has binaries for: {}; export the FMU for this platform or run it on one \
             of those",
            available.join(", ")
        )
    }
}

fn quoted(message: &Option<String>) -> String {
    match message {
        Some(m) => format!(": the FMU says \"{m}\""),
        None => " (the FMU logged no message; instantiate with logging on for details)".to_owned(),
    }
}
