//! The job graph as an SVG drawing: vertices in columns by their distance from the
//! sources, edges labelled with their partitioning, each vertex coloured by its busiest or
//! most backpressured subtask (the worst subtask, not the average) and the likely
//! bottleneck outlined.

use std::collections::BTreeMap;

use maud::{html, Markup};
use serde_json::Value;

const WIDTH: u32 = 230;
const HEIGHT: u32 = 84;
const COLUMN: u32 = 300;
const ROW: u32 = 116;
const MARGIN: u32 = 12;

/// How a vertex is doing, from its busiest subtask's time per second.
pub fn condition(vertex: &Value) -> &'static str {
    let rates = &vertex["rates"];
    let busy = rates["busy-ms-per-second"].as_f64().unwrap_or(0.0);
    let pressured = rates["backpressured-ms-per-second"].as_f64().unwrap_or(0.0);
    match vertex["status"].as_str() {
        Some("FAILED") => "failed",
        Some("FINISHED" | "CANCELED") => "ended",
        _ if pressured >= 500.0 => "backpressured",
        _ if busy >= 500.0 => "hot",
        _ if busy >= 100.0 => "busy",
        _ => "idle",
    }
}

/// The fill of a vertex: grey when backpressured (waiting on its consumers), else from
/// green (idle) to red (busy all the time) by its busiest subtask's busy share.
fn fill(vertex: &Value, condition: &str) -> String {
    match condition {
        "backpressured" => "#9a9aae".into(),
        "ended" | "failed" => "#e4e6ee".into(),
        _ => {
            let busy = vertex["rates"]["busy-ms-per-second"].as_f64().unwrap_or(0.0).clamp(0.0, 1000.0);
            format!("hsl({:.0}, 70%, 72%)", 120.0 - 120.0 * busy / 1000.0)
        }
    }
}

