//! The `filesystem` connector with Flink's options: `path`, `format` (`json` | `csv`),
//! `json.ignore-parse-errors`, `csv.field-delimiter`, `csv.ignore-parse-errors`, and for the
//! sink `sink.rolling-policy.file-size` and `sink.rolling-policy.rollover-interval`.
//!
//! The source reads newline-delimited records; files are dealt to subtasks in name order.
//! The sink writes part files named `part-<run>-<subtask>-<n>.<format>`; a file still being
//! written is hidden behind a leading dot (`.part-...inprogress`) and renamed when complete.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::options::Options;
use crate::{Collector, Operator, OperatorError, Result, Source, SourcePoll, TaskContext};

/// Record formats of the filesystem connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Newline-delimited JSON objects.
    Json,
    /// Comma-separated values without a header, as Flink writes them.
    Csv,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }
}

/// Options shared by source and sink.
#[derive(Debug, Clone)]
pub struct FormatOptions {
    format: Format,
    ignore_parse_errors: bool,
    delimiter: u8,
}

impl FormatOptions {
    fn parse(options: &mut Options<'_>) -> Result<Self> {
        let format = match options.choice("format", &["json", "csv"])? {
            Some(f) if f == "json" => Format::Json,
            Some(_) => Format::Csv,
            None => return Err(options.error("missing required option 'format' ('json' or 'csv')")),
        };
        let json_ignore = options.bool("json.ignore-parse-errors")?.unwrap_or(false);
        options.declare("json.fail-on-missing-field");
        let csv_ignore = options.bool("csv.ignore-parse-errors")?.unwrap_or(false);
        let delimiter = match options.get("csv.field-delimiter") {
            None => b',',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some("\\t") => b'\t',
            Some(d) => return Err(options.error(format!("option 'csv.field-delimiter' = '{d}' must be one character"))),
        };
        let ignore_parse_errors = match format {
            Format::Json => json_ignore,
            Format::Csv => csv_ignore,
        };
        Ok(FormatOptions { format, ignore_parse_errors, delimiter })
    }

