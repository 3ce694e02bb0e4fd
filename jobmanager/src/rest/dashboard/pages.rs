//! The dashboard's pages, rendered from the REST API's own answers, so a page shows
//! exactly what the API says.

use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use super::graph;
use super::sparkline;

/// A whole page around `body`; `events`: where its live part gets updates.
pub fn page(title: &str, events: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Sluice" }
                link rel="stylesheet" href="/assets/style.css";
                // Without JavaScript the page reloads itself instead of streaming.
                noscript { meta http-equiv="refresh" content="5"; }
            }
            body {
                header {
                    a href="/" { "Sluice" }
                    nav { a href="/" { "Overview" } a href="/openapi.json" { "API" } a href="/metrics" { "Metrics" } }
                    span id="updated" class="live" { "" }
                }
                main id="live" data-events=(events) { (body) }
                script src="/assets/live.js" {}
            }
        }
    }
}

fn state_badge(state: &str) -> Markup {
    html! { span class=(format!("state state-{state}")) data-state=(state) { (state) } }
}

fn number(value: &Value, digits: usize) -> String {
    match value.as_f64() {
        Some(v) if digits == 0 => format!("{}", v.round() as i64),
        Some(v) => format!("{v:.digits$}"),
        None => "–".into(),
    }
}

/// A time (ms since the epoch) as UTC date and time.
fn time_text(ms: &Value) -> String {
    ms.as_i64().map_or_else(|| "–".into(), |ms| format!("{} UTC", sluice_core::watermarks::format_watermark(ms)))
}

fn duration_text(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{:.1} s", ms as f64 / 1000.0),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s / 60 % 60),
    }
}

/// The cluster overview: task managers, slots and jobs.
pub fn cluster(overview: &Value, task_managers: &Value, jobs: &Value) -> Markup {
    html! {
        h1 { "Cluster" }
        div class="facts" {
            div { b data-fact="taskmanagers" { (overview["taskmanagers"]) } "task managers" }
            div { b data-fact="slots" { (overview["slots-available"]) " / " (overview["slots-total"]) } "slots free" }
            div { b data-fact="running" { (overview["jobs-running"]) } "jobs running" }
            div { b { (overview["jobs-finished"]) } "finished" }
            div { b { (overview["jobs-failed"]) } "failed" }
            div { b { (overview["jobs-cancelled"]) } "canceled" }
        }
        section class="panel" {
            h2 { "Jobs" }
            table id="jobs" {
                thead { tr { th { "Name" } th { "State" } th { "Started" } th { "Duration" } th { "Tasks" } } }
                tbody {
                    @for job in jobs["jobs"].as_array().into_iter().flatten() {
                        tr data-job=(job["jid"].as_str().unwrap_or_default()) {
                            td { a href=(format!("/ui/jobs/{}", job["jid"].as_str().unwrap_or_default())) { (job["name"].as_str().unwrap_or_default()) } }
                            td { (state_badge(job["state"].as_str().unwrap_or_default())) }
                            td class="muted" { (time_text(&job["start-time"])) }
                            td class="num" { (duration_text(job["duration"].as_u64().unwrap_or(0))) }
                            td class="num" { (job["tasks"]["total"]) }
                        }
                    }
                }
            }
        }
        section class="panel" {
            h2 { "Task managers" }
            table id="taskmanagers" {
                thead { tr { th { "Id" } th { "Address" } th { "Slots" } th { "Free" } } }
                tbody {
                    @for tm in task_managers["taskmanagers"].as_array().into_iter().flatten() {
                        tr { td { (tm["id"].as_str().unwrap_or_default()) } td { (tm["path"].as_str().unwrap_or_default()) }
                             td class="num" { (tm["slotsNumber"]) } td class="num" { (tm["freeSlots"]) } }
                    }
                }
            }
        }
    }
}

