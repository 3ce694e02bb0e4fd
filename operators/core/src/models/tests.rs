//! Tests of model option validation, with the option sets of the CREATE MODEL lesson and
//! the generic-python FLIP.

use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn error(provider: &str, pairs: &[(&str, &str)]) -> ModelOptionError {
    match validate_model_options(provider, &map(pairs)) {
        Ok(o) => panic!("expected an error, got {o:?}"),
        Err(e) => e,
    }
}

const LESSON_OPENAI: &[(&str, &str)] = &[
    ("task", "chat-completion"),
    ("api_key", "{{ secret.openai_api_key }}"),
    ("base_url", "https://api.openai.com/v1"),
    ("model_name", "gpt-4-turbo"),
    ("temperature", "0.0"),
    ("max_tokens", "500"),
    ("top_p", "0.95"),
    ("presence_penalty", "0"),
    ("frequency_penalty", "0"),
    ("response_format", "json_object"),
    ("seed", "12345"),
    ("system_prompt", "You are a helpful assistant."),
    ("request_timeout", "30s"),
    ("max_retries", "3"),
];

#[test]
fn lesson_openai_options_become_canonical() {
    let options = validate_model_options("openai", &map(LESSON_OPENAI)).unwrap();
    let expected = map(&[
        ("api-key", "{{ secret.openai_api_key }}"),
        ("endpoint", "https://api.openai.com/v1/chat/completions"),
        ("frequency-penalty", "0"),
        ("max-retries", "3"),
        ("max-tokens", "500"),
        ("model", "gpt-4-turbo"),
        ("presence-penalty", "0"),
        ("response-format", "json_object"),
        ("seed", "12345"),
        ("system-prompt", "You are a helpful assistant."),
        ("task", "chat-completion"),
        ("temperature", "0.0"),
        ("timeout", "30s"),
        ("top-p", "0.95"),
    ]);
    assert_eq!(options, expected);
}

#[test]
fn flink_spelling_gives_the_same_options() {
    let flink = map(&[
        ("task", "chat-completion"),
        ("api-key", "{{ secret.openai_api_key }}"),
        ("endpoint", "https://api.openai.com/v1/chat/completions"),
        ("model", "gpt-4-turbo"),
        ("temperature", "0.0"),
        ("max-tokens", "500"),
        ("top-p", "0.95"),
        ("presence-penalty", "0"),
        ("frequency-penalty", "0"),
        ("response-format", "json_object"),
        ("seed", "12345"),
        ("system-prompt", "You are a helpful assistant."),
        ("timeout", "30s"),
        ("retry-num", "3"),
    ]);
    assert_eq!(
        validate_model_options("openai", &flink).unwrap(),
        validate_model_options("openai", &map(LESSON_OPENAI)).unwrap()
    );
}

#[test]
fn lesson_anthropic_local_and_flip_python_options_validate() {
    let anthropic = validate_model_options(
        "anthropic",
        &map(&[
            ("task", "messages"),
            ("api_key", "{{ secret.anthropic_api_key }}"),
            ("model_name", "claude-3-opus-20240229"),
            ("max_tokens", "1000"),
            ("temperature", "0"),
            ("system_prompt", "You are a legal expert..."),
            ("request_timeout", "60s"),
        ]),
    )
    .unwrap();
    assert_eq!(anthropic.get("model").map(String::as_str), Some("claude-3-opus-20240229"));
    let local = validate_model_options(
        "local",
        &map(&[
            ("task", "classification"),
            ("model_path", "s3://models/fraud_v3.onnx"),
            ("runtime", "onnx"),
            ("batch_size", "32"),
            ("inference_threads", "4"),
            ("gpu", "false"),
        ]),
    )
    .unwrap();
    assert_eq!(
        local.keys().collect::<Vec<_>>(),
        ["batch-size", "gpu", "inference-threads", "model-path", "runtime", "task"]
    );
    let python = validate_model_options(
        "generic-python",
        &map(&[
            ("model-directory-path", "/path/to/your/model"),
            ("python-predict-class", "mymodule.MyCustomModel"),
            ("properties.model_version", "1"),
        ]),
    )
    .unwrap();
    assert_eq!(python.get("properties.model_version").map(String::as_str), Some("1"));
}

