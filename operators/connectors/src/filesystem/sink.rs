//! The filesystem sink: part files named `part-<run>-<attempt>-<subtask>-<n>.<format>`, in
//! the partition's directory for a partitioned table. A file still being written is hidden
//! behind a leading dot (`.part-...inprogress`) and renamed when complete. With
//! checkpoints the sink is a two-phase commit: at each barrier every open part file is
//! closed (a Parquet file gets its footer) and recorded in the checkpoint as pending; it
//! becomes visible only when that checkpoint completes. A restored sink publishes the
//! pending files of the checkpoint it restored and deletes in-progress files the failed
//! attempt left.
//!
//! Partition commit: once a partition's trigger fires (see [`CommitPolicy`]) and none of
//! its files is still hidden (in progress or waiting for a checkpoint, in any subtask), the
//! success file is written into it. Each subtask that wrote into a partition checks it
//! after each of its commits, so the last one to publish there writes the file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::UInt32Array;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use parquet::arrow::ArrowWriter;

use sluice_core::state::{put_bytes, Distribution, Reader};
use sluice_core::{Collector, Operator, OperatorError, OperatorState, Result, StateInit, TaskContext};

use super::partition::{CommitPolicy, CommitTrigger};
use super::source::storage_error;
use super::FileSinkConfig;
use crate::format::Format;
use sluice_storage::Location;

/// The operator-state list of partitions written and not yet committed.
const PARTITIONS_LIST: &str = "partitions";

fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> OperatorError + 'p {
    move |source| OperatorError::Io { action, path: path.display().to_string(), source }
}

enum PartWriter {
    Lines {
        writer: BufWriter<File>,
        bytes: u64,
    },
    Parquet(Box<ArrowWriter<File>>),
    /// An Avro file, and the in-memory size of the rows written (its size estimate).
    Avro(Box<crate::format::avro::FileWriter>, u64),
}

struct PartFile {
    /// Where it is being written: the hidden file itself on a file system, a local
    /// staging copy for object storage.
    staged: PathBuf,
    hidden: Location,
    visible: Location,
    writer: PartWriter,
    opened: Instant,
}

impl PartFile {
    fn write(&mut self, batch: &RecordBatch, format: &crate::format::FormatOptions) -> Result<()> {
        match &mut self.writer {
            PartWriter::Lines { writer, bytes } => {
                let encoded = format.encode(batch)?;
                writer.write_all(&encoded).map_err(io("cannot write", &self.staged))?;
                *bytes += encoded.len() as u64;
            }
            PartWriter::Avro(writer, bytes) => {
                writer.write(batch).map_err(|e| io("cannot write", &self.staged)(std::io::Error::other(e)))?;
                *bytes += batch.get_array_memory_size() as u64;
            }
            PartWriter::Parquet(writer) => {
                writer.write(batch).map_err(|e| io("cannot write", &self.staged)(std::io::Error::other(e)))?
            }
        }
        Ok(())
    }

    /// Bytes written so far, including what is buffered.
    fn size(&self) -> u64 {
        match &self.writer {
            PartWriter::Lines { bytes, .. } => *bytes,
            PartWriter::Parquet(w) => (w.bytes_written() + w.in_progress_size()) as u64,
            PartWriter::Avro(_, bytes) => *bytes,
        }
    }

    /// Completes the file (a Parquet file gets its footer) and syncs it.
    fn close(self) -> Result<Pending> {
        let file = match self.writer {
            PartWriter::Lines { writer, .. } => {
                writer.into_inner().map_err(|e| io("cannot write", &self.staged)(e.into_error()))?
            }
            PartWriter::Avro(writer, _) => {
                writer.finish().map_err(|e| io("cannot complete", &self.staged)(std::io::Error::other(e)))?
            }
            PartWriter::Parquet(writer) => {
                writer.into_inner().map_err(|e| io("cannot complete", &self.staged)(std::io::Error::other(e)))?
            }
        };
        file.sync_all().map_err(io("cannot sync", &self.staged))?;
        if self.hidden.local_path().is_none() {
            // Object storage: the hidden object holds the file until its checkpoint completes.
            self.hidden
                .put_file(&self.staged)
                .map_err(|e| storage_error("cannot upload", &self.hidden.to_string(), e))?;
            let _ = fs::remove_file(&self.staged);
        }
        Ok(Pending { checkpoint: None, hidden: self.hidden, visible: self.visible })
    }
}

/// A closed part file waiting for its checkpoint to complete.
#[derive(Debug, Clone, PartialEq)]
struct Pending {
    /// The checkpoint that covers it (`None`: the next one).
    checkpoint: Option<u64>,
    hidden: Location,
    visible: Location,
}

