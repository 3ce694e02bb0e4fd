//! The RocksDB state backend: one RocksDB instance per stateful operator subtask, holding
//! the operator's keyed state under key-group-prefixed keys.
//!
//! A snapshot has two phases. The synchronous one takes a RocksDB checkpoint (hard links
//! to the immutable SST files, in milliseconds) while the task is paused at the barrier.
//! The asynchronous one copies the checkpoint to the checkpoint storage while the task
//! goes on: SST files go to the job's `shared/` directory once and are referenced by later
//! checkpoints (incremental checkpoints); the small metadata files go to the checkpoint's
//! own directory.
//!
//! A restore at the same key groups copies the stored files back and opens them as they
//! are; a restore at another parallelism reads every overlapping snapshot and keeps the
//! key groups this subtask now owns.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rocksdb::{IteratorMode, Options, WriteBatch, WriteOptions, DB};
use sluice_core::state::tables::is_expired;
use sluice_core::state::{key_group_of, KeyedStateStore, StateWrite};
use sluice_core::{OperatorError, Result};
use sluice_proto::{KeyedStateHandle, StateFile};
use sluice_storage::Location;

fn rocks_error(action: &str, e: rocksdb::Error) -> OperatorError {
    OperatorError::State(format!("RocksDB cannot {action}: {e}"))
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> OperatorError {
    OperatorError::Io { action, path: path.display().to_string(), source }
}

/// A RocksDB instance as a [`KeyedStateStore`].
pub struct RocksStore {
    db: DB,
    write_options: WriteOptions,
}

impl RocksStore {
    fn open(path: &Path) -> Result<Self> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_max_background_jobs(2);
        // Entries whose state TTL passed are dropped when compaction meets them (the
        // expiry is in the value's header, whatever the table).
        options.set_compaction_filter("sluice-state-ttl", |_level: u32, _key: &[u8], value: &[u8]| {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            if is_expired(value, now) {
                rocksdb::CompactionDecision::Remove
            } else {
                rocksdb::CompactionDecision::Keep
            }
        });
        let db = DB::open(&options, path).map_err(|e| rocks_error(&format!("open '{}'", path.display()), e))?;
        // Durability comes from checkpoints; the write-ahead log would only slow writes.
        let mut write_options = WriteOptions::default();
        write_options.disable_wal(true);
        Ok(RocksStore { db, write_options })
    }
}

impl KeyedStateStore for RocksStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get(key).map_err(|e| rocks_error("read state", e))
    }

    fn write(&self, writes: Vec<StateWrite>) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (k, v) in writes {
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        self.db.write_opt(batch, &self.write_options).map_err(|e| rocks_error("write state", e))
    }

    fn scan_from(&self, start: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        for item in self.db.iterator(IteratorMode::From(start, rocksdb::Direction::Forward)) {
            let (k, v) = item.map_err(|e| rocks_error("scan state", e))?;
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }
}

/// Where a job's checkpoints live: `<job dir>/chk-<n>/` per checkpoint and
/// `<job dir>/shared/` for files several checkpoints reference, on a shared directory or
/// in object storage.
#[derive(Debug, Clone)]
pub struct CheckpointStorage {
    /// The job's directory in the checkpoint storage.
    pub job_dir: Location,
}

impl CheckpointStorage {
    /// The directory of checkpoint `id`.
    pub fn checkpoint_dir(&self, id: u64) -> Location {
        self.job_dir.join(&format!("chk-{id}"))
    }

    /// The path of `location` relative to the job's directory, if it is below it.
    fn relative<'a>(&self, location: &'a str) -> Option<&'a str> {
        location.strip_prefix(&self.job_dir.to_string())?.strip_prefix('/')
    }
}

fn storage_error(e: sluice_storage::StorageError) -> OperatorError {
    OperatorError::State(format!("checkpoint storage: {e}"))
}

/// A local RocksDB checkpoint taken in the synchronous phase, to upload.
pub struct LocalSnapshot {
    dir: PathBuf,
    checkpoint_id: u64,
}

/// The keyed state of one operator subtask.
pub struct KeyedBackend {
    store: Arc<RocksStore>,
    dir: PathBuf,
    name: String,
    key_groups: (u32, u32),
    max_parallelism: u32,
    /// SST files already in the shared storage: local name → stored file.
    uploaded: Arc<Mutex<HashMap<String, StateFile>>>,
    instance: String,
}