#[test]
fn lesson_operator_options_combine_into_one_model() {
    let options = validate_model_options(
        "openai",
        &map(&[
            ("api_key", "sk-test"),
            ("model_name", "gpt-4o-mini"),
            ("async", "true"),
            ("max_concurrent_requests", "100"),
            ("ordered_output", "true"),
            ("on_error", "dead_letter"),
            ("dead_letter.topic", "kafka:failed-predictions"),
            ("dead-letter.properties.bootstrap.servers", "kafka:9092"),
            ("retry.on_codes", "429,503,504"),
            ("retry.backoff", "500 ms"),
            ("cache.enabled", "true"),
            ("rate_limit.requests_per_minute", "500"),
            ("rate_limit.tokens_per_minute", "150000"),
        ]),
    )
    .unwrap();
    assert_eq!(options.get("output-mode").map(String::as_str), Some("ORDERED"));
    assert_eq!(options.get("max-concurrent-operations").map(String::as_str), Some("100"));
    assert_eq!(options.get("dead-letter.topic").map(String::as_str), Some("kafka:failed-predictions"));
    let unordered =
        validate_model_options("openai", &map(&[("api-key", "k"), ("model", "m"), ("ordered_output", "FALSE")]))
            .unwrap();
    assert_eq!(unordered.get("output-mode").map(String::as_str), Some("ALLOW_UNORDERED"));
}

#[test]
fn base_url_follows_the_task() {
    let embed = validate_model_options(
        "openai",
        &map(&[("api-key", "k"), ("model", "m"), ("task", "embedding"), ("base_url", "https://proxy.local/v1/")]),
    )
    .unwrap();
    assert_eq!(embed.get("endpoint").map(String::as_str), Some("https://proxy.local/v1/embeddings"));
    let claude = validate_model_options(
        "anthropic",
        &map(&[("api-key", "k"), ("model", "m"), ("base_url", "https://api.anthropic.com/v1")]),
    )
    .unwrap();
    assert_eq!(claude.get("endpoint").map(String::as_str), Some("https://api.anthropic.com/v1/messages"));
}

#[test]
fn bad_options_name_the_key_and_the_fix() {
    // (provider, options, the key the error names, text of the error)
    type Case = (&'static str, &'static [(&'static str, &'static str)], Option<&'static str>, &'static str);
    let cases: &[Case] = &[
        ("openai", &[("api-key", "k"), ("model", "m"), ("temprature", "0")], Some("temprature"),
            "unknown option 'temprature' for provider 'openai' (did you mean 'temperature'?)"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("max_token", "5")], Some("max_token"),
            "unknown option 'max_token' for provider 'openai' (did you mean 'max_tokens'?)"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("request_timeout", "30s"), ("timeout", "5s")], Some("timeout"),
            "options 'request_timeout' and 'timeout' both set 'timeout'"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("request_timeout", "30 parsecs")], Some("request_timeout"),
            "option 'request_timeout' = '30 parsecs': unknown time unit 'parsecs'"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("max_concurrent_requests", "-5")], Some("max_concurrent_requests"),
            "option 'max_concurrent_requests' = '-5' must be a whole number of at least 1"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("temperature", "2.5")], Some("temperature"),
            "option 'temperature' = '2.5' must be a number from 0 to 2"),
        ("anthropic", &[("api-key", "k"), ("model", "m"), ("temperature", "1.5")], Some("temperature"),
            "option 'temperature' = '1.5' must be a number from 0 to 1"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("top_p", "1.1")], Some("top_p"),
            "option 'top_p' = '1.1' must be a number from 0 to 1"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("model_path", "/m.onnx")], Some("model_path"),
            "option 'model_path' belongs to provider 'local', not to 'openai'"),
        ("local", &[("runtime", "onnx")], None, "a model of provider 'local' needs option 'model-path' (add 'model-path' (or 'model_path') = '...'"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("on_error", "dead_letter")], Some("on_error"),
            "'on_error' = 'dead_letter' needs option 'dead-letter.topic'"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("dead_letter.topic", "kafka:x")], Some("dead_letter.topic"),
            "option 'dead_letter.topic' is only used when 'on-error' = 'dead_letter'"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("on_error", "dead_letter"), ("dead_letter.topic", "failed")],
            Some("dead_letter.topic"), "option 'dead_letter.topic' = 'failed' must be 'kafka:<topic>'"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("on_error", "retry")], Some("on_error"),
            "option 'on_error' = 'retry' is not one of 'fail', 'skip', 'dead_letter'"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("retry.on_codes", "429,abc")], Some("retry.on_codes"),
            "'abc' is not one (100 to 599)"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("ordered_output", "yes")], Some("ordered_output"),
            "option 'ordered_output' = 'yes' must be 'true' or 'false'"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("task", "chat")], Some("task"),
            "option 'task' = 'chat' is not one of 'chat-completion', 'embedding', 'embeddings'"),
        ("openai", &[("api-key", "{{ secret.openai_api_key"), ("model", "m")], Some("api-key"),
            "option 'api-key': '{{ secret.openai_api_key' is not a valid secret reference"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("endpoint", "api.openai.com")], Some("endpoint"),
            "option 'endpoint' = 'api.openai.com' is not an http:// or https:// URL"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("timeout", "0s")], Some("timeout"), "must be longer than zero"),
        ("openai", &[("api-key", "k"), ("model", "")], Some("model"), "option 'model' is empty"),
        ("generic-python", &[("model-directory-path", "/m")], None,
            "a model of provider 'generic-python' needs option 'python-predict-class'"),
        ("generic-python", &[("model-directory-path", "/m"), ("python-predict-class", "m.C"), ("retry.on_codes", "429")],
            Some("retry.on_codes"), "option 'retry.on_codes' belongs to provider 'openai' and 'anthropic' and 'local', not to 'generic-python'"),
        ("generic-python", &[("model-directory-path", "/m"), ("python-predict-class", "m.C"), ("rate_limit.requests_per_minute", "60")],
            Some("rate_limit.requests_per_minute"), "belongs to provider 'openai' and 'anthropic', not to 'generic-python'"),
        ("generic-python", &[("model-directory-path", "/m"), ("python-predict-class", "m.C"), ("python.open_timeout", "soon")],
            Some("python.open_timeout"), "option 'python.open_timeout' = 'soon'"),
        ("local", &[("model_path", "/m"), ("properties.x", "1")], Some("properties.x"),
            "option 'properties.x' belongs to provider 'generic-python', not to 'local'"),
        ("local", &[("model_path", "/m"), ("runtime", "onx")], Some("runtime"), "(did you mean 'onnx'?)"),
        // Options a provider takes that do nothing with its other settings are refused.
        ("local", &[("model_path", "/m"), ("request_timeout", "5s")], Some("request_timeout"),
            "option 'request_timeout' does not apply to a local ONNX model"),
        ("local", &[("model_path", "/m"), ("runtime", "onnx"), ("cache.enabled", "true")], Some("cache.enabled"),
            "does not apply to a local ONNX model"),
        ("local", &[("model_path", "/m"), ("max_concurrent_requests", "8")], Some("max_concurrent_requests"),
            "does not apply to a local ONNX model"),
        ("local", &[("model_path", "/m.pt2"), ("runtime", "pytorch"), ("retry.on_codes", "503")], Some("retry.on_codes"),
            "does not apply to runtime 'pytorch'"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("n", "3")], Some("n"), "writes one answer per row"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("dimension", "256")], Some("dimension"),
            "sets the size of embeddings, but the task is 'chat-completion'"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("batch_size", "8")], Some("batch_size"),
            "a 'chat-completion' request carries one prompt"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("task", "embeddings"), ("system_prompt", "be brief")],
            Some("system_prompt"), "does not apply to embeddings"),
        ("openai", &[("api-key", "k"), ("model", "m"), ("api_version", "2024-02-01")], Some("api_version"),
            "sent only with 'api_style' = 'azure'"),
        ("opnai", &[], Some("provider"), "unknown model provider 'opnai' (did you mean 'openai'? Providers are 'openai', 'anthropic', 'local', 'generic-python')"),
    ];
    for (provider, pairs, key, needle) in cases {
        let e = error(provider, pairs);
        assert!(e.to_string().contains(needle), "{pairs:?}: {e}");
        assert_eq!(e.key.as_deref(), *key, "{pairs:?}: {e}");
    }
}

