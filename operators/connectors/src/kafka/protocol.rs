//! A small Kafka protocol client for transactions, on the `kafka-protocol` crate.
//!
//! librdkafka does not expose a transaction's producer id and epoch, and a new librdkafka
//! producer aborts whatever transaction its transactional id has open. To commit, after a
//! crash, a transaction whose checkpoint completed, the sink must know that id and epoch:
//! so it produces transactionally through this client (InitProducerId, AddPartitionsToTxn,
//! Produce with idempotent sequences, EndTxn), keeps the id and epoch in its checkpoint, and
//! on restore sends EndTxn(commit) for them. Flink does the same by reflection.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, EndTxnRequest, FindCoordinatorRequest, InitProducerIdRequest, MetadataRequest,
    ProduceRequest, ProducerId, RequestHeader, ResponseHeader, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_PARTITION_LEADER_EPOCH,
};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Errors of the protocol client, with the broker's error name.
pub type ProtocolResult<T> = std::result::Result<T, String>;

const RETRIES: usize = 100;
/// The largest response accepted from a broker.
const MAX_RESPONSE_BYTES: i32 = 256 << 20;
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// One connection to one broker; requests are answered in order.
struct Connection {
    stream: TcpStream,
    correlation: i32,
    address: String,
}

impl Connection {
    async fn open(address: &str) -> ProtocolResult<Self> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(address))
            .await
            .map_err(|_| format!("connecting to {address} timed out"))?
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(Connection { stream, correlation: 0, address: address.to_string() })
    }

    async fn send<R: Request>(&mut self, request: &R, version: i16) -> ProtocolResult<R::Response> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("sluice")));
        let mut buf = BytesMut::with_capacity(1024);
        buf.put_i32(0);
        header.encode(&mut buf, R::header_version(version)).map_err(|e| e.to_string())?;
        request.encode(&mut buf, version).map_err(|e| e.to_string())?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        let io = |e: std::io::Error| format!("connection to {} failed: {e}", self.address);
        let exchange = async {
            self.stream.write_all(&buf).await.map_err(io)?;
            let len = self.stream.read_i32().await.map_err(io)?;
            if !(0..=MAX_RESPONSE_BYTES).contains(&len) {
                return Err(format!("{} sent a malformed frame of {len} bytes", self.address));
            }
            let mut raw = vec![0u8; len as usize];
            self.stream.read_exact(&mut raw).await.map_err(io)?;
            Ok::<_, String>(raw)
        };
        let raw = tokio::time::timeout(Duration::from_secs(60), exchange)
            .await
            .map_err(|_| format!("{} did not answer within 60 s", self.address))??;
        let mut raw = Bytes::from(raw);
        let header = ResponseHeader::decode(&mut raw, <R::Response as HeaderVersion>::header_version(version))
            .map_err(|e| e.to_string())?;
        if header.correlation_id != self.correlation {
            return Err(format!("{} answered out of order", self.address));
        }
        <R::Response as Decodable>::decode(&mut raw, version).map_err(|e| e.to_string())
    }
}

fn check(code: i16, what: &str) -> std::result::Result<(), (ResponseError, String)> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(e) => Err((e, format!("{what}: {e}"))),
    }
}

fn retriable(e: &ResponseError) -> bool {
    matches!(e, ResponseError::ConcurrentTransactions) || e.is_retriable()
}

/// Murmur2, as Kafka's default partitioner hashes keys (so keyed records land where Java
/// and librdkafka clients put them).
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// A record's key and value (`None`: a tombstone).
type KeyValue = (Option<Bytes>, Option<Bytes>);

/// A transaction's identity: what a checkpoint stores to commit it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionHandle {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its producer epoch.
    pub epoch: i16,
}

/// The cluster's brokers and a topic's partition leaders.
struct Cluster {
    bootstrap: Vec<String>,
    brokers: HashMap<i32, String>,
    leaders: Vec<i32>,
}

