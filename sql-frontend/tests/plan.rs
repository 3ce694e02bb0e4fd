//! Planning scripts into job graphs: shapes, parallelism, schemas and sharing of sources.

use arrow::datatypes::{DataType, Field, Schema};
use sluice_operators::graph::check;
use sluice_operators::schema::decode_schema;
use sluice_proto::operator_spec::Kind;
use sluice_proto::{AggregateFunction, JobGraph, OperatorSpec, Partitioning};
use sluice_sql::{plan, Plan, PlanOptions};

fn planned(script: &str, options: &PlanOptions) -> Plan {
    match plan(script, options) {
        Ok(p) => {
            if let Err(why) = check(&p.graph) {
                panic!("invalid graph: {why}\n{}", p.explain);
            }
            p
        }
        Err(e) => panic!("{}", e.render(script)),
    }
}

fn names(graph: &JobGraph) -> Vec<&str> {
    graph.vertices.iter().map(|v| v.name.as_str()).collect()
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

fn find(graph: &JobGraph, pred: impl Fn(&OperatorSpec) -> bool) -> &OperatorSpec {
    graph.vertices.iter().flat_map(|v| &v.operators).find(|o| pred(o)).expect("operator present")
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
    assert_eq!(names(g), ["source: orders(datagen) -> project(customer AS who, amount) -> sink: out(print)"]);
    assert_eq!(parallelisms(g), [1]);
    assert!(g.edges.is_empty());
    assert_eq!(g.name, "insert-into_out");
    let ops = &g.vertices[0].operators;
    assert_eq!(ops.len(), 3);
    let Some(Kind::Source(source)) = &ops[0].kind else { panic!("{:?}", ops[0]) };
    assert_eq!(source.table, "orders");
    assert_eq!(source.connector, "datagen");
    assert_eq!(source.options.get("number-of-rows").map(String::as_str), Some("100"));
    assert_eq!(source.options.get("connector").map(String::as_str), Some("datagen"));
    let source_schema = schema_of(&source.schema);
    assert_eq!(source_schema.field(0), &Field::new("id", DataType::Int64, false));
    assert_eq!(source_schema.field(3), &Field::new("quantity", DataType::Int32, true));
    let Some(Kind::Project(project)) = &ops[1].kind else { panic!("{:?}", ops[1]) };
    assert_eq!(project.columns, [1, 2]);
    let out = Schema::new(vec![Field::new("who", DataType::Utf8, true), Field::new("amount", DataType::Float64, true)]);
    assert_eq!(schema_of(&project.output_schema), out);
    let Some(Kind::Sink(sink)) = &ops[2].kind else { panic!("{:?}", ops[2]) };
    assert_eq!(schema_of(&sink.schema), out);
    assert!(p.explain.contains("vertex 0: source: orders(datagen) -> project(customer AS who, amount) -> sink: out(print) [parallelism 1]"), "{}", p.explain);
}

#[test]
fn group_by_count_at_parallelism_four_hashes_on_the_key() {
    let script = "CREATE TABLE clicks (url STRING, user_id BIGINT) WITH ('connector' = 'datagen');
CREATE TABLE counts (user_id BIGINT, clicks BIGINT) WITH ('connector' = 'print');
INSERT INTO counts SELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id;";
    let p = planned(script, &parallel(4));
    let g = &p.graph;
    assert_eq!(names(g), ["source: clicks(datagen)", "aggregate(group by user_id: COUNT(*)) -> sink: counts(print)"]);
    assert_eq!(parallelisms(g), [4, 4]);
    assert_eq!(g.edges.len(), 1);
    let edge = &g.edges[0];
    assert_eq!((edge.source_vertex, edge.target_vertex), (0, 1));
    assert_eq!(edge.partitioning, Partitioning::Hash as i32);
    assert_eq!(edge.key_columns, [1], "user_id is column 1 of clicks");
    assert_eq!(schema_of(&edge.schema).field(1).name(), "user_id");
    let Some(Kind::KeyedAggregate(agg)) = &g.vertices[1].operators[0].kind else { panic!() };
    assert_eq!(agg.key_columns, [1]);
    assert_eq!(agg.aggregates.len(), 1);
    assert_eq!(agg.aggregates[0].function, AggregateFunction::CountStar as i32);
    assert_eq!(agg.aggregates[0].column, None);
    assert_eq!(schema_of(&agg.input_schema).fields().len(), 2);
    // No project after the aggregate: it already writes the sink's schema.
    let out = schema_of(&agg.output_schema);
    assert_eq!(out.field(0).name(), "user_id");
    assert_eq!(out.field(1), &Field::new("clicks", DataType::Int64, true));
    assert!(p.explain.contains("edge 0 -> 1: hash(user_id)"), "{}", p.explain);
}

#[test]
fn aggregates_in_another_order_get_a_project_and_flink_names() {
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
            "source: orders(datagen)",
            "aggregate(group by customer: SUM(amount), COUNT(quantity), MAX(quantity), MIN(id)) -> project(EXPR$0 AS total, customer, EXPR$2 AS n, EXPR$3 AS most, first_id) -> sink: stats(blackhole)"
        ]
    );
    assert_eq!(parallelisms(g), [3, 3]);
    assert_eq!(g.config.get("parallelism.default").map(String::as_str), Some("3"));
    let agg = find(g, |o| matches!(o.kind, Some(Kind::KeyedAggregate(_))));
    let Some(Kind::KeyedAggregate(agg)) = &agg.kind else { unreachable!() };
    assert_eq!(agg.key_columns, [1]);
    let calls: Vec<(i32, Option<u32>)> = agg.aggregates.iter().map(|c| (c.function, c.column)).collect();
    assert_eq!(
        calls,
        [
            (AggregateFunction::Sum as i32, Some(2)),
            (AggregateFunction::Count as i32, Some(3)),
            (AggregateFunction::Max as i32, Some(3)),
            (AggregateFunction::Min as i32, Some(0)),
        ]
    );
    let inner = schema_of(&agg.output_schema);
    let fields: Vec<(&str, &DataType, bool)> =
        inner.fields().iter().map(|f| (f.name().as_str(), f.data_type(), f.is_nullable())).collect();
    assert_eq!(
        fields,
        [
            ("customer", &DataType::Utf8, true),
            ("EXPR$0", &DataType::Float64, true),
            ("EXPR$2", &DataType::Int64, false),
            ("EXPR$3", &DataType::Int32, true),
            ("first_id", &DataType::Int64, true),
        ]
    );
    let project = find(g, |o| matches!(o.kind, Some(Kind::Project(_))));
    let Some(Kind::Project(project)) = &project.kind else { unreachable!() };
    assert_eq!(project.columns, [1, 0, 2, 3, 4]);
    assert_eq!(schema_of(&project.output_schema).field(0).name(), "total");
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
        let sources: Vec<u32> = g
            .vertices
            .iter()
            .filter(|v| matches!(v.operators[0].kind, Some(Kind::Source(_))))
            .map(|v| v.id)
            .collect();
        assert_eq!(sources, [0], "{}", p.explain);
        assert_eq!(
            names(g),
            [
                "source: orders(datagen)",
                "project(id) -> sink: a(print)",
                "aggregate(group by customer: COUNT(*)) -> sink: b(blackhole)"
            ]
        );
        let edges: Vec<(u32, u32, i32)> = g.edges.iter().map(|e| (e.source_vertex, e.target_vertex, e.partitioning)).collect();
        assert_eq!(edges, [(0, 1, Partitioning::Forward as i32), (0, 2, Partitioning::Hash as i32)]);
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
    assert_eq!(names(&p.graph), ["source: src(datagen) -> sink: dst(print)"]);
    let Some(Kind::Source(source)) = &p.graph.vertices[0].operators[0].kind else { panic!() };
    let keys: Vec<&str> = source.options.keys().map(String::as_str).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    assert_eq!(keys, ["connector", "number-of-rows"]);
}

