//! Per-model counters of a remote model, shared by its request tasks and reported as the
//! operator's metrics (`model.<name>.*`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sluice_core::metrics::LatencyHistogram;

/// Counters of one ML_PREDICT subtask.
#[derive(Debug, Default)]
pub struct RemoteStats {
    /// Rows emitted with an answer.
    pub rows: AtomicU64,
    /// HTTP requests sent (attempts).
    pub requests: AtomicU64,
    /// Requests waiting for an answer now.
    pub in_flight: AtomicU64,
    /// Attempts after the first.
    pub retries: AtomicU64,
    /// 429 answers.
    pub throttled: AtomicU64,
    /// Attempts that timed out.
    pub timeouts: AtomicU64,
    /// Rows that failed for good.
    pub failed: AtomicU64,
    /// Rows dropped by `on-error` = `skip` or `dead_letter`.
    pub skipped: AtomicU64,
    /// Rows written to the dead-letter topic.
    pub dead_letters: AtomicU64,
    /// Answers served from the cache.
    pub cache_hits: AtomicU64,
    /// Requests of rows restored from a checkpoint without an answer, sent again.
    pub reissued: AtomicU64,
    /// Prompts cut to `max-context-size`.
    pub context_truncated: AtomicU64,
    /// Rows skipped because their prompt was over `max-context-size`.
    pub context_skipped: AtomicU64,
    /// Prompt tokens reported by the provider.
    pub prompt_tokens: AtomicU64,
    /// Completion tokens reported by the provider.
    pub completion_tokens: AtomicU64,
    latencies: Mutex<LatencyHistogram>,
}

impl RemoteStats {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the latency of one successful attempt.
    pub fn record_latency(&self, micros: u64) {
        self.latencies.lock().unwrap_or_else(|p| p.into_inner()).record(micros);
    }

    /// The `p` quantile (0..=1) of the latencies, in microseconds.
    pub fn latency(&self, p: f64) -> u64 {
        self.latencies.lock().unwrap_or_else(|p| p.into_inner()).quantile(p)
    }

    /// The latencies so far.
    pub fn latency_histogram(&self) -> LatencyHistogram {
        self.latencies.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The value of `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
