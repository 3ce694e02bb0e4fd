//! Window aggregates over the bids of Flink's window documentation (window-agg.md), with
//! the expected windows and sums worked out by hand from its tables.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use sluice_core::harness::{Build, Harness};
use sluice_proto::AggregateFunction;

use super::*;
use crate::aggregate::Call;

const MINUTE: i64 = 60_000;
/// 2020-04-15 00:00 UTC, the day of the documentation's bids.
const DAY: i64 = 1_586_908_800_000;

fn at(hh: i64, mm: i64) -> i64 {
    DAY + (hh * 60 + mm) * MINUTE
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// Input: item, window_start, window_end, price (the windowing function's output, after
/// the pre-projection of keys and arguments).
fn input() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("item", DataType::Utf8, false),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("price", DataType::Float64, true),
    ]))
}

/// Output: window_start, window_end, item, SUM(price), COUNT(*) (window columns first, as
/// `GROUP BY window_start, window_end, item` writes them).
fn output() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("item", DataType::Utf8, false),
        Field::new("total", DataType::Float64, true),
        Field::new("bids", DataType::Int64, false),
    ]))
}

fn build(slices: Option<WindowShape>) -> Build {
    Arc::new(move || {
        let calls = vec![Call::new(AggregateFunction::Sum, Some(3)), Call::new(AggregateFunction::CountStar, None)];
        let aggregates = Aggregates::new(&input(), calls, vec![DataType::Float64, DataType::Int64])?;
        let keys = WindowKeys { start: 0, end: 1, time: None };
        let op = WindowAggregate::new(&input(), vec![1, 2, 0], keys, slices, aggregates, output(), 1024)?;
        Ok(Box::new(op) as Box<dyn Operator>)
    })
}

/// `hh:mm` as the harness writes timestamps.
fn t(hh: i64, mm: i64) -> String {
    format!("2020-04-15T{hh:02}:{mm:02}:00")
}

/// A bid row: item, its slice [start, end) in minutes of 08:xx, price.
fn bid(item: &str, start: i64, end: i64, price: f64) -> String {
    format!("{item} {} {} {price}\n", t(8, start), t(8, end))
}

#[tokio::test]
async fn tumbling_windows_fire_once_when_the_watermark_passes_their_end() {
    let shape = WindowShape::Tumble { size: 10 * MINUTE, offset: 0 };
    let mut h = Harness::start(build(Some(shape)), input(), Some(vec![0]), 2).await.unwrap();
    // Bids 08:05 C 4, 08:07 A 2, 08:09 D 5, 08:11 B 3, 08:13 E 1, 08:17 F 6, all item "x",
    // plus a second item in the first window.
    let rows = [bid("x", 0, 10, 4.0), bid("x", 0, 10, 2.0), bid("x", 0, 10, 5.0), bid("y", 0, 10, 1.5)].concat();
    h.push(&rows).await.unwrap();
    h.watermark(at(8, 9)).await.unwrap();
    assert!(h.sorted_rows().is_empty(), "[08:00, 08:10) is open until the watermark reaches 08:09:59.999");
    h.push(&[bid("x", 10, 20, 3.0), bid("x", 10, 20, 1.0)].concat()).await.unwrap();
    h.watermark(at(8, 10) - 1).await.unwrap();
    assert_eq!(
        h.sorted_rows(),
        [format!("{} {} x 11.0 3", t(8, 0), t(8, 10)), format!("{} {} y 1.5 1", t(8, 0), t(8, 10))]
    );
    h.clear_output();
    // Late: its only window fired. On time: 08:17 F.
    h.push(&[bid("x", 0, 10, 100.0), bid("x", 10, 20, 6.0)].concat()).await.unwrap();
    assert_eq!(h.metric(LATE_RECORDS_DROPPED), 1);
    let snapshot = h.checkpoint(1).await.unwrap();
    let held: usize = snapshot.keyed.iter().map(|k| k.len()).sum();
    assert!(held > 0, "the open window is in the checkpoint");
    h.watermark(at(8, 20)).await.unwrap();
    assert_eq!(h.sorted_rows(), [format!("{} {} x 10.0 3", t(8, 10), t(8, 20))]);
    let after = h.checkpoint(2).await.unwrap();
    assert!(after.keyed.iter().all(|k| k.is_empty()), "fired windows leave no state or timers: {after:?}");
}

