//! The filesystem source: files under the table's path are dealt to subtasks in name
//! order and read one at a time from a checkpointed position (bytes for line formats, rows
//! for Parquet and Avro). A partitioned table's files are read only from partitions the
//! pushed conditions allow, and its partition columns come from the directory names. With
//! `source.monitor-interval` the source never ends: it discovers new files ([`super::monitor`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek};

use arrow::array::{new_null_array, ArrayRef};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;

use sluice_core::state::{put_bytes, Distribution, Reader};
use sluice_core::{OperatorError, OperatorState, Result, Source, SourcePoll, StateInit, TaskContext};

use super::monitor::{Discovery, SEEN_LIST};
use super::partition::Partitioning;
use super::predicate::{narrow, ColumnBounds};
use super::{list_files, FileSourceConfig};
use crate::format::Format;

/// A file to read, and how far it has been read: its checkpointed position.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FileSplit {
    /// The file: a path, or an object's URL.
    pub path: String,
    /// Bytes read so far (line formats) or rows read so far (Parquet).
    pub offset: u64,
    /// Lines read so far (for error messages).
    pub line: u64,
}

impl FileSplit {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.offset.to_le_bytes().to_vec();
        out.extend_from_slice(&self.line.to_le_bytes());
        put_bytes(&mut out, self.path.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "filesystem source");
        Ok(FileSplit { offset: r.u64()?, line: r.u64()?, path: r.string()? })
    }
}

/// How many files and row groups a scan read and skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanCounts {
    /// Files under the path (of a partitioned table: in partition directories).
    pub files: u64,
    /// Files skipped because their partition cannot match.
    pub files_pruned: u64,
    /// Files opened.
    pub files_opened: u64,
    /// Parquet row groups in the files opened.
    pub row_groups: u64,
    /// Parquet row groups read.
    pub row_groups_read: u64,
}

/// The files of the table to read, after partition pruning, in name order.
pub(super) fn table_files(config: &FileSourceConfig, counts: &mut ScanCounts) -> Result<Vec<String>> {
    let listed: Vec<String> = match config.path.local_path() {
        Some(path) => list_files(path)?.iter().map(|p| p.display().to_string()).collect(),
        None => config
            .path
            .files()
            .map_err(|e| storage_error("cannot list", &config.path.to_string(), e))?
            .into_iter()
            .filter(|relative| !relative.split('/').any(|part| part.starts_with('.') || part.starts_with('_')))
            .map(|relative| config.path.join(&relative).to_string())
            .collect(),
    };
    let mut files = Vec::new();
    for path in listed {
        let Some(values) = partition_values(config, &path) else { continue };
        counts.files += 1;
        if may_match(config, &values) {
            files.push(path);
        } else {
            counts.files_pruned += 1;
        }
    }
    Ok(files)
}

/// The partition values of `file` (none for an unpartitioned table); `None` when the file
/// is not in a partition directory.
fn partition_values(config: &FileSourceConfig, file: &str) -> Option<Vec<Option<String>>> {
    if config.partitioning.is_empty() {
        return Some(Vec::new());
    }
    config.partitioning.values(config.relative(file))
}

/// A storage failure as an operator error.
pub(super) fn storage_error(action: &'static str, path: &str, e: sluice_storage::StorageError) -> OperatorError {
    OperatorError::Io { action, path: path.to_string(), source: std::io::Error::other(e.to_string()) }
}

/// Opens `file`: a local file as it is, an object through a local copy (removed once
/// open).
fn open_file(file: &str) -> Result<File> {
    let location = sluice_storage::Location::parse(file).map_err(|e| storage_error("cannot open", file, e))?;
    if let Some(path) = location.local_path() {
        return File::open(path).map_err(|source| OperatorError::Io {
            action: "cannot open",
            path: file.into(),
            source,
        });
    }
    let copy = tempfile::NamedTempFile::new().map_err(|source| OperatorError::Io {
        action: "cannot stage",
        path: file.into(),
        source,
    })?;
    location.fetch(copy.path(), true).map_err(|e| storage_error("cannot download", file, e))?;
    // The open file outlives its name.
    copy.reopen().map_err(|source| OperatorError::Io { action: "cannot open", path: file.into(), source })
}

