//! Writing `.fmu` archives around this crate's own shared library.
//!
//! An archive holds `modelDescription.xml`, written the way common exporters write it (with the
//! optional attributes and elements a tolerant loader must skip), and
//! `binaries/linux64/fedtwin_test_fmus.so`, the compiled `cdylib` of this crate.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::instance::LOG_CATEGORIES;
use crate::model::{Causality, Initial, TestModel, ValueType};

/// The `modelIdentifier`: the stem of the binary inside the archive.
pub const MODEL_IDENTIFIER: &str = "fedtwin_test_fmus";

/// File name of the shared library Cargo builds for this crate.
const LIBRARY_FILE: &str = "libfedtwin_test_fmus.so";

/// Why an `.fmu` could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// Test FMUs exist for x86_64 Linux (FMI platform `linux64`) only.
    #[error("test FMUs are only built for linux64 (x86_64 Linux), not {os} on {arch}")]
    UnsupportedPlatform {
        /// `std::env::consts::OS`.
        os: &'static str,
        /// `std::env::consts::ARCH`.
        arch: &'static str,
    },
    /// The shared library was neither found nor built.
    #[error(
        "the test FMU library {LIBRARY_FILE} was not found (looked for {}); build it with \
         `cargo build -p fedtwin-test-fmus`",
        show_paths(.searched)
    )]
    LibraryNotFound {
        /// Every path that was tried.
        searched: Vec<PathBuf>,
    },
    /// Running Cargo to build the shared library failed.
    #[error("building the test FMU library with `{command}` failed: {detail}")]
    Build {
        /// The command line that was run.
        command: String,
        /// Its exit status and error output, or why it could not start.
        detail: String,
    },
    /// Reading or writing a file failed.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing the zip archive failed.
    #[error("writing the archive {}: {source}", .path.display())]
    Zip {
        /// The archive being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: zip::result::ZipError,
    },
}

fn show_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    shown.join(", ")
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PackError {
    let path = path.to_path_buf();
    move |source| PackError::Io {
        action,
        path,
        source,
    }
}

/// The FMI platform directory for this host, `linux64`.
///
/// # Errors
///
/// [`PackError::UnsupportedPlatform`] anywhere but on x86_64 Linux.
pub fn platform() -> Result<&'static str, PackError> {
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        Ok("linux64")
    } else {
        Err(PackError::UnsupportedPlatform {
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        })
    }
}

/// Writes `<dir>/<model name>.fmu` with the model's standard description and returns its path.
///
/// # Errors
///
/// See [`pack_with_description`].
pub fn pack(model: TestModel, dir: &Path) -> Result<PathBuf, PackError> {
    pack_with_description(model, dir, &model_description(model))
}

