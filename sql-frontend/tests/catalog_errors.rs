//! Bad DDL, model options and ML_PREDICT calls: each error says what is wrong, where
//! (line and column) and often how to fix it.

use sluice_sql::catalog::Catalog;
use sluice_sql::parser::{parse_script, ScriptStatement};
use sluice_sql::SqlError;

/// Parses `script` and applies its catalog statements.
fn run(script: &str) -> Result<Catalog, SqlError> {
    let mut catalog = Catalog::new();
    for statement in parse_script(script)? {
        match statement {
            ScriptStatement::CreateTable(create) => catalog.create_table(&create)?,
            ScriptStatement::CreateView(create) => catalog.create_view(&create)?,
            ScriptStatement::CreateModel(create) => catalog.create_model(&create)?,
            ScriptStatement::AlterModel(alter) => catalog.alter_model(&alter)?,
            ScriptStatement::Drop(drop) => catalog.drop(&drop)?,
            _ => {}
        }
    }
    Ok(catalog)
}

/// An OpenAI model `m` whose WITH clause ends with `options` (on line 3 and after).
fn openai(options: &str) -> String {
    let comma = if options.is_empty() { "" } else { "," };
    format!("CREATE MODEL m INPUT (prompt STRING) OUTPUT (answer STRING) WITH (\n  'provider' = 'openai', 'api_key' = '{{{{ secret.key }}}}', 'model_name' = 'gpt-4o'{comma}\n{options})")
}

const TABLE: &str = "CREATE TABLE t (id BIGINT, txt STRING) WITH ('connector' = 'datagen');\n";

