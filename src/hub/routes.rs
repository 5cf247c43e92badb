//! The REST handlers. Each parses its input, calls the database, and shapes the answer;
//! the rules live in `core` and the SQL in `db`/`push`.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::db::OpFilter;
use super::error::AppError;
use super::extract::JsonBody;
use super::AppState;
use crate::core::model::OpStatus;
use crate::core::protocol::{PushRequest, DEFAULT_PULL, MAX_PULL};

type Params = Query<HashMap<String, String>>;

/// `POST /api/sincronizacion/cola/`: push a batch. A chained one (`despues_de`) first waits
/// until the hub has recorded the operation it names. A push that fails here is remembered,
/// so a push chained to it is refused at once.
pub async fn push(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<PushRequest>,
) -> Result<impl IntoResponse, AppError> {
    state.db.push_arriving(&request);
    let outcome = apply_push(&state, &request).await;
    if let (Err(_), Some(last)) = (&outcome, request.operations.last()) {
        state.db.push_failed(request.store, last.id);
    }
    Ok(Json(outcome?))
}

async fn apply_push(
    state: &AppState,
    request: &PushRequest,
) -> Result<crate::core::protocol::PushResponse, AppError> {
    if request.operations.len() > state.max_batch {
        return Err(AppError::TooLarge(format!(
            "A batch may carry at most {} operations; this one has {}. Nothing was applied.",
            state.max_batch,
            request.operations.len()
        )));
    }
    if let Some(after) = request.after {
        state
            .db
            .wait_for_predecessor(request.store, after, state.predecessor_wait)
            .await?;
    }
    state.db.push(request, now_ms()).await
}

/// `GET /api/sincronizacion/cola/`: the operations the hub received.
pub async fn list_operations(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(q): Params,
) -> Result<impl IntoResponse, AppError> {
    let filter = OpFilter {
        store: int_param(&q, "tienda")?,
        status: q
            .get("estado")
            .map(|s| OpStatus::parse(s).ok_or_else(|| AppError::field("estado", format!("\"{s}\" is not a valid choice: pendiente, aplicada, diferida, conflicto or rechazada."))))
            .transpose()?,
        has_conflict: q.get("tiene_conflicto").map(|s| bool_param("tiene_conflicto", s)).transpose()?,
        collection: q.get("coleccion").cloned(),
        ids: id_list(&q)?,
    };
    let (limit, offset) = page_params(&q)?;
    let (count, results) = state.db.operations(&filter, limit, offset).await?;
    Ok(Json(page(&headers, &uri, count, limit, offset, results)))
}

/// `GET /api/sincronizacion/cambios/`: the change feed after a cursor.
pub async fn changes(
    State(state): State<AppState>,
    Query(q): Params,
) -> Result<impl IntoResponse, AppError> {
    let since = int_param(&q, "desde")?.unwrap_or(0);
    let limit = int_param(&q, "limite")?.unwrap_or(u64::from(DEFAULT_PULL));
    if limit == 0 || limit > u64::from(MAX_PULL) {
        return Err(AppError::field(
            "limite",
            format!("Ensure this value is between 1 and {MAX_PULL}."),
        ));
    }
    let collections: Vec<String> = q
        .get("coleccion")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(
        state.db.pull(since, limit as u32, &collections).await?,
    ))
}

/// `GET /api/sincronizacion/documentos/{coleccion}/{objeto_id}/`: one document as the hub holds it.
pub async fn document(
    State(state): State<AppState>,
    Path((collection, doc_id)): Path<(String, String)>,
) -> Result<impl IntoResponse, AppError> {
    match state.db.document(&collection, &doc_id).await? {
        Some(doc) => Ok(Json(doc)),
        None => Err(AppError::NotFound(format!(
            "No document {collection}/{doc_id}."
        ))),
    }
}

/// `GET /api/sincronizacion/registros/`: the sync history, newest first.
pub async fn logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(q): Params,
) -> Result<impl IntoResponse, AppError> {
    let (limit, offset) = page_params(&q)?;
    let (count, results) = state
        .db
        .logs(int_param(&q, "tienda")?, limit, offset)
        .await?;
    Ok(Json(page(&headers, &uri, count, limit, offset, results)))
}

