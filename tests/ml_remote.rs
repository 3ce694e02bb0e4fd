//! ML_PREDICT with the `openai` and `anthropic` providers against `sluice stub-llm`: barriers
//! pass while requests are in flight, a restore re-issues in-flight requests and keeps
//! cached answers, error policies (retries, adaptive concurrency, dead letters, fail), and
//! API keys never leak.

mod common;

use std::collections::{BTreeMap, HashMap};

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::stub::Stub;
use common::{read_json_lines, Cluster};
use serde_json::Value;

const MINUTE: Duration = Duration::from_secs(60);

/// Writes `rows` (id, question) as a JSON-lines file under `dir`.
fn write_questions(dir: &Path, rows: &[(i64, String)]) {
    std::fs::create_dir_all(dir).unwrap();
    let text: String = rows.iter().map(|(id, q)| format!("{}\n", serde_json::json!({"id": id, "q": q}))).collect();
    std::fs::write(dir.join("questions.json"), text).unwrap();
}

/// A model `assistant` of the stub, with extra options.
fn model(stub: &Stub, provider: &str, options: &str) -> String {
    let task = if provider == "anthropic" { "messages" } else { "chat-completion" };
    format!(
        "CREATE MODEL assistant INPUT (q STRING) OUTPUT (answer STRING) WITH (
            'provider' = '{provider}', 'task' = '{task}', 'base_url' = '{url}/v1', 'model_name' = 'stub-model'{options});",
        url = stub.url
    )
}

/// A job asking model `assistant` (`model`, its DDL) about the questions under `input`,
/// writing (id, q, answer) as JSON under `out`.
fn questions_job(input: &Path, model: &str, out: &Path) -> String {
    format!(
        "CREATE TABLE questions (id BIGINT, q STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
        {model}
        CREATE TABLE answers (id BIGINT, q STRING, answer STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
        INSERT INTO answers SELECT * FROM TABLE(ML_PREDICT(TABLE questions, MODEL assistant, DESCRIPTOR(q)));",
        input.display(),
        out.display()
    )
}

/// The per-model metric `key` summed over the job's tasks.
fn model_metric(status: &Value, key: &str) -> u64 {
    status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["operators"][format!("model.assistant.{key}")].as_u64().unwrap_or(0))
        .sum()
}

fn lowest_model_metric(status: &Value, key: &str) -> u64 {
    status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["operators"][format!("model.assistant.{key}")].as_u64())
        .min()
        .unwrap_or(0)
}

