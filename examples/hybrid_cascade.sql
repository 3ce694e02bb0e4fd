-- The seed lesson's hybrid cascade: a local model scores every transaction, and the LLM is
-- asked only for the suspicious ones (local_score > 0.5); the others get NULL without a
-- request. Run it from the repository root, with the stand-in LLM API:
--   cargo run -q -- stub-llm --listen 127.0.0.1:8089 &
--   cargo run -q -- run examples/hybrid_cascade.sql
-- Only the suspicious rows (about a fifth here) reach the LLM: its answers are the
-- llm_analysis column, NULL elsewhere. The local model is models/fraud_score_model.onnx
-- (models/make_lesson_models.py).

CREATE TABLE transactions (
  txn_id BIGINT,
  amount DOUBLE,
  age INT,
  tenure INT,
  segment STRING,
  transaction_description STRING
) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '2000',
  'fields.txn_id.kind' = 'sequence',
  'fields.txn_id.start' = '1',
  'fields.txn_id.end' = '2000',
  'fields.amount.min' = '1',
  'fields.amount.max' = '900',
  'fields.age.min' = '18',
  'fields.age.max' = '80',
  'fields.tenure.min' = '0',
  'fields.tenure.max' = '9',
  'fields.segment.length' = '3',
  'fields.transaction_description.length' = '20'
);

CREATE MODEL local_fraud_model
INPUT (amount DOUBLE, age INT, tenure INT, segment STRING)
OUTPUT (score DOUBLE)
WITH ('provider' = 'local', 'task' = 'regression', 'model_path' = 'models/fraud_score_model.onnx');

CREATE MODEL llm_analyzer
INPUT (description STRING)
OUTPUT (analysis STRING)
WITH (
  'provider' = 'openai',
  'task' = 'chat-completion',
  'base_url' = 'http://127.0.0.1:8089/v1',
  'model_name' = 'gpt-4o-mini',
  'api_key' = 'sk-stub',
  'max_concurrent_requests' = '16'
);

CREATE TABLE final_scored (txn_id BIGINT, amount DOUBLE, local_score DOUBLE, llm_analysis STRING)
WITH ('connector' = 'print');

-- The lesson's two steps: a CTE scores every row, the CASE asks the LLM lazily.
WITH local_scored AS (
  SELECT *, ML_PREDICT(MODEL local_fraud_model, amount, age, tenure, segment) AS local_score
  FROM transactions
)
INSERT INTO final_scored
SELECT
  txn_id,
  amount,
  local_score,
  CASE
    WHEN local_score > 0.5  -- suspicious, get LLM analysis
    THEN ML_PREDICT(MODEL llm_analyzer, transaction_description)
    ELSE NULL
  END AS llm_analysis
FROM local_scored;
