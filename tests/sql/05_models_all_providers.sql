-- CREATE MODEL with every option of the lesson, for each of the four providers.
CREATE MODEL customer_service_agent
INPUT (prompt STRING)
OUTPUT (response STRING)
WITH (
  'provider' = 'openai',
  'task' = 'chat-completion',
  'api_key' = '{{ secret.openai_api_key }}',
  'base_url' = 'https://api.openai.com/v1',  -- override for Azure / proxy
  'model_name' = 'gpt-4-turbo',
  'temperature' = '0.0',
  'max_tokens' = '500',
  'top_p' = '0.95',
  'presence_penalty' = '0',
  'frequency_penalty' = '0',
  'response_format' = 'json_object',  -- json mode
  'seed' = '12345',  -- for deterministic output
  'system_prompt' = 'You are a helpful assistant.',
  'request_timeout' = '30s',
  'max_retries' = '3',
  'async' = 'true',
  'max_concurrent_requests' = '100',
  'ordered_output' = 'true',
  'on_error' = 'dead_letter',
  'dead_letter.topic' = 'kafka:failed-predictions',
  'dead-letter.properties.bootstrap.servers' = 'kafka:9092',
  'retry.on_codes' = '429,503,504'
);

CREATE MODEL legal_analyzer
INPUT (text STRING)
OUTPUT (analysis STRING)
WITH (
  'provider' = 'anthropic',
  'task' = 'messages',
  'api_key' = '{{ secret.anthropic_api_key }}',
  'model_name' = 'claude-3-opus-20240229',
  'max_tokens' = '1000',
  'temperature' = '0',
  'system_prompt' = 'You are a legal expert...',
  'request_timeout' = '60s'
);

CREATE MODEL fraud_classifier
INPUT (
  amount DOUBLE,
  hour_of_day INT,
  merchant_category INT,
  user_age INT,
  user_country STRING,
  txn_velocity_24h INT
)
OUTPUT (
  fraud_score DOUBLE
)
WITH (
  'provider' = 'local',
  'task' = 'classification',
  'model_path' = 's3://models/fraud_v3.onnx',
  'runtime' = 'onnx',
  'batch_size' = '32',
  'inference_threads' = '4',
  'gpu' = 'false'
);

CREATE MODEL simple_python_model
  INPUT (text STRING)
  OUTPUT (sentiment STRING, confidence FLOAT)
  WITH (
      'provider' = 'generic-python',
      'model-directory-path' = '/path/to/python-models/sentiment-roberta-large-english',
      'properties.model_version' = '1',
      'python-predict-class' = 'models.HuggingFaceSentimentPredictFunction'
  );

SHOW MODELS;
SHOW CREATE MODEL fraud_classifier;
SHOW CREATE MODEL simple_python_model;
