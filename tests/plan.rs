//! Planning scripts into job graphs: shapes, parallelism, schemas and sharing of sources.
//!
//! Every planned graph is also checked for consistency (see [`planned`]): each operator
//! reads the schema its predecessor writes, every edge carries the schema of the vertex it
//! leaves, and every Calc, aggregate and watermark operator can be built by the task
//! side, which decodes its expressions against its input schema.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use sluice_core::job_graph::check;
use sluice_core::schema::decode_schema;
use sluice_core::secrets::SecretSources;
use sluice_core::Collector;
use sluice_proto::operator_spec::Kind;
use sluice_proto::{AggregateFunction, CalcSpec, JobGraph, OperatorSpec, Partitioning};
use sluice_sql::{plan, Plan, PlanOptions};
use sluice_taskmanager::factory::{build_operator, BuildContext};

fn build_context() -> BuildContext {
    BuildContext { batch_rows: 1024, secrets: SecretSources::default() }
}

/// Plans `script` and checks the graph: its structure, the schemas between operators and
/// along edges, and that every transform can be built from its spec.
fn planned(script: &str, options: &PlanOptions) -> Plan {
    let p = match plan(script, options) {
        Ok(p) => p,
        Err(e) => panic!("{}", e.render(script)),
    };
    if let Err(why) = check(&p.graph) {
        panic!("invalid graph: {why}\n{}", p.explain);
    }
    let g = &p.graph;
    for vertex in &g.vertices {
        let incoming: Vec<_> = g.edges.iter().filter(|e| e.target_vertex == vertex.id).collect();
        let is_source = matches!(vertex.operators[0].kind, Some(Kind::Source(_)));
        assert_eq!(
            is_source,
            incoming.is_empty(),
            "vertex {} starts with a source iff nothing flows into it\n{}",
            vertex.id,
            p.explain
        );
        for edge in incoming {
            let upstream = g.vertices[edge.source_vertex as usize].operators.last().unwrap();
            let carried = schema_of(&edge.schema);
            assert_eq!(
                output_schema(upstream).as_ref(),
                &carried,
                "edge {} -> {} carries another schema than '{}' writes",
                edge.source_vertex,
                edge.target_vertex,
                upstream.name
            );
            assert_reads(&vertex.operators[0], &carried, &p.explain);
            if edge.partitioning == Partitioning::Hash as i32 {
                assert!(!edge.key_columns.is_empty(), "a hash edge needs keys\n{}", p.explain);
                assert!(
                    edge.key_columns.iter().all(|&k| (k as usize) < carried.fields().len()),
                    "hash keys out of range\n{}",
                    p.explain
                );
            } else {
                assert!(edge.key_columns.is_empty(), "only hash edges have keys\n{}", p.explain);
            }
        }
        for pair in vertex.operators.windows(2) {
            assert_reads(&pair[1], &output_schema(&pair[0]), &p.explain);
        }
        for op in &vertex.operators {
            if matches!(
                op.kind,
                Some(
                    Kind::Calc(_)
                        | Kind::KeyedAggregate(_)
                        | Kind::Watermark(_)
                        | Kind::WindowAggregate(_)
                        | Kind::TopN(_)
                )
            ) {
                if let Err(e) = build_operator(op, &build_context()) {
                    panic!("operator '{}' cannot be built: {e}\n{}", op.name, p.explain);
                }
            }
        }
    }
    p
}

/// Asserts that `op` reads rows of `schema`. Sinks are compared by column names and types:
/// a sink declares its own nullability.
fn assert_reads(op: &OperatorSpec, schema: &Schema, explain: &str) {
    let input = match &op.kind {
        Some(Kind::Calc(c)) => schema_of(&c.input_schema),
        Some(Kind::KeyedAggregate(a)) => schema_of(&a.input_schema),
        Some(Kind::Watermark(w)) => schema_of(&w.input_schema),
        Some(Kind::MlPredict(m)) => schema_of(&m.input_schema),
        Some(Kind::WindowAggregate(a)) => schema_of(&a.input_schema),
        Some(Kind::TopN(t)) => schema_of(&t.input_schema),
        Some(Kind::LookupJoin(l)) => schema_of(&l.input_schema),
        Some(Kind::MlEvaluate(e)) => schema_of(&e.input_schema),
        // VECTOR_SEARCH reads the searching rows on one edge, the searched table on the other.
        Some(Kind::VectorSearch(v)) => {
            let (rows, items) = (schema_of(&v.input_schema), schema_of(&v.items_schema));
            assert!(&rows == schema || &items == schema, "'{}' reads neither of its inputs\n{explain}", op.name);
            return;
        }
        // A join reads one of its two sides on each edge.
        Some(Kind::Join(j)) => {
            let (left, right) = (schema_of(&j.left_schema), schema_of(&j.right_schema));
            assert!(&left == schema || &right == schema, "'{}' reads neither of its sides\n{explain}", op.name);
            return;
        }
        // A windowing function's output is its input plus the window columns.
        Some(Kind::WindowTvf(w)) => {
            let output = schema_of(&w.output_schema);
            let kept: Vec<_> = output.fields().iter().take(output.fields().len() - 3).cloned().collect();
            Schema::new(kept)
        }
        Some(Kind::Sink(s)) => {
            let loose =
                |s: &Schema| s.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect::<Vec<_>>();
            // A sink takes the row-kind column of an updating stream off itself.
            let data = sluice_core::changelog::without_row_kind(schema);
            assert_eq!(loose(&schema_of(&s.schema)), loose(&data), "sink '{}' gets other columns\n{explain}", op.name);
            return;
        }
        other => panic!("unexpected operator in a chain: {other:?}\n{explain}"),
    };
    assert_eq!(&input, schema, "'{}' reads another schema than it is given\n{explain}", op.name);
}

fn output_schema(op: &OperatorSpec) -> SchemaRef {
    Arc::new(match &op.kind {
        Some(Kind::Source(s)) => schema_of(&s.schema),
        Some(Kind::Calc(c)) => schema_of(&c.output_schema),
        Some(Kind::KeyedAggregate(a)) => schema_of(&a.output_schema),
        Some(Kind::Watermark(w)) => schema_of(&w.input_schema),
        Some(Kind::MlPredict(m)) => schema_of(&m.output_schema),
        Some(Kind::WindowTvf(w)) => schema_of(&w.output_schema),
        Some(Kind::WindowAggregate(a)) => schema_of(&a.output_schema),
        Some(Kind::TopN(t)) => schema_of(&t.output_schema),
        Some(Kind::Join(j)) => schema_of(&j.output_schema),
        Some(Kind::LookupJoin(l)) => schema_of(&l.output_schema),
        Some(Kind::VectorSearch(v)) => schema_of(&v.output_schema),
        Some(Kind::MlEvaluate(e)) => schema_of(&e.output_schema),
        other => panic!("no output: {other:?}"),
    })
}

fn names(graph: &JobGraph) -> Vec<&str> {
    graph.vertices.iter().map(|v| v.name.as_str()).collect()
}

/// The vertices as operator chains, leaving out the Calcs that pass their input through
/// unchanged, which the planner still adds (and names `calc()`) for `SELECT *` and the like:
/// see `pass_through_projections_add_no_operator`. A vertex of only such Calcs keeps them.
fn shape(graph: &JobGraph) -> Vec<String> {
    graph
        .vertices
        .iter()
        .map(|v| {
            let kept: Vec<&str> = v.operators.iter().map(|o| o.name.as_str()).filter(|n| *n != "calc()").collect();
            if kept.is_empty() {
                v.name.clone()
            } else {
                kept.join(" -> ")
            }
        })
        .collect()
}

fn parallelisms(graph: &JobGraph) -> Vec<u32> {
    graph.vertices.iter().map(|v| v.parallelism).collect()
}

fn parallel(p: u32) -> PlanOptions {
    PlanOptions { default_parallelism: Some(p), job_name: None }
}

fn schema_of(bytes: &[u8]) -> Schema {
    decode_schema(bytes).expect("schema decodes").as_ref().clone()
}

fn columns(schema: &Schema) -> Vec<(&str, &DataType, bool)> {
    schema.fields().iter().map(|f| (f.name().as_str(), f.data_type(), f.is_nullable())).collect()
}

fn column_names(schema: &Schema) -> Vec<&str> {
    schema.fields().iter().map(|f| f.name().as_str()).collect()
}

fn find(graph: &JobGraph, pred: impl Fn(&OperatorSpec) -> bool) -> &OperatorSpec {
    graph.vertices.iter().flat_map(|v| &v.operators).find(|o| pred(o)).expect("operator present")
}

