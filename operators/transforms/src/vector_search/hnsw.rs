//! The approximate index: a Hierarchical Navigable Small World graph (the `hnsw_rs`
//! crate) over the stored vectors, searched with the metric's distance. Rows added later
//! are inserted one by one; deleted rows stay in the graph and are filtered out of
//! results until the store is compacted and the graph rebuilt.

use hnsw_rs::anndists::dist::distances::Distance;
use hnsw_rs::filter::FilterT;
use hnsw_rs::hnsw::Hnsw;

use super::items::Items;
use super::metric::Metric;

/// The graph's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node (HNSW's M).
    pub m: usize,
    /// Candidates kept while inserting.
    pub ef_construction: usize,
    /// Candidates kept while searching (at least k).
    pub ef_search: usize,
}

/// The distance the graph minimizes: the metric's, on prepared vectors.
struct MetricDistance(Metric);

impl Distance<f32> for MetricDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        // The graph needs distances of at least 0: rounding can put the cosine of unit
        // vectors a hair above 1.
        self.0.distance(a, b).max(0.0)
    }
}

/// Keeps only live slots.
struct Live<'a>(&'a Items);

impl FilterT for Live<'_> {
    fn hnsw_filter(&self, id: &usize) -> bool {
        self.0.is_alive(*id as u32)
    }
}

/// An HNSW graph over the slots of an [`Items`] store.
pub struct HnswIndex {
    graph: Hnsw<'static, f32, MetricDistance>,
    params: HnswParams,
    /// Slots inserted so far (slots below this are in the graph).
    indexed: usize,
}

/// Layers of the graph at most (hnsw_rs's limit).
const MAX_LAYERS: usize = 16;

/// What a graph is built from: a copy of the store's vectors, so that the build can run
/// on its own thread while the store goes on changing.
pub struct BuildInput {
    metric: Metric,
    dimension: usize,
    vectors: Vec<f32>,
    alive: Vec<bool>,
    params: HnswParams,
}

impl BuildInput {
    /// A copy of every slot of `items`.
    pub fn of(items: &Items, params: HnswParams) -> Self {
        let slots = items.slots();
        BuildInput {
            metric: items.metric(),
            dimension: items.dimension().unwrap_or(0),
            vectors: items.matrix().to_vec(),
            alive: (0..slots).map(|s| items.is_alive(s as u32)).collect(),
            params,
        }
    }
}

impl HnswIndex {
    /// A graph over every live slot of `items`, built on the available cores.
    pub fn build(items: &Items, params: HnswParams) -> Self {
        Self::build_from(BuildInput::of(items, params))
    }

    /// A graph over the live slots of `input`.
    pub fn build_from(input: BuildInput) -> Self {
        let slots = input.alive.len();
        let params = input.params;
        let graph = Hnsw::new(
            params.m,
            (slots * 2).max(1024),
            MAX_LAYERS,
            params.ef_construction,
            MetricDistance(input.metric),
        );
        let mut index = HnswIndex { graph, params, indexed: 0 };
        let d = input.dimension;
        let batch: Vec<(&[f32], usize)> =
            (0..slots).filter(|&s| input.alive[s]).map(|s| (&input.vectors[s * d..(s + 1) * d], s)).collect();
        index.graph.parallel_insert_slice(&batch);
        index.indexed = slots;
        index.graph.set_searching_mode(true);
        index
    }

    /// Searches with `ef_search` candidates from now on.
    pub fn set_ef_search(&mut self, ef_search: usize) {
        self.params.ef_search = ef_search.max(1);
    }

    /// Slots `items` added that the graph has not taken yet.
    pub fn backlog(&self, items: &Items) -> usize {
        items.slots().saturating_sub(self.indexed)
    }

    /// Inserts the slots `items` added since the last call.
    pub fn catch_up(&mut self, items: &Items) {
        for slot in self.indexed..items.slots() {
            if items.is_alive(slot as u32) {
                self.graph.insert_slice((items.vector(slot as u32), slot));
            }
        }
        self.indexed = items.slots();
    }

    /// The (about) `k` best live items for each of the `m` prepared `queries`, best first,
    /// as (slot, ranking key).
    pub fn search(&self, items: &Items, queries: &[f32], m: usize, k: usize) -> Vec<Vec<(u32, f32)>> {
        let Some(d) = items.dimension() else { return vec![Vec::new(); m] };
        let metric = items.metric();
        let live = Live(items);
        let filter: Option<&dyn FilterT> = if items.live() < items.slots() { Some(&live) } else { None };
        let ef = self.params.ef_search.max(k);
        (0..m)
            .map(|q| {
                let query = &queries[q * d..(q + 1) * d];
                let query_norm = super::metric::squared_norm(query);
                let mut found: Vec<(u32, f32)> = self
                    .graph
                    .search_filter(query, k, ef, filter)
                    .into_iter()
                    .map(|n| {
                        let key = match metric {
                            Metric::Euclidean => query_norm - n.distance,
                            Metric::Cosine | Metric::Dot => 1.0 - n.distance,
                        };
                        (n.d_id as u32, key)
                    })
                    .collect();
                found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                found.truncate(k);
                found
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use sluice_core::changelog::RowKind;

    use super::super::exact::tests::{rows, vector};
    use super::*;

    #[test]
    fn the_graph_finds_most_exact_neighbours_and_skips_deleted_rows() {
        let (n, d, k) = (3000, 16, 5);
        let batch = rows(n, d);
        let mut items = Items::new(batch.schema(), 1, Metric::Cosine, Some(vec![0])).unwrap();
        items.apply(&batch, &vec![RowKind::Insert; n]).unwrap();
        let params = HnswParams { m: 16, ef_construction: 100, ef_search: 64 };
        let index = HnswIndex::build(&items, params);
        let mut queries = Vec::new();
        for q in 0..50 {
            let mut v = vector(10_000 + q, d);
            Metric::Cosine.prepare(&mut v);
            queries.extend(v);
        }
        let exact = super::super::exact::search(&items, &queries, 50, k);
        let approximate = index.search(&items, &queries, 50, k);
        let hits: usize = exact
            .iter()
            .zip(&approximate)
            .map(|(e, a)| a.iter().filter(|(slot, _)| e.iter().any(|(s, _)| s == slot)).count())
            .sum();
        assert!(hits as f64 / (50 * k) as f64 >= 0.9, "recall {}", hits as f64 / (50 * k) as f64);
        // Delete every exact best match: none may come back.
        let best: Vec<i64> = exact.iter().map(|e| i64::from(e[0].0)).collect();
        let deletes = RecordBatch::try_new(
            batch.schema(),
            vec![
                Arc::new(Int64Array::from(best.clone())),
                Arc::new(
                    arrow::compute::take(
                        batch.column(1),
                        &arrow::array::UInt64Array::from_iter_values(best.iter().map(|&b| b as u64)),
                        None,
                    )
                    .unwrap(),
                ),
            ],
        )
        .unwrap();
        items.apply(&deletes, &vec![RowKind::Delete; best.len()]).unwrap();
        let after = index.search(&items, &queries, 50, k);
        assert!(after.iter().flatten().all(|(slot, _)| !best.contains(&i64::from(*slot))));
    }
}
