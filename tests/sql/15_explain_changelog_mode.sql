-- golden: fixed parallelism
-- EXPLAIN CHANGELOG_MODE shows what each operator emits, as Flink does: I (insertions),
-- UB and UA (the before and after of updates), NONE for a sink. A GROUP BY and what
-- follows it update; a window aggregate only inserts.
CREATE TABLE orders (customer STRING, amount DOUBLE, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
WITH ('connector' = 'datagen', 'number-of-rows' = '10');

EXPLAIN CHANGELOG_MODE
SELECT customer, SUM(amount) AS total FROM orders GROUP BY customer HAVING SUM(amount) > 10;

EXPLAIN CHANGELOG_MODE
SELECT customer, window_start, COUNT(*)
FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY customer, window_start, window_end;
