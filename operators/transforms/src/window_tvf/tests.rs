//! The windows of Flink's documentation examples (window-tvf.md: the Bid table, and the
//! offset example), worked out by hand from its tables.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use sluice_core::harness::{Build, Harness};
use sluice_core::schema::encode_schema;

use super::*;

const MINUTE: i64 = 60_000;

/// Milliseconds of `hh:mm` on 2020-04-15, the day of the documentation's bids.
fn at(hh: i64, mm: i64) -> i64 {
    1_586_908_800_000 + (hh * 60 + mm) * MINUTE
}

/// The windows of `shape` holding `timestamp`, as (start, end).
fn windows_of(shape: WindowShape, timestamp: i64) -> Vec<(i64, i64)> {
    let mut windows = Vec::new();
    shape.for_each_window(timestamp, |start, end| windows.push((start, end)));
    windows
}

/// The windows of `shape` holding `hh:mm`, as (start, end) in minutes of the day.
fn windows(shape: WindowShape, hh: i64, mm: i64) -> Vec<(i64, i64)> {
    let minutes = |t: i64| (t - at(0, 0)) / MINUTE;
    windows_of(shape, at(hh, mm)).into_iter().map(|(s, e)| (minutes(s), minutes(e))).collect()
}

fn minutes(hh: i64, mm: i64) -> i64 {
    hh * 60 + mm
}

#[test]
fn tumble_places_each_row_in_one_window() {
    let shape = WindowShape::Tumble { size: 10 * MINUTE, offset: 0 };
    assert_eq!(windows(shape, 8, 5), [(minutes(8, 0), minutes(8, 10))]);
    assert_eq!(windows(shape, 8, 10), [(minutes(8, 10), minutes(8, 20))], "a window's end is not in it");
    assert_eq!(windows(shape, 8, 17), [(minutes(8, 10), minutes(8, 20))]);
}

#[test]
fn an_offset_shifts_the_boundaries_either_way() {
    // Flink's example: 2021-06-30 00:00:04 in a 10-minute TUMBLE with several offsets.
    let midnight = 1_625_011_200_000;
    let t = midnight + 4_000;
    let window = |offset_minutes: i64| {
        let shape = WindowShape::Tumble { size: 10 * MINUTE, offset: offset_minutes * MINUTE };
        let (s, e) = windows_of(shape, t)[0];
        ((s - midnight) / MINUTE, (e - midnight) / MINUTE)
    };
    for offset in [-16, 4] {
        assert_eq!(window(offset), (-6, 4), "offset {offset} min: [06-29 23:54, 00:04)");
    }
    for offset in [-4, 6, 16] {
        assert_eq!(window(offset), (-4, 6), "offset {offset} min: [06-29 23:56, 00:06)");
    }
    assert_eq!(window(0), (0, 10));
}

#[test]
fn hop_places_a_row_in_every_window_reaching_past_it() {
    let shape = WindowShape::Hop { size: 10 * MINUTE, slide: 5 * MINUTE, offset: 0 };
    // [07:55, 08:05) does not hold 08:05.
    assert_eq!(windows(shape, 8, 5), [(minutes(8, 0), minutes(8, 10)), (minutes(8, 5), minutes(8, 15))]);
    assert_eq!(windows(shape, 8, 7), [(minutes(8, 0), minutes(8, 10)), (minutes(8, 5), minutes(8, 15))]);
    assert_eq!(windows(shape, 8, 17), [(minutes(8, 10), minutes(8, 20)), (minutes(8, 15), minutes(8, 25))]);
    // A slide that does not divide the size: the row is in every window still open.
    let uneven = WindowShape::Hop { size: 10 * MINUTE, slide: 4 * MINUTE, offset: 0 };
    let expected = [(minutes(7, 56), minutes(8, 6)), (minutes(8, 0), minutes(8, 10)), (minutes(8, 4), minutes(8, 14))];
    assert_eq!(windows(uneven, 8, 5), expected);
    // Windows shorter than their slide leave gaps that hold no row.
    let gappy = WindowShape::Hop { size: 4, slide: 10, offset: 0 };
    assert_eq!(windows_of(gappy, 3), [(0, 4)]);
    assert!(windows_of(gappy, 4).is_empty() && windows_of(gappy, 9).is_empty());
}

#[test]
fn cumulate_grows_windows_by_step_from_one_start() {
    let shape = WindowShape::Cumulate { size: 10 * MINUTE, step: 2 * MINUTE, offset: 0 };
    let ends = |hh, mm| windows(shape, hh, mm).into_iter().map(|(s, e)| (s, e - minutes(8, 0))).collect::<Vec<_>>();
    let from = |start: i64, ends: &[i64]| ends.iter().map(|&e| (start, e)).collect::<Vec<_>>();
    assert_eq!(ends(8, 5), from(minutes(8, 0), &[6, 8, 10]));
    assert_eq!(ends(8, 7), from(minutes(8, 0), &[8, 10]));
    assert_eq!(ends(8, 9), from(minutes(8, 0), &[10]));
    assert_eq!(ends(8, 11), from(minutes(8, 10), &[12, 14, 16, 18, 20]));
    assert_eq!(ends(8, 17), from(minutes(8, 10), &[18, 20]));
}

