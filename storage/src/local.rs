//! Checkpoint storage on a directory: files are written under a temporary name, synced,
//! and renamed (or hard-linked, to create only) into place, and their directory is synced.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_core::durable;

use crate::{Result, StorageError};

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::Io { action, location: path.display().to_string(), source }
}

/// A temporary name beside `path`, unique within this machine.
fn temporary(path: &Path) -> std::path::PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let unique = format!(".{name}.{}.{}.tmp", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    path.with_file_name(unique)
}

fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent).map_err(io("create", parent)),
        _ => Ok(()),
    }
}

pub(crate) fn put_file(source: &Path, target: &Path) -> Result<(u64, u64)> {
    create_parent(target)?;
    let temp = temporary(target);
    let copied = durable::copy_synced(source, &temp).map_err(io("copy state to", &temp));
    let published = copied.and_then(|copied| {
        std::fs::rename(&temp, target).map_err(io("publish", target))?;
        durable::sync_parent(target).map_err(io("sync the directory of", target))?;
        Ok(copied)
    });
    if published.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    published
}

pub(crate) fn put(target: &Path, bytes: &[u8], create_only: bool) -> Result<()> {
    use std::io::Write;
    create_parent(target)?;
    let temp = temporary(target);
    let written = (|| {
        let mut file = std::fs::File::create(&temp).map_err(io("create", &temp))?;
        file.write_all(bytes).map_err(io("write", &temp))?;
        file.sync_all().map_err(io("sync", &temp))?;
        if create_only {
            // A hard link fails if the target exists: what is there is never replaced.
            std::fs::hard_link(&temp, target).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    StorageError::AlreadyExists { location: target.display().to_string() }
                }
                _ => io("publish", target)(e),
            })?;
        } else {
            std::fs::rename(&temp, target).map_err(io("publish", target))?;
        }
        durable::sync_parent(target).map_err(io("sync the directory of", target))
    })();
    let _ = std::fs::remove_file(&temp);
    written
}

fn not_found_or<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |e| match e.kind() {
        std::io::ErrorKind::NotFound => StorageError::NotFound { location: path.display().to_string() },
        _ => io(action, path)(e),
    }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(not_found_or("read", path))
}

pub(crate) fn size(path: &Path) -> Result<Option<u64>> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", path)(e)),
    }
}

pub(crate) fn fetch(source: &Path, target: &Path, immutable: bool) -> Result<(u64, u64)> {
    create_parent(target)?;
    let _ = std::fs::remove_file(target);
    // Immutable files (SST) are hard-linked when the storage is on the same file system.
    if immutable && std::fs::hard_link(source, target).is_ok() {
        let size = std::fs::metadata(target).map_err(io("read", target))?.len();
        let checksum = durable::checksum(target).map_err(io("read", source))?;
        return Ok((size, checksum));
    }
    durable::copy_synced(source, target).map_err(not_found_or("copy", source))
}

pub(crate) fn delete(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("delete", path)(e)),
        _ => Ok(()),
    }
}

pub(crate) fn delete_all(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("delete", path)(e)),
        _ => Ok(()),
    }
}

pub(crate) fn files(root: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("list", &dir)(e)),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            } else if let Ok(relative) = path.strip_prefix(root) {
                let parts: Vec<String> =
                    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                found.push(parts.join("/"));
            }
        }
    }
    Ok(found)
}

pub(crate) fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    let staged = to.with_extension(format!("copy-{}.tmp", std::process::id()));
    std::fs::copy(from, &staged).map_err(io("copy", from))?;
    std::fs::File::open(&staged).and_then(|f| f.sync_all()).map_err(io("sync", &staged))?;
    std::fs::rename(&staged, to).map_err(io("publish", to))?;
    durable::sync_parent(to).map_err(io("sync", to))
}

pub(crate) fn children(path: &Path) -> Result<Vec<String>> {
    match std::fs::read_dir(path) {
        Ok(entries) => Ok(entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| !(n.starts_with('.') && n.ends_with(".tmp")))
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io("list", path)(e)),
    }
}
