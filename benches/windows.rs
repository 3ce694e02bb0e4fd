//! Windows and updating aggregates benchmark, through `sluice run` on the embedded
//! mini-cluster at parallelism 2 with checkpoints every second:
//!
//! - a 1-minute TUMBLE COUNT/SUM by 1,000 keys over datagen with event time (Flink's
//!   figure on this machine: about 250–290 k rows/s, `../shared/design/environment.md`);
//! - the same windows by HOP (10-minute windows every minute: each row in ten);
//! - an updating GROUP BY over 1,000,000 keys;
//! - a regular join of the events with a second datagen stream of 100,000 keys (every
//!   event finds its one match; both sides are kept in keyed state).
//!
//! Prints rows/s (the job's own time, as `sluice run` reports it, so process start-up is
//! left out) and the largest size of the checkpoint directory seen while it ran (retained
//! checkpoints and the keyed-state files they share: open windows, or every key's
//! accumulators). Run with `cargo bench --bench windows`;
//! `SLUICE_BENCH_ROWS` sets the rows per job (default 4,000,000).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Flink 2.3.0's 1-minute TUMBLE count/sum by key at parallelism 2 here (midpoint).
const FLINK_TUMBLE_ROWS_PER_SECOND: f64 = 270_000.0;

fn sluice() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| "target".into());
    let release = target.join("release/sluice");
    if release.exists() {
        release
    } else {
        target.join("debug/sluice")
    }
}

/// Bytes under `dir`.
fn size_of(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => size_of(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The table of events: a sequence, a key among 1,000, an amount, and an event time that
/// advances 10 ms per row (so a minute holds 6,000 rows), with a 1 s watermark bound.
fn events(rows: u64) -> String {
    format!(
        "CREATE TABLE events (
  id BIGINT,
  amount DOUBLE,
  ts AS to_timestamp_millis(id * 10),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'datagen', 'number-of-rows' = '{rows}', 'rows-per-second' = '1000000000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{rows}',
  'fields.amount.min' = '1', 'fields.amount.max' = '100'
);
CREATE TABLE facts (id BIGINT, weight DOUBLE) WITH (
  'connector' = 'datagen', 'number-of-rows' = '100000', 'rows-per-second' = '1000000000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '99999'
);
CREATE TABLE sink (k BIGINT, w TIMESTAMP(3), n BIGINT, total DOUBLE) WITH ('connector' = 'blackhole');
"
    )
}

struct Measured {
    seconds: f64,
    largest_checkpoint: u64,
}

/// Runs `sql` and returns the job's time and the largest checkpoint directory seen.
fn run(sql: &str) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("job.sql");
    std::fs::write(&script, sql).unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let done = Arc::new(AtomicBool::new(false));
    let largest = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (done, largest, checkpoints) = (done.clone(), largest.clone(), checkpoints.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                // The job's directory: retained checkpoints (chk-N) and the keyed-state
                // files they share (incremental checkpoints).
                largest.fetch_max(size_of(&checkpoints), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let out = Command::new(sluice())
        .arg("run")
        .arg(&script)
        .args(["--parallelism", "2", "--checkpoint-interval", "1s", "--checkpoint-dir"])
        .arg(&checkpoints)
        .output()
        .expect("sluice runs");
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // "job ... FINISHED in 12.34s"
    let seconds = stderr
        .lines()
        .find_map(|l| l.split(" FINISHED in ").nth(1))
        .and_then(|t| t.trim().trim_end_matches('s').parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no job time in:\n{stderr}"));
    Measured { seconds, largest_checkpoint: largest.load(Ordering::Relaxed) }
}

fn main() {
    let rows: u64 = std::env::var("SLUICE_BENCH_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(4_000_000);
    let jobs = [
        (
            "TUMBLE 1 min, COUNT/SUM by 1,000 keys",
            "INSERT INTO sink SELECT id % 1000, window_start, COUNT(*), SUM(amount)
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY id % 1000, window_start, window_end;",
        ),
        (
            "HOP 1 min / 10 min, COUNT/SUM by 1,000 keys",
            "INSERT INTO sink SELECT id % 1000, window_start, COUNT(*), SUM(amount)
FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '10' MINUTES))
GROUP BY id % 1000, window_start, window_end;",
        ),
        (
            "updating GROUP BY, 1,000,000 keys",
            "INSERT INTO sink SELECT id % 1000000, CAST(NULL AS TIMESTAMP(3)), COUNT(*), SUM(amount)
FROM events GROUP BY id % 1000000;",
        ),
        (
            "regular join with a stream of 100,000 keys",
            "INSERT INTO sink SELECT e.id, CAST(NULL AS TIMESTAMP(3)), f.id, e.amount * f.weight
FROM events AS e JOIN facts AS f ON e.id % 100000 = f.id;",
        ),
    ];
    println!("{rows} rows per job, parallelism 2, checkpoints every second ({})", sluice().display());
    println!("| job | rows/s | vs Flink TUMBLE | checkpoint storage (peak) |");
    println!("|---|---|---|---|");
    for (name, query) in jobs {
        let measured = run(&format!("{}{query}", events(rows)));
        let rate = rows as f64 / measured.seconds;
        println!(
            "| {name} | {:.0} k | {:.2}x | {:.1} MiB |",
            rate / 1000.0,
            rate / FLINK_TUMBLE_ROWS_PER_SECOND,
            measured.largest_checkpoint as f64 / (1 << 20) as f64
        );
    }
}
