//! Kafka benchmark: rows/s of Kafka → filter → Kafka at parallelism 1 and 2, with
//! at-least-once and exactly-once delivery, on the embedded mini-cluster against a local
//! noida-db broker (installed by `scripts/bootstrap.sh`). Run with
//! `cargo bench --bench kafka`; `SLUICE_BENCH_ROWS` sets the number of input records.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn create_topic(address: &str, name: &str) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", address).create().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let topic = NewTopic::new(name, 4, TopicReplication::Fixed(1));
    for r in runtime.block_on(admin.create_topics([&topic], &AdminOptions::new())).unwrap() {
        r.unwrap();
    }
}

fn main() {
    let rows: i64 = std::env::var("SLUICE_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000);
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let _broker = Broker(
        Command::new("noida-db")
            .args(["start", "--only", "kafka", "--kafka-port", &port.to_string(), "--data-dir"])
            .arg(dir.path().join("broker"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("noida-db is not installed: run `bash scripts/bootstrap.sh`"),
    );
    while !listening(&address) {
        std::thread::sleep(Duration::from_millis(100));
    }
    create_topic(&address, "input");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    for i in 0..rows {
        let value = format!(r#"{{"id": {i}, "name": "customer-{}", "amount": {}}}"#, i % 1000, i % 100);
        let mut record = Some(BaseRecord::<(), String>::to("input").payload(&value).partition((i % 4) as i32));
        while let Some(r) = record.take() {
            if let Err((_, r)) = producer.send(r) {
                producer.poll(Duration::from_millis(5));
                record = Some(r);
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();

    println!("Kafka → filter → Kafka, {rows} JSON records over 4 partitions, embedded mini-cluster, noida-db broker");
    println!();
    println!("| delivery | parallelism | rows/s | seconds |");
    println!("|---|---:|---:|---:|");
    for delivery in ["at-least-once", "exactly-once"] {
        for parallelism in [1, 2] {
            let output = format!("out-{delivery}-{parallelism}");
            create_topic(&address, &output);
            let sql = dir.path().join(format!("{output}.sql"));
            std::fs::write(
                &sql,
                format!(
                    "CREATE TABLE input (id BIGINT, name STRING, amount INT) WITH ('connector' = 'kafka', 'topic' = 'input',
                        'properties.bootstrap.servers' = '{address}', 'scan.startup.mode' = 'earliest-offset',
                        'scan.bounded.mode' = 'latest-offset', 'format' = 'json');
                    CREATE TABLE output (id BIGINT, name STRING, amount INT) WITH ('connector' = 'kafka', 'topic' = '{output}',
                        'properties.bootstrap.servers' = '{address}', 'format' = 'json',
                        'sink.delivery-guarantee' = '{delivery}', 'sink.transactional-id-prefix' = '{output}');
                    INSERT INTO output SELECT id, name, amount FROM input WHERE amount < 90;"
                ),
            )
            .unwrap();
            let started = Instant::now();
            let status = Command::new(env!("CARGO_BIN_EXE_sluice"))
                .arg("run")
                .arg(&sql)
                .args(["--parallelism", &parallelism.to_string(), "--taskmanagers", "2", "--checkpoint-interval", "1s"])
                .args(["--checkpoint-dir", dir.path().join("checkpoints").to_str().unwrap()])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            let seconds = started.elapsed().as_secs_f64();
            assert!(status.success(), "the {delivery} job at parallelism {parallelism} failed");
            println!("| {delivery} | {parallelism} | {:.0} | {seconds:.2} |", rows as f64 / seconds);
        }
    }
}

/// True when something listens on `address`. A connection to a free port in the
/// ephemeral range can connect to itself (TCP simultaneous open, when the kernel picks that
/// same port as the source), which a plain `connect` would take for a listener.
fn listening(address: &str) -> bool {
    std::net::TcpStream::connect(address).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}
