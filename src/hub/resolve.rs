//! Conflicts: listing them and resolving them by hand.
//!
//! - `GET  /api/sincronizacion/conflictos/` (filters `estado`, `tienda`, `coleccion`, `tipo`);
//! - `GET  /api/sincronizacion/conflictos/{id}/`;
//! - `POST /api/sincronizacion/conflictos/` with `{"conflicto": id, "resolucion", "datos"?, "usuario"}`;
//! - `POST /api/sincronizacion/cola/{id}/resolver/` with `{"resolucion", "datos"?, "usuario"}`;
//! - `POST /api/sincronizacion/cola/{id}/procesar/`: process one deferred operation now.
//!
//! `resolucion` is `servidor` (keep the hub's data), `local` (keep the store's) or
//! `personalizado` (save `datos`, edited by the admin). Every resolution records who, when,
//! what was chosen, and the document before and after, and changes the document with a new
//! commit sequence so every store pulls the result.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::apply::{last_seq, process, save_seq, Outcome, Stored};
use super::db::hub_operation;
use super::docs::{load, Docs};
use super::error::AppError;
use super::extract::JsonBody;
use super::routes::{int_param, now_ms, page, page_params};
use super::{AppState, Db};
use crate::core::apply::apply;
use crate::core::conflict;
use crate::core::model::{rfc3339, Fields, OpKind};

/// What an admin chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Choice {
    /// Keep the hub's data.
    #[serde(rename = "servidor")]
    Server,
    /// Keep the store's data.
    #[serde(rename = "local")]
    Store,
    /// Save the admin's merged data.
    #[serde(rename = "personalizado")]
    Custom,
}

impl Choice {
    fn as_str(self) -> &'static str {
        match self {
            Choice::Server => "servidor",
            Choice::Store => "local",
            Choice::Custom => "personalizado",
        }
    }
}

/// The body of a resolution.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// The conflict (only on `POST /conflictos/`).
    #[serde(default)]
    pub conflicto: Option<i64>,
    /// What was chosen.
    pub resolucion: Choice,
    /// The merged data, for `personalizado`.
    #[serde(default)]
    pub datos: Option<Fields>,
    /// Who resolves it (1 to 150 characters).
    #[serde(default)]
    pub usuario: Option<String>,
}

/// A path segment parsed, or a 404 that names it.
fn path_param<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, AppError> {
    text.parse()
        .map_err(|_| AppError::NotFound(format!("{text:?} is not a valid {what}.")))
}

fn json_text(r: &SqliteRow, column: &str) -> Value {
    r.get::<Option<String>, _>(column)
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

fn conflict_view(r: &SqliteRow) -> Value {
    json!({
        "id": r.get::<i64, _>("id"),
        "operacion_id": r.get::<String, _>("operacion_id"),
        "operacion": r.get::<Option<String>, _>("operacion"),
        "tienda": r.get::<i64, _>("tienda"),
        "coleccion": r.get::<String, _>("coleccion"),
        "objeto_id": r.get::<String, _>("objeto_id"),
        "tipo": r.get::<String, _>("tipo"),
        "campos": json_text(r, "campos"),
        "datos_servidor": json_text(r, "datos_servidor"),
        "datos_tienda": json_text(r, "datos_tienda"),
        "datos_actuales": json_text(r, "datos_actuales"),
        "version_actual": r.get::<Option<i64>, _>("version_actual"),
        "estrategia": r.get::<String, _>("estrategia"),
        "estado": r.get::<String, _>("estado"),
        "resolucion": r.get::<Option<String>, _>("resolucion"),
        "resultado": json_text(r, "resultado"),
        "resuelto_por": r.get::<Option<String>, _>("resuelto_por"),
        "fecha_creacion": r.get::<String, _>("fecha_creacion"),
        "fecha_resolucion": r.get::<Option<String>, _>("fecha_resolucion"),
        "datos_antes": json_text(r, "datos_antes"),
        "datos_despues": json_text(r, "datos_despues"),
    })
}

const VIEW: &str =
    "SELECT c.*, o.operacion AS operacion, d.datos AS datos_actuales, d.version AS version_actual \
    FROM conflictos c LEFT JOIN operaciones o ON o.id = c.operacion_id \
    LEFT JOIN documentos d ON d.coleccion = c.coleccion AND d.objeto_id = c.objeto_id";

/// `GET /api/sincronizacion/conflictos/`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    let (limit, offset) = page_params(&q)?;
    let mut clauses = Vec::new();
    let mut binds: Vec<String> = Vec::new();
    if let Some(e) = q.get("estado") {
        if e != "abierto" && e != "resuelto" {
            return Err(AppError::field(
                "estado",
                format!("\"{e}\" is not a valid choice: abierto or resuelto."),
            ));
        }
        clauses.push("c.estado = ?");
        binds.push(e.clone());
    }
    if let Some(t) = q.get("tipo") {
        if !["campos", "integridad", "inventario"].contains(&t.as_str()) {
            return Err(AppError::field(
                "tipo",
                format!("\"{t}\" is not a valid choice: campos, integridad or inventario."),
            ));
        }
        clauses.push("c.tipo = ?");
        binds.push(t.clone());
    }
    if let Some(c) = q.get("coleccion") {
        clauses.push("c.coleccion = ?");
        binds.push(c.clone());
    }
    let store = int_param(&q, "tienda")?;
    if let Some(s) = store {
        clauses.push("c.tienda = ?");
        binds.push(s.to_string());
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let mut count = sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM conflictos c{filter}"
    )));
    let mut rows = sqlx::query(AssertSqlSafe(format!(
        "{VIEW}{filter} ORDER BY c.id LIMIT ? OFFSET ?"
    )));
    for b in &binds {
        count = count.bind(b.clone());
        rows = rows.bind(b.clone());
    }
    let count = count.fetch_one(&state.db.pool).await?;
    let rows = rows
        .bind(i64::from(limit))
        .bind(offset as i64)
        .fetch_all(&state.db.pool)
        .await?;
    let results: Vec<Value> = rows.iter().map(conflict_view).collect();
    Ok(Json(page(
        &headers,
        &uri,
        count as u64,
        limit,
        offset,
        results,
    )))
}

