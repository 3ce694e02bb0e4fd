//! Top-N, deduplication and window Top-N, with the expected changelogs worked out by hand.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use sluice_core::harness::{Build, Harness};

use super::*;

/// Input: category, product, sales.
fn input() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("category", DataType::Utf8, false),
        Field::new("product", DataType::Utf8, false),
        Field::new("sales", DataType::Int64, true),
    ]))
}

fn output(input: &SchemaRef, window: bool) -> SchemaRef {
    let mut fields: Vec<Field> =
        changelog::without_row_kind(input).fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("rownum", DataType::UInt64, false));
    let schema = Schema::new(fields);
    if window {
        Arc::new(schema)
    } else {
        changelog::with_row_kind(&schema)
    }
}

fn top(n: u64, descending: bool) -> Ranks {
    Ranks {
        partition: vec![0],
        order: vec![SortColumn { column: 2, descending, nulls_first: false }],
        start: 1,
        end: n,
        newer_first_on_ties: false,
        window_end: None,
        inserts_only: false,
    }
}

fn build(input: SchemaRef, ranks: Ranks) -> Build {
    Arc::new(move || {
        let window = ranks.window_end.is_some();
        Ok(Box::new(TopN::new(&input, ranks.clone(), output(&input, window), 1024)?) as Box<dyn Operator>)
    })
}

/// Folds a changelog (kind first) into the rows it leaves, sorted; panics on a retraction
/// of a row that is not there.
fn fold(changes: &[String]) -> Vec<String> {
    let mut table: Vec<String> = Vec::new();
    for change in changes {
        let (kind, row) = change.split_at(3);
        if kind.starts_with('+') {
            table.push(row.to_string());
        } else {
            let at = table.iter().position(|r| r == row).unwrap_or_else(|| panic!("{change} retracts a missing row"));
            table.remove(at);
        }
    }
    table.sort();
    table
}

#[tokio::test]
async fn the_top_two_per_category_update_as_better_rows_come() {
    let mut h = Harness::start(build(input(), top(2, true)), input(), Some(vec![0]), 1).await.unwrap();
    h.push("book a 10\nbook b 5\n").await.unwrap();
    assert_eq!(h.rows_of(0), ["+I book a 10 1", "+I book b 5 2"]);
    h.clear_output();
    // c enters at rank 1: a moves to rank 2 and b leaves.
    h.push("book c 20\n").await.unwrap();
    assert_eq!(h.rows_of(0), ["-U book a 10 1", "+U book c 20 1", "-U book b 5 2", "+U book a 10 2"]);
    h.clear_output();
    // Worse than rank 2, and a new category.
    h.push("book d 1\ntoy x 3\n").await.unwrap();
    assert_eq!(h.rows_of(0), ["+I toy x 3 1"]);
}

#[tokio::test]
async fn an_updating_input_retracts_rows_and_lifts_the_ones_below() {
    let schema = changelog::with_row_kind(&input());
    let mut h = Harness::start(build(schema.clone(), top(1, true)), schema, Some(vec![0]), 1).await.unwrap();
    // Sales per product as a GROUP BY updates them.
    h.push("+I book a 3\n+I book b 2\n").await.unwrap();
    h.push("-U book a 3\n+U book a 1\n").await.unwrap();
    h.push("-D book b 2\n").await.unwrap();
    let changes = h.rows_of(0);
    assert_eq!(
        changes,
        ["+I book a 3 1", "-U book a 3 1", "+U book b 2 1", "-U book b 2 1", "+U book a 1 1"],
        "b leads once a drops to 1, then a leads again when b is deleted"
    );
    assert_eq!(fold(&changes), ["book a 1 1"]);
    h.push("-D book a 1\n").await.unwrap();
    assert_eq!(h.rows_of(0).last().unwrap(), "-D book a 1 1", "the emptied rank is deleted");
}

