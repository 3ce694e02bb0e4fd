//! Lookup joins of orders against a customers table held by the test (a [`LookupSource`]
//! answering from a list of rows, counting the keys it is asked), with expectations worked
//! out by hand.

use std::sync::atomic::AtomicUsize;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::logical_expr::{col, lit};
use prost::Message as _;
use sluice_core::harness::{Build, Harness};
use sluice_core::lookup::LookupCacheOptions;
use sluice_core::schema::encode_schema;
use sluice_core::Message;
use sluice_proto::ConnectorSpec;

use super::*;

/// Customers: (id, name); ids may repeat (a non-key lookup column).
struct Customers {
    rows: Vec<(i64, &'static str)>,
    asked: AtomicUsize,
    calls: AtomicUsize,
    /// Calls that fail (retriably) before the table answers.
    failures: AtomicUsize,
    fatal: bool,
    delay: Duration,
}

impl Customers {
    fn new(rows: Vec<(i64, &'static str)>) -> Self {
        Customers {
            rows,
            asked: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
            fatal: false,
            delay: Duration::ZERO,
        }
    }
}

fn table_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)]))
}

#[async_trait]
impl LookupSource for Customers {
    async fn lookup(&self, keys: &RecordBatch) -> std::result::Result<Vec<RecordBatch>, LookupFailure> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if self.fatal {
            return Err(LookupFailure { message: "relation \"customers\" does not exist".into(), retriable: false });
        }
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(LookupFailure { message: "connection refused".into(), retriable: true });
        }
        self.asked.fetch_add(keys.num_rows(), Ordering::SeqCst);
        let ids = keys.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        Ok((0..keys.num_rows())
            .map(|i| {
                let found: Vec<_> = self.rows.iter().filter(|(id, _)| *id == ids.value(i)).collect();
                RecordBatch::try_new(
                    table_schema(),
                    vec![
                        Arc::new(Int64Array::from(found.iter().map(|r| r.0).collect::<Vec<_>>())),
                        Arc::new(StringArray::from(found.iter().map(|r| r.1).collect::<Vec<_>>())),
                    ],
                )
                .unwrap()
            })
            .collect())
    }
}

/// Orders: (oid, cust), then the key column (cust again).
fn input() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("oid", DataType::Int64, false),
        Field::new("cust", DataType::Int64, true),
        Field::new("__join_key_0", DataType::Int64, true),
    ]))
}

fn output() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("oid", DataType::Int64, true),
        Field::new("cust", DataType::Int64, true),
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn spec(left_outer: bool, filter: Option<datafusion::logical_expr::Expr>, ordered: bool) -> LookupJoinSpec {
    LookupJoinSpec {
        left_outer,
        input_schema: encode_schema(&input()),
        input_data_columns: 2,
        keys: vec![2],
        table: Some(ConnectorSpec {
            table: "customers".into(),
            schema: encode_schema(&table_schema()),
            ..Default::default()
        }),
        lookup_columns: vec!["id".into()],
        filter: filter.map(|f| crate::expr::encode_expr(&f).unwrap()),
        output_schema: encode_schema(&output()),
        buffer_capacity: 100,
        timeout_ms: 60_000,
        ordered,
    }
}

fn build(spec: LookupJoinSpec, source: Arc<Customers>, cache: Option<LookupCacheOptions>, max_retries: u32) -> Build {
    let bytes = spec.encode_to_vec();
    Arc::new(move || {
        let spec = LookupJoinSpec::decode(bytes.as_slice()).unwrap();
        let options = LookupOptions { cache, max_retries };
        Ok(Box::new(LookupJoin::from_spec(&spec, source.clone(), options)?) as Box<dyn Operator>)
    })
}

fn customers() -> Arc<Customers> {
    Arc::new(Customers::new(vec![(10, "ann"), (20, "bob"), (20, "bo"), (30, "cy")]))
}

#[tokio::test]
async fn inner_joins_drop_misses_and_left_joins_pad_them_in_input_order() {
    let source = customers();
    let mut h =
        Harness::start(build(spec(false, None, true), source.clone(), None, 0), input(), None, 1).await.unwrap();
    h.push("1 10 10\n2 99 99\n3 20 20\n4 null null\n5 30 30").await.unwrap();
    h.finish().await.unwrap();
    assert_eq!(h.rows_of(0), vec!["1 10 10 ann", "3 20 20 bob", "3 20 20 bo", "5 30 30 cy"]);

    let mut h = Harness::start(build(spec(true, None, true), source.clone(), None, 0), input(), None, 1).await.unwrap();
    h.push("1 10 10\n2 99 99\n3 20 20\n4 null null").await.unwrap();
    h.finish().await.unwrap();
    assert_eq!(h.rows_of(0), vec!["1 10 10 ann", "2 99 null null", "3 20 20 bob", "3 20 20 bo", "4 null null null"]);
}

#[tokio::test]
async fn a_residual_condition_filters_matches_and_a_left_join_pads_rows_left_without_one() {
    let condition = col("name").not_eq(lit("bob")).and(col("oid").lt(lit(3i64)).or(col("name").eq(lit("bob"))));
    let mut h =
        Harness::start(build(spec(true, Some(condition), true), customers(), None, 0), input(), None, 1).await.unwrap();
    h.push("1 10 10\n2 20 20\n3 30 30").await.unwrap();
    h.finish().await.unwrap();
    // 1: ann passes. 2: bob fails (name = bob but not <> bob), bo passes. 3: cy fails (oid 3).
    assert_eq!(h.rows_of(0), vec!["1 10 10 ann", "2 20 20 bo", "3 30 null null"]);
}

