-- SESSION windows, in both syntaxes: rows of an item closer than the gap share a session
-- [first row, last row + gap); each session fires once when the watermark passes its end.
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

SELECT 'tvf', item, window_start, window_end, COUNT(*), SUM(price), MAX(price)
FROM TABLE(SESSION(TABLE bids PARTITION BY item, DESCRIPTOR(bidtime), INTERVAL '1' MINUTE))
GROUP BY item, window_start, window_end;

SELECT 'legacy', item, SESSION_START(bidtime, INTERVAL '90' SECOND), SESSION_END(bidtime, INTERVAL '90' SECOND),
  COUNT(*)
FROM bids
GROUP BY item, SESSION(bidtime, INTERVAL '90' SECOND);
