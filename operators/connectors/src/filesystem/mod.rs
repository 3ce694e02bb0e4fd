//! The `filesystem` connector with Flink's options: `path`, `format` (`json` | `csv`),
//! `json.ignore-parse-errors`, `csv.field-delimiter`, `csv.ignore-parse-errors`, for the
//! sink `sink.rolling-policy.file-size` and `sink.rolling-policy.rollover-interval`, and
//! for lookups (`FOR SYSTEM_TIME AS OF`) `lookup.join.cache.ttl` ([`lookup`]).
//!
//! The source reads newline-delimited records; files are dealt to subtasks in name order.
//! The sink writes part files named `part-<run>-<attempt>-<subtask>-<n>.<format>`; a file
//! still being written is hidden behind a leading dot (`.part-...inprogress`) and renamed
//! when complete. With checkpoints the sink is a two-phase commit: at each barrier the
//! current part file is closed and recorded in the checkpoint as pending; it becomes
//! visible only when that checkpoint completes. A restored sink publishes the pending files
//! of the checkpoint it restored and deletes in-progress files the failed attempt left.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::format::{Format, FormatOptions};

mod lookup;
use sluice_core::options::Options;
use sluice_core::state::{put_bytes, Reader};
use sluice_core::{
    Collector, Operator, OperatorError, OperatorState, Result, Source, SourcePoll, StateInit, TaskContext,
};

/// Parsed options of a filesystem source.
#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    path: PathBuf,
    format: FormatOptions,
    schema: SchemaRef,
}

impl FileSourceConfig {
    /// Reads the options of a filesystem source table.
    pub fn parse(options: &mut Options<'_>, schema: SchemaRef) -> Result<Self> {
        let path = PathBuf::from(local_path(options.required("path")?, options)?);
        let format = FormatOptions::parse(options, &[Format::Json, Format::Csv])?;
        options.declare("scan.parallelism");
        Ok(FileSourceConfig { path, format, schema })
    }
}

fn local_path<'p>(raw: &'p str, options: &Options<'_>) -> Result<&'p str> {
    if let Some(rest) = raw.strip_prefix("file://") {
        return Ok(rest);
    }
    if let Some((scheme, _)) = raw.split_once("://") {
        return Err(options.error(format!(
            "path '{raw}': the '{scheme}://' scheme is not supported yet; use a local path or file://"
        )));
    }
    Ok(raw)
}