impl Pending {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.checkpoint.unwrap_or(0).to_le_bytes().to_vec();
        put_bytes(&mut out, self.hidden.to_string().as_bytes());
        put_bytes(&mut out, self.visible.to_string().as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "filesystem sink");
        let checkpoint = Some(r.u64()?);
        let parse = |text: String| Location::parse(&text).map_err(|e| OperatorError::State(e.to_string()));
        Ok(Pending { checkpoint, hidden: parse(r.string()?)?, visible: parse(r.string()?)? })
    }

    /// Makes the file visible, durably (the directory is synced); a file already published
    /// (by an earlier attempt) is fine.
    fn publish(&self) -> Result<()> {
        if let (Some(hidden), Some(visible)) = (self.hidden.local_path(), self.visible.local_path()) {
            match fs::rename(hidden, visible) {
                Ok(()) => {}
                Err(_) if visible.exists() => {}
                Err(source) => return Err(io("cannot publish", hidden)(source)),
            }
            return sluice_core::durable::sync_parent(visible).map_err(io("cannot sync the directory of", visible));
        }
        // Object storage has no rename: copy, then delete the hidden object. A copy
        // repeated after a failure writes the same bytes again.
        let failed = |action, e| storage_error(action, &self.hidden.to_string(), e);
        match self.hidden.size().map_err(|e| failed("cannot read", e))? {
            Some(_) => {
                self.hidden.copy_to(&self.visible).map_err(|e| failed("cannot publish", e))?;
                self.hidden.delete().map_err(|e| failed("cannot delete", e))
            }
            None if self.visible.size().map_err(|e| failed("cannot read", e))?.is_some() => Ok(()),
            None => Err(OperatorError::State(format!(
                "part file {} is gone before it was published to {}",
                self.hidden, self.visible
            ))),
        }
    }
}

/// A partition written and not yet committed: its directory (relative to the table's) and
/// when this sink first wrote into it (ms since the epoch).
#[derive(Debug, Clone, PartialEq)]
struct Written {
    dir: String,
    first_write_ms: i64,
}

impl Written {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.first_write_ms.to_le_bytes().to_vec();
        put_bytes(&mut out, self.dir.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "filesystem sink partitions");
        Ok(Written { first_write_ms: r.u64()? as i64, dir: r.string()? })
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A running filesystem sink subtask.
pub struct FileSink {
    config: FileSinkConfig,
    prefix: String,
    next_part: u64,
    /// Open part files by partition directory ("" unpartitioned).
    current: BTreeMap<String, PartFile>,
    checkpointing: bool,
    /// Closed part files not yet published (checkpointing only).
    pending: Vec<Pending>,
    /// Restored commits: files of the restored checkpoint, from every old subtask.
    restored: Option<Vec<Pending>>,
    /// Partitions written and not committed, by directory.
    written: BTreeMap<String, Written>,
    watermark: i64,
    ended: bool,
    /// Where part files for object storage are written before they are uploaded.
    staging: Option<tempfile::TempDir>,
}

impl FileSink {
    /// A sink writing under `config`'s directory.
    pub fn new(config: FileSinkConfig) -> Self {
        FileSink {
            config,
            prefix: String::new(),
            next_part: 0,
            current: BTreeMap::new(),
            checkpointing: false,
            pending: Vec::new(),
            restored: None,
            written: BTreeMap::new(),
            watermark: i64::MIN,
            ended: false,
            staging: None,
        }
    }

    /// Opens a part file for `partition` unless one is open.
    fn open_part(&mut self, partition: &str) -> Result<()> {
        if !self.current.contains_key(partition) {
            let dir = if partition.is_empty() { self.config.dir.clone() } else { self.config.dir.join(partition) };
            let name = format!("{}-{}.{}", self.prefix, self.next_part, self.config.format.format.extension());
            self.next_part += 1;
            let hidden = dir.join(&format!(".{name}.inprogress"));
            let visible = dir.join(&name);
            let staged = match dir.local_path() {
                Some(local) => {
                    fs::create_dir_all(local).map_err(io("cannot create directory", local))?;
                    local.join(format!(".{name}.inprogress"))
                }
                None => {
                    let staging =
                        self.staging.as_ref().ok_or_else(|| OperatorError::InvalidPlan("no staging".into()))?;
                    staging.path().join(&name)
                }
            };
            let file = File::create(&staged).map_err(io("cannot create", &staged))?;
            let writer = if self.config.format.format == Format::Parquet {
                let properties = self.config.parquet.properties();
                let writer = ArrowWriter::try_new(file, self.config.file_schema.clone(), Some(properties))
                    .map_err(|e| io("cannot start", &staged)(std::io::Error::other(e)))?;
                PartWriter::Parquet(Box::new(writer))
            } else if self.config.format.format == Format::Avro {
                let writer =
                    crate::format::avro::FileWriter::new(file, &self.config.file_schema, self.config.avro_codec)
                        .map_err(|e| io("cannot start", &staged)(std::io::Error::other(e)))?;
                PartWriter::Avro(Box::new(writer), 0)
            } else {
                PartWriter::Lines { writer: BufWriter::new(file), bytes: 0 }
            };
            let part = PartFile { staged, hidden, visible, writer, opened: Instant::now() };
            self.current.insert(partition.to_string(), part);
            if self.config.commit.is_some() && !self.written.contains_key(partition) {
                let written = Written { dir: partition.to_string(), first_write_ms: now_ms() };
                self.written.insert(partition.to_string(), written);
            }
        }
        Ok(())
    }

