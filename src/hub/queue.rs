//! The hub-side queue: recording answers, and processing deferred operations again
//! (the specification's `manage.py sincronizar`).
//!
//! A deferred operation is retried when a document it waits for is created in a push, when
//! an admin asks (`POST /api/sincronizacion/cola/{id}/procesar/`), and when the queue is
//! processed (`pos-sync-hub sincronizar`, once or `--continuo`). Each retry counts as an
//! attempt; after the store's `intentos_integridad` attempts it becomes an integrity conflict.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::json;
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::apply::{last_seq, open_conflict, process, save_seq, Outcome, Tx};
use super::db::Db;
use super::docs::Docs;
use super::error::AppError;
use crate::core::config::StoreConfig;
use crate::core::model::{rfc3339, OpStatus, Operation};
use crate::core::protocol::OpResult;

/// The wire answer for an outcome.
pub fn result_of(id: Uuid, outcome: &Outcome) -> OpResult {
    let base = OpResult {
        id,
        status: OpStatus::Applied,
        version: None,
        conflict: None,
        error: None,
        code: None,
        duplicate: false,
    };
    match outcome {
        Outcome::Applied {
            version, conflict, ..
        } => OpResult {
            version: *version,
            conflict: conflict.clone(),
            ..base
        },
        Outcome::Deferred { reason, .. } => OpResult {
            status: OpStatus::Deferred,
            error: Some(reason.clone()),
            code: Some("referencia_pendiente".into()),
            ..base
        },
        Outcome::Conflict { detail } => OpResult {
            status: OpStatus::Conflict,
            conflict: Some(detail.clone()),
            error: Some(match detail.get("motivo").and_then(|m| m.as_str()) {
                Some(cause) => format!("in conflict ({cause}); waits for an admin"),
                None => "in conflict; waits for an admin".into(),
            }),
            code: Some("conflicto".into()),
            ..base
        },
        Outcome::Rejected { code, message } => OpResult {
            status: OpStatus::Rejected,
            error: Some(message.clone()),
            code: Some((*code).to_owned()),
            ..base
        },
    }
}

/// An outcome as the `operaciones` row stores it.
struct Columns {
    result: OpResult,
    waits: Option<String>,
    conflict: Option<String>,
    has_conflict: bool,
}

fn columns(outcome: &Outcome) -> Columns {
    let result = result_of(Uuid::nil(), outcome);
    let waits = match outcome {
        Outcome::Deferred { waits, .. } => Some(waits.clone()),
        _ => None,
    };
    let has_conflict = matches!(
        outcome,
        Outcome::Conflict { .. }
            | Outcome::Applied {
                has_conflict: true,
                ..
            }
    );
    let conflict = result.conflict.as_ref().map(|c| c.to_string());
    Columns {
        result,
        waits,
        conflict,
        has_conflict,
    }
}

/// A new operation's `operaciones` row, ready to insert.
pub struct RecordRow {
    id: String,
    store: i64,
    collection: String,
    doc_id: String,
    kind: &'static str,
    data: String,
    base_version: i64,
    clock: String,
    priority: i32,
    columns: Columns,
    attempts: i64,
    huella: String,
    log_id: i64,
    created_at: String,
    received_at: String,
    base_data: Option<String>,
}

/// A new operation with its outcome, as its row.
pub fn record_row(
    op: &Operation,
    data: String,
    huella: String,
    log_id: i64,
    outcome: &Outcome,
    now: &str,
) -> RecordRow {
    RecordRow {
        id: op.id.hyphenated().to_string(),
        store: op.store as i64,
        collection: op.collection.clone(),
        doc_id: op.doc_id.clone(),
        kind: op.kind.as_str(),
        data,
        base_version: op.base_version as i64,
        clock: op.clock.to_string(),
        priority: op.priority,
        columns: columns(outcome),
        attempts: i64::from(op.attempts.saturating_add(1)),
        huella,
        log_id,
        created_at: if op.created_at.is_empty() {
            now.to_owned()
        } else {
            op.created_at.clone()
        },
        received_at: now.to_owned(),
        base_data: op
            .base_data
            .as_ref()
            .map(|d| serde_json::to_string(d).unwrap_or_default()),
    }
}

