-- A streaming GROUP BY updates its results as rows come, as in Flink: +I for a key's first
-- result, then -U (the old result) and +U (the new one). The print sink shows every
-- change; the golden runner folds them into the final table (and checks that every -U
-- retracts a row shown before). HAVING filters the changes, so a key appears once its
-- count passes the bound; a global aggregate updates one row; DISTINCT inserts each value
-- once. A GROUP BY over a GROUP BY reads its updates: a -U takes the old row out of its
-- group (a group left empty is deleted with -D), as Flink's retracting aggregates do.
CREATE TABLE seq (id BIGINT) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '5000',
  'fields.id.kind' = 'sequence',
  'fields.id.start' = '1',
  'fields.id.end' = '5000'
);

SELECT 'per_key', id % 7 AS k, COUNT(*) AS n, SUM(id) AS s, MIN(id), MAX(id)
FROM seq
GROUP BY id % 7;

SELECT 'busy', id % 3 AS k, COUNT(*) AS n
FROM seq
WHERE id <= 4000
GROUP BY id % 3
HAVING COUNT(*) > 1333;

SELECT 'global', COUNT(*), SUM(id), AVG(CAST(id AS DOUBLE)) FROM seq;

SELECT DISTINCT 'distinct', id % 4 FROM seq;

SELECT 'histogram', n, COUNT(*), MIN(k), MAX(k)
FROM (SELECT id % 7 AS k, COUNT(*) AS n FROM seq WHERE id <= 1000 GROUP BY id % 7)
GROUP BY n;

SELECT 'totals', SUM(n), AVG(CAST(n AS DOUBLE)), COUNT(*), MIN(n), MAX(n)
FROM (SELECT id % 7 AS k, COUNT(*) AS n FROM seq GROUP BY id % 7);
