-- An interval join: bids of the same item less than 40 seconds apart, the earlier first.
-- The time bounds between the sides make it an interval join, which forgets each bid once
-- the watermark has passed the last time a bid to come could pair with it (bids are out
-- of order by less than the watermark's 5 s bound, so no pair is missed).
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

SELECT 'close', a.item, a.bidtime, b.bidtime, a.price, b.price
FROM bids AS a JOIN bids AS b
  ON a.item = b.item
  AND a.bidtime BETWEEN b.bidtime - INTERVAL '40' SECOND AND b.bidtime - INTERVAL '0.001' SECOND;
