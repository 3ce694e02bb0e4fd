//! The CREATE MODEL / ML_PREDICT lesson and the generic-python FLIP: every model statement
//! parses and validates, and every ML_PREDICT form parses (or is rejected with a clear
//! message where Sluice does not support it yet).

use sluice_sql::catalog::render::{describe_model, show_create_model};
use sluice_sql::catalog::Catalog;
use sluice_sql::parser::{parse_script, ScriptStatement};
use sluice_sql::SqlError;

/// Parses `script` and applies its catalog statements; returns the catalog and the other
/// statements.
fn run(script: &str) -> Result<(Catalog, Vec<ScriptStatement>), SqlError> {
    let mut catalog = Catalog::new();
    let mut rest = Vec::new();
    for statement in parse_script(script)? {
        match statement {
            ScriptStatement::CreateTable(create) => catalog.create_table(&create)?,
            ScriptStatement::CreateView(create) => catalog.create_view(&create)?,
            ScriptStatement::CreateModel(create) => catalog.create_model(&create)?,
            ScriptStatement::AlterModel(alter) => catalog.alter_model(&alter)?,
            ScriptStatement::Drop(drop) => catalog.drop(&drop)?,
            other => rest.push(other),
        }
    }
    Ok((catalog, rest))
}

fn ok(script: &str) -> (Catalog, Vec<ScriptStatement>) {
    run(script).unwrap_or_else(|e| panic!("{}", e.render(script)))
}

const LESSON_MODELS: &str = "
CREATE MODEL customer_service_agent
INPUT (prompt STRING)
OUTPUT (response STRING)
WITH (
  'provider' = 'openai',
  'task' = 'chat-completion',
  'api_key' = '{{ secret.openai_api_key }}',
  'base_url' = 'https://api.openai.com/v1',  -- override для Azure / proxy
  'model_name' = 'gpt-4-turbo',
  'temperature' = '0.0',
  'max_tokens' = '500',
  'top_p' = '0.95',
  'presence_penalty' = '0',
  'frequency_penalty' = '0',
  'response_format' = 'json_object',  -- json mode
  'seed' = '12345',  -- для deterministic output
  'system_prompt' = 'You are a helpful assistant.',
  'request_timeout' = '30s',
  'max_retries' = '3'
);

CREATE MODEL legal_analyzer
INPUT (text STRING)
OUTPUT (analysis STRING)
WITH (
  'provider' = 'anthropic',
  'task' = 'messages',
  'api_key' = '{{ secret.anthropic_api_key }}',
  'model_name' = 'claude-3-opus-20240229',
  'max_tokens' = '1000',
  'temperature' = '0',
  'system_prompt' = 'You are a legal expert...',
  'request_timeout' = '60s'
);

CREATE MODEL fraud_classifier
INPUT (
  amount DOUBLE,
  hour_of_day INT,
  merchant_category INT,
  user_age INT,
  user_country STRING,
  txn_velocity_24h INT
)
OUTPUT (
  fraud_score DOUBLE
)
WITH (
  'provider' = 'local',
  'task' = 'classification',
  'model_path' = 's3://models/fraud_v3.onnx',
  'runtime' = 'onnx',
  'batch_size' = '32',
  'inference_threads' = '4',
  'gpu' = 'false'
);

CREATE MODEL my_python_model
INPUT (text STRING)
OUTPUT (prediction STRING, confidence FLOAT)
WITH (
   'provider' = 'generic-python',
   'model-directory-path' = '/path/to/your/model',
   'python-predict-class' = 'mymodule.MyCustomModel',
   'properties.model_version' = '1'
);

CREATE MODEL simple_python_model
  INPUT (text STRING)
  OUTPUT (sentiment STRING, confidence FLOAT)
  WITH (
      'provider' = 'generic-python',
      'model-directory-path' = '/path/to/python-models/sentiment-roberta-large-english',
      'properties.model_version' = '1',
      'python-predict-class' = 'models.HuggingFaceSentimentPredictFunction'
  );

