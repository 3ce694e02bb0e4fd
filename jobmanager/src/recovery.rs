//! What a restarted jobmanager needs to carry on. Every job that has not ended is kept as
//! a [`JobRecord`] in the job store (`<ha storage>/jobs/<job id>`, on a shared directory or
//! in object storage), written before its submission is answered and deleted when it
//! ends. A jobmanager that starts reads the store and recovers each job from the latest
//! completed checkpoint in the job's checkpoint storage, as Flink's jobmanager does from
//! its high-availability storage. The checkpoint counter resumes above every checkpoint
//! id found there, finished or not, so no id is used twice.

use std::collections::BTreeSet;

use prost::Message;
use sluice_proto::JobRecord;
use sluice_storage::{Location, StorageError};

use crate::checkpoint::{storage, StoredCheckpoint};

/// The records of a jobmanager's jobs.
#[derive(Debug, Clone)]
pub struct JobStore {
    dir: Location,
}

impl JobStore {
    /// A store under `ha_dir` (its `jobs/` directory).
    pub fn new(ha_dir: &Location) -> Self {
        JobStore { dir: ha_dir.join("jobs") }
    }

    /// Where the store is.
    pub fn location(&self) -> &Location {
        &self.dir
    }

    /// Writes (or replaces) `record`, durably.
    pub fn save(&self, record: &JobRecord) -> Result<(), StorageError> {
        self.dir.join(&record.job_id).put(record.encode_to_vec())
    }

    /// Deletes job `job_id`'s record (it ended).
    pub fn remove(&self, job_id: &str) {
        if let Err(e) = self.dir.join(job_id).delete() {
            tracing::warn!(job = job_id, error = %e, "cannot delete the record of an ended job");
        }
    }

    /// Every stored record. One that cannot be decoded is reported and left in place.
    pub fn load(&self) -> Result<Vec<JobRecord>, StorageError> {
        let mut records = Vec::new();
        for name in self.dir.children()? {
            let bytes = self.dir.join(&name).read()?;
            match JobRecord::decode(bytes.as_slice()) {
                Ok(record) if record.job_id == name && record.graph.is_some() => records.push(record),
                Ok(_) => tracing::error!(record = %self.dir.join(&name), "a job record names another job; ignored"),
                Err(e) => {
                    tracing::error!(record = %self.dir.join(&name), error = %e, "a job record is damaged; ignored")
                }
            }
        }
        records.sort_by_key(|r| r.submitted_at_ms);
        Ok(records)
    }
}

/// The checkpoints a recovered job finds in its checkpoint storage.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StoredCheckpoints {
    /// Each completed checkpoint (its metadata written), oldest first, read back and
    /// checked (metadata intact, every file present at its size) or with why not.
    pub completed: Vec<StoredCheckpoint>,
    /// The highest checkpoint id there, completed or not (0: none).
    pub highest_id: u64,
}

/// Reads and checks what `job_dir` holds (storage I/O, outside the jobmanager's lock).
pub fn stored_checkpoints(job_dir: &Location) -> Result<StoredCheckpoints, StorageError> {
    // One listing gives both the highest id and the candidates.
    let mut ids: Vec<u64> = job_dir
        .children()?
        .iter()
        .filter_map(|name| name.strip_prefix("chk-").and_then(|n| n.parse::<u64>().ok()))
        .collect();
    ids.sort_unstable();
    let highest_id = ids.last().copied().unwrap_or(0);
    let mut completed = Vec::new();
    for id in ids {
        let dir = job_dir.join(&format!("chk-{id}"));
        // Without metadata the checkpoint never completed.
        if dir.join(storage::METADATA).size()?.is_none() {
            continue;
        }
        let (files, metadata) = match storage::read_checkpoint(&dir) {
            Ok((metadata, _)) => (storage::referenced_files(&metadata), Ok(metadata)),
            // The storage failed: nothing is known about the checkpoint, so nothing is
            // concluded either.
            Err(storage::StorageError::Storage(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(checkpoint = id, error = %e, "a completed checkpoint cannot be restored");
                (BTreeSet::new(), Err(e.to_string()))
            }
        };
        completed.push(StoredCheckpoint { id, files, metadata });
    }
    Ok(StoredCheckpoints { completed, highest_id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::{CheckpointMetadata, JobGraph};

    #[test]
    fn records_round_trip_and_checkpoints_are_found() {
        let root = tempfile::tempdir().unwrap();
        let store = JobStore::new(&Location::local(root.path().join("ha")));
        assert!(store.load().unwrap().is_empty(), "an empty store has no jobs");
        let record = |id: &str, at| JobRecord {
            job_id: id.into(),
            graph: Some(JobGraph { name: format!("job {id}"), ..Default::default() }),
            submitted_at_ms: at,
            ..Default::default()
        };
        store.save(&record("b", 2)).unwrap();
        store.save(&record("a", 1)).unwrap();
        store.save(&JobRecord { recoveries: 3, ..record("b", 2) }).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded, vec![record("a", 1), JobRecord { recoveries: 3, ..record("b", 2) }]);
        store.remove("a");
        assert_eq!(store.load().unwrap().len(), 1);

        let job = Location::local(root.path().join("checkpoints/b"));
        storage::claim(&job, "me").unwrap();
        let metadata = CheckpointMetadata { checkpoint_id: 4, ..Default::default() };
        storage::write_metadata(&job, &job.join("chk-4"), &metadata, "me").unwrap();
        job.join("chk-7/3-agg/MANIFEST").put(b"an unfinished checkpoint".to_vec()).unwrap();
        job.join("chk-5/_metadata").put(b"damaged".to_vec()).unwrap();
        let stored = stored_checkpoints(&job).unwrap();
        assert_eq!(stored.highest_id, 7);
        assert_eq!(stored.completed.iter().map(|c| c.id).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(stored.completed[0].metadata, Ok(metadata));
        let damaged = stored.completed[1].metadata.as_ref().unwrap_err();
        assert!(damaged.contains("chk-5' is unusable") && damaged.contains("bad header"), "{damaged}");
        assert_eq!(
            stored_checkpoints(&Location::local(root.path().join("none"))).unwrap(),
            StoredCheckpoints::default()
        );
    }
}
