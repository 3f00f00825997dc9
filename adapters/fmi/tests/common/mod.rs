//! Helpers shared by the FMI crate's test binaries: a scratch folder and the test FMUs packed
//! into it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use fedtwin_test_fmus::TestModel;

/// A directory for this test process's archives under Cargo's scratch space for integration
/// tests (`name` tells the binaries apart). Each process gets its own, so that runners which
/// start one process per test (cargo nextest) do not empty a folder another is reading;
/// folders of earlier runs, untouched for an hour, are removed so that runs do not pile up.
pub(crate) fn scratch(name: &str) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for entry in entries.flatten() {
                let stale = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|modified| modified.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(3600));
                if stale {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = parent.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// `model` packed into an `.fmu` in `dir`, once per test binary: every `Fmu::open` unpacks its
/// own copy, so tests that share the archive still get separate libraries.
pub(crate) fn packed(model: TestModel, dir: &Path) -> PathBuf {
    static PACKED: Mutex<BTreeMap<&'static str, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut packed = PACKED.lock().unwrap_or_else(PoisonError::into_inner);
    packed
        .entry(model.name())
        .or_insert_with(|| fedtwin_test_fmus::pack(model, dir).unwrap())
        .clone()
}
