-- The seed lesson's fraud enrichment pipeline: each event is enriched by a lookup join
-- against a PostgreSQL dimension table (the jdbc connector, with the lesson's cache
-- options), scored through CROSS APPLY ML_PREDICT, and kept when the score is above 0.8.
-- Run it from the repository root:
--   bash scripts/example-postgres.sh          # a local PostgreSQL on port 55432
--   cargo run -q -- run examples/fraud_enrichment.sql
--   bash scripts/example-postgres.sh stop
-- The model is models/fraud_score_model.onnx (fixed weights, models/make_lesson_models.py).
-- The lesson joins FOR SYSTEM_TIME AS OF e.event_time: the table has no versions, so each
-- event looks up the current row when it arrives (EXPLAIN says so); Flink's own form is
-- FOR SYSTEM_TIME AS OF a processing-time attribute (here e.proc_time).

CREATE TABLE customer_dim (
  customer_id BIGINT PRIMARY KEY NOT ENFORCED,
  age INT,
  tenure INT,
  segment STRING
) WITH (
  'connector' = 'jdbc',
  'url' = 'jdbc:postgresql://127.0.0.1:55432/postgres',
  'table-name' = 'customer_dim',
  'username' = 'postgres',
  'lookup.cache.max-rows' = '10000',
  'lookup.cache.ttl' = '1 h'
);

CREATE TABLE event_stream (
  customer_id BIGINT,
  txn_amount DOUBLE,
  event_time TIMESTAMP(3),
  proc_time AS PROCTIME()
) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '5000',
  'fields.customer_id.min' = '0',
  'fields.customer_id.max' = '119',
  'fields.txn_amount.min' = '1',
  'fields.txn_amount.max' = '900'
);

CREATE MODEL fraud_model
INPUT (amount DOUBLE, age INT, tenure INT, segment STRING)
OUTPUT (fraud_score DOUBLE)
WITH ('provider' = 'local', 'task' = 'regression', 'model_path' = 'models/fraud_score_model.onnx');

CREATE TABLE scored_events (customer_id BIGINT, txn_amount DOUBLE, fraud_score DOUBLE)
WITH ('connector' = 'print');

INSERT INTO scored_events
SELECT
  e.customer_id,
  e.txn_amount,
  p.fraud_score
FROM event_stream e
JOIN customer_dim FOR SYSTEM_TIME AS OF e.event_time AS c
  ON e.customer_id = c.customer_id
CROSS APPLY (
  SELECT *
  FROM TABLE(
    ML_PREDICT(
      VALUES (e.txn_amount, c.age, c.tenure, c.segment),
      MODEL fraud_model,
      DESCRIPTOR(amount, age, tenure, segment)
    )
  )
) p
WHERE p.fraud_score > 0.8;
