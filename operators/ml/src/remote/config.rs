//! The settings of a model served over HTTP (`openai`, `anthropic`), read from its
//! canonical options (secrets already resolved). The API key is kept out of `Debug`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use sluice_connectors::kafka::dead_letter::DeadLetterConfig;
use sluice_core::options::Options;
use sluice_core::{OperatorError, Result};

use super::context::ContextLimit;

/// Which HTTP API a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI `POST …/chat/completions`.
    OpenAiChat,
    /// OpenAI `POST …/embeddings`, several rows per request.
    OpenAiEmbeddings,
    /// Anthropic `POST …/messages`.
    AnthropicMessages,
}

/// How the API key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiStyle {
    /// `Authorization: Bearer KEY` (OpenAI and compatible proxies).
    OpenAi,
    /// `api-key: KEY` and an `api-version` query parameter (Azure OpenAI).
    Azure,
    /// `x-api-key: KEY` and `anthropic-version` (Anthropic).
    Anthropic,
}

/// What happens to a row whose prediction failed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnError {
    /// The job fails, naming the model and the HTTP status.
    Fail,
    /// The row is dropped (or emitted with its error columns) and counted.
    Skip,
    /// The row goes to a Kafka topic with its error, then as `Skip`.
    DeadLetter(DeadLetterConfig),
}

/// Result caching in keyed state.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// The most answers kept per subtask.
    pub max_rows: u64,
    /// How long an answer stays valid (None: forever).
    pub ttl: Option<Duration>,
}

/// Every setting of a remote model.
#[derive(Clone)]
pub struct RemoteConfig {
    /// The model's name in the catalog.
    pub model: String,
    /// The API.
    pub api: Api,
    /// The full request URL (`base_url` plus the task's path).
    pub endpoint: String,
    /// How the key is sent.
    pub style: ApiStyle,
    /// Azure's `api-version` query parameter.
    pub api_version: Option<String>,
    /// Anthropic's `anthropic-version` header.
    pub anthropic_version: String,
    api_key: String,
    /// The provider's model name (`model_name`).
    pub model_name: String,
    /// Request fields passed as given: temperature, max_tokens, top_p, ... (JSON values).
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// `response_format` = `json_object`: OUTPUT columns come from the answer's JSON fields.
    pub json_output: bool,
    /// The system prompt.
    pub system_prompt: Option<String>,
    /// `{column}` placeholders filled from the INPUT columns.
    pub prompt_template: Option<String>,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// HTTP statuses that are retried (timeouts and connection errors always are).
    pub retry_codes: Vec<u16>,
    /// The first backoff; each retry doubles it, with jitter, up to `max_backoff`.
    pub backoff: Duration,
    /// The longest backoff (and the longest `Retry-After` honoured).
    pub max_backoff: Duration,
    /// What happens to failed rows.
    pub on_error: OnError,
    /// The most requests in flight per subtask.
    pub max_concurrency: usize,
    /// Emit rows in input order.
    pub ordered: bool,
    /// Rows per request (embeddings only).
    pub batch_size: usize,
    /// Result cache, when enabled.
    pub cache: Option<CacheConfig>,
    /// `rate-limit.requests-per-minute`.
    pub requests_per_minute: Option<u64>,
    /// `rate-limit.tokens-per-minute`.
    pub tokens_per_minute: Option<u64>,
    /// Dollars per 1,000 prompt tokens.
    pub cost_input_per_1k: f64,
    /// Dollars per 1,000 completion tokens.
    pub cost_output_per_1k: f64,
    /// `max-context-size` with its `context-overflow-action`.
    pub context: Option<ContextLimit>,
}

impl fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("model", &self.model)
            .field("api", &self.api)
            .field("endpoint", &self.endpoint)
            .field("api_key", &sluice_core::secrets::MASK)
            .field("model_name", &self.model_name)
            .finish_non_exhaustive()
    }
}

