//! `sluice stub-llm`: a stand-in for the OpenAI and Anthropic HTTP APIs, for tests,
//! benchmarks and the compose cluster. It answers `POST …/chat/completions`,
//! `…/embeddings` (OpenAI and Azure paths) and `…/messages` (Anthropic) after a
//! configurable latency, injects failures at random rates or when a prompt asks for one
//! (`[stub:429]`, `[stub:503x2]`, `[stub:hang]`), reports token usage, and writes a request
//! log. `GET /stats` returns its counters as JSON.

mod behaviour;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use rand::Rng;
use serde_json::{json, Value};

pub use behaviour::Answers;
use behaviour::{Fault, Latency, TriggerCounts};

/// `sluice stub-llm`.
#[derive(Debug, clap::Args)]
pub struct StubArgs {
    /// Address to listen on; port 0 picks a free one. The first line printed is
    /// `stub-llm listening on http://HOST:PORT`.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Latency before each answer: `50ms`, `uniform:10ms..100ms`, `normal:50ms,10ms` or `exp:50ms`.
    #[arg(long, default_value = "0ms")]
    pub latency: String,
    /// Random faults with their rates: `429=0.2,500=0.01,503=0.01,hang=0.01,malformed=0.01,truncated=0.01`.
    #[arg(long, default_value = "")]
    pub faults: String,
    /// The Retry-After header of injected 429 answers, in seconds.
    #[arg(long, default_value_t = 1)]
    pub retry_after: u64,
    /// What the answers are.
    #[arg(long, value_enum, default_value = "deterministic")]
    pub answers: Answers,
    /// Require this API key (Bearer, `api-key` or `x-api-key`); others get 401.
    #[arg(long, env = "STUB_LLM_API_KEY")]
    pub api_key: Option<String>,
    /// Components of embeddings when the request does not ask for `dimensions`.
    #[arg(long, default_value_t = 8)]
    pub embedding_dim: usize,
    /// Append one JSON line per request to this file.
    #[arg(long)]
    pub request_log: Option<PathBuf>,
}

/// The stub's configuration and counters.
struct Stub {
    latency: Latency,
    faults: Vec<(Fault, f64)>,
    retry_after: u64,
    answers: Answers,
    api_key: Option<String>,
    embedding_dim: usize,
    log: Option<Mutex<std::fs::File>>,
    triggers: TriggerCounts,
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    statuses: Mutex<BTreeMap<String, u64>>,
    /// When the stub started: the origin of the times below.
    epoch: Instant,
    /// The sum over requests of the time each was in the stub, in µs: divided by a span
    /// of time, the average number in flight over it.
    busy_us: AtomicU64,
    /// When the first request came and the last one left, in µs since `epoch`.
    first_started_us: AtomicU64,
    last_finished_us: AtomicU64,
}

/// Which API a request speaks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Api {
    Chat,
    Embeddings,
    Messages,
}

/// Runs the stub until the process is stopped.
pub async fn run(args: StubArgs) -> anyhow::Result<std::process::ExitCode> {
    let log = match &args.request_log {
        Some(path) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the request log '{}'", path.display()))?,
        )),
        None => None,
    };
    let stub = Arc::new(Stub {
        latency: Latency::parse(&args.latency)?,
        faults: behaviour::parse_fault_rates(&args.faults).context("--faults")?,
        retry_after: args.retry_after,
        answers: args.answers,
        api_key: args.api_key,
        embedding_dim: args.embedding_dim.max(1),
        log,
        triggers: TriggerCounts::default(),
        requests: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        max_in_flight: AtomicU64::new(0),
        statuses: Mutex::new(BTreeMap::new()),
        epoch: Instant::now(),
        busy_us: AtomicU64::new(0),
        first_started_us: AtomicU64::new(u64::MAX),
        last_finished_us: AtomicU64::new(0),
    });
    let app = Router::new().route("/stats", get(stats)).fallback(handle).with_state(stub);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("stub-llm listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    // Small answers on kept-alive connections: no Nagle delay.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.context("the stub server failed")?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn stats(State(stub): State<Arc<Stub>>) -> Json<Value> {
    let statuses = stub.statuses.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Json(json!({
        "requests": stub.requests.load(Ordering::Relaxed),
        "in_flight": stub.in_flight.load(Ordering::Relaxed),
        "max_in_flight": stub.max_in_flight.load(Ordering::Relaxed),
        "busy_us": stub.busy_us.load(Ordering::Relaxed),
        "first_started_us": stub.first_started_us.load(Ordering::Relaxed),
        "last_finished_us": stub.last_finished_us.load(Ordering::Relaxed),
        "outcomes": statuses,
    }))
}