#[tokio::test]
async fn a_hop_row_counts_in_its_windows_that_have_not_fired() {
    // HOP slide 5 min, size 10 min: slices are 5 minutes, each in two windows.
    let shape = WindowShape::Hop { size: 10 * MINUTE, slide: 5 * MINUTE, offset: 0 };
    let mut h = Harness::start(build(Some(shape)), input(), Some(vec![0]), 1).await.unwrap();
    let bids = [
        bid("x", 5, 10, 4.0),  // 08:05 C
        bid("x", 5, 10, 2.0),  // 08:07 A
        bid("x", 5, 10, 5.0),  // 08:09 D
        bid("x", 10, 15, 3.0), // 08:11 B
        bid("x", 10, 15, 1.0), // 08:13 E
        bid("x", 15, 20, 6.0), // 08:17 F
    ];
    h.push(&bids.concat()).await.unwrap();
    h.watermark(at(8, 10) - 1).await.unwrap(); // fires [08:00, 08:10)
                                               // A late 08:08 bid: [08:00, 08:10) fired, [08:05, 08:15) did not; not counted as late.
    h.push(&bid("x", 5, 10, 10.0)).await.unwrap();
    assert_eq!(h.metric(LATE_RECORDS_DROPPED), 0);
    h.watermark(i64::MAX).await.unwrap();
    let expected = [
        format!("{} {} x 11.0 3", t(8, 0), t(8, 10)),
        format!("{} {} x 25.0 6", t(8, 5), t(8, 15)),
        format!("{} {} x 10.0 3", t(8, 10), t(8, 20)),
        format!("{} {} x 6.0 1", t(8, 15), t(8, 25)),
    ];
    assert_eq!(h.sorted_rows(), expected);
    // Every window of that slice has fired now: the next such row is late.
    h.push(&bid("x", 5, 10, 1.0)).await.unwrap();
    assert_eq!(h.metric(LATE_RECORDS_DROPPED), 1);
}

#[tokio::test]
async fn cumulating_windows_grow_by_their_step() {
    // CUMULATE step 2 min, size 10 min over the same bids (slices of 2 minutes).
    let shape = WindowShape::Cumulate { size: 10 * MINUTE, step: 2 * MINUTE, offset: 0 };
    let mut h = Harness::start(build(Some(shape)), input(), Some(vec![0]), 1).await.unwrap();
    let bids = [
        bid("x", 4, 6, 4.0),
        bid("x", 6, 8, 2.0),
        bid("x", 8, 10, 5.0),
        bid("x", 10, 12, 3.0),
        bid("x", 12, 14, 1.0),
        bid("x", 16, 18, 6.0),
    ];
    h.push(&bids.concat()).await.unwrap();
    h.finish().await.unwrap();
    // From the documentation: windows [08:00, 08:06) 4, [08:00, 08:08) 6, [08:00, 08:10) 11,
    // [08:10, 08:12) 3, [08:10, 08:14) 4, [08:10, 08:16) 4, [08:10, 08:18) 10, [08:10, 08:20) 10.
    // ([08:00, 08:02) and [08:00, 08:04) are empty: no row, no result.)
    let expected: Vec<String> = [(0, 6, 4.0, 1), (0, 8, 6.0, 2), (0, 10, 11.0, 3)]
        .iter()
        .chain(&[(10, 12, 3.0, 1), (10, 14, 4.0, 2), (10, 16, 4.0, 2), (10, 18, 10.0, 3), (10, 20, 10.0, 3)])
        .map(|(s, e, total, n)| format!("{} {} x {total:.1} {n}", t(8, *s), t(8, *e)))
        .collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(h.sorted_rows(), expected);
}

#[tokio::test]
async fn windows_restored_at_another_parallelism_fire_once_with_every_row() {
    let shape = WindowShape::Tumble { size: 10 * MINUTE, offset: 0 };
    let items: Vec<String> = (0..30).map(|i| format!("item{i}")).collect();
    let first: String = items.iter().enumerate().map(|(i, k)| bid(k, 0, 10, i as f64)).collect();
    let second: String = items.iter().map(|k| bid(k, 0, 10, 100.0)).collect();
    let mut h = Harness::start(build(Some(shape)), input(), Some(vec![0]), 2).await.unwrap();
    h.push(&first).await.unwrap();
    let snapshot = h.checkpoint(1).await.unwrap();
    h.push(&bid("lost", 0, 10, 1.0)).await.unwrap(); // after the checkpoint: forgotten
    let mut restored = Harness::restore(build(Some(shape)), input(), Some(vec![0]), 3, &snapshot).await.unwrap();
    restored.push(&second).await.unwrap();
    restored.watermark(at(8, 10)).await.unwrap();
    restored.watermark(at(9, 0)).await.unwrap();
    let mut expected: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{} {} {k} {:.1} 2", t(8, 0), t(8, 10), i as f64 + 100.0))
        .collect();
    expected.sort();
    assert_eq!(restored.sorted_rows(), expected, "each window once, with the rows of both runs");
}

#[tokio::test]
async fn rows_that_carry_their_window_are_aggregated_per_window() {
    // Without slices (expressions used the window columns first): the row's window as is.
    let mut h = Harness::start(build(None), input(), Some(vec![0]), 1).await.unwrap();
    h.push(&[bid("x", 0, 10, 1.0), bid("x", 5, 15, 2.0), bid("x", 0, 10, 3.0)].concat()).await.unwrap();
    h.watermark(at(8, 10)).await.unwrap();
    assert_eq!(h.sorted_rows(), [format!("{} {} x 4.0 2", t(8, 0), t(8, 10))]);
    h.push(&bid("x", 0, 10, 9.0)).await.unwrap();
    assert_eq!(h.metric(LATE_RECORDS_DROPPED), 1);
}

