-- Top-N and deduplication in Flink's form: ROW_NUMBER() OVER (PARTITION BY ... ORDER BY
-- ...) in a subquery, filtered on the rank outside. With window_start and window_end among
-- the partition columns it is a window Top-N, which emits each window's ranks once when the
-- watermark passes the window's end; otherwise ranks are updated as rows come (the golden
-- runner folds the changes into the final table). NULL sorts as the smallest value, as in
-- Flink. Ties are broken by a second ORDER BY column so the expected rows are unique.
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

-- Window Top-N over a window aggregate: the two items with the most revenue per 10 minutes.
SELECT 'top_items', window_start, window_end, item, revenue, rownum FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY revenue DESC, item) AS rownum
  FROM (
    SELECT window_start, window_end, item, SUM(price) AS revenue
    FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
    GROUP BY window_start, window_end, item
  )
) WHERE rownum <= 2;

-- Window Top-N straight over a windowing function: the three highest bids per 20 minutes.
SELECT 'top_bids', window_start, bidtime, price, item FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY price DESC, bidtime) AS rownum
  FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '20' MINUTES))
) WHERE rownum <= 3;

-- Window deduplication: each item's first bid per 15 minutes.
SELECT 'window_first', window_start, item, bidtime, price FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, item ORDER BY bidtime) AS rownum
  FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '15' MINUTES))
) WHERE rownum = 1;

-- Top-N over an updating GROUP BY: the two items with the most bids.
SELECT 'leaders', item, bids, rownum FROM (
  SELECT item, bids, ROW_NUMBER() OVER (ORDER BY bids DESC, item) AS rownum
  FROM (SELECT item, COUNT(*) AS bids FROM bids GROUP BY item)
) WHERE rownum <= 2;

-- Deduplication: each item's first bid (keep first) and last bid (keep last).
SELECT 'first_bid', item, bidtime, price FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY item ORDER BY bidtime) AS rownum FROM bids
) WHERE rownum = 1;

SELECT 'last_bid', item, bidtime, price FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY item ORDER BY bidtime DESC) AS rownum FROM bids
) WHERE rownum = 1;

-- A rank range with a filter on the ranked rows: each item's second and third highest
-- bids, except item E's.
SELECT 'runners_up', item, price, bidtime, rownum FROM (
  SELECT item, price, bidtime, ROW_NUMBER() OVER (PARTITION BY item ORDER BY price DESC, bidtime) AS rownum
  FROM bids
) WHERE rownum BETWEEN 2 AND 3 AND item <> 'E';
