//! A table of bad inputs run through the `sluice` CLI: each must exit non-zero with its
//! expected message and, for anything written in the script, the line and column of the
//! offending text; none may panic.

mod common;

use std::process::Command;

/// (name, command, script, expected message, expected line and column).
type Case = (&'static str, &'static str, &'static str, &'static str, Option<(u32, u32)>);

const CASES: &[Case] = &[
    (
        "malformed_select",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (id BIGINT, amount DOUBLE) WITH ('connector' = 'print');
INSERT INTO out SELEC id, amount FROM src;"#,
        r#"syntax error: expected SELECT, VALUES, or a subquery in the query body, found: SELEC"#,
        Some((3, 17)),
    ),
    (
        "missing_from_table",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (id BIGINT, amount DOUBLE) WITH ('connector' = 'print');
INSERT INTO out SELECT id, amount FROM;"#,
        r#"syntax error: expected identifier, found: the end of the statement"#,
        Some((3, 39)),
    ),
    (
        "unknown_table",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (id BIGINT, amount DOUBLE) WITH ('connector' = 'print');
INSERT INTO out SELECT id, amount FROM srcs;"#,
        r#"unknown table 'srcs'"#,
        Some((3, 40)),
    ),
    (
        "unknown_sink",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (id BIGINT, amount DOUBLE) WITH ('connector' = 'print');
INSERT INTO outt SELECT id, amount FROM src;"#,
        r#"unknown table 'outt'"#,
        Some((3, 13)),
    ),
    (
        "unknown_column",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (id BIGINT, amount DOUBLE) WITH ('connector' = 'print');
INSERT INTO out SELECT id, amont FROM src;"#,
        r#"unknown column 'amont'"#,
        Some((3, 28)),
    ),
    (
        "unknown_column_in_where",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (id BIGINT, amount DOUBLE) WITH ('connector' = 'print');
INSERT INTO out SELECT id, amount FROM src WHERE nmae = 'x';"#,
        r#"unknown column 'nmae'"#,
        Some((3, 50)),
    ),
    (
        "unknown_function",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (id BIGINT, amount DOUBLE) WITH ('connector' = 'print');
INSERT INTO out SELECT id, FROBNICATE(amount) FROM src;"#,
        r#"unknown function 'frobnicate'"#,
        Some((3, 28)),
    ),
    (
        "column_count_mismatch",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (id BIGINT, amount DOUBLE) WITH ('connector' = 'print');
INSERT INTO out SELECT id FROM src;"#,
        r#"the query returns 1 column(s) but INSERT INTO out expects 2"#,
        Some((3, 1)),
    ),
    (
        "type_mismatch",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (id BIGINT, amount DOUBLE) WITH ('connector' = 'print');
INSERT INTO out SELECT id, name FROM src;"#,
        r#"column 2 of the query ('name', STRING) cannot be written to column 'amount' (DOUBLE) of table 'out'"#,
        Some((3, 28)),
    ),
    (
        "unknown_type",
        "run",
        r#"CREATE TABLE t (id BIGINT, x MONEY) WITH ('connector' = 'datagen');"#,
        r#"unsupported column type MONEY; supported types are STRING, VARCHAR(n), CHAR(n), BOOLEAN, TINYINT, SMALLINT, INT, INTEGER, BIGINT, FLOAT, REAL, DOUBLE, DOUBLE PRECISION, DECIMAL(p, s), DATE, TIMESTAMP(3), TIMESTAMP_LTZ(3), BYTES, VARBINARY(n), ARRAY<T>, MAP<K, V>"#,
        Some((1, 30)),
    ),
    (
        "duplicate_column",
        "run",
        r#"CREATE TABLE t (id BIGINT, id INT) WITH ('connector' = 'datagen');"#,
        r#"duplicate column 'id' in table 't'"#,
        Some((1, 28)),
    ),
    (
        "duplicate_table",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');"#,
        r#"table 'src' already exists"#,
        Some((2, 14)),
    ),
    (
        "missing_connector",
        "run",
        r#"CREATE TABLE t (id BIGINT) WITH ('number-of-rows' = '1');"#,
        r#"table 't' has no 'connector' option"#,
        Some((1, 14)),
    ),
    (
        "unknown_connector",
        "run",
        r#"CREATE TABLE t (id BIGINT) WITH ('connector' = 'datagne');
CREATE TABLE o (id BIGINT) WITH ('connector' = 'print');
INSERT INTO o SELECT id FROM t;"#,
        r#"table 't': unknown connector 'datagne'; did you mean 'datagen'?"#,
        Some((1, 48)),
    ),
    (
        "misspelt_table_option",
        "run",
        r#"CREATE TABLE t (id BIGINT) WITH ('connector' = 'datagen', 'number-of-row' = '5');
CREATE TABLE o (id BIGINT) WITH ('connector' = 'print');
INSERT INTO o SELECT id FROM t;"#,
        r#"table 't' (connector 'datagen'): unknown option 'number-of-row'; did you mean 'number-of-rows'?"#,
        Some((1, 59)),
    ),
    (
        "bad_rows_per_second",
        "run",
        r#"CREATE TABLE t (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = 'fast');
CREATE TABLE o (id BIGINT) WITH ('connector' = 'print');
INSERT INTO o SELECT id FROM t;"#,
        r#"table 't' (connector 'datagen'): option 'rows-per-second' = 'fast' is not a positive number"#,
        Some((1, 59)),
    ),
    (
        "no_insert",
        "submit",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
"#,
        r#"the script has no INSERT INTO statement or query; nothing to run"#,
        None,
    ),
    (
        "unknown_model",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (id BIGINT, amount DOUBLE) WITH ('connector' = 'print');
INSERT INTO out SELECT id, score FROM TABLE(ML_PREDICT(TABLE src, MODEL nope, DESCRIPTOR(amount)));"#,
        r#"unknown model 'nope'"#,
        Some((3, 73)),
    ),
    (
        "descriptor_arity",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE MODEL m INPUT (amount DOUBLE) OUTPUT (score DOUBLE) WITH ('provider' = 'local', 'model_path' = '/m.onnx');
CREATE TABLE o (id BIGINT, score DOUBLE) WITH ('connector' = 'print');
INSERT INTO o SELECT id, score FROM TABLE(ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(amount, id)));"#,
        r#"DESCRIPTOR names 2 column(s) but model 'm' takes 1 input(s): (amount DOUBLE)"#,
        Some((4, 43)),
    ),
    (
        "descriptor_unknown_column",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE MODEL m INPUT (amount DOUBLE) OUTPUT (score DOUBLE) WITH ('provider' = 'local', 'model_path' = '/m.onnx');
CREATE TABLE o (id BIGINT, score DOUBLE) WITH ('connector' = 'print');
INSERT INTO o SELECT id, score FROM TABLE(ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(amont)));"#,
        r#"unknown column 'amont' in DESCRIPTOR of ML_PREDICT over 'src'"#,
        Some((4, 85)),
    ),
    (
        "descriptor_type",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, flag BOOLEAN, d DATE) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE MODEL m INPUT (x DATE) OUTPUT (score DOUBLE) WITH ('provider' = 'local', 'model_path' = '/m.onnx');
