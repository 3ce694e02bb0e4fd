//! The jobmanager's REST API, beside gRPC: Flink's shapes where Flink has one (`/overview`,
//! `/jobs/overview`, `/jobs/{id}`, checkpoints, backpressure, watermarks, savepoints,
//! `/taskmanagers`), plus `POST /jobs` taking SQL, Prometheus metrics at `/metrics` and an
//! OpenAPI document at `/openapi.json`. Errors are JSON: `{"errors": ["what went wrong"]}`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::server::{SavepointOperation, Shared};

mod dashboard;
mod prometheus;
mod views;

/// How many savepoint requests' answers are kept for `GET /jobs/{id}/savepoints/{trigger}`
/// and retried triggers before finished ones are forgotten.
const SAVEPOINT_ANSWERS: usize = 1_000;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// An error answer: its status and message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    fn no_job(id: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("no job with id '{id}'; GET /jobs/overview lists the known jobs"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "errors": [self.message] }))).into_response()
    }
}

type Answer = Result<Json<Value>, ApiError>;

/// The API's routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/overview", get(overview))
        .route("/config", get(config))
        .route("/taskmanagers", get(task_managers))
        .route("/jobs", get(jobs).post(submit))
        .route("/jobs/overview", get(jobs_overview))
        .route("/jobs/{id}", get(job).patch(cancel))
        .route("/jobs/{id}/plan", get(plan))
        .route("/jobs/{id}/exceptions", get(exceptions))
        .route("/jobs/{id}/checkpoints", get(checkpoints))
        .route("/jobs/{id}/checkpoints/details/{checkpoint}", get(checkpoint_details))
        .route("/jobs/{id}/vertices/{vertex}/backpressure", get(backpressure))
        .route("/jobs/{id}/vertices/{vertex}/watermarks", get(watermarks))
        .route("/jobs/{id}/savepoints", post(trigger_savepoint))
        .route("/jobs/{id}/savepoints/{trigger}", get(savepoint_status))
        .route("/jobs/{id}/stop", post(stop))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(dashboard::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), authorize))
        .with_state(shared)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(shared)).with_graceful_shutdown(shutdown).await
}

/// Refuses a request without the cluster's token, when it has one: `Authorization: Bearer
/// <token>`, or the `sluice_token` cookie a browser keeps. The comparison takes the same
/// time wherever the tokens differ.
async fn authorize(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(token) = &shared.config.auth_token else { return next.run(request).await };
    // The login page checks the token it is given itself.
    if request.uri().path() == "/ui/login" {
        return next.run(request).await;
    }
    if presented_token(request.headers()).is_some_and(|given| sluice_proto::auth::matches(token.expose(), given)) {
        return next.run(request).await;
    }
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "this cluster requires a token: send 'Authorization: Bearer <token>' (the CLI sends $SLUICE_AUTH_TOKEN)",
    )
    .into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

/// The token a request presents: its bearer token, or its `sluice_token` cookie.
fn presented_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(sluice_proto::auth::bearer);
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|c| c.split(';'))
            .find_map(|pair| pair.trim().strip_prefix("sluice_token="))
    })
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such resource; GET /openapi.json lists the API")
}

async fn overview(State(shared): State<Arc<Shared>>) -> Answer {
    let state = shared.state();
    Ok(Json(views::overview(&state)))
}

async fn config(State(shared): State<Arc<Shared>>) -> Answer {
    Ok(Json(json!({
        "sluice-version": env!("CARGO_PKG_VERSION"),
        "refresh-interval": crate::metrics::HISTORY_INTERVAL.as_millis() as u64,
        "timezone-name": "UTC",
        "timezone-offset": 0,
        "features": { "web-submit": shared.planner.is_some(), "web-cancel": true },
    })))
}

async fn task_managers(State(shared): State<Arc<Shared>>) -> Answer {
    let state = shared.state();
    Ok(Json(views::task_managers(&state)))
}

async fn jobs(State(shared): State<Arc<Shared>>) -> Answer {
    let jobs: Vec<Value> = shared
        .state()
        .list()
        .iter()
        .map(|j| json!({ "id": j.job_id, "status": views::job_state_name(j.state) }))
        .collect();
    Ok(Json(json!({ "jobs": jobs })))
}

async fn jobs_overview(State(shared): State<Arc<Shared>>) -> Answer {
    let state = shared.state();
    let jobs: Vec<Value> = state
        .list()
        .iter()
        .filter_map(|j| state.status(&j.job_id))
        .map(|status| views::job_summary(&status, views::now_ms()))
        .collect();
    Ok(Json(json!({ "jobs": jobs })))
}

