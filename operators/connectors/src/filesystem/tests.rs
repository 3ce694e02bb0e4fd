//! The filesystem connector's source and sink on real files: round trips in every format,
//! the two-phase commit, partitions and their commit, and Parquet pushdown.

use super::*;
use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use sluice_core::{Collector, Operator, OperatorState, Source, SourcePoll, StateInit, TaskContext};
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
    for format in ["json", "csv", "parquet"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let values = opts(&[("path", path), ("format", format)]);
        let mut options = Options::new("t", &values);
        let mut sink = FileSink::new(FileSinkConfig::parse(&ConnectorSpec::default(), &mut options, schema()).unwrap());
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
        let (batches, skipped) =
            read_all(FileSourceConfig::parse(&ConnectorSpec::default(), &mut options, schema()).unwrap())
                .await
                .unwrap();
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
    let config = FileSinkConfig::parse(&ConnectorSpec::default(), &mut Options::new("t", &values), schema()).unwrap();
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
    let err = read_all(
        FileSourceConfig::parse(&ConnectorSpec::default(), &mut Options::new("t", &values), schema()).unwrap(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("in.json:2"), "{text}");
    assert!(text.contains("json.ignore-parse-errors"), "{text}");

    let values = opts(&[("path", path), ("format", "json"), ("json.ignore-parse-errors", "true")]);
    let (batches, skipped) = read_all(
        FileSourceConfig::parse(&ConnectorSpec::default(), &mut Options::new("t", &values), schema()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(skipped, 1);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
}

#[test]
fn unknown_schemes_are_refused_clearly() {
    let values = opts(&[("path", "gs://bucket/x"), ("format", "json")]);
    let err = FileSinkConfig::parse(&ConnectorSpec::default(), &mut Options::new("table 'out'", &values), schema())
        .unwrap_err()
        .to_string();
    assert!(err.contains("the scheme 'gs://' is not supported"), "{err}");
}

fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("dt", DataType::Utf8, true),
        Field::new("hr", DataType::Int32, true),
    ]))
}