#[tokio::test]
async fn the_cache_answers_repeated_keys_and_counts_hits_and_misses() {
    let cache = LookupCacheOptions {
        max_rows: 100,
        expire_after_write: Some(Duration::from_secs(3600)),
        expire_after_access: None,
        cache_missing_key: true,
    };
    let source = customers();
    let mut h =
        Harness::start(build(spec(true, None, true), source.clone(), Some(cache), 0), input(), None, 1).await.unwrap();
    h.push("1 10 10\n2 99 99").await.unwrap();
    h.finish().await.unwrap();
    assert_eq!(source.asked.load(Ordering::SeqCst), 2);
    // A second batch after the first was answered: every key comes from the cache.
    let mut rows = String::new();
    for i in 0..50 {
        rows.push_str(&format!("{} {} {}\n", 100 + i, [10, 99][i % 2], [10, 99][i % 2]));
    }
    h.push(&rows).await.unwrap();
    h.finish().await.unwrap();
    assert_eq!(source.asked.load(Ordering::SeqCst), 2, "hits and cached misses ask nothing");
    assert_eq!(h.metric("lookup.customers.cache_hits"), 50);
    assert_eq!(h.metric("lookup.customers.cache_misses"), 2);
    assert_eq!(h.rows_of(0).len(), 52);

    // Without a cache each distinct key in flight is asked once, and asked again later.
    let source = customers();
    let mut h = Harness::start(build(spec(true, None, true), source.clone(), None, 0), input(), None, 1).await.unwrap();
    h.push("1 10 10\n2 10 10\n3 10 10").await.unwrap();
    h.finish().await.unwrap();
    h.push("4 10 10").await.unwrap();
    h.finish().await.unwrap();
    assert_eq!(source.asked.load(Ordering::SeqCst), 2, "rows sharing a key in flight share one lookup");
}

#[tokio::test]
async fn retriable_failures_are_retried_and_others_fail_naming_the_table() {
    let source = customers();
    source.failures.store(2, Ordering::SeqCst);
    let mut h =
        Harness::start(build(spec(false, None, true), source.clone(), None, 3), input(), None, 1).await.unwrap();
    h.push("1 10 10").await.unwrap();
    h.finish().await.unwrap();
    assert_eq!(h.rows_of(0), vec!["1 10 10 ann"]);
    assert_eq!(h.metric("lookup.customers.retries"), 2);

    let source = customers();
    source.failures.store(5, Ordering::SeqCst);
    let mut h = Harness::start(build(spec(false, None, true), source, None, 2), input(), None, 1).await.unwrap();
    h.push("1 10 10").await.unwrap();
    let err = h.finish().await.unwrap_err().to_string();
    assert!(
        err.contains("table 'customers'") && err.contains("after 3 attempt(s)") && err.contains("connection refused"),
        "{err}"
    );

    let mut fatal = Customers::new(vec![]);
    fatal.fatal = true;
    let fatal = Arc::new(fatal);
    let mut h = Harness::start(build(spec(false, None, true), fatal.clone(), None, 5), input(), None, 1).await.unwrap();
    h.push("1 10 10").await.unwrap();
    let err = h.finish().await.unwrap_err().to_string();
    assert!(err.contains("does not exist") && err.contains("after 1 attempt(s)"), "{err}");
    assert_eq!(fatal.calls.load(Ordering::SeqCst), 1, "an error of the statement is not retried");
}

#[tokio::test]
async fn a_barrier_does_not_wait_for_lookups_and_a_restore_asks_again() {
    let mut slow = Customers::new(vec![(10, "ann"), (20, "bob")]);
    slow.delay = Duration::from_secs(3600);
    let mut h =
        Harness::start(build(spec(false, None, true), Arc::new(slow), None, 0), input(), None, 1).await.unwrap();
    h.push("1 10 10\n2 20 20\n3 30 30").await.unwrap();
    let snapshot = h.checkpoint(1).await.unwrap();
    assert!(h.rows_of(0).is_empty());
    assert!(matches!(h.output(0).last(), Some(Message::Barrier(_))));
    drop(h);

    let fresh = customers();
    let mut restored =
        Harness::restore(build(spec(false, None, true), fresh.clone(), None, 0), input(), None, 2, &snapshot)
            .await
            .unwrap();
    restored.finish().await.unwrap();
    assert_eq!(restored.sorted_rows(), vec!["1 10 10 ann", "2 20 20 bo", "2 20 20 bob", "3 30 30 cy"]);
    assert_eq!(fresh.asked.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_watermark_waits_for_the_rows_before_it() {
    let mut h = Harness::start(build(spec(false, None, false), customers(), None, 0), input(), None, 1).await.unwrap();
    h.push("1 10 10\n2 20 20").await.unwrap();
    h.watermark(5).await.unwrap();
    h.finish().await.unwrap();
    let output = h.output(0);
    let watermark = output.iter().position(|m| matches!(m, Message::Watermark(5))).expect("the watermark left");
    let rows_before: usize =
        output[..watermark].iter().map(|m| if let Message::Data(b) = m { b.num_rows() } else { 0 }).sum();
    assert_eq!(rows_before, 3, "every row admitted before the watermark left before it");
}
