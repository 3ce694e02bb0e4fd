-- The seed lesson's third pattern ("snapshot for offline replay"), part 1 of 2: the stream
-- writes raw events with their features to a lakehouse table, no model on the stream.
-- The table is Parquet partitioned by day and hour (dt=.../hr=...); a partition gets its
-- _SUCCESS file once the watermark has passed its hour, so a batch job can tell complete
-- partitions from partitions still being written. Run it from the repository root:
--   cargo run -q -- run examples/lakehouse_features.sql
--   cargo run -q -- run examples/lakehouse_scoring.sql     # part 2: batch scoring
-- Output: /tmp/sluice-lakehouse/event_features (readable by pyarrow, Spark, DuckDB, ...).

SET 'execution.checkpointing.interval' = '1s';

CREATE TABLE transactions (
  customer_id BIGINT,
  amount DOUBLE,
  event_time TIMESTAMP(3),
  proc_time AS PROCTIME(),
  WATERMARK FOR event_time AS event_time - INTERVAL '1' MINUTE
) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/transactions',
  'format' = 'json'
);

CREATE TABLE customer_features (
  id BIGINT,
  age INT,
  tenure INT
) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/customer_features',
  'format' = 'json'
);

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
  'format' = 'parquet',
  'parquet.compression' = 'ZSTD',
  'sink.partition-commit.trigger' = 'partition-time',
  'partition.time-extractor.timestamp-pattern' = '$dt $hr:00:00',
  'sink.partition-commit.delay' = '1 h',
  'sink.partition-commit.policy.kind' = 'success-file'
);

INSERT INTO event_features
SELECT
  e.customer_id,
  e.amount,
  e.event_time,
  f.age,
  f.tenure,
  DATE_FORMAT(e.event_time, 'yyyy-MM-dd') AS dt,
  DATE_FORMAT(e.event_time, 'HH') AS hr
FROM transactions e
JOIN customer_features FOR SYSTEM_TIME AS OF e.proc_time AS f
  ON e.customer_id = f.id;
