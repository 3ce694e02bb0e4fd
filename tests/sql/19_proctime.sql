-- PROCTIME(): a computed column holding the wall-clock time each row is processed, as
-- TIMESTAMP_LTZ(3) (Flink's processing-time attribute). Expected by hand: every row's time
-- is after 2026-01-01 and reads as a date of this century. A window over it is a
-- processing-time window: which window a row lands in depends on the clock, but summed over
-- all windows the counts hold every row once: 1,000 rows, ids summing to 1000 * 1001 / 2.
CREATE TABLE orders (id BIGINT, pt AS PROCTIME()) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '3',
  'fields.id.kind' = 'sequence',
  'fields.id.start' = '1',
  'fields.id.end' = '3'
);

DESCRIBE orders;

SELECT id, pt > TIMESTAMP '2026-01-01 00:00:00', CAST(pt AS STRING) LIKE '20%' FROM orders;

CREATE TABLE many (id BIGINT, pt AS PROCTIME()) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '1000',
  'rows-per-second' = '2000',
  'fields.id.kind' = 'sequence',
  'fields.id.start' = '1',
  'fields.id.end' = '1000'
);

SELECT SUM(n), SUM(s) FROM (
  SELECT window_start, COUNT(*) AS n, SUM(id) AS s
  FROM TABLE(TUMBLE(TABLE many, DESCRIPTOR(pt), INTERVAL '1' SECOND))
  GROUP BY window_start, window_end
);