impl Cluster {
    async fn discover(bootstrap: &[String], topic: &str) -> ProtocolResult<Self> {
        let mut last = String::from("no bootstrap servers");
        for address in bootstrap {
            let mut conn = match Connection::open(address).await {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let request = MetadataRequest::default()
                .with_topics(Some(vec![MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]))
                .with_allow_auto_topic_creation(false);
            let response = conn.send(&request, 9).await?;
            let brokers = response.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port))).collect();
            let Some(t) = response.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            else {
                return Err(format!("topic '{topic}' does not exist"));
            };
            check(t.error_code, &format!("topic '{topic}'")).map_err(|e| e.1)?;
            let mut leaders = vec![-1; t.partitions.len()];
            for p in &t.partitions {
                if let Some(slot) = leaders.get_mut(p.partition_index as usize) {
                    *slot = p.leader_id.0;
                }
            }
            return Ok(Cluster { bootstrap: bootstrap.to_vec(), brokers, leaders });
        }
        Err(last)
    }
}

/// Finds the transaction coordinator of `transactional_id` and connects to it.
async fn coordinator(bootstrap: &[String], transactional_id: &str) -> ProtocolResult<Connection> {
    let mut last = String::from("no bootstrap servers");
    for _ in 0..RETRIES {
        for address in bootstrap {
            let mut conn = match Connection::open(address).await {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let request = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(transactional_id.to_string()))
                .with_key_type(1);
            let response = conn.send(&request, 3).await?;
            match check(response.error_code, "finding the transaction coordinator") {
                Ok(()) => return Connection::open(&format!("{}:{}", response.host, response.port)).await,
                Err((e, message)) if retriable(&e) => last = message,
                Err((_, message)) => return Err(message),
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Err(last)
}

/// Gets a producer id and epoch for `transactional_id`, aborting any transaction it has open.
async fn init_producer_id(
    bootstrap: &[String],
    transactional_id: &str,
    timeout: Duration,
) -> ProtocolResult<(Connection, i64, i16)> {
    let mut conn = coordinator(bootstrap, transactional_id).await?;
    let tid = TransactionalId(StrBytes::from_string(transactional_id.to_string()));
    for _ in 0..RETRIES {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(tid.clone()))
            .with_transaction_timeout_ms(timeout.as_millis() as i32);
        let response = conn.send(&request, 4).await?;
        match check(response.error_code, &format!("initializing transactional id '{transactional_id}'")) {
            Ok(()) => return Ok((conn, response.producer_id.0, response.producer_epoch)),
            Err((ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable, _)) => {
                conn = coordinator(bootstrap, transactional_id).await?;
            }
            Err((e, _)) if retriable(&e) => tokio::time::sleep(RETRY_PAUSE).await,
            Err((ResponseError::InvalidTransactionTimeout, message)) => {
                return Err(format!(
                    "{message}: the broker's 'transaction.max.timeout.ms' is below the sink's transaction timeout of \
                     {} ms ('properties.transaction.timeout.ms'); raise the broker's maximum, or lower the sink's timeout \
                     together with 'execution.checkpointing.timeout' (the transaction timeout must exceed the checkpoint \
                     timeout plus the time a restart takes)",
                    timeout.as_millis()
                ));
            }
            Err((_, message)) => return Err(message),
        }
    }
    Err(format!("transactional id '{transactional_id}' stayed busy"))
}

/// Commits (or aborts) the transaction of `handle` with its stored producer id and epoch.
/// Committing a transaction that is already committed is fine (the coordinator answers a
/// repeated commit with success). A commit answered with `INVALID_TXN_STATE` means that
/// the coordinator aborted the transaction (its timeout passed, or it was fenced): its
/// records are gone, which is an error, never a success.
pub async fn end_transaction(bootstrap: &[String], handle: &TransactionHandle, commit: bool) -> ProtocolResult<()> {
    let mut conn = coordinator(bootstrap, &handle.transactional_id).await?;
    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(handle.transactional_id.clone())))
        .with_producer_id(ProducerId(handle.producer_id))
        .with_producer_epoch(handle.epoch)
        .with_committed(commit);
    let what = format!("{} transaction '{}'", if commit { "committing" } else { "aborting" }, handle.transactional_id);
    for _ in 0..RETRIES {
        let response = conn.send(&request, 3).await?;
        match end_txn_step(response.error_code, commit, handle, &what) {
            EndTxnStep::Done => return Ok(()),
            EndTxnStep::Reconnect => conn = coordinator(bootstrap, &handle.transactional_id).await?,
            EndTxnStep::Retry => tokio::time::sleep(RETRY_PAUSE).await,
            EndTxnStep::Fail(message) => return Err(message),
        }
    }
    Err(format!("{what}: the coordinator stayed busy"))
}

