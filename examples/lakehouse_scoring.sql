-- The seed lesson's third pattern, part 2 of 2: a batch job scores one stored partition
-- with ML_PREDICT and writes the predictions to another partitioned Parquet table. Run
-- examples/lakehouse_features.sql first, then from the repository root:
--   cargo run -q -- run examples/lakehouse_scoring.sql
-- The scan reads only the files of dt = '2026-01-01' and hr = '01', and of them only the
-- columns the query uses (EXPLAIN shows project=[...] and filter=[...] on the source).
-- A scheduled job would pick yesterday with WHERE dt = DATE_FORMAT(CURRENT_DATE - INTERVAL '1' DAY, 'yyyy-MM-dd').
-- The model is models/fraud_score_model.onnx (fixed weights, models/make_lesson_models.py).

SET 'execution.runtime-mode' = 'batch';

CREATE TABLE event_features (
  customer_id BIGINT,
  amount DOUBLE,
  event_time TIMESTAMP(3),
  age INT,
  tenure INT,
  dt STRING,
  hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem',
  'path' = '/tmp/sluice-lakehouse/event_features',
  'format' = 'parquet'
);

CREATE MODEL fraud_model
INPUT (amount DOUBLE, age INT, tenure INT, segment STRING)
OUTPUT (fraud_score DOUBLE)
WITH ('provider' = 'local', 'task' = 'regression', 'model_path' = 'models/fraud_score_model.onnx');

CREATE TABLE predictions (
  customer_id BIGINT,
  amount DOUBLE,
  fraud_score DOUBLE,
  dt STRING,
  hr STRING
) PARTITIONED BY (dt, hr) WITH (
  'connector' = 'filesystem',
  'path' = '/tmp/sluice-lakehouse/predictions',
  'format' = 'parquet',
  'sink.partition-commit.policy.kind' = 'success-file'
);

CREATE VIEW stored_partition AS
SELECT customer_id, amount, age, tenure, 'retail' AS segment, dt, hr
FROM event_features
WHERE dt = '2026-01-01' AND hr = '01';

INSERT INTO predictions
SELECT customer_id, amount, fraud_score, dt, hr
FROM TABLE(ML_PREDICT(TABLE stored_partition, MODEL fraud_model, DESCRIPTOR(amount, age, tenure, segment)));
