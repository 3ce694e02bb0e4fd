//! Windowing table functions, as Flink's `TUMBLE`, `HOP` and `CUMULATE`: each row goes out
//! once per window that holds its time, with `window_start`, `window_end` and
//! `window_time` (= `window_end` − 1 ms) added. Windows are `[start, end)` in milliseconds
//! since the epoch, aligned to the epoch shifted by the offset, as Flink aligns them
//! (`TimeWindow.getWindowStartWithOffset`). The function is stateless: it neither waits
//! for the watermark nor drops late rows; a window aggregate over it does both. A row
//! whose time is NULL is in no window: it is dropped and counted
//! ([`ROWS_WITHOUT_TIME`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, TimestampMillisecondArray, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use sluice_core::metrics::{self, Metric};
use sluice_core::schema::decode_schema;
use sluice_core::{Collector, Operator, OperatorError, Result};
use sluice_proto::window_tvf_spec::WindowKind;
use sluice_proto::WindowTvfSpec;

/// The windows of one windowing function, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowShape {
    /// Windows of `size` one after another.
    Tumble {
        /// Window length.
        size: i64,
        /// Shift of the window boundaries from the epoch.
        offset: i64,
    },
    /// Windows of `size` starting every `slide` (a row is in about size / slide of them).
    Hop {
        /// Window length.
        size: i64,
        /// Time between window starts.
        slide: i64,
        /// Shift of the window boundaries from the epoch.
        offset: i64,
    },
    /// Windows that start every `size` and end every `step` until `size`: `[s, s + step)`,
    /// `[s, s + 2 step)`, ... `[s, s + size)`.
    Cumulate {
        /// Length of the largest window.
        size: i64,
        /// Growth from one window to the next.
        step: i64,
        /// Shift of the window boundaries from the epoch.
        offset: i64,
    },
    /// Sessions: a row opens `[time, time + gap)`, and a window aggregate merges the windows
    /// of a key that touch into one.
    Session {
        /// The gap that ends a session.
        gap: i64,
    },
}