/// `GET /api/salud/`: whether the hub and its database answer.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(
                json!({"estado": "ok", "base_de_datos": "ok", "version": env!("CARGO_PKG_VERSION")}),
            ),
        ),
        Err(e) => {
            tracing::error!(error = %e, "health check: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"estado": "error", "base_de_datos": "error", "version": env!("CARGO_PKG_VERSION")}),
                ),
            )
        }
    }
}

/// `GET /api/metricas/`: counts of operations by state, documents and pushes.
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, AppError> {
    let mut counts = state.db.counts().await?;
    counts["uptime_s"] = json!(state.started.elapsed().as_secs());
    Ok(Json(counts))
}

/// Unknown API paths answer in the API's error shape.
pub async fn api_not_found(OriginalUri(uri): OriginalUri) -> AppError {
    AppError::NotFound(format!(
        "No API endpoint at {}. API paths end with a slash.",
        uri.path()
    ))
}

/// A method an endpoint does not take answers in the API's error shape.
pub async fn method_not_allowed(
    method: axum::http::Method,
    OriginalUri(uri): OriginalUri,
) -> AppError {
    AppError::MethodNotAllowed(format!("{method} is not allowed on {}.", uri.path()))
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `id=a,b,c`: at most 100 operation ids, each a UUID (normalised to the hub's form).
fn id_list(q: &HashMap<String, String>) -> Result<Vec<String>, AppError> {
    let Some(list) = q.get("id") else {
        return Ok(vec![]);
    };
    let ids: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if ids.len() > 100 {
        return Err(AppError::field("id", "At most 100 ids at a time."));
    }
    ids.iter()
        .map(|s| {
            s.parse::<uuid::Uuid>()
                .map(|u| u.hyphenated().to_string())
                .map_err(|_| AppError::field("id", format!("\"{s}\" is not a valid UUID.")))
        })
        .collect()
}

pub(crate) fn int_param(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, AppError> {
    q.get(name)
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                AppError::field(
                    name,
                    format!("\"{s}\" is not a valid non-negative integer."),
                )
            })
        })
        .transpose()
}

fn bool_param(name: &str, s: &str) -> Result<bool, AppError> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(AppError::field(
            name,
            format!("\"{s}\" is not a valid boolean: use true or false."),
        )),
    }
}

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

pub(crate) fn page_params(q: &HashMap<String, String>) -> Result<(u32, u64), AppError> {
    let limit = int_param(q, "limit")?.unwrap_or(u64::from(DEFAULT_PAGE));
    if limit == 0 || limit > u64::from(MAX_PAGE) {
        return Err(AppError::field(
            "limit",
            format!("Ensure this value is between 1 and {MAX_PAGE}."),
        ));
    }
    Ok((limit as u32, int_param(q, "offset")?.unwrap_or(0)))
}

/// DRF's limit/offset page: `{count, next, previous, results}` with absolute links.
pub(crate) fn page<T: Serialize>(
    headers: &HeaderMap,
    uri: &Uri,
    count: u64,
    limit: u32,
    offset: u64,
    results: Vec<T>,
) -> Value {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let link = |new_offset: u64| {
        let mut pairs: Vec<(String, String)> = uri
            .query()
            .map(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                    .filter(|(k, _)| *k != "offset" && *k != "limit" && !k.is_empty())
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        pairs.push(("limit".into(), limit.to_string()));
        if new_offset > 0 {
            pairs.push(("offset".into(), new_offset.to_string()));
        }
        let query: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("http://{host}{}?{}", uri.path(), query.join("&"))
    };
    let next = (offset + u64::from(limit) < count).then(|| link(offset + u64::from(limit)));
    let previous = (offset > 0).then(|| link(offset.saturating_sub(u64::from(limit))));
    json!({"count": count, "next": next, "previous": previous, "results": results})
}
