//! Per-task counters, shared between the running task, the data exchange and heartbeats.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use sluice_core::metrics::Metric;
use sluice_proto::TaskMetrics as TaskMetricsProto;

/// What a task is doing, for the split of its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Waiting for input.
    Idle,
    /// Handling input (or held back by a full operator).
    Busy,
    /// Waiting for room in a full output channel.
    Backpressured,
}

/// Counters of one running task.
#[derive(Debug)]
pub struct TaskMetrics {
    rows_in: AtomicU64,
    rows_out: AtomicU64,
    bytes_out: AtomicU64,
    batches_out: AtomicU64,
    remote_rows_out: AtomicU64,
    records_skipped: AtomicU64,
    bytes_in: AtomicU64,
    operators: Mutex<Vec<Metric>>,
    /// The last watermark sent on (`i64::MIN`: none yet).
    watermark: AtomicI64,
    /// The watermark of the task's input (`i64::MIN`: none yet).
    input_watermark: AtomicI64,
    busy_us: AtomicU64,
    idle_us: AtomicU64,
    backpressured_us: AtomicU64,
    /// What the task does now and since when (`None` before its loop starts and after it
    /// ends). Its time so far counts in reports before the activity ends, so a send that
    /// waits for seconds shows as backpressure while it waits.
    current: Mutex<Option<(Activity, Instant)>>,
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
            bytes_in: AtomicU64::new(0),
            operators: Mutex::new(Vec::new()),
            watermark: AtomicI64::new(i64::MIN),
            input_watermark: AtomicI64::new(i64::MIN),
            busy_us: AtomicU64::new(0),
            idle_us: AtomicU64::new(0),
            backpressured_us: AtomicU64::new(0),
            current: Mutex::new(None),
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

    /// Counts bytes received from another task manager.
    pub fn add_bytes_in(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn counter(&self, activity: Activity) -> &AtomicU64 {
        match activity {
            Activity::Idle => &self.idle_us,
            Activity::Busy => &self.busy_us,
            Activity::Backpressured => &self.backpressured_us,
        }
    }

    /// The task starts `activity` now; the time since the previous one started counts as
    /// `previous_as` (the previous activity itself when `None`). Returns the previous one.
    pub fn switch(&self, activity: Option<Activity>, previous_as: Option<Activity>) -> Option<Activity> {
        let now = Instant::now();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let previous = current.map(|(was, since)| {
            let spent = now.duration_since(since).as_micros() as u64;
            self.counter(previous_as.unwrap_or(was)).fetch_add(spent, Ordering::Relaxed);
            was
        });
        *current = activity.map(|a| (a, now));
        previous
    }

    /// The task starts `activity` now; returns what it did before.
    pub fn enter(&self, activity: Activity) -> Option<Activity> {
        self.switch(Some(activity), None)
    }

    /// The task's loop ended: its time no longer counts.
    pub fn stop(&self) {
        self.switch(None, None);
    }

    /// Records the watermark the task's input reached.
    pub fn set_input_watermark(&self, watermark: i64) {
        self.input_watermark.fetch_max(watermark, Ordering::Relaxed);
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
    pub fn set_operator_metrics(&self, metrics: Vec<Metric>) {
        *self.operators.lock().unwrap_or_else(|p| p.into_inner()) = metrics;
    }

    /// A snapshot for reporting.
    pub fn snapshot(&self) -> TaskMetricsProto {
        // The activity in progress counts up to now.
        let (mut busy, mut idle, mut backpressured) = (0, 0, 0);
        if let Some((activity, since)) = *self.current.lock().unwrap_or_else(|p| p.into_inner()) {
            let spent = since.elapsed().as_micros() as u64;
            match activity {
                Activity::Idle => idle = spent,
                Activity::Busy => busy = spent,
                Activity::Backpressured => backpressured = spent,
            }
        }
        TaskMetricsProto {
            rows_in: self.rows_in.load(Ordering::Relaxed),
            rows_out: self.rows_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            batches_out: self.batches_out.load(Ordering::Relaxed),
            remote_rows_out: self.remote_rows_out.load(Ordering::Relaxed),
            records_skipped: self.records_skipped.load(Ordering::Relaxed),
            operators: self.operators.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            watermark: Some(self.watermark.load(Ordering::Relaxed)).filter(|&w| w > i64::MIN),
            busy_us: self.busy_us.load(Ordering::Relaxed) + busy,
            idle_us: self.idle_us.load(Ordering::Relaxed) + idle,
            backpressured_us: self.backpressured_us.load(Ordering::Relaxed) + backpressured,
            input_watermark: Some(self.input_watermark.load(Ordering::Relaxed)).filter(|&w| w > i64::MIN),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn time_splits_by_activity_and_counts_while_in_progress() {
        let m = TaskMetrics::default();
        m.enter(Activity::Idle);
        std::thread::sleep(Duration::from_millis(30));
        m.enter(Activity::Busy);
        std::thread::sleep(Duration::from_millis(20));
        let previous = m.enter(Activity::Backpressured);
        assert_eq!(previous, Some(Activity::Busy));
        std::thread::sleep(Duration::from_millis(40));
        // Still waiting: the wait so far is reported.
        let s = m.snapshot();
        assert!(s.idle_us >= 30_000 && s.busy_us >= 20_000 && s.backpressured_us >= 40_000, "{s:?}");
        // An idle poll that produced a source's rows counts as busy.
        m.enter(Activity::Idle);
        std::thread::sleep(Duration::from_millis(10));
        m.switch(Some(Activity::Busy), Some(Activity::Busy));
        m.stop();
        let before = m.snapshot();
        std::thread::sleep(Duration::from_millis(20));
        let after = m.snapshot();
        assert!(after.busy_us >= 30_000 && after.idle_us < 40_000 + 5_000, "{after:?}");
        assert_eq!(
            (before.busy_us, before.idle_us, before.backpressured_us),
            (after.busy_us, after.idle_us, after.backpressured_us),
            "a stopped task's time no longer counts"
        );
    }
}