fn calcs(graph: &JobGraph) -> Vec<&CalcSpec> {
    graph
        .vertices
        .iter()
        .flat_map(|v| &v.operators)
        .filter_map(|o| if let Some(Kind::Calc(c)) = &o.kind { Some(c) } else { None })
        .collect()
}

/// The projections of a Calc as the task plans them (`name@index` for a column).
fn projections(calc: &CalcSpec) -> Vec<String> {
    let input = decode_schema(&calc.input_schema).unwrap();
    calc.projections.iter().map(|p| sluice_transforms::expr::decode_physical(p, &input).unwrap().to_string()).collect()
}

/// Runs one operator on one batch, as a task would (the transforms finish synchronously).
fn run(op: &OperatorSpec, batch: RecordBatch) -> Vec<RecordBatch> {
    let mut operator = build_operator(op, &build_context()).unwrap();
    let mut out = Collector::default();
    let mut future = operator.process_batch(batch, &mut out);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(result) => result.unwrap(),
        Poll::Pending => panic!("'{}' did not finish at once", op.name),
    }
    drop(future);
    out.batches()
}

fn batch(schema: &Schema, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(Arc::new(schema.clone()), columns).unwrap()
}

const ORDERS: &str = "CREATE TABLE orders (
  id BIGINT NOT NULL,
  customer STRING,
  amount DOUBLE,
  quantity INT
) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '100'
);
";

#[test]
fn datagen_project_print_is_one_chained_vertex() {
    let script = format!(
        "{ORDERS}CREATE TABLE out (who STRING, amount DOUBLE) WITH ('connector' = 'print');
INSERT INTO out SELECT customer, o.amount FROM orders AS o;"
    );
    let p = planned(&script, &PlanOptions::default());
    let g = &p.graph;
    // The query's projection, then the renaming to the sink's columns.
    assert_eq!(
        names(g),
        ["source: orders(datagen) -> calc(customer, amount) -> calc(who, amount) -> sink: out(print)"]
    );
    assert_eq!(parallelisms(g), [1]);
    assert!(g.edges.is_empty());
    assert_eq!(g.name, "insert-into_out");
    let ops = &g.vertices[0].operators;
    assert_eq!(ops.len(), 4);
    let Some(Kind::Source(source)) = &ops[0].kind else { panic!("{:?}", ops[0]) };
    assert_eq!(source.table, "orders");
    assert_eq!(source.connector, "datagen");
    assert_eq!(source.options.get("number-of-rows").map(String::as_str), Some("100"));
    assert_eq!(source.options.get("connector").map(String::as_str), Some("datagen"));
    let source_schema = schema_of(&source.schema);
    assert_eq!(source_schema.field(0), &Field::new("id", DataType::Int64, false));
    assert_eq!(source_schema.field(3), &Field::new("quantity", DataType::Int32, true));
    let Some(Kind::Calc(select)) = &ops[1].kind else { panic!("{:?}", ops[1]) };
    assert_eq!(select.filter, None);
    assert_eq!(projections(select), ["customer@1", "amount@2"]);
    let Some(Kind::Calc(rename)) = &ops[2].kind else { panic!("{:?}", ops[2]) };
    assert_eq!(projections(rename), ["customer@0", "amount@1"]);
    let out = Schema::new(vec![Field::new("who", DataType::Utf8, true), Field::new("amount", DataType::Float64, true)]);
    assert_eq!(schema_of(&rename.output_schema), out);
    let Some(Kind::Sink(sink)) = &ops[3].kind else { panic!("{:?}", ops[3]) };
    assert_eq!(schema_of(&sink.schema), out);
    assert!(
        p.explain.contains(
            "== Job graph: insert-into_out ==
vertex 0 [parallelism 1]
  source: orders(datagen)
  calc(customer, amount)
  calc(who, amount)
  sink: out(print)
"
        ),
        "{}",
        p.explain
    );
    assert!(
        p.explain.starts_with("== Logical plan 1 ==\nINSERT INTO out\nProjection: o.customer, o.amount\n"),
        "{}",
        p.explain
    );
}

#[test]
fn group_by_count_at_parallelism_four_hashes_on_the_key() {
    let script = "CREATE TABLE clicks (url STRING, user_id BIGINT) WITH ('connector' = 'datagen');
CREATE TABLE counts (user_id BIGINT, clicks BIGINT) WITH ('connector' = 'print');
INSERT INTO counts SELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id;";
    let p = planned(script, &parallel(4));
    let g = &p.graph;
    assert_eq!(g.vertices.len(), 2);
    assert_eq!(g.vertices[0].name, "source: clicks(datagen) -> calc(user_id)");
    let agg_ops: Vec<&str> = g.vertices[1].operators.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(agg_ops[0], "aggregate(group by user_id: count(Int64(1)))");
    assert!(agg_ops[1].starts_with("calc(user_id, clicks := count(Int64(1))"), "{agg_ops:?}");
    assert_eq!(agg_ops[2], "sink: counts(print)");
    assert_eq!(parallelisms(g), [4, 4]);
    assert_eq!(g.edges.len(), 1);
    let edge = &g.edges[0];
    assert_eq!((edge.source_vertex, edge.target_vertex), (0, 1));
    assert_eq!(edge.partitioning, Partitioning::Hash as i32);
    // The key indexes the pre-projection, which holds only the key here.
    assert_eq!(edge.key_columns, [0]);
    assert_eq!(columns(&schema_of(&edge.schema)), [("user_id", &DataType::Int64, true)]);
    let Some(Kind::Calc(pre)) = &g.vertices[0].operators[1].kind else { panic!() };
    assert_eq!(projections(pre), ["user_id@1"]);
    let Some(Kind::KeyedAggregate(agg)) = &g.vertices[1].operators[0].kind else { panic!() };
    assert_eq!(agg.key_columns, [0]);
    assert_eq!(agg.aggregates.len(), 1);
    assert_eq!(agg.aggregates[0].function, AggregateFunction::CountStar as i32);
    assert_eq!(agg.aggregates[0].column, None);
    assert_eq!(schema_of(&agg.input_schema).fields().len(), 1);
    let out = schema_of(&agg.output_schema);
    assert_eq!(out.field(0).name(), "user_id");
    assert_eq!(out.field(1).data_type(), &DataType::Int64);
    // A Calc names the aggregate's column as the query does; the aggregate updates its
    // results (streaming mode), so the row kind goes along as the hidden last column.
    assert_eq!(out.field(2).name(), sluice_core::changelog::ROW_KIND_COLUMN);
    assert!(agg.emit_changelog);
    let Some(Kind::Calc(after)) = &g.vertices[1].operators[1].kind else { panic!() };
    assert_eq!(column_names(&schema_of(&after.output_schema)), ["user_id", "clicks", "__sluice_row_kind"]);
    assert!(
        p.explain.contains("vertex 1 [parallelism 4]\n  aggregate(group by user_id: count(Int64(1)))\n"),
        "{}",
        p.explain
    );
    assert!(p.explain.contains("edge 0 -> 1: HASH[user_id]\n"), "{}", p.explain);
}

