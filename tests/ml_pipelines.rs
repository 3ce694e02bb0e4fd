//! The seed lesson's three ML pipelines, as the lesson writes them (apart from connection
//! details), on a cluster of real processes: the hourly churn pipeline (TUMBLE + join +
//! CROSS APPLY ML_PREDICT), the fraud enrichment pipeline (a lookup join against a real
//! PostgreSQL + CROSS APPLY ML_PREDICT + WHERE), and the hybrid cascade (a local model
//! scores every row, an LLM is asked only under CASE WHEN). The models are the closed-form
//! ONNX models of `models/make_lesson_models.py`; every expected row is computed here.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::postgres::Postgres;
use common::stub::Stub;
use common::{read_json_lines, Cluster};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// `models/churn_model.onnx`.
fn churn_probability(total: f64, count: f64, avg: f64, age: f64, tenure: f64) -> f64 {
    sigmoid(0.5 - 0.002 * total - 0.15 * count + 0.004 * avg + 0.01 * age - 0.08 * tenure)
}

/// `models/fraud_score_model.onnx`.
fn fraud_score(amount: f64, age: i64, tenure: i64, segment: &str) -> f64 {
    let new = if segment == "new" { 1.0 } else { 0.0 };
    sigmoid(0.004 * amount - 0.03 * age as f64 - 0.1 * tenure as f64 + 1.5 * new - 1.0)
}

fn model_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name)
}

fn write_lines(dir: &Path, rows: impl Iterator<Item = Value>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let text: String = rows.map(|r| format!("{r}\n")).collect();
    std::fs::write(dir.join("part.json"), text).unwrap();
    dir.to_path_buf()
}

fn run(cluster: &Cluster, sql: &str, parallelism: u32) -> Value {
    let job = cluster.submit(sql, parallelism);
    let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], 3 * MINUTE);
    assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
    status
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-5
}

/// Pattern 1: hourly features per customer (a TUMBLE window in the legacy GROUP BY
/// form), joined with a feature table, scored by a churn model through CROSS APPLY.
#[test]
fn the_lessons_churn_pipeline_scores_each_customer_hour() {
    let cluster = Cluster::start(&[2], &[]);
    let dir = cluster.dir.path();
    // Transactions over three hours: customer c, amount, at minute m.
    let transactions: Vec<(i64, f64, i64)> =
        (0..600).map(|i| (i % 7, 5.0 + (i * 13 % 97) as f64, (i * 37) % 180)).collect();
    let input = write_lines(
        &dir.join("transactions"),
        transactions.iter().map(|(c, amount, minute)| {
            json!({"customer_id": c, "amount": amount,
                   "event_time": format!("2026-01-01 {:02}:{:02}:00", minute / 60, minute % 60)})
        }),
    );
    let features =
        write_lines(&dir.join("features"), (0..6i64).map(|c| json!({"id": c, "age": 20 + c * 7, "tenure": c % 4})));
    let out = dir.join("predicted_churn");
    // As the lesson writes it, except that the outer query reads the window start from
    // the subquery: its `TUMBLE_START(event_time, ...)` names a column the outer query
    // does not have, which Flink refuses too.
    let sql = format!(
        "CREATE TABLE transactions (customer_id BIGINT, amount DOUBLE, event_time TIMESTAMP(3),
            WATERMARK FOR event_time AS event_time - INTERVAL '1' MINUTE)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
        CREATE TABLE customer_features (id BIGINT, age INT, tenure INT)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
        CREATE MODEL customer_churn_model
          INPUT (total_amount DOUBLE, txn_count BIGINT, avg_amount DOUBLE, age INT, tenure INT)
          OUTPUT (churn_probability DOUBLE)
          WITH ('provider' = 'local', 'task' = 'regression', 'model_path' = '{}');
        CREATE TABLE predicted_churn (customer_id BIGINT, window_start TIMESTAMP(3), churn_probability DOUBLE)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
        INSERT INTO predicted_churn
        SELECT
          customer_id,
          hourly.window_start,
          predicted.churn_probability
        FROM (
          SELECT
            customer_id,
            TUMBLE_START(event_time, INTERVAL '1' HOUR) AS window_start,
            SUM(amount) AS total_amount,
            COUNT(*) AS txn_count,
            AVG(amount) AS avg_amount
          FROM transactions
          GROUP BY customer_id, TUMBLE(event_time, INTERVAL '1' HOUR)
        ) hourly
        JOIN customer_features ON hourly.customer_id = customer_features.id
        CROSS APPLY (
          SELECT churn_probability
          FROM TABLE(
            ML_PREDICT(
              VALUES (hourly.total_amount, hourly.txn_count, hourly.avg_amount,
                      customer_features.age, customer_features.tenure),
              MODEL customer_churn_model,
              DESCRIPTOR(total_amount, txn_count, avg_amount, age, tenure)
            )
          )
        ) predicted;",
        input.display(),
        features.display(),
        model_path("churn_model.onnx").display(),
        out.display()
    );
    run(&cluster, &sql, 2);

    let mut hourly: BTreeMap<(i64, i64), (f64, f64)> = BTreeMap::new();
    for (c, amount, minute) in &transactions {
        let entry = hourly.entry((*c, minute / 60)).or_default();
        entry.0 += amount;
        entry.1 += 1.0;
    }
    let expected: BTreeMap<(i64, String), f64> = hourly
        .iter()
        .filter(|((c, _), _)| *c < 6)
        .map(|((c, hour), (total, count))| {
            let (age, tenure) = ((20 + c * 7) as f64, (c % 4) as f64);
            let p = churn_probability(*total, *count, total / count, age, tenure);
            ((*c, format!("2026-01-01T{hour:02}:00:00")), p)
        })
        .collect();
    let rows = read_json_lines(&out);
    assert_eq!(rows.len(), expected.len(), "one row per customer hour with features: {rows:?}");
    for row in &rows {
        let key = (row["customer_id"].as_i64().unwrap(), row["window_start"].as_str().unwrap().to_string());
        let want = expected.get(&key).unwrap_or_else(|| panic!("unexpected {row}"));
        let got = row["churn_probability"].as_f64().unwrap();
        assert!(close(got, *want), "{key:?}: {got} vs {want}");
    }
}

