//! Tests of the catalog and of what SHOW, DESCRIBE and SHOW CREATE print.

use sluice_connectors::Role;

use super::render::{
    describe_model, describe_table, show_create_model, show_create_table, show_create_view, show_objects,
};
use super::*;
use crate::parser::{parse_script, ScriptStatement};

/// Runs the catalog statements of `sql`.
fn catalog(sql: &str) -> Result<Catalog> {
    let mut catalog = Catalog::new();
    for statement in parse_script(sql)? {
        match statement {
            ScriptStatement::CreateTable(create) => catalog.create_table(&create)?,
            ScriptStatement::CreateView(create) => catalog.create_view(&create)?,
            ScriptStatement::CreateModel(create) => catalog.create_model(&create)?,
            ScriptStatement::AlterModel(alter) => catalog.alter_model(&alter)?,
            ScriptStatement::Drop(drop) => catalog.drop(&drop)?,
            other => panic!("not a catalog statement: {other:?}"),
        }
    }
    Ok(catalog)
}

fn ok(sql: &str) -> Catalog {
    catalog(sql).unwrap_or_else(|e| panic!("{}", e.render(sql)))
}

const AT: Location = Location { line: 99, column: 1 };

#[test]
fn lookups_are_case_insensitive_and_suggest() {
    let c = ok("CREATE TABLE Orders (Id BIGINT, amount DOUBLE) WITH ('connector' = 'datagen')");
    let t = c.table("orders", AT).unwrap();
    assert_eq!(t.name, "Orders");
    assert_eq!(t.column("ID", AT).unwrap(), 0);
    let e = c.table("ordrs", AT).unwrap_err();
    assert_eq!(e.to_string(), "line 99, column 1: unknown table 'ordrs' (hint: did you mean 'Orders'?)");
    let e = t.column("amont", AT).unwrap_err();
    assert_eq!(e.hint.as_deref(), Some("did you mean 'amount'?"));
    let e = t.column("zzzzzzzz", AT).unwrap_err();
    assert_eq!(e.hint.as_deref(), Some("its columns are 'Id', 'amount'"));
}

#[test]
fn if_not_exists_keeps_the_first_object() {
    let c = ok("CREATE TABLE t (a INT) WITH ('connector' = 'datagen');\nCREATE TABLE IF NOT EXISTS T (b INT) WITH ('connector' = 'print');\n\
                CREATE VIEW IF NOT EXISTS t AS SELECT 1;\n\
                CREATE MODEL m INPUT (a INT) OUTPUT (b INT) WITH ('provider' = 'local', 'model_path' = '/a');\n\
                CREATE MODEL IF NOT EXISTS M INPUT (a INT) OUTPUT (b INT) WITH ('provider' = 'local', 'model_path' = '/b')");
    assert_eq!((c.tables().len(), c.views().len(), c.models().len()), (1, 0, 1));
    assert_eq!(c.tables()[0].connector, "datagen");
    assert_eq!(c.models()[0].options.get("model-path").map(String::as_str), Some("/a"));
    let e = catalog("CREATE TABLE t (a INT) WITH ('connector' = 'datagen');\nCREATE VIEW T AS SELECT 1").unwrap_err();
    assert_eq!(e.to_string(), "line 2, column 13: a table called 'T' already exists (hint: it was created at line 1, column 14; tables and views share their names)");
}

#[test]
fn option_errors_point_at_the_option() {
    // At CREATE TABLE, the option's line and column.
    let e = catalog("CREATE TABLE t (a INT) WITH (\n  'connector' = 'datagen',\n  'fields.a.min' = 'x')").unwrap_err();
    assert!(e.message.contains("'fields.a.min' = 'x' is not a number"), "{e}");
    assert_eq!(e.location(), Location { line: 3, column: 3 });
    let e = catalog("CREATE TABLE t (a INT) WITH ('connector' = 'datagen',\n 'number-of-rows' = 'many')").unwrap_err();
    assert!(e.message.contains("'number-of-rows'"), "{e}");
    assert_eq!(e.location(), Location { line: 2, column: 2 });
    let e = catalog("CREATE TABLE t (a INT) WITH ('connector' = 'kafka', 'format' = 'json')").unwrap_err();
    assert!(e.message.contains("'topic'"), "{e}");
    // A table valid in one of its connector's roles is created; the role is checked where
    // the table is used.
    let c = ok("CREATE TABLE t (a INT) WITH (\n  'connector' = 'datagen',\n  'fields.a.min' = '1')");
    let e = c.tables()[0].validate(Role::Sink, AT).unwrap_err();
    assert!(e.message.contains("cannot be written to"), "{e}");
    assert_eq!(e.location(), AT);
}

