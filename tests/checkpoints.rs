//! Checkpoints with real processes: task managers killed with `kill -9` while a job runs,
//! restarts from the latest checkpoint, resumption from source positions, savepoints.
//! Outputs go through the two-phase-commit filesystem sink, so exactly-once is checked on
//! the committed files.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{metric, read_json_lines, Cluster};
use serde_json::Value;

const MINUTE: Duration = Duration::from_secs(60);

/// A cluster whose jobmanager checkpoints under the cluster's directory and declares a task
/// manager lost after 2 s of silence.
fn cluster(slots: &[u32]) -> Cluster {
    Cluster::start(slots, &["--checkpoint-dir", "{dir}/checkpoints", "--heartbeat-timeout", "2s"])
}

fn checkpoints_completed(status: &Value) -> u64 {
    status["checkpoints"]["completed"].as_u64().unwrap_or(0)
}

/// No in-progress part file may be left once a job has finished.
fn assert_no_leftovers(dir: &Path) {
    let leftovers: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "uncommitted part files left behind: {leftovers:?}");
}

/// A JM and 3 TMs; a keyed aggregation over 2,000,000 rows into the two-phase-commit file
/// sink with checkpoints every second; a random task manager is killed 10 times while it
/// runs (a new one started each time). The committed output is exactly the failure-free
/// result, computed here from the definition of the rows.
#[test]
fn chaos_kills_lose_and_duplicate_nothing() {
    let mut cluster = cluster(&[2, 2, 2]);
    let out = cluster.dir.path().join("out");
    let job = cluster.submit(
        &format!(
            "SET 'execution.checkpointing.interval' = '1s';
            SET 'execution.runtime-mode' = 'batch';
            SET 'restart-strategy.type' = 'fixed-delay';
            SET 'restart-strategy.fixed-delay.delay' = '200ms';
            CREATE TABLE events (id BIGINT) WITH (
                'connector' = 'datagen', 'number-of-rows' = '2000000', 'rows-per-second' = '40000',
                'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '1999999');
            CREATE TABLE totals (k BIGINT, n BIGINT, s BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
            INSERT INTO totals SELECT id % 10000 AS k, COUNT(*) AS n, SUM(id) AS s FROM events GROUP BY id % 10000;",
            out.display()
        ),
        4,
    );
    let kills = cluster.kill_task_managers_while_running(&job, 10, 2, Duration::from_millis(1000));
    assert!(kills >= 8, "the job finished after only {kills} kills; slow its source down");
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 5 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert!(status["restarts"].as_u64().unwrap() >= 3, "most kills hit a task manager running tasks: {status:#}");

    assert_no_leftovers(&out);
    let mut actual: HashMap<i64, (i64, i64)> = HashMap::new();
    for row in read_json_lines(&out) {
        let k = row["k"].as_i64().unwrap();
        let previous = actual.insert(k, (row["n"].as_i64().unwrap(), row["s"].as_i64().unwrap()));
        assert!(previous.is_none(), "key {k} was committed twice");
    }
    assert_eq!(actual.len(), 10_000);
    for k in 0..10_000i64 {
        let ids = (0..200).map(|j| k + 10_000 * j);
        let expected = (200, ids.sum::<i64>());
        assert_eq!(actual[&k], expected, "key {k}");
    }
}

/// Positions of the datagen splits restored by the latest attempt, from the task managers'
/// logs: "attempt=A positions=split I/N at row R, ...".
fn restored_positions(cluster: &Cluster) -> Vec<u64> {
    let mut by_attempt: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    for entry in std::fs::read_dir(cluster.dir.path()).unwrap().flatten() {
        if !entry.file_name().to_string_lossy().starts_with("taskmanager") {
            continue;
        }
        for line in std::fs::read_to_string(entry.path()).unwrap_or_default().lines() {
            if !line.contains("datagen resumes from its checkpoint") {
                continue;
            }
            let number_after = |text: &str| -> u64 {
                text.chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().unwrap()
            };
            let attempt = number_after(line.split("attempt=").nth(1).unwrap());
            let rows = by_attempt.entry(attempt).or_default();
            for part in line.split("at row ").skip(1) {
                rows.push(number_after(part));
            }
        }
    }
    by_attempt.into_values().last().unwrap_or_default()
}

/// A task manager is killed after two checkpoints: the restarted sources resume from the
/// positions in the checkpoint (the rows they produce in the new attempt are the total
/// minus those positions), and every row is committed exactly once.
#[test]
fn a_restored_job_resumes_from_its_checkpointed_positions() {
    // One slot each: both task managers run a subtask, so the killed one always has work.
    let mut cluster = cluster(&[1, 1]);
    let out = cluster.dir.path().join("out");
    let total = 300_000u64;
    let job = cluster.submit(
        &format!(
            "SET 'execution.checkpointing.interval' = '300ms';
            SET 'restart-strategy.type' = 'fixed-delay';
            SET 'restart-strategy.fixed-delay.delay' = '0s';
            CREATE TABLE events (id BIGINT) WITH (
                'connector' = 'datagen', 'number-of-rows' = '{total}', 'rows-per-second' = '50000',
                'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '{}');
            CREATE TABLE copy (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
            INSERT INTO copy SELECT id FROM events;",
            total - 1,
            out.display()
        ),
        2,
    );
    let deadline = Instant::now() + MINUTE;
    while checkpoints_completed(&cluster.status(&job)) < 2 {
        assert!(Instant::now() < deadline, "no checkpoints: {}", cluster.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.taskmanagers[0].kill9();
    cluster.add_taskmanager(1);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 2 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert!(status["restarts"].as_u64().unwrap() >= 1, "{status:#}");
    assert!(status["checkpoints"]["restored_from_id"].as_u64().unwrap() >= 2, "{status:#}");

    let positions = restored_positions(&cluster);
    assert_eq!(positions.len(), 2, "two restored splits: {positions:?}\n{}", cluster.logs());
    let resumed_at: u64 = positions.iter().sum();
    assert!(resumed_at > 0, "the restored sources must not start from the beginning");
    let produced_after_restore = metric(&status, "events", "rows_in");
    assert_eq!(
        produced_after_restore,
        total - resumed_at,
        "the new attempt produces only the rows after the checkpoint"
    );

    assert_no_leftovers(&out);
    let mut ids: Vec<i64> = read_json_lines(&out).iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids.len() as u64, total, "rows lost or duplicated");
    assert!(ids.iter().enumerate().all(|(i, &id)| id == i as i64), "every id once");
}

/// `sluice savepoint --stop` ends the job with a savepoint; `submit --from-savepoint` at
/// another parallelism finishes it; together they commit every row once. A damaged
/// savepoint is refused with the reason.
#[test]
fn stop_with_savepoint_and_resume_at_another_parallelism() {
    let cluster = cluster(&[3]);
    let out = cluster.dir.path().join("out");
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '500ms';
        SET 'execution.runtime-mode' = 'batch';
        CREATE TABLE events (id BIGINT) WITH (
            'connector' = 'datagen', 'number-of-rows' = '200000', 'rows-per-second' = '40000',
            'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '199999');
        CREATE TABLE counts (k BIGINT, n BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
        INSERT INTO counts SELECT id % 100 AS k, COUNT(*) AS n FROM events GROUP BY id % 100;",
        out.display()
    );
    let job = cluster.submit(&sql, 2);
    cluster.wait_for(&job, &["RUNNING"], MINUTE);
    std::thread::sleep(Duration::from_millis(1500));
    let savepoints = cluster.dir.path().join("savepoints");
    let saved = cluster.cli(&["savepoint", &job, "--stop", "--directory", savepoints.to_str().unwrap()]);
    assert!(saved.status.success(), "{}\n{}", String::from_utf8_lossy(&saved.stderr), cluster.logs());
    let path = String::from_utf8(saved.stdout).unwrap().trim().to_string();
    assert!(Path::new(&path).join("_metadata").exists(), "{path}");
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], MINUTE);
    assert!(status["message"].as_str().unwrap().contains("stopped with a savepoint"), "{status:#}");
    assert!(read_json_lines(&out).is_empty(), "the aggregation emits only at the end of its input");

    let file = cluster.dir.path().join("resume.sql");
    std::fs::write(&file, &sql).unwrap();
    let submitted = cluster.cli(&["submit", file.to_str().unwrap(), "--parallelism", "3", "--from-savepoint", &path]);
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));
    let resumed = String::from_utf8(submitted.stdout).unwrap().lines().last().unwrap().trim().to_string();
    let status = cluster.wait_for(&resumed, &["FINISHED", "FAILED"], 2 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert!(metric(&status, "events", "rows_in") < 200_000, "the resumed job starts from the savepoint");
    let counts: Vec<(i64, i64)> =
        read_json_lines(&out).iter().map(|r| (r["k"].as_i64().unwrap(), r["n"].as_i64().unwrap())).collect();
    assert_eq!(counts.len(), 100, "{counts:?}");
    assert!(counts.iter().all(|&(_, n)| n == 2000), "{counts:?}");

    std::fs::write(Path::new(&path).join("_metadata"), b"not a checkpoint").unwrap();
    let refused = cluster.cli(&["submit", file.to_str().unwrap(), "--from-savepoint", &path]);
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("is unusable") && error.contains("not a Sluice checkpoint"), "{error}");
}

/// A checkpoint acknowledgement larger than gRPC's default 4 MiB (the print sink holds its
/// rows in operator state until their checkpoint completes: here about 12 MiB at the final
/// checkpoint) reaches the jobmanager, so the job commits and finishes.
#[test]
fn a_checkpoint_acknowledgement_above_4_mib_completes() {
    let cluster = cluster(&[1]);
    let job = cluster.submit(
        "SET 'execution.checkpointing.interval' = '1min';
        SET 'execution.checkpointing.timeout' = '30s';
        CREATE TABLE events (id BIGINT, payload STRING) WITH (
            'connector' = 'datagen', 'number-of-rows' = '12000',
            'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '12000',
            'fields.payload.length' = '1000');
        CREATE TABLE shown (id BIGINT, payload STRING) WITH ('connector' = 'print');
        INSERT INTO shown SELECT id, payload FROM events;",
        1,
    );
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 2 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    let state_bytes = status["checkpoints"]["latest_state_bytes"].as_u64().unwrap();
    assert!(state_bytes > 8 << 20, "the final checkpoint carried the staged rows (about 12 MB): {state_bytes} bytes");
    assert_eq!(status["checkpoints"]["failed"], 0, "{status:#}");
}

/// A sink whose input ended early commits its rows at a checkpoint, and the job runs on; a
/// job restored from a later checkpoint must not commit them again. (Ended tasks snapshot
/// their committed state for every checkpoint until the whole job has ended; a finished
/// task's state carried forward used to hold the print sink's rows as still pending.)
#[test]
fn rows_committed_by_a_sink_that_ended_early_are_not_committed_again_after_a_restore() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("job.sql");
    std::fs::write(
        &script,
        "CREATE TABLE few (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '3',
           'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '3');
         SELECT id * 1000 + 7 FROM few;
         CREATE TABLE many (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '400',
           'rows-per-second' = '1000', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1',
           'fields.id.end' = '400');
         SELECT COUNT(*) FROM many;",
    )
    .unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        std::process::Command::new(common::sluice_bin())
            .arg("run")
            .arg(&script)
            .args(["--taskmanagers", "2"])
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let checkpoints = dir.path().join("checkpoints");
    let first = run(
        &["--parallelism", "2", "--checkpoint-interval", "50ms", "--checkpoint-dir", checkpoints.to_str().unwrap()],
        &[("SLUICE_TEST_EXIT_AFTER_CHECKPOINT", "3"), ("SLUICE_TEST_SOURCE_PACE", "1:25")],
    );
    assert_eq!(first.status.code(), Some(137), "{}", String::from_utf8_lossy(&first.stderr));
    let job = std::fs::read_dir(&checkpoints).unwrap().flatten().next().unwrap().path();
    let restored = dir.path().join("restored");
    let second = run(
        &[
            "--parallelism",
            "3",
            "--checkpoint-dir",
            restored.to_str().unwrap(),
            "--from-savepoint",
            job.join("chk-3").to_str().unwrap(),
        ],
        &[],
    );
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let printed: Vec<String> = [&first.stdout, &second.stdout]
        .iter()
        .flat_map(|out| String::from_utf8_lossy(out).lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|l| l.split_once("> ").map_or(Some(l.as_str()), |(_, r)| Some(r)).map(str::to_string))
        .filter(|l| ["+I[1007]", "+I[2007]", "+I[3007]"].contains(&l.as_str()))
        .collect();
    let mut sorted = printed.clone();
    sorted.sort();
    assert_eq!(sorted, ["+I[1007]", "+I[2007]", "+I[3007]"], "each row of the early sink once: {printed:?}");
}