/// A job: its state, graph, vertices, models, checkpoints and exceptions.
pub fn job(job: &Value, checkpoints: &Value, latest: &Value, exceptions: &Value, series: &Value) -> Markup {
    let state = job["state"].as_str().unwrap_or_default();
    html! {
        h1 { (job["name"].as_str().unwrap_or_default()) " " (state_badge(state)) }
        @if let Some(message) = job["message"].as_str().filter(|m| !m.is_empty()) {
            p id="message" class="muted" { (message) }
        }
        div class="facts" {
            div { b { (duration_text(job["duration"].as_u64().unwrap_or(0))) } "running for" }
            div { b data-fact="restarts" { (job["restarts"]) } "restarts" }
            div { b { (checkpoints["counts"]["completed"]) } "checkpoints" }
            div { b { (checkpoints["counts"]["failed"]) } "failed checkpoints" }
        }
        section class="panel" {
            h2 { "Job graph" }
            (graph::render(job))
            div class="legend" {
                span { i style="background: hsl(120, 70%, 72%)" {} "idle" }
                span { i style="background: hsl(0, 70%, 72%)" {} "busy" }
                span { i style="background: #9a9aae" {} "backpressured" }
                span { i style="background: #fff; border: 3px solid #c0392b" {} "likely bottleneck" }
            }
        }
        section class="panel" {
            h2 { "Vertices" }
            table id="vertices" {
                thead { tr {
                    th { "Vertex" } th { "×" } th { "State" } th { "Rows in" } th { "Rows out" } th { "In/s" }
                    th { "Busy ms/s" } th { "Idle ms/s" } th { "Backpr. ms/s" } th { "Watermark" } th { "Rows in/s, 5 min" }
                } }
                tbody {
                    @for v in job["vertices"].as_array().into_iter().flatten() {
                        @let id = v["id"].as_str().unwrap_or_default();
                        tr data-vertex=(id) data-condition=(graph::condition(v)) {
                            td { (v["name"].as_str().unwrap_or_default()) }
                            td class="num" { (v["parallelism"]) }
                            td { (v["status"].as_str().unwrap_or_default()) }
                            td class="num" { (v["metrics"]["read-records"]) }
                            td class="num" { (v["metrics"]["write-records"]) }
                            td class="num" { (number(&v["rates"]["records-in-per-second"], 0)) }
                            td class="num" { (number(&v["rates"]["busy-ms-per-second"], 0)) }
                            td class="num" { (number(&v["rates"]["idle-ms-per-second"], 0)) }
                            td class="num" { (number(&v["rates"]["backpressured-ms-per-second"], 0)) }
                            td { (v["watermark"].as_i64().map_or_else(|| "–".to_string(), graph::watermark_time)) }
                            td { (sparkline::render(&series["vertices"][id])) }
                        }
                    }
                }
            }
        }
        @if job["models"].as_array().is_some_and(|m| !m.is_empty()) {
            section class="panel" {
                h2 { "Models" }
                div class="models" {
                    @for m in job["models"].as_array().into_iter().flatten() {
                        (model(m, &series["models"][m["model"].as_str().unwrap_or_default()]))
                    }
                }
            }
        }
        (checkpoint_table(checkpoints))
        @if latest.is_object() {
            (subtask_timings(job, latest))
        }
        @if let Some(explain) = job["plan"]["explain"].as_str().filter(|e| !e.is_empty()) {
            section class="panel" {
                h2 { "Plan" }
                p class="muted" { "The job's SQL as planned (EXPLAIN; secrets in options are masked)." }
                pre id="explain" { (explain) }
            }
        }
        section class="panel" {
            h2 { "Exceptions" }
            @let entries = exceptions["exceptionHistory"]["entries"].as_array().cloned().unwrap_or_default();
            @if entries.is_empty() {
                p class="muted" { "No failures." }
            } @else {
                table id="exceptions" {
                    thead { tr { th { "When" } th { "What" } th { "Then" } } }
                    tbody {
                        @for e in &entries {
                            tr { td class="muted" { (time_text(&e["timestamp"])) } td { pre { (e["stacktrace"].as_str().unwrap_or_default()) } }
                                 td { @if e["restarted"].as_bool().unwrap_or(false) { "restarted" } @else { "the job failed" } } }
                        }
                    }
                }
            }
        }
    }
}

