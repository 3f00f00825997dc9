//! Helpers shared by the FMI crate's test binaries: a scratch folder and the test FMUs packed
//! into it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use fedtwin_test_fmus::TestModel;

/// A directory for this test binary's archives under Cargo's scratch space for integration
/// tests (`name` tells the binaries apart), emptied once per run so that runs do not pile up
/// archives.
pub(crate) fn scratch(name: &str) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
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
