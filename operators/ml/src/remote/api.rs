//! Request bodies and response parsing of the OpenAI (chat completions, embeddings) and
//! Anthropic (messages) HTTP APIs.

use serde_json::{json, Value};

use super::config::{Api, RemoteConfig};

/// What the model answered for one row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Answer {
    /// A chat or messages answer.
    Text(String),
    /// An embedding.
    Embedding(Vec<f32>),
}

/// Tokens a request used, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt (input) tokens.
    pub prompt_tokens: u64,
    /// Completion (output) tokens.
    pub completion_tokens: u64,
}

/// The JSON body of a request for `prompts` (one per row; several only for embeddings).
pub fn request_body(config: &RemoteConfig, prompts: &[String]) -> Value {
    let mut body = config.parameters.clone();
    body.insert("model".into(), config.model_name.clone().into());
    match config.api {
        Api::OpenAiEmbeddings => {
            for chat_only in
                ["temperature", "top_p", "presence_penalty", "frequency_penalty", "max_tokens", "seed", "n", "stop"]
            {
                body.remove(chat_only);
            }
            body.insert("input".into(), json!(prompts));
        }
        Api::OpenAiChat => {
            let mut messages = Vec::new();
            if let Some(system) = &config.system_prompt {
                messages.push(json!({"role": "system", "content": system}));
            }
            messages.push(json!({"role": "user", "content": prompts.first().cloned().unwrap_or_default()}));
            body.insert("messages".into(), Value::Array(messages));
            if config.json_output {
                body.insert("response_format".into(), json!({"type": "json_object"}));
            }
        }
        Api::AnthropicMessages => {
            for openai_only in ["presence_penalty", "frequency_penalty", "seed", "n", "dimensions"] {
                body.remove(openai_only);
            }
            if let Some(system) = &config.system_prompt {
                body.insert("system".into(), system.clone().into());
            }
            body.insert(
                "messages".into(),
                json!([{"role": "user", "content": prompts.first().cloned().unwrap_or_default()}]),
            );
        }
    }
    Value::Object(body)
}

/// The answers (one per prompt) and usage in a successful response body, or why the body
/// is not a valid answer.
pub fn parse_response(api: Api, body: &[u8], prompts: usize) -> Result<(Vec<Answer>, Usage), String> {
    let tree = || -> Result<Value, String> {
        serde_json::from_slice(body).map_err(|e| format!("the response is not valid JSON: {e}"))
    };
    let number = |value: &Value, pointer: &str| value.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    match api {
        Api::OpenAiChat => {
            let value = tree()?;
            let text = value
                .pointer("/choices/0/message/content")
                .and_then(Value::as_str)
                .ok_or("the response has no choices[0].message.content")?;
            let usage = Usage {
                prompt_tokens: number(&value, "/usage/prompt_tokens"),
                completion_tokens: number(&value, "/usage/completion_tokens"),
            };
            Ok((vec![Answer::Text(text.to_string())], usage))
        }
        Api::AnthropicMessages => {
            let value = tree()?;
            let blocks = value.get("content").and_then(Value::as_array).ok_or("the response has no content blocks")?;
            let text: String = blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            let usage = Usage {
                prompt_tokens: number(&value, "/usage/input_tokens"),
                completion_tokens: number(&value, "/usage/output_tokens"),
            };
            Ok((vec![Answer::Text(text)], usage))
        }
        // Embeddings are read straight into vectors, not through a JSON tree.
        Api::OpenAiEmbeddings => parse_embeddings(body, prompts),
    }
}

/// An embeddings response, read into its vectors without a JSON tree.
#[derive(serde::Deserialize)]
struct EmbeddingsBody {
    data: Vec<EmbeddingItem>,
    #[serde(default)]
    usage: Option<EmbeddingsUsage>,
}

#[derive(serde::Deserialize)]
struct EmbeddingItem {
    index: Option<usize>,
    embedding: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct EmbeddingsUsage {
    #[serde(default)]
    prompt_tokens: u64,
}

/// The embeddings (one per input, by their `index`) and usage of an embeddings response.
fn parse_embeddings(body: &[u8], prompts: usize) -> Result<(Vec<Answer>, Usage), String> {
    let body: EmbeddingsBody =
        serde_json::from_slice(body).map_err(|e| format!("the embeddings response does not read: {e}"))?;
    let returned = body.data.len();
    let mut answers: Vec<Option<Answer>> = vec![None; prompts];
    for (position, item) in body.data.into_iter().enumerate() {
        let index = item.index.unwrap_or(position);
        let slot = answers.get_mut(index).ok_or_else(|| format!("embedding index {index} is out of range"))?;
        *slot = Some(Answer::Embedding(item.embedding));
    }
    let answers = answers
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("the response has {returned} embeddings for {prompts} inputs"))?;
    let prompt_tokens = body.usage.map_or(0, |u| u.prompt_tokens);
    Ok((answers, Usage { prompt_tokens, completion_tokens: 0 }))
}