#[test]
fn aggregates_in_another_order_get_a_pre_projection_and_a_reordering_calc() {
    let script = format!(
        "{ORDERS}SET 'parallelism.default' = '3';
CREATE TABLE stats (total DOUBLE, customer STRING, n BIGINT, most INT, first_id BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO stats
SELECT SUM(amount), customer, COUNT(quantity), MAX(quantity), min(id) AS first_id
FROM orders GROUP BY customer;"
    );
    let p = planned(&script, &PlanOptions::default());
    let g = &p.graph;
    assert_eq!(
        names(g),
        [
            "source: orders(datagen) -> calc(customer, __agg_input_1, __agg_input_2, __agg_input_3, __agg_input_4)",
            // The name is cut at 100 characters.
            "aggregate(group by customer: sum(orders.amount), count(orders.quantity), max(orders.quantity), min(… \
             -> calc(sum(orders.amount), customer, count(orders.quantity), max(orders.quantity), first_id) \
             -> calc(total, customer, n, most, first_id) -> sink: stats(blackhole)"
        ]
    );
    assert_eq!(parallelisms(g), [3, 3]);
    assert_eq!(g.config.get("parallelism.default").map(String::as_str), Some("3"));
    // The pre-projection: group keys first, then one column per aggregate argument.
    let Some(Kind::Calc(pre)) = &g.vertices[0].operators[1].kind else { panic!() };
    assert_eq!(projections(pre), ["customer@1", "amount@2", "quantity@3", "quantity@3", "id@0"]);
    assert_eq!(
        columns(&schema_of(&pre.output_schema)),
        [
            ("customer", &DataType::Utf8, true),
            ("__agg_input_1", &DataType::Float64, true),
            ("__agg_input_2", &DataType::Int32, true),
            ("__agg_input_3", &DataType::Int32, true),
            ("__agg_input_4", &DataType::Int64, false),
        ]
    );
    assert_eq!(g.edges[0].key_columns, [0]);
    assert!(p.explain.contains("edge 0 -> 1: HASH[customer]\n"), "{}", p.explain);
    let agg = find(g, |o| matches!(o.kind, Some(Kind::KeyedAggregate(_))));
    let Some(Kind::KeyedAggregate(agg)) = &agg.kind else { unreachable!() };
    assert_eq!(agg.key_columns, [0]);
    let calls: Vec<(i32, Option<u32>)> = agg.aggregates.iter().map(|c| (c.function, c.column)).collect();
    assert_eq!(
        calls,
        [
            (AggregateFunction::Sum as i32, Some(1)),
            (AggregateFunction::Count as i32, Some(2)),
            (AggregateFunction::Max as i32, Some(3)),
            (AggregateFunction::Min as i32, Some(4)),
        ]
    );
    // Keys, then the aggregates under DataFusion's names, then the row kind of its updates.
    assert_eq!(
        columns(&schema_of(&agg.output_schema)),
        [
            ("customer", &DataType::Utf8, true),
            ("sum(orders.amount)", &DataType::Float64, true),
            ("count(orders.quantity)", &DataType::Int64, false),
            ("max(orders.quantity)", &DataType::Int32, true),
            ("min(orders.id)", &DataType::Int64, true),
            ("__sluice_row_kind", &DataType::Int8, false),
        ]
    );
    let ops = &g.vertices[1].operators;
    let Some(Kind::Calc(reorder)) = &ops[1].kind else { panic!() };
    assert_eq!(
        projections(reorder),
        [
            "sum(orders.amount)@1",
            "customer@0",
            "count(orders.quantity)@2",
            "max(orders.quantity)@3",
            "min(orders.id)@4",
            "__sluice_row_kind@5"
        ]
    );
    let Some(Kind::Calc(rename)) = &ops[2].kind else { panic!() };
    assert_eq!(
        column_names(&schema_of(&rename.output_schema)),
        ["total", "customer", "n", "most", "first_id", "__sluice_row_kind"]
    );
}

#[test]
fn the_command_line_parallelism_overrides_set() {
    let script = format!(
        "{ORDERS}SET 'parallelism.default' = '3';
CREATE TABLE out (id BIGINT NOT NULL) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT id FROM orders;"
    );
    assert_eq!(parallelisms(&planned(&script, &parallel(5)).graph), [5]);
    assert_eq!(parallelisms(&planned(&script, &PlanOptions::default()).graph), [3]);
    let without_set = script.replace("SET 'parallelism.default' = '3';", "");
    assert_eq!(parallelisms(&planned(&without_set, &PlanOptions::default()).graph), [1]);
    let p = planned(&script, &parallel(5));
    assert_eq!(names(&p.graph), ["source: orders(datagen) -> calc(id) -> sink: out(blackhole)"]);
    assert!(p.explain.contains("vertex 0 [parallelism 5]\n"), "{}", p.explain);
    // The SET is still passed on in the job's configuration.
    assert_eq!(p.graph.config.get("parallelism.default").map(String::as_str), Some("3"));
}

#[test]
fn a_statement_set_shares_one_source_between_two_inserts() {
    let tables = format!(
        "{ORDERS}CREATE TABLE a (id BIGINT NOT NULL) WITH ('connector' = 'print', 'print-identifier' = 'a');
CREATE TABLE b (customer STRING, n BIGINT) WITH ('connector' = 'blackhole');
"
    );
    let sets = [
        "EXECUTE STATEMENT SET BEGIN
  INSERT INTO a SELECT id FROM orders;
  INSERT INTO b SELECT customer, COUNT(*) FROM orders GROUP BY customer;
END;",
        "BEGIN STATEMENT SET;
INSERT INTO a SELECT id FROM orders;
INSERT INTO b SELECT customer, COUNT(*) FROM orders GROUP BY customer;
END;",
        // Without a statement set, the INSERTs of a script still form one job.
        "INSERT INTO a SELECT id FROM orders;
INSERT INTO b SELECT customer, COUNT(*) FROM orders GROUP BY customer;",
    ];
    for set in sets {
        let p = planned(&format!("{tables}{set}"), &parallel(2));
        let g = &p.graph;
        let sources: Vec<u32> =
            g.vertices.iter().filter(|v| matches!(v.operators[0].kind, Some(Kind::Source(_)))).map(|v| v.id).collect();
        assert_eq!(sources, [0], "{}", p.explain);
        // The source fans out, so nothing chains to it: each INSERT's first operator starts
        // a vertex, and the GROUP BY's pre-projection hashes to the aggregate.
        assert_eq!(
            names(g),
            [
                "source: orders(datagen)",
                "calc(id) -> sink: a(print)",
                "calc(customer)",
                "aggregate(group by customer: count(Int64(1))) -> calc(customer, count(*)) -> calc(customer, n) -> sink: b(blackhole)"
            ]
        );
        assert_eq!(parallelisms(g), [2, 2, 2, 2]);
        let edges: Vec<(u32, u32, i32)> =
            g.edges.iter().map(|e| (e.source_vertex, e.target_vertex, e.partitioning)).collect();
        assert_eq!(
            edges,
            [
                (0, 1, Partitioning::Forward as i32),
                (0, 2, Partitioning::Forward as i32),
                (2, 3, Partitioning::Hash as i32)
            ]
        );
        assert!(
            p.explain.contains("edge 0 -> 1: FORWARD\nedge 0 -> 2: FORWARD\nedge 2 -> 3: HASH[customer]\n"),
            "{}",
            p.explain
        );
        assert!(
            p.explain.contains("== Logical plan 1 ==\nINSERT INTO a\n")
                && p.explain.contains("== Logical plan 2 ==\nINSERT INTO b\n")
        );
        assert_eq!(g.name, "insert-into_a,b");
    }
}

#[test]
fn comments_inside_with_are_ignored() {
    let script = "-- the source
CREATE TABLE src (
  n INT -- a number
) WITH (
  -- where rows come from
  'connector' = 'datagen', -- generated
  /* how many */ 'number-of-rows' = '5'
  -- done
);
CREATE TABLE dst (n INT) WITH ('connector' = 'print' -- stdout
);
INSERT INTO dst SELECT * FROM src; -- go";
    let p = planned(script, &PlanOptions::default());
    assert_eq!(shape(&p.graph), ["source: src(datagen) -> sink: dst(print)"]);
    assert_eq!(p.graph.vertices.len(), 1);
    let Some(Kind::Source(source)) = &p.graph.vertices[0].operators[0].kind else { panic!() };
    let keys: Vec<&str> =
        source.options.keys().map(String::as_str).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    assert_eq!(keys, ["connector", "number-of-rows"]);
    let Some(Kind::Sink(sink)) = &p.graph.vertices[0].operators.last().unwrap().kind else { panic!() };
    assert_eq!(sink.options.keys().collect::<Vec<_>>(), ["connector"]);
}

#[test]
fn table_parallelism_options_and_rebalancing() {
    let script = "CREATE TABLE src (k STRING, v BIGINT) WITH ('connector' = 'datagen', 'scan.parallelism' = '2');
CREATE TABLE dst (k STRING, total BIGINT) WITH ('connector' = 'print', 'sink.parallelism' = '1');
INSERT INTO dst SELECT k, SUM(v) AS total FROM src GROUP BY k;";
    let p = planned(script, &parallel(4));
    let g = &p.graph;
    assert_eq!(
        shape(g),
        ["source: src(datagen)", "aggregate(group by k: sum(src.v)) -> calc(k, total)", "sink: dst(print)"]
    );
    assert_eq!(parallelisms(g), [2, 4, 1]);
    let kinds: Vec<i32> = g.edges.iter().map(|e| e.partitioning).collect();
    assert_eq!(kinds, [Partitioning::Hash as i32, Partitioning::Rebalance as i32]);
    assert_eq!(g.edges[0].key_columns, [0]);
    assert!(p.explain.contains("vertex 0 [parallelism 2]\n"), "{}", p.explain);
    assert!(p.explain.contains("vertex 2 [parallelism 1]\n  sink: dst(print)\n"), "{}", p.explain);
    assert!(p.explain.contains("edge 0 -> 1: HASH[k]\nedge 1 -> 2: REBALANCE\n"), "{}", p.explain);
}

#[test]
fn select_star_into_an_identical_table_needs_no_conversion() {
    let script = "CREATE TABLE src (a INT NOT NULL, b STRING) WITH ('connector' = 'datagen');
CREATE TABLE same (a INT NOT NULL, b STRING) WITH ('connector' = 'blackhole');
CREATE TABLE renamed (x INT NOT NULL, y STRING) WITH ('connector' = 'blackhole');
INSERT INTO same SELECT * FROM src;
INSERT INTO renamed SELECT src.* FROM src;";
    let p = planned(script, &PlanOptions::default());
    assert_eq!(
        shape(&p.graph),
        ["source: src(datagen)", "sink: same(blackhole)", "calc(x, y) -> sink: renamed(blackhole)"]
    );
    // Every Calc on the way to `same` passes its input through.
    let same = &p.graph.vertices[1].operators;
    for op in &same[..same.len() - 1] {
        let Some(Kind::Calc(calc)) = &op.kind else { panic!("{op:?}") };
        assert_eq!(calc.filter, None);
        assert_eq!(calc.input_schema, calc.output_schema);
        assert_eq!(projections(calc), ["a@0", "b@1"]);
    }
}

#[test]
fn pass_through_projections_add_no_operator() {
    let script = "CREATE TABLE src (a INT NOT NULL, b STRING) WITH ('connector' = 'datagen');
CREATE TABLE same (a INT NOT NULL, b STRING) WITH ('connector' = 'blackhole');
INSERT INTO same SELECT * FROM src;";
    let p = planned(script, &PlanOptions::default());
    assert_eq!(names(&p.graph), ["source: src(datagen) -> sink: same(blackhole)"], "{}", p.explain);
}

#[test]
fn job_names_come_from_options_then_set() {
    // Table names are looked up case-insensitively; column names are case-sensitive.
    let script = "SET 'pipeline.name' = 'nightly';
CREATE TABLE src (a INT) WITH ('connector' = 'datagen');
CREATE TABLE dst (a INT) WITH ('connector' = 'blackhole');
insert into DST select a from SRC";
    assert_eq!(planned(script, &PlanOptions::default()).graph.name, "nightly");
    let named = PlanOptions { default_parallelism: None, job_name: Some("mine".into()) };
    let p = planned(script, &named);
    assert_eq!(p.graph.name, "mine");
    assert!(p.explain.contains("== Job graph: mine ==\n"), "{}", p.explain);
    assert_eq!(p.graph.config.get("pipeline.name").map(String::as_str), Some("nightly"));
    let unnamed = script.replace("SET 'pipeline.name' = 'nightly';\n", "");
    assert_eq!(planned(&unnamed, &PlanOptions::default()).graph.name, "insert-into_dst");
}

#[test]
fn all_supported_column_types_plan() {
    let script = "CREATE TABLE t (
  a STRING, b VARCHAR(20), c CHAR(3), d BOOLEAN, e TINYINT, f SMALLINT, g INT, h INTEGER,
  i BIGINT, j FLOAT, k REAL, l DOUBLE, m DOUBLE PRECISION, n DATE, o TIMESTAMP, p TIMESTAMP(3)
) WITH ('connector' = 'datagen');
CREATE TABLE u (a STRING, b VARCHAR(20), c CHAR(3), d BOOLEAN, e TINYINT, f SMALLINT, g INT, h INTEGER,
  i BIGINT, j FLOAT, k REAL, l DOUBLE, m DOUBLE PRECISION, n DATE, o TIMESTAMP, p TIMESTAMP(3)
) WITH ('connector' = 'blackhole');
INSERT INTO u SELECT * FROM t;";
    let p = planned(script, &PlanOptions::default());
    assert_eq!(shape(&p.graph), ["source: t(datagen) -> sink: u(blackhole)"]);
    let ops = &p.graph.vertices[0].operators;
    let Some(Kind::Source(source)) = &ops[0].kind else { panic!() };
    let types: Vec<DataType> = schema_of(&source.schema).fields().iter().map(|f| f.data_type().clone()).collect();
    use arrow::datatypes::TimeUnit::Millisecond;
    assert_eq!(
        types,
        [
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Boolean,
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float32,
            DataType::Float64,
            DataType::Float64,
            DataType::Date32,
            DataType::Timestamp(Millisecond, None),
            DataType::Timestamp(Millisecond, None),
        ]
    );
    let Some(Kind::Sink(sink)) = &ops.last().unwrap().kind else { panic!() };
    assert_eq!(schema_of(&sink.schema), schema_of(&source.schema));
}