/// Inserts new operations' rows, many to a statement (one statement per row costs a round
/// trip to the database thread each).
pub async fn insert_records(tx: &mut Tx<'_>, rows: &[RecordRow]) -> Result<(), AppError> {
    for chunk in super::chunks::statement_chunks(rows) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO operaciones (id, tienda, coleccion, objeto_id, operacion, datos, version_base, reloj, \
             prioridad, estado, tiene_conflicto, intentos, error, codigo, version, huella, registro, \
             fecha_creacion, fecha_recepcion, fecha_procesamiento, datos_base, espera, conflicto) ",
        );
        insert.push_values(chunk, |mut row, r| {
            let c = &r.columns;
            row.push_bind(&r.id)
                .push_bind(r.store)
                .push_bind(&r.collection)
                .push_bind(&r.doc_id)
                .push_bind(r.kind)
                .push_bind(&r.data)
                .push_bind(r.base_version)
                .push_bind(&r.clock)
                .push_bind(r.priority)
                .push_bind(c.result.status.as_str())
                .push_bind(c.has_conflict)
                .push_bind(r.attempts)
                .push_bind(&c.result.error)
                .push_bind(&c.result.code)
                .push_bind(c.result.version.map(|v| v as i64))
                .push_bind(&r.huella)
                .push_bind(r.log_id)
                .push_bind(&r.created_at)
                .push_bind(&r.received_at)
                .push_bind(&r.received_at)
                .push_bind(&r.base_data)
                .push_bind(&c.waits)
                .push_bind(&c.conflict);
        });
        insert.build().persistent(true).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Rewrites a known operation's outcome, counting one more attempt.
async fn rerecord(
    tx: &mut Tx<'_>,
    id: &str,
    outcome: &Outcome,
    attempts: i64,
    now: &str,
) -> Result<(), AppError> {
    let c = columns(outcome);
    sqlx::query(
        "UPDATE operaciones SET estado = ?, version = ?, error = ?, codigo = ?, espera = ?, conflicto = ?, \
         tiene_conflicto = ?, intentos = ?, fecha_procesamiento = ? WHERE id = ?",
    )
    .bind(c.result.status.as_str())
    .bind(c.result.version.map(|v| v as i64))
    .bind(c.result.error)
    .bind(c.result.code)
    .bind(c.waits)
    .bind(c.conflict)
    .bind(c.has_conflict)
    .bind(attempts)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Processes one deferred operation again; after the allowed attempts it becomes an
/// integrity conflict.
async fn retry(
    tx: &mut Tx<'_>,
    docs: &mut Docs,
    op: &Operation,
    attempts: i64,
    config: &StoreConfig,
    now: &str,
    seq: &mut i64,
) -> Result<Outcome, AppError> {
    let outcome = process(tx, docs, op, config, now, seq).await?;
    let attempts = attempts + 1;
    let outcome = give_up_after(tx, op, outcome, attempts, config, now).await?;
    rerecord(tx, &op.id.hyphenated().to_string(), &outcome, attempts, now).await?;
    Ok(outcome)
}

/// A deferred operation on its `attempts`-th attempt becomes an integrity conflict once the
/// store's `intentos_integridad` are used up; any other outcome passes through.
pub async fn give_up_after(
    tx: &mut Tx<'_>,
    op: &Operation,
    outcome: Outcome,
    attempts: i64,
    config: &StoreConfig,
    now: &str,
) -> Result<Outcome, AppError> {
    let Outcome::Deferred { reason, .. } = &outcome else {
        return Ok(outcome);
    };
    if attempts < i64::from(config.intentos_integridad) {
        return Ok(outcome);
    }
    let current = super::docs::load(tx, &op.collection, &op.doc_id)
        .await?
        .map(|s| s.doc.data)
        .unwrap_or_default();
    let fields: Vec<String> = op.data.keys().cloned().collect();
    let id = open_conflict(tx, op, "integridad", &fields, &current, "manual", now).await?;
    Ok(Outcome::Conflict {
        detail: json!({"id": id, "tipo": "integridad", "campos": fields, "motivo": reason}),
    })
}

/// One store's configuration, read once per pass.
async fn config_for<'c>(
    tx: &mut Tx<'_>,
    configs: &'c mut HashMap<u64, StoreConfig>,
    store: u64,
) -> Result<&'c StoreConfig, AppError> {
    if let std::collections::hash_map::Entry::Vacant(slot) = configs.entry(store) {
        slot.insert(super::config::load(tx, store).await?);
    }
    Ok(&configs[&store])
}

