//! The web dashboard in a real browser: headless Chromium (Debian's, through chromedriver
//! and Selenium) loads the pages of a backpressured model job, a restarting job and a
//! failed one, and the test checks what they show against the REST API. Screenshots are
//! kept under the target directory (`target/tmp/dashboard-screenshots`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::stub::{backpressured_model_job, Stub};
use common::Cluster;
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

/// An API key no page may show.
const SECRET: &str = "sk-dashboard-51c0de";

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots")
}

/// Loads `pages` (name, path, wait for a live update) in Chromium; returns what each shows.
fn browse(cluster: &Cluster, pages: &[(&str, String, bool)]) -> Value {
    let request = json!({
        "base": format!("http://{}", cluster.rest),
        "screenshots": screenshots(),
        "pages": pages.iter().map(|(name, path, live)| json!({ "name": name, "path": path, "live": live })).collect::<Vec<_>>(),
    });
    let file = cluster.dir.path().join("browse.json");
    std::fs::write(&file, request.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard_check.py");
    let out = Command::new("python3").arg(script).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "the browser could not read the pages: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        cluster.logs()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A job reading `dir`, whose only file has a malformed line, so every attempt fails.
fn failing_job(cluster: &Cluster, name: &str, restarts: &str) -> String {
    let input = cluster.dir.path().join(name);
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("part-0.json"), "{\"n\": 1}\nnot json\n").unwrap();
    cluster.submit(
        &format!(
            "{restarts}
            CREATE TABLE {name} (n BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
            CREATE TABLE {name}_sink (n BIGINT) WITH ('connector' = 'blackhole');
            INSERT INTO {name}_sink SELECT n FROM {name};",
            input.display()
        ),
        1,
    )
}

#[test]
fn the_dashboard_shows_backpressure_restarts_failures_and_models() {
    let stub = Stub::start(&["--latency", "uniform:2ms..30ms"]);
    let cluster = Cluster::start(&[4], &[]);
    let model_job = cluster.submit(&backpressured_model_job(&stub, SECRET), 2);
    // It fails at once and then waits 30 s to restart: long enough for the browser to
    // find it RESTARTING.
    let restarting = failing_job(
        &cluster,
        "flaky",
        "SET 'restart-strategy.type' = 'fixed-delay';
         SET 'restart-strategy.fixed-delay.attempts' = '1000';
         SET 'restart-strategy.fixed-delay.delay' = '30s';",
    );
    let failed = failing_job(&cluster, "broken", "");
    cluster.wait_for(&failed, &["FAILED"], MINUTE);
    let out = cluster.cli(&["wait", &model_job, "--for", "checkpoints=2", "--timeout", "60s"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), cluster.logs());
    // Rates need a few of the jobmanager's readings (every 2 s).
    std::thread::sleep(Duration::from_secs(13));
    let deadline = Instant::now() + MINUTE;
    while cluster.get(&format!("/jobs/{restarting}"))["state"] != "RESTARTING" {
        assert!(Instant::now() < deadline, "the flaky job never restarted");
        std::thread::sleep(Duration::from_millis(200));
    }
    let shown = browse(
        &cluster,
        &[
            ("restarting", format!("/ui/jobs/{restarting}"), false),
            ("overview", "/".into(), true),
            ("model-job", format!("/ui/jobs/{model_job}"), true),
            ("failed", format!("/ui/jobs/{failed}"), false),
        ],
    );

    let overview = &shown["overview"];
    for job in [&model_job, &restarting, &failed] {
        assert!(overview["jobs"].as_array().unwrap().iter().any(|j| j == job.as_str()), "{overview:#}");
    }
    assert!(overview["live"].as_str().unwrap().contains("live"), "the overview got no live update");

    // The model job: its graph's vertices are the API's, coloured by their worst subtask.
    let page = &shown["model-job"];
    let api = cluster.get(&format!("/jobs/{model_job}"));
    let names: Vec<&str> = api["vertices"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    let drawn: Vec<&str> = page["vertices"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(drawn, names);
    let (upstream, sink) = (&page["vertices"][0], &page["vertices"][1]);
    assert_eq!(upstream["condition"], "backpressured", "{page:#}");
    assert_eq!(upstream["fill"], "#9a9aae");
    assert_eq!(sink["condition"], "hot", "{page:#}");
    assert_eq!(sink["bottleneck"], true);
    assert!(sink["classes"].as_str().unwrap().contains("bottleneck"));
    assert!(sink["fill"].as_str().unwrap().starts_with("hsl("), "{sink}");
    let checkpoints = page["checkpoints"].as_array().unwrap();
    assert!(checkpoints.iter().filter(|c| c["status"] == "COMPLETED").count() >= 2, "{page:#}");
    assert_eq!(page["checkpoint_subtasks"], 3, "two upstream subtasks and the sink's");
    assert!(page["models"]["assistant"]["latency"].as_str().unwrap().ends_with("ms"), "{page:#}");
    assert!(!page["text"].as_str().unwrap().contains(SECRET));
    let explain = page["explain"].as_str().unwrap();
    assert!(
        explain.contains("model assistant (provider openai)") && explain.contains("'api-key' = '****'"),
        "{explain}"
    );

    // The restarting and the failed job.
    let flaky = &shown["restarting"];
    assert_eq!(flaky["state"][0], "RESTARTING", "{flaky:#}");
    assert!(flaky["exceptions"][0].as_str().unwrap().contains("part-0.json:2"), "{flaky:#}");
    let broken = &shown["failed"];
    assert_eq!(broken["state"][0], "FAILED", "{broken:#}");
    assert!(broken["exceptions"][0].as_str().unwrap().contains("part-0.json:2"), "{broken:#}");
    assert!(broken["vertices"].as_array().unwrap().iter().all(|v| v["condition"] != "hot"));

    // Once the model job is canceled its numbers stay put: the page's model panel shows
    // the API's.
    let out = cluster.cli(&["cancel", &model_job]);
    assert!(out.status.success());
    cluster.wait_for(&model_job, &["CANCELED"], MINUTE);
    let panel = &browse(&cluster, &[("model-job-canceled", format!("/ui/jobs/{model_job}"), false)])
        ["model-job-canceled"]["models"]["assistant"];
    let model = &cluster.get(&format!("/jobs/{model_job}"))["models"][0];
    let whole = |key: &str| format!("{}", model[key].as_f64().unwrap().round() as i64);
    assert_eq!(panel["rows"], whole("rows").as_str(), "{panel:#} vs {model:#}");
    assert_eq!(panel["requests"], whole("requests").as_str());
    assert_eq!(panel["tokens"], format!("{} / {}", whole("prompt-tokens"), whole("completion-tokens")).as_str());
    assert_eq!(
        panel["latency"],
        format!(
            "{:.1} / {:.1} ms",
            model["latency-p50-ms"].as_f64().unwrap(),
            model["latency-p99-ms"].as_f64().unwrap()
        )
        .as_str()
    );
    // No page's HTML holds the API key.
    for path in ["/".to_string(), format!("/ui/jobs/{model_job}")] {
        let (status, html) = cluster.http("GET", &path, None, &[]);
        assert_eq!(status, 200);
        assert!(!html.contains(SECRET), "{path} shows the API key");
    }
    assert!(screenshots().join("model-job.png").exists());
}