#[test]
fn where_case_and_arithmetic_are_one_calc_with_the_filter() {
    let script = format!(
        "{ORDERS}CREATE TABLE sized (id BIGINT, size STRING, doubled DOUBLE) WITH ('connector' = 'print');
INSERT INTO sized
SELECT id, CASE WHEN amount > 100 THEN 'big' ELSE 'small' END AS size, amount * 2 AS doubled
FROM orders
WHERE quantity > 1 AND customer IS NOT NULL;"
    );
    let p = planned(&script, &parallel(2));
    let g = &p.graph;
    assert_eq!(g.vertices.len(), 1);
    let ops = &g.vertices[0].operators;
    assert_eq!(ops.len(), 3, "{}", p.explain);
    assert!(
        ops[1].name.starts_with(
            "calc(where CAST(quantity AS Int64) > Int64(1) AND customer IS NOT NULL; id, size := CASE WHEN amoun"
        ),
        "{}",
        ops[1].name
    );
    let Some(Kind::Calc(calc)) = &ops[1].kind else { panic!("{:?}", ops[1]) };
    assert!(calc.filter.is_some());
    assert_eq!(
        columns(&schema_of(&calc.output_schema)),
        [("id", &DataType::Int64, false), ("size", &DataType::Utf8, false), ("doubled", &DataType::Float64, true)]
    );
    // Run it: rows 1 (quantity 1) and 3 (no customer) are filtered out.
    let input = schema_of(&calc.input_schema);
    let rows = batch(
        &input,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            Arc::new(StringArray::from(vec![Some("a"), Some("b"), None, Some("d")])),
            Arc::new(Float64Array::from(vec![Some(500.0), Some(150.0), Some(1.0), None])),
            Arc::new(Int32Array::from(vec![1, 2, 3, 4])),
        ],
    );
    let out = run(&ops[1], rows);
    assert_eq!(out.len(), 1);
    let out = &out[0];
    assert_eq!(out.column(0).as_primitive::<Int64Type>().values(), &[2, 4]);
    let sizes: Vec<Option<&str>> = out.column(1).as_string::<i32>().iter().collect();
    assert_eq!(sizes, [Some("big"), Some("small")]);
    let doubled: Vec<Option<f64>> = out.column(2).as_primitive::<Float64Type>().iter().collect();
    assert_eq!(doubled, [Some(300.0), None]);
}

#[test]
fn computed_columns_and_the_watermark_join_the_source_chain() {
    let script = "CREATE TABLE ev (
  id BIGINT,
  price DOUBLE,
  qty INT,
  ts TIMESTAMP(3),
  total AS price * qty,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'datagen');
CREATE TABLE totals (id BIGINT, total DOUBLE) WITH ('connector' = 'print');
INSERT INTO totals SELECT id, total FROM ev;";
    let p = planned(script, &parallel(2));
    let g = &p.graph;
    assert_eq!(
        names(g),
        ["source: ev(datagen) -> calc(id, price, qty, ts, total := price * CAST(qty AS Float64)) \
          -> watermark(for ts as ts - INTERVAL '5' SECOND) -> calc(id, total) -> sink: totals(print)"]
    );
    assert_eq!(parallelisms(g), [2]);
    let ops = &g.vertices[0].operators;
    // The connector reads only the physical columns.
    let Some(Kind::Source(source)) = &ops[0].kind else { panic!() };
    assert_eq!(column_names(&schema_of(&source.schema)), ["id", "price", "qty", "ts"]);
    let Some(Kind::Calc(computed)) = &ops[1].kind else { panic!() };
    assert_eq!(computed.filter, None);
    assert_eq!(column_names(&schema_of(&computed.output_schema)), ["id", "price", "qty", "ts", "total"]);
    assert_eq!(schema_of(&computed.output_schema).field(4).data_type(), &DataType::Float64);
    let Some(Kind::Watermark(watermark)) = &ops[2].kind else { panic!() };
    assert_eq!(watermark.column, "ts");
    assert_eq!(schema_of(&watermark.input_schema), schema_of(&computed.output_schema));
    // The computed column is computed.
    let input = schema_of(&computed.input_schema);
    let rows = batch(
        &input,
        vec![
            Arc::new(Int64Array::from(vec![7])),
            Arc::new(Float64Array::from(vec![2.5])),
            Arc::new(Int32Array::from(vec![4])),
            Arc::new(arrow::array::TimestampMillisecondArray::from(vec![1_000])),
        ],
    );
    let out = run(&ops[1], rows);
    assert_eq!(out[0].column(4).as_primitive::<Float64Type>().value(0), 10.0);
}

