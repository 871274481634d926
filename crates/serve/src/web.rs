//! The HTTP side: shared state, the router, and the JSON API (`/api/v1/...`). The pages
//! (`pages.rs`) call the same store functions as these handlers.

use std::io::Cursor;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use minijinja::Environment;
use opensoc_attack::Taxonomy;
use opensoc_ingest::{ingest_reader, IntakeConfig};
use opensoc_verdict::Severity;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::StoreError;
use crate::store::{Accepted, AlertFilter, Feedback, NewEntry, Review, Store};
use crate::worker::Wakeup;
use crate::{pages, security};

/// Longest analyst note, in characters.
pub const MAX_NOTE_CHARS: usize = 2000;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub store: Arc<Store>,
    pub wakeup: Arc<Wakeup>,
    pub token: Option<String>,
    /// The form token every page form carries (one per server process).
    pub csrf: String,
    pub templates: Environment<'static>,
    pub intake: IntakeConfig,
}

impl AppState {
    pub fn token(&self) -> Option<&str> {
        self.0.token.as_deref()
    }
}

/// A 4xx/5xx answer with a JSON body `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(id: i64) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("no alert {id}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::BadFilter(m) => ApiError::bad_request(m),
            e => {
                tracing::error!("{e}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the alert store failed")
            }
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::new(r.status(), r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::new(r.status(), r.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        ApiError::new(r.status(), r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> ApiError {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "request body over the size limit (--max-body)")
        } else {
            ApiError::new(status, r.body_text())
        }
    }
}

/// Runs store work on a blocking thread (SQLite calls block).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|_| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "a request handler failed",
        ))
    })
}

/// The router with every route, the body limit and the security layers.
pub fn router(state: AppState, max_body: usize) -> Router {
    let api = Router::new()
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/alerts", get(list_alerts))
        .route("/alerts/{id}", get(one_alert))
        .route("/alerts/{id}/feedback", post(feedback))
        .route("/logs", post(logs))
        .route("/threat-types", get(threat_types))
        .fallback(api_not_found);
    Router::new()
        .route("/", get(pages::queue))
        .route("/alerts/{id}", get(pages::alert))
        .route("/alerts/{id}/review", post(pages::review))
        .route("/overview", get(pages::overview))
        .route("/upload", post(pages::upload))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/assets/app.css", get(pages::css))
        .route("/assets/app.js", get(pages::js))
        .nest("/api/v1", api)
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::require_token,
        ))
        .layer(middleware::from_fn(security::same_origin))
        .layer(middleware::from_fn(security::headers))
        .with_state(state)
}

async fn api_not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such endpoint {}", uri.path()),
    )
}

async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let store = state.0.store.clone();
    let version = blocking(move || Ok(store.schema_version()?)).await?;
    Ok(Json(json!({ "status": "ok", "schema_version": version })))
}

async fn stats(State(state): State<AppState>) -> Result<Json<crate::store::Stats>, ApiError> {
    let store = state.0.store.clone();
    Ok(Json(blocking(move || Ok(store.stats()?)).await?))
}

async fn list_alerts(
    State(state): State<AppState>,
    query: Result<Query<AlertFilter>, QueryRejection>,
) -> Result<Json<crate::store::AlertPage>, ApiError> {
    let Query(filter) = query?;
    let store = state.0.store.clone();
    Ok(Json(blocking(move || Ok(store.alerts(&filter)?)).await?))
}

async fn one_alert(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<crate::store::Alert>, ApiError> {
    let Path(id) = id?;
    let store = state.0.store.clone();
    blocking(move || store.alert(id)?.ok_or_else(|| ApiError::not_found(id)))
        .await
        .map(Json)
}

/// The body of `POST /api/v1/alerts/{id}/feedback` (and of the page's review form).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    /// `confirm`, `false_positive` or `relabel`.
    pub action: String,
    /// For `relabel`: a threat type of the taxonomy (`GET /api/v1/threat-types`).
    #[serde(default)]
    pub threat_type: Option<String>,
    /// For `relabel`: CRITICAL, HIGH, MEDIUM or LOW (default: the type's usual one).
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

impl FeedbackBody {
    /// Checks the body and turns it into the review to store.
    pub fn validate(self) -> Result<Feedback, ApiError> {
        let review = match self.action.as_str() {
            "confirm" => Review::Confirmed,
            "false_positive" => Review::FalsePositive,
            "relabel" => Review::Relabelled,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown action {other:?} (confirm, false_positive, relabel)"
                )))
            }
        };
        let note = self
            .note
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        if note
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
        {
            return Err(ApiError::bad_request(format!(
                "note longer than {MAX_NOTE_CHARS} characters"
            )));
        }
        let blank = |o: Option<String>| o.filter(|s| !s.trim().is_empty());
        let (threat_type, severity) = (blank(self.threat_type), blank(self.severity));
        let mut fb = Feedback {
            review,
            threat_type: None,
            severity: None,
            note,
        };
        if review == Review::Relabelled {
            let name =
                threat_type.ok_or_else(|| ApiError::bad_request("relabel needs a threat_type"))?;
            let ft = Taxonomy::builtin().fine_type(name.trim()).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown threat type {name:?} (see /api/v1/threat-types)"
                ))
            })?;
            fb.threat_type = Some(ft.name.clone());
            fb.severity = severity
                .map(|s| s.parse::<Severity>())
                .transpose()
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        } else if threat_type.is_some() || severity.is_some() {
            return Err(ApiError::bad_request(
                "threat_type and severity go with the relabel action only",
            ));
        }
        Ok(fb)
    }
}