/// The provider's error message in an error body (OpenAI and Anthropic both use
/// `error.message`), shortened; the raw body when it has none.
pub fn error_message(body: &[u8]) -> String {
    let text = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let mut short: String = text.chars().take(300).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(provider: &str, extra: &[(&str, &str)]) -> RemoteConfig {
        let mut options: BTreeMap<String, String> =
            [("api-key", "k"), ("model", "m1")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        options.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        RemoteConfig::from_options(provider, "m", &options).unwrap()
    }

    #[test]
    fn chat_requests_carry_the_settings() {
        let c = config(
            "openai",
            &[
                ("temperature", "0"),
                ("seed", "12345"),
                ("system-prompt", "be brief"),
                ("response-format", "json_object"),
                ("max-tokens", "5"),
            ],
        );
        let body = request_body(&c, &["hi".to_string()]);
        assert_eq!(body["model"], "m1");
        assert_eq!(body["temperature"], 0.0);
        assert_eq!(body["seed"], 12345);
        assert_eq!(body["max_tokens"], 5);
        assert_eq!(body["messages"][0], json!({"role": "system", "content": "be brief"}));
        assert_eq!(body["messages"][1], json!({"role": "user", "content": "hi"}));
        assert_eq!(body["response_format"]["type"], "json_object");

        let c = config(
            "openai",
            &[("top-p", "0.9"), ("presence-penalty", "0.5"), ("frequency-penalty", "-0.5"), ("stop", "END,STOP")],
        );
        let body = request_body(&c, &["hi".to_string()]);
        assert_eq!((body["top_p"].as_f64(), body["stop"].clone()), (Some(0.9), json!(["END", "STOP"])));
        assert_eq!((body["presence_penalty"].as_f64(), body["frequency_penalty"].as_f64()), (Some(0.5), Some(-0.5)));

        let c =
            config("anthropic", &[("system-prompt", "legal"), ("temperature", "0"), ("top-k", "40"), ("stop", "END")]);
        let body = request_body(&c, &["contract".to_string()]);
        assert_eq!(body["system"], "legal");
        assert_eq!(body["max_tokens"], 1024);
        assert_eq!(body["messages"][0]["content"], "contract");
        assert_eq!((body["top_k"].clone(), body["stop_sequences"].clone()), (json!(40), json!(["END"])));

        let c = config("openai", &[("task", "embeddings"), ("temperature", "0")]);
        let body = request_body(&c, &["a".to_string(), "b".to_string()]);
        assert_eq!(body["input"], json!(["a", "b"]));
        assert!(body.get("temperature").is_none());
    }

    #[test]
    fn responses_parse_with_usage() {
        let chat = br#"{"choices":[{"message":{"content":"yes"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        assert_eq!(
            parse_response(Api::OpenAiChat, chat, 1).unwrap(),
            (vec![Answer::Text("yes".into())], Usage { prompt_tokens: 3, completion_tokens: 1 })
        );
        let messages = br#"{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"usage":{"input_tokens":4,"output_tokens":2}}"#;
        assert_eq!(parse_response(Api::AnthropicMessages, messages, 1).unwrap().0, vec![Answer::Text("ab".into())]);
        let embeddings = br#"{"data":[{"index":1,"embedding":[1.0]},{"index":0,"embedding":[0.5,0.25]}],"usage":{"prompt_tokens":2}}"#;
        assert_eq!(
            parse_response(Api::OpenAiEmbeddings, embeddings, 2).unwrap().0,
            vec![Answer::Embedding(vec![0.5, 0.25]), Answer::Embedding(vec![1.0])]
        );
        assert!(parse_response(Api::OpenAiEmbeddings, embeddings, 3)
            .unwrap_err()
            .contains("2 embeddings for 3 inputs"));
        assert!(parse_response(Api::OpenAiChat, b"{\"choices\": [ {", 1).unwrap_err().contains("not valid JSON"));
        assert_eq!(error_message(br#"{"error":{"message":"slow down"}}"#), "slow down");
    }
}