    /// Closes the part file of `partition`, then publishes it (without checkpoints) or
    /// keeps it pending until the next checkpoint completes.
    fn close_part(&mut self, partition: &str) -> Result<()> {
        let Some(part) = self.current.remove(partition) else { return Ok(()) };
        let pending = part.close()?;
        if self.checkpointing {
            self.pending.push(pending);
            Ok(())
        } else {
            pending.publish()
        }
    }

    fn close_all(&mut self) -> Result<()> {
        let partitions: Vec<String> = self.current.keys().cloned().collect();
        for partition in partitions {
            self.close_part(&partition)?;
        }
        Ok(())
    }

    fn write_rows(&mut self, partition: &str, rows: &RecordBatch) -> Result<()> {
        let (max_bytes, interval) = (self.config.max_file_bytes, self.config.rollover_interval);
        self.open_part(partition)?;
        // Disjoint fields: the open file, and the format that encodes into it.
        let part = self.current.get_mut(partition).expect("the part file is open");
        part.write(rows, &self.config.format)?;
        if part.size() >= max_bytes || part.opened.elapsed() >= interval {
            self.close_part(partition)?;
        }
        Ok(())
    }

    /// Commits the partitions whose trigger fired and that hold no hidden file.
    fn commit_partitions(&mut self) -> Result<()> {
        let Some(policy) = self.config.commit.clone() else { return Ok(()) };
        let now = now_ms();
        let ready: Vec<Written> = self
            .written
            .values()
            .filter(|w| !self.current.contains_key(&w.dir) && self.due(&policy, w, now))
            .cloned()
            .collect();
        for partition in ready {
            let dir = self.config.dir.join(&partition.dir);
            if has_hidden_files(&dir)? {
                continue;
            }
            if let Some(name) = &policy.success_file {
                let marker = dir.join(name);
                let failed = |action, e| storage_error(action, &marker.to_string(), e);
                if marker.size().map_err(|e| failed("cannot read", e))?.is_none() {
                    marker.put(Vec::new()).map_err(|e| failed("cannot write the success file", e))?;
                    tracing::info!(partition = %partition.dir, "committed a partition");
                }
            }
            self.written.remove(&partition.dir);
        }
        Ok(())
    }

    fn due(&self, policy: &CommitPolicy, partition: &Written, now: i64) -> bool {
        if self.ended {
            return true;
        }
        let delay = policy.delay.as_millis() as i64;
        match &policy.trigger {
            CommitTrigger::ProcessTime => now >= partition.first_write_ms.saturating_add(delay),
            CommitTrigger::PartitionTime { .. } => {
                let Some(values) = self.config.partitioning.values(&format!("{}/x", partition.dir)) else {
                    return false;
                };
                policy
                    .partition_time(&self.config.partitioning.keys, &values)
                    .is_some_and(|t| self.watermark >= t.saturating_add(delay))
            }
        }
    }