/// (script, expected text of the error, line, column)
fn cases() -> Vec<(String, &'static str, u64, u64)> {
    vec![
        // Model options.
        (openai("  'temprature' = '0.5'"), "unknown option 'temprature' for provider 'openai' (hint: did you mean 'temperature'?)", 3, 3),
        (openai("  'request_timeout' = '30s',\n  'timeout' = '5s'"), "options 'request_timeout' and 'timeout' both set 'timeout' (hint: they are spellings of the same option; keep one of them)", 4, 3),
        (openai("  'request_timeout' = '30 parsecs'"), "option 'request_timeout' = '30 parsecs': unknown time unit 'parsecs'; use ms, s, min, h or d", 3, 3),
        (openai("  'max_concurrent_requests' = '-5'"), "option 'max_concurrent_requests' = '-5' must be a whole number of at least 1", 3, 3),
        (openai("  'temperature' = '2.5'"), "option 'temperature' = '2.5' must be a number from 0 to 2", 3, 3),
        (openai("  'top_p' = '-0.1'"), "option 'top_p' = '-0.1' must be a number from 0 to 1", 3, 3),
        (openai("  'model_path' = '/m.onnx'"), "option 'model_path' belongs to provider 'local', not to 'openai' (hint: remove it, or change the model's 'provider')", 3, 3),
        (openai("  'on_error' = 'dead_letter'"), "'on_error' = 'dead_letter' needs option 'dead-letter.topic' (hint: add 'dead-letter.topic' (or 'dead_letter.topic') = 'kafka:<topic>')", 3, 3),
        (openai("  'on_error' = 'dead_letter', 'dead_letter.topic' = 'failed'"), "option 'dead_letter.topic' = 'failed' must be 'kafka:<topic>'", 3, 31),
        (openai("  'retry.on_codes' = '429,5O3'"), "option 'retry.on_codes' = '429,5O3' must be a comma-separated list of HTTP status codes; '5O3' is not one", 3, 3),
        (openai("  'ordered_output' = 'sometimes'"), "option 'ordered_output' = 'sometimes' must be 'true' or 'false'", 3, 3),
        (openai("  'response_format' = 'xml'"), "option 'response_format' = 'xml' is not one of 'text', 'json_object'", 3, 3),
        (
            "CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('provider' = 'openai', 'api_key' = '{{ secret.openai_api_key', 'model' = 'x')".into(),
            "option 'api_key': '{{ secret.openai_api_key' is not a valid secret reference; write '{{ secret.NAME }}'",
            1,
            80,
        ),
        ("CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('provider' = 'opneai')".into(), "unknown model provider 'opneai' (hint: did you mean 'openai'?", 1, 70),
        ("CREATE MODEL fraud INPUT (a DOUBLE) OUTPUT (s DOUBLE) WITH ('provider' = 'local', 'runtime' = 'onnx')".into(), "a model of provider 'local' needs option 'model-path' (hint: add 'model-path' (or 'model_path') = '...' to its WITH clause)", 1, 14),
        ("CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('provider' = 'anthropic', 'api_key' = 'k')".into(), "a model of provider 'anthropic' needs option 'model'", 1, 14),
        // CREATE MODEL syntax.
        ("CREATE MODEL m\nINPUT (a STRING)\nWITH ('provider' = 'openai')".into(), "CREATE MODEL m needs an OUTPUT (...) clause, found: WITH", 3, 1),
        ("CREATE MODEL m OUTPUT (a STRING) WITH ('provider' = 'openai')".into(), "CREATE MODEL m needs an INPUT (...) clause, found: OUTPUT", 1, 16),
        ("CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING)\nWITH ()".into(), "CREATE MODEL m has an empty WITH clause (hint: name the provider at least", 2, 1),
        ("CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING)".into(), "CREATE MODEL m needs a WITH (...) clause, found: the end of the statement", 1, 50),
        ("CREATE MODEL m INPUT (a STRING) OUTPUT (b STRING) WITH ('model' = 'x')".into(), "CREATE MODEL m has no 'provider' option (hint: add 'provider' = '...', one of 'openai', 'anthropic', 'local', 'generic-python')", 1, 51),
        ("CREATE MODEL m INPUT () OUTPUT (b STRING) WITH ('provider' = 'openai')".into(), "the INPUT of model m has no columns", 1, 16),
        ("CREATE MODEL m INPUT (a STRING, A INT) OUTPUT (b STRING) WITH ('provider' = 'local', 'model_path' = '/m')".into(), "duplicate column 'A' in the INPUT of model 'm'", 1, 33),
        // The catalog.
        (format!("{};\n{}", openai(""), openai("")), "model 'm' already exists (hint: it was created at line 1, column 14; use CREATE MODEL IF NOT EXISTS to keep the first one)", 4, 14),
        ("DROP MODEL IF EXISTS ghost;\nDROP MODEL ghost".into(), "unknown model 'ghost' (hint: use DROP MODEL IF EXISTS to ignore a missing model)", 2, 12),
        ("ALTER MODEL IF EXISTS ghost SET ('a' = 'b');\nALTER MODEL ghost SET ('a' = 'b')".into(), "unknown model 'ghost' (hint: declare it with CREATE MODEL first)", 2, 13),
        (format!("{};\nALTER MODEL m SET ('max_tokens' = 'many')", openai("")), "option 'max_tokens' = 'many' must be a whole number of at least 1", 4, 20),
        (format!("{};\nALTER MODEL m SET ()", openai("")), "ALTER MODEL m SET () changes nothing", 4, 19),
        (format!("{};\n{};\nALTER MODEL m RENAME TO n", openai(""), openai("").replace("MODEL m", "MODEL n")), "model 'n' already exists", 7, 25),
        ("DROP TABLE nowhere".into(), "unknown table 'nowhere' (hint: use DROP TABLE IF EXISTS to ignore a missing table)", 1, 12),
        // CREATE TABLE.
        ("CREATE TABLE t (\n  ts TIMESTAMP(3),\n  WATERMARK FOR tss AS tss - INTERVAL '1' SECOND\n) WITH ('connector' = 'datagen')".into(), "unknown column 'tss' in table 't' (hint: did you mean 'ts'?)", 3, 17),
        ("CREATE TABLE t (\n  ts BIGINT,\n  WATERMARK FOR ts AS ts - 5\n) WITH ('connector' = 'datagen')".into(), "the watermark column 'ts' is BIGINT, not a timestamp (hint: declare the event-time column as TIMESTAMP(3) or TIMESTAMP_LTZ(3))", 3, 17),
        ("CREATE TABLE t (id BIGINT,\n  PRIMARY KEY (id)\n) WITH ('connector' = 'datagen')".into(), "the primary key of table 't' must be NOT ENFORCED (hint: Sluice, like Flink, does not own the data", 2, 3),
        ("CREATE TABLE t (id BIGINT, PRIMARY KEY (idd) NOT ENFORCED) WITH ('connector' = 'datagen')".into(), "unknown column 'idd' in table 't' (hint: did you mean 'id'?)", 1, 41),
        ("CREATE TABLE t (id BIGINT PRIMARY KEY NOT ENFORCED, CONSTRAINT k PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'datagen')".into(), "table 't' declares two primary keys", 1, 53),
        ("CREATE TABLE t (a INT, b AS a + 1, PRIMARY KEY (b) NOT ENFORCED) WITH ('connector' = 'datagen')".into(), "primary key column 'b' is not a physical column", 1, 49),
        ("CREATE TABLE t (a INT, t TIME) WITH ('connector' = 'datagen')".into(), "column type TIME is not supported yet", 1, 26),
        ("CREATE TABLE t (ts TIMESTAMP(6)) WITH ('connector' = 'datagen')".into(), "column type TIMESTAMP(6) is not supported yet: timestamps have millisecond precision (hint: use TIMESTAMP(3))", 1, 20),
        ("CREATE TABLE t (r ROW<a INT>) WITH ('connector' = 'datagen')".into(), "column type ROW is not supported yet", 1, 19),
        ("CREATE TABLE db.t (a INT) WITH ('connector' = 'datagen')".into(), "qualified name 'db.t' is not supported yet", 1, 14),
        ("CREATE TABLE t (a INT) WITH ('connector' = 'datagen', 'format' = 'json',\n  'connector' = 'print')".into(), "option 'connector' is set twice (hint: remove one of them)", 2, 3),
        ("CREATE TABLE t (a INT) WITH ('connector' = datagen)".into(), "the value of option 'connector' must be a quoted string, found: datagen", 1, 44),
        ("CREATE TABLE t AS SELECT 1".into(), "CREATE TABLE ... AS is not supported yet", 1, 16),
        // ML_PREDICT calls.
        (format!("{TABLE}SELECT * FROM TABLE(ML_PREDICT(TABLE t, DESCRIPTOR(txt)))"), "ML_PREDICT's second argument must be the model (MODEL name)", 2, 41),
        (format!("{TABLE}SELECT * FROM TABLE(ML_PREDICT(TABLE t))"), "ML_PREDICT needs the model (MODEL name)", 2, 21),
        (format!("{TABLE}SELECT * FROM TABLE(ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR()))"), "DESCRIPTOR() names no columns", 2, 50),
        (format!("{TABLE}SELECT * FROM ML_PREDICT(MODEL m, TABLE t, DESCRIPTOR(txt))"), "ML_PREDICT's first argument must be the input table (TABLE name)", 2, 26),
        (format!("{TABLE}SELECT * FROM ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(txt), MAP['async', 'true', 'timeout'])"), "MAP[...] needs key-value pairs, but it has 3 value(s) (hint: write MAP['key', 'value', ...])", 2, 61),
        (format!("{TABLE}SELECT * FROM ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(txt), MAP['async', true])"), "MAP[...] keys and values must be quoted strings, found: true", 2, 74),
        (format!("{TABLE}SELECT * FROM ML_PREDICT(INPUT => TABLE t, MODLE => MODEL m, ARGS => DESCRIPTOR(txt))"), "unknown ML_PREDICT argument name 'MODLE' (hint: the names are INPUT, MODEL, ARGS and CONFIG)", 2, 44),
        (format!("{TABLE}SELECT * FROM ML_PREDICT(INPUT => TABLE t, MODEL m, ARGS => DESCRIPTOR(txt))"), "a positional ML_PREDICT argument follows a named one", 2, 44),
        (format!("{TABLE}SELECT * FROM ML_PREDICT(INPUT => MODEL m, MODEL => TABLE t, ARGS => DESCRIPTOR(txt))"), "ML_PREDICT argument INPUT must be the input table (TABLE name)", 2, 35),
        (format!("{TABLE}SELECT * FROM ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(txt)"), "ML_PREDICT( is never closed", 2, 15),
        (format!("{TABLE}SELECT * FROM ML_PREDICT(TABLE (SELECT 1), MODEL m, DESCRIPTOR(txt))"), "ML_PREDICT's input must be a table or view name (hint: a query can be made a view", 2, 33),
        (format!("{TABLE}SELECT txt, ML_PREDICT(MODEL m) FROM t"), "ML_PREDICT(MODEL m, ...) needs the model's inputs as arguments after the model", 2, 31),
        (format!("{TABLE}SELECT txt, ML_PREDICT(txt) FROM t"), "ML_PREDICT here must be a scalar call on a model", 2, 13),
        (format!("{TABLE}SELECT txt, ML_EMBED(txt) FROM t"), "ML_EMBED is a scalar function on a model and a text (hint: write ML_EMBED(MODEL m, text) in a SELECT list", 2, 13),
        (format!("{TABLE}SELECT txt, ML_EMBED(MODEL m) FROM t"), "ML_EMBED(MODEL m, ...) needs the model's inputs as arguments after the model", 2, 29),
        (format!("{TABLE}SELECT * FROM ML_EMBED(MODEL m, txt)"), "ML_EMBED is a scalar function on a model and a text", 2, 15),
        (format!("{TABLE}SELECT ML_EMBED(MODEL m, txt FROM t"), "ML_EMBED( is never closed", 2, 8),
        ("CREATE TABLE t (a INT, b AS TABLE(ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(a)))) WITH ('connector' = 'datagen')".into(), "ML_PREDICT can only be used in the FROM clause of a query", 1, 35),
        // Other statements.
        ("SHOW FUNCTIONS".into(), "SHOW FUNCTIONS is not supported", 1, 1),
        ("EXPLAIN CREATE TABLE t (a INT)".into(), "EXPLAIN of CREATE is not supported", 1, 9),
        ("CREATE OR REPLACE MODEL m INPUT (a INT) OUTPUT (b INT) WITH ('provider' = 'local')".into(), "CREATE OR REPLACE is not supported yet", 1, 1),
        ("INSERT OVERWRITE t SELECT 1".into(), "INSERT OVERWRITE is not supported yet", 1, 8),
        ("CREATE VIEW v (a, A) AS SELECT 1, 2".into(), "duplicate column 'A' in view 'v'", 1, 19),
        ("CREATE FUNCTION f AS 'x'".into(), "CREATE FUNCTION statements are not supported", 1, 1),
    ]
}

#[test]
fn every_bad_input_is_reported_where_it_is() {
    let cases = cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (script, needle, line, column) in cases {
        match run(&script) {
            Ok(_) => failures.push(format!("expected an error containing {needle:?} for:\n{script}")),
            Err(error) => {
                if !error.to_string().contains(needle) || (error.line, error.column) != (line, column) {
                    failures.push(format!("expected {needle:?} at {line}:{column}, got:\n{}", error.render(&script)));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
