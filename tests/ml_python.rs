//! The `generic-python` provider end to end: the FLIP's DDL with a real model from PyPI
//! (VADER) equals the same class run in plain Python, and every failure of a Python model
//! (an exception on one row, a hang in predict or open, a segfault, `os._exit`, an external
//! `kill -9` of the worker, broken output, `print()` noise) is contained: the job goes on
//! or fails with the reason, checkpoints keep completing, and no worker is left behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::{read_json_lines, transactions, Cluster};
use serde_json::Value;

const MINUTE: Duration = Duration::from_secs(60);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Writes `texts` as a JSON-lines file of `{id, text}` rows; returns its path.
fn texts_file(dir: &Path, texts: &[String]) -> PathBuf {
    let path = dir.join("texts.jsonl");
    let lines: Vec<String> =
        texts.iter().enumerate().map(|(i, t)| serde_json::json!({"id": i, "text": t}).to_string()).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("text-{i}-{}", "x".repeat(i % 7))).collect()
}

/// A job scoring `input` with the test model (class `class`, extra WITH options `options`)
/// into a JSON file sink at `out`.
fn faulty_job(input: &Path, out: &Path, model: &str, class: &str, options: &str) -> String {
    format!(
        "CREATE TABLE texts (id BIGINT, text STRING) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
        CREATE MODEL {model} INPUT (text STRING) OUTPUT (length BIGINT, upper STRING) WITH (
            'provider' = 'generic-python',
            'model-directory-path' = '{dir}',
            'python-predict-class' = 'models.{class}'{options});
        CREATE TABLE scores (id BIGINT, text STRING, length BIGINT, upper STRING)
            WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
        INSERT INTO scores SELECT * FROM ML_PREDICT(TABLE texts, MODEL {model}, DESCRIPTOR(text));",
        input = input.display(),
        out = out.display(),
        dir = repo("tests/python_models/faulty").display(),
    )
}

fn sluice_run(sql: &str, dir: &Path, args: &[&str]) -> Output {
    let file = dir.join("job.sql");
    std::fs::write(&file, sql).unwrap();
    Command::new(common::sluice_bin())
        .arg("run")
        .arg(&file)
        .args(args)
        .env("RUST_LOG", "sluice_ml=info,sluice::python=info")
        .output()
        .unwrap()
}

