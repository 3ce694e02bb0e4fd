-- GROUP BY with COUNT, SUM, MIN, MAX and AVG over a hash shuffle.
CREATE TABLE orders (
  order_id BIGINT,
  customer STRING,
  category STRING,
  amount DOUBLE,
  quantity INT
) WITH ('connector' = 'filesystem', 'path' = '{{DATA}}/orders.json', 'format' = 'json');

CREATE TABLE per_category (
  category STRING, orders BIGINT, items BIGINT, smallest DOUBLE, largest DOUBLE, average DOUBLE
) WITH ('connector' = 'print');

INSERT INTO per_category
SELECT category, COUNT(*), SUM(quantity), MIN(amount), MAX(amount), ROUND(AVG(amount), 2)
FROM orders
GROUP BY category;
