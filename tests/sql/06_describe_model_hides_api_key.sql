-- DESCRIBE MODEL and SHOW CREATE MODEL never show API keys, literal or secret.
CREATE MODEL summarizer
INPUT (text STRING)
OUTPUT (summary STRING)
COMMENT 'Summarizes support tickets'
WITH (
  'provider' = 'openai',
  'api_key' = 'sk-live-do-not-print-me',
  'model_name' = 'gpt-4o-mini',
  'temperature' = '0'
);
CREATE MODEL reviewer
INPUT (text STRING)
OUTPUT (verdict STRING)
WITH (
  'provider' = 'anthropic',
  'api-key' = '{{ secret.anthropic_api_key }}',
  'model' = 'claude-3-haiku-20240307',
  'max-tokens' = '300'
);
DESCRIBE MODEL summarizer;
SHOW CREATE MODEL summarizer;
DESCRIBE reviewer;