/// Each vertex's column: its longest distance from a source.
fn columns(plan: &Value) -> BTreeMap<String, u32> {
    let nodes = plan["nodes"].as_array().cloned().unwrap_or_default();
    let mut column: BTreeMap<String, u32> = BTreeMap::new();
    // Relax edges as often as there are vertices: enough for the longest path of a DAG.
    for _ in 0..=nodes.len() {
        for node in &nodes {
            let id = node["id"].as_str().unwrap_or_default().to_string();
            let from_inputs = node["inputs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| column.get(i["id"].as_str().unwrap_or_default()).copied().unwrap_or(0) + 1)
                .max()
                .unwrap_or(0);
            column.insert(id, from_inputs);
        }
    }
    column
}

fn format_rate(rate: f64) -> String {
    if rate >= 10_000.0 {
        format!("{:.1}k", rate / 1000.0)
    } else {
        format!("{rate:.0}")
    }
}

/// The SVG of `job` (the REST API's `/jobs/{id}` answer).
pub fn render(job: &Value) -> Markup {
    let columns = columns(&job["plan"]);
    let vertices = job["vertices"].as_array().cloned().unwrap_or_default();
    let mut rows_used: BTreeMap<u32, u32> = BTreeMap::new();
    let mut position: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for vertex in &vertices {
        let id = vertex["id"].as_str().unwrap_or_default().to_string();
        let column = columns.get(&id).copied().unwrap_or(0);
        let row = rows_used.entry(column).or_insert(0);
        position.insert(id, (MARGIN + column * COLUMN, MARGIN + *row * ROW));
        *row += 1;
    }
    let width = position.values().map(|(x, _)| x + WIDTH + MARGIN).max().unwrap_or(WIDTH);
    let height = position.values().map(|(_, y)| y + HEIGHT + MARGIN).max().unwrap_or(HEIGHT);
    let edges: Vec<(String, String, String)> = job["plan"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|node| {
            let target = node["id"].as_str().unwrap_or_default().to_string();
            node["inputs"].as_array().cloned().unwrap_or_default().into_iter().map(move |input| {
                (
                    input["id"].as_str().unwrap_or_default().to_string(),
                    target.clone(),
                    input["ship_strategy"].as_str().unwrap_or_default().to_string(),
                )
            })
        })
        .collect();
    html! {
        svg class="graph" xmlns="http://www.w3.org/2000/svg" width=(width) height=(height)
            viewBox=(format!("0 0 {width} {height}")) role="img" aria-label="job graph" {
            defs {
                marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto" {
                    path d="M0,0 L10,5 L0,10 z" fill="#69708a" {}
                }
            }
            @for (source, target, strategy) in &edges {
                @if let (Some(&(x1, y1)), Some(&(x2, y2))) = (position.get(source), position.get(target)) {
                    @let (ax, ay, bx, by) = (x1 + WIDTH, y1 + HEIGHT / 2, x2, y2 + HEIGHT / 2);
                    path class="edge" d=(format!("M{ax},{ay} C{},{ay} {},{by} {bx},{by}", ax + 40, bx - 40)) {}
                    text class="edge-label" x=((ax + bx) / 2) y=((ay + by) / 2 - 6) text-anchor="middle" { (strategy) }
                }
            }
            @for vertex in &vertices {
                @let id = vertex["id"].as_str().unwrap_or_default();
                @let (x, y) = position.get(id).copied().unwrap_or((0, 0));
                @let condition = condition(vertex);
                @let bottleneck = vertex["bottleneck"].as_bool().unwrap_or(false);
                @let name = vertex["name"].as_str().unwrap_or_default();
                @let short: String = if name.chars().count() > 34 { name.chars().take(32).chain("…".chars()).collect() } else { name.to_string() };
                @let rates = &vertex["rates"];
                g class=(format!("vertex {condition}{}", if bottleneck { " bottleneck" } else { "" }))
                    data-vertex=(id) data-name=(name) data-condition=(condition)
                    data-busy=(rates["busy-ms-per-second"].as_f64().unwrap_or(0.0).round())
                    data-backpressured=(rates["backpressured-ms-per-second"].as_f64().unwrap_or(0.0).round())
                    data-bottleneck=(bottleneck) {
                    title { (name) }
                    rect x=(x) y=(y) width=(WIDTH) height=(HEIGHT) fill=(fill(vertex, condition)) {}
                    text x=(x + 8) y=(y + 18) { (short) }
                    text x=(x + 8) y=(y + 36) {
                        "×" (vertex["parallelism"]) " · " (vertex["status"].as_str().unwrap_or_default())
                        @if bottleneck { " · bottleneck" }
                    }
                    text x=(x + 8) y=(y + 54) {
                        (format_rate(rates["records-in-per-second"].as_f64().unwrap_or(0.0))) " in/s · "
                        (format_rate(rates["records-out-per-second"].as_f64().unwrap_or(0.0))) " out/s"
                    }
                    text x=(x + 8) y=(y + 72) {
                        "busy " (rates["busy-ms-per-second"].as_f64().unwrap_or(0.0).round())
                        " · backpr. " (rates["backpressured-ms-per-second"].as_f64().unwrap_or(0.0).round()) " ms/s"
                        @if let Some(w) = vertex["watermark"].as_i64() { " · wm " (watermark_time(w)) }
                    }
                }
            }
        }
    }
}

/// A watermark as a time of day (UTC), or "end" for the end of input.
pub fn watermark_time(ms: i64) -> String {
    if ms == i64::MAX {
        return "end".into();
    }
    let seconds = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_follow_the_longest_path_from_a_source() {
        let plan = json!({ "nodes": [
            { "id": "0", "inputs": [] },
            { "id": "1", "inputs": [] },
            { "id": "2", "inputs": [{ "id": "0" }, { "id": "1" }] },
            { "id": "3", "inputs": [{ "id": "2" }, { "id": "0" }] },
        ]});
        let c = columns(&plan);
        assert_eq!((c["0"], c["1"], c["2"], c["3"]), (0, 0, 1, 2));
    }

    #[test]
    fn a_vertex_is_coloured_by_its_worst_subtask() {
        let v = |busy: f64, pressured: f64| json!({ "status": "RUNNING", "rates": { "busy-ms-per-second": busy, "backpressured-ms-per-second": pressured } });
        assert_eq!(condition(&v(900.0, 0.0)), "hot");
        assert_eq!(condition(&v(100.0, 800.0)), "backpressured");
        assert_eq!(condition(&v(20.0, 0.0)), "idle");
        assert_eq!(condition(&json!({ "status": "FAILED" })), "failed");
        assert_eq!(watermark_time(3_723_000), "01:02:03");
    }
}
