-- Common table expressions in both orders: the lesson's `WITH t AS (...) INSERT INTO sink
-- SELECT ... FROM t` and Flink's `INSERT INTO sink WITH t AS (...) SELECT ... FROM t`.
-- Expected by hand: ids 3 to 5 from the first, 1 and 2 from the second, each with ten
-- times its id, and from the last a CTE that reads another one (ids 4 and 5, the id
-- doubled).
CREATE TABLE src (id BIGINT) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '5',
  'fields.id.kind' = 'sequence',
  'fields.id.start' = '1',
  'fields.id.end' = '5'
);
CREATE TABLE big (id BIGINT, amount BIGINT) WITH ('connector' = 'print');
CREATE TABLE small (id BIGINT, amount BIGINT) WITH ('connector' = 'print');
CREATE TABLE nested (id BIGINT, amount BIGINT) WITH ('connector' = 'print');

WITH large AS (SELECT id, id * 10 AS amount FROM src WHERE id > 2)
INSERT INTO big SELECT id, amount FROM large;

INSERT INTO small
WITH little AS (SELECT id, id * 10 AS amount FROM src WHERE id <= 2)
SELECT id, amount FROM little;

WITH doubled AS (SELECT id, id * 2 AS amount FROM src)
INSERT INTO nested
WITH top AS (SELECT id, amount FROM doubled WHERE id >= 4)
SELECT id, amount FROM top;
