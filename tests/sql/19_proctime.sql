-- PROCTIME(): a computed column holding the wall-clock time each row is processed, as
-- TIMESTAMP_LTZ(3) (Flink's processing-time attribute). Expected by hand: every row's time
-- is after 2026-01-01 and reads as a date of this century.
CREATE TABLE orders (id BIGINT, pt AS PROCTIME()) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '3',
  'fields.id.kind' = 'sequence',
  'fields.id.start' = '1',
  'fields.id.end' = '3'
);

DESCRIBE orders;

SELECT id, pt > TIMESTAMP '2026-01-01 00:00:00', CAST(pt AS STRING) LIKE '20%' FROM orders;