/// The pids of the workers of `model` still running.
fn workers_of(model: &str) -> Vec<u32> {
    let out = Command::new("pgrep").args(["-f", &format!("sluice._worker {model}$")]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// The scored rows by id, each checked against the model's rule (length and upper case of
/// the text).
fn scored(out: &Path) -> Vec<i64> {
    let mut ids: Vec<i64> = read_json_lines(out)
        .iter()
        .map(|r| {
            let text = r["text"].as_str().unwrap();
            assert_eq!(r["length"].as_i64().unwrap() as usize, text.chars().count(), "{r}");
            assert_eq!(r["upper"].as_str().unwrap(), text.to_uppercase(), "{r}");
            r["id"].as_i64().unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn stderr(run: &Output) -> String {
    String::from_utf8_lossy(&run.stderr).into_owned()
}

/// The FLIP's DDL verbatim (the model directory holds `models.py`), with VADER from PyPI:
/// every review's sentiment and confidence equal the same class run in plain Python.
#[test]
fn the_seeds_ddl_scores_texts_as_the_class_does_in_plain_python() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scored");
    let sql = format!(
        "CREATE TABLE reviews (id BIGINT, text STRING) WITH (
            'connector' = 'filesystem', 'path' = '{reviews}', 'format' = 'json');
        CREATE MODEL simple_python_model
          INPUT (text STRING)
          OUTPUT (sentiment STRING, confidence FLOAT)
          WITH (
              'provider' = 'generic-python',
              'model-directory-path' = '{model}',
              'properties.model_version' = '1',
              'python-predict-class' = 'models.HuggingFaceSentimentPredictFunction'
          );
        CREATE TABLE scored (id BIGINT, text STRING, sentiment STRING, confidence FLOAT)
            WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
        INSERT INTO scored SELECT * FROM ML_PREDICT(TABLE reviews, MODEL simple_python_model, DESCRIPTOR(text));",
        reviews = repo("examples/data/reviews.jsonl").display(),
        model = repo("examples/python-models/sentiment").display(),
        out = out.display(),
    );
    let run = sluice_run(&sql, dir.path(), &["--parallelism", "2"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let rows = read_json_lines(&out);

    // The same class, run by hand in plain Python over the same file.
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[3])
from sluice import ModelContext, Row
import models
config = {"model": "simple_python_model", "model_directory": sys.argv[2], "properties": {"model_version": "1"},
          "input_schema": [], "output_schema": []}
fn = models.HuggingFaceSentimentPredictFunction()
fn.set_model_config(json.dumps(config))
fn.open(ModelContext(config, 0, 1, 0))
out = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    [p] = fn.predict(Row.of(["text"], [r["text"]]))
    out[r["id"]] = [p.sentiment, p.confidence]
print(json.dumps(out))
"#;
    let python = Command::new("python3")
        .args(["-c", script])
        .arg(repo("examples/data/reviews.jsonl"))
        .arg(repo("examples/python-models/sentiment"))
        .arg(repo("python"))
        .output()
        .unwrap();
    assert!(python.status.success(), "{}", String::from_utf8_lossy(&python.stderr));
    let expected: serde_json::Map<String, Value> = serde_json::from_slice(&python.stdout).unwrap();
    assert_eq!(rows.len(), expected.len(), "one scored row per review");
    for row in &rows {
        let want = &expected[&row["id"].to_string()];
        assert_eq!(row["sentiment"], want[0], "{row}");
        let confidence = row["confidence"].as_f64().unwrap();
        assert!((confidence - want[1].as_f64().unwrap()).abs() < 1e-6, "{row} vs {want}");
    }
    let sentiments: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["sentiment"].as_str().unwrap()).collect();
    assert_eq!(sentiments.len(), 3, "positive, negative and neutral reviews: {sentiments:?}");
    assert!(workers_of("simple_python_model").is_empty(), "a worker outlived the job");
}

/// An exception on one row of a batch of 32: that row alone is dead-lettered, with the
/// exception's type, message and traceback; the other rows are scored. Both through
/// `predict` and through `predict_batch` (whose failed batch is retried row by row).
#[test]
fn an_exception_on_one_row_dead_letters_only_that_row_with_its_traceback() {
    let broker = Broker::start();
    for (class, topic) in [("Faulty", "bad-rows"), ("Vectorized", "bad-batches")] {
        broker.create_topic(topic, 1);
        let dir = tempfile::tempdir().unwrap();
        let all = texts(64);
        let input = texts_file(dir.path(), &all);
        let out = dir.path().join("out");
        let options = format!(
            ", 'batch_size' = '32', 'properties.fault' = 'raise', 'properties.trigger' = '{}',
            'on_error' = 'dead_letter', 'dead_letter.topic' = 'kafka:{topic}', 'dead-letter.properties.bootstrap.servers' = '{}'",
            all[17], broker.address
        );
        let model = format!("raises_{}", class.to_lowercase());
        let run = sluice_run(&faulty_job(&input, &out, &model, class, &options), dir.path(), &[]);
        assert!(run.status.success(), "{}", stderr(&run));
        let expected: Vec<i64> = (0..64).filter(|&i| i != 17).collect();
        assert_eq!(scored(&out), expected, "{class}: every row but the failing one is scored");
        let letters: Vec<Value> =
            broker.read_all(topic, 1).iter().map(|(_, _, v)| serde_json::from_str(v).unwrap()).collect();
        assert_eq!(letters.len(), 1, "{class}: {letters:?}");
        let letter = &letters[0];
        assert_eq!(letter["input"]["id"], 17, "{letter}");
        let error = letter["error"].as_str().unwrap();
        assert!(error.starts_with(&format!("ValueError: cannot score '{}'", all[17])), "{error}");
        assert!(error.contains("Traceback (most recent call last)") && error.contains("models.py"), "{error}");
        assert!(stderr(&run).contains("cannot score"), "the error is logged:\n{}", stderr(&run));
        assert!(workers_of(&model).is_empty(), "a worker outlived the job");
    }
}

/// `time.sleep(3600)` in predict: past `request_timeout` the worker's Python stack is
/// logged, the worker is killed and restarted, and the batch is retried (succeeding once the
/// fault has passed; with a fault that stays, after `max_retries` the row is skipped).
#[test]
fn a_hung_predict_is_killed_with_its_stack_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let all = texts(40);
    let input = texts_file(dir.path(), &all);
    let out = dir.path().join("out");
    let once = dir.path().join("fired");
    let options = format!(
        ", 'batch_size' = '4', 'request_timeout' = '2s', 'properties.fault' = 'hang', 'properties.trigger' = '{}',
        'properties.once' = '{}'",
        all[9],
        once.display()
    );
    let run = sluice_run(&faulty_job(&input, &out, "hangs_once", "Faulty", &options), dir.path(), &[]);
    let log = stderr(&run);
    assert!(run.status.success(), "{log}");
    assert_eq!(scored(&out), (0..40).collect::<Vec<_>>(), "the retried batch is scored");
    assert!(log.contains("a batch did not finish within 2s"), "{log}");
    assert!(log.contains("most recent call first") && log.contains("in predict"), "the Python stack is logged:\n{log}");
    assert!(log.contains("Python worker restarted"), "{log}");

    // A hang that stays: the batch (one row) is skipped after its retries.
    let out = dir.path().join("out-skip");
    let options = format!(
        ", 'batch_size' = '1', 'request_timeout' = '1s', 'max_retries' = '1', 'on_error' = 'skip',
        'properties.fault' = 'hang', 'properties.trigger' = '{}'",
        all[9]
    );
    let run = sluice_run(&faulty_job(&input, &out, "hangs_always", "Faulty", &options), dir.path(), &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(scored(&out), (0..40).filter(|&i| i != 9).collect::<Vec<_>>());
    assert!(workers_of("hangs_always").is_empty() && workers_of("hangs_once").is_empty(), "a worker outlived the job");
}

/// `time.sleep(3600)` in open fails the job at start past `python.open-timeout`, with the
/// stack; an exception in open fails it with the traceback; a worker that dies in open
/// fails it naming the exit, without looping.
#[test]
fn failures_in_open_fail_the_job_at_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = texts_file(dir.path(), &texts(8));
    let cases = [
        ("hang-open", ", 'python.open-timeout' = '2s'", vec!["open did not finish within 2s", "in open"]),
        ("raise-open", "", vec!["open failed: ValueError: the weights file is corrupt", "Traceback", "models.py"]),
        ("crash-open", "", vec!["the Python worker died (exit code 3)"]),
    ];
    for (fault, extra, wanted) in cases {
        let out = dir.path().join(fault);
        let options = format!(", 'properties.fault' = '{fault}'{extra}");
        let model = fault.replace('-', "_");
        let started = Instant::now();
        let run = sluice_run(&faulty_job(&input, &out, &model, "Faulty", &options), dir.path(), &[]);
        let log = stderr(&run);
        assert!(!run.status.success(), "{fault}: {log}");
        for w in wanted {
            assert!(log.contains(w), "{fault}: no '{w}' in:\n{log}");
        }
        assert!(log.contains(&format!("model '{model}'")), "{log}");
        assert!(started.elapsed() < MINUTE, "{fault}: the job did not fail promptly");
        assert!(workers_of(&model).is_empty(), "{fault}: a worker outlived the job");
    }
}

/// A segfault and `os._exit(1)` kill the worker: it is restarted, the crash is reported
/// with the signal or exit code and the last lines of the worker's output, and the batch is
/// retried. A crash on every attempt with `on_error` = 'fail' fails the job with that reason.
#[test]
fn crashes_restart_the_worker_and_name_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let all = texts(24);
    let input = texts_file(dir.path(), &all);
    for (fault, wanted) in [("segfault", "signal 11, SIGSEGV"), ("exit", "exit code 1")] {
        let out = dir.path().join(fault);
        let once = dir.path().join(format!("{fault}-fired"));
        let options = format!(
            ", 'batch_size' = '4', 'properties.fault' = '{fault}', 'properties.trigger' = '{}', 'properties.once' = '{}'",
            all[5],
            once.display()
        );
        let model = format!("crash_{fault}");
        let run = sluice_run(&faulty_job(&input, &out, &model, "Faulty", &options), dir.path(), &[]);
        let log = stderr(&run);
        assert!(run.status.success(), "{log}");
        assert_eq!(scored(&out), (0..24).collect::<Vec<_>>(), "{fault}: the retried batch is scored");
        assert!(log.contains(&format!("the Python worker died ({wanted})")), "{fault}:\n{log}");
        assert!(workers_of(&model).is_empty(), "a worker outlived the job");
    }
    let out = dir.path().join("always");
    let options =
        format!(", 'max_retries' = '1', 'properties.fault' = 'segfault', 'properties.trigger' = '{}'", all[5]);
    let run = sluice_run(&faulty_job(&input, &out, "crash_always", "Faulty", &options), dir.path(), &[]);
    let log = stderr(&run);
    assert!(!run.status.success(), "{log}");
    assert!(log.contains("the Python worker died (signal 11, SIGSEGV)") && log.contains("after 2 attempt(s)"), "{log}");
    assert!(log.contains("Fatal Python error: Segmentation fault"), "the worker's last output is shown:\n{log}");
}

/// Broken output is an error of its row naming the model, the column, what was expected
/// and what came: a wrong type, two rows for one, a NULL... and `on_error` decides.
#[test]
fn output_contract_breaches_are_row_errors_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let all = texts(16);
    let input = texts_file(dir.path(), &all);
    let cases = [
        ("type", "OutputTypeError: OUTPUT column 'length' expects BIGINT, got str 'many'"),
        ("arity", "OutputArityError: predict returned 2 rows for one input row; exactly one is expected"),
    ];
    for (fault, wanted) in cases {
        let out = dir.path().join(fault);
        let options = format!(", 'properties.fault' = '{fault}', 'properties.trigger' = '{}'", all[3]);
        let model = format!("broken_{fault}");
        let run = sluice_run(&faulty_job(&input, &out, &model, "Faulty", &options), dir.path(), &[]);
        let log = stderr(&run);
        assert!(!run.status.success(), "{fault}: {log}");
        assert!(log.contains(&format!("model '{model}'")) && log.contains(wanted), "{fault}:\n{log}");

        let out = dir.path().join(format!("{fault}-skipped"));
        let options = format!("{options}, 'on_error' = 'skip'");
        let run = sluice_run(&faulty_job(&input, &out, &model, "Faulty", &options), dir.path(), &[]);
        assert!(run.status.success(), "{}", stderr(&run));
        assert_eq!(scored(&out), (0..16).filter(|&i| i != 3).collect::<Vec<_>>(), "{fault}");
    }
}