/// False when the pushed conditions on partition columns rule the partition out.
fn may_match(config: &FileSourceConfig, values: &[Option<String>]) -> bool {
    let mut keep = [true];
    for predicate in &config.predicates {
        let Some(i) = config.partitioning.keys.iter().position(|k| *k == predicate.column) else { continue };
        let Ok(field) = config.schema.field_with_name(&predicate.column) else { continue };
        let Ok(value) = Partitioning::constant(values[i].as_deref(), field.data_type(), 1, &predicate.column) else {
            continue;
        };
        let nulls = arrow::array::UInt64Array::from(vec![u64::from(values[i].is_none())]);
        let bounds = ColumnBounds { min: value.clone(), max: value, null_counts: Some(nulls), rows: vec![1] };
        narrow(&mut keep, predicate, &bounds);
    }
    keep[0]
}

enum Body {
    Lines(BufReader<File>),
    Parquet(ParquetRecordBatchReader),
    /// An Avro file, and the rows still to skip to reach the checkpointed position.
    Avro(Box<arrow_avro::reader::Reader<BufReader<File>>>, u64),
}

/// One file being read.
pub(super) struct FileCursor {
    pub split: FileSplit,
    partition: Vec<Option<String>>,
    body: Body,
}

impl FileCursor {
    /// Opens `split` at its position.
    pub fn open(
        config: &FileSourceConfig,
        split: FileSplit,
        batch_rows: usize,
        counts: &mut ScanCounts,
    ) -> Result<Self> {
        let partition = partition_values(config, &split.path).unwrap_or_default();
        let path = split.path.clone();
        counts.files_opened += 1;
        let body = if config.format.format == Format::Parquet {
            let wanted: Vec<&str> = config.output.fields().iter().map(|f| f.name().as_str()).collect();
            let file = open_file(&split.path)?;
            let open = super::parquet::open(file, &split.path, &wanted, &config.predicates, batch_rows, split.offset)?;
            counts.row_groups += open.row_groups as u64;
            counts.row_groups_read += open.row_groups_read as u64;
            Body::Parquet(open.reader)
        } else if config.format.format == Format::Avro {
            let file = open_file(&split.path)?;
            let reader = crate::format::avro::file_reader(file, &config.scan_file_schema, batch_rows)
                .map_err(|message| OperatorError::BadFile { path, message })?;
            Body::Avro(Box::new(reader), split.offset)
        } else {
            let mut file = open_file(&split.path)?;
            if split.offset > 0 {
                file.seek(std::io::SeekFrom::Start(split.offset)).map_err(|source| OperatorError::Io {
                    action: "cannot seek in",
                    path,
                    source,
                })?;
            }
            Body::Lines(BufReader::new(file))
        };
        Ok(FileCursor { split, partition, body })
    }

    /// The next rows of the file as the scan's columns; `None` at its end. Bad records are
    /// counted in `skipped` where the format skips them.
    pub fn next_batch(
        &mut self,
        config: &FileSourceConfig,
        batch_rows: usize,
        skipped: &mut u64,
    ) -> Result<Option<RecordBatch>> {
        loop {
            let decoded = match &mut self.body {
                Body::Parquet(reader) => match reader.next() {
                    None => return Ok(None),
                    Some(batch) => {
                        let batch = batch.map_err(|e| OperatorError::BadFile {
                            path: self.split.path.clone(),
                            message: format!("cannot read Parquet: {e}"),
                        })?;
                        self.split.offset += batch.num_rows() as u64;
                        Some(batch)
                    }
                },
                Body::Avro(reader, skip) => match reader.next() {
                    None => return Ok(None),
                    Some(batch) => {
                        let batch = batch.map_err(|e| OperatorError::BadFile {
                            path: self.split.path.clone(),
                            message: format!("cannot read Avro: {e}"),
                        })?;
                        let rows = batch.num_rows() as u64;
                        let skipped_here = (*skip).min(rows);
                        *skip -= skipped_here;
                        self.split.offset += rows - skipped_here;
                        Some(batch.slice(skipped_here as usize, (rows - skipped_here) as usize))
                    }
                },
                Body::Lines(reader) => {
                    let lines = read_lines(reader, &mut self.split, batch_rows)?;
                    if lines.is_empty() {
                        return Ok(None);
                    }
                    decode_lines(config, &lines, &self.split.path, skipped)?
                }
            };
            if let Some(batch) = decoded.filter(|b| b.num_rows() > 0) {
                return self.assemble(config, &batch).map(Some);
            }
        }
    }

