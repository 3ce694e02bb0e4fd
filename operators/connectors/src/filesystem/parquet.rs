//! Parquet files of the filesystem connector, through the `parquet` crate with Flink's
//! option names: `parquet.compression` (`SNAPPY` by default, `UNCOMPRESSED`, `GZIP`,
//! `LZ4_RAW`, `ZSTD`), `parquet.block.size` (row-group size in bytes, 128 MiB),
//! `parquet.page.size` (1 MiB) and `parquet.enable.dictionary` (true).
//!
//! Reading takes only the columns a query reads and skips the row groups whose statistics
//! rule out the pushed conditions.

use std::fs::File;

use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sluice_core::options::Options;
use sluice_core::{OperatorError, Result};
use sluice_proto::ScanPredicate;

use super::predicate::{narrow, ColumnBounds};

/// How Parquet files are written.
#[derive(Debug, Clone)]
pub struct ParquetOptions {
    compression: Compression,
    row_group_bytes: usize,
    page_bytes: usize,
    dictionary: bool,
}

impl ParquetOptions {
    /// Reads the `parquet.*` options.
    pub fn parse(options: &mut Options<'_>) -> Result<Self> {
        let compression = match options.get("parquet.compression") {
            None => Compression::SNAPPY,
            Some(name) => compression(name).ok_or_else(|| {
                options.error(format!(
                    "option 'parquet.compression' = '{name}' is not a codec; use UNCOMPRESSED, SNAPPY, GZIP, LZ4_RAW \
                     or ZSTD"
                ))
            })?,
        };
        let row_group_bytes = options.bytes("parquet.block.size")?.unwrap_or(128 << 20).max(1) as usize;
        let page_bytes = options.bytes("parquet.page.size")?.unwrap_or(1 << 20).max(1) as usize;
        let dictionary = options.bool("parquet.enable.dictionary")?.unwrap_or(true);
        options.declare("parquet.utc-timezone");
        options.declare("parquet.writer.version");
        Ok(ParquetOptions { compression, row_group_bytes, page_bytes, dictionary })
    }

    /// The writer properties.
    pub fn properties(&self) -> WriterProperties {
        WriterProperties::builder()
            .set_compression(self.compression)
            .set_max_row_group_bytes(Some(self.row_group_bytes))
            .set_max_row_group_row_count(None)
            .set_data_page_size_limit(self.page_bytes)
            .set_dictionary_enabled(self.dictionary)
            .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

fn compression(name: &str) -> Option<Compression> {
    Some(match name.to_ascii_uppercase().as_str() {
        "UNCOMPRESSED" | "NONE" => Compression::UNCOMPRESSED,
        "SNAPPY" => Compression::SNAPPY,
        "GZIP" => Compression::GZIP(GzipLevel::default()),
        "LZ4" | "LZ4_RAW" => Compression::LZ4_RAW,
        "ZSTD" => Compression::ZSTD(ZstdLevel::default()),
        _ => return None,
    })
}

/// An open Parquet file: its batches, and how many of its row groups are read.
pub struct OpenParquet {
    /// The batches of the row groups read, the columns asked for that the file has, in the
    /// file's order.
    pub reader: ParquetRecordBatchReader,
    /// Row groups in the file.
    pub row_groups: usize,
    /// Row groups read (the rest cannot match the pushed conditions).
    pub row_groups_read: usize,
    /// The file's schema.
    pub schema: SchemaRef,
}

/// Opens `path` reading columns `wanted` (those the file has), skipping the row groups
/// `predicates` rule out and the first `skip_rows` rows of the rest.
pub fn open(
    file: File,
    path: &str,
    wanted: &[&str],
    predicates: &[ScanPredicate],
    batch_rows: usize,
    skip_rows: u64,
) -> Result<OpenParquet> {
    let at = || path.to_string();
    let bad = |e: parquet::errors::ParquetError| OperatorError::BadFile {
        path: at(),
        message: format!("not a readable Parquet file: {e}"),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(bad)?;
    let schema = builder.schema().clone();
    let metadata = builder.metadata().clone();
    let groups = metadata.row_groups();
    let mut keep = vec![true; groups.len()];
    for predicate in predicates {
        if schema.field_with_name(&predicate.column).is_err() {
            continue;
        }
        let Ok(converter) = StatisticsConverter::try_new(&predicate.column, &schema, builder.parquet_schema()) else {
            continue;
        };
        let (Ok(min), Ok(max)) = (converter.row_group_mins(groups.iter()), converter.row_group_maxes(groups.iter()))
        else {
            continue;
        };
        let null_counts = converter.row_group_null_counts(groups.iter()).ok();
        let rows = groups.iter().map(|g| g.num_rows().max(0) as u64).collect();
        narrow(&mut keep, predicate, &ColumnBounds { min, max, null_counts, rows });
    }
    let selected: Vec<usize> = keep.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| i).collect();
    let roots: Vec<usize> = wanted.iter().filter_map(|name| schema.index_of(name).ok()).collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let row_groups_read = selected.len();
    let reader = builder
        .with_projection(mask)
        .with_row_groups(selected)
        .with_batch_size(batch_rows.max(1))
        .with_offset(skip_rows as usize)
        .build()
        .map_err(bad)?;
    Ok(OpenParquet { reader, row_groups: groups.len(), row_groups_read, schema })
}