#[test]
fn table_parallelism_options_and_rebalancing() {
    let script = "CREATE TABLE src (k STRING, v BIGINT) WITH ('connector' = 'datagen', 'scan.parallelism' = '2');
CREATE TABLE dst (k STRING, total BIGINT) WITH ('connector' = 'print', 'sink.parallelism' = '1');
INSERT INTO dst SELECT k, SUM(v) AS total FROM src GROUP BY k;";
    let p = planned(script, &parallel(4));
    let g = &p.graph;
    assert_eq!(names(g), ["source: src(datagen)", "aggregate(group by k: SUM(v))", "sink: dst(print)"]);
    assert_eq!(parallelisms(g), [2, 4, 1]);
    let kinds: Vec<i32> = g.edges.iter().map(|e| e.partitioning).collect();
    assert_eq!(kinds, [Partitioning::Hash as i32, Partitioning::Rebalance as i32]);
    assert!(p.explain.contains("edge 1 -> 2: rebalance"), "{}", p.explain);
}

#[test]
fn select_star_into_an_identical_table_needs_no_project() {
    let script = "CREATE TABLE src (a INT NOT NULL, b STRING) WITH ('connector' = 'datagen');
CREATE TABLE same (a INT NOT NULL, b STRING) WITH ('connector' = 'blackhole');
CREATE TABLE renamed (x INT NOT NULL, y STRING) WITH ('connector' = 'blackhole');
INSERT INTO same SELECT * FROM src;
INSERT INTO renamed SELECT src.* FROM src;";
    let p = planned(script, &PlanOptions::default());
    assert_eq!(
        names(&p.graph),
        ["source: src(datagen)", "sink: same(blackhole)", "project(a AS x, b AS y) -> sink: renamed(blackhole)"]
    );
}

#[test]
fn job_names_come_from_options_then_set() {
    let script = "SET 'pipeline.name' = 'nightly';
CREATE TABLE src (a INT) WITH ('connector' = 'datagen');
CREATE TABLE dst (a INT) WITH ('connector' = 'blackhole');
insert into DST select A from SRC";
    assert_eq!(planned(script, &PlanOptions::default()).graph.name, "nightly");
    let named = PlanOptions { default_parallelism: None, job_name: Some("mine".into()) };
    assert_eq!(planned(script, &named).graph.name, "mine");
    assert_eq!(planned(script, &named).graph.config.get("pipeline.name").map(String::as_str), Some("nightly"));
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
    let Some(Kind::Source(source)) = &p.graph.vertices[0].operators[0].kind else { panic!() };
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
}
