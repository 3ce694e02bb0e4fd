//! Checkpoint benchmark with real processes (a jobmanager and two task managers of the
//! `sluice` binary): a keyed count over 1,000,000 keys in RocksDB, checkpointed every 2 s.
//! Prints the duration of a checkpoint (synchronous and asynchronous parts) and its size
//! once every key is in state, the bytes copied by the next (incremental) checkpoint, and
//! the recovery time from `kill -9` of a task manager to processing resumed, with a 3 s
//! heartbeat timeout. Run with `cargo bench --bench checkpoints`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const KEYS: u64 = 1_000_000;

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

fn cli(address: &str, args: &[&str]) -> Output {
    sluice().args(args).args(["--jobmanager", address]).output().expect("sluice runs")
}

fn status(address: &str, job: &str) -> Value {
    let out = cli(address, &["status", job, "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn source_rows(status: &Value) -> u64 {
    status["tasks"]
        .as_array()
        .map(|tasks| {
            tasks
                .iter()
                .filter(|t| t["vertex"].as_str().unwrap_or_default().contains("events"))
                .map(|t| t["rows_out"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

fn task_manager(address: &str, dir: &Path, n: usize) -> Child {
    let log = std::fs::File::create(dir.join(format!("taskmanager-{n}.log"))).unwrap();
    sluice()
        .args(["taskmanager", "--jobmanager", address, "--slots", "2", "--bind", "127.0.0.1:0"])
        .args(["--local-dir", dir.join(format!("local-{n}")).to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Polls `status` until `done` says so; returns the status.
fn wait(address: &str, job: &str, what: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let s = status(address, job);
        if done(&s) {
            return s;
        }
        assert!(s["state"] != "FAILED", "the job failed: {s:#}");
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {s:#}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let jm_log = std::fs::File::create(dir.path().join("jobmanager.log")).unwrap();
    let jobmanager = sluice()
        .args(["jobmanager", "--rpc-address", &address, "--rest-address", "off", "--heartbeat-timeout", "3s"])
        .args(["--checkpoint-dir", dir.path().join("checkpoints").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(jm_log)
        .spawn()
        .unwrap();
    let mut processes = Processes(vec![jobmanager]);
    while !listening(&address) {
        std::thread::sleep(Duration::from_millis(50));
    }
    processes.0.push(task_manager(&address, dir.path(), 1));
    processes.0.push(task_manager(&address, dir.path(), 2));

    let sql = dir.path().join("job.sql");
    std::fs::write(
        &sql,
        format!(
            "SET 'execution.checkpointing.interval' = '2s';
            SET 'restart-strategy.type' = 'fixed-delay';
            SET 'restart-strategy.fixed-delay.delay' = '0s';
            CREATE TABLE events (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '400000',
                'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '999999999999');
            CREATE TABLE sink (k BIGINT, n BIGINT) WITH ('connector' = 'blackhole');
            INSERT INTO sink SELECT id % {KEYS} AS k, COUNT(*) AS n FROM events GROUP BY id % {KEYS};"
        ),
    )
    .unwrap();
    let out = cli(&address, &["submit", sql.to_str().unwrap(), "--parallelism", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let job = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().to_string();

    // A checkpoint taken once every key is in state, then the next one.
    let filled = wait(&address, &job, "1,000,000 keys", Duration::from_secs(120), |s| source_rows(s) >= KEYS);
    let after = filled["checkpoints"]["completed"].as_u64().unwrap_or(0);
    let full = wait(&address, &job, "a checkpoint", Duration::from_secs(60), |s| {
        s["checkpoints"]["completed"].as_u64().unwrap_or(0) > after
    });
    let next = wait(&address, &job, "a second checkpoint", Duration::from_secs(60), |s| {
        s["checkpoints"]["completed"].as_u64().unwrap_or(0) > after + 1
    });
    let phases = |s: &Value| {
        let tasks = s["tasks"].as_array().cloned().unwrap_or_default();
        let max = |key: &str| tasks.iter().map(|t| t["checkpoint"][key].as_u64().unwrap_or(0)).max().unwrap_or(0);
        (max("sync_ms"), max("async_ms"), max("alignment_ms"))
    };
    let (sync_ms, async_ms, align_ms) = phases(&full);
    let c = &full["checkpoints"];
    let n = &next["checkpoints"];

    // Recovery: kill -9 a task manager, start a replacement, and time until the sources
    // produce rows again in the new attempt.
    let killed_at = Instant::now();
    processes.0[1].kill().unwrap();
    let _ = processes.0[1].wait();
    processes.0.push(task_manager(&address, dir.path(), 3));
    wait(&address, &job, "the restart", Duration::from_secs(60), |s| s["restarts"].as_u64().unwrap_or(0) >= 1);
    let restarted = wait(&address, &job, "resumed processing", Duration::from_secs(60), |s| {
        s["state"] == "RUNNING" && source_rows(s) > 0
    });
    let recovery = killed_at.elapsed();
    let _ = cli(&address, &["cancel", &job]);

    println!("checkpoint benchmark: keyed COUNT over {KEYS} keys, parallelism 2, 2 task managers, RocksDB state");
    println!("{:<46} {:>14}", "measure", "value");
    println!(
        "{:<46} {:>14}",
        "full checkpoint: duration (trigger to complete)",
        format!("{} ms", c["latest_duration_ms"])
    );
    println!("{:<46} {:>14}", "  slowest subtask, synchronous part", format!("{sync_ms} ms"));
    println!("{:<46} {:>14}", "  slowest subtask, asynchronous part", format!("{async_ms} ms"));
    println!("{:<46} {:>14}", "  slowest subtask, alignment", format!("{align_ms} ms"));
    println!("{:<46} {:>14}", "  state size", mib(c["latest_state_bytes"].as_u64().unwrap_or(0)));
    println!("{:<46} {:>14}", "  bytes copied", mib(c["latest_uploaded_bytes"].as_u64().unwrap_or(0)));
    println!("{:<46} {:>14}", "next checkpoint: duration", format!("{} ms", n["latest_duration_ms"]));
    println!("{:<46} {:>14}", "  state size", mib(n["latest_state_bytes"].as_u64().unwrap_or(0)));
    println!("{:<46} {:>14}", "  bytes copied (incremental)", mib(n["latest_uploaded_bytes"].as_u64().unwrap_or(0)));
    println!("{:<46} {:>14}", "recovery: kill -9 to resumed processing", format!("{:.2} s", recovery.as_secs_f64()));
    println!("{:<46} {:>14}", "  restored from checkpoint", restarted["checkpoints"]["restored_from_id"].to_string());
    println!(
        "goal: recovery under 5 s with a 3 s heartbeat timeout: {}",
        if recovery < Duration::from_secs(5) { "met" } else { "NOT met" }
    );
}

/// True when something listens on `address`. A connection to a free port in the
/// ephemeral range can connect to itself (TCP simultaneous open, when the kernel picks that
/// same port as the source), which a plain `connect` would take for a listener.
fn listening(address: &str) -> bool {
    std::net::TcpStream::connect(address).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}
