-- A statement set: two INSERTs from one source form one job.
CREATE TABLE events (id BIGINT, kind INT) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '30',
  'rows-per-second' = '100000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '30',
  'fields.kind.min' = '0', 'fields.kind.max' = '2'
);
CREATE TABLE evens (id BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'even');
CREATE TABLE odds (id BIGINT, kind INT) WITH ('connector' = 'print', 'print-identifier' = 'odd');

EXECUTE STATEMENT SET
BEGIN
  INSERT INTO evens SELECT id FROM events WHERE id % 2 = 0;
  INSERT INTO odds SELECT id, kind FROM events WHERE id % 2 = 1 AND id < 10;
END;