/// Pattern 2: events enriched by a lookup join against PostgreSQL (the lesson's
/// `FOR SYSTEM_TIME AS OF e.event_time` on a table without versions), scored through
/// CROSS APPLY, and filtered on the score.
#[test]
fn the_lessons_fraud_enrichment_pipeline_filters_on_the_score() {
    let pg = Postgres::start();
    pg.psql(
        "CREATE TABLE customer_dim (customer_id BIGINT PRIMARY KEY, age INT, tenure INT, segment TEXT);
         INSERT INTO customer_dim SELECT i, 20 + (i * 3) % 50, i % 7, (ARRAY['new','loyal','casual'])[i % 3 + 1]
         FROM generate_series(0, 49) AS i;",
    );
    let cluster = Cluster::start(&[2], &[]);
    let dir = cluster.dir.path();
    let events: Vec<(i64, f64)> = (0..2000).map(|i| (i % 60, (i * 29 % 900) as f64)).collect();
    let input = write_lines(
        &dir.join("events"),
        events.iter().enumerate().map(|(i, (c, amount))| {
            json!({"customer_id": c, "txn_amount": amount, "ts": format!("2026-01-01 00:00:{:02}", i % 60)})
        }),
    );
    let out = dir.join("scored");
    let sql = format!(
        "CREATE TABLE customer_dim (
          customer_id BIGINT PRIMARY KEY NOT ENFORCED,
          age INT,
          tenure INT,
          segment STRING
        ) WITH (
          'connector' = 'jdbc',
          'url' = '{url}', 'table-name' = 'customer_dim', 'username' = 'postgres',
          'lookup.cache.max-rows' = '10000',
          'lookup.cache.ttl' = '1 h'
        );
        CREATE TABLE event_stream (
          customer_id BIGINT,
          txn_amount DOUBLE,
          event_time AS CAST(ts AS TIMESTAMP(3)),
          ts STRING
        ) WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
        CREATE MODEL fraud_model INPUT (amount DOUBLE, age INT, tenure INT, segment STRING) OUTPUT (fraud_score DOUBLE)
          WITH ('provider' = 'local', 'task' = 'regression', 'model_path' = '{model}');
        CREATE TABLE scored_events (customer_id BIGINT, txn_amount DOUBLE, fraud_score DOUBLE)
          WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
        INSERT INTO scored_events
        SELECT
          e.customer_id,
          e.txn_amount,
          p.fraud_score
        FROM event_stream e
        JOIN customer_dim FOR SYSTEM_TIME AS OF e.event_time AS c
          ON e.customer_id = c.customer_id
        CROSS APPLY (
          SELECT *
          FROM TABLE(
            ML_PREDICT(
              VALUES (e.txn_amount, c.age, c.tenure, c.segment),
              MODEL fraud_model,
              DESCRIPTOR(amount, age, tenure, segment)
            )
          )
        ) p
        WHERE p.fraud_score > 0.8;",
        url = pg.url(),
        input = input.display(),
        model = model_path("fraud_score_model.onnx").display(),
        out = out.display()
    );
    run(&cluster, &sql, 2);

    let segment = |c: i64| ["new", "loyal", "casual"][(c % 3) as usize];
    let mut expected: Vec<(i64, i64, f64)> = Vec::new();
    for (c, amount) in &events {
        if *c >= 50 {
            continue; // no such customer: the inner lookup join drops the event
        }
        let score = fraud_score(*amount, 20 + (c * 3) % 50, c % 7, segment(*c));
        if score > 0.8 {
            expected.push((*c, *amount as i64, score));
        }
    }
    let mut rows: Vec<(i64, i64, f64)> = read_json_lines(&out)
        .iter()
        .map(|r| {
            (
                r["customer_id"].as_i64().unwrap(),
                r["txn_amount"].as_f64().unwrap() as i64,
                r["fraud_score"].as_f64().unwrap(),
            )
        })
        .collect();
    expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert!(!expected.is_empty() && expected.len() < events.len() / 2, "the data makes the filter matter");
    assert_eq!(rows.len(), expected.len());
    for (got, want) in rows.iter().zip(&expected) {
        assert_eq!((got.0, got.1), (want.0, want.1));
        assert!(close(got.2, want.2), "{got:?} vs {want:?}");
    }
}