#[test]
fn times_before_the_epoch_are_windowed_alike() {
    let shape = WindowShape::Tumble { size: 10, offset: 0 };
    assert_eq!(windows_of(shape, -1), [(-10, 0)]);
    assert_eq!(windows_of(shape, -10), [(-10, 0)]);
    assert_eq!(windows_of(shape, -11), [(-20, -10)]);
}

fn bids() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("bidtime", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("price", DataType::Float64, false),
        Field::new("item", DataType::Utf8, false),
    ]))
}

fn windowed() -> SchemaRef {
    let mut fields: Vec<Field> = bids().fields().iter().map(|f| f.as_ref().clone()).collect();
    for name in ["window_start", "window_end", "window_time"] {
        fields.push(Field::new(name, DataType::Timestamp(TimeUnit::Millisecond, None), false));
    }
    Arc::new(Schema::new(fields))
}

fn spec(kind: WindowKind, size: i64, step: i64) -> WindowTvfSpec {
    WindowTvfSpec {
        kind: kind as i32,
        time_column: 0,
        size_ms: size * MINUTE,
        step_ms: step * MINUTE,
        offset_ms: 0,
        output_schema: encode_schema(&windowed()),
        slices: false,
        processing_time: false,
    }
}

const BIDS: &str = "2020-04-15T08:05:00 4.0 C
    2020-04-15T08:07:00 2.0 A
    2020-04-15T08:09:00 5.0 D
    2020-04-15T08:11:00 3.0 B
    2020-04-15T08:13:00 1.0 E
    2020-04-15T08:17:00 6.0 F
    null 9.0 Z";

/// The price sum of each window of the operator's output, as "start end sum".
async fn sums(spec: WindowTvfSpec) -> Vec<String> {
    let build: Build = Arc::new(move || Ok(Box::new(WindowTvf::from_spec(&spec)?) as Box<dyn Operator>));
    let mut h = Harness::start(build, bids(), None, 1).await.unwrap();
    h.push(BIDS).await.unwrap();
    assert_eq!(h.metric(ROWS_WITHOUT_TIME), 1, "the bid without a time is dropped and counted");
    let mut sums = std::collections::BTreeMap::<(String, String), f64>::new();
    for row in h.rows_of(0) {
        let v: Vec<&str> = row.split(' ').collect();
        let (end, time) = (v[4], v[5]);
        let minute_of = |t: &str| t[11..13].parse::<i64>().unwrap() * 60 + t[14..16].parse::<i64>().unwrap();
        let before_end = minute_of(end) - 1;
        assert_eq!(time[11..], format!("{:02}:{:02}:59.999", before_end / 60, before_end % 60), "{end}");
        *sums.entry((v[3][11..16].to_string(), end[11..16].to_string())).or_default() += v[1].parse::<f64>().unwrap();
    }
    sums.into_iter().map(|((s, e), sum)| format!("{s} {e} {sum}")).collect()
}

#[tokio::test]
async fn the_operator_adds_each_rows_windows_as_flinks_bid_example_shows() {
    assert_eq!(sums(spec(WindowKind::Tumble, 10, 0)).await, ["08:00 08:10 11", "08:10 08:20 10"]);
    let hop = ["08:00 08:10 11", "08:05 08:15 15", "08:10 08:20 10", "08:15 08:25 6"];
    assert_eq!(sums(spec(WindowKind::Hop, 10, 5)).await, hop);
    let cumulate = [
        "08:00 08:06 4",
        "08:00 08:08 6",
        "08:00 08:10 11",
        "08:10 08:12 3",
        "08:10 08:14 4",
        "08:10 08:16 4",
        "08:10 08:18 10",
        "08:10 08:20 10",
    ];
    assert_eq!(sums(spec(WindowKind::Cumulate, 10, 2)).await, cumulate);
}

#[test]
fn a_window_without_a_positive_size_is_refused() {
    assert!(WindowTvf::from_spec(&spec(WindowKind::Tumble, 0, 0)).is_err());
    assert!(WindowTvf::from_spec(&spec(WindowKind::Hop, 10, 0)).is_err());
    assert!(WindowTvf::from_spec(&spec(WindowKind::Cumulate, 10, -2)).is_err());
}

#[test]
fn a_slice_is_held_whole_by_every_window_holding_its_rows() {
    let hop = WindowShape::Hop { size: 10 * MINUTE, slide: 5 * MINUTE, offset: 0 };
    assert_eq!(hop.slice(at(8, 7)), (at(8, 5), at(8, 10)));
    let cumulate = WindowShape::Cumulate { size: 10 * MINUTE, step: 2 * MINUTE, offset: 0 };
    assert_eq!(cumulate.slice(at(8, 7)), (at(8, 6), at(8, 8)));
    // Size 10 min, slide 4 min: slices of 2 minutes (their greatest common divisor).
    let uneven = WindowShape::Hop { size: 10 * MINUTE, slide: 4 * MINUTE, offset: 0 };
    assert_eq!(uneven.slice(at(8, 7)), (at(8, 6), at(8, 8)));
    // Each window holding a row of the slice holds the slice's start and end - 1 ms.
    for shape in [hop, cumulate, uneven] {
        for minute in 0..30 {
            let time = at(8, minute) + 1234;
            let (start, end) = shape.slice(time);
            assert!(start <= time && time < end);
            assert_eq!(windows_of(shape, time), windows_of(shape, start), "{shape:?} at minute {minute}");
            assert_eq!(windows_of(shape, time), windows_of(shape, end - 1), "{shape:?} at minute {minute}");
        }
    }
}