    /// The scan's columns from a batch of the file's: partition columns from the
    /// directory, the rest by name, cast to the table's types (NULL where a file lacks a
    /// nullable column).
    fn assemble(&self, config: &FileSourceConfig, batch: &RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(config.output.fields().len());
        for field in config.output.fields() {
            let name = field.name();
            if let Some(i) = config.partitioning.keys.iter().position(|k| k == name) {
                columns.push(Partitioning::constant(self.partition[i].as_deref(), field.data_type(), rows, name)?);
                continue;
            }
            let column = match batch.column_by_name(name) {
                Some(c) if c.data_type() == field.data_type() => c.clone(),
                Some(c) => arrow::compute::cast(c, field.data_type()).map_err(|e| OperatorError::BadFile {
                    path: self.split.path.clone(),
                    message: format!(
                        "column '{name}' is {} in the file, not {}: {e}",
                        c.data_type(),
                        field.data_type()
                    ),
                })?,
                None if field.is_nullable() => new_null_array(field.data_type(), rows),
                None => {
                    return Err(OperatorError::BadFile {
                        path: self.split.path.clone(),
                        message: format!("the file has no column '{name}', which is NOT NULL"),
                    })
                }
            };
            columns.push(column);
        }
        let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(config.output.clone(), columns, &options)
            .map_err(|e| OperatorError::arrow("cannot assemble the file's rows", e))
    }
}

