-- Quickstart: 10,000 generated orders, counted per customer, printed. The counts update
-- as orders come, as in Flink: +I[...] for a customer's first result, then -U[old] and
-- +U[new] as it changes; the last +U of each customer is its final count.
-- Run it with:  cargo run -q -- run examples/orders_per_customer.sql --parallelism 2

CREATE TABLE orders (
  order_id BIGINT,
  customer_id INT,
  amount DOUBLE
) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '10000',
  'rows-per-second' = '100000',
  'fields.order_id.kind' = 'sequence',
  'fields.order_id.start' = '1',
  'fields.order_id.end' = '10000',
  'fields.customer_id.min' = '1',
  'fields.customer_id.max' = '8',
  'fields.amount.min' = '1',
  'fields.amount.max' = '500'
);

CREATE TABLE order_counts (
  customer_id INT,
  orders BIGINT,
  total DOUBLE,
  largest DOUBLE
) WITH ('connector' = 'print');

INSERT INTO order_counts
SELECT customer_id, COUNT(*) AS orders, SUM(amount) AS total, MAX(amount) AS largest
FROM orders
GROUP BY customer_id;