async fn job(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Answer {
    let state = shared.state();
    let status = state.status(&id).ok_or_else(|| ApiError::no_job(&id))?;
    let details = state.details(&id).ok_or_else(|| ApiError::no_job(&id))?;
    Ok(Json(views::job(&status, &details, views::now_ms())))
}

async fn plan(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Answer {
    let state = shared.state();
    let details = state.details(&id).ok_or_else(|| ApiError::no_job(&id))?;
    Ok(Json(json!({ "plan": views::plan(&id, details.graph) })))
}

async fn exceptions(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Answer {
    let state = shared.state();
    let details = state.details(&id).ok_or_else(|| ApiError::no_job(&id))?;
    Ok(Json(views::exceptions(&details)))
}

async fn checkpoints(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Answer {
    let state = shared.state();
    let status = state.status(&id).ok_or_else(|| ApiError::no_job(&id))?;
    let details = state.details(&id).ok_or_else(|| ApiError::no_job(&id))?;
    Ok(Json(views::checkpoints(&status, &details)))
}

async fn checkpoint_details(
    State(shared): State<Arc<Shared>>,
    Path((id, checkpoint)): Path<(String, String)>,
) -> Answer {
    let state = shared.state();
    let details = state.details(&id).ok_or_else(|| ApiError::no_job(&id))?;
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "job {id} has no checkpoint '{checkpoint}' in its history (the last {} are kept); GET \
                 /jobs/{id}/checkpoints lists them",
                crate::checkpoint::history::HISTORY_LENGTH
            ),
        )
    };
    let checkpoint_id: u64 = checkpoint.parse().map_err(|_| missing())?;
    let record = details.checkpoints.and_then(|h| h.get(checkpoint_id)).ok_or_else(missing)?;
    Ok(Json(views::checkpoint_record(record, details.graph, true)))
}

fn vertex_of(details: &crate::state::JobDetails<'_>, id: &str, vertex: &str) -> Result<u32, ApiError> {
    vertex.parse::<u32>().ok().filter(|v| details.graph.vertices.iter().any(|x| x.id == *v)).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("job {id} has no vertex '{vertex}'; GET /jobs/{id} lists them"))
    })
}

async fn backpressure(State(shared): State<Arc<Shared>>, Path((id, vertex)): Path<(String, String)>) -> Answer {
    let state = shared.state();
    let details = state.details(&id).ok_or_else(|| ApiError::no_job(&id))?;
    let vertex = vertex_of(&details, &id, &vertex)?;
    Ok(Json(views::backpressure(&details, vertex, views::now_ms())))
}

async fn watermarks(State(shared): State<Arc<Shared>>, Path((id, vertex)): Path<(String, String)>) -> Answer {
    let state = shared.state();
    let status = state.status(&id).ok_or_else(|| ApiError::no_job(&id))?;
    let details = state.details(&id).ok_or_else(|| ApiError::no_job(&id))?;
    let vertex = vertex_of(&details, &id, &vertex)?;
    Ok(Json(views::watermarks(&status, vertex)))
}

/// The body of `POST /jobs/{id}/savepoints`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SavepointBody {
    target_directory: Option<String>,
    #[serde(default)]
    cancel_job: bool,
    /// A caller's id for the request: the same id again is the same savepoint.
    #[serde(rename = "triggerId")]
    trigger_id: Option<String>,
    #[serde(rename = "formatType")]
    format_type: Option<String>,
}

/// The body of `POST /jobs/{id}/stop`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StopBody {
    target_directory: Option<String>,
    #[serde(default)]
    drain: bool,
    trigger_id: Option<String>,
    format_type: Option<String>,
}

fn body<T: for<'de> Deserialize<'de> + Default>(text: &str, what: &str) -> Result<T, ApiError> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("the body of {what} is not valid: {e}")))
}

