//! Checkpoints in S3-compatible object storage, with real processes and a real S3 server
//! (moto): the state of a job whose task managers are killed comes back from the bucket,
//! a damaged checkpoint object is skipped for the one before it when the job allows, and a
//! jobmanager killed with `kill -9` recovers its job from the bucket when it starts again.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::s3::S3Server;
use common::{read_json_lines, Cluster};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

/// A cluster whose checkpoints go to `s3://sluice/checkpoints` on `server`.
fn cluster(server: &S3Server, slots: &[u32]) -> Cluster {
    let env = server.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Cluster::start_with_env(slots, &["--checkpoint-dir", "s3://sluice/checkpoints", "--heartbeat-timeout", "2s"], &env)
}

/// Keyed totals of `rows` sequence ids over `keys` keys, written once at the end (batch
/// mode) by the two-phase-commit file sink.
fn totals_job(out: &std::path::Path, rows: u64, rate: u64, keys: u64, extra: &str) -> String {
    format!(
        "SET 'execution.checkpointing.interval' = '1s';
        SET 'execution.runtime-mode' = 'batch';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.delay' = '200ms';
        {extra}
        CREATE TABLE events (id BIGINT) WITH (
            'connector' = 'datagen', 'number-of-rows' = '{rows}', 'rows-per-second' = '{rate}',
            'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '{}');
        CREATE TABLE totals (k BIGINT, n BIGINT, s BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
        INSERT INTO totals SELECT id % {keys} AS k, COUNT(*) AS n, SUM(id) AS s FROM events GROUP BY id % {keys};",
        rows - 1,
        out.display()
    )
}

/// The committed totals equal the definition of the rows: every key once, with its count
/// and sum.
fn assert_totals(out: &std::path::Path, rows: u64, keys: u64) {
    let mut actual: HashMap<i64, (i64, i64)> = HashMap::new();
    for row in read_json_lines(out) {
        let k = row["k"].as_i64().unwrap();
        let previous = actual.insert(k, (row["n"].as_i64().unwrap(), row["s"].as_i64().unwrap()));
        assert!(previous.is_none(), "key {k} was committed twice");
    }
    assert_eq!(actual.len() as u64, keys);
    for k in 0..keys as i64 {
        let ids: Vec<i64> = (0..rows as i64).filter(|id| id % keys as i64 == k).collect();
        assert_eq!(actual[&k], (ids.len() as i64, ids.iter().sum::<i64>()), "key {k}");
    }
}

fn completed(status: &Value) -> u64 {
    status["checkpoints"]["completed"].as_u64().unwrap_or(0)
}

/// Waits until the job has completed more than `after` checkpoints; returns its status.
fn wait_for_checkpoint(cluster: &Cluster, job: &str, after: u64) -> Value {
    let deadline = Instant::now() + MINUTE;
    loop {
        let status = cluster.status(job);
        if completed(&status) > after && status["state"] == "RUNNING" {
            return status;
        }
        assert!(Instant::now() < deadline, "no checkpoint completed: {status:#}\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checkpoints go to the bucket (metadata, shared SST files shared by later checkpoints,
/// the fence), nothing to a local directory; three task manager kills restore from the
/// bucket and the committed output is exactly the failure-free result.
#[test]
fn a_job_restores_from_checkpoints_in_s3_after_task_manager_kills() {
    let server = S3Server::start();
    let mut cluster = cluster(&server, &[2, 2]);
    let out = cluster.dir.path().join("out");
    let (rows, keys) = (600_000, 5_000);
    let job = cluster.submit(&totals_job(&out, rows, 40_000, keys, ""), 2);
    let status = wait_for_checkpoint(&cluster, &job, 1);
    let latest = status["checkpoints"]["latest_path"].as_str().unwrap().to_string();
    assert!(latest.starts_with(&format!("s3://sluice/checkpoints/{job}/chk-")), "{status:#}");

    let keys_now = server.keys(&format!("checkpoints/{job}/"));
    let prefix = format!("checkpoints/{job}/");
    assert!(keys_now.contains(&format!("{prefix}_coordinator")), "{keys_now:#?}");
    let metadata: Vec<&String> = keys_now.iter().filter(|k| k.ends_with("/_metadata")).collect();
    assert!(!metadata.is_empty(), "{keys_now:#?}");
    assert!(
        keys_now.iter().any(|k| k.starts_with(&format!("{prefix}shared/")) && k.ends_with(".sst")),
        "{keys_now:#?}"
    );
    assert!(
        !std::env::temp_dir().join("sluice-checkpoints").join(&job).exists(),
        "nothing is written to a local checkpoint directory"
    );

    let kills = cluster.kill_task_managers_while_running(&job, 3, 2, Duration::from_millis(800));
    assert_eq!(kills, 3, "the job finished before three kills; slow its source down");
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 5 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert!(status["restarts"].as_u64().unwrap() >= 1, "{status:#}");
    let restored = status["checkpoints"]["restored_from_path"].as_str().unwrap();
    assert!(restored.starts_with(&format!("s3://sluice/checkpoints/{job}/chk-")), "{status:#}");
    assert_totals(&out, rows, keys);
}

/// A jobmanager that starts again reads its job's checkpoints back from the bucket. With
/// 'execution.checkpointing.recover-without-newest', a newest checkpoint whose metadata
/// object was damaged is skipped and the one before it restored (the job's output is
/// written once at its end, so it is still exact).
#[test]
fn a_damaged_checkpoint_object_is_skipped_for_the_one_before() {
    let server = S3Server::start();
    let mut cluster = cluster(&server, &[2]);
    let out = cluster.dir.path().join("out");
    let (rows, keys) = (400_000, 1_000);
    let sql = totals_job(
        &out,
        rows,
        25_000,
        keys,
        "SET 'execution.checkpointing.interval' = '3s';
        SET 'execution.checkpointing.recover-without-newest' = 'true';",
    );
    let job = cluster.submit(&sql, 2);
    let before = completed(&wait_for_checkpoint(&cluster, &job, 1));
    // Right after a checkpoint completes, damage it and kill the jobmanager: the next
    // checkpoint is 3 s away, so the damaged one is the newest.
    let status = wait_for_checkpoint(&cluster, &job, before);
    let newest = status["checkpoints"]["latest_id"].as_u64().unwrap();
    server.put(&format!("checkpoints/{job}/chk-{newest}/_metadata"), b"not a checkpoint");
    cluster.restart_jobmanager();

    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 5 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    let restored = status["checkpoints"]["restored_from_id"].as_u64().unwrap();
    assert!(restored > 0 && restored < newest, "restored {restored}, the damaged newest was {newest}: {status:#}");
    let log = std::fs::read_to_string(cluster.dir.path().join("jobmanager-2.log")).unwrap();
    assert!(log.contains(&format!("cannot restore checkpoint {newest}")), "{}", cluster.logs());
    assert_totals(&out, rows, keys);
}

/// An exactly-once Kafka-to-Kafka job whose jobmanager is killed with `kill -9` three times
/// and started again at the same address: each time the new jobmanager finds the job in
/// the bucket, the task managers register again, and the job resumes from the checkpoint
/// that was the newest at the kill. Every input id is committed exactly once with its
/// value, and the aborted transactions of the killed attempts exist (read uncommitted).
#[test]
fn a_jobmanager_killed_three_times_recovers_its_job_exactly_once() {
    let broker = Broker::start();
    broker.create_topic("payments", 2);
    broker.create_topic("doubled", 2);
    let total = 120_000i64;
    broker.produce(
        "payments",
        (0..total).map(|i| (Some((i % 2) as i32), json!({"id": i, "amount": i % 977}).to_string())),
    );
    let server = S3Server::start();
    let cluster_env = server.env();
    let env: Vec<(&str, &str)> = cluster_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut cluster = Cluster::start_with_env(
        &[2],
        &["--checkpoint-dir", "s3://sluice/checkpoints", "--heartbeat-timeout", "3s"],
        &env,
    );
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '500ms';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.delay' = '200ms';
        CREATE TABLE payments (id BIGINT, amount INT) WITH (
            'connector' = 'kafka', 'topic' = 'payments', 'properties.bootstrap.servers' = '{address}',
            'properties.group.id' = 'doublers', 'scan.startup.mode' = 'earliest-offset',
            'scan.bounded.mode' = 'latest-offset', 'format' = 'json');
        CREATE TABLE doubled (id BIGINT, twice BIGINT) WITH (
            'connector' = 'kafka', 'topic' = 'doubled', 'properties.bootstrap.servers' = '{address}',
            'format' = 'json', 'sink.delivery-guarantee' = 'exactly-once', 'sink.rows-per-second' = '4000');
        INSERT INTO doubled SELECT id, amount * 2 AS twice FROM payments;",
        address = broker.address
    );
    let job = cluster.submit(&sql, 2);
    let record = format!("checkpoints/_jobmanager/jobs/{job}");
    assert!(server.keys("checkpoints/_jobmanager/").contains(&record), "the job is recorded before it is answered");

    for kill in 1..=3 {
        let status = wait_for_checkpoint(&cluster, &job, 1);
        let newest = status["checkpoints"]["latest_id"].as_u64().unwrap();
        // Into the next checkpoint's epoch, whose open transactions the kill leaves behind.
        std::thread::sleep(Duration::from_millis(300));
        cluster.restart_jobmanager();
        // The new jobmanager knows the job at once, and runs it again from the bucket.
        let status = cluster.status(&job);
        assert!(
            ["CREATED", "RESTARTING", "RUNNING"].contains(&status["state"].as_str().unwrap()),
            "kill {kill}: {status:#}"
        );
        let status = wait_for_checkpoint(&cluster, &job, 0);
        let restored = status["checkpoints"]["restored_from_id"].as_u64().unwrap();
        assert!(restored >= newest, "kill {kill}: restored {restored}, newest before the kill {newest}: {status:#}");
        assert!(
            status["checkpoints"]["latest_id"].as_u64().unwrap() > restored,
            "kill {kill}: new checkpoints are numbered above the restored one: {status:#}"
        );
    }
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 5 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert!(!server.keys("checkpoints/_jobmanager/").contains(&record), "an ended job is not recovered again");

    let mut seen = vec![0u32; total as usize];
    for record in broker.read_records("doubled", 2) {
        let row: Value = serde_json::from_str(record.value.as_deref().unwrap()).unwrap();
        let id = row["id"].as_i64().unwrap();
        assert_eq!(row["twice"].as_i64().unwrap(), 2 * (id % 977), "id {id}");
        seen[id as usize] += 1;
    }
    let missing = seen.iter().filter(|&&n| n == 0).count();
    let duplicated = seen.iter().filter(|&&n| n > 1).count();
    assert_eq!((missing, duplicated), (0, 0), "every id exactly once");
    let uncommitted = broker.read_uncommitted("doubled", 2).len() as i64;
    assert!(uncommitted > total, "the killed attempts' aborted transactions exist ({uncommitted} records)");
}