/// The model's `print()` goes to the log with the model's name, never into the data.
#[test]
fn print_output_goes_to_the_log_not_into_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let input = texts_file(dir.path(), &texts(50));
    for class in ["Faulty", "Vectorized"] {
        let out = dir.path().join(class);
        let model = format!("noisy_{}", class.to_lowercase());
        let run = sluice_run(
            &faulty_job(&input, &out, &model, class, ", 'batch_size' = '8', 'properties.noise' = 'true'"),
            dir.path(),
            &["--parallelism", "2"],
        );
        let log = stderr(&run);
        assert!(run.status.success(), "{log}");
        assert_eq!(scored(&out), (0..50).collect::<Vec<_>>());
        let printed = log.lines().filter(|l| l.contains("scoring") && l.contains(&format!("model={model}"))).count();
        assert!(printed >= if class == "Faulty" { 50 } else { 7 }, "{class}: {printed} printed lines logged:\n{log}");
    }
}

/// A worker killed from outside (`kill -9`) while the job runs is restarted and its batch
/// retried: every row is scored once, and the crash names SIGKILL.
#[test]
fn an_external_kill_of_the_worker_loses_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let input = texts_file(dir.path(), &texts(300));
    let out = dir.path().join("out");
    let sql =
        faulty_job(&input, &out, "killed_from_outside", "Faulty", ", 'batch_size' = '5', 'properties.delay' = '0.02'");
    std::fs::write(dir.path().join("job.sql"), &sql).unwrap();
    let job = Command::new(common::sluice_bin())
        .arg("run")
        .arg(dir.path().join("job.sql"))
        .env("RUST_LOG", "sluice_ml=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + MINUTE;
    let pid = loop {
        if let Some(&pid) = workers_of("killed_from_outside").first() {
            break pid;
        }
        assert!(Instant::now() < deadline, "no worker started");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(1_000));
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    let run = job.wait_with_output().unwrap();
    let log = stderr(&run);
    assert!(run.status.success(), "{log}");
    assert_eq!(scored(&out), (0..300).collect::<Vec<_>>());
    assert!(log.contains("the Python worker died (signal 9, SIGKILL)"), "{log}");
    assert!(workers_of("killed_from_outside").is_empty(), "a worker outlived the job");
}

