//! Sparklines: a series of numbers as a small inline SVG line.

use maud::{html, Markup};
use serde_json::Value;

const WIDTH: f64 = 140.0;
const HEIGHT: f64 = 28.0;

/// `series` (a JSON array of numbers, nulls skipped) as a sparkline scaled to its maximum;
/// nothing for fewer than two points.
pub fn render(series: &Value) -> Markup {
    let values: Vec<f64> = series.as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
    if values.len() < 2 {
        return html! {};
    }
    let top = values.iter().copied().fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let step = WIDTH / (values.len() - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, HEIGHT - 2.0 - (v / top) * (HEIGHT - 4.0)))
        .collect();
    html! {
        svg class="spark" width=(WIDTH) height=(HEIGHT) viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) {
            title { "last " (values.len()) " readings; max " (format!("{top:.1}")) }
            polyline points=(points.join(" ")) {}
        }
    }
}
