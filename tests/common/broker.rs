//! A Kafka-protocol broker (noida-db, installed by `scripts/bootstrap.sh`) for tests:
//! each test starts its own on its own port and data directory.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::free_port;

const MINUTE: Duration = Duration::from_secs(60);

/// A broker process, stopped with everything it spawned when dropped (also when the test
/// panics): it runs in its own process group, and the whole group is killed.
pub struct Broker {
    /// The broker process, when this test started it.
    child: Option<Child>,
    /// HOST:PORT of its Kafka listener.
    pub address: String,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker on a free loopback port with its own data directory.
    pub fn start() -> Broker {
        Broker::start_on("127.0.0.1")
    }

    /// Starts a broker bound to (and advertising) `host`, on a free port.
    pub fn start_on(host: &str) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("noida-db")
            .args(["start", "--only", "kafka", "--host", host, "--kafka-port", &port.to_string(), "--data-dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("the noida-db broker is not installed: run `bash scripts/bootstrap.sh` (pip install noida-db)");
        let address = format!("{host}:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !super::listening(&address) {
            assert!(Instant::now() < deadline, "the broker did not start on {address}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Broker { child: Some(child), address, _dir: dir }
    }

    /// A broker some other process runs at `address` (HOST:PORT).
    pub fn at(address: &str) -> Broker {
        Broker { child: None, address: address.to_string(), _dir: tempfile::tempdir().unwrap() }
    }

    /// A client configuration pointing at the broker.
    pub fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.address);
        c
    }

    /// Creates `name` with `partitions` partitions.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self.client().create().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let results = runtime.block_on(admin.create_topics([&topic], &AdminOptions::new())).unwrap();
        for r in results {
            r.unwrap();
        }
    }

    /// Writes records (with an optional partition each) and waits for them.
    pub fn produce<V: AsRef<[u8]>>(&self, topic: &str, records: impl IntoIterator<Item = (Option<i32>, V)>) {
        let producer: BaseProducer =
            self.client().set("linger.ms", "20").set("queue.buffering.max.messages", "1000000").create().unwrap();
        for (partition, value) in records {
            let mut record = BaseRecord::<(), [u8]>::to(topic).payload(value.as_ref());
            if let Some(p) = partition {
                record = record.partition(p);
            }
            let mut record = Some(record);
            while let Some(r) = record.take() {
                if let Err((_, r)) = producer.send(r) {
                    producer.poll(Duration::from_millis(10));
                    record = Some(r);
                }
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(60)).unwrap();
    }

    /// Every committed record of `topic`, read with a fresh read_committed consumer:
    /// partition, offset and value (empty for a tombstone).
    pub fn read_all(&self, topic: &str, partitions: i32) -> Vec<(i32, i64, String)> {
        self.read_records(topic, partitions)
            .into_iter()
            .map(|r| (r.partition, r.offset, r.value.unwrap_or_default()))
            .collect()
    }

    /// Every committed record of `topic` with its key, read with a fresh read_committed
    /// consumer, in offset order per partition.
    pub fn read_records(&self, topic: &str, partitions: i32) -> Vec<Record> {
        self.read_records_isolated(topic, partitions, "read_committed")
    }

    /// Every record of `topic`, committed or not (also those of aborted transactions),
    /// read with a fresh read_uncommitted consumer.
    pub fn read_uncommitted(&self, topic: &str, partitions: i32) -> Vec<Record> {
        self.read_records_isolated(topic, partitions, "read_uncommitted")
    }

    fn read_records_isolated(&self, topic: &str, partitions: i32, isolation: &str) -> Vec<Record> {
        let consumer: BaseConsumer = self
            .client()
            .set("group.id", "checker")
            .set("isolation.level", isolation)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut ends = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap();
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + MINUTE;
        let mut check = true;
        loop {
            // Positions are costly to read: look at them when idle or every 10,000 records.
            let done = check
                && ends.iter().all(|(p, end)| {
                    consumer
                        .position()
                        .unwrap()
                        .find_partition(topic, *p)
                        .and_then(|e| e.offset().to_raw())
                        .is_some_and(|o| o >= *end)
                        || *end == 0
                });
            if done {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "could not read {topic} to its end: {} records read, ends {ends:?}, position {:?}",
                out.len(),
                consumer.position().unwrap().elements().iter().map(|e| (e.partition(), e.offset())).collect::<Vec<_>>()
            );
            match consumer.poll(Duration::from_millis(100)) {
                Some(m) => {
                    let m = m.unwrap();
                    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
                    out.push(Record {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: text(m.key()),
                        value: text(m.payload()),
                        bytes: m.payload().map(<[u8]>::to_vec),
                        key_bytes: m.key().map(<[u8]>::to_vec),
                    });
                    check = out.len() % 10_000 == 0;
                }
                None => check = true,
            }
        }
    }
}

/// A record read from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key, if any.
    pub key: Option<String>,
    /// Its value; `None` for a tombstone.
    pub value: Option<String>,
    /// Its value as sent (binary formats).
    pub bytes: Option<Vec<u8>>,
    /// Its key as sent (binary formats).
    pub key_bytes: Option<Vec<u8>>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        // The launcher starts the broker as its child: kill the whole process group.
        if let Some(child) = &mut self.child {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.wait();
        }
    }
}
