//! Continuous discovery of a filesystem table's files (`source.monitor-interval`), as
//! Flink's continuous file source: the source never ends, and lists the table's path again
//! each interval to read the files that appeared since.
//!
//! Each subtask lists the path and takes the new files it owns: a file belongs to subtask
//! `hash(its path under the table) % parallelism`, so every listing on every subtask agrees
//! on the owner without a coordinator. A subtask remembers the files it has taken (read,
//! being read or queued) and puts their names in its checkpoint as a union list; a restored
//! subtask keeps the names it owns at the new parallelism. The position of a file being
//! read travels separately (the source's split list, dealt round-robin). So at any
//! parallelism a file is read once: its position goes to one subtask, and its name to the
//! one that owns it, which never takes it again.
//!
//! A file is taken as it is when it first appears: writers publish complete files under
//! their final names (the filesystem sink renames hidden part files), and a file that
//! changes after it was taken is not read again. The set of names grows with the table, as
//! the set of processed paths in Flink's continuous enumerator does.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sluice_core::TaskContext;
use sluice_core::{OperatorError, Result};

use super::source::{table_files, ScanCounts};
use super::FileSourceConfig;

/// The name of the operator state list that holds the names of the files taken.
pub(super) const SEEN_LIST: &str = "seen";

/// The longest a subtask with nothing to read waits in one poll.
const IDLE_WAIT: Duration = Duration::from_millis(20);

/// One subtask's discovery of new files.
pub(super) struct Discovery {
    interval: Duration,
    next_scan: Instant,
    /// Paths under the table's root that this subtask owns and has taken.
    seen: HashSet<String>,
    /// Names restored from a checkpoint, kept once the subtask knows which it owns.
    restored: Vec<String>,
    subtask: u32,
    parallelism: u32,
}

impl Discovery {
    /// Discovery every `interval`; the first listing is due at once.
    pub fn new(interval: Duration) -> Self {
        Discovery {
            interval,
            next_scan: Instant::now(),
            seen: HashSet::new(),
            restored: Vec::new(),
            subtask: 0,
            parallelism: 1,
        }
    }

    /// Takes the names of a restored checkpoint's union list (every subtask's).
    pub fn restore(&mut self, entries: &[Vec<u8>]) -> Result<()> {
        self.restored = entries
            .iter()
            .map(|e| {
                String::from_utf8(e.clone()).map_err(|_| {
                    OperatorError::State("filesystem source: a file name in the checkpoint is not UTF-8".into())
                })
            })
            .collect::<Result<_>>()?;
        Ok(())
    }

    /// Learns the subtask's place, keeping the restored names it owns.
    pub fn open(&mut self, ctx: &TaskContext) {
        self.subtask = ctx.subtask;
        self.parallelism = ctx.parallelism.max(1);
        let restored = std::mem::take(&mut self.restored);
        self.seen = restored.into_iter().filter(|name| self.owns(name)).collect();
    }

    /// True when the next listing is due.
    pub fn due(&self) -> bool {
        Instant::now() >= self.next_scan
    }

    /// Lists the table and returns the files this subtask owns and has not taken, in name
    /// order, marking them taken. `counts` gets the listing's file counts.
    pub fn discover(&mut self, config: &FileSourceConfig, counts: &mut ScanCounts) -> Result<Vec<String>> {
        self.next_scan = Instant::now() + self.interval;
        let mut listing = ScanCounts::default();
        let files = match table_files(config, &mut listing) {
            // The directory may be made after the job starts.
            Err(OperatorError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            listed => listed?,
        };
        counts.files = listing.files;
        counts.files_pruned = listing.files_pruned;
        let mut new = Vec::new();
        for path in files {
            let name = config.relative(&path).to_string();
            if self.owns(&name) && self.seen.insert(name) {
                new.push(path);
            }
        }
        if !new.is_empty() {
            tracing::info!(path = %config.path, subtask = self.subtask, files = new.len(), "filesystem source: new files");
        }
        Ok(new)
    }

    /// Waits a little (at most until the next listing) before the source says it is idle.
    pub async fn idle(&self) {
        let wait = self.next_scan.saturating_duration_since(Instant::now()).min(IDLE_WAIT);
        tokio::time::sleep(wait).await;
    }

    /// The names taken, for the checkpoint's union list.
    pub fn snapshot(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<&String> = self.seen.iter().collect();
        names.sort();
        names.into_iter().map(|n| n.as_bytes().to_vec()).collect()
    }

    fn owns(&self, name: &str) -> bool {
        owner(name, self.parallelism) == self.subtask
    }
}

/// The subtask that owns the file at `name` (its path under the table) at `parallelism`:
/// FNV-1a of the name, mixed by MurmurHash3's finalizer (FNV's low bits alone follow the
/// last characters, so `part-1`, `part-3`, ... would share a subtask), the same on every
/// process and release.
fn owner(name: &str, parallelism: u32) -> u32 {
    let mut hash =
        name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    (hash % u64::from(parallelism.max(1))) as u32
}