-- The lesson's operator-level fragments, combined into one model.
CREATE MODEL my_model
INPUT (col1 STRING, col2 INT, col3 DOUBLE)
OUTPUT (score DOUBLE)
WITH (
  'provider' = 'openai',
  'api_key' = '{{ secret.openai_api_key }}',
  'model_name' = 'gpt-4o-mini',
  'async' = 'true',           -- enable async
  'max_concurrent_requests' = '100',  -- max in-flight per operator instance
  'ordered_output' = 'true',   -- preserve order (default true)
  'on_error' = 'dead_letter',  -- 'fail' | 'skip' | 'dead_letter'
  'dead_letter.topic' = 'kafka:failed-predictions',
  'retry.on_codes' = '429,503,504'
);
";

#[test]
fn every_lesson_and_flip_model_validates() {
    let (catalog, _) = ok(LESSON_MODELS);
    let names: Vec<&str> = catalog.models().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "customer_service_agent",
            "legal_analyzer",
            "fraud_classifier",
            "my_python_model",
            "simple_python_model",
            "my_model"
        ]
    );
    let providers: Vec<&str> = catalog.models().iter().map(|m| m.provider.as_str()).collect();
    assert_eq!(providers, ["openai", "anthropic", "local", "generic-python", "generic-python", "openai"]);
    let agent = catalog.find_model("customer_service_agent").unwrap();
    assert_eq!(agent.options.len(), 14);
    assert_eq!(agent.options["endpoint"], "https://api.openai.com/v1/chat/completions");
    assert_eq!(agent.options["api-key"], "{{ secret.openai_api_key }}");
    let fraud = catalog.find_model("fraud_classifier").unwrap();
    assert_eq!(fraud.input.fields().len(), 6);
    assert_eq!(fraud.options["model-path"], "s3://models/fraud_v3.onnx");
    let combined = catalog.find_model("my_model").unwrap();
    assert_eq!(combined.options["output-mode"], "ORDERED");
    assert_eq!(combined.options["max-concurrent-operations"], "100");
    assert_eq!(combined.options["retry.on-codes"], "429,503,504");
    for model in catalog.models() {
        for text in [describe_model(model), show_create_model(model)] {
            assert!(!text.contains("secret.openai_api_key") && !text.contains("secret.anthropic_api_key"), "{text}");
        }
    }
}

#[test]
fn the_same_model_in_flink_spelling_has_the_same_options() {
    let flink = "CREATE MODEL customer_service_agent INPUT (prompt STRING) OUTPUT (response STRING) WITH (
      'provider' = 'openai', 'task' = 'chat-completion', 'api-key' = '{{ secret.openai_api_key }}',
      'endpoint' = 'https://api.openai.com/v1/chat/completions', 'model' = 'gpt-4-turbo', 'temperature' = '0.0',
      'max-tokens' = '500', 'top-p' = '0.95', 'presence-penalty' = '0', 'frequency-penalty' = '0',
      'response-format' = 'json_object', 'seed' = '12345', 'system-prompt' = 'You are a helpful assistant.',
      'timeout' = '30s', 'max-retries' = '3')";
    let (flink, _) = ok(flink);
    let (lesson, _) = ok(LESSON_MODELS);
    assert_eq!(flink.models()[0].options, lesson.models()[0].options);
    assert_eq!(show_create_model(&flink.models()[0]), show_create_model(&lesson.models()[0]));
}

