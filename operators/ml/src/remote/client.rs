//! One prediction request with its retries: a per-attempt timeout, exponential backoff
//! with full jitter, `Retry-After`, retries only on `retry.on-codes`, timeouts and
//! connection errors, under the adaptive concurrency limit and the rate limits.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::api::{self, Answer, Usage};
use super::config::{ApiStyle, RemoteConfig};
use super::limiter::{Concurrency, RateLimit};
use super::stats::RemoteStats;

/// Why a row could not be predicted.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// What went wrong (never contains the API key).
    pub message: String,
    /// The HTTP status of the last attempt, if it got one.
    pub status: Option<u16>,
    /// Attempts made, including those before a restore.
    pub attempts: u32,
}

/// What went wrong in one attempt.
#[derive(Debug)]
enum AttemptError {
    /// The API answered with an error status.
    Status { code: u16, retry_after: Option<Duration>, message: String },
    /// No answer within `timeout`.
    Timeout,
    /// The connection failed or broke off.
    Connection(String),
    /// A 2xx answer that is not a valid response.
    Invalid(String),
}

/// Sends requests of one model.
pub struct Client {
    http: reqwest::Client,
    config: Arc<RemoteConfig>,
    concurrency: Arc<Concurrency>,
    requests_per_minute: Option<RateLimit>,
    tokens_per_minute: Option<RateLimit>,
    stats: Arc<RemoteStats>,
}

impl Client {
    /// A client for `config`, counting into `stats`.
    pub fn new(config: Arc<RemoteConfig>, stats: Arc<RemoteStats>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(config.max_concurrency)
            .tcp_nodelay(true)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        Ok(Client {
            http,
            concurrency: Concurrency::new(config.max_concurrency),
            requests_per_minute: config.requests_per_minute.map(RateLimit::per_minute),
            tokens_per_minute: config.tokens_per_minute.map(RateLimit::per_minute),
            config,
            stats,
        })
    }

    /// The current adaptive concurrency limit.
    pub fn concurrency_limit(&self) -> usize {
        self.concurrency.limit()
    }

    /// The lowest the adaptive concurrency limit has been.
    pub fn lowest_concurrency_limit(&self) -> usize {
        self.concurrency.lowest()
    }

    /// Predicts `prompts` (one request), retrying as configured. `attempts` holds the
    /// attempts made so far (more than 0 for a request re-issued after a restore) and is
    /// kept up to date, so that a checkpoint can record it.
    pub async fn predict(&self, prompts: &[String], attempts: &AtomicU32) -> Result<(Vec<Answer>, Usage), Failure> {
        let body = api::request_body(&self.config, prompts);
        let estimated_tokens = prompts.iter().map(|p| p.len() as f64 / 4.0).sum::<f64>()
            + body.get("max_tokens").and_then(|v| v.as_f64()).unwrap_or(0.0);
        loop {
            let attempt = attempts.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(limit) = &self.requests_per_minute {
                limit.take(1.0).await;
            }
            if let Some(limit) = &self.tokens_per_minute {
                limit.take(estimated_tokens).await;
            }
            let result = {
                let _permit = self.concurrency.acquire().await;
                RemoteStats::bump(&self.stats.requests);
                if attempt > 1 {
                    RemoteStats::bump(&self.stats.retries);
                }
                self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
                let started = std::time::Instant::now();
                let result = match tokio::time::timeout(self.config.timeout, self.attempt(&body, prompts.len())).await {
                    Ok(result) => result,
                    Err(_) => Err(AttemptError::Timeout),
                };
                self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                if result.is_ok() {
                    self.stats.record_latency(started.elapsed().as_micros() as u64);
                }
                result
            };
            let error = match result {
                Ok((answers, usage)) => {
                    self.concurrency.increase();
                    self.stats.prompt_tokens.fetch_add(usage.prompt_tokens, Ordering::Relaxed);
                    self.stats.completion_tokens.fetch_add(usage.completion_tokens, Ordering::Relaxed);
                    if let Some(limit) = &self.tokens_per_minute {
                        limit.settle((usage.prompt_tokens + usage.completion_tokens) as f64 - estimated_tokens);
                    }
                    return Ok((answers, usage));
                }
                Err(e) => e,
            };
            let (retriable, retry_after, status, message) = match error {
                AttemptError::Status { code, retry_after, message } => {
                    if code == 429 {
                        RemoteStats::bump(&self.stats.throttled);
                        self.concurrency.decrease();
                    }
                    (
                        self.config.retry_codes.contains(&code),
                        retry_after,
                        Some(code),
                        format!("HTTP {code}: {message}"),
                    )
                }
                AttemptError::Timeout => {
                    RemoteStats::bump(&self.stats.timeouts);
                    (true, None, None, format!("no answer within {:?}", self.config.timeout))
                }
                AttemptError::Connection(message) => (true, None, None, message),
                AttemptError::Invalid(message) => (true, None, None, message),
            };
            if !retriable || attempt > self.config.max_retries {
                let message = if retriable {
                    format!("{message} (gave up after {attempt} attempts)")
                } else {
                    format!("{message} (not retried)")
                };
                return Err(Failure { message: self.config.redact(&message), status, attempts: attempt });
            }
            tokio::time::sleep(self.backoff(attempt, retry_after)).await;
        }
    }

    /// The wait before attempt `attempt + 1`: full jitter over an exponential ceiling, and
    /// at least `Retry-After` when the API gave one (both capped at `retry.max-backoff`).
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling =
            self.config.backoff.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(self.config.max_backoff);
        let jittered = ceiling.mul_f64(rand::rng().random_range(0.5..=1.0));
        retry_after.map_or(jittered, |r| r.min(self.config.max_backoff).max(jittered))
    }

    /// One HTTP attempt.
    async fn attempt(&self, body: &serde_json::Value, prompts: usize) -> Result<(Vec<Answer>, Usage), AttemptError> {
        let key = self.config.api_key();
        let mut request = self.http.post(&self.config.endpoint).json(body);
        request = match self.config.style {
            ApiStyle::OpenAi => request.bearer_auth(key),
            ApiStyle::Azure => request
                .header("api-key", key)
                .query(&[("api-version", self.config.api_version.as_deref().unwrap_or_default())]),
            ApiStyle::Anthropic => {
                request.header("x-api-key", key).header("anthropic-version", &self.config.anthropic_version)
            }
        };
        let response = request.send().await.map_err(|e| AttemptError::Connection(describe(&e)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| AttemptError::Connection(format!("the response broke off: {}", describe(&e))))?;
        if !status.is_success() {
            return Err(AttemptError::Status {
                code: status.as_u16(),
                retry_after,
                message: api::error_message(&bytes),
            });
        }
        api::parse_response(self.config.api, &bytes, prompts).map_err(AttemptError::Invalid)
    }
}

/// A reqwest error without its URL (which could carry a query-string credential).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_connect() {
        "cannot connect"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_body() || error.is_decode() {
        "bad response body"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}
