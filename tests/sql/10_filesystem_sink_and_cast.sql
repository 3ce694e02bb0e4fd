-- One source feeding a CSV filesystem sink and a print sink with a CAST.
CREATE TABLE gen (id BIGINT, name STRING) WITH (
  'connector' = 'datagen', 'number-of-rows' = '12', 'rows-per-second' = '100000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '100', 'fields.id.end' = '111',
  'fields.name.length' = '4'
);
CREATE TABLE files (id BIGINT, name STRING) WITH ('connector' = 'filesystem', 'path' = '{{TMP}}/out', 'format' = 'csv');
CREATE TABLE shown (id BIGINT, name_length INT) WITH ('connector' = 'print');
INSERT INTO files SELECT id, name FROM gen;
INSERT INTO shown SELECT id, CAST(CHAR_LENGTH(name) AS INT) FROM gen;
