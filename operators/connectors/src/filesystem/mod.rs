//! The `filesystem` connector with Flink's options: `path`, `format` (`json`, `csv`,
//! `parquet`, `avro`, and for sinks `debezium-json`), the format's options
//! (`json.ignore-parse-errors`, `csv.field-delimiter`, `parquet.compression`, ...), for
//! sinks `sink.rolling-policy.file-size` and `sink.rolling-policy.rollover-interval`, for
//! tables `PARTITIONED BY` columns `partition.default-name` and the
//! `sink.partition-commit.*` options ([`partition`]), and for lookups
//! (`FOR SYSTEM_TIME AS OF`) `lookup.join.cache.ttl` ([`lookup`]).
//!
//! The source ([`source`]) takes the planner's projection and conditions: it reads only
//! the Parquet columns a query uses, and skips partitions and row groups that cannot match.
//! It reads the files there when it starts and ends, or with `source.monitor-interval`
//! runs on and reads new files as they appear ([`monitor`]).
//! The sink ([`sink`]) is a two-phase commit of part files.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_storage::Location;

use arrow::datatypes::{Schema, SchemaRef};

use crate::format::{Format, FormatOptions};

mod lookup;
mod monitor;
pub mod parquet;
pub mod partition;
mod predicate;
pub mod sink;
pub mod source;

use partition::{CommitPolicy, Partitioning};
pub use sink::FileSink;
use sluice_core::options::Options;
use sluice_core::{OperatorError, Result};
use sluice_proto::{ConnectorSpec, ScanPredicate};
pub use source::FileSource;

/// Options only a sink reads.
const SINK_ONLY_OPTIONS: &[&str] = &[
    "sink.rolling-policy.file-size",
    "sink.rolling-policy.rollover-interval",
    "sink.rolling-policy.check-interval",
    "sink.parallelism",
    "auto-compaction",
    "sink.partition-commit.trigger",
    "sink.partition-commit.delay",
    "sink.partition-commit.policy.kind",
    "sink.partition-commit.success-file.name",
    "sink.partition-commit.watermark-time-zone",
    "partition.time-extractor.kind",
    "partition.time-extractor.timestamp-pattern",
    "partition.time-extractor.timestamp-formatter",
];

/// Parsed options of a filesystem source.
#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    /// The table's directory (or file): a path or an object storage URL.
    path: Location,
    /// `path` as text without a trailing `/`, the prefix of every file's name under it.
    root: String,
    format: FormatOptions,
    /// Every column of the table.
    schema: SchemaRef,
    /// The columns kept in the files (all but the partition columns).
    file_schema: SchemaRef,
    /// The columns the scan produces (the table's, or those pushed down).
    output: SchemaRef,
    /// The file columns the scan reads: those of `output` kept in the files (all of
    /// `file_schema` when the scan reads only partition columns, so rows are still counted).
    scan_file_schema: SchemaRef,
    partitioning: Partitioning,
    /// Conditions pushed down by the planner.
    predicates: Vec<ScanPredicate>,
    /// `source.monitor-interval`: how often an unbounded source lists the path for new
    /// files; `None`: the source reads the files there when it starts, and ends.
    monitor_interval: Option<Duration>,
}

impl FileSourceConfig {
    /// Reads the options of a filesystem source table (`spec` holds its partition columns
    /// and the scan's pushdown).
    pub fn parse(spec: &ConnectorSpec, options: &mut Options<'_>, schema: SchemaRef) -> Result<Self> {
        let path = location(options.required("path")?, options)?;
        let format = FormatOptions::parse(options, &[Format::Json, Format::Csv, Format::Parquet, Format::Avro])?;
        if format.format == Format::Parquet {
            parquet::ParquetOptions::parse(options)?;
        }
        options.declare("avro.codec");
        options.declare("scan.parallelism");
        let monitor_interval = options.duration("source.monitor-interval")?.filter(|d| !d.is_zero());
        // One DDL serves reading and writing, as in Flink: the sink's options are not
        // unknown to a source.
        for key in SINK_ONLY_OPTIONS {
            options.declare(key);
        }
        let partitioning = Partitioning::parse(options, &spec.partition_keys, &schema)?;
        let file_schema = partitioning.file_schema(&schema);
        format.check_schema(&file_schema, options)?;
        let (output, predicates) = match &spec.pushdown {
            Some(p) if !p.columns.is_empty() => {
                let fields = p
                    .columns
                    .iter()
                    .map(|c| schema.field_with_name(c).cloned())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| options.error(format!("the scan reads an unknown column: {e}")))?;
                (std::sync::Arc::new(Schema::new(fields)), p.predicates.clone())
            }
            Some(p) => (schema.clone(), p.predicates.clone()),
            None => (schema.clone(), Vec::new()),
        };
        let read: Vec<_> =
            file_schema.fields().iter().filter(|f| output.field_with_name(f.name()).is_ok()).cloned().collect();
        let scan_file_schema =
            if read.is_empty() { file_schema.clone() } else { std::sync::Arc::new(Schema::new(read)) };
        Ok(FileSourceConfig {
            root: path.to_string().trim_end_matches('/').to_string(),
            path,
            format,
            schema,
            file_schema,
            output,
            scan_file_schema,
            partitioning,
            predicates,
            monitor_interval,
        })
    }

    /// The path of `file` under the table's root (`file` itself when it is not under it).
    fn relative<'a>(&self, file: &'a str) -> &'a str {
        file.strip_prefix(self.root.as_str()).map_or(file, |r| r.trim_start_matches('/'))
    }
}

