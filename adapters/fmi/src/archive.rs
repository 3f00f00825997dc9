//! Unpacking an `.fmu` (a zip archive) into a private temporary directory.
//!
//! Every entry's path is checked before anything is written: an absolute path, a drive letter or
//! a `..` component is refused (zip slip), as is a symbolic link that points out of the archive.
//! Backslashes, which some Windows zip tools write as separators, are read as `/`.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use zip::ZipArchive;

use crate::error::FmiError;

/// Name of the description at the archive's root.
pub(crate) const MODEL_DESCRIPTION: &str = "modelDescription.xml";

/// An unpacked archive; the directory is removed on drop.
#[derive(Debug)]
pub(crate) struct ExtractedArchive {
    dir: PathBuf,
}

impl ExtractedArchive {
    /// Unpacks `archive` into a new directory under [`std::env::temp_dir`].
    pub(crate) fn unpack(archive: &Path) -> Result<Self, FmiError> {
        let file = File::open(archive).map_err(|source| FmiError::Io {
            action: "open the FMU",
            path: archive.to_owned(),
            source,
        })?;
        let mut zip =
            ZipArchive::new(BufReader::new(file)).map_err(|source| FmiError::MalformedArchive {
                path: archive.to_owned(),
                source,
            })?;

        // Check every name before writing anything.
        let mut entries = Vec::with_capacity(zip.len());
        for index in 0..zip.len() {
            let name = zip.name_for_index(index).unwrap_or_default();
            let Some(relative) = enclosed_path(name) else {
                return Err(FmiError::UnsafeEntry {
                    archive: archive.to_owned(),
                    entry: name.to_owned(),
                });
            };
            entries.push((index, relative));
        }
        if !entries
            .iter()
            .any(|(_, path)| path == Path::new(MODEL_DESCRIPTION))
        {
            return Err(FmiError::MissingModelDescription {
                archive: archive.to_owned(),
            });
        }

        let extracted = Self {
            dir: create_private_dir()?,
        };
        let mut links = Vec::new();
        for (index, relative) in entries {
            if extracted.write_entry(&mut zip, archive, index, &relative)? {
                links.push(relative);
            }
        }
        // Each link's target was checked as written, but a chain of links can still lead out
        // (`a/l -> ..` and `a/l/../..` written as `a/m -> l/../..`): resolve each now.
        extracted.check_links(archive, &links)?;
        tracing::debug!(
            archive = %archive.display(),
            dir = %extracted.dir.display(),
            "unpacked FMU"
        );
        Ok(extracted)
    }

    /// The directory the archive was unpacked into.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes one entry; `true` when it is a symbolic link.
    fn write_entry<R: Read + io::Seek>(
        &self,
        zip: &mut ZipArchive<R>,
        archive: &Path,
        index: usize,
        relative: &Path,
    ) -> Result<bool, FmiError> {
        let malformed = |source| FmiError::MalformedArchive {
            path: archive.to_owned(),
            source,
        };
        let mut entry = zip.by_index(index).map_err(malformed)?;
        // Nothing is written through a link an earlier entry made: a folder that is a link
        // may lead anywhere.
        let mut prefix = self.dir.clone();
        for part in relative.components() {
            prefix.push(part);
            if fs::symlink_metadata(&prefix).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(FmiError::UnsafeEntry {
                    archive: archive.to_owned(),
                    entry: format!("{} (it goes through a symbolic link)", entry.name()),
                });
            }
        }
        let target = self.dir.join(relative);
        if entry.is_dir() {
            create_dir_all(&target)?;
            return Ok(false);
        }
        if let Some(parent) = target.parent() {
            create_dir_all(parent)?;
        }

        if entry.is_symlink() {
            let mut link = String::new();
            entry
                .read_to_string(&mut link)
                .map_err(|e| malformed(e.into()))?;
            let parent = relative.parent().unwrap_or(Path::new(""));
            if !link_stays_inside(parent, &link) {
                return Err(FmiError::UnsafeEntry {
                    archive: archive.to_owned(),
                    entry: format!("{} -> {link}", entry.name()),
                });
            }
            write_link(&link, &target)?;
            return Ok(true);
        }

        let mut out =
            File::create(&target).map_err(|source| io_error("create", &target, source))?;
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let n = entry.read(&mut buffer).map_err(|e| malformed(e.into()))?;
            if n == 0 {
                break;
            }
            out.write_all(&buffer[..n])
                .map_err(|source| io_error("write", &target, source))?;
        }
        Ok(false)
    }

    /// Refuses the archive if a link, followed through any other, leads out of the folder.
    /// A dangling link leads nowhere and is left.
    fn check_links(&self, archive: &Path, links: &[PathBuf]) -> Result<(), FmiError> {
        if links.is_empty() {
            return Ok(());
        }
        let root =
            fs::canonicalize(&self.dir).map_err(|source| io_error("resolve", &self.dir, source))?;
        for link in links {
            if let Ok(resolved) = fs::canonicalize(self.dir.join(link))
                && !resolved.starts_with(&root)
            {
                return Err(FmiError::UnsafeEntry {
                    archive: archive.to_owned(),
                    entry: format!(
                        "{} (a symbolic link that leads to {})",
                        link.display(),
                        resolved.display()
                    ),
                });
            }
        }
        Ok(())
    }
}