/// Lists the visible files under `path` (itself if it is a file), sorted by name.
fn list_files(path: &Path) -> Result<Vec<PathBuf>> {
    let io_err = |source| OperatorError::Io { action: "cannot read", path: path.display().to_string(), source };
    let meta = fs::metadata(path).map_err(io_err)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).map_err(|source| OperatorError::Io {
            action: "cannot list",
            path: dir.display().to_string(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| OperatorError::Io {
                action: "cannot list",
                path: dir.display().to_string(),
                source,
            })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A file to read, and how far it has been read: its checkpointed position.
#[derive(Debug, Clone, PartialEq)]
struct FileSplit {
    path: PathBuf,
    /// Bytes read so far.
    offset: u64,
    /// Lines read so far (for error messages).
    line: u64,
}

impl FileSplit {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.offset.to_le_bytes().to_vec();
        out.extend_from_slice(&self.line.to_le_bytes());
        put_bytes(&mut out, self.path.to_string_lossy().as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "filesystem source");
        Ok(FileSplit { offset: r.u64()?, line: r.u64()?, path: r.string()?.into() })
    }
}

/// A running filesystem source subtask.
pub struct FileSource {
    config: FileSourceConfig,
    batch_rows: usize,
    /// Files still to read, the next one last.
    files: Vec<FileSplit>,
    current: Option<(FileSplit, BufReader<File>)>,
    restored: Option<Vec<FileSplit>>,
    skipped: u64,
}

impl FileSource {
    /// A source over `config` emitting batches of at most `batch_rows` rows.
    pub fn new(config: FileSourceConfig, batch_rows: usize) -> Self {
        FileSource { config, batch_rows, files: Vec::new(), current: None, restored: None, skipped: 0 }
    }

    fn decode(&mut self, lines: &[(u64, String)], file: &Path) -> Result<Option<RecordBatch>> {
        let joined: String = lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n");
        match self.config.format.decode(&self.config.schema, &joined, lines.len()) {
            Ok(batch) => Ok(batch),
            Err(_) => {
                // Find the bad line(s): decode one at a time.
                let mut good = Vec::new();
                for (line_no, line) in lines {
                    match self.config.format.decode(&self.config.schema, line, 1) {
                        Ok(Some(b)) => good.push(b),
                        Ok(None) => {}
                        Err(message) if self.config.format.ignore_parse_errors => {
                            self.skipped += 1;
                            tracing::warn!(file = %file.display(), line = line_no, %message, "skipping bad record");
                        }
                        Err(message) => {
                            return Err(OperatorError::BadRecord {
                                location: format!("{}:{line_no}", file.display()),
                                message,
                                skip_option: self.config.format.skip_option(),
                            })
                        }
                    }
                }
                if good.is_empty() {
                    return Ok(None);
                }
                arrow::compute::concat_batches(&self.config.schema, &good)
                    .map(Some)
                    .map_err(|e| OperatorError::arrow("cannot assemble records", e))
            }
        }
    }
}

#[async_trait]
impl Source for FileSource {
    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if init.restored {
            self.restored = Some(init.entries().iter().map(|e| FileSplit::decode(e)).collect::<Result<_>>()?);
        }
        Ok(())
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        let mut splits = match self.restored.take() {
            Some(splits) => splits,
            None => list_files(&self.config.path)?
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i as u32 % ctx.parallelism.max(1) == ctx.subtask)
                .map(|(_, path)| FileSplit { path, offset: 0, line: 0 })
                .collect(),
        };
        splits.reverse();
        self.files = splits;
        Ok(())
    }

    fn skipped_records(&self) -> u64 {
        self.skipped
    }

    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState> {
        let mut entries: Vec<Vec<u8>> = self.current.iter().map(|(split, _)| split.encode()).collect();
        entries.extend(self.files.iter().rev().map(FileSplit::encode));
        Ok(OperatorState::split(entries))
    }

    async fn poll_next(&mut self) -> Result<SourcePoll> {
        loop {
            if self.current.is_none() {
                let Some(next) = self.files.pop() else {
                    if self.skipped > 0 {
                        tracing::warn!(skipped = self.skipped, "filesystem source skipped bad records");
                    }
                    return Ok(SourcePoll::Finished);
                };
                let path = next.path.display().to_string();
                let mut file = File::open(&next.path).map_err(|source| OperatorError::Io {
                    action: "cannot open",
                    path: path.clone(),
                    source,
                })?;
                if next.offset > 0 {
                    use std::io::Seek;
                    file.seek(std::io::SeekFrom::Start(next.offset)).map_err(|source| OperatorError::Io {
                        action: "cannot seek in",
                        path,
                        source,
                    })?;
                }
                self.current = Some((next, BufReader::new(file)));
            }
            let Some((split, reader)) = self.current.as_mut() else { continue };
            let mut lines = Vec::with_capacity(self.batch_rows);
            while lines.len() < self.batch_rows {
                let mut line = String::new();
                let n = reader.read_line(&mut line).map_err(|source| OperatorError::Io {
                    action: "cannot read",
                    path: split.path.display().to_string(),
                    source,
                })?;
                if n == 0 {
                    break;
                }
                split.offset += n as u64;
                split.line += 1;
                let trimmed = line.trim_end_matches(['\n', '\r']);
                if !trimmed.trim().is_empty() {
                    lines.push((split.line, trimmed.to_string()));
                }
            }
            let path = split.path.clone();
            if lines.is_empty() {
                self.current = None;
                continue;
            }
            if let Some(batch) = self.decode(&lines, &path)? {
                return Ok(SourcePoll::Batch(batch));
            }
        }
    }
}