/// Counts a request as in flight while alive, and its time in the stub.
struct InFlight(Arc<Stub>, Instant);

impl InFlight {
    fn new(stub: &Arc<Stub>) -> Self {
        let now = stub.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        stub.max_in_flight.fetch_max(now, Ordering::Relaxed);
        let started = Instant::now();
        stub.first_started_us.fetch_min(started.duration_since(stub.epoch).as_micros() as u64, Ordering::Relaxed);
        InFlight(stub.clone(), started)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let stub = &self.0;
        stub.in_flight.fetch_sub(1, Ordering::Relaxed);
        stub.busy_us.fetch_add(self.1.elapsed().as_micros() as u64, Ordering::Relaxed);
        stub.last_finished_us.fetch_max(stub.epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
}

async fn handle(State(stub): State<Arc<Stub>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    stub.requests.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight::new(&stub);
    let path = uri.path().to_string();
    let api = if path.ends_with("/chat/completions") {
        Api::Chat
    } else if path.ends_with("/embeddings") {
        Api::Embeddings
    } else if path.ends_with("/messages") {
        Api::Messages
    } else {
        return stub.finish(
            &path,
            "",
            "404",
            started,
            error(Api::Chat, StatusCode::NOT_FOUND, "not_found", &format!("no route {path}")),
            None,
        );
    };
    if let Some(expected) = &stub.api_key {
        let given =
            headers.get("x-api-key").or_else(|| headers.get("api-key")).and_then(|v| v.to_str().ok()).or_else(|| {
                headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
            });
        if given != Some(expected.as_str()) {
            return stub.finish(
                &path,
                "",
                "401",
                started,
                error(api, StatusCode::UNAUTHORIZED, "authentication_error", "invalid API key"),
                None,
            );
        }
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return stub.finish(
                &path,
                "",
                "400",
                started,
                error(api, StatusCode::BAD_REQUEST, "invalid_request_error", &format!("body is not JSON: {e}")),
                None,
            )
        }
    };
    let (prompt, context) = prompt_of(api, &request);
    let fault = behaviour::trigger(&prompt)
        .filter(|t| stub.triggers.applies(&prompt, *t))
        .map(|t| t.fault)
        .or_else(|| stub.random_fault());
    let wait = stub.latency.sample(&mut rand::rng());
    tokio::time::sleep(wait).await;
    let response = match fault {
        Some(Fault::Hang) => {
            // Logged now: the client gives up and the answer never comes.
            stub.finish(&path, &prompt, "hang", started, StatusCode::OK.into_response(), None);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            error(api, StatusCode::GATEWAY_TIMEOUT, "timeout", "hung")
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = error(api, status, error_type(code), &format!("injected {code}"));
            if code == 429 {
                response.headers_mut().insert("retry-after", stub.retry_after.into());
            }
            response
        }
        Some(Fault::Malformed) => {
            (StatusCode::OK, [("content-type", "application/json")], "{\"choices\": [ {\"message\": oops")
                .into_response()
        }
        Some(Fault::Truncated) => {
            let full = stub.answer(api, &request, &prompt, &context).to_string();
            let half = full[..full.len() / 2].to_string();
            let chunks: Vec<Result<Bytes, std::io::Error>> =
                vec![Ok(Bytes::from(half)), Err(std::io::Error::other("connection cut by the stub"))];
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("content-length", full.len())
                .body(Body::from_stream(futures::stream::iter(chunks)))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        None => {
            let answer = stub.answer(api, &request, &prompt, &context);
            let text =
                answer.pointer("/choices/0/message/content").or_else(|| answer.pointer("/content/0/text")).cloned();
            let response = Json(answer).into_response();
            let outcome = response.status().as_u16().to_string();
            return stub.finish(&path, &prompt, &outcome, started, response, text);
        }
    };
    let outcome = match fault {
        Some(Fault::Hang) => return response,
        Some(Fault::Malformed) => "malformed".to_string(),
        Some(Fault::Truncated) => "truncated".to_string(),
        _ => response.status().as_u16().to_string(),
    };
    stub.finish(&path, &prompt, &outcome, started, response, None)
}

impl Stub {
    fn random_fault(&self) -> Option<Fault> {
        let mut rng = rand::rng();
        self.faults.iter().find(|(_, rate)| rng.random::<f64>() < *rate).map(|(f, _)| *f)
    }

    /// Counts and logs a request's outcome.
    fn finish(
        &self,
        path: &str,
        prompt: &str,
        outcome: &str,
        started: Instant,
        response: Response,
        answer: Option<Value>,
    ) -> Response {
        *self.statuses.lock().unwrap_or_else(|p| p.into_inner()).entry(outcome.to_string()).or_default() += 1;
        if let Some(log) = &self.log {
            let line = json!({
                "ts_ms": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
                "path": path,
                "prompt": prompt,
                "outcome": outcome,
                "answer": answer,
                "latency_ms": started.elapsed().as_millis() as u64,
            });
            let mut file = log.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(file, "{line}");
        }
        response
    }

    /// A successful answer in the API's format.
    fn answer(&self, api: Api, request: &Value, prompt: &str, context: &str) -> Value {
        let mut rng = rand::rng();
        let model = request.get("model").and_then(Value::as_str).unwrap_or("stub-model");
        let json_mode = request.pointer("/response_format/type").and_then(Value::as_str) == Some("json_object");
        match api {
            Api::Embeddings => {
                let inputs: Vec<String> = match request.get("input") {
                    Some(Value::Array(items)) => {
                        items.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect()
                    }
                    Some(Value::String(s)) => vec![s.clone()],
                    _ => vec![String::new()],
                };
                let dim = request.get("dimensions").and_then(Value::as_u64).map_or(self.embedding_dim, |d| d as usize);
                let data: Vec<Value> = inputs
                    .iter()
                    .enumerate()
                    .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": behaviour::embedding(text, dim)}))
                    .collect();
                let tokens: u64 = inputs.iter().map(|t| behaviour::tokens(t)).sum();
                json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
            }
            Api::Chat | Api::Messages => {
                let content = if json_mode {
                    behaviour::json_answer(self.answers, prompt, &mut rng).to_string()
                } else {
                    behaviour::answer(self.answers, prompt, &mut rng)
                };
                let (input_tokens, output_tokens) = (behaviour::tokens(context), behaviour::tokens(&content));
                let id = format!("stub-{:016x}", rng.random::<u64>());
                if api == Api::Chat {
                    json!({
                        "id": id, "object": "chat.completion", "model": model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens, "total_tokens": input_tokens + output_tokens},
                    })
                } else {
                    json!({
                        "id": id, "type": "message", "role": "assistant", "model": model,
                        "content": [{"type": "text", "text": content}],
                        "stop_reason": "end_turn",
                        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                    })
                }
            }
        }
    }
}

/// The last user message (or the embedding inputs) and all the text the request sends.
fn prompt_of(api: Api, request: &Value) -> (String, String) {
    fn text(content: &Value) -> String {
        match content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => {
                parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("")
            }
            _ => String::new(),
        }
    }
    match api {
        Api::Embeddings => {
            let joined = match request.get("input") {
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n"),
                Some(Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            (joined.clone(), joined)
        }
        Api::Chat | Api::Messages => {
            let messages = request.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
            let prompt = messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                .and_then(|m| m.get("content"))
                .map(text)
                .unwrap_or_default();
            let mut context: String = request.get("system").map(text).unwrap_or_default();
            for m in &messages {
                context.push_str(&m.get("content").map(text).unwrap_or_default());
            }
            (prompt, context)
        }
    }
}

fn error_type(code: u16) -> &'static str {
    match code {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An error answer in the API's format.
fn error(api: Api, status: StatusCode, kind: &str, message: &str) -> Response {
    let body = match api {
        Api::Messages => json!({"type": "error", "error": {"type": kind, "message": message}}),
        Api::Chat | Api::Embeddings => json!({"error": {"message": message, "type": kind, "code": status.as_u16()}}),
    };
    (status, Json(body)).into_response()
}