impl KeyedBackend {
    /// Opens the backend of operator `name` (e.g. "3-keyed_aggregate-1") in `dir`, owning
    /// `key_groups` of `max_parallelism`, restored from `handles` (absolute file paths).
    pub fn open(
        dir: PathBuf,
        name: String,
        key_groups: (u32, u32),
        max_parallelism: u32,
        handles: &[KeyedStateHandle],
        storage: Option<&CheckpointStorage>,
    ) -> Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| io_error("cannot clear", &dir, e))?;
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error("cannot create", parent, e))?;
        }
        let mut uploaded = HashMap::new();
        let exact = matches!(handles, [h] if (h.key_group_start, h.key_group_end) == key_groups && h.max_parallelism == max_parallelism);
        let store = if exact {
            let handle = &handles[0];
            copy_handle(handle, &dir)?;
            // Files already in this job's shared storage stay referenced, not copied again.
            if let Some(storage) = storage {
                for file in &handle.files {
                    if let Some(relative) = storage.relative(&file.path).filter(|r| r.starts_with("shared/")) {
                        let stored = StateFile {
                            name: file.name.clone(),
                            path: relative.to_string(),
                            size: file.size,
                            checksum: file.checksum,
                        };
                        uploaded.insert(file.name.clone(), stored);
                    }
                }
            }
            RocksStore::open(&dir)?
        } else {
            let store = RocksStore::open(&dir)?;
            for (i, handle) in handles.iter().enumerate() {
                if handle.max_parallelism != max_parallelism {
                    return Err(OperatorError::State(format!(
                        "the checkpoint has {} key groups but the job runs with {max_parallelism} \
                         ('pipeline.max-parallelism' must not change across a restore)",
                        handle.max_parallelism
                    )));
                }
                let temp = dir.with_extension(format!("restore-{i}"));
                copy_handle(handle, &temp)?;
                import_key_groups(&temp, &store, key_groups)?;
                let _ = std::fs::remove_dir_all(&temp);
            }
            store
        };
        Ok(KeyedBackend {
            store: Arc::new(store),
            dir,
            name,
            key_groups,
            max_parallelism,
            uploaded: Arc::new(Mutex::new(uploaded)),
            instance: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        })
    }

    /// The store the operator reads and writes.
    pub fn store(&self) -> Arc<dyn KeyedStateStore> {
        self.store.clone()
    }

    /// The synchronous phase: a RocksDB checkpoint of the current state (hard links).
    pub fn snapshot_sync(&self, checkpoint_id: u64) -> Result<LocalSnapshot> {
        let dir = self.dir.with_extension(format!("chk-{checkpoint_id}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| io_error("cannot clear", &dir, e))?;
        }
        let checkpoint =
            rocksdb::checkpoint::Checkpoint::new(&self.store.db).map_err(|e| rocks_error("checkpoint", e))?;
        checkpoint.create_checkpoint(&dir).map_err(|e| rocks_error("create a checkpoint", e))?;
        Ok(LocalSnapshot { dir, checkpoint_id })
    }

    /// The asynchronous phase, run off the task: copies `snapshot` to `storage` and
    /// returns its handle and the bytes copied.
    pub fn upload_fn(
        &self,
        snapshot: LocalSnapshot,
        storage: CheckpointStorage,
    ) -> impl FnOnce() -> Result<(KeyedStateHandle, u64)> + Send + 'static {
        let uploaded = self.uploaded.clone();
        let (name, instance, key_groups, max_parallelism) =
            (self.name.clone(), self.instance.clone(), self.key_groups, self.max_parallelism);
        move || {
            let result = upload(&snapshot, &storage, &name, &instance, &uploaded);
            let _ = std::fs::remove_dir_all(&snapshot.dir);
            let (files, copied) = result?;
            let handle =
                KeyedStateHandle { key_group_start: key_groups.0, key_group_end: key_groups.1, max_parallelism, files };
            Ok((handle, copied))
        }
    }
}

