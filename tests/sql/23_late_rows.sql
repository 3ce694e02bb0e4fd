-- Late rows: two clicks arrive long after the watermark passed their time (rows 1,100 and
-- 1,150 of data/clicks_late.json, timed in the first window, read after the watermark
-- reached 08:16:58), and one arrives out of order within the watermark's 5 s bound (row
-- 1,120). The window aggregate drops the late ones (and counts them in its
-- late_records_dropped metric); Flink's CURRENT_WATERMARK idiom shows which they are. The
-- source runs at parallelism 1, so every operator sees its rows and watermarks in one
-- order whatever the job's parallelism, and which rows are late does not depend on it.
CREATE TABLE clicks (
  id BIGINT,
  ts TIMESTAMP(3),
  n INT,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = '{{DATA}}/clicks_late.json',
  'scan.parallelism' = '1',
  'format' = 'json'
);

SELECT 'window', window_start, window_end, COUNT(*), SUM(n)
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' MINUTES))
GROUP BY window_start, window_end;

SELECT 'late', id, ts FROM clicks WHERE ts <= CURRENT_WATERMARK(ts);

SELECT 'late_count', COUNT(*) FROM clicks WHERE ts <= CURRENT_WATERMARK(ts);