/// Retries the deferred operations waiting for any of `keys` (documents just created).
pub async fn retry_waiting(
    tx: &mut Tx<'_>,
    keys: &BTreeSet<String>,
    now: &str,
    seq: &mut i64,
) -> Result<(), AppError> {
    // Most pushes find nothing waiting: one look at the (small) index of waiting operations.
    let waiting: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM operaciones WHERE espera IS NOT NULL)")
            .fetch_one(&mut **tx)
            .await?;
    if !waiting {
        return Ok(());
    }
    let placeholders = vec!["?"; keys.len()].join(",");
    let sql = format!("SELECT * FROM operaciones WHERE estado = 'diferida' AND espera IN ({placeholders}) ORDER BY rowid");
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for k in keys {
        query = query.bind(k);
    }
    let rows = query.fetch_all(&mut **tx).await?;
    let mut configs = HashMap::new();
    let mut docs = Docs::default();
    for row in &rows {
        let held = super::db::hub_operation(row)?;
        let config = config_for(tx, &mut configs, held.op.store).await?;
        retry(
            tx,
            &mut docs,
            &held.op,
            i64::from(held.op.attempts),
            config,
            now,
            seq,
        )
        .await?;
    }
    Ok(())
}

/// What one pass over the hub-side queue did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct QueueRun {
    /// Deferred operations tried.
    pub procesadas: u64,
    /// Of those, applied now.
    pub aplicadas: u64,
    /// Still deferred.
    pub diferidas: u64,
    /// Turned into conflicts.
    pub conflictos: u64,
    /// Refused.
    pub rechazadas: u64,
}

impl Db {
    /// Processes deferred operations once: all of them, or only `id`.
    pub async fn process_queue(&self, id: Option<Uuid>, now_ms: u64) -> Result<QueueRun, AppError> {
        let now = rfc3339(now_ms);
        let mut conn = self.begin_write().await?;
        let mut tx = conn.immediate().await?;
        let rows = match id {
            Some(id) => {
                sqlx::query("SELECT * FROM operaciones WHERE id = ? AND estado = 'diferida'")
                    .bind(id.hyphenated().to_string())
                    .fetch_all(&mut *tx)
                    .await?
            }
            None => {
                let sql = format!(
                    "SELECT * FROM operaciones WHERE {} ORDER BY rowid",
                    super::db::NOT_APPLIED_STATE
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(OpStatus::Deferred.as_str())
                    .fetch_all(&mut *tx)
                    .await?
            }
        };
        let mut seq = last_seq(&mut tx).await?;
        let mut run = QueueRun::default();
        let mut configs = HashMap::new();
        let mut docs = Docs::default();
        for row in &rows {
            let held = super::db::hub_operation(row)?;
            let config = config_for(&mut tx, &mut configs, held.op.store).await?;
            let attempts: i64 = row.get("intentos");
            run.procesadas += 1;
            match retry(
                &mut tx, &mut docs, &held.op, attempts, config, &now, &mut seq,
            )
            .await?
            {
                Outcome::Applied { .. } => run.aplicadas += 1,
                Outcome::Deferred { .. } => run.diferidas += 1,
                Outcome::Conflict { .. } => run.conflictos += 1,
                Outcome::Rejected { .. } => run.rechazadas += 1,
            }
        }
        save_seq(&mut tx, seq).await?;
        tx.commit().await?;
        conn.done();
        if run.procesadas > 0 {
            tracing::info!(?run, "hub-side queue processed");
        }
        Ok(run)
    }
}
