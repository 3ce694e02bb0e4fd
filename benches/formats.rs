//! Format benchmark: Parquet and Avro files written and read by the filesystem connector's
//! sink and source, and Avro records encoded and decoded as the Kafka connector does, on
//! the same rows as pyarrow (Parquet) and fastavro (Avro) in `benches/formats_reference.py`.
//!
//! The rows are Nexmark-like bids (three BIGINTs, a DOUBLE, two STRINGs, a TIMESTAMP(3), a
//! nullable STRING). Prints rows/s and bytes/row per format and tool, one thread each.
//! Run with `cargo bench --bench formats`; `SLUICE_BENCH_ROWS` sets the rows (default
//! 1,000,000).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use sluice_connectors::filesystem::{FileSink, FileSinkConfig, FileSource, FileSourceConfig};
use sluice_connectors::format::avro;
use sluice_core::options::Options;
use sluice_core::{Collector, Operator, Source, SourcePoll, TaskContext};
use sluice_proto::ConnectorSpec;

const BATCH: usize = 8192;

/// The columns of the projected reads (as `SELECT id, price FROM bids`).
const PROJECTED: [&str; 2] = ["id", "price"];

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("auction", DataType::Int64, false),
        Field::new("bidder", DataType::Int64, false),
        Field::new("price", DataType::Float64, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("url", DataType::Utf8, false),
        Field::new("at", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        Field::new("extra", DataType::Utf8, true),
    ]))
}

fn batches(rows: usize) -> Vec<RecordBatch> {
    let channels = ["Google", "Facebook", "Baidu", "Apple"];
    (0..rows)
        .step_by(BATCH)
        .map(|start| {
            let ids: Vec<i64> = (start as i64..(start + BATCH).min(rows) as i64).collect();
            RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from(ids.clone())),
                    Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| 1000 + i % 997))),
                    Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| 2000 + (i * 7919) % 10_007))),
                    Arc::new(Float64Array::from_iter_values(ids.iter().map(|i| ((i * 31) % 100_000) as f64 / 100.0))),
                    Arc::new(StringArray::from_iter_values(ids.iter().map(|i| channels[(*i % 4) as usize]))),
                    Arc::new(StringArray::from_iter_values(
                        ids.iter().map(|i| format!("https://www.nexmark.com/item.htm?query=1&channel_id={}", i % 1000)),
                    )),
                    Arc::new(TimestampMillisecondArray::from_iter_values(
                        ids.iter().map(|i| 1_796_342_400_000 + i * 3),
                    )),
                    Arc::new(StringArray::from(
                        ids.iter().map(|i| (i % 3 == 0).then(|| format!("extra-{i}"))).collect::<Vec<_>>(),
                    )),
                ],
            )
            .unwrap()
        })
        .collect()
}

fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum()
}

/// Writes `data` with the filesystem sink in `format`; returns seconds and bytes written.
async fn write(dir: &std::path::Path, format: &str, data: &[RecordBatch]) -> (f64, u64) {
    // Deflate for Avro files: fastavro's snappy needs a package PyPI's fastavro lacks.
    let values = options(&[("path", dir.to_str().unwrap()), ("format", format), ("avro.codec", "deflate")]);
    let config =
        FileSinkConfig::parse(&ConnectorSpec::default(), &mut Options::new("bench", &values), schema()).unwrap();
    let mut sink = FileSink::new(config);
    sink.open(&TaskContext::single("sink")).await.unwrap();
    let started = Instant::now();
    for batch in data {
        sink.process_batch(batch.clone(), &mut Collector::default()).await.unwrap();
    }
    sink.finish(&mut Collector::default()).await.unwrap();
    (started.elapsed().as_secs_f64(), dir_bytes(dir))
}

/// Reads every row back with the filesystem source, only `columns` when given (as the
/// planner pushes a query's columns down); returns seconds and rows.
async fn read(dir: &std::path::Path, format: &str, columns: &[&str]) -> (f64, usize) {
    let values = options(&[("path", dir.to_str().unwrap()), ("format", format)]);
    let pushdown = (!columns.is_empty()).then(|| sluice_proto::ScanPushdown {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        predicates: Vec::new(),
    });
    let spec = ConnectorSpec { pushdown, ..Default::default() };
    let config = FileSourceConfig::parse(&spec, &mut Options::new("bench", &values), schema()).unwrap();
    let mut source = FileSource::new(config, BATCH);
    let started = Instant::now();
    source.open(&TaskContext::single("source")).await.unwrap();
    let mut rows = 0;
    while let SourcePoll::Batch(b) = source.poll_next().await.unwrap() {
        rows += b.num_rows();
    }
    (started.elapsed().as_secs_f64(), rows)
}

fn row(what: &str, tool: &str, rows: usize, seconds: f64, bytes: Option<u64>) {
    let per_row = bytes.map_or("".to_string(), |b| format!("{:.1}", b as f64 / rows as f64));
    println!("| {what} | {tool} | {:.0} | {per_row} |", rows as f64 / seconds);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rows: usize = std::env::var("SLUICE_BENCH_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(1_000_000);
    let data = batches(rows);
    let dir = tempfile::tempdir().unwrap();
    println!("{rows} Nexmark-like bid rows, one thread");
    println!("| operation | tool | rows/s | bytes/row |");
    println!("|---|---|---:|---:|");
    let parquet = dir.path().join("parquet");
    let (s, bytes) = write(&parquet, "parquet", &data).await;
    row("Parquet write (snappy)", "Sluice", rows, s, Some(bytes));
    let (s, n) = read(&parquet, "parquet", &[]).await;
    assert_eq!(n, rows);
    row("Parquet read", "Sluice", rows, s, None);
    let (s, n) = read(&parquet, "parquet", &PROJECTED).await;
    assert_eq!(n, rows);
    row("Parquet read, 2 of 8 columns", "Sluice", rows, s, None);
    let avro_dir = dir.path().join("avro");
    let (s, bytes) = write(&avro_dir, "avro", &data).await;
    row("Avro file write (deflate)", "Sluice", rows, s, Some(bytes));
    let (s, n) = read(&avro_dir, "avro", &[]).await;
    assert_eq!(n, rows);
    row("Avro file read", "Sluice", rows, s, None);
    let (s, n) = read(&avro_dir, "avro", &PROJECTED).await;
    assert_eq!(n, rows);
    row("Avro file read, 2 of 8 columns", "Sluice", rows, s, None);

    let started = Instant::now();
    let mut encoded: Vec<Vec<Vec<u8>>> = Vec::with_capacity(data.len());
    for batch in &data {
        encoded.push(avro::encode_rows(&schema(), batch, None).unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    let bytes: usize = encoded.iter().flatten().map(Vec::len).sum();
    row("Avro records encode", "Sluice", rows, seconds, Some(bytes as u64));
    let started = Instant::now();
    let mut decoded = 0;
    for records in &encoded {
        let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        decoded += avro::decode_rows(&schema(), &slices, None).unwrap().unwrap().num_rows();
    }
    assert_eq!(decoded, rows);
    row("Avro records decode", "Sluice", rows, started.elapsed().as_secs_f64(), None);

    let reference = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/formats_reference.py");
    let parquet_file = std::fs::read_dir(&parquet).unwrap().flatten().next().unwrap().path();
    let out = Command::new("python3").arg(reference).arg(&parquet_file).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    print!("{}", String::from_utf8_lossy(&out.stdout));
}
