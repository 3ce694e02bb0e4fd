//! Joins of orders and customers, with the expected changelogs worked out by hand.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use sluice_core::harness::{Build, Harness, HarnessInput};
use sluice_core::state::StateClock;

use super::*;

/// Orders: id, customer (the key). Customers: id (the key), name.
fn orders() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("oid", DataType::Int64, false), Field::new("cust", DataType::Int64, true)]))
}

fn customers(updating: bool) -> SchemaRef {
    let schema = Schema::new(vec![Field::new("cid", DataType::Int64, true), Field::new("name", DataType::Utf8, true)]);
    if updating {
        changelog::with_row_kind(&schema)
    } else {
        Arc::new(schema)
    }
}

fn output(kinds: bool) -> SchemaRef {
    let schema = Schema::new(vec![
        Field::new("oid", DataType::Int64, true),
        Field::new("cust", DataType::Int64, true),
        Field::new("cid", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]);
    if kinds {
        changelog::with_row_kind(&schema)
    } else {
        Arc::new(schema)
    }
}

fn build(kind: JoinKind, updating: bool, filter: Option<Arc<dyn PhysicalExpr>>) -> Build {
    Arc::new(move || {
        let left = JoinInput { schema: orders(), data_columns: 2, keys: vec![1] };
        let right = JoinInput { schema: customers(updating), data_columns: 2, keys: vec![0] };
        let kinds = kind != JoinKind::Inner || updating;
        let join = Join::new(kind, left, right, filter.clone(), output(kinds), 1024)?;
        Ok(Box::new(join) as Box<dyn Operator>)
    })
}

async fn start(kind: JoinKind, updating: bool, parallelism: u32) -> Harness {
    let inputs = vec![
        HarnessInput { schema: orders(), key_columns: Some(vec![1]) },
        HarnessInput { schema: customers(updating), key_columns: Some(vec![0]) },
    ];
    Harness::start_inputs(build(kind, updating, None), inputs, parallelism, StateClock::System).await.unwrap()
}

#[tokio::test]
async fn an_inner_join_of_append_only_inputs_inserts_each_match_once() {
    let mut h = start(JoinKind::Inner, false, 2).await;
    h.push_to(0, "1 10\n2 20\n3 10\n4 null\n").await.unwrap();
    assert!(h.sorted_rows().is_empty(), "no customer yet");
    h.push_to(1, "10 ann\n30 cy\n").await.unwrap();
    h.push_to(0, "5 30\n").await.unwrap();
    assert_eq!(h.sorted_rows(), ["1 10 10 ann", "3 10 10 ann", "5 30 30 cy"]);
}

#[tokio::test]
async fn a_left_join_retracts_the_padded_row_when_the_match_arrives_and_restores_at_another_parallelism() {
    let mut h = start(JoinKind::Left, false, 2).await;
    h.push_to(0, "1 10\n2 null\n").await.unwrap();
    assert_eq!(h.sorted_rows(), ["+I 1 10 null null", "+I 2 null null null"]);
    let snapshot = h.checkpoint(1).await.unwrap();
    let inputs = vec![
        HarnessInput { schema: orders(), key_columns: Some(vec![1]) },
        HarnessInput { schema: customers(false), key_columns: Some(vec![0]) },
    ];
    let mut h = Harness::restore_inputs(build(JoinKind::Left, false, None), inputs, 3, &snapshot).await.unwrap();
    h.push_to(1, "10 ann\n10 ann\n").await.unwrap();
    let rows: Vec<String> = (0..3).flat_map(|s| h.rows_of(s)).collect();
    assert_eq!(
        rows,
        ["-D 1 10 null null", "+I 1 10 10 ann", "+I 1 10 10 ann"],
        "the padded row goes once, the match comes once per copy"
    );
}

#[tokio::test]
async fn a_full_join_over_an_updating_side_pads_rows_that_lose_their_last_match() {
    let mut h = start(JoinKind::Full, true, 1).await;
    h.push_to(1, "+I 10 ann\n").await.unwrap();
    h.push_to(0, "1 10\n").await.unwrap();
    h.clear_output();
    // ann is renamed: the match goes and comes with the new name.
    h.push_to(1, "-U 10 ann\n+U 10 anna\n").await.unwrap();
    assert_eq!(h.rows_of(0), ["-D 1 10 10 ann", "+I 1 10 null null", "-D 1 10 null null", "+I 1 10 10 anna"]);
    h.clear_output();
    // The customer is deleted: the order is padded again, and a customer nobody ordered
    // from shows padded on the right side.
    h.push_to(1, "-D 10 anna\n+I 99 zed\n").await.unwrap();
    assert_eq!(h.rows_of(0), ["-D 1 10 10 anna", "+I 1 10 null null", "+I null null 99 zed"]);
}

#[tokio::test]
async fn a_residual_condition_decides_which_pairs_match() {
    use datafusion::logical_expr::{col, lit};
    let joined = Arc::new(Schema::new(output(false).fields().iter().map(|f| f.as_ref().clone()).collect::<Vec<_>>()));
    let filter = crate::expr::physical(&col("oid").lt(lit(3i64)), &joined).unwrap();
    let inputs = vec![
        HarnessInput { schema: orders(), key_columns: Some(vec![1]) },
        HarnessInput { schema: customers(false), key_columns: Some(vec![0]) },
    ];
    let build = build(JoinKind::Left, false, Some(filter));
    let mut h = Harness::start_inputs(build, inputs, 1, StateClock::System).await.unwrap();
    h.push_to(1, "10 ann\n").await.unwrap();
    h.push_to(0, "1 10\n5 10\n").await.unwrap();
    assert_eq!(h.sorted_rows(), ["+I 1 10 10 ann", "+I 5 10 null null"], "order 5 fails oid < 3");
}

/// Clicks and views: id, key, time.
fn timed(name: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(format!("{name}_id"), DataType::Int64, false),
        Field::new(format!("{name}_k"), DataType::Int64, false),
        Field::new(format!("{name}_ts"), DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None), false),
    ]))
}

