-- Regular joins on equal keys, as Flink runs them: both sides are kept in state and each
-- row joins the other side's rows of its key as it comes. data/customers.json has no row
-- for customers c7 and c8 (who ordered), two rows for c3, a customer without orders (c9)
-- and one with a NULL id (which matches nothing). Outer joins pad with NULLs, and retract
-- the padded row when its match arrives (the golden runner folds the changes). A column
-- both sides have is named by its table (orders.customer vs customers.id here differ, but
-- `name` exists once). A join can read an updating GROUP BY.
CREATE TABLE orders (order_id BIGINT, customer STRING, category STRING, amount DOUBLE, quantity INT) WITH (
  'connector' = 'filesystem', 'path' = '{{DATA}}/orders.json', 'format' = 'json'
);
CREATE TABLE customers (id STRING, name STRING, tier STRING) WITH (
  'connector' = 'filesystem', 'path' = '{{DATA}}/customers.json', 'format' = 'json'
);

SELECT 'inner', o.order_id, c.name, c.tier
FROM orders AS o JOIN customers AS c ON o.customer = c.id
WHERE o.amount > 100;

SELECT 'left', o.order_id, o.customer, c.name
FROM orders AS o LEFT JOIN customers AS c ON o.customer = c.id
WHERE o.category = 'books';

SELECT 'full', o.order_id, c.id, c.name
FROM (SELECT * FROM orders WHERE quantity >= 4) AS o
FULL OUTER JOIN customers AS c ON o.customer = c.id;

SELECT 'residual', o.order_id, c.name
FROM orders AS o RIGHT JOIN customers AS c ON o.customer = c.id AND o.amount * o.quantity > 400;

SELECT 'totals', c.id, c.tier, t.orders, t.spent
FROM (SELECT customer, COUNT(*) AS orders, SUM(amount) AS spent FROM orders GROUP BY customer) AS t
JOIN customers AS c ON t.customer = c.id;

-- A self-join: every column name is shared, so each is known by its table's alias.
SELECT 'self', a.order_id, b.order_id, a.category, b.category
FROM orders AS a JOIN orders AS b ON a.customer = b.customer AND a.order_id < b.order_id
WHERE a.customer = 'c8';
