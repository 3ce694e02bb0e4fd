//! The option schema of each model provider and the alias table.
//!
//! Canonical keys are Apache Flink's kebab-case names (`max-tokens`, `api-key`, `timeout`,
//! `max-concurrent-operations`, ...); options Flink does not have use the same style
//! (`on-error`, `dead-letter.topic`, `retry.on-codes`). [`ALIASES`] maps every other
//! accepted spelling, such as the snake_case names of the CREATE MODEL lesson
//! (`max_concurrent_requests`, `request_timeout`, `api_key`, `model_name`, ...), to one
//! canonical key.

/// What values an option accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueKind {
    /// Any text; a `{{ secret.NAME }}` reference must be well-formed.
    Text,
    /// A credential: a literal or a `{{ secret.NAME }}` reference, masked when shown.
    Secret,
    /// An `http://` or `https://` URL.
    Url,
    /// `true` or `false`.
    Bool,
    /// An integer of at least `min`.
    Count {
        /// The smallest valid value.
        min: u64,
    },
    /// Any 64-bit integer (such as a sampling seed).
    Integer,
    /// A number in `min..=max`.
    Number {
        /// The smallest valid value.
        min: f64,
        /// The largest valid value.
        max: f64,
    },
    /// A duration such as `30s` or `500 ms`; zero is valid when `allow_zero`.
    Duration {
        /// Whether `0` is a valid duration.
        allow_zero: bool,
    },
    /// One of these words (case-insensitive).
    Choice(&'static [&'static str]),
    /// A comma-separated list of HTTP status codes, such as `429,503,504`.
    HttpCodes,
    /// A dead-letter destination, `kafka:<topic>`.
    DeadLetterTarget,
}

/// One option of a provider.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The canonical key.
    pub key: &'static str,
    /// The values it accepts.
    pub kind: ValueKind,
    /// Whether a model of the provider must set it.
    pub required: bool,
}

const fn opt(key: &'static str, kind: ValueKind) -> OptionSpec {
    OptionSpec { key, kind, required: false }
}

const fn required(key: &'static str, kind: ValueKind) -> OptionSpec {
    OptionSpec { key, kind, required: true }
}

const POSITIVE: ValueKind = ValueKind::Count { min: 1 };
const NON_NEGATIVE: ValueKind = ValueKind::Count { min: 0 };
const PENALTY: ValueKind = ValueKind::Number { min: -2.0, max: 2.0 };
const PROBABILITY: ValueKind = ValueKind::Number { min: 0.0, max: 1.0 };

/// The canonical key of the `on-error` option and its dead-letter value.
pub const ON_ERROR: &str = "on-error";
/// The `on-error` value that sends failed rows to `dead-letter.topic`.
pub const DEAD_LETTER: &str = "dead_letter";
/// The canonical key of the dead-letter destination.
pub const DEAD_LETTER_TOPIC: &str = "dead-letter.topic";
/// Prefix of the Kafka producer properties of the dead-letter topic
/// (`dead-letter.properties.bootstrap.servers`).
pub const DEAD_LETTER_PROPERTIES: &str = "dead-letter.properties.";
/// The canonical key of the endpoint (`base_url` is its alias).
pub const ENDPOINT: &str = "endpoint";
/// The canonical key of the task.
pub const TASK: &str = "task";

/// How ML_PREDICT calls the model (Flink's ML_PREDICT runtime config); these may also be
/// set per call in ML_PREDICT's `MAP[...]` argument.
pub const RUNTIME: &[OptionSpec] = &[
    opt("async", ValueKind::Bool),
    opt("max-concurrent-operations", POSITIVE),
    opt("output-mode", ValueKind::Choice(&["ORDERED", "ALLOW_UNORDERED"])),
    opt("timeout", ValueKind::Duration { allow_zero: false }),
];

/// Retries and failures, for every provider.
const RELIABILITY: &[OptionSpec] = &[
    opt("max-retries", NON_NEGATIVE),
    opt("retry.backoff", ValueKind::Duration { allow_zero: true }),
    opt(ON_ERROR, ValueKind::Choice(&["fail", "skip", DEAD_LETTER])),
    opt(DEAD_LETTER_TOPIC, ValueKind::DeadLetterTarget),
    opt("dead-letter.delivery-guarantee", ValueKind::Choice(&["exactly-once", "at-least-once"])),
];

/// Which HTTP statuses are retried, and answers kept in state: for the providers that run
/// in the task manager or over HTTP, not for Python workers (whose failures are timeouts,
/// crashes and exceptions).
const RETRY_CODES_AND_CACHE: &[OptionSpec] =
    &[opt("retry.on-codes", ValueKind::HttpCodes), opt("cache.enabled", ValueKind::Bool)];

