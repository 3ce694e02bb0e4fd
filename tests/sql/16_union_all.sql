-- UNION ALL merges streams: each input keeps its rows (duplicates included), and the
-- union's watermark is the minimum over its inputs, so a window over it sees them all.
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

CREATE VIEW chosen AS
SELECT bidtime, price, item FROM bids WHERE item IN ('A', 'B')
UNION ALL
SELECT bidtime, price * 10, 'C10' FROM bids WHERE item = 'C'
UNION ALL
SELECT bidtime, price, item FROM bids WHERE item = 'A' AND price > 15;

SELECT 'union', window_start, item, COUNT(*), SUM(price)
FROM TABLE(TUMBLE(TABLE chosen, DESCRIPTOR(bidtime), INTERVAL '30' MINUTES))
GROUP BY window_start, window_end, item;
