CREATE TABLE nexmark_q4 (
  id BIGINT,
  final BIGINT
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO nexmark_q4
SELECT
    Q.category,
    -- Differs from the published query: Sluice's AVG over BIGINT is a DOUBLE (Flink's is a
    -- BIGINT, the quotient truncated), so it is cast to the sink's BIGINT, as Flink computes it.
    CAST(AVG(Q.final) AS BIGINT)
FROM (
    SELECT MAX(B.price) AS final, A.category
    FROM auction A, bid B
    WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
    GROUP BY A.id, A.category
) Q
GROUP BY Q.category;