/// Writes `<dir>/<model name>.fmu` with `description_xml` as its `modelDescription.xml` (for
/// tests of hand-edited descriptions) and returns its path. Creates `dir` if needed; replaces an
/// existing file atomically.
///
/// # Errors
///
/// [`PackError::UnsupportedPlatform`] off linux64; the errors of [`cdylib_path`]; I/O and zip
/// errors writing the archive.
pub fn pack_with_description(
    model: TestModel,
    dir: &Path,
    description_xml: &str,
) -> Result<PathBuf, PackError> {
    let platform = platform()?;
    let library = cdylib_path()?;
    let binary = fs::read(&library).map_err(io_error("reading", &library))?;
    fs::create_dir_all(dir).map_err(io_error("creating", dir))?;

    // Write under a unique temporary name, then rename: concurrent packers never see half a file.
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let path = dir.join(format!("{}.fmu", model.name()));
    let temporary = dir.join(format!(
        ".{}.fmu.{}.{}.tmp",
        model.name(),
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let written = write_archive(&temporary, platform, description_xml, &binary)
        .and_then(|()| fs::rename(&temporary, &path).map_err(io_error("renaming", &temporary)));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written.map(|()| path)
}

fn write_archive(
    path: &Path,
    platform: &str,
    description_xml: &str,
    binary: &[u8],
) -> Result<(), PackError> {
    let zip_error = |source| PackError::Zip {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(path).map_err(io_error("creating", path))?;
    let mut archive = ZipWriter::new(BufWriter::new(file));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);

    archive
        .start_file("modelDescription.xml", options)
        .map_err(zip_error)?;
    archive
        .write_all(description_xml.as_bytes())
        .map_err(io_error("writing", path))?;
    // Directory entries, as most exporters write them.
    archive
        .add_directory("binaries/", options)
        .map_err(zip_error)?;
    archive
        .add_directory(format!("binaries/{platform}/"), options)
        .map_err(zip_error)?;
    let binary_name = format!("binaries/{platform}/{MODEL_IDENTIFIER}.so");
    // The fastest deflate level: a debug build of the library is over 10 MB.
    let binary_options = options.compression_level(Some(1)).unix_permissions(0o755);
    archive
        .start_file(binary_name, binary_options)
        .map_err(zip_error)?;
    archive
        .write_all(binary)
        .map_err(io_error("writing", path))?;

    let mut file = archive.finish().map_err(zip_error)?;
    file.flush().map_err(io_error("writing", path))?;
    Ok(())
}

/// The path of this crate's compiled shared library (`libfedtwin_test_fmus.so`).
///
/// Looks in the running executable's profile directory (`target/<profile>/` when the executable
/// is `target/<profile>/deps/<test>-<hash>`) and its `deps/`, then in `$CARGO_TARGET_DIR/<profile>`
/// and the workspace's `target/<profile>`, taking the newest file found. If there is none, runs
/// `$CARGO build -p fedtwin-test-fmus` (`cargo` when `CARGO` is unset) with the same profile and
/// looks again.
///
/// # Errors
///
/// [`PackError::UnsupportedPlatform`] off linux64, [`PackError::Build`] when Cargo fails,
/// [`PackError::LibraryNotFound`] when the library is still missing.
pub fn cdylib_path() -> Result<PathBuf, PackError> {
    platform()?;
    let executable = std::env::current_exe().ok();
    let profile_dir = executable.as_deref().and_then(profile_dir);
    let profile = profile_dir
        .as_deref()
        .and_then(Path::file_name)
        .and_then(|name| name.to_str())
        .unwrap_or("debug")
        .to_owned();

    let mut candidates = Vec::new();
    if let Some(dir) = &profile_dir {
        candidates.push(dir.join(LIBRARY_FILE));
        candidates.push(dir.join("deps").join(LIBRARY_FILE));
    }
    if let Some(target_dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(Path::new(&target_dir).join(&profile).join(LIBRARY_FILE));
    }
    let workspace_target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../target");
    candidates.push(workspace_target.join(&profile).join(LIBRARY_FILE));

    if let Some(found) = newest(&candidates) {
        return Ok(found);
    }
    build(&profile)?;
    newest(&candidates).ok_or(PackError::LibraryNotFound {
        searched: candidates,
    })
}

/// `target/<profile>` for an executable in `target/<profile>/`, `.../deps/` or `.../examples/`.
fn profile_dir(executable: &Path) -> Option<PathBuf> {
    let parent = executable.parent()?;
    let dir = match parent.file_name()?.to_str()? {
        "deps" | "examples" => parent.parent()?,
        _ => parent,
    };
    Some(dir.to_path_buf())
}

fn newest(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates
        .iter()
        .filter_map(|path| {
            let modified = fs::metadata(path).ok()?.modified().ok()?;
            Some((modified, path))
        })
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, path)| path.clone())
}

/// Builds the library with Cargo for the profile whose output directory is `profile`.
fn build(profile: &str) -> Result<(), PackError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .args(["build", "-p", "fedtwin-test-fmus"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        custom => {
            command.args(["--profile", custom]);
        }
    }
    let shown = format!("{command:?}");
    let output = command.output().map_err(|error| PackError::Build {
        command: shown.clone(),
        detail: error.to_string(),
    })?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(PackError::Build {
            command: shown,
            detail: format!("{}: {}", output.status, stderr.trim()),
        })
    }
}