#[test]
fn a_view_is_planned_into_the_insert_that_reads_it() {
    let script = format!(
        "{ORDERS}CREATE VIEW big_orders AS SELECT id, customer FROM orders WHERE amount > 10;
CREATE VIEW named (k, n) AS SELECT customer, COUNT(*) FROM orders GROUP BY customer;
CREATE TABLE out (id BIGINT NOT NULL, customer STRING) WITH ('connector' = 'print');
CREATE TABLE counts (k STRING, n BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT * FROM big_orders;
INSERT INTO counts SELECT * FROM named;"
    );
    let p = planned(&script, &parallel(2));
    let g = &p.graph;
    assert_eq!(
        shape(g),
        [
            "source: orders(datagen)",
            "calc(where amount > CAST(Int64(10) AS Float64); id, customer) -> sink: out(print)",
            "calc(customer)",
            "aggregate(group by customer: count(Int64(1))) -> calc(customer, count(*)) -> calc(k, n) -> sink: counts(blackhole)"
        ]
    );
    let sources = g.vertices.iter().filter(|v| matches!(v.operators[0].kind, Some(Kind::Source(_)))).count();
    assert_eq!(sources, 1, "both views read the one source");
    assert!(
        p.explain
            .contains("INSERT INTO out\nProjection: big_orders.id, big_orders.customer\n  TableScan: big_orders\n"),
        "{}",
        p.explain
    );
    let rename = find(g, |o| o.name == "calc(k, n)");
    let Some(Kind::Calc(rename)) = &rename.kind else { unreachable!() };
    assert_eq!(projections(rename), ["customer@0", "count(*)@1", "__sluice_row_kind@2"]);
}

#[test]
fn a_bare_select_is_printed() {
    let script = format!("{ORDERS}SELECT id, amount FROM orders WHERE amount > 1;\nSELECT customer FROM orders;");
    let p = planned(&script, &parallel(3));
    let g = &p.graph;
    assert_eq!(
        names(g),
        [
            "source: orders(datagen)",
            "calc(where amount > CAST(Int64(1) AS Float64); id, amount) -> sink: select_1(print)",
            "calc(customer) -> sink: select_2(print)"
        ]
    );
    assert_eq!(parallelisms(g), [3, 3, 3]);
    let Some(Kind::Sink(sink)) = &g.vertices[1].operators[1].kind else { panic!() };
    assert_eq!(sink.table, "select_1");
    assert_eq!(sink.connector, "print");
    assert_eq!(sink.options.get("connector").map(String::as_str), Some("print"));
    assert_eq!(
        columns(&schema_of(&sink.schema)),
        [("id", &DataType::Int64, false), ("amount", &DataType::Float64, true)]
    );
    assert!(
        p.explain.starts_with("== Logical plan 1 ==\nSELECT (printed)\nProjection: orders.id, orders.amount\n"),
        "{}",
        p.explain
    );
    assert_eq!(g.name, "insert-into_select_1,select_2");
}

const MODEL: &str =
    "CREATE TABLE reviews (id BIGINT, body STRING, score INT, response STRING) WITH ('connector' = 'datagen');
CREATE MODEL sentiment
  INPUT (text STRING, n BIGINT)
  OUTPUT (response STRING, confidence DOUBLE)
  WITH ('provider' = 'openai', 'api_key' = '{{ secret.openai_key }}', 'model' = 'gpt-4o-mini');
";

#[test]
fn ml_predict_is_an_operator_with_the_model_and_its_columns() {
    let script = format!(
        "{MODEL}CREATE TABLE scored (id BIGINT, response STRING, response0 STRING, confidence DOUBLE) WITH ('connector' = 'print');
INSERT INTO scored
SELECT id, response, response0, confidence
FROM ML_PREDICT(TABLE reviews, MODEL sentiment, DESCRIPTOR(body, score));"
    );
    let p = planned(&script, &parallel(2));
    let g = &p.graph;
    assert_eq!(
        names(g),
        ["source: reviews(datagen) -> ml_predict(model sentiment, provider openai) -> calc(id, response, response0, confidence) -> sink: scored(print)"]
    );
    assert_eq!(parallelisms(g), [2]);
    let Some(Kind::MlPredict(ml)) = &g.vertices[0].operators[1].kind else { panic!() };
    assert_eq!((ml.model.as_str(), ml.provider.as_str()), ("sentiment", "openai"));
    assert_eq!(ml.descriptor_columns, [1, 2], "body and score");
    assert_eq!(column_names(&schema_of(&ml.input_schema)), ["id", "body", "score", "response"]);
    assert_eq!(
        columns(&schema_of(&ml.model_input_schema)),
        [("text", &DataType::Utf8, true), ("n", &DataType::Int64, true)]
    );
    assert_eq!(
        columns(&schema_of(&ml.model_output_schema)),
        [("response", &DataType::Utf8, true), ("confidence", &DataType::Float64, true)]
    );
    // The input's columns, then the model's; the model's `response` clashes and becomes `response0`.
    assert_eq!(
        columns(&schema_of(&ml.output_schema)),
        [
            ("id", &DataType::Int64, true),
            ("body", &DataType::Utf8, true),
            ("score", &DataType::Int32, true),
            ("response", &DataType::Utf8, true),
            ("response0", &DataType::Utf8, true),
            ("confidence", &DataType::Float64, true),
        ]
    );
    // Options under their canonical keys; the secret is resolved by the task, not here.
    assert_eq!(ml.options.get("api-key").map(String::as_str), Some("{{ secret.openai_key }}"));
    assert_eq!(ml.options.get("model").map(String::as_str), Some("gpt-4o-mini"));
    assert!(ml.config.is_empty());
    let Some(Kind::Calc(select)) = &g.vertices[0].operators[2].kind else { panic!() };
    assert_eq!(projections(select), ["id@0", "response@3", "response0@4", "confidence@5"]);
    // EXPLAIN describes the model without showing the key's reference.
    assert!(
        p.explain.contains("== Models ==\nmodel sentiment (provider openai)\n  INPUT (text STRING, n BIGINT)\n"),
        "{}",
        p.explain
    );
    assert!(
        p.explain.contains(
            "  rows out: (id BIGINT, body STRING, score INT, response STRING, response0 STRING, confidence DOUBLE)\n"
        ),
        "{}",
        p.explain
    );
    assert!(!p.explain.contains("secret.openai_key"), "{}", p.explain);
}

#[test]
fn ml_predict_over_a_view_with_a_config_map_in_a_select() {
    let script = format!(
        "{MODEL}CREATE VIEW texts AS SELECT id, UPPER(body) AS text, CAST(score AS BIGINT) AS n FROM reviews WHERE id > 0;
SELECT id, confidence
FROM TABLE(ML_PREDICT(TABLE texts, MODEL sentiment, DESCRIPTOR(text, n), MAP['async', 'true']))
WHERE confidence > 0.5;"
    );
    let p = planned(&script, &PlanOptions::default());
    let g = &p.graph;
    assert_eq!(
        names(g),
        ["source: reviews(datagen) -> calc(where id > Int64(0); id, text := upper(body), n: BIGINT) \
          -> ml_predict(model sentiment, provider openai) -> calc(where confidence > Float64(0.5); id, confidence) -> sink: select_1(print)"]
    );
    let Some(Kind::MlPredict(ml)) = &g.vertices[0].operators[2].kind else { panic!() };
    assert_eq!(ml.descriptor_columns, [1, 2]);
    assert_eq!(ml.config.get("async").map(String::as_str), Some("true"));
    assert_eq!(column_names(&schema_of(&ml.output_schema)), ["id", "text", "n", "response", "confidence"]);
    assert!(p.explain.contains("  call config: 'async' = 'true'\n"), "{}", p.explain);
}

#[test]
fn an_insert_with_a_column_list_fills_the_other_columns_with_null() {
    let script = format!(
        "{ORDERS}CREATE TABLE wide (a BIGINT, b STRING, c DOUBLE) WITH ('connector' = 'print');
INSERT INTO wide (c, a) SELECT amount, id FROM orders;"
    );
    let p = planned(&script, &PlanOptions::default());
    let g = &p.graph;
    assert_eq!(
        names(g),
        ["source: orders(datagen) -> calc(amount, id) -> calc(a, b := CAST(NULL AS Utf8), c) -> sink: wide(print)"]
    );
    let fill = &g.vertices[0].operators[2];
    let Some(Kind::Calc(calc)) = &fill.kind else { panic!() };
    assert_eq!(
        columns(&schema_of(&calc.output_schema)),
        [("a", &DataType::Int64, true), ("b", &DataType::Utf8, true), ("c", &DataType::Float64, true)]
    );
    let input = schema_of(&calc.input_schema);
    let out =
        run(fill, batch(&input, vec![Arc::new(Float64Array::from(vec![1.5])), Arc::new(Int64Array::from(vec![7]))]));
    assert_eq!(out[0].column(0).as_primitive::<Int64Type>().value(0), 7);
    assert!(out[0].column(1).is_null(0));
    assert_eq!(out[0].column(2).as_primitive::<Float64Type>().value(0), 1.5);
}

#[test]
fn numbers_widen_into_a_sink_but_strings_do_not_become_numbers() {
    let sink = "CREATE TABLE w (q BIGINT, a DOUBLE) WITH ('connector' = 'print');\n";
    let p =
        planned(&format!("{ORDERS}{sink}INSERT INTO w SELECT quantity, amount FROM orders;"), &PlanOptions::default());
    assert_eq!(
        names(&p.graph),
        ["source: orders(datagen) -> calc(quantity, amount) -> calc(q: BIGINT, a) -> sink: w(print)"]
    );
    let widen = &p.graph.vertices[0].operators[2];
    let Some(Kind::Calc(calc)) = &widen.kind else { panic!() };
    assert_eq!(
        columns(&schema_of(&calc.output_schema)),
        [("q", &DataType::Int64, true), ("a", &DataType::Float64, true)]
    );
    let input = schema_of(&calc.input_schema);
    let out = run(
        widen,
        batch(
            &input,
            vec![Arc::new(Int32Array::from(vec![Some(3), None])), Arc::new(Float64Array::from(vec![1.0, 2.0]))],
        ),
    );
    let q: Vec<Option<i64>> = out[0].column(0).as_primitive::<Int64Type>().iter().collect();
    assert_eq!(q, [Some(3), None]);

    let script = format!("{ORDERS}{sink}INSERT INTO w SELECT id, customer FROM orders;");
    let e = plan(&script, &PlanOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 11, column 26: column 2 of the query ('customer', STRING) cannot be written to column 'a' (DOUBLE) of table 'w' \
         (hint: convert it with CAST(... AS DOUBLE))"
    );
    // Converting explicitly is fine.
    let script = format!("{ORDERS}{sink}INSERT INTO w SELECT id, CAST(customer AS DOUBLE) FROM orders;");
    planned(&script, &PlanOptions::default());
}

#[test]
fn having_filters_after_the_aggregate_and_a_global_aggregate_runs_once() {
    let script = format!(
        "{ORDERS}CREATE TABLE busy (id BIGINT, n BIGINT) WITH ('connector' = 'print');
CREATE TABLE total (n BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO busy SELECT id, COUNT(*) AS n FROM orders GROUP BY id HAVING COUNT(*) > 1;
INSERT INTO total SELECT COUNT(*) FROM orders;"
    );
    let p = planned(&script, &parallel(3));
    let g = &p.graph;
    let having = find(g, |o| o.name.starts_with("calc(where count(Int64(1)) > Int64(1); id, n := count(Int64(1))"));
    let Some(Kind::Calc(having)) = &having.kind else { unreachable!() };
    assert!(having.filter.is_some());
    // A global aggregate groups on a constant in one subtask, then drops the constant.
    let global = g.vertices.iter().find(|v| v.operators[0].name == "aggregate(count(Int64(1)))").expect(&p.explain);
    assert_eq!(global.parallelism, 1);
    let edge = g.edges.iter().find(|e| e.target_vertex == global.id).unwrap();
    assert_eq!(edge.partitioning, Partitioning::Hash as i32);
    let Some(Kind::KeyedAggregate(agg)) = &global.operators[0].kind else { panic!() };
    assert_eq!(agg.key_columns, [0]);
    let last_calc =
        global.operators.iter().rev().find_map(|o| if let Some(Kind::Calc(c)) = &o.kind { Some(c) } else { None });
    assert_eq!(
        columns(&schema_of(&last_calc.unwrap().output_schema)),
        [("n", &DataType::Int64, true), ("__sluice_row_kind", &DataType::Int8, false)]
    );
    assert_eq!(calcs(g).iter().filter(|c| c.filter.is_some()).count(), 1);
}

#[test]
fn a_window_aggregate_reads_slices_hashed_on_its_keys_alone() {
    let script = "CREATE TABLE bids (bidtime TIMESTAMP(3), price DOUBLE, item STRING,
  WATERMARK FOR bidtime AS bidtime - INTERVAL '1' SECOND) WITH ('connector' = 'datagen');
SELECT window_start, window_end, item, SUM(price) AS total
FROM TABLE(HOP(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '5' MINUTES, INTERVAL '10' MINUTES))
GROUP BY window_start, window_end, item;";
    let p = planned(script, &parallel(3));
    let g = &p.graph;
    let tvf = find(g, |o| matches!(o.kind, Some(Kind::WindowTvf(_))));
    let Some(Kind::WindowTvf(tvf)) = &tvf.kind else { unreachable!() };
    assert!(tvf.slices, "the windowing function sends slices to the aggregate\n{}", p.explain);
    let agg = find(g, |o| matches!(o.kind, Some(Kind::WindowAggregate(_))));
    let Some(Kind::WindowAggregate(spec)) = &agg.kind else { unreachable!() };
    assert_eq!((spec.window_start_key, spec.window_end_key, spec.window_time_key), (0, 1, None));
    assert_eq!(spec.key_columns, [0, 1, 2]);
    assert_eq!(spec.slices.as_ref().map(|s| (s.size_ms, s.step_ms)), Some((600_000, 300_000)));
    // Rows of an item meet in one subtask whatever their window: the hash key is the item.
    let edge = g.edges.iter().find(|e| e.partitioning == Partitioning::Hash as i32).unwrap();
    assert_eq!(edge.key_columns, [2], "{}", p.explain);
    assert_eq!(column_names(&schema_of(&spec.output_schema))[..3], ["window_start", "window_end", "item"]);
}

#[test]
fn window_columns_used_before_the_group_by_get_whole_windows() {
    // The filter reads window_start: the function must send windows, not slices.
    let script = "CREATE TABLE bids (bidtime TIMESTAMP(3), price DOUBLE,
  WATERMARK FOR bidtime AS bidtime) WITH ('connector' = 'datagen');
SELECT window_start, window_end, COUNT(*)
FROM TABLE(HOP(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '5' MINUTES, INTERVAL '10' MINUTES))
WHERE EXTRACT(MINUTE FROM window_start) < 30
GROUP BY window_start, window_end;";
    let p = planned(script, &parallel(2));
    let Some(Kind::WindowTvf(tvf)) = &find(&p.graph, |o| matches!(o.kind, Some(Kind::WindowTvf(_)))).kind else {
        unreachable!()
    };
    assert!(!tvf.slices, "{}", p.explain);
    let Some(Kind::WindowAggregate(spec)) = &find(&p.graph, |o| matches!(o.kind, Some(Kind::WindowAggregate(_)))).kind
    else {
        unreachable!()
    };
    assert!(spec.slices.is_none());
    // Without a key of its own the aggregate runs once, on a constant key.
    let agg_vertex = p.graph.vertices.iter().find(|v| v.name.contains("window_aggregate")).unwrap();
    assert_eq!(agg_vertex.parallelism, 1, "{}", p.explain);
}

