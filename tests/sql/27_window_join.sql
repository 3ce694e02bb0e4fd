-- Window joins, as Flink writes them: two windowed inputs joined on equal window_start and
-- window_end (and a key). Each joined row is kept until the watermark passes its window's
-- last millisecond, then forgotten: no row of a later window can match it.
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

-- Two window aggregates: bids per item and window, beside the item's top price over 15.
SELECT 'aggregates', l.window_start, l.item, l.bids, r.top
FROM (
  SELECT window_start, window_end, item, COUNT(*) AS bids
  FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
  GROUP BY window_start, window_end, item
) AS l
JOIN (
  SELECT window_start, window_end, item, MAX(price) AS top
  FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
  WHERE price > 15
  GROUP BY window_start, window_end, item
) AS r
ON l.window_start = r.window_start AND l.window_end = r.window_end AND l.item = r.item;

-- Two window functions: A's and E's bids in the same 5-minute window, priced alike.
SELECT 'rows', a.window_start, a.bidtime, e.bidtime, a.price
FROM (SELECT * FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '5' MINUTES)) WHERE item = 'A') AS a
JOIN (SELECT * FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '5' MINUTES)) WHERE item = 'E') AS e
ON a.window_start = e.window_start AND a.window_end = e.window_end AND a.price = e.price;