/// The retried statuses when `retry.on-codes` is not set.
pub const DEFAULT_RETRY_CODES: &[u16] = &[429, 500, 502, 503, 504];
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_RETRIES: u32 = 3;
const DEFAULT_BACKOFF: Duration = Duration::from_millis(200);
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Flink's default `max-concurrent-operations`.
const DEFAULT_CONCURRENCY: usize = 10;
const DEFAULT_EMBEDDING_BATCH: usize = 16;
const DEFAULT_CACHE_ROWS: u64 = 100_000;
const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// Refuses to send an API key over plain HTTP to another machine, where anyone on the path
/// can read it, unless `allow-insecure-http` = `true` (then it warns). Plain HTTP to this
/// machine (a local gateway, or `sluice stub-llm`) is allowed.
fn check_transport(endpoint: &str, allow_insecure_http: bool) -> std::result::Result<(), String> {
    let Some(rest) = endpoint.get(..7).filter(|s| s.eq_ignore_ascii_case("http://")).map(|_| &endpoint[7..]) else {
        return Ok(());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return Ok(());
    }
    if allow_insecure_http {
        tracing::warn!(host, "the API key is sent over plain HTTP ('allow-insecure-http' = 'true')");
        return Ok(());
    }
    Err(format!(
        "'endpoint' (or 'base_url') uses plain HTTP to '{host}', which would send the API key unencrypted; use https://, \
         or set 'allow-insecure-http' = 'true' for a trusted network"
    ))
}

