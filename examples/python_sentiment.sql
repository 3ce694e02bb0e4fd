-- The generic-python provider with the FLIP's DDL: each review is scored by the Python
-- class in examples/python-models/sentiment/models.py (VADER, from PyPI).
-- Run from the repository root: sluice run examples/python_sentiment.sql
CREATE TABLE reviews (id BIGINT, text STRING) WITH (
  'connector' = 'filesystem', 'path' = 'examples/data/reviews.jsonl', 'format' = 'json');

CREATE MODEL simple_python_model
  INPUT (text STRING)
  OUTPUT (sentiment STRING, confidence FLOAT)
  WITH (
      'provider' = 'generic-python',
      'model-directory-path' = 'examples/python-models/sentiment',
      'properties.model_version' = '1',
      'python-predict-class' = 'models.HuggingFaceSentimentPredictFunction'
  );

CREATE TABLE scored (id BIGINT, text STRING, sentiment STRING, confidence FLOAT) WITH ('connector' = 'print');

INSERT INTO scored SELECT * FROM ML_PREDICT(TABLE reviews, MODEL simple_python_model, DESCRIPTOR(text));
