-- ORDER BY and LIMIT in streaming SQL, as Flink has them. ORDER BY a time attribute
-- ascending (then other columns) holds each row until the watermark passes its time and
-- emits rows in order; ORDER BY anything with LIMIT (and OFFSET) keeps the top rows up to
-- date, as a Top-N over all rows (the golden runner folds its changes into the final rows,
-- and compares rows as a set, so the order itself is checked by the operator's own tests).
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

SELECT 'sorted', bidtime, price FROM bids WHERE item = 'C' ORDER BY bidtime, price DESC;

SELECT 'top3', bidtime, price, item FROM bids ORDER BY price DESC, bidtime LIMIT 3;

SELECT 'page', bidtime, price FROM bids WHERE item = 'A' ORDER BY price DESC, bidtime LIMIT 2 OFFSET 2;