#[test]
fn a_stored_window_key_keeps_its_key_and_bounds() {
    let stored = stored_key(b"key", at(8, 0), at(8, 10));
    assert_eq!(parse_stored_key(&stored).unwrap(), (&b"key"[..], at(8, 0), at(8, 10)));
    assert!(parse_stored_key(&stored[..10]).is_err());
}

/// SESSION windows of 5 minutes: rows of a key closer than the gap share a session (rows
/// exactly the gap apart too, as Flink's windows touch), which fires when the watermark
/// passes its last row plus the gap.
#[tokio::test]
async fn sessions_merge_rows_closer_than_the_gap_and_fire_at_their_end() {
    let shape = WindowShape::Session { gap: 5 * MINUTE };
    let mut h = Harness::start(build(Some(shape)), input(), Some(vec![0]), 2).await.unwrap();
    // x: 08:00, 08:03, 08:07 and 08:12 (exactly 5 min after 08:07) form one session;
    // 08:30 another. y: 08:10 alone.
    let row = |item: &str, minute: i64, price: f64| bid(item, minute, minute + 5, price);
    h.push(&[row("x", 7, 3.0), row("x", 0, 1.0), row("y", 10, 10.0), row("x", 3, 2.0)].concat()).await.unwrap();
    let snapshot = h.checkpoint(1).await.unwrap();
    // Restored at another parallelism, the open sessions go on merging.
    let mut h = Harness::restore(build(Some(shape)), input(), Some(vec![0]), 3, &snapshot).await.unwrap();
    h.push(&[row("x", 12, 4.0), row("x", 30, 5.0)].concat()).await.unwrap();
    h.watermark(at(8, 15) - 1).await.unwrap();
    assert_eq!(h.sorted_rows(), [format!("{} {} y 10.0 1", t(8, 10), t(8, 15))], "x's session ends at 08:17");
    h.clear_output();
    h.watermark(at(8, 17) - 1).await.unwrap();
    assert_eq!(h.sorted_rows(), [format!("{} {} x 10.0 4", t(8, 0), t(8, 17))]);
    h.clear_output();
    // Late: its session [08:01, 08:06) would have fired. On time: 08:27 joins 08:30's.
    h.push(&[row("x", 1, 100.0), row("x", 27, 6.0)].concat()).await.unwrap();
    assert_eq!(h.metric(LATE_RECORDS_DROPPED), 1);
    h.watermark(i64::MAX).await.unwrap();
    assert_eq!(h.sorted_rows(), [format!("{} {} x 11.0 2", t(8, 27), t(8, 35))]);
    let after = h.checkpoint(2).await.unwrap();
    assert!(after.keyed.iter().all(|k| k.is_empty()), "fired sessions leave no state or timers");
}

fn processing_time_build(shape: WindowShape) -> Build {
    Arc::new(move || {
        let calls = vec![Call::new(AggregateFunction::Sum, Some(3)), Call::new(AggregateFunction::CountStar, None)];
        let aggregates = Aggregates::new(&input(), calls, vec![DataType::Float64, DataType::Int64])?;
        let keys = WindowKeys { start: 0, end: 1, time: None };
        let op = WindowAggregate::new(&input(), vec![1, 2, 0], keys, Some(shape), aggregates, output(), 1024)?;
        Ok(Box::new(op.with_processing_time()) as Box<dyn Operator>)
    })
}

#[tokio::test]
async fn processing_time_windows_fire_by_the_clock_not_the_watermark() {
    let shape = WindowShape::Tumble { size: 10 * MINUTE, offset: 0 };
    let mut h = Harness::start(processing_time_build(shape), input(), Some(vec![0]), 1).await.unwrap();
    // A window of 2020 (long past by the clock) and one of 2100 (not yet).
    let future = "2100-01-01T00:00:00 2100-01-01T00:10:00";
    h.push(&[bid("x", 0, 10, 4.0), bid("x", 0, 10, 2.0)].concat()).await.unwrap();
    h.push(&format!("y {future} 7.0\n")).await.unwrap();
    h.watermark(i64::MAX - 1).await.unwrap();
    assert!(h.sorted_rows().is_empty(), "watermarks do not fire processing-time windows");
    h.fire_timers().await.unwrap();
    assert_eq!(h.sorted_rows(), [format!("{} {} x 6.0 2", t(8, 0), t(8, 10))], "the clock passed 2020's window");
    h.push(&bid("x", 0, 10, 1.0)).await.unwrap();
    assert_eq!(h.metric(LATE_RECORDS_DROPPED), 0, "a row is never late by processing time");
    h.clear_output();
    h.finish().await.unwrap();
    let rows = h.sorted_rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].ends_with(" x 1.0 1"), "the late 2020 row joined the clock's window: {rows:?}");
    assert!(!rows[0].starts_with("2020"), "{rows:?}");
    assert_eq!(rows[1], format!("{future} y 7.0 1"), "the end of the input fires what is open");
}
