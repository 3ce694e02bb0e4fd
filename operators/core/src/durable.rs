//! Durable file publication: what checkpoints, savepoints and two-phase-commit sinks need
//! so that a file they published survives a crash of the machine, not only of the process.
//! A rename or hard link is durable only once its directory is synced; a copy only once
//! the copy itself is synced. Copies carry an xxh3 checksum of their content, which a
//! restore checks.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// Syncs directory `dir`, so that entries just renamed or linked into it are durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Syncs the directory that holds `path`.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => sync_dir(Path::new(".")),
    }
}

/// Copies `source` to `target` (created or truncated), syncs the copy, and returns its
/// size and the xxh3-64 checksum of its content. The directory is not synced.
pub fn copy_synced(source: &Path, target: &Path) -> std::io::Result<(u64, u64)> {
    let mut input = File::open(source)?;
    let mut output = File::create(target)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        output.write_all(&buffer[..n])?;
        size += n as u64;
    }
    output.sync_all()?;
    Ok((size, hasher.digest()))
}

/// The xxh3-64 checksum of the content of `path`.
pub fn checksum(path: &Path) -> std::io::Result<u64> {
    let mut input = File::open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.digest());
        }
        hasher.update(&buffer[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synced_copy_reports_the_checksum_of_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("a");
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&source, &content).unwrap();
        let (size, sum) = copy_synced(&source, &dir.path().join("b")).unwrap();
        assert_eq!(size, content.len() as u64);
        assert_eq!(sum, xxhash_rust::xxh3::xxh3_64(&content), "the streamed checksum equals the one-shot one");
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), content);
        assert_eq!(checksum(&dir.path().join("b")).unwrap(), sum);
        sync_parent(&source).unwrap();
    }
}