/// The table's `path`: a directory (or `file://` URI) every task manager reaches, or an
/// `s3://bucket/prefix` URL (the object storage settings are the process's, as for
/// checkpoints).
fn location(raw: &str, options: &Options<'_>) -> Result<Location> {
    Location::parse(raw).map_err(|e| options.error(format!("option 'path': {e}")))
}

/// Lists the visible files under `path` (itself if it is a file), sorted by name: hidden
/// (`.`) and marker (`_`) files and directories are left out.
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

/// Parsed options of a filesystem sink.
#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    /// The table's directory: a path or an object storage URL.
    dir: Location,
    format: FormatOptions,
    parquet: parquet::ParquetOptions,
    max_file_bytes: u64,
    rollover_interval: Duration,
    avro_codec: Option<arrow_avro::compression::CompressionCodec>,
    partitioning: Partitioning,
    commit: Option<CommitPolicy>,
    /// The columns written into the files (all but the partition columns).
    file_schema: SchemaRef,
}

impl FileSinkConfig {
    /// Reads the options of a filesystem sink table whose rows have `schema`.
    pub fn parse(spec: &ConnectorSpec, options: &mut Options<'_>, schema: SchemaRef) -> Result<Self> {
        let dir = location(options.required("path")?, options)?;
        let format = FormatOptions::parse(
            options,
            &[Format::Json, Format::Csv, Format::DebeziumJson, Format::Parquet, Format::Avro],
        )?;
        let parquet = parquet::ParquetOptions::parse(options)?;
        let avro_codec = crate::format::avro::file_codec(options.get("avro.codec")).map_err(|m| options.error(m))?;
        let max_file_bytes = options.bytes("sink.rolling-policy.file-size")?.unwrap_or(sink::DEFAULT_FILE_BYTES);
        let rollover_interval =
            options.duration("sink.rolling-policy.rollover-interval")?.unwrap_or(sink::DEFAULT_ROLLOVER);
        options.declare("sink.rolling-policy.check-interval");
        options.declare("sink.parallelism");
        options.declare("auto-compaction");
        let partitioning = Partitioning::parse(options, &spec.partition_keys, &schema)?;
        if format.format == Format::DebeziumJson && !partitioning.is_empty() {
            return Err(
                options.error("a table PARTITIONED BY columns takes appended rows, not 'debezium-json' changes")
            );
        }
        let commit = CommitPolicy::parse(options, &partitioning)?;
        let file_schema = partitioning.file_schema(&schema);
        format.check_schema(&file_schema, options)?;
        Ok(FileSinkConfig {
            dir,
            format,
            parquet,
            avro_codec,
            max_file_bytes,
            rollover_interval,
            partitioning,
            commit,
            file_schema,
        })
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

    fn bounded(&self, spec: &ConnectorSpec) -> bool {
        spec.options
            .get("source.monitor-interval")
            .is_none_or(|i| sluice_core::options::parse_duration(i).is_ok_and(|d| d.is_zero()))
    }

    fn how_to_bound(&self) -> Option<&'static str> {
        Some("leave out 'source.monitor-interval' to read the files there when the job starts")
    }

    fn pushdown(&self, spec: &ConnectorSpec) -> crate::registry::Pushdown {
        // Parquet and Avro decode only the columns used; Parquet skips row groups; every
        // format skips partitions.
        let format = spec.options.get("format").map(String::as_str);
        let parquet = format == Some("parquet");
        crate::registry::Pushdown {
            projection: parquet || format == Some("avro"),
            filters: parquet || !spec.partition_keys.is_empty(),
        }
    }

    fn source(
        &self,
        spec: &ConnectorSpec,
        options: &mut Options<'_>,
        schema: SchemaRef,
    ) -> Result<Box<dyn crate::registry::SourceFactory>> {
        Ok(Box::new(FileSourceConfig::parse(spec, options, schema)?))
    }

    fn sink(
        &self,
        spec: &ConnectorSpec,
        options: &mut Options<'_>,
        schema: SchemaRef,
    ) -> Result<Box<dyn crate::registry::SinkFactory>> {
        Ok(Box::new(FileSinkConfig::parse(spec, options, schema)?))
    }

    fn lookup(
        &self,
        spec: &ConnectorSpec,
        options: &mut Options<'_>,
        schema: SchemaRef,
    ) -> Result<Box<dyn crate::registry::LookupFactory>> {
        Ok(Box::new(lookup::FileLookupConfig::parse(spec, options, schema)?))
    }
}

impl crate::registry::SourceFactory for FileSourceConfig {
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>, batch_rows: usize) -> Box<dyn sluice_core::Source> {
        Box::new(FileSource::new(*self, batch_rows))
    }
}

impl crate::registry::SinkFactory for FileSinkConfig {
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>) -> Box<dyn sluice_core::Operator> {
        Box::new(FileSink::new(*self))
    }
}

#[cfg(test)]
mod tests;