/// Options of providers called over HTTP.
const REMOTE: &[OptionSpec] = &[
    opt(ENDPOINT, ValueKind::Url),
    opt("allow-insecure-http", ValueKind::Bool),
    required("api-key", ValueKind::Secret),
    required("model", ValueKind::Text),
    opt("system-prompt", ValueKind::Text),
    opt("max-tokens", POSITIVE),
    opt("top-p", PROBABILITY),
    opt("stop", ValueKind::Text),
    opt("prompt-template", ValueKind::Text),
    opt("rate-limit.requests-per-minute", POSITIVE),
    opt("rate-limit.tokens-per-minute", POSITIVE),
    opt("retry.max-backoff", ValueKind::Duration { allow_zero: false }),
    opt("cache.max-rows", POSITIVE),
    opt("cache.ttl", ValueKind::Duration { allow_zero: false }),
    opt("cost.input-per-1k-tokens", ValueKind::Number { min: 0.0, max: 1000.0 }),
    opt("cost.output-per-1k-tokens", ValueKind::Number { min: 0.0, max: 1000.0 }),
];

/// Options of providers that batch rows in the task manager.
const BATCHING: &[OptionSpec] =
    &[opt("batch-size", POSITIVE), opt("batch-linger", ValueKind::Duration { allow_zero: true })];

const OPENAI: &[OptionSpec] = &[
    opt(TASK, ValueKind::Choice(&["chat-completion", "embedding", "embeddings"])),
    opt("temperature", ValueKind::Number { min: 0.0, max: 2.0 }),
    opt("presence-penalty", PENALTY),
    opt("frequency-penalty", PENALTY),
    opt("n", POSITIVE),
    opt("seed", ValueKind::Integer),
    opt("response-format", ValueKind::Choice(&["text", "json_object"])),
    opt("max-context-size", POSITIVE),
    opt(
        "context-overflow-action",
        ValueKind::Choice(&[
            "truncated-tail",
            "truncated-tail-log",
            "truncated-head",
            "truncated-head-log",
            "skipped",
            "skipped-log",
        ]),
    ),
    opt("dimension", POSITIVE),
    opt("api-style", ValueKind::Choice(&["openai", "azure"])),
    opt("api-version", ValueKind::Text),
    opt("batch-size", POSITIVE),
];

const ANTHROPIC: &[OptionSpec] = &[
    opt(TASK, ValueKind::Choice(&["messages"])),
    opt("temperature", PROBABILITY),
    opt("top-k", POSITIVE),
    opt("anthropic-version", ValueKind::Text),
];

const LOCAL: &[OptionSpec] = &[
    opt(TASK, ValueKind::Choice(&["classification", "regression"])),
    required("model-path", ValueKind::Text),
    opt("runtime", ValueKind::Choice(&["onnx", "pytorch", "tensorflow"])),
    opt("inference-threads", POSITIVE),
    opt("gpu", ValueKind::Bool),
    // `runtime` = `pytorch` / `tensorflow` run on a Python worker:
    opt("python.executable", ValueKind::Text),
    opt("python.open-timeout", ValueKind::Duration { allow_zero: false }),
];

const GENERIC_PYTHON: &[OptionSpec] = &[
    required("model-directory-path", ValueKind::Text),
    required("python-predict-class", ValueKind::Text),
    opt("python.executable", ValueKind::Text),
    opt("python.requirements", ValueKind::Text),
    opt("python.open-timeout", ValueKind::Duration { allow_zero: false }),
];

/// A model provider and its options.
#[derive(Debug)]
pub struct Provider {
    /// The `provider` value.
    pub name: &'static str,
    /// Its option groups.
    pub groups: &'static [&'static [OptionSpec]],
    /// Prefixes under which any key is accepted (free-form properties).
    pub open_prefixes: &'static [&'static str],
    /// Where `base_url` points to, per task (the first entry is the default task).
    pub base_url_paths: &'static [(&'static str, &'static str)],
}

impl Provider {
    /// The spec of canonical key `key`, if the provider has it.
    pub fn option(&self, key: &str) -> Option<&'static OptionSpec> {
        self.groups.iter().flat_map(|g| g.iter()).find(|o| o.key == key)
    }

    /// All the provider's options.
    pub fn options(&self) -> impl Iterator<Item = &'static OptionSpec> {
        self.groups.iter().flat_map(|g| g.iter())
    }

    /// Whether `key` is a free-form property of the provider.
    pub fn is_open(&self, key: &str) -> bool {
        self.open_prefixes.iter().any(|p| key.len() > p.len() && key.starts_with(p))
    }
}

/// The providers, in the order they are listed in messages.
pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "openai",
        groups: &[RUNTIME, RELIABILITY, RETRY_CODES_AND_CACHE, REMOTE, OPENAI],
        open_prefixes: &[DEAD_LETTER_PROPERTIES],
        base_url_paths: &[
            ("chat-completion", "/chat/completions"),
            ("embedding", "/embeddings"),
            ("embeddings", "/embeddings"),
        ],
    },
    Provider {
        name: "anthropic",
        groups: &[RUNTIME, RELIABILITY, RETRY_CODES_AND_CACHE, REMOTE, ANTHROPIC],
        open_prefixes: &[DEAD_LETTER_PROPERTIES],
        base_url_paths: &[("messages", "/messages")],
    },
    Provider {
        name: "local",
        groups: &[RUNTIME, RELIABILITY, RETRY_CODES_AND_CACHE, BATCHING, LOCAL],
        open_prefixes: &[DEAD_LETTER_PROPERTIES],
        base_url_paths: &[],
    },
    Provider {
        name: "generic-python",
        groups: &[RUNTIME, RELIABILITY, BATCHING, GENERIC_PYTHON],
        open_prefixes: &["properties.", DEAD_LETTER_PROPERTIES],
        base_url_paths: &[],
    },
];