#[tokio::test]
async fn keep_last_deduplication_takes_the_newer_of_equal_rows() {
    let ranks = Ranks { newer_first_on_ties: true, ..top(1, true) };
    let mut h = Harness::start(build(input(), ranks), input(), Some(vec![0]), 1).await.unwrap();
    h.push("k a 5\nk b 5\nk c 4\n").await.unwrap();
    assert_eq!(fold(&h.rows_of(0)), ["k b 5 1"]);
}

#[tokio::test]
async fn rank_ranges_emit_only_their_ranks_and_survive_a_restore_at_another_parallelism() {
    let ranks = Ranks { start: 2, end: 3, ..top(3, false) };
    let mut h = Harness::start(build(input(), ranks.clone()), input(), Some(vec![0]), 2).await.unwrap();
    h.push("p a 1\np b 2\nq x 7\n").await.unwrap();
    let snapshot = h.checkpoint(1).await.unwrap();
    let mut first = h.sorted_rows();
    let mut restored = Harness::restore(build(input(), ranks), input(), Some(vec![0]), 3, &snapshot).await.unwrap();
    restored.push("p c 0\nq y 8\nq z 9\n").await.unwrap();
    first.extend(restored.sorted_rows());
    // p: [a b] shows b at 2; then [c a b] shows a at 2 and b at 3.
    // q: [x] shows nothing; [x y z] shows y at 2 and z at 3.
    assert_eq!(fold(&first), ["p a 1 2", "p b 2 3", "q y 8 2", "q z 9 3"]);
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// Input of a window Top-N: window_start, window_end, item, price.
fn window_input() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("item", DataType::Utf8, false),
        Field::new("price", DataType::Float64, false),
    ]))
}

fn window_top(n: u64) -> Ranks {
    Ranks {
        partition: vec![0, 1],
        order: vec![SortColumn { column: 3, descending: true, nulls_first: false }],
        start: 1,
        end: n,
        newer_first_on_ties: false,
        window_end: Some(1),
        inserts_only: false,
    }
}

/// 2020-04-15 08:mm:00 as milliseconds.
fn at(mm: i64) -> i64 {
    1_586_937_600_000 + mm * 60_000
}

#[tokio::test]
async fn a_window_top_n_emits_each_window_once_when_it_fires_and_drops_late_rows() {
    let schema = window_input();
    let mut h = Harness::start(build(schema.clone(), window_top(2)), schema, Some(vec![0, 1]), 2).await.unwrap();
    let w1 = "2020-04-15T08:00:00 2020-04-15T08:10:00";
    let w2 = "2020-04-15T08:10:00 2020-04-15T08:20:00";
    h.push(&format!("{w1} A 4\n{w1} B 2\n{w1} C 5\n{w2} D 1\n")).await.unwrap();
    let snapshot = h.checkpoint(1).await.unwrap();
    h.watermark(at(10) - 2).await.unwrap();
    assert!(h.sorted_rows().is_empty(), "the first window ends at 08:10");
    let mut h = Harness::restore(build(window_input(), window_top(2)), window_input(), Some(vec![0, 1]), 3, &snapshot)
        .await
        .unwrap();
    h.push(&format!("{w1} E 4.5\n")).await.unwrap();
    h.watermark(at(10) - 1).await.unwrap();
    assert_eq!(
        h.sorted_rows(),
        [format!("{w1} C 5.0 1"), format!("{w1} E 4.5 2")],
        "ranked over the rows from before and after the restore"
    );
    h.push(&format!("{w1} F 9\n{w2} G 3\n")).await.unwrap();
    assert_eq!(h.metric(LATE_RECORDS_DROPPED), 1, "F's window fired already");
    h.clear_output();
    h.finish().await.unwrap();
    assert_eq!(h.sorted_rows(), [format!("{w2} D 1.0 2"), format!("{w2} G 3.0 1")]);
    let after = h.checkpoint(2).await.unwrap();
    assert!(after.keyed.iter().all(|k| k.is_empty()), "fired windows leave no state or timers");
}
