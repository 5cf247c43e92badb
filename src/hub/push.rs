//! Applying a pushed batch: every operation exactly once, its answer recorded in the same
//! transaction that applied it.
//!
//! For each operation, in order:
//! 1. if the hub has seen its id, the recorded answer is returned again (`duplicada`), unless
//!    the content differs, which is refused as `id_reutilizado` and leaves the original alone;
//! 2. otherwise it is checked (store, shape) and applied to the document with the core's rules,
//!    the document gets the next commit sequence, and the answer is recorded.
//!
//! The whole batch is one transaction: a crash or a database error leaves none of it applied,
//! and the store sends it again. One sync-history row is written in the same transaction.

use std::time::Instant;

use sha2::{Digest, Sha256};
use sqlx::{Row, Sqlite, Transaction};

use super::db::{fields_from, Db};
use super::error::AppError;
use crate::core::apply::apply;
use crate::core::model::{rfc3339, Document, OpStatus, Operation};
use crate::core::protocol::{validate, OpResult, PushRequest, PushResponse};

/// A SHA-256 over the operation's content (not its status fields), hex-encoded.
pub fn fingerprint(op: &Operation) -> String {
    let content = serde_json::json!([
        op.store,
        op.collection,
        op.doc_id,
        op.kind,
        op.data,
        op.base_version,
        op.clock,
    ]);
    let digest = Sha256::digest(content.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Default)]
struct Tally {
    applied: i64,
    duplicates: i64,
    deferred: i64,
    conflicts: i64,
    rejected: i64,
}