CREATE TABLE o (id BIGINT, score DOUBLE) WITH ('connector' = 'print');
INSERT INTO o SELECT id, score FROM TABLE(ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(flag)));"#,
        r#"column 'flag' is BOOLEAN but model 'm' input 'x' is DATE, and one cannot be cast to the other"#,
        Some((4, 85)),
    ),
    (
        "ml_predict_unknown_input",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE MODEL m INPUT (amount DOUBLE) OUTPUT (score DOUBLE) WITH ('provider' = 'local', 'model_path' = '/m.onnx');
CREATE TABLE o (id BIGINT, score DOUBLE) WITH ('connector' = 'print');
INSERT INTO o SELECT id, score FROM TABLE(ML_PREDICT(TABLE sorc, MODEL m, DESCRIPTOR(amount)));"#,
        r#"unknown table 'sorc'"#,
        Some((4, 60)),
    ),
    (
        "ml_predict_missing_model",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT * FROM TABLE(ML_PREDICT(TABLE src, DESCRIPTOR(amount)));"#,
        r#"ML_PREDICT's second argument must be the model (MODEL name)"#,
        Some((2, 43)),
    ),
    (
        "ml_predict_bad_config",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE MODEL m INPUT (amount DOUBLE) OUTPUT (score DOUBLE) WITH ('provider' = 'local', 'model_path' = '/m.onnx');
SELECT * FROM TABLE(ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(amount), MAP['asynk', 'true']));"#,
        r#"ML_PREDICT config: 'asynk' cannot be set in ML_PREDICT's config"#,
        Some((3, 21)),
    ),
    (
        "unknown_provider",
        "run",
        r#"CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('provider' = 'openia', 'api_key' = 'k', 'model_name' = 'x');"#,
        r#"unknown model provider 'openia'"#,
        Some((1, 70)),
    ),
    (
        "misspelt_model_option",
        "run",
        r#"CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('provider' = 'openai', 'api_key' = 'k', 'model_name' = 'x', 'temprature' = '0');"#,
        r#"unknown option 'temprature' for provider 'openai'"#,
        Some((1, 117)),
    ),
    (
        "bad_duration",
        "run",
        r#"CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('provider' = 'openai', 'api_key' = 'k', 'model_name' = 'x', 'request_timeout' = '30 parsecs');"#,
        r#"option 'request_timeout' = '30 parsecs': unknown time unit 'parsecs'; use ms, s, min, h or d (for example '30 s')"#,
        Some((1, 117)),
    ),
    (
        "negative_concurrency",
        "run",
        r#"CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('provider' = 'openai', 'api_key' = 'k', 'model_name' = 'x', 'max_concurrent_requests' = '-5');"#,
        r#"option 'max_concurrent_requests' = '-5' must be a whole number of at least 1"#,
        Some((1, 117)),
    ),
    (
        "temperature_out_of_range",
        "run",
        r#"CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('provider' = 'openai', 'api_key' = 'k', 'model_name' = 'x', 'temperature' = '7');"#,
        r#"option 'temperature' = '7' must be a number from 0 to 2"#,
        Some((1, 117)),
    ),
    (
        "alias_given_twice",
        "run",
        r#"CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('provider' = 'openai', 'api_key' = 'k', 'model_name' = 'x', 'request_timeout' = '5s', 'timeout' = '6s');"#,
        r#"options 'request_timeout' and 'timeout' both set 'timeout'"#,
        Some((1, 143)),
    ),
    (
        "missing_output",
        "run",
        r#"CREATE MODEL m INPUT (a STRING) WITH ('provider' = 'local', 'model_path' = '/m.onnx');"#,
        r#"CREATE MODEL m needs an OUTPUT (...) clause, found: WITH"#,
        Some((1, 33)),
    ),
    (
        "empty_with",
        "run",
        r#"CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ();"#,
        r#"CREATE MODEL m has an empty WITH clause"#,
        Some((1, 51)),
    ),
    (
        "missing_provider",
        "run",
        r#"CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('model_path' = '/m.onnx');"#,
        r#"CREATE MODEL m has no 'provider' option"#,
        Some((1, 51)),
    ),
    (
        "missing_model_path",
        "run",
        r#"CREATE MODEL m INPUT (a DOUBLE) OUTPUT (b DOUBLE) WITH ('provider' = 'local', 'runtime' = 'onnx');"#,
        r#"a model of provider 'local' needs option 'model-path'"#,
        Some((1, 14)),
    ),
    (
        "dead_letter_without_topic",
        "run",
        r#"CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('provider' = 'openai', 'api_key' = 'k', 'model_name' = 'x', 'on_error' = 'dead_letter');"#,
        r#"'on_error' = 'dead_letter' needs option 'dead-letter.topic'"#,
        Some((1, 117)),
    ),
    (
        "bad_on_error",
        "run",
        r#"CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('provider' = 'openai', 'api_key' = 'k', 'model_name' = 'x', 'on_error' = 'ignore');"#,
        r#"option 'on_error' = 'ignore' is not one of 'fail', 'skip', 'dead_letter'"#,
        Some((1, 117)),
    ),
    (
        "option_of_other_provider",
        "run",
        r#"CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('provider' = 'openai', 'api_key' = 'k', 'model_name' = 'x', 'model_path' = '/m.onnx');"#,
        r#"option 'model_path' belongs to provider 'local', not to 'openai'"#,
        Some((1, 117)),
    ),
    (
        "duplicate_model",
        "run",
        r#"CREATE MODEL m INPUT (amount DOUBLE) OUTPUT (score DOUBLE) WITH ('provider' = 'local', 'model_path' = '/m.onnx');
CREATE MODEL m INPUT (amount DOUBLE) OUTPUT (score DOUBLE) WITH ('provider' = 'local', 'model_path' = '/m.onnx');"#,
        r#"model 'm' already exists"#,
        Some((2, 14)),
    ),
    ("drop_unknown_model", "run", r#"DROP MODEL nope;"#, r#"unknown model 'nope'"#, Some((1, 12))),
    ("describe_unknown", "run", r#"DESCRIBE MODEL nope;"#, r#"unknown model 'nope'"#, Some((1, 16))),
    (
        "watermark_unknown_column",
        "run",
        r#"CREATE TABLE t (ts TIMESTAMP(3), WATERMARK FOR tss AS tss - INTERVAL '1' SECOND) WITH ('connector' = 'datagen');"#,
        r#"unknown column 'tss' in table 't'"#,
        Some((1, 48)),
    ),
    (
        "watermark_not_timestamp",
        "run",
        r#"CREATE TABLE t (id BIGINT, WATERMARK FOR id AS id) WITH ('connector' = 'datagen');"#,
        r#"the watermark column 'id' is BIGINT, not a timestamp"#,
        Some((1, 42)),
    ),
    (
        "primary_key_enforced",
        "run",
        r#"CREATE TABLE t (id BIGINT, PRIMARY KEY (id)) WITH ('connector' = 'datagen');"#,
        r#"the primary key of table 't' must be NOT ENFORCED"#,
        Some((1, 28)),
    ),
    (
        "computed_column_unknown_reference",
        "run",
        r#"CREATE TABLE t (id BIGINT, twice AS idd * 2) WITH ('connector' = 'datagen');"#,
        r#"computed column 'twice' AS idd * 2: unknown column 'idd'"#,
        Some((1, 28)),
    ),
    (
        "aggregate_not_grouped",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE o (name STRING, n BIGINT) WITH ('connector' = 'print');
INSERT INTO o SELECT name, COUNT(*) FROM src GROUP BY id;"#,
        r#"column 'name' must be in GROUP BY or inside an aggregate function"#,
        Some((3, 22)),
    ),
    (
        "unresolved_secret",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE MODEL m INPUT (name STRING) OUTPUT (answer STRING) WITH ('provider' = 'openai', 'api_key' = '{{ secret.sluice_test_missing_key }}', 'model_name' = 'gpt-4o');
CREATE TABLE o (id BIGINT, answer STRING) WITH ('connector' = 'print');
INSERT INTO o SELECT id, answer FROM TABLE(ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(name)));"#,
        r#"model 'm': secret 'sluice_test_missing_key' is not set; set the environment variable SLUIC"#,
        None,
    ),
    (
        "bad_secret_reference",
        "run",
        r#"CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('provider' = 'openai', 'api_key' = '{{ secret.bad-name }}', 'model_name' = 'x');"#,
        r#"option 'api_key': '{{ secret.bad-name }}' is not a valid secret reference; write '{{ secret.NAME }}', where NAME is letters, digits and '_'"#,
        Some((1, 80)),
    ),
    (
        "bad_parallelism_setting",
        "run",
        r#"SET 'parallelism.default' = 'many';"#,
        r#"'parallelism.default' = 'many' is not a positive integer"#,
        Some((1, 29)),
    ),
    (
        "unterminated_string",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE o (id BIGINT) WITH ('connector' = 'print);"#,
        r#"Unterminated string literal"#,
        Some((2, 48)),
    ),
    (
        "insert_into_view",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE VIEW v AS SELECT id FROM src;
INSERT INTO v SELECT id FROM src;"#,
        r#"'v' is not a table; INSERT INTO needs a table"#,
        Some((3, 13)),
    ),
    (
        "hop_aggregate_size_not_a_multiple_of_slide",
        "run",
        r#"CREATE TABLE bids (bidtime TIMESTAMP(3), price DOUBLE, WATERMARK FOR bidtime AS bidtime) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT window_start, window_end, SUM(price)
FROM TABLE(HOP(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '4' MINUTES, INTERVAL '10' MINUTES))
GROUP BY window_start, window_end;"#,
        r#"HOP table function based aggregate requires size must be an integral multiple of slide, but got size 600000 ms and slide 240000 ms"#,
        Some((3, 12)),
    ),
    (
        "cumulate_aggregate_size_not_a_multiple_of_step",
        "run",
        r#"CREATE TABLE bids (bidtime TIMESTAMP(3), price DOUBLE, WATERMARK FOR bidtime AS bidtime) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT window_start, window_end, SUM(price)
FROM TABLE(
  CUMULATE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '3' MINUTES, INTERVAL '10' MINUTES))
GROUP BY window_start, window_end;"#,
        r#"CUMULATE table function based aggregate requires maxSize must be an integral multiple of step, but got maxSize 600000 ms and step 180000 ms"#,
        Some((4, 3)),
    ),
    (
        "group_window_auxiliary_without_its_window",
        "run",
        r#"CREATE TABLE bids (bidtime TIMESTAMP(3), price DOUBLE, WATERMARK FOR bidtime AS bidtime) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT TUMBLE_START(bidtime, INTERVAL '5' MINUTE), SUM(price)
FROM bids
GROUP BY TUMBLE(bidtime, INTERVAL '10' MINUTE);"#,
        r#"Call to auxiliary group function 'TUMBLE_START' must have matching call to group function '$TUMBLE' in GROUP BY clause"#,
        Some((2, 8)),
    ),
    (
        "group_window_over_a_plain_timestamp",
        "run",
        r#"CREATE TABLE bids (bidtime TIMESTAMP(3), price DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT SUM(price)
FROM bids
GROUP BY TUMBLE(bidtime, INTERVAL '10' MINUTE);"#,
        r#"the window function requires the time column to be a time attribute, but 'bidtime' of table 'bids' is a plain TIMESTAMP(3)"#,
        Some((4, 17)),
    ),
    (
        "updating_query_into_an_append_only_sink",
        "run",
        r#"CREATE TABLE orders (customer STRING, amount DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE totals (customer STRING, total DOUBLE) WITH ('connector' = 'filesystem', 'path' = '/tmp/sluice-never', 'format' = 'json');
INSERT INTO totals SELECT customer, SUM(amount) FROM orders GROUP BY customer;"#,
        r#"Table sink 'totals' (connector 'filesystem') doesn't support consuming update changes which is produced by node aggregate(group by customer: sum(orders.amount))"#,
        Some((3, 13)),
    ),
    (
        "over_window_without_a_rank_filter",
        "run",
        r#"CREATE TABLE bids (price DOUBLE, item STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT item, price, ROW_NUMBER() OVER (PARTITION BY item ORDER BY price DESC) AS rownum
FROM bids;"#,
        r#"an OVER window is supported only as a Top-N yet"#,
        Some((2, 21)),
    ),
    (
        "top_n_without_order_by",
        "run",
        r#"CREATE TABLE bids (price DOUBLE, item STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT * FROM (
  SELECT item, price, ROW_NUMBER() OVER (PARTITION BY item) AS rownum FROM bids
) WHERE rownum <= 3;"#,
        r#"a Top-N needs ORDER BY in its OVER clause"#,
        Some((3, 23)),
    ),
    (
        "top_n_ranked_by_rank",
        "run",
        r#"CREATE TABLE bids (price DOUBLE, item STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT * FROM (
  SELECT item, price, RANK() OVER (PARTITION BY item ORDER BY price) AS r FROM bids
) WHERE r <= 3;"#,
        r#"'rank' cannot rank a Top-N yet"#,
        Some((3, 23)),
    ),
    (
        "upsert_kafka_without_a_primary_key",
        "run",
        r#"CREATE TABLE orders (customer STRING, amount DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE totals (customer STRING, total DOUBLE) WITH ('connector' = 'upsert-kafka', 'topic' = 't', 'properties.bootstrap.servers' = 'localhost:1', 'key.format' = 'json', 'value.format' = 'json');
INSERT INTO totals SELECT customer, SUM(amount) FROM orders GROUP BY customer;"#,
        r#"table 'totals' (connector 'upsert-kafka'): an 'upsert-kafka' table needs a primary key: add PRIMARY KEY (k) NOT ENFORCED to its columns"#,
        Some((2, 14)),
    ),
    (
        "source_watermark_without_a_source_that_emits_them",
        "run",
        r#"CREATE TABLE clicks (ts TIMESTAMP(3),
  WATERMARK FOR ts AS SOURCE_WATERMARK()) WITH ('connector' = 'datagen');"#,
        r#"SOURCE_WATERMARK() needs a connector that emits watermarks of its own, and no connector of Sluice does"#,
        Some((2, 3)),
    ),
    (
        "order_by_not_starting_with_a_time_column",
        "run",
        r#"CREATE TABLE bids (price DOUBLE, item STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT item, price FROM bids ORDER BY price DESC;"#,
        r#"ORDER BY in a streaming query must start with a time attribute, ascending"#,
        Some((2, 39)),
    ),
    (
        "listagg_over_updates",
        "run",
        r#"CREATE TABLE orders (customer STRING, amount DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT n, LISTAGG(customer) FROM (SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer) GROUP BY n;"#,
        r#"LISTAGG over an updating input is not supported yet"#,
        Some((2, 11)),
    ),
    (
        "join_without_an_equality",
        "run",
        r#"CREATE TABLE o (id BIGINT, amount DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE c (id BIGINT, credit DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT o.id FROM o JOIN c ON o.amount > c.credit;"#,
        r#"a join needs an equality between the two sides' columns"#,
        Some((3, 1)),
    ),
    (
        "avro_map_keyed_by_numbers",
        "run",
        r#"CREATE TABLE t (id BIGINT, m MAP<BIGINT, STRING>) WITH ('connector' = 'filesystem', 'path' = '/tmp/t', 'format' = 'avro');"#,
        r#"table 't' (connector 'filesystem'): format 'avro': column 'm': an Avro map's keys are strings"#,
        Some((1, 14)),
    ),
    (
        "partition_commit_without_partitions",
        "run",
        r#"CREATE TABLE t (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '/tmp/t', 'format' = 'parquet', 'sink.partition-commit.policy.kind' = 'success-file');
INSERT INTO t SELECT 1;"#,
        r#"table 't' (connector 'filesystem'): partition commit options need a table PARTITIONED BY columns"#,
        Some((2, 13)),
    ),
    (
        "unknown_runtime_mode",
        "run",
        r#"SET 'execution.runtime-mode' = 'bulk';"#,
        r#"'execution.runtime-mode' = 'bulk' is not a runtime mode"#,
        Some((1, 32)),
    ),
    (
        "mini_batch_without_latency",
        "run",
        r#"CREATE TABLE orders (customer STRING, amount DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SET 'table.exec.mini-batch.enabled' = 'true';
SET 'table.exec.mini-batch.size' = '100';
SELECT customer, SUM(amount) FROM orders GROUP BY customer;"#,
        r#"MiniBatch Latency must be greater than 0 ms."#,
        Some((3, 36)),
    ),
    (
        "explain_detail_not_supported",
        "run",
        r#"CREATE TABLE orders (customer STRING, amount DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
EXPLAIN CHANGELOG_MODE, ESTIMATED_COST SELECT customer FROM orders;"#,
        r#"EXPLAIN ESTIMATED_COST is not supported yet"#,
        Some((2, 25)),
    ),
    (
        "session_window_grouped_by_other_columns",
        "run",
        r#"CREATE TABLE bids (bidtime TIMESTAMP(3), price DOUBLE, item STRING, WATERMARK FOR bidtime AS bidtime) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT window_start, SUM(price)
FROM TABLE(SESSION(TABLE bids PARTITION BY item, DESCRIPTOR(bidtime), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end;"#,
        r#"a SESSION window aggregate must group by exactly its PARTITION BY columns (item) besides the window"#,
        Some((3, 12)),
    ),
    (
        "lookup_join_without_an_equality_on_the_table",
        "run",
        r#"CREATE TABLE e (id BIGINT, k BIGINT, pt AS PROCTIME()) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE dim (k BIGINT, name STRING) WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://localhost/db', 'table-name' = 'dim');
SELECT e.id, d.name FROM e
JOIN dim FOR SYSTEM_TIME AS OF e.pt AS d ON e.k > d.k;"#,
        r#"a lookup join needs an equality between a column of 'dim' and the other side"#,
        Some((4, 10)),
    ),
    (
        "lookup_of_a_table_without_lookups",
        "run",
        r#"CREATE TABLE e (id BIGINT, k BIGINT, pt AS PROCTIME()) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE dim (k BIGINT, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT e.id, d.name FROM e JOIN dim FOR SYSTEM_TIME AS OF e.pt AS d ON e.k = d.k;"#,
        r#"table 'dim' (connector 'datagen') cannot be looked up"#,
        Some((3, 33)),
    ),
    (
        "lookup_table_on_the_left",
        "run",
        r#"CREATE TABLE e (id BIGINT, k BIGINT, pt AS PROCTIME()) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE dim (k BIGINT, name STRING) WITH ('connector' = 'jdbc', 'url' = 'jdbc:postgresql://localhost/db', 'table-name' = 'dim');
SELECT d.name FROM dim FOR SYSTEM_TIME AS OF PROCTIME() AS d JOIN e ON e.k = d.k;"#,
        r#"the table read FOR SYSTEM_TIME AS OF ('dim') must be the right side of its join"#,
        Some((3, 24)),
    ),
    (
        "scalar_ml_predict_with_the_wrong_number_of_arguments",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE MODEL m INPUT (amount DOUBLE, age INT) OUTPUT (score DOUBLE) WITH ('provider' = 'openai', 'task' = 'chat-completion', 'api_key' = 'k', 'model_name' = 'x');
SELECT id,
  ML_PREDICT(MODEL m, amount) AS score FROM src;"#,
        r#"ML_PREDICT passes 1 argument(s) to model 'm', which takes 2 input(s): (amount DOUBLE, age INT)"#,
        Some((4, 3)),
    ),
    (
        "ml_embed_of_a_model_that_returns_no_array",
        "run",
        r#"CREATE TABLE src (id BIGINT, txt STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE MODEL m INPUT (txt STRING) OUTPUT (score DOUBLE) WITH ('provider' = 'openai', 'task' = 'chat-completion', 'api_key' = 'k', 'model_name' = 'x');
SELECT id, ML_EMBED(MODEL m, txt) AS v FROM src;"#,
        r#"ML_EMBED needs a model whose OUTPUT is one ARRAY column (an embedding); model 'm' has OUTPUT (score DOUBLE)"#,
        Some((3, 27)),
    ),
    (
        "ml_embed_with_the_wrong_number_of_arguments",
        "run",
        r#"CREATE TABLE src (id BIGINT, txt STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE MODEL e INPUT (txt STRING) OUTPUT (v ARRAY<FLOAT>) WITH ('provider' = 'openai', 'task' = 'embeddings', 'api_key' = 'k', 'model_name' = 'x');
SELECT id, ML_EMBED(MODEL e, txt, txt) AS v FROM src;"#,
        r#"ML_EMBED passes 2 argument(s) to model 'e', which takes 1 input(s): (txt STRING)"#,
        Some((3, 12)),
    ),
    (
        "cross_apply_over_a_subquery_that_is_not_ml_predict",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
SELECT s.id FROM src s
CROSS APPLY (SELECT id FROM src) x;"#,
        r#"CROSS APPLY is supported over ML_PREDICT only"#,
        Some((3, 7)),
    ),
    (
        "cross_apply_reading_a_column_it_does_not_select",
        "run",
        r#"CREATE TABLE src (id BIGINT, amount DOUBLE) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE MODEL m INPUT (amount DOUBLE) OUTPUT (score DOUBLE) WITH ('provider' = 'openai', 'task' = 'chat-completion', 'api_key' = 'k', 'model_name' = 'x');
SELECT s.id, p.grade FROM src s
CROSS APPLY (SELECT score FROM TABLE(ML_PREDICT(VALUES (s.amount), MODEL m, DESCRIPTOR(amount)))) p;"#,
        r#"'p' selects no column 'grade'"#,
        Some((3, 16)),
    ),
    (
        "batch_job_over_an_unbounded_table",
        "run",
        r#"SET 'execution.runtime-mode' = 'batch';
CREATE TABLE events (id BIGINT) WITH ('connector' = 'datagen');
SELECT id FROM events;"#,
        r#"table 'events' is unbounded (connector 'datagen'): a batch job (execution.runtime-mode = 'batch') reads only tables that end"#,
        Some((3, 16)),
    ),
];

#[test]
fn every_bad_input_gets_its_located_message_and_no_panic() {
    assert!(CASES.len() >= 40, "the table of bad inputs shrank to {}", CASES.len());
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (name, command, script, expected, location) in CASES {
        let file = dir.path().join(format!("{name}.sql"));
        std::fs::write(&file, script).unwrap();
        let mut cmd = Command::new(common::sluice_bin());
        cmd.arg(command).arg(&file);
        if *command == "submit" {
            cmd.args(["--jobmanager", "127.0.0.1:1"]);
        }
        let out = cmd.env_remove("SLUICE_SECRET_SLUICE_TEST_MISSING_KEY").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut problems = Vec::new();
        if out.status.success() {
            problems.push("exited 0".to_string());
        }
        if stderr.contains("panicked") {
            problems.push("panicked".to_string());
        }
        if !stderr.contains(expected) {
            problems.push(format!("message {expected:?} missing"));
        }
        if let Some((line, column)) = location {
            let located = format!("line {line}, column {column}: {expected}");
            if !stderr.contains(&located) {
                problems.push(format!("not located at line {line}, column {column}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{name}: {}\n{stderr}", problems.join(", ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