/// Parsed options of a filesystem sink.
#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    dir: PathBuf,
    format: FormatOptions,
    max_file_bytes: u64,
    rollover_interval: Duration,
}

impl FileSinkConfig {
    /// Reads the options of a filesystem sink table.
    pub fn parse(options: &mut Options<'_>) -> Result<Self> {
        let dir = PathBuf::from(local_path(options.required("path")?, options)?);
        let format = FormatOptions::parse(options, &[Format::Json, Format::Csv, Format::DebeziumJson])?;
        let max_file_bytes = options.bytes("sink.rolling-policy.file-size")?.unwrap_or(128 << 20);
        let rollover_interval =
            options.duration("sink.rolling-policy.rollover-interval")?.unwrap_or(Duration::from_secs(30 * 60));
        options.declare("sink.rolling-policy.check-interval");
        Ok(FileSinkConfig { dir, format, max_file_bytes, rollover_interval })
    }
}

struct PartFile {
    hidden: PathBuf,
    visible: PathBuf,
    writer: BufWriter<File>,
    bytes: u64,
    opened: Instant,
}

/// A closed part file waiting for its checkpoint to complete.
#[derive(Debug, Clone, PartialEq)]
struct Pending {
    /// The checkpoint that covers it (`None`: the next one).
    checkpoint: Option<u64>,
    hidden: PathBuf,
    visible: PathBuf,
}

impl Pending {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.checkpoint.unwrap_or(0).to_le_bytes().to_vec();
        put_bytes(&mut out, self.hidden.to_string_lossy().as_bytes());
        put_bytes(&mut out, self.visible.to_string_lossy().as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "filesystem sink");
        Ok(Pending { checkpoint: Some(r.u64()?), hidden: r.string()?.into(), visible: r.string()?.into() })
    }

    /// Makes the file visible, durably (the directory is synced); a file already published
    /// (by an earlier attempt) is fine.
    fn publish(&self) -> Result<()> {
        match fs::rename(&self.hidden, &self.visible) {
            Ok(()) => {}
            Err(_) if self.visible.exists() => {}
            Err(source) => {
                return Err(OperatorError::Io {
                    action: "cannot publish",
                    path: self.hidden.display().to_string(),
                    source,
                })
            }
        }
        sluice_core::durable::sync_parent(&self.visible).map_err(|source| OperatorError::Io {
            action: "cannot sync the directory of",
            path: self.visible.display().to_string(),
            source,
        })
    }
}

/// A running filesystem sink subtask.
pub struct FileSink {
    config: FileSinkConfig,
    prefix: String,
    next_part: u64,
    current: Option<PartFile>,
    checkpointing: bool,
    /// Closed part files not yet published (checkpointing only).
    pending: Vec<Pending>,
    /// Restored commits: files of the restored checkpoint, from every old subtask.
    restored: Option<Vec<Pending>>,
}

impl FileSink {
    /// A sink writing under `config`'s directory.
    pub fn new(config: FileSinkConfig) -> Self {
        FileSink {
            config,
            prefix: String::new(),
            next_part: 0,
            current: None,
            checkpointing: false,
            pending: Vec::new(),
            restored: None,
        }
    }

    fn open_part(&mut self) -> Result<&mut PartFile> {
        if self.current.is_none() {
            let name = format!("{}-{}.{}", self.prefix, self.next_part, self.config.format.format.extension());
            self.next_part += 1;
            let hidden = self.config.dir.join(format!(".{name}.inprogress"));
            let visible = self.config.dir.join(name);
            let file = File::create(&hidden).map_err(|source| OperatorError::Io {
                action: "cannot create",
                path: hidden.display().to_string(),
                source,
            })?;
            self.current =
                Some(PartFile { hidden, visible, writer: BufWriter::new(file), bytes: 0, opened: Instant::now() });
        }
        Ok(self.current.as_mut().expect("a part file was just opened"))
    }