    /// Publishes the restored checkpoint's files this subtask is responsible for and, on
    /// subtask 0, deletes in-progress files of earlier attempts that no checkpoint covers.
    fn recover(&mut self, ctx: &TaskContext, run: &str) -> Result<()> {
        let restored = self.restored.take().unwrap_or_default();
        for (i, pending) in restored.iter().enumerate() {
            if i as u32 % ctx.parallelism == ctx.subtask {
                pending.publish()?;
            }
        }
        if ctx.subtask != 0 || (ctx.attempt == 0 && restored.is_empty()) {
            return Ok(());
        }
        let keep: std::collections::HashSet<String> = restored.iter().map(|p| p.hidden.to_string()).collect();
        let mut runs: Vec<String> = vec![format!(".part-{run}-")];
        for p in &restored {
            if let Some(name) = p.visible.file_name() {
                if let Some(r) = name.split('-').nth(1) {
                    runs.push(format!(".part-{r}-"));
                }
            }
        }
        let current_attempt = format!(".part-{run}-{}-", ctx.attempt);
        let root = &self.config.dir;
        let files = root.files().map_err(|e| storage_error("cannot list", &root.to_string(), e))?;
        for relative in files {
            let name = relative.rsplit('/').next().unwrap_or_default();
            let file = root.join(&relative);
            let stale = name.starts_with('.')
                && name.ends_with(".inprogress")
                && runs.iter().any(|r| name.starts_with(r.as_str()))
                && !name.starts_with(&current_attempt)
                && !keep.contains(&file.to_string());
            if stale {
                tracing::info!(%file, "deleting a part file no completed checkpoint covers");
                let _ = file.delete();
            }
        }
        Ok(())
    }
}

/// True when `dir` holds a part file not yet published.
fn has_hidden_files(dir: &Location) -> Result<bool> {
    let names = dir.children().map_err(|e| storage_error("cannot list", &dir.to_string(), e))?;
    Ok(names.iter().any(|name| name.starts_with('.') && name.ends_with(".inprogress")))
}

#[async_trait]
impl Operator for FileSink {
    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if init.restored {
            self.restored = Some(init.entries().iter().map(|e| Pending::decode(e)).collect::<Result<_>>()?);
            for entry in init.list(PARTITIONS_LIST) {
                let written = Written::decode(entry)?;
                self.written.insert(written.dir.clone(), written);
            }
        }
        Ok(())
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        match self.config.dir.local_path() {
            Some(dir) => fs::create_dir_all(dir).map_err(io("cannot create directory", dir))?,
            None => {
                let staging = tempfile::Builder::new().prefix("sluice-sink-").tempdir().map_err(|source| {
                    OperatorError::Io { action: "cannot create", path: "a staging directory".into(), source }
                })?;
                self.staging = Some(staging);
            }
        }
        let run: String = ctx.job_id.chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect();
        self.prefix = format!("part-{run}-{}-{}", ctx.attempt, ctx.subtask);
        self.checkpointing = ctx.checkpointing;
        self.recover(ctx, &run)
    }

    async fn process_batch(&mut self, batch: RecordBatch, _out: &mut Collector) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.config.partitioning.is_empty() {
            return self.write_rows("", &batch);
        }
        let dirs = self.config.partitioning.row_directories(&batch)?;
        let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
        let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (row, dir) in dirs.iter().enumerate() {
            let at = *index.entry(dir.as_str()).or_insert_with(|| {
                groups.push((dir.clone(), Vec::new()));
                groups.len() - 1
            });
            groups[at].1.push(row as u32);
        }
        let file_columns: Vec<usize> = self
            .config
            .file_schema
            .fields()
            .iter()
            .map(|f| batch.schema().index_of(f.name()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| OperatorError::arrow("the rows lack a column of the table", e))?;
        let data = batch.project(&file_columns).map_err(|e| OperatorError::arrow("cannot project the rows", e))?;
        for (dir, rows) in groups {
            let rows = if rows.len() == data.num_rows() {
                data.clone()
            } else {
                arrow::compute::take_record_batch(&data, &UInt32Array::from(rows))
                    .map_err(|e| OperatorError::arrow("cannot split the rows by partition", e))?
            };
            self.write_rows(&dir, &rows)?;
        }
        Ok(())
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        out.watermark(watermark);
        Ok(())
    }

    async fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorState> {
        self.close_all()?;
        for pending in &mut self.pending {
            pending.checkpoint.get_or_insert(checkpoint_id);
        }
        // Union: on restore every subtask sees every file, so subtask 0 can tell leftovers
        // from files a checkpoint covers; each file is published by exactly one subtask.
        let state = OperatorState::union(self.pending.iter().map(Pending::encode).collect());
        Ok(state.with_list(PARTITIONS_LIST, Distribution::Split, self.written.values().map(Written::encode).collect()))
    }

    async fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        let (ready, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.checkpoint.is_some_and(|c| c <= checkpoint_id));
        self.pending = waiting;
        for pending in ready {
            pending.publish()?;
        }
        self.commit_partitions()
    }

    async fn finish(&mut self, _out: &mut Collector) -> Result<()> {
        self.ended = true;
        self.close_all()?;
        if !self.checkpointing {
            self.commit_partitions()?;
        }
        Ok(())
    }
}

/// How long a part file stays open at most, by default (Flink's 30 minutes).
pub const DEFAULT_ROLLOVER: Duration = Duration::from_secs(30 * 60);

/// Flink's default largest part file.
pub const DEFAULT_FILE_BYTES: u64 = 128 << 20;
