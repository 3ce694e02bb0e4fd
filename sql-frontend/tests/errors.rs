//! Bad scripts: each error names what is wrong and the exact line and column.

use sluice_sql::{plan, PlanOptions};

const TABLES: &str = "CREATE TABLE orders (id BIGINT, customer STRING, amount DOUBLE) WITH ('connector' = 'datagen');
CREATE TABLE out (id BIGINT, customer STRING) WITH ('connector' = 'print');
";

/// Plans `script`, expecting an error whose text contains `needle` at `line`:`column`.
fn expect(script: &str, needle: &str, line: u64, column: u64) {
    let error = match plan(script, &PlanOptions::default()) {
        Ok(p) => panic!("expected an error containing {needle:?}, got a plan:\n{}", p.explain),
        Err(e) => e,
    };
    let text = error.to_string();
    assert!(text.contains(needle), "expected {needle:?} in:\n{}", error.render(script));
    assert_eq!((error.line, error.column), (line, column), "wrong location for:\n{}", error.render(script));
    assert!(text.starts_with(&format!("line {line}, column {column}: ")), "{text}");
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
        "unknown column 'custmer' in table 'orders' (hint: did you mean 'customer'?)",
        3,
        28,
    );
}

#[test]
fn unknown_qualifier() {
    expect(&with_tables("INSERT INTO out SELECT o.id, customer FROM orders;"), "unknown table or alias 'o'", 3, 24);
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
    expect(&with_tables("INSERT INTO out SELECT * FROM out;"), "connector 'print' cannot be read from", 3, 31);
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
        "the query produces 1 column(s) but sink table 'out' has 2",
        3,
        1,
    );
}

#[test]
fn column_type_differs_from_the_sink() {
    expect(
        &with_tables("INSERT INTO out SELECT amount, customer FROM orders;"),
        "column 'amount' is DOUBLE but sink column 'id' is BIGINT (hint: CAST(amount AS BIGINT) is not supported yet",
        3,
        24,
    );
}

#[test]
fn aggregate_without_group_by() {
    expect(
        &with_tables("INSERT INTO out SELECT id, COUNT(*) FROM orders;"),
        "aggregate COUNT(*) without GROUP BY is not supported yet",
        3,
        28,
    );
}

#[test]
fn column_neither_grouped_nor_aggregated() {
    expect(
        &with_tables("INSERT INTO out SELECT id, customer FROM orders GROUP BY id;"),
        "column 'customer' is neither grouped nor aggregated",
        3,
        28,
    );
}

#[test]
fn sum_of_a_string() {
    expect(
        &with_tables("INSERT INTO out SELECT id, SUM(customer) FROM orders GROUP BY id;"),
        "SUM(customer) over a STRING column is not supported",
        3,
        28,
    );
}

#[test]
fn star_with_group_by() {
    expect(&with_tables("INSERT INTO out SELECT * FROM orders GROUP BY id;"), "SELECT * with GROUP BY is not supported yet", 3, 24);
}

#[test]
fn where_is_not_supported_yet() {
    expect(&with_tables("INSERT INTO out SELECT id, customer FROM orders\n  WHERE id > 10;"), "WHERE is not supported yet", 4, 3);
}

#[test]
fn expressions_are_not_supported_yet() {
    expect(
        &with_tables("INSERT INTO out SELECT id + 1, customer FROM orders;"),
        "the expression 'id + 1' is not supported yet",
        3,
        24,
    );
}

#[test]
fn joins_are_not_supported_yet() {
    expect(&with_tables("INSERT INTO out SELECT id, customer FROM orders JOIN out ON true;"), "joins are not supported yet", 3, 49);
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
    expect("CREATE TABLE t (a INT, b INT, A BIGINT) WITH ('connector' = 'datagen');", "duplicate column 'A' in table 't'", 1, 31);
}

#[test]
fn missing_connector() {
    expect(&with_tables("CREATE TABLE nowhere (x INT) WITH ('format' = 'json');"), "table 'nowhere' has no 'connector' option", 3, 14);
}

#[test]
fn no_insert() {
    expect(TABLES, "the script has no INSERT INTO statement; nothing to run", 1, 1);
}

#[test]
fn unsupported_statement_kind() {
    expect(&with_tables("CREATE FUNCTION f AS 'x';"), "CREATE FUNCTION statements are not supported", 3, 1);
}

#[test]
fn bad_parallelism_setting() {
    expect(
        &format!("SET 'parallelism.default' = 'many';\n{TABLES}INSERT INTO out SELECT id, customer FROM orders;"),
        "'parallelism.default' must be a positive integer, not 'many'",
        1,
        29,
    );
}

#[test]
fn one_sink_written_twice() {
    expect(
        &with_tables("INSERT INTO out SELECT id, customer FROM orders;\nINSERT INTO out SELECT id, customer FROM orders;"),
        "table 'out' is already written by the INSERT at line 3, column 13",
        4,
        13,
    );
}

#[test]
fn insert_before_create_sees_no_table() {
    expect(
        &format!("INSERT INTO out SELECT id, customer FROM orders;\n{TABLES}"),
        "unknown table 'out' (hint: declare it with CREATE TABLE first)",
        1,
        13,
    );
}

#[test]
fn union_having_and_values_are_not_supported_yet() {
    expect(
        &with_tables("INSERT INTO out SELECT id, customer FROM orders\nUNION ALL SELECT id, customer FROM orders;"),
        "UNION is not supported yet",
        4,
        1,
    );
    expect(
        &with_tables("INSERT INTO out SELECT id, COUNT(*) FROM orders GROUP BY id HAVING COUNT(*) > 1;"),
        "HAVING is not supported yet",
        3,
        61,
    );
    expect(&with_tables("INSERT INTO out VALUES (1, 'a');"), "INSERT ... VALUES is not supported yet", 3, 17);
}