#[test]
fn duplicate_options_are_rejected() {
    let e = catalog("CREATE TABLE t (a INT) WITH ('connector' = 'print',\n 'connector' = 'print')").unwrap_err();
    assert_eq!(e.to_string(), "line 2, column 2: option 'connector' is set twice (hint: remove one of them)");
}

const ORDERS: &str = "CREATE TABLE orders (
  id BIGINT COMMENT 'order id',
  price DECIMAL(10, 2),
  qty INT NOT NULL,
  total AS price * qty,
  ts TIMESTAMP(3),
  src_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND,
  PRIMARY KEY (id) NOT ENFORCED
) COMMENT 'all orders' WITH ('connector' = 'kafka', 'topic' = 'orders', 'format' = 'json',
  'properties.bootstrap.servers' = 'broker:9092', 'properties.sasl.password' = 'hunter2')";

#[test]
fn table_schemas_and_descriptions() {
    let c = ok(ORDERS);
    let t = &c.tables()[0];
    assert_eq!(t.primary_key, ["id"]);
    let physical: Vec<String> =
        t.physical_schema().fields().iter().map(|f| format!("{}:{}", f.name(), f.is_nullable())).collect();
    assert_eq!(physical, ["id:false", "price:true", "qty:false", "ts:true"]);
    assert_eq!(t.schema().fields().len(), 6);
    assert_eq!(t.connector_spec().table, "orders");
    assert_eq!(
        describe_table(t),
        "\
+--------+------------------------+-------+---------+-----------------------------------+--------------------------+
|   name |                   type |  null |     key |                            extras |                watermark |
+--------+------------------------+-------+---------+-----------------------------------+--------------------------+
|     id |                 BIGINT | FALSE | PRI(id) |                                   |                          |
|  price |         DECIMAL(10, 2) |  TRUE |         |                                   |                          |
|    qty |                    INT | FALSE |         |                                   |                          |
|  total |             (computed) |  TRUE |         |                    AS price * qty |                          |
|     ts | TIMESTAMP(3) *ROWTIME* |  TRUE |         |                                   | ts - INTERVAL '5' SECOND |
| src_ts |       TIMESTAMP_LTZ(3) |  TRUE |         | METADATA FROM 'timestamp' VIRTUAL |                          |
+--------+------------------------+-------+---------+-----------------------------------+--------------------------+
6 rows in set
"
    );
}

