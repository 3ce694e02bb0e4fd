//! ML_PREDICT with the `local` provider (ONNX through ort) on the SQL path: scores equal
//! Python's onnxruntime, one model load per task, restore after a task manager is killed,
//! and bad inputs.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::{read_json_lines, Cluster};
use serde_json::Value;

const MINUTE: Duration = Duration::from_secs(60);

fn model_path() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fraud_classifier.onnx").display().to_string()
}

/// Transactions from datagen, scored by the fraud model into a JSON file sink.
fn scoring_job(rows: u64, out: &Path, extra_model_options: &str, rate: u64) -> String {
    format!(
        "CREATE TABLE transactions (txn_id BIGINT, amount DOUBLE, hour_of_day INT, merchant_category INT, user_age INT,
            user_country STRING, txn_velocity_24h INT) WITH (
            'connector' = 'datagen', 'number-of-rows' = '{rows}', 'rows-per-second' = '{rate}',
            'fields.txn_id.kind' = 'sequence', 'fields.txn_id.start' = '0', 'fields.txn_id.end' = '{last}',
            'fields.amount.min' = '1', 'fields.amount.max' = '2000', 'fields.hour_of_day.min' = '0', 'fields.hour_of_day.max' = '23',
            'fields.merchant_category.min' = '0', 'fields.merchant_category.max' = '19', 'fields.user_age.min' = '18',
            'fields.user_age.max' = '90', 'fields.user_country.length' = '2', 'fields.txn_velocity_24h.min' = '0',
            'fields.txn_velocity_24h.max' = '20'{extra_fields});
        CREATE MODEL fraud_classifier INPUT (amount DOUBLE, hour_of_day INT, merchant_category INT, user_age INT,
            user_country STRING, txn_velocity_24h INT) OUTPUT (fraud_score DOUBLE)
            WITH ('provider' = 'local', 'task' = 'classification', 'model_path' = '{model}', 'batch_size' = '32'{extra_model_options});
        CREATE TABLE scores (txn_id BIGINT, amount DOUBLE, hour_of_day INT, merchant_category INT, user_age INT,
            user_country STRING, txn_velocity_24h INT, fraud_score DOUBLE) WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
        INSERT INTO scores SELECT * FROM TABLE(ML_PREDICT(TABLE transactions, MODEL fraud_classifier,
            DESCRIPTOR(amount, hour_of_day, merchant_category, user_age, user_country, txn_velocity_24h)));",
        last = rows - 1,
        model = model_path(),
        out = out.display(),
        extra_fields = if extra_model_options.contains("on_error") { ", 'fields.user_age.null-rate' = '0.1'" } else { "" },
    )
}

fn sluice_run(sql: &str, dir: &Path, args: &[&str]) -> std::process::Output {
    let file = dir.join("job.sql");
    std::fs::write(&file, sql).unwrap();
    Command::new(common::sluice_bin())
        .arg("run")
        .arg(&file)
        .args(["--taskmanagers", "2"])
        .args(args)
        .env("RUST_LOG", "sluice_ml=info")
        .output()
        .unwrap()
}

/// 10,000 rows through the SQL path: every score equals Python onnxruntime's for the same
/// features within 1e-6, and each task loads the model once.
#[test]
fn scores_equal_python_onnxruntime_and_the_model_loads_once_per_task() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scores");
    let run = sluice_run(&scoring_job(10_000, &out, "", 1_000_000), dir.path(), &["--parallelism", "2"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert_eq!(stderr.matches("model loaded").count(), 2, "one load per task at parallelism 2:\n{stderr}");

    let rows = read_json_lines(&out);
    assert_eq!(rows.len(), 10_000);
    let expected = onnxruntime_scores(&rows, dir.path());
    let mut worst = 0.0f64;
    for (row, want) in rows.iter().zip(&expected) {
        worst = worst.max((row["fraud_score"].as_f64().unwrap() - want).abs());
    }
    assert!(worst < 1e-6, "largest difference from Python onnxruntime: {worst}");
    assert!(expected.iter().any(|&p| p > 0.8) && expected.iter().any(|&p| p < 0.2), "the model separates the rows");
}

/// The fraud probabilities Python's onnxruntime gives the features of `rows`, in order.
fn onnxruntime_scores(rows: &[Value], dir: &Path) -> Vec<f64> {
    let features = dir.join("features.json");
    std::fs::write(&features, serde_json::to_string(rows).unwrap()).unwrap();
    let script = r#"
import json, sys
import numpy as np
import onnxruntime as ort
rows = json.load(open(sys.argv[1]))
session = ort.InferenceSession(sys.argv[2])
column = lambda name, dtype: np.array([[r[name]] for r in rows], dtype=dtype)
feed = {
    "amount": column("amount", np.float32), "hour_of_day": column("hour_of_day", np.int64),
    "merchant_category": column("merchant_category", np.int64), "user_age": column("user_age", np.int64),
    "user_country": np.array([[r["user_country"]] for r in rows]), "txn_velocity_24h": column("txn_velocity_24h", np.int64),
}
probabilities = session.run(None, feed)[1]
print(json.dumps([float(p[1]) for p in probabilities]))
"#;
    let python = Command::new("python3").args(["-c", script]).arg(&features).arg(model_path()).output().unwrap();
    assert!(python.status.success(), "{}", String::from_utf8_lossy(&python.stderr));
    serde_json::from_slice(&python.stdout).unwrap()
}

/// Days since the epoch (UTC), now.
fn today() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 / 86_400
}

