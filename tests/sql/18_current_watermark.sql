-- CURRENT_WATERMARK(ts): the watermark a row meets, NULL before the first. Flink's idiom
-- for dropping late rows by hand keeps every bid here, since none is behind the
-- watermark (bids are out of order by less than its 5 s bound).
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

SELECT 'on_time', item, COUNT(*)
FROM bids
WHERE CURRENT_WATERMARK(bidtime) IS NULL OR bidtime > CURRENT_WATERMARK(bidtime)
GROUP BY item;