/// While a batch hangs in Python, checkpoints keep completing (the barrier does not wait
/// for it); a task manager killed with batches in flight restores from the checkpoint, and
/// the exactly-once file sink holds every row exactly once.
#[test]
fn checkpoints_complete_during_a_hang_and_a_killed_task_manager_loses_no_row() {
    let rows = 4_000u64;
    let mut cluster = Cluster::start(&[1, 1], &["--checkpoint-dir", "{dir}/checkpoints", "--heartbeat-timeout", "2s"]);
    let out = cluster.dir.path().join("out");
    let once = cluster.dir.path().join("fired");
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '300ms';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.delay' = '200ms';
        CREATE TABLE texts (id BIGINT, text STRING) WITH (
            'connector' = 'datagen', 'number-of-rows' = '{rows}', 'rows-per-second' = '400',
            'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '{last}',
            'fields.text.length' = '12');
        CREATE MODEL inflight INPUT (text STRING) OUTPUT (length BIGINT, upper STRING) WITH (
            'provider' = 'generic-python', 'model-directory-path' = '{dir}', 'python-predict-class' = 'models.Vectorized',
            'batch_size' = '16', 'request_timeout' = '6s', 'properties.delay' = '0.001',
            'properties.fault' = 'hang', 'properties.trigger_row' = '300', 'properties.once' = '{once}');
        CREATE TABLE scores (id BIGINT, text STRING, length BIGINT, upper STRING)
            WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
        INSERT INTO scores SELECT * FROM ML_PREDICT(TABLE texts, MODEL inflight, DESCRIPTOR(text));",
        last = rows - 1,
        dir = repo("tests/python_models/faulty").display(),
        once = once.display(),
        out = out.display(),
    );
    let job = cluster.submit(&sql, 2);
    let completed = |c: &Cluster| c.status(&job)["checkpoints"]["completed"].as_u64().unwrap_or(0);
    let deadline = Instant::now() + MINUTE;
    while !once.exists() {
        assert!(Instant::now() < deadline, "the model never hung: {}", cluster.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The batch hangs for 6 s: checkpoints go on meanwhile.
    let before = completed(&cluster);
    std::thread::sleep(Duration::from_secs(3));
    let during = completed(&cluster) - before;
    assert!(during >= 3, "{during} checkpoints completed in 3 s while a batch hung:\n{}", cluster.logs());
    cluster.taskmanagers[0].kill9();
    cluster.add_taskmanager(1);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 2 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert!(status["restarts"].as_u64().unwrap() >= 1, "{status:#}");
    let ids = scored(&out);
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "rows written twice");
    assert_eq!(ids, (0..rows as i64).collect::<Vec<_>>(), "rows lost");
    // The killed task manager's worker notices its parent is gone within half a second
    // (it polls); on a loaded machine give it a few.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !workers_of("inflight").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(workers_of("inflight").is_empty(), "a worker outlived the job by 5 s");
}