/// With a 2 s stub and 500 ms checkpoints, checkpoints complete quickly while requests are
/// in flight: the barrier does not wait for them. ML_PREDICT runs behind a hash exchange
/// (the cache keys rows by their features) at parallelism 2, so each of its subtasks
/// aligns barriers from two inputs.
#[test]
fn checkpoints_complete_while_requests_are_in_flight() {
    let stub = Stub::start(&["--latency", "2s"]);
    let cluster = Cluster::start(&[4], &["--checkpoint-dir", "{dir}/checkpoints"]);
    let out = cluster.dir.path().join("out");
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '500ms';
        CREATE TABLE questions (id BIGINT, q STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '300',
            'rows-per-second' = '50', 'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '299',
            'fields.q.length' = '12');
        {}
        CREATE TABLE answers (id BIGINT, q STRING, answer STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
        INSERT INTO answers SELECT * FROM TABLE(ML_PREDICT(TABLE questions, MODEL assistant, DESCRIPTOR(q)));",
        model(&stub, "openai", ", 'api_key' = 'sk-test', 'max_concurrent_requests' = '100', 'request_timeout' = '10s', 'cache.enabled' = 'true'"),
        out.display()
    );
    let job = cluster.submit(&sql, 2);
    let plan = cluster.status(&job);
    let vertices: Vec<&str> = plan["tasks"].as_array().unwrap().iter().filter_map(|t| t["vertex"].as_str()).collect();
    assert!(
        vertices.iter().filter(|v| v.contains("ml_predict") && !v.contains("datagen")).count() == 2,
        "ML_PREDICT must run as 2 subtasks of its own vertex, behind an exchange: {vertices:?}"
    );
    let mut completed_with_requests_in_flight = Vec::new();
    let mut last_completed = 0;
    let deadline = Instant::now() + 2 * MINUTE;
    loop {
        let status = cluster.status(&job);
        // The operator's own count of requests waiting for an answer.
        let in_flight = model_metric(&status, "in_flight");
        let completed = status["checkpoints"]["completed"].as_u64().unwrap_or(0);
        if completed > last_completed && in_flight > 0 && status["state"] == "RUNNING" {
            completed_with_requests_in_flight.push((
                completed,
                in_flight,
                status["checkpoints"]["latest_duration_ms"].as_u64().unwrap(),
            ));
            for task in status["tasks"].as_array().unwrap() {
                let alignment = task["checkpoint"]["alignment_ms"].as_u64().unwrap_or(0);
                assert!(alignment < 100, "alignment {alignment} ms: {task:#}");
            }
        }
        last_completed = completed;
        if status["state"] != "RUNNING" {
            assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
            break;
        }
        assert!(Instant::now() < deadline, "the job did not finish: {}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Each request takes 2 s, yet checkpoints every ~500 ms completed with requests in flight.
    assert!(completed_with_requests_in_flight.len() >= 4, "{completed_with_requests_in_flight:?}");
    for (id, in_flight, duration_ms) in &completed_with_requests_in_flight {
        assert!(*duration_ms < 1500, "checkpoint {id} took {duration_ms} ms with {in_flight} requests in flight");
    }
    let rows = read_json_lines(&out);
    assert_eq!(rows.len(), 300);
    assert!(rows.iter().all(|r| r["answer"].as_str().unwrap().starts_with("answer-")), "{:?}", rows.first());
}

/// How many files under `dir` (recursively) have names ending in `suffix`.
fn files_named(dir: &std::path::Path, suffix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                files_named(&path, suffix)
            } else {
                usize::from(path.to_string_lossy().ends_with(suffix))
            }
        })
        .sum()
}

