-- Window table functions over the bids of Flink's documentation (window-tvf.md): TUMBLE
-- with an offset, HOP, and CUMULATE with named arguments. Each row goes out once per
-- window that holds it, with window_start, window_end and window_time added.
CREATE TABLE bids (
  bidtime TIMESTAMP(3),
  price DOUBLE,
  item STRING,
  WATERMARK FOR bidtime AS bidtime - INTERVAL '1' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = '{{DATA}}/bids.json',
  'format' = 'json'
);

SELECT 'tumble', item, price, window_start, window_end, window_time
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES, INTERVAL '1' MINUTE));

SELECT 'hop', item, price, window_start, window_end, window_time
FROM TABLE(HOP(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '5' MINUTES, INTERVAL '10' MINUTES));

SELECT 'cumulate', item, price, window_start, window_end, window_time
FROM TABLE(
  CUMULATE(DATA => TABLE bids, TIMECOL => DESCRIPTOR(bidtime), STEP => INTERVAL '2' MINUTES, SIZE => INTERVAL '10' MINUTES)
);
