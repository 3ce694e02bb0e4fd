//! Machine-learning models at plan time: the options a `CREATE MODEL ... WITH (...)` may
//! set for each provider, checked without loading any model or client.
//!
//! Four providers exist: `openai`, `anthropic`, `local` and `generic-python`. Each has an
//! option schema ([`providers`]); [`validate_model_options`] checks a model's options
//! against it and returns them under their canonical (Apache Flink, kebab-case) keys, so
//! `'max_tokens'` and `'max-tokens'` mean the same option. Values stay as written, except
//! where an alias implies a conversion (`ordered_output` → `output-mode`, `base_url` →
//! `endpoint`); secret references (`'{{ secret.NAME }}'`, see [`crate::secrets`]) are never
//! resolved here.

pub mod providers;

pub use providers::provider_names;

use std::collections::BTreeMap;
use std::fmt;

use crate::options::{closest, parse_duration};
use crate::secrets;
use providers::{
    alias, canonical_key, spellings, OptionSpec, Provider, ValueKind, ValueMapping, DEAD_LETTER, DEAD_LETTER_TOPIC,
    ENDPOINT, ON_ERROR, PROVIDERS, RUNTIME, TASK,
};

/// A model option that is unknown, malformed, missing or in conflict with another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ModelOptionError {
    /// The offending option's key as written, or `None` when no single option is at fault
    /// (a required option is missing).
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is an obvious fix.
    pub hint: Option<String>,
}

impl fmt::Display for ModelOptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match &self.hint {
            Some(hint) => write!(f, " ({hint})"),
            None => Ok(()),
        }
    }
}

impl ModelOptionError {
    fn at(key: &str, message: impl Into<String>) -> Self {
        ModelOptionError { key: Some(key.to_string()), message: message.into(), hint: None }
    }

    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

type Result<T> = std::result::Result<T, ModelOptionError>;

/// One option after its key was resolved.
struct Entry<'a> {
    /// The key as written.
    written: &'a str,
    /// The value as written.
    value: &'a str,
    /// The schema entry (None for free-form properties).
    spec: Option<&'static OptionSpec>,
    mapping: ValueMapping,
}

/// Checks the options of a model of `provider` and returns them under their canonical keys.
///
/// `options` are the WITH options as written; a `provider` entry, if present, is skipped
/// (the provider is given separately). Values are returned as written, except that
/// `ordered_output` becomes `output-mode` (`true` → `ORDERED`, `false` →
/// `ALLOW_UNORDERED`) and `base_url` becomes `endpoint` with the task's path appended.
/// Errors name the key as written.
pub fn validate_model_options(provider: &str, options: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let provider = find_provider(provider)?;
    let mut entries: BTreeMap<String, Entry<'_>> = BTreeMap::new();
    for (key, value) in options {
        if key == "provider" {
            continue;
        }
        let (canonical, spec, mapping) = resolve_key(provider, key)?;
        if let Some(previous) = entries.get(&canonical) {
            return Err(conflict(previous.written, key, &canonical));
        }
        entries.insert(canonical, Entry { written: key, value, spec, mapping });
    }
    let mut canonical = BTreeMap::new();
    for (key, entry) in &entries {
        let value = match entry.mapping {
            ValueMapping::OrderedFlag => ordered_flag(entry.written, entry.value)?,
            ValueMapping::Same | ValueMapping::BaseUrl => entry.value.to_string(),
        };
        if let Some(spec) = entry.spec {
            check_value(spec.kind, entry.written, &value)?;
        }
        canonical.insert(key.clone(), value);
    }
    for spec in provider.options().filter(|o| o.required) {
        if !entries.contains_key(spec.key) {
            return Err(ModelOptionError {
                key: None,
                message: format!("a model of provider '{}' needs option '{}'", provider.name, spec.key),
                hint: Some(format!("add {} = '...' to its WITH clause", spelling_list(spec.key))),
            });
        }
    }
    check_dead_letter(&entries)?;
    check_combinations(provider.name, &entries, &canonical)?;
    if let Some(entry) = entries.get(ENDPOINT).filter(|e| e.mapping == ValueMapping::BaseUrl) {
        let task = canonical.get(TASK).map(|t| t.to_ascii_lowercase());
        let path = provider
            .base_url_paths
            .iter()
            .find(|(t, _)| Some(*t) == task.as_deref())
            .or(provider.base_url_paths.first())
            .map_or("", |(_, path)| path);
        canonical.insert(ENDPOINT.to_string(), format!("{}{path}", entry.value.trim().trim_end_matches('/')));
    }
    Ok(canonical)
}