/// A task manager dies with ~100 requests in flight: after the restore every row has exactly
/// one output row in the exactly-once file sink, and with the cache, a question answered
/// before the crash keeps its (random) answer: every row with the same question carries the
/// same answer. The held rows exceed a 1 KiB `state.storage.fs.memory-threshold`, so they
/// are restored from list files in the checkpoint storage, not from the acknowledgements.
#[test]
fn a_restore_reissues_in_flight_requests_and_the_cache_keeps_answers() {
    let stub = Stub::start(&["--latency", "uniform:600ms..1s", "--answers", "random"]);
    let mut cluster = Cluster::start(&[1, 1], &["--checkpoint-dir", "{dir}/checkpoints", "--heartbeat-timeout", "2s"]);
    let out = cluster.dir.path().join("out");
    let rows = 3_000;
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '300ms';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.delay' = '200ms';
        SET 'state.storage.fs.memory-threshold' = '1kb';
        CREATE TABLE questions (id BIGINT, topic INT) WITH ('connector' = 'datagen', 'number-of-rows' = '{rows}',
            'rows-per-second' = '300', 'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '{last}',
            'fields.topic.min' = '0', 'fields.topic.max' = '1499');
        CREATE MODEL assistant INPUT (topic INT) OUTPUT (answer STRING) WITH (
            'provider' = 'openai', 'task' = 'chat-completion', 'base_url' = '{url}/v1', 'model_name' = 'stub-model',
            'api_key' = 'sk-test', 'prompt_template' = 'Tell me about topic {{topic}}', 'max_concurrent_requests' = '100',
            'cache.enabled' = 'true', 'request_timeout' = '10s');
        CREATE TABLE answers (id BIGINT, topic INT, answer STRING) WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
        INSERT INTO answers SELECT * FROM TABLE(ML_PREDICT(TABLE questions, MODEL assistant, DESCRIPTOR(topic)));",
        last = rows - 1,
        url = stub.url,
        out = out.display()
    );
    let job = cluster.submit(&sql, 2);
    let deadline = Instant::now() + MINUTE;
    let in_flight_at_kill = loop {
        let status = cluster.status(&job);
        let in_flight = stub.stats()["in_flight"].as_u64().unwrap();
        if status["checkpoints"]["completed"].as_u64().unwrap_or(0) >= 3 && in_flight >= 100 {
            break in_flight;
        }
        assert!(Instant::now() < deadline, "no checkpoints with requests in flight: {status:#}\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(50));
    };
    cluster.taskmanagers[0].kill9();
    let list_files = files_named(&cluster.dir.path().join("checkpoints"), ".list");
    cluster.add_taskmanager(1);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 3 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert!(status["restarts"].as_u64().unwrap() >= 1, "{status:#}");
    assert!(in_flight_at_kill >= 100);
    assert!(list_files > 0, "the held rows were sent inline, not stored as list files");

    let output = read_json_lines(&out);
    let mut ids: Vec<i64> = output.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), output.len(), "duplicated rows");
    assert_eq!(ids, (0..rows).collect::<Vec<i64>>(), "rows lost");
    // The restored attempt re-issued the checkpointed in-flight requests, wherever its
    // subtasks ran (the operator's own metric, summed over the final attempt's tasks).
    assert!(model_metric(&status, "reissued") > 0, "no request was re-issued after the restore: {status:#}");

    // Random answers: only the cache makes every row of a topic carry the same answer.
    let mut answers: HashMap<i64, String> = HashMap::new();
    for row in &output {
        let answer = row["answer"].as_str().unwrap().to_string();
        let previous = answers.entry(row["topic"].as_i64().unwrap()).or_insert_with(|| answer.clone());
        assert_eq!(*previous, answer, "topic {} got two answers", row["topic"]);
    }
    // Every committed answer is one the stub gave for that prompt.
    let given: std::collections::HashSet<String> =
        stub.requests().iter().filter_map(|r| r["answer"].as_str().map(str::to_string)).collect();
    assert!(answers.values().all(|a| given.contains(a)));
    assert!(model_metric(&status, "cache_hits") > 0, "{status:#}");
}

/// A storm of 429s (60% of requests): the job retries, lowers its concurrency, and finishes
/// with every row.
#[test]
fn a_429_storm_is_retried_with_lower_concurrency() {
    let stub = Stub::start(&["--latency", "5ms", "--faults", "429=0.6", "--retry-after", "0"]);
    let cluster = Cluster::start(&[2], &[]);
    let dir = cluster.dir.path().join("in");
    write_questions(&dir, &(0..200).map(|i| (i, format!("question {i}"))).collect::<Vec<_>>());
    let out = cluster.dir.path().join("out");
    let sql = questions_job(&dir, &model(&stub, "anthropic", ", 'api_key' = 'k', 'max_concurrent_requests' = '16', 'max_retries' = '30', 'retry.backoff' = '5ms', 'retry.max-backoff' = '50ms'"), &out);
    let job = cluster.submit(&sql, 1);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 2 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    assert_eq!(read_json_lines(&out).len(), 200);
    assert!(model_metric(&status, "http_429") > 50, "{status:#}");
    assert!(model_metric(&status, "retries") >= model_metric(&status, "http_429"), "{status:#}");
    assert!(lowest_model_metric(&status, "concurrency_limit_min") < 16, "{status:#}");
    assert_eq!(model_metric(&status, "failed"), 0, "{status:#}");
}