#[test]
fn show_create_table_round_trips() {
    let c = ok(ORDERS);
    let ddl = show_create_table(&c.tables()[0]);
    assert_eq!(
        ddl,
        "CREATE TABLE `orders` (
  `id` BIGINT NOT NULL COMMENT 'order id',
  `price` DECIMAL(10, 2),
  `qty` INT NOT NULL,
  `total` AS price * qty,
  `ts` TIMESTAMP(3),
  `src_ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  WATERMARK FOR `ts` AS ts - INTERVAL '5' SECOND,
  PRIMARY KEY (`id`) NOT ENFORCED
) COMMENT 'all orders'
WITH (
  'connector' = 'kafka',
  'format' = 'json',
  'properties.bootstrap.servers' = 'broker:9092',
  'properties.sasl.password' = '****',
  'topic' = 'orders'
)
"
    );
    // The DDL creates the same table (but for the masked password).
    let again = ok(&ddl.replace("****", "hunter2"));
    assert_eq!(show_create_table(&again.tables()[0]), ddl);
}

const AGENT: &str = "CREATE TEMPORARY MODEL customer_service_agent
INPUT (prompt STRING COMMENT 'the question')
OUTPUT (response STRING NOT NULL)
COMMENT 'answers customers'
WITH (
  'provider' = 'openai',
  'task' = 'chat-completion',
  'api_key' = 'sk-live-secret',
  'base_url' = 'https://api.openai.com/v1',
  'model_name' = 'gpt-4-turbo',
  'request_timeout' = '30s',
  'properties.token' = '{{ secret.other }}'
)";

#[test]
fn describe_model_masks_the_api_key() {
    let e = catalog(AGENT).unwrap_err();
    assert_eq!(e.to_string(), "line 12, column 3: option 'properties.token' belongs to provider 'generic-python', not to 'openai' (hint: remove it, or change the model's 'provider')");
    let c = ok(&AGENT.replace(",\n  'properties.token' = '{{ secret.other }}'", ""));
    let model = &c.models()[0];
    assert_eq!(model.provider, "openai");
    let text = describe_model(model);
    assert!(!text.contains("sk-live-secret"), "{text}");
    assert_eq!(
        text,
        "\
+----------+--------+-------+----------+
|     name |   type |  null | is input |
+----------+--------+-------+----------+
|   prompt | STRING |  TRUE |     TRUE |
| response | STRING | FALSE |    FALSE |
+----------+--------+-------+----------+
2 rows in set
+----------+--------------------------------------------+
|   option |                                      value |
+----------+--------------------------------------------+
| provider |                                     openai |
|  api-key |                                       **** |
| endpoint | https://api.openai.com/v1/chat/completions |
|    model |                                gpt-4-turbo |
|     task |                            chat-completion |
|  timeout |                                        30s |
+----------+--------------------------------------------+
6 rows in set
"
    );
}

#[test]
fn show_create_model_round_trips_with_masked_secrets() {
    let c = ok(&AGENT.replace(",\n  'properties.token' = '{{ secret.other }}'", ""));
    let ddl = show_create_model(&c.models()[0]);
    assert_eq!(
        ddl,
        "CREATE TEMPORARY MODEL `customer_service_agent`
INPUT (`prompt` STRING COMMENT 'the question')
OUTPUT (`response` STRING NOT NULL)
COMMENT 'answers customers'
WITH (
  'provider' = 'openai',
  'api-key' = '****',
  'endpoint' = 'https://api.openai.com/v1/chat/completions',
  'model' = 'gpt-4-turbo',
  'task' = 'chat-completion',
  'timeout' = '30s'
)
"
    );
    let again = ok(&ddl);
    assert_eq!(
        again.models()[0].options,
        c.models()[0]
            .options
            .iter()
            .map(|(k, v)| { (k.clone(), if k == "api-key" { "****".to_string() } else { v.clone() }) })
            .collect()
    );
}

#[test]
fn alter_rename_and_drop_models() {
    let mut c = ok(&format!(
        "{};\nALTER MODEL customer_service_agent SET ('max_tokens' = '100', 'request_timeout' = '5s');\nALTER MODEL customer_service_agent RENAME TO agent",
        AGENT.replace(",\n  'properties.token' = '{{ secret.other }}'", "")
    ));
    let model = c.find_model("AGENT").unwrap();
    assert_eq!(model.options.get("timeout").map(String::as_str), Some("5s"));
    assert_eq!(model.options.get("max-tokens").map(String::as_str), Some("100"));
    let e = catalog(&format!(
        "{};\nALTER MODEL customer_service_agent SET (\n  'temperature' = '9')",
        AGENT.replace(",\n  'properties.token' = '{{ secret.other }}'", "")
    ))
    .unwrap_err();
    assert_eq!(e.to_string(), "line 14, column 3: option 'temperature' = '9' must be a number from 0 to 2");
    let drop = match parse_script("DROP MODEL agent").unwrap().remove(0) {
        ScriptStatement::Drop(d) => d,
        other => panic!("{other:?}"),
    };
    c.drop(&drop).unwrap();
    assert!(c.models().is_empty());
    assert_eq!(
        c.drop(&drop).unwrap_err().to_string(),
        "line 1, column 12: unknown model 'agent' (hint: use DROP MODEL IF EXISTS to ignore a missing model)"
    );
}

#[test]
fn views_and_listings() {
    let c = ok("CREATE TABLE b_table (x INT) WITH ('connector' = 'datagen');\nCREATE VIEW a_view (y) AS SELECT x FROM b_table;\n\
                CREATE MODEL m INPUT (a INT) OUTPUT (b INT) WITH ('provider' = 'local', 'model_path' = '/a')");
    assert_eq!(
        show_objects(&c, ObjectKind::Table),
        "+------------+\n| table name |\n+------------+\n|     a_view |\n|    b_table |\n+------------+\n2 rows in set\n"
    );
    assert_eq!(
        show_objects(&c, ObjectKind::Model),
        "+------------+\n| model name |\n+------------+\n|          m |\n+------------+\n1 row in set\n"
    );
    assert_eq!(show_objects(&Catalog::new(), ObjectKind::View), "Empty set\n");
    assert_eq!(show_create_view(&c.views()[0]), "CREATE VIEW `a_view` (`y`)\nAS SELECT x FROM b_table\n");
    let reference = |sql: &str| match parse_script(sql).unwrap().remove(0) {
        ScriptStatement::Describe(r) => r,
        other => panic!("{other:?}"),
    };
    assert!(matches!(c.object(&reference("DESCRIBE a_view")), Ok(CatalogObject::View(v)) if v.name == "a_view"));
    assert!(matches!(c.object(&reference("DESCRIBE M")), Ok(CatalogObject::Model(m)) if m.name == "m"));
    let e = c.object(&reference("DESCRIBE TABLE m")).unwrap_err();
    assert_eq!(e.to_string(), "line 1, column 16: unknown table 'm' (hint: declared names are 'b_table')");
    let e = c.object(&reference("DESCRIBE b_tabel")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 1, column 10: no table, view or model is called 'b_tabel' (hint: did you mean 'b_table'?)"
    );
}