/// The lesson's "predict on stored" pattern in batch mode: `SELECT *, ML_PREDICT(MODEL m,
/// ...) FROM event_features WHERE event_date = CURRENT_DATE` over a file of three days'
/// events writes each of today's rows once, with Python onnxruntime's score.
#[test]
fn the_lessons_stored_table_pattern_scores_todays_rows_once_in_batch_mode() {
    let dir = tempfile::tempdir().unwrap();
    let before = today();
    let date = |days: i64| {
        let d = arrow::array::temporal_conversions::date32_to_datetime(days as i32).unwrap();
        d.format("%Y-%m-%d").to_string()
    };
    let events: Vec<Value> = (0..300i64)
        .map(|i| {
            let country = ["US", "DE", "XX"][(i % 3) as usize];
            serde_json::json!({
                "txn_id": i, "amount": (i * 37 % 2000) as f64 + 0.5, "hour_of_day": i % 24, "merchant_category": i % 20,
                "user_age": 18 + i % 70, "user_country": country,
                "txn_velocity_24h": i % 21, "event_date": date(before - 1 + i % 3),
            })
        })
        .collect();
    let input = dir.path().join("events.json");
    std::fs::write(&input, events.iter().map(|e| format!("{e}\n")).collect::<String>()).unwrap();
    let out = dir.path().join("predictions");
    let sql = format!(
        "SET 'execution.runtime-mode' = 'batch';
        CREATE TABLE event_features (txn_id BIGINT, amount DOUBLE, hour_of_day INT, merchant_category INT, user_age INT,
            user_country STRING, txn_velocity_24h INT, event_date DATE)
            WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
        CREATE MODEL fraud_classifier INPUT (amount DOUBLE, hour_of_day INT, merchant_category INT, user_age INT,
            user_country STRING, txn_velocity_24h INT) OUTPUT (fraud_score DOUBLE)
            WITH ('provider' = 'local', 'task' = 'classification', 'model_path' = '{model}');
        CREATE TABLE predictions (txn_id BIGINT, amount DOUBLE, hour_of_day INT, merchant_category INT, user_age INT,
            user_country STRING, txn_velocity_24h INT, event_date DATE, fraud_score DOUBLE)
            WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
        INSERT INTO predictions
        SELECT *, ML_PREDICT(MODEL fraud_classifier, amount, hour_of_day, merchant_category, user_age, user_country,
            txn_velocity_24h) AS fraud_score
        FROM event_features
        WHERE event_date = CURRENT_DATE;",
        input = input.display(),
        model = model_path(),
        out = out.display(),
    );
    let run = sluice_run(&sql, dir.path(), &["--parallelism", "2"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let after = today();
    let mut rows = read_json_lines(&out);
    rows.sort_by_key(|r| r["txn_id"].as_i64().unwrap());
    let ids: Vec<i64> = rows.iter().map(|r| r["txn_id"].as_i64().unwrap()).collect();
    // The rows dated on the job's CURRENT_DATE (the day the test started, or the next one
    // if it ran across midnight), each once.
    let dated = |day: i64| -> Vec<i64> { (0..300).filter(|i| before - 1 + i % 3 == day).collect() };
    assert!(ids == dated(before) || ids == dated(after), "{ids:?}");
    assert_eq!(ids.len(), 100);
    let expected = onnxruntime_scores(&rows, dir.path());
    for (row, want) in rows.iter().zip(&expected) {
        assert!((row["fraud_score"].as_f64().unwrap() - want).abs() < 1e-6, "{row} vs {want}");
    }
}

/// A NULL feature fails the job naming the column, is skipped with on_error = skip, or is
/// written to a Kafka topic with on_error = dead_letter.
#[test]
fn null_features_follow_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scores");
    let failed = sluice_run(&scoring_job(1_000, &out, ", 'on_error' = 'fail'", 1_000_000), dir.path(), &[]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("model 'fraud_classifier'") && stderr.contains("NULL in INPUT column 'user_age'"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = dir.path().join("skipped");
    let skipped = sluice_run(&scoring_job(1_000, &out, ", 'on_error' = 'skip'", 1_000_000), dir.path(), &[]);
    assert!(skipped.status.success(), "{}", String::from_utf8_lossy(&skipped.stderr));
    let rows = read_json_lines(&out);
    assert!(rows.len() > 800 && rows.len() < 1_000, "{} rows kept", rows.len());
    assert!(rows.iter().all(|r| !r["user_age"].is_null()));

    // dead_letter: the dropped rows reach the topic with their error, the others are scored.
    let broker = Broker::start();
    broker.create_topic("bad-features", 1);
    let out = dir.path().join("dead-lettered");
    let options = format!(
        ", 'on_error' = 'dead_letter', 'dead_letter.topic' = 'kafka:bad-features', 'dead-letter.properties.bootstrap.servers' = '{}'",
        broker.address
    );
    let run = sluice_run(&scoring_job(1_000, &out, &options, 1_000_000), dir.path(), &[]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let scored = read_json_lines(&out).len();
    let letters: Vec<Value> =
        broker.read_all("bad-features", 1).iter().map(|(_, _, v)| serde_json::from_str(v).unwrap()).collect();
    assert_eq!(scored + letters.len(), 1_000, "every row is scored or dead-lettered");
    assert!(!letters.is_empty());
    for letter in &letters {
        assert!(letter["input"]["user_age"].is_null(), "{letter}");
        assert_eq!(letter["error"], "INPUT column 'user_age' is NULL", "{letter}");
        assert_eq!(letter["source"], "model fraud_classifier");
    }
}

/// A missing model file fails the job at start with the reason.
#[test]
fn a_missing_model_fails_the_job_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let sql = scoring_job(10, &dir.path().join("out"), "", 1000).replace(&model_path(), "/nowhere/fraud.onnx");
    let run = sluice_run(&sql, dir.path(), &[]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("model file '/nowhere/fraud.onnx' does not exist"), "{stderr}");
}

/// A checkpointed pipeline with the model, a task manager killed while it runs: after the
/// restore, the committed output equals a failure-free run's.
#[test]
fn a_checkpointed_scoring_job_restores_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let expected_dir = dir.path().join("expected");
    let reference = sluice_run(&scoring_job(30_000, &expected_dir, "", 1_000_000), dir.path(), &["--parallelism", "2"]);
    assert!(reference.status.success(), "{}", String::from_utf8_lossy(&reference.stderr));
    let key = |r: &Value| (r["txn_id"].as_i64().unwrap(), r["fraud_score"].as_f64().unwrap().to_bits());
    let mut expected: Vec<(i64, u64)> = read_json_lines(&expected_dir).iter().map(key).collect();
    expected.sort_unstable();

    // One slot each: both task managers run a subtask, so the killed one always has work.
    let mut cluster = Cluster::start(&[1, 1], &["--checkpoint-dir", "{dir}/checkpoints", "--heartbeat-timeout", "2s"]);
    let out = cluster.dir.path().join("out");
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '300ms';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.delay' = '200ms';
        {}",
        scoring_job(30_000, &out, "", 6_000)
    );
    let job = cluster.submit(&sql, 2);
    let deadline = Instant::now() + MINUTE;
    while cluster.status(&job)["checkpoints"]["completed"].as_u64().unwrap_or(0) < 3 {
        assert!(Instant::now() < deadline, "no checkpoints: {}", cluster.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.taskmanagers[0].kill9();
    cluster.add_taskmanager(1);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 2 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert!(status["restarts"].as_u64().unwrap() >= 1, "{status:#}");
    // Per-model metrics reach the status.
    let model_metric = |key: &str| -> u64 {
        status["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["operators"][format!("model.fraud_classifier.{key}")].as_u64().unwrap_or(0))
            .sum()
    };
    assert!(model_metric("rows") > 0 && model_metric("batches") > 0, "{status:#}");
    // Each subtask's batch latency histogram, with its p50 and p99.
    for task in status["tasks"].as_array().unwrap() {
        let latency = &task["operators"]["model.fraud_classifier.latency_us"];
        if latency.is_null() {
            continue; // a subtask without the model (the source's or the sink's)
        }
        assert!(latency["count"].as_u64().unwrap() > 0, "{status:#}");
        let (p50, p99) = (latency["p50"].as_f64().unwrap(), latency["p99"].as_f64().unwrap());
        assert!(p50 > 0.0 && p99 >= p50, "{status:#}");
    }
    let mut actual: Vec<(i64, u64)> = read_json_lines(&out).iter().map(key).collect();
    actual.sort_unstable();
    assert_eq!(actual.len(), expected.len(), "rows lost or duplicated");
    assert!(actual == expected, "the restored run's scores differ from the failure-free run's");
}

/// Dead letters are exactly once by default in a checkpointed job: the task managers first
/// crash after a checkpoint completed and before its transactions commit, then one is
/// killed with `kill -9` while the job runs. Every row ends up exactly once either scored
/// (the file sink) or dead-lettered (read_committed from Kafka): none lost, none twice.
#[test]
fn dead_letters_are_exactly_once_through_a_crash_before_commit_and_kills() {
    let broker = Broker::start();
    broker.create_topic("bad-features-eo", 2);
    let rows = 24_000u64;
    let mut cluster = Cluster::start(&[], &["--checkpoint-dir", "{dir}/checkpoints", "--heartbeat-timeout", "2s"]);
    cluster.add_taskmanager_with_env(1, &[("SLUICE_TEST_EXIT_BEFORE_COMMIT", "3")]);
    cluster.add_taskmanager_with_env(1, &[("SLUICE_TEST_EXIT_BEFORE_COMMIT", "3")]);
    let out = cluster.dir.path().join("out");
    let options = format!(
        ", 'on_error' = 'dead_letter', 'dead_letter.topic' = 'kafka:bad-features-eo', 'dead-letter.properties.bootstrap.servers' = '{}'",
        broker.address
    );
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '300ms';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.delay' = '200ms';
        {}",
        scoring_job(rows, &out, &options, 3_000)
    );
    let job = cluster.submit(&sql, 2);
    cluster.wait_until_task_managers_exit(MINUTE);
    for _ in 0..3 {
        cluster.add_taskmanager(1);
    }
    let kills = cluster.kill_task_managers_while_running(&job, 2, 1, Duration::from_millis(1_500));
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 3 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert!(kills >= 1, "no task manager was killed while the job ran");

    let mut seen = vec![0u32; rows as usize];
    for row in read_json_lines(&out) {
        seen[row["txn_id"].as_i64().unwrap() as usize] += 1;
    }
    let mut letters = 0;
    for (_, _, value) in broker.read_all("bad-features-eo", 2) {
        let letter: Value = serde_json::from_str(&value).unwrap();
        assert!(letter["input"]["user_age"].is_null(), "{letter}");
        seen[letter["input"]["txn_id"].as_i64().unwrap() as usize] += 1;
        letters += 1;
    }
    assert!(letters > rows / 20, "about a tenth of the rows have a NULL feature; {letters} were dead-lettered");
    let missing = seen.iter().filter(|&&n| n == 0).count();
    let duplicated = seen.iter().filter(|&&n| n > 1).count();
    assert_eq!(
        (missing, duplicated),
        (0, 0),
        "rows missing or written twice (scored or dead-lettered) after {kills} kills"
    );
}

/// ML_EVALUATE over a labelled table of transactions reports what scikit-learn computes
/// from Python onnxruntime's scores of the same rows: accuracy, precision, recall, F1 and
/// log loss of the fraud model's probabilities (label = probability >= 0.5), and ROC AUC,
/// each within 1e-9.
#[test]
fn ml_evaluate_reports_scikit_learns_metrics_of_the_fraud_model() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<Value> = (0..400i64)
        .map(|i| {
            let amount = (i * 53 % 2000) as f64 + 0.25;
            let velocity = i * 7 % 21;
            // A noisy label: mostly large or rapid transactions, with every 9th row flipped.
            let label = i64::from((amount > 1200.0 || velocity > 15) != (i % 9 == 0));
            let country = ["US", "DE", "XX"][(i % 3) as usize];
            serde_json::json!({
                "txn_id": i, "amount": amount, "hour_of_day": i % 24, "merchant_category": i % 20,
                "user_age": 18 + i * 11 % 70, "user_country": country,
                "txn_velocity_24h": velocity, "is_fraud": label,
            })
        })
        .collect();
    let input = dir.path().join("labelled");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("rows.json"), rows.iter().map(|r| format!("{r}\n")).collect::<String>()).unwrap();
    let out = dir.path().join("metrics");
    let sql = format!(
        "CREATE TABLE labelled (txn_id BIGINT, amount DOUBLE, hour_of_day INT, merchant_category INT, user_age INT,
            user_country STRING, txn_velocity_24h INT, is_fraud INT)
            WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
        CREATE MODEL fraud_classifier INPUT (amount DOUBLE, hour_of_day INT, merchant_category INT, user_age INT,
            user_country STRING, txn_velocity_24h INT) OUTPUT (fraud_score DOUBLE)
            WITH ('provider' = 'local', 'task' = 'classification', 'model_path' = '{model}', 'batch_size' = '1');
        CREATE TABLE metrics (`rows` BIGINT, accuracy DOUBLE, `precision` DOUBLE, recall DOUBLE, f1 DOUBLE,
            log_loss DOUBLE, auc DOUBLE) WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
        INSERT INTO metrics SELECT * FROM ML_EVALUATE(TABLE labelled, MODEL fraud_classifier, DESCRIPTOR(is_fraud),
            DESCRIPTOR(amount, hour_of_day, merchant_category, user_age, user_country, txn_velocity_24h),
            TASK => 'classification');",
        input = input.display(),
        model = model_path(),
        out = out.display(),
    );
    let run = sluice_run(&sql, dir.path(), &["--parallelism", "2"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let got = read_json_lines(&out);
    assert_eq!(got.len(), 1, "one row of metrics: {got:?}");
    let got = &got[0];

    // One row per call on both sides: onnxruntime's tree ensembles sum in another order
    // for larger batches, which moves float32 probabilities in their last bits.
    let script = r#"
import json, sys
import numpy as np
import onnxruntime as ort
from sklearn import metrics
rows = [json.loads(l) for l in open(sys.argv[1])]
session = ort.InferenceSession(sys.argv[2])
def score(r):
    feed = {
        "amount": np.array([[r["amount"]]], dtype=np.float32), "hour_of_day": np.array([[r["hour_of_day"]]], dtype=np.int64),
        "merchant_category": np.array([[r["merchant_category"]]], dtype=np.int64),
        "user_age": np.array([[r["user_age"]]], dtype=np.int64), "user_country": np.array([[r["user_country"]]]),
        "txn_velocity_24h": np.array([[r["txn_velocity_24h"]]], dtype=np.int64),
    }
    return float(session.run(None, feed)[1][0][1])
y = np.array([r["is_fraud"] for r in rows])
p = np.array([score(r) for r in rows], dtype=np.float64)
pred = (p >= 0.5).astype(int)
print(json.dumps({
    "accuracy": metrics.accuracy_score(y, pred), "precision": metrics.precision_score(y, pred, zero_division=0),
    "recall": metrics.recall_score(y, pred, zero_division=0), "f1": metrics.f1_score(y, pred, zero_division=0),
    "log_loss": metrics.log_loss(y, p), "auc": metrics.roc_auc_score(y, p),
}))
"#;
    let python =
        Command::new("python3").args(["-c", script]).arg(input.join("rows.json")).arg(model_path()).output().unwrap();
    assert!(python.status.success(), "{}", String::from_utf8_lossy(&python.stderr));
    let want: Value = serde_json::from_slice(&python.stdout).unwrap();
    assert_eq!(got["rows"], 400);
    for metric in ["accuracy", "precision", "recall", "f1", "log_loss", "auc"] {
        let (g, w) = (got[metric].as_f64().unwrap(), want[metric].as_f64().unwrap());
        assert!((g - w).abs() < 1e-9, "{metric}: Sluice {g}, scikit-learn {w}");
    }
    assert!(want["auc"].as_f64().unwrap() > 0.5 && want["accuracy"].as_f64().unwrap() < 1.0, "{want}");
}
