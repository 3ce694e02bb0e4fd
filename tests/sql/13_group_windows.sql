-- Flink's group-window syntax (the seed lesson's hourly aggregation per customer): the same
-- windows as the window table functions, written GROUP BY k, TUMBLE(ts, size) with the
-- auxiliary TUMBLE_START / TUMBLE_END / TUMBLE_ROWTIME, and a HOP whose size is not a
-- multiple of its slide (allowed in this syntax).
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

SELECT
  'tumble',
  item,
  TUMBLE_START(bidtime, INTERVAL '15' MINUTE) AS window_start,
  TUMBLE_END(bidtime, INTERVAL '15' MINUTE) AS window_end,
  TUMBLE_ROWTIME(bidtime, INTERVAL '15' MINUTE) AS rowtime,
  SUM(price) AS total,
  COUNT(*) AS bids
FROM bids
GROUP BY item, TUMBLE(bidtime, INTERVAL '15' MINUTE);

SELECT 'hop', HOP_START(b.bidtime, INTERVAL '4' MINUTE, INTERVAL '10' MINUTE), MAX(b.price)
FROM bids AS b
WHERE b.item <> 'C'
GROUP BY HOP(b.bidtime, INTERVAL '4' MINUTE, INTERVAL '10' MINUTE);
