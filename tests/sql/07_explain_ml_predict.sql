-- golden: fixed parallelism
-- EXPLAIN of an ML_PREDICT query shows the model's input and output schema.
CREATE TABLE transactions (
  txn_id BIGINT,
  amount DOUBLE,
  hour_of_day INT,
  merchant_category INT,
  user_age INT,
  user_country STRING,
  txn_velocity_24h INT
) WITH ('connector' = 'datagen', 'number-of-rows' = '100');

CREATE MODEL fraud_classifier
INPUT (amount DOUBLE, hour_of_day INT, merchant_category INT, user_age INT, user_country STRING, txn_velocity_24h INT)
OUTPUT (fraud_score DOUBLE)
WITH ('provider' = 'local', 'task' = 'classification', 'model_path' = '/models/fraud.onnx', 'runtime' = 'onnx', 'batch_size' = '32');

CREATE TABLE suspicious (txn_id BIGINT, amount DOUBLE, fraud_score DOUBLE) WITH ('connector' = 'blackhole');

EXPLAIN
INSERT INTO suspicious
SELECT txn_id, amount, fraud_score
FROM TABLE(ML_PREDICT(
  TABLE transactions,
  MODEL fraud_classifier,
  DESCRIPTOR(amount, hour_of_day, merchant_category, user_age, user_country, txn_velocity_24h)))
WHERE fraud_score > 0.8;