impl Db {
    /// Applies a batch and returns one answer per operation, in order.
    pub async fn push(&self, request: &PushRequest, now_ms: u64) -> Result<PushResponse, AppError> {
        let started = Instant::now();
        let now = rfc3339(now_ms);
        let _writer = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        let log_id: i64 = sqlx::query_scalar(
            "INSERT INTO registros (tienda, tipo, fecha_inicio, fecha_fin, duracion_ms, recibidas, \
             aplicadas, duplicadas, diferidas, conflictos, rechazadas) \
             VALUES (?, 'push', ?, ?, 0, ?, 0, 0, 0, 0, 0) RETURNING id",
        )
        .bind(request.store as i64)
        .bind(&now)
        .bind(&now)
        .bind(request.operations.len() as i64)
        .fetch_one(&mut *tx)
        .await?;
        let mut seq: i64 = sqlx::query_scalar("SELECT valor FROM secuencia WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let mut tally = Tally::default();
        let mut results = Vec::with_capacity(request.operations.len());
        for op in &request.operations {
            let result = apply_one(&mut tx, request.store, op, &now, log_id, &mut seq).await?;
            match (result.status, result.duplicate) {
                (_, true) => tally.duplicates += 1,
                (OpStatus::Applied, _) => tally.applied += 1,
                (OpStatus::Deferred, _) => tally.deferred += 1,
                (OpStatus::Conflict, _) => tally.conflicts += 1,
                (OpStatus::Rejected | OpStatus::Pending, _) => tally.rejected += 1,
            }
            results.push(result);
        }
        sqlx::query("UPDATE secuencia SET valor = ? WHERE id = 1")
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE registros SET fecha_fin = ?, duracion_ms = ?, aplicadas = ?, duplicadas = ?, \
             diferidas = ?, conflictos = ?, rechazadas = ? WHERE id = ?",
        )
        .bind(rfc3339(now_ms + started.elapsed().as_millis() as u64))
        .bind(started.elapsed().as_millis() as i64)
        .bind(tally.applied)
        .bind(tally.duplicates)
        .bind(tally.deferred)
        .bind(tally.conflicts)
        .bind(tally.rejected)
        .bind(log_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(
            tienda = request.store,
            registro = log_id,
            recibidas = request.operations.len(),
            aplicadas = tally.applied,
            duplicadas = tally.duplicates,
            rechazadas = tally.rejected,
            ms = started.elapsed().as_millis() as u64,
            "push applied"
        );
        Ok(PushResponse {
            store: request.store,
            results,
            log_id,
        })
    }
}

async fn apply_one(
    tx: &mut Transaction<'_, Sqlite>,
    batch_store: u64,
    op: &Operation,
    now: &str,
    log_id: i64,
    seq: &mut i64,
) -> Result<OpResult, AppError> {
    let id = op.id.hyphenated().to_string();
    let huella = fingerprint(op);
    let seen =
        sqlx::query("SELECT estado, version, error, codigo, huella FROM operaciones WHERE id = ?")
            .bind(&id)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(row) = seen {
        let recorded: String = row.get("huella");
        if recorded != huella {
            return Ok(refused(
                op,
                "id_reutilizado",
                "this id was already used by a different operation; the first one stands".into(),
            ));
        }
        let status: String = row.get("estado");
        return Ok(OpResult {
            id: op.id,
            status: OpStatus::parse(&status).unwrap_or(OpStatus::Rejected),
            version: row.get::<Option<i64>, _>("version").map(|v| v as u64),
            conflict: None,
            error: row.get("error"),
            code: row.get("codigo"),
            duplicate: true,
        });
    }

    let outcome = if op.store != batch_store {
        Err((
            "tienda_incorrecta",
            format!(
                "operation of store {} in a batch of store {}",
                op.store, batch_store
            ),
        ))
    } else if let Err(e) = validate(op) {
        Err(("invalida", e.to_string()))
    } else {
        let current = load_document(tx, &op.collection, &op.doc_id).await?;
        apply(current.as_ref(), op).map_err(|e| (e.code(), e.to_string()))
    };
    let result = match outcome {
        Ok(doc) => {
            *seq += 1;
            sqlx::query(
                "INSERT INTO documentos (coleccion, objeto_id, version, datos, eliminado, seq, actualizado) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (coleccion, objeto_id) DO UPDATE SET version = excluded.version, \
                 datos = excluded.datos, eliminado = excluded.eliminado, seq = excluded.seq, \
                 actualizado = excluded.actualizado",
            )
            .bind(&doc.collection)
            .bind(&doc.doc_id)
            .bind(doc.version as i64)
            .bind(serde_json::Value::Object(doc.data.clone()).to_string())
            .bind(doc.deleted)
            .bind(*seq)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            OpResult {
                id: op.id,
                status: OpStatus::Applied,
                version: Some(doc.version),
                conflict: None,
                error: None,
                code: None,
                duplicate: false,
            }
        }
        Err((code, message)) => refused(op, code, message),
    };
    sqlx::query(
        "INSERT INTO operaciones (id, tienda, coleccion, objeto_id, operacion, datos, version_base, reloj, \
         prioridad, estado, tiene_conflicto, intentos, error, codigo, version, huella, registro, \
         fecha_creacion, fecha_recepcion, fecha_procesamiento) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(op.store as i64)
    .bind(&op.collection)
    .bind(&op.doc_id)
    .bind(op.kind.as_str())
    .bind(serde_json::Value::Object(op.data.clone()).to_string())
    .bind(op.base_version as i64)
    .bind(op.clock.to_string())
    .bind(op.priority)
    .bind(result.status.as_str())
    .bind(i64::from(op.attempts.saturating_add(1)))
    .bind(&result.error)
    .bind(&result.code)
    .bind(result.version.map(|v| v as i64))
    .bind(&huella)
    .bind(log_id)
    .bind(if op.created_at.is_empty() { now } else { &op.created_at })
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(result)
}

fn refused(op: &Operation, code: &str, message: String) -> OpResult {
    OpResult {
        id: op.id,
        status: OpStatus::Rejected,
        version: None,
        conflict: None,
        error: Some(message),
        code: Some(code.to_owned()),
        duplicate: false,
    }
}

async fn load_document(
    tx: &mut Transaction<'_, Sqlite>,
    collection: &str,
    doc_id: &str,
) -> Result<Option<Document>, AppError> {
    let row = sqlx::query(
        "SELECT version, datos, eliminado FROM documentos WHERE coleccion = ? AND objeto_id = ?",
    )
    .bind(collection)
    .bind(doc_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| {
        Ok(Document {
            collection: collection.to_owned(),
            doc_id: doc_id.to_owned(),
            version: r.get::<i64, _>("version") as u64,
            data: fields_from(r.get("datos"))?,
            deleted: r.get::<i64, _>("eliminado") != 0,
        })
    })
    .transpose()
}
