-- Projection, filter, CASE and arithmetic over datagen.
CREATE TABLE readings (
  id BIGINT,
  sensor INT,
  celsius DOUBLE
) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '200',
  'rows-per-second' = '100000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '200',
  'fields.sensor.min' = '1', 'fields.sensor.max' = '4',
  'fields.celsius.min' = '-10', 'fields.celsius.max' = '40'
);

CREATE TABLE alerts (id BIGINT, sensor INT, fahrenheit DOUBLE, level STRING) WITH ('connector' = 'print');

INSERT INTO alerts
SELECT
  id,
  sensor,
  ROUND(celsius * 9 / 5 + 32, 1),
  CASE WHEN celsius > 35 THEN 'hot' WHEN celsius < -5 THEN 'freezing' ELSE 'warm' END
FROM readings
WHERE id % 10 = 0 AND celsius > 20;
