//! Tests of the script parser.

use arrow::datatypes::{DataType, TimeUnit};
use sqlparser::ast::{SetExpr, TableFactor};

use super::*;

fn parse(sql: &str) -> Vec<ScriptStatement> {
    match parse_script(sql) {
        Ok(s) => s,
        Err(e) => panic!("{}", e.render(sql)),
    }
}

fn one(sql: &str) -> ScriptStatement {
    let mut statements = parse(sql);
    assert_eq!(statements.len(), 1, "{statements:?}");
    statements.remove(0)
}

fn error(sql: &str) -> SqlError {
    match parse_script(sql) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e,
    }
}

fn at(line: u64, column: u64) -> Location {
    Location { line, column }
}

/// The table names a query's FROM clause reads, with their aliases.
fn from_tables(query: &sqlparser::ast::Query) -> Vec<(String, Option<String>)> {
    let SetExpr::Select(select) = query.body.as_ref() else { panic!("{query}") };
    let factors =
        select.from.iter().flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)));
    factors
        .map(|f| match f {
            TableFactor::Table { name, alias, .. } => (name.to_string(), alias.as_ref().map(|a| a.name.value.clone())),
            other => panic!("{other}"),
        })
        .collect()
}

#[test]
fn create_table_with_every_kind_of_column() {
    let statement = one(
        "-- orders\nCREATE TEMPORARY TABLE IF NOT EXISTS orders (\n  id BIGINT NOT NULL COMMENT 'the id',\n  price DECIMAL(10, 2),\n  \
         qty INT,\n  total AS price * qty COMMENT 'computed',\n  ts TIMESTAMP(3),\n  ingested TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,\n  \
         part INT METADATA,\n  tags ARRAY<STRING>,\n  attrs MAP<STRING, ARRAY<INT>>,\n  raw BYTES,\n  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND,\n  \
         CONSTRAINT pk PRIMARY KEY (id) NOT ENFORCED\n) COMMENT 'all orders'\nPARTITIONED BY (part)\nWITH (\n  /* the connector */ 'connector' = 'datagen', -- trailing\n  'number-of-rows' = 10\n);",
    );
    let ScriptStatement::CreateTable(t) = statement else { panic!("{statement:?}") };
    assert_eq!((t.name.as_str(), t.location, t.temporary, t.if_not_exists), ("orders", at(2, 38), true, true));
    let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "price", "qty", "total", "ts", "ingested", "part", "tags", "attrs", "raw"]);
    assert!(!t.columns[0].nullable);
    assert_eq!(t.columns[0].comment.as_deref(), Some("the id"));
    assert_eq!(t.columns[1].data_type, DataType::Decimal128(10, 2));
    let ColumnKind::Computed { text, .. } = &t.columns[3].kind else { panic!("{:?}", t.columns[3]) };
    assert_eq!(text, "price * qty");
    assert_eq!(t.columns[3].data_type, DataType::Null);
    assert_eq!(t.columns[5].data_type, DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())));
    assert_eq!(t.columns[5].kind, ColumnKind::Metadata { key: Some("timestamp".into()), virtual_: true });
    assert_eq!(t.columns[6].kind, ColumnKind::Metadata { key: None, virtual_: false });
    assert_eq!(crate::types::sql_name(&t.columns[7].data_type), "ARRAY<STRING>");
    assert_eq!(crate::types::sql_name(&t.columns[8].data_type), "MAP<STRING, ARRAY<INT>>");
    assert_eq!(t.columns[9].data_type, DataType::Binary);
    let watermark = t.watermark.as_ref().unwrap();
    assert_eq!((watermark.column.value.as_str(), watermark.text.as_str()), ("ts", "ts - INTERVAL '5' SECOND"));
    let key = t.primary_key.as_ref().unwrap();
    assert_eq!((key.name.as_deref(), key.columns[0].value.as_str(), key.location), (Some("pk"), "id", at(14, 3)));
    assert_eq!(t.comment.as_deref(), Some("all orders"));
    assert_eq!(t.partitioned_by[0].value, "part");
    let options: Vec<(&str, &str)> = t.options.iter().map(|o| (o.key.as_str(), o.value.as_str())).collect();
    assert_eq!(options, [("connector", "datagen"), ("number-of-rows", "10")]);
    assert_eq!((t.options[1].key_location, t.options[1].value_location), (at(19, 3), at(19, 22)));
}

