//! Per-task counters, shared between the running task, the data exchange and heartbeats.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use sluice_proto::TaskMetrics as TaskMetricsProto;

/// Counters of one running task.
#[derive(Debug)]
pub struct TaskMetrics {
    rows_in: AtomicU64,
    rows_out: AtomicU64,
    bytes_out: AtomicU64,
    batches_out: AtomicU64,
    remote_rows_out: AtomicU64,
    records_skipped: AtomicU64,
    operators: Mutex<BTreeMap<String, u64>>,
    /// The last watermark sent on (`i64::MIN`: none yet).
    watermark: AtomicI64,
}

impl Default for TaskMetrics {
    fn default() -> Self {
        TaskMetrics {
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            batches_out: AtomicU64::new(0),
            remote_rows_out: AtomicU64::new(0),
            records_skipped: AtomicU64::new(0),
            operators: Mutex::new(BTreeMap::new()),
            watermark: AtomicI64::new(i64::MIN),
        }
    }
}

impl TaskMetrics {
    /// Counts rows entering the task's chain (rows a source produced count here too).
    pub fn add_rows_in(&self, rows: usize) {
        self.rows_in.fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// Counts rows and batches leaving the task.
    pub fn add_out(&self, rows: usize) {
        self.rows_out.fetch_add(rows as u64, Ordering::Relaxed);
        self.batches_out.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a frame sent over the network: its bytes and the rows it carries.
    pub fn add_remote(&self, bytes: usize, rows: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
        self.remote_rows_out.fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// Sets the number of bad records the task's source skipped.
    pub fn set_skipped(&self, records: u64) {
        self.records_skipped.store(records, Ordering::Relaxed);
    }

    /// Records a watermark the task sent on.
    pub fn set_watermark(&self, watermark: i64) {
        self.watermark.fetch_max(watermark, Ordering::Relaxed);
    }

    /// Replaces the operators' own metrics.
    pub fn set_operator_metrics(&self, metrics: BTreeMap<String, u64>) {
        *self.operators.lock().unwrap_or_else(|p| p.into_inner()) = metrics;
    }

    /// A snapshot for reporting.
    pub fn snapshot(&self) -> TaskMetricsProto {
        TaskMetricsProto {
            rows_in: self.rows_in.load(Ordering::Relaxed),
            rows_out: self.rows_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            batches_out: self.batches_out.load(Ordering::Relaxed),
            remote_rows_out: self.remote_rows_out.load(Ordering::Relaxed),
            records_skipped: self.records_skipped.load(Ordering::Relaxed),
            operators: self.operators.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            watermark: Some(self.watermark.load(Ordering::Relaxed)).filter(|&w| w > i64::MIN),
        }
    }
}