/// The start of the window of length `size` holding `timestamp`, with boundaries at
/// `offset` plus multiples of `size`.
pub fn window_start(timestamp: i64, offset: i64, size: i64) -> i64 {
    timestamp - (timestamp - offset).rem_euclid(size)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

impl WindowShape {
    /// The shape a [`WindowTvfSpec`] describes, checked.
    pub fn from_spec(spec: &WindowTvfSpec) -> Result<Self> {
        let (size, step, offset) = (spec.size_ms, spec.step_ms, spec.offset_ms);
        let shape = match WindowKind::try_from(spec.kind) {
            Ok(WindowKind::Tumble) => WindowShape::Tumble { size, offset },
            Ok(WindowKind::Hop) => WindowShape::Hop { size, slide: step, offset },
            Ok(WindowKind::Cumulate) => WindowShape::Cumulate { size, step, offset },
            Ok(WindowKind::Session) => WindowShape::Session { gap: size },
            Err(_) => return Err(OperatorError::InvalidPlan(format!("unknown window kind {}", spec.kind))),
        };
        let positive = match shape {
            WindowShape::Tumble { size, .. } | WindowShape::Session { gap: size } => size > 0,
            WindowShape::Hop { size, slide: step, .. } | WindowShape::Cumulate { size, step, .. } => {
                size > 0 && step > 0
            }
        };
        if !positive {
            return Err(OperatorError::InvalidPlan(format!("window sizes must be positive: {shape:?}")));
        }
        Ok(shape)
    }

    /// The slice holding `timestamp`: the longest span, starting at a window boundary, that
    /// every window holding `timestamp` holds whole (the window for TUMBLE; for HOP and
    /// CUMULATE, the greatest common divisor of the size and the slide or step). The windows
    /// of a slice are those holding its start.
    pub fn slice(&self, timestamp: i64) -> (i64, i64) {
        if let WindowShape::Session { gap } = *self {
            return (timestamp, timestamp + gap);
        }
        let (length, offset) = match *self {
            WindowShape::Session { .. } => unreachable!("returned above"),
            WindowShape::Tumble { size, offset } => (size, offset),
            WindowShape::Hop { size, slide: step, offset } | WindowShape::Cumulate { size, step, offset } => {
                (gcd(size, step), offset)
            }
        };
        let start = window_start(timestamp, offset, length);
        (start, start + length)
    }

    /// Calls `window(start, end)` for each window holding `timestamp`, in ascending order
    /// (for sessions, the row's own window before any merge).
    pub fn for_each_window(&self, timestamp: i64, mut window: impl FnMut(i64, i64)) {
        match *self {
            WindowShape::Session { gap } => window(timestamp, timestamp + gap),
            WindowShape::Tumble { size, offset } => {
                let start = window_start(timestamp, offset, size);
                window(start, start + size);
            }
            WindowShape::Hop { size, slide, offset } => {
                // The latest window holding the row starts at its slide boundary; the first
                // is the earliest slide boundary after `timestamp - size`.
                let latest = window_start(timestamp, offset, slide);
                let mut start = latest - (latest - (timestamp - size) - 1).div_euclid(slide) * slide;
                while start <= latest {
                    window(start, start + size);
                    start += slide;
                }
            }
            WindowShape::Cumulate { size, step, offset } => {
                let start = window_start(timestamp, offset, size);
                let mut end = window_start(timestamp, offset, step) + step;
                while end <= start + size {
                    window(start, end);
                    end += step;
                }
            }
        }
    }
}

/// The metric counting rows dropped for a NULL time.
pub const ROWS_WITHOUT_TIME: &str = "window.rows_without_time_dropped";

/// Adds each row's windows to it, one output row per window (or, feeding a window
/// aggregate, its slice: one output row per input row).
pub struct WindowTvf {
    shape: WindowShape,
    slices: bool,
    time_column: usize,
    output_schema: SchemaRef,
    /// Rows dropped because their time was NULL.
    rows_without_time: u64,
}

impl WindowTvf {
    /// The function a [`WindowTvfSpec`] describes.
    pub fn from_spec(spec: &WindowTvfSpec) -> Result<Self> {
        let output_schema = decode_schema(&spec.output_schema)?;
        let (shape, time_column) = (WindowShape::from_spec(spec)?, spec.time_column as usize);
        Ok(WindowTvf { shape, slices: spec.slices, time_column, output_schema, rows_without_time: 0 })
    }
}

fn timestamps(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(values))
}

#[async_trait]
impl Operator for WindowTvf {
    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        let time = batch.column(self.time_column);
        let time = cast(time, &DataType::Timestamp(TimeUnit::Millisecond, None))
            .map_err(|e| OperatorError::arrow("window time column", e))?;
        let time = time
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .ok_or_else(|| OperatorError::InvalidPlan(format!("window time column is {}", time.data_type())))?;
        let (mut rows, mut starts, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        for row in 0..batch.num_rows() {
            // A row without a time is in no window.
            if time.is_null(row) {
                self.rows_without_time += 1;
                continue;
            }
            let mut add = |start, end| {
                rows.push(row as u32);
                starts.push(start);
                ends.push(end);
            };
            if self.slices {
                let (start, end) = self.shape.slice(time.value(row));
                add(start, end);
            } else {
                self.shape.for_each_window(time.value(row), add);
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let indices = UInt32Array::from(rows);
        let mut columns = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| OperatorError::arrow("window rows", e))?;
        let times: Vec<i64> = ends.iter().map(|end| end - 1).collect();
        columns.extend([timestamps(starts), timestamps(ends), timestamps(times)]);
        let windowed = RecordBatch::try_new(self.output_schema.clone(), columns)
            .map_err(|e| OperatorError::arrow("windowed rows", e))?;
        out.batch(windowed);
        Ok(())
    }

    fn metrics(&self) -> Vec<Metric> {
        vec![metrics::counter(ROWS_WITHOUT_TIME, self.rows_without_time)]
    }
}

#[cfg(test)]
mod tests;
