//! VECTOR_SEARCH's index: queries per second of the exact search (SGEMM over blocks of
//! queries and items) and of the HNSW graph, at 10,000 and 100,000 items of dimension 384,
//! with HNSW's recall@5 against the exact answers and its build time.
//!
//! The vectors are clustered as sentence embeddings are (1,000 random centres, each item
//! a centre plus noise, normalized), not uniform noise, on which no graph index finds
//! neighbours well. Queries come in batches of 256 (a RecordBatch of queries), on one
//! core. Run with `cargo bench --bench vector_search` (with
//! `CARGO_PROFILE_DEV_OPT_LEVEL=2 cargo bench --profile dev` on a debug-built target).
//! `SLUICE_BENCH_SIZES` overrides the item counts (comma-separated).

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Int64Array, ListArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Float32Type, Schema};
use sluice_core::changelog::RowKind;
use sluice_transforms::vector_search::exact;
use sluice_transforms::vector_search::hnsw::{HnswIndex, HnswParams};
use sluice_transforms::vector_search::items::Items;
use sluice_transforms::vector_search::metric::Metric;

const DIMENSION: usize = 384;
const QUERIES: usize = 1024;
const BATCH: usize = 256;
const TOP_K: usize = 5;

/// A small deterministic generator (xorshift) of values in [-1, 1).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// `n` clustered unit-ish vectors.
fn clustered(n: usize, seed: u64, centres: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let mut noise = Noise(seed);
    (0..n)
        .map(|i| {
            let centre = &centres[(i * 7919 + seed as usize) % centres.len()];
            centre.iter().map(|c| c + 0.35 * noise.next()).collect()
        })
        .collect()
}

fn store(vectors: &[Vec<f32>], metric: Metric) -> Items {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::List(Arc::new(Field::new("item", DataType::Float32, true))), true),
    ]));
    let mut items = Items::new(schema.clone(), 1, metric, None).unwrap();
    for (start, part) in vectors.chunks(8192).enumerate() {
        let list = ListArray::from_iter_primitive::<Float32Type, _, _>(
            part.iter().map(|v| Some(v.iter().map(|&x| Some(x)).collect::<Vec<_>>())),
        );
        let ids = Int64Array::from_iter_values((0..part.len() as i64).map(|i| i + (start * 8192) as i64));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(list)]).unwrap();
        items.apply(&batch, &vec![RowKind::Insert; part.len()]).unwrap();
    }
    items
}

fn recall(exact: &[Vec<(u32, f32)>], approximate: &[Vec<(u32, f32)>]) -> f64 {
    let hits: usize = exact
        .iter()
        .zip(approximate)
        .map(|(e, a)| a.iter().filter(|(s, _)| e.iter().any(|(t, _)| t == s)).count())
        .sum();
    hits as f64 / (exact.len() * TOP_K) as f64
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SLUICE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let mut noise = Noise(42);
    let centres: Vec<Vec<f32>> = (0..1000).map(|_| (0..DIMENSION).map(|_| noise.next()).collect()).collect();
    let metric = Metric::Cosine;
    let mut queries = Vec::with_capacity(QUERIES * DIMENSION);
    for mut q in clustered(QUERIES, 7, &centres) {
        metric.prepare(&mut q);
        queries.extend(q);
    }
    println!("dimension {DIMENSION}, top {TOP_K}, {metric}, batches of {BATCH} queries, one core");
    println!("| items | index | build s | queries/s | recall@{TOP_K} |");
    println!("|---|---|---|---|---|");
    for n in sizes {
        let items = store(&clustered(n, 1, &centres), metric);
        let start = Instant::now();
        let mut truth = Vec::new();
        for part in queries.chunks(BATCH * DIMENSION) {
            truth.extend(exact::search(&items, part, part.len() / DIMENSION, TOP_K));
        }
        let rate = QUERIES as f64 / start.elapsed().as_secs_f64();
        println!("| {n} | exact | - | {rate:.0} | 1.000 |");
        let params = HnswParams { m: 16, ef_construction: 200, ef_search: 100 };
        let start = Instant::now();
        let mut index = HnswIndex::build(&items, params);
        let build = start.elapsed().as_secs_f64();
        for ef_search in [50, 100, 200] {
            index.set_ef_search(ef_search);
            let start = Instant::now();
            let mut found = Vec::new();
            for part in queries.chunks(BATCH * DIMENSION) {
                found.extend(index.search(&items, part, part.len() / DIMENSION, TOP_K));
            }
            let rate = QUERIES as f64 / start.elapsed().as_secs_f64();
            println!(
                "| {n} | hnsw (M 16, ef_construction 200, ef_search {ef_search}) | {build:.1} | {rate:.0} | {:.3} |",
                recall(&truth, &found)
            );
        }
    }
}
