use super::*;
use arrow::array::{BooleanArray, Int32Array, StringArray};
use arrow::datatypes::Field;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use AggregateFunction as F;

fn input() -> (Arc<Schema>, RecordBatch) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("v", DataType::Int32, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("keep", DataType::Boolean, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int32Array::from(vec![Some(3), None, Some(1), Some(3), Some(2)])),
            Arc::new(StringArray::from(vec![Some("a"), Some("b"), None, Some("c"), Some("a")])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(true), Some(false), None, Some(true)])),
        ],
    )
    .unwrap();
    (schema, batch)
}

/// Renders one output column's values as text (NULL as "null").
fn render(column: &ArrayRef) -> Vec<String> {
    let options = FormatOptions::default().with_null("null");
    let formatter = ArrayFormatter::try_new(column.as_ref(), &options).unwrap();
    (0..column.len()).map(|i| formatter.value(i).to_string()).collect()
}

/// Accumulates `rows` of the test batch into one group and returns each call's result.
fn aggregate(calls: Vec<Call>, rows: std::ops::Range<usize>) -> Vec<String> {
    let (schema, batch) = input();
    let types =
        calls.iter().map(|c| output_type(c.function, c.column.map(|i| schema.field(i).data_type())).unwrap()).collect();
    let aggregates = Aggregates::new(&schema, calls, types).unwrap();
    let mut accs = aggregates.initial();
    let inputs = aggregates.prepare(&batch).unwrap();
    for row in rows {
        aggregates.accumulate(&mut accs, &inputs, row).unwrap();
    }
    // Through the stored form, as a restored group would be.
    let mut bytes = Vec::new();
    Accumulators(accs).encode(&mut bytes);
    let Accumulators(accs) = Accumulators::decode(&bytes).unwrap();
    aggregates.columns(&[&accs]).unwrap().iter().map(|c| render(c)[0].clone()).collect()
}

#[test]
fn plain_calls_follow_sql_semantics() {
    // v = 3, NULL, 1, 3, 2; s = a, b, NULL, c, a
    let calls = vec![
        Call::new(F::CountStar, None),
        Call::new(F::Count, Some(0)),
        Call::new(F::Sum, Some(0)),
        Call::new(F::Min, Some(0)),
        Call::new(F::Max, Some(1)),
        Call::new(F::Avg, Some(0)),
        Call::new(F::FirstValue, Some(0)),
        Call::new(F::LastValue, Some(1)),
        Call::new(F::ArrayAgg, Some(0)),
        Call::new(F::Listagg, Some(1)),
    ];
    let expected = ["5", "4", "9", "1", "c", "2.25", "3", "a", "[3, null, 1, 3, 2]", "a,b,c,a"];
    assert_eq!(aggregate(calls, 0..5), expected);
}

#[test]
fn distinct_calls_see_each_non_null_value_once() {
    let distinct = |function, column| Call { distinct: true, ..Call::new(function, Some(column)) };
    let calls = vec![
        distinct(F::Count, 0),
        distinct(F::Sum, 0),
        distinct(F::Avg, 0),
        distinct(F::Listagg, 1),
        distinct(F::ArrayAgg, 1),
    ];
    // Distinct v: 1, 2, 3; distinct s: a, b, c (in value order).
    assert_eq!(aggregate(calls, 0..5), ["3", "6", "2.0", "a,b,c", "[a, b, c]"]);
}

#[test]
fn a_filter_counts_only_rows_where_it_is_true() {
    let filtered = |function, column| Call { filter: Some(2), ..Call::new(function, column) };
    // keep = true, true, false, NULL, true: rows 0, 1 and 4 count.
    let calls = vec![
        filtered(F::CountStar, None),
        filtered(F::Sum, Some(0)),
        Call { separator: Some(" | ".into()), ..filtered(F::Listagg, Some(1)) },
        filtered(F::LastValue, Some(0)),
    ];
    assert_eq!(aggregate(calls, 0..5), ["3", "5", "a | b | a", "2"]);
}