/// Cancelling a job while a batch hangs in Python stops its worker at once, without
/// waiting for the batch's timeout and retries. Before that, `sluice status` shows the
/// model's metrics.
#[test]
fn cancelling_a_job_with_a_hung_batch_leaves_no_worker() {
    let cluster = Cluster::start(&[1], &[]);
    let once = cluster.dir.path().join("hung");
    let sql = format!(
        "CREATE TABLE texts (id BIGINT, text STRING) WITH (
            'connector' = 'datagen', 'rows-per-second' = '100', 'fields.text.length' = '12');
        CREATE MODEL cancelled_while_hung INPUT (text STRING) OUTPUT (length BIGINT, upper STRING) WITH (
            'provider' = 'generic-python', 'model-directory-path' = '{dir}', 'python-predict-class' = 'models.Faulty',
            'batch_size' = '4', 'request_timeout' = '10min', 'properties.fault' = 'hang', 'properties.trigger_row' = '20',
            'properties.once' = '{once}');
        CREATE TABLE sink (id BIGINT, length BIGINT) WITH ('connector' = 'blackhole');
        INSERT INTO sink SELECT id, length FROM ML_PREDICT(TABLE texts, MODEL cancelled_while_hung, DESCRIPTOR(text));",
        dir = repo("tests/python_models/faulty").display(),
        once = once.display(),
    );
    let job = cluster.submit(&sql, 1);
    let deadline = Instant::now() + MINUTE;
    while !once.exists() {
        assert!(Instant::now() < deadline, "the model never hung: {}", cluster.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(workers_of("cancelled_while_hung").len(), 1);
    // `sluice status` shows the model's metrics: rows answered before the hung 20th.
    let deadline = Instant::now() + MINUTE;
    loop {
        let status = cluster.cli(&["status", &job]);
        let text = String::from_utf8_lossy(&status.stdout).into_owned();
        let value = |key: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("model.cancelled_while_hung.{key}: ")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let rows = value("rows");
        if rows >= 10 {
            assert!(rows < 20, "rows after the hung one were answered: {text}");
            assert!((1..=rows).contains(&value("batches")), "{text}");
            assert!(value("latency_p50_us") > 0 && value("latency_p99_us") >= value("latency_p50_us"), "{text}");
            assert!(text.contains("model.cancelled_while_hung.worker_restarts: 0"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "sluice status never showed the model's rows:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let cancel = cluster.cli(&["cancel", &job]);
    assert!(cancel.status.success(), "{}", String::from_utf8_lossy(&cancel.stderr));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !workers_of("cancelled_while_hung").is_empty() {
        assert!(Instant::now() < deadline, "the hung worker outlived its cancelled job: {}", cluster.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scikit-learn classifier trained by the example's script scores a file of
/// transactions, a batch at a time; each row's probability equals `predict_proba` of the
/// same saved model run in plain Python on the same rows.
#[test]
fn a_scikit_learn_model_trained_by_a_script_scores_as_it_does_in_plain_python() {
    let dir = tempfile::tempdir().unwrap();
    let model_file = dir.path().join("fraud.joblib");
    let train = Command::new("python3")
        .arg(repo("examples/python-models/fraud_sklearn/train.py"))
        .arg(&model_file)
        .output()
        .unwrap();
    assert!(train.status.success(), "{}", String::from_utf8_lossy(&train.stderr));
    let input = transactions::write(dir.path(), 300);
    let out = dir.path().join("scored");
    let sql = format!(
        "CREATE TABLE transactions (id BIGINT, {columns}) WITH (
            'connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
        CREATE MODEL fraud_sklearn
          INPUT (amount DOUBLE, hour_of_day INT, user_age INT, txn_velocity_24h INT)
          OUTPUT (fraud_probability DOUBLE, is_fraud BOOLEAN)
          WITH ('provider' = 'generic-python', 'model-directory-path' = '{model}',
                'python-predict-class' = 'models.FraudClassifier', 'python.requirements' = 'scikit-learn, joblib',
                'properties.model_file' = '{model_file}', 'batch_size' = '64');
        CREATE TABLE scored (id BIGINT, fraud_probability DOUBLE, is_fraud BOOLEAN)
            WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
        INSERT INTO scored SELECT id, fraud_probability, is_fraud FROM ML_PREDICT(TABLE transactions, MODEL fraud_sklearn,
            DESCRIPTOR(amount, hour_of_day, user_age, txn_velocity_24h));",
        columns = transactions::COLUMNS,
        input = input.display(),
        model = repo("examples/python-models/fraud_sklearn").display(),
        model_file = model_file.display(),
        out = out.display(),
    );
    let run = sluice_run(&sql, dir.path(), &["--parallelism", "2"]);
    assert!(run.status.success(), "{}", stderr(&run));

    let script = r#"
import json, sys, joblib
model = joblib.load(sys.argv[1])
rows = [json.loads(line) for line in open(sys.argv[2])]
features = [[r["amount"], r["hour_of_day"], r["user_age"], r["txn_velocity_24h"]] for r in rows]
print(json.dumps({r["id"]: p for r, p in zip(rows, model.predict_proba(features)[:, 1].tolist())}))
"#;
    let python = Command::new("python3").args(["-c", script]).arg(&model_file).arg(&input).output().unwrap();
    assert!(python.status.success(), "{}", String::from_utf8_lossy(&python.stderr));
    let expected: serde_json::Map<String, Value> = serde_json::from_slice(&python.stdout).unwrap();
    let rows = read_json_lines(&out);
    assert_eq!(rows.len(), expected.len(), "one scored row per transaction");
    let mut frauds = 0;
    for row in &rows {
        let want = expected[&row["id"].to_string()].as_f64().unwrap();
        let probability = row["fraud_probability"].as_f64().unwrap();
        assert!((probability - want).abs() < 1e-12, "{row} vs {want}");
        assert_eq!(row["is_fraud"].as_bool().unwrap(), want >= 0.5, "{row}");
        frauds += usize::from(want >= 0.5);
    }
    assert!(frauds > 0 && frauds < rows.len(), "both classes occur: {frauds} of {}", rows.len());
}

/// `runtime` = `pytorch` / `tensorflow` on an interpreter without the framework fails the
/// job at start naming the package and the pip command (on a machine whose `python3` has
/// it, the job gets past the import and fails on the missing model file instead).
#[test]
fn a_python_runtime_without_its_framework_names_the_pip_command() {
    let dir = tempfile::tempdir().unwrap();
    let input = transactions::write(dir.path(), 4);
    for (runtime, module, package, file) in [
        ("pytorch", "torch", "torch", "missing.pt2"),
        ("tensorflow", "tensorflow", "tensorflow-cpu", "missing_savedmodel"),
    ] {
        let sql = format!(
            "CREATE TABLE transactions (id BIGINT, {columns}) WITH (
                'connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
            CREATE MODEL fraud_{runtime} INPUT (amount DOUBLE) OUTPUT (fraud_probability DOUBLE)
              WITH ('provider' = 'local', 'runtime' = '{runtime}', 'model_path' = '{model}');
            CREATE TABLE scored (id BIGINT, p DOUBLE) WITH ('connector' = 'blackhole');
            INSERT INTO scored SELECT id, fraud_probability FROM ML_PREDICT(TABLE transactions, MODEL fraud_{runtime},
                DESCRIPTOR(amount));",
            columns = transactions::COLUMNS,
            input = input.display(),
            model = dir.path().join(file).display(),
        );
        let run = sluice_run(&sql, dir.path(), &[]);
        let log = stderr(&run);
        assert!(!run.status.success(), "{runtime}: {log}");
        assert!(log.contains(&format!("model 'fraud_{runtime}'")), "{log}");
        let installed = Command::new("python3").args(["-c", &format!("import {module}")]).status().unwrap().success();
        if installed {
            assert!(log.contains("does not exist (check 'model-path')"), "{runtime}: {log}");
        } else {
            assert!(log.contains(&format!("-m pip install {package}")), "{runtime}: {log}");
        }
        assert!(workers_of(&format!("fraud_{runtime}")).is_empty(), "a worker outlived the job");
    }
}
