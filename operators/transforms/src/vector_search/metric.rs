//! The similarity metrics VECTOR_SEARCH ranks by, and the vector kernels behind them.
//!
//! Every metric is searched as "largest key first" over a dot product, so one matrix
//! product serves all three: cosine compares unit vectors (both sides normalized when
//! stored), dot compares the vectors as they are, and euclidean ranks by
//! `2·q·x − |x|²`, which orders items as their distance `|q − x|` does (`|q|²` is the
//! same for every item). The loops work on eight lanes at a time, which the compiler turns
//! into SIMD instructions.

use std::fmt;

/// How close two vectors are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Cosine similarity, from −1 to 1 (higher is closer).
    Cosine,
    /// The dot product (higher is closer).
    Dot,
    /// The euclidean distance (lower is closer).
    Euclidean,
}

impl Metric {
    /// The metric named `name` (`cosine`, `dot`/`inner_product`, `euclidean`/`l2`).
    pub fn parse(name: &str) -> Option<Metric> {
        match name.to_ascii_lowercase().as_str() {
            "cosine" => Some(Metric::Cosine),
            "dot" | "inner_product" | "ip" => Some(Metric::Dot),
            "euclidean" | "l2" => Some(Metric::Euclidean),
            _ => None,
        }
    }

    /// Puts a vector in the form it is compared in: a unit vector for cosine (a zero
    /// vector stays zero), unchanged otherwise.
    pub fn prepare(self, vector: &mut [f32]) {
        if self == Metric::Cosine {
            let norm = squared_norm(vector).sqrt();
            if norm > 0.0 {
                vector.iter_mut().for_each(|v| *v /= norm);
            }
        }
    }

    /// The ranking key of an item from the dot product of the prepared vectors and the
    /// item's squared norm: larger is closer.
    #[inline]
    pub fn key(self, dot: f32, item_squared_norm: f32) -> f32 {
        match self {
            Metric::Cosine | Metric::Dot => dot,
            Metric::Euclidean => 2.0 * dot - item_squared_norm,
        }
    }

    /// The score users see from a ranking key and the query's squared norm: the cosine
    /// similarity, the dot product, or the euclidean distance.
    #[inline]
    pub fn score(self, key: f32, query_squared_norm: f32) -> f64 {
        match self {
            Metric::Cosine | Metric::Dot => f64::from(key),
            Metric::Euclidean => f64::from((query_squared_norm - key).max(0.0)).sqrt(),
        }
    }

    /// True when [`distance`](Self::distance) is a distance (never negative), as an
    /// approximate index needs: not for dot products of vectors of any length.
    pub fn has_distance(self) -> bool {
        self != Metric::Dot
    }

    /// The distance an approximate index minimizes between two prepared vectors, with
    /// the same order as the ranking key (smaller is closer).
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::Cosine | Metric::Dot => 1.0 - dot(a, b),
            Metric::Euclidean => squared_distance(a, b),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::Euclidean => "euclidean",
        })
    }
}

const LANES: usize = 8;

/// The dot product of two vectors of equal length.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..LANES {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// The squared euclidean norm of a vector.
#[inline]
pub fn squared_norm(a: &[f32]) -> f32 {
    dot(a, a)
}

/// The squared euclidean distance between two vectors of equal length.
#[inline]
pub fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| (x - y) * (x - y)).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            sums[i] += d * d;
        }
    }
    sums.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_plain_loops_for_every_length() {
        for len in [0, 1, 7, 8, 9, 31, 384] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain_dot: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let plain_sq: f64 = a.iter().zip(&b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
            assert!((f64::from(dot(&a, &b)) - plain_dot).abs() < 1e-4, "dot at {len}");
            assert!((f64::from(squared_distance(&a, &b)) - plain_sq).abs() < 1e-4, "distance at {len}");
        }
    }

    #[test]
    fn euclidean_keys_order_items_by_distance_and_score_it() {
        let q = [1.0f32, 2.0];
        let items = [[1.0f32, 2.5], [3.0, 2.0], [0.0, 0.0]];
        let qn = squared_norm(&q);
        let mut ranked: Vec<(f32, f64)> = items
            .iter()
            .map(|x| {
                let key = Metric::Euclidean.key(dot(&q, x), squared_norm(x));
                (key, Metric::Euclidean.score(key, qn))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let distances: Vec<f64> = ranked.iter().map(|r| (r.1 * 1e6).round() / 1e6).collect();
        assert_eq!(distances, vec![0.5, 2.0, 5f64.sqrt().mul_add(1e6, 0.0).round() / 1e6]);
    }

    #[test]
    fn cosine_prepares_unit_vectors_and_leaves_zero_alone() {
        let mut v = [3.0f32, 4.0];
        Metric::Cosine.prepare(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut zero = [0.0f32; 3];
        Metric::Cosine.prepare(&mut zero);
        assert_eq!(zero, [0.0; 3]);
        assert_eq!(Metric::parse("L2"), Some(Metric::Euclidean));
        assert_eq!(Metric::parse("manhattan"), None);
    }
}