#[test]
fn a_group_without_qualifying_rows_gives_nulls_and_zero_counts() {
    let filtered = |function, column| Call { filter: Some(2), ..Call::new(function, column) };
    let calls = vec![
        filtered(F::CountStar, None),
        filtered(F::Sum, Some(0)),
        filtered(F::Min, Some(0)),
        filtered(F::ArrayAgg, Some(0)),
        filtered(F::Listagg, Some(1)),
        Call { distinct: true, ..filtered(F::Count, Some(0)) },
    ];
    // Only row 2 (keep = false) and row 3 (keep = NULL).
    assert_eq!(aggregate(calls, 2..4), ["0", "null", "null", "null", "null", "0"]);
}

#[test]
fn stored_accumulators_reject_damage() {
    let accs = Accumulators(vec![
        Acc::Count(3),
        Acc::SumInt(None),
        Acc::SumFloat(Some(1.5)),
        Acc::Avg { sum: 2.0, count: 4 },
        Acc::Value(Some(vec![1, 2, 3])),
        Acc::Values(vec![Some(vec![4]), None]),
        Acc::Text(Some("x,y".into())),
        Acc::Text(None),
        Acc::Distinct([vec![1], vec![2]].into()),
    ]);
    let mut bytes = Vec::new();
    accs.encode(&mut bytes);
    assert_eq!(Accumulators::decode(&bytes).unwrap(), accs);
    assert!(Accumulators::decode(&bytes[..5]).is_err(), "truncated state is an error");
}

#[test]
fn a_call_whose_result_type_disagrees_with_the_plan_is_refused() {
    let (schema, _) = input();
    let wrong = Aggregates::new(&schema, vec![Call::new(F::Sum, Some(0))], vec![DataType::Utf8]);
    assert!(wrong.is_err());
    let no_listagg_over_ints = Aggregates::new(&schema, vec![Call::new(F::Listagg, Some(0))], vec![DataType::Utf8]);
    assert!(no_listagg_over_ints.is_err());
}

#[test]
fn merged_groups_aggregate_as_one() {
    // Rows 0..2 and 2..5 accumulated apart, then merged, equal rows 0..5 in one group.
    let calls = || {
        vec![
            Call::new(F::CountStar, None),
            Call::new(F::Sum, Some(0)),
            Call::new(F::Min, Some(0)),
            Call::new(F::Avg, Some(0)),
            Call::new(F::FirstValue, Some(1)),
            Call::new(F::LastValue, Some(1)),
            Call::new(F::ArrayAgg, Some(0)),
            Call::new(F::Listagg, Some(1)),
            Call { distinct: true, ..Call::new(F::Count, Some(1)) },
        ]
    };
    let (schema, batch) = input();
    let types = calls()
        .iter()
        .map(|c| output_type(c.function, c.column.map(|i| schema.field(i).data_type())).unwrap())
        .collect();
    let aggregates = Aggregates::new(&schema, calls(), types).unwrap();
    let inputs = aggregates.prepare(&batch).unwrap();
    let part = |rows: std::ops::Range<usize>| {
        let mut accs = aggregates.initial();
        for row in rows {
            aggregates.accumulate(&mut accs, &inputs, row).unwrap();
        }
        accs
    };
    let mut merged = part(0..2);
    aggregates.merge(&mut merged, &part(2..5)).unwrap();
    let whole = part(0..5);
    let render_all = |accs: &[Acc]| -> Vec<String> {
        aggregates.columns(&[accs]).unwrap().iter().map(|c| render(c)[0].clone()).collect()
    };
    assert_eq!(render_all(&merged), render_all(&whole));
    assert_eq!(render_all(&whole), ["5", "9", "1", "2.25", "a", "a", "[3, null, 1, 3, 2]", "a,b,c,a", "3"]);
}
