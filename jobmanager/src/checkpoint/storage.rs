//! The checkpoint storage layout, on a shared directory or in object storage (a
//! [`Location`]):
//!
//! ```text
//! <root>/<job id>/_coordinator        the jobmanager that owns the job's checkpoints (fence)
//! <root>/<job id>/chk-<n>/_metadata   a completed checkpoint (written once, never changed)
//! <root>/<job id>/chk-<n>/<op>/...    files private to checkpoint n
//! <root>/<job id>/shared/...          files several checkpoints reference (incremental)
//! <savepoint>/_metadata               a self-contained savepoint
//! ```
//!
//! `_metadata` is created only if it does not exist yet ([`Location::put_new`]: a hard
//! link on a directory, a conditional PUT on S3): a checkpoint is completed at most once,
//! and a stale jobmanager cannot replace one. It starts with a magic number and a
//! checksum, so a truncated or damaged file is detected on restore.

use std::collections::BTreeSet;

use prost::Message;
use sluice_proto::{CheckpointMetadata, StateFile};
use sluice_storage::Location;

const MAGIC: &[u8; 8] = b"SLUICECP";
const VERSION: u32 = 1;
/// Name of a checkpoint's metadata file.
pub const METADATA: &str = "_metadata";
const FENCE: &str = "_coordinator";

/// Why a checkpoint cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The storage refused or failed an operation.
    #[error(transparent)]
    Storage(#[from] sluice_storage::StorageError),
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

/// Claims `job_dir` for coordinator `me`: later writes by another coordinator are refused.
pub fn claim(job_dir: &Location, me: &str) -> Result<(), StorageError> {
    Ok(job_dir.join(FENCE).put(me.as_bytes().to_vec())?)
}

fn check_fence(job_dir: &Location, me: &str) -> Result<(), StorageError> {
    let owner = job_dir.join(FENCE).read()?;
    let owner = String::from_utf8_lossy(&owner);
    if owner.trim() == me {
        Ok(())
    } else {
        Err(StorageError::Fenced { path: job_dir.to_string(), owner: owner.trim().into(), me: me.into() })
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
    job_dir: &Location,
    dir: &Location,
    metadata: &CheckpointMetadata,
    me: &str,
) -> Result<Location, StorageError> {
    check_fence(job_dir, me)?;
    let target = dir.join(METADATA);
    target.put_new(encode(metadata))?;
    Ok(target)
}

/// The metadata file of a checkpoint given as its directory or its `_metadata` file.
pub fn metadata_path(path: &Location) -> Location {
    if path.file_name().as_deref() == Some(METADATA) {
        path.clone()
    } else {
        path.join(METADATA)
    }
}

/// Reads and checks a checkpoint: its metadata must be intact and every file it references
/// present with its recorded size. Returns the metadata and the location file paths are
/// relative to.
pub fn read_checkpoint(path: &Location) -> Result<(CheckpointMetadata, Location), StorageError> {
    let file = metadata_path(path);
    let dir = file.parent().unwrap_or_else(|| file.clone());
    let corrupt = |reason: String| StorageError::Corrupt { path: dir.to_string(), reason };
    // An object store that fails says nothing about the checkpoint: that error stays a
    // storage error (a recovering jobmanager retries it), everything else makes the
    // checkpoint unusable.
    let classify = |e: sluice_storage::StorageError| match e {
        e @ sluice_storage::StorageError::Object { .. } => StorageError::Storage(e),
        e => corrupt(e.to_string()),
    };
    let bytes = file.read().map_err(classify)?;
    let metadata = decode(&bytes).map_err(corrupt)?;
    let base = dir.parent().unwrap_or_else(|| dir.clone());
    for f in state_files(&metadata) {
        let stored = base.join(&f.path);
        match stored.size() {
            Ok(Some(size)) if size == f.size => {}
            Ok(Some(size)) => return Err(corrupt(format!("'{stored}' has {size} bytes, expected {}", f.size))),
            Ok(None) => return Err(corrupt(format!("'{stored}' is missing"))),
            Err(e) => return Err(classify(e)),
        }
    }
    Ok((metadata, base))
}

/// Deletes checkpoint `id`'s own directory and the shared files in `unreferenced`.
pub fn discard(job_dir: &Location, id: u64, unreferenced: &BTreeSet<String>) {
    let checkpoint = job_dir.join(&format!("chk-{id}"));
    if let Err(e) = checkpoint.delete_all() {
        tracing::warn!(error = %e, "cannot delete checkpoint {id}");
    }
    for path in unreferenced {
        if let Err(e) = job_dir.join(path).delete() {
            tracing::warn!(error = %e, "cannot delete a file checkpoint {id} no longer shares");
        }
    }
}

/// Copies checkpoint `metadata` (files relative to `base`) into `target` as a
/// self-contained savepoint, and returns its location.
pub fn write_savepoint(
    base: &Location,
    metadata: &CheckpointMetadata,
    target: &Location,
) -> Result<Location, StorageError> {
    let files_dir = target.join("files");
    let mut copy = metadata.clone();
    copy.savepoint = true;
    let name = target.file_name().unwrap_or_default();
    let staging = tempfile::tempdir().map_err(|source| sluice_storage::StorageError::Io {
        action: "create a staging directory for",
        location: target.to_string(),
        source,
    })?;
    for f in state_files_mut(&mut copy) {
        let flat = f.path.replace('/', "_");
        let stored = base.join(&f.path);
        let destination = files_dir.join(&flat);
        match stored.local_path() {
            Some(source) => destination.put_file(source)?,
            None => {
                let local = staging.path().join(&flat);
                stored.fetch(&local, false)?;
                let copied = destination.put_file(&local)?;
                let _ = std::fs::remove_file(&local);
                copied
            }
        };
        f.path = format!("{name}/files/{flat}");
    }
    let fence = format!("savepoint {name}");
    claim(target, &fence)?;
    write_metadata(target, target, &copy, &fence)?;
    Ok(target.clone())
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
        let dir = root.path().join("job");
        let job = Location::local(&dir);
        claim(&job, "jm-a").unwrap();
        std::fs::create_dir_all(dir.join("shared")).unwrap();
        std::fs::write(dir.join("shared/1.sst"), b"12345").unwrap();
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
        let path = path.local_path().unwrap().to_path_buf();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let error = read_checkpoint(&Location::local(&path)).unwrap_err().to_string();
        assert!(error.contains("checksum does not match"), "{error}");
        std::fs::write(&path, encode(&m)).unwrap();
        std::fs::remove_file(dir.join("shared/1.sst")).unwrap();
        let error = read_checkpoint(&Location::local(&path)).unwrap_err().to_string();
        assert!(error.contains("is missing"), "{error}");
    }

    #[test]
    fn a_savepoint_is_self_contained() {
        let root = tempfile::tempdir().unwrap();
        let job = root.path().join("job");
        std::fs::create_dir_all(job.join("shared")).unwrap();
        std::fs::write(job.join("shared/1.sst"), b"abc").unwrap();
        let target = Location::local(root.path().join("savepoints/savepoint-1"));
        let dir = write_savepoint(&Location::local(&job), &metadata(1, &[("shared/1.sst", 3)]), &target).unwrap();
        std::fs::remove_dir_all(&job).unwrap();
        let (read, _) = read_checkpoint(&dir).unwrap();
        assert!(read.savepoint);
    }
}
