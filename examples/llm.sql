-- Ask a chat model about generated support tickets, with bounded in-flight requests,
-- retries, and failed rows kept with their error. Start the stand-in API first:
--   sluice stub-llm --listen 127.0.0.1:8089 --latency uniform:20ms..80ms --faults 429=0.05,503=0.02
--   sluice run examples/llm.sql --parallelism 2
-- Against the real API, set base_url to https://api.openai.com/v1 and export
-- SLUICE_SECRET_OPENAI_API_KEY.
CREATE TABLE tickets (
  ticket_id BIGINT,
  body STRING
) WITH (
  'connector' = 'datagen',
  'number-of-rows' = '2000',
  'fields.ticket_id.kind' = 'sequence',
  'fields.ticket_id.start' = '1',
  'fields.ticket_id.end' = '2000',
  'fields.body.length' = '24'
);

CREATE MODEL triage
INPUT (body STRING)
OUTPUT (answer STRING, error_message STRING, http_status INT)
WITH (
  'provider' = 'openai',
  'task' = 'chat-completion',
  'api_key' = '{{ secret.openai_api_key }}',
  'base_url' = 'http://127.0.0.1:8089/v1',
  'model_name' = 'gpt-4o-mini',
  'temperature' = '0.0',
  'seed' = '12345',
  'system_prompt' = 'Classify the support ticket as billing, bug or other.',
  'prompt_template' = 'Ticket: {body}',
  'request_timeout' = '5s',
  'max_retries' = '3',
  'max_concurrent_requests' = '50',
  'on_error' = 'skip',
  'cost.input_per_1k_tokens' = '0.00015',
  'cost.output_per_1k_tokens' = '0.0006'
);

CREATE TABLE triaged (ticket_id BIGINT, answer STRING, error_message STRING, http_status INT)
WITH ('connector' = 'print');

INSERT INTO triaged
SELECT ticket_id, answer, error_message, http_status
FROM TABLE(ML_PREDICT(TABLE tickets, MODEL triage, DESCRIPTOR(body)));