/// The `modelDescription.xml` of `model`, as a Dymola- or OpenModelica-style exporter would
/// write it: FMI 2.0 co-simulation with the optional attributes (`xmlns:xsi`, `generationTool`,
/// `generationDateAndTime`, `variableNamingConvention`, `numberOfEventIndicators`), log
/// categories, a default experiment, a vendor annotation and the model structure.
pub fn model_description(model: TestModel) -> String {
    let mut xml = String::new();
    // Writing into a String cannot fail.
    let _ = write_model_description(&mut xml, model, SystemTime::now());
    xml
}

fn write_model_description(
    xml: &mut String,
    model: TestModel,
    now: SystemTime,
) -> std::fmt::Result {
    let experiment = model.default_experiment();
    writeln!(xml, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(xml, "<fmiModelDescription")?;
    writeln!(
        xml,
        r#"  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance""#
    )?;
    writeln!(xml, r#"  fmiVersion="2.0""#)?;
    writeln!(xml, r#"  modelName="{}""#, escape(model.name()))?;
    writeln!(xml, r#"  guid="{}""#, escape(model.guid()))?;
    writeln!(xml, r#"  description="{}""#, escape(model.description()))?;
    writeln!(xml, r#"  author="fedtwin""#)?;
    writeln!(xml, r#"  version="{}""#, env!("CARGO_PKG_VERSION"))?;
    writeln!(
        xml,
        r#"  generationTool="fedtwin-test-fmus {}""#,
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(xml, r#"  generationDateAndTime="{}""#, utc_timestamp(now))?;
    writeln!(xml, r#"  variableNamingConvention="structured""#)?;
    writeln!(xml, r#"  numberOfEventIndicators="0">"#)?;

    writeln!(xml, "  <CoSimulation")?;
    writeln!(xml, r#"    modelIdentifier="{MODEL_IDENTIFIER}""#)?;
    writeln!(xml, r#"    needsExecutionTool="false""#)?;
    writeln!(xml, r#"    canHandleVariableCommunicationStepSize="true""#)?;
    writeln!(xml, r#"    canInterpolateInputs="false""#)?;
    writeln!(xml, r#"    maxOutputDerivativeOrder="0""#)?;
    writeln!(xml, r#"    canRunAsynchronuously="false""#)?;
    writeln!(xml, r#"    canBeInstantiatedOnlyOncePerProcess="false""#)?;
    writeln!(xml, r#"    canNotUseMemoryManagementFunctions="true""#)?;
    writeln!(xml, r#"    canGetAndSetFMUstate="true""#)?;
    writeln!(xml, r#"    canSerializeFMUstate="false""#)?;
    writeln!(xml, r#"    providesDirectionalDerivative="false"/>"#)?;

    writeln!(xml, "  <LogCategories>")?;
    for (name, description) in LOG_CATEGORIES {
        writeln!(
            xml,
            r#"    <Category name="{name}" description="{}"/>"#,
            escape(description)
        )?;
    }
    writeln!(xml, "  </LogCategories>")?;
    writeln!(
        xml,
        r#"  <DefaultExperiment startTime="{}" stopTime="{}" stepSize="{}" tolerance="{:e}"/>"#,
        experiment.start_time, experiment.stop_time, experiment.step_size, experiment.tolerance
    )?;
    writeln!(xml, "  <VendorAnnotations>")?;
    writeln!(xml, r#"    <Tool name="fedtwin"><x foo="1"/></Tool>"#)?;
    writeln!(xml, "  </VendorAnnotations>")?;

    writeln!(xml, "  <ModelVariables>")?;
    for (index, variable) in model.variables().iter().enumerate() {
        writeln!(xml, "    <!-- Index {} -->", index + 1)?;
        write!(
            xml,
            r#"    <ScalarVariable name="{}" valueReference="{}" description="{}""#,
            escape(variable.name),
            variable.value_reference,
            escape(variable.description),
        )?;
        write!(
            xml,
            r#" causality="{}" variability="{}""#,
            variable.causality.as_str(),
            variable.variability.as_str(),
        )?;
        if let Some(initial) = variable.initial {
            write!(xml, r#" initial="{}""#, initial.as_str())?;
        }
        writeln!(xml, ">")?;
        match variable.start {
            None if variable.value_type == ValueType::String => match variable.text {
                Some(text) => writeln!(xml, r#"      <String start="{}"/>"#, escape(text))?,
                None => writeln!(xml, "      <String/>")?,
            },
            Some(start) if variable.value_type == ValueType::Boolean => {
                writeln!(xml, r#"      <Boolean start="{}"/>"#, start != 0.0)?
            }
            Some(start) => match variable.max {
                Some(max) => writeln!(
                    xml,
                    r#"      <{} start="{start}" max="{max}"/>"#,
                    variable.value_type.as_str()
                )?,
                None => writeln!(
                    xml,
                    r#"      <{} start="{start}"/>"#,
                    variable.value_type.as_str()
                )?,
            },
            None => writeln!(xml, "      <{}/>", variable.value_type.as_str())?,
        }
        writeln!(xml, "    </ScalarVariable>")?;
    }
    writeln!(xml, "  </ModelVariables>")?;

    // Unknowns are 1-based indices into ModelVariables.
    let indices = |keep: fn(&crate::model::Variable) -> bool| -> Vec<usize> {
        let variables = model.variables().iter().enumerate();
        variables
            .filter(|(_, variable)| keep(variable))
            .map(|(index, _)| index + 1)
            .collect()
    };
    let outputs = indices(|variable| variable.causality == Causality::Output);
    let initial_unknowns = indices(|variable| {
        variable.causality == Causality::Output && variable.initial == Some(Initial::Calculated)
    });
    writeln!(xml, "  <ModelStructure>")?;
    for (element, list) in [
        ("Outputs", &outputs),
        ("InitialUnknowns", &initial_unknowns),
    ] {
        if list.is_empty() {
            continue;
        }
        writeln!(xml, "    <{element}>")?;
        for index in list {
            writeln!(xml, r#"      <Unknown index="{index}"/>"#)?;
        }
        writeln!(xml, "    </{element}>")?;
    }
    writeln!(xml, "  </ModelStructure>")?;
    writeln!(xml, "</fmiModelDescription>")
}

/// `text` escaped for an XML attribute value in double quotes.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// `time` as an ISO 8601 UTC timestamp with second precision, e.g. `2024-05-01T12:00:00Z`.
fn utc_timestamp(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_iso_8601_utc() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723);
        assert_eq!(utc_timestamp(leap_day), "2000-02-29T01:02:03Z");
        let later = UNIX_EPOCH + Duration::from_secs(1_735_689_599);
        assert_eq!(utc_timestamp(later), "2024-12-31T23:59:59Z");
    }

    #[test]
    fn profile_dir_strips_deps_and_examples() {
        let test = Path::new("/w/target/debug/deps/fmus-0123abcd");
        assert_eq!(profile_dir(test), Some(PathBuf::from("/w/target/debug")));
        let binary = Path::new("/w/target/release/fedtwin");
        assert_eq!(
            profile_dir(binary),
            Some(PathBuf::from("/w/target/release"))
        );
        let example = Path::new("/w/target/debug/examples/demo");
        assert_eq!(profile_dir(example), Some(PathBuf::from("/w/target/debug")));
    }

    #[test]
    fn descriptions_are_well_formed_and_complete() {
        for model in TestModel::ALL {
            let xml = model_description(model);
            let document = roxmltree::Document::parse(&xml).expect("well-formed XML");
            let root = document.root_element();
            assert_eq!(root.tag_name().name(), "fmiModelDescription");
            assert_eq!(root.attribute("fmiVersion"), Some("2.0"));
            assert_eq!(root.attribute("guid"), Some(model.guid()));
            assert_eq!(root.attribute("modelName"), Some(model.name()));

            let variables: Vec<_> = root
                .descendants()
                .filter(|node| node.has_tag_name("ScalarVariable"))
                .collect();
            assert_eq!(variables.len(), model.variables().len());
            for (node, variable) in variables.iter().zip(model.variables()) {
                assert_eq!(node.attribute("name"), Some(variable.name));
                let reference = variable.value_reference.to_string();
                assert_eq!(node.attribute("valueReference"), Some(reference.as_str()));
            }
            let outputs = root.descendants().find(|node| node.has_tag_name("Outputs"));
            assert!(outputs.is_some(), "{model} declares its outputs");
        }
    }

    #[test]
    fn escape_handles_markup() {
        assert_eq!(escape(r#"a<b & "c">"#), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
