//! Per-store configuration (`ConfiguracionSincronizacion`): storage and endpoints.
//!
//! - `GET  /api/sincronizacion/configuracion/`: every stored configuration;
//! - `GET  /api/sincronizacion/configuracion/{tienda}/`: one store's (the defaults if never set);
//! - `POST /api/sincronizacion/configuracion/`: set one store's. The body is merged onto the
//!   current configuration, so `{"tienda": 2, "tamano_lote": 50}` changes only the batch size.
//!   Invalid values get a 400 naming the field, and nothing is saved.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;
use sqlx::Row;

use super::apply::Tx;
use super::error::AppError;
use super::extract::JsonBody;
use super::routes::now_ms;
use super::AppState;
use crate::core::config::StoreConfig;
use crate::core::model::{rfc3339, StoreId};

/// One store's configuration, or its defaults.
pub async fn load(tx: &mut Tx<'_>, store: StoreId) -> Result<StoreConfig, AppError> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT datos FROM configuracion WHERE tienda = ?")
            .bind(store as i64)
            .fetch_optional(&mut **tx)
            .await?;
    match text {
        Some(t) => serde_json::from_str(&t)
            .map_err(|e| AppError::Database(sqlx::Error::Decode(Box::new(e)))),
        None => Ok(StoreConfig::new(store)),
    }
}

/// Saves a validated configuration.
pub async fn save(tx: &mut Tx<'_>, config: &StoreConfig) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO configuracion (tienda, datos, actualizado) VALUES (?, ?, ?) \
         ON CONFLICT (tienda) DO UPDATE SET datos = excluded.datos, actualizado = excluded.actualizado",
    )
    .bind(config.tienda as i64)
    .bind(serde_json::to_string(config).unwrap_or_default())
    .bind(rfc3339(now_ms()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `GET /api/sincronizacion/configuracion/`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let rows = sqlx::query("SELECT datos FROM configuracion ORDER BY tienda")
        .fetch_all(&state.db.pool)
        .await?;
    let results: Vec<Value> = rows
        .iter()
        .filter_map(|r| serde_json::from_str(r.get::<&str, _>("datos")).ok())
        .collect();
    Ok(Json(
        serde_json::json!({"count": results.len(), "next": null, "previous": null, "results": results}),
    ))
}

/// `GET /api/sincronizacion/configuracion/{tienda}/`.
pub async fn get_one(
    State(state): State<AppState>,
    Path(store): Path<String>,
) -> Result<Json<StoreConfig>, AppError> {
    let store: StoreId = store
        .parse()
        .map_err(|_| AppError::NotFound(format!("{store:?} is not a valid store id.")))?;
    let mut tx = state.db.pool.begin().await?;
    let config = load(&mut tx, store).await?;
    tx.commit().await?;
    Ok(Json(config))
}

/// `POST /api/sincronizacion/configuracion/`.
pub async fn set(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value, { super::CONFIG_BODY_LIMIT }>,
) -> Result<Json<StoreConfig>, AppError> {
    let Value::Object(changes) = body else {
        return Err(AppError::field(
            "non_field_errors",
            "Expected an object with a \"tienda\" field.",
        ));
    };
    let store = changes
        .get("tienda")
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            AppError::field("tienda", "This field is required: a non-negative integer.")
        })?;
    if changes.contains_key("resync") {
        return Err(AppError::field(
            "resync",
            "Read-only: use `pos-sync-hub sincronizar --completa --tienda=ID`.",
        ));
    }
    let mut conn = state.db.begin_write().await?;
    let mut tx = conn.immediate().await?;
    let current = load(&mut tx, store).await?;
    let mut merged = serde_json::to_value(&current).unwrap_or_default();
    if let Value::Object(m) = &mut merged {
        merge(m, changes, 0);
    }
    let config: StoreConfig = super::extract::parse(merged.to_string().as_bytes())?;
    config.validate().map_err(AppError::Fields)?;
    save(&mut tx, &config).await?;
    tx.commit().await?;
    conn.done();
    tracing::info!(tienda = store, "configuration saved");
    Ok(Json(config))
}

/// Merges `changes` onto `current`: maps merge key by key (a `null` value removes the key;
/// `reglas`, `referencias` and `minimos` merge per collection too), everything else is replaced.
fn merge(
    current: &mut serde_json::Map<String, Value>,
    changes: serde_json::Map<String, Value>,
    depth: u8,
) {
    const MAPS: [&str; 5] = [
        "prioridades",
        "estrategias",
        "reglas",
        "referencias",
        "minimos",
    ];
    for (key, value) in changes {
        let nested = depth == 0 && MAPS.contains(&key.as_str()) || depth == 1;
        match (current.get_mut(&key), value) {
            (_, Value::Null) if depth > 0 => {
                current.remove(&key);
            }
            (Some(Value::Object(existing)), Value::Object(incoming)) if nested => {
                merge(existing, incoming, depth + 1)
            }
            (_, value) => {
                current.insert(key, value);
            }
        }
    }
}

impl super::Db {
    /// Orders a full resync of `store`: its engine drops its cursor on its next sync and pulls
    /// everything again. Returns the new resync generation.
    pub async fn order_full_resync(&self, store: StoreId) -> Result<u64, AppError> {
        let mut conn = self.begin_write().await?;
        let mut tx = conn.immediate().await?;
        let mut config = load(&mut tx, store).await?;
        config.resync += 1;
        save(&mut tx, &config).await?;
        tx.commit().await?;
        conn.done();
        Ok(config.resync)
    }
}
