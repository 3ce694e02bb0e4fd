//! Bad scripts: each error names what is wrong and the exact line and column.

use sluice_sql::{plan, PlanOptions, SqlError};

const TABLES: &str = "CREATE TABLE orders (id BIGINT, customer STRING, amount DOUBLE) WITH ('connector' = 'datagen');
CREATE TABLE out (id BIGINT, customer STRING) WITH ('connector' = 'print');
";

const MODEL: &str = "CREATE MODEL m INPUT (text STRING) OUTPUT (label STRING) WITH ('provider' = 'openai', 'api_key' = 'k', 'model' = 'gpt-4o-mini');\n";

fn error(script: &str, needle: &str) -> SqlError {
    match plan(script, &PlanOptions::default()) {
        Ok(p) => panic!("expected an error containing {needle:?}, got a plan:\n{}", p.explain),
        Err(e) => e,
    }
}

/// Plans `script`, expecting an error whose text contains `needle` at `line`:`column`.
fn expect(script: &str, needle: &str, line: u64, column: u64) {
    let error = error(script, needle);
    let text = error.to_string();
    assert!(text.contains(needle), "expected {needle:?} in:\n{}", error.render(script));
    assert_eq!((error.line, error.column), (line, column), "wrong location for:\n{}", error.render(script));
    assert!(text.starts_with(&format!("line {line}, column {column}: ")), "{text}");
}

/// Like [`expect`], for errors that are not yet located at the offending clause but at the
/// start of the statement (`line`:1); `errors_point_at_the_offending_clause` holds where
/// they should be.
fn expect_in_statement(script: &str, needle: &str, line: u64) {
    expect(script, needle, line, 1);
}

/// `TABLES` followed by `line3` (and more lines).
fn with_tables(rest: &str) -> String {
    format!("{TABLES}{rest}")
}

#[test]
fn malformed_sql() {
    expect(&with_tables("INSERT INTO out SELECT (id FROM orders;"), "syntax error: expected ), found: FROM", 3, 28);
}

#[test]
fn unexpected_end_of_statement() {
    expect(&with_tables("INSERT INTO out SELECT id, customer FROM"), "found: the end of the statement", 3, 41);
}

#[test]
fn unterminated_string() {
    expect(&with_tables("INSERT INTO out SELECT id, 'customer FROM orders;"), "Unterminated string literal", 3, 28);
}

#[test]
fn unknown_table_suggests_the_closest() {
    expect(
        &with_tables("INSERT INTO out SELECT id, customer FROM ordrs;"),
        "unknown table 'ordrs' (hint: did you mean 'orders'?)",
        3,
        42,
    );
}

#[test]
fn unknown_sink_table() {
    expect(&with_tables("INSERT INTO outt SELECT id, customer FROM orders;"), "unknown table 'outt'", 3, 13);
}

#[test]
fn unknown_column_suggests_the_closest() {
    expect(
        &with_tables("INSERT INTO out SELECT id, custmer FROM orders;"),
        "unknown column 'custmer' (hint: did you mean 'customer'?)",
        3,
        28,
    );
}

#[test]
fn unknown_column_in_where() {
    expect(
        &with_tables("INSERT INTO out SELECT id, customer FROM orders\nWHERE custmer IS NULL;"),
        "unknown column 'custmer' (hint: did you mean 'customer'?)",
        4,
        7,
    );
}

#[test]
fn unknown_qualifier() {
    expect(&with_tables("INSERT INTO out SELECT o.id, customer FROM orders;"), "unknown column 'o.id'", 3, 24);
}

#[test]
fn ambiguous_column() {
    expect(
        &with_tables("INSERT INTO out SELECT id, o.customer FROM orders AS o, orders AS p;"),
        "Ambiguous reference to unqualified field id",
        3,
        24,
    );
}

#[test]
fn unknown_type_lists_the_supported_ones() {
    let script = "CREATE TABLE t (id BIGINT, price MONEY) WITH ('connector' = 'datagen');";
    expect(script, "unsupported column type MONEY; supported types are STRING", 1, 34);
}

#[test]
fn misspelt_option_is_found_by_the_connector() {
    let script = "CREATE TABLE src (id BIGINT) WITH (
  'connector' = 'datagen',
  'number-of-row' = '10');
CREATE TABLE dst (id BIGINT) WITH ('connector' = 'print');
INSERT INTO dst SELECT id FROM src;";
    expect(
        script,
        "table 'src' (connector 'datagen'): unknown option 'number-of-row'; did you mean 'number-of-rows'?",
        3,
        3,
    );
}

