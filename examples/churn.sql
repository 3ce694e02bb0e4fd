-- The seed lesson's churn pipeline: hourly spending per customer (a TUMBLE window, in the
-- lesson's GROUP BY TUMBLE form), joined with a feature table, then scored by a churn
-- model through CROSS APPLY ML_PREDICT(VALUES ...). Run it from the repository root:
--   cargo run -q -- run examples/churn.sql
-- The model is models/churn_model.onnx (a logistic regression with fixed weights, made by
-- models/make_lesson_models.py); the data is under examples/data/.

CREATE TABLE transactions (
  customer_id BIGINT,
  amount DOUBLE,
  event_time TIMESTAMP(3),
  WATERMARK FOR event_time AS event_time - INTERVAL '1' MINUTE
) WITH ('connector' = 'filesystem', 'path' = 'examples/data/transactions', 'format' = 'json');

CREATE TABLE customer_features (id BIGINT, age INT, tenure INT)
WITH ('connector' = 'filesystem', 'path' = 'examples/data/customer_features', 'format' = 'json');

CREATE MODEL customer_churn_model
INPUT (total_amount DOUBLE, txn_count BIGINT, avg_amount DOUBLE, age INT, tenure INT)
OUTPUT (churn_probability DOUBLE)
WITH ('provider' = 'local', 'task' = 'regression', 'model_path' = 'models/churn_model.onnx');

CREATE TABLE predicted_churn (customer_id BIGINT, window_start TIMESTAMP(3), churn_probability DOUBLE)
WITH ('connector' = 'print');

-- As the lesson writes it, except that the outer query reads the window start from the
-- subquery (the lesson's outer TUMBLE_START(event_time, ...) names a column the outer
-- query does not have).
INSERT INTO predicted_churn
SELECT
  customer_id,
  hourly.window_start,
  predicted.churn_probability
FROM (
  SELECT
    customer_id,
    TUMBLE_START(event_time, INTERVAL '1' HOUR) AS window_start,
    SUM(amount) AS total_amount,
    COUNT(*) AS txn_count,
    AVG(amount) AS avg_amount
  FROM transactions
  GROUP BY customer_id, TUMBLE(event_time, INTERVAL '1' HOUR)
) hourly
JOIN customer_features ON hourly.customer_id = customer_features.id
CROSS APPLY (
  SELECT churn_probability
  FROM TABLE(
    ML_PREDICT(
      VALUES (hourly.total_amount, hourly.txn_count, hourly.avg_amount,
              customer_features.age, customer_features.tenure),
      MODEL customer_churn_model,
      DESCRIPTOR(total_amount, txn_count, avg_amount, age, tenure)
    )
  )
) predicted;