/// A 400 is not retried and its row is dead-lettered with its error; a hang times out,
/// is retried, then dead-lettered; a 503 that clears is retried into an answer. The API
/// key, given as a secret and then written literally in the SQL of a second job, appears
/// in no log, status, plan, dead letter, checkpoint file or the stub's own request log.
#[test]
fn failed_rows_go_to_the_dead_letter_topic_and_keys_never_leak() {
    const KEY: &str = "sk-live-Zq81Secret4242";
    let broker = Broker::start();
    broker.create_topic("failed-predictions", 1);
    let stub = Stub::start(&["--latency", "5ms", "--api-key", KEY]);
    let mut cluster = Cluster::start(&[], &["--checkpoint-dir", "{dir}/checkpoints"]);
    cluster.add_taskmanager_with_env(2, &[("SLUICE_SECRET_STUB_KEY", KEY)]);
    let dir = cluster.dir.path().join("in");
    let mut questions: Vec<(i64, String)> = (0..20).map(|i| (i, format!("question {i}"))).collect();
    questions.push((100, "bad request [stub:400]".into()));
    questions.push((101, "stuck [stub:hang]".into()));
    questions.push((102, "flaky [stub:503x2]".into()));
    write_questions(&dir, &questions);
    let out = cluster.dir.path().join("out");
    let sql = questions_job(&dir, &model(
            &stub,
            "openai",
            &format!(
                ", 'api_key' = '{{{{ secret.stub_key }}}}', 'request_timeout' = '300ms', 'max_retries' = '2', 'retry.backoff' = '10ms',
                'on_error' = 'dead_letter', 'dead_letter.topic' = 'kafka:failed-predictions',
                'dead-letter.properties.bootstrap.servers' = '{}'",
                broker.address
            )
        ), &out);
    let sql = format!("SET 'execution.checkpointing.interval' = '200ms';\n{sql}");
    let job = cluster.submit(&sql, 1);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 2 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    let mut ids: Vec<i64> = read_json_lines(&out).iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..20).chain([102]).collect::<Vec<i64>>());

    let letters: BTreeMap<i64, Value> = broker
        .read_all("failed-predictions", 1)
        .into_iter()
        .map(|(_, _, v)| {
            let letter: Value = serde_json::from_str(&v).unwrap();
            (letter["input"]["id"].as_i64().unwrap(), letter)
        })
        .collect();
    assert_eq!(letters.keys().copied().collect::<Vec<_>>(), vec![100, 101], "{letters:#?}");
    let bad = &letters[&100];
    assert_eq!(bad["http_status"], 400, "{bad}");
    assert_eq!(bad["attempts"], 1, "{bad}");
    assert!(bad["error"].as_str().unwrap().contains("not retried"), "{bad}");
    assert_eq!(bad["input"]["q"], "bad request [stub:400]");
    assert_eq!(bad["source"], "model assistant");
    let hung = &letters[&101];
    assert_eq!(hung["attempts"], 3, "{hung}");
    assert!(hung["http_status"].is_null(), "{hung}");
    assert!(hung["error"].as_str().unwrap().contains("no answer within"), "{hung}");

    let attempts = |needle: &str| {
        stub.requests().iter().filter(|r| r["prompt"].as_str().unwrap_or_default().contains(needle)).count()
    };
    assert_eq!(attempts("[stub:400]"), 1, "a 400 is not retried");
    assert_eq!(attempts("[stub:hang]"), 3);
    assert_eq!(attempts("[stub:503x2]"), 3);
    assert_eq!(model_metric(&status, "dead_letters"), 2, "{status:#}");
    assert_eq!(model_metric(&status, "timeouts"), 3, "{status:#}");

    // The same job with the key written literally in its SQL.
    let literal_sql = sql.replace("{{ secret.stub_key }}", KEY);
    let literal = cluster.submit(&literal_sql, 1);
    let literal_status = cluster.wait_for(&literal, &["FINISHED", "FAILED"], 2 * MINUTE);
    assert_eq!(literal_status["state"], "FINISHED", "{literal_status:#}\n{}", cluster.logs());

    // The key is nowhere: logs, status, the plan, dead letters, checkpoints, the stub's log.
    // EXPLAIN of the same job with the key written in the SQL.
    std::fs::write(cluster.dir.path().join("plan.sql"), &literal_sql).unwrap();
    let explain =
        Command::new(common::sluice_bin()).arg("explain").arg(cluster.dir.path().join("plan.sql")).output().unwrap();
    assert!(explain.status.success(), "{}", String::from_utf8_lossy(&explain.stderr));
    let mut everything = String::from_utf8_lossy(&explain.stdout).into_owned();
    everything.push_str(&String::from_utf8_lossy(&cluster.cli(&["status", &job]).stdout));
    everything.push_str(&status.to_string());
    for entry in std::fs::read_dir(cluster.dir.path()).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "log") {
            everything.push_str(&std::fs::read_to_string(entry.path()).unwrap());
        }
    }
    everything.push_str(&String::from_utf8_lossy(&cluster.cli(&["status", &literal]).stdout));
    everything.push_str(&letters.values().map(Value::to_string).collect::<String>());
    let literal_letters: Vec<String> =
        broker.read_all("failed-predictions", 1).into_iter().map(|(_, _, v)| v).collect();
    assert_eq!(literal_letters.len(), 4, "both jobs dead-lettered their two rows");
    everything.push_str(&literal_letters.concat());
    everything.push_str(&std::fs::read_to_string(&stub.log).unwrap());
    let checkpoint_files = files_under(&cluster.dir.path().join("checkpoints"));
    assert!(
        checkpoint_files.iter().any(|f| f.ends_with("_metadata")),
        "the jobs took checkpoints: {checkpoint_files:?}"
    );
    for file in &checkpoint_files {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "the API key is in checkpoint file {}",
            file.display()
        );
    }
    assert!(!everything.contains(KEY), "the API key leaked");
    assert!(everything.contains("model assistant"), "the search covered the dead letters");
}