    fn skip_option(&self) -> &'static str {
        match self.format {
            Format::Json => "json.ignore-parse-errors",
            Format::Csv => "csv.ignore-parse-errors",
        }
    }
}

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
        let format = FormatOptions::parse(options)?;
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
        let entries = fs::read_dir(&dir)
            .map_err(|source| OperatorError::Io { action: "cannot list", path: dir.display().to_string(), source })?;
        for entry in entries {
            let entry = entry.map_err(|source| OperatorError::Io { action: "cannot list", path: dir.display().to_string(), source })?;
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

/// A running filesystem source subtask.
pub struct FileSource {
    config: FileSourceConfig,
    batch_rows: usize,
    files: Vec<PathBuf>,
    current: Option<(PathBuf, BufReader<File>, u64)>,
    skipped: u64,
}

impl FileSource {
    /// A source over `config` emitting batches of at most `batch_rows` rows.
    pub fn new(config: FileSourceConfig, batch_rows: usize) -> Self {
        FileSource { config, batch_rows, files: Vec::new(), current: None, skipped: 0 }
    }

    /// Records skipped because they could not be parsed.
    pub fn skipped_records(&self) -> u64 {
        self.skipped
    }

    fn decode(&mut self, lines: &[(u64, String)], file: &Path) -> Result<Option<RecordBatch>> {
        let joined: String = lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n");
        match decode_lines(&self.config, &joined, lines.len()) {
            Ok(batch) => Ok(batch),
            Err(_) => {
                // Find the bad line(s): decode one at a time.
                let mut good = Vec::new();
                for (line_no, line) in lines {
                    match decode_lines(&self.config, line, 1) {
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

fn decode_lines(config: &FileSourceConfig, text: &str, max_rows: usize) -> std::result::Result<Option<RecordBatch>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    match config.format.format {
        Format::Json => {
            let mut decoder = arrow::json::ReaderBuilder::new(config.schema.clone())
                .with_batch_size(max_rows.max(1))
                .build_decoder()
                .map_err(|e| e.to_string())?;
            decoder.decode(text.as_bytes()).map_err(|e| e.to_string())?;
            decoder.flush().map_err(|e| e.to_string())
        }
        Format::Csv => {
            let format = arrow::csv::reader::Format::default().with_header(false).with_delimiter(config.format.delimiter);
            let reader = arrow::csv::ReaderBuilder::new(config.schema.clone())
                .with_format(format)
                .with_batch_size(max_rows.max(1))
                .build(text.as_bytes())
                .map_err(|e| e.to_string())?;
            let mut batches = Vec::new();
            for b in reader {
                batches.push(b.map_err(|e| e.to_string())?);
            }
            match batches.len() {
                0 => Ok(None),
                1 => Ok(batches.pop()),
                _ => arrow::compute::concat_batches(&config.schema, &batches).map(Some).map_err(|e| e.to_string()),
            }
        }
    }
}

#[async_trait]
impl Source for FileSource {
    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        let all = list_files(&self.config.path)?;
        self.files = all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i as u32 % ctx.parallelism.max(1) == ctx.subtask)
            .map(|(_, f)| f)
            .rev()
            .collect();
        Ok(())
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
                let file = File::open(&next)
                    .map_err(|source| OperatorError::Io { action: "cannot open", path: next.display().to_string(), source })?;
                self.current = Some((next, BufReader::new(file), 0));
            }
            let Some((path, reader, line_no)) = self.current.as_mut() else { continue };
            let mut lines = Vec::with_capacity(self.batch_rows);
            while lines.len() < self.batch_rows {
                let mut line = String::new();
                let n = reader
                    .read_line(&mut line)
                    .map_err(|source| OperatorError::Io { action: "cannot read", path: path.display().to_string(), source })?;
                if n == 0 {
                    break;
                }
                *line_no += 1;
                let trimmed = line.trim_end_matches(['\n', '\r']);
                if !trimmed.trim().is_empty() {
                    lines.push((*line_no, trimmed.to_string()));
                }
            }
            let path = path.clone();
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
        let format = FormatOptions::parse(options)?;
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

/// A running filesystem sink subtask.
pub struct FileSink {
    config: FileSinkConfig,
    prefix: String,
    next_part: u64,
    current: Option<PartFile>,
}

impl FileSink {
    /// A sink writing under `config`'s directory.
    pub fn new(config: FileSinkConfig) -> Self {
        FileSink { config, prefix: String::new(), next_part: 0, current: None }
    }

    fn open_part(&mut self) -> Result<&mut PartFile> {
        if self.current.is_none() {
            let name = format!("{}-{}.{}", self.prefix, self.next_part, self.config.format.format.extension());
            self.next_part += 1;
            let hidden = self.config.dir.join(format!(".{name}.inprogress"));
            let visible = self.config.dir.join(name);
            let file = File::create(&hidden)
                .map_err(|source| OperatorError::Io { action: "cannot create", path: hidden.display().to_string(), source })?;
            self.current = Some(PartFile { hidden, visible, writer: BufWriter::new(file), bytes: 0, opened: Instant::now() });
        }
        Ok(self.current.as_mut().expect("a part file was just opened"))
    }

    /// Flushes, syncs and renames the in-progress part file to its visible name.
    fn commit_part(&mut self) -> Result<()> {
        let Some(mut part) = self.current.take() else { return Ok(()) };
        let path = part.hidden.display().to_string();
        part.writer.flush().map_err(|source| OperatorError::Io { action: "cannot write", path: path.clone(), source })?;
        part.writer
            .get_ref()
            .sync_all()
            .map_err(|source| OperatorError::Io { action: "cannot sync", path: path.clone(), source })?;
        fs::rename(&part.hidden, &part.visible)
            .map_err(|source| OperatorError::Io { action: "cannot publish", path, source })?;
        Ok(())
    }

    fn encode(&self, batch: &RecordBatch) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        match self.config.format.format {
            Format::Json => {
                let mut writer = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::LineDelimited>(&mut buf);
                writer.write(batch).map_err(|e| OperatorError::arrow("cannot encode JSON", e))?;
                writer.finish().map_err(|e| OperatorError::arrow("cannot encode JSON", e))?;
            }
            Format::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(false)
                    .with_delimiter(self.config.format.delimiter)
                    .build(&mut buf);
                writer.write(batch).map_err(|e| OperatorError::arrow("cannot encode CSV", e))?;
            }
        }
        Ok(buf)
    }
}

#[async_trait]
impl Operator for FileSink {
    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        fs::create_dir_all(&self.config.dir).map_err(|source| OperatorError::Io {
            action: "cannot create directory",
            path: self.config.dir.display().to_string(),
            source,
        })?;
        let run: String = ctx.job_id.chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect();
        self.prefix = format!("part-{run}-{}-{}", ctx.attempt, ctx.subtask);
        Ok(())
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
            self.commit_part()?;
        }
        Ok(())
    }

    async fn finish(&mut self, _out: &mut Collector) -> Result<()> {
        self.commit_part()
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
                SourcePoll::Idle => {}
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
                vec![Arc::new(Int64Array::from(vec![1, 2, 3])), Arc::new(StringArray::from(vec![Some("a"), None, Some("c,d")]))],
            )
            .unwrap();
            sink.process_batch(batch.clone(), &mut Collector::default()).await.unwrap();
            let names: Vec<String> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
            assert!(names.iter().all(|n| n.starts_with('.')), "{names:?}");
            sink.finish(&mut Collector::default()).await.unwrap();
            let names: Vec<String> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
            assert_eq!(names.len(), 1);
            assert!(names[0].starts_with("part-") && names[0].ends_with(format), "{names:?}");

            let mut options = Options::new("t", &values);
            let (batches, skipped) = read_all(FileSourceConfig::parse(&mut options, schema()).unwrap()).await.unwrap();
            assert_eq!(skipped, 0);
            let read = arrow::compute::concat_batches(&schema(), &batches).unwrap();
            assert_eq!(read, batch, "{format}");
        }
    }

    #[tokio::test]
    async fn bad_json_line_fails_with_file_and_line_or_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.json");
        fs::write(&file, "{\"k\": 1, \"s\": \"a\"}\n{\"k\": oops}\n{\"k\": 3}\n").unwrap();
        let path = file.to_str().unwrap();
        let values = opts(&[("path", path), ("format", "json")]);
        let err = read_all(FileSourceConfig::parse(&mut Options::new("t", &values), schema()).unwrap()).await.unwrap_err();
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
