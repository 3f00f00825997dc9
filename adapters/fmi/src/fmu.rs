//! An opened `.fmu`: unpacked, described, and with its binary for this platform located.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::archive::{ExtractedArchive, MODEL_DESCRIPTION};
use crate::error::FmiError;
use crate::model_description::ModelDescription;

/// An FMI 2.0 Co-Simulation FMU, unpacked into a private temporary directory.
///
/// The directory is removed when the last of the `Fmu` (and its clones) and every
/// [`Instance`](crate::Instance) made from it are dropped. Cloning is cheap.
#[derive(Clone)]
pub struct Fmu {
    inner: Arc<Inner>,
}

struct Inner {
    archive: PathBuf,
    description: ModelDescription,
    library: PathBuf,
    /// Set while an instance exists, for FMUs that can be instantiated only once per process.
    instantiated: AtomicBool,
    /// Dropped last: instances keep the `Fmu` (and so the directory) alive.
    extracted: ExtractedArchive,
}

impl Fmu {
    /// Unpacks the FMU at `path`, reads its model description and finds its shared library for
    /// this platform (`binaries/linux64/<modelIdentifier>.so` and the like).
    ///
    /// # Errors
    ///
    /// [`FmiError::Io`] when the file cannot be read or unpacked, [`FmiError::MalformedArchive`]
    /// when it is no zip archive, [`FmiError::UnsafeEntry`] for an entry that would land outside
    /// the directory, [`FmiError::MissingModelDescription`], [`FmiError::ModelDescription`] for
    /// an invalid description, [`FmiError::NoBinary`] when there is no binary for this platform.
    pub fn open(path: &Path) -> Result<Fmu, FmiError> {
        let extracted = ExtractedArchive::unpack(path)?;

        let description_path = extracted.path().join(MODEL_DESCRIPTION);
        let bytes = fs::read(&description_path).map_err(|source| FmiError::Io {
            action: "read",
            path: description_path,
            source,
        })?;
        let description =
            ModelDescription::parse_bytes(&bytes).map_err(|source| FmiError::ModelDescription {
                archive: path.to_owned(),
                source,
            })?;

        let library = locate_binary(
            extracted.path(),
            &description.co_simulation.model_identifier,
        )?;
        tracing::debug!(
            fmu = %path.display(),
            model = %description.model_name,
            tool = description.generation_tool.as_deref().unwrap_or("unknown"),
            "opened FMU"
        );
        Ok(Fmu {
            inner: Arc::new(Inner {
                archive: path.to_owned(),
                description,
                library,
                instantiated: AtomicBool::new(false),
                extracted,
            }),
        })
    }

    /// What the FMU says about itself.
    pub fn description(&self) -> &ModelDescription {
        &self.inner.description
    }

    /// The `.fmu` file this was opened from.
    pub fn archive_path(&self) -> &Path {
        &self.inner.archive
    }

    /// The directory the FMU was unpacked into.
    pub fn directory(&self) -> &Path {
        self.inner.extracted.path()
    }

    /// The shared library for this platform, inside [`directory`](Self::directory).
    pub fn library_path(&self) -> &Path {
        &self.inner.library
    }

    /// The `file://` URI of the FMU's `resources` folder, as `fmi2Instantiate` takes it.
    pub fn resource_location(&self) -> String {
        file_uri(&self.directory().join("resources"))
    }

    /// Claims the right to instantiate, for FMUs that allow one instance per process; `false`
    /// when another instance holds it.
    pub(crate) fn claim_instance(&self) -> bool {
        !self
            .inner
            .description
            .co_simulation
            .can_be_instantiated_only_once_per_process
            || !self.inner.instantiated.swap(true, Ordering::AcqRel)
    }

    /// Gives back what [`claim_instance`](Self::claim_instance) took.
    pub(crate) fn release_instance(&self) {
        if self
            .inner
            .description
            .co_simulation
            .can_be_instantiated_only_once_per_process
        {
            self.inner.instantiated.store(false, Ordering::Release);
        }
    }
}

impl fmt::Debug for Fmu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fmu")
            .field("archive", &self.inner.archive)
            .field("model", &self.inner.description.model_name)
            .field("directory", &self.directory())
            .field("library", &self.inner.library)
            .finish()
    }
}

/// FMI 2.0's name for this platform's binary folder (`linux64`, `darwin64`, `win64`, ...).
///
/// # Errors
///
/// [`FmiError::UnsupportedPlatform`] on an operating system FMI 2.0 has no folder for.
pub fn platform() -> Result<&'static str, FmiError> {
    let bits = usize::BITS;
    let name = match (std::env::consts::OS, bits) {
        ("linux", 64) => "linux64",
        ("linux", 32) => "linux32",
        ("macos", 64) => "darwin64",
        ("macos", 32) => "darwin32",
        ("windows", 64) => "win64",
        ("windows", 32) => "win32",
        (os, bits) => return Err(FmiError::UnsupportedPlatform { os, bits }),
    };
    Ok(name)
}

fn locate_binary(dir: &Path, model_identifier: &str) -> Result<PathBuf, FmiError> {
    let platform = platform()?;
    let file = format!("{model_identifier}{}", std::env::consts::DLL_SUFFIX);
    let library = dir.join("binaries").join(platform).join(&file);
    if library.is_file() {
        return Ok(library);
    }

    let mut available: Vec<String> = fs::read_dir(dir.join("binaries"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    available.sort();
    Err(FmiError::NoBinary {
        platform: platform.to_owned(),
        expected_path: format!("binaries/{platform}/{file}"),
        available,
    })
}

/// An absolute path as a `file://` URI: `/tmp/a b` becomes `file:///tmp/a%20b`, `C:\x` becomes
/// `file:///C:/x`.
fn file_uri(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    let mut uri = String::from("file://");
    if !text.starts_with('/') {
        uri.push('/');
    }
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"/-._~:".contains(&byte);
        if keep {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris() {
        assert_eq!(
            file_uri(Path::new("/tmp/x/resources")),
            "file:///tmp/x/resources"
        );
        assert_eq!(
            file_uri(Path::new("/tmp/a b/ü")),
            "file:///tmp/a%20b/%C3%BC"
        );
        assert_eq!(file_uri(Path::new("C:\\Temp\\fmu")), "file:///C:/Temp/fmu");
    }

    #[test]
    fn this_platform_has_a_name() {
        let name = platform().unwrap();
        assert!(
            [
                "linux64", "linux32", "darwin64", "darwin32", "win64", "win32"
            ]
            .contains(&name)
        );
    }
}