/// With `on_error` = `fail` (the default), a 400 fails the job with a message naming the
/// model and the status, and a wrong key (401) is not retried.
#[test]
fn on_error_fail_names_the_model_and_the_status() {
    let stub = Stub::start(&["--latency", "1ms", "--api-key", "right-key"]);
    let cluster = Cluster::start(&[2], &[]);
    for (key, question, status_code) in [("right-key", "oops [stub:400]", "400"), ("wrong-key-9876", "hello", "401")] {
        let dir = cluster.dir.path().join(format!("in-{status_code}"));
        write_questions(&dir, &[(1, "fine".into()), (2, question.into())]);
        let sql = format!(
            "CREATE TABLE questions (id BIGINT, q STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
            {}
            CREATE TABLE answers (id BIGINT, q STRING, answer STRING) WITH ('connector' = 'blackhole');
            INSERT INTO answers SELECT * FROM TABLE(ML_PREDICT(TABLE questions, MODEL assistant, DESCRIPTOR(q)));",
            dir.display(),
            model(&stub, "openai", &format!(", 'api_key' = '{key}', 'max_retries' = '3'")),
        );
        let job = cluster.submit(&sql, 1);
        let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], MINUTE);
        assert_eq!(status["state"], "FAILED", "{status:#}");
        let text = status.to_string();
        assert!(
            text.contains("model 'assistant'") && text.contains(&format!("HTTP status {status_code}")),
            "{status:#}"
        );
        assert!(text.contains("not retried"), "{status:#}");
        assert!(!text.contains("wrong-key-9876"), "{status:#}");
    }
}

/// Malformed and truncated answers are retried until a good one comes.
#[test]
fn malformed_and_truncated_answers_are_retried() {
    let stub = Stub::start(&["--latency", "1ms", "--faults", "malformed=0.3,truncated=0.3"]);
    let cluster = Cluster::start(&[2], &[]);
    let dir = cluster.dir.path().join("in");
    write_questions(&dir, &(0..100).map(|i| (i, format!("question {i}"))).collect::<Vec<_>>());
    let out = cluster.dir.path().join("out");
    let sql = questions_job(
        &dir,
        &model(
            &stub,
            "openai",
            ", 'api_key' = 'k', 'max_retries' = '30', 'retry.backoff' = '1ms', 'retry.max-backoff' = '5ms'",
        ),
        &out,
    );
    let job = cluster.submit(&sql, 1);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    let rows = read_json_lines(&out);
    assert_eq!(rows.len(), 100);
    assert!(rows.iter().all(|r| r["answer"].as_str().unwrap().starts_with("answer-")));
    let outcomes = &stub.stats()["outcomes"];
    assert!(
        outcomes["malformed"].as_u64().unwrap_or(0) > 0 && outcomes["truncated"].as_u64().unwrap_or(0) > 0,
        "{outcomes}"
    );
    assert_eq!(
        model_metric(&status, "retries"),
        outcomes["malformed"].as_u64().unwrap() + outcomes["truncated"].as_u64().unwrap()
    );
}