/// 40 rows: ids 0..40, two days by `id / 20`, hours `id % 3`.
fn events() -> RecordBatch {
    let ids: Vec<i64> = (0..40).collect();
    RecordBatch::try_new(
        events_schema(),
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from(ids.iter().map(|i| (i % 7 != 0).then(|| format!("n{i}"))).collect::<Vec<_>>())),
            Arc::new(StringArray::from(ids.iter().map(|i| format!("2026-12-0{}", 4 + i / 20)).collect::<Vec<_>>())),
            Arc::new(arrow::array::Int32Array::from(ids.iter().map(|i| (i % 3) as i32).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

fn partitioned_spec(pushdown: Option<sluice_proto::ScanPushdown>) -> ConnectorSpec {
    ConnectorSpec { partition_keys: vec!["dt".into(), "hr".into()], pushdown, ..Default::default() }
}

fn sorted_ids(batches: &[RecordBatch]) -> Vec<i64> {
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column_by_name("id").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
        .collect();
    ids.sort();
    ids
}

/// A partitioned Parquet sink writes `dt=../hr=..` directories without the partition
/// columns in the files, and a success file into each partition once committed; the source
/// reads the partition columns back from the directories and opens only the files of the
/// partitions the conditions allow.
#[tokio::test]
async fn partitioned_parquet_round_trip_commits_and_prunes_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let values = opts(&[
        ("path", path),
        ("format", "parquet"),
        ("sink.partition-commit.policy.kind", "success-file"),
        ("sink.partition-commit.trigger", "partition-time"),
        ("partition.time-extractor.timestamp-pattern", "$dt"),
        ("sink.partition-commit.delay", "1 d"),
    ]);
    let config =
        FileSinkConfig::parse(&partitioned_spec(None), &mut Options::new("t", &values), events_schema()).unwrap();
    let mut ctx = TaskContext::single("sink");
    ctx.job_id = "job12345".into();
    ctx.checkpointing = true;
    let mut sink = FileSink::new(config);
    sink.open(&ctx).await.unwrap();
    let mut out = Collector::default();
    sink.process_batch(events(), &mut out).await.unwrap();
    // 2026-12-05T00:00:00Z: the first day's partitions are a day old.
    sink.on_watermark(1_796_428_800_000, &mut out).await.unwrap();
    sink.snapshot_state(1).await.unwrap();
    let success = |day: &str, hr: i32| dir.path().join(format!("dt={day}/hr={hr}/_SUCCESS")).exists();
    assert!(!success("2026-12-04", 0), "nothing is committed before its checkpoint completes");
    sink.notify_checkpoint_complete(1).await.unwrap();
    for hr in 0..3 {
        assert!(success("2026-12-04", hr), "the day before the watermark is committed (hr={hr})");
        assert!(!success("2026-12-05", hr), "the watermark's day is not (hr={hr})");
    }
    sink.finish(&mut out).await.unwrap();
    sink.snapshot_state(2).await.unwrap();
    sink.notify_checkpoint_complete(2).await.unwrap();
    assert!(success("2026-12-05", 2), "the end of the input commits every partition");
    let file = std::fs::read_dir(dir.path().join("dt=2026-12-04/hr=1"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".parquet"));
    let reader = ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(file.unwrap().path()).unwrap(),
    )
    .unwrap();
    let names: Vec<String> = reader.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["id", "name"], "partition columns live in the directory names");

    // Every row comes back, partition columns included.
    let source_values = opts(&[("path", path), ("format", "parquet")]);
    let read = |pushdown| {
        let config = FileSourceConfig::parse(
            &partitioned_spec(pushdown),
            &mut Options::new("t", &source_values),
            events_schema(),
        )
        .unwrap();
        async move {
            let mut source = FileSource::new(config, 1000);
            source.open(&TaskContext::single("src")).await.unwrap();
            let mut out = Vec::new();
            while let SourcePoll::Batch(b) = source.poll_next().await.unwrap() {
                out.push(b);
            }
            (out, source.counts())
        }
    };
    let (batches, counts) = read(None).await;
    let all = arrow::compute::concat_batches(&events_schema(), &batches).unwrap();
    let order = arrow::compute::sort_to_indices(all.column(0), None, None).unwrap();
    assert_eq!(arrow::compute::take_record_batch(&all, &order).unwrap(), events());
    assert_eq!((counts.files, counts.files_opened), (6, 6));

    // dt = '2026-12-05' AND hr IN (1, 2), reading `id` and `hr` only: 2 of 6 files.
    use sluice_proto::scan_predicate::Op;
    let pushdown = sluice_proto::ScanPushdown {
        columns: vec!["hr".into(), "id".into()],
        predicates: vec![
            sluice_proto::ScanPredicate { column: "dt".into(), op: Op::Eq as i32, values: vec!["2026-12-05".into()] },
            sluice_proto::ScanPredicate {
                column: "hr".into(),
                op: Op::In as i32,
                values: vec!["1".into(), "2".into()],
            },
        ],
    };
    let (batches, counts) = read(Some(pushdown)).await;
    assert_eq!((counts.files, counts.files_pruned, counts.files_opened), (6, 4, 2));
    assert_eq!(batches[0].schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), ["hr", "id"]);
    let expected: Vec<i64> = (20..40).filter(|i| i % 3 != 0).collect();
    assert_eq!(sorted_ids(&batches), expected);
}

/// Row groups whose statistics rule out a pushed condition are not read.
#[tokio::test]
async fn parquet_row_groups_are_skipped_by_their_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    // One row group per 1,000-row batch: a small block size flushes each batch.
    let values = opts(&[("path", path), ("format", "parquet"), ("parquet.block.size", "1 b")]);
    let config =
        FileSinkConfig::parse(&ConnectorSpec::default(), &mut Options::new("t", &values), schema.clone()).unwrap();
    let mut sink = FileSink::new(config);
    sink.open(&TaskContext::single("sink")).await.unwrap();
    for start in (0..10_000i64).step_by(1000) {
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(start..start + 1000))])
                .unwrap();
        sink.process_batch(batch, &mut Collector::default()).await.unwrap();
    }
    sink.finish(&mut Collector::default()).await.unwrap();

    use sluice_proto::scan_predicate::Op;
    let pushdown = sluice_proto::ScanPushdown {
        columns: Vec::new(),
        predicates: vec![sluice_proto::ScanPredicate {
            column: "id".into(),
            op: Op::GtEq as i32,
            values: vec!["8500".into()],
        }],
    };
    let spec = ConnectorSpec { pushdown: Some(pushdown), ..Default::default() };
    let values = opts(&[("path", path), ("format", "parquet")]);
    let config = FileSourceConfig::parse(&spec, &mut Options::new("t", &values), schema).unwrap();
    let mut source = FileSource::new(config, 4096);
    source.open(&TaskContext::single("src")).await.unwrap();
    let mut batches = Vec::new();
    while let SourcePoll::Batch(b) = source.poll_next().await.unwrap() {
        batches.push(b);
    }
    let counts = source.counts();
    assert!(counts.row_groups >= 10, "{counts:?}");
    assert_eq!(counts.row_groups_read, 2, "only the groups holding ids from 8,500 are read: {counts:?}");
    // The groups read hold 8,000..10,000; the query's own filter drops the rest.
    assert_eq!(sorted_ids(&batches), (8000..10_000).collect::<Vec<_>>());
}