impl Drop for KeyedBackend {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn upload(
    snapshot: &LocalSnapshot,
    storage: &CheckpointStorage,
    name: &str,
    instance: &str,
    uploaded: &Mutex<HashMap<String, StateFile>>,
) -> Result<(Vec<StateFile>, u64)> {
    let private = storage.checkpoint_dir(snapshot.checkpoint_id).join(name);
    let shared = storage.job_dir.join("shared");
    let mut files = Vec::new();
    let mut copied = 0;
    let entries = std::fs::read_dir(&snapshot.dir).map_err(|e| io_error("cannot list", &snapshot.dir, e))?;
    let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
    names.sort();
    for file in names {
        let source = snapshot.dir.join(&file);
        let size = std::fs::metadata(&source).map_err(|e| io_error("cannot read", &source, e))?.len();
        if file.ends_with(".sst") {
            let known = uploaded.lock().unwrap_or_else(|p| p.into_inner()).get(&file).cloned();
            if let Some(stored) = known.filter(|s| s.size == size) {
                files.push(stored);
                continue;
            }
            let target_name = format!("{instance}-{file}");
            let (size, checksum) = shared.join(&target_name).put_file(&source).map_err(storage_error)?;
            copied += size;
            let stored = StateFile { name: file.clone(), path: format!("shared/{target_name}"), size, checksum };
            uploaded.lock().unwrap_or_else(|p| p.into_inner()).insert(file, stored.clone());
            files.push(stored);
        } else {
            let (size, checksum) = private.join(&file).put_file(&source).map_err(storage_error)?;
            copied += size;
            files.push(StateFile {
                name: file.clone(),
                path: format!("chk-{}/{name}/{file}", snapshot.checkpoint_id),
                size,
                checksum,
            });
        }
    }
    Ok((files, copied))
}

/// Copies the files of `handle` (their locations in the checkpoint storage) into `dir`,
/// checking their sizes and checksums.
fn copy_handle(handle: &KeyedStateHandle, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
    for file in &handle.files {
        let stored = Location::parse(&file.path).map_err(storage_error)?;
        // SST files are immutable: a directory storage hard-links them when it can.
        let (size, checksum) =
            stored.fetch(&dir.join(&file.name), file.name.ends_with(".sst")).map_err(storage_error)?;
        if size != file.size {
            return Err(OperatorError::State(format!(
                "checkpoint file '{}' has {size} bytes but the checkpoint recorded {}: the checkpoint is corrupt",
                file.path, file.size
            )));
        }
        if file.checksum != 0 && checksum != file.checksum {
            return Err(OperatorError::State(format!(
                "checkpoint file '{}' does not match the checksum the checkpoint recorded: the file is damaged",
                file.path
            )));
        }
    }
    Ok(())
}

/// Copies the entries of the database in `dir` whose key group is in `key_groups` into `store`.
fn import_key_groups(dir: &Path, store: &RocksStore, key_groups: (u32, u32)) -> Result<()> {
    let db = DB::open_for_read_only(&Options::default(), dir, false)
        .map_err(|e| rocks_error(&format!("open checkpoint '{}'", dir.display()), e))?;
    let start = (key_groups.0 as u16).to_be_bytes();
    let mut batch = Vec::new();
    for item in db.iterator(IteratorMode::From(&start, rocksdb::Direction::Forward)) {
        let (k, v) = item.map_err(|e| rocks_error("read a checkpoint", e))?;
        if key_group_of(&k).is_none_or(|g| g >= key_groups.1) {
            break;
        }
        batch.push((k.to_vec(), Some(v.to_vec())));
        if batch.len() >= 10_000 {
            store.write(std::mem::take(&mut batch))?;
        }
    }
    store.write(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::keys::key_group_range;
    use sluice_core::state::tables::ValueTable;
    use sluice_core::state::{StateClock, StateTables};

    fn tables(backend: &KeyedBackend, key_groups: (u32, u32)) -> StateTables {
        StateTables::new(backend.store(), key_groups, StateClock::System)
    }

    fn values(backend: &KeyedBackend) -> ValueTable<Vec<u8>> {
        tables(backend, (0, 128)).value("values", None).unwrap()
    }

    fn absolute(handle: &KeyedStateHandle, storage: &CheckpointStorage) -> KeyedStateHandle {
        let mut h = handle.clone();
        for f in &mut h.files {
            f.path = storage.job_dir.join(&f.path).to_string();
        }
        h
    }

    fn snapshot(backend: &KeyedBackend, id: u64, storage: &CheckpointStorage) -> (KeyedStateHandle, u64) {
        let local = backend.snapshot_sync(id).unwrap();
        backend.upload_fn(local, storage.clone())().unwrap()
    }

    /// Subtask `subtask` of `parallelism` with empty state, and its key groups.
    fn fresh_backend(
        root: &Path,
        subtask: u32,
        parallelism: u32,
        storage: &CheckpointStorage,
    ) -> (KeyedBackend, (u32, u32)) {
        let range = key_group_range(subtask, 128, parallelism);
        let name = format!("op-{subtask}");
        let backend =
            KeyedBackend::open(root.join(format!("local/{name}")), name, range, 128, &[], Some(storage)).unwrap();
        (backend, range)
    }

    /// Subtask `subtask` of `parallelism` restored from the old subtasks' `handles`.
    fn restored_backend(
        root: &Path,
        subtask: u32,
        parallelism: u32,
        handles: &[KeyedStateHandle],
    ) -> (KeyedBackend, (u32, u32)) {
        let range = key_group_range(subtask, 128, parallelism);
        let overlapping: Vec<_> =
            handles.iter().filter(|h| h.key_group_start < range.1 && range.0 < h.key_group_end).cloned().collect();
        let backend =
            KeyedBackend::open(root.join(format!("new/op-{subtask}")), "op".into(), range, 128, &overlapping, None)
                .unwrap();
        (backend, range)
    }

    /// State survives a snapshot; a second snapshot copies only new files; restoring at
    /// parallelism 3 splits the key groups of two old subtasks exactly.
    #[test]
    fn snapshots_are_incremental_and_restore_at_another_parallelism() {
        let root = tempfile::tempdir().unwrap();
        let storage = CheckpointStorage { job_dir: Location::local(root.path().join("job")) };
        let mut handles = Vec::new();
        for subtask in 0..2 {
            let (backend, range) = fresh_backend(root.path(), subtask, 2, &storage);
            let state = values(&backend);
            for g in range.0..range.1 {
                state.put(g, b"key", &g.to_le_bytes().to_vec()).unwrap();
            }
            let (first, copied_first) = snapshot(&backend, 1, &storage);
            assert!(copied_first > 0 && first.files.iter().any(|f| f.name.ends_with(".sst")));
            state.put(range.0, b"other", &b"x".to_vec()).unwrap();
            let (second, copied_second) = snapshot(&backend, 2, &storage);
            let first_ssts: Vec<_> = first.files.iter().filter(|f| f.name.ends_with(".sst")).collect();
            for sst in &first_ssts {
                assert!(second.files.contains(sst), "the second checkpoint references {sst:?}");
            }
            let reused: u64 = first_ssts.iter().map(|f| f.size).sum();
            let total: u64 = second.files.iter().map(|f| f.size).sum();
            assert!(copied_second <= total - reused, "copied {copied_second} of {total} bytes, {reused} reused");
            handles.push(absolute(&second, &storage));
        }
        let mut seen = 0;
        for subtask in 0..3 {
            let (backend, range) = restored_backend(root.path(), subtask, 3, &handles);
            let state = values(&backend);
            for g in 0..128u32 {
                let value = state.get(g, b"key").unwrap();
                assert_eq!(value.is_some(), (range.0..range.1).contains(&g), "key group {g} at subtask {subtask}");
                seen += usize::from(value.is_some());
            }
            for g in [0u32, 64] {
                assert_eq!(state.get(g, b"other").unwrap().is_some(), (range.0..range.1).contains(&g));
            }
        }
        assert_eq!(seen, 128);
    }

    /// Timers live in keyed state: after a restore at parallelism 3 of a checkpoint taken
    /// at parallelism 2, every timer fires once, in time order, on the subtask that owns
    /// its key group.
    #[test]
    fn timers_restored_at_another_parallelism_fire_once_on_their_new_owner() {
        use sluice_core::timers::{TimeDomain, TimerService};
        let root = tempfile::tempdir().unwrap();
        let storage = CheckpointStorage { job_dir: Location::local(root.path().join("job")) };
        let mut handles = Vec::new();
        let mut registered = Vec::new();
        for subtask in 0..2 {
            let (backend, range) = fresh_backend(root.path(), subtask, 2, &storage);
            let mut timers = TimerService::open(&mut tables(&backend, range)).unwrap();
            for g in range.0..range.1 {
                // Two timers per key group, in an order unrelated to their times.
                for ts in [1_000 - i64::from(g) * 7, 5 * i64::from(g)] {
                    timers.register(TimeDomain::EventTime, g, format!("key-{g}").as_bytes(), ts).unwrap();
                    registered.push((ts, g));
                }
            }
            handles.push(absolute(&snapshot(&backend, 1, &storage).0, &storage));
        }
        let mut fired = Vec::new();
        for subtask in 0..3 {
            let (backend, range) = restored_backend(root.path(), subtask, 3, &handles);
            let mut timers = TimerService::open(&mut tables(&backend, range)).unwrap();
            let mut mine = Vec::new();
            for watermark in [0, 500, i64::MAX] {
                mine.extend(timers.due_event_timers(watermark).unwrap());
            }
            assert!(mine.windows(2).all(|w| w[0].timestamp <= w[1].timestamp), "subtask {subtask} fired out of order");
            assert!(
                mine.iter().all(|t| (range.0..range.1).contains(&t.key_group)),
                "a timer fired on a subtask that does not own it"
            );
            assert!(timers.is_empty());
            fired.extend(mine.into_iter().map(|t| (t.timestamp, t.key_group)));
        }
        registered.sort_unstable();
        fired.sort_unstable();
        assert_eq!(fired, registered, "every timer fires exactly once");
    }

    /// RocksDB's compaction drops entries whose TTL passed, of any table, and keeps the
    /// others.
    #[test]
    fn compaction_removes_expired_entries() {
        let root = tempfile::tempdir().unwrap();
        let backend = KeyedBackend::open(root.path().join("local/op"), "op".into(), (0, 128), 128, &[], None).unwrap();
        // Written "long ago" by a manual clock: expired by the system clock compaction reads.
        let mut old = StateTables::new(backend.store(), (0, 128), StateClock::manual(1_000));
        let expiring = old.value::<i64>("expiring", Some(std::time::Duration::from_secs(1))).unwrap();
        let kept = old.value::<i64>("kept", None).unwrap();
        for i in 0..100i64 {
            expiring.put(1, &i.to_be_bytes(), &i).unwrap();
            kept.put(1, &i.to_be_bytes(), &i).unwrap();
        }
        let raw_entries = || {
            let mut n = 0;
            backend
                .store()
                .scan(&[], &mut |_, _| {
                    n += 1;
                    true
                })
                .unwrap();
            n
        };
        assert_eq!(raw_entries(), 200);
        backend.store.db.flush().unwrap();
        backend.store.db.compact_range::<&[u8], &[u8]>(None, None);
        assert_eq!(raw_entries(), 100, "the expired table's entries are gone");
        assert_eq!(kept.entries().unwrap().len(), 100);
    }

    #[test]
    fn a_truncated_file_is_reported_as_corrupt() {
        let root = tempfile::tempdir().unwrap();
        let storage = CheckpointStorage { job_dir: Location::local(root.path().join("job")) };
        let backend =
            KeyedBackend::open(root.path().join("local/op"), "op".into(), (0, 128), 128, &[], Some(&storage)).unwrap();
        values(&backend).put(1, b"k", &b"v".to_vec()).unwrap();
        let handle = absolute(&snapshot(&backend, 1, &storage).0, &storage);
        let sst = handle.files.iter().find(|f| f.name.ends_with(".sst")).unwrap();
        std::fs::write(&sst.path, b"garbage").unwrap();
        let error = KeyedBackend::open(root.path().join("local/op2"), "op".into(), (0, 128), 128, &[handle], None)
            .err()
            .unwrap();
        assert!(error.to_string().contains("the checkpoint is corrupt"), "{error}");
    }

    /// A stored file damaged in place (same size, other bytes) is refused on restore: a
    /// size check alone would open it.
    #[test]
    fn a_damaged_file_of_the_right_size_fails_its_checksum() {
        let root = tempfile::tempdir().unwrap();
        let storage = CheckpointStorage { job_dir: Location::local(root.path().join("job")) };
        let backend =
            KeyedBackend::open(root.path().join("local/op"), "op".into(), (0, 128), 128, &[], Some(&storage)).unwrap();
        values(&backend).put(1, b"k", &b"v".to_vec()).unwrap();
        let handle = absolute(&snapshot(&backend, 1, &storage).0, &storage);
        for file in &handle.files {
            let content = std::fs::read(&file.path).unwrap();
            assert_eq!(file.checksum, xxhash_rust::xxh3::xxh3_64(&content), "{} records its checksum", file.name);
        }
        let sst = handle.files.iter().find(|f| f.name.ends_with(".sst")).unwrap();
        let mut bytes = std::fs::read(&sst.path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x5a;
        std::fs::write(&sst.path, &bytes).unwrap();
        let error = KeyedBackend::open(root.path().join("local/op2"), "op".into(), (0, 128), 128, &[handle], None)
            .err()
            .unwrap();
        assert!(error.to_string().contains("does not match the checksum"), "{error}");
    }
}
