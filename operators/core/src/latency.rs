//! Recent latencies (of a model, of lookups) and their percentiles, for metrics.

use std::collections::VecDeque;

/// Latencies kept for the percentiles.
const WINDOW: usize = 4096;

/// The last [`WINDOW`] latencies, in microseconds.
#[derive(Debug, Default)]
pub struct LatencyWindow {
    micros: VecDeque<u64>,
}

impl LatencyWindow {
    /// Records one latency.
    pub fn record(&mut self, micros: u64) {
        if self.micros.len() >= WINDOW {
            self.micros.pop_front();
        }
        self.micros.push_back(micros);
    }

    /// The `p` quantile (0..=1) of the window; 0 when it is empty.
    pub fn percentile(&self, p: f64) -> u64 {
        let mut sorted: Vec<u64> = self.micros.iter().copied().collect();
        sorted.sort_unstable();
        sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_the_recent_window() {
        let mut w = LatencyWindow::default();
        assert_eq!(w.percentile(0.5), 0);
        for v in 1..=100 {
            w.record(v);
        }
        assert_eq!((w.percentile(0.5), w.percentile(0.99), w.percentile(1.0)), (51, 99, 100));
        for _ in 0..WINDOW {
            w.record(7);
        }
        assert_eq!(w.percentile(1.0), 7, "old values leave the window");
    }
}