/// What to do after the coordinator answered an EndTxn.
#[derive(Debug, PartialEq)]
enum EndTxnStep {
    Done,
    Reconnect,
    Retry,
    Fail(String),
}

/// Reads the coordinator's answer `code` to ending `handle`'s transaction (`what` names
/// it). A repeated commit of a committed transaction is answered with success; a commit
/// answered with `INVALID_TXN_STATE` means that the coordinator aborted the transaction.
fn end_txn_step(code: i16, commit: bool, handle: &TransactionHandle, what: &str) -> EndTxnStep {
    match check(code, what) {
        Ok(()) => EndTxnStep::Done,
        Err((ResponseError::InvalidTxnState, message)) if commit => EndTxnStep::Fail(format!(
            "{message}: the broker aborted transaction '{}' (producer id {}, epoch {}) before it could be committed, \
             so its records are lost; this happens when the checkpoint and restart took longer than \
             'properties.transaction.timeout.ms' (raise it, up to the broker's transaction.max.timeout.ms)",
            handle.transactional_id, handle.producer_id, handle.epoch
        )),
        Err((ResponseError::InvalidProducerEpoch | ResponseError::ProducerFenced, message)) if commit => {
            EndTxnStep::Fail(format!(
            "{message}: transaction '{}' (producer id {}, epoch {}) was taken over before it could be committed, so \
             its records are lost: the broker aborted it at its timeout ('properties.transaction.timeout.ms'), or \
             another job writes with the same 'sink.transactional-id-prefix'",
            handle.transactional_id, handle.producer_id, handle.epoch
        ))
        }
        Err((ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable, _)) => EndTxnStep::Reconnect,
        Err((e, _)) if retriable(&e) => EndTxnStep::Retry,
        Err((_, message)) => EndTxnStep::Fail(message),
    }
}

/// Aborts whatever transaction `transactional_id` has open (by initializing it anew).
/// Returns whether the id had never been used before (the coordinator gave it epoch 0).
pub async fn abort_open_transaction(
    bootstrap: &[String],
    transactional_id: &str,
    timeout: Duration,
) -> ProtocolResult<bool> {
    init_producer_id(bootstrap, transactional_id, timeout).await.map(|(_, _, epoch)| epoch == 0)
}

/// One transaction being written: records are buffered per partition and sent in batches
/// with the producer's sequence numbers.
pub struct Transaction {
    cluster: Cluster,
    topic: String,
    handle: TransactionHandle,
    coordinator: Connection,
    leaders: HashMap<i32, Connection>,
    added: BTreeSet<i32>,
    sequences: HashMap<i32, i32>,
    buffers: HashMap<i32, Vec<KeyValue>>,
    buffered: usize,
    next_partition: i32,
}

