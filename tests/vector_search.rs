//! VECTOR_SEARCH on a cluster of real processes: Flink's lateral form over a file of
//! items, checked against a NumPy brute-force top-k (computed in float64 by a Python
//! script reading the same files) for each metric, with the exact and the HNSW index.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{read_json_lines, Cluster};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);
const DIMENSION: usize = 16;
const ITEMS: usize = 400;
const QUERIES: usize = 40;
const TOP_K: usize = 5;

/// A deterministic pseudo-random vector.
fn vector(seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..DIMENSION)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn write_lines(path: &Path, rows: impl Iterator<Item = Value>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, rows.map(|r| format!("{r}\n")).collect::<String>()).unwrap();
}

/// For each query id, every item's score by `metric` (NumPy, float64), by item id.
fn numpy_scores(items: &Path, queries: &Path, metric: &str) -> BTreeMap<i64, Vec<f64>> {
    let script = r#"
import json, sys
import numpy as np
items = [json.loads(l) for l in open(sys.argv[1])]
queries = [json.loads(l) for l in open(sys.argv[2])]
x = np.array([i["embedding"] for i in items], dtype=np.float64)
ids = [i["id"] for i in items]
out = {}
for q in queries:
    v = q["v"]
    if v is None or len(v) != x.shape[1]:
        continue
    v = np.array(v, dtype=np.float64)
    if sys.argv[3] == "cosine":
        s = x @ v / (np.linalg.norm(x, axis=1) * np.linalg.norm(v))
    elif sys.argv[3] == "dot":
        s = x @ v
    else:
        s = np.linalg.norm(x - v, axis=1)
    scores = [0.0] * len(ids)
    for i, value in zip(ids, s):
        scores[i] = float(value)
    out[q["qid"]] = scores
print(json.dumps(out))
"#;
    let out = Command::new("python3").args(["-c", script]).arg(items).arg(queries).arg(metric).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let parsed: BTreeMap<String, Vec<f64>> = serde_json::from_slice(&out.stdout).unwrap();
    parsed.into_iter().map(|(k, v)| (k.parse().unwrap(), v)).collect()
}

/// VECTOR_SEARCH's top 5 for each query equals NumPy's for cosine, dot and euclidean
/// (rank by rank: an item at rank r has NumPy's r-th best score, so exact ties may swap),
/// and its score is NumPy's. A NULL query and a query of another dimension match nothing
/// and are counted. The items table is a bounded file, broadcast to both subtasks.
#[test]
fn vector_search_finds_numpys_top_k_for_each_metric_and_index() {
    let cluster = Cluster::start(&[4], &[]);
    let root = cluster.dir.path();
    let items_file = root.join("items").join("items.json");
    write_lines(
        &items_file,
        (0..ITEMS).map(|i| json!({"id": i, "name": format!("item-{i}"), "embedding": vector(i as u64)})),
    );
    let queries_file = root.join("queries").join("queries.json");
    let mut queries: Vec<Value> = (0..QUERIES).map(|q| json!({"qid": q, "v": vector(10_000 + q as u64)})).collect();
    queries.push(json!({"qid": 900, "v": null}));
    queries.push(json!({"qid": 901, "v": [1.0, 2.0]}));
    write_lines(&queries_file, queries.into_iter());
    for (metric, index) in [("cosine", "exact"), ("dot", "exact"), ("euclidean", "exact"), ("cosine", "hnsw")] {
        let out = root.join(format!("out-{metric}-{index}"));
        let sql = format!(
            "CREATE TABLE items (id BIGINT, name STRING, embedding ARRAY<FLOAT>)
                WITH ('connector' = 'filesystem', 'path' = '{items}', 'format' = 'json');
            CREATE TABLE queries (qid BIGINT, v ARRAY<FLOAT>)
                WITH ('connector' = 'filesystem', 'path' = '{queries}', 'format' = 'json');
            CREATE TABLE matches (qid BIGINT, id BIGINT, name STRING, score DOUBLE)
                WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
            INSERT INTO matches SELECT q.qid, s.id, s.name, s.score
            FROM queries AS q, LATERAL TABLE(VECTOR_SEARCH(SEARCH_TABLE => TABLE items, COLUMN_TO_QUERY => q.v,
                COLUMN_TO_SEARCH => DESCRIPTOR(embedding), TOP_K => {TOP_K},
                CONFIG => MAP['metric', '{metric}', 'index', '{index}', 'hnsw.ef-search', '200'])) AS s;",
            items = items_file.parent().unwrap().display(),
            queries = queries_file.parent().unwrap().display(),
            out = out.display(),
        );
        let job = cluster.submit(&sql, 2);
        let status = cluster.wait_for(&job, &["FINISHED", "FAILED"], MINUTE);
        assert_eq!(status["state"], "FINISHED", "{status:#}\n{}", cluster.logs());
        let bad: u64 = status["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["operators"]["vector_search_bad_queries"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(bad, 2, "the NULL query and the query of dimension 2");
        let mut found: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
        for row in read_json_lines(&out) {
            let id = row["id"].as_i64().unwrap();
            assert_eq!(row["name"], format!("item-{id}"));
            found.entry(row["qid"].as_i64().unwrap()).or_default().push((id, row["score"].as_f64().unwrap()));
        }
        let expected = numpy_scores(&items_file, &queries_file, metric);
        assert_eq!(found.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{metric}/{index}");
        let mut hits = 0;
        for (qid, scores) in &expected {
            let mut ranked: Vec<(usize, f64)> = scores.iter().copied().enumerate().collect();
            let closer_first = |a: &(usize, f64), b: &(usize, f64)| {
                if metric == "euclidean" {
                    a.1.total_cmp(&b.1)
                } else {
                    b.1.total_cmp(&a.1)
                }
            };
            ranked.sort_by(closer_first);
            let mut got = found[qid].clone();
            got.sort_by(|a, b| closer_first(&(0, a.1), &(0, b.1)));
            assert_eq!(got.len(), TOP_K, "{metric}/{index} query {qid}");
            for (rank, (id, score)) in got.iter().enumerate() {
                let numpy = scores[*id as usize];
                assert!((score - numpy).abs() < 1e-4, "{metric}/{index} query {qid}: score {score} vs {numpy}");
                if index == "exact" {
                    assert!(
                        (numpy - ranked[rank].1).abs() < 1e-5,
                        "{metric} query {qid} rank {rank}: item {id} scores {numpy}, NumPy's rank {rank} scores {}",
                        ranked[rank].1
                    );
                }
                hits += usize::from(ranked[..TOP_K].iter().any(|(i, _)| *i as i64 == *id));
            }
        }
        let recall = hits as f64 / (expected.len() * TOP_K) as f64;
        if index == "hnsw" {
            assert!(recall >= 0.9, "{metric}/{index}: recall@{TOP_K} {recall}");
        }
    }
}
