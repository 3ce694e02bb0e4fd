//! Kafka connectors against a real Kafka-protocol broker (noida-db, installed by
//! `scripts/bootstrap.sh`): each test starts its own broker on its own port and data
//! directory, and a Sluice cluster of real processes.

mod common;

use std::time::{Duration, Instant};

use common::broker::Broker;
use common::{read_json_lines, Cluster};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

fn tables(broker: &Broker, source: &str, sink: &str, extra: &str) -> String {
    format!(
        "CREATE TABLE input (id BIGINT, name STRING, amount INT) WITH (
            'connector' = 'kafka', 'topic' = '{source}', 'properties.bootstrap.servers' = '{address}',
            'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'json'{extra});
        CREATE TABLE output (id BIGINT, name STRING, amount INT) WITH (
            'connector' = 'kafka', 'topic' = '{sink}', 'properties.bootstrap.servers' = '{address}',
            'format' = 'json', 'sink.delivery-guarantee' = 'at-least-once');",
        address = broker.address
    )
}

/// Kafka → filter and projection → Kafka: 1,000,000 JSON records over 4 partitions at
/// parallelism 2; the output is checked record by record.
#[test]
fn kafka_to_kafka_transform_is_exact() {
    let broker = Broker::start();
    broker.create_topic("orders", 4);
    broker.create_topic("big-orders", 4);
    let total = 1_000_000i64;
    broker.produce(
        "orders",
        (0..total)
            .map(|i| (Some((i % 4) as i32), json!({"id": i, "name": format!("n{i}"), "amount": i % 1000}).to_string())),
    );
    let cluster = Cluster::start(&[2, 2], &[]);
    let job = cluster.submit(
        &format!(
            "{}
            INSERT INTO output SELECT id, UPPER(name) AS name, CAST(amount * 2 AS INT) AS amount FROM input WHERE amount >= 100;",
            tables(&broker, "orders", "big-orders", "")
        ),
        2,
    );
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 3 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());

    let mut seen = vec![false; total as usize];
    let mut count = 0;
    for (_, _, value) in broker.read_all("big-orders", 4) {
        let row: Value = serde_json::from_str(&value).unwrap();
        let id = row["id"].as_i64().unwrap();
        assert!(id % 1000 >= 100, "{row} should have been filtered out");
        assert_eq!(row["name"], format!("N{id}"), "{row}");
        assert_eq!(row["amount"], (id % 1000) * 2, "{row}");
        assert!(!seen[id as usize], "record {id} was written twice");
        seen[id as usize] = true;
        count += 1;
    }
    assert_eq!(count, total * 9 / 10, "every record that passes the filter, once");
}