#[test]
fn a_group_window_plans_as_the_window_table_function() {
    let script = "CREATE TABLE tx (customer_id BIGINT, amount DOUBLE, event_time TIMESTAMP(3),
  WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND) WITH ('connector' = 'datagen');
SELECT customer_id, TUMBLE_START(event_time, INTERVAL '1' HOUR) AS window_start, SUM(amount) AS total_amount,
  COUNT(*) AS txn_count, AVG(amount) AS avg_amount
FROM tx
GROUP BY customer_id, TUMBLE(event_time, INTERVAL '1' HOUR);";
    let p = planned(script, &parallel(2));
    let Some(Kind::WindowTvf(tvf)) = &find(&p.graph, |o| matches!(o.kind, Some(Kind::WindowTvf(_)))).kind else {
        unreachable!()
    };
    assert_eq!((tvf.size_ms, tvf.slices), (3_600_000, true));
    let sink = find(&p.graph, |o| matches!(o.kind, Some(Kind::Sink(_))));
    let Some(Kind::Sink(sink)) = &sink.kind else { unreachable!() };
    assert_eq!(
        column_names(&schema_of(&sink.schema)),
        ["customer_id", "window_start", "total_amount", "txn_count", "avg_amount"]
    );
}

#[test]
fn a_rank_filter_over_row_number_plans_a_top_n_hashed_on_its_partition() {
    let script = "CREATE TABLE bids (bidtime TIMESTAMP(3), price DOUBLE, item STRING,
  WATERMARK FOR bidtime AS bidtime - INTERVAL '1' SECOND) WITH ('connector' = 'datagen');