#[test]
fn lesson_ml_predict_query() {
    let (_, rest) = ok("SELECT *
FROM TABLE(
  ML_PREDICT(
    TABLE input_data,
    MODEL my_model,
    DESCRIPTOR(col1, col2, col3)
  )
);");
    let [ScriptStatement::Query(query)] = rest.as_slice() else { panic!("{rest:?}") };
    assert_eq!(query.query.to_string(), "SELECT * FROM __ml_predict_0");
    let call = &query.calls.ml_predicts[0];
    assert_eq!((call.input.as_str(), call.model.as_str()), ("input_data", "my_model"));
    let columns: Vec<&str> = call.descriptor.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(columns, ["col1", "col2", "col3"]);
}

#[test]
fn flink_documentation_forms() {
    let (catalog, rest) = ok("CREATE MODEL ai_analyze_sentiment
INPUT (`input` STRING)
OUTPUT (`content` STRING)
WITH (
    'provider'='openai',
    'endpoint'='https://api.openai.com/v1/chat/completions',
    'api-key' = '<YOUR KEY>',
    'model'='gpt-3.5-turbo',
    'system-prompt' = 'Classify the text below into one of the following labels: [positive, negative, neutral, mixed]. Output only the label.'
);
CREATE TEMPORARY TABLE print_sink(
  id BIGINT,
  movie_name VARCHAR,
  predicit_label VARCHAR,
  actual_label VARCHAR
) WITH (
  'connector' = 'print'
);
INSERT INTO print_sink
SELECT id, movie_name, content as predicit_label, actual_label
FROM ML_PREDICT(
  TABLE movie_comment,
  MODEL ai_analyze_sentiment,
  DESCRIPTOR(user_comment));
SELECT * FROM ML_PREDICT(
  INPUT => TABLE movie_comment,
  MODEL => MODEL ai_analyze_sentiment,
  ARGS => DESCRIPTOR(user_comment),
  CONFIG => MAP['async', 'true', 'max-concurrent-operations', '10', 'output-mode', 'ALLOW_UNORDERED', 'timeout', '10s']);");
    assert_eq!(catalog.models()[0].input.field(0).name(), "input");
    let [ScriptStatement::Insert(insert), ScriptStatement::Query(query)] = rest.as_slice() else { panic!("{rest:?}") };
    assert_eq!(insert.target, "print_sink");
    assert_eq!(insert.calls.ml_predicts[0].input, "movie_comment");
    let config = &query.calls.ml_predicts[0].config;
    assert_eq!(config.len(), 4);
    let canonical = sluice_core::models::validate_predict_config(config).unwrap();
    assert_eq!(canonical["output-mode"], "ALLOW_UNORDERED");
}

#[test]
fn lesson_forms_of_ml_predict_become_model_calls_and_the_rest_is_checked() {
    let values = "INSERT INTO scored_events
SELECT e.customer_id, p.fraud_score
FROM event_stream e
CROSS APPLY (
  SELECT *
  FROM TABLE(
    ML_PREDICT(
      VALUES (e.txn_amount, c.age, c.tenure, c.segment),
      MODEL fraud_model,
      DESCRIPTOR(amount, age, tenure, segment)
    )
  )
) p;";
    let (_, statements) = ok(values);
    let [ScriptStatement::Insert(insert)] = statements.as_slice() else { panic!("{statements:?}") };
    let [call] = insert.calls.ml_calls.as_slice() else { panic!("{:?}", insert.calls) };
    assert_eq!((call.model.as_str(), call.arguments, call.row), ("fraud_model", 4, true));
    assert_eq!((call.location.line, call.location.column), (7, 5));
    assert!(insert.calls.ml_predicts.is_empty(), "the APPLY is no table function any more");
    let scalar = "WITH local_scored AS (
  SELECT *, ML_PREDICT(MODEL local_fraud_model, amount) AS local_score
  FROM transactions
)
SELECT * FROM local_scored;";
    let (_, statements) = ok(scalar);
    let [ScriptStatement::Query(query)] = statements.as_slice() else { panic!("{statements:?}") };
    let [call] = query.calls.ml_calls.as_slice() else { panic!("{:?}", query.calls) };
    assert_eq!((call.model.as_str(), call.arguments, call.row), ("local_fraud_model", 1, false));
    // The lesson's dimension table declares its key without NOT ENFORCED, as Flink rejects.
    let e = run(
        "CREATE TABLE customer_dim (\n  customer_id BIGINT PRIMARY KEY,\n  age INT\n) WITH ('connector' = 'jdbc');",
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (2, 22));
    assert!(e.to_string().contains("the primary key of table 'customer_dim' must be NOT ENFORCED"), "{e}");
    // Its event stream, written with only `'connector' = 'kafka'` (the lesson elides the
    // rest with '...'), fails where it is created: a Kafka table needs a topic.
    let bare = "CREATE TABLE event_stream (
  customer_id BIGINT,
  txn_amount DOUBLE,
  event_time TIMESTAMP(3) METADATA
) WITH (
  'connector' = 'kafka'
);";
    let e = run(bare).unwrap_err();
    assert_eq!((e.line, e.column), (1, 14));
    assert!(e.message.contains("'topic'"), "{e}");
    // With its topic and format it is a valid declaration.
    let (catalog, _) = ok(&bare.replace(
        "'connector' = 'kafka'",
        "'connector' = 'kafka', 'topic' = 'events', 'properties.bootstrap.servers' = 'broker:9092', 'format' = 'json'",
    ));
    assert_eq!(catalog.tables()[0].physical_schema().fields().len(), 2);
}
