//! Local-model benchmark: rows/s of datagen → ML_PREDICT(local ONNX fraud model) →
//! blackhole at batch sizes 1, 32 and 256 with 1 and 2 inference threads (parallelism 1,
//! embedded mini-cluster), beside raw onnxruntime in Python on the same model, batch size
//! and threads, printed as a ratio (goal: at least 1.0).
//!
//! Sluice's steady-state rate is measured as the ml_python bench does: a job of 2N rows
//! minus a job of N rows, so the job's start-up (deploying the task, loading the model,
//! the first batch) cancels out; the start-up is printed apart (the N-row job's time
//! beyond N rows at the steady rate). Each figure is the median of three runs. Run with
//! `cargo bench --bench ml_local`; `SLUICE_BENCH_ROWS` sets N (default 200,000; a tenth of
//! it at batch 1).

use std::path::Path;
use std::process::Command;

const PYTHON: &str = r#"
import sys, time
import numpy as np
import onnxruntime as ort
model, rows, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(model, options)
rng = np.random.default_rng(1)
countries = np.array(["US", "DE", "XX", "ab"])
def feed(n):
    return {
        "amount": rng.uniform(1, 2000, (n, 1)).astype(np.float32),
        "hour_of_day": rng.integers(0, 24, (n, 1)).astype(np.int64),
        "merchant_category": rng.integers(0, 20, (n, 1)).astype(np.int64),
        "user_age": rng.integers(18, 91, (n, 1)).astype(np.int64),
        "user_country": countries[rng.integers(0, 4, (n, 1))],
        "txn_velocity_24h": rng.integers(0, 21, (n, 1)).astype(np.int64),
    }
batches = [feed(batch) for _ in range(max(1, min(rows // batch, 2000)))]
done = 0
start = time.perf_counter()
while done < rows:
    for f in batches:
        session.run(None, f)
        done += batch
        if done >= rows:
            break
print(done / (time.perf_counter() - start))
"#;

/// The job time of `rows` rows, in seconds.
fn sluice_seconds(model: &str, rows: u64, batch: usize, threads: usize, dir: &Path) -> f64 {
    let sql = dir.join(format!("job-{batch}-{threads}.sql"));
    std::fs::write(
        &sql,
        format!(
            "CREATE TABLE transactions (amount DOUBLE, hour_of_day INT, merchant_category INT, user_age INT,
                user_country STRING, txn_velocity_24h INT) WITH ('connector' = 'datagen', 'number-of-rows' = '{rows}',
                'rows-per-second' = '100000000', 'fields.amount.min' = '1', 'fields.amount.max' = '2000',
                'fields.hour_of_day.min' = '0', 'fields.hour_of_day.max' = '23', 'fields.merchant_category.min' = '0',
                'fields.merchant_category.max' = '19', 'fields.user_age.min' = '18', 'fields.user_age.max' = '90',
                'fields.user_country.length' = '2', 'fields.txn_velocity_24h.min' = '0', 'fields.txn_velocity_24h.max' = '20');
            CREATE MODEL fraud INPUT (amount DOUBLE, hour_of_day INT, merchant_category INT, user_age INT, user_country STRING,
                txn_velocity_24h INT) OUTPUT (fraud_score DOUBLE) WITH ('provider' = 'local', 'task' = 'classification',
                'model_path' = '{model}', 'batch_size' = '{batch}', 'inference_threads' = '{threads}');
            CREATE TABLE sink (fraud_score DOUBLE) WITH ('connector' = 'blackhole');
            INSERT INTO sink SELECT fraud_score FROM TABLE(ML_PREDICT(TABLE transactions, MODEL fraud,
                DESCRIPTOR(amount, hour_of_day, merchant_category, user_age, user_country, txn_velocity_24h)));"
        ),
    )
    .unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_sluice")).arg("run").arg(&sql).args(["--parallelism", "1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // "job NAME FINISHED in 1.23s": the job's own time, without process start-up.
    let seconds: f64 = stderr
        .split("FINISHED in ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no job time in: {stderr}"));
    seconds
}

/// Sluice's steady rows/s and its start-up seconds (medians of three).
fn sluice_steady(model: &str, rows: u64, batch: usize, threads: usize, dir: &Path) -> (f64, f64) {
    let mut runs: Vec<(f64, f64)> = (0..3)
        .map(|_| {
            let one = sluice_seconds(model, rows, batch, threads, dir);
            let two = sluice_seconds(model, 2 * rows, batch, threads, dir);
            let rate = rows as f64 / (two - one).max(1e-9);
            (rate, (one - rows as f64 / rate).max(0.0))
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let rate = runs[1].0;
    let mut startups: Vec<f64> = runs.iter().map(|r| r.1).collect();
    startups.sort_by(f64::total_cmp);
    (rate, startups[1])
}

fn python_rows_per_second(model: &str, rows: u64, batch: usize, threads: usize) -> f64 {
    let out = Command::new("python3")
        .args(["-c", PYTHON, model, &rows.to_string(), &batch.to_string(), &threads.to_string()])
        .output()
        .expect("python3 with onnxruntime (bash scripts/bootstrap.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn main() {
    let scale: u64 = std::env::var("SLUICE_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fraud_classifier.onnx").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    println!("datagen → ML_PREDICT(local ONNX fraud model) → blackhole, parallelism 1, vs raw onnxruntime in Python");
    println!();
    println!("| batch | threads | Sluice steady rows/s | Sluice start-up s | Python onnxruntime rows/s | ratio |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for batch in [1usize, 32, 256] {
        for threads in [1usize, 2] {
            let rows = if batch == 1 { scale / 10 } else { scale };
            let (sluice, startup) = sluice_steady(&model, rows, batch, threads, dir.path());
            let mut python: Vec<f64> = (0..3).map(|_| python_rows_per_second(&model, rows, batch, threads)).collect();
            python.sort_by(f64::total_cmp);
            let python = python[1];
            println!("| {batch} | {threads} | {sluice:.0} | {startup:.2} | {python:.0} | {:.2} |", sluice / python);
        }
    }
}
