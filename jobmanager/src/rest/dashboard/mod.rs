//! The web dashboard at `/`: server-rendered pages (maud) with their stylesheet and script
//! embedded in the binary, kept live by server-sent events (`/ui/.../events` send the
//! page's live part every few seconds), and usable without JavaScript (the page then
//! reloads itself). Pages are rendered from the REST API's own answers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use maud::Markup;
use serde::Deserialize;
use tokio_stream::StreamExt;

use super::views;
use crate::server::Shared;
use crate::state::ClusterState;

mod graph;
mod pages;
mod sparkline;

/// How often a page's live part is sent again.
const REFRESH: Duration = Duration::from_secs(2);

/// The dashboard's routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(cluster_page))
        .route("/ui/events", get(cluster_events))
        .route("/ui/jobs/{id}", get(job_page))
        .route("/ui/jobs/{id}/events", get(job_events))
        .route("/ui/login", get(login))
        .route("/assets/style.css", get(|| async { asset("text/css", include_str!("style.css")) }))
        .route("/assets/live.js", get(|| async { asset("text/javascript", include_str!("live.js")) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=3600")], body).into_response()
}

/// The cluster overview's live part.
fn cluster_part(state: &ClusterState) -> Markup {
    let jobs = state.list();
    let summaries: Vec<serde_json::Value> = jobs
        .iter()
        .rev()
        .filter_map(|j| state.status(&j.job_id))
        .map(|s| views::job_summary(&s, views::now_ms()))
        .collect();
    pages::cluster(&views::overview(state), &views::task_managers(state), &serde_json::json!({ "jobs": summaries }))
}

/// A job page's live part, `None` for an unknown job.
fn job_part(state: &ClusterState, id: &str) -> Option<(String, Markup)> {
    let status = state.status(id)?;
    let details = state.details(id)?;
    let job = views::job(&status, &details, views::now_ms());
    let checkpoints = views::checkpoints(&status, &details);
    let latest = details
        .checkpoints
        .and_then(|h| h.records().rev().find(|r| r.status == crate::checkpoint::history::CheckpointStatus::Completed))
        .map(|r| views::checkpoint_record(r, details.graph, true))
        .unwrap_or_default();
    let exceptions = views::exceptions(&details);
    let series = views::series(&details);
    Some((status.name.clone(), pages::job(&job, &checkpoints, &latest, &exceptions, &series)))
}

async fn cluster_page(State(shared): State<Arc<Shared>>) -> Html<String> {
    let part = cluster_part(&shared.state());
    Html(pages::page("Cluster", "/ui/events", part).into_string())
}

async fn job_page(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let part = job_part(&shared.state(), &id);
    match part {
        Some((name, part)) => {
            Html(pages::page(&name, &format!("/ui/jobs/{id}/events"), part).into_string()).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Html(
                pages::page(
                    "No such job",
                    "",
                    maud::html! {
                        h1 { "No job with id " (id) }
                        p { a href="/" { "Back to the cluster" } }
                    },
                )
                .into_string(),
            ),
        )
            .into_response(),
    }
}

/// Server-sent events of a live part, rendered by `render` every [`REFRESH`].
fn live(
    shared: Arc<Shared>,
    render: impl Fn(&ClusterState) -> Option<Markup> + Send + 'static,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(REFRESH));
    let stream = ticks
        .map(move |_| render(&shared.state()))
        .take_while(Option::is_some)
        .map(|part| Ok(Event::default().data(part.map(|p| p.into_string()).unwrap_or_default())));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn cluster_events(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    live(shared, |state| Some(cluster_part(state)))
}

async fn job_events(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> impl IntoResponse {
    live(shared, move |state| job_part(state, &id).map(|(_, part)| part))
}

/// The query of `/ui/login`.
#[derive(Debug, Deserialize)]
struct Login {
    token: String,
}

/// Keeps the cluster's token in a cookie for the browser (`/ui/login?token=...`), then
/// goes to the overview. The only page served without the token.
async fn login(State(shared): State<Arc<Shared>>, Query(login): Query<Login>) -> Response {
    let valid = shared.config.auth_token.as_ref().is_none_or(|t| sluice_proto::auth::matches(t.expose(), &login.token));
    if !valid {
        return (StatusCode::UNAUTHORIZED, Html("<p>That is not this cluster's token.</p>".to_string()))
            .into_response();
    }
    let cookie = format!("sluice_token={}; Path=/; HttpOnly; SameSite=Strict", login.token);
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = header::HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