/// Applies `ALTER MODEL ... SET (changes)` to a model's canonical options: each change
/// replaces the option it names (under any spelling), and the result is validated as a
/// whole, as [`validate_model_options`] does.
pub fn merge_model_options(
    provider: &str,
    current: &BTreeMap<String, String>,
    changes: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let mut merged = current.clone();
    for key in changes.keys() {
        merged.remove(canonical_key(key));
    }
    merged.extend(changes.iter().map(|(k, v)| (k.clone(), v.clone())));
    validate_model_options(provider, &merged)
}

/// The canonical keys ML_PREDICT's `MAP[...]` config may set (Flink's runtime config).
pub const PREDICT_CONFIG_KEYS: &[&str] = &["async", "max-concurrent-operations", "output-mode", "timeout"];

/// Checks the config of one ML_PREDICT call (`MAP['async', 'true', ...]`) and returns it
/// under canonical keys. Only the runtime options ([`PREDICT_CONFIG_KEYS`], under any
/// spelling) may be set per call.
pub fn validate_predict_config(config: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let mut written: BTreeMap<&str, &str> = BTreeMap::new();
    let mut canonical = BTreeMap::new();
    for (key, value) in config {
        let name = canonical_key(key);
        let Some(spec) = RUNTIME.iter().find(|o| o.key == name) else {
            let allowed = PREDICT_CONFIG_KEYS.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ");
            let error = ModelOptionError::at(key, format!("'{key}' cannot be set in ML_PREDICT's config"));
            if PROVIDERS.iter().any(|p| p.option(name).is_some()) {
                return Err(error.with_hint(format!(
                    "it is a model option: set it in CREATE MODEL ... WITH or ALTER MODEL ... SET; a call may set {allowed}"
                )));
            }
            let candidates = PREDICT_CONFIG_KEYS.iter().flat_map(|k| spellings(k));
            return Err(match closest(key, candidates) {
                Some(close) => error.with_hint(format!("did you mean '{close}'?")),
                None => error.with_hint(format!("a call may set {allowed}")),
            });
        };
        if let Some(previous) = written.insert(spec.key, key) {
            return Err(conflict(previous, key, spec.key));
        }
        let value = match alias(key).map(|a| a.mapping) {
            Some(ValueMapping::OrderedFlag) => ordered_flag(key, value)?,
            _ => value.clone(),
        };
        check_value(spec.kind, key, &value)?;
        canonical.insert(spec.key.to_string(), value);
    }
    Ok(canonical)
}

fn find_provider(name: &str) -> Result<&'static Provider> {
    if let Some(provider) = providers::provider(&name.trim().to_ascii_lowercase()) {
        return Ok(provider);
    }
    let names = providers::provider_names();
    let list = names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    let error = ModelOptionError::at("provider", format!("unknown model provider '{name}'"));
    Err(match closest(&name.to_ascii_lowercase(), names.iter().copied()) {
        Some(close) => error.with_hint(format!("did you mean '{close}'? Providers are {list}")),
        None => error.with_hint(format!("providers are {list}")),
    })
}

/// The canonical key, schema entry and value mapping of `key` for `provider`.
fn resolve_key(provider: &Provider, key: &str) -> Result<(String, Option<&'static OptionSpec>, ValueMapping)> {
    if let Some(spec) = provider.option(key) {
        return Ok((key.to_string(), Some(spec), ValueMapping::Same));
    }
    if provider.is_open(key) {
        return Ok((key.to_string(), None, ValueMapping::Same));
    }
    if let Some(a) = alias(key) {
        if let Some(spec) = provider.option(a.canonical) {
            return Ok((a.canonical.to_string(), Some(spec), a.mapping));
        }
    }
    let name = canonical_key(key);
    let owners: Vec<&str> =
        PROVIDERS.iter().filter(|p| p.option(name).is_some() || p.is_open(key)).map(|p| p.name).collect();
    if !owners.is_empty() {
        let owners = owners.iter().map(|o| format!("'{o}'")).collect::<Vec<_>>().join(" and ");
        return Err(ModelOptionError::at(
            key,
            format!("option '{key}' belongs to provider {owners}, not to '{}'", provider.name),
        )
        .with_hint("remove it, or change the model's 'provider'"));
    }
    let candidates: Vec<&str> = provider.options().flat_map(|o| spellings(o.key)).collect();
    let error = ModelOptionError::at(key, format!("unknown option '{key}' for provider '{}'", provider.name));
    Err(match closest(key, candidates.iter().copied()) {
        Some(close) => error.with_hint(format!("did you mean '{close}'?")),
        None => error.with_hint(format!(
            "valid options are {}",
            provider.options().map(|o| format!("'{}'", o.key)).collect::<Vec<_>>().join(", ")
        )),
    })
}