#[tokio::test]
async fn an_interval_join_forgets_rows_the_watermark_has_passed() {
    const MINUTE: i64 = 60_000;
    let base = 1_586_937_600_000; // 2020-04-15T08:00
    let build: Build = Arc::new(|| {
        let left = JoinInput { schema: timed("c"), data_columns: 3, keys: vec![1] };
        let right = JoinInput { schema: timed("v"), data_columns: 3, keys: vec![1] };
        let fields: Vec<Field> =
            timed("c").fields().iter().chain(timed("v").fields().iter()).map(|f| f.as_ref().clone()).collect();
        let join = Join::new(JoinKind::Inner, left, right, None, Arc::new(Schema::new(fields)), 1024)?;
        // c_ts - v_ts within [-5 min, 5 min].
        let interval = Interval { left_time: 2, right_time: 2, lower: -5 * MINUTE, upper: 5 * MINUTE };
        Ok(Box::new(join.with_interval(interval)) as Box<dyn Operator>)
    });
    let inputs = vec![
        HarnessInput { schema: timed("c"), key_columns: Some(vec![1]) },
        HarnessInput { schema: timed("v"), key_columns: Some(vec![1]) },
    ];
    let mut h = Harness::start_inputs(build, inputs, 1, StateClock::System).await.unwrap();
    h.push_to(0, "1 7 2020-04-15T08:00:00\n").await.unwrap();
    h.push_to(1, "10 7 2020-04-15T08:03:00\n").await.unwrap();
    assert_eq!(h.sorted_rows(), ["1 7 2020-04-15T08:00:00 10 7 2020-04-15T08:03:00"]);
    let before = h.checkpoint(1).await.unwrap();
    let held = |s: &sluice_core::harness::Snapshot| s.keyed.iter().map(|k| k.len()).sum::<usize>();
    // The click can match views up to 08:05; the view clicks up to 08:08.
    h.watermark_to(0, base + 6 * MINUTE).await.unwrap();
    h.watermark_to(1, base + 6 * MINUTE).await.unwrap();
    let after = h.checkpoint(2).await.unwrap();
    assert!(held(&after) < held(&before), "the click and its timer are gone: {} -> {}", held(&before), held(&after));
    h.clear_output();
    h.push_to(1, "11 7 2020-04-15T08:04:30\n").await.unwrap();
    assert!(h.sorted_rows().is_empty(), "the forgotten click matches no more");
    h.push_to(0, "2 7 2020-04-15T08:07:00\n").await.unwrap();
    assert_eq!(
        h.sorted_rows(),
        ["2 7 2020-04-15T08:07:00 10 7 2020-04-15T08:03:00", "2 7 2020-04-15T08:07:00 11 7 2020-04-15T08:04:30"],
        "the views are still kept"
    );
}
