-- A bare SELECT prints its rows; DISTINCT and functions.
CREATE TABLE orders (
  order_id BIGINT,
  customer STRING,
  category STRING,
  amount DOUBLE,
  quantity INT
) WITH ('connector' = 'filesystem', 'path' = '{{DATA}}/orders.json', 'format' = 'json');

SELECT DISTINCT category, CHAR_LENGTH(category) AS letters FROM orders;
SELECT order_id, ABS(amount - 100) AS distance, SUBSTRING(customer, 2) AS customer_no FROM orders WHERE order_id <= 3;