impl Transaction {
    /// Starts a transaction writing to `topic` as `transactional_id` (aborting what that id
    /// left open).
    pub async fn begin(
        bootstrap: &[String],
        topic: &str,
        transactional_id: &str,
        timeout: Duration,
    ) -> ProtocolResult<Self> {
        let cluster = Cluster::discover(bootstrap, topic).await?;
        let (coordinator, producer_id, epoch) = init_producer_id(bootstrap, transactional_id, timeout).await?;
        Ok(Transaction {
            cluster,
            topic: topic.to_string(),
            handle: TransactionHandle { transactional_id: transactional_id.to_string(), producer_id, epoch },
            coordinator,
            leaders: HashMap::new(),
            added: BTreeSet::new(),
            sequences: HashMap::new(),
            buffers: HashMap::new(),
            buffered: 0,
            next_partition: 0,
        })
    }

    /// The transaction's identity.
    pub fn handle(&self) -> &TransactionHandle {
        &self.handle
    }

    /// Adds a record (a `None` value is a tombstone); keyed records go to the partition
    /// Kafka's default partitioner picks.
    pub async fn send(&mut self, key: Option<Bytes>, value: Option<Bytes>) -> ProtocolResult<()> {
        let partitions = self.cluster.leaders.len().max(1) as i32;
        let partition = match &key {
            Some(k) => ((murmur2(k) & 0x7fff_ffff) % partitions as u32) as i32,
            None => {
                self.next_partition = (self.next_partition + 1) % partitions;
                self.next_partition
            }
        };
        self.buffers.entry(partition).or_default().push((key, value));
        self.buffered += 1;
        if self.buffered >= 5_000 {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends every buffered record and waits for the brokers' acknowledgements.
    pub async fn flush(&mut self) -> ProtocolResult<()> {
        let new: Vec<i32> = self.buffers.keys().filter(|p| !self.added.contains(p)).copied().collect();
        if !new.is_empty() {
            self.add_partitions(&new).await?;
        }
        let buffers = std::mem::take(&mut self.buffers);
        self.buffered = 0;
        for (partition, records) in buffers {
            for chunk in records.chunks(2_000) {
                self.produce(partition, chunk).await?;
            }
        }
        Ok(())
    }

    async fn add_partitions(&mut self, partitions: &[i32]) -> ProtocolResult<()> {
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(
                self.handle.transactional_id.clone(),
            )))
            .with_v3_and_below_producer_id(ProducerId(self.handle.producer_id))
            .with_v3_and_below_producer_epoch(self.handle.epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partitions(partitions.to_vec())]);
        for _ in 0..RETRIES {
            let response = self.coordinator.send(&request, 3).await?;
            let mut busy = false;
            for topic in &response.results_by_topic_v3_and_below {
                for p in &topic.results_by_partition {
                    match check(
                        p.partition_error_code,
                        &format!("adding partition {} to the transaction", p.partition_index),
                    ) {
                        Ok(()) => {}
                        Err((e, _)) if retriable(&e) || e == ResponseError::OperationNotAttempted => busy = true,
                        Err((_, message)) => return Err(message),
                    }
                }
            }
            if !busy {
                self.added.extend(partitions);
                return Ok(());
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        Err("the coordinator stayed busy adding partitions".into())
    }

    async fn produce(&mut self, partition: i32, records: &[KeyValue]) -> ProtocolResult<()> {
        let base = *self.sequences.get(&partition).unwrap_or(&0);
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let batch: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: true,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                producer_id: self.handle.producer_id,
                producer_epoch: self.handle.epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: base.wrapping_add(i as i32),
                timestamp: now,
                key: key.clone(),
                value: value.clone(),
                headers: IndexMap::new(),
            })
            .collect();
        let mut encoded = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut encoded,
            &batch,
            &RecordEncodeOptions { version: 2, compression: Compression::None },
        )
        .map_err(|e| e.to_string())?;
        let encoded = encoded.freeze();
        let mut last = String::new();
        for _ in 0..RETRIES {
            // Looked up on every attempt: a retry after a leader change goes to the new one.
            let leader = *self
                .cluster
                .leaders
                .get(partition as usize)
                .ok_or_else(|| format!("partition {partition} is unknown"))?;
            let request = ProduceRequest::default()
                .with_transactional_id(Some(TransactionalId(StrBytes::from_string(
                    self.handle.transactional_id.clone(),
                ))))
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(encoded.clone()))])]);
            let sent = match self.leader(leader).await {
                Ok(conn) => conn.send(&request, 9).await,
                Err(e) => Err(e),
            };
            let response = match sent {
                Ok(response) => response,
                // The broker went away: the partition may have a new leader.
                Err(e) => {
                    last = e;
                    self.rediscover(leader).await;
                    continue;
                }
            };
            let code = response
                .responses
                .iter()
                .flat_map(|t| &t.partition_responses)
                .map(|p| p.error_code)
                .find(|c| *c != 0)
                .unwrap_or(0);
            match check(code, &format!("writing to partition {partition} of '{}'", self.topic)) {
                Ok(()) | Err((ResponseError::DuplicateSequenceNumber, _)) => {
                    self.sequences.insert(partition, base.wrapping_add(records.len() as i32));
                    return Ok(());
                }
                Err((e, message)) if retriable(&e) => {
                    last = message;
                    self.rediscover(leader).await;
                }
                Err((_, message)) => return Err(message),
            }
        }
        Err(format!("partition {partition} of '{}' stayed unavailable: {last}", self.topic))
    }

    /// After a failed produce to `broker`: pauses, drops the connection, and reads the
    /// topic's leaders again.
    async fn rediscover(&mut self, broker: i32) {
        tokio::time::sleep(RETRY_PAUSE).await;
        self.leaders.remove(&broker);
        if let Ok(c) = Cluster::discover(&self.cluster.bootstrap, &self.topic).await {
            self.cluster = c;
        }
    }

    async fn leader(&mut self, broker: i32) -> ProtocolResult<&mut Connection> {
        if !self.leaders.contains_key(&broker) {
            let address =
                self.cluster.brokers.get(&broker).cloned().ok_or_else(|| format!("broker {broker} is unknown"))?;
            self.leaders.insert(broker, Connection::open(&address).await?);
        }
        Ok(self.leaders.get_mut(&broker).expect("inserted above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// True when something listens on `address`. A connection to a free port in the
    /// ephemeral range can connect to itself (TCP simultaneous open, when the kernel picks that
    /// same port as the source), which a plain `connect` would take for a listener.
    fn listening(address: &str) -> bool {
        std::net::TcpStream::connect(address).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
    }

    /// A noida-db broker (installed by `scripts/bootstrap.sh`) in its own process group,
    /// killed with its children when dropped.
    struct TestBroker {
        child: std::process::Child,
        address: String,
        _dir: tempfile::TempDir,
    }

    impl TestBroker {
        fn start() -> TestBroker {
            use std::os::unix::process::CommandExt;
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let child = std::process::Command::new("noida-db")
                .args(["start", "--only", "kafka", "--kafka-port", &port.to_string(), "--data-dir"])
                .arg(dir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .process_group(0)
                .spawn()
                .expect("the noida-db broker is not installed: run `bash scripts/bootstrap.sh`");
            let address = format!("127.0.0.1:{port}");
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !listening(&address) {
                assert!(std::time::Instant::now() < deadline, "the broker did not start on {address}");
                std::thread::sleep(Duration::from_millis(100));
            }
            TestBroker { child, address, _dir: dir }
        }

        async fn create_topic(&self, name: &str) {
            // The broker may accept connections a moment before it serves them (a reset).
            let mut attempts = 0;
            let mut conn = loop {
                match Connection::open(&self.address).await {
                    Ok(conn) => break conn,
                    Err(e) if attempts < 50 => {
                        attempts += 1;
                        tracing::debug!("the test broker is not serving yet: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("the test broker at {} does not serve: {e}", self.address),
                }
            };
            let topic = kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_num_partitions(1)
                .with_replication_factor(1);
            let request = kafka_protocol::messages::CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(10_000);
            let response = conn.send(&request, 5).await.unwrap();
            assert!(response.topics.iter().all(|t| t.error_code == 0), "{response:?}");
        }
    }

    impl Drop for TestBroker {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
            let _ = self.child.wait();
        }
    }

    async fn written_transaction(broker: &TestBroker, id: &str) -> TransactionHandle {
        let bootstrap = [broker.address.clone()];
        let mut txn = Transaction::begin(&bootstrap, "t", id, Duration::from_secs(60)).await.unwrap();
        txn.send(None, Some(Bytes::from_static(b"{}"))).await.unwrap();
        txn.flush().await.unwrap();
        txn.handle().clone()
    }

    /// A commit answered with INVALID_TXN_STATE (the broker aborted the transaction, for
    /// example at its timeout) must fail: its records are lost. It was taken for success.
    #[test]
    fn a_commit_the_broker_refuses_as_aborted_is_an_error_not_a_success() {
        let handle = TransactionHandle { transactional_id: "sink-0-1".into(), producer_id: 7, epoch: 3 };
        let invalid = ResponseError::InvalidTxnState.code();
        match end_txn_step(invalid, true, &handle, "committing transaction 'sink-0-1'") {
            EndTxnStep::Fail(message) => {
                assert!(
                    message.contains("aborted transaction 'sink-0-1'") && message.contains("transaction.timeout.ms"),
                    "{message}"
                )
            }
            other => panic!("a lost transaction was taken for {other:?}"),
        }
        assert_eq!(end_txn_step(0, true, &handle, "c"), EndTxnStep::Done);
        assert_eq!(end_txn_step(ResponseError::NotCoordinator.code(), true, &handle, "c"), EndTxnStep::Reconnect);
        assert_eq!(end_txn_step(ResponseError::ConcurrentTransactions.code(), true, &handle, "c"), EndTxnStep::Retry);
        match end_txn_step(ResponseError::ProducerFenced.code(), true, &handle, "c") {
            EndTxnStep::Fail(message) => assert!(message.contains("taken over"), "{message}"),
            other => panic!("a fenced commit was taken for {other:?}"),
        }
    }

    /// A restore commits again what may already be committed: a repeated commit succeeds
    /// on a real broker. A probe tells an id never used from one used before.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recommitting_a_committed_transaction_succeeds_and_probes_tell_used_ids() {
        let broker = TestBroker::start();
        broker.create_topic("t").await;
        let bootstrap = [broker.address.clone()];
        let committed = written_transaction(&broker, "committed").await;
        end_transaction(&bootstrap, &committed, true).await.unwrap();
        end_transaction(&bootstrap, &committed, true).await.expect("a repeated commit succeeds");
        assert!(abort_open_transaction(&bootstrap, "never-used", Duration::from_secs(60)).await.unwrap());
        assert!(!abort_open_transaction(&bootstrap, "committed", Duration::from_secs(60)).await.unwrap());
    }

    /// A produce whose leader connection breaks reads the metadata again and goes to the
    /// leader it names, instead of failing (or retrying the stale leader).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_produce_retries_at_the_leader_named_by_fresh_metadata() {
        let broker = TestBroker::start();
        broker.create_topic("t").await;
        let bootstrap = [broker.address.clone()];
        let mut txn = Transaction::begin(&bootstrap, "t", "moved", Duration::from_secs(60)).await.unwrap();
        let leader = txn.cluster.leaders[0];
        // As if the leader had moved away from the address we knew: nothing listens there.
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        txn.cluster.brokers.insert(leader, gone.to_string());
        txn.send(None, Some(Bytes::from_static(b"{}"))).await.unwrap();
        txn.flush().await.expect("the produce is retried at the leader of fresh metadata");
        let handle = txn.handle().clone();
        end_transaction(&bootstrap, &handle, true).await.unwrap();
    }

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest (murmur2 of these strings).
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32, -58897971);
        assert_eq!(murmur2(b"abc") as i32, 479470107);
    }
}