    /// Flushes and syncs the in-progress part file, then publishes it (without
    /// checkpoints) or keeps it pending until the next checkpoint completes.
    fn close_part(&mut self) -> Result<()> {
        let Some(mut part) = self.current.take() else { return Ok(()) };
        let path = part.hidden.display().to_string();
        part.writer.flush().map_err(|source| OperatorError::Io {
            action: "cannot write",
            path: path.clone(),
            source,
        })?;
        part.writer.get_ref().sync_all().map_err(|source| OperatorError::Io {
            action: "cannot sync",
            path: path.clone(),
            source,
        })?;
        let pending = Pending { checkpoint: None, hidden: part.hidden, visible: part.visible };
        if self.checkpointing {
            self.pending.push(pending);
            Ok(())
        } else {
            pending.publish()
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
        let keep: std::collections::HashSet<&Path> = restored.iter().map(|p| p.hidden.as_path()).collect();
        let mut runs: Vec<String> = vec![format!(".part-{run}-")];
        for p in &restored {
            if let Some(name) = p.visible.file_name().and_then(|n| n.to_str()) {
                if let Some(r) = name.split('-').nth(1) {
                    runs.push(format!(".part-{r}-"));
                }
            }
        }
        let current_attempt = format!(".part-{run}-{}-", ctx.attempt);
        let entries = fs::read_dir(&self.config.dir).map_err(|source| OperatorError::Io {
            action: "cannot list",
            path: self.config.dir.display().to_string(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            let stale = name.ends_with(".inprogress")
                && runs.iter().any(|r| name.starts_with(r.as_str()))
                && !name.starts_with(&current_attempt)
                && !keep.contains(path.as_path());
            if stale {
                tracing::info!(file = %path.display(), "deleting a part file no completed checkpoint covers");
                let _ = fs::remove_file(&path);
            }
        }
        Ok(())
    }

    fn encode(&self, batch: &RecordBatch) -> Result<Vec<u8>> {
        self.config.format.encode(batch)
    }
}

#[async_trait]
impl Operator for FileSink {
    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if init.restored {
            self.restored = Some(init.entries().iter().map(|e| Pending::decode(e)).collect::<Result<_>>()?);
        }
        Ok(())
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        fs::create_dir_all(&self.config.dir).map_err(|source| OperatorError::Io {
            action: "cannot create directory",
            path: self.config.dir.display().to_string(),
            source,
        })?;
        let run: String = ctx.job_id.chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect();
        self.prefix = format!("part-{run}-{}-{}", ctx.attempt, ctx.subtask);
        self.checkpointing = ctx.checkpointing;
        self.recover(ctx, &run)
    }

    async fn process_batch(&mut self, batch: RecordBatch, _out: &mut Collector) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let bytes = self.encode(&batch)?;
        let (max_bytes, interval) = (self.config.max_file_bytes, self.config.rollover_interval);
        let part = self.open_part()?;
        part.writer.write_all(&bytes).map_err(|source| OperatorError::Io {
            action: "cannot write",
            path: part.hidden.display().to_string(),
            source,
        })?;
        part.bytes += bytes.len() as u64;
        if part.bytes >= max_bytes || part.opened.elapsed() >= interval {
            self.close_part()?;
        }
        Ok(())
    }

    async fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorState> {
        self.close_part()?;
        for pending in &mut self.pending {
            pending.checkpoint.get_or_insert(checkpoint_id);
        }
        // Union: on restore every subtask sees every file, so subtask 0 can tell leftovers
        // from files a checkpoint covers; each file is published by exactly one subtask.
        Ok(OperatorState::union(self.pending.iter().map(Pending::encode).collect()))
    }

    async fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        let (ready, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.checkpoint.is_some_and(|c| c <= checkpoint_id));
        self.pending = waiting;
        for pending in ready {
            pending.publish()?;
        }
        Ok(())
    }

