//! Runtime benchmark: rows/s of datagen → blackhole (chained, no exchange) and of
//! datagen → hash shuffle → blackhole across two task manager processes, and the bytes per
//! row on the wire. Run with `cargo bench --bench runtime`; `SLUICE_BENCH_ROWS` scales it.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Field, Schema};
use sluice_core::schema::encode_schema;
use sluice_proto::job_manager_client::JobManagerClient;
use sluice_proto::operator_spec::Kind;
use sluice_proto::{
    ConnectorSpec, GetJobStatusRequest, JobGraph, JobState, OperatorSpec, Partitioning, SubmitJobRequest,
};
use sluice_sql::plan::graph::JobGraphBuilder;

/// Flink 2.3.0's datagen → filter/project → blackhole at parallelism 2 on this machine
/// (../shared/design/environment.md): about 0.75–1.0 M rows/s; the midpoint.
const FLINK_ROWS_PER_SECOND: f64 = 875_000.0;

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn connector(table: &str, connector: &str, options: &[(&str, &str)], schema: &Schema) -> ConnectorSpec {
    let mut all: BTreeMap<String, String> = options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    all.insert("connector".into(), connector.into());
    ConnectorSpec {
        table: table.into(),
        connector: connector.into(),
        options: all,
        schema: encode_schema(schema),
        metadata: Default::default(),
        primary_key: Vec::new(),
        ..Default::default()
    }
}

fn graph(rows: u64, shuffle: bool) -> JobGraph {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("user_id", DataType::Int32, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("category", DataType::Utf8, false),
    ]);
    let rows = rows.to_string();
    let source = connector(
        "events",
        "datagen",
        &[
            ("number-of-rows", &rows),
            ("rows-per-second", "1000000000"),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "1000000000000"),
            ("fields.user_id.min", "1"),
            ("fields.user_id.max", "100000"),
            ("fields.category.length", "8"),
        ],
        &schema,
    );
    let sink = connector("out", "blackhole", &[], &schema);
    let mut builder = JobGraphBuilder::new();
    let src = builder.add(
        OperatorSpec { uid: String::new(), name: "source: events(datagen)".into(), kind: Some(Kind::Source(source)) },
        2,
    );
    let out = builder
        .add(OperatorSpec { uid: String::new(), name: "sink: out(blackhole)".into(), kind: Some(Kind::Sink(sink)) }, 2);
    let (partitioning, keys) = if shuffle { (Partitioning::Hash, vec![1]) } else { (Partitioning::Forward, vec![]) };
    builder.connect(src, out, partitioning, keys, encode_schema(&schema));
    builder.build(if shuffle { "datagen-hash-blackhole" } else { "datagen-blackhole" }, BTreeMap::new())
}

struct Measured {
    rows_per_second: f64,
    bytes_per_row: Option<f64>,
}

async fn run(client: &mut JobManagerClient<tonic::transport::Channel>, graph: JobGraph, rows: u64) -> Measured {
    let started = Instant::now();
    let job = client
        .submit_job(SubmitJobRequest { graph: Some(graph), from_savepoint: String::new() })
        .await
        .expect("submit")
        .into_inner()
        .job_id;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let status =
            client.get_job_status(GetJobStatusRequest { job_id: job.clone() }).await.expect("status").into_inner();
        match JobState::try_from(status.state) {
            Ok(JobState::Finished) => {
                let elapsed = started.elapsed().as_secs_f64();
                let (bytes, remote_rows) = status
                    .tasks
                    .iter()
                    .filter_map(|t| t.metrics.as_ref())
                    .fold((0u64, 0u64), |(b, r), m| (b + m.bytes_out, r + m.remote_rows_out));
                return Measured {
                    rows_per_second: rows as f64 / elapsed,
                    bytes_per_row: (remote_rows > 0).then(|| bytes as f64 / remote_rows as f64),
                };
            }
            Ok(JobState::Failed | JobState::Canceled) => panic!("benchmark job failed: {}", status.message),
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::var("SLUICE_BENCH_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(10_000_000);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let bin = env!("CARGO_BIN_EXE_sluice");
    let spawn =
        |args: &[&str]| Command::new(bin).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let _processes = Arc::new(Processes(vec![
        spawn(&["jobmanager", "--rpc-address", &address, "--rest-address", "off"]),
        spawn(&["taskmanager", "--jobmanager", &address, "--slots", "1", "--bind", "127.0.0.1:0"]),
        spawn(&["taskmanager", "--jobmanager", &address, "--slots", "1", "--bind", "127.0.0.1:0"]),
    ]));
    let mut client = loop {
        match JobManagerClient::connect(format!("http://{address}")).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    // Warm-up: lets both task managers register and the page cache settle.
    run(&mut client, graph(100_000, true), 100_000).await;

    println!("Sluice runtime benchmark: {rows} rows of (BIGINT, INT, DOUBLE, STRING(8)), parallelism 2, 2 task manager processes\n");
    println!(
        "| job | rows/s | bytes/row on the wire | vs Flink 2.3 datagen→blackhole (≈{:.0} k rows/s) |",
        FLINK_ROWS_PER_SECOND / 1e3
    );
    println!("|---|---:|---:|---:|");
    for (name, shuffle) in [("datagen → blackhole (chained)", false), ("datagen → hash shuffle → blackhole", true)]
    {
        let best = {
            let mut results = Vec::new();
            for _ in 0..3 {
                results.push(run(&mut client, graph(rows, shuffle), rows).await);
            }
            results.into_iter().max_by(|a, b| a.rows_per_second.total_cmp(&b.rows_per_second)).unwrap()
        };
        println!(
            "| {name} | {:.0} | {} | {:.2}× |",
            best.rows_per_second,
            best.bytes_per_row.map_or("—".to_string(), |b| format!("{b:.1}")),
            best.rows_per_second / FLINK_ROWS_PER_SECOND
        );
    }
    println!("\nBest of 3 runs; time from submit to FINISHED, deployment included.");
}