impl Drop for ExtractedArchive {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_dir_all(&self.dir) {
            tracing::debug!(dir = %self.dir.display(), %error, "could not remove unpacked FMU");
        }
    }
}

/// The entry name as a relative path that stays inside the extraction directory, or `None` when
/// it is absolute, has a drive letter or a `..` component, or a NUL byte.
fn enclosed_path(name: &str) -> Option<PathBuf> {
    if name.contains('\0') || name.starts_with(['/', '\\']) {
        return None;
    }
    let mut path = PathBuf::new();
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return None,
            // A drive letter or an alternate data stream (`C:`, `x:y`) means nothing inside an
            // archive and something dangerous on Windows.
            _ if part.contains(':') => return None,
            _ => path.push(part),
        }
    }
    Some(path)
}

/// Whether a symbolic link at `parent/<entry>` pointing to `link` stays inside the directory.
fn link_stays_inside(parent: &Path, link: &str) -> bool {
    if link.contains('\0') || link.starts_with(['/', '\\']) || link.contains(':') {
        return false;
    }
    let mut depth = parent.components().count();
    for part in link.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." if depth == 0 => return false,
            ".." => depth -= 1,
            _ => depth += 1,
        }
    }
    true
}

fn create_private_dir() -> Result<PathBuf, FmiError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let base = std::env::temp_dir();
    SWEPT.call_once(|| sweep_leftovers(&base));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut attempt = 0;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("fedtwin-fmu-{}-{n}-{nanos:x}", std::process::id()));
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&dir) {
            Ok(()) => return Ok(dir),
            // Left over by a process that had the same id; take the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(source) => return Err(io_error("create the directory", &dir, source)),
        }
    }
}

/// Removes the unpacked FMUs of processes that are gone: a process killed (SIGKILL, Ctrl-C
/// without a handler) never runs the `Drop` that removes its folder. Only folders named by
/// this crate whose process id no longer runs are touched; on systems without `/proc`,
/// nothing is.
fn sweep_leftovers(base: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("fedtwin-fmu-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        match fs::remove_dir_all(entry.path()) {
            Ok(()) => {
                tracing::debug!(dir = %entry.path().display(), "removed an unpacked FMU left by a process that is gone")
            }
            // Another user's, or already gone: not ours to insist on.
            Err(error) => {
                tracing::debug!(%error, dir = %entry.path().display(), "left an old unpacked FMU")
            }
        }
    }
}

fn create_dir_all(dir: &Path) -> Result<(), FmiError> {
    fs::create_dir_all(dir).map_err(|source| io_error("create the directory", dir, source))
}

#[cfg(unix)]
fn write_link(link: &str, target: &Path) -> Result<(), FmiError> {
    std::os::unix::fs::symlink(link, target)
        .map_err(|source| io_error("create the link", target, source))
}

#[cfg(not(unix))]
fn write_link(link: &str, target: &Path) -> Result<(), FmiError> {
    // Without symbolic links, write the link's text as zip tools do on such systems.
    fs::write(target, link).map_err(|source| io_error("write", target, source))
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> FmiError {
    FmiError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        assert_eq!(enclosed_path("a/b.txt"), Some(PathBuf::from("a/b.txt")));
        assert_eq!(
            enclosed_path("./modelDescription.xml"),
            Some(PathBuf::from(MODEL_DESCRIPTION))
        );
        assert_eq!(
            enclosed_path("binaries\\win64\\m.dll"),
            Some(["binaries", "win64", "m.dll"].iter().collect())
        );
        assert_eq!(
            enclosed_path("resources/"),
            Some(PathBuf::from("resources"))
        );
        for bad in [
            "../evil",
            "a/../../evil",
            "/etc/passwd",
            "\\x",
            "C:/x",
            "a\\..\\..\\b",
            "a\0b",
        ] {
            assert_eq!(enclosed_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn link_targets() {
        let parent = Path::new("binaries/linux64");
        assert!(link_stays_inside(parent, "libm.so.1"));
        assert!(link_stays_inside(parent, "../../resources/x"));
        assert!(!link_stays_inside(parent, "../../../x"));
        assert!(!link_stays_inside(parent, "/lib/libc.so.6"));
    }

    #[test]
    fn private_dirs_are_unique_and_removed() {
        let a = ExtractedArchive {
            dir: create_private_dir().unwrap(),
        };
        let b = ExtractedArchive {
            dir: create_private_dir().unwrap(),
        };
        assert_ne!(a.path(), b.path());
        let path = a.path().to_owned();
        assert!(path.is_dir());
        drop(a);
        assert!(!path.exists());
    }
}