async fn trigger_savepoint(State(shared): State<Arc<Shared>>, Path(id): Path<String>, text: String) -> Response {
    let request: SavepointBody = match body(&text, "POST /jobs/{id}/savepoints") {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    if request.format_type.as_deref().is_some_and(|f| !f.eq_ignore_ascii_case("canonical")) {
        return ApiError::new(StatusCode::BAD_REQUEST, "formatType: only CANONICAL savepoints are taken")
            .into_response();
    }
    start_savepoint(shared, id, request.target_directory, request.cancel_job, request.trigger_id).await
}

async fn stop(State(shared): State<Arc<Shared>>, Path(id): Path<String>, text: String) -> Response {
    let request: StopBody = match body(&text, "POST /jobs/{id}/stop") {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    if request.drain {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "drain: a stop that ends event time is not supported; stop without it (the savepoint keeps the windows' \
             state)",
        )
        .into_response();
    }
    if request.format_type.as_deref().is_some_and(|f| !f.eq_ignore_ascii_case("canonical")) {
        return ApiError::new(StatusCode::BAD_REQUEST, "formatType: only CANONICAL savepoints are taken")
            .into_response();
    }
    start_savepoint(shared, id, request.target_directory, true, request.trigger_id).await
}

/// Starts a savepoint in the background and answers its request id at once; a trigger id
/// already known for the job answers the same request without taking another.
async fn start_savepoint(
    shared: Arc<Shared>,
    id: String,
    directory: Option<String>,
    stop: bool,
    trigger: Option<String>,
) -> Response {
    if shared.state().status(&id).is_none() {
        return ApiError::no_job(&id).into_response();
    }
    let trigger = trigger.filter(|t| !t.is_empty()).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    {
        let mut savepoints = shared.savepoints.lock().unwrap_or_else(|p| p.into_inner());
        let key = (id.clone(), trigger.clone());
        if savepoints.contains_key(&key) {
            return (StatusCode::ACCEPTED, Json(json!({ "request-id": trigger }))).into_response();
        }
        // Answers are kept for retries, but not forever: past the limit, finished ones go.
        if savepoints.len() >= SAVEPOINT_ANSWERS {
            savepoints.retain(|_, operation| matches!(operation, SavepointOperation::InProgress));
        }
        savepoints.insert(key, SavepointOperation::InProgress);
    }
    let background = shared.clone();
    let key = (id.clone(), trigger.clone());
    tokio::spawn(async move {
        let outcome = match background.savepoint(&id, directory.as_deref().unwrap_or(""), stop).await {
            Ok(path) => SavepointOperation::Completed(path),
            Err(e) => SavepointOperation::Failed(e.to_string()),
        };
        background.savepoints.lock().unwrap_or_else(|p| p.into_inner()).insert(key, outcome);
    });
    (StatusCode::ACCEPTED, Json(json!({ "request-id": trigger }))).into_response()
}

async fn savepoint_status(State(shared): State<Arc<Shared>>, Path((id, trigger)): Path<(String, String)>) -> Answer {
    let operation =
        shared.savepoints.lock().unwrap_or_else(|p| p.into_inner()).get(&(id.clone(), trigger.clone())).cloned();
    let operation = operation.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("job {id} has no savepoint request '{trigger}'"))
    })?;
    Ok(Json(match operation {
        SavepointOperation::InProgress => json!({ "status": { "id": "IN_PROGRESS" } }),
        SavepointOperation::Completed(path) => {
            json!({ "status": { "id": "COMPLETED" }, "operation": { "location": path } })
        }
        SavepointOperation::Failed(message) => json!({
            "status": { "id": "COMPLETED" },
            "operation": { "failure-cause": { "class": "SavepointFailure", "stack-trace": message } },
        }),
    }))
}

/// The query of `PATCH /jobs/{id}`.
#[derive(Debug, Deserialize)]
struct PatchQuery {
    mode: Option<String>,
}

async fn cancel(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<PatchQuery>,
) -> Response {
    match query.mode.as_deref().unwrap_or("cancel") {
        "cancel" => {}
        other => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("mode '{other}' is not supported: PATCH /jobs/{{id}}?mode=cancel cancels; POST /jobs/{{id}}/stop stops with a savepoint"),
            )
            .into_response()
        }
    }
    match shared.update(|s, a| s.cancel(&id, a)) {
        Some(_) => (StatusCode::ACCEPTED, Json(json!({}))).into_response(),
        None => ApiError::no_job(&id).into_response(),
    }
}

/// The body of `POST /jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    /// The SQL script: its CREATE statements and one INSERT (or a statement set).
    sql: String,
    /// Default parallelism of the job's operators.
    parallelism: Option<u32>,
}

async fn submit(State(shared): State<Arc<Shared>>, text: String) -> Response {
    let Some(planner) = shared.planner.clone() else {
        return ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "this jobmanager plans no SQL; submit with `sluice submit` or run the `sluice jobmanager` binary",
        )
        .into_response();
    };
    let request: SubmitBody = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body of POST /jobs is not valid: {e}; send {{\"sql\": \"...\", \"parallelism\": 2}}"),
            )
            .into_response()
        }
    };
    let planned = tokio::task::spawn_blocking(move || planner(&request.sql, request.parallelism)).await;
    let graph = match planned {
        Ok(Ok(graph)) => graph,
        Ok(Err(message)) => return ApiError::new(StatusCode::BAD_REQUEST, message).into_response(),
        Err(e) => {
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("planning stopped: {e}")).into_response()
        }
    };
    if let Err(e) = sluice_core::job_graph::check(&graph) {
        return ApiError::new(StatusCode::BAD_REQUEST, format!("invalid job graph: {e}")).into_response();
    }
    match shared.submit(graph, None).await {
        Ok(job_id) => {
            tracing::info!(job = %job_id, "job submitted over REST");
            (StatusCode::ACCEPTED, Json(json!({ "jobid": job_id }))).into_response()
        }
        Err(message) => ApiError::new(StatusCode::BAD_REQUEST, message).into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: axum::http::HeaderMap) -> Response {
    // Prometheus asks for OpenMetrics first; anything else gets the classic text format.
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    // Only collecting holds the jobmanager's lock (which heartbeats need); encoding does not.
    let scrape = prometheus::collect(&shared.state());
    let text = prometheus::encode(scrape, openmetrics);
    let content_type = if openmetrics { prometheus::OPENMETRICS } else { prometheus::PROMETHEUS_TEXT };
    match text {
        Ok(text) => ([(header::CONTENT_TYPE, content_type)], text).into_response(),
        Err(e) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render metrics: {e}")).into_response()
        }
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The address the REST API listens on, as logs and `sluice run` print it.
pub fn describe(address: SocketAddr) -> String {
    format!("http://{address}")
}