/// Embeddings send `batch_size` rows per request into an ARRAY<FLOAT> column; JSON answers
/// fill several OUTPUT columns by name; token usage and cost are counted.
#[test]
fn embeddings_batch_rows_and_json_answers_fill_columns() {
    let stub = Stub::start(&["--latency", "1ms", "--embedding-dim", "8"]);
    let cluster = Cluster::start(&[2], &[]);
    let dir = cluster.dir.path().join("in");
    write_questions(&dir, &(0..10).map(|i| (i, format!("text {i}"))).collect::<Vec<_>>());
    let vectors = cluster.dir.path().join("vectors");
    let labels = cluster.dir.path().join("labels");
    let sql = format!(
        "CREATE TABLE questions (id BIGINT, q STRING) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
        CREATE MODEL embedder INPUT (q STRING) OUTPUT (embedding ARRAY<FLOAT>) WITH ('provider' = 'openai', 'task' = 'embeddings',
            'base_url' = '{url}/v1', 'model_name' = 'text-embedding-3-small', 'api_key' = 'k', 'batch_size' = '4');
        CREATE MODEL assistant INPUT (q STRING) OUTPUT (label STRING, score DOUBLE) WITH ('provider' = 'openai',
            'base_url' = '{url}/v1', 'model_name' = 'gpt', 'api_key' = 'k', 'response_format' = 'json_object',
            'cost.input_per_1k_tokens' = '1000', 'cost.output_per_1k_tokens' = '1000');
        CREATE TABLE vectors (id BIGINT, q STRING, embedding ARRAY<FLOAT>) WITH ('connector' = 'filesystem', 'path' = '{vectors}', 'format' = 'json');
        CREATE TABLE labels (id BIGINT, q STRING, label STRING, score DOUBLE) WITH ('connector' = 'filesystem', 'path' = '{labels}', 'format' = 'json');
        INSERT INTO vectors SELECT * FROM TABLE(ML_PREDICT(TABLE questions, MODEL embedder, DESCRIPTOR(q)));
        INSERT INTO labels SELECT * FROM TABLE(ML_PREDICT(TABLE questions, MODEL assistant, DESCRIPTOR(q)));",
        input = dir.display(),
        url = stub.url,
        vectors = vectors.display(),
        labels = labels.display()
    );
    // A script's INSERTs form one job.
    let job = cluster.submit(&sql, 1);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    let vectors = read_json_lines(&vectors);
    assert_eq!(vectors.len(), 10);
    assert!(vectors.iter().all(|r| r["embedding"].as_array().unwrap().len() == 8), "{:?}", vectors[0]);
    let embedding_requests =
        stub.requests().iter().filter(|r| r["path"].as_str().unwrap().ends_with("/embeddings")).count();
    assert_eq!(embedding_requests, 3, "10 rows in requests of up to 4");
    let labels = read_json_lines(&labels);
    assert_eq!(labels.len(), 10);
    for row in &labels {
        let score = row["score"].as_f64().unwrap();
        assert!((0.0..1.0).contains(&score), "{row}");
        assert_eq!(row["label"], if score >= 0.5 { "positive" } else { "negative" }, "{row}");
    }
    let tokens = model_metric(&status, "prompt_tokens") + model_metric(&status, "completion_tokens");
    assert!(tokens > 0, "{status:#}");
    assert_eq!(model_metric(&status, "cost_micro_usd"), tokens * 1_000_000, "{status:#}");
}