    async fn finish(&mut self, _out: &mut Collector) -> Result<()> {
        self.close_part()
    }
}

/// The `filesystem` connector.
pub struct Filesystem;

impl crate::registry::Connector for Filesystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn roles(&self) -> &'static [crate::Role] {
        &[crate::Role::Source, crate::Role::Sink, crate::Role::Lookup]
    }

    fn source(
        &self,
        _spec: &sluice_proto::ConnectorSpec,
        options: &mut Options<'_>,
        schema: SchemaRef,
    ) -> Result<Box<dyn crate::registry::SourceFactory>> {
        Ok(Box::new(FileSourceConfig::parse(options, schema)?))
    }

    fn sink(
        &self,
        _spec: &sluice_proto::ConnectorSpec,
        options: &mut Options<'_>,
        _schema: SchemaRef,
    ) -> Result<Box<dyn crate::registry::SinkFactory>> {
        Ok(Box::new(FileSinkConfig::parse(options)?))
    }

    fn lookup(
        &self,
        _spec: &sluice_proto::ConnectorSpec,
        options: &mut Options<'_>,
        schema: SchemaRef,
    ) -> Result<Box<dyn crate::registry::LookupFactory>> {
        Ok(Box::new(lookup::FileLookupConfig::parse(options, schema)?))
    }
}

impl crate::registry::SourceFactory for FileSourceConfig {
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>, batch_rows: usize) -> Box<dyn Source> {
        Box::new(FileSource::new(*self, batch_rows))
    }
}

