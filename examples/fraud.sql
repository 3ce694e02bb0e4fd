-- Fraud scoring with a local ONNX model (the seed's fraud_classifier), over generated card
-- transactions: the suspicious ones (fraud_score > 0.8) are printed.
-- Run it from the repository root with:
--   cargo run -q -- run examples/fraud.sql --parallelism 2
-- The model comes from models/make_fraud_model.py (scikit-learn, exported with skl2onnx).

CREATE TABLE transactions (
  txn_id BIGINT,
  amount DOUBLE,
  hour_of_day INT,
  merchant_category INT,
  user_age INT,
  user_country STRING,
  txn_velocity_24h INT
) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '20000',
  'rows-per-second' = '1000000',
  'fields.txn_id.kind' = 'sequence',
  'fields.txn_id.start' = '1',
  'fields.txn_id.end' = '20000',
  'fields.amount.min' = '1',
  'fields.amount.max' = '2000',
  'fields.hour_of_day.min' = '0',
  'fields.hour_of_day.max' = '23',
  'fields.merchant_category.min' = '0',
  'fields.merchant_category.max' = '19',
  'fields.user_age.min' = '18',
  'fields.user_age.max' = '90',
  'fields.user_country.length' = '2',
  'fields.txn_velocity_24h.min' = '0',
  'fields.txn_velocity_24h.max' = '20'
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
  'model_path' = 'models/fraud_classifier.onnx',
  'runtime' = 'onnx',
  'batch_size' = '32',
  'inference_threads' = '1',
  'gpu' = 'false'
);

CREATE TABLE suspicious (
  txn_id BIGINT,
  amount DOUBLE,
  hour_of_day INT,
  txn_velocity_24h INT,
  fraud_score DOUBLE
) WITH ('connector' = 'print');

INSERT INTO suspicious
SELECT txn_id, amount, hour_of_day, txn_velocity_24h, fraud_score
FROM TABLE(ML_PREDICT(TABLE transactions, MODEL fraud_classifier,
  DESCRIPTOR(amount, hour_of_day, merchant_category, user_age, user_country, txn_velocity_24h)))
WHERE fraud_score > 0.8;