impl RemoteConfig {
    /// Reads the settings of `model` of `provider` from its canonical `options`.
    pub fn from_options(provider: &str, model: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let mut o = Options::new(format!("model '{model}'"), options);
        o.accept_prefix("dead-letter.properties.");
        let task = o.get("task").map(str::to_ascii_lowercase);
        let api = match (provider, task.as_deref()) {
            ("openai", None | Some("chat-completion")) => Api::OpenAiChat,
            ("openai", Some("embedding" | "embeddings")) => Api::OpenAiEmbeddings,
            ("anthropic", None | Some("messages")) => Api::AnthropicMessages,
            (p, Some(t)) => return Err(o.error(format!("provider '{p}' has no task '{t}'"))),
            (p, None) => return Err(o.error(format!("provider '{p}' is not served over HTTP"))),
        };
        let style = match (api, o.choice("api-style", &["openai", "azure"])?.as_deref()) {
            (Api::AnthropicMessages, _) => ApiStyle::Anthropic,
            (_, Some("azure")) => ApiStyle::Azure,
            _ => ApiStyle::OpenAi,
        };
        let default_base = match api {
            Api::AnthropicMessages => "https://api.anthropic.com/v1/messages",
            Api::OpenAiChat => "https://api.openai.com/v1/chat/completions",
            Api::OpenAiEmbeddings => "https://api.openai.com/v1/embeddings",
        };
        let endpoint = o.get("endpoint").unwrap_or(default_base).trim().to_string();
        let allow_insecure_http = o.bool("allow-insecure-http")?.unwrap_or(false);
        check_transport(&endpoint, allow_insecure_http).map_err(|m| o.error(m))?;
        let api_version = o.get("api-version").map(str::to_string);
        if style == ApiStyle::Azure && api_version.is_none() {
            return Err(o.error("'api_style' = 'azure' needs 'api_version' (e.g. '2024-06-01')"));
        }
        let anthropic_version = o.get("anthropic-version").unwrap_or(DEFAULT_ANTHROPIC_VERSION).to_string();
        let api_key = o.required("api-key")?.to_string();
        let model_name = o.required("model")?.to_string();

        let mut parameters = serde_json::Map::new();
        for (key, field) in [
            ("temperature", "temperature"),
            ("top-p", "top_p"),
            ("presence-penalty", "presence_penalty"),
            ("frequency-penalty", "frequency_penalty"),
        ] {
            if let Some(v) = o.parse::<f64>(key, "a number")? {
                parameters.insert(field.into(), v.into());
            }
        }
        for (key, field) in [("max-tokens", "max_tokens"), ("top-k", "top_k"), ("n", "n"), ("dimension", "dimensions")]
        {
            if let Some(v) = o.u64(key)? {
                parameters.insert(field.into(), v.into());
            }
        }
        if let Some(seed) = o.parse::<i64>("seed", "an integer")? {
            parameters.insert("seed".into(), seed.into());
        }
        if let Some(stop) = o.get("stop") {
            let field = if api == Api::AnthropicMessages { "stop_sequences" } else { "stop" };
            parameters.insert(field.into(), serde_json::json!(stop.split(',').map(str::trim).collect::<Vec<_>>()));
        }
        if api == Api::AnthropicMessages && !parameters.contains_key("max_tokens") {
            // Anthropic requires max_tokens.
            parameters.insert("max_tokens".into(), 1024.into());
        }
        let json_output = o.choice("response-format", &["text", "json_object"])?.as_deref() == Some("json_object");
        let system_prompt = o.get("system-prompt").map(str::to_string);
        let prompt_template = o.get("prompt-template").map(str::to_string);

        let timeout = o.duration("timeout")?.unwrap_or(DEFAULT_TIMEOUT);
        let max_retries = o.u64("max-retries")?.map_or(DEFAULT_MAX_RETRIES, |n| n.min(100) as u32);
        let retry_codes = match o.get("retry.on-codes") {
            Some(list) => list
                .split(',')
                .map(|c| {
                    c.trim()
                        .parse::<u16>()
                        .map_err(|_| o.error(format!("'retry.on_codes': '{c}' is not an HTTP status")))
                })
                .collect::<Result<Vec<_>>>()?,
            None => DEFAULT_RETRY_CODES.to_vec(),
        };
        let backoff = o.duration("retry.backoff")?.unwrap_or(DEFAULT_BACKOFF);
        let max_backoff = o.duration("retry.max-backoff")?.unwrap_or(DEFAULT_MAX_BACKOFF).max(backoff);
        let on_error = match o.choice("on-error", &["fail", "skip", "dead_letter"])?.as_deref() {
            None | Some("fail") => OnError::Fail,
            Some("skip") => OnError::Skip,
            Some(_) => {
                o.required("dead-letter.topic")?;
                o.declare("dead-letter.delivery-guarantee");
                OnError::DeadLetter(DeadLetterConfig::from_model_options(options).map_err(|m| o.error(m))?)
            }
        };
        let asynchronous = o.bool("async")?.unwrap_or(true);
        let max_concurrency = if asynchronous {
            o.u64("max-concurrent-operations")?.map_or(DEFAULT_CONCURRENCY, |n| n as usize)
        } else {
            1
        };
        let ordered = !asynchronous
            || o.choice("output-mode", &["ordered", "allow_unordered"])?.as_deref() != Some("allow_unordered");
        let batch_size = match api {
            Api::OpenAiEmbeddings => o.u64("batch-size")?.map_or(DEFAULT_EMBEDDING_BATCH, |n| n.max(1) as usize),
            _ => {
                o.declare("batch-size");
                1
            }
        };
        o.declare("batch-linger");
        let cache = if o.bool("cache.enabled")?.unwrap_or(false) {
            Some(CacheConfig {
                max_rows: o.u64("cache.max-rows")?.unwrap_or(DEFAULT_CACHE_ROWS).max(1),
                ttl: o.duration("cache.ttl")?,
            })
        } else {
            o.declare("cache.max-rows");
            o.declare("cache.ttl");
            None
        };
        let requests_per_minute = o.u64("rate-limit.requests-per-minute")?;
        let tokens_per_minute = o.u64("rate-limit.tokens-per-minute")?;
        let cost_input_per_1k = o.parse::<f64>("cost.input-per-1k-tokens", "a number")?.unwrap_or(0.0);
        let cost_output_per_1k = o.parse::<f64>("cost.output-per-1k-tokens", "a number")?.unwrap_or(0.0);
        let context = match o.u64("max-context-size")? {
            Some(max) => {
                let action = o.get("context-overflow-action").unwrap_or("truncated-tail").to_string();
                let limit = ContextLimit::new(max.max(1) as usize, &action, &model_name).ok_or_else(|| {
                    o.error(format!("'context-overflow-action' = '{action}' is not an overflow action (truncated-tail, truncated-head, skipped, each optionally with -log)"))
                })?;
                Some(limit)
            }
            None => {
                o.declare("context-overflow-action");
                None
            }
        };
        o.declare("dead-letter.topic");
        o.finish()?;
        Ok(RemoteConfig {
            model: model.to_string(),
            api,
            endpoint,
            style,
            api_version,
            anthropic_version,
            api_key,
            model_name,
            parameters,
            json_output,
            system_prompt,
            prompt_template,
            timeout,
            max_retries,
            retry_codes,
            backoff,
            max_backoff,
            on_error,
            max_concurrency: max_concurrency.max(1),
            ordered,
            batch_size,
            cache,
            requests_per_minute,
            tokens_per_minute,
            cost_input_per_1k,
            cost_output_per_1k,
            context,
        })
    }

    /// The API key (only for request headers).
    pub(crate) fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Removes the API key from `text` (for error messages that might echo it).
    pub fn redact(&self, text: &str) -> String {
        if self.api_key.len() >= 4 {
            text.replace(&self.api_key, sluice_core::secrets::MASK)
        } else {
            text.to_string()
        }
    }