#[test]
fn unknown_connector() {
    let script = "CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagne');
CREATE TABLE dst (id BIGINT) WITH ('connector' = 'print');
INSERT INTO dst SELECT id FROM src;";
    expect(script, "unknown connector 'datagne'; did you mean 'datagen'?", 1, 50);
}

#[test]
fn sink_only_connector_read_as_a_source() {
    expect(
        &with_tables("INSERT INTO out SELECT * FROM out;"),
        "table 'out': connector 'print' cannot be read from; such tables use datagen, filesystem",
        3,
        31,
    );
}

#[test]
fn bad_sink_parallelism() {
    let script = "CREATE TABLE orders (id BIGINT, customer STRING, amount DOUBLE) WITH ('connector' = 'datagen');
CREATE TABLE out (id BIGINT, customer STRING) WITH ('connector' = 'print', 'sink.parallelism' = '0');
INSERT INTO out SELECT id, customer FROM orders;";
    expect(script, "option 'sink.parallelism' must be at least 1", 2, 76);
}

#[test]
fn column_count_differs_from_the_sink() {
    expect(
        &with_tables("INSERT INTO out SELECT id FROM orders;"),
        "the query returns 1 column(s) but INSERT INTO out expects 2 (hint: out has columns (id BIGINT, customer STRING))",
        3,
        1,
    );
}

#[test]
fn column_type_differs_from_the_sink() {
    expect(
        &with_tables("INSERT INTO out SELECT amount, customer FROM orders;"),
        "column 1 of the query ('amount', DOUBLE) cannot be written to column 'id' (BIGINT) of table 'out' \
         (hint: convert it with CAST(... AS BIGINT))",
        3,
        24,
    );
}

#[test]
fn column_type_differs_from_a_listed_sink_column() {
    expect(
        &with_tables("INSERT INTO out (customer, id) SELECT customer, amount FROM orders;"),
        "column 2 of the query ('amount', DOUBLE) cannot be written to column 'id' (BIGINT) of table 'out' \
         (hint: convert it with CAST(... AS BIGINT))",
        3,
        28,
    );
}

#[test]
fn unknown_column_in_the_insert_column_list() {
    expect(
        &with_tables("INSERT INTO out (id, custmer) SELECT id, customer FROM orders;"),
        "table 'out' has no column 'custmer' (hint: did you mean 'customer'?)",
        3,
        22,
    );
}

#[test]
fn a_not_null_column_left_out_of_the_column_list() {
    expect(
        &format!("{TABLES}CREATE TABLE strict (id BIGINT NOT NULL, customer STRING) WITH ('connector' = 'print');\nINSERT INTO strict (customer) SELECT customer FROM orders;"),
        "column 'id' of table 'strict' is NOT NULL but gets no value",
        4,
        1,
    );
}

#[test]
fn insert_into_a_view() {
    expect(
        &with_tables(
            "CREATE VIEW v AS SELECT id, customer FROM orders;\nINSERT INTO v SELECT id, customer FROM orders;",
        ),
        "'v' is not a table; INSERT INTO needs a table",
        4,
        13,
    );
}

#[test]
fn column_beside_an_aggregate_without_group_by() {
    expect(
        &with_tables("INSERT INTO out SELECT id, COUNT(*) FROM orders;"),
        "column 'id' must be in GROUP BY or inside an aggregate function (hint: add 'id' to GROUP BY, or aggregate it, e.g. MAX(id))",
        3,
        24,
    );
}

#[test]
fn column_neither_grouped_nor_aggregated() {
    expect(
        &with_tables("INSERT INTO out SELECT id, customer FROM orders GROUP BY id;"),
        "column 'customer' must be in GROUP BY or inside an aggregate function (hint: add 'customer' to GROUP BY, or aggregate it, e.g. MAX(customer))",
        3,
        28,
    );
}

#[test]
fn sum_of_a_string() {
    let script = with_tables("INSERT INTO out SELECT id, SUM(customer) FROM orders GROUP BY id;");
    let e = error(&script, "SUM");
    assert!(!e.message.contains("Internal error"), "{}", e.render(&script));
    assert!(e.message.to_lowercase().contains("sum") && e.message.contains("STRING"), "{}", e.render(&script));
    assert_eq!((e.line, e.column), (3, 28), "{}", e.render(&script));
}