/// One model's panel.
fn model(m: &Value, series: &Value) -> Markup {
    let fact = |key: &str, digits: usize| number(&m[key], digits);
    html! {
        div class="model panel" data-model=(m["model"].as_str().unwrap_or_default()) {
            h2 { "ML_PREDICT " (m["model"].as_str().unwrap_or_default()) }
            dl {
                dt { "rows" } dd data-metric="rows" { (fact("rows", 0)) }
                dt { "rows/s" } dd data-metric="rows-per-second" { (fact("rows-per-second", 1)) }
                dt { "in flight / limit" } dd data-metric="in-flight" { (fact("in-flight", 0)) " / " (fact("concurrency-limit", 0)) }
                dt { "latency p50 / p99" } dd data-metric="latency" { (fact("latency-p50-ms", 1)) " / " (fact("latency-p99-ms", 1)) " ms" }
                dt { "p99, last minute" } dd { (fact("recent-latency-p99-ms", 1)) " ms " (sparkline::render(&series["p99-ms"])) }
                dt { "requests" } dd data-metric="requests" { (fact("requests", 0)) }
                dt { "retries" } dd data-metric="retries" { (fact("retries", 0)) }
                dt { "429s" } dd data-metric="http-429" { (fact("http-429", 0)) }
                dt { "timeouts" } dd data-metric="timeouts" { (fact("timeouts", 0)) }
                dt { "dead letters" } dd data-metric="dead-letters" { (fact("dead-letters", 0)) }
                dt { "cache hit rate" } dd data-metric="cache-hit-rate" { (fact("cache-hit-rate", 3)) }
                dt { "tokens (prompt / completion)" } dd data-metric="tokens" { (fact("prompt-tokens", 0)) " / " (fact("completion-tokens", 0)) }
                dt { "cost" } dd data-metric="cost-usd" { "$" (fact("cost-usd", 4)) }
                dt { "cost per hour" } dd data-metric="cost-per-hour-usd" { "$" (fact("cost-per-hour-usd", 2)) }
            }
        }
    }
}

/// The latest completed checkpoint's alignment, sync and async parts per subtask.
fn subtask_timings(job: &Value, latest: &Value) -> Markup {
    html! {
        section class="panel" {
            h2 { "Checkpoint " (latest["id"]) " by subtask" }
            table id="checkpoint-subtasks" {
                thead { tr { th { "Vertex" } th { "Subtask" } th { "Alignment" } th { "Sync" } th { "Async" } th { "State" } } }
                tbody {
                    @for v in job["vertices"].as_array().into_iter().flatten() {
                        @let id = v["id"].as_str().unwrap_or_default();
                        @for s in latest["tasks"][id]["subtasks"].as_array().into_iter().flatten() {
                            tr {
                                td { (v["name"].as_str().unwrap_or_default()) }
                                td class="num" { (s["index"]) }
                                td class="num" { (s["alignment"]["duration"]) " ms" }
                                td class="num" { (s["checkpoint"]["sync"]) " ms" }
                                td class="num" { (s["checkpoint"]["async"]) " ms" }
                                td class="num" { (s["state_size"]) " B" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The checkpoint history: each checkpoint's duration, sizes, and its subtasks' slowest
/// alignment, sync and async parts.
fn checkpoint_table(checkpoints: &Value) -> Markup {
    html! {
        section class="panel" {
            h2 { "Checkpoints" }
            @if checkpoints["interval_ms"].as_u64().unwrap_or(0) == 0 {
                p class="muted" { "This job takes no checkpoints." }
            } @else {
                table id="checkpoints" {
                    thead { tr { th { "Id" } th { "Status" } th { "Kind" } th { "Duration" } th { "State" } th { "Copied" }
                                 th { "Acks" } th { "Path or failure" } } }
                    tbody {
                        @for c in checkpoints["history"].as_array().into_iter().flatten() {
                            tr data-checkpoint=(c["id"]) data-status=(c["status"].as_str().unwrap_or_default()) {
                                td class="num" { (c["id"]) }
                                td { (c["status"].as_str().unwrap_or_default()) }
                                td { (c["checkpoint_type"].as_str().unwrap_or_default()) }
                                td class="num" { (c["end_to_end_duration"]) " ms" }
                                td class="num" { (c["state_size"]) " B" }
                                td class="num" { (c["checkpointed_size"]) " B" }
                                td class="num" { (c["num_acknowledged_subtasks"]) "/" (c["num_subtasks"]) }
                                td class="muted" {
                                    (c["external_path"].as_str().or(c["failure_message"].as_str()).unwrap_or_default())
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
