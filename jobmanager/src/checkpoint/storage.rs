//! Checkpoint storage on a shared directory:
//!
//! ```text
//! <dir>/<job id>/_coordinator        the jobmanager that owns the job's checkpoints (fence)
//! <dir>/<job id>/chk-<n>/_metadata   a completed checkpoint (written once, never changed)
//! <dir>/<job id>/chk-<n>/<op>/...    files private to checkpoint n
//! <dir>/<job id>/shared/...          files several checkpoints reference (incremental)
//! <savepoint dir>/_metadata          a self-contained savepoint
//! ```
//!
//! `_metadata` is written to a temporary file, synced, then hard-linked into place, which
//! fails if it exists: a checkpoint is completed at most once. It starts with a magic
//! number and a checksum, so a truncated or damaged file is detected on restore.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;
use sluice_core::durable;
use sluice_proto::{CheckpointMetadata, StateFile};

const MAGIC: &[u8; 8] = b"SLUICECP";
const VERSION: u32 = 1;
/// Name of a checkpoint's metadata file.
pub const METADATA: &str = "_metadata";
const FENCE: &str = "_coordinator";

/// Why a checkpoint cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed.
    #[error("cannot {action} '{path}': {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The metadata is damaged or a file it references is missing.
    #[error("checkpoint '{path}' is unusable: {reason}")]
    Corrupt {
        /// The checkpoint directory.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Another jobmanager took over the job's checkpoints.
    #[error("checkpoint storage '{path}' now belongs to coordinator '{owner}', not '{me}': this jobmanager is stale")]
    Fenced {
        /// The job directory.
        path: String,
        /// Who owns it.
        owner: String,
        /// This coordinator.
        me: String,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::Io { action, path: path.display().to_string(), source }
}

/// Claims `job_dir` for coordinator `me`: later writes by another coordinator are refused.
pub fn claim(job_dir: &Path, me: &str) -> Result<(), StorageError> {
    std::fs::create_dir_all(job_dir).map_err(io("create", job_dir))?;
    let temp = job_dir.join(format!("{FENCE}.{}.tmp", std::process::id()));
    std::fs::write(&temp, me).map_err(io("write", &temp))?;
    std::fs::rename(&temp, job_dir.join(FENCE)).map_err(io("write", job_dir))
}

fn check_fence(job_dir: &Path, me: &str) -> Result<(), StorageError> {
    match std::fs::read_to_string(job_dir.join(FENCE)) {
        Ok(owner) if owner.trim() == me => Ok(()),
        Ok(owner) => {
            Err(StorageError::Fenced { path: job_dir.display().to_string(), owner: owner.trim().into(), me: me.into() })
        }
        Err(e) => Err(io("read", &job_dir.join(FENCE))(e)),
    }
}

/// Encodes metadata with its header: magic, version, length, checksum.
pub fn encode(metadata: &CheckpointMetadata) -> Vec<u8> {
    let body = metadata.encode_to_vec();
    let mut out = Vec::with_capacity(body.len() + 28);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes metadata written by [`encode`]; the error says what is wrong.
pub fn decode(bytes: &[u8]) -> Result<CheckpointMetadata, String> {
    if bytes.len() < 28 || &bytes[..8] != MAGIC {
        return Err("the metadata file is not a Sluice checkpoint (bad header)".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!("metadata version {version} is not supported (expected {VERSION})"));
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")) as usize;
    let checksum = u64::from_le_bytes(bytes[20..28].try_into().expect("8 bytes"));
    let body = &bytes[28..];
    if body.len() != len {
        return Err(format!("the metadata file is truncated ({} of {len} bytes)", body.len()));
    }
    if xxhash_rust::xxh3::xxh3_64(body) != checksum {
        return Err("the metadata checksum does not match: the file is damaged".into());
    }
    CheckpointMetadata::decode(body).map_err(|e| format!("the metadata cannot be decoded: {e}"))
}

/// Every file a checkpoint's state refers to: keyed state files and operator list files.
fn state_files(metadata: &CheckpointMetadata) -> impl Iterator<Item = &StateFile> {
    metadata
        .vertices
        .iter()
        .flat_map(|v| &v.subtasks)
        .flat_map(|t| &t.operators)
        .flat_map(|o| o.keyed.iter().flat_map(|k| &k.files).chain(o.lists.iter().filter_map(|l| l.file.as_ref())))
}

/// [`state_files`], to rewrite their paths.
fn state_files_mut(metadata: &mut CheckpointMetadata) -> impl Iterator<Item = &mut StateFile> {
    metadata.vertices.iter_mut().flat_map(|v| &mut v.subtasks).flat_map(|t| &mut t.operators).flat_map(|o| {
        o.keyed.iter_mut().flat_map(|k| &mut k.files).chain(o.lists.iter_mut().filter_map(|l| l.file.as_mut()))
    })
}

/// Every file a checkpoint references, relative to the directory holding its directory.
pub fn referenced_files(metadata: &CheckpointMetadata) -> BTreeSet<String> {
    state_files(metadata).map(|f| f.path.clone()).collect()
}

/// Writes `metadata` as `dir/_metadata`, once; `job_dir` holds the fence of coordinator `me`.
pub fn write_metadata(
    job_dir: &Path,
    dir: &Path,
    metadata: &CheckpointMetadata,
    me: &str,
) -> Result<PathBuf, StorageError> {
    check_fence(job_dir, me)?;
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let target = dir.join(METADATA);
    let temp = dir.join(format!("{METADATA}.tmp"));
    let mut file = std::fs::File::create(&temp).map_err(io("create", &temp))?;
    file.write_all(&encode(metadata)).map_err(io("write", &temp))?;
    file.sync_all().map_err(io("sync", &temp))?;
    // A hard link fails if the target exists: no checkpoint is completed twice.
    std::fs::hard_link(&temp, &target).map_err(io("publish", &target))?;
    let _ = std::fs::remove_file(&temp);
    // The checkpoint is complete only once its directory entry is durable.
    durable::sync_dir(dir).map_err(io("sync", dir))?;
    Ok(target)
}

/// The metadata file of a checkpoint given as its directory or its `_metadata` file.
pub fn metadata_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(METADATA)
    } else {
        path.to_path_buf()
    }
}

/// Reads and checks a checkpoint: its metadata must be intact and every file it references
/// present with its recorded size. Returns the metadata and the directory file paths are
/// relative to.
pub fn read_checkpoint(path: &Path) -> Result<(CheckpointMetadata, PathBuf), StorageError> {
    let file = metadata_path(path);
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let corrupt = |reason: String| StorageError::Corrupt { path: dir.display().to_string(), reason };
    let bytes = std::fs::read(&file).map_err(|e| corrupt(format!("cannot read '{}': {e}", file.display())))?;
    let metadata = decode(&bytes).map_err(corrupt)?;
    let base = dir.parent().map(Path::to_path_buf).unwrap_or_default();
    for f in state_files(&metadata) {
        let p = base.join(&f.path);
        match std::fs::metadata(&p) {
            Ok(m) if m.len() == f.size => {}
            Ok(m) => return Err(corrupt(format!("'{}' has {} bytes, expected {}", p.display(), m.len(), f.size))),
            Err(e) => return Err(corrupt(format!("'{}' is missing: {e}", p.display()))),
        }
    }
    Ok((metadata, base))
}

/// Deletes checkpoint `id`'s own directory and the shared files in `unreferenced`.
pub fn discard(job_dir: &Path, id: u64, unreferenced: &BTreeSet<String>) {
    let _ = std::fs::remove_dir_all(job_dir.join(format!("chk-{id}")));
    for path in unreferenced {
        let _ = std::fs::remove_file(job_dir.join(path));
    }
}

/// Copies checkpoint `metadata` (files relative to `base`) into `target` as a
/// self-contained savepoint, and returns its directory.
pub fn write_savepoint(base: &Path, metadata: &CheckpointMetadata, target: &Path) -> Result<PathBuf, StorageError> {
    let files_dir = target.join("files");
    std::fs::create_dir_all(&files_dir).map_err(io("create", &files_dir))?;
    let mut copy = metadata.clone();
    copy.savepoint = true;
    let name = target.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    for f in state_files_mut(&mut copy) {
        let flat = f.path.replace('/', "_");
        let destination = files_dir.join(&flat);
        durable::copy_synced(&base.join(&f.path), &destination).map_err(io("copy", &destination))?;
        f.path = format!("{name}/files/{flat}");
    }
    durable::sync_dir(&files_dir).map_err(io("sync", &files_dir))?;
    let fence = format!("savepoint {name}");
    claim(target, &fence)?;
    write_metadata(target, target, &copy, &fence)?;
    Ok(target.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::{KeyedStateHandle, OperatorSnapshot, StateFile, TaskSnapshot, VertexSnapshot};

    fn metadata(id: u64, files: &[(&str, u64)]) -> CheckpointMetadata {
        CheckpointMetadata {
            job_id: "j".into(),
            checkpoint_id: id,
            vertices: vec![VertexSnapshot {
                vertex_id: 0,
                parallelism: 1,
                operator_uids: vec!["0-agg".into()],
                subtasks: vec![TaskSnapshot {
                    operators: vec![OperatorSnapshot {
                        uid: "0-agg".into(),
                        keyed: Some(KeyedStateHandle {
                            key_group_start: 0,
                            key_group_end: 128,
                            max_parallelism: 128,
                            files: files
                                .iter()
                                .map(|(p, s)| StateFile {
                                    name: p.rsplit('/').next().unwrap().into(),
                                    path: p.to_string(),
                                    size: *s,
                                    checksum: 0,
                                })
                                .collect(),
                        }),
                        ..Default::default()
                    }],
                }],
            }],
            ..Default::default()
        }
    }

    #[test]
    fn metadata_is_written_once_and_damage_is_detected() {
        let root = tempfile::tempdir().unwrap();
        let job = root.path().join("job");
        claim(&job, "jm-a").unwrap();
        std::fs::create_dir_all(job.join("shared")).unwrap();
        std::fs::write(job.join("shared/1.sst"), b"12345").unwrap();
        let m = metadata(1, &[("shared/1.sst", 5)]);
        let path = write_metadata(&job, &job.join("chk-1"), &m, "jm-a").unwrap();
        assert!(write_metadata(&job, &job.join("chk-1"), &m, "jm-a").is_err(), "a checkpoint completes once");
        let (read, base) = read_checkpoint(&job.join("chk-1")).unwrap();
        assert_eq!((read, base), (m.clone(), job.clone()));

        // A stale coordinator cannot write once another one claimed the job.
        claim(&job, "jm-b").unwrap();
        let fenced = write_metadata(&job, &job.join("chk-2"), &metadata(2, &[]), "jm-a").unwrap_err();
        assert!(fenced.to_string().contains("stale"), "{fenced}");

        // A damaged metadata file, or a missing state file, makes the checkpoint unusable.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let error = read_checkpoint(&path).unwrap_err().to_string();
        assert!(error.contains("checksum does not match"), "{error}");
        std::fs::write(&path, encode(&m)).unwrap();
        std::fs::remove_file(job.join("shared/1.sst")).unwrap();
        let error = read_checkpoint(&path).unwrap_err().to_string();
        assert!(error.contains("is missing"), "{error}");
    }

    #[test]
    fn a_savepoint_is_self_contained() {
        let root = tempfile::tempdir().unwrap();
        let job = root.path().join("job");
        std::fs::create_dir_all(job.join("shared")).unwrap();
        std::fs::write(job.join("shared/1.sst"), b"abc").unwrap();
        let target = root.path().join("savepoints/savepoint-1");
        let dir = write_savepoint(&job, &metadata(1, &[("shared/1.sst", 3)]), &target).unwrap();
        std::fs::remove_dir_all(&job).unwrap();
        let (read, _) = read_checkpoint(&dir).unwrap();
        assert!(read.savepoint);
    }
}
