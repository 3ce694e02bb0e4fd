-- Computed columns, a watermark, a view and DESCRIBE of both.
CREATE TABLE payments (
  id BIGINT,
  cents BIGINT,
  currency STRING,
  paid_at TIMESTAMP(3),
  dollars AS cents / 100.0,
  is_large AS cents >= 50000,
  WATERMARK FOR paid_at AS paid_at - INTERVAL '5' SECOND
) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '50',
  'rows-per-second' = '100000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '50',
  'fields.cents.min' = '100', 'fields.cents.max' = '99999',
  'fields.currency.length' = '3'
);

CREATE VIEW large_payments AS
SELECT id, dollars FROM payments WHERE is_large;

DESCRIBE payments;
DESCRIBE large_payments;

CREATE TABLE out (id BIGINT, dollars DOUBLE) WITH ('connector' = 'print');
INSERT INTO out SELECT id, dollars FROM large_payments WHERE id <= 20;