#[test]
fn unsupported_aggregates() {
    expect(
        &with_tables("INSERT INTO out SELECT id, CAST(STDDEV(amount) AS STRING) FROM orders GROUP BY id;"),
        "aggregate function 'stddev' is not supported yet (hint: supported: COUNT, SUM, MIN, MAX, AVG, FIRST_VALUE, \
         LAST_VALUE, ARRAY_AGG, LISTAGG, with DISTINCT and FILTER (WHERE ...))",
        3,
        33,
    );
    expect(
        &with_tables("INSERT INTO out SELECT id, CAST(ARRAY_AGG(customer ORDER BY id) AS STRING) FROM orders GROUP BY id;"),
        "ORDER BY inside 'array_agg' is not supported yet (hint: FIRST_VALUE and LAST_VALUE take rows in arrival order)",
        3,
        33,
    );
}

#[test]
fn star_with_group_by() {
    expect(
        &with_tables("INSERT INTO out SELECT * FROM orders GROUP BY id;"),
        "column 'customer' must be in GROUP BY or inside an aggregate function",
        3,
        24,
    );
}

#[test]
fn arithmetic_on_a_string() {
    expect(
        &with_tables("INSERT INTO out SELECT id + customer, customer FROM orders;"),
        "Cannot coerce arithmetic expression Int64 + Utf8 to valid types",
        3,
        24,
    );
}

#[test]
fn unknown_function() {
    expect(&with_tables("INSERT INTO out SELECT id, foo(customer) FROM orders;"), "unknown function 'foo'", 3, 28);
}

#[test]
fn unknown_function_suggests_the_closest() {
    expect(&with_tables("INSERT INTO out SELECT id, uper(customer) FROM orders;"), "'upper'", 3, 28);
}

#[test]
fn where_must_be_a_condition() {
    expect(
        &with_tables("INSERT INTO out SELECT id, customer FROM orders\nWHERE amount;"),
        "Cannot create filter with non-boolean predicate 'orders.amount' returning Float64",
        4,
        7,
    );
}

#[test]
fn subqueries_are_not_supported_yet() {
    let script = with_tables("INSERT INTO out SELECT id, customer FROM orders\nWHERE id IN (SELECT id FROM orders);");
    let e = error(&script, "subquery");
    assert!(e.message.contains("subquery") && e.message.contains("not supported"), "{}", e.render(&script));
    assert!(!e.message.contains("serialize"), "{}", e.render(&script));
}

#[test]
fn a_join_without_an_equality_is_refused() {
    expect_in_statement(
        &with_tables("INSERT INTO out SELECT o.id, o.customer FROM orders AS o JOIN orders AS p ON o.id < p.id;"),
        "a join needs an equality between the two sides' columns",
        3,
    );
}

#[test]
fn duplicate_table() {
    expect(
        &with_tables("CREATE TABLE Orders (x INT) WITH ('connector' = 'datagen');"),
        "table 'Orders' already exists (hint: it was created at line 1, column 14",
        3,
        14,
    );
}

#[test]
fn duplicate_column() {
    expect(
        "CREATE TABLE t (a INT, b INT, A BIGINT) WITH ('connector' = 'datagen');",
        "duplicate column 'A' in table 't'",
        1,
        31,
    );
}

#[test]
fn missing_connector() {
    expect(
        &with_tables("CREATE TABLE nowhere (x INT) WITH ('format' = 'json');"),
        "table 'nowhere' has no 'connector' option",
        3,
        14,
    );
}

#[test]
fn no_insert() {
    expect(TABLES, "the script has no INSERT INTO statement or query; nothing to run", 1, 1);
}

#[test]
fn unsupported_statement_kind() {
    expect(&with_tables("CREATE FUNCTION f AS 'x';"), "CREATE FUNCTION statements are not supported", 3, 1);
}

#[test]
fn bad_parallelism_setting() {
    expect(
        &format!("SET 'parallelism.default' = 'many';\n{TABLES}INSERT INTO out SELECT id, customer FROM orders;"),
        "'parallelism.default' = 'many' is not a positive integer",
        1,
        29,
    );
}

#[test]
fn one_sink_written_twice() {
    expect(
        &with_tables(
            "INSERT INTO out SELECT id, customer FROM orders;\nINSERT INTO out SELECT id, customer FROM orders;",
        ),
        "table 'out' is already written by an earlier INSERT of this job",
        4,
        13,
    );
}

#[test]
fn insert_before_create_sees_no_table() {
    expect(
        &format!("INSERT INTO out SELECT id, customer FROM orders;\n{TABLES}"),
        "unknown table 'out' (hint: declare it first with CREATE TABLE)",
        1,
        13,
    );
}