/// A restored Parquet source resumes inside a file at the row it checkpointed.
#[tokio::test]
async fn a_restored_parquet_source_resumes_at_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let values = opts(&[("path", path), ("format", "parquet")]);
    let config =
        FileSinkConfig::parse(&ConnectorSpec::default(), &mut Options::new("t", &values), schema.clone()).unwrap();
    let mut sink = FileSink::new(config);
    sink.open(&TaskContext::single("sink")).await.unwrap();
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(0..2500))]).unwrap();
    sink.process_batch(batch, &mut Collector::default()).await.unwrap();
    sink.finish(&mut Collector::default()).await.unwrap();

    let config = FileSourceConfig::parse(&ConnectorSpec::default(), &mut Options::new("t", &values), schema).unwrap();
    let mut source = FileSource::new(config.clone(), 1000);
    source.open(&TaskContext::single("src")).await.unwrap();
    let SourcePoll::Batch(first) = source.poll_next().await.unwrap() else { panic!("no rows") };
    let state = source.snapshot_state(1).await.unwrap();
    let mut restored = FileSource::new(config, 1000);
    restored.initialize_state(StateInit::restoring(state)).await.unwrap();
    restored.open(&TaskContext::single("src")).await.unwrap();
    let mut rest = Vec::new();
    while let SourcePoll::Batch(b) = restored.poll_next().await.unwrap() {
        rest.push(b);
    }
    assert_eq!(sorted_ids(&[first]), (0..1000).collect::<Vec<_>>());
    assert_eq!(sorted_ids(&rest), (1000..2500).collect::<Vec<_>>());
}

/// Writes `rows` JSON lines `{"k": ..}` as `name` under `dir`, published by a rename as a
/// writer of a monitored directory must.
fn publish(dir: &Path, name: &str, rows: std::ops::Range<i64>) {
    let lines: String = rows.map(|k| format!("{{\"k\": {k}, \"s\": \"v{k}\"}}\n")).collect();
    let hidden = dir.join(format!(".{name}.inprogress"));
    fs::write(&hidden, lines).unwrap();
    fs::rename(hidden, dir.join(name)).unwrap();
}

fn monitored(dir: &Path) -> FileSourceConfig {
    let values = opts(&[("path", dir.to_str().unwrap()), ("format", "json"), ("source.monitor-interval", "30ms")]);
    FileSourceConfig::parse(&ConnectorSpec::default(), &mut Options::new("t", &values), schema()).unwrap()
}

/// Polls until the source has nothing to read (it must never end), collecting the `k`s.
async fn drain(source: &mut FileSource, ks: &mut Vec<i64>) {
    loop {
        match source.poll_next().await.unwrap() {
            SourcePoll::Batch(b) => ks.extend(b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values()),
            SourcePoll::Idle => return,
            SourcePoll::Finished => panic!("a monitored source never ends"),
            SourcePoll::SplitsAssigned(_) => {}
        }
    }
}

/// Waits past the monitor interval, so the next poll lists the directory.
async fn next_listing() {
    tokio::time::sleep(Duration::from_millis(40)).await;
}

/// `source.monitor-interval`: files published after the job started are read, each once,
/// and the source does not end.
#[tokio::test]
async fn a_monitored_source_reads_files_as_they_appear() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "a.json", 0..10);
    let mut source = FileSource::new(monitored(dir.path()), 4);
    source.open(&TaskContext::single("src")).await.unwrap();
    let mut ks = Vec::new();
    drain(&mut source, &mut ks).await;
    assert_eq!(ks, (0..10).collect::<Vec<_>>());
    publish(dir.path(), "b.json", 10..25);
    publish(dir.path(), "c.json", 25..30);
    fs::write(dir.path().join(".d.json.inprogress"), "{\"k\": 99}\n").unwrap();
    next_listing().await;
    drain(&mut source, &mut ks).await;
    next_listing().await;
    drain(&mut source, &mut ks).await;
    assert_eq!(ks, (0..30).collect::<Vec<_>>(), "new files once each, in name order; hidden ones never");
}

