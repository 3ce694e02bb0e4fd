//! The cluster runtime with real processes: a jobmanager and task managers started from the
//! `sluice` binary, jobs submitted with the CLI.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{metric, read_json_lines, Cluster};

const MINUTE: Duration = Duration::from_secs(60);

/// 1,000,000 datagen rows, hash-partitioned by key into a keyed count at parallelism 4 over
/// two task managers; the counts must equal those computed here from the raw rows.
#[test]
fn keyed_count_across_two_task_managers_is_exact() {
    let cluster = Cluster::start(&[2, 2], &[]);
    let raw = cluster.dir.path().join("raw");
    let counts = cluster.dir.path().join("counts");
    let source = "CREATE TABLE events (k INT, v BIGINT) WITH (
            'connector' = 'datagen', 'number-of-rows' = '1000000', 'rows-per-second' = '100000000',
            'fields.k.min' = '0', 'fields.k.max' = '9999');";
    let count_job = cluster.submit(
        &format!(
            "{source}
            SET 'execution.runtime-mode' = 'batch';
            CREATE TABLE counts (k INT, n BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
            INSERT INTO counts SELECT k, COUNT(*) AS n FROM events GROUP BY k;",
            counts.display()
        ),
        4,
    );
    let status = cluster.wait_for(&count_job, &["FINISHED", "FAILED"], 3 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    let task_managers: std::collections::HashSet<&str> =
        status["tasks"].as_array().unwrap().iter().map(|t| t["task_manager"].as_str().unwrap()).collect();
    assert_eq!(task_managers.len(), 2, "the job must span both task managers: {status:#}");
    assert!(metric(&status, "source", "bytes_out") > 0, "the hash shuffle must cross the network");

    let raw_job = cluster.submit(
        &format!(
            "{source}
            CREATE TABLE raw (k INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
            INSERT INTO raw SELECT k FROM events;",
            raw.display()
        ),
        2,
    );
    let status = cluster.wait_for(&raw_job, &["FINISHED", "FAILED"], 3 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}");

    let mut expected: HashMap<i64, i64> = HashMap::new();
    let raw_rows = read_json_lines(&raw);
    assert_eq!(raw_rows.len(), 1_000_000);
    for row in raw_rows {
        *expected.entry(row["k"].as_i64().unwrap()).or_default() += 1;
    }
    let mut actual: HashMap<i64, i64> = HashMap::new();
    for row in read_json_lines(&counts) {
        let previous = actual.insert(row["k"].as_i64().unwrap(), row["n"].as_i64().unwrap());
        assert!(previous.is_none(), "key {} emitted twice", row["k"]);
    }
    assert_eq!(actual.len(), 10_000);
    assert_eq!(actual, expected);
}

/// A sink paced to 1,000 rows/s behind an unbounded datagen, across two task managers:
/// the source is held back by bounded buffers and every process's memory stays small.
#[test]
fn backpressure_holds_back_the_source_and_bounds_memory() {
    let cluster = Cluster::start(&[1, 1], &[]);
    let job = cluster.submit(
        "CREATE TABLE fast (id BIGINT, payload STRING) WITH (
            'connector' = 'datagen', 'rows-per-second' = '100000000', 'fields.payload.length' = '100');
         CREATE TABLE slow (id BIGINT, payload STRING) WITH (
            'connector' = 'blackhole', 'sink.parallelism' = '1', 'sink.rows-per-second' = '1000');
         INSERT INTO slow SELECT * FROM fast;",
        2,
    );
    cluster.wait_for(&job, &["RUNNING"], MINUTE);
    std::thread::sleep(Duration::from_secs(20));
    let status = cluster.status(&job);
    assert_eq!(status["state"], "RUNNING", "{status:#}\n{}", cluster.logs());
    let produced = metric(&status, "source", "rows_out");
    let consumed = metric(&status, "sink", "rows_in");
    // What may sit between them, in batches of 1,024 rows: on each of the two channels the
    // 4 queued batches plus one whose send is waiting; on the remote channel also one batch
    // being encoded, the HTTP/2 stream window (256 KiB: about 2.3 batches of ~112-byte rows)
    // plus the frame that overruns it, and the receiver's 4 queued batches plus one waiting;
    // and the batch the sink is pacing. That is about 19 batches; allow 24.
    let buffers: u64 = 24 * 1024;
    assert!(consumed >= 10_000, "the sink consumed only {consumed} rows in 20 s");
    assert!(
        produced <= consumed + buffers,
        "the source ran ahead: produced {produced}, consumed {consumed}, buffers hold at most {buffers}"
    );
    for process in std::iter::once(&cluster.jobmanager).chain(&cluster.taskmanagers) {
        let rss = process.rss_mib();
        assert!(rss > 0.0 && rss < 300.0, "{} uses {rss:.0} MiB", process.name);
    }
    let out = cluster.cli(&["cancel", &job]);
    assert!(out.status.success());
}

/// Cancel stops a running job and frees its slots for the next one; a job that cannot get
/// slots waits, saying why, and fails after the slot request timeout.
#[test]
fn cancel_frees_slots_and_waiting_jobs_say_why() {
    let cluster = Cluster::start(&[2], &["--slot-request-timeout", "3 s"]);
    let unbounded = "CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '1000');
         CREATE TABLE out (id BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO out SELECT id FROM src;";
    let first = cluster.submit(unbounded, 2);
    cluster.wait_for(&first, &["RUNNING"], MINUTE);

    let waiting = cluster.submit(unbounded, 2);
    std::thread::sleep(Duration::from_millis(500));
    let status = cluster.status(&waiting);
    assert_eq!(status["state"], "CREATED", "{status:#}");
    assert!(status["message"].as_str().unwrap().contains("waiting for 2 free task slots: 0 free of 2"), "{status:#}");
    let status = cluster.wait_for(&waiting, &["FAILED"], MINUTE);
    assert!(status["message"].as_str().unwrap().contains("could not get 2 task slots within 3s"), "{status:#}");

    let out = cluster.cli(&["cancel", &first]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "CANCELED");
    let human = cluster.cli(&["status", &first]);
    assert!(String::from_utf8_lossy(&human.stdout).lines().next().unwrap().contains("CANCELED"));

    let bounded = cluster.submit(
        "CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '5000', 'rows-per-second' = '1000000');
         CREATE TABLE out (id BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO out SELECT id FROM src;",
        2,
    );
    let status = cluster.wait_for(&bounded, &["FINISHED", "FAILED"], MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}");
    assert_eq!(metric(&status, "source", "rows_in"), 5000);
    let list = String::from_utf8(cluster.cli(&["list"]).stdout).unwrap();
    assert!(list.contains(&first) && list.contains(&bounded), "{list}");
}

/// `kill -9` of a task manager running a job: within the heartbeat timeout the jobmanager
/// declares it lost and fails the job with the reason.
#[test]
fn a_killed_task_manager_fails_its_job_with_the_reason() {
    let mut cluster = Cluster::start(&[1, 1], &["--heartbeat-timeout", "2 s", "--heartbeat-interval", "500 ms"]);
    let job = cluster.submit(
        "CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '10000');
         CREATE TABLE out (id BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO out SELECT id FROM src;",
        2,
    );
    cluster.wait_for(&job, &["RUNNING"], MINUTE);
    std::thread::sleep(Duration::from_secs(1));
    let killed_at = std::time::Instant::now();
    cluster.taskmanagers[1].kill9();
    let status = cluster.wait_for(&job, &["FAILED"], Duration::from_secs(10));
    let detected = killed_at.elapsed();
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("was lost: no heartbeat"), "{status:#}");
    assert!(detected < Duration::from_secs(5), "failure detected after {detected:?}");
    let human = String::from_utf8(cluster.cli(&["status", &job]).stdout).unwrap();
    assert!(human.starts_with("state: FAILED"), "{human}");
    assert!(human.contains("was lost"), "{human}");
}

/// `sluice wait` returns once the job is running, has completed the checkpoints asked for,
/// or has finished; it exits 1 naming the state when the job ends otherwise or the time
/// runs out.
#[test]
fn sluice_wait_blocks_until_the_job_gets_there_or_says_why_not() {
    let cluster = Cluster::start(&[4], &["--checkpoint-dir", "{dir}/checkpoints"]);
    let endless = cluster.submit(
        "SET 'execution.checkpointing.interval' = '200ms';
        CREATE TABLE t (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '1000');
        CREATE TABLE sink (id BIGINT) WITH ('connector' = 'blackhole');
        INSERT INTO sink SELECT id FROM t;",
        1,
    );
    let wait = |job: &str, condition: &str, timeout: &str| {
        cluster.cli(&["wait", job, "--for", condition, "--timeout", timeout])
    };
    let running = wait(&endless, "running", "1min");
    assert!(running.status.success(), "{}", String::from_utf8_lossy(&running.stderr));
    assert_eq!(String::from_utf8_lossy(&running.stdout).trim(), "RUNNING");
    let checkpoints = wait(&endless, "checkpoints=2", "1min");
    assert!(checkpoints.status.success(), "{}", String::from_utf8_lossy(&checkpoints.stderr));
    assert!(cluster.status(&endless)["checkpoints"]["completed"].as_u64().unwrap() >= 2);
    let late = wait(&endless, "finished", "1s");
    let stderr = String::from_utf8_lossy(&late.stderr);
    assert!(!late.status.success() && stderr.contains("is RUNNING after 1s, not yet finished"), "{stderr}");

    let bounded = cluster.submit(
        "CREATE TABLE t (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '100');
        CREATE TABLE sink (id BIGINT) WITH ('connector' = 'blackhole');
        INSERT INTO sink SELECT id FROM t;",
        1,
    );
    let finished = wait(&bounded, "finished", "1min");
    assert!(finished.status.success(), "{}", String::from_utf8_lossy(&finished.stderr));
    assert_eq!(String::from_utf8_lossy(&finished.stdout).trim(), "FINISHED");
    assert_eq!(cluster.status(&bounded)["state"], "FINISHED");
    let never = wait(&bounded, "checkpoints=5", "1min");
    let stderr = String::from_utf8_lossy(&never.stderr);
    assert!(
        !never.status.success() && stderr.contains("ended FINISHED") && stderr.contains("without being 5 completed"),
        "{stderr}"
    );
}

/// `--log-format json` writes one JSON object per log line, and a task's lines carry its
/// job, vertex and subtask.
#[test]
fn json_logs_name_the_task_of_each_line() {
    let dir = tempfile::tempdir().unwrap();
    let sql = dir.path().join("job.sql");
    std::fs::write(
        &sql,
        "CREATE TABLE t (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
        CREATE TABLE sink (id BIGINT) WITH ('connector' = 'blackhole');
        INSERT INTO sink SELECT id FROM t;",
    )
    .unwrap();
    let out = std::process::Command::new(common::sluice_bin())
        .args(["run", sql.to_str().unwrap(), "--parallelism", "2", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> =
        stderr.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().all(|l| l["level"].is_string() && l["fields"]["message"].is_string()), "{stderr}");
    let ended: Vec<&serde_json::Value> = lines.iter().filter(|l| l["fields"]["message"] == "task ended").collect();
    assert_eq!(ended.len(), 2, "one line per subtask: {stderr}");
    let mut subtasks: Vec<u64> = ended.iter().map(|l| l["span"]["subtask"].as_u64().unwrap()).collect();
    subtasks.sort();
    assert_eq!(subtasks, [0, 1]);
    assert!(ended.iter().all(|l| l["span"]["job"].is_string() && l["span"]["vertex"].is_u64()), "{stderr}");
}

/// `sluice status --watch --json` prints one JSON status per line until the job ends.
#[test]
fn status_watch_prints_a_json_line_per_look_until_the_job_ends() {
    let cluster = Cluster::start(&[2], &[]);
    let job = cluster.submit(
        "CREATE TABLE t (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1500', 'rows-per-second' = '1000');
        CREATE TABLE sink (id BIGINT) WITH ('connector' = 'blackhole');
        INSERT INTO sink SELECT id FROM t;",
        1,
    );
    let out = cluster.cli(&["status", &job, "--watch", "--json", "--interval", "200ms"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let looks: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(looks.len() >= 2, "the job runs about 1.5 s: {looks:?}");
    assert_eq!(looks.last().unwrap()["state"], "FINISHED");
    assert!(looks[..looks.len() - 1].iter().all(|l| l["state"] != "FINISHED"), "it stops at the end");
}