#[test]
fn inline_primary_key_and_nested_angle_brackets() {
    let ScriptStatement::CreateTable(t) =
        one("CREATE TABLE t (id BIGINT PRIMARY KEY NOT ENFORCED, m ARRAY<ARRAY<INT>>) WITH ('connector' = 'datagen')")
    else {
        panic!()
    };
    assert_eq!(t.primary_key.unwrap().columns[0].value, "id");
    assert_eq!(crate::types::sql_name(&t.columns[1].data_type), "ARRAY<ARRAY<INT>>");
    let ScriptStatement::CreateTable(t) = one("CREATE TABLE t (ts TIMESTAMP(3) WITH LOCAL TIME ZONE)") else {
        panic!()
    };
    assert_eq!(crate::types::sql_name(&t.columns[0].data_type), "TIMESTAMP_LTZ(3)");
}

#[test]
fn set_and_reset_forms() {
    let statements =
        parse("SET 'parallelism.default' = '4'; SET pipeline.name = my-job;\nSET `a.b`=7; RESET 'a.b'; RESET");
    let sets: Vec<(String, String)> = statements
        .iter()
        .filter_map(|s| match s {
            ScriptStatement::Set(s) => Some((s.key.clone(), s.value.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        sets,
        [
            ("parallelism.default".into(), "4".into()),
            ("pipeline.name".into(), "my-job".into()),
            ("a.b".into(), "7".into())
        ]
    );
    let resets: Vec<Option<String>> = statements
        .iter()
        .filter_map(|s| match s {
            ScriptStatement::Reset(r) => Some(r.key.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(resets, [Some("a.b".to_string()), None]);
    let e = error("SET 'x'");
    assert!(e.message.contains("SET needs a key and a value"), "{e}");
    assert_eq!(e.location(), at(1, 1));
}

#[test]
fn statement_sets_in_every_spelling() {
    for sql in [
        "EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT * FROM b; INSERT INTO c SELECT * FROM b; END;",
        "BEGIN STATEMENT SET;\nINSERT INTO a SELECT * FROM b;\nINSERT INTO c SELECT * FROM b;\nEND;",
    ] {
        let ScriptStatement::StatementSet(set) = one(sql) else { panic!("{sql}") };
        assert_eq!(set.inserts.iter().map(|i| i.target.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(set.location, at(1, 1));
    }
    let ScriptStatement::Explain(explain) = one("EXPLAIN STATEMENT SET BEGIN\nINSERT INTO a SELECT * FROM b;\nEND;")
    else {
        panic!()
    };
    assert!(matches!(explain.statement.as_ref(), ScriptStatement::StatementSet(s) if s.inserts.len() == 1));
    let e = error("BEGIN STATEMENT SET;\nINSERT INTO a SELECT * FROM b;");
    assert!(e.message.contains("never closed"), "{e}");
    let e = error("INSERT INTO a SELECT * FROM b;\n  END;");
    assert_eq!((e.message.as_str(), e.location()), ("END without an open statement set", at(2, 3)));
    let e = error("BEGIN STATEMENT SET;\nSET 'a' = 'b';\nEND;");
    assert!(e.message.contains("only contain INSERT INTO"), "{e}");
    assert_eq!(e.location(), at(2, 5));
    let e = error("BEGIN STATEMENT SET;\nEND;");
    assert!(e.message.contains("has no INSERT INTO"), "{e}");
}

#[test]
fn lesson_ml_predict_becomes_a_placeholder() {
    let ScriptStatement::Query(q) =
        one("SELECT *\nFROM TABLE(\n  ML_PREDICT(\n    TABLE input_data,\n    MODEL my_model,\n    DESCRIPTOR(col1, col2, col3)\n  )\n);")
    else {
        panic!()
    };
    assert_eq!(from_tables(&q.query), [("__ml_predict_0".to_string(), None)]);
    let call = &q.calls.ml_predicts[0];
    assert_eq!(
        call,
        &MlPredictCall {
            placeholder: "__ml_predict_0".into(),
            input: "input_data".into(),
            input_location: at(4, 11),
            model: "my_model".into(),
            model_location: at(5, 11),
            descriptor: vec![("col1".into(), at(6, 16)), ("col2".into(), at(6, 22)), ("col3".into(), at(6, 28))],
            config: Default::default(),
            location: at(3, 3),
        }
    );
}

#[test]
fn ml_predict_named_arguments_config_aliases_and_several_calls() {
    let sql = "INSERT INTO out SELECT p.id, q.label\nFROM ML_PREDICT(TABLE(movies), MODEL m1, DESCRIPTOR(c), MAP['async', 'true', 'timeout', '5s']) AS p\n\
               JOIN TABLE(ML_PREDICT(MODEL => MODEL m2, ARGS => DESCRIPTOR(`Text`), INPUT => TABLE reviews)) q ON p.id = q.id";
    let ScriptStatement::Insert(insert) = one(sql) else { panic!() };
    assert_eq!(
        from_tables(&insert.query),
        [("__ml_predict_0".to_string(), Some("p".to_string())), ("__ml_predict_1".to_string(), Some("q".to_string()))]
    );
    let [first, second] = insert.calls.ml_predicts.as_slice() else { panic!("{:?}", insert.calls.ml_predicts) };
    assert_eq!((first.input.as_str(), first.model.as_str()), ("movies", "m1"));
    assert_eq!(first.config.get("timeout").map(String::as_str), Some("5s"));
    assert_eq!(
        (second.input.as_str(), second.model.as_str(), second.placeholder.as_str()),
        ("reviews", "m2", "__ml_predict_1")
    );
    assert_eq!(second.descriptor, [("Text".to_string(), at(3, 61))]);
    assert_eq!(second.location, at(3, 12));
    // LATERAL and CROSS APPLY keep a valid query.
    let ScriptStatement::Query(q) =
        one("SELECT * FROM t, LATERAL TABLE(ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(a))) CROSS APPLY ML_PREDICT(TABLE u, MODEL m, DESCRIPTOR(b))")
    else {
        panic!()
    };
    assert_eq!(q.calls.ml_predicts.len(), 2);
}

#[test]
fn views_models_and_catalog_statements() {
    let statements = parse(
        "CREATE TEMPORARY VIEW v (a, b) COMMENT 'v' AS SELECT x, y FROM TABLE(ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(x)));\n\
         CREATE MODEL IF NOT EXISTS m INPUT (prompt STRING COMMENT 'in') OUTPUT (answer STRING NOT NULL) COMMENT 'llm' WITH ('provider' = 'openai');\n\
         ALTER MODEL IF EXISTS m SET ('temperature' = '0.5'); ALTER MODEL m RENAME TO m2;\n\
         DROP TEMPORARY VIEW IF EXISTS v; DROP MODEL m2; DROP TABLE t;\n\
         SHOW TABLES; SHOW VIEWS; SHOW MODELS; SHOW CREATE MODEL m; SHOW CREATE TABLE t;\n\
         DESCRIBE t; DESC MODEL m; DESCRIBE TABLE t; DESCRIBE model;\n\
         EXPLAIN PLAN FOR SELECT 1; EXPLAIN INSERT INTO a SELECT * FROM b; SELECT 1",
    );
    let ScriptStatement::CreateView(view) = &statements[0] else { panic!() };
    assert_eq!(view.columns.iter().map(|c| c.value.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(view.text, "SELECT x, y FROM TABLE(ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(x)))");
    assert_eq!(view.calls.ml_predicts.len(), 1);
    let ScriptStatement::CreateModel(model) = &statements[1] else { panic!() };
    assert!(model.if_not_exists && !model.temporary);
    assert_eq!((model.input[0].comment.as_deref(), model.output[0].nullable), (Some("in"), false));
    assert_eq!((model.comment.as_deref(), model.with_location), (Some("llm"), at(2, 111)));
    assert!(
        matches!(&statements[2], ScriptStatement::AlterModel(a) if a.if_exists && matches!(&a.action, AlterModelAction::Set(o) if o[0].key == "temperature"))
    );
    assert!(
        matches!(&statements[3], ScriptStatement::AlterModel(a) if matches!(&a.action, AlterModelAction::RenameTo(n) if n.value == "m2"))
    );
    assert!(matches!(&statements[4], ScriptStatement::Drop(d) if d.kind == ObjectKind::View && d.if_exists));
    assert!(matches!(&statements[6], ScriptStatement::Drop(d) if d.kind == ObjectKind::Table && !d.if_exists));
    let shows: Vec<ObjectKind> = statements[7..10]
        .iter()
        .map(|s| match s {
            ScriptStatement::Show(s) => s.kind,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(shows, [ObjectKind::Table, ObjectKind::View, ObjectKind::Model]);
    assert!(matches!(&statements[10], ScriptStatement::ShowCreate(r) if r.kind == Some(ObjectKind::Model)));
    let described: Vec<(Option<ObjectKind>, &str)> = statements[12..16]
        .iter()
        .map(|s| match s {
            ScriptStatement::Describe(r) => (r.kind, r.name.value.as_str()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        described,
        [(None, "t"), (Some(ObjectKind::Model), "m"), (Some(ObjectKind::Table), "t"), (None, "model")]
    );
    assert!(
        matches!(&statements[16], ScriptStatement::Explain(e) if matches!(e.statement.as_ref(), ScriptStatement::Query(_)))
    );
    assert!(
        matches!(&statements[17], ScriptStatement::Explain(e) if matches!(e.statement.as_ref(), ScriptStatement::Insert(_)))
    );
    assert!(matches!(&statements[18], ScriptStatement::Query(q) if q.location == at(7, 67)));
}

#[test]
fn insert_with_columns_and_parenthesized_query() {
    let ScriptStatement::Insert(insert) = one("INSERT INTO t (a, b) SELECT 1, 2") else { panic!() };
    assert_eq!(insert.columns, [("a".to_string(), at(1, 16)), ("b".to_string(), at(1, 19))]);
    let ScriptStatement::Insert(insert) = one("INSERT INTO t (SELECT 1)") else { panic!() };
    assert!(insert.columns.is_empty());
}

#[test]
fn tokenizer_errors_are_located() {
    let e = error("CREATE TABLE t (a INT)\nWITH ('connector' = 'datagen)");
    assert!(e.message.contains("Unterminated string"), "{e}");
    assert_eq!(e.line, 2);
}

#[test]
fn window_functions_become_placeholders_positionally_and_by_name() {
    let sql = "SELECT * FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES)) AS w\n\
               JOIN TABLE(HOP(DATA => TABLE bids, TIMECOL => DESCRIPTOR(bidtime), SIZE => INTERVAL '10' MINUTE,\n\
               SLIDE => INTERVAL '5' MINUTES, OFFSET => INTERVAL '-1' MINUTE)) h ON w.item = h.item,\n\
               LATERAL TABLE(CUMULATE(TABLE(bids), DESCRIPTOR(bidtime), INTERVAL '2' MINUTES, INTERVAL '1' HOUR, INTERVAL '0.5' SECOND))";
    let ScriptStatement::Query(q) = one(sql) else { panic!() };
    let SetExpr::Select(select) = q.query.body.as_ref() else { panic!() };
    assert_eq!(select.from.len(), 2, "{}", q.query);
    let [tumble, hop, cumulate] = q.calls.windows.as_slice() else { panic!("{:?}", q.calls.windows) };
    assert_eq!(
        tumble,
        &WindowTvfCall {
            placeholder: "__window_0".into(),
            function: WindowFunction::Tumble,
            input: "bids".into(),
            input_location: at(1, 34),
            time_column: "bidtime".into(),
            time_location: at(1, 51),
            size_ms: 600_000,
            step_ms: 0,
            offset_ms: 0,
            partition_by: Vec::new(),
            legacy: false,
            location: at(1, 21),
        }
    );
    assert_eq!(
        (hop.function, hop.size_ms, hop.step_ms, hop.offset_ms),
        (WindowFunction::Hop, 600_000, 300_000, -60_000)
    );
    assert_eq!((hop.placeholder.as_str(), hop.time_column.as_str()), ("__window_1", "bidtime"));
    assert_eq!((cumulate.function, cumulate.step_ms, cumulate.size_ms), (WindowFunction::Cumulate, 120_000, 3_600_000));
    assert_eq!(cumulate.offset_ms, 500);
    let aliases: Vec<_> = from_tables(&q.query).into_iter().take(2).collect();
    assert_eq!(
        aliases,
        [("__window_0".to_string(), Some("w".to_string())), ("__window_1".to_string(), Some("h".to_string()))]
    );
}

#[test]
fn session_windows_take_a_partition_and_a_gap() {
    let sql = "SELECT * FROM TABLE(SESSION(TABLE t PARTITION BY (k1, k2), DESCRIPTOR(ts), INTERVAL '5' MINUTES))";
    let ScriptStatement::Query(q) = one(sql) else { panic!() };
    let [call] = q.calls.windows.as_slice() else { panic!() };
    assert_eq!((call.function, call.input.as_str(), call.size_ms), (WindowFunction::Session, "t", 300_000));
    let keys: Vec<&str> = call.partition_by.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["k1", "k2"]);
    let sql = "SELECT * FROM TABLE(SESSION(DATA => TABLE t PARTITION BY k, TIMECOL => DESCRIPTOR(ts), \
               GAP => INTERVAL '1' MINUTE))";
    let ScriptStatement::Query(q) = one(sql) else { panic!() };
    assert_eq!(q.calls.windows[0].partition_by[0].0, "k");
    assert_eq!(q.calls.windows[0].size_ms, 60_000);
}

#[test]
fn group_windows_become_window_functions() {
    let sql = "SELECT k, TUMBLE_START(ts, INTERVAL '1' HOUR) AS s, TUMBLE_ROWTIME(ts, INTERVAL '1' HOUR), COUNT(*)
FROM t GROUP BY k, TUMBLE(ts, INTERVAL '1' HOUR), hop";
    let ScriptStatement::Query(q) = one(sql) else { panic!() };
    let [call] = q.calls.windows.as_slice() else { panic!("{:?}", q.calls.windows) };
    assert_eq!(
        (call.function, call.input.as_str(), call.time_column.as_str(), call.size_ms, call.legacy),
        (WindowFunction::Tumble, "t", "ts", 3_600_000, true)
    );
    assert_eq!((call.location.line, call.location.column), (2, 20));
    assert_eq!(
        q.query.to_string(),
        "SELECT k, window_start AS s, window_time, COUNT(*) FROM __window_0 t \
         GROUP BY k, window_start, window_end, window_time, hop"
    );
    // A HOP over an aliased table keeps the alias; its slide comes first.
    let sql = "SELECT HOP_END(b.ts, INTERVAL '4' MINUTE, INTERVAL '10' MINUTE) FROM bids AS b \
               GROUP BY HOP(b.ts, INTERVAL '4' MINUTE, INTERVAL '10' MINUTE)";
    let ScriptStatement::Query(q) = one(sql) else { panic!() };
    let [call] = q.calls.windows.as_slice() else { panic!() };
    assert_eq!((call.function, call.step_ms, call.size_ms), (WindowFunction::Hop, 240_000, 600_000));
    assert_eq!(q.query.to_string(), "SELECT window_end FROM __window_0 AS b GROUP BY window_start, window_end");
}

#[test]
fn window_function_errors_are_located() {
    let cases = [
        (
            "SELECT * FROM TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' HOUR)",
            (1, 15),
            "write it in FROM as TABLE(TUMBLE(...))",
        ),
        ("SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts)))", (1, 21), "TUMBLE needs its SIZE argument"),
        (
            "SELECT * FROM TABLE(HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '1' HOUR))",
            (1, 21),
            "HOP needs its SIZE argument",
        ),
        (
            "SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MONTH))",
            (1, 66),
            "'MONTH' is not a window interval unit",
        ),
        ("SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL 'x' HOUR))", (1, 62), "'x' is not a number"),
        (
            "SELECT * FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '0' HOUR))",
            (1, 53),
            "TUMBLE's SIZE must be positive",
        ),
        ("SELECT * FROM TABLE(TUMBLE(TABLE t, ts, INTERVAL '1' HOUR))", (1, 37), "written DESCRIPTOR(column)"),
        (
            "SELECT * FROM TABLE(TUMBLE(DATA => TABLE t, DESCRIPTOR(ts), INTERVAL '1' HOUR))",
            (1, 45),
            "positional TUMBLE argument follows",
        ),
        (
            "SELECT * FROM TABLE(TUMBLE(DATA => TABLE t, TIMECOL => DESCRIPTOR(ts), WIDTH => INTERVAL '1' HOUR))",
            (1, 72),
            "TUMBLE has no argument named WIDTH",
        ),
        (
            "SELECT * FROM TABLE(TUMBLE(TABLE t PARTITION BY k, DESCRIPTOR(ts), INTERVAL '1' HOUR))",
            (1, 36),
            "TUMBLE takes no PARTITION BY",
        ),
        (
            "SELECT * FROM TABLE(TUMBLE(TABLE (SELECT 1), DESCRIPTOR(ts), INTERVAL '1' HOUR))",
            (1, 35),
            "input must be a table or view name",
        ),
    ];
    for (sql, (line, column), needle) in cases {
        let e = error(sql);
        assert!(e.to_string().contains(needle), "{sql}: {e}");
        assert_eq!((e.line, e.column), (line, column), "{sql}: {}", e.render(sql));
    }
}

#[test]
fn flinks_vector_search_becomes_a_placeholder_joined_laterally() {
    let sql = "SELECT e.id, v.name, v.score\nFROM events AS e, LATERAL TABLE(VECTOR_SEARCH(SEARCH_TABLE => TABLE items, \
               COLUMN_TO_QUERY => e.embedding,\n  COLUMN_TO_SEARCH => DESCRIPTOR(embedding), TOP_K => 3, CONFIG => MAP['metric', 'dot'])) AS v";
    let ScriptStatement::Query(q) = one(sql) else { panic!() };
    assert_eq!(
        from_tables(&q.query),
        [("events".to_string(), Some("e".to_string())), ("__vector_search_2_33".to_string(), Some("v".to_string()))]
    );
    let [call] = q.calls.vector_searches.as_slice() else { panic!("{:?}", q.calls.vector_searches) };
    assert_eq!(
        (call.table.as_str(), call.query_column.as_str(), call.search_column.as_str()),
        ("items", "e.embedding", "embedding")
    );
    assert_eq!((call.top_k, call.config.get("metric").map(String::as_str)), (3, Some("dot")));
    assert_eq!((call.location, call.search_location), (at(2, 33), at(3, 34)));
    assert!(call.aggregates.is_none());
    // Positional, after CROSS JOIN and LEFT JOIN ... ON TRUE.
    for sql in [
        "SELECT * FROM q CROSS JOIN LATERAL TABLE(VECTOR_SEARCH(TABLE items, q.v, DESCRIPTOR(e), 5)) s",
        "SELECT * FROM q LEFT JOIN LATERAL TABLE(VECTOR_SEARCH(TABLE items, q.v, DESCRIPTOR(e), 5)) s ON TRUE",
    ] {
        let ScriptStatement::Query(q) = one(sql) else { panic!() };
        assert_eq!(from_tables(&q.query)[1].1, Some("s".to_string()), "{sql}");
        assert!(from_tables(&q.query)[1].0.starts_with("__vector_search_1_"), "{sql}");
        let call = &q.calls.vector_searches[0];
        assert_eq!((call.query_column.as_str(), call.search_column.as_str(), call.top_k), ("q.v", "e", 5));
    }
}

#[test]
fn the_lessons_vector_search_aggregates_in_a_cross_apply() {
    let sql = "WITH enriched AS (\n  SELECT e.*, similar_items\n  FROM embedded e\n  CROSS APPLY (\n    SELECT ARRAY_AGG(item) AS \
               similar_items, COUNT(*) AS n\n    FROM VECTOR_SEARCH(TABLE items, 'embedding', e.embedding, TOP_K => 5)\n  )\n)\n\
               INSERT INTO output SELECT * FROM enriched";
    let ScriptStatement::Insert(insert) = one(sql) else { panic!() };
    let [call] = insert.calls.vector_searches.as_slice() else { panic!() };
    assert_eq!(
        (call.table.as_str(), call.search_column.as_str(), call.query_column.as_str()),
        ("items", "embedding", "e.embedding")
    );
    assert_eq!(call.top_k, 5);
    let aggregates = call.aggregates.as_ref().unwrap();
    let shown: Vec<(&str, Option<&str>, &str)> =
        aggregates.iter().map(|a| (a.function.as_str(), a.column.as_deref(), a.name.as_str())).collect();
    assert_eq!(shown, [("array_agg", Some("item"), "similar_items"), ("count", None, "n")]);
    let text = insert.query.to_string();
    assert!(text.contains("FROM embedded e CROSS JOIN __vector_search_6_10"), "{text}");
}

#[test]
fn vector_search_mistakes_are_located() {
    let e = error("SELECT * FROM VECTOR_SEARCH(TABLE items, 'e', q.v, TOP_K => 5)");
    assert!(e.message.contains("needs the rows that search"), "{e}");
    let e = error("SELECT * FROM q, LATERAL TABLE(VECTOR_SEARCH(TABLE items, 'e', q.v))");
    assert!(e.message.contains("needs TOP_K"), "{e}");
    let e = error("SELECT * FROM q, LATERAL TABLE(VECTOR_SEARCH(TABLE items, 'e', q.v, TOP_K => 0))");
    assert_eq!((e.line, e.column, e.message.contains("from 1 to")), (1, 78, true), "{e}");
    let e = error("SELECT * FROM q, LATERAL TABLE(VECTOR_SEARCH(TABLE items, 'e', q.v + 1, 5))");
    assert!(e.message.contains("COLUMN_TO_QUERY must be a column"), "{e}");
    let e = error("SELECT * FROM q CROSS APPLY (SELECT item FROM VECTOR_SEARCH(TABLE items, 'e', q.v, TOP_K => 5))");
    assert!(e.message.contains("only aggregates"), "{e}");
}

#[test]
fn ml_evaluate_becomes_a_placeholder_with_its_label_and_task() {
    let ScriptStatement::Query(q) = one(
        "SELECT * FROM ML_EVALUATE(TABLE labelled, MODEL m, DESCRIPTOR(is_fraud), DESCRIPTOR(a, b), TASK => 'classification')",
    ) else {
        panic!()
    };
    assert_eq!(from_tables(&q.query), [("__ml_evaluate_1_15".to_string(), None)]);
    let call = &q.calls.evaluations[0];
    assert_eq!((call.input.as_str(), call.model.as_str(), call.label.0.as_str()), ("labelled", "m", "is_fraud"));
    assert_eq!(call.descriptor.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(call.task.as_deref(), Some("classification"));
    let ScriptStatement::Query(q) = one(
        "SELECT mae FROM TABLE(ML_EVALUATE(INPUT => TABLE t, MODEL => MODEL m, LABEL => DESCRIPTOR(y), ARGS => DESCRIPTOR(x)))",
    ) else {
        panic!()
    };
    assert_eq!((q.calls.evaluations[0].label.0.as_str(), q.calls.evaluations[0].task.as_deref()), ("y", None));
    let e = error("SELECT * FROM ML_EVALUATE(TABLE t, MODEL m, DESCRIPTOR(y), DESCRIPTOR(x), 'clustering')");
    assert!(e.message.contains("unknown ML_EVALUATE task"), "{e}");
    let e = error("SELECT ML_EVALUATE(TABLE t, MODEL m, DESCRIPTOR(y), DESCRIPTOR(x)) FROM t");
    assert!(e.message.contains("table function"), "{e}");
}