/// `GET /api/sincronizacion/conflictos/{id}/`.
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let id: i64 = path_param(&id, "conflict id")?;
    let row = sqlx::query(AssertSqlSafe(format!("{VIEW} WHERE c.id = ?")))
        .bind(id)
        .fetch_optional(&state.db.pool)
        .await?;
    row.map(|r| Json(conflict_view(&r)))
        .ok_or_else(|| AppError::NotFound(format!("No conflict {id}.")))
}

/// `POST /api/sincronizacion/conflictos/`.
pub async fn resolve_by_id(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Resolution>,
) -> Result<Json<Value>, AppError> {
    let id = body
        .conflicto
        .ok_or_else(|| AppError::field("conflicto", "This field is required."))?;
    let resolved = state.db.resolve(id, &body).await?;
    get_one(State(state), Path(resolved.to_string())).await
}

/// `POST /api/sincronizacion/cola/{id}/resolver/`.
pub async fn resolve_operation(
    State(state): State<AppState>,
    Path(op): Path<String>,
    JsonBody(body): JsonBody<Resolution>,
) -> Result<Json<Value>, AppError> {
    let op: Uuid = path_param(&op, "operation id")?;
    let id: Option<i64> = sqlx::query_scalar("SELECT id FROM conflictos WHERE operacion_id = ? AND estado = 'abierto' ORDER BY id LIMIT 1")
        .bind(op.hyphenated().to_string())
        .fetch_optional(&state.db.pool)
        .await?;
    let id =
        id.ok_or_else(|| AppError::NotFound(format!("Operation {op} has no open conflict.")))?;
    let resolved = state.db.resolve(id, &body).await?;
    get_one(State(state), Path(resolved.to_string())).await
}

/// `POST /api/sincronizacion/cola/{id}/procesar/`.
pub async fn process_one(
    State(state): State<AppState>,
    Path(op): Path<String>,
) -> Result<Json<Value>, AppError> {
    let op: Uuid = path_param(&op, "operation id")?;
    let row = sqlx::query("SELECT * FROM operaciones WHERE id = ?")
        .bind(op.hyphenated().to_string())
        .fetch_optional(&state.db.pool)
        .await?;
    let held =
        hub_operation(&row.ok_or_else(|| AppError::NotFound(format!("No operation {op}.")))?)?;
    if held.op.status != crate::core::model::OpStatus::Deferred {
        return Err(AppError::Conflict {
            detail: format!(
                "Operation {op} is {}: only a deferred operation can be processed.",
                held.op.status.as_str()
            ),
            code: "no_procesable",
        });
    }
    state.db.process_queue(Some(op), now_ms()).await?;
    let row = sqlx::query("SELECT * FROM operaciones WHERE id = ?")
        .bind(op.hyphenated().to_string())
        .fetch_one(&state.db.pool)
        .await?;
    Ok(Json(
        serde_json::to_value(hub_operation(&row)?).unwrap_or_default(),
    ))
}