    /// An error about this model.
    pub fn error(&self, message: impl Into<String>) -> OperatorError {
        OperatorError::config(format!("model '{}'", self.model), self.redact(&message.into()))
    }

    /// A fingerprint of everything that shapes an answer (not the key): cached answers of
    /// another model version are not reused.
    pub fn version(&self) -> u64 {
        let text = format!(
            "{:?}|{}|{}|{}|{:?}|{:?}|{}",
            self.api,
            self.endpoint,
            self.model_name,
            serde_json::Value::Object(self.parameters.clone()),
            self.system_prompt,
            self.prompt_template,
            self.json_output
        );
        xxhash_rust::xxh3::xxh3_64(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// An API key never travels unencrypted to another machine unless the user says so.
    #[test]
    fn plain_http_to_another_host_is_refused_unless_allowed() {
        let with = |endpoint: &str, extra: &[(&str, &str)]| {
            let mut o = options(&[("api-key", "sk-secret-1"), ("model", "gpt-4o"), ("endpoint", endpoint)]);
            o.extend(options(extra));
            RemoteConfig::from_options("openai", "m", &o)
        };
        let err = with("http://llm.internal:8080/v1/chat/completions", &[]).unwrap_err().to_string();
        assert!(err.contains("plain HTTP to 'llm.internal'") && err.contains("allow-insecure-http"), "{err}");
        assert!(!err.contains("sk-secret-1"), "{err}");
        assert!(with("HTTP://10.1.2.3/v1/chat/completions", &[]).is_err());
        with("http://llm.internal:8080/v1/chat/completions", &[("allow-insecure-http", "true")]).unwrap();
        for local in ["http://127.0.0.1:8089/v1/chat/completions", "http://localhost/v1", "http://[::1]:80/v1"] {
            with(local, &[]).unwrap_or_else(|e| panic!("{local}: {e}"));
        }
        with("https://llm.internal/v1/chat/completions", &[]).unwrap();
    }

    #[test]
    fn defaults_and_settings() {
        let c = RemoteConfig::from_options("openai", "m", &options(&[("api-key", "sk-secret-1"), ("model", "gpt-4o")]))
            .unwrap();
        assert_eq!(c.api, Api::OpenAiChat);
        assert_eq!(c.endpoint, "https://api.openai.com/v1/chat/completions");
        assert_eq!((c.max_concurrency, c.ordered, c.max_retries), (10, true, 3));
        assert_eq!(c.retry_codes, DEFAULT_RETRY_CODES);
        assert_eq!(c.on_error, OnError::Fail);
        assert!(!format!("{c:?}").contains("sk-secret-1"));

        let c = RemoteConfig::from_options(
            "openai",
            "m",
            &options(&[
                ("api-key", "k"),
                ("model", "text-embedding-3-small"),
                ("task", "embeddings"),
                ("batch-size", "16"),
                ("output-mode", "ALLOW_UNORDERED"),
                ("max-concurrent-operations", "100"),
                ("on-error", "dead_letter"),
                ("dead-letter.topic", "kafka:bad"),
                ("dead-letter.properties.bootstrap.servers", "localhost:9092"),
                ("temperature", "0"),
                ("seed", "7"),
            ]),
        )
        .unwrap();
        assert_eq!((c.api, c.batch_size, c.max_concurrency, c.ordered), (Api::OpenAiEmbeddings, 16, 100, false));
        assert!(matches!(c.on_error, OnError::DeadLetter(ref d) if d.target == "kafka:bad"));
        assert_eq!(c.parameters["seed"], 7);

        let c = RemoteConfig::from_options(
            "anthropic",
            "m",
            &options(&[("api-key", "k"), ("model", "claude"), ("async", "false")]),
        )
        .unwrap();
        assert_eq!((c.style, c.max_concurrency, c.ordered), (ApiStyle::Anthropic, 1, true));
        assert_eq!(c.parameters["max_tokens"], 1024);
    }

    #[test]
    fn bad_settings_are_explained() {
        let err = RemoteConfig::from_options(
            "openai",
            "m",
            &options(&[("api-key", "k"), ("model", "x"), ("api-style", "azure")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("api_version"), "{err}");
    }

    #[test]
    fn the_key_is_redacted_from_messages() {
        let c =
            RemoteConfig::from_options("openai", "m", &options(&[("api-key", "sk-abcdef"), ("model", "x")])).unwrap();
        assert_eq!(c.redact("bad key sk-abcdef given"), "bad key **** given");
        assert!(!c.error("sk-abcdef").to_string().contains("sk-abcdef"));
    }
}
