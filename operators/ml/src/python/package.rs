//! The `sluice` Python package (`python/sluice` in the repository), embedded in the binary
//! and written once per content to a directory that goes first on the worker's
//! `PYTHONPATH`: a worker always runs the protocol of the binary that started it, whether
//! or not the package is also pip-installed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use xxhash_rust::xxh3::xxh3_64;

/// The package's files: (path under the package root, content).
const FILES: &[(&str, &str)] = &[
    ("sluice/__init__.py", include_str!("../../../../python/sluice/__init__.py")),
    ("sluice/row.py", include_str!("../../../../python/sluice/row.py")),
    ("sluice/predict.py", include_str!("../../../../python/sluice/predict.py")),
    ("sluice/_convert.py", include_str!("../../../../python/sluice/_convert.py")),
    ("sluice/_worker.py", include_str!("../../../../python/sluice/_worker.py")),
    ("sluice/runtimes/__init__.py", include_str!("../../../../python/sluice/runtimes/__init__.py")),
    ("sluice/runtimes/_tensors.py", include_str!("../../../../python/sluice/runtimes/_tensors.py")),
    ("sluice/runtimes/pytorch.py", include_str!("../../../../python/sluice/runtimes/pytorch.py")),
    ("sluice/runtimes/tensorflow.py", include_str!("../../../../python/sluice/runtimes/tensorflow.py")),
];

/// The directory holding the package (written on first use), or why it could not be written.
pub fn package_root() -> Result<&'static Path, String> {
    static ROOT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ROOT.get_or_init(|| write_package(&std::env::temp_dir())).as_ref().map(PathBuf::as_path).map_err(Clone::clone)
}

/// Writes the package under `base` in a directory named by its content hash (once: a
/// complete copy is kept), and returns that directory.
fn write_package(base: &Path) -> Result<PathBuf, String> {
    let hash = FILES
        .iter()
        .fold(0u64, |h, (path, text)| h.rotate_left(7) ^ xxh3_64(path.as_bytes()) ^ xxh3_64(text.as_bytes()));
    let root = base.join(format!("sluice-python-{hash:016x}"));
    if root.join("sluice/_worker.py").is_file() {
        return Ok(root);
    }
    let staging = base.join(format!("sluice-python-{hash:016x}.{}", std::process::id()));
    let fail = |e: std::io::Error| format!("cannot write the sluice Python package under {}: {e}", base.display());
    for (path, text) in FILES {
        let file = staging.join(path);
        std::fs::create_dir_all(file.parent().expect("package files are in a directory")).map_err(fail)?;
        std::fs::write(&file, text).map_err(fail)?;
    }
    // Another process may have published the same content meanwhile: either copy will do.
    if std::fs::rename(&staging, &root).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    if root.join("sluice/_worker.py").is_file() {
        Ok(root)
    } else {
        Err(format!("cannot publish the sluice Python package at {}", root.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_is_written_once_with_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = write_package(dir.path()).unwrap();
        for (path, text) in FILES {
            assert_eq!(std::fs::read_to_string(root.join(path)).unwrap(), *text);
        }
        assert_eq!(write_package(dir.path()).unwrap(), root);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no staging directory is left");
    }

    #[test]
    fn every_module_of_the_package_is_embedded() {
        fn modules(dir: &Path, prefix: &str, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if path.is_dir() && name != "__pycache__" {
                    modules(&path, &format!("{prefix}{name}/"), found);
                } else if name.ends_with(".py") {
                    found.push(format!("{prefix}{name}"));
                }
            }
        }
        let mut found = Vec::new();
        modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/sluice"), "sluice/", &mut found);
        found.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(found, embedded, "python/sluice and FILES differ");
    }
}