/// Pattern 1 of production (the hybrid cascade): a local model scores all 10,000
/// transactions, and the LLM is asked only for those scored above 0.5 — the stub's request
/// log has exactly those prompts.
#[test]
fn the_hybrid_cascade_asks_the_llm_only_for_suspicious_rows() {
    let stub = Stub::start(&["--latency", "1ms"]);
    let cluster = Cluster::start(&[2], &[]);
    let dir = cluster.dir.path();
    let transactions: Vec<(i64, f64, i64, i64, &str)> = (0..10_000i64)
        .map(|i| (i, (i * 7919 % 1000) as f64, 18 + i % 60, i % 10, ["new", "loyal", "casual"][(i % 3) as usize]))
        .collect();
    let input = write_lines(
        &dir.join("transactions"),
        transactions.iter().map(|(id, amount, age, tenure, segment)| {
            json!({"txn_id": id, "amount": amount, "age": age, "tenure": tenure, "segment": segment,
                   "transaction_description": format!("transaction {id} of {amount}")})
        }),
    );
    let out = dir.join("final_scored");
    let sql = format!(
        "CREATE TABLE transactions (txn_id BIGINT, amount DOUBLE, age INT, tenure INT, segment STRING,
            transaction_description STRING)
         WITH ('connector' = 'filesystem', 'path' = '{input}', 'format' = 'json');
        CREATE MODEL local_fraud_model INPUT (amount DOUBLE, age INT, tenure INT, segment STRING) OUTPUT (score DOUBLE)
          WITH ('provider' = 'local', 'task' = 'regression', 'model_path' = '{model}');
        CREATE MODEL llm_analyzer INPUT (description STRING) OUTPUT (analysis STRING)
          WITH ('provider' = 'openai', 'task' = 'chat-completion', 'base_url' = '{url}/v1', 'model_name' = 'stub',
                'api_key' = 'sk-test', 'max_concurrent_requests' = '32');
        CREATE TABLE final_scored (txn_id BIGINT, amount DOUBLE, age INT, tenure INT, segment STRING,
            transaction_description STRING, local_score DOUBLE, llm_analysis STRING)
         WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
        WITH local_scored AS (
          SELECT *, ML_PREDICT(MODEL local_fraud_model, amount, age, tenure, segment) AS local_score
          FROM transactions
        )
        INSERT INTO final_scored
        SELECT
          *,
          CASE
            WHEN local_score > 0.5  -- suspicious, get LLM analysis
            THEN ML_PREDICT(MODEL llm_analyzer, transaction_description)
            ELSE NULL
          END AS llm_analysis
        FROM local_scored;",
        input = input.display(),
        model = model_path("fraud_score_model.onnx").display(),
        url = stub.url,
        out = out.display()
    );
    run(&cluster, &sql, 2);

    let suspicious: BTreeSet<String> = transactions
        .iter()
        .filter(|(_, amount, age, tenure, segment)| fraud_score(*amount, *age, *tenure, segment) > 0.5)
        .map(|(id, amount, ..)| format!("transaction {id} of {amount}"))
        .collect();
    assert!(suspicious.len() > 100 && suspicious.len() < 5000, "{} suspicious rows", suspicious.len());
    let asked: Vec<String> = stub.requests().iter().filter_map(|r| r["prompt"].as_str().map(str::to_string)).collect();
    assert_eq!(asked.len(), suspicious.len(), "one request per suspicious row, none for the others");
    assert_eq!(asked.into_iter().collect::<BTreeSet<_>>(), suspicious);

    let rows = read_json_lines(&out);
    assert_eq!(rows.len(), transactions.len());
    for row in &rows {
        let id = row["txn_id"].as_i64().unwrap();
        let (_, amount, age, tenure, segment) = transactions[id as usize];
        let score = fraud_score(amount, age, tenure, segment);
        assert!(close(row["local_score"].as_f64().unwrap(), score), "{row}");
        assert_eq!(row["llm_analysis"].is_string(), score > 0.5, "{row}");
    }
}