/// Stores a review; 404 for an unknown alert, 409 for one not analysed yet.
pub(crate) async fn store_review(state: &AppState, id: i64, fb: Feedback) -> Result<(), ApiError> {
    let store = state.0.store.clone();
    blocking(move || {
        let alert = store.alert(id)?.ok_or_else(|| ApiError::not_found(id))?;
        if alert.state != "analysed" {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "alert {id} is {}: it can be reviewed once analysed",
                    alert.state
                ),
            ));
        }
        if !store.review(id, &fb)? {
            return Err(ApiError::not_found(id));
        }
        Ok(())
    })
    .await
}

async fn feedback(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<FeedbackBody>, JsonRejection>,
) -> Result<Json<crate::store::Alert>, ApiError> {
    let Path(id) = id?;
    let Json(body) = body?;
    let fb = body.validate()?;
    store_review(&state, id, fb).await?;
    let store = state.0.store.clone();
    blocking(move || store.alert(id)?.ok_or_else(|| ApiError::not_found(id)))
        .await
        .map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    /// Name for the entries' ids and the queue's source filter.
    #[serde(default)]
    source: Option<String>,
}

/// What an ingest request stored.
#[derive(Debug, Serialize)]
pub struct IngestReply {
    #[serde(flatten)]
    pub accepted: Accepted,
    /// Records kept as plain text because they broke their format (bad JSON...).
    pub malformed: u64,
    pub source: String,
}

/// A source name safe to show and to use as an entry-id prefix: printable, short.
pub(crate) fn source_name(raw: &str) -> String {
    let cleaned: String = raw.chars().filter(|c| !c.is_control()).take(100).collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        "unnamed".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Turns raw log text into entries with the intake `analyze` uses and stores them
/// durably (blocking).
pub(crate) fn ingest(
    state: &AppState,
    source: &str,
    name: &str,
    body: &[u8],
    idempotency_key: Option<&str>,
) -> Result<IngestReply, ApiError> {
    let (entries, stats) = ingest_reader(name, Cursor::new(body), &state.0.intake);
    if entries.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "no log entries in the body ({} records read, {} skipped)",
                stats.read, stats.skipped
            ),
        ));
    }
    let new: Vec<NewEntry> = entries.into_iter().map(NewEntry::from).collect();
    let accepted = state
        .0
        .store
        .enqueue(source, &new, stats.skipped, idempotency_key)?;
    state.0.wakeup.wake();
    Ok(IngestReply {
        accepted,
        malformed: stats.malformed,
        source: source.to_owned(),
    })
}

/// `POST /api/v1/logs`: newline-delimited log text or JSON lines. Answers 202 once the
/// entries are committed; the verdicts follow as the worker analyses them.
async fn logs(
    State(state): State<AppState>,
    query: Result<Query<LogsQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IngestReply>), ApiError> {
    let Query(q) = query?;
    let body = body?;
    if body.is_empty() {
        return Err(ApiError::bad_request("empty body: send log lines"));
    }
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .ok_or_else(|| {
                    ApiError::bad_request("Idempotency-Key must be 1-200 visible ASCII characters")
                })?;
            Some(k.to_owned())
        }
    };
    let name = source_name(q.source.as_deref().unwrap_or("api"));
    let source = format!("api:{name}");
    let reply = blocking(move || ingest(&state, &source, &name, &body, key.as_deref())).await?;
    let status = if reply.accepted.replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(reply)))
}

async fn threat_types() -> Json<Vec<serde_json::Value>> {
    Json(
        Taxonomy::builtin()
            .fine_types()
            .iter()
            .map(|ft| {
                json!({
                    "name": ft.name,
                    "category": ft.category,
                    "technique": ft.technique,
                    "tactic": ft.tactic,
                    "severity": ft.severity,
                })
            })
            .collect(),
    )
}
