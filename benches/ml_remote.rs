//! Remote-model benchmark: datagen → ML_PREDICT(openai against `sluice stub-llm` with a
//! fixed 50 ms latency) → blackhole at parallelism 2 with `max_concurrent_requests` 100,
//! on the embedded mini-cluster. Prints rows/s against the bound
//! 2 × 100 / 0.05 s = 4,000 rows/s (chat) and 2 × 100 × 16 / 0.05 s = 64,000 rows/s
//! (embeddings, `batch_size` 16), and the memory each in-flight request costs (peak RSS
//! at 1,000 in flight minus at 10, per request). Run with `cargo bench --bench ml_remote`;
//! `SLUICE_BENCH_SECONDS` sets the ideal length of each run (default 20).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Stub(Child, String);

impl Stub {
    fn start(latency: &str) -> Stub {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["stub-llm", "--latency", latency])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().trim_start_matches("stub-llm listening on ").to_string();
        Stub(child, url)
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the job; returns (rows/s of the job's own time, peak RSS in MiB).
fn run(stub: &Stub, dir: &Path, rows: u64, task: &str, concurrency: u32, batch: u32) -> (f64, f64) {
    let (output, extra) = match task {
        "embeddings" => ("ARRAY<FLOAT>", format!(", 'batch_size' = '{batch}'")),
        _ => ("STRING", String::new()),
    };
    let sql = dir.join(format!("job-{task}-{concurrency}.sql"));
    std::fs::write(
        &sql,
        format!(
            "CREATE TABLE questions (q STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '{rows}',
                'rows-per-second' = '100000000', 'fields.q.length' = '32');
            CREATE MODEL m INPUT (q STRING) OUTPUT (answer {output}) WITH ('provider' = 'openai', 'task' = '{task}',
                'api_key' = 'bench', 'base_url' = '{url}/v1', 'model_name' = 'stub',
                'max_concurrent_requests' = '{concurrency}'{extra});
            CREATE TABLE sink (answer {output}) WITH ('connector' = 'blackhole');
            INSERT INTO sink SELECT answer FROM TABLE(ML_PREDICT(TABLE questions, MODEL m, DESCRIPTOR(q)));",
            url = stub.1
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(&sql)
        .args(["--parallelism", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let stderr = reader.join().unwrap();
    let seconds: f64 = stderr
        .split("FINISHED in ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no job time in: {stderr}"));
    (rows as f64 / seconds, peak_kib as f64 / 1024.0)
}

fn main() {
    let seconds: f64 = std::env::var("SLUICE_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20.0);
    let dir = tempfile::tempdir().unwrap();
    let stub = Stub::start("50ms");
    let started = Instant::now();

    println!("| task | batch | max_concurrent_requests | rows | rows/s | bound rows/s | ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let report = |task: &str, batch: u32, concurrency: u32| -> f64 {
        let bound = 2.0 * f64::from(concurrency) * f64::from(batch) / 0.05;
        let rows = (bound * seconds) as u64;
        let (rate, peak) = run(&stub, dir.path(), rows, task, concurrency, batch);
        println!("| {task} | {batch} | {concurrency} | {rows} | {rate:.0} | {bound:.0} | {:.3} |", rate / bound);
        peak
    };
    report("chat-completion", 1, 100);
    report("embeddings", 16, 100);

    // Memory per in-flight request: the same job with 10 and 1,000 in flight per subtask.
    let (_, low) = run(&stub, dir.path(), 4_000, "chat-completion", 10, 1);
    let (_, high) = run(&stub, dir.path(), 40_000, "chat-completion", 1000, 1);
    let per_request_kib = (high - low) * 1024.0 / (2.0 * 990.0);
    println!();
    println!("peak RSS: {low:.1} MiB with 2 × 10 in flight, {high:.1} MiB with 2 × 1,000 in flight");
    println!("memory per in-flight request: {per_request_kib:.1} KiB");
    println!("(bench took {:.0} s)", started.elapsed().as_secs_f64());
}
