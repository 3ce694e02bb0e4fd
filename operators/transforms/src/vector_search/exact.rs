//! Exact search: every query against every stored vector, as one matrix product per
//! block of queries and items (`matrixmultiply`'s SGEMM, which uses AVX/FMA where the CPU
//! has them), each query keeping its best `k` items as the blocks go by.

use super::items::Items;

/// Queries per block: their scores against a block of items stay in cache.
const QUERY_BLOCK: usize = 64;
/// Items per block.
const ITEM_BLOCK: usize = 2048;

/// The best `k` (slot, key) pairs seen so far, best first.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    best: Vec<(u32, f32)>,
}

impl TopK {
    /// An empty list keeping `k` entries.
    pub fn new(k: usize) -> Self {
        TopK { k, best: Vec::with_capacity(k.min(1024) + 1) }
    }

    /// The key an entry must beat to get in (`-inf` while the list is not full).
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.best.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.best[self.best.len() - 1].1
        }
    }

    /// Offers an entry; ties keep the earlier slot first.
    #[inline]
    pub fn offer(&mut self, slot: u32, key: f32) {
        if self.k == 0 || key <= self.threshold() && self.best.len() == self.k {
            return;
        }
        let at = self.best.partition_point(|&(_, k)| k >= key);
        self.best.insert(at, (slot, key));
        self.best.truncate(self.k);
    }

    /// The entries, best first.
    pub fn into_sorted(self) -> Vec<(u32, f32)> {
        self.best
    }
}

/// The `k` live items with the largest keys for each of the `m` `queries` (prepared
/// vectors of the items' dimension, one after the other), best first.
pub fn search(items: &Items, queries: &[f32], m: usize, k: usize) -> Vec<Vec<(u32, f32)>> {
    let Some(d) = items.dimension() else {
        return vec![Vec::new(); m];
    };
    let n = items.slots();
    let metric = items.metric();
    let (matrix, norms) = (items.matrix(), items.squared_norms());
    let mut results = Vec::with_capacity(m);
    let mut scores = vec![0.0f32; QUERY_BLOCK * ITEM_BLOCK];
    for q0 in (0..m).step_by(QUERY_BLOCK) {
        let qm = QUERY_BLOCK.min(m - q0);
        let mut tops = vec![TopK::new(k); qm];
        for i0 in (0..n).step_by(ITEM_BLOCK) {
            let nb = ITEM_BLOCK.min(n - i0);
            // scores[qm × nb] = queries[qm × d] · items[nb × d]ᵀ
            // SAFETY: the pointers and strides describe slices of the stated sizes:
            // queries[q0..q0+qm] rows of d, items[i0..i0+nb] rows of d read transposed,
            // and scores as qm rows of nb.
            unsafe {
                matrixmultiply::sgemm(
                    qm,
                    d,
                    nb,
                    1.0,
                    queries[q0 * d..].as_ptr(),
                    d as isize,
                    1,
                    matrix[i0 * d..].as_ptr(),
                    1,
                    d as isize,
                    0.0,
                    scores.as_mut_ptr(),
                    nb as isize,
                    1,
                );
            }
            for (q, top) in tops.iter_mut().enumerate() {
                let row = &scores[q * nb..(q + 1) * nb];
                let mut threshold = top.threshold();
                for (j, &dot) in row.iter().enumerate() {
                    let slot = (i0 + j) as u32;
                    let key = metric.key(dot, norms[i0 + j]);
                    if key > threshold && items.is_alive(slot) {
                        top.offer(slot, key);
                        threshold = top.threshold();
                    }
                }
            }
        }
        results.extend(tops.into_iter().map(TopK::into_sorted));
    }
    results
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, ListArray, RecordBatch};
    use arrow::datatypes::{DataType, Field, Float32Type, Schema};
    use sluice_core::changelog::RowKind;

    use super::super::metric::Metric;
    use super::*;

    /// A deterministic pseudo-random vector.
    pub(in super::super) fn vector(seed: u64, d: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..d)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Rows `id` = 0..n with `v` = [`vector`]`(id, d)`.
    pub(in super::super) fn rows(n: usize, d: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::List(Arc::new(Field::new("item", DataType::Float32, true))), true),
        ]));
        let vectors = (0..n).map(|i| Some(vector(i as u64, d).into_iter().map(Some).collect::<Vec<_>>()));
        let list = ListArray::from_iter_primitive::<Float32Type, _, _>(vectors);
        let ids = Int64Array::from_iter_values(0..n as i64);
        RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(list)]).unwrap()
    }

    fn store(n: usize, d: usize, metric: Metric) -> Items {
        let batch = rows(n, d);
        let mut items = Items::new(batch.schema(), 1, metric, None).unwrap();
        items.apply(&batch, &vec![RowKind::Insert; n]).unwrap();
        items
    }

    /// The top k by a plain f64 loop over the raw vectors.
    fn brute_force(n: usize, d: usize, metric: Metric, query: &[f32], k: usize) -> Vec<(u32, f64)> {
        let q: Vec<f64> = query.iter().map(|&v| f64::from(v)).collect();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let mut scored: Vec<(u32, f64)> = (0..n)
            .map(|i| {
                let x: Vec<f64> = vector(i as u64, d).iter().map(|&v| f64::from(v)).collect();
                let dot: f64 = q.iter().zip(&x).map(|(a, b)| a * b).sum();
                let score = match metric {
                    Metric::Cosine => dot / (norm(&q) * norm(&x)),
                    Metric::Dot => dot,
                    Metric::Euclidean => -q.iter().zip(&x).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt(),
                };
                (i as u32, score)
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        scored
    }

    #[test]
    fn the_exact_search_finds_the_brute_force_top_k_for_every_metric() {
        let (n, d, k) = (5000, 24, 7);
        for metric in [Metric::Cosine, Metric::Dot, Metric::Euclidean] {
            let items = store(n, d, metric);
            let raw: Vec<Vec<f32>> = (0..100).map(|i| vector(1_000_000 + i, d)).collect();
            let mut queries = Vec::new();
            for q in &raw {
                let mut p = q.clone();
                metric.prepare(&mut p);
                queries.extend(p);
            }
            let found = search(&items, &queries, raw.len(), k);
            for (q, got) in raw.iter().zip(found) {
                let want = brute_force(n, d, metric, q, k);
                let got_slots: Vec<u32> = got.iter().map(|g| g.0).collect();
                let want_slots: Vec<u32> = want.iter().map(|w| w.0).collect();
                assert_eq!(got_slots, want_slots, "{metric}");
                let qn = super::super::metric::squared_norm(q);
                for ((_, key), (_, score)) in got.iter().zip(&want) {
                    let shown = metric.score(*key, qn);
                    let want = if metric == Metric::Euclidean { -score } else { *score };
                    assert!((shown - want).abs() < 1e-3, "{metric}: {shown} vs {want}");
                }
            }
        }
    }

    #[test]
    fn top_k_keeps_the_best_in_order() {
        let mut top = TopK::new(3);
        for (slot, key) in [(0, 0.1), (1, 0.9), (2, 0.5), (3, 0.7), (4, 0.05), (5, 0.7)] {
            top.offer(slot, key);
        }
        assert_eq!(top.into_sorted(), vec![(1, 0.9), (3, 0.7), (5, 0.7)]);
    }
}