#[test]
fn order_by_off_time_limit_0_and_values_are_refused() {
    expect(
        &with_tables("INSERT INTO out SELECT id, customer FROM orders ORDER BY id;"),
        "ORDER BY in a streaming query must start with a time attribute, ascending",
        3,
        58,
    );
    expect_in_statement(
        &with_tables("INSERT INTO out SELECT id, customer FROM orders LIMIT 0;"),
        "LIMIT 0 keeps no rows",
        3,
    );
    expect_in_statement(
        &with_tables("INSERT INTO out VALUES (1, 'a');"),
        "queries without a FROM table are not supported in streaming jobs (hint: read from a table declared with CREATE TABLE)",
        3,
    );
}

#[test]
fn ml_predict_unknown_model() {
    expect(
        &format!("{TABLES}{MODEL}SELECT * FROM ML_PREDICT(TABLE orders, MODEL mm, DESCRIPTOR(customer));"),
        "unknown model 'mm' (hint: did you mean 'm'?)",
        4,
        46,
    );
}

#[test]
fn ml_predict_unknown_input() {
    expect(
        &format!("{TABLES}{MODEL}SELECT * FROM ML_PREDICT(TABLE ordrs, MODEL m, DESCRIPTOR(customer));"),
        "unknown table 'ordrs' (hint: did you mean 'orders'?)",
        4,
        32,
    );
}

#[test]
fn ml_predict_descriptor_columns() {
    expect(
        &format!("{TABLES}{MODEL}SELECT * FROM ML_PREDICT(TABLE orders, MODEL m, DESCRIPTOR(custmer));"),
        "unknown column 'custmer' in DESCRIPTOR of ML_PREDICT over 'orders' (hint: did you mean 'customer'?)",
        4,
        60,
    );
    expect(
        &format!("{TABLES}{MODEL}SELECT * FROM ML_PREDICT(TABLE orders, MODEL m, DESCRIPTOR(customer, id));"),
        "DESCRIPTOR names 2 column(s) but model 'm' takes 1 input(s): (text STRING) (hint: list one input column per model INPUT column, in order)",
        4,
        15,
    );
    expect(
        &format!(
            "{TABLES}{}SELECT * FROM ML_PREDICT(TABLE orders, MODEL m, DESCRIPTOR(amount));",
            MODEL.replace("text STRING", "text DATE")
        ),
        "column 'amount' is DOUBLE but model 'm' input 'text' is DATE, and one cannot be cast to the other",
        4,
        60,
    );
}

#[test]
#[ignore = "planner bug: errors about a join's condition and VALUES still point at the start of the statement"]
fn errors_point_at_the_offending_clause() {
    let cases = [
        (
            "INSERT INTO out SELECT o.id, o.customer FROM orders AS o JOIN orders AS p ON o.id < p.id;",
            "a join needs an equality",
            3,
            58,
        ),
        ("INSERT INTO out VALUES (1, 'a');", "queries without a FROM table", 3, 17),
    ];
    for (rest, needle, line, column) in cases {
        expect(&with_tables(rest), needle, line, column);
    }
}

#[test]
fn window_functions_check_their_input_and_time_column() {
    let window = |rest: &str| with_tables(&format!("INSERT INTO out SELECT id, customer FROM TABLE({rest});"));
    expect(
        &window("TUMBLE(TABLE orders, DESCRIPTOR(amount), INTERVAL '1' HOUR)"),
        "a window needs a time column, but 'amount' is DOUBLE",
        3,
        80,
    );
    expect(
        &window("TUMBLE(TABLE orders, DESCRIPTOR(amont), INTERVAL '1' HOUR)"),
        "unknown column 'amont' in DESCRIPTOR of the window over 'orders' (hint: did you mean 'amount'?)",
        3,
        80,
    );
    expect(
        &window("HOP(TABLE order, DESCRIPTOR(ts), INTERVAL '1' HOUR, INTERVAL '2' HOUR)"),
        "unknown table 'order' (hint: did you mean 'orders'?)",
        3,
        58,
    );
}

#[test]
fn a_window_over_a_table_needs_its_event_time() {
    let script = "CREATE TABLE ev (ts TIMESTAMP(3), k STRING) WITH ('connector' = 'datagen');\n\
                  SELECT k FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '1' MINUTE));";
    expect(
        script,
        "the window function requires the time column to be a time attribute, but 'ts' of table 'ev' is a plain TIMESTAMP(3) \
         (hint: declare it as the table's event time: WATERMARK FOR ts AS ts - INTERVAL '5' SECOND (or window by \
         processing time over a column declared AS PROCTIME()))",
        2,
        49,
    );
}