/// `ML_EMBED(MODEL m, text)` in a SELECT list gives each row its model's embedding, the
/// rows batched into requests of `batch_size`: every vector equals the stub's deterministic
/// embedding of its text, computed here.
#[test]
fn ml_embed_gives_each_row_its_embedding_in_batched_requests() {
    let stub = Stub::start(&["--latency", "1ms", "--embedding-dim", "8"]);
    let cluster = Cluster::start(&[2], &[]);
    let dir = cluster.dir.path().join("in");
    write_questions(&dir, &(0..10).map(|i| (i, format!("text {i}"))).collect::<Vec<_>>());
    let vectors = cluster.dir.path().join("vectors");
    let sql = format!(
        "CREATE TABLE questions (id BIGINT, q STRING) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
        CREATE MODEL embedder INPUT (q STRING) OUTPUT (embedding ARRAY<FLOAT>) WITH ('provider' = 'openai', 'task' = 'embeddings',
            'base_url' = '{url}/v1', 'model_name' = 'text-embedding-3-small', 'api_key' = 'k', 'batch_size' = '4');
        CREATE TABLE vectors (id BIGINT, q STRING, v ARRAY<FLOAT>) WITH ('connector' = 'filesystem', 'path' = '{vectors}', 'format' = 'json');
        INSERT INTO vectors SELECT id, q, ML_EMBED(MODEL embedder, q) AS v FROM questions;",
        input = dir.display(),
        url = stub.url,
        vectors = vectors.display(),
    );
    let job = cluster.submit(&sql, 1);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    let rows = read_json_lines(&vectors);
    assert_eq!(rows.len(), 10);
    for row in &rows {
        let text = row["q"].as_str().unwrap();
        let want: Vec<f32> = (0..8u64)
            .map(|i| {
                let h = xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), i);
                ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        let got: Vec<f32> = row["v"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(got, want, "{row}");
    }
    let embedding_requests =
        stub.requests().iter().filter(|r| r["path"].as_str().unwrap().ends_with("/embeddings")).count();
    assert_eq!(embedding_requests, 3, "10 rows in requests of up to 4");
}

/// `max_context_size` with `context_overflow_action`: a prompt over the limit reaches the
/// model cut to its first (`truncated-tail`) or last (`truncated-head`) tokens, counted as
/// truncated; with `skipped` its row gets no request and no output, counted as skipped.
/// Short prompts go as they are. The expected cuts are computed here with tiktoken's
/// o200k_base encoding (which Sluice uses for a model name tiktoken does not know).
#[test]
fn prompts_over_max_context_size_are_truncated_or_their_rows_skipped() {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let texts: Vec<(i64, String)> = (0..6)
        .map(|i| {
            let text = if i % 2 == 0 {
                format!("short question {i}")
            } else {
                format!(
                    "long question {i}: {}",
                    "the river carries the boat past the old mill and on toward the sea ".repeat(3)
                )
            };
            (i, text)
        })
        .collect();
    for action in ["truncated-tail", "truncated-head", "skipped"] {
        let stub = Stub::start(&["--latency", "1ms"]);
        let cluster = Cluster::start(&[2], &[]);
        let dir = cluster.dir.path().join("in");
        write_questions(&dir, &texts);
        let out = cluster.dir.path().join("out");
        let options = format!(", 'api_key' = 'k', 'max_context_size' = '8', 'context_overflow_action' = '{action}'");
        let job = cluster.submit(&questions_job(&dir, &model(&stub, "openai", &options), &out), 1);
        let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], MINUTE);
        assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
        let mut expected = std::collections::BTreeSet::new();
        for (_, text) in &texts {
            let tokens = bpe.encode_ordinary(text);
            let kept = match action {
                _ if tokens.len() <= 8 => text.clone(),
                "truncated-tail" => bpe.decode(&tokens[..8]).unwrap(),
                "truncated-head" => bpe.decode(&tokens[tokens.len() - 8..]).unwrap(),
                _ => continue,
            };
            expected.insert(kept);
        }
        let sent: std::collections::BTreeSet<String> =
            stub.requests().iter().map(|r| r["prompt"].as_str().unwrap().to_string()).collect();
        assert_eq!(sent, expected, "{action}");
        let mut ids: Vec<i64> = read_json_lines(&out).iter().map(|r| r["id"].as_i64().unwrap()).collect();
        ids.sort_unstable();
        let (want, counter) = if action == "skipped" {
            (vec![0, 2, 4], "context_skipped")
        } else {
            ((0..6).collect(), "context_truncated")
        };
        assert_eq!(ids, want, "{action}");
        assert_eq!(model_metric(&status, counter), 3, "{action}: {status:#}");
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `retry.on_codes` decides which statuses are retried: with only 502 listed, a row whose
/// first two answers are 502 gets its answer on the third attempt, while a row answered
/// 503 once is not retried (503 is retried by default) and is skipped by `on_error`.
#[test]
fn retry_on_codes_retries_only_the_listed_statuses() {
    let stub = Stub::start(&["--latency", "1ms"]);
    let cluster = Cluster::start(&[2], &[]);
    let dir = cluster.dir.path().join("in");
    let mut questions: Vec<(i64, String)> = (0..5).map(|i| (i, format!("question {i}"))).collect();
    questions.push((100, "gateway [stub:502x2]".into()));
    questions.push((101, "unavailable [stub:503x1]".into()));
    write_questions(&dir, &questions);
    let out = cluster.dir.path().join("out");
    let options = ", 'api_key' = 'k', 'retry.on_codes' = '502', 'max_retries' = '3', 'retry.backoff' = '1ms', \
                   'on_error' = 'skip'";
    let job = cluster.submit(&questions_job(&dir, &model(&stub, "openai", options), &out), 1);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    let ids: std::collections::BTreeSet<i64> =
        read_json_lines(&out).iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (0..5).chain([100]).collect(), "the 503 row is skipped, the 502 row answered after retries");
    let asked =
        |needle: &str| stub.requests().iter().filter(|r| r["prompt"].as_str().unwrap_or("").contains(needle)).count();
    assert_eq!((asked("gateway"), asked("unavailable")), (3, 1), "502 retried twice, 503 not retried");
}

