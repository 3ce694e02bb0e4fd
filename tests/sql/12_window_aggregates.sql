-- Window aggregates over an hour of bids (out of order by up to 4 s, within the 5 s
-- watermark bound, so no bid is late): each window fires once, when the watermark passes
-- its end, with one row per key. TUMBLE per item with the basic aggregates; HOP over all
-- items with DISTINCT; CUMULATE with FILTER, FIRST_VALUE, LAST_VALUE and LISTAGG; and a
-- cascade: 5-minute counts per item, summed again per 15 minutes through window_time.
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

SELECT 'tumble', window_start, window_end, item, COUNT(*), COUNT(price), SUM(price), MIN(price), MAX(price)
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
GROUP BY window_start, window_end, item;

SELECT 'hop', window_start, window_end, COUNT(DISTINCT item), AVG(price)
FROM TABLE(HOP(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '5' MINUTES, INTERVAL '15' MINUTES))
GROUP BY window_start, window_end;

SELECT 'cumulate', item, window_start, window_end,
  COUNT(*) FILTER (WHERE price > 10), FIRST_VALUE(price), LAST_VALUE(price)
FROM TABLE(CUMULATE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES, INTERVAL '30' MINUTES))
WHERE item IN ('A', 'B')
GROUP BY item, window_start, window_end;

SELECT 'listagg', window_start, LISTAGG(item, ''), LISTAGG(DISTINCT item)
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '20' MINUTES))
GROUP BY window_start, window_end;

CREATE VIEW five_minutes AS
SELECT item, window_start AS five_start, window_end AS five_end, window_time AS rowtime, COUNT(*) AS bids
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '5' MINUTES))
GROUP BY item, window_start, window_end, window_time;

SELECT 'cascade', item, window_start, window_end, SUM(bids), COUNT(*)
FROM TABLE(TUMBLE(TABLE five_minutes, DESCRIPTOR(rowtime), INTERVAL '15' MINUTES))
GROUP BY item, window_start, window_end;