#[test]
fn errors_never_show_credentials() {
    let e = error("openai", &[("api-key", "sk-live-123"), ("model", "m"), ("properties.token", "t")]);
    assert!(!e.to_string().contains("sk-live-123"));
    let e = error("openai", &[("api-key", " "), ("model", "m")]);
    assert_eq!(e.to_string(), "option 'api-key' is empty (give it a value, or remove it)");
}

#[test]
fn alter_replaces_an_option_under_any_spelling() {
    let current = validate_model_options("openai", &map(LESSON_OPENAI)).unwrap();
    let merged =
        merge_model_options("openai", &current, &map(&[("request_timeout", "5s"), ("max-tokens", "10")])).unwrap();
    assert_eq!(merged.get("timeout").map(String::as_str), Some("5s"));
    assert_eq!(merged.get("max-tokens").map(String::as_str), Some("10"));
    assert_eq!(merged.len(), current.len());
    let e = merge_model_options("openai", &current, &map(&[("on_error", "dead_letter")])).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("on_error"));
}

#[test]
fn predict_config_accepts_runtime_options_only() {
    let config = validate_predict_config(&map(&[
        ("async", "true"),
        ("max_concurrent_requests", "8"),
        ("ordered_output", "false"),
    ]))
    .unwrap();
    assert_eq!(
        config,
        map(&[("async", "true"), ("max-concurrent-operations", "8"), ("output-mode", "ALLOW_UNORDERED")])
    );
    let e = validate_predict_config(&map(&[("temperature", "0.5")])).unwrap_err();
    assert!(e.to_string().contains("'temperature' cannot be set in ML_PREDICT's config (it is a model option"), "{e}");
    let e = validate_predict_config(&map(&[("asynk", "true")])).unwrap_err();
    assert_eq!(e.hint.as_deref(), Some("did you mean 'async'?"));
    let e = validate_predict_config(&map(&[("timeout", "soon")])).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("timeout"));
}
