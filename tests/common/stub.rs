//! `sluice stub-llm` for tests: an OpenAI/Anthropic-compatible endpoint on a free port
//! that logs every request it answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A `sluice stub-llm` process, stopped when dropped.
pub struct Stub {
    child: Child,
    /// The stub's base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// The request log (one JSON object per request).
    pub log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Stub {
    /// Starts `sluice stub-llm` with `args`, logging every request.
    pub fn start(args: &[&str]) -> Stub {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        let mut child = Command::new(super::sluice_bin())
            .arg("stub-llm")
            .args(args)
            .arg("--request-log")
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let url = first.trim().strip_prefix("stub-llm listening on ").expect("the stub prints its address").to_string();
        Stub { child, url, log, _dir: dir }
    }

    /// `GET /stats`.
    pub fn stats(&self) -> Value {
        let address = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(stream, "GET /stats HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("bad stats {response}: {e}"))
    }

    /// The request log: one JSON object per request.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A model job for the observability tests: datagen at 2,000 rows/s → ML_PREDICT with
/// model `assistant` on `stub` (API key `api_key`, with token prices) → a blackhole paced
/// to 40 rows/s on its own vertex (parallelism 1), so the model's vertex is backpressured.
/// Checkpoints every second.
pub fn backpressured_model_job(stub: &Stub, api_key: &str) -> String {
    format!(
        "SET 'execution.checkpointing.interval' = '1s';
        CREATE TABLE questions (id BIGINT, q STRING) WITH ('connector' = 'datagen', 'rows-per-second' = '2000');
        CREATE MODEL assistant INPUT (q STRING) OUTPUT (answer STRING) WITH (
            'provider' = 'openai', 'task' = 'chat-completion', 'base_url' = '{url}/v1', 'model_name' = 'stub-model',
            'api_key' = '{api_key}', 'max_concurrent_requests' = '16',
            'cost.input_per_1k_tokens' = '0.5', 'cost.output_per_1k_tokens' = '1.5');
        CREATE TABLE answers (id BIGINT, q STRING, answer STRING) WITH (
            'connector' = 'blackhole', 'sink.parallelism' = '1', 'sink.rows-per-second' = '40');
        INSERT INTO answers SELECT * FROM TABLE(ML_PREDICT(TABLE questions, MODEL assistant, DESCRIPTOR(q)));",
        url = stub.url
    )
}