/// A job its task managers refuse to build (a model whose API key would travel over plain
/// HTTP to another host) fails at once with the reason, instead of restarting until its
/// restart strategy gives up.
#[test]
fn a_job_its_task_managers_refuse_fails_at_once_with_the_reason() {
    let cluster = Cluster::start(&[2], &["--checkpoint-dir", "{dir}/checkpoints"]);
    let sql = "SET 'execution.checkpointing.interval' = '1s';
        CREATE TABLE questions (id BIGINT, q STRING) WITH ('connector' = 'datagen', 'rows-per-second' = '10');
        CREATE MODEL assistant INPUT (q STRING) OUTPUT (answer STRING) WITH ('provider' = 'openai',
            'task' = 'chat-completion', 'base_url' = 'http://llm.example.com/v1', 'model_name' = 'm', 'api_key' = 'sk-test');
        CREATE TABLE answers (id BIGINT, q STRING, answer STRING) WITH ('connector' = 'blackhole');
        INSERT INTO answers SELECT * FROM TABLE(ML_PREDICT(TABLE questions, MODEL assistant, DESCRIPTOR(q)));";
    let job = cluster.submit(sql, 1);
    let status = cluster.wait_for(&job, &["FAILED", "FINISHED"], MINUTE);
    assert_eq!(status["state"], "FAILED", "{status:#}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("plain HTTP") && message.contains("allow-insecure-http"), "{message}");
    assert_eq!(status["restarts"], 0, "a refused deployment is not restarted: {status:#}");
    assert!(!message.contains("sk-test"), "the API key never shows: {message}");
}
