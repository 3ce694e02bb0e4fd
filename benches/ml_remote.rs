//! Remote-model benchmark: datagen → ML_PREDICT(openai against `sluice stub-llm` with a
//! fixed 50 ms latency) → blackhole at parallelism 2 with `max_concurrent_requests` 100,
//! on the embedded mini-cluster. Prints rows/s against the bound
//! 2 × 100 / 0.05 s = 4,000 rows/s (chat) and 2 × 100 × 16 / 0.05 s = 64,000 rows/s
//! (embeddings, `batch_size` 16, through ML_PREDICT and through ML_EMBED), and the memory each in-flight request costs (peak RSS
//! at 1,000 in flight minus at 10, per request). Then the refill check: parallelism 1 at
//! `max_concurrent_requests` 50, where the rows/s reached are compared with what the
//! stub's own measured mean latency allows (C / mean latency), and the average number of
//! requests in the stub with the limit. Run with `cargo bench --bench ml_remote`;
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

impl Stub {
    /// The stub's `/stats`.
    fn stats(&self) -> serde_json::Value {
        use std::io::{Read, Write};
        let address = self.1.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(stream, "GET /stats HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("bad /stats answer {body:?}: {e}"))
    }
}

/// Runs the job; returns (rows/s of the job's own time, peak RSS in MiB).
fn run(stub: &Stub, dir: &Path, rows: u64, task: &str, concurrency: u32, batch: u32) -> (f64, f64) {
    run_at(stub, dir, rows, task, concurrency, batch, 2)
}

/// As [`run`], at `parallelism`.
fn run_at(
    stub: &Stub,
    dir: &Path,
    rows: u64,
    task: &str,
    concurrency: u32,
    batch: u32,
    parallelism: u32,
) -> (f64, f64) {
    let (output, extra) = match task {
        "embeddings" | "ml_embed" => ("ARRAY<FLOAT>", format!(", 'batch_size' = '{batch}'")),
        _ => ("STRING", String::new()),
    };
    // `ml_embed`: the embeddings model called as the lesson writes it, ML_EMBED(MODEL m, q).
    let (model_task, query) = match task {
        "ml_embed" => ("embeddings", "SELECT ML_EMBED(MODEL m, q) AS answer FROM questions"),
        other => (other, "SELECT answer FROM TABLE(ML_PREDICT(TABLE questions, MODEL m, DESCRIPTOR(q)))"),
    };
    let sql = dir.join(format!("job-{task}-{concurrency}.sql"));
    std::fs::write(
        &sql,
        format!(
            "CREATE TABLE questions (q STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '{rows}',
                'rows-per-second' = '100000000', 'fields.q.length' = '32');
            CREATE MODEL m INPUT (q STRING) OUTPUT (answer {output}) WITH ('provider' = 'openai', 'task' = '{model_task}',
                'api_key' = 'bench', 'base_url' = '{url}/v1', 'model_name' = 'stub',
                'max_concurrent_requests' = '{concurrency}'{extra});
            CREATE TABLE sink (answer {output}) WITH ('connector' = 'blackhole');
            INSERT INTO sink {query};",
            url = stub.1
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(&sql)
        .args(["--parallelism", &parallelism.to_string()])
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
    report("ml_embed", 16, 100);

    // Memory per in-flight request: the same job with 10 and 1,000 in flight per subtask.
    let (_, low) = run(&stub, dir.path(), 4_000, "chat-completion", 10, 1);
    let (_, high) = run(&stub, dir.path(), 40_000, "chat-completion", 1000, 1);
    let per_request_kib = (high - low) * 1024.0 / (2.0 * 990.0);
    println!();
    println!("peak RSS: {low:.1} MiB with 2 × 10 in flight, {high:.1} MiB with 2 × 1,000 in flight");
    println!("memory per in-flight request: {per_request_kib:.1} KiB");

    // Refill: one subtask, C = 50, on a fresh stub so its counters cover this run only.
    let refill = Stub::start("50ms");
    let c = 50.0;
    let rows = (c / 0.05 * seconds) as u64;
    let (rate, _) = run_at(&refill, dir.path(), rows, "chat-completion", 50, 1, 1);
    let stats = refill.stats();
    let number = |k: &str| stats[k].as_f64().unwrap_or_else(|| panic!("no '{k}' in {stats}"));
    let requests = number("requests");
    let busy_s = number("busy_us") / 1e6;
    let span_s = (number("last_finished_us") - number("first_started_us")) / 1e6;
    let mean_latency = busy_s / requests;
    let allowed = c / mean_latency;
    println!();
    println!("| parallelism | C | rows | stub mean latency ms | C / latency rows/s | rows/s (job time) | rows/s (stub span) | ratio | average in flight / C |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| 1 | 50 | {rows} | {:.1} | {allowed:.0} | {rate:.0} | {:.0} | {:.3} | {:.3} |",
        mean_latency * 1e3,
        requests / span_s,
        rate / allowed,
        busy_s / span_s / c
    );
    println!("(bench took {:.0} s)", started.elapsed().as_secs_f64());
}