SELECT item, price, rownum FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY item ORDER BY price DESC NULLS FIRST, bidtime) AS rownum FROM bids
) WHERE rownum BETWEEN 2 AND 3 AND price > 1;";
    let p = planned(script, &parallel(3));
    let Some(Kind::TopN(spec)) = &find(&p.graph, |o| matches!(o.kind, Some(Kind::TopN(_)))).kind else {
        unreachable!()
    };
    assert_eq!((spec.rank_start, spec.rank_end, spec.window_end_column), (2, 3, None));
    assert_eq!(spec.partition_columns, [2]);
    let order: Vec<(u32, bool, bool)> = spec.order.iter().map(|s| (s.column, s.descending, s.nulls_first)).collect();
    assert_eq!(order, [(1, true, true), (0, false, true)], "ASC puts NULL first by default, as Flink does");
    assert!(sluice_core::changelog::row_kind_index(&schema_of(&spec.output_schema)).is_some(), "a Top-N updates");
    let edge = p.graph.edges.iter().find(|e| e.partitioning == Partitioning::Hash as i32).unwrap();
    assert_eq!(edge.key_columns, [2], "{}", p.explain);
    assert!(p.explain.contains("top_n(ranks 2..3, partition by item, order by price desc, bidtime)"), "{}", p.explain);
    assert!(p.explain.contains("where price > "), "the rest of the filter stays:\n{}", p.explain);
}

#[test]
fn a_top_n_partitioned_by_window_is_a_window_top_n() {
    let script = "CREATE TABLE bids (bidtime TIMESTAMP(3), price DOUBLE, item STRING,
  WATERMARK FOR bidtime AS bidtime - INTERVAL '1' SECOND) WITH ('connector' = 'datagen');
SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY price DESC) AS rownum
  FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
) WHERE rownum <= 3;";
    let p = planned(script, &parallel(2));
    let Some(Kind::TopN(spec)) = &find(&p.graph, |o| matches!(o.kind, Some(Kind::TopN(_)))).kind else {
        unreachable!()
    };
    let input = schema_of(&spec.input_schema);
    assert_eq!(spec.window_end_column.map(|c| input.field(c as usize).name().as_str()), Some("window_end"));
    assert!(sluice_core::changelog::row_kind_index(&schema_of(&spec.output_schema)).is_none(), "append-only");
    assert!(p.explain.contains("window_top_n(top 3"), "{}", p.explain);
}

#[test]
fn a_join_hashes_both_sides_on_their_keys_into_the_two_inputs_of_one_operator() {
    let script = "CREATE TABLE o (id BIGINT, cust STRING, amount DOUBLE) WITH ('connector' = 'datagen');
CREATE TABLE c (id STRING, name STRING) WITH ('connector' = 'datagen');
SELECT o.id, c.id, c.name FROM o LEFT JOIN c ON o.cust = c.id AND o.amount > 10;";
    let p = planned(script, &parallel(2));
    let Some(Kind::Join(spec)) = &find(&p.graph, |o| matches!(o.kind, Some(Kind::Join(_)))).kind else {
        unreachable!()
    };
    assert_eq!(spec.join_type, sluice_proto::join_spec::JoinType::Left as i32);
    assert!(spec.filter.is_some(), "the other condition stays a residual one\n{}", p.explain);
    let left = schema_of(&spec.left_schema);
    assert_eq!(left.field(spec.left_keys[0] as usize).data_type(), &DataType::Utf8);
    let join_vertex = p.graph.vertices.iter().find(|v| v.name.contains("left_join")).unwrap();
    let mut inputs: Vec<(u32, Vec<u32>)> = p
        .graph
        .edges
        .iter()
        .filter(|e| e.target_vertex == join_vertex.id)
        .map(|e| {
            assert_eq!(e.partitioning, Partitioning::Hash as i32, "{}", p.explain);
            (e.target_input, e.key_columns.clone())
        })
        .collect();
    inputs.sort();
    assert_eq!(inputs.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1], "{}", p.explain);
    let output = schema_of(&spec.output_schema);
    assert_eq!(column_names(&output)[..5], ["o.id", "cust", "amount", "c.id", "name"], "shared names are qualified");
}

#[test]
fn a_join_on_equal_windows_forgets_rows_at_their_window_end() {
    let script = "CREATE TABLE bids (bidtime TIMESTAMP(3), price DOUBLE, item STRING,
  WATERMARK FOR bidtime AS bidtime) WITH ('connector' = 'datagen');
SELECT l.item, r.price FROM
  (SELECT * FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '5' MINUTES))) AS l
  JOIN (SELECT * FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '5' MINUTES))) AS r
  ON l.window_start = r.window_start AND l.window_end = r.window_end AND l.item = r.item;";
    let p = planned(script, &parallel(2));
    let Some(Kind::Join(spec)) = &find(&p.graph, |o| matches!(o.kind, Some(Kind::Join(_)))).kind else {
        unreachable!()
    };
    let interval = spec.interval.as_ref().expect("a window join forgets rows");
    assert_eq!((interval.lower_ms, interval.upper_ms), (1, -1), "rows expire at window_end - 1 ms");
    let (left, right) = (schema_of(&spec.left_schema), schema_of(&spec.right_schema));
    assert_eq!(left.field(interval.left_time as usize).name(), "window_end");
    assert_eq!(right.field(interval.right_time as usize).name(), "window_end");
    assert!(p.explain.contains("inner_window_join("), "{}", p.explain);
}

#[test]
fn a_comma_join_takes_its_equalities_from_where_into_pairwise_joins() {
    let script = "CREATE TABLE a (id BIGINT, x BIGINT) WITH ('connector' = 'datagen');
CREATE TABLE b (id BIGINT, a_id BIGINT, y BIGINT) WITH ('connector' = 'datagen');
CREATE TABLE c (b_id BIGINT, z STRING) WITH ('connector' = 'datagen');
SELECT a.x, b.y, c.z FROM a, b, c WHERE a.id = b.a_id AND b.id = c.b_id AND a.x > b.y AND c.z <> 'q';";
    let p = planned(script, &parallel(2));
    let joins: Vec<&str> = p
        .graph
        .vertices
        .iter()
        .flat_map(|v| &v.operators)
        .filter(|o| matches!(o.kind, Some(Kind::Join(_))))
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(joins.len(), 2, "{}", p.explain);
    assert!(joins.iter().any(|j| j.starts_with("inner_join(on id = a_id; where a.x > b.y")), "{joins:?}");
    assert!(joins.iter().any(|j| j.starts_with("inner_join(on id = b_id; where c.z != Utf8(\"q\")")), "{joins:?}");
    // Without an equality between the tables it is still a cross join, which is refused.
    let cross = "CREATE TABLE a (id BIGINT) WITH ('connector' = 'datagen');
CREATE TABLE b (id BIGINT) WITH ('connector' = 'datagen');
SELECT * FROM a, b WHERE a.id > b.id;";
    let e = plan(cross, &PlanOptions::default()).unwrap_err();
    assert!(e.to_string().contains("a join needs an equality between the two sides' columns"), "{e}");
}

#[test]
fn a_filesystem_table_declared_with_legacy_options_is_looked_up() {
    let script = "CREATE TABLE bid (auction BIGINT, price BIGINT) WITH ('connector' = 'datagen');
CREATE TABLE side_input (key BIGINT, `value` VARCHAR) WITH (
  'connector.type' = 'filesystem', 'connector.path' = 'file:///tmp/side_input.txt', 'format.type' = 'csv');
SELECT B.auction, S.`value`
FROM (SELECT *, PROCTIME() AS p_time FROM bid) B
JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S ON MOD(B.auction, 10000) = S.key;";
    let p = planned(script, &parallel(1));
    let Some(Kind::LookupJoin(spec)) = &find(&p.graph, |o| matches!(o.kind, Some(Kind::LookupJoin(_)))).kind else {
        unreachable!()
    };
    let table = spec.table.as_ref().unwrap();
    assert_eq!(table.connector, "filesystem");
    assert_eq!(table.options.get("path").map(String::as_str), Some("file:///tmp/side_input.txt"));
    assert_eq!(table.options.get("format").map(String::as_str), Some("csv"));
    assert_eq!(spec.lookup_columns, ["key"]);
}