/// The names of the model providers.
pub fn provider_names() -> &'static [&'static str] {
    &["openai", "anthropic", "local", "generic-python"]
}

/// The provider called `name` (exact, lower-case).
pub fn provider(name: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.name == name)
}

/// How an alias's value becomes the canonical option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueMapping {
    /// The value is kept as written.
    Same,
    /// A boolean: `true` → `ORDERED`, `false` → `ALLOW_UNORDERED` (`ordered_output`).
    OrderedFlag,
    /// A base URL: the task's path is appended (`base_url` + `/chat/completions`).
    BaseUrl,
}

/// An accepted spelling of a canonical key.
#[derive(Debug, Clone, Copy)]
pub struct Alias {
    /// The spelling accepted in WITH clauses.
    pub alias: &'static str,
    /// The canonical key it stands for.
    pub canonical: &'static str,
    /// How its value converts.
    pub mapping: ValueMapping,
}

const fn same(alias: &'static str, canonical: &'static str) -> Alias {
    Alias { alias, canonical, mapping: ValueMapping::Same }
}

/// Every alias: the lesson's snake_case names and older Flink names.
pub const ALIASES: &[Alias] = &[
    same("max_concurrent_requests", "max-concurrent-operations"),
    same("max_concurrent_operations", "max-concurrent-operations"),
    same("capacity", "max-concurrent-operations"),
    same("request_timeout", "timeout"),
    Alias { alias: "ordered_output", canonical: "output-mode", mapping: ValueMapping::OrderedFlag },
    same("output_mode", "output-mode"),
    same("max_retries", "max-retries"),
    same("retry-num", "max-retries"),
    same("retry.on_codes", "retry.on-codes"),
    same("on_error", ON_ERROR),
    same("dead_letter.topic", DEAD_LETTER_TOPIC),
    same("dead_letter.delivery_guarantee", "dead-letter.delivery-guarantee"),
    same("rate_limit.requests_per_minute", "rate-limit.requests-per-minute"),
    same("rate_limit.tokens_per_minute", "rate-limit.tokens-per-minute"),
    Alias { alias: "base_url", canonical: ENDPOINT, mapping: ValueMapping::BaseUrl },
    same("api_key", "api-key"),
    same("model_name", "model"),
    same("system_prompt", "system-prompt"),
    same("max_tokens", "max-tokens"),
    same("top_p", "top-p"),
    same("top_k", "top-k"),
    same("presence_penalty", "presence-penalty"),
    same("frequency_penalty", "frequency-penalty"),
    same("response_format", "response-format"),
    same("max_context_size", "max-context-size"),
    same("context_overflow_action", "context-overflow-action"),
    same("model_path", "model-path"),
    same("batch_size", "batch-size"),
    same("batch_linger", "batch-linger"),
    same("inference_threads", "inference-threads"),
    same("model_directory_path", "model-directory-path"),
    same("python_predict_class", "python-predict-class"),
    same("python.open_timeout", "python.open-timeout"),
    same("prompt_template", "prompt-template"),
    same("api_style", "api-style"),
    same("api_version", "api-version"),
    same("anthropic_version", "anthropic-version"),
    same("retry.max_backoff", "retry.max-backoff"),
    same("cache.max_rows", "cache.max-rows"),
    same("cost.input_per_1k_tokens", "cost.input-per-1k-tokens"),
    same("cost.output_per_1k_tokens", "cost.output-per-1k-tokens"),
];

/// The alias entry of `key`, if it is an alias.
pub fn alias(key: &str) -> Option<&'static Alias> {
    ALIASES.iter().find(|a| a.alias == key)
}

/// The canonical key `key` stands for (itself when it is not an alias).
pub fn canonical_key(key: &str) -> &str {
    alias(key).map_or(key, |a| a.canonical)
}

/// The spellings of canonical key `key`: itself, then its aliases.
pub fn spellings(key: &'static str) -> impl Iterator<Item = &'static str> {
    std::iter::once(key).chain(ALIASES.iter().filter(move |a| a.canonical == key).map(|a| a.alias))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_names_an_option_of_some_provider() {
        for a in ALIASES {
            assert!(PROVIDERS.iter().any(|p| p.option(a.canonical).is_some()), "{}", a.alias);
            assert!(PROVIDERS.iter().all(|p| p.option(a.alias).is_none()), "{} is also canonical", a.alias);
        }
    }

    #[test]
    fn provider_names_match_the_schemas() {
        let names: Vec<&str> = PROVIDERS.iter().map(|p| p.name).collect();
        assert_eq!(names, provider_names());
    }

    #[test]
    fn keys_are_unique_per_provider() {
        for p in PROVIDERS {
            let keys: Vec<&str> = p.options().map(|o| o.key).collect();
            let mut unique = keys.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(keys.len(), unique.len(), "{}", p.name);
        }
    }
}