fn conflict(first: &str, second: &str, canonical: &str) -> ModelOptionError {
    ModelOptionError::at(second, format!("options '{first}' and '{second}' both set '{canonical}'"))
        .with_hint("they are spellings of the same option; keep one of them")
}

/// `'a', 'b' or 'c'`: the spellings of a canonical key.
fn spelling_list(key: &'static str) -> String {
    let all: Vec<String> = spellings(key).map(|s| format!("'{s}'")).collect();
    match all.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} (or {last})", rest.join(", ")),
        _ => all.join(""),
    }
}

/// `ordered_output`'s value as an `output-mode` value.
fn ordered_flag(key: &str, value: &str) -> Result<String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok("ORDERED".to_string()),
        "false" => Ok("ALLOW_UNORDERED".to_string()),
        _ => Err(ModelOptionError::at(key, format!("option '{key}' = '{value}' must be 'true' or 'false'"))),
    }
}

/// `on-error = 'dead_letter'` needs a topic, and a topic needs `on-error = 'dead_letter'`.
/// Options a provider accepts that do nothing together with its other settings: refused,
/// with the reason, rather than silently ignored.
fn check_combinations(
    provider: &str,
    entries: &BTreeMap<String, Entry<'_>>,
    canonical: &BTreeMap<String, String>,
) -> Result<()> {
    let refuse = |key: &str, message: String, hint: &str| {
        let written = entries.get(key).map_or(key, |e| e.written);
        Err(ModelOptionError {
            key: Some(written.to_string()),
            message: format!("option '{written}' {message}"),
            hint: Some(hint.to_string()),
        })
    };
    let value = |key: &str| canonical.get(key).map(|v| v.trim().to_ascii_lowercase());
    match provider {
        "local" => {
            let runtime = value("runtime").unwrap_or_else(|| "onnx".into());
            if runtime == "onnx" {
                // ONNX inference runs in the task, batch by batch: there is no request to
                // time out, retry, run concurrently or cache, and no Python worker.
                const IN_TASK: [&str; 10] = [
                    "async",
                    "max-concurrent-operations",
                    "output-mode",
                    "timeout",
                    "max-retries",
                    "retry.backoff",
                    "retry.on-codes",
                    "cache.enabled",
                    "python.executable",
                    "python.open-timeout",
                ];
                if let Some(key) = IN_TASK.iter().find(|k| entries.contains_key(**k)) {
                    return refuse(
                        key,
                        "does not apply to a local ONNX model: it runs in the task manager, batch by batch, with no \
                         request to time out, retry, run concurrently or cache, and no Python worker"
                            .into(),
                        "remove it; batch_size, batch_linger and inference_threads tune a local model",
                    );
                }
            } else if let Some(key) = ["retry.on-codes", "cache.enabled"].iter().find(|k| entries.contains_key(**k)) {
                return refuse(
                    key,
                    format!(
                        "does not apply to runtime '{runtime}': the model runs on a Python worker, whose failures are \
                         timeouts, crashes and exceptions (no HTTP codes), and its answers are not cached"
                    ),
                    "remove it; timeout, max_retries and on_error decide what a failure does",
                );
            }
        }
        "openai" => {
            let task = value(TASK).unwrap_or_else(|| "chat-completion".into());
            let embeddings = task.starts_with("embedding");
            if value("n").is_some_and(|n| n != "1") {
                return refuse(
                    "n",
                    "asks for several completions per row, but ML_PREDICT writes one answer per row: the others \
                     would be paid for and dropped"
                        .into(),
                    "remove 'n' (one completion per row)",
                );
            }
            if !embeddings && entries.contains_key("dimension") {
                return refuse(
                    "dimension",
                    format!("sets the size of embeddings, but the task is '{task}'"),
                    "use it with 'task' = 'embeddings'",
                );
            }
            if !embeddings && entries.contains_key("batch-size") {
                return refuse(
                    "batch-size",
                    format!("groups rows into one request for embeddings; a '{task}' request carries one prompt"),
                    "remove it, and raise max_concurrent_requests for throughput",
                );
            }
            if embeddings && entries.contains_key("system-prompt") {
                return refuse(
                    "system-prompt",
                    "does not apply to embeddings, which take the text alone".into(),
                    "remove it, or build the text with prompt_template",
                );
            }
            if entries.contains_key("api-version") && value("api-style").as_deref() != Some("azure") {
                return refuse(
                    "api-version",
                    "is Azure OpenAI's api-version query parameter, sent only with 'api_style' = 'azure'".into(),
                    "add 'api_style' = 'azure', or remove it",
                );
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_dead_letter(entries: &BTreeMap<String, Entry<'_>>) -> Result<()> {
    let on_error = entries.get(ON_ERROR);
    let dead_letter = on_error.is_some_and(|e| e.value.trim().eq_ignore_ascii_case(DEAD_LETTER));
    match (entries.get(DEAD_LETTER_TOPIC), on_error) {
        (None, Some(e)) if dead_letter => Err(ModelOptionError::at(
            e.written,
            format!("'{}' = '{}' needs option '{DEAD_LETTER_TOPIC}'", e.written, e.value),
        )
        .with_hint(format!("add {} = 'kafka:<topic>'", spelling_list(DEAD_LETTER_TOPIC)))),
        (Some(topic), _) if !dead_letter => Err(ModelOptionError::at(
            topic.written,
            format!("option '{}' is only used when '{ON_ERROR}' = '{DEAD_LETTER}'", topic.written),
        )
        .with_hint(format!("set 'on_error' = '{DEAD_LETTER}', or remove '{}'", topic.written))),
        _ => Ok(()),
    }
}

/// Checks one value; errors show secret-bearing values masked.
fn check_value(kind: ValueKind, key: &str, value: &str) -> Result<()> {
    let shown = secrets::mask(key, value);
    let invalid = |what: &str| ModelOptionError::at(key, format!("option '{key}' = '{shown}' {what}"));
    let text = value.trim();
    if text.is_empty() {
        return Err(
            ModelOptionError::at(key, format!("option '{key}' is empty")).with_hint("give it a value, or remove it")
        );
    }
    match kind {
        ValueKind::Text | ValueKind::Secret => {
            if let Err(e) = secrets::parse_reference(value) {
                return Err(ModelOptionError::at(key, format!("option '{key}': {e}")));
            }
        }
        ValueKind::Url => {
            let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"));
            if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
                return Err(invalid("is not an http:// or https:// URL"));
            }
        }
        ValueKind::Bool => {
            if !text.eq_ignore_ascii_case("true") && !text.eq_ignore_ascii_case("false") {
                return Err(invalid("must be 'true' or 'false'"));
            }
        }
        ValueKind::Count { min } => {
            if text.parse::<u64>().map_or(true, |n| n < min) {
                return Err(invalid(&format!("must be a whole number of at least {min}")));
            }
        }
        ValueKind::Integer => {
            if text.parse::<i64>().is_err() {
                return Err(invalid("must be a whole number"));
            }
        }
        ValueKind::Number { min, max } => {
            if text.parse::<f64>().map_or(true, |n| !n.is_finite() || n < min || n > max) {
                return Err(invalid(&format!("must be a number from {min} to {max}")));
            }
        }
        ValueKind::Duration { allow_zero } => match parse_duration(text) {
            Err(why) => return Err(ModelOptionError::at(key, format!("option '{key}' = '{shown}': {why}"))),
            Ok(d) if d.is_zero() && !allow_zero => return Err(invalid("must be longer than zero")),
            Ok(_) => {}
        },
        ValueKind::Choice(choices) => {
            if !choices.iter().any(|c| c.eq_ignore_ascii_case(text)) {
                let list = choices.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ");
                let error = invalid(&format!("is not one of {list}"));
                return Err(match closest(&text.to_ascii_lowercase(), choices.iter().copied()) {
                    Some(close) => error.with_hint(format!("did you mean '{close}'?")),
                    None => error,
                });
            }
        }
        ValueKind::HttpCodes => {
            if let Some(bad) =
                text.split(',').map(str::trim).find(|c| c.parse::<u16>().map_or(true, |n| !(100..=599).contains(&n)))
            {
                return Err(invalid(&format!(
                    "must be a comma-separated list of HTTP status codes; '{bad}' is not one (100 to 599)"
                ))
                .with_hint("for example '429,503,504'"));
            }
        }
        ValueKind::DeadLetterTarget => {
            let topic = text.strip_prefix("kafka:").unwrap_or("");
            if topic.is_empty() || !topic.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
                return Err(invalid("must be 'kafka:<topic>'").with_hint("for example 'kafka:failed-predictions'"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
