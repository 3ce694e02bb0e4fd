//! The jobmanager's REST API, Prometheus metrics and auth token, against real processes: a
//! model job behind a paced sink (so its upstream is backpressured), a real Prometheus
//! scraping `/metrics`, promtool checking it, and every REST answer checked against the
//! OpenAPI document.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::stub::{backpressured_model_job, Stub};
use common::{free_port, Cluster, Process};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

/// An API key no answer may show.
const SECRET: &str = "sk-observability-7f3a9c";

/// REST answers a test saw, for the OpenAPI check.
#[derive(Default)]
struct Answers(Vec<Value>);

impl Answers {
    /// Calls `method path` (documented as `template`), records the answer, and returns its
    /// status and body.
    fn call(
        &mut self,
        cluster: &Cluster,
        method: &str,
        path: &str,
        template: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let (status, text) = cluster.http(method, path, body, &[]);
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(!text.contains(SECRET), "{method} {path} shows the API key: {text}");
        self.0.push(json!({ "path": template, "method": method, "status": status, "body": json }));
        (status, json)
    }

    fn get(&mut self, cluster: &Cluster, path: &str, template: &str) -> Value {
        let (status, body) = self.call(cluster, "GET", path, template, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Checks every answer against the OpenAPI document the jobmanager serves.
    fn check(&self, cluster: &Cluster) {
        let spec = cluster.dir.path().join("openapi.json");
        let (status, text) = cluster.http("GET", "/openapi.json", None, &[]);
        assert_eq!(status, 200);
        std::fs::write(&spec, text).unwrap();
        let answers = cluster.dir.path().join("answers.json");
        std::fs::write(&answers, serde_json::to_string(&self.0).unwrap()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi_check.py");
        let out = Command::new("python3").arg(script).arg(&spec).arg(&answers).output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "answers that do not match the OpenAPI document:\n{report}");
    }
}

/// The latency bucket index holding `seconds` (the first bound at or above it).
fn bucket_of(seconds: f64) -> usize {
    sluice_core::metrics::LATENCY_BOUNDS_US.partition_point(|&b| (b as f64) / 1e6 < seconds - 1e-12)
}

/// A Prometheus server scraping `target` every second.
fn prometheus(dir: &Path, target: &str) -> (Process, String) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sluice\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address={address}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus runs (scripts/bootstrap.sh installs it)");
    (Process { child, name: "prometheus".into() }, address)
}

/// The value of a Prometheus instant query, once it has one.
fn query(address: &str, promql: &str, timeout: Duration) -> f64 {
    let deadline = Instant::now() + timeout;
    loop {
        let out = Command::new("curl")
            .args(["-sS", "-G", &format!("http://{address}/api/v1/query"), "--data-urlencode"])
            .arg(format!("query={promql}"))
            .output()
            .unwrap();
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let value = answer["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value.filter(|v| v.is_finite()) {
            return v;
        }
        assert!(Instant::now() < deadline, "Prometheus has no value for {promql}: {answer}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A model job (datagen → ML_PREDICT on the stub → blackhole paced to 40 rows/s, on its
/// own vertex): the REST API shows its vertices, rates, backpressure, model panel,
/// checkpoints and savepoints; Prometheus scrapes the same numbers; no answer shows the API
/// key; every answer matches the OpenAPI document.
#[test]
fn rest_api_and_prometheus_describe_a_backpressured_model_job() {
    let stub = Stub::start(&["--latency", "uniform:2ms..30ms"]);
    let cluster = Cluster::start(&[4], &[]);
    let savepoints = cluster.dir.path().join("savepoints");
    let job = cluster.submit(&backpressured_model_job(&stub, SECRET), 2);
    let out = cluster.cli(&["wait", &job, "--for", "checkpoints=2", "--timeout", "60s"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), cluster.logs());
    // Rates come from the jobmanager's history (a reading every 2 s, rates over 10 s).
    std::thread::sleep(Duration::from_secs(13));
    let mut answers = Answers::default();

    let overview = answers.get(&cluster, "/overview", "/overview");
    assert_eq!((overview["taskmanagers"].as_u64(), overview["slots-total"].as_u64()), (Some(1), Some(4)));
    assert_eq!(overview["jobs-running"], 1);
    let jobs = answers.get(&cluster, "/jobs/overview", "/jobs/overview");
    assert_eq!(jobs["jobs"][0]["jid"], job.as_str());
    assert_eq!(jobs["jobs"][0]["state"], "RUNNING");
    answers.get(&cluster, "/jobs", "/jobs");
    answers.get(&cluster, "/config", "/config");
    let tms = answers.get(&cluster, "/taskmanagers", "/taskmanagers");
    assert_eq!(tms["taskmanagers"][0]["slotsNumber"], 4);

    let detail = answers.get(&cluster, &format!("/jobs/{job}"), "/jobs/{id}");
    let vertices = detail["vertices"].as_array().unwrap();
    assert_eq!(vertices.len(), 2, "{detail:#}");
    let (upstream, sink) = (&vertices[0], &vertices[1]);
    assert!(sink["name"].as_str().unwrap().contains("blackhole"), "{sink:#}");
    // Every subtask's time adds up to about one second per second.
    for vertex in vertices {
        for s in vertex["subtasks"].as_array().unwrap() {
            let total = ["busy-ms-per-second", "idle-ms-per-second", "backpressured-ms-per-second"]
                .iter()
                .map(|k| s[k].as_f64().unwrap())
                .sum::<f64>();
            assert!(
                (900.0..=1100.0).contains(&total),
                "{} subtask {}: {total} ms/s: {s:#}",
                vertex["name"],
                s["subtask"]
            );
        }
    }
    // The paced sink is busy and the likely bottleneck; its upstream waits for it.
    assert!(sink["rates"]["busy-ms-per-second"].as_f64().unwrap() > 600.0, "{sink:#}");
    assert_eq!(sink["bottleneck"], true, "{detail:#}");
    assert_eq!(upstream["bottleneck"], false);
    assert!(upstream["rates"]["backpressured-ms-per-second"].as_f64().unwrap() > 500.0, "{upstream:#}");
    let rate = sink["rates"]["records-in-per-second"].as_f64().unwrap();
    assert!((25.0..=55.0).contains(&rate), "the sink takes 40 rows/s, the API says {rate}");
    let pressure = answers.get(
        &cluster,
        &format!("/jobs/{job}/vertices/{}/backpressure", upstream["id"].as_str().unwrap()),
        "/jobs/{id}/vertices/{vertex}/backpressure",
    );
    assert_eq!(pressure["backpressure-level"], "high", "{pressure:#}");
    answers.get(
        &cluster,
        &format!("/jobs/{job}/vertices/{}/watermarks", sink["id"].as_str().unwrap()),
        "/jobs/{id}/vertices/{vertex}/watermarks",
    );
    // The model panel: counts match the stub's, and the latency is the stub's 2..30 ms.
    let model = &detail["models"][0];
    assert_eq!(model["model"], "assistant", "{detail:#}");
    let p99 = model["latency-p99-ms"].as_f64().unwrap();
    assert!((2.0..=60.0).contains(&p99), "p99 {p99} ms: {model:#}");
    assert!(model["latency-p50-ms"].as_f64().unwrap() <= p99);
    assert!(model["rows"].as_f64().unwrap() > 0.0 && model["prompt-tokens"].as_f64().unwrap() > 0.0, "{model:#}");
    assert!(model["cost-per-hour-usd"].as_f64().unwrap() > 0.0, "{model:#}");
    let requests = stub.stats()["requests"].as_f64().unwrap();
    assert!(model["requests"].as_f64().unwrap() <= requests, "{model:#} vs the stub's {requests}");

    answers.get(&cluster, &format!("/jobs/{job}/plan"), "/jobs/{id}/plan");
    answers.get(&cluster, &format!("/jobs/{job}/exceptions"), "/jobs/{id}/exceptions");
    let checkpoints = answers.get(&cluster, &format!("/jobs/{job}/checkpoints"), "/jobs/{id}/checkpoints");
    assert!(checkpoints["counts"]["completed"].as_u64().unwrap() >= 2, "{checkpoints:#}");
    let latest = checkpoints["latest"]["completed"]["id"].as_u64().unwrap();
    let details = answers.get(
        &cluster,
        &format!("/jobs/{job}/checkpoints/details/{latest}"),
        "/jobs/{id}/checkpoints/details/{checkpoint}",
    );
    assert_eq!(details["status"], "COMPLETED");
    let sink_task = &details["tasks"][sink["id"].as_str().unwrap()];
    assert_eq!(sink_task["num_acknowledged_subtasks"], 1, "{details:#}");
    assert!(sink_task["subtasks"][0]["checkpoint"]["sync"].is_u64(), "{details:#}");
    let (status, missing) = answers.call(&cluster, "GET", "/jobs/nope", "/jobs/{id}", None);
    assert_eq!(status, 404);
    assert!(missing["errors"][0].as_str().unwrap().contains("no job with id 'nope'"), "{missing}");

    // Prometheus: promtool accepts the text, a real Prometheus scrapes it, and its p99 of
    // the model's latency is the REST API's, within one bucket.
    let (status, text) = cluster.http("GET", "/metrics", None, &[]);
    assert_eq!(status, 200);
    assert!(!text.contains(SECRET));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (scripts/bootstrap.sh installs it)");
    std::io::Write::write_all(promtool.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let (_server, prometheus_address) = prometheus(cluster.dir.path(), &cluster.rest);
    let scraped = query(
        &prometheus_address,
        "histogram_quantile(0.99, sum by (le) (sluice_model_request_duration_seconds_bucket{model=\"assistant\"}))",
        MINUTE,
    );
    let rest_p99 =
        answers.get(&cluster, &format!("/jobs/{job}"), "/jobs/{id}")["models"][0]["latency-p99-ms"].as_f64().unwrap()
            / 1000.0;
    assert!(
        bucket_of(scraped).abs_diff(bucket_of(rest_p99)) <= 1,
        "Prometheus says p99 = {scraped} s, the REST API {rest_p99} s"
    );
    let records = query(&prometheus_address, "sum(sluice_task_records_in_total)", MINUTE);
    assert!(records > 0.0);

    // A savepoint asked for twice with the same trigger id is taken once.
    let body = json!({ "target-directory": savepoints.display().to_string(), "triggerId": "nightly-1" }).to_string();
    let path = format!("/jobs/{job}/savepoints");
    let (first, a) = answers.call(&cluster, "POST", &path, "/jobs/{id}/savepoints", Some(&body));
    let (second, b) = answers.call(&cluster, "POST", &path, "/jobs/{id}/savepoints", Some(&body));
    assert_eq!((first, second), (202, 202));
    assert_eq!((a["request-id"].as_str(), b["request-id"].as_str()), (Some("nightly-1"), Some("nightly-1")));
    let deadline = Instant::now() + MINUTE;
    let location = loop {
        let status =
            answers.get(&cluster, &format!("/jobs/{job}/savepoints/nightly-1"), "/jobs/{id}/savepoints/{trigger}");
        if status["status"]["id"] == "COMPLETED" {
            break status["operation"]["location"].as_str().expect("a location, not a failure").to_string();
        }
        assert!(Instant::now() < deadline, "the savepoint did not complete: {status:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(Path::new(&location).join("_metadata").exists(), "{location}");
    let taken = std::fs::read_dir(&savepoints).unwrap().count();
    assert_eq!(taken, 1, "one savepoint for one trigger id");
    let (status, _) = answers.call(&cluster, "POST", &path, "/jobs/{id}/savepoints", Some("{\"bogus\": 1}"));
    assert_eq!(status, 400);

    // Cancel through PATCH; an unknown mode is refused.
    let (status, _) = answers.call(&cluster, "PATCH", &format!("/jobs/{job}?mode=stop"), "/jobs/{id}", None);
    assert_eq!(status, 400);
    let (status, _) = answers.call(&cluster, "PATCH", &format!("/jobs/{job}?mode=cancel"), "/jobs/{id}", None);
    assert_eq!(status, 202);
    let out = cluster.cli(&["wait", &job, "--for", "finished", "--timeout", "30s"]);
    assert!(!out.status.success(), "a canceled job does not finish");
    assert_eq!(cluster.status(&job)["state"], "CANCELED");
    answers.get(&cluster, &format!("/jobs/{job}"), "/jobs/{id}");
    answers.check(&cluster);
}

/// `POST /jobs` plans SQL: a bounded job runs to its end; a mistake is answered with its
/// line and column; a failing job's exceptions show each failure and its restart.
#[test]
fn rest_submits_sql_and_reports_exceptions() {
    let cluster = Cluster::start(&[2], &[]);
    let mut answers = Answers::default();
    let out = cluster.dir.path().join("out");
    let sql = format!(
        "CREATE TABLE numbers (n BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '500',
            'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '500');
        CREATE TABLE sink (n BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
        INSERT INTO sink SELECT n FROM numbers;",
        out.display()
    );
    let body = json!({ "sql": sql, "parallelism": 1 }).to_string();
    let (status, submitted) = answers.call(&cluster, "POST", "/jobs", "/jobs", Some(&body));
    assert_eq!(status, 202, "{submitted}");
    let job = submitted["jobid"].as_str().unwrap().to_string();
    let waited = cluster.cli(&["wait", &job, "--for", "finished", "--timeout", "60s"]);
    assert!(waited.status.success(), "{}", String::from_utf8_lossy(&waited.stderr));
    let sum: i64 = common::read_json_lines(&out).iter().map(|r| r["n"].as_i64().unwrap()).sum();
    assert_eq!(sum, 500 * 501 / 2);
    let summary = answers.get(&cluster, &format!("/jobs/{job}"), "/jobs/{id}");
    assert_eq!(summary["state"], "FINISHED");
    assert!(summary["end-time"].as_i64().unwrap() >= summary["start-time"].as_i64().unwrap());

    let bad = json!({ "sql": "CREATE TABLE t (a BIGINT) WITH ('connector' = 'datagen');\nINSERT INTO nowhere SELECT a FROM t;" });
    let (status, refused) = answers.call(&cluster, "POST", "/jobs", "/jobs", Some(&bad.to_string()));
    assert_eq!(status, 400, "{refused}");
    let message = refused["errors"][0].as_str().unwrap();
    assert!(message.contains("nowhere") && message.contains("line 2"), "{message}");

    // A job whose input is malformed fails, is restarted once, and fails for good.
    let input = cluster.dir.path().join("broken");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("part-0.json"), "{\"n\": 1}\nnot json\n").unwrap();
    let sql = format!(
        "SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.attempts' = '1';
        SET 'restart-strategy.fixed-delay.delay' = '100ms';
        CREATE TABLE broken (n BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
        CREATE TABLE sink (n BIGINT) WITH ('connector' = 'blackhole');
        INSERT INTO sink SELECT n FROM broken;",
        input.display()
    );
    let job = cluster.submit(&sql, 1);
    cluster.wait_for(&job, &["FAILED"], MINUTE);
    let exceptions = answers.get(&cluster, &format!("/jobs/{job}/exceptions"), "/jobs/{id}/exceptions");
    let entries = exceptions["exceptionHistory"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{exceptions:#}");
    assert_eq!((entries[0]["restarted"].as_bool(), entries[1]["restarted"].as_bool()), (Some(false), Some(true)));
    let root = exceptions["root-exception"].as_str().unwrap();
    assert!(root.contains("bad record") && root.contains("part-0.json:2"), "{exceptions:#}");
    let overview = answers.get(&cluster, "/overview", "/overview");
    assert_eq!((overview["jobs-finished"].as_u64(), overview["jobs-failed"].as_u64()), (Some(1), Some(1)));
    answers.check(&cluster);
}

/// With a token, every gRPC call and REST request without it is refused; the CLI sends
/// `SLUICE_AUTH_TOKEN`, and a browser's cookie is accepted.
#[test]
fn an_auth_token_guards_grpc_and_rest() {
    let token = "t0ken-for-tests";
    let cluster = Cluster::start_with_env(&[1], &[], &[("SLUICE_AUTH_TOKEN", token)]);
    let job = cluster.submit(
        "CREATE TABLE numbers (n BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '100');
        CREATE TABLE sink (n BIGINT) WITH ('connector' = 'blackhole');
        INSERT INTO sink SELECT n FROM numbers;",
        1,
    );
    let out = cluster.cli(&["wait", &job, "--for", "finished", "--timeout", "60s"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), cluster.logs());

    let anonymous = Command::new(common::sluice_bin())
        .args(["list", "--jobmanager", &cluster.address])
        .env_remove("SLUICE_AUTH_TOKEN")
        .output()
        .unwrap();
    assert!(!anonymous.status.success());
    let error = String::from_utf8_lossy(&anonymous.stderr);
    assert!(error.contains("requires an auth token") && !error.contains(token), "{error}");
    let wrong = Command::new(common::sluice_bin())
        .args(["list", "--jobmanager", &cluster.address, "--auth-token", "guess"])
        .env_remove("SLUICE_AUTH_TOKEN")
        .output()
        .unwrap();
    assert!(!wrong.status.success());

    let (status, body) = cluster.http("GET", "/overview", None, &[]);
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains(token));
    let (status, _) = cluster.http("GET", "/metrics", None, &["Authorization: Bearer guess"]);
    assert_eq!(status, 401);
    let (status, body) = cluster.http("GET", "/overview", None, &[&format!("Authorization: Bearer {token}")]);
    assert_eq!(status, 200, "{body}");
    let (status, _) =
        cluster.http("GET", "/jobs/overview", None, &[&format!("Cookie: theme=dark; sluice_token={token}")]);
    assert_eq!(status, 200);
    assert_eq!(cluster.get("/jobs/overview")["jobs"][0]["state"], "FINISHED");
}

/// `sluice top` redraws a per-vertex view (rows per second, time split) until the job ends.
#[test]
fn sluice_top_follows_a_job_to_its_end() {
    let cluster = Cluster::start(&[2], &[]);
    let job = cluster.submit(
        "CREATE TABLE numbers (n BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '4000', 'rows-per-second' = '1000');
        CREATE TABLE sink (n BIGINT) WITH ('connector' = 'blackhole', 'sink.parallelism' = '1');
        INSERT INTO sink SELECT n FROM numbers;",
        2,
    );
    let out = cluster.cli(&["top", &job, "--interval", "500ms"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    // Off a terminal, each view is followed by a blank line.
    let views: Vec<&str> = text.split("\n\n").filter(|v| !v.trim().is_empty()).collect();
    assert!(views.len() >= 3, "{text}");
    let sink_rate = |view: &str| -> f64 {
        let line = view.lines().find(|l| l.starts_with("sink: sink(blackhole)")).unwrap_or_else(|| panic!("{view}"));
        // The name takes 44 columns; then parallelism, rows in/s, rows out/s, busy, idle, backpressured.
        let columns: Vec<&str> = line[44..].split_whitespace().collect();
        assert_eq!(columns[0], "1", "{line}");
        columns[1].parse().unwrap()
    };
    assert!(views.iter().all(|v| v.contains("VERTEX") && v.contains("source: numbers(datagen)")), "{text}");
    assert!(views.iter().any(|v| sink_rate(v) > 100.0), "the sink's rows/s never showed: {text}");
    assert!(views.last().unwrap().lines().next().unwrap().ends_with("FINISHED"), "{text}");
}