/// The files a monitored source has taken are in its checkpoint: restored at another
/// parallelism (positions dealt round-robin, names to every subtask), the subtasks finish
/// the files in progress and read the new ones, and no file is read twice.
#[tokio::test]
async fn a_monitored_source_restored_at_another_parallelism_reads_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..12 {
        publish(dir.path(), &format!("f{i:02}.json"), i * 10..i * 10 + 10);
    }
    let context = |subtask, parallelism| TaskContext { subtask, parallelism, ..TaskContext::single("src") };
    let mut ks = Vec::new();
    let mut states = Vec::new();
    for subtask in 0..2 {
        let mut source = FileSource::new(monitored(dir.path()), 4);
        source.open(&context(subtask, 2)).await.unwrap();
        // Subtask 0 reads all its files; subtask 1 stops inside its second.
        let batches = if subtask == 0 { usize::MAX } else { 4 };
        for _ in 0..batches {
            match source.poll_next().await.unwrap() {
                SourcePoll::Batch(b) => ks.extend(b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values()),
                _ => break,
            }
        }
        states.push(source.snapshot_state(1).await.unwrap());
    }
    assert!(ks.len() < 120, "subtask 1 stopped midway: {}", ks.len());
    for i in 12..18 {
        publish(dir.path(), &format!("f{i:02}.json"), i * 10..i * 10 + 10);
    }
    let positions: Vec<Vec<u8>> = states.iter().flat_map(|s| s.entries(OperatorState::DEFAULT_LIST).to_vec()).collect();
    let names: Vec<Vec<u8>> = states.iter().flat_map(|s| s.entries("seen").to_vec()).collect();
    assert_eq!(names.len(), 12, "every file listed was taken by its owner");
    for subtask in 0..3u32 {
        let dealt: Vec<Vec<u8>> = positions.iter().skip(subtask as usize).step_by(3).cloned().collect();
        let state =
            OperatorState::split(dealt).with_list("seen", sluice_core::state::Distribution::Union, names.clone());
        let mut source = FileSource::new(monitored(dir.path()), 4);
        source.initialize_state(StateInit::restoring(state)).await.unwrap();
        source.open(&context(subtask, 3)).await.unwrap();
        drain(&mut source, &mut ks).await;
    }
    ks.sort_unstable();
    assert_eq!(ks, (0..180).collect::<Vec<_>>(), "every row of every file exactly once");
}

/// A monitored table is unbounded (a batch job refuses it); without the option it ends.
#[test]
fn a_monitored_table_is_unbounded() {
    use crate::registry::Connector;
    let spec =
        |options: &[(&str, &str)]| ConnectorSpec { options: opts(options).into_iter().collect(), ..Default::default() };
    assert!(Filesystem.bounded(&spec(&[("path", "/x")])));
    assert!(Filesystem.bounded(&spec(&[("path", "/x"), ("source.monitor-interval", "0 s")])));
    assert!(!Filesystem.bounded(&spec(&[("path", "/x"), ("source.monitor-interval", "10 s")])));
}

/// An Avro scan decodes only the columns the query reads (Avro resolution skips the
/// rest); a scan of partition columns only still gets every row.
#[tokio::test]
async fn avro_scans_decode_only_the_columns_they_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let values = opts(&[("path", path), ("format", "avro")]);
    let spec = ConnectorSpec { partition_keys: vec!["s".into()], ..Default::default() };
    let mut sink = FileSink::new(FileSinkConfig::parse(&spec, &mut Options::new("t", &values), schema()).unwrap());
    sink.open(&TaskContext::single("sink")).await.unwrap();
    let labels: Vec<&str> = (0..10).map(|k| if k % 2 == 0 { "even" } else { "odd" }).collect();
    let batch = RecordBatch::try_new(
        schema(),
        vec![Arc::new(Int64Array::from_iter_values(0..10)), Arc::new(StringArray::from(labels))],
    )
    .unwrap();
    sink.process_batch(batch, &mut Collector::default()).await.unwrap();
    sink.finish(&mut Collector::default()).await.unwrap();

    let scan = |columns: &[&str]| {
        let pushdown = sluice_proto::ScanPushdown {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            predicates: Vec::new(),
        };
        let spec = ConnectorSpec { pushdown: Some(pushdown), ..spec.clone() };
        FileSourceConfig::parse(&spec, &mut Options::new("t", &values), schema()).unwrap()
    };
    let config = scan(&["k"]);
    assert_eq!(config.scan_file_schema.fields().len(), 1);
    let (batches, _) = read_all(config).await.unwrap();
    let mut ks: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            assert_eq!(b.num_columns(), 1);
            b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()
        })
        .collect();
    ks.sort_unstable();
    assert_eq!(ks, (0..10).collect::<Vec<_>>());

    let (batches, _) = read_all(scan(&["s"])).await.unwrap();
    let mut labels: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            let s = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            s.iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>()
        })
        .collect();
    labels.sort();
    assert_eq!(labels, [vec!["even"; 5], vec!["odd"; 5]].concat(), "every row, from the directory names");
}
