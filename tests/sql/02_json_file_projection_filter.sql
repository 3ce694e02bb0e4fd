-- Projection, filter and CASE over a JSON file, with string functions.
CREATE TABLE orders (
  order_id BIGINT,
  customer STRING,
  category STRING,
  amount DOUBLE,
  quantity INT
) WITH (
  'connector' = 'filesystem',
  'path' = '{{DATA}}/orders.json',
  'format' = 'json'
);

CREATE TABLE big_orders (order_id BIGINT, who STRING, line_total DOUBLE, size STRING) WITH ('connector' = 'print');

INSERT INTO big_orders
SELECT
  order_id,
  UPPER(customer) || '/' || category,
  amount * quantity,
  CASE WHEN amount * quantity >= 500 THEN 'large' ELSE 'medium' END
FROM orders
WHERE amount > 100 AND category <> 'books';