impl crate::registry::SinkFactory for FileSinkConfig {
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>) -> Box<dyn Operator> {
        Box::new(FileSink::new(*self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false), Field::new("s", DataType::Utf8, true)]))
    }

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    async fn read_all(config: FileSourceConfig) -> Result<(Vec<RecordBatch>, u64)> {
        let mut source = FileSource::new(config, 2);
        source.open(&TaskContext::single("src")).await?;
        let mut out = Vec::new();
        loop {
            match source.poll_next().await? {
                SourcePoll::Batch(b) => out.push(b),
                SourcePoll::Idle | SourcePoll::SplitsAssigned(_) => {}
                SourcePoll::Finished => return Ok((out, source.skipped_records())),
            }
        }
    }

    #[tokio::test]
    async fn sink_then_source_round_trip_and_hides_in_progress_files() {
        for format in ["json", "csv"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().to_str().unwrap();
            let values = opts(&[("path", path), ("format", format)]);
            let mut options = Options::new("t", &values);
            let mut sink = FileSink::new(FileSinkConfig::parse(&mut options).unwrap());
            sink.open(&TaskContext::single("sink")).await.unwrap();
            let batch = RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from(vec![1, 2, 3])),
                    Arc::new(StringArray::from(vec![Some("a"), None, Some("c,d")])),
                ],
            )
            .unwrap();
            sink.process_batch(batch.clone(), &mut Collector::default()).await.unwrap();
            let names: Vec<String> =
                fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
            assert!(names.iter().all(|n| n.starts_with('.')), "{names:?}");
            sink.finish(&mut Collector::default()).await.unwrap();
            let names: Vec<String> =
                fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
            assert_eq!(names.len(), 1);
            assert!(names[0].starts_with("part-") && names[0].ends_with(format), "{names:?}");

            let mut options = Options::new("t", &values);
            let (batches, skipped) = read_all(FileSourceConfig::parse(&mut options, schema()).unwrap()).await.unwrap();
            assert_eq!(skipped, 0);
            let read = arrow::compute::concat_batches(&schema(), &batches).unwrap();
            assert_eq!(read, batch, "{format}");
        }
    }

    fn visible_and_hidden(dir: &Path) -> (Vec<String>, Vec<String>) {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        names.sort();
        names.into_iter().partition(|n| !n.starts_with('.'))
    }

    /// Checkpointed: files appear only when their checkpoint completes; a restored sink
    /// publishes what the restored checkpoint covers and deletes the failed attempt's rest.
    #[tokio::test]
    async fn two_phase_commit_publishes_on_completion_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let values = opts(&[("path", dir.path().to_str().unwrap()), ("format", "json")]);
        let config = FileSinkConfig::parse(&mut Options::new("t", &values)).unwrap();
        let batch = RecordBatch::try_new(
            schema(),
            vec![Arc::new(Int64Array::from(vec![1, 2])), Arc::new(StringArray::from(vec![Some("a"), None]))],
        )
        .unwrap();
        let mut ctx = TaskContext::single("sink");
        ctx.job_id = "job12345".into();
        ctx.checkpointing = true;
        let mut sink = FileSink::new(config.clone());
        sink.open(&ctx).await.unwrap();
        sink.process_batch(batch.clone(), &mut Collector::default()).await.unwrap();
        let state1 = sink.snapshot_state(1).await.unwrap();
        sink.notify_checkpoint_complete(1).await.unwrap();
        assert_eq!(visible_and_hidden(dir.path()).0.len(), 1, "checkpoint 1 published its file");
        sink.process_batch(batch.clone(), &mut Collector::default()).await.unwrap();
        let state2 = sink.snapshot_state(2).await.unwrap();
        assert_eq!(state2.entries(OperatorState::DEFAULT_LIST).len(), 1);
        sink.process_batch(batch.clone(), &mut Collector::default()).await.unwrap();
        // Crash: checkpoint 2 completed but was never committed; the third batch is uncovered.
        drop(sink);
        let (visible, hidden) = visible_and_hidden(dir.path());
        assert_eq!((visible.len(), hidden.len()), (1, 2), "{visible:?} {hidden:?}");
        assert!(state1.entries(OperatorState::DEFAULT_LIST).len() == 1);

        let mut restored = FileSink::new(config);
        restored.initialize_state(StateInit::restoring(state2)).await.unwrap();
        ctx.attempt = 1;
        restored.open(&ctx).await.unwrap();
        let (visible, hidden) = visible_and_hidden(dir.path());
        assert_eq!(visible.len(), 2, "checkpoint 2's file was published on restore: {visible:?}");
        assert!(hidden.is_empty(), "the uncovered in-progress file was deleted: {hidden:?}");
    }

    #[tokio::test]
    async fn bad_json_line_fails_with_file_and_line_or_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.json");
        fs::write(&file, "{\"k\": 1, \"s\": \"a\"}\n{\"k\": oops}\n{\"k\": 3}\n").unwrap();
        let path = file.to_str().unwrap();
        let values = opts(&[("path", path), ("format", "json")]);
        let err =
            read_all(FileSourceConfig::parse(&mut Options::new("t", &values), schema()).unwrap()).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("in.json:2"), "{text}");
        assert!(text.contains("json.ignore-parse-errors"), "{text}");

        let values = opts(&[("path", path), ("format", "json"), ("json.ignore-parse-errors", "true")]);
        let (batches, skipped) =
            read_all(FileSourceConfig::parse(&mut Options::new("t", &values), schema()).unwrap()).await.unwrap();
        assert_eq!(skipped, 1);
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    }

    #[test]
    fn remote_schemes_are_refused_clearly() {
        let values = opts(&[("path", "s3://bucket/x"), ("format", "json")]);
        let err = FileSinkConfig::parse(&mut Options::new("table 'out'", &values)).unwrap_err().to_string();
        assert!(err.contains("'s3://' scheme is not supported yet"), "{err}");
    }
}