/// A malformed record fails the job with its topic, partition and offset, or is skipped
/// and counted with 'json.ignore-parse-errors'.
#[test]
fn malformed_records_fail_with_their_offset_or_are_skipped() {
    let broker = Broker::start();
    broker.create_topic("mixed", 1);
    broker.create_topic("out-strict", 1);
    broker.create_topic("out-lenient", 1);
    let records = [r#"{"id": 1, "name": "a", "amount": 5}"#, "{not json", r#"{"id": 3, "name": "c", "amount": 7}"#];
    broker.produce("mixed", records.iter().map(|r| (Some(0), r.to_string())));
    let cluster = Cluster::start(&[2], &[]);

    let strict = cluster
        .submit(&format!("{}\nINSERT INTO output SELECT * FROM input;", tables(&broker, "mixed", "out-strict", "")), 1);
    let status = cluster.wait_for(&strict, &["FINISHED", "FAILED"], MINUTE);
    assert_eq!(status["state"], "FAILED", "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("topic 'mixed' partition 0 offset 1"), "{message}");
    assert!(message.contains("json.ignore-parse-errors"), "{message}");

    let lenient = cluster.submit(
        &format!(
            "{}\nINSERT INTO output SELECT * FROM input;",
            tables(&broker, "mixed", "out-lenient", ", 'json.ignore-parse-errors' = 'true'")
        ),
        1,
    );
    let status = cluster.wait_for(&lenient, &["FINISHED", "FAILED"], MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert_eq!(common::metric(&status, "input", "records_skipped"), 1, "the bad record is counted: {status:#}");
    let ids: Vec<i64> = broker
        .read_all("out-lenient", 1)
        .iter()
        .map(|(_, _, v)| serde_json::from_str::<Value>(v).unwrap()["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 3]);
}

/// Exactly-once Kafka → Kafka under failures: the task managers first crash right after a
/// checkpoint completed and before its transactions commit (a fault switch), then a task
/// manager is killed with `kill -9` 10 times. A fresh read_committed consumer must see
/// every input record exactly once.
#[test]
fn exactly_once_survives_kills_and_a_crash_before_commit() {
    let broker = Broker::start();
    broker.create_topic("payments", 4);
    broker.create_topic("settled", 4);
    let total = 200_000i64;
    broker.produce(
        "payments",
        (0..total).map(|i| (Some((i % 4) as i32), json!({"id": i, "name": "p", "amount": 1}).to_string())),
    );
    let mut cluster = Cluster::start(&[], &["--checkpoint-dir", "{dir}/checkpoints", "--heartbeat-timeout", "2s"]);
    cluster.add_taskmanager_with_env(2, &[("SLUICE_TEST_EXIT_BEFORE_COMMIT", "3")]);
    cluster.add_taskmanager_with_env(2, &[("SLUICE_TEST_EXIT_BEFORE_COMMIT", "3")]);
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '500ms';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.delay' = '200ms';
        CREATE TABLE input (id BIGINT, name STRING, amount INT) WITH (
            'connector' = 'kafka', 'topic' = 'payments', 'properties.bootstrap.servers' = '{address}',
            'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'json');
        CREATE TABLE output (id BIGINT, name STRING, amount INT) WITH (
            'connector' = 'kafka', 'topic' = 'settled', 'properties.bootstrap.servers' = '{address}',
            'format' = 'json', 'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'settle',
            'sink.rows-per-second' = '2500');
        INSERT INTO output SELECT id, name, amount FROM input;",
        address = broker.address
    );
    let job = cluster.submit(&sql, 2);
    // The fault switch ends both task managers after checkpoint 3 completes.
    cluster.wait_until_task_managers_exit(MINUTE);
    cluster.add_taskmanager(2);
    cluster.add_taskmanager(2);
    cluster.add_taskmanager(2);
    let kills = cluster.kill_task_managers_while_running(&job, 10, 2, Duration::from_millis(500));
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 5 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert_eq!(kills, 10, "the job finished after only {kills} kills; pace it more");

    // The transactions of the checkpoint completed before the crash were committed on restore.
    let recovered = std::fs::read_dir(cluster.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("taskmanager"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .filter(|log| log.contains("committed a restored transaction"))
        .count();
    assert!(recovered > 0, "no restored transaction was committed:\n{}", cluster.logs());

    let mut seen = vec![0u32; total as usize];
    for (_, _, value) in broker.read_all("settled", 4) {
        let row: Value = serde_json::from_str(&value).unwrap();
        seen[row["id"].as_i64().unwrap() as usize] += 1;
    }
    let missing = seen.iter().filter(|&&n| n == 0).count();
    let duplicated = seen.iter().filter(|&&n| n > 1).count();
    assert_eq!((missing, duplicated), (0, 0), "records missing or committed twice after {kills} kills");
}

/// A restored job resumes from the offsets in its checkpoint: not from the beginning, and
/// not from the consumer group's committed offsets (which the test moves back to 1 while
/// the job restarts).
#[test]
fn a_restored_source_resumes_from_its_checkpointed_offsets() {
    let broker = Broker::start();
    broker.create_topic("ledger", 1);
    broker.create_topic("ledger-copy", 1);
    let total = 60_000i64;
    broker.produce("ledger", (0..total).map(|i| (Some(0), json!({"id": i, "name": "x", "amount": 0}).to_string())));
    let mut cluster = Cluster::start(&[1], &["--checkpoint-dir", "{dir}/checkpoints", "--heartbeat-timeout", "2s"]);
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '300ms';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.delay' = '1s';
        CREATE TABLE input (id BIGINT, name STRING, amount INT) WITH (
            'connector' = 'kafka', 'topic' = 'ledger', 'properties.bootstrap.servers' = '{address}',
            'properties.group.id' = 'ledger-readers', 'scan.startup.mode' = 'earliest-offset',
            'scan.bounded.mode' = 'latest-offset', 'format' = 'json');
        CREATE TABLE output (id BIGINT, name STRING, amount INT) WITH (
            'connector' = 'kafka', 'topic' = 'ledger-copy', 'properties.bootstrap.servers' = '{address}',
            'format' = 'json', 'sink.delivery-guarantee' = 'exactly-once', 'sink.rows-per-second' = '10000');
        INSERT INTO output SELECT * FROM input;",
        address = broker.address
    );
    let job = cluster.submit(&sql, 1);
    let deadline = Instant::now() + MINUTE;
    while cluster.status(&job)["checkpoints"]["completed"].as_u64().unwrap_or(0) < 3 {
        assert!(Instant::now() < deadline, "no checkpoints: {}", cluster.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.taskmanagers[0].kill9();
    // Move the group's committed offset back: a restore must not use it.
    let consumer: BaseConsumer = broker.client().set("group.id", "ledger-readers").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("ledger", 0, Offset::Offset(1)).unwrap();
    consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync).unwrap();
    cluster.add_taskmanager(1);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 2 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());

    // The restored attempt's start offset, from the task manager's log.
    let log = std::fs::read_to_string(cluster.dir.path().join("taskmanager-2.log")).unwrap();
    let line = log
        .lines()
        .rfind(|l| l.contains("kafka source reads its partitions"))
        .expect("the restored source logs its offsets");
    let start: i64 = line
        .split("ledger/0 from offset ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(start > 1, "the restored source must start from its checkpoint, not the beginning or the group: {line}");
    assert!(start < total, "{line}");
    let restored_from = status["checkpoints"]["restored_from_id"].as_u64().unwrap();
    assert!(restored_from >= 3, "{status:#}");

    let ids: Vec<i64> = broker
        .read_all("ledger-copy", 1)
        .iter()
        .map(|(_, _, v)| serde_json::from_str::<Value>(v).unwrap()["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len() as i64, total, "every record once");
    let first_after_restore = ids.iter().position(|&id| id == start).unwrap();
    assert!(
        ids[..first_after_restore].iter().all(|&id| id < start),
        "records before the checkpoint were committed before it"
    );
}

/// Metadata columns: a record's topic, partition, offset and timestamp; with a computed
/// column and a per-partition watermark on the record timestamp.
#[test]
fn metadata_columns_carry_topic_partition_offset_and_timestamp() {
    let broker = Broker::start();
    broker.create_topic("clicks", 2);
    broker.produce("clicks", (0..10).map(|i| (Some(i % 2), json!({"id": i, "name": "c", "amount": 1}).to_string())));
    let cluster = Cluster::start(&[2], &[]);
    let out = cluster.dir.path().join("out");
    let job = cluster.submit(
        &format!(
            "CREATE TABLE clicks (
                id BIGINT, name STRING,
                src STRING METADATA FROM 'topic' VIRTUAL,
                part INT METADATA FROM 'partition' VIRTUAL,
                `offset` BIGINT METADATA VIRTUAL,
                event_time TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
                doubled AS id * 2,
                WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
            ) WITH ('connector' = 'kafka', 'topic' = 'clicks', 'properties.bootstrap.servers' = '{}',
                'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'json');
            CREATE TABLE out (id BIGINT, src STRING, part INT, off BIGINT, fresh BOOLEAN, doubled BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
            INSERT INTO out SELECT id, src, part, `offset`, event_time > TIMESTAMP '2020-01-01 00:00:00', doubled FROM clicks;",
            broker.address,
            out.display()
        ),
        2,
    );
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    let mut rows: Vec<(i64, String, i64, i64, bool)> = read_json_lines(&out)
        .iter()
        .map(|r| {
            assert_eq!(r["doubled"], r["id"].as_i64().unwrap() * 2);
            (
                r["id"].as_i64().unwrap(),
                r["src"].as_str().unwrap().to_string(),
                r["part"].as_i64().unwrap(),
                r["off"].as_i64().unwrap(),
                r["fresh"].as_bool().unwrap(),
            )
        })
        .collect();
    rows.sort();
    let expected: Vec<(i64, String, i64, i64, bool)> =
        (0..10).map(|i| (i, "clicks".to_string(), i % 2, i / 2, true)).collect();
    assert_eq!(rows, expected);
}

fn letter(id: i64) -> sluice_connectors::kafka::dead_letter::DeadLetter {
    sluice_connectors::kafka::dead_letter::DeadLetter {
        input: json!({"id": id}).as_object().unwrap().clone(),
        error: "HTTP 400: invalid prompt".into(),
        http_status: Some(400),
        attempts: 1,
        source: "model scorer".into(),
    }
}

fn dead_letter_config(
    broker: &Broker,
    topic: &str,
    guarantee: &str,
) -> sluice_connectors::kafka::dead_letter::DeadLetterConfig {
    let options = [
        ("dead-letter.topic".to_string(), format!("kafka:{topic}")),
        ("dead-letter.properties.bootstrap.servers".to_string(), broker.address.clone()),
        ("dead-letter.delivery-guarantee".to_string(), guarantee.to_string()),
    ]
    .into();
    sluice_connectors::kafka::dead_letter::DeadLetterConfig::from_model_options(&options).unwrap()
}

fn letter_ids(broker: &Broker, topic: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = broker
        .read_all(topic, 1)
        .iter()
        .map(|(_, _, v)| serde_json::from_str::<Value>(v).unwrap()["input"]["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// The dead-letter writer other operators use: `kafka:TOPIC` receives JSON records with
/// the input row, the error, the HTTP status and the attempts.
#[test]
fn dead_letters_reach_their_topic() {
    use sluice_connectors::kafka::dead_letter::{DeadLetterRestore, DeadLetterWriter};
    let broker = Broker::start();
    broker.create_topic("failed-predictions", 1);
    let config = dead_letter_config(&broker, "failed-predictions", "at-least-once");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let ctx = sluice_core::TaskContext::single("dead letters");
        let mut writer = DeadLetterWriter::open(&config, &ctx, DeadLetterRestore::default()).await.unwrap();
        for id in 0..3 {
            writer.write(&letter(id)).unwrap();
        }
        writer.flush().await.unwrap();
        assert_eq!(writer.written(), 3);
    });
    let letters: Vec<Value> =
        broker.read_all("failed-predictions", 1).iter().map(|(_, _, v)| serde_json::from_str(v).unwrap()).collect();
    assert_eq!(letters.len(), 3);
    assert_eq!(letters[2]["input"]["id"], 2);
    assert_eq!(letters[0]["http_status"], 400);
    assert_eq!(letters[0]["error"], "HTTP 400: invalid prompt");
}

/// Exactly-once dead letters: an epoch's letters are invisible to read_committed readers
/// until their checkpoint completes. A writer that crashed after checkpoint 1 and before
/// committing it, with letters of epoch 2 written, restores from checkpoint 1: its
/// letters are committed once, epoch 2's are aborted, and the new attempt's letters follow.
#[test]
fn exactly_once_dead_letters_commit_with_their_checkpoint_and_once_after_a_restore() {
    use sluice_connectors::kafka::dead_letter::{DeadLetterRestore, DeadLetterWriter, TRANSACTIONS_LIST};
    use sluice_core::{OperatorState, StateInit};
    let broker = Broker::start();
    broker.create_topic("failed-eo", 1);
    let config = dead_letter_config(&broker, "failed-eo", "exactly-once");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ctx = sluice_core::TaskContext { checkpointing: true, ..sluice_core::TaskContext::single("dead letters") };
    let fresh = StateInit { operator_uid: "3-ml_predict".into(), ..Default::default() };
    let checkpoint_1 = runtime.block_on(async {
        let mut writer = DeadLetterWriter::open(&config, &ctx, DeadLetterRestore::from_init(&fresh)).await.unwrap();
        for id in 0..3 {
            writer.write(&letter(id)).unwrap();
        }
        let state = writer.snapshot(1, OperatorState::default()).await.unwrap();
        // Enough letters of epoch 2 that the open transaction holds records on the broker.
        for id in 100..6_100 {
            writer.write(&letter(id)).unwrap();
            if writer.should_send() {
                writer.send_queued().await.unwrap();
            }
        }
        writer.send_queued().await.unwrap();
        // The process dies here: checkpoint 1 completed, nothing was committed. (The
        // transactions are still open, so a read_committed reader cannot get past them yet.)
        std::mem::forget(writer);
        state
    });
    assert!(!checkpoint_1.entries(TRANSACTIONS_LIST).is_empty());

    runtime.block_on(async {
        let mut init = StateInit::restoring(checkpoint_1);
        init.restored_checkpoint = 1;
        init.operator_uid = "3-ml_predict".into();
        let mut writer = DeadLetterWriter::open(&config, &ctx, DeadLetterRestore::from_init(&init)).await.unwrap();
        assert_eq!(
            letter_ids(&broker, "failed-eo"),
            vec![0, 1, 2],
            "the restored checkpoint's letters, once; epoch 2 aborted"
        );
        writer.write(&letter(7)).unwrap();
        writer.snapshot(2, OperatorState::default()).await.unwrap();
        writer.commit(2).await.unwrap();
    });
    assert_eq!(letter_ids(&broker, "failed-eo"), vec![0, 1, 2, 7]);
}

/// Partitions added to a topic while a job reads it are picked up, from their start.
#[test]
fn new_partitions_are_picked_up() {
    let broker = Broker::start();
    broker.create_topic("growing", 1);
    broker.produce("growing", (0..5).map(|i| (Some(0), json!({"id": i, "name": "g", "amount": 0}).to_string())));
    let cluster = Cluster::start(&[2], &["--checkpoint-dir", "{dir}/checkpoints"]);
    let out = cluster.dir.path().join("out");
    let job = cluster.submit(
        &format!(
            "SET 'execution.checkpointing.interval' = '200ms';
            CREATE TABLE events (id BIGINT, name STRING, amount INT) WITH ('connector' = 'kafka', 'topic' = 'growing',
                'properties.bootstrap.servers' = '{}', 'scan.startup.mode' = 'earliest-offset',
                'scan.topic-partition-discovery.interval' = '300ms', 'format' = 'json');
            CREATE TABLE out (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
            INSERT INTO out SELECT id FROM events;",
            broker.address,
            out.display()
        ),
        2,
    );
    let committed_ids = || -> Vec<i64> {
        let mut ids: Vec<i64> = if out.exists() {
            read_json_lines(&out).iter().map(|r| r["id"].as_i64().unwrap()).collect()
        } else {
            Vec::new()
        };
        ids.sort_unstable();
        ids
    };
    let wait_for_ids = |n: i64| {
        let deadline = Instant::now() + MINUTE;
        while committed_ids() != (0..n).collect::<Vec<_>>() {
            assert!(Instant::now() < deadline, "committed {:?}, expected 0..{n}\n{}", committed_ids(), cluster.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for_ids(5);
    let admin: AdminClient<DefaultClientContext> = broker.client().create().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for r in runtime
        .block_on(admin.create_partitions(&[rdkafka::admin::NewPartitions::new("growing", 3)], &AdminOptions::new()))
        .unwrap()
    {
        r.unwrap();
    }
    broker.produce(
        "growing",
        (5..11).map(|i: i32| (Some(i % 3), json!({"id": i, "name": "g", "amount": 0}).to_string())),
    );
    wait_for_ids(11);
    let canceled = cluster.cli(&["cancel", &job]);
    assert!(canceled.status.success());
}

/// The committed ids of a filesystem sink's directory, sorted (none while it is missing).
fn committed_ids(out: &std::path::Path) -> Vec<i64> {
    let mut ids: Vec<i64> = if out.exists() {
        read_json_lines(out).iter().map(|r| r["id"].as_i64().unwrap()).collect()
    } else {
        Vec::new()
    };
    ids.sort_unstable();
    ids
}

/// Polls until `done` holds, failing with the cluster's logs after a minute.
fn wait_until(cluster: &Cluster, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + MINUTE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A job copying the ids of Kafka topic `topic` (read with `scan`, its startup and bounded
/// options) into the exactly-once file sink `out`, with 200 ms checkpoints and quick
/// restarts.
fn restarting_kafka_to_files(broker: &Broker, topic: &str, scan: &str, out: &std::path::Path) -> String {
    format!(
        "SET 'execution.checkpointing.interval' = '200ms';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.delay' = '200ms';
        CREATE TABLE input (id BIGINT, name STRING, amount INT) WITH ('connector' = 'kafka', 'topic' = '{topic}',
            'properties.bootstrap.servers' = '{}', {scan}, 'format' = 'json');
        CREATE TABLE out (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
        INSERT INTO out SELECT id FROM input;",
        broker.address,
        out.display()
    )
}

fn checkpoints_completed(cluster: &Cluster, job: &str) -> u64 {
    cluster.status(job)["checkpoints"]["completed"].as_u64().unwrap_or(0)
}

/// A `latest-offset` job restored from a checkpoint taken before one of its partitions
/// delivered anything must not replay that partition's history: the partition's start
/// offset is in the checkpoint.
#[test]
fn a_quiet_partition_of_a_latest_offset_job_is_not_replayed_after_a_restore() {
    let broker = Broker::start();
    broker.create_topic("clicks", 2);
    broker.produce(
        "clicks",
        (0..100).map(|i| (Some(i % 2), json!({"id": 1000 + i, "name": "old", "amount": 0}).to_string())),
    );
    let mut cluster = Cluster::start(&[1], &["--checkpoint-dir", "{dir}/checkpoints", "--heartbeat-timeout", "2s"]);
    let out = cluster.dir.path().join("out");
    let job =
        cluster.submit(&restarting_kafka_to_files(&broker, "clicks", "'scan.startup.mode' = 'latest-offset'", &out), 1);
    // A completed checkpoint means the source has opened and resolved 'latest'.
    wait_until(&cluster, "a first checkpoint", || checkpoints_completed(&cluster, &job) >= 1);
    broker.produce("clicks", (0..5).map(|i| (Some(0), json!({"id": i, "name": "new", "amount": 0}).to_string())));
    wait_until(&cluster, "ids 0..5 committed", || committed_ids(&out) == (0..5).collect::<Vec<_>>());
    let before = checkpoints_completed(&cluster, &job);
    wait_until(&cluster, "a checkpoint after the commit", || checkpoints_completed(&cluster, &job) > before);
    cluster.taskmanagers[0].kill9();
    cluster.taskmanagers.clear();
    cluster.add_taskmanager(1);
    wait_until(&cluster, "the restored job", || {
        let status = cluster.status(&job);
        status["restarts"].as_u64().unwrap_or(0) >= 1
            && status["state"] == "RUNNING"
            && status["checkpoints"]["completed"].as_u64().unwrap_or(0) > before + 1
    });
    broker.produce("clicks", (5..15).map(|i| (Some(i % 2), json!({"id": i, "name": "new", "amount": 0}).to_string())));
    wait_until(&cluster, "ids 0..15 committed", || committed_ids(&out).iter().filter(|&&id| id < 1000).count() >= 15);
    // Anything replayed would be committed with the same checkpoints as ids 5..15.
    let before = checkpoints_completed(&cluster, &job);
    wait_until(&cluster, "two more checkpoints", || checkpoints_completed(&cluster, &job) > before + 1);
    assert!(cluster.cli(&["cancel", &job]).status.success());
    let ids = committed_ids(&out);
    let replayed: Vec<i64> = ids.iter().copied().filter(|&id| id >= 1000).collect();
    assert!(replayed.is_empty(), "{} records of partition history were replayed: {replayed:?}", replayed.len());
    assert_eq!(ids, (0..15).collect::<Vec<_>>());
}

/// A bounded (`latest-offset`) read restored after a failure stops at the offsets its first
/// attempt computed, even though more records arrived meanwhile: the same rows as a run
/// without failures.
#[test]
fn a_restored_bounded_read_stops_where_the_first_attempt_would_have() {
    let broker = Broker::start();
    broker.create_topic("batch", 1);
    broker.produce("batch", (0..3000).map(|i| (Some(0), json!({"id": i, "name": "b", "amount": 0}).to_string())));
    let pace = [("SLUICE_TEST_SOURCE_PACE", "100:50")];
    let mut cluster = Cluster::start(&[], &["--checkpoint-dir", "{dir}/checkpoints", "--heartbeat-timeout", "2s"]);
    cluster.add_taskmanager_with_env(1, &pace);
    let out = cluster.dir.path().join("out");
    let bounded = "'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'";
    let job = cluster.submit(&restarting_kafka_to_files(&broker, "batch", bounded, &out), 1);
    wait_until(&cluster, "two checkpoints", || checkpoints_completed(&cluster, &job) >= 2);
    broker.produce("batch", (3000..4000).map(|i| (Some(0), json!({"id": i, "name": "late", "amount": 0}).to_string())));
    let status = cluster.status(&job);
    assert_eq!(status["state"], "RUNNING", "the paced job must still be reading: {status:#}");
    cluster.taskmanagers[0].kill9();
    cluster.taskmanagers.clear();
    cluster.add_taskmanager_with_env(1, &pace);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 2 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert!(status["restarts"].as_u64().unwrap() >= 1, "{status:#}");
    assert_eq!(
        committed_ids(&out),
        (0..3000).collect::<Vec<_>>(),
        "exactly the records before the first attempt's end offsets"
    );
}

/// The SQL of an unbounded datagen → exactly-once Kafka job writing `topic`.
fn unbounded_exactly_once_job(broker: &Broker, topic: &str, interval: &str, rows_per_second: u32) -> String {
    format!(
        "SET 'execution.checkpointing.interval' = '{interval}';
        CREATE TABLE events (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '{rows_per_second}',
            'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '1000000000');
        CREATE TABLE out (id BIGINT) WITH ('connector' = 'kafka', 'topic' = '{topic}',
            'properties.bootstrap.servers' = '{}', 'format' = 'json', 'sink.delivery-guarantee' = 'exactly-once');
        INSERT INTO out SELECT id FROM events;",
        broker.address
    )
}

/// Stop-with-savepoint ends the job only after its sinks committed, and leaves no
/// transaction open behind it: rows emitted after the savepoint's barrier would otherwise
/// sit in an open transaction that holds back every read_committed consumer until it times
/// out. A record written after the stop must be readable at once, after exactly the rows
/// the savepoint covers.
#[test]
fn stop_with_savepoint_leaves_no_transaction_open() {
    let broker = Broker::start();
    broker.create_topic("stopped", 1);
    let cluster = Cluster::start(&[1], &["--checkpoint-dir", "{dir}/checkpoints"]);
    let job = cluster.submit(&unbounded_exactly_once_job(&broker, "stopped", "500ms", 200_000), 1);
    wait_until(&cluster, "two checkpoints", || checkpoints_completed(&cluster, &job) >= 2);
    let savepoints = cluster.dir.path().join("savepoints");
    let saved = cluster.cli(&["savepoint", &job, "--stop", "--directory", savepoints.to_str().unwrap()]);
    assert!(saved.status.success(), "{}\n{}", String::from_utf8_lossy(&saved.stderr), cluster.logs());
    let status = cluster.status(&job);
    assert_eq!(status["state"], "FINISHED", "the stop answers once the job has ended: {status:#}");
    broker.produce("stopped", [(Some(0), json!({"id": -1}).to_string())]);
    let ids: Vec<i64> = broker
        .read_all("stopped", 1)
        .iter()
        .map(|(_, _, v)| serde_json::from_str::<Value>(v).unwrap()["id"].as_i64().unwrap())
        .collect();
    let (marker, rows) = ids.split_last().expect("the marker is readable");
    assert_eq!(*marker, -1, "the record written after the stop comes last");
    assert!(!rows.is_empty());
    assert_eq!(rows.to_vec(), (0..rows.len() as i64).collect::<Vec<_>>(), "the committed rows are 0..n, once each");
}

/// A stop-with-savepoint whose sink cannot commit (its task manager dies at the commit)
/// fails, saying so, instead of reporting the job FINISHED.
#[test]
fn stop_with_savepoint_fails_when_a_sink_cannot_commit() {
    let broker = Broker::start();
    broker.create_topic("uncommitted", 1);
    let mut cluster = Cluster::start(&[], &["--checkpoint-dir", "{dir}/checkpoints", "--heartbeat-timeout", "2s"]);
    // The first checkpoint is taken at once (1); the savepoint is checkpoint 2.
    cluster.add_taskmanager_with_env(1, &[("SLUICE_TEST_EXIT_BEFORE_COMMIT", "2")]);
    let job = cluster.submit(&unbounded_exactly_once_job(&broker, "uncommitted", "10min", 1000), 1);
    wait_until(&cluster, "rows flowing after the first checkpoint", || {
        let status = cluster.status(&job);
        checkpoints_completed(&cluster, &job) >= 1 && common::metric(&status, "events", "rows_in") > 200
    });
    let savepoints = cluster.dir.path().join("savepoints");
    let saved = cluster.cli(&["savepoint", &job, "--stop", "--directory", savepoints.to_str().unwrap()]);
    assert!(!saved.status.success(), "the stop must fail: {}", String::from_utf8_lossy(&saved.stdout));
    let error = String::from_utf8_lossy(&saved.stderr);
    assert!(error.contains("could not stop cleanly"), "{error}");
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], MINUTE);
    assert_eq!(status["state"], "FAILED", "{status:#}");
}

/// Kafka (event-time JSON over 4 partitions, out of order by up to 3 s, within the 5 s
/// watermark bound) → TUMBLE 10 s COUNT/SUM per key → exactly-once Kafka, with 5 `kill -9`
/// of task managers while it runs. A fresh read_committed consumer sees each (key, window)
/// exactly once, with the count and sum computed here from the records.
#[test]
fn window_aggregates_are_exactly_once_through_kills() {
    let broker = Broker::start();
    broker.create_topic("clicks", 4);
    broker.create_topic("clicks-per-window", 4);
    let total = 300_000i64;
    let base = 1_586_937_600_000i64; // 2020-04-15 08:00:00 UTC
                                     // Record i: key u{i % 50}, amount i % 100, event time base + 2 ms * i, moved back by
                                     // up to 3 s (a different amount for each record), so each partition is out of order.
    let time = |i: i64| base + 2 * i - (i * 7919) % 3000;
    broker.produce(
        "clicks",
        (0..total).map(|i| {
            let record = json!({"id": i, "k": format!("u{}", i % 50), "amount": i % 100, "ms": time(i)});
            (Some((i % 4) as i32), record.to_string())
        }),
    );
    let mut cluster = Cluster::start(&[], &["--checkpoint-dir", "{dir}/checkpoints", "--heartbeat-timeout", "2s"]);
    // Sources read 100 records per 10 ms per subtask, so the job runs long enough to be killed.
    cluster.taskmanager_env = vec![("SLUICE_TEST_SOURCE_PACE".into(), "100:10".into())];
    cluster.add_taskmanager(2);
    cluster.add_taskmanager(2);
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '500ms';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.delay' = '200ms';
        CREATE TABLE clicks (id BIGINT, k STRING, amount INT, ms BIGINT,
            ts AS to_timestamp_millis(ms), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH (
            'connector' = 'kafka', 'topic' = 'clicks', 'properties.bootstrap.servers' = '{address}',
            'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'json');
        CREATE TABLE per_window (k STRING, w BIGINT, n BIGINT, total BIGINT) WITH (
            'connector' = 'kafka', 'topic' = 'clicks-per-window', 'properties.bootstrap.servers' = '{address}',
            'format' = 'json', 'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'windows');
        INSERT INTO per_window
        SELECT k, CAST(window_start AS BIGINT), COUNT(*), SUM(amount)
        FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' SECONDS))
        GROUP BY k, window_start, window_end;",
        address = broker.address
    );
    let job = cluster.submit(&sql, 2);
    let kills = cluster.kill_task_managers_while_running(&job, 5, 2, Duration::from_millis(500));
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 5 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert_eq!(kills, 5, "the job finished after only {kills} kills; pace it more");
    // Each task reports the watermark it sent on: the end of input, at the end.
    for task in status["tasks"].as_array().unwrap() {
        assert_eq!(task["watermark"], i64::MAX, "{task:#}");
    }

    // Independently: each record's 10-second window, per key.
    let mut expected: std::collections::BTreeMap<(String, i64), (i64, i64)> = Default::default();
    for i in 0..total {
        let t = time(i);
        let entry = expected.entry((format!("u{}", i % 50), t - t.rem_euclid(10_000))).or_default();
        entry.0 += 1;
        entry.1 += i % 100;
    }
    let mut actual: std::collections::BTreeMap<(String, i64), (i64, i64)> = Default::default();
    for (_, _, value) in broker.read_all("clicks-per-window", 4) {
        let row: Value = serde_json::from_str(&value).unwrap();
        let key = (row["k"].as_str().unwrap().to_string(), row["w"].as_i64().unwrap());
        let result = (row["n"].as_i64().unwrap(), row["total"].as_i64().unwrap());
        assert!(actual.insert(key.clone(), result).is_none(), "window {key:?} was committed twice after {kills} kills");
    }
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(key, result)| actual.get(*key) != Some(*result))
        .map(|(key, result)| format!("{key:?}: expected {result:?}, committed {:?}", actual.get(key)))
        .collect();
    let extra = actual.keys().filter(|k| !expected.contains_key(*k)).count();
    assert!(
        wrong.is_empty() && extra == 0,
        "{} of {} windows wrong and {extra} unexpected after {kills} kills, e.g.:\n{}",
        wrong.len(),
        expected.len(),
        wrong.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// An updating GROUP BY and a Top-N into `upsert-kafka`, exactly once with checkpoints and
/// two task-manager kills (a paced blackhole sink of the same input keeps the job running): the topics, compacted by key (the last record of each key, a
/// tombstone deleting it), hold exactly the final results, computed here from the input.
#[test]
fn updating_queries_into_upsert_kafka_leave_the_final_table_per_key() {
    let broker = Broker::start();
    broker.create_topic("sales", 4);
    broker.create_topic("totals", 3);
    broker.create_topic("leaders", 2);
    // Name k sells (k + 1) * 1,000 times; names take turns while they have sales left, so
    // early on every count ties (the names ordering first lead) until n6 and n5 pull away.
    let mut left: Vec<i64> = (0..7).map(|k| (k + 1) * 1_000).collect();
    let mut sales = Vec::new();
    let mut id = 0i64;
    while left.iter().any(|&n| n > 0) {
        for (k, n) in left.iter_mut().enumerate() {
            if *n > 0 {
                *n -= 1;
                sales.push((id, format!("n{k}"), id % 10));
                id += 1;
            }
        }
    }
    broker.produce(
        "sales",
        sales.iter().map(|(id, name, amount)| {
            (Some((id % 4) as i32), json!({"id": id, "name": name, "amount": amount}).to_string())
        }),
    );
    let mut expected_totals = std::collections::BTreeMap::new();
    for (_, name, amount) in &sales {
        let e = expected_totals.entry(name.clone()).or_insert((0i64, 0i64));
        e.0 += 1;
        e.1 += amount;
    }
    let mut cluster = Cluster::start(&[2, 2], &["--checkpoint-dir", "{dir}/checkpoints", "--heartbeat-timeout", "2s"]);
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '300ms';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.delay' = '200ms';
        CREATE TABLE input (id BIGINT, name STRING, amount INT) WITH (
            'connector' = 'kafka', 'topic' = 'sales', 'properties.bootstrap.servers' = '{address}',
            'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'json');
        CREATE TABLE totals (name STRING, sales BIGINT, amount BIGINT, PRIMARY KEY (name) NOT ENFORCED) WITH (
            'connector' = 'upsert-kafka', 'topic' = 'totals', 'properties.bootstrap.servers' = '{address}',
            'key.format' = 'json', 'value.format' = 'json', 'sink.delivery-guarantee' = 'exactly-once',
            'sink.transactional-id-prefix' = 'totals');
        CREATE TABLE leaders (name STRING, sales BIGINT, PRIMARY KEY (name) NOT ENFORCED) WITH (
            'connector' = 'upsert-kafka', 'topic' = 'leaders', 'properties.bootstrap.servers' = '{address}',
            'key.format' = 'json', 'value.format' = 'json', 'value.fields-include' = 'EXCEPT_KEY',
            'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = 'leaders');
        CREATE TABLE pace (id BIGINT) WITH ('connector' = 'blackhole', 'sink.rows-per-second' = '1500');
        INSERT INTO pace SELECT id FROM input;
        INSERT INTO totals SELECT name, COUNT(*), SUM(CAST(amount AS BIGINT)) FROM input GROUP BY name;
        INSERT INTO leaders SELECT name, sales FROM (
            SELECT name, sales, ROW_NUMBER() OVER (ORDER BY sales DESC, name) AS rownum
            FROM (SELECT name, COUNT(*) AS sales FROM input GROUP BY name)
        ) WHERE rownum <= 2;",
        address = broker.address
    );
    let job = cluster.submit(&sql, 2);
    cluster.add_taskmanager(2);
    let kills = cluster.kill_task_managers_while_running(&job, 2, 2, Duration::from_millis(800));
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 5 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert_eq!(kills, 2, "the job finished after only {kills} kills; pace it more");

    let compacted = |topic: &str, partitions: i32| {
        let mut latest = std::collections::BTreeMap::new();
        for record in broker.read_records(topic, partitions) {
            let key: Value = serde_json::from_str(record.key.as_deref().expect("every record has a key")).unwrap();
            let value = record.value.map(|v| serde_json::from_str::<Value>(&v).unwrap());
            latest.insert(key["name"].as_str().unwrap().to_string(), value);
        }
        latest
    };
    let totals: Vec<(String, Value)> =
        compacted("totals", 3).into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
    let expected: Vec<(String, Value)> = expected_totals
        .iter()
        .map(|(name, (n, amount))| (name.clone(), json!({"name": name, "sales": n, "amount": amount})))
        .collect();
    assert_eq!(totals, expected, "the last record of each name holds its final totals");

    let leaders = compacted("leaders", 2);
    let live: Vec<(String, Value)> = leaders.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
    assert_eq!(
        live,
        [("n5".to_string(), json!({"sales": 6000})), ("n6".to_string(), json!({"sales": 7000}))],
        "the two leaders are left; every name that led before ends with a tombstone: {leaders:?}"
    );
}