impl Db {
    /// Resolves an open conflict; returns its id.
    pub async fn resolve(&self, id: i64, how: &Resolution) -> Result<i64, AppError> {
        let user = how.usuario.as_deref().unwrap_or("").trim();
        if user.is_empty() {
            return Err(AppError::field("usuario", "Say who resolves the conflict."));
        }
        if user.chars().count() > 150 {
            return Err(AppError::field("usuario", "At most 150 characters."));
        }
        match (how.resolucion, &how.datos) {
            (Choice::Custom, None) => {
                return Err(AppError::field(
                    "datos",
                    "A custom resolution needs the merged data (an object).",
                ))
            }
            (Choice::Custom, Some(d)) if d.is_empty() => {
                return Err(AppError::field(
                    "datos",
                    "The merged data must name at least one field.",
                ))
            }
            (Choice::Server | Choice::Store, Some(_)) => {
                return Err(AppError::field(
                    "datos",
                    "Only a custom (personalizado) resolution takes data.",
                ));
            }
            _ => {}
        }
        let now = rfc3339(now_ms());
        let mut conn = self.begin_write().await?;
        let mut tx = conn.immediate().await?;
        let row = sqlx::query("SELECT * FROM conflictos WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let row = row.ok_or_else(|| AppError::NotFound(format!("No conflict {id}.")))?;
        if row.get::<String, _>("estado") != "abierto" {
            return Err(AppError::Conflict {
                detail: format!("Conflict {id} is already resolved."),
                code: "ya_resuelto",
            });
        }
        let kind: String = row.get("tipo");
        let op_row = sqlx::query("SELECT * FROM operaciones WHERE id = ?")
            .bind(row.get::<String, _>("operacion_id"))
            .fetch_one(&mut *tx)
            .await?;
        let op = hub_operation(&op_row)?.op;
        let fields: Vec<String> =
            serde_json::from_value(json_text(&row, "campos")).unwrap_or_default();
        let mut seq = last_seq(&mut tx).await?;
        let current = load(&mut tx, &op.collection, &op.doc_id).await?;
        let before = current
            .as_ref()
            .filter(|s| !s.doc.deleted)
            .map(|s| s.doc.data.clone());
        let clock = op.clock.to_string();

        // What the document becomes (None: unchanged), and the operation's new state.
        let mut next: Option<Stored> = None;
        let op_state: Option<(&str, Option<String>)>;
        let bump = |stored: &Option<Stored>, data: Fields, deleted: bool, touched: Vec<String>| {
            let (version, mut stamps) = stored.as_ref().map_or((0, Default::default()), |s| {
                (s.doc.version, s.stamps.clone())
            });
            conflict::stamp(&mut stamps, touched, version + 1, op.clock);
            Stored {
                doc: crate::core::model::Document {
                    collection: op.collection.clone(),
                    doc_id: op.doc_id.clone(),
                    version: version + 1,
                    data,
                    deleted,
                },
                stamps,
            }
        };
        match (kind.as_str(), how.resolucion) {
            ("inventario", Choice::Store) => {
                return Err(AppError::field("resolucion", "An inventory conflict has no store data to keep: choose servidor (accept the stock as it is) or personalizado with the counted stock."));
            }
            ("inventario", Choice::Server) => op_state = None,
            ("inventario", Choice::Custom) => {
                let stored = current
                    .as_ref()
                    .filter(|s| !s.doc.deleted)
                    .ok_or_else(|| AppError::field("datos", "The document no longer exists."))?;
                let datos = how.datos.clone().unwrap_or_default();
                let config = super::config::load(&mut tx, op.store).await?;
                let floors = config
                    .minimos
                    .get(&op.collection)
                    .cloned()
                    .unwrap_or_default();
                for (field, value) in &datos {
                    let floor = floors.get(field).ok_or_else(|| AppError::field("datos", format!("{field:?} is not a field with a floor; an inventory resolution sets only {}.", fields.join(", "))))?;
                    let n = value.as_i64().ok_or_else(|| {
                        AppError::field(
                            "datos",
                            format!("{field:?} must be an integer (the counted stock)."),
                        )
                    })?;
                    if n < *floor {
                        return Err(AppError::field(
                            "datos",
                            format!("{field:?} = {n} is below its floor {floor}."),
                        ));
                    }
                }
                let mut data = stored.doc.data.clone();
                data.extend(datos.clone());
                next = Some(bump(&current, data, false, datos.keys().cloned().collect()));
                op_state = None;
            }
            (_, Choice::Server) => {
                op_state = Some((
                    "rechazada",
                    Some(format!(
                        "conflict resolved by {user}: the hub's data stands"
                    )),
                ))
            }
            (_, Choice::Custom) => {
                let datos = how.datos.clone().unwrap_or_default();
                let touched = datos.keys().cloned().collect();
                next = Some(bump(&current, datos, false, touched));
                op_state = Some(("aplicada", None));
            }
            ("integridad", Choice::Store) => {
                // Apply it now: its parent may have arrived; if not, the store's data is written anyway.
                let config = super::config::load(&mut tx, op.store).await?;
                match process(&mut tx, &mut Docs::default(), &op, &config, &now, &mut seq).await? {
                    Outcome::Applied { .. } => {}
                    _ => {
                        let live = current.as_ref().filter(|s| !s.doc.deleted).map(|s| &s.doc);
                        let forced = match (op.kind, live) {
                            (OpKind::Update | OpKind::Increment, None) => op.data.clone(),
                            _ => {
                                apply(live, &op)
                                    .map_err(|e| {
                                        AppError::field(
                                            "resolucion",
                                            format!("The store's data cannot be applied: {e}."),
                                        )
                                    })?
                                    .data
                            }
                        };
                        // Forcing the store's data must still respect the floors.
                        let floors = config
                            .minimos
                            .get(&op.collection)
                            .cloned()
                            .unwrap_or_default();
                        if let Some((field, floor)) = floors.iter().find(|(f, floor)| {
                            forced
                                .get(*f)
                                .and_then(Value::as_i64)
                                .is_some_and(|v| v < **floor)
                        }) {
                            return Err(AppError::field(
                                "resolucion",
                                format!("The store's data would leave {field:?} below its floor {floor}; choose personalizado with a counted value."),
                            ));
                        }
                        next = Some(bump(
                            &current,
                            forced,
                            false,
                            op.data.keys().cloned().collect(),
                        ));
                    }
                }
                op_state = Some(("aplicada", None));
            }
            (_, Choice::Store) => {
                // The store's values win over what the admin saw at detection; a field changed
                // on the hub after that (a later write of the same store, say) keeps its value.
                let seen = row
                    .get::<Option<i64>, _>("version_servidor")
                    .map_or(u64::MAX, |v| v as u64);
                let stamps = current
                    .as_ref()
                    .map(|s| s.stamps.clone())
                    .unwrap_or_default();
                let newer = |f: &String| stamps.get(f).is_some_and(|st| st.version > seen);
                let deleted = op.kind == OpKind::Delete;
                let mut data = before.clone().unwrap_or_default();
                let mut touched = Vec::new();
                if deleted {
                    data = Fields::new();
                } else {
                    for (field, value) in op.data.iter().filter(|(f, _)| !newer(f)) {
                        data.insert(field.clone(), value.clone());
                        touched.push(field.clone());
                    }
                }
                next = Some(bump(&current, data, deleted, touched));
                op_state = Some(("aplicada", None));
            }
        }
        if let Some(stored) = &next {
            Docs::default()
                .write(&mut tx, stored.clone(), &clock, &now, &mut seq)
                .await?;
        }
        let after = load(&mut tx, &op.collection, &op.doc_id)
            .await?
            .filter(|s| !s.doc.deleted)
            .map(|s| s.doc);
        let op_id = op.id.hyphenated().to_string();
        match op_state {
            Some((status, error)) => {
                sqlx::query("UPDATE operaciones SET estado = ?, error = ?, codigo = ?, tiene_conflicto = 0, espera = NULL, version = COALESCE(?, version), fecha_procesamiento = ? WHERE id = ?")
                    .bind(status)
                    .bind(&error)
                    .bind(error.as_ref().map(|_| "resuelto_servidor"))
                    .bind(next.as_ref().map(|s| s.doc.version as i64))
                    .bind(&now)
                    .bind(&op_id)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query("UPDATE operaciones SET tiene_conflicto = 0 WHERE id = ?")
                    .bind(&op_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query(
            "UPDATE conflictos SET estado = 'resuelto', resolucion = ?, resuelto_por = ?, fecha_resolucion = ?, \
             datos_antes = ?, datos_despues = ? WHERE id = ?",
        )
        .bind(how.resolucion.as_str())
        .bind(user)
        .bind(&now)
        .bind(before.map(|d| Value::Object(d).to_string()))
        .bind(after.map(|d| Value::Object(d.data).to_string()))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        save_seq(&mut tx, seq).await?;
        tx.commit().await?;
        conn.done();
        tracing::info!(conflicto = id, tipo = %kind, resolucion = how.resolucion.as_str(), usuario = user, "conflict resolved");
        Ok(id)
    }
}
