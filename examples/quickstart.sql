-- Quickstart: generated card transactions, filtered to the large ones, printed.
-- Run it with:  cargo run -q -- run examples/quickstart.sql --parallelism 2

CREATE TABLE transactions (
  txn_id BIGINT,
  user_id INT,
  amount DOUBLE,
  hour_of_day INT
) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '2000',
  'rows-per-second' = '100000',
  'fields.txn_id.kind' = 'sequence',
  'fields.txn_id.start' = '1',
  'fields.txn_id.end' = '2000',
  'fields.user_id.min' = '1',
  'fields.user_id.max' = '50',
  'fields.amount.min' = '1',
  'fields.amount.max' = '1000',
  'fields.hour_of_day.min' = '0',
  'fields.hour_of_day.max' = '23'
);

CREATE TABLE large_transactions (
  txn_id BIGINT,
  user_id INT,
  amount DOUBLE,
  at_night BOOLEAN
) WITH ('connector' = 'print');

INSERT INTO large_transactions
SELECT txn_id, user_id, ROUND(amount, 2), hour_of_day < 6
FROM transactions
WHERE amount > 990;
