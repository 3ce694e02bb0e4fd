-- GROUPING SETS, ROLLUP and CUBE, as Flink has them: one aggregation per grouping set,
-- NULL in the columns a set leaves out. Over a window function every set holds
-- window_start and window_end (they are written outside the sets), so each is a window
-- aggregate and the result is append-only; without a window each set updates its rows.
CREATE TABLE bids (
  bidtime TIMESTAMP(3),
  price DOUBLE,
  item STRING,
  WATERMARK FOR bidtime AS bidtime - INTERVAL '5' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = '{{DATA}}/bids_hour.json',
  'format' = 'json'
);

SELECT 'sets', window_start, item, SUM(price), COUNT(*)
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '20' MINUTES))
GROUP BY window_start, window_end, GROUPING SETS ((item), ());

SELECT 'rollup', window_start, item, COUNT(*)
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '30' MINUTES))
WHERE item IN ('A', 'B')
GROUP BY window_start, window_end, ROLLUP (item);

SELECT 'cube', item, price > 10 AS high, COUNT(*)
FROM bids
WHERE item IN ('C', 'D')
GROUP BY CUBE (item, price > 10);
