//! generic-python benchmark: rows/s of datagen → ML_PREDICT(a Python model) → blackhole on
//! the embedded mini-cluster, for a trivial `predict_batch` and a trivial row `predict` at
//! batch sizes 1, 32 and 256, beside the same class called in a plain Python loop over the
//! same kind of data (the ratio's goal: at least 0.9 for `predict_batch` at 256); the
//! per-batch cost of the process boundary; and rows/s of a CPU-bound pure-Python model at
//! parallelism 1 and 2. Sluice's rate is steady-state: the rows of a run of 2N rows beyond
//! a run of N, over the extra time, so the start of the job and of the Python worker (about
//! half a second) cancel out. Each figure is the median of three runs. Run with `cargo
//! bench --bench ml_python`; `SLUICE_BENCH_ROWS` sets N (at batch 32; a tenth of it at
//! batch 1, four times it at 256).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The same class in a plain Python loop: batches of `batch` rows (`predict_batch`) or one
/// `predict` call per row; prints rows/s.
const PYTHON: &str = r#"
import json, random, string, sys, time
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
import pyarrow as pa
from sluice import ModelContext, Row
import models
cls, rows, batch, work = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
config = {"model": "m", "model_directory": sys.argv[1], "properties": {"work": work}, "input_schema": [], "output_schema": []}
fn = getattr(models, cls)()
fn.set_model_config(json.dumps(config))
fn.open(ModelContext(config, 0, 1, 0))
rng = random.Random(1)
texts = ["".join(rng.choices(string.ascii_letters, k=12)) for _ in range(min(rows, 100_000))]
start = time.perf_counter()
done = 0
if hasattr(fn, "predict_batch"):
    data = pa.record_batch({"text": texts})
    while done < rows:
        for offset in range(0, len(texts), batch):
            n = min(batch, rows - done, len(texts) - offset)
            fn.predict_batch(data.slice(offset, n))
            done += n
            if done >= rows:
                break
else:
    while done < rows:
        for t in texts[: rows - done]:
            fn.predict(Row.of(["text"], [t]))
        done += min(len(texts), rows - done)
print(done / (time.perf_counter() - start))
"#;

/// The directory of the benchmark's model classes, or of the example model `class` names.
fn models(class: &str) -> PathBuf {
    let dir = if class == SENTIMENT { "examples/python-models/sentiment" } else { "benches/python_models/trivial" };
    Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
}

/// The FLIP example's model (VADER, row by row): a real model, cheap per row.
const SENTIMENT: &str = "HuggingFaceSentimentPredictFunction";

/// Runs each measurement this many times and keeps the median (this machine's figures
/// move by tens of percent between runs).
const REPEAT: usize = 3;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn sluice_rows_per_second(class: &str, rows: u64, batch: usize, parallelism: u32, work: u64, dir: &Path) -> f64 {
    median(
        (0..REPEAT)
            .map(|_| {
                let short = sluice_seconds(class, rows, batch, parallelism, work, dir);
                let long = sluice_seconds(class, 2 * rows, batch, parallelism, work, dir);
                rows as f64 / (long - short)
            })
            .collect(),
    )
}

/// The job time of `rows` rows through model `class`.
fn sluice_seconds(class: &str, rows: u64, batch: usize, parallelism: u32, work: u64, dir: &Path) -> f64 {
    let sql = dir.join(format!("job-{class}-{batch}-{parallelism}.sql"));
    let output = if class == SENTIMENT { "sentiment STRING, confidence FLOAT" } else { "length BIGINT" };
    std::fs::write(
        &sql,
        format!(
            "CREATE TABLE texts (text STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '{rows}',
                'rows-per-second' = '100000000', 'fields.text.length' = '12');
            CREATE MODEL m INPUT (text STRING) OUTPUT ({output}) WITH ('provider' = 'generic-python',
                'model-directory-path' = '{models}', 'python-predict-class' = 'models.{class}',
                'batch_size' = '{batch}', 'max_concurrent_requests' = '4', 'properties.work' = '{work}');
            CREATE TABLE sink ({first}) WITH ('connector' = 'blackhole');
            INSERT INTO sink SELECT {column} FROM ML_PREDICT(TABLE texts, MODEL m, DESCRIPTOR(text));",
            models = models(class).display(),
            first = output.split(',').next().unwrap_or_default(),
            column = output.split_whitespace().next().unwrap_or_default(),
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(&sql)
        .args(["--parallelism", &parallelism.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // "job NAME FINISHED in 1.23s": the job's own time, without process start-up.
    stderr
        .split("FINISHED in ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no job time in: {stderr}"))
}

fn python_rows_per_second(class: &str, rows: u64, batch: usize, work: u64) -> f64 {
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
    let out = Command::new("python3")
        .args(["-c", PYTHON])
        .arg(models(class))
        .arg(package)
        .args([class, &rows.to_string(), &batch.to_string(), &work.to_string()])
        .output()
        .expect("python3 with pyarrow (bash scripts/bootstrap.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn main() {
    let scale: u64 = std::env::var("SLUICE_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    println!(
        "datagen → ML_PREDICT(generic-python) → blackhole, parallelism 1, vs the same class in a plain Python loop"
    );
    println!();
    println!("| model | batch | Sluice rows/s | plain Python rows/s | ratio | Sluice µs per batch beyond Python's |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (class, label) in [("LengthBatch", "trivial predict_batch"), ("LengthRow", "trivial predict")] {
        for batch in [1usize, 32, 256] {
            // About a second per run: the job time is read to 10 ms.
            let rows = match batch {
                1 => scale / 10,
                32 => scale,
                _ => 4 * scale,
            };
            let sluice = sluice_rows_per_second(class, rows, batch, 1, 0, dir.path());
            let python = median((0..REPEAT).map(|_| python_rows_per_second(class, rows, batch, 0)).collect());
            let overhead = (1.0 / sluice - 1.0 / python) * batch as f64 * 1e6;
            println!("| {label} | {batch} | {sluice:.0} | {python:.0} | {:.2} | {overhead:.0} |", sluice / python);
        }
    }
    // A real model of the examples, whose rows cost Python some work.
    let rows = scale / 10;
    let sluice = sluice_rows_per_second(SENTIMENT, rows, 256, 1, 0, dir.path());
    let python = median((0..REPEAT).map(|_| python_rows_per_second(SENTIMENT, rows, 256, 0)).collect());
    let overhead = (1.0 / sluice - 1.0 / python) * 256.0 * 1e6;
    println!(
        "| VADER sentiment (example) predict | 256 | {sluice:.0} | {python:.0} | {:.2} | {overhead:.0} |",
        sluice / python
    );
    println!();
    println!(
        "CPU-bound pure-Python model (20,000 loop steps per row), batch 32: a worker per subtask, so no shared GIL"
    );
    println!();
    println!("| parallelism | Sluice rows/s | speed-up |");
    println!("|---:|---:|---:|");
    let rows = scale / 100;
    let one = sluice_rows_per_second("Busy", rows, 32, 1, 20_000, dir.path());
    let two = sluice_rows_per_second("Busy", rows, 32, 2, 20_000, dir.path());
    println!("| 1 | {one:.0} | 1.00 |");
    println!("| 2 | {two:.0} | {:.2} |", two / one);
}