/// The stub's deterministic embedding of `text` (`sluice stub-llm --embedding-dim N`).
fn stub_embedding(text: &str, dimension: u64) -> Vec<f64> {
    (0..dimension)
        .map(|i| {
            let h = xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), i);
            f64::from(((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        })
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Pattern 2, as the lesson writes it: each event is embedded (ML_EMBED against the
/// stub's embeddings endpoint), its five most similar items are found (VECTOR_SEARCH
/// over a file of item embeddings, aggregated with ARRAY_AGG in a CROSS APPLY), and a
/// third model (a generic-python class) recommends from them. The top-5 lists that
/// reach the recommender equal a brute-force cosine ranking computed here.
#[test]
fn the_lessons_async_pipeline_embeds_searches_and_recommends() {
    let stub = Stub::start(&["--latency", "1ms", "--embedding-dim", "16"]);
    let cluster = Cluster::start(&[4], &[]);
    let root = cluster.dir.path();
    let catalog: Vec<(String, Vec<f64>)> =
        (0..150).map(|i| (format!("item-{i}"), stub_embedding(&format!("catalog entry {i}"), 16))).collect();
    let items = write_lines(
        &root.join("items"),
        catalog.iter().map(|(item, embedding)| json!({"item": item, "embedding": embedding})),
    );
    let events: Vec<(String, String)> =
        (0..40).map(|i| (format!("u{i}"), format!("user {i} looked at product {}", i * 7 % 13))).collect();
    let events_dir = write_lines(
        &root.join("events"),
        events.iter().map(|(user, description)| json!({"user_id": user, "description": description})),
    );
    let out = root.join("output");
    let sql = format!(
        "CREATE TABLE events (user_id STRING, description STRING)
            WITH ('connector' = 'filesystem', 'path' = '{events}', 'format' = 'json');
        CREATE TABLE items (item STRING, embedding ARRAY<FLOAT>)
            WITH ('connector' = 'filesystem', 'path' = '{items}', 'format' = 'json');
        CREATE TABLE output (user_id STRING, recommendation STRING)
            WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
        CREATE MODEL embed_model INPUT (description STRING) OUTPUT (embedding ARRAY<FLOAT>) WITH (
            'provider' = 'openai', 'task' = 'embeddings', 'base_url' = '{url}/v1',
            'model_name' = 'text-embedding-3-small', 'api_key' = 'k', 'batch_size' = '8');
        CREATE MODEL recommender INPUT (user_id STRING, similar_items ARRAY<STRING>) OUTPUT (recommendation STRING)
            WITH ('provider' = 'generic-python', 'model-directory-path' = '{models}',
                  'python-predict-class' = 'models.Recommender');
        -- Step 1: embed
        WITH embedded AS (
          SELECT *, ML_EMBED(MODEL embed_model, description) AS embedding
          FROM events
        ),
        -- Step 2: vector search
        enriched AS (
          SELECT e.*, similar_items
          FROM embedded e
          CROSS APPLY (
            SELECT ARRAY_AGG(item) AS similar_items
            FROM VECTOR_SEARCH(TABLE items, 'embedding', e.embedding, TOP_K => 5)
          )
        ),
        -- Step 3: recommend
        recommendations AS (
          SELECT e.user_id, ML_PREDICT(MODEL recommender, e.user_id, e.similar_items) AS recommendation
          FROM enriched e
        )
        INSERT INTO output SELECT * FROM recommendations;",
        events = events_dir.display(),
        items = items.display(),
        out = out.display(),
        url = stub.url,
        models = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python_models/recommender").display(),
    );
    run(&cluster, &sql, 2);
    let got: BTreeMap<String, String> = read_json_lines(&out)
        .into_iter()
        .map(|r| (r["user_id"].as_str().unwrap().to_string(), r["recommendation"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(got.len(), events.len(), "one recommendation per event: {got:?}");
    for (user, description) in &events {
        let query = stub_embedding(description, 16);
        let mut ranked: Vec<(&str, f64)> = catalog.iter().map(|(item, e)| (item.as_str(), cosine(&query, e))).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<&str> = ranked[..5].iter().map(|r| r.0).collect();
        assert_eq!(got[user], format!("{user}:{}", top.join(",")), "{description}");
    }
}