#[test]
fn numbers_are_rounded_into_decimal_columns_and_ranks_go_into_bigint() {
    let script = "CREATE TABLE t (id BIGINT, price BIGINT) WITH ('connector' = 'datagen');
CREATE TABLE out (price DECIMAL(23, 3), rn BIGINT) WITH ('connector' = 'print');
INSERT INTO out SELECT price, rn FROM (
  SELECT 0.908 * price AS price, ROW_NUMBER() OVER (PARTITION BY id ORDER BY price DESC) AS rn FROM t)
WHERE rn <= 3;";
    let p = planned(script, &parallel(1));
    let conform = p
        .graph
        .vertices
        .iter()
        .flat_map(|v| &v.operators)
        .find(|o| o.name.starts_with("calc(price: DECIMAL(23, 3)"))
        .unwrap_or_else(|| panic!("{}", p.explain));
    let Some(Kind::Calc(calc)) = &conform.kind else { panic!() };
    let input = schema_of(&calc.input_schema);
    let price = input.index_of("price").unwrap();
    let rn = input.index_of("rn").unwrap();
    // The other columns are NULL; a row-kind column says +I.
    let mut columns: Vec<ArrayRef> = input
        .fields()
        .iter()
        .map(|f| match f.is_nullable() {
            true => arrow::array::new_null_array(f.data_type(), 2),
            false => Arc::new(arrow::array::Int8Array::from(vec![0, 0])) as ArrayRef,
        })
        .collect();
    columns[price] = Arc::new(Float64Array::from(vec![0.908 * 1_234_567.0, 0.908 * 3.0]));
    columns[rn] = Arc::new(arrow::array::UInt64Array::from(vec![1, 3]));
    let out = run(conform, batch(&input, columns));
    let decimals = out[0].column(0).as_primitive::<arrow::datatypes::Decimal128Type>();
    // 0.908 × 1,234,567 = 1,120,986.836 and 0.908 × 3 = 2.724, exactly, in thousandths.
    assert_eq!(decimals.values().to_vec(), vec![1_120_986_836, 2_724]);
    assert_eq!(out[0].column(1).as_primitive::<Int64Type>().values().to_vec(), vec![1, 3]);
}

/// VECTOR_SEARCH meets the searching rows on a forward edge (input 0) and the searched
/// table broadcast to every subtask (input 1); its output is the rows' columns, the
/// searched table's and `score`, with the LEFT form's outer flag and a bounded table
/// loaded first. Mistakes about its columns are located.
#[test]
fn vector_search_broadcasts_the_searched_table_and_checks_its_columns() {
    let tables = "CREATE TABLE items (id BIGINT, embedding ARRAY<FLOAT>, title STRING)
    WITH ('connector' = 'filesystem', 'path' = '/tmp/items', 'format' = 'json');
CREATE TABLE q (qid BIGINT, v ARRAY<FLOAT>, label STRING)
    WITH ('connector' = 'filesystem', 'path' = '/tmp/q', 'format' = 'json');
";
    let script = format!(
        "{tables}SELECT q.qid, s.title, s.score FROM q LEFT JOIN LATERAL TABLE(VECTOR_SEARCH(TABLE items, q.v, \
         DESCRIPTOR(embedding), 3, MAP['metric', 'euclidean'])) AS s ON TRUE;"
    );
    let p = planned(&script, &parallel(2));
    let Some(Kind::VectorSearch(spec)) = &find(&p.graph, |o| matches!(o.kind, Some(Kind::VectorSearch(_)))).kind else {
        unreachable!()
    };
    assert!(spec.left_outer && spec.items_bounded, "{}", p.explain);
    assert_eq!((spec.top_k, spec.metric.as_str(), spec.query_column, spec.search_column), (3, "euclidean", 1, 1));
    assert_eq!(
        column_names(&schema_of(&spec.output_schema)),
        ["qid", "v", "label", "id", "embedding", "title", "score"]
    );
    let vertex = p.graph.vertices.iter().find(|v| v.name.contains("vector_search")).unwrap();
    let mut inputs: Vec<(u32, i32)> = p
        .graph
        .edges
        .iter()
        .filter(|e| e.target_vertex == vertex.id)
        .map(|e| (e.target_input, e.partitioning))
        .collect();
    inputs.sort();
    assert_eq!(inputs, [(0, Partitioning::Forward as i32), (1, Partitioning::Broadcast as i32)], "{}", p.explain);
    assert!(p.explain.contains("is bounded; it is loaded into memory"), "{}", p.explain);
    // A view over a bounded table is bounded too.
    let view = format!(
        "{tables}CREATE VIEW titled AS SELECT id, embedding, title FROM items WHERE title IS NOT NULL;
SELECT q.qid, s.title FROM q, LATERAL TABLE(VECTOR_SEARCH(TABLE titled, q.v, DESCRIPTOR(embedding), 3)) AS s;"
    );
    let p = planned(&view, &parallel(2));
    let Some(Kind::VectorSearch(spec)) = &find(&p.graph, |o| matches!(o.kind, Some(Kind::VectorSearch(_)))).kind else {
        unreachable!()
    };
    assert!(spec.items_bounded, "{}", p.explain);

    for (call, needle) in [
        ("VECTOR_SEARCH(TABLE items, q.v, DESCRIPTOR(embeding), 3)", "table 'items' has no column 'embeding'"),
        ("VECTOR_SEARCH(TABLE items, q.v, DESCRIPTOR(title), 3)", "column 'title' of 'items' is STRING, not a vector"),
        ("VECTOR_SEARCH(TABLE items, q.label, DESCRIPTOR(embedding), 3)", "'q.label' is STRING, not a vector"),
        ("VECTOR_SEARCH(TABLE items, q.w, DESCRIPTOR(embedding), 3)", "the rows that search have no column 'q.w'"),
        (
            "VECTOR_SEARCH(TABLE items, q.v, DESCRIPTOR(embedding), 3, MAP['metric', 'manhattan'])",
            "unknown VECTOR_SEARCH metric",
        ),
        ("VECTOR_SEARCH(TABLE items, q.v, DESCRIPTOR(embedding), 3, MAP['metrc', 'dot'])", "did you mean 'metric'?"),
        (
            "VECTOR_SEARCH(TABLE items, q.v, DESCRIPTOR(embedding), 3, MAP['metric', 'dot', 'index', 'hnsw'])",
            "an HNSW index cannot search by 'dot'",
        ),
    ] {
        let script = format!("{tables}SELECT * FROM q, LATERAL TABLE({call}) AS s;");
        let e = plan(&script, &parallel(2)).expect_err(call);
        assert!(e.message.contains(needle) || e.to_string().contains(needle), "{call}: {e}");
    }
}

/// ML_EVALUATE runs the model over the table and one evaluation at parallelism 1; a DOUBLE
/// label makes it a regression, and a label the task cannot use is refused at its name.
#[test]
fn ml_evaluate_plans_the_model_then_one_evaluation() {
    let tables = "CREATE TABLE t (x DOUBLE, y DOUBLE, name STRING)
    WITH ('connector' = 'filesystem', 'path' = '/tmp/t', 'format' = 'json');
CREATE MODEL m INPUT (x DOUBLE) OUTPUT (prediction DOUBLE)
    WITH ('provider' = 'local', 'task' = 'regression', 'model_path' = '/models/m.onnx');
";
    let p = planned(
        &format!("{tables}SELECT * FROM ML_EVALUATE(TABLE t, MODEL m, DESCRIPTOR(y), DESCRIPTOR(x));"),
        &parallel(2),
    );
    let evaluation = find(&p.graph, |o| matches!(o.kind, Some(Kind::MlEvaluate(_))));
    let Some(Kind::MlEvaluate(spec)) = &evaluation.kind else { unreachable!() };
    assert_eq!((spec.task.as_str(), spec.label_column, spec.prediction_column), ("regression", 1, 3));
    assert_eq!(column_names(&schema_of(&spec.output_schema)), ["rows", "mae", "mse", "rmse", "r2"]);
    let vertex = p.graph.vertices.iter().find(|v| v.operators.iter().any(|o| o.name == evaluation.name)).unwrap();
    assert_eq!(vertex.parallelism, 1, "{}", p.explain);
    let e = plan(
        &format!("{tables}SELECT * FROM ML_EVALUATE(TABLE t, MODEL m, DESCRIPTOR(name), DESCRIPTOR(x));"),
        &parallel(2),
    )
    .expect_err("a STRING label");
    assert!(e.message.contains("the label 'name' is STRING"), "{e}");
}