/// Reads up to `max` non-blank lines, advancing the split's position.
fn read_lines(reader: &mut BufReader<File>, split: &mut FileSplit, max: usize) -> Result<Vec<(u64, String)>> {
    let mut lines = Vec::with_capacity(max);
    while lines.len() < max {
        let mut line = String::new();
        let n = reader.read_line(&mut line).map_err(|source| OperatorError::Io {
            action: "cannot read",
            path: split.path.clone(),
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
    Ok(lines)
}

/// Decodes lines into the file's columns; a bad line fails with its file and line number,
/// or is skipped and counted when the format says so.
fn decode_lines(
    config: &FileSourceConfig,
    lines: &[(u64, String)],
    file: &str,
    skipped: &mut u64,
) -> Result<Option<RecordBatch>> {
    let schema: &SchemaRef = &config.file_schema;
    let joined: String = lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n");
    if let Ok(batch) = config.format.decode(schema, &joined, lines.len()) {
        return Ok(batch);
    }
    // Find the bad line(s): decode one at a time.
    let mut good = Vec::new();
    for (line_no, line) in lines {
        match config.format.decode(schema, line, 1) {
            Ok(Some(b)) => good.push(b),
            Ok(None) => {}
            Err(message) if config.format.ignore_parse_errors => {
                *skipped += 1;
                tracing::warn!(file, line = line_no, %message, "skipping bad record");
            }
            Err(message) => {
                return Err(OperatorError::BadRecord {
                    location: format!("{file}:{line_no}"),
                    message,
                    skip_option: config.format.skip_option(),
                })
            }
        }
    }
    if good.is_empty() {
        return Ok(None);
    }
    arrow::compute::concat_batches(schema, &good)
        .map(Some)
        .map_err(|e| OperatorError::arrow("cannot assemble records", e))
}

/// A running filesystem source subtask.
pub struct FileSource {
    config: FileSourceConfig,
    batch_rows: usize,
    /// Files still to read, the next one first.
    files: VecDeque<FileSplit>,
    current: Option<FileCursor>,
    restored: Option<Vec<FileSplit>>,
    /// New files found while the job runs (`source.monitor-interval`); `None`: the source
    /// reads the files listed when it opens, and ends.
    discovery: Option<Discovery>,
    skipped: u64,
    counts: ScanCounts,
}

impl FileSource {
    /// A source over `config` emitting batches of at most `batch_rows` rows.
    pub fn new(config: FileSourceConfig, batch_rows: usize) -> Self {
        FileSource {
            discovery: config.monitor_interval.map(Discovery::new),
            config,
            batch_rows,
            files: VecDeque::new(),
            current: None,
            restored: None,
            skipped: 0,
            counts: ScanCounts::default(),
        }
    }

    /// Queues the new files discovery finds.
    fn discover(&mut self) -> Result<()> {
        if let Some(discovery) = self.discovery.as_mut() {
            let new = discovery.discover(&self.config, &mut self.counts)?;
            self.files.extend(new.into_iter().map(|path| FileSplit { path, offset: 0, line: 0 }));
        }
        Ok(())
    }

    /// Logs what the scan read, once a bounded source has read everything.
    fn log_finished(&self) {
        if self.skipped > 0 {
            tracing::warn!(skipped = self.skipped, "filesystem source skipped bad records");
        }
        let c = self.counts;
        tracing::info!(
            files_opened = c.files_opened,
            row_groups = c.row_groups,
            row_groups_read = c.row_groups_read,
            "filesystem source finished: opened {} files, read {} of {} row groups",
            c.files_opened,
            c.row_groups_read,
            c.row_groups
        );
    }

    /// What this subtask's scan read and skipped so far.
    pub fn counts(&self) -> ScanCounts {
        self.counts
    }
}

#[async_trait]
impl Source for FileSource {
    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if init.restored {
            self.restored = Some(init.entries().iter().map(|e| FileSplit::decode(e)).collect::<Result<_>>()?);
            if let Some(discovery) = self.discovery.as_mut() {
                discovery.restore(init.list(SEEN_LIST))?;
            }
        }
        Ok(())
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        if let Some(discovery) = self.discovery.as_mut() {
            discovery.open(ctx);
            self.files = self.restored.take().unwrap_or_default().into();
            return self.discover();
        }
        let splits = match self.restored.take() {
            Some(splits) => splits,
            None => table_files(&self.config, &mut self.counts)?
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i as u32 % ctx.parallelism.max(1) == ctx.subtask)
                .map(|(_, path)| FileSplit { path, offset: 0, line: 0 })
                .collect(),
        };
        if ctx.subtask == 0 && self.counts.files > 0 {
            tracing::info!(
                path = %self.config.path,
                files = self.counts.files,
                pruned = self.counts.files_pruned,
                "filesystem source: {} of {} files left after partition pruning",
                self.counts.files - self.counts.files_pruned,
                self.counts.files
            );
        }
        self.files = splits.into();
        Ok(())
    }

    fn skipped_records(&self) -> u64 {
        self.skipped
    }

    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState> {
        let mut entries: Vec<Vec<u8>> = self.current.iter().map(|c| c.split.encode()).collect();
        entries.extend(self.files.iter().map(FileSplit::encode));
        let state = OperatorState::split(entries);
        Ok(match &self.discovery {
            Some(discovery) => state.with_list(SEEN_LIST, Distribution::Union, discovery.snapshot()),
            None => state,
        })
    }

    async fn poll_next(&mut self) -> Result<SourcePoll> {
        loop {
            if self.current.is_none() {
                if self.files.is_empty() && self.discovery.as_ref().is_some_and(Discovery::due) {
                    self.discover()?;
                }
                let Some(next) = self.files.pop_front() else {
                    if let Some(discovery) = &self.discovery {
                        discovery.idle().await;
                        return Ok(SourcePoll::Idle);
                    }
                    self.log_finished();
                    return Ok(SourcePoll::Finished);
                };
                self.current = Some(FileCursor::open(&self.config, next, self.batch_rows, &mut self.counts)?);
            }
            let Some(cursor) = self.current.as_mut() else { continue };
            match cursor.next_batch(&self.config, self.batch_rows, &mut self.skipped)? {
                Some(batch) => return Ok(SourcePoll::Batch(batch)),
                None => self.current = None,
            }
        }
    }
}
